"""Geometry-first matching of two annotation sets, frame by frame and type by type (CVAT 2.42).

For each frame and each type group (tags; boxes; polygons+masks; polylines; points; ellipses;
skeletons) a similarity matrix is solved with the Hungarian algorithm on ``1 - similarity``.
Labels play no part in the cost: a pair whose similarity reaches ``iou_threshold`` is a match
when the labels agree and a label mismatch otherwise; everything else is missing (GT) or extra
(DS). The result is columnar (:class:`Matches`), not per-annotation objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from scipy.optimize import linear_sum_assignment

from labelgate.engine.box_kernels import match_box_frames
from labelgate.engine.settings import QualitySettings
from labelgate.engine.similarity import (
    bitmap_iou,
    box_iou,
    boxes_touch,
    geom_iou,
    line_similarity,
    oks_skeletons,
    outer_boxes,
    point_group_similarity,
    polygons_from_ragged,
    polygons_from_vertices,
    rotated_corners,
)
from labelgate.geometry import ellipse_iou
from labelgate.io.rle import decode_column_major
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
    the other side (``best_gt``/``best_ds``; used for mean IoU).
    """

    gt_row: np.ndarray
    ds_row: np.ndarray
    similarity: np.ndarray
    label_equal: np.ndarray
    type_group: np.ndarray
    oriented: np.ndarray
    unmatched_gt: np.ndarray
    unmatched_ds: np.ndarray
    best_gt: np.ndarray
    best_ds: np.ndarray


class _Collector:
    def __init__(self) -> None:
        self.pairs: list[tuple[np.ndarray, ...]] = []
        self.un_gt: list[tuple[np.ndarray, np.ndarray]] = []
        self.un_ds: list[tuple[np.ndarray, np.ndarray]] = []

    def add(
        self,
        group: int,
        g_rows: np.ndarray,
        d_rows: np.ndarray,
        sim: np.ndarray,
        threshold: float,
        oriented: np.ndarray | None = None,
    ) -> None:
        """Solve one frame/type block and record pairs and leftovers."""
        n, m = sim.shape
        if n and m:
            ok = (sim >= threshold) & (sim > 0)
            cost = np.where(ok, 1.0 - sim, 1.0)
            r, c = linear_sum_assignment(cost)
            keep = ok[r, c]
            r, c = r[keep], c[keep]
        else:
            r = c = np.zeros(0, np.int64)
        if len(r):
            ori = oriented[r, c] if oriented is not None else np.full(len(r), np.nan)
            self.pairs.append(
                (g_rows[r], d_rows[c], sim[r, c], np.full(len(r), group, np.int8), ori)
            )
        gmask = np.ones(n, bool)
        gmask[r] = False
        dmask = np.ones(m, bool)
        dmask[c] = False
        best_g = sim.max(axis=1) if m else np.zeros(n)
        best_d = sim.max(axis=0) if n else np.zeros(m)
        if gmask.any():
            self.un_gt.append((g_rows[gmask], best_g[gmask]))
        if dmask.any():
            self.un_ds.append((d_rows[dmask], best_d[dmask]))

    def add_pairs(
        self,
        group: int,
        g_rows: np.ndarray,
        d_rows: np.ndarray,
        sim: np.ndarray,
        un_g: np.ndarray,
        best_g: np.ndarray,
        un_d: np.ndarray,
        best_d: np.ndarray,
    ) -> None:
        if len(g_rows):
            n = len(g_rows)
            self.pairs.append((g_rows, d_rows, sim, np.full(n, group, np.int8), np.full(n, np.nan)))
        if len(un_g):
            self.un_gt.append((un_g, best_g))
        if len(un_d):
            self.un_ds.append((un_d, best_d))

    def result(self, gt: Annotations, ds: Annotations) -> Matches:
        def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
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


def _frames(
    gt: Annotations, ds: Annotations, g_rows: np.ndarray, d_rows: np.ndarray
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
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
) -> Matches:
    """Match two annotation sets that share item ids.

    Args:
        gt: reference annotations (ground truth, or annotator A for agreement).
        ds: annotations under test (annotator B).
        items: item table giving image sizes (needed for masks, lines and point scales).
        settings: thresholds; CVAT defaults when omitted.

    Returns:
        Columnar :class:`Matches`. Rows of kinds CVAT does not compare (cuboids, spans, text,
        numbers) appear nowhere.
    """
    s = settings or QualitySettings()
    out = _Collector()
    for name, kinds in TYPE_GROUPS.items():
        g_rows = np.flatnonzero(np.isin(gt.kind, kinds))
        d_rows = np.flatnonzero(np.isin(ds.kind, kinds))
        if len(g_rows) == 0 and len(d_rows) == 0:
            continue
        code = GROUP_CODE[name]
        if name == "bbox" and not gt.rotation[g_rows].any() and not ds.rotation[d_rows].any():
            _boxes_sparse(out, code, gt, ds, g_rows, d_rows, s.iou_threshold)
            continue
        solver = _SOLVERS[name]
        for item, g, d in _frames(gt, ds, g_rows, d_rows):
            solver(out, code, gt, ds, g, d, item, items, s)
    return out.result(gt, ds)


