"""The numba box-matching kernel against a plain per-pair, per-frame Hungarian reference."""

import numpy as np
from engine_builders import box, make_set
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from labelgate.engine import QualitySettings, match_annotations
from labelgate.engine.box_kernels import match_box_frames
from labelgate.geometry import box_iou


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference(gt, ds, threshold):
    """Per frame: one IoU per pair, the dense Hungarian solve, best IoU of unmatched rows."""
    pairs, un_g, un_d = {}, {}, {}
    for f in np.union1d(gt.item, ds.item):
        glo, ghi = gt.item_range(int(f))
        dlo, dhi = ds.item_range(int(f))
        sim = np.zeros((ghi - glo, dhi - dlo))
        for i in range(glo, ghi):
            for j in range(dlo, dhi):
                sim[i - glo, j - dlo] = _iou(gt.bbox[i].tolist(), ds.bbox[j].tolist())
        cost = np.where((sim >= threshold) & (sim > 0), 1.0 - sim, 1.0)
        r, c = linear_sum_assignment(cost)
        keep = cost[r, c] < 1.0
        for i, j in zip(r[keep], c[keep], strict=True):
            pairs[glo + int(i)] = (dlo + int(j), sim[i, j])
        for i in range(ghi - glo):
            if glo + i not in pairs:
                un_g[glo + i] = sim[i].max() if dhi > dlo else 0.0
        taken = {d for d, _ in pairs.values()}
        for j in range(dhi - dlo):
            if dlo + j not in taken:
                un_d[dlo + j] = sim[:, j].max() if ghi > glo else 0.0
    return pairs, un_g, un_d


# Small integer coordinates give identical boxes, exact ties and zero-area boxes; a float
# offset now and then breaks the lattice.
coord = st.integers(0, 12)
extent = st.integers(0, 6)
offset = st.sampled_from([0.0, 0.0, 0.25, 1e-3])
box_st = st.tuples(coord, coord, extent, extent, offset)


@st.composite
def frame_st(draw):
    """GT boxes, and DS boxes that are mostly shifted or duplicated GT boxes (contests, ties)."""
    gt = draw(st.lists(box_st, max_size=7))
    ds = draw(st.lists(box_st, max_size=3))
    for x, y, w, h, o in gt:
        for _ in range(draw(st.integers(0, 2))):
            dx, dy = draw(st.integers(-1, 1)), draw(st.integers(-1, 1))
            ds.append((x + dx, y + dy, w, h, o))
    return gt, draw(st.permutations(ds))


def _rows(frames, side):
    rows = []
    for f, sides in enumerate(frames):
        for x, y, w, h, o in sides[side]:
            rows.append(box(x + o, y, x + o + w, y + h, item=f))
    return rows


@settings(max_examples=300, deadline=None)
@given(st.lists(frame_st(), min_size=1, max_size=4), st.sampled_from([0.1, 0.4, 0.5, 0.9]))
def test_box_matching_equals_per_pair_reference(frames, threshold):
    ids = tuple(range(len(frames)))
    gt = make_set(_rows(frames, 0), frames=ids).annotations
    ds = make_set(_rows(frames, 1), frames=ids).annotations
    m = match_annotations(
        gt, ds, make_set([], frames=ids).items, QualitySettings(iou_threshold=threshold)
    )
    pairs, un_g, un_d = reference(gt, ds, threshold)
    got = {
        int(g): (int(d), float(s)) for g, d, s in zip(m.gt_row, m.ds_row, m.similarity, strict=True)
    }
    assert got == pairs  # same pairs, bit-identical IoU
    assert dict(zip(m.unmatched_gt.tolist(), m.best_gt.tolist(), strict=True)) == un_g
    assert dict(zip(m.unmatched_ds.tolist(), m.best_ds.tolist(), strict=True)) == un_d
    assert list(m.gt_row) == sorted(m.gt_row)  # frame-by-frame, GT-row order


@settings(max_examples=100, deadline=None)
@given(st.lists(box_st, min_size=1, max_size=8), st.lists(box_st, min_size=1, max_size=8))
def test_kernel_iou_is_bit_identical_to_numpy(ga, da):
    a = np.array([[x + o, y, x + o + w, y + h] for x, y, w, h, o in ga], dtype=float)
    b = np.array([[x, y + o, x + w, y + o + h] for x, y, w, h, o in da], dtype=float)
    best_a = match_box_frames(np.zeros(len(a), np.int64), a, np.zeros(len(b), np.int64), b, 0.5)[3]
    assert np.array_equal(best_a, box_iou(a, b).max(axis=1))


def _kernel(a, b, threshold=0.4):
    a, b = np.array(a, dtype=float), np.array(b, dtype=float)
    return match_box_frames(np.zeros(len(a), np.int64), a, np.zeros(len(b), np.int64), b, threshold)


def test_clear_contest_is_settled_in_the_kernel():
    # Two GT boxes both overlap two DS boxes; the diagonal wins clearly.
    pg, pd, _, _, _, hard, *_ = _kernel(
        [[0, 0, 10, 10], [2, 0, 12, 10]], [[0, 0, 10, 10], [2, 0, 12, 10]]
    )
    assert (pg.tolist(), pd.tolist(), len(hard)) == ([0, 1], [0, 1], 0)


def test_exact_tie_is_left_to_the_hungarian_solver():
    pg, _, _, _, _, hard, hi, hj, _ = _kernel([[0, 0, 10, 10]] * 2, [[0, 0, 10, 10]] * 2)
    assert len(pg) == 0
    assert hard.tolist() == [[0, 2, 0, 2, 0, 4]]
    assert sorted(zip(hi.tolist(), hj.tolist(), strict=True)) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_empty_sides_and_disjoint_frames():
    empty = np.zeros((0, 4))
    out = match_box_frames(
        np.zeros(0, np.int64), empty, np.zeros(1, np.int64), np.ones((1, 4)), 0.4
    )
    assert [len(x) for x in out] == [0, 0, 0, 0, 1, 0, 0, 0, 0]
    a = np.array([[0.0, 0, 5, 5]])
    out = match_box_frames(np.array([0]), a, np.array([1]), a, 0.4)
    assert len(out[0]) == 0 and out[3].tolist() == [0.0] and out[4].tolist() == [0.0]
