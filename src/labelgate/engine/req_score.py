"""``compare_requirements``: score one job against its ground truth, requirement by requirement.

The one engine (:func:`~labelgate.engine.compare.compare`) runs once per enabled requirement on
that requirement's selection, with its settings and match rules (§3.2).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from labelgate.arrays import IntArray
from labelgate.engine.compare import _total_frames, compare, pair_items
from labelgate.engine.req_metrics import SideCounts, frame_calculation, merge_calculations
from labelgate.engine.req_report import (
    Conflict,
    FrameResult,
    RequirementReport,
    RequirementResult,
    count_conflict_types,
)
from labelgate.engine.req_select import SideSelection, compatible_labels, select
from labelgate.engine.requirements import RequirementTree, ResolvedRequirement
from labelgate.engine.settings import QualitySettings
from labelgate.errors import DataWarning
from labelgate.model import AnnotationSet


def compare_requirements(
    gt: AnnotationSet,
    ds: AnnotationSet,
    tree: RequirementTree,
    base_settings: QualitySettings | None = None,
) -> RequirementReport:
    """Score ``ds`` against ``gt`` once per enabled requirement of ``tree`` (a job report).

    Args:
        gt: ground truth (its items are the validation frames).
        ds: the annotations under test.
        tree: the requirement tree (:func:`~labelgate.engine.requirements.legacy_preset` for
            CVAT 2.42's semantics).
        base_settings: fields requirements do not carry (``exact_geometry``, ``job_filter``);
            the tree's own base when omitted.

    Returns:
        The job-level :class:`RequirementReport`. A tree with every requirement disabled
        warns (:class:`DataWarning`) and reports nothing computed, as CVAT does.
    """
    ds_ids, gt_ids = pair_items(gt, ds)
    reqs = tree.enabled()
    # CVAT's frames are those some enabled requirement compared: none without one.
    frames = np.unique(gt_ids) if reqs else np.zeros(0, np.int64)
    if not reqs:
        warnings.warn(
            "every quality requirement is disabled: nothing is scored (CVAT computes nothing "
            "for such a task either); enable one in CVAT or in the requirements file",
            DataWarning,
            stacklevel=2,
        )
    results = []
    errors: list[Mapping[str, Any]] = []
    for req in reqs:
        result, errs = _score_requirement(gt, ds, req, base_settings, frames, (ds_ids, gt_ids))
        results.append(result)
        errors.extend(e for e in errs if e not in errors)
    return RequirementReport(
        level="job",
        tree=tree,
        results=tuple(results),
        frames=tuple(int(f) for f in frames),
        total_frames=_total_frames(ds, gt),
        validation_frames=len(frames),
        data_errors=tuple(errors),
    )


def _per_frame(
    items: IntArray, frames: IntArray, to_gt: tuple[IntArray, IntArray] | None
) -> IntArray:
    """Counts of ``items`` per validation frame (DS items first moved onto their GT frame)."""
    if to_gt is not None:
        ds_ids, gt_ids = to_gt
        order = np.argsort(ds_ids)
        pos = np.searchsorted(ds_ids[order], items)
        pos = np.minimum(pos, max(len(ds_ids) - 1, 0))
        hit = (ds_ids[order][pos] == items) if len(ds_ids) else np.zeros(len(items), bool)
        items = gt_ids[order][pos[hit]]
    idx = np.searchsorted(frames, items)
    ok = (idx < len(frames)) & (frames[np.minimum(idx, max(len(frames) - 1, 0))] == items)
    return np.bincount(idx[ok], minlength=len(frames))[: len(frames)] if len(frames) else idx[:0]


def _side_counts(
    sel: SideSelection, frames: IntArray, to_gt: tuple[IntArray, IntArray] | None
) -> list[SideCounts]:
    cand = _per_frame(sel.candidate_items, frames, to_gt)
    chosen = _per_frame(sel.selected_items, frames, to_gt)
    lack = {k: _per_frame(v, frames, to_gt) for k, v in sel.lacking.items()}
    return [
        SideCounts(
            int(cand[i]),
            int(chosen[i]),
            tuple(sorted(k for k, v in lack.items() if chosen[i] and v[i] == chosen[i])),
        )
        for i in range(len(frames))
    ]


def _score_requirement(
    gt: AnnotationSet,
    ds: AnnotationSet,
    req: ResolvedRequirement,
    base: QualitySettings | None,
    frames: IntArray,
    pairing: tuple[IntArray, IntArray],
) -> tuple[RequirementResult, list[Mapping[str, Any]]]:
    schema = gt.schema.merged(ds.schema)
    rules = req.match_rules(schema)
    rule_names = req.required_attributes(schema)
    g, d = select(gt, req, rule_names), select(ds, req, rule_names)
    merged_schema = g.selected.schema.merged(d.selected.schema)
    if len(g.selected.annotations) or len(d.selected.annotations):
        report = compare(g.selected, d.selected, req.settings(base), rules=rules)
        data = report.to_dict()
        all_labels = data["annotations"]["confusion_matrix"]["labels"][:-1]
        total = np.asarray(data["annotations"]["confusion_matrix"]["rows"], dtype=np.int64)
        by_frame = data["frame_results"]
        errors: list[Mapping[str, Any]] = list(report.data_errors)
    else:  # nothing selected: the engine would compare nothing, so skip it
        all_labels = merged_schema.names
        total = np.zeros((len(all_labels) + 1,) * 2, np.int64)
        by_frame = {}
        errors = [*gt.data_errors, *ds.data_errors]
    compatible = set(compatible_labels(merged_schema, req.annotation_type))
    support = total[:-1, :].sum(1) + total[:, :-1].sum(0)
    keep = [i for i, n in enumerate(all_labels) if n in compatible or support[i] > 0]
    idx = np.asarray([*keep, len(all_labels)], dtype=np.int64)
    labels = tuple(all_labels[i] for i in keep)
    gt_counts = _side_counts(g, frames, None)
    ds_counts = _side_counts(d, frames, pairing)
    frame_results: dict[int, FrameResult] = {}
    empty = np.zeros((len(idx), len(idx)), np.int64)
    for i, f in enumerate(frames.tolist()):
        fr = by_frame.get(str(f))
        rows = (
            np.asarray(fr["annotations"]["confusion_matrix"]["rows"], dtype=np.int64)[
                np.ix_(idx, idx)
            ]
            if fr
            else empty
        )
        kept = (_conflict_for(c, req) for c in (fr["conflicts"] if fr else ()))
        conflicts: tuple[Conflict, ...] = tuple(c for c in kept if c is not None)
        frame_results[f] = FrameResult(
            frame=f,
            matrix=rows,
            conflicts=conflicts,
            calculation=frame_calculation(gt_counts[i], ds_counts[i]),
        )
    matrix = total[np.ix_(idx, idx)]
    every = tuple(c for fr in frame_results.values() for c in fr.conflicts)
    result = RequirementResult(
        requirement=req,
        labels=labels,
        matrix=matrix,
        calculation=merge_calculations(fr.calculation for fr in frame_results.values()),
        frames=frame_results,
        conflicts=every,
        conflicts_by_type=count_conflict_types(every),
    )
    return result, errors


def _conflict_for(c: Mapping[str, Any], req: ResolvedRequirement) -> dict[str, Any] | None:
    """A conflict as the requirement reports it: every severity ``error`` and no
    ``low_overlap`` since CVAT 2.74 (the 2.42 preset keeps 2.42's conflicts as they are)."""
    out = dict(c)
    if req.legacy:
        return out
    if out["type"] == "low_overlap":
        return None
    out["severity"] = "error"
    out.setdefault("attribute_names", [])
    out["requirement"] = req.name
    return out
