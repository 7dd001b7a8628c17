"""Issue #18, store side: a read-only or unreachable store is exit 3 with a message (no
traceback) and 503 in /healthz; stores created before public ids are migrated; labelgate's home,
store and queue are private; secrets are redacted everywhere."""

from __future__ import annotations

import json
import logging
import sqlite3
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from services_plugin import free_port

from labelgate.cli import main
from labelgate.errors import StoreUnavailable
from labelgate.security import RedactingFilter, redact
from labelgate.store import PUBLIC_ID, open_store

EX = Path(__file__).resolve().parents[2] / "examples" / "cvat"
REPORT = ["report", "--gt", str(EX / "gt.xml"), "--ds", str(EX / "annotator1.xml"), "--quiet"]


def run(args, **env):
    return CliRunner().invoke(main, args, env=env)


def read_only_url(path: Path) -> str:
    """The store opened through SQLite's read-only mode: a read-only disk as root sees it
    (chmod does not bind root, ``mode=ro`` does)."""
    return f"sqlite:///file:{path}?mode=ro&uri=true"


@pytest.fixture()
def filled(tmp_path):
    path = tmp_path / "store.db"
    res = run([*REPORT, "--store", f"sqlite:///{path}"])
    assert res.exit_code == 0, res.output
    return path


def test_cli_on_a_read_only_store_exits_3_with_a_message(filled):
    res = run([*REPORT, "--store", read_only_url(filled)])
    assert res.exit_code == 3, res.output
    assert res.output.startswith("error: the report store cannot save the report: ")
    assert "readonly database" in res.output and "Traceback" not in res.output
    assert not isinstance(res.exception, (AssertionError, TypeError))


def test_cli_on_an_unreachable_database_exits_3_without_the_password():
    url = f"postgresql+psycopg://labelgate:pg-pass-0f9e@127.0.0.1:{free_port()}/labelgate"
    res = run(["history", "--store", url])
    assert res.exit_code == 3, res.output
    assert res.output.startswith("error: cannot open the report store: ")
    assert "pg-pass-0f9e" not in res.output and "Traceback" not in res.output


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "is not a database URL"),
        ("nosuchdb://x/y", "nosuchdb"),
    ],
)
def test_bad_store_urls_are_input_errors(url, message):
    res = run(["history", "--store", url])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


def test_healthz_names_a_read_only_store_and_webhooks_still_queue(filled, tmp_path):
    from labelgate_webhook import create_app
    from labelgate_webhook.signatures import cvat_signature

    app = create_app(
        {
            "STORE_URL": read_only_url(filled),
            "QUEUE_PATH": str(tmp_path / "q.db"),
            "CVAT_WEBHOOK_SECRET": "cvat-secret",
        }
    )
    client = app.test_client()
    res = client.get("/healthz")
    body = res.get_json()
    assert res.status_code == 503 and body["status"] == "unavailable" and body["queue"] == "ok"
    assert body["store"] == (
        "StoreUnavailable: the report store cannot write: attempt to write a readonly database"
    )
    with open_store(f"sqlite:///{filled}") as store:
        (bundle,) = store.list_reports(kind="bundle")
    assert client.get(f"/reports/{bundle.id}").status_code == 200  # reading still works
    payload = json.dumps(
        {"event": "update:job", "job": {"id": 5}, "before_update": {"updated_date": "x"}}
    ).encode()
    sig = cvat_signature(payload, "cvat-secret")
    assert (
        client.post("/webhooks/cvat", data=payload, headers={"X-Signature-256": sig}).status_code
        == 202
    )
    app.extensions["labelgate_store"].close()
    app.extensions["labelgate_queue"].close()


def test_store_methods_raise_store_unavailable(filled):
    with open_store(read_only_url(filled)) as store:
        with pytest.raises(StoreUnavailable, match="readonly database"):
            store.save_report("bundle", "file", "t", {})
        with pytest.raises(StoreUnavailable, match="readonly database"):
            store.check_writable()
        store.ping()  # reads still answer


