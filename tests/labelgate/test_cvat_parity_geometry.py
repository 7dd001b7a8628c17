"""CVAT 2.42 parity of the geometry (issue #14, defects 1, 2, 3, 4 and 10), one table per defect.

Expected values are CVAT's: worked out by hand where the shapes allow it, otherwise computed
with CVAT's own algorithm transcribed in ``cvat_reference`` on pycocotools rasters; never from
labelgate's engine.
"""

from __future__ import annotations

import cvat_reference as cr
import numpy as np
import pytest
from engine_builders import box, make_set

from labelgate.engine import QualitySettings, compare
from labelgate.io.rle import encode_column_major

H = W = 100  # make_set's image size


def _types(report):
    return {k: v for k, v in report.summary["conflicts_by_type"].items() if v}


def _poly(points, label="car", **kw):
    return {"kind": "polygon", "label": label, "points": points, **kw}


def _line(points, label="car", **kw):
    return {"kind": "polyline", "label": label, "points": points, **kw}


def _square(x1, y1, x2, y2):
    return [x1, y1, x2, y1, x2, y2, x1, y2]


def _mask(x1, y1, x2, y2, label="car", **kw):
    m = np.zeros((H, W), bool)
    m[y1:y2, x1:x2] = True
    return {
        "kind": "mask",
        "label": label,
        "rle": encode_column_major(m),
        "bbox": [x1, y1, x2, y2],
        **kw,
    }


def _covered_rows(report):
    return {
        c["annotation_ids"][0]["obj_id"] - 1
        for c in report.conflicts
        if c["type"] == "covered_annotation"
    }


def _shape_similarity(report):
    sims = [c["similarity"] for c in report.conflicts if c["type"] == "low_overlap"]
    return sims[0] if sims else None


# --- defect 1: reversed polylines (CVAT reverses the already-resampled DS line) --------------

QUOTED_GT = [0, 0, 30, 0, 40, 0]
QUOTED_DS = [40, 2, 35, 2, 0, 2]
SIX = [0, 0, 10, 5, 20, 0, 50, 5, 60, 0, 90, 5]
SIX_REVERSED_NOISY = [90, 6, 60, -1, 53, 7, 20, 0, 10, 6, 0, -2]


@pytest.mark.parametrize(
    ("gt", "ds", "similarity", "conflicts"),
    [
        # resampled GT (0,0) (5,0) (30,0) (40,0); reversed resampled DS (0,2) (10,2) (35,2)
        # (40,2): squared distances 4, 29, 29, 4 -> (e^-0.5 + e^-3.625) / 2 = 0.3166 < 0.4
        (
            QUOTED_GT,
            QUOTED_DS,
            (np.exp(-0.5) + np.exp(-29 / 8)) / 2,
            {"missing_annotation": 1, "extra_annotation": 1},
        ),
        # an exact reverse resamples symmetrically: similarity 1, direction flagged
        (SIX, list(np.reshape(SIX, (-1, 2))[::-1].ravel()), 1.0, {"mismatching_direction": 1}),
        (
            SIX,
            SIX_REVERSED_NOISY,
            cr.line_distance(SIX, SIX_REVERSED_NOISY, H * W, 0.01, oriented=False),
            {"low_overlap": 1, "mismatching_direction": 1},
        ),
    ],
    ids=["issue-quoted-pair", "six-point-exact-reverse", "six-point-reversed-noisy"],
)
def test_defect1_reversed_polylines(gt, ds, similarity, conflicts):
    expected_ref = cr.line_distance(gt, ds, H * W, 0.01, oriented=False)
    assert similarity == pytest.approx(expected_ref, abs=1e-12)  # the table agrees with CVAT
    r = compare(make_set([_line(gt)]), make_set([_line(ds)]))
    assert _types(r) == conflicts
    assert r.summary["valid_count"] == int("missing_annotation" not in conflicts)
    # matched: the pair's similarity; unmatched: each line's best similarity (both the same)
    assert r.summary["mean_iou"] == pytest.approx(similarity, abs=1e-12)


