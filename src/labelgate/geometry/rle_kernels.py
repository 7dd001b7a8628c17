"""Numba kernels on column-major COCO RLE counts: polygon rasterisation, merges, IoU.

:func:`fr_poly` is pycocotools' ``rleFrPoly`` step for step (5x upsampled outline, C integer
truncation, the same boundary filter and run assembly), so its counts are identical to
``pycocotools.mask.frPyObjects``; CVAT 2.42 rasterises polygons, rotated boxes and ellipses
with it. Many masks travel as one ragged array: ``flat`` counts and ``offsets`` (N + 1).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labelgate.arrays import BoolArray, FloatArray, IntArray, RunArray

#: Merge operations of :func:`merge2`.
UNION, INTERSECT, DIFFERENCE = 0, 1, 2


@njit(cache=True, nogil=True, inline="always")
def _centre_hit(uu: int, vv: int, pu: int, pv: int, h: int, w: int, a: IntArray, n: int) -> int:
    """One trace step (pu, pv) -> (uu, vv): record its boundary point if it lands on a
    pixel-centre column; returns the new point count."""
    if uu != pu:
        xu = uu if uu < pu else uu - 1
        if xu >= 2 and xu % 5 == 2 and (xu - 2) // 5 <= w - 1:
            yv = min(vv, pv)
            a[n] = (xu - 2) // 5 * h + (0 if yv < 2 else min((yv + 2) // 5, h))
            return n + 1
    return n


@njit(cache=True, nogil=True)
def _sort_by_column(a: IntArray, n: int, h: int) -> None:
    """Sort the boundary points ``a[:n]`` (``column * h + row``) in place (see
    :func:`_bucket_sort`; ``h`` is not needed)."""
    if n >= 2:
        _bucket_sort(a, n, np.empty(n + 1, np.int64), np.empty(n, np.int64))


@njit(cache=True, nogil=True, inline="always")
def _bucket_sort(a: IntArray, n: int, start: IntArray, tmp: IntArray) -> None:
    """Sort ``a[:n]`` in place: a counting sort on ``(a - min) >> shift``, with at most n
    buckets, then insertion sort within each. An outline's points spread evenly over its
    columns, so buckets hold a point or two; no division (a per-point ``// h`` cost more
    than the tracing). Workspaces: ``start`` and ``tmp`` at least n + 1 and n long."""
    lo = a[0]
    hi = a[0]
    for j in range(n):
        lo = min(lo, a[j])
        hi = max(hi, a[j])
    sh = 0
    while (hi - lo) >> sh >= n:
        sh += 1
    nb = ((hi - lo) >> sh) + 2
    start[:nb] = 0
    for j in range(n):
        start[((a[j] - lo) >> sh) + 1] += 1
    for c in range(1, nb):
        start[c] += start[c - 1]
    for j in range(n):
        c = (a[j] - lo) >> sh
        tmp[start[c]] = a[j]
        start[c] += 1
    first = 0
    for c in range(nb - 1):
        last = start[c]
        for j in range(first + 1, last):
            v = tmp[j]
            i = j - 1
            while i >= first and tmp[i] > v:
                tmp[i + 1] = tmp[i]
                i -= 1
            tmp[i + 1] = v
        first = last
    a[:n] = tmp[:n]


@njit(cache=True, nogil=True, inline="always")
def _upsampled(v: float) -> int:
    # (int)(scale*v + .5) in C truncates toward zero; so does int() here
    return int(5.0 * v + 0.5)


@njit(cache=True, nogil=True)
def _trace_capacity(xy: FloatArray) -> int:
    """Room :func:`_trace` needs for the boundary points of polygon ``xy`` (one extra slot).

    u moves by at most 1 per trace step, so an edge lands on a centre column at most
    |dx| // 5 + 1 times (+1 for its first step, which follows the previous edge)."""
    k = xy.shape[0]
    cap = 1
    for j in range(k):
        cap += abs(_upsampled(xy[j, 0]) - _upsampled(xy[(j + 1) % k, 0])) // 5 + 2
    return cap


