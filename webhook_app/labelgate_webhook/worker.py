"""Worker loops: the durable queue's (claim due jobs and run them) and the RQ worker's."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from labelgate.queue.durable import DurableQueue, Job
from labelgate.queue.redis_queue import RedisQueue


def run_worker(
    queue: DurableQueue,
    handlers: dict[str, Callable[[Job], Any]],
    stop: threading.Event,
    poll: float = 0.5,
    *,
    burst: bool = False,
) -> None:
    """Run jobs until ``stop`` is set (or, with ``burst``, none is due); sleeps ``poll`` when idle."""
    while not stop.is_set():
        if queue.run_once(handlers) is None:
            if burst:
                return
            stop.wait(poll)


def run_rq_worker(
    queue: RedisQueue, handlers: dict[str, Callable[[Job], Any]], *, burst: bool = False
) -> None:
    """Work the Redis queue with RQ (the scheduler included, which releases debounced jobs).

    A ``SimpleWorker`` runs jobs in this process, so the handlers (and their store connection)
    registered here are the ones used.
    """
    from rq import SimpleWorker

    from labelgate.queue.redis_queue import set_handlers

    set_handlers(handlers)
    worker = SimpleWorker([queue.rq], connection=queue.redis)
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
