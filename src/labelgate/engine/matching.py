"""Geometry-first matching of two annotation sets, frame by frame and type by type.

For each frame and each type group (tags; boxes; polygons+masks; polylines; points; ellipses;
skeletons) a similarity matrix is solved with the Hungarian algorithm on ``1 - similarity``.
CVAT 2.42 (:data:`~labelgate.engine.match_rules.LEGACY`): labels play no part in the cost; a
pair whose similarity reaches ``iou_threshold`` is a match when the labels agree and a label
mismatch otherwise; everything else is missing (GT) or extra (DS). CVAT 2.74+ rules add
two-stage label matching and attribute/direction gating (:meth:`_Collector.assign`). The
result is columnar (:class:`Matches`), not per-annotation objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from labelgate.arrays import AnyArray, BoolArray, FloatArray, IntArray, IntegerArray, RunArray
from labelgate.engine.box_kernels import assign_frames, match_box_frames
from labelgate.engine.match_rules import (
    LEGACY,
    MatchRules,
    attribute_classes,
    attribute_conflicts,
)
from labelgate.engine.settings import QualitySettings
from labelgate.geometry import (
    box_iou,
    box_overlap_pairs_batched,
    ellipse_iou,
    geometry_bounds,
    line_similarities,
    make_polygons,
    point_group_similarity,
    polygon_iou,
    rle,
    rle_kernels,
    rotated_box_iou,
    shape_rles,
    shape_rles_ragged,
    skeleton_oks,
    visible_parts,
)
from labelgate.model import Annotations, Items, Kind

#: Type groups matched separately, as CVAT does (polygons and masks together).
TYPE_GROUPS: dict[str, tuple[Kind, ...]] = {
    "tag": (Kind.TAG,),
    "bbox": (Kind.RECTANGLE,),
    "segmentation": (Kind.POLYGON, Kind.MASK),
    "polyline": (Kind.POLYLINE,),
    "points": (Kind.POINTS,),
    "ellipse": (Kind.ELLIPSE,),
    "skeleton": (Kind.SKELETON,),
}
GROUP_CODE = {name: i for i, name in enumerate(TYPE_GROUPS)}


@dataclass(frozen=True)
class Matches:
    """Result of :func:`match_annotations`, as parallel arrays.

    Paired rows (``gt_row``/``ds_row``; a row can appear in several pairs when grouped
    segmentation instances match): ``similarity``, ``label_equal``, ``type_group`` (index into
    :data:`TYPE_GROUPS`), ``oriented`` (oriented polyline similarity, NaN for other types).
    Unmatched rows: ``unmatched_gt``/``unmatched_ds`` with their best similarity to any row of
    the other side (``best_gt``/``best_ds``; used for mean IoU; geometry only, before any
    attribute or direction gating).
    """

    gt_row: IntArray
    ds_row: IntArray
    similarity: FloatArray
    label_equal: BoolArray
    type_group: IntegerArray
    oriented: FloatArray
    unmatched_gt: IntArray
    unmatched_ds: IntArray
    best_gt: FloatArray
    best_ds: FloatArray


def _assign(sim: FloatArray, threshold: float) -> tuple[IntArray, IntArray]:
    """One Hungarian solve: pairs (row, col) whose similarity reaches ``threshold`` (and > 0)."""
    n, m = sim.shape
    if not (n and m):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ok = (sim >= threshold) & (sim > 0)
    r, c = linear_sum_assignment(np.where(ok, 1.0 - sim, 1.0))
    keep = ok[r, c]
    return r[keep], c[keep]


def _assign_two_stage(
    sim: FloatArray, same: BoolArray, threshold: float
) -> tuple[IntArray, IntArray]:
    """CVAT 2.74+ ``match_segments``: pass 1 on same-label pairs only, pass 2 on the leftovers
    with labels ignored (its pairs become label mismatches). Pass-1 pairs come first."""
    r1, c1 = _assign(np.where(same, sim, 0.0), threshold)
    left_r = np.setdiff1d(np.arange(sim.shape[0]), r1)
    left_c = np.setdiff1d(np.arange(sim.shape[1]), c1)
    if not (len(left_r) and len(left_c)):
        return r1, c1
    r2, c2 = _assign(sim[np.ix_(left_r, left_c)], threshold)
    return np.concatenate([r1, left_r[r2]]), np.concatenate([c1, left_c[c2]])


class _Collector:
    def __init__(
        self, gt: Annotations, ds: Annotations, rules: MatchRules, settings: QualitySettings
    ) -> None:
        self.gt, self.ds, self.rules, self.settings = gt, ds, rules, settings
        self.pairs: list[tuple[AnyArray, ...]] = []
        self.un_gt: list[tuple[IntArray, FloatArray]] = []
        self.un_ds: list[tuple[IntArray, FloatArray]] = []

    def assign(
        self,
        sim: FloatArray,
        threshold: float,
        same: BoolArray,
        blocked: BoolArray | None,
    ) -> tuple[FloatArray, IntArray, IntArray]:
        """Solve one block under the rules.

        Args:
            sim: (n, m) similarities.
            threshold: the lowest similarity that can match.
            same: (n, m) bool, labels equal (used by two-stage matching only).
            blocked: (n, m) bool, pairs gated to similarity 0 (attributes, direction), or None.

        Returns:
            ``(sim, rows, cols)``: the similarities after gating and the chosen pairs.
        """
        if blocked is not None and blocked.any():
            sim = np.where(blocked, 0.0, sim)
        if self.rules.two_stage_labels:
            return (sim, *_assign_two_stage(sim, same, threshold))
        return (sim, *_assign(sim, threshold))

    def blocked(self, g_rows: IntArray, d_rows: IntArray) -> BoolArray | None:
        """Row pairs whose attributes conflict under the rules (None when none are compared)."""
        if not self.rules.gates_attributes:
            return None
        return attribute_conflicts(self.gt, g_rows, self.ds, d_rows, self.rules)

    def add(
        self,
        group: int,
        g_rows: IntArray,
        d_rows: IntArray,
        sim: FloatArray,
        threshold: float,
        oriented: FloatArray | None = None,
    ) -> None:
        """Solve one frame/type block and record pairs and leftovers."""
        n, m = sim.shape
        geometry = sim  # best similarities ignore gating: they say what overlapped
        if self.rules.is_legacy:
            r, c = _assign(sim, threshold)
        else:
            same = self.gt.label[g_rows][:, None] == self.ds.label[d_rows][None, :]
            # CVAT 2.74+ compares no attributes while matching tags.
            blocked = None if group == GROUP_CODE["tag"] else self.blocked(g_rows, d_rows)
            s = self.settings
            if oriented is not None and self.rules.gate_direction and s.compare_line_orientation:
                # The oriented similarity is the geometry similarity; a reversed line is gated.
                reversed_ = (sim - oriented) > s.line_orientation_threshold
                blocked = reversed_ if blocked is None else blocked | reversed_
                sim = oriented
            sim, r, c = self.assign(sim, threshold, same, blocked)
        if len(r):
            ori = oriented[r, c] if oriented is not None else np.full(len(r), np.nan)
            self.pairs.append(
                (g_rows[r], d_rows[c], sim[r, c], np.full(len(r), group, np.int8), ori)
            )
        gmask = np.ones(n, bool)
        gmask[r] = False
        dmask = np.ones(m, bool)
        dmask[c] = False
        best_g = geometry.max(axis=1) if m else np.zeros(n)
        best_d = geometry.max(axis=0) if n else np.zeros(m)
        if gmask.any():
            self.un_gt.append((g_rows[gmask], best_g[gmask]))
        if dmask.any():
            self.un_ds.append((d_rows[dmask], best_d[dmask]))

    def add_pairs(
        self,
        group: int,
        g_rows: IntArray,
        d_rows: IntArray,
        sim: FloatArray,
        un_g: IntArray,
        best_g: FloatArray,
        un_d: IntArray,
        best_d: FloatArray,
    ) -> None:
        if len(g_rows):
            n = len(g_rows)
            self.pairs.append((g_rows, d_rows, sim, np.full(n, group, np.int8), np.full(n, np.nan)))
        if len(un_g):
            self.un_gt.append((un_g, best_g))
        if len(un_d):
            self.un_ds.append((un_d, best_d))

    def result(self, gt: Annotations, ds: Annotations) -> Matches:
        def cat(parts: list[AnyArray], dtype: type) -> AnyArray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

        g = cat([p[0] for p in self.pairs], np.int64)
        d = cat([p[1] for p in self.pairs], np.int64)
        return Matches(
            gt_row=g,
            ds_row=d,
            similarity=cat([p[2] for p in self.pairs], np.float64),
            label_equal=gt.label[g] == ds.label[d],
            type_group=cat([p[3] for p in self.pairs], np.int8),
            oriented=cat([p[4] for p in self.pairs], np.float64),
            unmatched_gt=cat([u[0] for u in self.un_gt], np.int64),
            unmatched_ds=cat([u[0] for u in self.un_ds], np.int64),
            best_gt=cat([u[1] for u in self.un_gt], np.float64),
            best_ds=cat([u[1] for u in self.un_ds], np.float64),
        )


class FrameGroup(NamedTuple):
    """What each frame of one matching group is solved with: the collector, the group's code,
    both sides' annotations, the frames (sizes) and the settings."""

    out: _Collector
    code: int
    gt: Annotations
    ds: Annotations
    items: Items
    s: QualitySettings


