"""Redis + RQ queue against a real redis-server: coalescing, redelivery, workers, failures."""

from __future__ import annotations

import time

import pytest
from rq import SimpleWorker

from labelgate.errors import ConnectionFailed, NotFound, ValidationError
from labelgate.queue import open_queue
from labelgate.queue.durable import DurableQueue
from labelgate.queue.redis_queue import RedisQueue, set_handlers
from labelgate.queue.retry import RetryPolicy
from labelgate_webhook.worker import LeasedWorker

pytestmark = pytest.mark.redis


@pytest.fixture()
def queue(redis_db):
    q = RedisQueue(redis_db)
    yield q
    q.close()


def _work(q: RedisQueue, handlers) -> None:
    set_handlers(handlers)
    SimpleWorker([q.rq], connection=q.redis).work(
        burst=True, with_scheduler=True, logging_level="ERROR"
    )


def test_open_queue_picks_the_backend(redis_db, tmp_path):
    assert isinstance(open_queue(redis_db), RedisQueue)
    assert isinstance(open_queue(f"sqlite:///{tmp_path}/q.db"), DurableQueue)
    assert isinstance(open_queue(None, default=tmp_path / "d" / "q.db"), DurableQueue)
    with pytest.raises(ValidationError, match="amqp://x"):
        open_queue("amqp://x")


def test_burst_coalesces_into_one_scheduled_job(queue):
    now = time.time()
    outcomes = [
        queue.enqueue("cvat.rescore", "cvat", "job:7", {"n": i}, debounce=30, now=now + i * 0.1)
        for i in range(50)
    ]
    other = queue.enqueue("cvat.rescore", "cvat", "job:8", debounce=30, now=now)
    assert outcomes[0][1] == "queued" and {o for _, o in outcomes[1:]} == {"coalesced"}
    assert {j for j, _ in outcomes} == {outcomes[0][0]} and other[0] != outcomes[0][0]
    jobs = {j["target"]: j for j in queue.jobs()}
    assert jobs["job:7"]["events"] == 50 and jobs["job:8"]["events"] == 1
    assert queue.counts()["pending"] == 2
    # The due time moved with the last event: 4.9 s after the first, + 30 s debounce.
    due = queue.redis.zscore(queue.rq.scheduled_job_registry.key, outcomes[0][0])
    assert due == pytest.approx(int(now + 4.9 + 30 + 0.999), abs=1)


def test_redelivery_is_a_duplicate(queue):
    first = queue.enqueue("r", "cvat", "job:1", delivery="d-1", debounce=10)
    again = queue.enqueue("r", "cvat", "job:1", delivery="d-1", debounce=10)
    assert first[1] == "queued" and again == (first[0], "duplicate")
    assert [j["events"] for j in queue.jobs()] == [1]


def test_worker_runs_due_jobs_once_with_the_latest_payload(queue):
    ran = []
    for i in range(5):
        queue.enqueue("test.record", "cvat", "job:1", {"n": i}, debounce=1)
    queue.enqueue("test.record", "cvat", "job:2", {"n": 9})  # no debounce: straight to RQ
    time.sleep(2.1)
    _work(queue, {"test.record": lambda job: ran.append((job.target, job.payload, job.events))})
    assert sorted(ran) == [("job:1", {"n": 4}, 5), ("job:2", {"n": 9}, 1)]
    # Changed for issue 18: `failed` is a job waiting for a retry, `dead` one given up.
    assert queue.counts() == {"pending": 0, "failed": 0, "running": 0, "dead": 0, "done": 2}
    assert queue.stats()["done"] == 2
    assert [j["status"] for j in queue.jobs()] == ["done", "done"]


def test_an_event_after_the_job_started_is_not_folded_into_it(queue):
    queue.enqueue("test.record", "cvat", "job:3", debounce=1)
    time.sleep(2.1)
    seen = []

    def handler(job):
        # An annotation saved while the re-score runs must cause another re-score.
        seen.append(job.events)
        if len(seen) == 1:
            assert queue.enqueue("test.record", "cvat", "job:3", debounce=1)[1] == "queued"

    _work(queue, {"test.record": handler})
    time.sleep(2.1)
    _work(queue, {"test.record": handler})
    assert seen == [1, 1]


