"""Issue #18 against a real `labelgate serve` process on 127.0.0.1: stalled clients cannot
starve /healthz or webhooks, and a disk that stops taking writes shows in /healthz (503 naming
the part) and in webhook answers (503 JSON), and recovers when it takes writes again.

The full disk is made with RLIMIT_FSIZE = 0 set on the running server (``prlimit``): every
write that would grow a file fails with EFBIG, as on a full disk. Unlike chmod or a read-only
mount this binds root too, and needs no privilege, so the test runs everywhere.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.error
from pathlib import Path
from urllib.request import Request, urlopen

import pytest
from services_plugin import free_port

from labelgate_webhook.signatures import cvat_signature

SECRET = "cvat-secret-for-tests"
pytestmark = pytest.mark.slow


class Server:
    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.port = free_port()
        env = {**os.environ, "LABELGATE_HOME": str(tmp_path / "home")}
        env["LABELGATE_CVAT_WEBHOOK_SECRET"] = SECRET
        env.pop("LABELGATE_API_TOKEN", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "labelgate.cli", "serve", "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.get("/healthz", timeout=1)[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail("labelgate serve did not become healthy within 60 s")

    def request(self, req: Request, timeout: float) -> tuple[int, dict]:
        try:
            with urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            assert exc.headers.get_content_type() == "application/json", exc.read()[:200]
            return exc.code, json.loads(exc.read())

    def get(self, path: str, timeout: float = 5) -> tuple[int, dict]:
        return self.request(Request(f"http://127.0.0.1:{self.port}{path}"), timeout)

    def save(self, job: int, timeout: float = 5) -> tuple[int, dict]:
        body = json.dumps(
            {
                "event": "update:job",
                "webhook_id": 1,
                "job": {"id": job, "task_id": 1, "updated_date": f"2026-12-01T00:00:{job:02d}Z"},
                "before_update": {"updated_date": "2026-11-30T00:00:00Z"},
            }
        ).encode()
        req = Request(
            f"http://127.0.0.1:{self.port}/webhooks/cvat",
            data=body,
            headers={"X-Signature-256": cvat_signature(body, SECRET)},
        )
        return self.request(req, timeout)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.decode(errors="replace")


def stall(port: int, count: int) -> list[socket.socket]:
    """``count`` clients that send a request's headers with a Content-Length, then nothing."""
    socks = []
    head = (
        b"POST /webhooks/cvat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(head)
        socks.append(s)
    return socks


def timed(call) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = call()
    return time.perf_counter() - t0, out


def test_stalled_clients_cannot_starve_healthz_or_webhooks(tmp_path):
    server = Server(tmp_path, "--no-worker")
    socks = stall(server.port, 110)
    try:
        time.sleep(0.5)  # let the server take them all in
        took, (status, body) = timed(lambda: server.get("/healthz", timeout=5))
        assert status == 200 and body["status"] == "ok" and took < 1.0, took
        took, (status, body) = timed(lambda: server.save(1, timeout=5))
        assert status == 202 and body["status"] == "queued" and took < 1.0, took
    finally:
        for s in socks:
            s.close()
        server.stop()


def test_a_stalled_client_is_dropped_after_the_channel_timeout(tmp_path):
    server = Server(tmp_path, "--no-worker", "--channel-timeout", "2", "--cleanup-interval", "1")
    (sock,) = stall(server.port, 1)
    try:
        sock.settimeout(10)
        took, data = timed(lambda: sock.recv(1024))
        # Closed by the server (b"" is EOF) after 2 s of silence, checked every second.
        assert data == b"" and 1.5 < took < 6, (took, data)
    finally:
        sock.close()
        server.stop()


def test_waitress_defaults_would_starve_healthz(tmp_path):
    """The same 110 stalled clients against waitress's own defaults (100 connections, 120 s
    timeout, checked every 30 s): /healthz does not answer. This is what the defaults fix."""
    server = Server(
        tmp_path,
        "--no-worker",
        "--connection-limit",
        "100",
        "--channel-timeout",
        "120",
        "--cleanup-interval",
        "30",
    )
    socks = stall(server.port, 110)
    try:
        time.sleep(0.5)
        with pytest.raises(OSError):  # socket.timeout / URLError: nobody answered
            server.get("/healthz", timeout=3)
    finally:
        for s in socks:
            s.close()
        server.stop()


def test_a_full_disk_is_a_503_naming_the_parts_and_recovers(tmp_path):
    server = Server(tmp_path, "--no-worker")
    try:
        assert server.save(1)[0] == 202
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (0, hard))
        status, body = server.get("/healthz")
        assert status == 503 and body["status"] == "unavailable"
        assert body["store"] != "ok" and "disk I/O error" in body["store"]
        assert body["queue"] != "ok"
        status, body = server.save(2)
        assert status == 503 and body["error"].startswith("the queue cannot take the event")
        # Space again: healthy, and events are taken.
        resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
        status, body = server.get("/healthz")
        assert (status, body) == (200, {"status": "ok", "store": "ok", "queue": "ok"})
        assert server.save(3)[0] == 202
    finally:
        log = server.stop()
    assert "Traceback" not in log, log[-2000:]


def test_serve_options_are_documented():
    from click.testing import CliRunner

    from labelgate.cli import main

    doc = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    help_text = CliRunner().invoke(main, ["serve", "--help"]).output
    for option in ("--threads", "--connection-limit", "--channel-timeout", "--cleanup-interval"):
        assert option in help_text and f"`{option}`" in doc


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--connection-limit", "100000000"],
            {},
            "CONNECTION_LIMIT 100000000 needs 100000064 open files",
        ),
        (
            [],
            {"LABELGATE_CHANNEL_TIMEOUT": "0"},
            "environment: LABELGATE_CHANNEL_TIMEOUT: expected a number >= 1",
        ),
        (
            [],
            {"LABELGATE_THREADS": "many"},
            "environment: LABELGATE_THREADS: expected an integer >= 1, got 'many'",
        ),
        (
            [],
            {"LABELGATE_SHOW_FILE_PATHS": "maybe"},
            "environment: LABELGATE_SHOW_FILE_PATHS: expected true or false",
        ),
    ],
    ids=["too-many-connections", "zero-timeout", "threads-not-a-number", "flag-not-a-flag"],
)
def test_bad_serve_settings_exit_2_before_serving(tmp_path, args, env, message):
    from click.testing import CliRunner

    from labelgate.cli import main

    res = CliRunner().invoke(
        main,
        ["serve", "--port", str(free_port()), "--no-worker", *args],
        env={"LABELGATE_HOME": str(tmp_path), **env},
    )
    assert res.exit_code == 2 and message in res.output, res.output
