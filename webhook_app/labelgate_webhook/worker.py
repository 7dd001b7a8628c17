"""The worker loop: claim due jobs from the durable queue and run them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from labelgate.queue.durable import DurableQueue, Job


def run_worker(
    queue: DurableQueue,
    handlers: dict[str, Callable[[Job], Any]],
    stop: threading.Event,
    poll: float = 0.5,
) -> None:
    """Run jobs until ``stop`` is set; sleeps ``poll`` seconds when nothing is due."""
    while not stop.is_set():
        if queue.run_once(handlers) is None:
            stop.wait(poll)


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
