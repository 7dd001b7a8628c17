"""Skeleton OKS and point-group similarity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from labelgate.errors import SettingsError, ValidationError
from labelgate.geometry import point_group_similarity, skeleton_oks


def _ref_oks(pa, va, pb, vb, scale, sigma):
    vis_a, vis_b = va == 2, vb == 2
    total, count = 0.0, 0
    for k in range(len(pa)):
        if vis_a[k] or vis_b[k]:
            count += 1
        if vis_a[k] and vis_b[k]:
            d2 = float(((pa[k] - pb[k]) ** 2).sum())
            total += np.exp(-d2 / (2 * scale * (2 * sigma) ** 2))
    return total / count if count else 0.0


def test_skeleton_oks_golden():
    pa = np.array([[[0, 0], [10, 0], [0, 10]]], float)
    pb = pa.copy()
    pb[0, 1] += [3, 4]  # one point off by distance 5
    va = np.array([[2, 2, 2]])
    scale, sigma = 100.0, 0.1
    expected = (2 + np.exp(-25 / (2 * 100 * 0.04))) / 3
    assert skeleton_oks(pa, va, pb, va, scale, sigma)[0, 0] == pytest.approx(expected)
    # hidden (1) counts as invisible; differing visibility: 0 term but in the denominator
    vb = np.array([[2, 1, 2]])
    assert skeleton_oks(pa, va, pb, vb, scale, sigma)[0, 0] == pytest.approx(2 / 3)
    # nothing visible -> 0
    zeros = np.zeros((1, 3), int)
    assert skeleton_oks(pa, zeros, pb, zeros, scale, sigma)[0, 0] == 0.0
    # different point counts -> 0
    assert skeleton_oks(pa, va, pb[:, :2], va[:, :2], scale, sigma)[0, 0] == 0.0


@pytest.mark.parametrize(("n", "m"), [(0, 0), (0, 2), (3, 0)])
def test_empty(n, m):
    assert skeleton_oks(
        np.zeros((n, 3, 2)), np.zeros((n, 3)), np.zeros((m, 3, 2)), np.zeros((m, 3)), 1.0, 0.1
    ).shape == (n, m)
    pts = [np.zeros((1, 2))]
    assert point_group_similarity(
        pts * n, pts * m, np.zeros((n, 4)), np.zeros((m, 4)), 100.0, 0.1, 0.4
    ).shape == (n, m)


skel = st.integers(0, 4).flatmap(
    lambda n: st.tuples(
        arrays(np.float64, (n, 4, 2), elements=st.floats(0, 50)),
        arrays(np.int64, (n, 4), elements=st.integers(0, 2)),
    )
)


@settings(max_examples=50, deadline=None)
@given(skel, skel, st.floats(1, 1e4), st.floats(0.01, 1))
def test_skeleton_oks_vs_reference(a, b, scale, sigma):
    (pa, va), (pb, vb) = a, b
    got = skeleton_oks(pa, va, pb, vb, scale, sigma)
    assert got.shape == (len(pa), len(pb))
    assert ((got >= 0) & (got <= 1)).all()
    np.testing.assert_allclose(got, skeleton_oks(pb, vb, pa, va, scale, sigma).T)
    ref = np.array(
        [
            [_ref_oks(pa[i], va[i], pb[j], vb[j], scale, sigma) for j in range(len(pb))]
            for i in range(len(pa))
        ]
    ).reshape(got.shape)
    np.testing.assert_allclose(got, ref, atol=1e-12)
    full = np.full_like(va, 2)
    np.testing.assert_allclose(np.diag(skeleton_oks(pa, full, pa, full, scale, sigma)), 1.0)


def test_skeleton_rejects_nan_visible_point():
    pa = np.array([[[np.nan, 0]]])
    with pytest.raises(ValidationError, match="row 0"):
        skeleton_oks(pa, np.array([[2]]), np.zeros((1, 1, 2)), np.array([[2]]), 1.0, 0.1)
    # an absent point may hold NaN
    assert (
        skeleton_oks(pa, np.array([[0]]), np.zeros((1, 1, 2)), np.array([[2]]), 1.0, 0.1)[0, 0]
        == 0.0
    )


def test_point_group_golden():
    a = [np.array([[0, 0], [10, 0], [10, 10]], float)]
    b = [np.array([[0, 0], [10, 3]], float)]
    box = np.array([[0, 0, 10, 10]], float)
    sigma, thr = 0.1, 0.4
    # group_bbox_size: scale = area of the mean box = 100
    e = np.exp(-9 / (2 * 100 * 0.04))  # (10,3) vs (10,0): d=3 -> 0.325 < 0.4 unmatched
    assert e < thr
    got = point_group_similarity(a, b, box, box, 10_000, sigma, thr)
    # matches: (0,0)->(0,0) only -> 1 / (1 + 2 + 1)
    assert got[0, 0] == pytest.approx(1 / 4)
    # image_size: scale = 10000 so d=3 matches -> (1 + exp(-9/800)) / (2 + 1 + 0)
    got = point_group_similarity(a, b, box, box, 10_000, sigma, thr, "image_size")
    assert got[0, 0] == pytest.approx((1 + np.exp(-9 / 800)) / 3)
    # non-intersecting boxes with group_bbox_size -> 0
    far = np.array([[50, 50, 60, 60]], float)
    assert point_group_similarity(a, [a[0] + 50], box, far, 10_000, sigma, thr)[0, 0] == 0.0


def test_single_points_use_image_area():
    a = [np.array([[5, 5]], float)]
    b = [np.array([[8, 9]], float)]  # distance 5
    za, zb = np.array([[5, 5, 5, 5]], float), np.array([[8, 9, 8, 9]], float)
    got = point_group_similarity(a, b, za, zb, 2500.0, 0.1, 0.4)
    assert got[0, 0] == pytest.approx(np.exp(-25 / (2 * 2500 * 0.04)))


@settings(max_examples=30, deadline=None)
@given(
    st.lists(arrays(np.float64, (3, 2), elements=st.floats(0, 40)), max_size=3),
    st.sampled_from(["image_size", "group_bbox_size"]),
)
def test_point_group_identity_and_range(groups, base):
    boxes = np.array([[*g.min(0), *g.max(0)] for g in groups]).reshape(-1, 4)
    got = point_group_similarity(groups, groups, boxes, boxes, 1600.0, 0.1, 0.4, base)
    assert ((got >= 0) & (got <= 1 + 1e-12)).all()
    np.testing.assert_allclose(
        got,
        point_group_similarity(groups, groups, boxes, boxes, 1600.0, 0.1, 0.4, base).T,
        atol=1e-12,
    )
    np.testing.assert_allclose(np.diag(got), 1.0)


def test_point_group_bad_setting():
    with pytest.raises(SettingsError, match="point_size_base"):
        point_group_similarity([], [], np.zeros((0, 4)), np.zeros((0, 4)), 1, 0.1, 0.4, "bbox")
