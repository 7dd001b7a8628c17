"""Label Studio export reader: every control type, percent→pixel maths, malformed input."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from label_studio_sdk.converter.brush import mask2rle

from labelgate.adapters import read_any
from labelgate.errors import DataWarning, FormatError
from labelgate.io.rle import decode_column_major
from labelgate.model import Kind, Origin
from labelgate_labelstudio.json_export import (
    ls_tasks_to_annotation_set,
    parse_label_config,
    read_ls_export,
    rectangle_to_pixels,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "labelstudio"

CONFIG = """<View>
  <Image name="img" value="$image"/>
  <RectangleLabels name="box" toName="img"><Label value="car"/><Label value="cat"/></RectangleLabels>
  <PolygonLabels name="poly" toName="img"><Label value="sign"/></PolygonLabels>
  <KeyPointLabels name="kp" toName="img"><Label value="eye"/></KeyPointLabels>
  <BrushLabels name="brush" toName="img"><Label value="road"/></BrushLabels>
  <EllipseLabels name="ell" toName="img"><Label value="ball"/></EllipseLabels>
  <Choices name="quality" toName="img" perRegion="true"><Choice value="good"/><Choice value="bad"/></Choices>
  <Choices name="scene" toName="img"><Choice value="day"/><Choice value="cat"/></Choices>
  <Taxonomy name="tax" toName="img"><Choice value="Animal"><Choice value="Dog"/></Choice></Taxonomy>
  <Text name="txt" value="$text"/>
  <Labels name="ner" toName="txt"><Label value="PER"/></Labels>
  <TextArea name="notes" toName="img"/>
  <Rating name="stars" toName="img" maxRating="5"/>
  <Number name="count" toName="img"/>
