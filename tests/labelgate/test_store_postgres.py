"""The report store against a real PostgreSQL server (started by the session fixture)."""

from datetime import datetime, timedelta, timezone

import pytest

from labelgate.errors import NotFound
from labelgate.store import open_store


def test_postgres_store_round_trip_and_idempotency(postgres_url):
    store = open_store(postgres_url)
    t0 = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
    a = store.save_report(
        "task",
        "cvat",
        "task:3",
        {"summary": {"accuracy": 0.9}},
        project="p1",
        settings={"iou_threshold": 0.4},
        key="run-1",
        created_at=t0,
    )
    # A retry with the same key replaces the row (report and settings), never adds one.
    again = store.save_report(
        "task",
        "cvat",
        "task:3",
        {"summary": {"accuracy": 0.91}},
        project="p1",
        settings={"iou_threshold": 0.5},
        key="run-1",
        created_at=t0,
    )
    b = store.save_report(
        "task",
        "cvat",
        "task:3",
        {"summary": {"accuracy": 0.8}},
        project="p1",
        created_at=t0 + timedelta(hours=1),
    )
    assert a == again != b
    rows = store.list_reports(source="cvat", project="p1", kind="task")
    assert [r.report["summary"]["accuracy"] for r in rows] == [0.8, 0.91]
    got = store.get_report(a)
    assert got.settings == {"iou_threshold": 0.5} and got.created_at == t0
    with pytest.raises(NotFound):
        store.get_report(10**6)
    # A second store on the same database sees the same history (no re-creation problems).
    with open_store(postgres_url) as other:
        assert len(other.list_reports(project="p1")) == 2
    store.close()
