"""Conflicts found after matching (CVAT's order, types and severities), as columns.

Each conflict has a type, a frame, the DS row and/or GT row it points at, and a similarity.
They stay columnar (:class:`Conflicts`) until the report turns them into JSON. CVAT 2.42 grades
them error or warning (:data:`SEVERITY`); with ``MatchRules.all_errors`` (CVAT 2.74+) every
conflict is an error and there is no ``low_overlap``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from labelgate.arrays import BoolArray, FloatArray, IntArray, IntegerArray
from labelgate.engine.match_rules import (
    IGNORED_ATTRIBUTES,
    MatchRules,
    conflicting_attribute_names,
    pair_attribute_conflicts,
)
from labelgate.engine.matching import GROUP_CODE, Matches
from labelgate.engine.settings import QualitySettings
from labelgate.geometry import boxes_near_another, rle_kernels, shape_rles_ragged
from labelgate.geometry.shapes import box_pixel_rects, covered_boxes
from labelgate.model import Annotations, Items, Kind

CONFLICT_TYPES = (
    "low_overlap",
    "missing_annotation",
    "extra_annotation",
    "mismatching_label",
    "mismatching_direction",
    "covered_annotation",
    "mismatching_attributes",
    "mismatching_groups",
)
SEVERITY = {
    "missing_annotation": "error",
    "extra_annotation": "error",
    "mismatching_label": "error",
    "low_overlap": "warning",
    "mismatching_attributes": "warning",
    "mismatching_direction": "warning",
    "mismatching_groups": "warning",
    "covered_annotation": "warning",
}
ATTRIBUTES_CODE = CONFLICT_TYPES.index("mismatching_attributes")


@dataclass(frozen=True)
class Conflicts:
    """Parallel arrays: ``type`` (index into CONFLICT_TYPES), ``frame``, ``ds_row``/``gt_row``
    (-1 when absent), ``similarity`` (NaN when not applicable).

    ``attribute_names`` maps the position of each ``mismatching_attributes`` conflict to the
    sorted names of the attributes in conflict; ``all_errors`` grades every conflict an error.
    """

    type: IntegerArray
    frame: IntArray
    ds_row: IntArray
    gt_row: IntArray
    similarity: FloatArray
    attribute_names: dict[int, tuple[str, ...]] = field(default_factory=dict)
    all_errors: bool = False

    def __len__(self) -> int:
        return len(self.type)

    def severity(self, type_name: str) -> str:
        """Severity of a conflict type under these conflicts' rules."""
        return "error" if self.all_errors else SEVERITY[type_name]

    def head(self, k: int) -> Conflicts:
        """The first ``k`` conflicts (their attribute names kept at the same positions)."""
        return Conflicts(
            self.type[:k],
            self.frame[:k],
            self.ds_row[:k],
            self.gt_row[:k],
            self.similarity[:k],
            {i: v for i, v in self.attribute_names.items() if i < k},
            self.all_errors,
        )


