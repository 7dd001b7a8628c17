"""Bounded concurrent fetching (labelgate.io.fetch): order, bounds and failures."""

from __future__ import annotations

import threading
import time

import pytest

from labelgate.io.fetch import iter_ordered, map_ordered


class _Recorder:
    """A fetch whose answers arrive in reverse order; it counts calls in flight."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.started: list[int] = []

    def __call__(self, key: int) -> str:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.started.append(key)
        time.sleep(0.01 * (self.n - key))  # later keys answer first
        with self.lock:
            self.running -= 1
        return f"r{key}"


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_results_come_back_in_key_order_with_at_most_workers_in_flight(workers):
    fetch = _Recorder(8)
    assert list(iter_ordered(fetch, list(range(8)), workers=workers)) == [f"r{k}" for k in range(8)]
    assert fetch.most <= workers
    if workers > 1:
        assert fetch.most > 1  # the calls did overlap
    assert sorted(fetch.started) == list(range(8))


def test_the_window_bounds_results_fetched_ahead_of_the_consumer():
    fetch = _Recorder(10)
    results = iter_ordered(fetch, list(range(10)), workers=2, ahead=3)
    assert next(results) == "r0"
    time.sleep(0.15)  # long enough for every submitted call to finish
    assert len(fetch.started) <= 4  # 3 in the window, one topped up after r0 was handed over
    assert list(results) == [f"r{k}" for k in range(1, 10)]


def test_the_first_failure_is_raised_and_later_calls_are_not_started():
    started: list[int] = []

    def fetch(key: int) -> int:
        started.append(key)
        if key == 1:
            raise KeyError("job 1 is gone")
        time.sleep(0.02)
        return key

    with pytest.raises(KeyError, match="job 1 is gone"):
        map_ordered(fetch, list(range(50)), workers=2)
    assert len(started) < 50


def test_progress_counts_every_result_and_workers_must_be_positive():
    seen: list[tuple[str, int, int]] = []
    out = map_ordered(
        lambda k: k * k,
        [3, 1, 2],
        workers=3,
        description="pulling",
        on_progress=lambda *a: seen.append(a),
    )
    assert out == [9, 1, 4]
    assert seen == [("pulling", i, 3) for i in range(4)]
    with pytest.raises(ValueError, match="workers=0"):
        list(iter_ordered(str, [1], workers=0))


def test_gc_pause_nests_across_threads_and_restores_the_collector():
    import gc

    from labelgate.io.gc_pause import gc_paused

    assert gc.isenabled()
    inside = threading.Event()
    release = threading.Event()
    states: list[bool] = []

    def other() -> None:
        with gc_paused():
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=other)
    with gc_paused():
        worker.start()
        inside.wait(5)
        states.append(gc.isenabled())
    states.append(gc.isenabled())  # the other thread is still inside: stays off
    release.set()
    worker.join(5)
    states.append(gc.isenabled())  # the last user left: on again
    gc.disable()
    try:
        with gc_paused():
            pass
        states.append(gc.isenabled())  # it was off before: left off
    finally:
        gc.enable()
    assert states == [False, False, True, False]