# --- defect 2: covered_annotation compares with the shape's own area -----------------------

TRIANGLE = [0, 0, 50, 0, 0, 50]  # 1250 px^2; box [0, 0, 43, 43] leaves two 7x7/2 corners


@pytest.mark.parametrize(
    ("ds", "covered"),
    [
        # 96% of the triangle hidden: visible 49 / 1250 = 3.9% < 5% (its bbox is twice as big)
        ([_poly(TRIANGLE, z_order=0), box(0, 0, 43, 43, z_order=1)], {0}),
        # 92% hidden: visible 8% > 5%
        ([_poly(TRIANGLE, z_order=0), box(0, 0, 40, 40, z_order=1)], set()),
        # a box under a polygon that hides all of it
        ([box(10, 10, 20, 20, z_order=0), _poly(_square(5, 5, 25, 25), z_order=1)], {0}),
        # z_order decides, not document order: the box is drawn first but sits on top
        ([box(0, 0, 43, 43, z_order=1), _poly(TRIANGLE, z_order=0)], {1}),
    ],
    ids=["triangle-96pct-hidden", "triangle-92pct-hidden", "box-under-polygon", "z-order"],
)
def test_defect2_covered_uses_own_area(ds, covered):
    # CVAT: shapes sorted by z_order, boxes as polygons, rasterised by pycocotools
    order = sorted(range(len(ds)), key=lambda k: ds[k].get("z_order", 0))
    rles = []
    for k in order:
        row = ds[k]
        pts = row["points"] if row["kind"] == "polygon" else cr.box_polygon(*row["bbox"], 0)
        rles.append(cr.polygon_rle(pts, H, W))
    assert {order[i] for i in cr.find_covered(rles, 0.05)} == covered
    assert _covered_rows(compare(make_set(ds), make_set(ds))) == covered


# --- defect 3: paint order at equal z_order (group id, polygons before masks, document) -----

A, B = _square(0, 0, 40, 40), _square(10, 0, 50, 40)  # overlap 30 x 40


@pytest.mark.parametrize(
    ("gt", "ds", "valid", "conflicts", "similarity"),
    [
        # GT paints A then B (B on top); DS groups (5, 0) paint B (group 0) then A: A on top.
        # GT B (1600 px) vs DS A (1600): 1200 / 2000 = 0.6 -> match with low_overlap; GT A's
        # visible 10 x 40 vs DS B's visible 10 x 40 are disjoint -> missing + extra
        (
            [_poly(A), _poly(B)],
            [_poly(A, group=5), _poly(B)],
            1,
            {"low_overlap": 1, "missing_annotation": 1, "extra_annotation": 1},
            0.6,
        ),
        ([_poly(A), _poly(B)], [_poly(A), _poly(B)], 2, {}, None),
        # z_order outranks the group: B on top again
        ([_poly(A), _poly(B)], [_poly(A, group=5), _poly(B, z_order=1)], 2, {}, None),
        # polygons are painted before masks: the mask A comes first in the document but ends
        # up on top of polygon B
        (
            [_poly(A), _poly(B)],
            [_mask(0, 0, 40, 40), _poly(B)],
            1,
            {"low_overlap": 1, "missing_annotation": 1, "extra_annotation": 1},
            0.6,
        ),
    ],
    ids=["issue-groups-5-0", "same-order", "z-order-wins", "polygon-before-mask"],
)
def test_defect3_paint_order(gt, ds, valid, conflicts, similarity):
    r = compare(make_set(gt), make_set(ds))
    assert r.summary["valid_count"] == valid
    assert _types(r) == conflicts
    if similarity is not None:
        assert _shape_similarity(r) == similarity


def test_defect3_issue_case_against_cvat_compiled_mask():
    # the same case through CVAT's compiled mask and pycocotools: DS sequence after
    # find_instances is [B (group 0), A (group 5)], GT is [A, B]
    ra, rb = cr.polygon_rle(A, H, W), cr.polygon_rle(B, H, W)
    gt_vis = cr.panoptic([ra, rb], [0, 0], [0, 1], 2, H, W)
    ds_vis = cr.panoptic([rb, ra], [0, 0], [1, 0], 2, H, W)  # instance 0 = A
    assert cr.segment_iou(gt_vis[1], ds_vis[0]) == 0.6
    assert cr.segment_iou(gt_vis[0], ds_vis[1]) == 0.0


