"""The store port: the SQL store satisfies it, and core reads any object that has its methods."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from labelgate.errors import NotFound
from labelgate.ports import ReportReader, ReportStore
from labelgate.reporting.dashboard import SourceKey, source_heads
from labelgate.store import ReportHead, StoredReport, open_store

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@dataclass
class MemoryReader:
    """Reports in a list: a read-only store with nothing but the reader methods."""

    reports: list[StoredReport] = field(default_factory=list)

    def get_report(self, report_id: str) -> StoredReport:
        for r in self.reports:
            if r.id == report_id:
                return r
        raise NotFound(report_id)

    def list_reports(
        self,
        source: str | None = None,
        project: str | None = None,
        kind: str | None = None,
        target: str | None = None,
        limit: int | None = None,
    ) -> list[StoredReport]:
        want = {"source": source, "project": project, "kind": kind, "target": target}
        found = [
            r for r in self.reports if all(v is None or getattr(r, k) == v for k, v in want.items())
        ]
        return sorted(found, key=lambda r: r.created_at, reverse=True)[:limit]

    def list_heads(
        self,
        source: str | None = None,
        project: str | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[ReportHead]:
        return [
            ReportHead(r.id, r.kind, r.source, r.target, r.project, r.created_at, r.seq)
            for r in self.list_reports(source, project, kind, limit=limit)
        ]


def _report(rid: str, kind: str, project: str, minutes: int) -> StoredReport:
    return StoredReport(
        rid, kind, "cvat", "task:1", project, T0 + timedelta(minutes=minutes), {}, None
    )


def test_the_sql_store_is_a_report_store(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        assert isinstance(store, ReportStore) and isinstance(store, ReportReader)


def test_a_reader_without_save_is_not_a_report_store():
    reader = MemoryReader()
    assert isinstance(reader, ReportReader)
    assert not isinstance(reader, ReportStore)
    assert not isinstance(object(), ReportReader)


def test_source_heads_reads_through_the_port():
    reader = MemoryReader(
        [
            _report("a", "bundle", "cvat:7", 0),
            _report("b", "cvat_task", "cvat:7", 5),
            _report("c", "bundle", "cvat:8", 9),
            _report("d", "not-a-quality-report", "cvat:7", 7),
        ]
    )
    # Newest first, only the source's reports, only kinds the dashboard digests.
    assert [h.id for h in source_heads(reader, SourceKey("cvat", "7"))] == ["b", "a"]
    with pytest.raises(NotFound, match="cvat/9"):
        source_heads(reader, SourceKey("cvat", "9"))
