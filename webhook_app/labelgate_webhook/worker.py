"""Worker loops: the durable queue's (claim due jobs and run them) and the RQ worker's."""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from rq import SimpleWorker
from rq.job_lifecycle import call_exception_handlers
from rq.worker import WorkerStatus

from labelgate.queue.durable import DurableQueue, Job
from labelgate.queue.redis_queue import RedisQueue

log = logging.getLogger("labelgate.worker")
PRUNE_EVERY = 60.0  # seconds between prunes of done jobs by a durable-queue worker


def run_worker(
    queue: DurableQueue,
    handlers: dict[str, Callable[[Job], Any]],
    stop: threading.Event,
    poll: float = 0.5,
    *,
    burst: bool = False,
) -> None:
    """Run jobs until ``stop`` is set (or, with ``burst``, none is due); sleeps ``poll`` when idle.

    Also prunes done jobs past the queue's retention, on start and every ``PRUNE_EVERY`` seconds.
    """
    pruned = float("-inf")
    while not stop.is_set():
        try:
            if time.monotonic() - pruned >= PRUNE_EVERY:
                queue.prune()
                pruned = time.monotonic()
            job = queue.run_once(handlers)
        except sqlite3.Error as exc:
            # The queue file is locked for long, read-only or its disk full: the jobs are still
            # in it (a claimed one is handed out again when its lease runs out), so keep going.
            log.warning("queue %s: %s: %s; trying again", queue.path, type(exc).__name__, exc)
            stop.wait(max(poll, 1.0))
            continue
        if job is None:
            if burst:
                return
            stop.wait(poll)


class LeasedWorker(SimpleWorker):
    """RQ's in-process worker with a lease: the running job's started-registry entry lives
    ``lease`` seconds and is renewed every ``lease / 3`` seconds by a heartbeat thread.

    RQ's ``SimpleWorker`` sets that entry once, for the job timeout + 60 s, so a dead worker's
    job was retried only an hour later; RQ's forking worker renews it from its parent process,
    which an in-process worker does not have.
    """

    lease: float = 300.0

    def get_heartbeat_ttl(self, job: Any, working_time: float = 0.0) -> int:
        return max(1, math.ceil(self.lease))  # RQ's registries count whole seconds

    def execute_job(self, job: Any, queue: Any) -> None:
        execution = self.prepare_execution(job)
        done = threading.Event()
        beat = threading.Thread(
            target=self._renew, args=(job, execution, done), name="labelgate-lease", daemon=True
        )
        beat.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            done.set()
            beat.join()
        self.set_state(WorkerStatus.IDLE)

    def handle_exception(self, job: Any, *exc_info: Any) -> None:
        # One line, not RQ's traceback: during an outage every retry fails the same way, and the
        # error is kept with the job (`labelgate queue list`).
        self.log.warning(
            "job %s (%s) failed: %s: %s", job.id, job.description, exc_info[0].__name__, exc_info[1]
        )
        call_exception_handlers(self._exc_handlers, job, *exc_info)

    def _renew(self, job: Any, execution: Any, done: threading.Event) -> None:
        import redis

        while not done.wait(self.lease / 3):
            try:
                self.maintain_heartbeats(job, execution)
            except redis.exceptions.RedisError:  # Redis away for a moment: next beat
                continue


def run_rq_worker(
    queue: RedisQueue, handlers: dict[str, Callable[[Job], Any]], *, burst: bool = False
) -> None:
    """Work the Redis queue with RQ (the scheduler included, which releases debounced jobs).

    A :class:`LeasedWorker` runs jobs in this process, so the handlers (and their store
    connection) registered here are the ones used, with ``queue``'s retry policy; it looks for
    abandoned jobs every ``queue.lease`` seconds.

    Raises:
        ConnectionFailed: Redis does not answer at start.
    """
    from labelgate.queue.redis_queue import set_handlers

    queue.ping()
    set_handlers(handlers, queue)
    worker = LeasedWorker(
        [queue.rq], connection=queue.redis, maintenance_interval=max(1, math.ceil(queue.lease))
    )
    worker.lease = queue.lease
    worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")


def start_in_process(
    queue: DurableQueue, handlers: dict[str, Callable[[Job], Any]], poll: float = 0.5
) -> tuple[threading.Thread, threading.Event]:
    """The embedded default: one daemon worker thread next to the web app."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker, args=(queue, handlers, stop, poll), name="labelgate-worker", daemon=True
    )
    thread.start()
    return thread, stop
