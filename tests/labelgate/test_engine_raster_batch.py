"""The all-frames raster paths give the per-frame (and pycocotools/CVAT) results exactly.

Oracles: the per-frame solvers (``_ON_RASTERS`` emptied), themselves proven against
pycocotools and CVAT in test_cvat_parity_*.py; pycocotools ``frPyObjects`` + ``iou`` +
``linear_sum_assignment`` per frame (CVAT's raster comparison); CVAT's ``_find_covered_segments``
on pycocotools rasters (tests/fixtures/cvat_reference.py).
"""

from __future__ import annotations

import json

import cvat_reference as cr
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment

from labelgate.engine import QualitySettings, compare, matching
from labelgate.engine.compare import _frame_conflicts
from labelgate.engine.conflicts import CONFLICT_TYPES, covered_rows
from labelgate.io.rle import encode_column_major
from labelgate.model import AnnotationsBuilder, AnnotationSet, Items, Kind, LabelSchema

SCHEMA = LabelSchema.from_names(["a", "b"])


def _scene(seed: int, frames: int, sizes: list[tuple[int, int]], ellipses: bool = False):
    """GT and DS with polygons, masks, groups, z_orders, DS-only and GT-only frames, frames
    of different sizes; DS shapes are jittered GT shapes plus extras."""
    rng = np.random.default_rng(seed)
    items = Items.create(
        np.arange(frames),
        width=[sizes[f % len(sizes)][0] for f in range(frames)],
        height=[sizes[f % len(sizes)][1] for f in range(frames)],
    )
    sides = [AnnotationsBuilder(["x"]), AnnotationsBuilder(["x"])]
    for f in range(frames):
        w, h = sizes[f % len(sizes)]
        for _ in range(int(rng.integers(0, 7))):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            r = rng.uniform(2, 15)
            label = int(rng.integers(0, 2))
            group = int(rng.choice([0, 0, 1, 2]))
            z = int(rng.integers(0, 3))
            for side, b in enumerate(sides):
                if (f % 7 == 3 and side == 0) or (f % 7 == 5 and side == 1):
                    continue  # one-sided frames
                if rng.random() < 0.1:
                    continue  # missing on this side
                jx, jy = rng.normal(0, 1.5, 2) if side else (0.0, 0.0)
                if ellipses:
                    b.add(
                        f,
                        Kind.ELLIPSE,
                        label,
                        bbox=(cx + jx - r, cy + jy - r * 0.7, cx + jx + r, cy + jy + r * 0.7),
                        rotation=float(rng.uniform(0, 90)),
                        annotator=0,
                    )
                    continue
                ang = np.sort(rng.uniform(0, 2 * np.pi, 6))
                pts = np.c_[cx + jx + r * np.cos(ang), cy + jy + r * np.sin(ang)]
                if side and rng.random() < 0.3:
                    yy, xx = np.mgrid[0:h, 0:w]
                    m = (xx - cx - jx) ** 2 + (yy - cy - jy) ** 2 < r * r
                    if not m.any():
                        continue
                    ys, xs = np.nonzero(m)
                    box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
                    rle = encode_column_major(m)
                    b.add(
                        f, Kind.MASK, label, rle=rle, bbox=box, group=group, z_order=z, annotator=0
                    )
                else:
                    b.add(f, Kind.POLYGON, label, points=pts, group=group, z_order=z, annotator=0)
    gt, ds = (
        AnnotationSet(n, SCHEMA, items, b.build()) for n, b in zip(("gt", "ds"), sides, strict=True)
    )
    return gt, ds


def _per_frame(gt: AnnotationSet, ds: AnnotationSet, s: QualitySettings) -> matching.Matches:
    saved = matching._ON_RASTERS
    matching._ON_RASTERS = frozenset()
    try:
        return matching.match_annotations(gt.annotations, ds.annotations, gt.items, s)
    finally:
        matching._ON_RASTERS = saved


@pytest.mark.parametrize("panoptic", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_segmentation_equals_per_frame_solver(seed, panoptic):
    gt, ds = _scene(seed, 40, [(64, 48), (50, 70), (33, 33)])
    s = QualitySettings(panoptic_comparison=panoptic, iou_threshold=0.3)
    got = matching.match_annotations(gt.annotations, ds.annotations, gt.items, s)
    want = _per_frame(gt, ds, s)
    assert len(want.gt_row) > 20  # the scene really matches things
    for field in want.__dataclass_fields__:
        a, b = getattr(got, field), getattr(want, field)
        assert a.dtype == b.dtype, field
        np.testing.assert_array_equal(a, b, err_msg=field)  # same pairs, values and order


def test_batched_ellipses_equal_per_frame_solver():
    gt, ds = _scene(3, 30, [(60, 40), (45, 45)], ellipses=True)
    s = QualitySettings()
    got = matching.match_annotations(gt.annotations, ds.annotations, gt.items, s)
    want = _per_frame(gt, ds, s)
    assert len(want.gt_row) > 20
    for field in want.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)


