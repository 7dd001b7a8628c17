"""Queues for re-score work, behind one interface.

- :class:`~labelgate.queue.durable.DurableQueue`: the embedded default, one SQLite file shared by
  the web process, its worker thread and any ``labelgate worker`` on the same machine.
- :class:`~labelgate.queue.redis_queue.RedisQueue`: Redis + RQ, for workers on many machines.

Both coalesce requests per (name, system, target) with a debounce and a maximum wait, drop
redelivered events, retry failed jobs by one :class:`~labelgate.queue.retry.RetryPolicy` and
dead-letter them after it, and report ``counts()`` and ``stats()`` for ``/metrics``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from labelgate.errors import ValidationError
from labelgate.queue.retry import RetryPolicy


class Queue(Protocol):
    """What the web app, the CLI fan-out and ``/metrics`` need from a queue."""

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
    ) -> tuple[Any, str]: ...

    def retry_dead(self, job_id: Any = None) -> list[Any]: ...

    def counts(self) -> dict[str, int]: ...

    def stats(self) -> dict[str, float]: ...

    def jobs(self, status: str | None = None) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def is_redis_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("redis://", "rediss://", "unix://"))


def open_queue(
    url: str | Path | None,
    default: str | Path | None = None,
    *,
    lease: float = 300.0,
    policy: RetryPolicy | None = None,
    retention: float = 7 * 24 * 3600.0,
) -> Queue:
    """The queue behind ``url``.

    Args:
        url: ``redis://host:port/db`` (RQ), ``sqlite:///path/queue.db`` or a plain file path
            (durable queue); empty or None uses ``default``.
        default: the durable queue file to use when ``url`` is empty.
        lease: seconds before a dead worker's job is handed out again (workers renew it while
            a job runs).
        policy: retries and dead-lettering of failed jobs (default :class:`RetryPolicy`).
        retention: seconds done jobs and delivery ids are kept.

    Raises:
        ValidationError: no queue given and no default, or an unsupported URL scheme.
    """
    text = str(url or "").strip()
    if not text:
        if default is None:
            raise ValidationError("no queue URL or file given")
        text = str(default)
    if is_redis_url(text):
        from labelgate.queue.redis_queue import RedisQueue

        return RedisQueue(text, lease=lease, policy=policy, retention=retention)
    if "://" in text and not text.startswith("sqlite:///"):
        raise ValidationError(
            f"queue URL {text!r}: expected redis://…, rediss://…, sqlite:///PATH or a file path"
        )
    from labelgate.queue.durable import DurableQueue
    from labelgate.security import private_file

    # Created 0600 (folder 0700 when new): queued events name projects and annotators.
    path = private_file(Path(text.removeprefix("sqlite:///")))
    return DurableQueue(path, lease=lease, policy=policy, retention=retention)