#: A per-frame solver: the group, the frame's GT and DS rows, the frame's item.
Solver = Callable[[FrameGroup, IntArray, IntArray, int], None]


def _frames(
    gt: Annotations, ds: Annotations, g_rows: IntArray, d_rows: IntArray
) -> Iterator[tuple[int, IntArray, IntArray]]:
    """Yield (item, gt rows, ds rows) for every item present on either side."""
    gi, di = gt.item[g_rows], ds.item[d_rows]
    for item in np.union1d(gi, di):
        glo, ghi = np.searchsorted(gi, item), np.searchsorted(gi, item, side="right")
        dlo, dhi = np.searchsorted(di, item), np.searchsorted(di, item, side="right")
        yield int(item), g_rows[glo:ghi], d_rows[dlo:dhi]


def match_annotations(
    gt: Annotations,
    ds: Annotations,
    items: Items,
    settings: QualitySettings | None = None,
    *,
    rules: MatchRules | None = None,
) -> Matches:
    """Match two annotation sets that share item ids.

    Args:
        gt: reference annotations (ground truth, or annotator A for agreement).
        ds: annotations under test (annotator B).
        items: item table giving image sizes (needed for masks, lines and point scales).
        settings: thresholds; CVAT defaults when omitted.
        rules: matching behaviour; CVAT 2.42's (:data:`~labelgate.engine.match_rules.LEGACY`)
            when omitted.

    Returns:
        Columnar :class:`Matches`. Rows of kinds CVAT does not compare (cuboids, spans, text,
        numbers) appear nowhere. When both sides carry Label Studio controls, rows of
        different controls are never paired.
    """
    # Only when both sides carry Label Studio controls: a set without them (CVAT, COCO, a
    # consensus) is matched against the other side's rows of every control, as before.
    if (
        (gt.control >= 0).any()
        and (ds.control >= 0).any()
        and len(np.union1d(gt.control, ds.control)) > 1
    ):
        return _match_by_control(gt, ds, items, settings, rules)
    s = settings or QualitySettings()
    out = _Collector(gt, ds, rules or LEGACY, s)
    for name, kinds in TYPE_GROUPS.items():
        g_rows = np.flatnonzero(np.isin(gt.kind, kinds))
        d_rows = np.flatnonzero(np.isin(ds.kind, kinds))
        if len(g_rows) == 0 and len(d_rows) == 0:
            continue
        code = GROUP_CODE[name]
        axis_aligned = not gt.rotation[g_rows].any() and not ds.rotation[d_rows].any()
        if name == "bbox" and axis_aligned and out.rules.is_legacy:
            _boxes_sparse(out, code, gt, ds, g_rows, d_rows, s.iou_threshold)
            continue
        if name == "bbox" and axis_aligned:
            # Gating by exact attributes splits rows into classes; Levenshtein gating needs
            # every pair's values, so those boxes take the dense solver.
            classes = (
                attribute_classes(gt, g_rows, ds, d_rows, out.rules)
                if out.rules.gates_attributes
                else (np.zeros(len(g_rows), np.int64), np.zeros(len(d_rows), np.int64))
            )
            if classes is not None:
                _boxes_sparse_two_stage(out, code, gt, ds, g_rows, d_rows, classes, items, s)
                continue
        # The all-frames raster path reproduces CVAT 2.42's matching; requirement-mode rules
        # (label stages, attribute gates) take the per-frame solvers.
        if (
            name in _ON_RASTERS
            and out.rules.is_legacy
            and _raster_frames(
                out, code, gt, ds, g_rows, d_rows, items, s, grouped=name == "segmentation"
            )
        ):
            continue
        solver = _SOLVERS[name]
        grp = FrameGroup(out, code, gt, ds, items, s)
        for item, g, d in _frames(gt, ds, g_rows, d_rows):
            solver(grp, g, d, item)
    return out.result(gt, ds)