@njit(cache=True, nogil=True)
def fr_poly(xy: FloatArray, h: int, w: int) -> RunArray:
    """Counts of one polygon (K, 2) on an h x w image, exactly as pycocotools ``rleFrPoly``
    (see :func:`_trace`)."""
    k = xy.shape[0]
    x = np.empty(k + 1, np.int64)
    y = np.empty(k + 1, np.int64)
    a: IntArray = np.empty(_trace_capacity(xy), np.int64)
    n = _trace(xy, h, w, x, y, a)
    _sort_by_column(a, n, h)
    b = np.empty(n + 1, np.uint32)
    return b[: _assemble(a, n, b, 0)]


@njit(cache=True, nogil=True)
def _trace(xy: FloatArray, h: int, w: int, x: IntArray, y: IntArray, a: IntArray) -> int:
    """Boundary points (``column * h + row``, unsorted) of polygon ``xy`` into ``a``, then
    the sentinel ``h * w``; returns their count (sentinel excluded). ``x``, ``y``: workspaces
    of K + 1; ``a``: at least :func:`_trace_capacity` long.

    pycocotools traces the outline on a 5x upsampled grid (steps along the longer axis of
    each edge), then keeps the steps where the upsampled x moves onto a pixel-centre column.
    Here only those steps are visited, with integer tests equal to its float ones:
    ``(u + 0.5) / 5 - 0.5`` is an integer exactly when ``u % 5 == 2`` (otherwise it is at
    least 0.2 away from one), and ``ceil`` of ``(v + 0.5) / 5 - 0.5`` clamped to ``[0, h]`` is
    ``min((v + 2) // 5, h)`` for ``v >= 2``, else 0. On edges traced along x, u moves by one
    every step, so its centre columns are found by arithmetic instead of stepping.
    """
    k = xy.shape[0]
    for j in range(k):
        x[j] = _upsampled(xy[j, 0])
        y[j] = _upsampled(xy[j, 1])
    x[k] = x[0]
    y[k] = y[0]
    n = 0
    pu = 0
    pv = 0
    last_x = 5 * (w - 1) + 2  # the right-most centre column, upsampled
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
            sl = (ye - ys) / dx if dx > 0 else 0.0
            t0 = dx if flip else 0
            uu = t0 + xs
            vv = int(ys + sl * t0 + 0.5)
            if j > 0:
                n = _centre_hit(uu, vv, pu, pv, h, w, a, n)
            # steps t-1 -> t (rising) or t+1 -> t (falling): the centre column xu is
            # t - 1 + xs or t + xs
            lo = max(xs, 2)
            first = lo + (2 - lo) % 5
            stop = min(xs + dx - 1, last_x)
            for xu in range(first, stop + 1, 5):
                t = xu - xs if flip else xu - xs + 1
                other = t + 1 if flip else t - 1
                yv = min(int(ys + sl * t + 0.5), int(ys + sl * other + 0.5))
                a[n] = (xu - 2) // 5 * h + (0 if yv < 2 else min((yv + 2) // 5, h))
                n += 1
            t1 = 0 if flip else dx
            pu = t1 + xs
            pv = int(ys + sl * t1 + 0.5)
        else:
            sl = (xe - xs) / dy
            t = dy if flip else 0  # the edge's first point
            uu = int(xs + sl * t + 0.5)
            if j > 0:
                n = _centre_hit(uu, t + ys, pu, pv, h, w, a, n)
            n = _steep_edge(xs, ys, dy, sl, h, last_x, a, n)
            t = 0 if flip else dy  # its last point
            pu = int(xs + sl * t + 0.5)
            pv = t + ys
    a[n] = h * w
    return n


