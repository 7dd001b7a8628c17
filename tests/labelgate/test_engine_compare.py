"""Golden tests of the comparison engine, one per annotation type and per conflict type."""

import numpy as np
import pytest
from engine_builders import box, make_set

from labelgate.engine import QualitySettings, compare
from labelgate.errors import DataWarning
from labelgate.io.rle import encode_column_major


def _types(report):
    return {k: v for k, v in report.summary["conflicts_by_type"].items() if v}


def test_box_match_low_overlap_and_confusion_matrix():
    gt = make_set([box(0, 0, 10, 10), box(50, 50, 60, 60, "person"), box(80, 80, 90, 90)])
    ds = make_set([box(2, 0, 12, 10), box(50, 50, 60, 60, "car")])
    r = compare(gt, ds)
    s = r.summary
    # Pair 1: IoU 80/120 = 2/3 -> match with low_overlap. Pair 2: label mismatch. Third GT missing.
    assert _types(r) == {"low_overlap": 1, "missing_annotation": 1, "mismatching_label": 1}
    assert (s["valid_count"], s["ds_count"], s["gt_count"], s["total_count"]) == (1, 2, 3, 3)
    assert s["accuracy"] == pytest.approx(1 / 3)
    assert s["precision"] == pytest.approx(1 / 2)
    assert s["recall"] == pytest.approx(1 / 3)
    cm = r.to_dict()["annotations"]["confusion_matrix"]
    assert cm["labels"][-1] == "unmatched" and cm["axes"] == {"cols": "gt", "rows": "ds"}
    rows = np.array(cm["rows"])
    assert rows[0, 0] == 1  # car/car
    assert rows[0, 1] == 1  # ds car vs gt person
    assert rows[-1, 0] == 1  # missing car
    low = next(c for c in r.conflicts if c["type"] == "low_overlap")
    assert low["severity"] == "warning" and low["similarity"] == pytest.approx(2 / 3)
    assert [a["obj_id"] for a in low["annotation_ids"]] == [1, 1]  # ds first, then gt
    # Mean IoU: pairs 2/3 and 1, missing box best similarity 0 -> (2/3 + 1 + 0) / 3.
    assert s["mean_iou"] == pytest.approx((2 / 3 + 1) / 3)


def test_box_below_threshold_is_missing_plus_extra():
    r = compare(make_set([box(0, 0, 10, 10)]), make_set([box(5, 0, 15, 10)]))  # IoU 1/3
    assert _types(r) == {"missing_annotation": 1, "extra_annotation": 1}
    r = compare(
        make_set([box(0, 0, 10, 10)]),
        make_set([box(5, 0, 15, 10)]),
        QualitySettings(iou_threshold=0.3),
    )
    assert _types(r) == {"low_overlap": 1}


def test_rotated_boxes_compare_as_polygons():
    gt = make_set([box(0, 0, 20, 10)])
    ds = make_set([box(0, 0, 20, 10, rotation=90.0)])
    # Same centre, 20x10 vs 10x20: intersection 10x10 = 100, union 300.
    r = compare(gt, ds, QualitySettings(iou_threshold=0.3, exact_geometry=True))
    assert r.conflicts[0]["similarity"] == pytest.approx(1 / 3)
    # CVAT rasterises at image resolution: the rotated box spans y in [-5, 15] and is clipped
    # at the image top to 10x15 = 150 pixels; union 200 + 150 - 100 = 250.
    r = compare(gt, ds, QualitySettings(iou_threshold=0.3))
    assert r.conflicts[0]["similarity"] == 100 / 250
    square = make_set([box(0, 0, 10, 10, rotation=90.0)])
    r = compare(make_set([box(0, 0, 10, 10)]), square)
    assert r.summary["accuracy"] == 1.0 and r.conflicts == []


def test_polygon_vs_mask_on_pixels():
    mask = np.zeros((100, 100), bool)
    mask[0:4, 0:4] = True
    gt = make_set([{"kind": "polygon", "label": "car", "points": [0, 0, 4, 0, 4, 4, 0, 4]}])
    ds = make_set(
        [{"kind": "mask", "label": "car", "rle": encode_column_major(mask), "bbox": [0, 0, 4, 4]}]
    )
    r = compare(gt, ds)
    assert r.summary["valid_count"] == 1 and r.conflicts == []