def find_conflicts(
    gt: Annotations,
    ds: Annotations,
    m: Matches,
    settings: QualitySettings,
    items: Items,
    *,
    rules: MatchRules | None = None,
) -> Conflicts:
    """All conflicts of one comparison, sorted by frame (stable within a frame by CVAT's order).

    Args:
        gt, ds: the compared sets (same item ids).
        m: their matches.
        settings: which optional checks run and their thresholds.
        items: frame sizes (the covered check works on rasters at image resolution).
        rules: matching behaviour; CVAT 2.42's when omitted.
    """
    r = rules or MatchRules()
    parts: list[tuple[int, IntArray, IntArray, FloatArray]] = []  # type, ds, gt, sim
    shape_pair = m.type_group != GROUP_CODE["tag"]
    low = shape_pair & (m.similarity > 0) & (m.similarity < settings.low_overlap_threshold)
    if r.all_errors:  # CVAT 2.74+ has no low_overlap conflict
        low[:] = False
    parts.append((0, m.ds_row[low], m.gt_row[low], m.similarity[low]))
    none_g = np.full(len(m.unmatched_gt), -1)
    none_d = np.full(len(m.unmatched_ds), -1)
    parts.append((1, none_g, m.unmatched_gt, m.best_gt))
    parts.append((2, m.unmatched_ds, none_d, m.best_ds))
    bad = ~m.label_equal
    parts.append((3, m.ds_row[bad], m.gt_row[bad], m.similarity[bad]))
    if settings.compare_line_orientation:
        lines = (m.type_group == GROUP_CODE["polyline"]) & np.isfinite(m.oriented)
        rev = lines & ((m.similarity - m.oriented) > settings.line_orientation_threshold)
        parts.append((4, m.ds_row[rev], m.gt_row[rev], m.similarity[rev]))
    if settings.check_covered_annotations:
        cov = covered_rows_by_control(ds, items, settings.object_visibility_threshold)
        parts.append((5, cov, np.full(len(cov), -1), np.full(len(cov), np.nan)))
    if r.is_legacy and settings.compare_attributes:
        att = attribute_mismatches(gt, ds, m)
        parts.append((6, m.ds_row[att], m.gt_row[att], m.similarity[att]))
    elif r.gates_attributes:
        # CVAT 2.74+ compares attributes when a rule is enabled (compare_attributes is not
        # read), on label-matched shape pairs; gating leaves it nothing to find on those.
        att = _rule_mismatches(gt, ds, m, r)
        parts.append((6, m.ds_row[att], m.gt_row[att], m.similarity[att]))
    if settings.compare_groups:
        grp = group_mismatches(gt, ds, m, settings.group_match_threshold)
        parts.append((7, m.ds_row[grp], m.gt_row[grp], m.similarity[grp]))
    types = np.concatenate([np.full(len(p[1]), p[0], np.int8) for p in parts])
    ds_row = np.concatenate([p[1] for p in parts]).astype(np.int64)
    gt_row = np.concatenate([p[2] for p in parts]).astype(np.int64)
    sim = np.concatenate([p[3] for p in parts]).astype(np.float64)
    frame = np.where(
        ds_row >= 0,
        ds.item[np.maximum(ds_row, 0)] if len(ds) else -1,
        gt.item[np.maximum(gt_row, 0)] if len(gt) else -1,
    )
    order = np.argsort(frame, kind="stable")
    types, ds_row, gt_row = types[order], ds_row[order], gt_row[order]
    names = {
        int(k): conflicting_attribute_names(gt, int(gt_row[k]), ds, int(ds_row[k]), r)
        for k in np.flatnonzero(types == ATTRIBUTES_CODE)
    }
    return Conflicts(types, frame[order], ds_row, gt_row, sim[order], names, r.all_errors)


def _rule_mismatches(gt: Annotations, ds: Annotations, m: Matches, rules: MatchRules) -> BoolArray:
    """Bool per pair: label-matched shape pairs whose attributes conflict under ``rules``."""
    out = np.zeros(len(m.gt_row), bool)
    check = np.flatnonzero(m.label_equal & (m.type_group != GROUP_CODE["tag"]))
    out[check] = pair_attribute_conflicts(gt, m.gt_row[check], ds, m.ds_row[check], rules)
    return out


def attribute_mismatches(gt: Annotations, ds: Annotations, m: Matches) -> BoolArray:
    """Bool per pair: label-matched pairs whose attributes (or occlusion) differ."""
    pairs = m.label_equal.copy()
    if not pairs.any():
        return np.zeros(len(m.gt_row), bool)
    g, d = m.gt_row, m.ds_row
    differ = gt.occluded[g] != ds.occluded[d]
    for key in set(gt.attributes) | set(ds.attributes):
        if key in IGNORED_ATTRIBUTES:
            continue
        a = gt.attributes.get(key)
        b = ds.attributes.get(key)
        va = a[g] if a is not None else np.full(len(g), None, dtype=object)
        vb = b[d] if b is not None else np.full(len(d), None, dtype=object)
        differ |= np.array([x != y for x, y in zip(va, vb, strict=True)], dtype=bool)
    mismatched: BoolArray = pairs & differ
    return mismatched


