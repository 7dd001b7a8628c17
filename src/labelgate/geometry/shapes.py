"""Shapes turned into rasters the way CVAT 2.42 does it before taking IoU or coverage.

CVAT converts rectangles and ellipses to polygon outlines (Datumaro ``as_polygon``, rotated
about the centre by ``DistanceComparator.to_polygon``), stores every shape's coordinates rounded
to 2 decimals (Datumaro ``COORDINATE_ROUNDING_DIGITS``), and rasterises outlines with
pycocotools at image resolution (:func:`labelgate.geometry.rle.rasterize_polygons`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from labelgate.arrays import AnyArray, BoolArray, FloatArray, IntArray, IntegerArray, RunArray
from labelgate.geometry import rle, rle_kernels
from labelgate.geometry.boxes import as_boxes, rotate_about

if TYPE_CHECKING:
    from labelgate.model import Annotations

__all__ = [
    "COORDINATE_DIGITS",
    "ELLIPSE_VERTICES",
    "box_outlines",
    "box_pixel_rects",
    "covered_boxes",
    "ellipse_outlines",
    "shape_rles",
    "shape_rles_ragged",
]

#: Datumaro rounds shape coordinates to this many decimals when CVAT builds its dataset.
COORDINATE_DIGITS = 2
#: Datumaro ``Ellipse.as_polygon(num_points=720)``: ``linspace(0, 2*pi, 720)``, so the last
#: vertex repeats the first (up to rounding).
ELLIPSE_VERTICES = 720

# Kind codes (labelgate.model.Kind), kept here so geometry does not import the model at runtime.
_RECTANGLE, _POLYGON, _ELLIPSE, _MASK = 1, 2, 5, 6


def _rounded(x: FloatArray) -> FloatArray:
    return np.round(x, COORDINATE_DIGITS)


def box_outlines(bbox: AnyArray, rotation: AnyArray, *, rotate: bool = True) -> FloatArray:
    """(N, 4, 2) rectangle outlines as CVAT builds them (Datumaro ``Bbox.as_polygon``).

    Args:
        bbox: (N, 4) xyxy before rotation.
        rotation: (N,) degrees, clockwise on screen.
        rotate: False for the covered-annotation check, which ignores rotation.

    Returns:
        Corners top-left, top-right, bottom-right, bottom-left (rotated, then rounded, when
        ``rotate``; unrounded as_polygon output otherwise).
    """
    p = _rounded(as_boxes(bbox))
    x, y = p[:, 0], p[:, 1]
    w, h = p[:, 2] - x, p[:, 3] - y
    corners = np.stack([np.c_[x, y], np.c_[x + w, y], np.c_[x + w, y + h], np.c_[x, y + h]], axis=1)
    if not rotate:
        return corners
    centre = (corners[:, 0] + corners[:, 2]) / 2
    return _rounded(rotate_about(corners, centre, np.asarray(rotation, np.float64).ravel()))


def ellipse_outlines(
    bbox: AnyArray, rotation: AnyArray, *, rotate: bool = True, round_output: bool = True
) -> FloatArray:
    """(N, 720, 2) ellipse outlines as CVAT builds them (Datumaro ``Ellipse.as_polygon``).

    Args:
        bbox: (N, 4) ``(cx - rx, cy - ry, cx + rx, cy + ry)``.
        rotation: (N,) degrees, about the centre.
        rotate: False for the covered-annotation check (no rotation, no output rounding).
        round_output: False keeps the rotated outline unrounded (exact geometry).

    Returns:
        The ring with its closing vertex, rotated and rounded when ``rotate``.
    """
    p = _rounded(as_boxes(bbox))
    cx, cy = 0.5 * (p[:, 0] + p[:, 2]), 0.5 * (p[:, 1] + p[:, 3])
    l1, l2 = 0.5 * (p[:, 2] - p[:, 0]), 0.5 * (p[:, 3] - p[:, 1])
    theta = np.linspace(0, 2 * np.pi, num=ELLIPSE_VERTICES)
    pts = np.stack(
        [cx[:, None] + l1[:, None] * np.cos(theta), cy[:, None] + l2[:, None] * np.sin(theta)],
        axis=-1,
    )
    if not rotate:
        return pts
    out = rotate_about(pts, np.c_[cx, cy], np.asarray(rotation, np.float64).ravel())
    return _rounded(out) if round_output else out


def box_pixel_rects(
    bbox: AnyArray, heights: IntegerArray, widths: IntegerArray
) -> tuple[FloatArray, BoolArray]:
    """The pixels of unrotated box outlines (the covered check's) as pycocotools rasterises
    them, in closed form: a box's raster is a pixel rectangle.

    ``rleFrPoly`` on the outline (top-left, top-right, bottom-right, bottom-left, each
    coordinate scaled by 5 and truncated after ``+ 0.5``: ``X0, Y0, X1, Y1``) sets, in every
    pixel column ``c`` whose upsampled centre ``5c + 2`` lies in ``[X0, X1 - 1]`` (and in the
    image), the rows from ``f(Y0)`` to ``f(Y1)`` (exclusive), ``f(v) = min((v + 2) // 5, h)``
    for ``v >= 2``, else 0. That holds when ``X0 < X1`` and ``Y0 < Y1``, outlines reaching
    past the top or left edge included (the columns left of 0 are dropped, ``f`` clamps the
    rows); degenerate outlines are flagged for the traced rasteriser.

    Args:
        bbox: (N, 4) xyxy boxes.
        heights: (N,) image height of each box's frame.
        widths: (N,) image width of each box's frame.

    Returns:
        ``(rects, exact)``: (N, 4) float64 pixel-edge xyxy rectangles (all zeros when empty)
        and (N,) bool, False where the closed form does not apply.
    """
    p = np.ascontiguousarray(bbox, dtype=np.float64).reshape(-1, 4)
    return _pixel_rects(p, np.asarray(heights, np.int64), np.asarray(widths, np.int64))


@njit(cache=True, nogil=True)
def _pixel_rects(p: FloatArray, h: IntArray, w: IntArray) -> tuple[FloatArray, BoolArray]:
    n = len(p)
    rects = np.zeros((n, 4))
    exact = np.zeros(n, np.bool_)
    for i in range(n):
        exact[i] = _pixel_rect(p, i, h[i], w[i], rects, i)
    return rects, exact


@njit(cache=True, nogil=True)
def _pixel_rect(p: FloatArray, i: int, h: int, w: int, rects: FloatArray, k: int) -> bool:
    """:func:`box_pixel_rects` of box ``p[i]`` into ``rects[k]`` (all zeros for an empty
    raster); returns whether the closed form holds (``rects[k]`` is then left as it was)."""
    if not (
        math.isfinite(p[i, 0])
        and math.isfinite(p[i, 1])
        and math.isfinite(p[i, 2])
        and math.isfinite(p[i, 3])
    ):
        return False  # left to the traced rasteriser, which names the bad row
    # numpy's round(v, 2): rint(v * 100) / 100; the outline's corners are (x, y) and
    # (x + (x2 - x), y + (y2 - y)) as box_outlines(rotate=False) builds them
    x = np.rint(p[i, 0] * 100.0) / 100.0
    y = np.rint(p[i, 1] * 100.0) / 100.0
    x2 = np.rint(p[i, 2] * 100.0) / 100.0
    y2 = np.rint(p[i, 3] * 100.0) / 100.0
    # C's (int)(5 * v + .5) on the outline's corners
    x0 = int(5.0 * x + 0.5)
    y0 = int(5.0 * y + 0.5)
    x1 = int(5.0 * (x + (x2 - x)) + 0.5)
    y1 = int(5.0 * (y + (y2 - y)) + 0.5)
    if not (x1 > x0 and y1 > y0):
        return False
    c0 = (max(x0, 2) + 2) // 5  # first column with 5c + 2 >= X0
    c1 = min((x1 - 3) // 5, w - 1)  # last column with 5c + 2 <= X1 - 1
    r0 = 0 if y0 < 2 else min((y0 + 2) // 5, h)
    r1 = 0 if y1 < 2 else min((y1 + 2) // 5, h)
    if c1 >= c0 and r1 > r0:
        rects[k, 0] = c0
        rects[k, 1] = r0
        rects[k, 2] = c1 + 1
        rects[k, 3] = r1
    else:
        rects[k, :] = 0.0
    return True


def covered_boxes(
    frame_ptr: IntArray,
    kind: IntegerArray,
    bbox: FloatArray,
    z_order: IntegerArray,
    heights: IntegerArray,
    widths: IntegerArray,
    threshold: float,
) -> tuple[BoolArray, BoolArray]:
    """CVAT's covered rule, in one pass, on the frames whose covering shapes are all boxes
    with pixel-rectangle rasters (:func:`box_pixel_rects`).

    Per frame: its polygons, masks, boxes and ellipses in paint order (z_order, stable);
    when all of them are boxes whose closed form holds, the frame is settled on the
    rectangles (:func:`labelgate.geometry.rle_kernels.covered_rect_frame`); otherwise it is
    left to the traced rasters. Frames of unknown size (0) are settled with nothing covered.

    Args:
        frame_ptr: (F + 1,) where each frame's rows start (and the end); rows sorted by frame.
        kind: (N,) :class:`~labelgate.model.Kind` codes.
        bbox: (N, 4) xyxy.
        z_order: (N,) paint order.
        heights: (F,) image height of each frame.
        widths: (F,) image width of each frame.
        threshold: ``object_visibility_threshold``.

    Returns:
        ``(covered, unsettled)``: (N,) bool each: the covered rows of the settled frames; the
        polygons, masks, boxes and ellipses of the frames left to the traced rasters.
    """
    return _covered_boxes(
        np.asarray(frame_ptr, np.int64),
        np.asarray(kind, np.int8),
        np.ascontiguousarray(bbox, dtype=np.float64).reshape(-1, 4),
        np.asarray(z_order, np.int64),
        np.asarray(heights, np.int64),
        np.asarray(widths, np.int64),
        float(threshold),
    )


@njit(cache=True, nogil=True)
def _covered_boxes(
    frame_ptr: IntArray,
    kind: IntegerArray,
    bbox: FloatArray,
    z_order: IntArray,
    heights: IntArray,
    widths: IntArray,
    thr: float,
) -> tuple[BoolArray, BoolArray]:
    n_frames = len(frame_ptr) - 1
    covered = np.zeros(len(kind), np.bool_)
    unsettled = np.zeros(len(kind), np.bool_)
    most = 0
    for f in range(n_frames):
        most = max(most, frame_ptr[f + 1] - frame_ptr[f])
    # one frame's box rows, their rectangles and z_orders (in document, then paint order)
    rows = np.empty(most, np.int64)
    rects = np.empty((most, 4))
    z = np.empty(most, np.int64)
    hit = np.empty(most, np.bool_)
    scratch = rle_kernels.rect_scratch(most)
    for f in range(n_frames):
        if heights[f] <= 0 or widths[f] <= 0:
            continue  # unknown size: CVAT has no raster to compare
        k = 0
        settled = True
        for r in range(frame_ptr[f], frame_ptr[f + 1]):
            if kind[r] == _RECTANGLE:
                if not _pixel_rect(bbox, r, heights[f], widths[f], rects, k):
                    settled = False
                    break
                rows[k] = r
                z[k] = z_order[r]
                k += 1
            elif _is_cover_kind(kind[r]):
                settled = False
                break
        if not settled:
            for r in range(frame_ptr[f], frame_ptr[f + 1]):
                unsettled[r] = _is_cover_kind(kind[r])
            continue
        if k < 2:
            continue
        for t in range(1, k):
            if z[t] != z[0]:  # paint order: z_order, stable (document order breaks ties)
                order = np.argsort(z[:k], kind="mergesort")
                rows[:k] = rows[order]
                rects[:k] = rects[order]
                break
        for t in range(k):  # explicit loops: numba's slice fills and views cost more here
            hit[t] = False
        rle_kernels.covered_rect_frame(rects, 0, k, thr, hit, scratch)
        for t in range(k):
            if hit[t]:
                covered[rows[t]] = True
    return covered, unsettled


@njit(cache=True, nogil=True)
def _is_cover_kind(kind: int) -> bool:
    """Polygons, masks, boxes and ellipses: the shapes the covered rule paints."""
    return kind in (_RECTANGLE, _POLYGON, _MASK, _ELLIPSE)


def shape_rles(
    ann: Annotations, rows: IntegerArray, height: int, width: int, *, cover: bool = False
) -> list[RunArray]:
    """Rasters (column-major counts) of polygon, mask, rectangle and ellipse rows.

    Args:
        ann: the annotations.
        rows: rows to rasterise (other kinds give an empty mask).
        height: image height.
        width: image width.
        cover: build outlines as CVAT's covered-annotation check does (no rotation).

    Returns:
        One counts array per row, in ``rows`` order.
    """
    n = len(rows)
    sizes = np.full(n, height, np.int64), np.full(n, width, np.int64)
    return rle.unragged(*shape_rles_ragged(ann, rows, *sizes, cover=cover))


def shape_rles_ragged(
    ann: Annotations,
    rows: IntegerArray,
    heights: IntegerArray,
    widths: IntegerArray,
    *,
    cover: bool = False,
) -> tuple[RunArray, IntArray]:
    """:func:`shape_rles` for rows on frames of any size, as one ragged ``(flat, offsets)``.

    Args:
        ann: the annotations.
        rows: rows to rasterise (other kinds give an empty mask).
        heights: (N,) image height of each row's frame.
        widths: (N,) image width of each row's frame.
        cover: outlines as the covered-annotation check builds them (no rotation).

    Returns:
        uint32 counts of all rows back to back, and (N + 1,) offsets.
    """
    rows = np.asarray(rows, dtype=np.int64)
    heights = np.asarray(heights, np.int64)
    widths = np.asarray(widths, np.int64)
    kinds = ann.kind[rows]
    parts: list[FloatArray] = []  # (P, 2) vertex blocks
    sizes: list[IntArray] = []  # vertices per outline
    at: list[IntArray] = []  # positions in rows
    poly = np.flatnonzero(kinds == _POLYGON)
    if len(poly):
        starts, ends = ann.point_offsets[rows[poly]], ann.point_offsets[rows[poly] + 1]
        n = ends - starts
        idx = np.repeat(starts - np.cumsum(n) + n, n) + np.arange(int(n.sum()))
        parts.append(_rounded(ann.points[idx]))
        sizes.append(n)
        at.append(poly)
    for kind, build in ((_RECTANGLE, box_outlines), (_ELLIPSE, ellipse_outlines)):
        sel = np.flatnonzero(kinds == kind)
        if len(sel):
            r = rows[sel]
            v = build(ann.bbox[r], ann.rotation[r], rotate=not cover)
            parts.append(v.reshape(-1, 2))
            sizes.append(np.full(len(sel), v.shape[1]))
            at.append(sel)
    # Every row's counts come from one pool: the rasters built here, the stored mask runs,
    # and one single-run empty mask per remaining row.
    start = np.zeros(len(rows), np.int64)
    length = np.ones(len(rows), np.int64)
    pool: list[RunArray] = []
    base = 0
    if parts:
        n = np.concatenate(sizes)
        offsets = np.zeros(len(n) + 1, np.int64)
        offsets[1:] = np.cumsum(n)
        where = np.concatenate(at)
        flat, off = rle.rasterize_polygons_ragged(
            np.concatenate(parts), offsets, np.arange(len(n)), heights[where], widths[where]
        )
        if len(where) == len(rows) and (where[1:] > where[:-1]).all():
            return flat, off  # every row traced, already in row order
        start[where], length[where] = off[:-1], np.diff(off)
        pool.append(flat)
        base = len(flat)
    masks = np.flatnonzero(kinds == _MASK)
    if not parts and len(masks) == len(rows):  # only masks: their stored runs, one gather
        lo, hi = ann.rle_offsets[rows], ann.rle_offsets[rows + 1]
        n = hi - lo
        out_off = np.zeros(len(rows) + 1, np.int64)
        out_off[1:] = np.cumsum(n)
        if len(rows) and (rows[1:] == rows[:-1] + 1).all():  # consecutive rows: one slice
            flat = ann.rle[lo[0] : hi[-1]]
        else:
            flat = ann.rle[np.repeat(lo - out_off[:-1], n) + np.arange(int(out_off[-1]))]
        return flat.astype(np.uint32), out_off  # a copy: callers own their rasters
    if len(masks):
        lo, hi = ann.rle_offsets[rows[masks]], ann.rle_offsets[rows[masks] + 1]
        n = hi - lo
        before = np.cumsum(n) - n
        start[masks], length[masks] = base + before, n
        pool.append(ann.rle[np.repeat(lo - before, n) + np.arange(int(n.sum()))].astype(np.uint32))
        base += int(n.sum())
    empty = np.flatnonzero(~np.isin(kinds, (_POLYGON, _RECTANGLE, _ELLIPSE, _MASK)))
    if len(empty):
        start[empty] = base + np.arange(len(empty))
        pool.append((heights[empty] * widths[empty]).astype(np.uint32))
    out_off = np.zeros(len(rows) + 1, np.int64)
    out_off[1:] = np.cumsum(length)
    if not pool:
        return np.zeros(0, np.uint32), out_off
    src = np.repeat(start - out_off[:-1], length) + np.arange(int(out_off[-1]))
    return np.concatenate(pool)[src], out_off
