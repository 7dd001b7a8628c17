"""A burst of 2,000 signed CVAT events for 50 jobs against a real ``labelgate serve`` process.

The receiver runs as its own process on 127.0.0.1 (waitress), a separate ``labelgate worker``
process re-scores against the CVAT API test double, and the events come from real HTTP clients.
The worker is killed (SIGKILL) while it re-scores and a new one is started: every event must be
acknowledged, every job re-scored exactly once for its debounce window, and the issues pushed to
CVAT must not be written twice.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from urllib.request import urlopen

import pytest
from cvat_double import CvatDouble, load_state
from services_plugin import free_port

from labelgate.queue.durable import DurableQueue
from labelgate.store import open_store
from labelgate_webhook.loadgen import cvat_save_event, fire

pytestmark = pytest.mark.slow

SECRET = "burst-secret"
JOBS = 50
EVENTS_PER_JOB = 40
REDELIVERED_PER_JOB = 2
WAVES = 5
FIRST_JOB = 2001


def _state() -> dict:
    """The recorded project with job 103 (task 10) cloned into 50 annotation jobs."""
    state = load_state()
    for k in range(JOBS):
        jid = str(FIRST_JOB + k)
        state["jobs"][jid] = {**state["jobs"]["103"], "id": int(jid)}
        state["annotations"][jid] = copy.deepcopy(state["annotations"]["103"])
        state["meta"][jid] = copy.deepcopy(state["meta"]["103"])
    return state


def _wait_http(url: str, proc: subprocess.Popen, log_path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"{proc.args} exited with {proc.returncode}: {log_path.read_text()[-2000:]}"
            )
        try:
            with urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{url} did not answer within {seconds} s")


def _start(args: list[str], env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "labelgate.cli", *args], env=env, stdout=log, stderr=log
    )


def test_burst_of_2000_events_with_a_worker_killed_mid_burst(tmp_path):
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    rng = random.Random(7)
    double = CvatDouble(_state(), page_size=100)
    with double.running():
        env = {
            **os.environ,
            "LABELGATE_HOME": str(tmp_path / "home"),
            "LABELGATE_CVAT_HOST": double.url,
            "LABELGATE_CVAT_TOKEN": double.token,
            "LABELGATE_CVAT_WEBHOOK_SECRET": SECRET,
            "LABELGATE_DEBOUNCE_SECONDS": "2",
            "LABELGATE_QUEUE_LEASE": "4",
        }
        env.pop("LABELGATE_QUEUE_URL", None)
        port = free_port()
        log = (tmp_path / "processes.log").open("w")
        server = _start(["serve", "--port", str(port), "--no-worker", "--threads", "8"], env, log)
        workers = [_start(["worker", "--poll", "0.05"], env, log)]
        queue_file = tmp_path / "home" / "queue.db"
        try:
            _wait_http(f"http://127.0.0.1:{port}/healthz", server, tmp_path / "processes.log")
            url = f"http://127.0.0.1:{port}/webhooks/cvat"
            acks = []
            per_wave = JOBS // WAVES
            killed_while = None
            interrupted: set[str] = set()
            for wave in range(WAVES):
                bodies = []
                for jid in range(FIRST_JOB + wave * per_wave, FIRST_JOB + (wave + 1) * per_wave):
                    saves = [
                        cvat_save_event(jid, 10, s)
                        for s in range(EVENTS_PER_JOB - REDELIVERED_PER_JOB)
                    ]
                    bodies += saves + rng.sample(saves, REDELIVERED_PER_JOB)  # redeliveries
                rng.shuffle(bodies)
                acks += fire(url, bodies, SECRET, concurrency=8)
                if wave == 2:
                    # Wave 0's jobs are due by now: kill the worker while it re-scores them.
                    queue = DurableQueue(queue_file)
                    deadline = time.monotonic() + 30
                    while queue.counts().get("running", 0) == 0 and time.monotonic() < deadline:
                        time.sleep(0.01)
                    killed_while = queue.counts()
                    workers[0].send_signal(signal.SIGKILL)
                    workers[0].wait(10)
                    # Usually the job it was running; none if it finished in the last instant.
                    interrupted = {j["target"] for j in queue.jobs("running")}
                    queue.close()
                if wave == 3:
                    workers.append(_start(["worker", "--poll", "0.05"], env, log))
            assert len(acks) == JOBS * EVENTS_PER_JOB == 2000
            assert Counter(a.status for a in acks) == {202: 2000}
            outcomes = Counter(a.outcome for a in acks)
            assert outcomes["duplicate"] == JOBS * REDELIVERED_PER_JOB
            assert outcomes["queued"] == JOBS
            assert killed_while is not None and killed_while.get("running", 0) == 1

            queue = DurableQueue(queue_file)
            deadline = time.monotonic() + 180
            while queue.counts().get("done", 0) < JOBS and time.monotonic() < deadline:
                assert server.poll() is None
                time.sleep(0.2)
            jobs = queue.jobs()
            queue.close()
            metrics = urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        finally:
            for proc in [server, *workers]:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(10)
            log.close()

        # Exactly one re-score per job (its debounce window), covering every accepted event.
        assert [j["status"] for j in jobs] == ["done"] * JOBS, (
            tmp_path / "processes.log"
        ).read_text()[-3000:]
        assert sorted(j["target"] for j in jobs) == [f"job:{FIRST_JOB + k}" for k in range(JOBS)]
        unique = EVENTS_PER_JOB - REDELIVERED_PER_JOB
        assert {j["events"] for j in jobs} == {unique}
        # The job the killed worker held was handed out again: two attempts, one result.
        assert len(interrupted) <= 1
        assert {j["target"]: j["attempts"] for j in jobs} == {
            f"job:{FIRST_JOB + k}": 2 if f"job:{FIRST_JOB + k}" in interrupted else 1
            for k in range(JOBS)
        }
        # Issues are pushed once per error, even for the re-run of the interrupted job.
        per_job = Counter(i["job"] for i in double.state["issues"].values())
        assert per_job == {FIRST_JOB + k: 4 for k in range(JOBS)}
        assert "labelgate_events_received_total 2000" in metrics
        assert f"labelgate_jobs_coalesced_total {JOBS * (unique - 1)}" in metrics
        with open_store(f"sqlite:///{tmp_path / 'home' / 'labelgate.db'}") as store:
            reports = Counter(r.target for r in store.list_reports(kind="cvat_job"))
        assert set(reports) == {f"job:{FIRST_JOB + k}" for k in range(JOBS)}
        assert sum(reports.values()) <= JOBS + 1  # the interrupted run may have stored its report
