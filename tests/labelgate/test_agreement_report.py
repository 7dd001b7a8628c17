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
from labelgate.model import AnnotationsBuilder, AnnotationSet, Items, Submission

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
    assert res["per_label_mean_iou"] == {"car": pytest.approx(90 / 110)}


def test_report_iou_summary_per_item_and_per_label():
    # Three annotators on two frames. Frame 0: a (0,0,10,10), b shifted by 1 (IoU 90/110 with
    # a), c shifted by 2 the other way (IoU 80/120 with a; 70/130 with b). Frame 1: identical
    # person boxes (IoU 1 for each pair).
    aset = _multi(
        {
            "a": [box(0, 0, 10, 10, item=0), box(50, 50, 60, 60, "person", item=1)],
            "b": [box(1, 0, 11, 10, item=0), box(50, 50, 60, 60, "person", item=1)],
            "c": [box(-2, 0, 8, 10, item=0), box(50, 50, 60, 60, "person", item=1)],
        }
    )
    r = agreement_report(aset, n_boot=50)
    frame0 = [90 / 110, 80 / 120, 70 / 130]
    assert r["summary"]["matched_pairs"] == 6 and r["summary"]["annotator_pairs"] == 3
    assert r["summary"]["mean_iou"] == pytest.approx((sum(frame0) + 3) / 6)
    lo, hi = r["summary"]["mean_iou_ci95"]
    assert lo <= r["summary"]["mean_iou"] <= hi
    by_item = {row["item"]: row for row in r["per_item"]}
    assert by_item[0]["mean_iou"] == pytest.approx(np.mean(frame0))
    assert by_item[1]["mean_iou"] == 1.0 and by_item[1]["agreement"] == 1.0
    assert r["per_label_mean_iou"] == {
        "car": pytest.approx(np.mean(frame0)),
        "person": 1.0,
    }
    json.dumps(r)  # JSON-ready: no numpy arrays left behind


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
        "mean_iou": None,  # tags only: no shape pairs
    }
    # One-vs-rest alpha per class is reported next to the marginals (2 items: day 5/6).
    assert r["tags"]["marginals"] == {"day": pytest.approx(5 / 6), "night": pytest.approx(1 / 6)}
    assert set(r["tags"]["per_class"]) == {"day", "night"}
    coef = r["tags"]["coefficients"]["percent_agreement"]
    assert coef["value"] == pytest.approx((1 + 1 / 3) / 2)
    # peer_agreement: the one value scorecards show too (matched-F1 here: no controls).
    assert r["per_annotator"][1] == {
        "annotator": "b",
        "mean_f1_with_peers": 0.5,
        "peer_agreement": 0.5,
    }


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


def test_text_span_and_number_sections():
    from labelgate_labelstudio.json_export import ls_tasks_to_annotation_set

    config = """<View><Text name="txt" value="$text"/>
      <Labels name="ner" toName="txt"><Label value="PER"/></Labels>
      <TextArea name="notes" toName="txt"/><Rating name="stars" toName="txt"/></View>"""

    def ann(uid, spans, note, stars):
        result = [
            {
                "id": f"s{uid}{k}",
                "from_name": "ner",
                "to_name": "txt",
                "type": "labels",
                "value": {"start": s, "end": e, "labels": ["PER"]},
            }
            for k, (s, e) in enumerate(spans)
        ]
        result.append(
            {
                "id": f"n{uid}",
                "from_name": "notes",
                "to_name": "txt",
                "type": "textarea",
                "value": {"text": [note]},
            }
        )
        result.append(
            {
                "id": f"r{uid}",
                "from_name": "stars",
                "to_name": "txt",
                "type": "rating",
                "value": {"rating": stars},
            }
        )
        return {"id": uid, "completed_by": uid, "result": result}

    tasks = [
        {
            "id": 1,
            "data": {"text": "Ann met Bob"},
            "annotations": [
                ann(1, [(0, 3), (8, 11)], "kitten", 4),
                ann(2, [(0, 3), (7, 11)], "sitting", 4),
            ],
        },
        {
            "id": 2,
            "data": {"text": "x"},
            "annotations": [ann(1, [], "same", 2), ann(2, [], "same", 3)],
        },
    ]
    aset = ls_tasks_to_annotation_set(tasks, config)
    r = agreement_report(aset, n_boot=10)
    # Task 1: one exact match of 2 + 2 spans; partial also pairs (8,11) with (7,11).
    # Task 2: no spans on either side -> not counted.
    assert r["spans"] == {"exact_f1": 0.5, "partial_f1": 1.0, "item_pairs": 1}
    assert r["text"]["mean_similarity"] == pytest.approx((1 - 3 / 7 + 1.0) / 2)
    stars = r["numbers"]["stars"]
    assert stars["n_items"] == 2 and stars["n_pairable"] == 4


def test_no_overlap_and_all_empty_are_defined():
    aset = _multi({"a": [box(0, 0, 5, 5, item=0)], "b": [box(0, 0, 5, 5, item=1)]})
    parts = aset.split_by_annotator()
    res = pair_agreement(parts["a"], parts["b"])
    assert res["items"] == 0 and res["f1"] is None  # nothing to compare, said as None
    r = agreement_report(aset, n_boot=5)
    assert r["matrix"]["f1"][0][1] is None and r["per_item"] == []
    empty = AnnotationSet(
        "e",
        SCHEMA,
        Items.create([0, 1]),
        AnnotationsBuilder().build(),
        submissions=(Submission(0, "a"), Submission(0, "b")),
    )
    r = pair_agreement(*empty.split_by_annotator().values())
    assert r["f1"] == 1.0 and r["per_item"] == {0: 1.0}  # both left item 0 empty: agreement


def test_agree_cli_with_per_annotator_files_prints_summary_matrix_and_lowest_items(tmp_path):
    cvat = EXPORT.parents[1] / "cvat"
    args = ["agree", "--gt", str(cvat / "gt.xml")]
    for n in (1, 2, 3):
        args += ["--ds", str(cvat / f"annotator{n}.xml")]
    out = tmp_path / "a.json"
    res = CliRunner().invoke(
        main, [*args, "--bootstrap", "20", "--lowest", "2", "--json", str(out)]
    )
    assert res.exit_code == 0, res.output
    text = res.output
    assert "3 annotators, 30 shared items" in text and "matched-F1 between annotators" in text
    r = json.loads(out.read_text())
    assert r["annotators"] == ["annotator1", "annotator2", "annotator3"]  # GT left out
    lowest = r["per_item"][0]["name"]
    assert lowest in text and r["per_item"][2]["name"] not in text  # only --lowest 2 listed
    # No input at all is a usage error with a clear message (exit code 2).
    bad = CliRunner().invoke(main, ["agree"])
    assert bad.exit_code == 2 and "give SOURCE" in bad.output