def _match_by_control(
    gt: Annotations,
    ds: Annotations,
    items: Items,
    settings: QualitySettings | None,
    rules: MatchRules | None,
) -> Matches:
    """Match each Label Studio control (``control`` column; -1: none) on its own rows.

    A control is its own variable: a region of one control never pairs with (nor is a
    leftover's best overlap taken from) a region of another. Rows map back to ``gt``/``ds``.
    """
    found: list[tuple[IntArray, IntArray, Matches]] = []
    for c in np.union1d(gt.control, ds.control):
        g_idx, d_idx = np.flatnonzero(gt.control == c), np.flatnonzero(ds.control == c)
        m = match_annotations(
            gt.select(gt.control == c), ds.select(ds.control == c), items, settings, rules=rules
        )
        found.append((g_idx, d_idx, m))

    def cat(pick: Callable[[IntArray, IntArray, Matches], AnyArray]) -> AnyArray:
        return np.concatenate([pick(g, d, m) for g, d, m in found])

    return Matches(
        gt_row=cat(lambda g, d, m: g[m.gt_row]),
        ds_row=cat(lambda g, d, m: d[m.ds_row]),
        similarity=cat(lambda g, d, m: m.similarity),
        label_equal=cat(lambda g, d, m: m.label_equal),
        type_group=cat(lambda g, d, m: m.type_group),
        oriented=cat(lambda g, d, m: m.oriented),
        unmatched_gt=cat(lambda g, d, m: g[m.unmatched_gt]),
        unmatched_ds=cat(lambda g, d, m: d[m.unmatched_ds]),
        best_gt=cat(lambda g, d, m: m.best_gt),
        best_ds=cat(lambda g, d, m: m.best_ds),
    )


def _boxes_sparse(
    out: _Collector,
    code: int,
    gt: Annotations,
    ds: Annotations,
    g_rows: IntArray,
    d_rows: IntArray,
    threshold: float,
) -> None:
    """Axis-aligned boxes over all frames at once: IoU on overlapping pairs only.

    The kernel settles every frame whose optimal assignment is unique by a clear margin (no
    competing candidates, or small contested components solved exactly). The rest (ties, big
    components) run the Hungarian solver on the frame's exact dense matrix (non-candidates
    have IoU 0, cost 1), so its tie-breaking is CVAT's.
    """
    a = np.ascontiguousarray(gt.bbox[g_rows], dtype=np.float64)
    b = np.ascontiguousarray(ds.bbox[d_rows], dtype=np.float64)
    fa = np.ascontiguousarray(gt.item[g_rows], dtype=np.int64)
    fb = np.ascontiguousarray(ds.item[d_rows], dtype=np.int64)
    pg, pd, sims, best_g, best_d = _kernel_pairs(fa, a, fb, b, float(threshold))
    # GT-row order, so each frame's pairs come out in the same order as a per-frame solve.
    order = np.argsort(pg, kind="stable")
    pg, pd, sims = pg[order], pd[order], sims[order]
    un_g = np.ones(len(g_rows), bool)
    un_g[pg] = False
    un_d = np.ones(len(d_rows), bool)
    un_d[pd] = False
    out.add_pairs(
        code,
        g_rows[pg],
        d_rows[pd],
        sims,
        g_rows[un_g],
        best_g[un_g],
        d_rows[un_d],
        best_d[un_d],
    )