@njit(cache=True, nogil=True, inline="always")
def _steep_edge(
    xs: int, ys: int, dy: int, sl: float, h: int, last_x: int, a: IntArray, n: int
) -> int:
    """The centre-column hits inside one edge traced along y (``dy`` steps, slope ``sl``,
    |sl| < 1): returns the new point count.

    u(t) = int(xs + sl * t + 0.5) is monotone in t (rounded float operations are) and moves
    by at most one per step, so a step t - 1 -> t lands on centre column c (the lower of its
    two u values) exactly when t is the first step with u >= c + 1 (sl > 0, and u(t - 1) = c)
    or the first with u <= c (sl < 0, and u(t) = c). That step is found from the real-valued
    inverse and corrected on the exact u, so only centre columns are visited, not every step.
    """
    if sl == 0.0:
        return n
    u0 = int(xs + 0.5)
    u1 = int(xs + sl * dy + 0.5)
    lo = max(min(u0, u1), 2)
    c = lo + (2 - lo) % 5
    top = min(max(u0, u1) - 1, last_x)
    while c <= top:
        if sl > 0:
            t = min(max(int(np.ceil((c + 0.5 - xs) / sl)), 0), dy)
            while t > 0 and int(xs + sl * (t - 1) + 0.5) >= c + 1:
                t -= 1
            while t < dy and int(xs + sl * t + 0.5) < c + 1:
                t += 1
            hit = t >= 1 and int(xs + sl * (t - 1) + 0.5) == c and int(xs + sl * t + 0.5) > c
        else:
            t = min(max(int(np.ceil((c + 0.5 - xs) / sl)), 0), dy)
            while t > 0 and int(xs + sl * (t - 1) + 0.5) <= c:
                t -= 1
            while t < dy and int(xs + sl * t + 0.5) > c:
                t += 1
            hit = t >= 1 and int(xs + sl * t + 0.5) == c and int(xs + sl * (t - 1) + 0.5) > c
        if hit:
            yv = t - 1 + ys
            a[n] = (c - 2) // 5 * h + (0 if yv < 2 else min((yv + 2) // 5, h))
            n += 1
        c += 5
    return n


@njit(cache=True, nogil=True, inline="always")
def _assemble(a: IntArray, n: int, out: RunArray, pos: int) -> int:
    """Runs between the sorted boundary points ``a[:n + 1]`` into ``out[pos:]`` (at most
    n + 1 of them); an empty run merges its neighbours (pycocotools' assembly). Returns the
    end position."""
    out[pos] = a[0]
    mm = pos + 1
    j = 1
    while j < n + 1:
        d = a[j] - a[j - 1]
        if d > 0:
            out[mm] = d
            mm += 1
            j += 1
        else:
            j += 1
            if j < n + 1:
                out[mm - 1] += a[j] - a[j - 1]
                j += 1
    return mm


@njit(cache=True, nogil=True)
def fr_polys(
    points: FloatArray, offsets: IntArray, rows: IntArray, hs: IntArray, ws: IntArray
) -> tuple[RunArray, IntArray]:
    """:func:`fr_poly` for ragged polygons ``points[offsets[r]:offsets[r + 1]]``, r in rows;
    polygon ``rows[i]`` on an ``hs[i]`` x ``ws[i]`` image (frames of different sizes in one
    call). Fewer than 3 vertices give an empty mask. The workspaces are shared by all
    polygons and the runs written in place (no allocation per polygon)."""
    out_off = np.zeros(len(rows) + 1, np.int64)
    flat = np.empty(64 * len(rows) + 16, np.uint32)
    kmax = 0
    for i in range(len(rows)):
        kmax = max(kmax, offsets[rows[i] + 1] - offsets[rows[i]])
    x = np.empty(kmax + 1, np.int64)
    y = np.empty(kmax + 1, np.int64)
    a = np.empty(64, np.int64)
    tmp = np.empty(64, np.int64)
    start = np.empty(65, np.int64)
    for i in range(len(rows)):
        r = rows[i]
        pos = out_off[i]
        xy = points[offsets[r] : offsets[r + 1]]
        cap = _trace_capacity(xy) if len(xy) >= 3 else 1
        if pos + cap > len(flat):  # at most cap runs
            grown = np.empty(max(pos + cap, 2 * len(flat)), np.uint32)
            grown[:pos] = flat[:pos]
            flat = grown
        if len(xy) < 3:  # no area: an empty mask
            flat[pos] = hs[i] * ws[i]
            out_off[i + 1] = pos + 1
            continue
        if cap > len(a):
            a = np.empty(2 * cap, np.int64)
            tmp = np.empty(2 * cap, np.int64)
            start = np.empty(2 * cap + 1, np.int64)
        n = _trace(xy, hs[i], ws[i], x, y, a)
        if n >= 2:
            _bucket_sort(a, n, start, tmp)
        out_off[i + 1] = _assemble(a, n, flat, pos)
    return flat[: out_off[-1]].copy(), out_off