</View>"""

SIZE = {"original_width": 200, "original_height": 100}


def _r(rid, from_name, rtype, value, **extra):
    return {
        "id": rid,
        "from_name": from_name,
        "to_name": "img",
        "type": rtype,
        "value": value,
        **SIZE,
        **extra,
    }


def _task(result, **ann):
    return {
        "id": 7,
        "data": {"image": "/data/upload/1/pic.jpg", "text": "Ann met Bob"},
        "annotations": [{"id": 70, "completed_by": 3, "result": result, "lead_time": 4.5, **ann}],
        "predictions": [],
    }


def test_schema_from_label_config():
    schema = parse_label_config(CONFIG, ["Animal/Dog"])
    # "cat" is both a rectangle label and a scene choice: both get the control prefix.
    assert "box:cat" in schema.names and "scene:cat" in schema.names
    assert schema.get("car").kind == "rectangle"
    assert schema.get("car").attributes[0].name == "quality"  # per-region choice
    assert schema.get("Animal/Dog").kind == "tag"
    assert schema.get("PER").kind == "span"
    assert [c.name for c in schema.controls if c.type in ("TextArea", "Rating", "Number")] == [
        "notes",
        "stars",
        "count",
    ]


def test_every_control_type_converts_to_pixels():
    brush = np.zeros((100, 200), np.uint8)
    brush[10:20, 30:50] = 255
    result = [
        _r(
            "r1",
            "box",
            "rectanglelabels",
            {
                "x": 10,
                "y": 20,
                "width": 25,
                "height": 30,
                "rotation": 0,
                "rectanglelabels": ["car"],
            },
        ),
        _r(
            "r1",
            "quality",
            "choices",
            {"x": 10, "y": 20, "width": 25, "height": 30, "choices": ["bad"]},
        ),
        _r(
            "r2",
            "poly",
            "polygonlabels",
            {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": ["sign"]},
        ),
        _r("r3", "kp", "keypointlabels", {"x": 50, "y": 50, "width": 1, "keypointlabels": ["eye"]}),
        _r(
            "r4",
            "brush",
            "brushlabels",
            {"format": "rle", "rle": mask2rle(brush), "brushlabels": ["road"]},
        ),
        _r(
            "r5",
            "ell",
            "ellipselabels",
            {
                "x": 50,
                "y": 50,
                "radiusX": 10,
                "radiusY": 20,
                "rotation": 0,
                "ellipselabels": ["ball"],
            },
        ),
        _r("r6", "scene", "choices", {"choices": ["cat"]}),
        _r("r7", "tax", "taxonomy", {"taxonomy": [["Animal", "Dog"]]}),
        {
            "id": "r8",
            "from_name": "ner",
            "to_name": "txt",
            "type": "labels",
            "value": {"start": 4, "end": 7, "text": "met", "labels": ["PER"]},
        },
        _r("r9", "notes", "textarea", {"text": ["blurry", "dark"]}),
        _r("r10", "stars", "rating", {"rating": 4}),
        _r("r11", "count", "number", {"number": 2.5}),
    ]
    aset = ls_tasks_to_annotation_set([_task(result)], CONFIG)
    ann = aset.annotations
    names = aset.schema.names
    by_ref = {ref: i for i, ref in enumerate(ann.source_ref)}
    box = by_ref["r1"]
    # 10% of 200 px = 20; 20% of 100 = 20; 25% of 200 = 50; 30% of 100 = 30.
    np.testing.assert_allclose(ann.bbox[box], [20, 20, 70, 50])
    assert names[ann.label[box]] == "car" and ann.attributes["quality"][box] == "bad"
    np.testing.assert_allclose(ann.points_of(by_ref["r2"]), [[0, 0], [100, 0], [100, 50]])
    np.testing.assert_allclose(ann.points_of(by_ref["r3"]), [[100, 50]])
    mask = decode_column_major(ann.rle_of(by_ref["r4"]), 100, 200)
    np.testing.assert_array_equal(mask, brush > 0)
    np.testing.assert_allclose(ann.bbox[by_ref["r4"]], [30, 10, 50, 20])
    np.testing.assert_allclose(ann.bbox[by_ref["r5"]], [80, 30, 120, 70])
    assert names[ann.label[by_ref["r6"]]] == "scene:cat"
    assert names[ann.label[by_ref["r7"]]] == "Animal/Dog"
    span = by_ref["r8"]
    assert ann.kind[span] == Kind.SPAN and ann.span[span].tolist() == [4, 7]
    assert ann.text[by_ref["r9"]] == "blurry\ndark"
    assert ann.number[by_ref["r10"]] == 4 and ann.number[by_ref["r11"]] == 2.5
    assert ann.annotators == ("user:3",)
    assert aset.items.width.tolist() == [200] and aset.items.name.tolist() == ["pic.jpg"]
    assert aset.submissions[0].lead_time == 4.5


def test_rotated_rectangle_is_rotated_about_its_top_left_anchor():
    # 90° clockwise about (x, y) = (100, 50) px: a 40x20 box's centre moves from (120, 60)
    # to anchor + R(90°)·(20, 10) = (100 - 10, 50 + 20) = (90, 70).
    box, rot = rectangle_to_pixels(
        {"x": 50, "y": 50, "width": 20, "height": 20, "rotation": 90}, 200, 100
    )
    assert rot == 90
    np.testing.assert_allclose(box, [90 - 20, 70 - 10, 90 + 20, 70 + 10])
    # The rotated box's corners: the anchor stays a corner.
    cx, cy = 90, 70
    t = math.radians(90)
    corner = (
        cx + (-20) * math.cos(t) - (-10) * math.sin(t),
        cy + (-20) * math.sin(t) + (-10) * math.cos(t),
    )
    np.testing.assert_allclose(corner, (100, 50), atol=1e-9)


def test_ground_truth_predictions_and_cancelled():
    task = _task(
        [_r("a", "scene", "choices", {"choices": ["day"]})],
        completed_by={"id": 3, "email": "ann@x.org"},
    )
    task["annotations"].append(
        {
            "id": 71,
            "completed_by": 1,
            "ground_truth": True,
            "result": [_r("g", "scene", "choices", {"choices": ["day"]})],
        }
    )
    task["annotations"].append(
        {
            "id": 72,
            "completed_by": 4,
            "was_cancelled": True,
            "result": [_r("c", "scene", "choices", {"choices": ["day"]})],
        }
    )
    task["predictions"] = [
        {
            "id": 9,
            "model_version": "m1",
            "score": 0.7,
            "result": [_r("p", "scene", "choices", {"choices": ["cat"]})],
        }
    ]
    aset = ls_tasks_to_annotation_set([task], CONFIG)
    ann = aset.annotations
    who = [ann.annotators[i] for i in ann.annotator]
    assert sorted(who) == ["ann@x.org", "ground_truth", "prediction:m1"]
    pred = who.index("prediction:m1")
    assert ann.origin[pred] == Origin.AUTO and ann.score[pred] == pytest.approx(0.7)
    assert bool(aset.items.gold[0])
    assert len(aset.submissions) == 2  # the cancelled one is skipped


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (
            _r(
                "x",
                "box",
                "rectanglelabels",
                {"x": 1, "y": 1, "width": 1, "height": 1, "rectanglelabels": ["bus"]},
            ),
            "unknown label 'bus'",
        ),
        (
            _r(
                "x",
                "poly",
                "polygonlabels",
                {"points": [[0, 0], [1, 1]], "polygonlabels": ["sign"]},
            ),
            "polygon with 2 points",
        ),
        (
            _r(
                "x",
                "box",
                "rectanglelabels",
                {"x": float("nan"), "y": 1, "width": 1, "height": 1, "rectanglelabels": ["car"]},
            ),
            "x=nan is not a finite number",
        ),
        (
            _r(
                "x",
                "brush",
                "brushlabels",
                {"format": "rle", "rle": [1, 2, 3], "brushlabels": ["road"]},
            ),
            "bad brush RLE",
        ),
        (_r("x", "mystery", "choices", {"choices": ["a"]}), "unknown control tag 'mystery'"),
    ],
    ids=["unknown-label", "two-point-polygon", "nan-coordinate", "bad-rle", "unknown-control"],
)
def test_one_bad_region_is_a_data_error(result, message):
    good = _r("ok", "scene", "choices", {"choices": ["day"]})
    with pytest.warns(DataWarning, match=message):
        aset = ls_tasks_to_annotation_set([_task([good, result])], CONFIG, name="exp")
    assert len(aset.annotations) == 1
    (err,) = aset.data_errors
    assert err["where"] == "task 7, annotation 70, region 'x'" and message in err["message"]


def test_truncated_export_and_missing_config(tmp_path):
    path = tmp_path / "export.json"
    path.write_text('[{"id": 1, "data": {')
    with pytest.raises(FormatError, match=r"export\.json: not valid JSON"):
        read_ls_export(path, config=EXAMPLES / "config.xml")
    path.write_text(json.dumps([{"id": 1, "data": {}}]))
    with pytest.raises(FormatError, match="no label config given"):
        read_ls_export(path)
    path.write_text(json.dumps([{"data": {}}]))
    with pytest.raises(FormatError, match="task #0: id=None is not an integer"):
        read_ls_export(path, config=EXAMPLES / "config.xml")


def test_bundled_export_reads_with_config_beside_it():
    aset = read_any(EXAMPLES / "export.json")
    assert len(aset.items) == 30 and int(aset.items.gold.sum()) == 12
    names = set(aset.annotations.annotators)
    assert {"ground_truth", "prediction:yolo-demo", "annotator1@example.com"} <= names
    assert aset.data_errors == ()
    lead = [s.lead_time for s in aset.submissions if s.annotator == "annotator3@example.com"]
    assert len(lead) == 30 and all(t > 0 for t in lead)
    cars = aset.annotations.attributes["color"]
    assert {c for c in cars if c is not None} <= {"red", "blue", "white", "black"}


def test_span_text_number_scoring_against_ground_truth():
    from labelgate.agreement.report import text_agreement

    config = """<View><Text name="txt" value="$text"/>
      <Labels name="ner" toName="txt"><Label value="PER"/></Labels>
      <TextArea name="notes" toName="txt"/><Number name="n" toName="txt"/></View>"""

    def ann(uid, spans, note, n, gt=False):
        res = [
            {
                "id": f"s{uid}{k}",
                "from_name": "ner",
                "to_name": "txt",
                "type": "labels",
                "value": {"start": a, "end": b, "labels": ["PER"]},
            }
            for k, (a, b) in enumerate(spans)
        ]
        res += [
            {
                "id": f"t{uid}",
                "from_name": "notes",
                "to_name": "txt",
                "type": "textarea",
                "value": {"text": [note]},
            },
            {
                "id": f"n{uid}",
                "from_name": "n",
                "to_name": "txt",
                "type": "number",
                "value": {"number": n},
            },
        ]
        return {"id": uid, "completed_by": uid, "ground_truth": gt, "result": res}

    tasks = [
        {
            "id": 1,
            "data": {"text": "Ann met Bob"},
            "annotations": [
                ann(1, [(0, 3), (8, 11)], "abc", 2, gt=True),
                ann(2, [(0, 3)], "abd", 2),
            ],
        }
    ]
    aset = ls_tasks_to_annotation_set(tasks, config)
    parts = aset.split_by_annotator()
    res = text_agreement(parts, ["ground_truth", "user:2"])
    assert res["spans"]["exact_f1"] == pytest.approx(2 / 3)
    assert res["text"]["mean_similarity"] == pytest.approx(2 / 3)
    assert res["numbers"]["n"]["n_items"] == 1
