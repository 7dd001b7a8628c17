"""Redis + RQ queue against a real redis-server: coalescing, redelivery, workers, failures."""

from __future__ import annotations

import time

import pytest
from rq import SimpleWorker

from labelgate.errors import ValidationError
from labelgate.queue import open_queue
from labelgate.queue.durable import DurableQueue
from labelgate.queue.redis_queue import RedisQueue, set_handlers

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
    assert queue.counts() == {"pending": 0, "running": 0, "done": 2, "failed": 0}
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

    def boom(job):
        raise RuntimeError("CVAT down")

    _work(queue, {"test.boom": boom})
    assert queue.stats()["failed"] == 1
    # RQ keeps it for a retry in 5 s (scheduled), not in the failed registry yet.
    assert queue.counts()["failed"] == 0 and queue.counts()["pending"] == 1
    assert queue.jobs()[0]["error"] == "RuntimeError: CVAT down"


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