def test_a_store_from_before_public_ids_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE labelgate_reports (id INTEGER PRIMARY KEY AUTOINCREMENT,
          kind VARCHAR(32) NOT NULL, source VARCHAR(32) NOT NULL, target VARCHAR(255) NOT NULL,
          project VARCHAR(255), created_at DATETIME NOT NULL, key VARCHAR(255) UNIQUE,
          report TEXT NOT NULL, settings TEXT);
        INSERT INTO labelgate_reports (kind, source, target, created_at, report)
          VALUES ('bundle', 'file', 'a', '2026-01-01 00:00:00', '{"n": 1}'),
                 ('bundle', 'file', 'b', '2026-01-02 00:00:00', '{"n": 2}');
        """
    )
    conn.close()
    with open_store(f"sqlite:///{path}") as store:
        old = store.list_reports()
        assert [r.report["n"] for r in old] == [2, 1]
        assert all(PUBLIC_ID.fullmatch(r.id) for r in old) and old[0].id != old[1].id
        assert store.get_report(old[1].id).report == {"n": 1}
        new = store.save_report("bundle", "file", "c", {"n": 3})
    with open_store(f"sqlite:///{path}") as again:  # ids are stable across opens
        assert [r.id for r in again.list_reports()] == [new, old[0].id, old[1].id]
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError):  # the unique index exists on migrated stores
        conn.execute("UPDATE labelgate_reports SET public_id = ? WHERE id = 1", (old[0].id,))
    conn.close()


def test_keyed_saves_keep_their_id(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        first = store.save_report("cvat_job", "cvat", "job:1", {"v": 1}, key="k")
        again = store.save_report("cvat_job", "cvat", "job:1", {"v": 2}, key="k")
        assert first == again and store.get_report(first).report == {"v": 2}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_home_store_and_queue_are_created_private(tmp_path, monkeypatch):
    from labelgate_webhook import create_app
    from labelgate_webhook.signatures import cvat_signature

    home = tmp_path / "deep" / "labelgate-home"
    monkeypatch.setenv("LABELGATE_HOME", str(home))
    for name in ("LABELGATE_STORE_URL", "LABELGATE_QUEUE_URL", "LABELGATE_QUEUE_PATH"):
        monkeypatch.delenv(name, raising=False)
    app = create_app({"CVAT_WEBHOOK_SECRET": "s3cret"})
    payload = json.dumps(
        {"event": "update:job", "job": {"id": 5}, "before_update": {"updated_date": "x"}}
    ).encode()
    res = app.test_client().post(
        "/webhooks/cvat",
        data=payload,
        headers={"X-Signature-256": cvat_signature(payload, "s3cret")},
    )
    assert res.status_code == 202
    assert app.test_client().get("/healthz").status_code == 200
    files = sorted(p.name for p in home.iterdir())
    assert {"labelgate.db", "queue.db", "queue.db-wal", "queue.db-shm"} <= set(files)
    assert mode(home) == 0o700
    assert {name: mode(home / name) for name in files} == {name: 0o600 for name in files}
    app.extensions["labelgate_store"].close()
    app.extensions["labelgate_queue"].close()


def test_an_explicit_sqlite_store_file_is_private_too(tmp_path):
    path = tmp_path / "new-folder" / "store.db"
    with open_store(f"sqlite:///{path}") as store:
        store.save_report("bundle", "file", "t", {})
    assert mode(path) == 0o600 and mode(path.parent) == 0o700


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "CVAT at http://admin:pa55word@cvat.local:8080 is down",
            "CVAT at http://admin:***@cvat.local:8080 is down",
        ),
        ("redis://:s3cr3t@queue:6379/0", "redis://:***@queue:6379/0"),
        ("postgresql+psycopg://lg:pw%40x@db/lg failed", "postgresql+psycopg://lg:***@db/lg failed"),
        ("https://ghp_tokenvalue@github.com/x", "https://***@github.com/x"),
        ("http://cvat.local:8080/api/jobs/3", "http://cvat.local:8080/api/jobs/3"),
        ("mail annotator1@example.com", "mail annotator1@example.com"),
    ],
)
def test_redact_url_credentials(text, expected):
    assert redact(text, environ={}) == expected


def test_redact_secret_environment_values():
    env = {
        "LABELGATE_CVAT_TOKEN": "tok-123456",
        "LABELGATE_LS_API_KEY": "key-abcdef",
        "LABELGATE_API_TOKEN": "api-token-xyz",
        "LABELGATE_DEBOUNCE_SECONDS": "300000",  # not a secret: kept
        "HOME": "/root",
    }
    text = "sent tok-123456 and key-abcdef and api-token-xyz after 300000 ms"
    assert redact(text, environ=env) == "sent *** and *** and *** after 300000 ms"
    assert redact("hook secret-value-1", ["secret-value-1"], environ={}) == "hook ***"


def test_log_records_are_redacted_with_their_traceback(monkeypatch):
    monkeypatch.setenv("LABELGATE_CVAT_PASSWORD", "hunter2-pass")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("labelgate-test-redaction")
    log.addHandler(handler)
    try:
        try:
            raise ConnectionError("login hunter2-pass to http://u:hunter2-pass@h failed")
        except ConnectionError:
            log.exception("worker failed for %s", "http://u:hunter2-pass@h")
    finally:
        log.removeHandler(handler)
    (text,) = records
    assert "hunter2-pass" not in text and "ConnectionError: login *** to http://u:***@h" in text


def test_cli_messages_hide_a_password_in_the_cvat_host():
    host = f"http://admin:very-secret-pw@127.0.0.1:{free_port()}"
    res = run(
        ["cvat", "score", "--job", "1"],
        LABELGATE_CVAT_HOST=host,
        LABELGATE_CVAT_USER="admin",
        LABELGATE_CVAT_PASSWORD="other-secret",
    )
    assert res.exit_code == 3, res.output
    assert "very-secret-pw" not in res.output and "other-secret" not in res.output
    assert "http://admin:***@127.0.0.1" in res.output and "Traceback" not in res.output
