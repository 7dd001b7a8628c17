"""``compare(gt, ds, settings)``: score one annotation set against ground truth."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from labelgate.arrays import AnyArray, BoolArray, IntArray
from labelgate.engine.conflicts import CONFLICT_TYPES, Conflicts, find_conflicts
from labelgate.engine.frame_text import (
    FrameConflicts,
    frame_columns,
    frame_conflicts,
    frame_dicts,
    frame_texts,
)
from labelgate.engine.match_rules import MatchRules
from labelgate.engine.matching import GROUP_CODE, TYPE_GROUPS, Matches, match_annotations
from labelgate.engine.report import (
    COUNT_KEYS,
    LABEL_COUNT_KEYS,
    ConflictTally,
    ConflictTexts,
    Report,
    confusion_summary,
    summary_block,
)
from labelgate.engine.settings import QualitySettings
from labelgate.errors import DataWarning
from labelgate.model import Annotations, AnnotationSet, Items, Kind, SourceType
from labelgate.reporting.shapes import MAX_GEOMETRY_CONFLICTS, shape_geometries

COMPARED_KINDS = tuple(k for kinds in TYPE_GROUPS.values() for k in kinds)
SHAPE_TYPE = {
    Kind.TAG: None,
    Kind.RECTANGLE: "rectangle",
    Kind.POLYGON: "polygon",
    Kind.POLYLINE: "polyline",
    Kind.POINTS: "points",
    Kind.ELLIPSE: "ellipse",
    Kind.MASK: "mask",
    Kind.SKELETON: "skeleton",
}
_MIN_POINTS = {Kind.POLYGON: 3, Kind.POLYLINE: 2, Kind.POINTS: 1}


def _stem(name: str) -> str:
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, _ = base.rpartition(".")
    return stem if dot and stem else base


def pair_items(gt: AnnotationSet, ds: AnnotationSet) -> tuple[IntArray, IntArray]:
    """Pair DS items with GT items by file name without extension, as CVAT does.

    Deleted frames never pair. A DS honeypot placeholder carries its real frame's file name,
    so it pairs with that GT frame.

    Returns:
        (ds_ids, gt_ids): equal-length arrays of paired item ids.
    """
    gt_by_name: dict[str, int] = {}
    for i in range(len(gt.items)):
        if not gt.items.deleted[i]:
            gt_by_name.setdefault(_stem(gt.items.name[i]), int(gt.items.id[i]))
    ds_ids, gt_ids = [], []
    for i in range(len(ds.items)):
        if ds.items.deleted[i]:
            continue
        match = gt_by_name.get(_stem(ds.items.name[i]))
        if match is not None:
            ds_ids.append(int(ds.items.id[i]))
            gt_ids.append(match)
    return np.asarray(ds_ids, np.int64), np.asarray(gt_ids, np.int64)


def _invalid_rows(ann: Annotations, items: Any) -> tuple[BoolArray, list[dict[str, Any]]]:
    """Rows the engine cannot score (too few points, bad mask runs): dropped, reported."""
    bad = np.zeros(len(ann), bool)
    errors: list[dict[str, Any]] = []
    npts = np.diff(ann.point_offsets)
    for kind, least in _MIN_POINTS.items():
        rows = np.flatnonzero((ann.kind == kind) & (npts < least))
        for r in rows:
            bad[r] = True
            errors.append(_data_error(ann, r, f"{kind.name.lower()} with {npts[r]} points"))
    masks = np.flatnonzero(ann.kind == Kind.MASK)
    if len(masks):
        w, h = items.size_of(ann.item[masks])
        cum = np.concatenate([[0], np.cumsum(ann.rle.astype(np.int64))])
        sums = cum[ann.rle_offsets[masks + 1]] - cum[ann.rle_offsets[masks]]
        runs = ann.rle_offsets[masks + 1] - ann.rle_offsets[masks]
        expect = np.asarray(w, np.int64) * np.asarray(h, np.int64)
        # only the failing masks reach Python
        for k in np.flatnonzero((runs == 0) | (sums != expect)).tolist():
            r, total = int(masks[k]), int(sums[k])
            bad[r] = True
            errors.append(_data_error(ann, r, f"mask runs sum to {total}, expected {w[k]}x{h[k]}"))
    return bad, errors


def _data_error(ann: Annotations, r: int, message: str) -> dict[str, Any]:
    warnings.warn(
        f"annotation {int(ann.source_id[r])} on frame {int(ann.item[r])}: {message}",
        DataWarning,
        stacklevel=4,
    )
    return {
        "type": "invalid_annotation",
        "frame": int(ann.item[r]),
        "obj_id": int(ann.source_id[r]),
        "message": message,
    }


def compare(
    gt: AnnotationSet,
    ds: AnnotationSet,
    settings: QualitySettings | None = None,
    *,
    rules: MatchRules | None = None,
) -> Report:
    """Score ``ds`` against ``gt`` the way CVAT 2.42 scores a job against its GT job.

    Args:
        gt: ground truth (its items define the validation frames).
        ds: the annotation set under test (a job, an annotator, a prediction set).
        settings: quality settings; CVAT defaults when omitted.
        rules: matching behaviour (:data:`~labelgate.engine.match_rules.LEGACY`, CVAT 2.42,
            when omitted; CVAT 2.74+ requirement matching with ``CURRENT``-based rules).

    Returns:
        The :class:`Report`. Malformed annotations are dropped into ``data_errors`` rather than
        failing the report.
    """
    s = settings or QualitySettings()
    schema = gt.schema.merged(ds.schema)
    ds_ids, gt_ids = pair_items(gt, ds)
    frames = np.unique(gt_ids)
    # GT: only paired frames. DS: only paired frames, moved onto the GT frame ids.
    g_ann = gt.annotations.select(
        np.isin(gt.annotations.item, frames) & np.isin(gt.annotations.kind, COMPARED_KINDS)
    )
    d_keep = np.isin(ds.annotations.item, ds_ids) & np.isin(ds.annotations.kind, COMPARED_KINDS)
    d_ann = ds.annotations.select(d_keep)
    order = np.argsort(ds_ids)
    d_ann = d_ann.with_items(gt_ids[order][np.searchsorted(ds_ids[order], d_ann.item)])
    # Labels: DS label indices onto the merged schema (GT labels first, same positions).
    remap = np.array([schema.index(n) for n in ds.schema.names] + [-1], dtype=np.int32)
    d_ann = d_ann.with_columns(label=remap[d_ann.label])
    errors = [dict(e) for e in (*gt.data_errors, *ds.data_errors)]
    bad_g, err_g = _invalid_rows(g_ann, gt.items)
    bad_d, err_d = _invalid_rows(d_ann, gt.items)
    errors += [{**e, "side": "gt"} for e in err_g] + [{**e, "side": "ds"} for e in err_d]
    g_ann, d_ann = g_ann.select(~bad_g), d_ann.select(~bad_d)
    matches = match_annotations(g_ann, d_ann, gt.items, s, rules=rules)
    conflicts = find_conflicts(g_ann, d_ann, matches, s, gt.items, rules=rules)
    labels = [lb.name for lb in schema.labels]
    data = build_report_data(
        g_ann,
        d_ann,
        matches,
        conflicts,
        labels,
        frames,
        s,
        total_frames=_total_frames(ds, gt),
    )
    job = {"gt": gt.meta.get("job_id"), "ds": ds.meta.get("job_id")}
    frames_payload = data.pop("_frames")

    def materialize() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        conflict_list = conflicts_to_json(g_ann, d_ann, conflicts, labels, job, gt.items)
        return conflict_list, frame_results(frames_payload, conflict_list, conflicts)

    def encode() -> ConflictTexts:
        from labelgate.engine.conflict_text import conflict_bytes, conflict_extras

        extras = conflict_extras(g_ann, d_ann, conflicts, gt.items)
        texts = conflict_bytes(g_ann, d_ann, conflicts, labels, job, extras)
        fc = _frame_conflicts(frames_payload["frames"], [], conflicts)
        return ConflictTexts(texts, frame_texts(frame_columns(frames_payload), fc, texts))

    return Report(
        data=data,
        data_errors=errors,
        materialize=materialize,
        encode=encode,
        head=lambda k: conflicts_to_json(g_ann, d_ann, conflicts.head(k), labels, job, gt.items),
        tally=lambda: conflict_tally(g_ann, d_ann, conflicts, labels),
    )


def _first_seen_counts(codes: IntArray) -> tuple[list[int], list[int]]:
    """Distinct codes and their counts, in order of first appearance (as ``Counter``)."""
    uniq, first, counts = np.unique(codes, return_index=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    return uniq[order].tolist(), counts[order].tolist()


def conflict_tally(
    gt: Annotations, ds: Annotations, c: Conflicts, labels: list[str]
) -> ConflictTally:
    """:meth:`ConflictTally.of_dicts` of :func:`conflicts_to_json`'s dicts, from the columns."""
    kinds = c.type.astype(np.int64)
    is_error = np.array([c.severity(t) == "error" for t in CONFLICT_TYPES], bool)
    types, counts = _first_seen_counts(kinds[is_error[kinds]])
    error_types = [(CONFLICT_TYPES[t], n) for t, n in zip(types, counts, strict=True)]
    # A label mismatch lists the DS label, then the GT one; label -1 names None.
    names = [*labels, None]
    width = len(names)
    rows = kinds == CONFLICT_TYPES.index("mismatching_label")
    d_lab = ds.label[c.ds_row[rows]].astype(np.int64) % width
    g_lab = gt.label[c.gt_row[rows]].astype(np.int64) % width
    pairs, counts = _first_seen_counts(d_lab * width + g_lab)
    confused = [
        ((names[p // width], names[p % width]), n) for p, n in zip(pairs, counts, strict=True)
    ]
    return ConflictTally(len(c), error_types, confused)


def _total_frames(ds: AnnotationSet, gt: AnnotationSet) -> int:
    """CVAT's ``total_frames``: the DS job's segment length (``JobData.__len__``).

    Deleted frames and frames outside the validation set count; a reader that knows the segment
    length (``meta["segment_size"]``, e.g. a CVAT export listing only some frames) gives it.
    """
    try:
        size = int(ds.meta.get("segment_size") or 0)
    except (TypeError, ValueError):
        size = 0
    return max(size, len(ds.items)) or len(gt.items)


_SOURCE_TYPE = {
    int(SourceType.SHAPE): "shape",
    int(SourceType.TRACK): "track",
    int(SourceType.TAG): "tag",
}
_SHAPE_NAME = {int(k): v for k, v in SHAPE_TYPE.items()}


def _lookup(table: dict[int, Any], codes: AnyArray) -> list[Any]:
    """``[table.get(c) for c in codes]`` as one object-array take (codes are small ints)."""
    keys = np.asarray(codes, np.int64)
    if not len(keys):
        return []
    lo, hi = int(keys.min()), int(keys.max())
    values = np.array([table.get(k) for k in range(lo, hi + 1)], dtype=object)
    looked_up: list[Any] = values[keys - lo].tolist()
    return looked_up


def _id_columns(ann: Annotations, rows: IntArray, job: Any) -> list[dict[str, Any] | None]:
    """CVAT AnnotationId dicts for ``rows`` (None where the row is -1), built column-wise."""
    if len(ann) == 0:
        return [None] * len(rows)
    present = rows >= 0
    safe = rows[present]
    built = [
        {"obj_id": o, "job_id": job, "type": t, "shape_type": k}
        for o, t, k in zip(
            ann.source_id[safe].tolist(),
            _lookup(_SOURCE_TYPE, ann.source_type[safe]),
            _lookup(_SHAPE_NAME, ann.kind[safe]),
            strict=True,
        )
    ]
    if present.all():
        return list(built)
    out: list[dict[str, Any] | None] = [None] * len(rows)
    for k, ident in zip(np.flatnonzero(present).tolist(), built, strict=True):
        out[k] = ident
    return out


def conflicts_to_json(
    gt: Annotations,
    ds: Annotations,
    c: Conflicts,
    labels: list[str],
    job: dict[str, Any],
    items: Items | None = None,
) -> list[dict[str, Any]]:
    """Conflicts as CVAT-style dicts (ds annotation first), plus labels, position, similarity.

    With ``items`` each conflict (the first :data:`MAX_GEOMETRY_CONFLICTS` of them, so a huge
    report stays small) also carries ``geometry``: the frame size and the DS and GT shapes of
    the pair (:func:`labelgate.reporting.shapes.shape_geometries`), which the conflict
    viewer and the report gallery draw.

    Every field is computed a column at a time; one comprehension then assembles the dicts.
    """
    n = len(c)
    names = np.array([*labels, None], dtype=object)  # label -1 indexes the trailing None
    d_ids = _id_columns(ds, c.ds_row, job["ds"])
    g_ids = _id_columns(gt, c.gt_row, job["gt"])
    d_safe, g_safe = np.maximum(c.ds_row, 0), np.maximum(c.gt_row, 0)
    d_lab = names[ds.label[d_safe]].tolist() if len(ds) else [None] * n
    g_lab = names[gt.label[g_safe]].tolist() if len(gt) else [None] * n
    empty = np.zeros((n, 4))
    pos = np.where(
        (c.ds_row >= 0)[:, None],
        ds.bbox[d_safe] if len(ds) else empty,
        gt.bbox[g_safe] if len(gt) else empty,
    ).tolist()
    sim = c.similarity.astype(object)
    sim[np.isnan(c.similarity)] = None
    kinds = c.type.astype(np.int64)
    types = np.array(CONFLICT_TYPES, dtype=object)[kinds].tolist()
    severity = np.array([c.severity(t) for t in CONFLICT_TYPES], dtype=object)[kinds].tolist()
    out = [
        {
            "type": t,
            "severity": sv,
            "frame_id": f,
            "annotation_ids": ([di, gi] if gi else [di]) if di else ([gi] if gi else []),
            "label_names": ([dl, gl] if gi else [dl]) if di else ([gl] if gi else []),
            "position": p,
            "similarity": sm,
        }
        for t, sv, f, di, gi, dl, gl, p, sm in zip(
            types,
            severity,
            c.frame.tolist(),
            d_ids,
            g_ids,
            d_lab,
            g_lab,
            pos,
            sim.tolist(),
            strict=True,
        )
    ]
    for k, attr_names in c.attribute_names.items():
        out[k]["attribute_names"] = list(attr_names)
    for item, geo in zip(out, conflict_geometries(gt, ds, c, items), strict=False):
        item["geometry"] = geo
    return out


def conflict_geometries(
    gt: Annotations, ds: Annotations, c: Conflicts, items: Items | None
) -> list[dict[str, Any]]:
    """The ``geometry`` of the first :data:`MAX_GEOMETRY_CONFLICTS` conflicts (none without
    ``items``): frame size and the DS and GT shapes of the pair."""
    drawn = min(len(c), MAX_GEOMETRY_CONFLICTS) if items is not None else 0
    if not drawn:
        return []
    fw_arr, fh_arr = items.size_of(c.frame[:drawn])  # type: ignore[union-attr]
    known = (fw_arr > 0) & (fh_arr > 0)
    d_geo = shape_geometries(ds, c.ds_row[:drawn], known)
    g_geo = shape_geometries(gt, c.gt_row[:drawn], known)
    return [
        {"frame_size": [fw, fh], "ds": dg, "gt": gg}
        for fw, fh, dg, gg in zip(fw_arr.tolist(), fh_arr.tolist(), d_geo, g_geo, strict=True)
    ]


def _frame_components(
    gt: Annotations,
    ds: Annotations,
    m: Matches,
    fi: Callable[[IntArray], IntArray],
    nf: int,
    empty: tuple[BoolArray, BoolArray] | None,
) -> dict[str, dict[str, IntArray]]:
    """CVAT's per-frame ``annotation_components`` counts as (nf,) arrays.

    ``empty`` = (gt_empty, ds_empty) under ``empty_is_annotated``: a frame empty on both sides
    gets one valid shape and one valid label, a side with no annotations at all (tags count) one
    shape, as ``DatasetComparator._generate_frame_annotation_conflicts`` does.
    """

    def count(rows: IntArray, ann: Annotations) -> IntArray:
        return np.bincount(fi(ann.item[rows]), minlength=nf)

    shape_pair = m.type_group != GROUP_CODE["tag"]
    valid = count(m.gt_row[shape_pair], gt)
    missing = count(m.unmatched_gt[gt.kind[m.unmatched_gt] != Kind.TAG], gt)
    extra = count(m.unmatched_ds[ds.kind[m.unmatched_ds] != Kind.TAG], ds)
    lab_ok = count(m.gt_row[m.label_equal], gt)
    lab_bad = count(m.gt_row[~m.label_equal], gt)
    total, ds_n, gt_n, lab_total = (
        valid + missing + extra,
        valid + extra,
        valid + missing,
        lab_ok + lab_bad,
    )
    if empty is not None:
        gt_empty, ds_empty = empty
        both = gt_empty & ds_empty
        # CVAT sets these to 1; they are 0 on such frames, so adding is the same.
        valid, total, lab_ok, lab_total = (
            valid + both,
            total + both,
            lab_ok + both,
            lab_total + both,
        )
        ds_n, gt_n = ds_n + ds_empty, gt_n + gt_empty
    return {
        "shape": dict(zip(COUNT_KEYS, (valid, missing, extra, total, ds_n, gt_n), strict=True)),
        "label": dict(zip(LABEL_COUNT_KEYS, (lab_ok, lab_bad, lab_total), strict=True)),
    }


def _frame_counts(cm: IntArray, empty_is_annotated: bool) -> dict[str, IntArray]:
    """CVAT's per-frame ``annotations`` counts from the (nf, L+1, L+1) matrices.

    Under ``empty_is_annotated`` a frame with nothing compared gets valid = total = 1, and a side
    with nothing gets a count of 1 (``_generate_frame_annotations_summary``): only a frame empty
    on both sides adds to the total, unlike the job summary, which adds every empty side.
    """
    n = cm.shape[1] - 1
    c = {
        "valid_count": np.trace(cm[:, :n, :n], axis1=1, axis2=2),
        "missing_count": cm[:, n, :].sum(1),
        "extra_count": cm[:, :, n].sum(1),
        "total_count": cm.sum((1, 2)),
        "ds_count": cm[:, :n, :].sum((1, 2)),
        "gt_count": cm[:, :, :n].sum((1, 2)),
    }
    if empty_is_annotated:
        nothing = c["total_count"] == 0
        c["valid_count"] = c["valid_count"] + nothing
        c["total_count"] = c["total_count"] + nothing
        c["ds_count"] = np.maximum(c["ds_count"], 1)
        c["gt_count"] = np.maximum(c["gt_count"], 1)
    return c


def build_report_data(
    gt: Annotations,
    ds: Annotations,
    m: Matches,
    c: Conflicts,
    labels: list[str],
    frames: IntArray,
    s: QualitySettings,
    total_frames: int,
) -> dict[str, Any]:
    """Summaries, confusion matrices (job and per frame) and components, all vectorised."""
    n_lab = len(labels)
    u = n_lab  # the "unmatched" index
    nf = len(frames)

    def fi(items: IntArray) -> IntArray:
        return np.searchsorted(frames, items)

    # Confusion counts as one bincount over flat (frame, ds label, gt label) cells.
    side = n_lab + 1
    pf = fi(gt.item[m.gt_row])
    cells = [
        (pf * side + ds.label[m.ds_row]) * side + gt.label[m.gt_row],
        (fi(ds.item[m.unmatched_ds]) * side + ds.label[m.unmatched_ds]) * side + u,
        (fi(gt.item[m.unmatched_gt]) * side + u) * side + gt.label[m.unmatched_gt],
    ]
    flat = np.concatenate([c.astype(np.int64) for c in cells])
    cm = np.bincount(flat, minlength=nf * side * side).reshape(nf, side, side)
    # Per-frame mean IoU over shape pairs plus unmatched shapes' best similarity. bincount
    # adds weights sequentially in input order, so the sums equal the add-one-by-one ones.
    shape_pair = m.type_group != GROUP_CODE["tag"]
    where = [pf[shape_pair]]
    value = [np.clip(m.similarity[shape_pair], 0, None)]
    for rows, best, ann in ((m.unmatched_gt, m.best_gt, gt), (m.unmatched_ds, m.best_ds, ds)):
        sh = ann.kind[rows] != Kind.TAG
        where.append(fi(ann.item[rows[sh]]))
        value.append(np.clip(np.nan_to_num(best[sh]), 0, None))
    at = np.concatenate(where).astype(np.int64)
    iou_sum = np.bincount(at, np.concatenate(value).astype(np.float64), minlength=nf)
    iou_n = np.bincount(at, minlength=nf).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        frame_iou = np.where(iou_n > 0, iou_sum / iou_n, 0.0)
    has_shapes = iou_n > 0
    mean_iou = float(frame_iou[has_shapes].mean()) if has_shapes.any() else 0.0
    total = cm.sum(0)
    ann_summary = confusion_summary(total, labels)
    # empty_is_annotated: frames with nothing on a side count as one virtual annotation.
    gt_empty = np.ones(nf, bool)
    gt_empty[fi(gt.item)] = False if len(gt) else gt_empty[:0]
    ds_empty = np.ones(nf, bool)
    ds_empty[fi(ds.item)] = False if len(ds) else ds_empty[:0]
    if s.empty_is_annotated:
        both = int((gt_empty & ds_empty).sum())
        either = int((gt_empty | ds_empty).sum())
        ann_summary["valid_count"] += both
        ann_summary["total_count"] += either
        ann_summary["ds_count"] += int(ds_empty.sum())
        ann_summary["gt_count"] += int(gt_empty.sum())
    # Job components are the sum of the frames' (virtual empty annotations included), as CVAT.
    frame_comps = _frame_components(
        gt, ds, m, fi, nf, (gt_empty, ds_empty) if s.empty_is_annotated else None
    )
    comps: dict[str, dict[str, Any]] = {
        part: {k: int(v.sum()) for k, v in cols.items()} for part, cols in frame_comps.items()
    }
    comps["shape"]["mean_iou"] = mean_iou
    for part in comps.values():
        part["accuracy"] = part["valid_count"] / (part["total_count"] or 1)
    counts = np.bincount(c.type.astype(np.int64), minlength=len(CONFLICT_TYPES))
    by_type = {t: int(counts[i]) for i, t in enumerate(CONFLICT_TYPES)}
    # Covered and group conflicts count here (errors under CVAT 2.74+), never in the matrix.
    errors = sum(v for k, v in by_type.items() if c.severity(k) == "error")
    comparison = {
        "frame_share": nf / (total_frames or 1),
        "frames": frames.tolist(),
        "total_frames": total_frames,
        "frame_count": nf,
        "mean_conflict_count": len(c) / (nf or 1),
        "conflict_count": len(c),
        "warning_count": len(c) - errors,
        "error_count": errors,
        "conflicts_by_type": {t: by_type.get(t, 0) for t in CONFLICT_TYPES},
        "annotations": ann_summary,
        "annotation_components": comps,
    }
    params = {**s.to_dict(), "included_annotation_types": list(TYPE_GROUPS)}
    return {
        "parameters": params,
        "comparison_summary": comparison,
        "summary": summary_block(comparison),
        "conflicts_by_type": comparison["conflicts_by_type"],
        "annotations": ann_summary,
        "_frames": {
            "frames": frames,
            "cm": cm,
            "counts": _frame_counts(cm, s.empty_is_annotated),
            "components": frame_comps,
            "iou": frame_iou,
            "labels": labels,
        },
    }


def frame_results(
    f: dict[str, Any], conflicts: Sequence[Any], columns: Conflicts | None = None
) -> dict[str, Any]:
    """Per-frame results with CVAT 2.42's fields (``ComparisonReportFrameSummary``).

    Each frame has its ``conflicts`` with their counts by severity and type, the ``annotations``
    summary with its labelled confusion matrix, and the shape and label ``annotation_components``
    (:func:`~labelgate.engine.frame_text.frame_record`). ``columns``, the conflicts as columns
    (same order as ``conflicts``), spares reading the dicts back.
    """
    fc = _frame_conflicts(f["frames"], conflicts, columns)
    return frame_dicts(frame_columns(f), fc, conflicts)


def _frame_conflicts(
    frames: IntArray, conflicts: Sequence[Any], columns: Conflicts | None
) -> FrameConflicts:
    """Each frame's conflicts (:class:`FrameConflicts`), from the columns or else the dicts
    (``conflicts`` is not read when ``columns`` are given)."""
    if columns is not None:
        frame_col = np.asarray(columns.frame, np.int64)
        kind = np.asarray(columns.type, np.int64)
        # Severity depends on the matching rules (all errors in requirement mode).
        error_type = np.array([columns.severity(t) == "error" for t in CONFLICT_TYPES], bool)
        is_error = error_type[kind] if len(kind) else np.zeros(0, bool)
    else:
        frame_col = np.array([c["frame_id"] for c in conflicts], np.int64)
        code = {t: i for i, t in enumerate(CONFLICT_TYPES)}
        kind = np.array([code[c["type"]] for c in conflicts], np.int64)
        is_error = np.array([c["severity"] == "error" for c in conflicts], bool)
    return frame_conflicts(np.asarray(frames, np.int64), frame_col, kind, is_error)
