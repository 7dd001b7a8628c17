"""``labelgate compare --settings examples/cvat/requirements.toml`` on the bundled examples.

The expected counts are read straight from the XML files with ElementTree (boxes and tags on
the 12 GT frames), independently of labelgate's readers and matcher.
"""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from labelgate.cli import main

EX = Path(__file__).resolve().parents[2] / "examples" / "cvat"
SETTINGS = EX / "requirements.toml"


def _images(name):
    return {im.get("name"): im for im in ET.parse(EX / name).getroot().iter("image")}


def _boxes(name, frames, car_only=False, large_red=False):
    n = 0
    for image_name, im in _images(name).items():
        if image_name not in frames:
            continue
        for box in im.iter("box"):
            if car_only and box.get("label") != "car":
                continue
            if large_red:
                area = (float(box.get("xbr")) - float(box.get("xtl"))) * (
                    float(box.get("ybr")) - float(box.get("ytl"))
                )
                color = {a.get("name"): a.text for a in box.iter("attribute")}.get("color")
                if area < 400 or color != "red":
                    continue
            n += 1
    return n


def _compare(tmp_path, ds):
    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        main,
        ["compare", "--gt", str(EX / "gt.xml"), "--ds", str(EX / ds), "--settings",
         str(SETTINGS), "--json", str(out), "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    return report, {it["name"]: it for it in report["summary"]["requirements"]["items"]}


def _gt_ds_totals(report, name):
    """(GT, DS) annotation counts of a requirement: its matrix's column and row sums without
    the unmatched row/column (rows DS, columns GT)."""
    rows = report["groups"][name]["comparison_summary"]["confusion_matrix"]["rows"]
    gt = sum(sum(r[:-1]) for r in rows)
    ds = sum(sum(r) for r in rows[:-1])
    return gt, ds


def test_the_ground_truth_against_itself_completes_every_requirement(tmp_path):
    frames = set(_images("gt.xml"))
    report, items = _compare(tmp_path, "gt.xml")
    # "Base polygon" is disabled: 5 requirements, 4 scored.
    reqs = report["summary"]["requirements"]
    assert (reqs["total"], reqs["enabled"], reqs["completed"]) == (5, 4, 4)
    assert list(items) == ["Base rectangle", "cars strict", "large red cars", "Base tag"]
    expected = {
        "Base rectangle": _boxes("gt.xml", frames),
        "cars strict": _boxes("gt.xml", frames, car_only=True),
        "large red cars": _boxes("gt.xml", frames, car_only=True, large_red=True),
        "Base tag": sum(len(im.findall("tag")) for im in _images("gt.xml").values()),
    }
    for name, n in expected.items():
        assert items[name]["score"] == 1.0, name
        assert items[name]["score_components"] == {
            "valid_count": n,
            "missing_count": 0,
            "extra_count": 0,
        }, name
    assert expected["large red cars"] < expected["cars strict"] < expected["Base rectangle"]
    assert report["completed"] is True


def test_annotator1_scores_the_files_own_boxes_with_the_tree_s_metrics(tmp_path):
    frames = set(_images("gt.xml"))
    report, items = _compare(tmp_path, "annotator1.xml")
    assert _gt_ds_totals(report, "Base rectangle") == (
        _boxes("gt.xml", frames),
        _boxes("annotator1.xml", frames),
    )
    assert _gt_ds_totals(report, "cars strict") == (
        _boxes("gt.xml", frames, car_only=True),
        _boxes("annotator1.xml", frames, car_only=True),
    )
    # Each score is its metric over those totals: precision = valid / DS.
    for name in ("Base rectangle", "cars strict"):
        valid = items[name]["score_components"]["valid_count"]
        assert items[name]["metric"] == "precision"
        assert items[name]["score"] == pytest.approx(valid / _gt_ds_totals(report, name)[1])
    # Inherited: "cars strict" keeps precision >= 0.9 but matches at IoU 0.9.
    params = report["groups"]["cars strict"]["parameters"]
    assert (params["iou_threshold"], params["required_score"]) == (0.9, 0.9)
    assert report["groups"]["large red cars"]["parameters"]["metric"] == "label_recall"
