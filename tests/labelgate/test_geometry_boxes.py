"""Box IoU, overlap pre-filter and rotated corners."""

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
    box_overlap_pairs,
    box_overlap_pairs_batched,
    rotated_corners,
)

coord = st.floats(0, 100, allow_nan=False, width=32)


@st.composite
def boxes(draw, min_size=0, max_size=6):
    n = draw(st.integers(min_size, max_size))
    out = []
    for _ in range(n):
        x1, x2 = sorted((draw(coord), draw(coord)))
        y1, y2 = sorted((draw(coord), draw(coord)))
        out.append([x1, y1, x2, y2])
    return np.array(out, dtype=np.float64).reshape(n, 4)


def _ref_iou(a, b):
    pa, pb = shapely.box(*a), shapely.box(*b)
    inter = pa.intersection(pb).area
    union = pa.area + pb.area - inter
    return inter / union if union > 0 else 0.0


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 10, 10], [5, 0, 15, 10], 1 / 3),
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),  # touching
        ([0, 0, 10, 10], [2, 2, 4, 4], 0.04),  # contained: 4 / 100
        ([5, 5, 5, 5], [5, 5, 5, 5], 0.0),  # zero-area boxes
        ([0, 0, 10, 0], [0, 0, 10, 10], 0.0),
    ],
)
def test_box_iou_golden(a, b, expected):
    assert box_iou(np.array([a]), np.array([b]))[0, 0] == pytest.approx(expected)


@pytest.mark.parametrize(("n", "m"), [(0, 0), (0, 3), (2, 0)])
def test_empty_inputs(n, m):
    a, b = np.zeros((n, 4)), np.zeros((m, 4))
    assert box_iou(a, b).shape == (n, m)
    assert box_overlap_pairs(a, b).shape == (0, 2)
    assert box_overlap_pairs_batched(np.zeros(n), a, np.zeros(m), b).shape == (0, 2)


@pytest.mark.parametrize(
    "bad", [[[0, 0, np.nan, 1]], [[0, 0, np.inf, 1]], [[0, 0, 1]]], ids=["nan", "inf", "shape"]
)
def test_bad_boxes_raise(bad):
    with pytest.raises(ValidationError, match="bbox_a"):
        box_iou(np.array(bad, dtype=float), np.zeros((1, 4)))


@settings(max_examples=60, deadline=None)
@given(boxes(), boxes())
def test_box_iou_matches_shapely_and_symmetric(a, b):
    got = box_iou(a, b)
    assert got.shape == (len(a), len(b))
    assert ((got >= 0) & (got <= 1)).all()
    np.testing.assert_allclose(got, box_iou(b, a).T)
    ref = np.array([[_ref_iou(x, y) for y in b] for x in a]).reshape(len(a), len(b))
    np.testing.assert_allclose(got, ref, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(boxes(min_size=1))
def test_identical_boxes_iou_one(a):
    diag = np.diag(box_iou(a, a))
    positive = (a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1])
    np.testing.assert_allclose(diag[positive], 1.0)
    np.testing.assert_allclose(diag[~positive], 0.0)


