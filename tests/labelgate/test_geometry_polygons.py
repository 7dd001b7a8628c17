"""Polygon / rotated box / ellipse IoU and panoptic occlusion."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from labelgate.errors import ValidationError
from labelgate.geometry import (
    box_iou,
    box_similarity,
    ellipse_iou,
    ellipse_polygons,
    geometry_bounds,
    make_polygons,
    polygon_iou,
    rotated_box_iou,
    visible_parts,
)


def _polys(*rings):
    pts = np.concatenate([np.asarray(r, float).reshape(-1, 2) for r in rings])
    offsets = np.cumsum([0] + [len(r) for r in rings])
    return make_polygons(pts, offsets)


SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10]]


def test_make_polygons_valid_mask_and_repair():
    bowtie = [[0, 0], [10, 10], [10, 0], [0, 10]]
    geoms, valid = _polys(SQUARE, [[0, 0], [1, 1]], bowtie, [[5, 5]])
    np.testing.assert_array_equal(valid, [True, False, True, False])
    assert geoms[0].area == pytest.approx(100)
    assert geoms[1].is_empty and geoms[3].is_empty
    # a bow-tie is repaired into its two triangles (area 25 + 25)
    assert shapely.is_valid(geoms[2]) and geoms[2].area == pytest.approx(50)


@pytest.mark.parametrize(
    ("points", "offsets", "match"),
    [
        ([[0, 0], [np.nan, 1], [1, 1]], [0, 3], "row 0"),
        ([[0, 0], [1, 1], [1, 0], [0, 0], [1, np.inf], [1, 0]], [0, 3, 6], "row 1"),
        ([[0, 0], [1, 1], [1, 0]], [0, 2], "offsets"),
    ],
)
def test_make_polygons_errors(points, offsets, match):
    with pytest.raises(ValidationError, match=match):
        make_polygons(np.array(points, float), np.array(offsets))


def test_empty_inputs():
    geoms, valid = make_polygons(np.zeros((0, 2)), np.array([0]))
    assert geoms.shape == (0,) and valid.shape == (0,)
    assert polygon_iou(geoms, np.zeros((0, 4)), geoms, np.zeros((0, 4))).shape == (0, 0)
    g, _ = _polys(SQUARE)
    assert polygon_iou(g, geometry_bounds(g), geoms, np.zeros((0, 4))).shape == (1, 0)
    assert rotated_box_iou(np.zeros((0, 4)), [], np.zeros((2, 4)), [0, 0]).shape == (0, 2)
    assert ellipse_iou(np.zeros((3, 4)), np.zeros(3), np.zeros((0, 4)), []).shape == (3, 0)
    assert visible_parts(geoms, np.zeros(0, int), 0) == []


def test_polygon_iou_golden():
    a, _ = _polys(SQUARE, [[20, 20], [30, 20], [30, 30]])
    b, _ = _polys([[5, 0], [15, 0], [15, 10], [5, 10]], [[10, 0], [20, 0], [20, 10], [10, 10]])
    got = polygon_iou(a, geometry_bounds(a), b, geometry_bounds(b))
    np.testing.assert_allclose(got, [[1 / 3, 0], [0, 0]])


@st.composite
def convex_polys(draw, max_size=4):
    n = draw(st.integers(0, max_size))
    rings = []
    for _ in range(n):
        cx, cy = draw(st.integers(10, 50)), draw(st.integers(10, 50))
        r = draw(st.integers(3, 15))
        k = draw(st.integers(3, 8))
        phase = draw(st.floats(0, 6.28))
        t = phase + 2 * np.pi * np.arange(k) / k
        rings.append(np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1))
    return rings


def _from_rings(rings):
    if not rings:
        return np.zeros(0, dtype=object), np.zeros((0, 4))
    g, _ = _polys(*rings)
    return g, geometry_bounds(g)


@settings(max_examples=40, deadline=None)
@given(convex_polys(), convex_polys())
def test_polygon_iou_vs_per_pair_reference_and_pycocotools(ra, rb):
    ga, ba = _from_rings(ra)
    gb, bb = _from_rings(rb)
    got = polygon_iou(ga, ba, gb, bb)
    assert got.shape == (len(ra), len(rb))
    assert ((got >= 0) & (got <= 1 + 1e-12)).all()
    np.testing.assert_allclose(got, polygon_iou(gb, bb, ga, ba).T, atol=1e-12)
    for i, p in enumerate(ga):
        for j, q in enumerate(gb):
            inter = p.intersection(q).area
            assert got[i, j] == pytest.approx(inter / (p.area + q.area - inter), abs=1e-9)
    if ra and rb:
        h = w = 70
        ca = mask_utils.frPyObjects([r.ravel().tolist() for r in ra], h, w)
        cb = mask_utils.frPyObjects([r.ravel().tolist() for r in rb], h, w)
        ref = np.asarray(mask_utils.iou(ca, cb, [0] * len(rb)))
        # pycocotools rasterises at pixel resolution: small polygons differ along the outline
        np.testing.assert_allclose(got, ref, atol=0.2)


def test_identical_and_disjoint():
    g, _ = _polys(SQUARE, [[100, 100], [110, 100], [105, 110]])
    b = geometry_bounds(g)
    np.testing.assert_allclose(polygon_iou(g, b, g, b), np.eye(2))


@pytest.mark.parametrize("rotation", [0.0, 45.0, 90.0, 137.0])
def test_rotated_box_identical_is_one(rotation):
    box = np.array([[10, 20, 50, 40]], float)
    assert rotated_box_iou(box, [rotation], box, [rotation])[0, 0] == pytest.approx(1.0)


def test_rotated_box_golden():
    square = np.array([[0, 0, 10, 10]], float)
    # a 90-degree-rotated square is the same square
    assert rotated_box_iou(square, [0], square, [90])[0, 0] == pytest.approx(1.0)
    # 2:1 rectangle rotated 90 degrees about its centre: cross shape, overlap 2x2 of 4x2 each
    rect = np.array([[0, 1, 4, 3]], float)
    assert rotated_box_iou(rect, [0], rect, [90])[0, 0] == pytest.approx(4 / 12)
    # square vs itself at 45 degrees: octagon overlap = 100 * 2 * (sqrt2 - 1)
    inter = 200 * (np.sqrt(2) - 1)
    assert rotated_box_iou(square, [0], square, [45])[0, 0] == pytest.approx(inter / (200 - inter))
    # equal rotations about *different* centres: the purely geometric IoU (CVAT instead
    # short-cuts to the axis-aligned 1/3 when rotations are equal). In the rotated frame the
    # centre offset (5, 0) becomes (5 cos 30, -5 sin 30).
    other = np.array([[5, 0, 15, 10]], float)
    inter = (10 - 5 * np.cos(np.pi / 6)) * (10 - 5 * np.sin(np.pi / 6))
    assert rotated_box_iou(square, [30], other, [30])[0, 0] == pytest.approx(inter / (200 - inter))
    assert box_iou(square, other)[0, 0] == pytest.approx(1 / 3)


def test_ellipse_polygons_area_and_iou():
    box = np.array([[0, 0, 20, 10]], float)
    g = ellipse_polygons(box, [0])
    assert g[0].area == pytest.approx(np.pi * 10 * 5, rel=1e-4)
    b = shapely.bounds(ellipse_polygons(box, [90]))[0]
    np.testing.assert_allclose(b, [5, -5, 15, 15], atol=1e-3)
    # a circle is rotation invariant
    circle = np.array([[0, 0, 10, 10]], float)
    assert ellipse_iou(circle, [0], circle, [33])[0, 0] == pytest.approx(1.0, abs=1e-5)
    # concentric circles r=5 and r=10: IoU = 1/4
    big = np.array([[-5, -5, 15, 15]], float)
    assert ellipse_iou(circle, [0], big, [0])[0, 0] == pytest.approx(0.25, rel=1e-4)
    assert ellipse_iou(circle, [0], circle + 30, [0])[0, 0] == 0.0


def test_visible_parts_in_paint_order():
    # paint order: big square, then a square on its right part, then the left half on top;
    # the last two belong to one instance (owner 1)
    g, _ = _polys(
        SQUARE,
        [[8, 0], [10, 0], [10, 10], [8, 10]],
        [[0, 0], [5, 0], [5, 10], [0, 10]],
    )
    vis = visible_parts(g, np.array([0, 1, 1]), 2)
    assert vis[0].area == pytest.approx(30)  # 100 - 50 - 20
    assert vis[1].area == pytest.approx(70)  # 50 + 20, disjoint members
    union = visible_parts(g, np.array([0, 1, 1]), 2, occlude=False)
    assert [u.area for u in union] == pytest.approx([100, 70])


def test_ellipse_outline_like_datumaro():
    # Datumaro: linspace(0, 2 pi, 720), so the ring's last vertex repeats the first
    g = ellipse_polygons(np.array([[-10, -10, 10, 10]], float), [0])[0]
    assert len(g.exterior.coords) in (720, 721)
    assert g.area == pytest.approx(719 / 2 * 100 * np.sin(2 * np.pi / 719), rel=1e-9)


def test_box_similarity_cvat_shortcut():
    square = np.array([[0, 0, 10, 10]], float)
    other = np.array([[5, 0, 15, 10]], float)
    # equal rotations: axis-aligned IoU whatever the angle
    assert box_similarity(square, [30], other, [30])[0, 0] == pytest.approx(1 / 3)
    inter = 200 * (np.sqrt(2) - 1)
    assert box_similarity(square, [0], square, [45])[0, 0] == pytest.approx(inter / (200 - inter))
    assert box_similarity(np.zeros((0, 4)), [], square, [0]).shape == (0, 1)


rot_boxes = st.integers(0, 4).flatmap(
    lambda n: st.tuples(
        st.lists(
            st.tuples(
                st.integers(0, 60), st.integers(0, 60), st.integers(1, 30), st.integers(1, 30)
            ),
            min_size=n,
            max_size=n,
        ),
        st.lists(st.floats(-180, 180), min_size=n, max_size=n),
    )
)


def _rb(spec):
    boxes, rot = spec
    b = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes], float).reshape(-1, 4)
    return b, np.array(rot, float)


@settings(max_examples=40, deadline=None)
@given(rot_boxes, rot_boxes)
def test_rotated_box_iou_properties(sa, sb):
    (ba, ra), (bb, rb) = _rb(sa), _rb(sb)
    got = rotated_box_iou(ba, ra, bb, rb)
    assert got.shape == (len(ba), len(bb))
    assert ((got >= 0) & (got <= 1 + 1e-9)).all()
    np.testing.assert_allclose(got, rotated_box_iou(bb, rb, ba, ra).T, atol=1e-9)
    np.testing.assert_allclose(np.diag(rotated_box_iou(ba, ra, ba, ra)), 1.0, atol=1e-9)
    # disjoint: shifting b far away gives 0
    assert (rotated_box_iou(ba, ra, bb + 1000, rb) == 0).all()


@settings(max_examples=40, deadline=None)
@given(convex_polys(max_size=5))
def test_visible_parts_vs_reference(rings):
    g, _ = _from_rings(rings)
    vis = visible_parts(g, np.arange(len(g)), len(g))
    for i in range(len(g)):
        above = list(g[i + 1 :])
        top = shapely.union_all(above) if above else shapely.Polygon()
        assert vis[i].area == pytest.approx(g[i].difference(top).area, abs=1e-6)


def test_collinear_polygon_has_zero_area_and_iou():
    g, valid = _polys([[0, 0], [5, 5], [10, 10]], SQUARE)
    assert valid.all()
    assert g[0].area == 0.0
    iou = polygon_iou(g, np.array([[0, 0, 10, 10]] * 2, float), g, geometry_bounds(g))
    np.testing.assert_allclose(iou, [[0, 0], [0, 1]])
