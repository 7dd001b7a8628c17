"""Axis-aligned and rotated box kernels (pairwise, columnar).

Boxes are ``(N, 4)`` float arrays ``[x1, y1, x2, y2]`` in pixels. All pairwise functions return
``(N, M)`` arrays and accept empty inputs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labelgate.arrays import AnyArray, BoolArray, FloatArray, IntArray
from labelgate.errors import ValidationError

__all__ = [
    "as_boxes",
    "box_area",
    "box_iou",
    "box_overlap_pairs",
    "box_overlap_pairs_batched",
    "boxes_near_another",
    "corners_bbox",
    "rotate_about",
    "rotated_corners",
]


def as_boxes(boxes: AnyArray, name: str = "bbox") -> FloatArray:
    """Validate and convert boxes to a float64 ``(N, 4)`` array.

    Args:
        boxes: array-like of shape (N, 4), xyxy.
        name: what to call the input in error messages.

    Returns:
        The boxes as float64 (N, 4).

    Raises:
        ValidationError: wrong shape or non-finite coordinates (the first bad row is named).
    """
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValidationError(f"{name}: expected an (N, 4) xyxy array, got shape {arr.shape}")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValidationError(f"{name}: row {row} has non-finite coordinates {arr[row].tolist()}")
    return arr


def box_area(boxes: AnyArray) -> FloatArray:
    """Area of xyxy boxes; inverted boxes count as 0.

    Args:
        boxes: (N, 4) xyxy.

    Returns:
        (N,) float64 areas.
    """
    b = as_boxes(boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def _intersection(a: FloatArray, b: FloatArray) -> FloatArray:
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter: FloatArray = np.clip(w, 0, None) * np.clip(h, 0, None)
    return inter


def box_iou(a: AnyArray, b: AnyArray) -> FloatArray:
    """Pairwise axis-aligned IoU (Datumaro ``bbox_iou`` semantics).

    Zero-area boxes have IoU 0 with everything, themselves included, because the union is 0
    or the intersection is 0.

    Args:
        a: (N, 4) xyxy boxes.
        b: (M, 4) xyxy boxes.

    Returns:
        (N, M) float64 IoU in [0, 1].

    Raises:
        ValidationError: malformed or non-finite boxes.
    """
    a = as_boxes(a, "bbox_a")
    b = as_boxes(b, "bbox_b")
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    inter = _intersection(a, b)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def _overlap_mask(a: FloatArray, b: FloatArray) -> BoolArray:
    # Strict inequalities: boxes that only touch along an edge or at a corner share no area,
    # and a zero-area box overlaps nothing; every area-based IoU is 0 for such pairs.
    return (
        (np.maximum(a[..., 0], b[..., 0]) < np.minimum(a[..., 2], b[..., 2]))
        & (np.maximum(a[..., 1], b[..., 1]) < np.minimum(a[..., 3], b[..., 3]))
        & (a[..., 0] < a[..., 2])
        & (a[..., 1] < a[..., 3])
        & (b[..., 0] < b[..., 2])
        & (b[..., 1] < b[..., 3])
    )


def box_overlap_pairs(a: AnyArray, b: AnyArray) -> IntArray:
    """Index pairs whose boxes share a positive area.

    Touching boxes (shared edge or corner) and zero-area boxes are *not* overlapping: their
    area IoU is 0 whatever the exact shape inside the box, so they can be skipped safely.

    Args:
        a: (N, 4) xyxy boxes.
        b: (M, 4) xyxy boxes.

    Returns:
        (K, 2) int64 ``[row_a, row_b]`` pairs in row-major order.
    """
    a = as_boxes(a, "bbox_a")
    b = as_boxes(b, "bbox_b")
    if len(a) == 0 or len(b) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    ia, ib = np.nonzero(_overlap_mask(a[:, None, :], b[None, :, :]))
    return np.stack([ia, ib], axis=1).astype(np.int64)


def box_overlap_pairs_batched(
    frame_a: AnyArray, a: AnyArray, frame_b: AnyArray, b: AnyArray
) -> IntArray:
    """Overlapping pairs among boxes of the same frame, for many frames at once.

    Only same-frame candidates are generated (memory is the sum over frames of n_a * n_b), then
    filtered with the same rule as :func:`box_overlap_pairs`.

    Args:
        frame_a: (N,) frame/item id of each box in ``a``.
        a: (N, 4) xyxy boxes.
        frame_b: (M,) frame/item id of each box in ``b``.
        b: (M, 4) xyxy boxes.

    Returns:
        (K, 2) int64 pairs of row indices into the *original* ``a`` and ``b``, sorted by
        (row_a, row_b).

    Raises:
        ValidationError: frame arrays whose length does not match the boxes.
    """
    a = as_boxes(a, "bbox_a")
    b = as_boxes(b, "bbox_b")
    frame_a = np.asarray(frame_a).ravel()
    frame_b = np.asarray(frame_b).ravel()
    if len(frame_a) != len(a) or len(frame_b) != len(b):
        raise ValidationError(
            f"frame ids: expected {len(a)} and {len(b)} values, got {len(frame_a)} and "
            f"{len(frame_b)}"
        )
    if len(a) == 0 or len(b) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    # one dtype on both sides for the compiled kernel (integer ids stay exact)
    kind = np.int64 if np.result_type(frame_a, frame_b).kind in "iub" else np.float64
    frame_a, frame_b = frame_a.astype(kind), frame_b.astype(kind)
    order_b = np.argsort(frame_b, kind="stable")
    ia, ib = _overlap_pairs_by_frame(frame_a, a, np.ascontiguousarray(frame_b[order_b]), order_b, b)
    return np.stack([ia, ib], axis=1)


@njit(cache=True, nogil=True)
def _overlap_pairs_by_frame(
    frame_a: AnyArray, a: FloatArray, fb: AnyArray, order_b: IntArray, b: FloatArray
) -> tuple[IntArray, IntArray]:
    """:func:`box_overlap_pairs_batched` pairs, ``fb`` = frame_b sorted by the stable
    ``order_b``; pairs come out sorted by (row_a, row_b)."""
    cap = 16 + len(a)
    ia = np.empty(cap, np.int64)
    ib = np.empty(cap, np.int64)
    n = 0
    for i in range(len(a)):
        if not (a[i, 0] < a[i, 2] and a[i, 1] < a[i, 3]):
            continue
        lo = np.searchsorted(fb, frame_a[i], side="left")
        hi = np.searchsorted(fb, frame_a[i], side="right")
        for t in range(lo, hi):
            j = order_b[t]
            # the rule of _overlap_mask: strictly positive shared area
            if (
                b[j, 0] < b[j, 2]
                and b[j, 1] < b[j, 3]
                and max(a[i, 0], b[j, 0]) < min(a[i, 2], b[j, 2])
                and max(a[i, 1], b[j, 1]) < min(a[i, 3], b[j, 3])
            ):
                if n == cap:
                    cap *= 2
                    grown_a = np.empty(cap, np.int64)
                    grown_b = np.empty(cap, np.int64)
                    grown_a[:n] = ia[:n]
                    grown_b[:n] = ib[:n]
                    ia, ib = grown_a, grown_b
                ia[n] = i
                ib[n] = j
                n += 1
    return ia[:n].copy(), ib[:n].copy()


def rotated_corners(bbox: AnyArray, rotation_deg: AnyArray) -> FloatArray:
    """Corners of rectangles rotated about their centres.

    CVAT rotation is clockwise on screen; with y pointing down that is the ordinary rotation
    matrix ``x' = c + R(theta) (x - c)`` applied to image coordinates.

    Args:
        bbox: (N, 4) xyxy of the unrotated rectangle.
        rotation_deg: (N,) rotation in degrees (clockwise on screen).

    Returns:
        (N, 4, 2) corners in the order top-left, top-right, bottom-right, bottom-left (before
        rotation).

    Raises:
        ValidationError: malformed boxes or rotations.
    """
    box = as_boxes(bbox)
    rot = np.asarray(rotation_deg, dtype=np.float64).ravel()
    if rot.size == 1 and len(box) != 1:
        rot = np.full(len(box), rot[0])
    if len(rot) != len(box) or not np.isfinite(rot).all():
        raise ValidationError(
            f"rotation: expected {len(box)} finite values, got {len(rot)} (non-finite or wrong "
            "length)"
        )
    corners = np.stack(
        [box[:, [0, 1]], box[:, [2, 1]], box[:, [2, 3]], box[:, [0, 3]]], axis=1
    )  # (N, 4, 2)
    return rotate_about(corners, (box[:, :2] + box[:, 2:]) / 2, rot)


def rotate_about(points: FloatArray, centre: FloatArray, rotation_deg: AnyArray) -> FloatArray:
    """Rotate vertex sets about their centres, with CVAT's ``to_polygon`` arithmetic.

    ``(p - c) @ ((cos, sin), (-sin, cos)) + c`` with ``angle = deg / 180 * pi``; rows whose
    angle is 0 are returned unchanged (CVAT does not rotate them).

    Args:
        points: (N, K, 2) vertices.
        centre: (N, 2) rotation centres.
        rotation_deg: (N,) degrees, clockwise on screen.

    Returns:
        (N, K, 2) rotated vertices.
    """
    angle = np.asarray(rotation_deg, dtype=np.float64) / 180 * np.pi
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    rel = points - centre[:, None, :]
    x = rel[..., 0] * cos + rel[..., 1] * -sin
    y = rel[..., 0] * sin + rel[..., 1] * cos
    out = np.stack([x, y], axis=-1) + centre[:, None, :]
    return np.where((angle != 0)[:, None, None], out, points)


def corners_bbox(corners: AnyArray) -> FloatArray:
    """Axis-aligned bounding boxes of vertex sets.

    Args:
        corners: (N, V, 2) vertices.

    Returns:
        (N, 4) xyxy.
    """
    c = np.asarray(corners, dtype=np.float64)
    if c.shape[0] == 0:
        return np.zeros((0, 4))
    return np.concatenate([c.min(axis=1), c.max(axis=1)], axis=1)


@njit(cache=True, nogil=True)
def _near_another(frame_ptr: IntArray, boxes: FloatArray, margin: float) -> BoolArray:
    out = np.zeros(len(boxes), np.bool_)
    for f in range(len(frame_ptr) - 1):
        lo, hi = frame_ptr[f], frame_ptr[f + 1]
        # sweep on the left edge: once a box starts 2 * margin past i's right edge, so do
        # all the later ones
        order = np.argsort(boxes[lo:hi, 0], kind="mergesort") + lo
        for a in range(hi - lo):
            i = order[a]
            for b in range(a + 1, hi - lo):
                j = order[b]
                if boxes[i, 2] - boxes[j, 0] <= -2 * margin:
                    break
                if (
                    min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]) > -2 * margin
                    and min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]) > -2 * margin
                ):
                    out[i] = True
                    out[j] = True
    return out


def boxes_near_another(frame: AnyArray, boxes: AnyArray, margin: float) -> BoolArray:
    """Which boxes meet another box of their frame once both are grown by ``margin`` on
    every side (a gap under ``2 * margin`` on both axes).

    Args:
        frame: (N,) frame ids, sorted.
        boxes: (N, 4) xyxy.
        margin: distance in pixels.

    Returns:
        (N,) bool.
    """
    b = np.ascontiguousarray(as_boxes(boxes), dtype=np.float64)
    f = np.asarray(frame).ravel()
    starts = np.flatnonzero(np.r_[True, f[1:] != f[:-1]]) if len(f) else np.zeros(0, np.int64)
    return _near_another(np.r_[starts, len(f)].astype(np.int64), b, float(margin))
