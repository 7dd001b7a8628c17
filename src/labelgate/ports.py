"""Protocols for the ports core code talks to: the report store and the re-score queue.

Core modules type their ``store``/``queue`` parameters with these instead of ``Any``, so an
adapter, the web app or a test may pass any object with the same methods. :class:`Store`
(:mod:`labelgate.store`) and the queues in :mod:`labelgate.queue` implement them; the
conformance functions at the bottom make ``mypy`` prove it. The annotation source port is
:class:`labelgate.run_sources.Source`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from labelgate.queue import Queue

if TYPE_CHECKING:
    from labelgate.queue.durable import DurableQueue
    from labelgate.queue.redis_queue import RedisQueue
    from labelgate.store import ReportHead, Store, StoredReport


@runtime_checkable
class ReportReader(Protocol):
    """What the read API, the dashboard and history lookups need from a report store."""

    def get_report(self, report_id: str) -> StoredReport:
        """The report with public id ``report_id``; raises NotFound when there is none."""
        ...

    def list_heads(
        self,
        source: str | None = None,
        project: str | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[ReportHead]:
        """Matching reports without their bodies, newest first."""
        ...

    def list_reports(
        self,
        source: str | None = None,
        project: str | None = None,
        kind: str | None = None,
        target: str | None = None,
        limit: int | None = None,
    ) -> list[StoredReport]:
        """Matching reports with their bodies, newest first."""
        ...


@runtime_checkable
class ReportStore(ReportReader, Protocol):
    """A report store that also saves: what runs, pipelines and the worker write through."""

    def save_report(
        self,
        kind: str,
        source: str,
        target: str,
        report: dict[str, Any],
        *,
        project: str | None = None,
        settings: dict[str, Any] | None = None,
        key: str | None = None,
        created_at: datetime | None = None,
    ) -> str:
        """Store a report and return its public id (an existing ``key`` is updated in place)."""
        ...

    def find_key(self, key: str) -> StoredReport | None:
        """The report saved under ``key``, or None."""
        ...

    def ping(self) -> None:
        """Raise when the database cannot be reached."""
        ...

    def close(self) -> None: ...


if TYPE_CHECKING:
    # Static conformance: mypy fails here when an implementation drifts from its port.
    def _store_is_a_port(store: Store) -> ReportStore:
        return store

    def _durable_is_a_queue(queue: DurableQueue) -> Queue:
        return queue

    def _redis_is_a_queue(queue: RedisQueue) -> Queue:
        return queue


__all__ = ["Queue", "ReportReader", "ReportStore"]