def test_batched_polygons_match_the_pycocotools_peer():
    """Plain polygons, no occlusion: CVAT's per-frame raster comparison, pair for pair."""
    rng = np.random.default_rng(7)
    items = Items.create(np.arange(30), width=80, height=60)
    raw: list[list[list[list[float]]]] = [[[] for _ in range(30)] for _ in range(2)]
    sides = [AnnotationsBuilder(["x"]), AnnotationsBuilder(["x"])]
    for f in range(30):
        for _ in range(int(rng.integers(1, 8))):
            c = rng.uniform(5, 55, 2)
            pts = c + rng.uniform(-9, 9, size=(5, 2))
            for side, b in enumerate(sides):
                p = np.round(pts + (rng.normal(0, 2, size=(5, 2)) if side else 0), 2)
                b.add(f, Kind.POLYGON, 0, points=p, annotator=0)
                raw[side][f].append(p.ravel().tolist())
    gt, ds = (
        AnnotationSet(n, SCHEMA, items, b.build()) for n, b in zip(("gt", "ds"), sides, strict=True)
    )
    s = QualitySettings(panoptic_comparison=False)
    got = matching.match_annotations(gt.annotations, ds.annotations, gt.items, s)
    want = set()
    for f in range(30):
        iou = np.asarray(
            mask_utils.iou(
                mask_utils.frPyObjects(raw[1][f], 60, 80),
                mask_utils.frPyObjects(raw[0][f], 60, 80),
                [0] * len(raw[0][f]),
            )
        ).T  # rows GT, columns DS
        ok = (iou >= s.iou_threshold) & (iou > 0)
        r, c = linear_sum_assignment(np.where(ok, 1 - iou, 1.0))
        g0, d0 = gt.annotations.item_range(f)[0], ds.annotations.item_range(f)[0]
        want |= {(g0 + a, d0 + b, iou[a, b]) for a, b in zip(r, c, strict=True) if ok[a, b]}
    pairs = set(zip(got.gt_row.tolist(), got.ds_row.tolist(), got.similarity.tolist(), strict=True))
    assert pairs == want


@pytest.mark.parametrize("threshold", [0.05, 0.4, 0.8])
def test_covered_boxes_equal_cvat_reference(threshold):
    """Boxes-only frames take the closed-form rectangle path; CVAT's rule on pycocotools
    rasters of the same outlines decides the expected rows."""
    rng = np.random.default_rng(11)
    h, w = 40, 50
    items = Items.create(np.arange(25), width=w, height=h)
    b = AnnotationsBuilder(["x"])
    boxes: list[list[tuple[float, float, float, float, int]]] = []
    for f in range(25):
        frame = []
        for _ in range(int(rng.integers(2, 9))):
            x, y = rng.uniform(0, 40, 2)
            bw, bh = rng.uniform(1, 25, 2)
            z = int(rng.integers(0, 2))
            frame.append((x, y, x + bw, y + bh, z))
            b.add(f, Kind.RECTANGLE, 0, bbox=(x, y, x + bw, y + bh), z_order=z, annotator=0)
        boxes.append(frame)
    ann = b.build()
    want = set()
    for f, frame in enumerate(boxes):
        order = sorted(range(len(frame)), key=lambda k: frame[k][4])
        rles = [cr.polygon_rle(cr.box_polygon(*frame[k][:4], 0), h, w) for k in order]
        lo = ann.item_range(f)[0]
        want |= {lo + order[i] for i in cr.find_covered(rles, threshold)}
    assert want  # the scene has covered boxes
    assert set(covered_rows(ann, items, threshold).tolist()) == want


def test_frame_conflicts_from_columns_equal_reading_the_dicts():
    gt, ds = _scene(5, 30, [(64, 48)])
    report = compare(gt, ds)
    data = report.to_dict()
    frames = np.array(sorted(int(k) for k in data["frame_results"]), np.int64)
    fc = _frame_conflicts(frames, data["conflicts"], None)
    for k, frame in enumerate(frames.tolist()):
        listed = [data["conflicts"][p] for p in fc.order[fc.lo[k] : fc.hi[k]].tolist()]
        n, errors = int(fc.hi[k] - fc.lo[k]), int(fc.errors[k])
        warnings = n - errors
        cells = fc.cell_frame == k
        by_type = {
            CONFLICT_TYPES[t]: c
            for t, c in zip(
                fc.cell_type[cells].tolist(), fc.cell_count[cells].tolist(), strict=True
            )
        }
        result = data["frame_results"][str(frame)]
        assert listed == result["conflicts"]
        assert n == result["conflict_count"] == len(listed)
        assert errors == sum(c["severity"] == "error" for c in listed) == result["error_count"]
        assert warnings == result["warning_count"] == n - errors
        # CVAT's Counter: types in order of first appearance
        seen: dict[str, int] = {}
        for c in listed:
            seen[c["type"]] = seen.get(c["type"], 0) + 1
        assert json.dumps(by_type) == json.dumps(seen) == json.dumps(result["conflicts_by_type"])