@njit(cache=True, nogil=True)
def merge2(a: RunArray, b: RunArray, op: int) -> RunArray:
    """Union, intersection or difference (a and not b) of two masks of the same size.

    The result has no empty runs except a leading zero-run, as pycocotools ``rleMerge``.
    Walks both masks together over the stretches where neither changes and writes the
    runs as it goes.
    """
    out = np.empty(len(a) + len(b) + 1, np.uint32)
    n = 0
    cur = 0
    run = 0
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
        if op == UNION:
            val = va | vb
        elif op == INTERSECT:
            val = va & vb
        else:
            val = va & (1 - vb)
        if val == cur:
            run += c
        else:
            out[n] = run
            n += 1
            cur = val
            run = c
        ra -= c
        rb -= c
    out[n] = run
    n += 1
    return out[:n]


@njit(cache=True, nogil=True)
def overlap(a: RunArray, b: RunArray) -> tuple[int, int]:
    """(intersection, union) pixel counts of two masks of the same size (the walk of
    :func:`merge2`, summed on the fly)."""
    inter = 0
    union = 0
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
        if va | vb:
            union += c
            if va & vb:
                inter += c
        ra -= c
        rb -= c
    return inter, union


@njit(cache=True, nogil=True)
def pair_iou(
    flat_a: RunArray,
    off_a: IntArray,
    flat_b: RunArray,
    off_b: IntArray,
    ia: IntArray,
    ib: IntArray,
) -> FloatArray:
    """IoU of the listed pairs (0 when they share no pixel, as pycocotools ``rleIou``)."""
    out = np.zeros(len(ia))
    for p in range(len(ia)):
        i, j = ia[p], ib[p]
        inter, union = overlap(flat_a[off_a[i] : off_a[i + 1]], flat_b[off_b[j] : off_b[j + 1]])
        if inter > 0:
            out[p] = inter / union
    return out