def _kernel_pairs(
    fa: IntArray, a: FloatArray, fb: IntArray, b: FloatArray, threshold: float
) -> tuple[IntArray, IntArray, FloatArray, FloatArray, FloatArray]:
    """:func:`match_box_frames` with its hard frames solved by Hungarian on each frame's exact
    dense matrix (non-candidates have IoU 0, cost 1), so tie-breaking is the solver's.

    Returns:
        ``(pg, pd, sims, best_a, best_b)``: pairs as positions into ``a``/``b``, their IoU,
        and every row's best IoU over the other side of its frame.
    """
    pg, pd, ps, best_a, best_b, hard, hi, hj, hs = match_box_frames(fa, a, fb, b, threshold)
    pair_g, pair_d, pair_s = [pg], [pd], [ps]
    for g0, g1, d0, d1, p0, p1 in hard.tolist():
        cost = np.ones((g1 - g0, d1 - d0))
        sim = np.zeros((g1 - g0, d1 - d0))
        cost[hi[p0:p1] - g0, hj[p0:p1] - d0] = 1.0 - hs[p0:p1]
        sim[hi[p0:p1] - g0, hj[p0:p1] - d0] = hs[p0:p1]
        r, c = linear_sum_assignment(cost)
        keep = cost[r, c] < 1.0
        pair_g.append(g0 + r[keep])
        pair_d.append(d0 + c[keep])
        pair_s.append(sim[r[keep], c[keep]])
    return (
        np.concatenate(pair_g).astype(np.int64),
        np.concatenate(pair_d).astype(np.int64),
        np.concatenate(pair_s).astype(np.float64),
        best_a,
        best_b,
    )


def _block_solve(
    ka: IntArray, a: FloatArray, kb: IntArray, b: FloatArray, frame_of: int, thr: float
) -> tuple[IntArray, IntArray, FloatArray, IntArray]:
    """Kernel run on composite keys (frame index * ``frame_of`` + block id).

    Returns:
        ``(pg, pd, ps, tie_frames)``: forced pairs (positions into ``a``/``b``) and the frame
        indices holding a block whose assignment is a real choice.
    """
    oa, ob = np.argsort(ka, kind="stable"), np.argsort(kb, kind="stable")
    pg, pd, ps, _, _, hard = match_box_frames(ka[oa], a[oa], kb[ob], b[ob], thr)[:6]
    ties = ka[oa][hard[:, 0]] // frame_of if len(hard) else np.zeros(0, np.int64)
    return oa[pg], ob[pd], ps, ties


def _boxes_sparse_two_stage(
    out: _Collector,
    code: int,
    gt: Annotations,
    ds: Annotations,
    g_rows: IntArray,
    d_rows: IntArray,
    classes: tuple[IntArray, IntArray],
    items: Items,
    s: QualitySettings,
) -> None:
    """Axis-aligned boxes, two-stage label matching and exact attribute gating, sparse.

    ``classes`` are attribute classes (:func:`attribute_classes`): only rows of one class can
    pair. Pass 1 runs the kernel with (frame, label, class) as the frame key: its cost matrix
    has no candidates across blocks, so each block is independent. Pass 2 runs it on the
    leftovers with (frame, class) keys. A frame where some block's assignment is a real
    choice (a tie the solver must break on the whole frame) goes to the dense solver whole.
    Pairs come out per frame, pass 1 first, each in GT-row order, as the dense path's do.
    """
    thr = float(s.iou_threshold)
    a = np.ascontiguousarray(gt.bbox[g_rows], dtype=np.float64)
    b = np.ascontiguousarray(ds.bbox[d_rows], dtype=np.float64)
    fa = np.ascontiguousarray(gt.item[g_rows], dtype=np.int64)
    fb = np.ascontiguousarray(ds.item[d_rows], dtype=np.int64)
    frames = np.union1d(fa, fb)
    ia, ib = np.searchsorted(frames, fa), np.searchsorted(frames, fb)
    ca, cb = classes
    n_cls = int(max(ca.max(initial=0), cb.max(initial=0))) + 1
    la = gt.label[g_rows].astype(np.int64) + 1
    lb = ds.label[d_rows].astype(np.int64) + 1
    width = (int(max(la.max(initial=0), lb.max(initial=0))) + 1) * n_cls
    pg1, pd1, ps1, ties1 = _block_solve(
        ia * width + la * n_cls + ca, a, ib * width + lb * n_cls + cb, b, width, thr
    )
    left_g, left_d = np.ones(len(fa), bool), np.ones(len(fb), bool)
    left_g[pg1], left_d[pd1] = False, False
    lg, ld = np.flatnonzero(left_g), np.flatnonzero(left_d)
    pg2, pd2, ps2, ties2 = _block_solve(
        ia[lg] * n_cls + ca[lg], a[lg], ib[ld] * n_cls + cb[ld], b[ld], n_cls, thr
    )
    dense = frames[np.union1d(ties1, ties2)]
    pg = np.concatenate([pg1, lg[pg2]])
    pd = np.concatenate([pd1, ld[pd2]])
    ps = np.concatenate([ps1, ps2])
    stage = np.repeat(np.array([0, 1], np.int8), [len(pg1), len(pg2)])
    un_g: BoolArray = np.ones(len(fa), bool)
    un_d: BoolArray = np.ones(len(fb), bool)
    if len(dense):
        keep = ~np.isin(fa[pg], dense)
        pg, pd, ps, stage = pg[keep], pd[keep], ps[keep], stage[keep]
        un_g, un_d = ~np.isin(fa, dense), ~np.isin(fb, dense)
    order = np.lexsort((pg, stage, fa[pg]))
    pg, pd, ps = pg[order], pd[order], ps[order]
    un_g[pg], un_d[pd] = False, False
    ug, ud = np.flatnonzero(un_g), np.flatnonzero(un_d)
    # Leftovers' best IoU over the whole frame, any label (threshold above 1: no candidates).
    best_g = match_box_frames(fa[ug], a[ug], fb, b, 2.0)[3]
    best_d = match_box_frames(fb[ud], b[ud], fa, a, 2.0)[3]
    out.add_pairs(code, g_rows[pg], d_rows[pd], ps, g_rows[ug], best_g, d_rows[ud], best_d)
    grp = FrameGroup(out, code, gt, ds, items, s)
    for item in dense.tolist():
        g, d = g_rows[fa == item], d_rows[fb == item]
        _boxes(grp, g, d, int(item))