def test_a_failing_handler_is_recorded_and_retried_later(queue):
    queue.enqueue("test.boom", "cvat", "job:4")

    failed_at = []

    def boom(job):
        failed_at.append(time.time())
        raise RuntimeError("CVAT down")

    _work(queue, {"test.boom": boom})
    assert queue.stats()["failed"] == 1
    # RQ keeps it for a retry in 5 s (scheduled), not in the failed registry (dead) yet.
    # Changed for issue 18: such a job is listed as `failed` (it was `pending`).
    assert queue.counts()["failed"] == 1 and queue.counts()["pending"] == 0
    assert queue.counts()["dead"] == 0
    (job,) = queue.jobs()
    assert job["error"] == "RuntimeError: CVAT down" and job["status"] == "failed"
    assert job["due"] == pytest.approx(failed_at[0] + 5, abs=1)  # RQ counts whole seconds


def test_unknown_job_name_fails_with_a_clear_message(queue):
    queue.enqueue("nobody.handles", "cvat", "job:5")
    _work(queue, {})
    assert "no handler registered for job 'nobody.handles'" in queue.jobs()[0]["error"]


def test_concurrent_producers_start_one_job_per_target(redis_db):
    import threading
    from collections import Counter

    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    rounds, producers = 30, 8
    barrier = threading.Barrier(producers)

    def produce(k: int) -> None:
        q = RedisQueue(redis_db)  # one client per thread, as separate web processes would be
        for r in range(rounds):
            barrier.wait()  # every producer's first event for a new target at the same moment
            _, outcome = q.enqueue("r", "cvat", f"job:{r}", debounce=30, delivery=f"{k}-{r}")
            with lock:
                outcomes[outcome] += 1
        q.close()

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == {"queued": rounds, "coalesced": rounds * (producers - 1)}
    check = RedisQueue(redis_db)
    assert sorted(j["events"] for j in check.jobs()) == [producers] * rounds
    check.close()


