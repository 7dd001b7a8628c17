"""Agreement report on hand-built sets and on the bundled Label Studio export."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from engine_builders import SCHEMA, box

from labelgate.adapters import read_any
from labelgate.agreement.report import agreement_report, pair_agreement
from labelgate.cli import main
from labelgate.errors import ValidationError
from labelgate.model import AnnotationsBuilder, AnnotationSet, Items

EXPORT = Path(__file__).resolve().parents[2] / "examples" / "labelstudio" / "export.json"


def _multi(rows_by_annotator, frames=(0, 1)):
    b = AnnotationsBuilder()
    for who, rows in rows_by_annotator.items():
        for row in rows:
            row = dict(row)
            row["label"] = SCHEMA.index(row["label"])
            b.add(annotator=who, **row)
    items = Items.create(list(frames), name=[f"f{f}.jpg" for f in frames], width=100, height=100)
    return AnnotationSet("multi", SCHEMA, items, b.build())


def test_pair_agreement_hand_checked():
    aset = _multi(
        {
            "ann": [
                box(0, 0, 10, 10, item=0),
                box(50, 50, 60, 60, item=0),
                {"kind": "tag", "label": "day", "item": 1},
            ],
            "bob": [
                box(1, 0, 11, 10, item=0),
                box(50, 50, 60, 60, "person", item=0),
                {"kind": "tag", "label": "day", "item": 1},
            ],
        }
    )
    parts = aset.split_by_annotator()
    res = pair_agreement(parts["ann"], parts["bob"])
    # Label-equal matches: the shifted car box (IoU 9/11) and the day tag -> 2 of 3 + 3.
    assert res["matched"] == 2 and (res["n_a"], res["n_b"]) == (3, 3)
    assert res["f1"] == pytest.approx(4 / 6)
    assert res["mean_iou"] == pytest.approx(90 / 110)
    assert res["per_item"] == {0: pytest.approx(0.5), 1: 1.0}
    assert res["per_label"]["car"] == pytest.approx(2 / 3)  # 1 hit, 2 + 1 car boxes


def test_report_matrix_and_tags():
    day, night = {"kind": "tag", "label": "day"}, {"kind": "tag", "label": "night"}
    aset = _multi(
        {
            "a": [{**day, "item": 0}, {**day, "item": 1}],
            "b": [{**day, "item": 0}, {**night, "item": 1}],
            "c": [{**day, "item": 0}, {**day, "item": 1}],
        }
    )
    r = agreement_report(aset, n_boot=20)
    f1 = np.array(r["matrix"]["f1"])
    np.testing.assert_allclose(f1, [[1, 0.5, 1], [0.5, 1, 0.5], [1, 0.5, 1]])
    assert r["per_item"][0] == {
        "item": 1,
        "agreement": pytest.approx(1 / 3),
        "pairs": 3,
        "name": "f1.jpg",
    }
    coef = r["tags"]["coefficients"]["percent_agreement"]
    assert coef["value"] == pytest.approx((1 + 1 / 3) / 2)
    assert r["per_annotator"][1] == {"annotator": "b", "mean_f1_with_peers": 0.5}


def test_one_annotator_is_a_clear_error():
    aset = _multi({"a": [box(0, 0, 5, 5, item=0)]})
    with pytest.raises(ValidationError, match="at least two annotators"):
        agreement_report(aset)


def test_bundled_export_and_cli(tmp_path):
    out = tmp_path / "agree.json"
    res = CliRunner().invoke(
        main, ["agree", str(EXPORT), "--json", str(out), "--quiet", "--bootstrap", "30"]
    )
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["annotators"] == [
        "annotator1@example.com",
        "annotator2@example.com",
        "annotator3@example.com",
    ]
    peers = {p["annotator"]: p["mean_f1_with_peers"] for p in r["per_annotator"]}
    # The careless annotator3 agrees least with peers.
    assert min(peers, key=peers.get) == "annotator3@example.com"
    assert r["tags"]["classes"] == ["day", "night"]
    assert r["per_item"][0]["agreement"] <= r["per_item"][-1]["agreement"]
    with_model = agreement_report(read_any(EXPORT), include_predictions=True, n_boot=10)
    assert "prediction:yolo-demo" in with_model["annotators"]