def _tags(grp: FrameGroup, g: IntArray, d: IntArray, item: int) -> None:
    sim = np.where(grp.gt.label[g][:, None] == grp.ds.label[d][None, :], 1.0, 0.5)
    grp.out.add(grp.code, g, d, sim, 0.5)


def _image_size(items: Items, item: int) -> tuple[int, int]:
    w, h = items.size_of(np.array([item]))
    return int(w[0]), int(h[0])


def _on_rasters(items: Items, item: int, s: QualitySettings) -> tuple[bool, int, int]:
    """Compare on CVAT's pycocotools rasters unless exact geometry is asked for (or the frame
    size is unknown, which rasters need)."""
    w, h = _image_size(items, item)
    return (not s.exact_geometry and w > 0 and h > 0), w, h


def _boxes(grp: FrameGroup, g: IntArray, d: IntArray, item: int) -> None:
    out, code, gt, ds, items, s = grp
    sim = box_iou(gt.bbox[g], ds.bbox[d])
    rot_g, rot_d = gt.rotation[g], ds.rotation[d]
    differ = rot_g[:, None] != rot_d[None, :]
    if differ.any():
        # CVAT compares rotated boxes as polygons only when the rotations differ.
        raster, w, h = _on_rasters(items, item, s)
        if raster:
            poly = rle.mask_iou(shape_rles(gt, g, h, w), shape_rles(ds, d, h, w), h, w)
        else:
            poly = rotated_box_iou(gt.bbox[g], rot_g, ds.bbox[d], rot_d)
        sim = np.where(differ, poly, sim)
    out.add(code, g, d, sim, s.iou_threshold)


def _ellipses(grp: FrameGroup, g: IntArray, d: IntArray, item: int) -> None:
    out, code, gt, ds, items, s = grp
    raster, w, h = _on_rasters(items, item, s)
    if raster:
        sim = rle.mask_iou(shape_rles(gt, g, h, w), shape_rles(ds, d, h, w), h, w)
    else:
        sim = ellipse_iou(gt.bbox[g], gt.rotation[g], ds.bbox[d], ds.rotation[d])
    out.add(code, g, d, sim, s.iou_threshold)


def _lines(grp: FrameGroup, g: IntArray, d: IntArray, item: int) -> None:
    out, code, gt, ds, items, s = grp
    w, h = _image_size(items, item)
    sim, ori = line_similarities(
        [gt.points_of(r) for r in g], [ds.points_of(r) for r in d], float(w * h), s.line_thickness
    )
    out.add(code, g, d, sim, s.iou_threshold, oriented=ori)


def _instance_boxes(ann: Annotations, rows: IntArray) -> FloatArray:
    """Each row's instance box (CVAT ``instance_bbox``): the union box of the frame's shapes
    sharing its non-zero group; tags have no box."""
    boxes: FloatArray = ann.bbox[rows].copy()
    if len(rows) == 0:
        return boxes
    lo, hi = ann.item_range(int(ann.item[rows[0]]))
    frame = np.arange(lo, hi)
    frame = frame[ann.kind[frame] != Kind.TAG]
    for k, r in enumerate(rows):
        grp = ann.group[r]
        if grp == 0:
            continue
        mates = frame[ann.group[frame] == grp]
        mb = ann.bbox[mates]
        boxes[k] = [mb[:, 0].min(), mb[:, 1].min(), mb[:, 2].max(), mb[:, 3].max()]
    return boxes


def _area(b: FloatArray) -> FloatArray:
    area: FloatArray = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return area


def _points(grp: FrameGroup, g: IntArray, d: IntArray, item: int) -> None:
    out, code, gt, ds, items, s = grp
    w, h = _image_size(items, item)
    sim = point_group_similarity(
        [gt.points_of(r) for r in g],
        [ds.points_of(r) for r in d],
        _instance_boxes(gt, g),
        _instance_boxes(ds, d),
        float(w * h),
        s.oks_sigma,
        s.iou_threshold,
        s.point_size_base,
    )
    out.add(code, g, d, sim, s.iou_threshold)