# --- defect 4: masks in the covered check, as covered and as covering shapes --------------


@pytest.mark.parametrize(
    ("ds", "covered"),
    [
        ([_mask(10, 10, 30, 30, z_order=0), _poly(_square(5, 5, 35, 35), z_order=1)], {0}),
        ([_poly(_square(10, 10, 30, 30), z_order=0), _mask(5, 5, 35, 35, z_order=1)], {0}),
        ([_mask(10, 10, 30, 30), _mask(5, 5, 35, 35)], {0}),
        ([_mask(10, 10, 30, 30), _mask(12, 5, 35, 35)], set()),  # 2 columns of 20 stay visible
    ],
    ids=["mask-under-polygon", "polygon-under-mask", "mask-under-mask", "mask-10pct-visible"],
)
def test_defect4_masks_in_covered_check(ds, covered):
    assert _covered_rows(compare(make_set(ds), make_set(ds))) == covered


# --- defect 10: polygons, ellipses and rotated boxes on CVAT's rasters by default -----------

TRI_A = [16.5, 15.0, 8.0, 9.6, 19.5, 9.4]
TRI_B = [17.8, 12.3, 12.4, 12.9, 14.6, 7.6]
ELL_A = [26.4, 52.5, 34.0, 58.7]
ELL_B = [25.4, 50.4, 31.6, 58.0]


def _ellipse(bbox, rotation=0.0):
    return {"kind": "ellipse", "label": "car", "bbox": bbox, "rotation": rotation}


@pytest.mark.parametrize(
    ("gt", "ds", "cvat_similarity", "exact_similarity"),
    [
        # triangles: exact IoU 0.341 (no match), CVAT's rasters 14/31 = 0.452 (match)
        (
            _poly(TRI_A),
            _poly(TRI_B),
            cr.segment_iou(cr.polygon_rle(TRI_A, H, W), cr.polygon_rle(TRI_B, H, W)),
            0.3410,
        ),
        # ellipses (one turned 81 degrees): exact 0.424 (match), rasters 0.370 (no match)
        (
            _ellipse(ELL_A),
            _ellipse(ELL_B, 81.0),
            cr.segment_iou(
                cr.polygon_rle(cr.ellipse_polygon(*ELL_A, 0), H, W),
                cr.polygon_rle(cr.ellipse_polygon(*ELL_B, 81.0), H, W),
            ),
            0.4243,
        ),
        # a box turned 90 degrees about its centre pokes out of the image (y from -5):
        # exact 100 / 300; CVAT's raster is clipped to 10 x 15 px: 100 / 250
        (box(0, 0, 20, 10), box(0, 0, 20, 10, rotation=90.0), 100 / 250, 1 / 3),
    ],
    ids=["triangles", "ellipses", "rotated-box-off-image"],
)
def test_defect10_raster_iou_by_default(gt, ds, cvat_similarity, exact_similarity):
    if gt["kind"] == "rectangle":
        rles = [
            cr.polygon_rle(cr.box_polygon(*row["bbox"], row.get("rotation", 0.0)), H, W)
            for row in (gt, ds)
        ]
        assert cr.segment_iou(*rles) == cvat_similarity
    threshold = 0.4 if gt["kind"] != "rectangle" else 0.35
    for exact, expected in ((False, cvat_similarity), (True, exact_similarity)):
        s = QualitySettings(iou_threshold=threshold, exact_geometry=exact)
        r = compare(make_set([gt]), make_set([ds]), s)
        assert r.summary["mean_iou"] == pytest.approx(expected, abs=5e-5 if exact else 1e-12)
        matched = expected >= threshold
        assert r.summary["valid_count"] == int(matched)
        want = {"low_overlap": 1} if matched else {"missing_annotation": 1, "extra_annotation": 1}
        assert _types(r) == want