@njit(cache=True, nogil=True)
def _area_box(counts: RunArray, h: int, box: FloatArray) -> int:
    """Pixel count of one mask; its tight pixel-edge xyxy box into ``box`` (zeros if empty)."""
    pos = 0
    area = 0
    x0, y0, x1, y1 = 1 << 62, 1 << 62, -1, -1
    for k in range(len(counts)):
        c = int(counts[k])
        if k % 2 == 1 and c > 0:
            area += c
            # one division per run: its start column; its end row follows from its length
            cs = pos // h
            rs = pos - cs * h
            re = rs + c - 1
            x0 = min(x0, cs)
            if re < h:
                x1 = max(x1, cs)
                y0 = min(y0, rs)
                y1 = max(y1, re)
            else:  # a run crossing a column spans every row
                x1 = max(x1, cs + re // h)
                y0 = 0
                y1 = max(y1, h - 1)
        pos += c
    box[:] = 0.0
    if area > 0:
        box[0] = x0
        box[1] = y0
        box[2] = x1 + 1
        box[3] = y1 + 1
    return area


@njit(cache=True, nogil=True)
def areas_and_boxes(flat: RunArray, off: IntArray, h: int) -> tuple[IntArray, FloatArray]:
    """Pixel count and tight pixel-edge xyxy box of each mask (zeros for an empty one)."""
    return areas_and_boxes_sized(flat, off, np.full(len(off) - 1, h, np.int64))


@njit(cache=True, nogil=True)
def areas_and_boxes_sized(
    flat: RunArray, off: IntArray, hs: IntArray
) -> tuple[IntArray, FloatArray]:
    """:func:`areas_and_boxes` with each mask's own image height ``hs[i]``."""
    n = len(off) - 1
    area = np.zeros(n, np.int64)
    box = np.zeros((n, 4))
    for i in range(n):
        area[i] = _area_box(flat[off[i] : off[i + 1]], hs[i], box[i])
    return area, box


@njit(cache=True, nogil=True)
def _boxes_meet(box: FloatArray, i: int, j: int) -> bool:
    meet: bool = min(box[i, 2], box[j, 2]) > max(box[i, 0], box[j, 0]) and min(
        box[i, 3], box[j, 3]
    ) > max(box[i, 1], box[j, 1])
    return meet


@njit(cache=True, nogil=True)
def instance_masks(
    flat: RunArray,
    off: IntArray,
    frame_ptr: IntArray,
    inst_ptr: IntArray,
    rank: IntArray,
    heights: IntArray,
    inst_totals: IntArray,
    occlude: bool,
) -> tuple[RunArray, IntArray]:
    """Instance rasters of many frames: the union of each instance's member masks, with
    ``occlude`` only the pixels where no mask painted later in the frame lies on top
    (CVAT's panoptic comparison: each pixel belongs to the last mask painted).

    Args:
        flat, off: member masks, frame after frame, each instance's members contiguous.
        frame_ptr: (F + 1,) member range of each frame.
        inst_ptr: (I + 1,) member range of each instance (instances never span frames).
        rank: (N,) paint position of each member within its frame (higher = on top).
        heights: (F,) image height of each frame.
        inst_totals: (I,) pixel count of each instance's image (an instance without
            members gets an empty mask).
        occlude: False gives each instance the plain union of its members.

    Only masks whose pixel boxes meet are merged (disjoint boxes share no pixel), so the
    result is the full-frame rule's.
    """
    flat, off, _ = instance_masks_boxed(
        flat, off, frame_ptr, inst_ptr, rank, heights, inst_totals, occlude
    )
    return flat, off


@njit(cache=True, nogil=True)
def instance_masks_boxed(
    flat: RunArray,
    off: IntArray,
    frame_ptr: IntArray,
    inst_ptr: IntArray,
    rank: IntArray,
    heights: IntArray,
    inst_totals: IntArray,
    occlude: bool,
) -> tuple[RunArray, IntArray, FloatArray]:
    """:func:`instance_masks` and each instance's tight pixel-edge xyxy box (I, 4): an
    instance that is one member left whole takes the member's box, computed anyway."""
    n = len(off) - 1
    n_inst = len(inst_ptr) - 1
    frame_of = np.empty(n, np.int64)
    hs = np.empty(n, np.int64)
    for f in range(len(frame_ptr) - 1):
        for k in range(frame_ptr[f], frame_ptr[f + 1]):
            frame_of[k] = f
            hs[k] = heights[f]
    area, box = areas_and_boxes_sized(flat, off, hs)
    out_off = np.zeros(n_inst + 1, np.int64)
    inst_box = np.zeros((n_inst, 4))
    out: RunArray = np.empty(len(flat) + n_inst + 16, np.uint32)
    for i in range(n_inst):
        acc: RunArray = np.empty(0, np.uint32)
        have = False
        whole = True  # no member lost pixels to a mask on top
        for k in range(inst_ptr[i], inst_ptr[i + 1]):
            own = flat[off[k] : off[k + 1]]
            vis: RunArray = own
            if occlude and area[k] > 0:
                f = frame_of[k]
                cover: RunArray = np.empty(0, np.uint32)
                covered = False
                for j in range(frame_ptr[f], frame_ptr[f + 1]):
                    if rank[j] > rank[k] and area[j] > 0 and _boxes_meet(box, k, j):
                        m = flat[off[j] : off[j + 1]]
                        cover = merge2(cover, m, UNION) if covered else m
                        covered = True
                if covered:
                    vis = merge2(own, cover, DIFFERENCE)
                    whole = False
            acc = merge2(acc, vis, UNION) if have else vis
            have = True
        if not have:
            acc = np.array([inst_totals[i]], np.uint32)
        elif whole and inst_ptr[i + 1] - inst_ptr[i] == 1:
            inst_box[i] = box[inst_ptr[i]]
        else:
            _area_box(acc, hs[inst_ptr[i]], inst_box[i])
        end = out_off[i] + len(acc)
        if end > len(out):
            grown = np.empty(max(end, 2 * len(out)), np.uint32)
            grown[: out_off[i]] = out[: out_off[i]]
            out = grown
        out[out_off[i] : end] = acc
        out_off[i + 1] = end
    return out[: out_off[-1]].copy(), out_off, inst_box


@njit(cache=True, nogil=True)
def _later_may_hide(box: FloatArray, area: IntArray, lo: int, hi: int, i: int, thr: float) -> bool:
    """Whether the boxes of masks ``i + 1 .. hi - 1`` overlap mask ``i`` enough to hide more
    than ``1 - thr`` of it (the hidden area is at most the sum of box intersections)."""
    bound = 0.0
    for j in range(i + 1, hi):
        iw = min(box[i, 2], box[j, 2]) - max(box[i, 0], box[j, 0])
        ih = min(box[i, 3], box[j, 3]) - max(box[i, 1], box[j, 1])
        if iw > 0 and ih > 0:
            bound += iw * ih
    return not bound < (1 - thr) * area[i]


@njit(cache=True, nogil=True)
def covered_frames(
    flat: RunArray, off: IntArray, frame_ptr: IntArray, heights: IntArray, thr: float
) -> BoolArray:
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
            if area[i] == 0 or not _later_may_hide(box, area, 0, n, i, thr):
                continue
            top: RunArray = np.empty(0, np.uint32)
            for j in range(i + 1, n):
                if _boxes_meet(box, i, j):
                    m = flat[off[lo + j] : off[lo + j + 1]]
                    top = m if len(top) == 0 else merge2(top, m, UNION)
            hidden, _ = overlap(flat[off[lo + i] : off[lo + i + 1]], top)
            out[lo + i] = hidden > 0 and 1 - hidden / area[i] < thr
    return out


@njit(cache=True, nogil=True)
def covered_rect_frames(frame_ptr: IntArray, box: FloatArray, thr: float) -> BoolArray:
    """:func:`covered_frames` for masks that are pixel rectangles ``box`` (N, 4) xyxy pixel
    edges (an empty one all zeros), rows in paint order within each frame (see
    :func:`covered_rect_frame`)."""
    out = np.zeros(len(box), np.bool_)
    scratch = rect_scratch(len(box))
    for f in range(len(frame_ptr) - 1):
        covered_rect_frame(box, frame_ptr[f], frame_ptr[f + 1], thr, out, scratch)
    return out


RectScratch = tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]


