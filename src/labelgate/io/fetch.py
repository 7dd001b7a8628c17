"""Bounded concurrent fetching for the live adapters (jobs of a CVAT task, pages of a project).

Network reads spend their time waiting on the server, so a few threads overlap them. Results
come back in the order of the inputs whatever order the answers arrive in, and the caller
consumes them in its own thread (conversion, warnings and progress stay deterministic) while
the next ones download. The first failure cancels the calls not yet started and is raised as is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

K = TypeVar("K")
T = TypeVar("T")

#: ``(description, done, total)``: the shape of :meth:`labelgate.cli.progress.Steps.callback`.
Progress = Callable[[str, int, int], None]


def iter_ordered(
    fn: Callable[[K], T], keys: Sequence[K], *, workers: int = 4, ahead: int | None = None
) -> Generator[T, None, None]:
    """``fn(k) for k in keys`` on up to ``workers`` threads, yielded in the order of ``keys``.

    Args:
        fn: the fetch (must be safe to call from several threads at once).
        keys: what to fetch.
        workers: most calls in flight at once (1 runs them one after another in this thread).
        ahead: most results fetched but not yet consumed (default ``2 * workers``), which
            bounds the memory held by downloaded payloads.

    Yields:
        One result per key, in the order of ``keys``.

    Raises:
        ValueError: ``workers`` < 1.
        Exception: the first exception a call raised, when its result is reached.
    """
    if workers < 1:
        raise ValueError(f"workers={workers}: at least 1 needed")
    if workers == 1 or len(keys) <= 1:
        for key in keys:
            yield fn(key)
        return
    window = max(workers, ahead if ahead is not None else 2 * workers)
    pool = ThreadPoolExecutor(max_workers=min(workers, len(keys)))
    queued: deque[Future[T]] = deque()
    todo = iter(keys)
    try:
        for key in todo:
            queued.append(pool.submit(fn, key))
            if len(queued) >= window:
                break
        while queued:
            result = queued.popleft().result()
            for key in todo:  # top the window up before handing the result over
                queued.append(pool.submit(fn, key))
                break
            yield result
    finally:
        for fut in queued:
            fut.cancel()
        pool.shutdown(wait=True)


def map_ordered(
    fn: Callable[[K], T],
    keys: Sequence[K],
    *,
    workers: int = 4,
    description: str = "fetching",
    on_progress: Progress | None = None,
) -> list[T]:
    """:func:`iter_ordered` collected into a list, reporting progress after each result.

    Args:
        fn, keys, workers: as :func:`iter_ordered`.
        description: progress text.
        on_progress: called with ``(description, done, total)``, first with ``done=0``.

    Returns:
        The results, one per key, in the order of ``keys``.
    """
    total = len(keys)
    if on_progress is not None:
        on_progress(description, 0, total)
    out = []
    for result in iter_ordered(fn, keys, workers=workers, ahead=total):
        out.append(result)
        if on_progress is not None:
            on_progress(description, len(out), total)
    return out
