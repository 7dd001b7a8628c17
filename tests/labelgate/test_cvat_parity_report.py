"""Regression tables for CVAT 2.42 parity defects 5-9 of issue #14.

Every expected value is CVAT 2.42's outcome, worked out by hand from its source
(``cvat/apps/quality_control/quality_reports.py`` and ``cvat/apps/dataset_manager/bindings.py``),
never from running labelgate:

- attribute values (``CvatToDmAnnotationConverter._convert_attrs``): every attribute declared on
  the label is materialised, an absent one taking the label's ``default_value``; number ->
  ``float(value)``, checkbox -> ``value.lower() == "true"``, anything else the text as is.
  ``match_attrs`` compares with ``==``. The importer (``_import_attribute``) keeps any number or
  select text and refuses a checkbox other than true/false in any case.
- per frame (``_generate_frame_annotation_conflicts``): shape components count shape pairs
  (matched + label-mismatched), unmatched GT and DS shapes; label components count all pairs,
  tags included. Under ``empty_is_annotated``: both items without annotations -> shape and label
  valid = total = 1; a DS item without annotations -> shape ds_count = 1; likewise GT.
- per frame ``annotations`` (``_generate_frame_annotations_summary``): counts from the frame's
  confusion matrix; under ``empty_is_annotated`` total_count == 0 -> valid = total = 1,
  ds_count == 0 -> 1, gt_count == 0 -> 1.
- job components are the sum of the frame components (``accumulate``).
- ``total_frames`` = ``len(JobData)`` = segment stop - start + 1.
"""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from engine_builders import box, make_set

from labelgate.engine import QualitySettings, compare
from labelgate.engine.aggregate import task_report
from labelgate.errors import DataWarning
from labelgate_cvat.payloads import cvat_job_to_annotations
from labelgate_cvat.pipeline import restrict_job
from labelgate_cvat.xml_export import parse_cvat_xml


def _types(report):
    return {k: v for k, v in report.summary["conflicts_by_type"].items() if v}


# --- defects 5 and 6: attribute values -------------------------------------------------------


def _job_xml(input_type, values, default, attr_xml, *, size=None, images=(0,)):
    """A one-label CVAT XML job export with one box per listed image carrying ``attr_xml``."""
    size_xml = f"<size>{size}</size>" if size is not None else ""
    shapes = "".join(
        f'<image id="{i}" name="f{i}.jpg" width="100" height="100">'
        f'<box label="car" occluded="0" xtl="0" ytl="0" xbr="10" ybr="10" z_order="0">'
        f"{attr_xml}</box></image>"
        for i in images
    )
    return (
        "<annotations><version>1.1</version><meta><job><id>1</id>"
        f"{size_xml}<labels><label><name>car</name><type>rectangle</type><attributes>"
        f"<attribute><name>a</name><mutable>False</mutable><input_type>{input_type}</input_type>"
        f"<default_value>{default}</default_value><values>{values}</values></attribute>"
        f"</attributes></label></labels></job></meta>{shapes}</annotations>"
    )


def _attr(value):
    return "" if value is None else f'<attribute name="a">{value}</attribute>'


def _read_xml(text, name):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aset = parse_cvat_xml(ET.fromstring(text), name=name, source=name, annotator=name)
    return aset, sum(issubclass(w.category, DataWarning) for w in caught)


_LABELS = [
    {
        "id": 1,
        "name": "car",
        "type": "rectangle",
        "attributes": [
            {
                "id": 11,
                "name": "speed",
                "input_type": "number",
                "values": ["0", "100", "1"],
                "default_value": "0",
                "mutable": False,
            },
            {
                "id": 12,
                "name": "color",
                "input_type": "select",
                "values": ["red", "blue"],
                "default_value": "red",
                "mutable": False,
            },
            {
                "id": 13,
                "name": "parked",
                "input_type": "checkbox",
                "values": ["false"],
                "default_value": "false",
                "mutable": False,
            },
            {
                "id": 14,
                "name": "note",
                "input_type": "text",
                "values": [],
                "default_value": "",
                "mutable": True,
            },
        ],
    }
]


