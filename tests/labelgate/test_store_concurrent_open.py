"""Processes that start together (serve + workers) may all create the SQLite store at once."""

import multiprocessing as mp

from labelgate.store import open_store


def _open(url, barrier, errors):
    barrier.wait()
    try:
        open_store(url).close()
    except Exception as exc:
        errors.put(f"{type(exc).__name__}: {exc}")


def test_simultaneous_first_opens_all_succeed(tmp_path):
    ctx = mp.get_context("fork")
    errors = ctx.Queue()
    for k in range(6):
        url = f"sqlite:///{tmp_path / f'store-{k}.db'}"
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_open, args=(url, barrier, errors)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == []
    errors.close()
    errors.join_thread()
