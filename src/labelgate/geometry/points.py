"""Keypoint similarities: skeleton OKS and point-group matching (CVAT 2.42 semantics)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from labelgate.arrays import AnyArray, FloatArray, IntArray, IntegerArray
from labelgate.errors import SettingsError, ValidationError
from labelgate.geometry.boxes import as_boxes, box_area, box_iou

__all__ = ["POINT_SIZE_BASES", "point_group_similarity", "skeleton_oks"]

#: Accepted values of ``point_size_base`` (CVAT quality setting).
POINT_SIZE_BASES = ("image_size", "group_bbox_size")

_VISIBLE = 2


def skeleton_oks(
    pa: FloatArray,
    va: IntegerArray,
    pb: FloatArray,
    vb: IntegerArray,
    scale: FloatArray | float,
    sigma: float,
) -> FloatArray:
    """CVAT's ``oks()`` for every pair of skeletons.

    Only VISIBLE (2) points count as visible. A point pair contributes
    ``exp(-d^2 / (2 * scale * (2 * sigma)^2))`` when both are visible, 0 otherwise; the sum is
    divided by the number of points visible in either skeleton (0 when none is). Pairs with a
    non-positive scale get 0 (CVAT returns 0 before computing OKS when the boxes do not
    intersect).

    Args:
        pa: (N, K, 2) points in sublabel order.
        va: (N, K) visibility flags.
        pb: (M, K, 2).
        vb: (M, K).
        scale: (N, M) (or scalar) object area per pair.
        sigma: OKS sigma.

    Returns:
        (N, M) float64 in [0, 1]; all zeros when K differs between the two sides.

    Raises:
        ValidationError: inconsistent shapes or non-finite visible coordinates.
    """
    pa = np.asarray(pa, dtype=np.float64)
    pb = np.asarray(pb, dtype=np.float64)
    n, m = pa.shape[0] if pa.ndim else 0, pb.shape[0] if pb.ndim else 0
    if n == 0 or m == 0:
        return np.zeros((n, m))
    if pa.ndim != 3 or pb.ndim != 3 or pa.shape[2] != 2 or pb.shape[2] != 2:
        raise ValidationError(f"skeleton points: expected (N, K, 2), got {pa.shape}, {pb.shape}")
    if pa.shape[1] != pb.shape[1]:
        return np.zeros((n, m))  # CVAT: point lists of different lengths never match
    vis_a = np.asarray(va).reshape(n, -1) == _VISIBLE
    vis_b = np.asarray(vb).reshape(m, -1) == _VISIBLE
    if vis_a.shape[1] != pa.shape[1] or vis_b.shape[1] != pb.shape[1]:
        raise ValidationError("skeleton visibility: expected one flag per point")
    for name, p, vis in (("a", pa, vis_a), ("b", pb, vis_b)):
        bad = ~np.isfinite(p).all(axis=2) & vis
        if bad.any():
            raise ValidationError(
                f"skeleton {name} row {int(np.argwhere(bad)[0, 0])}: non-finite visible point"
            )
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), (n, m))
    d2 = ((np.nan_to_num(pa)[:, None] - np.nan_to_num(pb)[None]) ** 2).sum(axis=-1)  # (N,M,K)
    both = vis_a[:, None, :] & vis_b[None, :, :]
    either = (vis_a[:, None, :] | vis_b[None, :, :]).sum(axis=-1)
    denom = 2 * s * (2 * sigma) ** 2
    safe = np.where(denom > 0, denom, 1.0)
    terms = np.where(both, np.exp(-d2 / safe[..., None]), 0.0)
    out: FloatArray = np.divide(terms.sum(axis=-1), either, out=np.zeros((n, m)), where=either > 0)
    out[~(denom > 0)] = 0.0
    return out


def _match_points(sim: FloatArray, threshold: float) -> IntArray:
    """CVAT ``match_segments`` on a similarity matrix; returns matched (i, j) rows."""
    n, m = sim.shape
    size = max(n, m)
    cost = np.ones((size, size))
    cost[:n, :m] = 1.0 - np.nan_to_num(sim, nan=0.0)
    cost[cost > 1.0 - threshold] = 1.0
    rows, cols = linear_sum_assignment(cost)
    ok = (rows < n) & (cols < m)
    rows, cols = rows[ok], cols[ok]
    good = cost[rows, cols] < 1.0
    pairs: IntArray = np.stack([rows[good], cols[good]], axis=1)  # scipy's result is untyped
    return pairs


def point_group_similarity(
    points_a: Sequence[FloatArray],
    points_b: Sequence[FloatArray],
    bbox_a: FloatArray,
    bbox_b: FloatArray,
    image_area: float,
    sigma: float,
    iou_threshold: float,
    point_size_base: str = "group_bbox_size",
) -> FloatArray:
    """CVAT's ``match_points`` similarity for every pair of point groups.

    When both boxes have zero area (single points, or points on an axis-parallel line) the
    similarity is plain OKS in image space over the points in drawn order (0 for groups of
    different sizes). Otherwise the scale is the image area (``point_size_base='image_size'``),
    or, with ``'group_bbox_size'``, 0 similarity if the boxes do not intersect (IoU <= 0), else
    the area of the mean of the two boxes; points are paired with a Hungarian assignment on
    per-point OKS
    (pairs below ``iou_threshold`` are left unmatched), and the similarity is
    ``sum(exp(-d^2 / (2 * scale * (2 * sigma)^2)) over matches) /
    (matches + unmatched_a + unmatched_b)``.

    Args:
        points_a: N arrays of shape (k_i, 2).
        points_b: M arrays of shape (k_j, 2).
        bbox_a: (N, 4) instance boxes (group max-bbox, or the points' own bbox).
        bbox_b: (M, 4).
        image_area: width * height of the frame.
        sigma: OKS sigma.
        iou_threshold: per-point match threshold.
        point_size_base: ``"image_size"`` or ``"group_bbox_size"``.

    Returns:
        (N, M) float64 in [0, 1].

    Raises:
        SettingsError: unknown ``point_size_base``.
        ValidationError: malformed points or boxes.
    """
    if point_size_base not in POINT_SIZE_BASES:
        raise SettingsError(
            f"point_size_base: expected one of {POINT_SIZE_BASES}, got {point_size_base!r}"
        )
    n, m = len(points_a), len(points_b)
    out = np.zeros((n, m))
    if n == 0 or m == 0:
        return out
    ba, bb = as_boxes(bbox_a, "bbox_a"), as_boxes(bbox_b, "bbox_b")
    if len(ba) != n or len(bb) != m:
        raise ValidationError(f"point groups: {n} and {m} groups but {len(ba)} and {len(bb)} boxes")
    pa = [_as_points(p, "a", i) for i, p in enumerate(points_a)]
    pb = [_as_points(p, "b", j) for j, p in enumerate(points_b)]
    zero_a, zero_b = box_area(ba) <= 0, box_area(bb) <= 0
    both_zero = zero_a[:, None] & zero_b[None, :]
    scale: FloatArray = np.full((n, m), float(image_area))
    if point_size_base == "group_bbox_size":
        mean = (ba[:, None, :] + bb[None, :, :]) / 2
        mean_area = np.clip(mean[..., 2] - mean[..., 0], 0, None) * np.clip(
            mean[..., 3] - mean[..., 1], 0, None
        )
        scale = np.where(both_zero, scale, mean_area)
        candidates = both_zero | (box_iou(ba, bb) > 0)
    else:
        candidates = np.ones((n, m), dtype=bool)
    k = 2 * (2 * sigma) ** 2
    for i, j in np.argwhere(candidates):
        a, b = pa[i], pb[j]
        if len(a) == 0 or len(b) == 0 or scale[i, j] <= 0:
            continue
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1)
        sim = np.exp(-d2 / (k * scale[i, j]))
        if both_zero[i, j]:
            # CVAT: boxes without area are compared point by point in drawn order (plain OKS
            # in image space; groups of different sizes give 0), with no point matching
            out[i, j] = np.diag(sim).mean() if len(a) == len(b) else 0.0
            continue
        matched = _match_points(sim, iou_threshold)
        n_match = len(matched)
        # matches + unmatched_a + unmatched_b
        denom = n_match + (len(a) - n_match) + (len(b) - n_match)
        out[i, j] = sim[matched[:, 0], matched[:, 1]].sum() / denom
    return out


def _as_points(p: AnyArray, side: str, row: int) -> FloatArray:
    arr = np.asarray(p, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(arr).all():
        raise ValidationError(f"point group {side} row {row}: non-finite coordinates")
    return arr