def _payload_job(attrs, frames=1, **meta):
    shape = {
        "id": 1,
        "type": "rectangle",
        "frame": 0,
        "label_id": 1,
        "points": [0, 0, 10, 10],
        "attributes": attrs,
    }
    meta = {
        "start_frame": 0,
        "stop_frame": frames - 1,
        "frames": [{"name": f"f{i}.jpg", "width": 100, "height": 100} for i in range(frames)],
        **meta,
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aset = cvat_job_to_annotations({"shapes": [shape]}, meta, _LABELS, annotator="a")
    return aset, sum(issubclass(w.category, DataWarning) for w in caught)


# (input_type, declared values, default, GT text, DS text (None = omitted),
#  CVAT conflicts, data errors labelgate reports for the DS file)
ATTRIBUTE_TABLE = [
    # defect 5: float("45.0") == float("45")
    ("number", "0;100;1", "0", "45", "45.0", {}, 0),
    # off-step numbers are imported as written and compared as floats
    ("number", "0;100;1", "0", "45", "46.5", {"mismatching_attributes": 1}, 0),
    # a select value outside the declared list is kept and compared
    ("select", "red\nblue", "red", "red", "green", {"mismatching_attributes": 1}, 0),
    ("select", "red\nblue", "red", "green", "green", {}, 0),
    # checkbox text is case-insensitive
    ("checkbox", "false", "false", "true", "True", {}, 0),
    ("checkbox", "false", "false", "false", "TRUE", {"mismatching_attributes": 1}, 0),
    # defect 6: "" and omitted are equal when the default is "" (defaults filled in)
    ("text", "", "", "", None, {}, 0),
    ("text", "", "n/a", None, "n/a", {}, 0),
    ("text", "", "n/a", None, "", {"mismatching_attributes": 1}, 0),
    ("number", "0;100;1", "0", "0", None, {}, 0),
    ("checkbox", "false", "false", None, "false", {}, 0),
    # Values CVAT itself rejects: a number float() cannot read makes CVAT's report fail and a
    # checkbox "yes" is refused by its importer. labelgate keeps the shape (no missing/extra),
    # compares the text ("abc" != 45.0; "yes" reads as false like CVAT's comparator) and lists
    # one invalid_attribute data error.
    ("number", "0;100;1", "0", "45", "abc", {"mismatching_attributes": 1}, 1),
    ("checkbox", "false", "false", "false", "yes", {}, 1),
]


@pytest.mark.parametrize(
    ("input_type", "values", "default", "gt_value", "ds_value", "conflicts", "errors"),
    ATTRIBUTE_TABLE,
    ids=[
        "number-45.0",
        "number-off-step",
        "select-outside",
        "select-outside-both",
        "checkbox-True",
        "checkbox-TRUE-vs-false",
        "text-empty-vs-omitted",
        "text-omitted-takes-default",
        "text-empty-vs-default",
        "number-omitted-default",
        "checkbox-omitted-default",
        "number-unreadable",
        "checkbox-yes",
    ],
)
def test_attribute_values_in_xml_exports(
    input_type, values, default, gt_value, ds_value, conflicts, errors
):
    gt, gt_err = _read_xml(_job_xml(input_type, values, default, _attr(gt_value)), "gt")
    ds, ds_err = _read_xml(_job_xml(input_type, values, default, _attr(ds_value)), "ds")
    assert (gt_err, ds_err) == (0, errors)
    assert len(ds.annotations) == 1  # one bad attribute never drops the annotation
    assert [e["type"] for e in ds.data_errors] == ["invalid_attribute"] * errors
    r = compare(gt, ds)
    assert _types(r) == conflicts
    s = r.summary
    assert (s["valid_count"], s["missing_count"], s["extra_count"]) == (1, 0, 0)


@pytest.mark.parametrize(
    ("gt_attrs", "ds_attrs", "conflicts", "errors"),
    [
        # defect 5 through the API payload path (spec ids 11 number, 12 select, 13 checkbox)
        ([{"spec_id": 11, "value": "45"}], [{"spec_id": 11, "value": "45.0"}], {}, 0),
        ([], [{"spec_id": 12, "value": "green"}], {"mismatching_attributes": 1}, 0),
        ([{"spec_id": 13, "value": "true"}], [{"spec_id": 13, "value": "True"}], {}, 0),
        # defect 6: text "" vs omitted
        ([{"spec_id": 14, "value": ""}], [], {}, 0),
        # a spec id the label does not declare: ignored, reported, the shape kept
        ([], [{"spec_id": 99, "value": "x"}], {}, 1),
    ],
    ids=["number-45.0", "select-outside", "checkbox-True", "text-empty-vs-omitted", "bad-spec"],
)
def test_attribute_values_in_api_payloads(gt_attrs, ds_attrs, conflicts, errors):
    gt, gt_err = _payload_job(gt_attrs)
    ds, ds_err = _payload_job(ds_attrs)
    assert (gt_err, ds_err) == (0, errors) and len(ds.annotations) == 1
    if errors:
        (err,) = ds.data_errors
        assert err["type"] == "invalid_attribute" and err["field"] == "attribute spec_id 99"
        assert err["obj_id"] == 1 and err["frame"] == 0
    r = compare(gt, ds)
    assert _types(r) == conflicts and r.summary["valid_count"] == 1


# --- defect 7: empty_is_annotated in components and per-frame totals -------------------------


_MATCH = box(0, 0, 10, 10, item=0)

# (GT rows on frame 1, DS rows on frame 1, expected frame-1 annotations
#  (valid, missing, extra, total, ds, gt), frame-1 shape components (same order),
#  frame-1 label components (valid, invalid, total), job shape components, job label components,
#  job annotations (valid, total, ds, gt)); frame 0 always holds one matched car box.
EMPTY_TABLE = [
    (
        [],
        [],
        (1, 0, 0, 1, 1, 1),
        (1, 0, 0, 1, 1, 1),
        (1, 0, 1),
        (2, 0, 0, 2, 2, 2),
        (2, 0, 2),
        (2, 2, 2, 2),
    ),
    (
        # DS empty, GT two boxes: per frame the total stays 2 (only total == 0 becomes 1),
        # ds_count 0 -> 1; the job summary adds the empty DS side to its total.
        [box(0, 0, 10, 10, item=1), box(50, 50, 60, 60, item=1)],
        [],
        (0, 2, 0, 2, 1, 2),
        (0, 2, 0, 2, 1, 2),
        (0, 0, 0),
        (1, 2, 0, 3, 2, 3),
        (1, 0, 1),
        (1, 4, 2, 3),
    ),
    (
        # GT has only a tag: the GT item is not empty, so no virtual GT shape; the DS item is.
        [{"kind": "tag", "label": "day", "item": 1}],
        [],
        (0, 1, 0, 1, 1, 1),
        (0, 0, 0, 0, 1, 0),
        (0, 0, 0),
        (1, 0, 0, 1, 2, 1),
        (1, 0, 1),
        (1, 3, 2, 2),
    ),
    (
        # DS has one extra box, GT empty.
        [],
        [box(0, 0, 10, 10, item=1)],
        (0, 0, 1, 1, 1, 1),
        (0, 0, 1, 1, 1, 1),
        (0, 0, 0),
        (1, 0, 1, 2, 2, 2),
        (1, 0, 1),
        (1, 3, 2, 2),
    ),
]

_KEYS6 = ("valid_count", "missing_count", "extra_count", "total_count", "ds_count", "gt_count")
_KEYS3 = ("valid_count", "invalid_count", "total_count")


@pytest.mark.parametrize(
    ("gt_rows", "ds_rows", "f_ann", "f_shape", "f_label", "j_shape", "j_label", "j_ann"),
    EMPTY_TABLE,
    ids=["both-empty", "ds-empty", "gt-tag-only", "gt-empty"],
)
def test_empty_is_annotated_components_and_frame_totals(
    gt_rows, ds_rows, f_ann, f_shape, f_label, j_shape, j_label, j_ann
):
    gt = make_set([_MATCH, *gt_rows], frames=(0, 1))
    ds = make_set([_MATCH, *ds_rows], frames=(0, 1))
    d = compare(gt, ds, QualitySettings(empty_is_annotated=True)).to_dict()
    frame = d["frame_results"]["1"]
    assert tuple(frame["annotations"][k] for k in _KEYS6) == f_ann
    comps = frame["annotation_components"]
    assert tuple(comps["shape"][k] for k in _KEYS6) == f_shape
    assert tuple(comps["label"][k] for k in _KEYS3) == f_label
    valid, _, _, total, ds_n, gt_n = f_ann
    assert frame["annotations"]["accuracy"] == pytest.approx(valid / total)
    assert frame["annotations"]["precision"] == pytest.approx(valid / ds_n)
    assert frame["annotations"]["recall"] == pytest.approx(valid / gt_n)
    job = d["comparison_summary"]["annotation_components"]
    assert tuple(job["shape"][k] for k in _KEYS6) == j_shape
    assert tuple(job["label"][k] for k in _KEYS3) == j_label
    assert job["shape"]["accuracy"] == pytest.approx(j_shape[0] / j_shape[3])
    ann = d["annotations"]
    assert (ann["valid_count"], ann["total_count"], ann["ds_count"], ann["gt_count"]) == j_ann


def test_without_empty_is_annotated_empty_frames_count_nothing():
    gt = make_set([_MATCH], frames=(0, 1))
    ds = make_set([_MATCH], frames=(0, 1))
    d = compare(gt, ds).to_dict()
    frame = d["frame_results"]["1"]
    assert tuple(frame["annotations"][k] for k in _KEYS6) == (0,) * 6
    assert tuple(frame["annotation_components"]["shape"][k] for k in _KEYS6) == (0,) * 6
    assert frame["annotations"]["accuracy"] == 0.0  # CVAT: 0 / (0 or 1)
    shape = d["comparison_summary"]["annotation_components"]["shape"]
    assert tuple(shape[k] for k in _KEYS6) == (1, 0, 0, 1, 1, 1)


# --- defect 8: total_frames is the segment length --------------------------------------------


def _frame_share(ds, gt):
    c = compare(gt, ds).to_dict()["comparison_summary"]
    return c["frame_count"], c["total_frames"], c["frame_share"]


def test_total_frames_export_listing_part_of_its_segment():
    # A 10-frame job whose export lists frames 0-5 only; GT covers frames 0 and 2.
    gt, _ = _read_xml(_job_xml("text", "", "", "", images=(0, 2)), "gt")
    ds, _ = _read_xml(_job_xml("text", "", "", "", size=10, images=range(6)), "ds")
    assert _frame_share(ds, gt) == (2, 10, pytest.approx(0.2))


def test_total_frames_export_without_a_size_counts_its_frames():
    # No <size>: the listed frames are all labelgate knows of the segment.
    gt, _ = _read_xml(_job_xml("text", "", "", "", images=(0, 2)), "gt")
    ds, _ = _read_xml(_job_xml("text", "", "", "", images=range(4)), "ds")
    assert _frame_share(ds, gt) == (2, 4, pytest.approx(0.5))


def test_total_frames_counts_deleted_frames():
    # Live job 0-9 with frame 3 deleted: CVAT's segment still has 10 frames.
    gt, _ = _payload_job([], frames=10)
    ds, _ = _payload_job([], frames=10, deleted_frames=[3])
    assert _frame_share(ds, gt) == (9, 10, pytest.approx(0.9))


def test_total_frames_in_gt_mode_is_the_job_length_not_its_validation_frames():
    gt, _ = _payload_job([], frames=10)
    ds, _ = _payload_job([], frames=10)
    layout = {"mode": "gt", "validation_frames": [0, 2, 5, 7], "disabled_frames": []}
    assert _frame_share(restrict_job(ds, gt, layout), gt) == (4, 10, pytest.approx(0.4))


# --- defect 9: frame_results carry CVAT's per-frame fields -----------------------------------

_FRAME_KEYS = {
    "conflicts",
    "annotations",
    "annotation_components",
    "conflict_count",
    "warning_count",
    "error_count",
    "conflicts_by_type",
}
_ANN_KEYS = {*_KEYS6, "confusion_matrix", "accuracy", "precision", "recall"}
_MATRIX_KEYS = {"labels", "rows", "precision", "recall", "accuracy", "jaccard_index", "axes"}
_SHAPE_KEYS = {*_KEYS6, "mean_iou", "accuracy"}
_LABEL_KEYS = {*_KEYS3, "accuracy"}


def _two_frame_report():
    # Frame 0: car pair IoU 80/120 (low_overlap), DS car on a GT person (mismatching_label),
    # one GT car missing. Frame 1: a matched "day" tag.
    gt = make_set(
        [
            box(0, 0, 10, 10),
            box(50, 50, 60, 60, "person"),
            box(80, 80, 90, 90),
            {"kind": "tag", "label": "day", "item": 1},
        ],
        frames=(0, 1),
    )
    ds = make_set(
        [box(2, 0, 12, 10), box(50, 50, 60, 60, "car"), {"kind": "tag", "label": "day", "item": 1}],
        frames=(0, 1),
    )
    return compare(gt, ds)


_U = "unmatched"
# (frame, dotted path, CVAT value). Labels: car, person, day, night, body, unmatched.
FRAME_TABLE = [
    ("0", "annotations.valid_count", 1),
    ("0", "annotations.missing_count", 1),
    ("0", "annotations.extra_count", 0),
    ("0", "annotations.total_count", 3),
    ("0", "annotations.ds_count", 2),
    ("0", "annotations.gt_count", 3),
    ("0", "annotations.accuracy", 1 / 3),
    ("0", "annotations.precision", 1 / 2),
    ("0", "annotations.recall", 1 / 3),
    ("0", "annotations.confusion_matrix.labels", ["car", "person", "day", "night", "body", _U]),
    ("0", "annotations.confusion_matrix.axes", {"cols": "gt", "rows": "ds"}),
    (
        "0",
        "annotations.confusion_matrix.rows",
        [[1, 1, 0, 0, 0, 0], [0] * 6, [0] * 6, [0] * 6, [0] * 6, [1, 0, 0, 0, 0, 0]],
    ),
    # precision_i = diag_i / row_i, recall_i = diag_i / col_i, jaccard_i = diag / (row+col-diag),
    # accuracy_i = (T - (row_i - diag_i) - (col_i - diag_i)) / T with T = 3.
    ("0", "annotations.confusion_matrix.precision", [0.5, 0, 0, 0, 0, 0]),
    ("0", "annotations.confusion_matrix.recall", [0.5, 0, 0, 0, 0, 0]),
    ("0", "annotations.confusion_matrix.jaccard_index", [1 / 3, 0, 0, 0, 0, 0]),
    ("0", "annotations.confusion_matrix.accuracy", [1 / 3, 2 / 3, 1, 1, 1, 2 / 3]),
    ("0", "annotation_components.shape.valid_count", 2),
    ("0", "annotation_components.shape.missing_count", 1),
    ("0", "annotation_components.shape.total_count", 3),
    ("0", "annotation_components.shape.ds_count", 2),
    ("0", "annotation_components.shape.gt_count", 3),
    ("0", "annotation_components.shape.accuracy", 2 / 3),
    ("0", "annotation_components.shape.mean_iou", (2 / 3 + 1 + 0) / 3),
    ("0", "annotation_components.label.valid_count", 1),
    ("0", "annotation_components.label.invalid_count", 1),
    ("0", "annotation_components.label.total_count", 2),
    ("0", "annotation_components.label.accuracy", 0.5),
    ("0", "conflict_count", 3),
    ("0", "warning_count", 1),
    ("0", "error_count", 2),
    ("0", "conflicts_by_type", {"low_overlap": 1, "missing_annotation": 1, "mismatching_label": 1}),
    ("1", "annotations.valid_count", 1),
    ("1", "annotations.total_count", 1),
    (
        "1",
        "annotations.confusion_matrix.rows",
        [[0] * 6, [0] * 6, [0, 0, 1, 0, 0, 0], [0] * 6, [0] * 6, [0] * 6],
    ),
    ("1", "annotations.confusion_matrix.accuracy", [1, 1, 1, 1, 1, 1]),
    ("1", "annotation_components.shape.total_count", 0),
    ("1", "annotation_components.shape.mean_iou", 0),
    ("1", "annotation_components.label.valid_count", 1),
    ("1", "annotation_components.label.accuracy", 1.0),
    ("1", "conflict_count", 0),
    ("1", "conflicts_by_type", {}),
]


def _get(d, path):
    for key in path.split("."):
        d = d[key]
    return d


@pytest.mark.parametrize(("frame", "path", "expected"), FRAME_TABLE)
def test_frame_results_values(frame, path, expected):
    got = _get(_two_frame_report().to_dict()["frame_results"][frame], path)
    if isinstance(expected, float) or (
        isinstance(expected, list) and not isinstance(expected[0], str)
    ):
        assert np.asarray(got, float) == pytest.approx(np.asarray(expected, float))
    else:
        assert got == expected


def test_frame_results_have_cvat_fields_and_shapes():
    for res in _two_frame_report().to_dict()["frame_results"].values():
        assert set(res) == _FRAME_KEYS
        assert set(res["annotations"]) == _ANN_KEYS
        assert set(res["annotations"]["confusion_matrix"]) == _MATRIX_KEYS
        assert set(res["annotation_components"]) == {"shape", "label"}
        assert set(res["annotation_components"]["shape"]) == _SHAPE_KEYS
        assert set(res["annotation_components"]["label"]) == _LABEL_KEYS
        assert np.asarray(res["annotations"]["confusion_matrix"]["rows"]).shape == (6, 6)


def test_task_frame_results_sum_jobs_checking_the_same_frame():
    # CVAT's _compute_task_report: counts, matrix and components add up, conflicts concatenate,
    # mean IoU is the running mean of the jobs' values.
    r = _two_frame_report()
    frame = task_report([r, _two_frame_report()]).to_dict()["frame_results"]["0"]
    a = frame["annotations"]
    assert tuple(a[k] for k in _KEYS6) == (2, 2, 0, 6, 4, 6)
    assert a["accuracy"] == pytest.approx(1 / 3)
    cm = a["confusion_matrix"]
    assert cm["rows"][0][:2] == [2, 2] and cm["rows"][5][0] == 2
    assert cm["precision"][0] == pytest.approx(0.5)
    assert cm["accuracy"][1] == pytest.approx(2 / 3)
    comps = frame["annotation_components"]
    assert (comps["shape"]["valid_count"], comps["shape"]["total_count"]) == (4, 6)
    assert comps["shape"]["mean_iou"] == pytest.approx((2 / 3 + 1) / 3)
    assert (comps["label"]["valid_count"], comps["label"]["invalid_count"]) == (2, 2)
    assert (frame["conflict_count"], frame["warning_count"], frame["error_count"]) == (6, 2, 4)
    assert frame["conflicts_by_type"] == {
        "low_overlap": 2,
        "missing_annotation": 2,
        "mismatching_label": 2,
    }