def test_grouped_polygons_match_as_one_instance_cartesian_pairs():
    gt = make_set(
        [
            {"kind": "polygon", "label": "car", "points": [0, 0, 10, 0, 10, 10, 0, 10], "group": 1},
            {
                "kind": "polygon",
                "label": "car",
                "points": [10, 0, 20, 0, 20, 10, 10, 10],
                "group": 1,
            },
        ]
    )
    ds = make_set([{"kind": "polygon", "label": "car", "points": [0, 0, 20, 0, 20, 10, 0, 10]}])
    r = compare(gt, ds, QualitySettings(compare_groups=False))
    # One instance pair expands into two matched annotation pairs.
    assert r.summary["valid_count"] == 2 and r.summary["gt_count"] == 2
    r = compare(gt, ds)
    assert _types(r) == {}  # GT group of 2 vs lone DS polygon that maps to it: no group conflict


def test_panoptic_comparison_uses_visible_parts():
    # GT: big square under a small square on top. DS: the same big square on its own.
    big = {"kind": "polygon", "label": "car", "points": [0, 0, 10, 0, 10, 10, 0, 10], "z_order": 0}
    top = {"kind": "polygon", "label": "person", "points": [0, 0, 5, 0, 5, 10, 0, 10], "z_order": 1}
    gt = make_set([big, top])
    ds = make_set([big])
    r = compare(gt, ds)
    # Visible GT car is 50 px; DS car is 100 px: IoU 0.5.
    car = next(c for c in r.conflicts if c["type"] == "low_overlap")
    assert car["similarity"] == pytest.approx(0.5)
    r = compare(gt, ds, QualitySettings(panoptic_comparison=False))
    assert "low_overlap" not in _types(r)


def test_polyline_direction():
    line = {"kind": "polyline", "label": "car", "points": [10, 10, 50, 10, 90, 10]}
    rev = {"kind": "polyline", "label": "car", "points": [90, 10, 50, 10, 10, 10]}
    r = compare(make_set([line]), make_set([rev]))
    assert _types(r) == {"mismatching_direction": 1}
    assert r.summary["valid_count"] == 1
    r = compare(make_set([line]), make_set([rev]), QualitySettings(compare_line_orientation=False))
    assert _types(r) == {}


def test_points_single_point_oks():
    p = {"kind": "points", "label": "car", "points": [50, 50]}
    q = {"kind": "points", "label": "car", "points": [51, 50]}
    r = compare(make_set([p]), make_set([q]))
    # Single points: scale = image area 10,000; OKS = exp(-1 / (2 * 10000 * 0.18**2)).
    expected = np.exp(-1 / (2 * 10000 * 0.18**2))
    assert r.summary["valid_count"] == 1
    assert r.summary["mean_iou"] == pytest.approx(expected)


def test_skeleton_oks_and_single_point_fix():
    sk = {"kind": "skeleton", "label": "body", "points": [[10, 10], [10, 30]], "vis": [2, 2]}
    moved = {"kind": "skeleton", "label": "body", "points": [[10, 12], [10, 30]], "vis": [2, 2]}
    r = compare(make_set([sk]), make_set([moved]))
    # Scale = area of mean box = 0 (a vertical line) -> image area fallback (CVAT #9957 fix).
    e = np.exp(-4 / (2 * 10000 * 0.18**2))
    assert r.summary["mean_iou"] == pytest.approx((e + 1) / 2)
    single = {"kind": "skeleton", "label": "body", "points": [[5, 5], [0, 0]], "vis": [2, 0]}
    r = compare(make_set([single]), make_set([single]))
    assert r.summary["valid_count"] == 1 and r.conflicts == []


def test_ellipse_iou():
    e1 = {"kind": "ellipse", "label": "car", "bbox": [10, 10, 30, 20]}
    e2 = {"kind": "ellipse", "label": "car", "bbox": [10, 10, 30, 20], "rotation": 90.0}
    r = compare(make_set([e1]), make_set([e1]))
    assert r.summary["valid_count"] == 1 and r.summary["mean_iou"] == pytest.approx(1.0)
    r = compare(make_set([e1]), make_set([e2]), QualitySettings(iou_threshold=0.1))
    # A 20x10 ellipse against itself turned by 90°: IoU = 2·atan(1/2)... close to 0.42.
    assert 0.35 < r.conflicts[0]["similarity"] < 0.5


def test_tags_pair_by_label():
    gt = make_set([{"kind": "tag", "label": "day"}])
    ds = make_set([{"kind": "tag", "label": "night"}, {"kind": "tag", "label": "day"}])
    r = compare(gt, ds)
    assert _types(r) == {"extra_annotation": 1}
    assert r.summary["valid_count"] == 1
    r = compare(gt, make_set([{"kind": "tag", "label": "night"}]))
    assert _types(r) == {"mismatching_label": 1}


