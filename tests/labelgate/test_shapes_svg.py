"""The conflict geometry payload and the SVG shape renderer (coordinates hand-computed)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from engine_builders import box, make_set
from pycocotools import mask as coco_mask

from labelgate.engine.compare import compare
from labelgate.reporting.shapes import (
    MAX_POINTS,
    MAX_RLE_COUNTS,
    DrawnShape,
    render_svg,
    shapes_of_conflict,
)

SVG = "{http://www.w3.org/2000/svg}"


def _svg(shapes, width, height, display):
    return ET.fromstring(render_svg(shapes, width, height, display))


def _shape(geometry, side="ds", kind="low_overlap"):
    return DrawnShape(geometry, side, kind, "car")


def test_box_scaled_to_the_display_width():
    # 200x100 image shown 400 px wide: scale 2, so (10,20)-(50,60) is x=20 y=40 w=80 h=80.
    root = _svg([_shape({"kind": "rectangle", "bbox": [10, 20, 50, 60]})], 200, 100, 400)
    assert (root.get("width"), root.get("height")) == ("400", "200")
    rect = root.find(f"{SVG}rect[@data-kind='rectangle']")
    assert [rect.get(k) for k in ("x", "y", "width", "height")] == ["20", "40", "80", "80"]
    assert rect.get("transform") is None
    assert rect.get("stroke") == "#1f77b4"  # low_overlap's colour
    assert root.find(f"{SVG}rect[@class='canvas']") is not None  # no image: blank canvas


def test_rotated_box_turns_about_its_scaled_centre():
    geo = {"kind": "rectangle", "bbox": [10, 20, 50, 60], "rotation": 30}
    rect = _svg([_shape(geo)], 200, 100, 400).find(f"{SVG}rect[@data-kind='rectangle']")
    assert rect.get("transform") == "rotate(30 60 80)"  # centre (30, 40) * 2


def test_polygon_polyline_and_gt_dashes():
    poly = {"kind": "polygon", "bbox": [0, 0, 100, 50], "points": [[0, 0], [100, 0], [100, 50]]}
    line = {"kind": "polyline", "bbox": [0, 0, 30, 10], "points": [[0, 10], [30, 0]]}
    root = _svg([_shape(poly, "gt"), _shape(line)], 200, 100, 100)  # scale 0.5
    p = root.find(f"{SVG}polygon")
    assert p.get("points") == "0,0 50,0 50,25"
    assert p.get("stroke-dasharray") == "6 4" and "gt" in p.get("class")
    q = root.find(f"{SVG}polyline")
    assert q.get("points") == "0,5 15,0" and q.get("stroke-dasharray") is None


def test_ellipse_and_skeleton_points():
    ell = {"kind": "ellipse", "bbox": [10, 10, 30, 20]}
    skel = {
        "kind": "skeleton",
        "bbox": [0, 0, 10, 10],
        "points": [[1, 2], [3, 4], [5, 6]],
        "visibility": [2, 0, 1],  # the absent one is not drawn
    }
    root = _svg([_shape(ell), _shape(skel)], 100, 100, 100)
    e = root.find(f"{SVG}ellipse")
    assert [e.get(k) for k in ("cx", "cy", "rx", "ry")] == ["20", "15", "10", "5"]
    dots = root.findall(f"{SVG}g[@data-kind='skeleton']/{SVG}circle")
    assert [(c.get("cx"), c.get("cy")) for c in dots] == [("1", "2"), ("5", "6")]


def test_mask_runs_by_hand():
    # 4x3 image, column-major counts [4, 5, 3]: pixels 4..8 are set: column 1 rows 1-2 and
    # column 2 rows 0-2. Shown 8 px wide (scale 2): two rectangles.
    geo = {"kind": "mask", "bbox": [1, 0, 3, 3], "rle": [4, 5, 3]}
    path = _svg([_shape(geo)], 4, 3, 8).find(f"{SVG}path")
    assert path.get("d") == "M2 2h2v4h-2zM4 0h2v6h-2z"


def _rasterize(d: str, width: int, height: int) -> np.ndarray:
    out = np.zeros((height, width), np.uint8)
    for x, y, w, h in re.findall(r"M(\d+) (\d+)h(\d+)v(\d+)h-\d+z", d):
        x, y, w, h = int(x), int(y), int(w), int(h)
        out[y : y + h, x : x + w] = 1
    return out


def test_mask_path_covers_exactly_the_pycocotools_mask():
    rng = np.random.default_rng(7)
    height, width = 23, 17
    mask = np.zeros((height, width), np.uint8, order="F")
    mask[3:20, 2:15] = rng.random((17, 13)) < 0.6
    mask[5:18, 6:9] = 1  # full-height runs spanning columns
    runs, current, n = [], 0, 0  # column-major counts, starting with a run of zeros
    for v in mask.flatten(order="F").tolist():
        if v == current:
            n += 1
        else:
            runs.append(n)
            current, n = v, 1
    runs.append(n)
    # pycocotools agrees these are the mask's counts (same compressed RLE).
    ours = coco_mask.frPyObjects({"size": [height, width], "counts": runs}, height, width)
    assert ours["counts"] == coco_mask.encode(np.asfortranarray(mask))["counts"]
    geo = {"kind": "mask", "bbox": [0, 0, width, height], "rle": runs}
    d = _svg([_shape(geo)], width, height, width).find(f"{SVG}path").get("d")
    assert np.array_equal(_rasterize(d, width, height), mask)


def test_conflict_geometry_payload_from_compare():
    gt = make_set([box(10, 20, 50, 60), box(60, 60, 90, 90, label="person")], size=(200, 100))
    ds = make_set([box(12, 20, 52, 60, label="person")], size=(200, 100))
    conflicts = compare(gt, ds).to_dict()["conflicts"]
    by_type = {c["type"]: c for c in conflicts}
    mism = by_type["mismatching_label"]
    assert mism["geometry"]["frame_size"] == [200, 100]
    assert mism["geometry"]["ds"]["bbox"] == [12, 20, 52, 60]
    assert mism["geometry"]["gt"]["bbox"] == [10, 20, 50, 60]
    miss = by_type["missing_annotation"]
    assert miss["geometry"]["ds"] is None and miss["geometry"]["gt"]["bbox"] == [60, 60, 90, 90]
    drawn = shapes_of_conflict(mism)
    assert [(s.side, s.label) for s in drawn] == [("ds", "person"), ("gt", "car")]


def test_payload_is_bounded():
    n = 1000
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.c_[50 + 40 * np.cos(t), 50 + 40 * np.sin(t)]
    poly = {"kind": "polygon", "points": ring.tolist(), "bbox": [10, 10, 90, 90], "label": "car"}
    # A mask of alternating pixels needs one count per pixel: far over the RLE bound.
    counts = [1] * (MAX_RLE_COUNTS + 2)
    side = int(np.ceil(np.sqrt(sum(counts))))
    mask = {"kind": "mask", "rle": [*counts, side * side - sum(counts)], "label": "car"}
    gt = make_set([poly, {**mask, "bbox": [0, 0, side, side]}], size=(side, side))
    ds = make_set([], size=(side, side))
    geos = [c["geometry"]["gt"] for c in compare(gt, ds).to_dict()["conflicts"]]
    by_kind = {g["kind"]: g for g in geos}
    assert len(by_kind["polygon"]["points"]) == MAX_POINTS
    assert by_kind["polygon"]["points"][0] == pytest.approx(ring[0].tolist())
    assert by_kind["polygon"]["points"][-1] == pytest.approx(ring[-1].tolist(), abs=0.01)
    assert "rle" not in by_kind["mask"] and by_kind["mask"]["rle_omitted"] is True
    rect = _svg([_shape(by_kind["mask"])], side, side, side).find(f"{SVG}rect[@data-kind='mask']")
    assert rect is not None  # drawn as its box


def test_only_the_first_conflicts_of_a_report_carry_geometry(monkeypatch):
    import sys

    module = sys.modules["labelgate.engine.compare"]
    monkeypatch.setattr(module, "MAX_GEOMETRY_CONFLICTS", 2)
    gt = make_set([box(10 * i, 0, 10 * i + 5, 5) for i in range(5)], size=(100, 100))
    conflicts = compare(gt, make_set([], size=(100, 100))).to_dict()["conflicts"]
    assert len(conflicts) == 5
    assert [("geometry" in c) for c in conflicts] == [True, True, False, False, False]
    assert [c["geometry"]["gt"]["bbox"] for c in conflicts[:2]] == [[0, 0, 5, 5], [10, 0, 15, 5]]
