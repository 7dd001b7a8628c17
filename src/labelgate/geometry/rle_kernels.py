"""Numba kernels on column-major COCO RLE counts: polygon rasterisation, merges, IoU.

:func:`fr_poly` is pycocotools' ``rleFrPoly`` step for step (5x upsampled outline, C integer
truncation, the same boundary filter and run assembly), so its counts are identical to
``pycocotools.mask.frPyObjects``; CVAT 2.42 rasterises polygons, rotated boxes and ellipses
with it. Many masks travel as one ragged array: ``flat`` counts and ``offsets`` (N + 1).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Merge operations of :func:`merge2`.
UNION, INTERSECT, DIFFERENCE = 0, 1, 2


@njit(cache=True, nogil=True)
def fr_poly(xy: np.ndarray, h: int, w: int) -> np.ndarray:
    """Counts of one polygon (K, 2) on an h x w image, exactly as pycocotools ``rleFrPoly``."""
    k = xy.shape[0]
    x = np.empty(k + 1, np.int64)
    y = np.empty(k + 1, np.int64)
    for j in range(k):
        # (int)(scale*v + .5) in C truncates toward zero; so does int() here
        x[j] = int(5.0 * xy[j, 0] + 0.5)
        y[j] = int(5.0 * xy[j, 1] + 0.5)
    x[k] = x[0]
    y[k] = y[0]
    m = 0
    for j in range(k):
        m += max(abs(x[j] - x[j + 1]), abs(y[j] - y[j + 1])) + 1
    u = np.empty(m, np.int64)
    v = np.empty(m, np.int64)
    m = 0
    for j in range(k):
        xs, xe, ys, ye = x[j], x[j + 1], y[j], y[j + 1]
        dx = abs(xe - xs)
        dy = abs(ys - ye)
        flip = (dx >= dy and xs > xe) or (dx < dy and ys > ye)
        if flip:
            xs, xe = xe, xs
            ys, ye = ye, ys
        if dx >= dy:
            # a zero-length edge gives 0/0 in C; its one point never changes u, so any v works
            s = (ye - ys) / dx if dx > 0 else 0.0
            for d in range(dx + 1):
                t = dx - d if flip else d
                u[m] = t + xs
                v[m] = int(ys + s * t + 0.5)
                m += 1
        else:
            s = (xe - xs) / dy
            for d in range(dy + 1):
                t = dy - d if flip else d
                v[m] = t + ys
                u[m] = int(xs + s * t + 0.5)
                m += 1
    # points along the y-boundary, downsampled to pixel columns
    px = np.empty(m, np.int64)
    py = np.empty(m, np.int64)
    n = 0
    for j in range(1, m):
        if u[j] != u[j - 1]:
            xd = float(u[j] if u[j] < u[j - 1] else u[j] - 1)
            xd = (xd + 0.5) / 5.0 - 0.5
            if math.floor(xd) != xd or xd < 0 or xd > w - 1:
                continue
            yd = float(v[j] if v[j] < v[j - 1] else v[j - 1])
            yd = (yd + 0.5) / 5.0 - 0.5
            if yd < 0:
                yd = 0.0
            elif yd > h:
                yd = float(h)
            yd = math.ceil(yd)
            px[n] = int(xd)
            py[n] = int(yd)
            n += 1
    a = np.empty(n + 1, np.int64)
    for j in range(n):
        a[j] = px[j] * h + py[j]
    a[n] = h * w
    a.sort()
    p = 0
    for j in range(n + 1):
        t = a[j]
        a[j] -= p
        p = t
    b = np.empty(n + 1, np.int64)
    j = 0
    mm = 0
    b[mm] = a[j]
    mm += 1
    j += 1
    while j < n + 1:
        if a[j] > 0:
            b[mm] = a[j]
            mm += 1
            j += 1
        else:
            j += 1
            if j < n + 1:
                b[mm - 1] += a[j]
                j += 1
    return b[:mm].astype(np.uint32)


@njit(cache=True, nogil=True)
def fr_polys(
    points: np.ndarray, offsets: np.ndarray, rows: np.ndarray, h: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fr_poly` for ragged polygons ``points[offsets[r]:offsets[r + 1]]``, r in rows."""
    parts = []
    out_off = np.zeros(len(rows) + 1, np.int64)
    for i in range(len(rows)):
        r = rows[i]
        c = fr_poly(points[offsets[r] : offsets[r + 1]], h, w)
        parts.append(c)
        out_off[i + 1] = out_off[i] + len(c)
    flat = np.empty(out_off[-1], np.uint32)
    for i in range(len(rows)):
        flat[out_off[i] : out_off[i + 1]] = parts[i]
    return flat, out_off