@njit(cache=True, nogil=True)
def rect_scratch(n: int) -> RectScratch:
    """Work arrays of :func:`covered_rect_frame` for frames of up to ``n`` rectangles: the
    sweep order and its left edges, the bounds, the clipped rectangles, their x and y edges."""
    return (
        np.empty(n, np.int64),
        np.empty(n),
        np.empty(n),
        np.empty((n, 4)),
        np.empty(2 * n + 2),
        np.empty(2 * n + 2),
    )


@njit(cache=True, nogil=True)
def _sort_by_left(box: FloatArray, lo: int, hi: int, order: IntArray, left: FloatArray) -> None:
    """``order[: hi - lo]`` = rows ``lo .. hi - 1`` by left edge ``left``: an insertion sort
    in place for the usual small frames (no allocation), numpy's sort for big ones."""
    n = hi - lo
    if n > 64:
        by_left = np.argsort(box[lo:hi, 0])
        for t in range(n):
            order[t] = lo + by_left[t]
            left[t] = box[order[t], 0]
        return
    for t in range(n):
        x = box[lo + t, 0]
        s = t
        while s > 0 and left[s - 1] > x:
            order[s] = order[s - 1]
            left[s] = left[s - 1]
            s -= 1
        order[s] = lo + t
        left[s] = x