def _skeletons(grp: FrameGroup, g: IntArray, d: IntArray, item: int) -> None:
    out, code, gt, ds, items, s = grp
    w, h = _image_size(items, item)
    sim = np.zeros((len(g), len(d)))
    kg = gt.point_offsets[g + 1] - gt.point_offsets[g]
    kd = ds.point_offsets[d + 1] - ds.point_offsets[d]
    bg, bd = _instance_boxes(gt, g), _instance_boxes(ds, d)
    for k in np.intersect1d(kg, kd):
        ig, id_ = np.flatnonzero(kg == k), np.flatnonzero(kd == k)
        pa = np.stack([gt.points_of(r) for r in g[ig]])
        va = np.stack([gt.vis_of(r) for r in g[ig]])
        pb = np.stack([ds.points_of(r) for r in d[id_]])
        vb = np.stack([ds.vis_of(r) for r in d[id_]])
        mean = (bg[ig][:, None, :] + bd[id_][None, :, :]) / 2
        scale = _area(mean)
        degenerate = scale <= 0
        # Fix for CVAT #9957: single-point or line-like skeletons have a zero-area box and never
        # matched; they fall back to the image area as the OKS scale, as point groups do.
        scale = np.where(degenerate, float(w * h), scale)
        sub = skeleton_oks(pa, va, pb, vb, scale, s.oks_sigma)
        # CVAT: similarity 0 unless the two instance boxes share area (Datumaro bbox_iou > 0)
        apart = ~(box_iou(bg[ig], bd[id_]) > 0) & ~degenerate
        sub[apart] = 0.0
        sim[np.ix_(ig, id_)] = sub
    out.add(code, g, d, sim, s.iou_threshold)


def segment_order(ann: Annotations, rows: AnyArray) -> tuple[IntArray, IntArray, IntArray]:
    """CVAT's instances and paint order for polygon/mask (or covered-check) rows of one frame.

    CVAT lists polygons before masks, each in document order, then groups them with Datumaro
    ``find_instances`` (stable sort by group id: ungrouped shapes first, each alone; then each
    group, split by label in label order). The compiled mask paints that sequence after a
    stable sort by z_order, later shapes on top.

    Returns:
        ``(members, instance, paint)``: ``members`` the rows in instance order, ``instance``
        each member's instance index, ``paint`` positions into ``members``, bottom first.
    """
    rows = np.asarray(rows, dtype=np.int64)
    grp = ann.group[rows]
    lab = np.where(grp != 0, ann.label[rows], 0)
    is_mask = ann.kind[rows] == Kind.MASK
    members = rows[np.lexsort((np.arange(len(rows)), is_mask, lab, grp))]
    mg, ml = ann.group[members], ann.label[members]
    new = np.ones(len(members), bool)
    new[1:] = (mg[1:] == 0) | (mg[1:] != mg[:-1]) | (ml[1:] != ml[:-1])
    instance = np.cumsum(new) - 1
    paint = np.argsort(ann.z_order[members], kind="stable")
    return members, instance, paint


def _segment_shapes(
    ann: Annotations, rows: IntArray, panoptic: bool, raster: bool, w: int, h: int
) -> tuple[list[IntArray], list[Any]]:
    """Instances (member rows) and their shapes: RLE counts, or shapely geometries in exact
    mode; with ``panoptic``, only the pixels where the instance is on top."""
    members, instance, paint = segment_order(ann, rows)
    n_inst = int(instance[-1]) + 1 if len(members) else 0
    inst = [members[instance == k] for k in range(n_inst)]
    order = paint if panoptic else np.arange(len(members))
    if raster:
        counts = shape_rles(ann, members, h, w)
        parts = [counts[p] for p in order]
        return inst, rle.visible_parts(parts, instance[order], n_inst, h, w, occlude=panoptic)
    geoms, _ = make_polygons(*_ragged_points(ann, members))
    return inst, visible_parts(geoms[order], instance[order], n_inst, occlude=panoptic)


def _ragged_points(ann: Annotations, rows: IntArray) -> tuple[FloatArray, IntArray]:
    starts, ends = ann.point_offsets[rows], ann.point_offsets[rows + 1]
    off = np.zeros(len(rows) + 1, np.int64)
    off[1:] = np.cumsum(ends - starts)
    parts = [np.arange(a, b) for a, b in zip(starts, ends, strict=True)]
    idx = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return ann.points[idx].reshape(-1, 2), off


