"""Durable queue: coalescing with debounce, idempotent redelivery, restart, leases, retries."""

import threading

import pytest

from labelgate.queue.durable import DurableQueue


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


def test_failures_retry_with_backoff_then_give_up(tmp_path):
    q = DurableQueue(tmp_path / "q.db", max_attempts=2)
    q.enqueue("boom", "cvat", "job:9", now=0)
    ran = []

    def boom(job):
        ran.append(job.attempts)
        raise RuntimeError("server down")

    q.run_once({"boom": boom})
    assert q.jobs()[0]["status"] == "pending" and "server down" in q.jobs()[0]["error"]
    assert q.claim() is None  # the retry is due 2**1 s later
    job = q.claim(now=10**10)
    q.fail(job.id, "still down", job.attempts)
    assert q.jobs()[0]["status"] == "failed" and ran == [1]
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