@njit(cache=True, nogil=True)
def covered_rect_frame(
    box: FloatArray, lo: int, hi: int, thr: float, out: BoolArray, scratch: RectScratch
) -> None:
    """The covered rule on the pixel rectangles ``box[lo:hi]`` of one frame in paint order:
    sets ``out[i]`` of the covered ones (leaves the others).

    A sweep on x finds every pair of meeting rectangles once and adds their intersection to
    the bound of the one painted first (the hidden area is at most that sum, as in
    :func:`covered_frames`; the edges being integers, the sums are exact in any order). Only
    rectangles whose bound reaches ``(1 - thr)`` of their area get the exact hidden area: the
    area of the union of the later rectangles inside it, counted on the grid of their edges.
    """
    n = hi - lo
    if n < 2:
        return
    order, left, bound, clip, xs, ys = scratch
    _sort_by_left(box, lo, hi, order, left)
    for t in range(n):  # an explicit loop: numba's slice fill costs a microsecond
        bound[t] = 0.0
    for a in range(n):
        i = order[a]
        for b in range(a + 1, n):
            if left[b] >= box[i, 2]:
                break  # the later ones in x order start further right still
            j = order[b]
            if _boxes_meet(box, i, j):
                iw = min(box[i, 2], box[j, 2]) - max(box[i, 0], box[j, 0])
                ih = min(box[i, 3], box[j, 3]) - max(box[i, 1], box[j, 1])
                bound[min(i, j) - lo] += iw * ih
    for i in range(lo, hi - 1):
        area = (box[i, 2] - box[i, 0]) * (box[i, 3] - box[i, 1])
        if area == 0 or bound[i - lo] < (1 - thr) * area:
            continue
        k = 0
        for j in range(i + 1, hi):
            if _boxes_meet(box, i, j):
                clip[k, 0] = max(box[i, 0], box[j, 0])
                clip[k, 1] = max(box[i, 1], box[j, 1])
                clip[k, 2] = min(box[i, 2], box[j, 2])
                clip[k, 3] = min(box[i, 3], box[j, 3])
                xs[2 * k] = clip[k, 0]
                xs[2 * k + 1] = clip[k, 2]
                ys[2 * k] = clip[k, 1]
                ys[2 * k + 1] = clip[k, 3]
                k += 1
        gx = np.unique(xs[: 2 * k])
        gy = np.unique(ys[: 2 * k])
        hidden = 0.0
        for a in range(len(gx) - 1):
            for b in range(len(gy) - 1):
                for q in range(k):
                    if (
                        clip[q, 0] <= gx[a]
                        and gx[a + 1] <= clip[q, 2]
                        and clip[q, 1] <= gy[b]
                        and gy[b + 1] <= clip[q, 3]
                    ):
                        hidden += (gx[a + 1] - gx[a]) * (gy[b + 1] - gy[b])
                        break
        out[i] = hidden > 0 and 1 - int(hidden) / int(area) < thr
