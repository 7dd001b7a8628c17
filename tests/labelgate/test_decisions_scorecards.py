"""Scorecards, per-label view, alerts, the store and history drift."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from labelgate.adapters import read_any
from labelgate.cli import main
from labelgate.decisions.scorecards import AlertThresholds, alerts, drift, per_label, scorecards
from labelgate.errors import NotFound
from labelgate.store import open_store

EXPORT = Path(__file__).resolve().parents[2] / "examples" / "labelstudio" / "export.json"


@pytest.fixture(scope="module")
def bundled():
    aset = read_any(EXPORT)
    return aset, {c["annotator"]: c for c in scorecards(aset)}


def test_scorecards_on_bundled_examples(bundled):
    _, cards = bundled
    a3 = cards["annotator3@example.com"]
    # annotator3 vs GT on the 12 gold tasks, per control (issue #19), checked against the
    # CVAT XML replicas of the same data (another reader): CVAT's accuracy on the boxes and
    # on the polygons, and the share of gold tasks with the GT's scene tag.
    from labelgate.engine import compare
    from labelgate.model import Kind

    cvat = EXPORT.parents[1] / "cvat"
    gt, ds = read_any(cvat / "gt.xml"), read_any(cvat / "annotator3.xml")

    def only(aset, kind):
        return aset.replace(annotations=aset.annotations.select(aset.annotations.kind == kind))

    boxes = compare(only(gt, Kind.RECTANGLE), only(ds, Kind.RECTANGLE)).summary["accuracy"]
    polygons = compare(only(gt, Kind.POLYGON), only(ds, Kind.POLYGON)).summary["accuracy"]
    tags = [only(gt, Kind.TAG).annotations, only(ds, Kind.TAG).annotations]
    scene = [dict(zip(a.item.tolist(), a.label.tolist(), strict=True)) for a in tags]
    gold = sorted(set(scene[0]) & set(scene[1]))
    same = np.mean([scene[0][i] == scene[1][i] for i in gold])
    assert len(gold) == 12
    assert a3["per_control"]["bbox"]["value"] == pytest.approx(boxes)
    assert a3["per_control"]["sign"]["value"] == pytest.approx(polygons)
    assert a3["per_control"]["scene"]["value"] == pytest.approx(same)
    assert a3["accuracy"] == pytest.approx((boxes + polygons + same) / 3)
    assert a3["gold_items"] == 12 and a3["items"] == 30
    # AI-assisted share, counted independently from the raw export: labelled regions whose
    # origin is "prediction" among annotator3's results (tags carry no origin: manual).
    raw = json.loads(EXPORT.read_text())
    kept = total = 0
    for task in raw:
        for ann in task["annotations"]:
            if ann["completed_by"]["email"] != "annotator3@example.com":
                continue
            for r in ann["result"]:
                if r["from_name"] in ("bbox", "sign", "scene"):
                    total += 1
                    kept += r.get("origin") == "prediction"
    assert a3["ai_assisted_share"] == pytest.approx(kept / total)
    leads = [
        a["lead_time"]
        for t in raw
        for a in t["annotations"]
        if a["completed_by"]["email"] == "annotator3@example.com"
    ]
    assert a3["median_seconds_per_item"] == pytest.approx(float(np.median(leads)))
    assert a3["rubber_stamping"] and not cards["annotator1@example.com"]["rubber_stamping"]
    assert min(cards, key=lambda n: cards[n]["peer_agreement"]) == "annotator3@example.com"
    lo, hi = a3["accuracy_ci95"]
    assert lo < a3["accuracy"] < hi
    assert a3["approval_rate"] is None  # Community exports carry no reviews
    assert {"annotated": "person", "truth": "car", "count": 2} in a3["confused_labels"]


def test_per_label_and_alerts(bundled):
    aset, cards = bundled
    labels = {row["label"]: row for row in per_label(aset)}
    assert labels["person"]["error_rate"] == 0.0
    assert labels["car"]["gt_count"] == 75  # 25 GT cars x 3 annotators
    found = alerts(aset, list(cards.values()))
    kinds = [a["type"] for a in found]
    assert kinds.count("rubber_stamping") == 1
    assert {a["item"] for a in found if a["type"] == "outlier_item"} == {19, 29}
    small = next(a for a in found if a["type"] == "gt_sample_too_small")
    assert "12 gold items" in small["message"]
    strict = alerts(aset, list(cards.values()), thresholds=AlertThresholds(min_accuracy=0.8))
    low = [a for a in strict if a["type"] == "low_accuracy"]
    assert [a["annotator"] for a in low] == ["annotator3@example.com"]
    drop = alerts(aset, [], agreement_history=[0.9, 0.92, 0.91], current_agreement=0.7)
    assert [a["type"] for a in drop if a["type"] == "agreement_drop"] == ["agreement_drop"]


def test_class_imbalance_alert():
    from engine_builders import box, make_set

    aset = make_set([box(0, 0, 1, 1)] * 11 + [box(0, 0, 1, 1, "person")])
    assert [a["type"] for a in alerts(aset, [])] == ["class_imbalance"]
    assert "11.0x" in alerts(aset, [])[0]["message"]


def test_store_is_idempotent_and_ordered(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'h.db'}")
    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    a = store.save_report("job", "cvat", "job:1", {"v": 1}, project="p", key="k1", created_at=t0)
    b = store.save_report("job", "cvat", "job:1", {"v": 2}, project="p", key="k1", created_at=t0)
    c = store.save_report(
        "job", "cvat", "job:2", {"v": 3}, project="p", created_at=t0 + timedelta(days=1)
    )
    assert a == b and c != a
    rows = store.list_reports(project="p")
    assert [r.report["v"] for r in rows] == [3, 2]
    assert store.get_report(a).created_at == t0
    with pytest.raises(NotFound, match="no stored report with id 999"):
        store.get_report(999)


def test_drift_on_seeded_sequence(tmp_path):
    rng = np.random.default_rng(42)
    values = list(0.85 + rng.normal(0, 0.01, 12))
    values[8] -= 0.2  # one bad batch
    found = drift(values, window=5, drop=0.1)
    assert [d["index"] for d in found] == [8]
    url = f"sqlite:///{tmp_path / 'h.db'}"
    store = open_store(url)
    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    for i, v in enumerate(values):
        store.save_report(
            "scorecards",
            "file",
            "batch",
            {"summary": {"mean_agreement": v}},
            project="proj",
            created_at=t0 + timedelta(hours=i),
        )
    out = tmp_path / "history.json"
    res = CliRunner().invoke(
        main, ["history", "--project", "proj", "--store", url, "--json", str(out)]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert [d["index"] for d in data["drift"]["agreement"]] == [8]
    assert len(data["runs"]) == 12


def test_scorecards_cli_saves_history(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    out = tmp_path / "cards.json"
    for _ in range(2):
        res = CliRunner().invoke(
            main, ["scorecards", str(EXPORT), "--store", url, "--json", str(out), "--quiet"]
        )
        assert res.exit_code == 0, res.output
    assert len(open_store(url).list_reports(kind="scorecards")) == 2
    data = json.loads(out.read_text())
    # The headline is the mean over the project's controls (issue #19): matched-F1 on the
    # boxes and on the polygons (from the CVAT XML replicas, another reader), and the share of
    # annotator pairs giving the same scene tag, counted from the raw export.
    from itertools import combinations

    from labelgate.agreement.report import pair_agreement
    from labelgate.model import Kind

    cvat = EXPORT.parents[1] / "cvat"
    sets = [read_any(cvat / f"annotator{i}.xml", annotator=f"a{i}") for i in (1, 2, 3)]

    def f1(kind):
        def only(a):
            return a.replace(annotations=a.annotations.select(a.annotations.kind == kind))

        return np.mean([pair_agreement(only(a), only(b))["f1"] for a, b in combinations(sets, 2)])

    scenes = {}
    for task in json.loads(EXPORT.read_text()):
        for ann in task["annotations"]:
            if ann["ground_truth"]:
                continue
            for r in ann["result"]:
                if r["from_name"] == "scene":
                    scenes.setdefault(task["id"], []).append(r["value"]["choices"][0])
    same = [float(a == b) for v in scenes.values() for a, b in combinations(v, 2)]
    expected = (f1(Kind.RECTANGLE) + f1(Kind.POLYGON) + np.mean(same)) / 3
    assert data["summary"]["mean_agreement"] == pytest.approx(expected)


def test_file_runs_are_kept_per_file_not_per_file_name(tmp_path):
    """Two projects' export.json files get two histories (issue #19)."""
    import shutil

    url = f"sqlite:///{tmp_path / 'h.db'}"
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        shutil.copy(EXPORT, folder / "export.json")
        shutil.copy(EXPORT.parent / "config.xml", folder / "config.xml")
    for name, runs in (("one", 2), ("two", 1)):
        for _ in range(runs):
            res = CliRunner().invoke(
                main,
                ["scorecards", str(tmp_path / name / "export.json"), "--store", url, "--quiet"],
            )
            assert res.exit_code == 0, res.output
    for name, runs in (("one", 2), ("two", 1)):
        out = tmp_path / f"{name}.json"
        res = CliRunner().invoke(
            main,
            [
                "history",
                "--project",
                str(tmp_path / name / "export.json"),
                "--store",
                url,
                "--json",
                str(out),
            ],
        )
        assert res.exit_code == 0, res.output
        assert len(json.loads(out.read_text())["runs"]) == runs