def group_mismatches(gt: Annotations, ds: Annotations, m: Matches, threshold: float) -> BoolArray:
    """Bool per pair: CVAT's mismatching_groups rule, run only on frames that use groups."""
    out = np.zeros(len(m.gt_row), bool)
    shape = m.type_group != GROUP_CODE["tag"]
    grouped_frames = np.union1d(
        gt.item[(gt.group != 0) & (gt.kind != Kind.TAG)],
        ds.item[(ds.group != 0) & (ds.kind != Kind.TAG)],
    )
    if len(grouped_frames) == 0:
        return out
    pair_frame = gt.item[m.gt_row] if len(m.gt_row) else np.zeros(0, np.int64)
    for frame in grouped_frames:
        idx = np.flatnonzero(shape & (pair_frame == frame))
        if len(idx) == 0:
            continue
        gkey = _group_keys(gt, m.gt_row[idx])
        dkey = _group_keys(ds, m.ds_row[idx])
        glo, ghi = gt.item_range(int(frame))
        dlo, dhi = ds.item_range(int(frame))
        gsize = _group_sizes(gt, glo, ghi)
        dsize = _group_sizes(ds, dlo, dhi)
        gu, gi = np.unique(gkey, return_inverse=True)
        du, di = np.unique(dkey, return_inverse=True)
        links = _group_links(gi, di, m.gt_row[idx], m.ds_row[idx], (len(gu), len(du)))
        gs = np.array([gsize.get(int(k), 1) for k in gu], dtype=float)
        dsz = np.array([dsize.get(int(k), 1) for k in du], dtype=float)
        sim = links / (gs[:, None] + dsz[None, :] - links)
        r, c = linear_sum_assignment(1 - sim)
        ok = sim[r, c] >= threshold
        mapped = np.full(len(du), -(10**12))
        mapped[c[ok]] = gu[r[ok]]
        ds_big = np.array([dsize.get(int(k), 1) for k in dkey]) > 1
        gt_alone = gkey < 0
        out[idx] = (gt_alone & ds_big) | (mapped[di] != gkey)
    return out


def _group_links(
    gi: IntArray, di: IntArray, g_row: IntArray, d_row: IntArray, shape: tuple[int, int]
) -> FloatArray:
    """Matched annotations shared by each (GT group, DS group): CVAT's intersection count.

    Pairs are one-to-one, except that a merged group (one instance of several parts) is paired
    part by part with every part of its match; counting distinct rows on each side (the
    smaller count) keeps the intersection within both groups' sizes, so the Jaccard
    similarity stays in [0, 1] (it divided by zero for a two-part polygon matched to itself).
    """
    out: list[FloatArray] = []
    for rows in (g_row, d_row):
        cells = np.unique(np.stack([gi, di, rows]), axis=1)
        count = np.zeros(shape)
        np.add.at(count, (cells[0], cells[1]), 1)
        out.append(count)
    return np.minimum(out[0], out[1])


def _group_keys(ann: Annotations, rows: IntArray) -> IntArray:
    # Ungrouped rows are their own group: a negative key unique per row.
    return np.where(ann.group[rows] != 0, ann.group[rows], -rows - 1)


def _group_sizes(ann: Annotations, lo: int, hi: int) -> dict[int, int]:
    rows = np.arange(lo, hi)
    rows = rows[(ann.group[rows] != 0) & (ann.kind[rows] != Kind.TAG)]
    keys, counts = np.unique(ann.group[rows], return_counts=True)
    return {int(k): int(c) for k, c in zip(keys, counts, strict=True)}


_COVER_KINDS = (Kind.POLYGON, Kind.MASK, Kind.RECTANGLE, Kind.ELLIPSE)


def covered_rows(ds: Annotations, items: Items, visibility_threshold: float) -> IntArray:
    """DS rows hidden under shapes painted above them (CVAT ``find_covered``).

    Polygons, masks, boxes and ellipses of a frame, sorted by z_order (stable, so document
    order breaks ties), each rasterised as CVAT does (boxes and ellipses unrotated); a shape
    is covered when the union of the later ones leaves less than ``visibility_threshold`` of
    its own pixels visible. Frames of unknown size are skipped. Frames of boxes alone are
    settled in one compiled pass on their pixel rectangles (:func:`covered_boxes`, no
    per-frame Python); the others by :func:`covered_rows_in`.
    """
    if len(ds) < 2:
        return np.zeros(0, np.int64)
    frames, starts, _ = ds.item_slices()
    w, h = items.size_of(frames)
    hidden, unsettled = covered_boxes(
        np.r_[starts, len(ds)], ds.kind, ds.bbox, ds.z_order, h, w, visibility_threshold
    )
    rows: IntArray = np.flatnonzero(hidden)
    rest = np.flatnonzero(unsettled)
    if len(rest):
        traced = covered_rows_in(ds, rest, items, visibility_threshold)
        rows = np.sort(np.concatenate([rows, traced]))
    return rows