def _segmentation(grp: FrameGroup, g: IntArray, d: IntArray, item: int) -> None:
    out, code, gt, ds, items, s = grp
    raster, w, h = _on_rasters(items, item, s)
    has_masks = bool((gt.kind[g] == Kind.MASK).any() or (ds.kind[d] == Kind.MASK).any())
    # masks are rasters already: a frame holding any is compared on pixels in every mode
    raster = raster or (has_masks and w > 0 and h > 0)
    ig, sg = _segment_shapes(gt, g, s.panoptic_comparison, raster, w, h)
    id_, sd = _segment_shapes(ds, d, s.panoptic_comparison, raster, w, h)
    if raster:
        sim = rle.mask_iou(sg, sd, h, w)
    else:
        ga, gb = np.array(sg, dtype=object), np.array(sd, dtype=object)
        sim = polygon_iou(ga, geometry_bounds(ga), gb, geometry_bounds(gb))
    n, m = sim.shape
    if out.rules.is_legacy:
        r, c = _assign(sim, s.iou_threshold)
    else:
        r, c = _instance_assign(out, gt, ds, ig, id_, sim, s.iou_threshold)[1:]
    # A matched instance pair counts every member pair (cartesian product), as in CVAT.
    pg, pd, ps = [], [], []
    for a, b in zip(r, c, strict=True):
        ga, db = ig[a], id_[b]
        pg.append(np.repeat(ga, len(db)))
        pd.append(np.tile(db, len(ga)))
        ps.append(np.full(len(ga) * len(db), sim[a, b]))
    um_g = np.setdiff1d(np.arange(n), r)
    um_d = np.setdiff1d(np.arange(m), c)
    best_g = sim.max(axis=1) if m else np.zeros(n)
    best_d = sim.max(axis=0) if n else np.zeros(m)
    ug = [ig[k] for k in um_g]
    ud = [id_[k] for k in um_d]
    out.add_pairs(
        code,
        np.concatenate(pg) if pg else np.zeros(0, np.int64),
        np.concatenate(pd) if pd else np.zeros(0, np.int64),
        np.concatenate(ps) if ps else np.zeros(0),
        np.concatenate(ug) if ug else np.zeros(0, np.int64),
        np.concatenate([np.full(len(ig[k]), best_g[k]) for k in um_g]) if ug else np.zeros(0),
        np.concatenate(ud) if ud else np.zeros(0, np.int64),
        np.concatenate([np.full(len(id_[k]), best_d[k]) for k in um_d]) if ud else np.zeros(0),
    )


def _instance_assign(
    out: _Collector,
    gt: Annotations,
    ds: Annotations,
    ig: list[IntArray],
    id_: list[IntArray],
    sim: FloatArray,
    threshold: float,
) -> tuple[FloatArray, IntArray, IntArray]:
    """Rules-based solve of segmentation instances: an instance's label is its members'
    (instances never mix labels); attributes are gated over every member pair, as CVAT does."""
    glab = np.array([gt.label[k[0]] for k in ig], dtype=np.int64)
    dlab = np.array([ds.label[k[0]] for k in id_], dtype=np.int64)
    same = glab[:, None] == dlab[None, :]
    blocked = None
    if out.rules.gates_attributes and len(ig) and len(id_):
        gm, dm = np.concatenate(ig), np.concatenate(id_)
        rows = out.blocked(gm, dm)
        assert rows is not None
        gi = np.repeat(np.arange(len(ig)), [len(k) for k in ig])
        di = np.repeat(np.arange(len(id_)), [len(k) for k in id_])
        blocked = np.zeros(sim.shape, bool)
        np.logical_or.at(blocked, (gi[:, None], di[None, :]), rows)
    return out.assign(sim, threshold, same, blocked)


#: Groups compared on rasters over all frames at once (:func:`_raster_frames`).
_ON_RASTERS = frozenset({"segmentation", "ellipse"})


@dataclass(frozen=True)
class _RasterInstances:
    """One side's instances over many frames: ``members`` (rows, each instance's contiguous,
    ``ptr`` (I + 1) their ranges), ``frame`` (I,) frame index, rasters ``flat``/``off`` and
    their pixel boxes ``box``."""

    members: IntArray
    ptr: IntArray
    frame: IntArray
    flat: RunArray
    off: IntArray
    box: FloatArray


def _raster_instances(
    ann: Annotations,
    rows: IntArray,
    frames: IntArray,
    h: IntArray,
    w: IntArray,
    grouped: bool,
    panoptic: bool,
) -> _RasterInstances:
    """Instances of ``rows`` (sorted by item) in :func:`segment_order` order, every frame at
    once; with ``grouped`` False each row is its own instance and nothing occludes. Without
    groups and masks that order is the row order (each row alone, polygons only)."""
    fidx = np.searchsorted(frames, ann.item[rows])
    n = len(rows)
    grp = ann.group[rows]
    if grouped and (grp.any() or (ann.kind[rows] == Kind.MASK).any()):
        lab = np.where(grp != 0, ann.label[rows], 0)
        is_mask = ann.kind[rows] == Kind.MASK
        order = np.lexsort((np.arange(n), is_mask, lab, grp, fidx))
        members, mf = rows[order], fidx[order]
        mg, ml = ann.group[members], ann.label[members]
        new = np.ones(n, bool)
        new[1:] = (mf[1:] != mf[:-1]) | (mg[1:] == 0) | (mg[1:] != mg[:-1]) | (ml[1:] != ml[:-1])
    else:
        members, mf, new = rows, fidx, np.ones(n, bool)
    ptr = np.r_[np.flatnonzero(new), n].astype(np.int64)
    frame = mf[new]
    flat, off = shape_rles_ragged(ann, members, h[mf], w[mf])
    if grouped and (panoptic or len(ptr) - 1 < n):
        z = ann.z_order[members]
        if n and (z != z[0]).any():
            paint = np.lexsort((np.arange(n), z, mf))
            rank = np.empty(n, np.int64)
            rank[paint] = np.arange(n)
        else:  # one z_order: paint order is member order
            rank = np.arange(n, dtype=np.int64)
        frame_ptr = np.searchsorted(mf, np.arange(len(frames) + 1)).astype(np.int64)
        flat, off, box = rle_kernels.instance_masks_boxed(
            flat, off, frame_ptr, ptr, rank, h, (h * w)[frame].astype(np.int64), panoptic
        )
    else:
        _, box = rle_kernels.areas_and_boxes_sized(flat, off, h[frame].astype(np.int64))
    return _RasterInstances(members, ptr, frame, flat, off, box)