@settings(max_examples=40, deadline=None)
@given(boxes(), boxes())
def test_box_iou_matches_pycocotools(a, b):
    def xywh(x):
        return np.column_stack([x[:, :2], x[:, 2:] - x[:, :2]]).astype(np.float64)

    if len(a) == 0 or len(b) == 0:
        return
    ref = np.asarray(mask_utils.iou(xywh(a), xywh(b), [0] * len(b)))
    np.testing.assert_allclose(box_iou(a, b), ref, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(boxes(), boxes())
def test_overlap_pairs_are_positive_iou(a, b):
    pairs = box_overlap_pairs(a, b)
    iou = box_iou(a, b)
    expected = np.argwhere(iou > 0)
    np.testing.assert_array_equal(pairs, expected)


@settings(max_examples=40, deadline=None)
@given(boxes(max_size=12), boxes(max_size=12), st.data())
def test_batched_equals_per_frame(a, b, data):
    fa = np.array(data.draw(st.lists(st.integers(0, 3), min_size=len(a), max_size=len(a))))
    fb = np.array(data.draw(st.lists(st.integers(0, 3), min_size=len(b), max_size=len(b))))
    got = box_overlap_pairs_batched(fa, a, fb, b)
    ref = [
        (i, j)
        for i in range(len(a))
        for j in range(len(b))
        if fa[i] == fb[j] and box_iou(a[i : i + 1], b[j : j + 1])[0, 0] > 0
    ]
    np.testing.assert_array_equal(got, np.array(ref, dtype=np.int64).reshape(-1, 2))


def test_batched_rejects_length_mismatch():
    with pytest.raises(ValidationError, match="frame ids"):
        box_overlap_pairs_batched(np.zeros(2), np.zeros((1, 4)), np.zeros(1), np.zeros((1, 4)))


@pytest.mark.parametrize(
    ("rotation", "expected"),
    [
        (0, [[0, 0], [4, 0], [4, 2], [0, 2]]),
        (90, [[3, -1], [3, 3], [1, 3], [1, -1]]),  # clockwise on screen (y down)
        (180, [[4, 2], [0, 2], [0, 0], [4, 0]]),
    ],
)
def test_rotated_corners_golden(rotation, expected):
    got = rotated_corners(np.array([[0, 0, 4, 2]]), np.array([rotation]))
    np.testing.assert_allclose(got[0], expected, atol=1e-12)


def test_rotated_corners_45_degrees():
    got = rotated_corners(np.array([[0, 0, 2, 2]]), np.array([45.0]))[0]
    r = np.sqrt(2)
    # top-left corner swings up to the top of the diamond
    np.testing.assert_allclose(got, [[1, 1 - r], [1 + r, 1], [1, 1 + r], [1 - r, 1]], atol=1e-12)


def test_rotated_corners_rejects_nan_rotation():
    with pytest.raises(ValidationError, match="rotation"):
        rotated_corners(np.array([[0, 0, 1, 1]]), np.array([np.nan]))


def test_boxes_near_another_by_frame_and_margin():
    from labelgate.geometry import boxes_near_another

    frame = np.array([0, 0, 0, 1, 1])
    boxes = np.array(
        [
            [0, 0, 10, 10],
            [11.5, 0, 20, 10],  # gap 1.5 px to row 0
            [50, 50, 60, 60],
            [0, 0, 10, 10],  # frame 1: gap 0.5 px to row 4
            [10.5, 0, 20, 10],
        ],
        float,
    )
    np.testing.assert_array_equal(
        boxes_near_another(frame, boxes, 1.0), [True, True, False, True, True]
    )
    # grown by 0.5 on every side, only a gap under 1 px closes
    np.testing.assert_array_equal(
        boxes_near_another(frame, boxes, 0.5), [False, False, False, True, True]
    )
    assert boxes_near_another(np.zeros(0), np.zeros((0, 4)), 1.0).shape == (0,)


@settings(max_examples=60, deadline=None)
@given(boxes(max_size=30), st.floats(0, 5), st.data())
def test_boxes_near_another_equals_all_pairs(b, margin, data):
    """The x sweep finds exactly the pairs the all-pairs rule finds."""
    from labelgate.geometry import boxes_near_another

    frame = np.sort(
        np.array(data.draw(st.lists(st.integers(0, 2), min_size=len(b), max_size=len(b))))
    )
    want = np.zeros(len(b), bool)
    for i in range(len(b)):
        for j in range(i + 1, len(b)):
            if (
                frame[i] == frame[j]
                and min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0]) > -2 * margin
                and min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1]) > -2 * margin
            ):
                want[i] = want[j] = True
    np.testing.assert_array_equal(boxes_near_another(frame, b, margin), want)