def _boxes_sparse(
    out: _Collector,
    code: int,
    gt: Annotations,
    ds: Annotations,
    g_rows: np.ndarray,
    d_rows: np.ndarray,
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
    pg, pd, ps, best_g, best_d, hard, hi, hj, hs = match_box_frames(fa, a, fb, b, float(threshold))
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
    pg = np.concatenate(pair_g).astype(np.int64)
    pd = np.concatenate(pair_d).astype(np.int64)
    sims = np.concatenate(pair_s).astype(np.float64)
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


Solver = Callable[
    [
        _Collector,
        int,
        Annotations,
        Annotations,
        np.ndarray,
        np.ndarray,
        int,
        Items,
        QualitySettings,
    ],
    None,
]


def _tags(out, code, gt, ds, g, d, item, items, s) -> None:  # type: ignore[no-untyped-def]
    sim = np.where(gt.label[g][:, None] == ds.label[d][None, :], 1.0, 0.5)
    out.add(code, g, d, sim, 0.5)


def _boxes(out, code, gt, ds, g, d, item, items, s) -> None:  # type: ignore[no-untyped-def]
    sim = box_iou(gt.bbox[g], ds.bbox[d])
    rot_g, rot_d = gt.rotation[g], ds.rotation[d]
    differ = rot_g[:, None] != rot_d[None, :]
    if differ.any():
        # CVAT compares rotated boxes as polygons only when the rotations differ.
        cg, cd = rotated_corners(gt.bbox[g], rot_g), rotated_corners(ds.bbox[d], rot_d)
        poly = geom_iou(
            polygons_from_vertices(cg), outer_boxes(cg), polygons_from_vertices(cd), outer_boxes(cd)
        )
        sim = np.where(differ, poly, sim)
    out.add(code, g, d, sim, s.iou_threshold)


def _ellipses(out, code, gt, ds, g, d, item, items, s) -> None:  # type: ignore[no-untyped-def]
    sim = ellipse_iou(gt.bbox[g], gt.rotation[g], ds.bbox[d], ds.rotation[d])
    out.add(code, g, d, sim, s.iou_threshold)


def _image_size(items: Items, item: int) -> tuple[int, int]:
    w, h = items.size_of(np.array([item]))
    return int(w[0]), int(h[0])


def _lines(out, code, gt, ds, g, d, item, items, s) -> None:  # type: ignore[no-untyped-def]
    w, h = _image_size(items, item)
    sim = np.zeros((len(g), len(d)))
    ori = np.zeros((len(g), len(d)))
    for i, gr in enumerate(g):
        for j, dr in enumerate(d):
            sim[i, j], ori[i, j] = line_similarity(
                gt.points_of(gr), ds.points_of(dr), float(w * h), s.line_thickness
            )
    out.add(code, g, d, sim, s.iou_threshold, oriented=ori)


def _instance_boxes(ann: Annotations, rows: np.ndarray) -> np.ndarray:
    """Each row's instance box: the union box of rows in the same frame sharing its group."""
    boxes = ann.bbox[rows].copy()
    if len(rows) == 0:
        return boxes
    lo, hi = ann.item_range(int(ann.item[rows[0]]))
    frame = np.arange(lo, hi)
    for k, r in enumerate(rows):
        grp = ann.group[r]
        if grp == 0:
            continue
        mates = frame[ann.group[frame] == grp]
        mb = ann.bbox[mates]
        boxes[k] = [mb[:, 0].min(), mb[:, 1].min(), mb[:, 2].max(), mb[:, 3].max()]
    return boxes


def _area(b: np.ndarray) -> np.ndarray:
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def _points(out, code, gt, ds, g, d, item, items, s) -> None:  # type: ignore[no-untyped-def]
    w, h = _image_size(items, item)
    bg, bd = _instance_boxes(gt, g), _instance_boxes(ds, d)
    touch = boxes_touch(bg, bd)
    sim = np.zeros((len(g), len(d)))
    for i, gr in enumerate(g):
        for j, dr in enumerate(d):
            a_area, b_area = _area(bg[i]), _area(bd[j])
            if a_area <= 0 and b_area <= 0:
                scale = float(w * h)  # single points: OKS in image space
            elif s.point_size_base == "image_size":
                scale = float(w * h)
            else:
                if not touch[i, j] or box_iou(bg[i : i + 1], bd[j : j + 1])[0, 0] <= 0:
                    continue
                scale = float(_area((bg[i] + bd[j]) / 2))
            sim[i, j] = point_group_similarity(
                gt.points_of(gr), ds.points_of(dr), scale, s.oks_sigma, s.iou_threshold
            )
    out.add(code, g, d, sim, s.iou_threshold)


def _skeletons(out, code, gt, ds, g, d, item, items, s) -> None:  # type: ignore[no-untyped-def]
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
        sub = oks_skeletons(pa, va, pb, vb, scale, s.oks_sigma)
        apart = ~boxes_touch(bg[ig], bd[id_]) & ~degenerate
        sub[apart] = 0.0
        sim[np.ix_(ig, id_)] = sub
    out.add(code, g, d, sim, s.iou_threshold)


def _instances(ann: Annotations, rows: np.ndarray) -> list[np.ndarray]:
    """Rows grouped into instances: same non-zero group and same label, else alone."""
    keys: dict[tuple[int, int], list[int]] = {}
    out: list[list[int]] = []
    for r in rows:
        grp = int(ann.group[r])
        if grp == 0:
            out.append([int(r)])
            continue
        key = (grp, int(ann.label[r]))
        if key not in keys:
            keys[key] = []
            out.append(keys[key])
        keys[key].append(int(r))
    return [np.asarray(x, dtype=np.int64) for x in out]


def _bitmap(ann: Annotations, r: int, w: int, h: int) -> np.ndarray:
    if ann.kind[r] == Kind.MASK:
        return decode_column_major(ann.rle_of(r), h, w)
    # Rasterise a polygon: pixel centres inside it, checked only within its box.
    out = np.zeros((h, w), dtype=bool)
    x1, y1, x2, y2 = ann.bbox[r]
    xs = np.arange(max(int(np.floor(x1)), 0), min(int(np.ceil(x2)) + 1, w))
    ys = np.arange(max(int(np.floor(y1)), 0), min(int(np.ceil(y2)) + 1, h))
    if len(xs) and len(ys):
        geom = polygons_from_ragged(ann, np.array([r]))[0]
        gx, gy = np.meshgrid(xs + 0.5, ys + 0.5)
        inside = shapely.contains_xy(geom, gx, gy)
        out[np.ix_(ys, xs)] = inside
    return out


def _visible_order(ann: Annotations, inst: list[np.ndarray]) -> np.ndarray:
    """Instance indices from bottom to top (z_order, then row order, as CVAT paints)."""
    z = np.array([ann.z_order[m].max() for m in inst])
    first = np.array([m.min() for m in inst])
    return np.lexsort((first, z))


def _segment_shapes(
    ann: Annotations, inst: list[np.ndarray], panoptic: bool, use_bitmaps: bool, w: int, h: int
) -> tuple[list, np.ndarray]:
    """Instance geometries (shapely or bitmaps) and boxes, occluded parts removed if panoptic."""
    boxes = np.array(
        [
            [ann.bbox[m, 0].min(), ann.bbox[m, 1].min(), ann.bbox[m, 2].max(), ann.bbox[m, 3].max()]
            for m in inst
        ]
    ).reshape(-1, 4)
    if use_bitmaps:
        shapes = [np.any([_bitmap(ann, int(r), w, h) for r in m], axis=0) for m in inst]
        if panoptic:
            painted = np.zeros((h, w), bool)
            for k in _visible_order(ann, inst)[::-1]:
                own = shapes[k]
                shapes[k] = own & ~painted
                painted |= own
        return shapes, boxes
    geoms = polygons_from_ragged(ann, np.concatenate(inst)) if inst else np.empty(0, object)
    offsets = np.cumsum([0] + [len(m) for m in inst])
    merged = [
        shapely.union_all(geoms[offsets[k] : offsets[k + 1]]) if len(m) > 1 else geoms[offsets[k]]
        for k, m in enumerate(inst)
    ]
    if panoptic and len(merged) > 1:
        cover: Any = None
        for k in _visible_order(ann, inst)[::-1]:
            g = merged[k]
            merged[k] = g if cover is None else shapely.difference(g, cover)
            cover = g if cover is None else shapely.union(cover, g)
    return merged, boxes


def _segmentation(out, code, gt, ds, g, d, item, items, s) -> None:  # type: ignore[no-untyped-def]
    w, h = _image_size(items, item)
    ig, id_ = _instances(gt, g), _instances(ds, d)
    masks = bool((gt.kind[g] == Kind.MASK).any() or (ds.kind[d] == Kind.MASK).any())
    if masks and (w <= 0 or h <= 0):
        masks = False
    sg, bg = _segment_shapes(gt, ig, s.panoptic_comparison, masks, w, h)
    sd, bd = _segment_shapes(ds, id_, s.panoptic_comparison, masks, w, h)
    if masks:
        sim = bitmap_iou(sg, sd)
    else:
        sim = geom_iou(np.array(sg, dtype=object), bg, np.array(sd, dtype=object), bd)
    n, m = sim.shape
    if n and m:
        ok = (sim >= s.iou_threshold) & (sim > 0)
        r, c = linear_sum_assignment(np.where(ok, 1 - sim, 1.0))
        keep = ok[r, c]
        r, c = r[keep], c[keep]
    else:
        r = c = np.zeros(0, np.int64)
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


_SOLVERS: dict[str, Solver] = {
    "tag": _tags,
    "bbox": _boxes,
    "segmentation": _segmentation,
    "polyline": _lines,
    "points": _points,
    "ellipse": _ellipses,
    "skeleton": _skeletons,
}