def _best_per_row(rows: IntArray, sims: FloatArray, n: int) -> FloatArray:
    """Each of ``n`` rows' highest similarity among the pairs it is in (0 when in none)."""
    best = np.zeros(n)
    if len(rows):
        order = np.argsort(rows, kind="stable")
        r = rows[order]
        starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
        best[r[starts]] = np.maximum.reduceat(sims[order], starts)
    return best


def _raster_frames(
    out: _Collector,
    code: int,
    gt: Annotations,
    ds: Annotations,
    g_rows: IntArray,
    d_rows: IntArray,
    items: Items,
    s: QualitySettings,
    *,
    grouped: bool,
) -> bool:
    """Polygons/masks (``grouped``: CVAT instances, panoptic occlusion) or ellipses of every
    frame on CVAT's rasters in a few compiled calls: rasterise all, IoU only for instances whose
    pixel boxes overlap, settle each frame whose assignment is forced, and run the Hungarian
    solver on the frame's exact matrix only where it is a real choice. Same result, pair for
    pair and in the same order, as the per-frame solvers.

    Returns:
        False (nothing done) under ``exact_geometry`` or when some frame's size is unknown:
        the per-frame solvers handle those.
    """
    if s.exact_geometry:
        return False
    frames = np.union1d(gt.item[g_rows], ds.item[d_rows])
    w, h = items.size_of(frames)
    if not ((w > 0) & (h > 0)).all():
        return False
    w, h = np.asarray(w, np.int64), np.asarray(h, np.int64)
    a = _raster_instances(gt, g_rows, frames, h, w, grouped, s.panoptic_comparison)
    b = _raster_instances(ds, d_rows, frames, h, w, grouped, s.panoptic_comparison)
    na, nb = len(a.frame), len(b.frame)
    pairs = box_overlap_pairs_batched(a.frame, a.box, b.frame, b.box)
    pi, pj = pairs[:, 0], pairs[:, 1]
    sims = rle_kernels.pair_iou(a.flat, a.off, b.flat, b.off, pi, pj)
    best_a, best_b = _best_per_row(pi, sims, na), _best_per_row(pj, sims, nb)
    ok = (sims >= s.iou_threshold) & (sims > 0)
    pi, pj, ps = pi[ok], pj[ok], sims[ok]
    nf = len(frames)
    first_a = np.searchsorted(a.frame, np.arange(nf + 1))
    first_b = np.searchsorted(b.frame, np.arange(nf + 1))
    pf = a.frame[pi]
    ptr = np.searchsorted(pf, np.arange(nf + 1)).astype(np.int64)
    li, lj = pi - first_a[pf], pj - first_b[pf]
    take, hard = assign_frames(ptr, li, lj, ps, np.diff(first_a), np.diff(first_b))
    got_a, got_b, got_s = [pi[take == 1]], [pj[take == 1]], [ps[take == 1]]
    for f in np.flatnonzero(hard).tolist():
        p0, p1 = ptr[f], ptr[f + 1]
        fl, fj = li[p0:p1], lj[p0:p1]
        cost = np.ones((first_a[f + 1] - first_a[f], first_b[f + 1] - first_b[f]))
        cost[fl, fj] = 1 - ps[p0:p1]
        cand = np.zeros(cost.shape, bool)
        cand[fl, fj] = True
        r, c = linear_sum_assignment(cost)
        keep = cand[r, c]
        sim = np.zeros(cost.shape)
        sim[fl, fj] = ps[p0:p1]
        got_a.append(first_a[f] + r[keep])
        got_b.append(first_b[f] + c[keep])
        got_s.append(sim[r[keep], c[keep]])
    ia, ib, isim = np.concatenate(got_a), np.concatenate(got_b), np.concatenate(got_s)
    order = np.argsort(ia, kind="stable")
    ia, ib, isim = ia[order], ib[order], isim[order]
    # A matched instance pair counts every member pair (cartesian product), as in CVAT.
    size_a, size_b = np.diff(a.ptr), np.diff(b.ptr)
    blk_a, blk_b = size_a[ia], size_b[ib]
    blk = blk_a * blk_b
    pid = np.repeat(np.arange(len(ia)), blk)
    t = np.arange(int(blk.sum())) - np.repeat(np.cumsum(blk) - blk, blk)
    mg = a.members[a.ptr[ia][pid] + t // blk_b[pid]]
    md = b.members[b.ptr[ib][pid] + t % blk_b[pid]]
    left_a = np.ones(na, bool)
    left_a[ia] = False
    left_b = np.ones(nb, bool)
    left_b[ib] = False
    un_a, un_b = np.repeat(left_a, size_a), np.repeat(left_b, size_b)
    out.add_pairs(
        code,
        mg,
        md,
        isim[pid],
        a.members[un_a],
        np.repeat(best_a, size_a)[un_a],
        b.members[un_b],
        np.repeat(best_b, size_b)[un_b],
    )
    return True


_SOLVERS: dict[str, Solver] = {
    "tag": _tags,
    "bbox": _boxes,
    "segmentation": _segmentation,
    "polyline": _lines,
    "points": _points,
    "ellipse": _ellipses,
    "skeleton": _skeletons,
}