def test_a_delivery_that_failed_to_queue_is_not_a_duplicate_later(queue, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("redis went away")

    monkeypatch.setattr(queue, "_create", broken)
    with pytest.raises(ConnectionError):
        queue.enqueue("r", "cvat", "job:1", delivery="d-9", debounce=5)
    monkeypatch.undo()
    assert queue.enqueue("r", "cvat", "job:1", delivery="d-9", debounce=5)[1] == "queued"


def _work_until(q: RedisQueue, handlers, done, timeout: float = 60.0) -> None:
    """Burst workers (scheduler included) until ``done()``, as cron-started workers would."""
    set_handlers(handlers, q)
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, q.jobs()
        LeasedWorker([q.rq], connection=q.redis).work(
            burst=True, with_scheduler=True, logging_level="ERROR"
        )
        time.sleep(0.2)


def test_a_job_outlasting_the_old_retry_budget_runs_when_upstream_is_back(redis_db):
    q = RedisQueue(redis_db, policy=RetryPolicy(backoff=1, backoff_max=1, window=3600))
    q.enqueue("r", "cvat", "job:1")
    attempts = []

    def flaky(job):
        attempts.append(job.attempts)
        if len(attempts) <= 6:  # RQ gave up after 4 attempts before
            raise ConnectionFailed("CVAT: job 1 failed with HTTP 503")

    _work_until(q, {"r": flaky}, lambda: q.counts()["done"] == 1)
    assert attempts == [1, 2, 3, 4, 5, 6, 7]
    (job,) = q.jobs()
    assert job["status"] == "done" and job["error"] is None
    assert q.counts() == {"pending": 0, "failed": 0, "running": 0, "dead": 0, "done": 1}
    q.close()


def test_a_permanent_failure_goes_dead_and_is_retried_by_hand(redis_db):
    q = RedisQueue(redis_db, policy=RetryPolicy(backoff=1, max_attempts=2))
    q.enqueue("r", "cvat", "job:1")
    q.enqueue("r", "cvat", "job:2")
    gone = {"job:1", "job:2"}

    def handler(job):
        if job.target in gone:
            raise NotFound(f"CVAT: {job.target} not found (HTTP 404)")

    _work_until(q, {"r": handler}, lambda: q.counts()["dead"] == 2)
    jobs = q.jobs()
    assert [(j["status"], j["attempts"]) for j in jobs] == [("dead", 2), ("dead", 2)]
    assert "HTTP 404" in jobs[0]["error"]
    with pytest.raises(ValidationError, match="no job lg-nope"):
        q.retry_dead("lg-nope")
    gone.clear()  # fixed upstream
    assert q.retry_dead(jobs[0]["id"]) == [jobs[0]["id"]]
    assert q.counts()["pending"] == 1 and q.jobs()[0]["attempts"] == 0
    _work_until(q, {"r": handler}, lambda: q.counts()["done"] == 1)
    with pytest.raises(ValidationError, match="is done, not dead"):
        q.retry_dead(jobs[0]["id"])
    assert q.retry_dead() == [jobs[1]["id"]]
    _work_until(q, {"r": handler}, lambda: q.counts()["done"] == 2)
    assert q.counts()["dead"] == 0
    q.close()


def test_debounce_has_a_maximum_wait(queue):
    now = 1_000_000_000.0  # in 2001: the due times are asserted, nothing runs
    for second in range(20):  # a save every second under a 30 s debounce
        queue.enqueue("r", "cvat", "job:1", debounce=30, max_wait=10, now=now + second)
        due = queue.redis.zscore(queue.rq.scheduled_job_registry.key, queue.jobs()[0]["id"])
        # Pushed back by every save until the first save + 10 s, then held there.
        assert due == min(now + second + 30, now + 10)
    assert [j["events"] for j in queue.jobs()] == [20]


#: Long enough that a heartbeat every third of it survives a loaded 2-core CI machine.
_LEASE = 3.0


def _slow_worker(url: str, seconds: float) -> None:
    q = RedisQueue(url, lease=_LEASE)
    set_handlers({"slow": lambda job: time.sleep(seconds)}, q)
    worker = LeasedWorker([q.rq], connection=q.redis)
    worker.lease = q.lease
    worker.work(burst=True, logging_level="ERROR")


def _wait_started(q: RedisQueue) -> None:
    deadline = time.monotonic() + 20
    while q.rq.started_job_registry.count != 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_long_job_keeps_its_lease_and_a_dead_workers_job_runs_again(redis_db):
    import multiprocessing as mp
    import os
    import signal

    ctx = mp.get_context("fork")
    q = RedisQueue(redis_db, lease=_LEASE)
    q.enqueue("slow", "cvat", "job:1")
    long = ctx.Process(target=_slow_worker, args=(redis_db, 2.5 * _LEASE))  # outlives 2 leases
    long.start()
    try:
        _wait_started(q)
        while long.is_alive():  # what other workers' clean-up does, all the time
            q.rq.started_job_registry.cleanup()
            assert q.counts()["pending"] == 0  # never handed out again while it runs
            time.sleep(0.1)
    finally:
        long.join(10)
        if long.is_alive():
            long.kill()
            long.join()
    assert long.exitcode == 0
    assert q.counts()["done"] == 1 and q.jobs()[0]["attempts"] == 1

    q.enqueue("slow", "cvat", "job:2")
    doomed = ctx.Process(target=_slow_worker, args=(redis_db, 3600))
    doomed.start()
    try:
        _wait_started(q)
        # RQ registers the job as started a moment before our job function counts the attempt:
        # kill only once the attempt is on record, or the kill lands in between.
        deadline = time.monotonic() + 20
        while [j["attempts"] for j in q.jobs() if j["target"] == "job:2"] != [1]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.join()
    time.sleep(_LEASE + 0.5)  # its lease runs out
    q.rq.started_job_registry.cleanup()
    assert q.counts()["pending"] == 1  # handed out again
    _work_until(q, {"slow": lambda job: None}, lambda: q.counts()["done"] == 2)
    assert [j["attempts"] for j in q.jobs() if j["target"] == "job:2"] == [2]
    q.close()


def test_delivery_ids_and_finished_jobs_expire_after_the_retention(redis_db):
    q = RedisQueue(redis_db, retention=50)
    job_id, _ = q.enqueue("r", "cvat", "job:1", delivery="d-1")
    dkey = f"labelgate:queue:{q.name}:delivery:d-1"
    assert 0 < q.redis.ttl(dkey) <= 50
    _work_until(q, {"r": lambda job: None}, lambda: q.counts()["done"] == 1)
    assert 0 < q.redis.ttl(q._info_prefix() + job_id) <= 50  # the listing forgets it then
    assert 0 < q.redis.ttl(f"rq:job:{job_id}") <= 50  # RQ's result_ttl
    q.close()
