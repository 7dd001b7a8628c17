"""``/healthz`` probes: the store and the queue must take a write, not just answer a read.

A read-only or full disk answers ``SELECT 1`` but loses the next event, so each probe commits
one small write: a row of ``labelgate_health`` in the report store
(:meth:`labelgate.store.Store.check_writable`) and in the durable queue file, a short-lived key
in Redis.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from labelgate.security import redact


def check_queue_writable(queue: Any) -> None:
    """Commit one write to the queue's storage.

    Raises:
        Exception: whatever the queue's storage raised (the caller reports it).
    """
    from labelgate.queue.durable import DurableQueue

    if isinstance(queue, DurableQueue):
        # Its own short connection: the probe must not disturb the queue's per-thread ones.
        conn = sqlite3.connect(queue.path, timeout=5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS labelgate_health (id INTEGER PRIMARY KEY, checked REAL)"
            )
            conn.execute("INSERT OR REPLACE INTO labelgate_health VALUES (1, ?)", (time.time(),))
            conn.execute("COMMIT")
        finally:
            conn.close()
        return
    redis = getattr(queue, "redis", None)
    if redis is not None:
        redis.set("labelgate:health", str(time.time()), ex=60)
        return
    queue.counts()  # an unknown backend: at least it must answer


def health(store: Any, queue: Any) -> dict[str, str]:
    """``{"store": "ok" | error, "queue": "ok" | error}`` (errors redacted, at most 300 chars)."""
    checks: dict[str, str] = {}
    for part, probe in (
        ("store", store.check_writable),
        ("queue", lambda: check_queue_writable(queue)),
    ):
        try:
            probe()
            checks[part] = "ok"
        except Exception as exc:  # any failure means "do not send events here"
            checks[part] = redact(f"{type(exc).__name__}: {exc}")[:300]
    return checks
