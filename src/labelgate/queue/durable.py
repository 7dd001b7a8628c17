"""Embedded durable queue (SQLite): re-score requests coalesced per target, with a debounce.

- ``enqueue`` is idempotent per delivery id: a redelivered webhook adds nothing.
- Requests for the same (system, target) that arrive while one is pending merge into it and push
  its start time to ``now + debounce``, but never past ``first event + max_wait``: a target
  saved every second is still re-scored while the saves go on.
- ``claim`` hands a due job to one worker (an UPDATE guarded by its status, safe across
  processes). The worker extends the job's lease while its handler runs (a heartbeat), so a long
  job is never handed to a second worker; a dead worker's job is handed out again once its lease
  has expired.
- A failing job is retried by its :class:`~labelgate.queue.retry.RetryPolicy` (capped backoff
  for hours on outages, a few attempts on permanent errors), then kept as ``dead`` until
  :meth:`DurableQueue.retry_dead` requeues it.
- Everything is in the database file, committed with ``synchronous=FULL``: an acknowledged event
  survives a crash or a power loss. Done jobs and delivery ids are pruned after ``retention``.

Statuses: ``pending`` (waiting for its debounce or a worker), ``failed`` (pending again after a
failed attempt; its error and next run are listed), ``running``, ``dead``, ``done``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelgate.errors import ValidationError
from labelgate.queue.retry import RetryPolicy, describe_error, is_transient

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL, system TEXT NOT NULL, target TEXT NOT NULL,
  payload TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
  not_before REAL NOT NULL, leased_until REAL, attempts INTEGER NOT NULL DEFAULT 0,
  events INTEGER NOT NULL DEFAULT 1, error TEXT, created REAL NOT NULL, finished REAL,
  started REAL, first_failed REAL);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(status, not_before);
CREATE TABLE IF NOT EXISTS deliveries (delivery TEXT PRIMARY KEY, job INTEGER, seen REAL);
CREATE TABLE IF NOT EXISTS stats (
  outcome TEXT PRIMARY KEY, runs INTEGER NOT NULL, seconds REAL NOT NULL)
"""
log = logging.getLogger("labelgate.queue")
# Columns added after the first release; older queue files get them on open.
_ADDED_COLUMNS = {"started": "REAL", "first_failed": "REAL"}
# What the listing calls a pending job that has failed at least once.
_STATUS = "CASE WHEN status = 'pending' AND error IS NOT NULL THEN 'failed' ELSE status END"


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
    """A job queue in one SQLite file shared by the web process and its workers.

    Args:
        path: the queue file.
        lease: seconds a claimed job is reserved for its worker; the worker renews it every
            ``lease / 3`` seconds while the job runs.
        policy: retry and dead-letter policy.
        retention: seconds done jobs and delivery ids are kept.
        clock: the time source (tests pass a fake one).
    """

    def __init__(
        self,
        path: str | Path,
        lease: float = 300.0,
        policy: RetryPolicy | None = None,
        *,
        retention: float = 7 * 24 * 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self.lease = lease
        self.policy = policy or RetryPolicy()
        self.retention = retention
        self.clock = clock
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
            # Before dead-lettering existed, a job that gave up was 'failed'.
            conn.execute("UPDATE jobs SET status = 'dead' WHERE status = 'failed'")
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
            # FULL: a commit (an acknowledged event) is on disk before the webhook is answered;
            # NORMAL in WAL mode can lose the last commits on a power loss.
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _transaction(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``work`` in one write transaction (this process's writers take turns first)."""
        with self._write:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return result

    # -- producer side ----------------------------------------------------------------------

    def enqueue(
        self,
        name: str,
        system: str,
        target: str,
        payload: dict[str, Any] | None = None,
        *,
        debounce: float = 0.0,
        max_wait: float | None = None,
        delivery: str | None = None,
        now: float | None = None,
    ) -> tuple[int | None, str]:
        """Queue (or merge into) a job. Returns (job id, "queued" | "coalesced" | "duplicate").

        Args:
            debounce: quiet seconds after the last event before the job is due.
            max_wait: the job is due at most this long after its first event, however often
                events keep coming (None: no limit).
        """
        t = self.clock() if now is None else now
        body = json.dumps(payload or {})
        wait = debounce if max_wait is None else min(debounce, max_wait)

        def work(conn: sqlite3.Connection) -> tuple[int | None, str]:
            if delivery is not None:
                seen = conn.execute(
                    "SELECT job FROM deliveries WHERE delivery = ?", (delivery,)
                ).fetchone()
                if seen is not None:
                    return seen[0], "duplicate"
            row = conn.execute(
                "SELECT id, created, error, not_before FROM jobs WHERE status = 'pending' "
                "AND name = ? AND system = ? AND target = ?",
                (name, system, target),
            ).fetchone()
            if row is not None:
                job_id, outcome = int(row[0]), "coalesced"
                if row[2] is None:  # waiting for quiet: push back, but not past the max wait
                    due = t + debounce
                    if max_wait is not None:
                        due = min(due, float(row[1]) + max_wait)
                else:  # waiting for a retry: the event does not delay it
                    due = min(float(row[3]), t + debounce)
                conn.execute(
                    "UPDATE jobs SET not_before = ?, events = events + 1, payload = ? WHERE id = ?",
                    (due, body, job_id),
                )
            else:
                cur = conn.execute(
                    "INSERT INTO jobs (name, system, target, payload, not_before, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (name, system, target, body, t + wait, t),
                )
                job_id, outcome = int(cur.lastrowid or 0), "queued"
            if delivery is not None:
                conn.execute("INSERT INTO deliveries VALUES (?, ?, ?)", (delivery, job_id, t))
            return job_id, outcome

        result: tuple[int | None, str] = self._transaction(work)
        return result

    # -- worker side ------------------------------------------------------------------------

    def claim(self, now: float | None = None) -> Job | None:
        """Take one due job (pending, or running with an expired lease), or None.

        A job whose lease expired lost its worker: that counts as a transient failure, so a job
        that keeps killing its workers is dead-lettered once the retry window has passed.
        """
        t = self.clock() if now is None else now

        def work(conn: sqlite3.Connection) -> Job | None:
            while True:
                row = conn.execute(
                    "SELECT id, name, system, target, payload, attempts, events, status, "
                    "leased_until, first_failed FROM jobs "
                    "WHERE (status = 'pending' AND not_before <= ?) "
                    "OR (status = 'running' AND leased_until < ?) ORDER BY not_before LIMIT 1",
                    (t, t),
                ).fetchone()
                if row is None:
                    return None
                first_failed = row[9]
                if row[7] == "running":  # abandoned by a worker that died
                    first_failed = row[8] if first_failed is None else first_failed
                    lost = "worker lost: its lease expired while the job ran"
                    if t - float(first_failed) >= self.policy.window:
                        conn.execute(
                            "UPDATE jobs SET status = 'dead', error = ?, finished = ? WHERE id = ?",
                            (lost, t, row[0]),
                        )
                        continue
                    conn.execute(
                        "UPDATE jobs SET error = ?, first_failed = ? WHERE id = ?",
                        (lost, first_failed, row[0]),
                    )
                conn.execute(
                    "UPDATE jobs SET status = 'running', leased_until = ?, started = ?, "
                    "attempts = attempts + 1 WHERE id = ?",
                    (t + self.lease, t, row[0]),
                )
                return Job(
                    int(row[0]),
                    row[1],
                    row[2],
                    row[3],
                    json.loads(row[4]),
                    int(row[5]) + 1,
                    int(row[6]),
                )

        job: Job | None = self._transaction(work)
        return job

    def extend(self, job: Job, now: float | None = None) -> bool:
        """Renew the lease of a running job; False if it is no longer this claim's."""
        t = self.clock() if now is None else now
        with self._write:
            cur = self._conn().execute(
                "UPDATE jobs SET leased_until = ? WHERE id = ? AND attempts = ? "
                "AND status = 'running'",
                (t + self.lease, job.id, job.attempts),
            )
        return cur.rowcount == 1

    def _finish(self, conn: sqlite3.Connection, outcome: str, job: Job, t: float) -> None:
        conn.execute(
            "INSERT INTO stats VALUES (?, 1, MAX(0, ? - (SELECT started FROM jobs WHERE id = ?))) "
            "ON CONFLICT(outcome) DO UPDATE SET runs = runs + 1, seconds = seconds + excluded.seconds",
            (outcome, t, job.id),
        )

    def complete(self, job: Job, now: float | None = None) -> None:
        """Mark a claimed job done (ignored if its lease was lost to another worker)."""
        t = self.clock() if now is None else now

        def work(conn: sqlite3.Connection) -> None:
            self._finish(conn, "done", job, t)
            conn.execute(
                "UPDATE jobs SET status = 'done', finished = ?, error = NULL WHERE id = ? "
                "AND attempts = ? AND status = 'running'",
                (t, job.id, job.attempts),
            )

        self._transaction(work)

    def fail(
        self, job: Job, error: str, *, transient: bool = False, now: float | None = None
    ) -> float | None:
        """Record a failed attempt: schedule a retry by the policy, or dead-letter the job.

        Returns:
            When the job runs again; None when it is now dead (or another worker holds it, its
            lease having run out).
        """
        t = self.clock() if now is None else now

        def work(conn: sqlite3.Connection) -> float | None:
            self._finish(conn, "failed", job, t)
            row = conn.execute(
                "SELECT first_failed FROM jobs WHERE id = ? AND attempts = ? "
                "AND status = 'running'",
                (job.id, job.attempts),
            ).fetchone()
            if row is None:  # its lease expired and another worker has it now
                return None
            first = t if row[0] is None else float(row[0])
            due = self.policy.next_run(transient, job.attempts, first, t)
            if due is None:
                conn.execute(
                    "UPDATE jobs SET status = 'dead', error = ?, finished = ?, first_failed = ? "
                    "WHERE id = ?",
                    (error, t, first, job.id),
                )
            else:
                conn.execute(
                    "UPDATE jobs SET status = 'pending', error = ?, not_before = ?, "
                    "first_failed = ?, leased_until = NULL WHERE id = ?",
                    (error, due, first, job.id),
                )
            return due

        due: float | None = self._transaction(work)
        return due

    def run_once(self, handlers: dict[str, Callable[[Job], Any]]) -> Job | None:
        """Claim one due job and run its handler, renewing its lease while it runs."""
        job = self.claim()
        if job is None:
            return None
        done = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(job, done), name=f"labelgate-lease-{job.id}", daemon=True
        )
        beat.start()
        try:
            handler = handlers.get(job.name)
            if handler is None:
                raise LookupError(f"no handler registered for job {job.name!r}")
            handler(job)
        except Exception as exc:  # a failing job must not kill the worker
            done.set()
            beat.join()
            error = describe_error(exc)
            due = self.fail(job, error, transient=is_transient(exc))
            # One line per failed attempt (the error is kept with the job for `queue list`).
            log.warning(
                "job %s (%s %s) failed: %s; %s",
                job.id,
                job.system,
                job.target,
                error,
                f"next attempt in {due - self.clock():.0f} s" if due is not None else "dead",
            )
        else:
            done.set()
            beat.join()
            self.complete(job)
        return job

    def _heartbeat(self, job: Job, done: threading.Event) -> None:
        try:
            while not done.wait(self.lease / 3):
                try:
                    if not self.extend(job):
                        return
                except sqlite3.Error:  # busy for 30 s: try again at the next beat
                    continue
        finally:
            self.close()  # this thread's connection

    # -- operations -------------------------------------------------------------------------

    def retry_dead(self, job_id: int | str | None = None, now: float | None = None) -> list[int]:
        """Requeue one dead job (or every one, with None) with a fresh retry budget.

        Raises:
            ValidationError: ``job_id`` is not a number, not in the queue, or not dead.
        """
        t = self.clock() if now is None else now
        wanted: int | None = None
        if job_id is not None:
            try:
                wanted = int(job_id)
            except ValueError:
                raise ValidationError(
                    f"queue {self.path}: job id {job_id!r} is not a number"
                ) from None

        def work(conn: sqlite3.Connection) -> list[int]:
            if wanted is not None:
                row = conn.execute("SELECT status FROM jobs WHERE id = ?", (wanted,)).fetchone()
                if row is None:
                    raise ValidationError(f"queue {self.path}: no job {wanted}")
                if row[0] != "dead":
                    raise ValidationError(
                        f"queue {self.path}: job {wanted} is {row[0]}, not dead; only dead "
                        "jobs are retried by hand"
                    )
            ids = [
                int(r[0])
                for r in conn.execute(
                    "SELECT id FROM jobs WHERE status = 'dead'"
                    + (" AND id = ?" if wanted is not None else "")
                    + " ORDER BY id",
                    (wanted,) if wanted is not None else (),
                )
            ]
            conn.executemany(
                "UPDATE jobs SET status = 'pending', not_before = ?, attempts = 0, error = NULL, "
                "first_failed = NULL, leased_until = NULL, finished = NULL WHERE id = ?",
                [(t, i) for i in ids],
            )
            return ids

        ids: list[int] = self._transaction(work)
        return ids

    def prune(self, now: float | None = None) -> int:
        """Delete done jobs and delivery ids older than ``retention``; returns the jobs deleted.

        Dead jobs are kept (they wait for ``labelgate queue retry``). A redelivery of an event
        whose delivery id was pruned is queued again.
        """
        cutoff = (self.clock() if now is None else now) - self.retention

        def work(conn: sqlite3.Connection) -> int:
            n = conn.execute(
                "DELETE FROM jobs WHERE status = 'done' AND finished < ?", (cutoff,)
            ).rowcount
            conn.execute("DELETE FROM deliveries WHERE seen < ?", (cutoff,))
            return int(n)

        n: int = self._transaction(work)
        return n

    # -- inspection -------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        """Runs so far: ``done``/``failed`` counts and their run-time sums (``*_seconds``)."""
        out = {"done": 0.0, "failed": 0.0, "done_seconds": 0.0, "failed_seconds": 0.0}
        for outcome, runs, seconds in self._conn().execute("SELECT * FROM stats"):
            out[outcome], out[f"{outcome}_seconds"] = float(runs), float(seconds)
        return out

    def counts(self) -> dict[str, int]:
        rows = self._conn().execute(f"SELECT {_STATUS}, COUNT(*) FROM jobs GROUP BY 1")
        return {status: int(n) for status, n in rows}

    def jobs(self, status: str | None = None) -> list[dict[str, Any]]:
        """Jobs oldest first: id, name, system, target, status, events, attempts, error and
        ``due`` (when a pending or failed job runs next, else None)."""
        q = (
            f"SELECT * FROM (SELECT id, name, system, target, {_STATUS} AS st, events, "
            "attempts, error, CASE WHEN status = 'pending' THEN not_before END FROM jobs)"
        )
        rows = self._conn().execute(
            q + (" WHERE st = ?" if status else "") + " ORDER BY id",
            (status,) if status else (),
        )
        keys = ("id", "name", "system", "target", "status", "events", "attempts", "error", "due")
        return [dict(zip(keys, r, strict=True)) for r in rows]
