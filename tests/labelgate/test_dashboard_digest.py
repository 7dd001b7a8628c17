"""The dashboard's extraction from stored reports (labelgate.reporting.dashboard).

Expected values are hand-computed from the small reports built here; Wilson intervals come
from statsmodels (an independent implementation).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from statsmodels.stats.proportion import proportion_confint

from labelgate.reporting.dashboard import (
    DigestCache,
    SourceKey,
    digest_bundle,
    digest_cvat,
    digest_ls_project,
    digest_report,
    digest_scorecards,
    filter_items,
    group_heads,
    headline_kind,
    item_links,
    pooled,
    series,
    source_key,
    sparkline,
    summarize,
)
from labelgate.store import ReportHead, open_store

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _matrix(rows):
    return {"labels": ["car", "person", "unmatched"], "rows": rows}


BUNDLE = {
    "comparisons": {
        "a": {
            "summary": {"valid_count": 8, "total_count": 10, "ds_count": 9, "gt_count": 9},
            "confusion_matrix": _matrix([[5, 0, 1], [1, 3, 0], [0, 0, 0]]),
        },
        "b": {
            "summary": {"valid_count": 6, "total_count": 8, "ds_count": 7, "gt_count": 7},
            "confusion_matrix": _matrix([[4, 0, 0], [0, 2, 1], [1, 0, 0]]),
        },
        # A model's errors are not the annotation team's: left out of every pooled number.
        "prediction:m": {
            "summary": {"valid_count": 0, "total_count": 100, "ds_count": 100, "gt_count": 9},
            "confusion_matrix": _matrix([[0, 50, 0], [50, 0, 0], [0, 0, 0]]),
        },
    },
    "conflicts": [
        {"annotator": "prediction:m", "frame": 3, "type": "t", "link": "http://cvat/model"},
        {"annotator": "a", "frame": 3, "type": "t", "link": "http://cvat/tasks/1/jobs/2?frame=3"},
        {"annotator": "b", "frame": 3, "type": "t", "link": "http://cvat/other"},
        {"annotator": "b", "frame": 5, "type": "t", "link": None},
    ],
    "conflicts_truncated": 2,
    "gate": {"passed": False},
    "alerts": [{"type": "drift", "severity": "warning", "message": "m", "action": "do"}],
    "scorecards": [
        {"annotator": "a", "accuracy": 0.8, "items": 4},
        {"annotator": "b", "accuracy": 0.75, "items": 3},
    ],
    "agreement": {
        "annotators": ["a", "b"],
        "matrix": {"f1": [[1.0, 0.6], [0.6, 1.0]]},
        "summary": {"mean_pairwise_f1": 0.6},
    },
}


def test_pooled_rate_has_the_wilson_interval():
    s = pooled(14, 18)
    low, high = proportion_confint(14, 18, alpha=0.05, method="wilson")
    assert (s.value, s.low, s.high) == (
        pytest.approx(14 / 18),
        pytest.approx(low),
        pytest.approx(high),
    )
    assert pooled(0, 0).value is None


def test_bundle_pools_the_human_annotators():
    d = digest_bundle(BUNDLE)
    assert d.scores["accuracy"].value == pytest.approx(14 / 18)
    assert d.scores["precision"].value == pytest.approx(14 / 16)
    assert d.scores["recall"].value == pytest.approx(14 / 16)
    low, high = proportion_confint(14, 16, method="wilson")
    assert (d.scores["recall"].low, d.scores["recall"].high) == (
        pytest.approx(low),
        pytest.approx(high),
    )
    # Summed matrix [[9,0,1],[1,5,1],[1,0,0]], 18 in all: car diag 9, row 10, column 11.
    car, person = d.per_label["car"], d.per_label["person"]
    assert car == pytest.approx(
        {"precision": 9 / 10, "recall": 9 / 11, "accuracy": 15 / 18, "jaccard_index": 9 / 12}
    )
    assert person == pytest.approx(
        {"precision": 5 / 7, "recall": 1.0, "accuracy": 16 / 18, "jaccard_index": 5 / 7}
    )
    assert "unmatched" not in d.per_label
    assert d.gate_passed is False and len(d.alerts) == 1 and d.conflicts == 4 + 2
    assert item_links("bundle", BUNDLE) == {3: "http://cvat/tasks/1/jobs/2?frame=3"}
    assert d.per_annotator == {"a": 0.8, "b": 0.75}
    assert d.matrix_annotators == ["a", "b"] and d.matrix[0][1] == 0.6 and d.agreement == 0.6
    assert d.has_page


def test_bundle_with_different_label_sets_keeps_no_per_label_table():
    other = {
        **BUNDLE["comparisons"]["b"],
        "confusion_matrix": {"labels": ["x", "unmatched"], "rows": [[1, 0], [0, 0]]},
    }
    d = digest_bundle({"comparisons": {"a": BUNDLE["comparisons"]["a"], "b": other}})
    assert d.per_label == {} and d.gate_passed is None and d.conflicts == 0


def test_cvat_report_uses_its_summary_counts_and_matrix():
    report = {
        "summary": {
            "valid_count": 14,
            "total_count": 20,
            "ds_count": 16,
            "gt_count": 18,
            "conflict_count": 6,
        },
        "annotations": {
            "confusion_matrix": {
                "labels": ["car", "unmatched"],
                "rows": [[14, 2], [4, 0]],
                "precision": [0.875, 0.0],
                "recall": [14 / 18, 0.0],
                "accuracy": [0.7, 0.7],
                "jaccard_index": [0.7, 0.0],
            }
        },
    }
    d = digest_cvat(report)
    assert d.scores["accuracy"].value == pytest.approx(0.7)
    assert d.scores["recall"].value == pytest.approx(14 / 18)
    assert d.conflicts == 6 and d.per_label == {
        "car": pytest.approx(
            {"precision": 0.875, "recall": 14 / 18, "accuracy": 0.7, "jaccard_index": 0.7}
        )
    }
    assert d.gate_passed is None and not d.has_page


def test_label_studio_project_links_each_task():
    report = {
        "project": 7,
        "annotators": {
            "a@x": {"accuracy": 1.0, "precision": 0.5, "recall": 1.0},
            "b@x": {"accuracy": 0.5, "precision": 0.5, "recall": 0.5},
            "prediction:m": {"accuracy": 0.0, "precision": 0.0, "recall": 0.0},
        },
        "tasks": {"4": {"conflicting_annotators": ["b@x"]}, "9": {"conflicting_annotators": []}},
        "source": {"meta": {"system": "labelstudio", "url": "http://ls:8080/", "project_id": 7}},
    }
    d = digest_ls_project(report)
    assert d.scores["accuracy"].value == pytest.approx(0.75) and d.scores["accuracy"].low is None
    assert d.per_annotator == {"a@x": 1.0, "b@x": 0.5}
    assert d.conflicts == 1
    assert item_links("ls_project", report) == {
        4: "http://ls:8080/projects/7/data?task=4",
        9: "http://ls:8080/projects/7/data?task=9",
    }
    # A report stored before the source was recorded has no host, so no links.
    older = {k: v for k, v in report.items() if k != "source"}
    assert item_links("ls_project", older) == {}


def test_scorecards_record():
    report = {
        "summary": {"mean_agreement": 0.8, "mean_accuracy": 0.9},
        "annotators": [{"annotator": "a", "accuracy": 0.9}],
        "alerts": [{"type": "x"}, {"type": "y"}],
    }
    d = digest_scorecards(report)
    assert d.scores["accuracy"].value == 0.9 and d.agreement == 0.8 and len(d.alerts) == 2
    assert d.per_annotator == {"a": 0.9} and d.cards[0]["annotator"] == "a"


def _head(kind, project, target="t", minutes=0, id_="h" * 22):
    return ReportHead(id_, kind, "file", target, project, T0 + timedelta(minutes=minutes))


def test_sources_group_by_project_or_hashed_target():
    assert source_key(_head("bundle", "cvat:12")) == SourceKey("cvat", "12")
    assert source_key(_head("cvat_task", "cvat:task:5")) == SourceKey("cvat", "task:5")
    assert source_key(_head("ls_project", "labelstudio:7")) == SourceKey("labelstudio", "7")
    assert source_key(_head("bundle", "gt")) == SourceKey("file", "gt")
    # No project: the target may be a server path, so the URL carries a hash of it.
    key = source_key(_head("cvat_job", None, target="/srv/data/x.xml"))
    assert key.source == "file" and len(key.id) == 12 and "/" not in key.id
    # File runs are keyed by their full path: hashed too.
    key = source_key(_head("bundle", "file:/srv/data/gt.xml"))
    assert key.source == "file" and len(key.id) == 12 and "/srv" not in key.id
    assert key != source_key(_head("bundle", "file:/srv/other/gt.xml"))
    groups = group_heads(
        [_head("scorecards", "cvat:1"), _head("bundle", "cvat:1"), _head("other", "cvat:2")]
    )
    assert list(groups) == [SourceKey("cvat", "1")]
    # A bundle run also stores a scorecards record: the bundle represents the source.
    assert headline_kind(groups[SourceKey("cvat", "1")]) == "bundle"
    assert (
        headline_kind([_head("cvat_job", "cvat:1"), _head("cvat_project", "cvat:1")])
        == "cvat_project"
    )


def test_series_fills_runs_without_a_name_with_none():
    a = digest_scorecards({"annotators": [{"annotator": "x", "accuracy": 0.5}]})
    cards = [{"annotator": "y", "accuracy": 1.0}, {"annotator": "x", "accuracy": 0.25}]
    b = digest_scorecards({"annotators": cards})
    assert series([a, b], lambda d: d.per_annotator) == {"x": [0.5, 0.25], "y": [None, 1.0]}


def test_sparkline_places_one_point_per_value():
    svg = sparkline([0.0, None, 1.0], width=108, height=28)
    # x = 4 + i * (108 - 8) / 2, y = 4 + (1 - v) * (28 - 8)
    assert svg.count("<circle") == 2
    assert 'cx="4.0" cy="24.0"' in svg and 'cx="104.0" cy="4.0"' in svg
    assert 'points="4.0,24.0 104.0,4.0"' in svg
    assert sparkline([]).count("<circle") == 0


ROWS = [
    {
        "item": 1,
        "flagged": True,
        "flags": [{"reason": "conflict", "annotator": "a", "type": "missing_annotation"}],
    },
    {
        "item": 2,
        "flagged": True,
        "flags": [{"reason": "conflicting_annotators", "annotators": ["b", "c"]}],
    },
    {"item": 3, "flagged": True, "flags": [{"reason": "low_agreement", "value": 0.5}]},
    {"item": 4, "flagged": False, "flags": []},
]


@pytest.mark.parametrize(
    ("kw", "items"),
    [
        ({}, [1, 2, 3, 4]),
        ({"flagged": True}, [1, 2, 3]),
        ({"annotator": "a"}, [1]),
        ({"annotator": "c"}, [2]),
        ({"reason": "missing_annotation"}, [1]),
        ({"reason": "low_agreement"}, [3]),
        ({"reason": "conflict", "annotator": "b"}, []),
    ],
)
def test_item_filters(kw, items):
    assert [r["item"] for r in filter_items(ROWS, **kw)] == items


def test_digest_is_stored_with_the_report_and_bodies_are_read_once(tmp_path, monkeypatch):
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    rid = store.save_report("bundle", "file", "t", BUNDLE, project="cvat:1")
    (head,) = store.list_heads()
    assert head.id == rid and head.kind == "bundle" and head.project == "cvat:1"
    assert head.digest == digest_report("bundle", BUNDLE)
    cache = DigestCache(store)
    calls = []
    real = store.get_report
    monkeypatch.setattr(store, "get_report", lambda i: calls.append(i) or real(i))
    d = cache.digest(head)
    assert (d.id, d.kind, d.conflicts, d.gate_passed) == (rid, "bundle", 6, False)
    assert d.scores["accuracy"].value == pytest.approx(14 / 18) and calls == []
    assert cache.items(head).links == {3: "http://cvat/tasks/1/jobs/2?frame=3"}
    assert cache.items(head).rows is not None and calls == [rid]
    # A keyed re-save keeps the id but not the time: the cache reads the new body.
    store.save_report("bundle", "file", "t", BUNDLE, project="cvat:2", key="k")
    first = store.list_heads(project="cvat:2")[0]
    assert 5 in cache.items(first).links or cache.items(first).rows
    store.save_report("bundle", "file", "t", {**BUNDLE, "conflicts": []}, project="cvat:2", key="k")
    again = store.list_heads(project="cvat:2")[0]
    assert again.id == first.id and again.created_at > first.created_at
    assert cache.items(again).links == {} and cache.digest(again).conflicts == 2
    store.close()


def test_rows_from_before_digests_are_digested_from_their_body(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    with open_store(url) as store:
        store.save_report("scorecards", "file", "t", {"summary": {"mean_accuracy": 0.5}})
        with store.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE labelgate_reports DROP COLUMN digest"))
    with open_store(url) as store:  # the column comes back, empty on the old row
        (head,) = store.list_heads()
        assert head.digest is None
        assert DigestCache(store).digest(head).scores["accuracy"].value == 0.5


def test_a_trend_follows_one_target(tmp_path):
    """A CVAT project run stores one bundle per task: the trend follows the newest one's task."""
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        for minutes, target, valid in ((0, "task A", 1), (1, "task B", 2), (2, "task A", 3)):
            report = {"comparisons": {"a": {"summary": {"valid_count": valid, "total_count": 4}}}}
            when = T0 + timedelta(minutes=minutes)
            store.save_report("bundle", "file", target, report, project="cvat:1", created_at=when)
        heads = store.list_heads()
        s = summarize(DigestCache(store), SourceKey("cvat", "1"), heads)
    assert [h.target for h in s.runs] == ["task A", "task A"]
    assert s.trend == [0.25, 0.75] and s.latest.scores["accuracy"].value == 0.75
