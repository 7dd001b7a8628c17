"""Embedded durable queue (SQLite): re-score requests coalesced per target, with a debounce.

- ``enqueue`` is idempotent per delivery id: a redelivered webhook adds nothing.
- Requests for the same (system, target) that arrive while one is pending merge into it and push
  its start time to ``now + debounce``, so a burst of saves yields one re-score.
- ``claim`` hands a due job to one worker (an UPDATE guarded by its status, safe across
  processes); a job claimed by a worker that died is handed out again after ``lease`` seconds.
- Everything is in the database file, so pending work survives a restart.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL, system TEXT NOT NULL, target TEXT NOT NULL,
  payload TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
  not_before REAL NOT NULL, leased_until REAL, attempts INTEGER NOT NULL DEFAULT 0,
  events INTEGER NOT NULL DEFAULT 1, error TEXT, created REAL NOT NULL, finished REAL,
  started REAL);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(status, not_before);
CREATE TABLE IF NOT EXISTS deliveries (delivery TEXT PRIMARY KEY, job INTEGER, seen REAL);
"""
# Columns added after the first release; older queue files get them on open.
_ADDED_COLUMNS = {"started": "REAL"}


@dataclass(frozen=True)
class Job:
    id: int
    name: str
    system: str
    target: str
    payload: dict[str, Any]
    attempts: int
    events: int


class DurableQueue:
    """A job queue in one SQLite file shared by the web process and its workers."""

    def __init__(self, path: str | Path, lease: float = 300.0, max_attempts: int = 5) -> None:
        self.path = str(path)
        self.lease = lease
        self.max_attempts = max_attempts
        self._local = threading.local()
        # Threads of one process take turns here rather than in SQLite, whose busy handler
        # sleeps in steps of up to 100 ms: under a burst that sleep was the p99 latency.
        self._write = threading.Lock()
        # One write transaction, so processes opening a new or older file together (serve and
        # its workers) take turns: the second sees the first's tables and columns.
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            have = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in have:
                    conn.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            for attempt in range(100):
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as exc:
                    # Switching a new file to WAL needs it to itself and answers "locked" at
                    # once, without SQLite's busy wait, while another process opens it too.
                    if "locked" not in str(exc) or attempt == 99:
                        raise
                    time.sleep(0.01)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def enqueue(
        self,
        name: str,
        system: str,
        target: str,
        payload: dict[str, Any] | None = None,
        *,
        debounce: float = 0.0,
        delivery: str | None = None,
        now: float | None = None,
    ) -> tuple[int | None, str]:
        """Queue (or merge into) a job. Returns (job id, "queued" | "coalesced" | "duplicate")."""
        t = time.time() if now is None else now
        with self._write:
            return self._enqueue(name, system, target, payload, debounce, delivery, t)

    def _enqueue(
        self,
        name: str,
        system: str,
        target: str,
        payload: dict[str, Any] | None,
        debounce: float,
        delivery: str | None,
        t: float,
    ) -> tuple[int | None, str]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if delivery is not None:
                seen = conn.execute(
                    "SELECT job FROM deliveries WHERE delivery = ?", (delivery,)
                ).fetchone()
                if seen is not None:
                    conn.execute("COMMIT")
                    return seen[0], "duplicate"
            row = conn.execute(
                "SELECT id FROM jobs WHERE status = 'pending' AND name = ? AND system = ? "
                "AND target = ?",
                (name, system, target),
            ).fetchone()
            if row is not None:
                job_id, outcome = int(row[0]), "coalesced"
                conn.execute(
                    "UPDATE jobs SET not_before = ?, events = events + 1, payload = ? WHERE id = ?",
                    (t + debounce, json.dumps(payload or {}), job_id),
                )
            else:
                cur = conn.execute(
                    "INSERT INTO jobs (name, system, target, payload, not_before, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (name, system, target, json.dumps(payload or {}), t + debounce, t),
                )
                job_id, outcome = int(cur.lastrowid or 0), "queued"
            if delivery is not None:
                conn.execute("INSERT INTO deliveries VALUES (?, ?, ?)", (delivery, job_id, t))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return job_id, outcome

    def claim(self, now: float | None = None) -> Job | None:
        """Take one due job (pending, or running with an expired lease), or None."""
        t = time.time() if now is None else now
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT id, name, system, target, payload, attempts, events FROM jobs "
                "WHERE (status = 'pending' AND not_before <= ?) "
                "OR (status = 'running' AND leased_until < ?) ORDER BY not_before LIMIT 1",
                (t, t),
            ).fetchone()
            if row is None:
                conn.execute("COMMIT")
                return None
            conn.execute(
                "UPDATE jobs SET status = 'running', leased_until = ?, started = ?, "
                "attempts = attempts + 1 WHERE id = ?",
                (t + self.lease, t, row[0]),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return Job(
            int(row[0]), row[1], row[2], row[3], json.loads(row[4]), int(row[5]) + 1, int(row[6])
        )

    def complete(self, job_id: int) -> None:
        self._conn().execute(
            "UPDATE jobs SET status = 'done', finished = ? WHERE id = ?", (time.time(), job_id)
        )

    def fail(self, job_id: int, error: str, attempts: int, now: float | None = None) -> None:
        """Retry later with exponential backoff, or give up after ``max_attempts``."""
        t = time.time() if now is None else now
        if attempts >= self.max_attempts:
            self._conn().execute(
                "UPDATE jobs SET status = 'failed', error = ?, finished = ? WHERE id = ?",
                (error, t, job_id),
            )
        else:
            self._conn().execute(
                "UPDATE jobs SET status = 'pending', error = ?, not_before = ? WHERE id = ?",
                (error, t + min(300.0, 2.0**attempts), job_id),
            )

    def stats(self) -> dict[str, float]:
        """Totals of finished jobs: ``done``/``failed`` counts and their run-time sums (seconds)."""
        rows = self._conn().execute(
            "SELECT status, COUNT(*), COALESCE(SUM(finished - started), 0) FROM jobs "
            "WHERE status IN ('done', 'failed') GROUP BY status"
        )
        out = {"done": 0.0, "failed": 0.0, "done_seconds": 0.0, "failed_seconds": 0.0}
        for status, n, seconds in rows:
            out[status], out[f"{status}_seconds"] = float(n), float(seconds)
        return out

    def counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        return {status: int(n) for status, n in rows}

    def jobs(self, status: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT id, name, system, target, status, events, attempts, error FROM jobs"
        rows = self._conn().execute(
            q + (" WHERE status = ?" if status else "") + " ORDER BY id",
            (status,) if status else (),
        )
        keys = ("id", "name", "system", "target", "status", "events", "attempts", "error")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def run_once(self, handlers: dict[str, Callable[[Job], Any]]) -> Job | None:
        """Claim one due job and run its handler; failures are retried with backoff."""
        job = self.claim()
        if job is None:
            return None
        handler = handlers.get(job.name)
        try:
            if handler is None:
                raise LookupError(f"no handler registered for job {job.name!r}")
            handler(job)
        except Exception as exc:  # a failing job must not kill the worker
            self.fail(job.id, f"{type(exc).__name__}: {exc}", job.attempts)
        else:
            self.complete(job.id)
        return job