def covered_rows_in(
    ds: Annotations, rows: IntArray, items: Items, visibility_threshold: float
) -> IntArray:
    """:func:`covered_rows` on the shapes ``rows`` alone (all the covering shapes of their
    frames, ascending): only shapes whose box comes within a pixel of another shape's box in
    the frame are rasterised (a raster never reaches further); frames left with boxes alone
    after that are settled on rectangles, the others on traced rasters.

    Returns:
        The covered rows, ascending.
    """
    if len(rows) < 2:
        return np.zeros(0, np.int64)
    w, h = items.size_of(ds.item[rows])
    keep = (w > 0) & (h > 0)
    rows, w, h = rows[keep], w[keep], h[keep]
    keep = boxes_near_another(ds.item[rows], ds.bbox[rows], 1.0)
    rows, w, h = rows[keep], np.asarray(w[keep], np.int64), np.asarray(h[keep], np.int64)
    if len(rows) < 2:
        return np.zeros(0, np.int64)
    # paint order within each frame: z_order, then document order (the row order already,
    # rows being sorted by item, when every z_order is the same)
    z = ds.z_order[rows]
    if (z != z[0]).any():
        paint = np.lexsort((rows, z, ds.item[rows]))
        rows, w, h = rows[paint], w[paint], h[paint]
    item = ds.item[rows]
    starts = np.flatnonzero(np.r_[True, item[1:] != item[:-1]])
    frame_ptr = np.r_[starts, len(rows)].astype(np.int64)
    # Frames holding only boxes whose rasters are pixel rectangles are settled on the
    # rectangles; the others on traced rasters.
    rects, exact = box_pixel_rects(ds.bbox[rows], h, w)
    simple = exact & (ds.kind[rows] == Kind.RECTANGLE)
    frame_simple = np.minimum.reduceat(simple, starts)
    hidden = np.zeros(len(rows), bool)
    by_rect = np.repeat(frame_simple, np.diff(frame_ptr))
    if by_rect.any():
        ptr = _sub_frames(frame_ptr, frame_simple)
        hidden[by_rect] = rle_kernels.covered_rect_frames(ptr, rects[by_rect], visibility_threshold)
    if not by_rect.all():
        traced = ~by_rect
        flat, off = shape_rles_ragged(ds, rows[traced], h[traced], w[traced], cover=True)
        ptr = _sub_frames(frame_ptr, ~frame_simple)
        hidden[traced] = rle_kernels.covered_frames(
            flat, off, ptr, h[starts][~frame_simple], float(visibility_threshold)
        )
    return np.sort(rows[hidden])


def covered_rows_by_control(ds: Annotations, items: Items, visibility_threshold: float) -> IntArray:
    """:func:`covered_rows` within each Label Studio control: a control is its own layer, so a
    region of another control never hides it (as matching never pairs across controls). Data
    without controls (CVAT, COCO: control -1 everywhere) is one layer, as CVAT paints it."""
    controls = np.unique(ds.control)
    if len(controls) <= 1:
        return covered_rows(ds, items, visibility_threshold)
    parts = []
    for c in controls.tolist():
        sel = np.flatnonzero(ds.control == c)
        parts.append(sel[covered_rows(ds.take(sel), items, visibility_threshold)])
    rows: IntArray = np.sort(np.concatenate(parts))
    return rows


def _sub_frames(frame_ptr: IntArray, keep: BoolArray) -> IntArray:
    """Frame offsets of the rows of the kept frames only."""
    ptr: IntArray = np.r_[0, np.cumsum(np.diff(frame_ptr)[keep])].astype(np.int64)
    return ptr