def test_attributes_and_occlusion_mismatch_are_warnings():
    gt = make_set([box(0, 0, 10, 10, attributes={"color": "red"})])
    ds = make_set([box(0, 0, 10, 10, attributes={"color": "blue"})])
    r = compare(gt, ds)
    assert _types(r) == {"mismatching_attributes": 1}
    assert r.summary["accuracy"] == 1.0  # warnings never change the metrics
    r = compare(make_set([box(0, 0, 10, 10)]), make_set([box(0, 0, 10, 10, occluded=True)]))
    assert _types(r) == {"mismatching_attributes": 1}
    r = compare(gt, ds, QualitySettings(compare_attributes=False))
    assert _types(r) == {}


def test_group_mismatch():
    gt = make_set([box(0, 0, 10, 10), box(20, 20, 30, 30)])
    ds = make_set([box(0, 0, 10, 10, group=5), box(20, 20, 30, 30, group=5)])
    r = compare(gt, ds)
    # GT annotations are ungrouped while the DS group has two members: both pairs conflict.
    assert _types(r) == {"mismatching_groups": 2}


def test_covered_annotation_in_ds():
    ds = make_set([box(0, 0, 10, 10, z_order=0), box(0, 0, 10, 10, "person", z_order=1)])
    r = compare(make_set([]), ds)
    covered = [c for c in r.conflicts if c["type"] == "covered_annotation"]
    assert len(covered) == 1 and covered[0]["annotation_ids"][0]["obj_id"] == 1


def test_invalid_annotation_is_a_data_error_not_a_failure():
    bad = {"kind": "polygon", "label": "car", "points": [0, 0, 5, 5]}
    ds = make_set([box(0, 0, 10, 10), bad])
    with pytest.warns(DataWarning, match="polygon with 2 points"):
        r = compare(make_set([box(0, 0, 10, 10)]), ds)
    assert r.summary["accuracy"] == 1.0
    assert r.data_errors[0]["type"] == "invalid_annotation" and r.data_errors[0]["side"] == "ds"


def test_mask_runs_off_the_image_size_are_data_errors():
    """Masks whose runs do not cover the 100x100 frame exactly are dropped and named; a
    well-formed mask next to them is still scored."""
    good = np.zeros((100, 100), bool)
    good[0:4, 0:4] = True

    def mask(rle, obj):
        return {
            "kind": "mask",
            "label": "car",
            "rle": np.asarray(rle),
            "bbox": [0, 0, 4, 4],
            "source_id": obj,
        }

    ds = make_set([mask(encode_column_major(good), 1), mask([3, 4], 2), mask([9999, 2], 3)])
    gt = make_set([mask(encode_column_major(good), 1)])
    with pytest.warns(DataWarning, match="mask runs sum to") as seen:
        r = compare(gt, ds)
    assert sorted(str(w.message) for w in seen) == [
        "annotation 2 on frame 0: mask runs sum to 7, expected 100x100",
        "annotation 3 on frame 0: mask runs sum to 10001, expected 100x100",
    ]
    assert [e["obj_id"] for e in r.data_errors] == [2, 3]
    assert r.summary["valid_count"] == 1 and r.summary["ds_count"] == 1


def test_empty_is_annotated():
    gt = make_set([box(0, 0, 10, 10, item=0)], frames=(0, 1))
    ds = make_set([box(0, 0, 10, 10, item=0)], frames=(0, 1))
    assert compare(gt, ds).summary["total_count"] == 1
    s = compare(gt, ds, QualitySettings(empty_is_annotated=True)).summary
    # Frame 1 is empty on both sides: one more valid and total "annotation".
    assert (s["valid_count"], s["total_count"], s["ds_count"], s["gt_count"]) == (2, 2, 2, 2)


def test_frames_pair_by_name_and_only_shared_frames_count():
    gt = make_set([box(0, 0, 10, 10, item=7)], frames=(7,))
    ds = make_set([box(0, 0, 10, 10, item=7), box(0, 0, 10, 10, item=8)], frames=(7, 8))
    r = compare(gt, ds)
    assert r.summary["frame_count"] == 1 and r.summary["ds_count"] == 1
    assert r.to_dict()["comparison_summary"]["frame_share"] == pytest.approx(0.5)
    assert list(r.to_dict()["frame_results"]) == ["7"]
