"""Re-score jobs survive outages (issue 18): a CVAT save acknowledged while CVAT answers 503 for
hours is still re-scored once CVAT is back, on both queue backends; `labelgate queue` lists and
retries dead jobs; `labelgate worker` with Redis down exits 3 with a message."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from cvat_double_plugin import job_103_issues
from services_plugin import free_port

from labelgate.cli import main
from labelgate.queue.durable import DurableQueue
from labelgate.queue.retry import RetryPolicy
from labelgate_webhook.app import create_app, load_config
from labelgate_webhook.jobs import handlers
from labelgate_webhook.loadgen import cvat_save_event
from labelgate_webhook.signatures import cvat_signature

SECRET = "sek"


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def one_shot_cvat_client(monkeypatch):
    """The CVAT client without its own retries (0.5 + 1 + 2 + 4 s of sleeps per attempt) and
    urllib3's retries of 502/503/504 without their sleeps (~3 s per attempt): the queue's
    retries are under test, on a fake clock."""
    from urllib3.util.retry import Retry

    import labelgate_cvat.client

    monkeypatch.setattr(
        labelgate_cvat.client,
        "connect",
        functools.partial(labelgate_cvat.client.connect, retries=0),
    )
    monkeypatch.setattr(Retry, "_sleep_backoff", lambda self: None)


def _save(app, save: int = 1):
    body = cvat_save_event(job_id=103, task_id=10, save=save)
    headers = {"X-Signature-256": cvat_signature(body, SECRET), "Content-Type": "application/json"}
    return app.test_client().post("/webhooks/cvat", data=body, headers=headers)


def _issues(double) -> int:
    return len([i for i in double.state["issues"].values() if i["job"] == 103])


def test_a_save_acknowledged_during_a_two_hour_cvat_outage_is_rescored_after_it(
    cvat_env, one_shot_cvat_client, tmp_path
):
    # Default settings: 30 s debounce, retries from 5 s doubling to a 300 s cap over 24 h.
    app = create_app(
        {
            "STORE_URL": f"sqlite:///{tmp_path}/s.db",
            "QUEUE_PATH": str(tmp_path / "q.db"),
            "CVAT_WEBHOOK_SECRET": SECRET,
        }
    )
    queue = app.extensions["labelgate_queue"]
    store = app.extensions["labelgate_store"]
    clock = queue.clock = Clock(time.time())
    saved = clock.t
    cvat_env.fail("GET", r"^/api/", 503, times=10**9)  # CVAT is down ...
    assert _save(app).status_code == 202  # ... but the save is acknowledged and queued
    outage_ends = saved + 2 * 3600
    runs: list[float] = []
    bound = handlers(store)
    while queue.counts().get("done", 0) == 0:
        assert queue.counts().get("dead", 0) == 0, queue.jobs()
        if clock.t >= outage_ends:
            cvat_env.faults.clear()  # CVAT is back
        job = queue.run_once(bound)
        if job is None:
            clock.t = queue.jobs()[0]["due"]  # sleep until the next retry
        else:
            runs.append(clock.t - saved)
    first = 30.0  # the debounce
    waits = [5, 10, 20, 40, 80, 160] + [300] * 23  # capped at 300 s
    expected = [first]
    for w in waits:
        expected.append(expected[-1] + w)
    assert runs == expected  # 30 attempts; the old policy gave up after 5 (~49 s)
    assert runs[-2] < 2 * 3600 <= runs[-1] < 2 * 3600 + 300  # re-scored within one cap
    assert _issues(cvat_env) == job_103_issues(cvat_env)
    assert [r.target for r in store.list_reports(source="cvat", kind="cvat_job")] == ["job:103"]
    (job,) = queue.jobs()
    assert job["status"] == "done" and job["attempts"] == 30 and job["error"] is None
    store.close()
    queue.close()


@pytest.mark.redis
def test_a_save_outlasting_rqs_old_retries_is_rescored_through_redis(
    cvat_env, one_shot_cvat_client, tmp_path, redis_db, monkeypatch
):
    from labelgate_webhook.worker import run_rq_worker

    monkeypatch.setenv("LABELGATE_RETRY_BACKOFF", "1")
    monkeypatch.setenv("LABELGATE_RETRY_BACKOFF_MAX", "1")
    app = create_app(
        {
            "STORE_URL": f"sqlite:///{tmp_path}/s.db",
            "QUEUE_URL": redis_db,
            "CVAT_WEBHOOK_SECRET": SECRET,
            "DEBOUNCE_SECONDS": 0.0,
        }
    )
    queue = app.extensions["labelgate_queue"]
    assert queue.policy == RetryPolicy(backoff=1, backoff_max=1, window=86400, max_attempts=3)
    cvat_env.fail("GET", r"^/api/", 503, times=10**9)  # CVAT is down
    assert _save(app).status_code == 202
    rescore = handlers(app.extensions["labelgate_store"])["cvat.rescore"]

    def after_six_attempts(job):  # RQ used to give up after 4 attempts
        if job.attempts > 6:
            cvat_env.faults.clear()  # CVAT is back
        return rescore(job)

    bound = {"cvat.rescore": after_six_attempts}
    deadline = time.monotonic() + 60
    while queue.counts()["done"] == 0:
        assert time.monotonic() < deadline and queue.counts()["dead"] == 0, queue.jobs()
        run_rq_worker(queue, bound, burst=True)
        time.sleep(0.2)
    (job,) = queue.jobs()
    assert job["status"] == "done" and job["attempts"] == 7
    assert _issues(cvat_env) == job_103_issues(cvat_env)
    app.extensions["labelgate_store"].close()
    queue.close()


def test_debounce_max_wait_reaches_the_queue(tmp_path):
    app = create_app(
        {
            "STORE_URL": f"sqlite:///{tmp_path}/s.db",
            "QUEUE_PATH": str(tmp_path / "q.db"),
            "CVAT_WEBHOOK_SECRET": SECRET,
            "DEBOUNCE_SECONDS": 2,
            "DEBOUNCE_MAX_WAIT": 5,
        }
    )
    queue = app.extensions["labelgate_queue"]
    clock = queue.clock = Clock(1000.0)
    for save in range(8):  # a save every second under a 2 s debounce
        assert _save(app, save).status_code == 202
        clock.t += 1
    (job,) = queue.jobs()
    assert job["events"] == 8 and job["due"] == 1005.0  # the first save + 5 s, not 1009
    app.extensions["labelgate_store"].close()
    queue.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LABELGATE_RETRY_WINDOW": "a day"}, r"RETRY_WINDOW.*expected a number"),
        ({"LABELGATE_RETRY_ATTEMPTS": "0"}, r"RETRY_ATTEMPTS: expected an integer >= 1"),
        ({"LABELGATE_QUEUE_RETENTION": "-1"}, r"QUEUE_RETENTION.*expected a number >= 0"),
        ({"LABELGATE_DEBOUNCE_MAX_WAIT": "nan"}, r"DEBOUNCE_MAX_WAIT.*expected a number >= 0"),
    ],
)
def test_bad_durability_settings_are_refused(env, message):
    from labelgate.errors import SettingsError

    with pytest.raises(SettingsError, match=message):
        load_config(env)


def test_queue_settings_from_a_file(tmp_path):
    cfg = tmp_path / "labelgate.toml"
    cfg.write_text("retry_window = 7200\nretry_attempts = 5\nqueue_retention = 3600\n")
    loaded = load_config({"LABELGATE_CONFIG": str(cfg)})
    assert (loaded["RETRY_WINDOW"], loaded["RETRY_ATTEMPTS"], loaded["QUEUE_RETENTION"]) == (
        7200.0,
        5,
        3600.0,
    )


def _dead_queue(path) -> DurableQueue:
    q = DurableQueue(path, policy=RetryPolicy(max_attempts=1))
    q.enqueue("cvat.rescore", "cvat", "job:404")
    q.enqueue("cvat.rescore", "cvat", "job:405")
    q.enqueue("cvat.rescore", "cvat", "job:7", debounce=3600)

    def gone(job):
        raise LookupError(f"CVAT: {job.target} not found (HTTP 404)")

    while q.run_once({"cvat.rescore": gone}) is not None:
        pass
    return q


def test_queue_list_and_retry_on_the_durable_queue(tmp_path, monkeypatch):
    path = tmp_path / "q.db"
    q = _dead_queue(path)
    monkeypatch.setenv("LABELGATE_QUEUE_URL", str(path))
    res = CliRunner().invoke(main, ["queue", "list"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == f"3 job(s) on {path}"
    assert lines[1].startswith("1  dead     cvat job:404  events=1  attempts=1  next=-")
    assert lines[1].endswith("error=LookupError: CVAT: job:404 not found (HTTP 404)")
    assert lines[3].startswith("3  pending  cvat job:7  events=1  attempts=0  next=20")
    res = CliRunner().invoke(main, ["queue", "list", "--status", "dead", "--json"])
    assert [(j["id"], j["status"]) for j in json.loads(res.output)] == [(1, "dead"), (2, "dead")]

    res = CliRunner().invoke(main, ["queue", "retry", "1"])
    assert res.exit_code == 0 and res.output == f"requeued 1 dead job(s) on {path}: 1\n"
    assert [j["status"] for j in q.jobs()] == ["pending", "dead", "pending"]
    for args, message in (
        (["queue", "retry", "1"], "job 1 is pending, not dead"),
        (["queue", "retry", "99"], "no job 99"),
        (["queue", "retry", "x"], "job id 'x' is not a number"),
        (["queue", "retry"], "give a JOB_ID or --all"),
        (["queue", "retry", "2", "--all"], "give a JOB_ID or --all"),
    ):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2 and message in res.output, (args, res.output)
        assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit)
    res = CliRunner().invoke(main, ["queue", "retry", "--all"])
    assert res.exit_code == 0 and res.output.endswith(": 2\n")
    assert q.counts() == {"pending": 3}
    q.close()


@pytest.mark.redis
def test_queue_list_and_retry_on_redis(redis_db, monkeypatch):
    from labelgate.queue.redis_queue import RedisQueue, set_handlers
    from labelgate_webhook.worker import LeasedWorker

    q = RedisQueue(redis_db, policy=RetryPolicy(max_attempts=1))
    q.enqueue("cvat.rescore", "cvat", "job:404")
    set_handlers({"cvat.rescore": lambda job: 1 / 0}, q)
    LeasedWorker([q.rq], connection=q.redis).work(burst=True, logging_level="ERROR")
    (dead,) = q.jobs()
    monkeypatch.setenv("LABELGATE_QUEUE_URL", redis_db)
    res = CliRunner().invoke(main, ["queue", "list"])
    assert res.exit_code == 0, res.output
    assert f"{dead['id']}  dead     cvat job:404" in res.output
    assert "error=ZeroDivisionError: division by zero" in res.output
    res = CliRunner().invoke(main, ["queue", "retry", "--all"])
    assert res.exit_code == 0 and res.output.endswith(f": {dead['id']}\n")
    assert [j["status"] for j in q.jobs()] == ["pending"]
    q.close()


def test_worker_and_queue_commands_with_redis_down_exit_3_without_a_traceback(tmp_path):
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there
    for args in (["worker", "--burst"], ["queue", "list"], ["queue", "retry", "--all"]):
        proc = subprocess.run(
            [sys.executable, "-m", "labelgate.cli", *args, "--queue", url],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                "PATH": "/usr/bin:/bin",
                "LABELGATE_HOME": str(tmp_path / "home"),
                "LABELGATE_STORE_URL": f"sqlite:///{tmp_path}/s.db",
            },
        )
        assert proc.returncode == 3, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout
        assert "Redis queue at redis://127.0.0.1:" in proc.stderr
        assert "unreachable" in proc.stderr and "hunter2" not in proc.stderr
