"""The covered-annotation check's one-pass box path gives CVAT's answer on every frame.

Oracles: CVAT's ``_find_covered_segments`` on pycocotools rasters of the same outlines, in
CVAT's paint order (tests/fixtures/cvat_reference.py), and labelgate's general path
(:func:`covered_rows_in` on every covering shape: near-box filter, then rectangles or traced
rasters per frame), which the one-pass path replaces for frames of boxes alone.
"""

from __future__ import annotations

import cvat_reference as cr
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.engine.conflicts import _COVER_KINDS, covered_rows, covered_rows_in
from labelgate.geometry.shapes import covered_boxes
from labelgate.model import AnnotationsBuilder, Items, Kind

H, W = 30, 40

# a box corner on a 0.1 grid or off it, in the image or past its edges
coord = st.one_of(st.floats(-12, 50, allow_nan=False), st.integers(-120, 500).map(lambda v: v / 10))
shape = st.tuples(
    st.sampled_from(["box", "box", "box", "polygon", "tag"]),
    coord,
    coord,
    st.floats(0.5, 30),
    st.floats(0.5, 30),
    st.integers(0, 2),  # z_order
)
frame = st.lists(shape, max_size=9)


def _build(frames: list[list[tuple]]):
    """Annotations of the frames (frame 1 has unknown size) and each frame's CVAT outlines."""
    b = AnnotationsBuilder(["x"])
    outlines: list[list[tuple[list[float], int] | None]] = []
    for f, shapes in enumerate(frames):
        rows: list[tuple[list[float], int] | None] = []
        for kind, x, y, w, h, z in shapes:
            box = (x, y, x + w, y + h)
            if kind == "box":
                b.add(f, Kind.RECTANGLE, 0, bbox=box, z_order=z, annotator=0)
                rows.append((cr.box_polygon(*box, 0), z))
            elif kind == "polygon":  # a triangle on the 0.01 grid CVAT rounds to
                pts = np.round([[x, y], [x + w, y], [x, y + h]], 2)
                b.add(f, Kind.POLYGON, 0, points=pts, z_order=z, annotator=0)
                rows.append((pts.ravel().tolist(), z))
            else:  # tags never cover nor are covered
                b.add(f, Kind.TAG, 0, annotator=0)
                rows.append(None)
        outlines.append(rows)
    n = max(len(frames), 1)
    items = Items.create(np.arange(n), width=[0 if f == 1 else W for f in range(n)], height=[H] * n)
    return b.build(), items, outlines


def _cvat_covered(ann, outlines, threshold: float) -> set[int]:
    want: set[int] = set()
    for f, rows in enumerate(outlines):
        if f == 1:
            continue  # unknown size: skipped
        lo = ann.item_range(f)[0]
        shapes = [k for k, r in enumerate(rows) if r is not None]
        order = sorted(shapes, key=lambda k: rows[k][1])  # stable: document order ties
        rles = [cr.polygon_rle(rows[k][0], H, W) for k in order]
        want |= {lo + order[i] for i in cr.find_covered(rles, threshold)}
    return want


@settings(max_examples=150, deadline=None)
@given(st.lists(frame, max_size=5), st.sampled_from([0.0, 0.05, 0.3, 0.8, 1.0]))
def test_covered_rows_equal_cvat_and_the_general_path(frames, threshold):
    ann, items, outlines = _build(frames)
    got = covered_rows(ann, items, threshold)
    assert got.dtype == np.int64
    assert np.all(np.diff(got) > 0)
    cover = np.flatnonzero(np.isin(ann.kind, _COVER_KINDS))
    np.testing.assert_array_equal(got, covered_rows_in(ann, cover, items, threshold))
    assert set(got.tolist()) == _cvat_covered(ann, outlines, threshold)


def test_dense_box_frames_equal_cvat():
    """Many overlapping boxes per frame (some past the image edges, mixed z_order): the sweep
    and the bound skip nothing CVAT would flag."""
    rng = np.random.default_rng(5)
    frames = []
    for _ in range(12):
        frames.append(
            [
                ("box", *rng.uniform(-5, 35, 2), *rng.uniform(1, 20, 2), int(rng.integers(0, 3)))
                for _ in range(int(rng.integers(20, 70)))  # big frames take numpy's sort
            ]
        )
    ann, items, outlines = _build(frames)
    got = set(covered_rows(ann, items, 0.05).tolist())
    want = _cvat_covered(ann, outlines, 0.05)
    assert len(want) > 50
    assert got == want


@pytest.mark.parametrize(
    ("kinds", "boxes", "settled", "hidden"),
    [
        # boxes alone: settled, the lower one is covered
        ([Kind.RECTANGLE, Kind.RECTANGLE], [(0, 0, 10, 10), (0, 0, 10, 10)], True, [1, 0]),
        # a box past the top-left corner has a pixel rectangle too
        ([Kind.RECTANGLE, Kind.RECTANGLE], [(-5, -5, 10, 10), (-8, -8, 11, 11)], True, [1, 0]),
        # a degenerate outline (zero width) goes to the traced rasters with its frame
        ([Kind.RECTANGLE, Kind.RECTANGLE], [(3, 0, 3, 10), (0, 0, 10, 10)], False, [0, 0]),
        # a polygon in the frame: traced
        ([Kind.RECTANGLE, Kind.POLYGON], [(0, 0, 10, 10), (0, 0, 10, 10)], False, [0, 0]),
        # points do not take part (nothing is painted over the box)
        ([Kind.RECTANGLE, Kind.POINTS], [(0, 0, 10, 10), (0, 0, 10, 10)], True, [0, 0]),
    ],
    ids=["boxes", "negative-outline", "degenerate", "polygon", "points"],
)
def test_covered_boxes_settles_frames_of_boxes_alone(kinds, boxes, settled, hidden):
    kind = np.array(kinds, np.int8)
    covered, unsettled = covered_boxes(
        np.array([0, 2]), kind, np.array(boxes, float), np.zeros(2), [H], [W], 0.05
    )
    cover = np.isin(kind, _COVER_KINDS)
    np.testing.assert_array_equal(unsettled, cover & (not settled))
    np.testing.assert_array_equal(covered, np.array(hidden, bool))


def test_covered_boxes_skips_frames_of_unknown_size():
    covered, unsettled = covered_boxes(
        np.array([0, 2]),
        np.full(2, Kind.POLYGON, np.int8),
        np.zeros((2, 4)),
        np.zeros(2),
        [0],
        [W],
        0.05,
    )
    assert not covered.any() and not unsettled.any()
