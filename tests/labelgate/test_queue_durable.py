"""Durable queue: coalescing with debounce, idempotent redelivery, restart, leases, retries."""

import threading
import time

import pytest

from labelgate.errors import ConnectionFailed, NotFound, ValidationError
from labelgate.queue.durable import DurableQueue
from labelgate.queue.retry import RetryPolicy


class Clock:
    """A settable time source."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def queue(tmp_path):
    q = DurableQueue(tmp_path / "q.db", lease=30)
    yield q
    q.close()


def test_burst_coalesces_into_one_job_after_the_debounce(queue):
    for i in range(50):
        queue.enqueue("rescore", "cvat", "job:7", {"n": i}, debounce=5, now=100 + i * 0.1)
    queue.enqueue("rescore", "cvat", "job:8", debounce=5, now=101)
    assert [j["events"] for j in queue.jobs()] == [50, 1]
    assert queue.claim(now=106) is not None  # job:8 is due at 106
    assert queue.claim(now=106) is None  # job:7 is due at 104.9 + 5 = 109.9
    job = queue.claim(now=110)
    assert job.target == "job:7" and job.payload == {"n": 49} and job.events == 50


def test_redelivery_is_a_duplicate(queue):
    first = queue.enqueue("rescore", "cvat", "job:1", delivery="d-1", now=0)
    again = queue.enqueue("rescore", "cvat", "job:1", delivery="d-1", now=1)
    assert first[1] == "queued" and again == (first[0], "duplicate")
    assert queue.jobs()[0]["events"] == 1


def test_pending_work_survives_a_restart(tmp_path):
    q = DurableQueue(tmp_path / "q.db")
    q.enqueue("rescore", "labelstudio", "project:3", now=0)
    q.close()
    again = DurableQueue(tmp_path / "q.db")
    job = again.claim(now=1)
    assert job.target == "project:3"
    again.close()


def test_a_dead_workers_job_is_handed_out_again_after_its_lease(queue):
    queue.enqueue("rescore", "cvat", "job:2", now=0)
    assert queue.claim(now=1).attempts == 1
    assert queue.claim(now=10) is None  # leased until 31
    assert queue.claim(now=32).attempts == 2


def test_permanent_failures_retry_with_backoff_then_go_dead(tmp_path, caplog):
    clock = Clock(1000.0)
    q = DurableQueue(tmp_path / "q.db", policy=RetryPolicy(backoff=2, max_attempts=2), clock=clock)
    q.enqueue("boom", "cvat", "job:9")
    ran = []

    def boom(job):
        ran.append(job.attempts)
        raise RuntimeError("bad data")

    q.run_once({"boom": boom})
    (job,) = q.jobs()
    # Changed for issue 18: a job waiting for its retry is listed as `failed`, with its next run.
    assert job["status"] == "failed" and job["error"] == "RuntimeError: bad data"
    assert job["due"] == 1002.0  # the first retry waits `backoff` seconds
    assert q.run_once({"boom": boom}) is None  # not due yet
    clock.t = 1002.0
    q.run_once({"boom": boom})
    assert q.jobs()[0]["status"] == "dead" and ran == [1, 2]  # gave up after 2 attempts
    assert [r.getMessage() for r in caplog.records] == [
        "job 1 (cvat job:9) failed: RuntimeError: bad data; next attempt in 2 s",
        "job 1 (cvat job:9) failed: RuntimeError: bad data; dead",
    ]
    clock.t = 10**10
    assert q.run_once({"boom": boom}) is None  # a dead job is never run again by itself
    assert q.counts() == {"dead": 1} and q.stats()["failed"] == 2
    q.close()


def test_transient_failures_back_off_capped_over_the_window_then_go_dead(tmp_path):
    clock = Clock(0.0)
    policy = RetryPolicy(backoff=5, backoff_max=300, window=3600, max_attempts=3)
    q = DurableQueue(tmp_path / "q.db", policy=policy, clock=clock)
    q.enqueue("r", "cvat", "job:1")
    runs: list[float] = []

    def down(job):
        runs.append(clock.t)
        raise ConnectionFailed("CVAT: job 1 failed with HTTP 503")

    while q.counts().get("dead", 0) == 0:
        if q.run_once({"r": down}) is None:
            clock.t = q.jobs()[0]["due"]  # jump to the next retry
    # 5, 10, 20 ... doubling up to the 300 s cap, until the first run is an hour old.
    assert runs == [0, 5, 15, 35, 75, 155, 315, *range(615, 3616, 300)]
    assert len(runs) == 18 > 5  # the old policy gave up after 5 attempts
    assert "HTTP 503" in q.jobs()[0]["error"]
    q.close()


def test_an_abandoned_job_counts_as_a_transient_failure(tmp_path):
    clock = Clock(0.0)
    q = DurableQueue(tmp_path / "q.db", lease=10, policy=RetryPolicy(window=100), clock=clock)
    q.enqueue("r", "cvat", "job:1")
    assert q.claim() is not None  # its worker dies: the lease runs out at 10
    clock.t = 11
    again = q.claim()
    assert again.attempts == 2 and "lease expired" in q.jobs()[0]["error"]
    clock.t = 200  # still never finished, and the window since the first loss (10) is over
    assert q.claim() is None and q.jobs()[0]["status"] == "dead"
    q.close()


def test_a_new_event_brings_a_waiting_retry_forward(tmp_path):
    clock = Clock(0.0)
    q = DurableQueue(tmp_path / "q.db", policy=RetryPolicy(backoff=300), clock=clock)
    q.enqueue("r", "cvat", "job:1")

    def down(job):
        raise ConnectionFailed("CVAT down")

    q.run_once({"r": down})
    assert q.jobs()[0]["due"] == 300
    clock.t = 10  # CVAT sent a save: it is up again
    assert q.enqueue("r", "cvat", "job:1", debounce=2)[1] == "coalesced"
    assert q.jobs()[0]["due"] == 12 and q.jobs()[0]["events"] == 2
    clock.t = 250  # another save must not push the retry later than it was
    q.enqueue("r", "cvat", "job:1", debounce=100)
    assert q.jobs()[0]["due"] == 12
    q.close()


def test_debounce_has_a_maximum_wait(tmp_path):
    q = DurableQueue(tmp_path / "q.db")
    claimed = []
    for second in range(31):  # a save every second under a 2 s debounce, for 30 s
        q.enqueue("r", "cvat", "job:1", {"n": second}, debounce=2, max_wait=10, now=second)
        job = q.claim(now=second)
        if job is not None:
            claimed.append((second, job.events, job.payload["n"]))
            q.complete(job, now=second)
    # Without the cap nothing would run before the saves stop; with it, one run per 10 s at
    # most: the first job (saves 0..10) at 10, the next (11..21) at 21, then (22..30) not yet.
    assert claimed == [(10, 11, 10), (21, 11, 21)]
    (waiting,) = q.jobs("pending")
    assert waiting["events"] == 9 and waiting["due"] == 32  # the saves stopped: 30 + 2
    q.close()


def test_a_long_job_keeps_its_lease_and_is_never_handed_out_twice(tmp_path):
    path = tmp_path / "q.db"
    q = DurableQueue(path, lease=0.6)  # renewed every 0.2 s while the job runs
    q.enqueue("slow", "cvat", "job:1")
    ran = []
    running = threading.Event()
    worker = threading.Thread(
        target=q.run_once,
        args=({"slow": lambda job: (ran.append(1), running.set(), time.sleep(2.0))},),
    )
    worker.start()
    assert running.wait(20)
    other = DurableQueue(path, lease=0.6)
    stolen = []
    while worker.is_alive():  # 2 s: more than three leases
        job = other.claim()
        if job is not None:
            stolen.append(job)
        time.sleep(0.05)
    worker.join()
    assert stolen == [] and ran == [1]
    assert q.jobs()[0]["status"] == "done" and q.jobs()[0]["attempts"] == 1
    other.close()
    q.close()


def _run_forever(path):
    q = DurableQueue(path, lease=0.6)
    q.run_once({"hang": lambda job: time.sleep(3600)})


def test_a_killed_workers_lease_still_expires(tmp_path):
    import multiprocessing as mp
    import os
    import signal

    path = tmp_path / "q.db"
    q = DurableQueue(path, lease=0.6)
    q.enqueue("hang", "cvat", "job:1")
    proc = mp.get_context("fork").Process(target=_run_forever, args=(path,))
    proc.start()
    try:
        deadline = time.monotonic() + 20
        while q.jobs()[0]["status"] != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(1.5)  # 2.5 leases: renewed by the worker's heartbeat
        assert q.claim() is None
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    time.sleep(0.7)  # one lease after the last heartbeat at most
    job = q.claim()
    assert job is not None and job.attempts == 2
    q.close()


def test_dead_jobs_are_retried_by_hand_with_a_fresh_budget(tmp_path):
    q = DurableQueue(tmp_path / "q.db", policy=RetryPolicy(max_attempts=1))
    for target in ("job:1", "job:2", "job:3"):
        q.enqueue("r", "cvat", target)

    def gone(job):
        raise NotFound(f"CVAT: {job.target} not found (HTTP 404)")

    while q.run_once({"r": gone}) is not None:
        pass
    assert q.counts() == {"dead": 3}
    with pytest.raises(ValidationError, match="no job 99"):
        q.retry_dead(99)
    with pytest.raises(ValidationError, match="'x' is not a number"):
        q.retry_dead("x")
    assert q.retry_dead("1") == [1]
    assert q.jobs()[0] | {"due": None} == {
        "id": 1,
        "name": "r",
        "system": "cvat",
        "target": "job:1",
        "status": "pending",
        "events": 1,
        "attempts": 0,
        "error": None,
        "due": None,
    }
    q.run_once({"r": lambda job: None})
    with pytest.raises(ValidationError, match="job 1 is done, not dead"):
        q.retry_dead(1)
    assert q.retry_dead() == [2, 3]
    assert q.retry_dead() == []
    assert q.counts() == {"done": 1, "pending": 2}
    q.close()


def test_done_jobs_and_deliveries_are_pruned_after_the_retention(tmp_path):
    clock = Clock(0.0)
    day = 24 * 3600.0
    q = DurableQueue(
        tmp_path / "q.db", policy=RetryPolicy(max_attempts=1), retention=7 * day, clock=clock
    )
    q.enqueue("ok", "cvat", "job:1", delivery="d-1")
    q.enqueue("boom", "cvat", "job:2", delivery="d-2")
    handlers = {"ok": lambda job: None, "boom": lambda job: 1 / 0}
    q.run_once(handlers)
    q.run_once(handlers)  # job:1 done at 0, job:2 dead at 0
    clock.t = 3 * day
    q.enqueue("ok", "cvat", "job:3", delivery="d-3")
    q.run_once(handlers)  # done at 3 days
    clock.t = 8 * day
    stats = q.stats()
    assert q.prune() == 1  # job:1 is over 7 days old; job:3 is 5 days old; dead jobs stay
    assert [(j["target"], j["status"]) for j in q.jobs()] == [("job:2", "dead"), ("job:3", "done")]
    assert q.stats() == stats  # the run counters do not go backwards
    # Delivery ids older than the retention are forgotten: a redelivery now queues again.
    assert q.enqueue("ok", "cvat", "job:1", delivery="d-1")[1] == "queued"
    assert q.enqueue("ok", "cvat", "job:3", delivery="d-3")[1] == "duplicate"
    q.close()


def test_the_queue_commits_with_synchronous_full(tmp_path):
    q = DurableQueue(tmp_path / "q.db")
    # 2 = FULL: the WAL is synced at every commit, so an acknowledged event survives a power
    # loss (NORMAL, 1, syncs only at checkpoints).
    assert q._conn().execute("PRAGMA synchronous").fetchone() == (2,)
    q.close()


def test_two_workers_never_run_the_same_job(tmp_path):
    path = tmp_path / "q.db"
    q = DurableQueue(path)
    for i in range(40):
        q.enqueue("work", "cvat", f"job:{i}", now=0)
    done: list[str] = []
    lock = threading.Lock()

    def worker():
        wq = DurableQueue(path)
        while (
            wq.run_once({"work": lambda j: (lock.acquire(), done.append(j.target), lock.release())})
            is not None
        ):
            pass
        wq.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(done) == sorted(f"job:{i}" for i in range(40))
    assert q.counts() == {"done": 40}
    q.close()


def _open_queue_file(path, barrier, errors):
    barrier.wait()
    try:
        DurableQueue(path).close()
    except Exception as exc:
        errors.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("old_file", [False, True], ids=["new-file", "file-without-started"])
def test_processes_opening_one_file_together_all_succeed(tmp_path, old_file):
    import multiprocessing as mp
    import sqlite3

    ctx = mp.get_context("fork")
    errors = ctx.Queue()
    for k in range(6):
        path = tmp_path / f"q-{k}.db"
        if old_file:  # a queue file from before the `started` column
            conn = sqlite3.connect(path)
            conn.executescript(
                "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "
                "system TEXT NOT NULL, target TEXT NOT NULL, payload TEXT NOT NULL, "
                "status TEXT NOT NULL DEFAULT 'pending', not_before REAL NOT NULL, "
                "leased_until REAL, attempts INTEGER NOT NULL DEFAULT 0, "
                "events INTEGER NOT NULL DEFAULT 1, error TEXT, created REAL NOT NULL, "
                "finished REAL);"
            )
            conn.close()
        barrier = ctx.Barrier(4)
        procs = [
            ctx.Process(target=_open_queue_file, args=(path, barrier, errors)) for _ in range(4)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
        q = DurableQueue(path)
        q.enqueue("r", "cvat", "job:1", now=0)
        assert q.claim(now=1) is not None  # the `started` column is there
        q.close()
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == []
    errors.close()
    errors.join_thread()


def test_a_worker_outlives_queue_file_errors(tmp_path, monkeypatch, caplog):
    import sqlite3

    from labelgate_webhook.worker import run_worker

    q = DurableQueue(tmp_path / "q.db")
    q.enqueue("r", "cvat", "job:1")
    real_claim = q.claim
    failures = iter([sqlite3.OperationalError("database or disk is full")])

    def claim(now=None):
        for exc in failures:
            raise exc
        return real_claim(now)

    monkeypatch.setattr(q, "claim", claim)
    ran = []
    run_worker(q, {"r": lambda job: ran.append(job.target)}, threading.Event(), 0.01, burst=True)
    assert ran == ["job:1"] and q.counts() == {"done": 1}
    assert "database or disk is full; trying again" in caplog.text
    q.close()


def test_an_older_queue_files_given_up_jobs_become_dead(tmp_path):
    import sqlite3

    path = tmp_path / "q.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "
        "system TEXT NOT NULL, target TEXT NOT NULL, payload TEXT NOT NULL, "
        "status TEXT NOT NULL DEFAULT 'pending', not_before REAL NOT NULL, "
        "leased_until REAL, attempts INTEGER NOT NULL DEFAULT 0, "
        "events INTEGER NOT NULL DEFAULT 1, error TEXT, created REAL NOT NULL, "
        "finished REAL, started REAL);"
        "INSERT INTO jobs (name, system, target, payload, status, not_before, attempts, error, "
        "created) VALUES ('r', 'cvat', 'job:1', '{}', 'failed', 0, 5, 'HTTP 503', 0);"
    )
    conn.close()
    q = DurableQueue(path)
    assert [(j["status"], j["error"]) for j in q.jobs()] == [("dead", "HTTP 503")]
    assert q.retry_dead(1) == [1] and q.claim().attempts == 1
    q.close()
