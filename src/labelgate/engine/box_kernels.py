"""Numba kernel for axis-aligned box matching over many frames at once.

:func:`match_box_frames` walks frames (rows sorted by item), finds overlapping pairs with a
sweep on x, computes IoU with exactly the float operations of
:func:`labelgate.geometry.box_iou` (so results are bit-identical to the numpy path) and resolves the assignment wherever it is forced. Only frames
whose assignment is a real choice are handed back for the Hungarian solver.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labelgate.arrays import AnyArray, BoolArray, FloatArray, IntArray

#: A forced winner must beat every rival's cost by more than this; closer calls (ties, or near
#: ties where float rounding inside the solver could decide) go to the Hungarian solver.
TIE_MARGIN = 1e-9


@njit(cache=True, nogil=True)
def _iou(a: FloatArray, i: int, b: FloatArray, j: int) -> float:
    # Same operations, same order as geometry.box_iou (on valid, non-inverted boxes).
    ix = min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0])
    if ix < 0.0:
        ix = 0.0
    iy = min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1])
    if iy < 0.0:
        iy = 0.0
    inter = ix * iy
    union = (
        (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1])
        + (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
        - inter
    )
    if union > 0.0:
        return float(inter / union)
    return 0.0


@njit(cache=True, nogil=True)
def _grow(x: AnyArray, need: int) -> AnyArray:
    # One definition serves int and float buffers: numba compiles a version per dtype.
    if need <= len(x):
        return x
    out = np.empty(max(need, 2 * len(x)), x.dtype)
    out[: len(x)] = x
    return out


#: Components with more candidate pairs than this are left to the Hungarian solver.
MAX_COMPONENT_PAIRS = 12


@njit(cache=True, nogil=True)
def _find(parent: IntArray, x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@njit(cache=True, nogil=True)
def _forced_assignment(li: IntArray, lj: IntArray, sim: FloatArray, na: int, nb: int) -> IntArray:
    """Which candidate pairs (frame-local rows ``li``/``lj``) the optimal assignment takes.

    Components of the candidate graph are independent, so each is solved exactly by
    enumerating its matchings (maximum total IoU is the minimum Hungarian cost). Returns 0/1
    per pair, or all -1 when some component is too big or its best matching does not win by
    :data:`TIE_MARGIN` (then the solver's own tie-breaking must decide).
    """
    k = len(li)
    parent = np.arange(na + nb)
    for p in range(k):
        ra, rb = _find(parent, li[p]), _find(parent, na + lj[p])
        if ra != rb:
            parent[ra] = rb
    root = np.empty(k, np.int64)
    for p in range(k):
        root[p] = _find(parent, li[p])
    order = np.argsort(root, kind="mergesort")
    take = np.zeros(k, np.int64)
    fail = np.full(k, -1, np.int64)
    ua = np.empty(MAX_COMPONENT_PAIRS, np.int64)
    ub = np.empty(MAX_COMPONENT_PAIRS, np.int64)
    s0 = 0
    while s0 < k:
        e = s0
        while e < k and root[order[e]] == root[order[s0]]:
            e += 1
        ne = e - s0
        if ne == 1:
            take[order[s0]] = 1
        elif ne > MAX_COMPONENT_PAIRS:
            return fail
        else:
            # Component-local node numbers so a matching's used rows fit in a bitmask.
            for q in range(ne):
                p = order[s0 + q]
                ua[q] = q
                ub[q] = q
                for r in range(q):
                    if li[order[s0 + r]] == li[p]:
                        ua[q] = ua[r]
                    if lj[order[s0 + r]] == lj[p]:
                        ub[q] = ub[r]
            best = -1.0
            second = 0.0
            best_mask = 0
            for mask in range(1, 1 << ne):
                used_a = 0
                used_b = 0
                w = 0.0
                valid = True
                for q in range(ne):
                    if mask >> q & 1:
                        if used_a >> ua[q] & 1 or used_b >> ub[q] & 1:
                            valid = False
                            break
                        used_a |= 1 << ua[q]
                        used_b |= 1 << ub[q]
                        w += sim[order[s0 + q]]
                if not valid:
                    continue
                if w > best:
                    second = max(second, best)
                    best = w
                    best_mask = mask
                elif w > second:
                    second = w
            if not best - second > TIE_MARGIN:
                return fail
            for q in range(ne):
                if best_mask >> q & 1:
                    take[order[s0 + q]] = 1
        s0 = e
    return take


@njit(cache=True, nogil=True)
def match_box_frames(
    fa: IntArray, a: FloatArray, fb: IntArray, b: FloatArray, threshold: float
) -> tuple[
    IntArray,
    IntArray,
    FloatArray,
    FloatArray,
    FloatArray,
    IntArray,
    IntArray,
    IntArray,
    FloatArray,
]:
    """Match boxes ``a`` (frames ``fa``) against ``b`` (frames ``fb``); both sorted by frame.

    A pair is a candidate when ``iou >= threshold and iou > 0``. Returns
    ``(pg, pd, ps, best_a, best_b, hard, hi, hj, hs)``: forced pairs (row in a, row in b, IoU;
    ascending a-row within each frame), every row's best IoU over the other side of its frame,
    the hard frames as rows ``(a_lo, a_hi, b_lo, b_hi, p_lo, p_hi)`` and their candidate pairs
    ``hi, hj, hs`` (slice ``p_lo:p_hi`` per hard frame).
    """
    n, m = len(fa), len(fb)
    best_a = np.zeros(n)
    best_b = np.zeros(m)
    cap = min(n, m)
    pg = np.empty(cap, np.int64)
    pd = np.empty(cap, np.int64)
    ps = np.empty(cap)
    npair = 0
    # Per-row candidate counts, reset after each frame.
    cnt_a = np.zeros(n, np.int64)
    cnt_b = np.zeros(m, np.int64)
    oi: IntArray = np.empty(64, np.int64)
    oj: IntArray = np.empty(64, np.int64)
    os: FloatArray = np.empty(64)
    hard = np.empty((16, 6), np.int64)
    nhard = 0
    hi: IntArray = np.empty(64, np.int64)
    hj: IntArray = np.empty(64, np.int64)
    hs: FloatArray = np.empty(64)
    nh = 0
    i0 = 0
    j0 = 0
    while i0 < n and j0 < m:
        if fa[i0] < fb[j0]:
            i0 += 1
            continue
        if fb[j0] < fa[i0]:
            j0 += 1
            continue
        f = fa[i0]
        i1 = i0
        while i1 < n and fa[i1] == f:
            i1 += 1
        j1 = j0
        while j1 < m and fb[j1] == f:
            j1 += 1
        # Sweep on x: with b sorted by left edge, a pair can only overlap when b's left edge
        # lies in (a.x1 - widest b, a.x2), so each a scans a short window.
        order = np.argsort(b[j0:j1, 0]) + j0
        xs = np.empty(j1 - j0)
        wmax = 0.0
        for t in range(j1 - j0):
            jj = order[t]
            xs[t] = b[jj, 0]
            w = b[jj, 2] - b[jj, 0]
            if w > wmax:
                wmax = w
        k = 0
        for i in range(i0, i1):
            # Generous lower bound: extra pairs are computed exactly, missing ones would not be.
            lo = a[i, 0] - wmax - 1e-6 * (1.0 + abs(a[i, 0]) + wmax)
            x2 = a[i, 2]
            for t in range(np.searchsorted(xs, lo), j1 - j0):
                if xs[t] >= x2:
                    break
                j = order[t]
                s = _iou(a, i, b, j)
                if s > best_a[i]:
                    best_a[i] = s
                if s > best_b[j]:
                    best_b[j] = s
                if s >= threshold and s > 0.0:
                    if k == len(oi):
                        oi = _grow(oi, k + 1)
                        oj = _grow(oj, k + 1)
                        os = _grow(os, k + 1)
                    oi[k] = i
                    oj[k] = j
                    os[k] = s
                    k += 1
        if k:
            for p in range(k):
                cnt_a[oi[p]] += 1
                cnt_b[oj[p]] += 1
            contested = False
            for p in range(k):
                if cnt_a[oi[p]] > 1 or cnt_b[oj[p]] > 1:
                    contested = True
                    break
            if contested:
                take = _forced_assignment(oi[:k] - i0, oj[:k] - j0, os[:k], i1 - i0, j1 - j0)
                forced = take[0] >= 0
            else:
                take = np.ones(k, np.int64)
                forced = True
            if forced:
                for p in range(k):
                    if take[p]:
                        pg[npair] = oi[p]
                        pd[npair] = oj[p]
                        ps[npair] = os[p]
                        npair += 1
            else:
                if nhard == len(hard):
                    grown = np.empty((2 * nhard, 6), np.int64)
                    grown[:nhard] = hard
                    hard = grown
                hi = _grow(hi, nh + k)
                hj = _grow(hj, nh + k)
                hs = _grow(hs, nh + k)
                hi[nh : nh + k] = oi[:k]
                hj[nh : nh + k] = oj[:k]
                hs[nh : nh + k] = os[:k]
                hard[nhard, 0] = i0
                hard[nhard, 1] = i1
                hard[nhard, 2] = j0
                hard[nhard, 3] = j1
                hard[nhard, 4] = nh
                hard[nhard, 5] = nh + k
                nhard += 1
                nh += k
            for p in range(k):
                cnt_a[oi[p]] = 0
                cnt_b[oj[p]] = 0
        i0 = i1
        j0 = j1
    return (
        pg[:npair],
        pd[:npair],
        ps[:npair],
        best_a,
        best_b,
        hard[:nhard],
        hi[:nh],
        hj[:nh],
        hs[:nh],
    )


@njit(cache=True, nogil=True)
def assign_frames(
    ptr: IntArray, li: IntArray, lj: IntArray, sim: FloatArray, na: IntArray, nb: IntArray
) -> tuple[IntArray, BoolArray]:
    """Forced assignments of many frames' candidate pairs (:func:`_forced_assignment` each).

    Args:
        ptr: (F + 1,) candidate range of each frame.
        li, lj: frame-local row indices of each candidate on the two sides.
        sim: each candidate's similarity (all reach the threshold and are > 0).
        na, nb: (F,) row counts of each frame on the two sides.

    Returns:
        ``(take, hard)``: 0/1 per candidate, and per frame whether its assignment is a real
        choice left to the Hungarian solver (its ``take`` entries are then 0).
    """
    take = np.zeros(len(li), np.int64)
    hard = np.zeros(len(ptr) - 1, np.bool_)
    for f in range(len(ptr) - 1):
        lo, hi = ptr[f], ptr[f + 1]
        if hi == lo:
            continue
        t = _forced_assignment(li[lo:hi], lj[lo:hi], sim[lo:hi], na[f], nb[f])
        if t[0] < 0:
            hard[f] = True
        else:
            take[lo:hi] = t
    return take, hard