@njit(cache=True, nogil=True)
def _pieces(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walk two masks of the same size together: lengths of the stretches where neither
    changes, and the pair of values there (bit 0: a, bit 1: b)."""
    lens = np.empty(len(a) + len(b), np.int64)
    vals = np.empty(len(a) + len(b), np.int8)
    n = 0
    ia = 0
    ib = 0
    ra = int(a[0]) if len(a) else 0
    rb = int(b[0]) if len(b) else 0
    va = 0
    vb = 0
    while True:
        while ra == 0 and ia + 1 < len(a):
            ia += 1
            ra = int(a[ia])
            va ^= 1
        while rb == 0 and ib + 1 < len(b):
            ib += 1
            rb = int(b[ib])
            vb ^= 1
        if ra == 0 or rb == 0:
            break
        c = min(ra, rb)
        lens[n] = c
        vals[n] = va | (vb << 1)
        n += 1
        ra -= c
        rb -= c
    return lens[:n], vals[:n]


@njit(cache=True, nogil=True)
def merge2(a: np.ndarray, b: np.ndarray, op: int) -> np.ndarray:
    """Union, intersection or difference (a and not b) of two masks of the same size.

    The result has no empty runs except a leading zero-run, as pycocotools ``rleMerge``.
    """
    lens, vals = _pieces(a, b)
    out = np.empty(len(lens) + 1, np.int64)
    n = 0
    cur = 0
    run = 0
    for k in range(len(lens)):
        va, vb = vals[k] & 1, vals[k] >> 1
        if op == UNION:
            val = va | vb
        elif op == INTERSECT:
            val = va & vb
        else:
            val = va & (1 - vb)
        if val == cur:
            run += lens[k]
        else:
            out[n] = run
            n += 1
            cur = val
            run = lens[k]
    out[n] = run
    n += 1
    return out[:n].astype(np.uint32)


@njit(cache=True, nogil=True)
def overlap(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(intersection, union) pixel counts of two masks of the same size."""
    lens, vals = _pieces(a, b)
    inter = 0
    union = 0
    for k in range(len(lens)):
        if vals[k]:
            union += lens[k]
            if vals[k] == 3:
                inter += lens[k]
    return inter, union


@njit(cache=True, nogil=True)
def pair_iou(
    flat_a: np.ndarray,
    off_a: np.ndarray,
    flat_b: np.ndarray,
    off_b: np.ndarray,
    ia: np.ndarray,
    ib: np.ndarray,
) -> np.ndarray:
    """IoU of the listed pairs (0 when they share no pixel, as pycocotools ``rleIou``)."""
    out = np.zeros(len(ia))
    for p in range(len(ia)):
        i, j = ia[p], ib[p]
        inter, union = overlap(flat_a[off_a[i] : off_a[i + 1]], flat_b[off_b[j] : off_b[j + 1]])
        if inter > 0:
            out[p] = inter / union
    return out


@njit(cache=True, nogil=True)
def areas_and_boxes(flat: np.ndarray, off: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel count and tight pixel-edge xyxy box of each mask (zeros for an empty one)."""
    n = len(off) - 1
    area = np.zeros(n, np.int64)
    box = np.zeros((n, 4))
    for i in range(n):
        pos = 0
        x0, y0, x1, y1 = 1 << 62, 1 << 62, -1, -1
        for k in range(off[i], off[i + 1]):
            c = int(flat[k])
            if (k - off[i]) % 2 == 1 and c > 0:
                area[i] += c
                s, e = pos, pos + c - 1
                cs, ce = int(s // h), int(e // h)
                x0 = min(x0, cs)
                x1 = max(x1, ce)
                if ce > cs:  # a run crossing a column spans every row
                    y0 = 0
                    y1 = max(y1, h - 1)
                else:
                    y0 = min(y0, int(s % h))
                    y1 = max(y1, int(e % h))
            pos += c
        if area[i] > 0:
            box[i, 0] = x0
            box[i, 1] = y0
            box[i, 2] = x1 + 1
            box[i, 3] = y1 + 1
    return area, box


@njit(cache=True, nogil=True)
def visible_parts(
    flat: np.ndarray, off: np.ndarray, owner: np.ndarray, n_owners: int, total: int, occlude: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per owner, the pixels where one of its masks is the last painted (masks in paint order,
    bottom first); without ``occlude``, the plain union of its masks."""
    empty = np.array([total], np.uint32)
    out = [empty for _ in range(n_owners)]
    cover = empty
    for k in range(len(off) - 2, -1, -1):
        own = flat[off[k] : off[k + 1]]
        vis = merge2(own, cover, DIFFERENCE) if occlude else own
        out[owner[k]] = merge2(out[owner[k]], vis, UNION)
        if occlude:
            cover = merge2(cover, own, UNION)
    out_off = np.zeros(n_owners + 1, np.int64)
    for i in range(n_owners):
        out_off[i + 1] = out_off[i] + len(out[i])
    out_flat = np.empty(out_off[-1], np.uint32)
    for i in range(n_owners):
        out_flat[out_off[i] : out_off[i + 1]] = out[i]
    return out_flat, out_off


@njit(cache=True, nogil=True)
def covered_frames(
    flat: np.ndarray, off: np.ndarray, frame_ptr: np.ndarray, heights: np.ndarray, thr: float
) -> np.ndarray:
    """CVAT ``_find_covered_segments`` for many frames: masks of frame f are rows
    ``frame_ptr[f]:frame_ptr[f + 1]`` in paint order (bottom first), image height ``heights[f]``.

    Mask i is covered when the masks after it overlap it and leave less than ``thr`` of its
    pixels visible. Only masks that the boxes of later ones could hide that much are merged.
    """
    out = np.zeros(len(off) - 1, np.bool_)
    for f in range(len(frame_ptr) - 1):
        lo, hi = frame_ptr[f], frame_ptr[f + 1]
        if hi - lo < 2:
            continue
        area, box = areas_and_boxes(flat, off[lo : hi + 1], heights[f])
        n = hi - lo
        for i in range(n - 1):
            if area[i] == 0:
                continue
            bound = 0.0
            for j in range(i + 1, n):
                iw = min(box[i, 2], box[j, 2]) - max(box[i, 0], box[j, 0])
                ih = min(box[i, 3], box[j, 3]) - max(box[i, 1], box[j, 1])
                if iw > 0 and ih > 0:
                    bound += iw * ih
            # the hidden area is at most the sum of box intersections
            if bound < (1 - thr) * area[i]:
                continue
            top: np.ndarray = np.empty(0, np.uint32)
            for j in range(i + 1, n):
                iw = min(box[i, 2], box[j, 2]) - max(box[i, 0], box[j, 0])
                ih = min(box[i, 3], box[j, 3]) - max(box[i, 1], box[j, 1])
                if iw > 0 and ih > 0:
                    m = flat[off[lo + j] : off[lo + j + 1]]
                    top = m if len(top) == 0 else merge2(top, m, UNION)
            hidden, _ = overlap(flat[off[lo + i] : off[lo + i + 1]], top)
            out[lo + i] = hidden > 0 and 1 - hidden / area[i] < thr
    return out
