"""Scoring a requirement tree: per-requirement results, job -> task -> project, CVAT 2.74+ JSON.

``compare_requirements`` runs the one engine (:func:`~labelgate.engine.compare.compare`) once
per enabled requirement on that requirement's selection, with its settings and match rules.
Aggregation sums confusion matrices (a frame shared by two jobs is one frame whose matrices
add up) and recomputes every score from the summed matrix; projects weight each task 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labelgate.engine.compare import _total_frames, compare, pair_items
from labelgate.engine.conflicts import CONFLICT_TYPES
from labelgate.engine.report import label_metrics
from labelgate.engine.req_metrics import (
    Calculation,
    Score,
    SideCounts,
    all_completed,
    base_metric,
    frame_calculation,
    merge_calculations,
    requirement_completed,
    score,
    scores,
)
from labelgate.engine.req_select import SideSelection, compatible_labels, select
from labelgate.engine.requirements import RequirementTree, ResolvedRequirement
from labelgate.engine.settings import QualitySettings
from labelgate.errors import DataWarning, ValidationError
from labelgate.model import AnnotationSet
from labelgate.stats import wilson_interval

Conflict = Mapping[str, Any]


@dataclass(frozen=True)
class FrameResult:
    """One validation frame of one requirement."""

    frame: int
    matrix: np.ndarray
    conflicts: tuple[Conflict, ...]
    calculation: Calculation


@dataclass(frozen=True)
class RequirementResult:
    """One requirement scored at one level (job, task or project).

    Attributes:
        requirement: the resolved requirement.
        labels: the matrix labels (``unmatched`` excluded; it is the last row and column).
        matrix: the summed confusion matrix, rows DS, columns GT.
        calculation: merged over frames (or jobs, tasks).
        frames: per-frame results; None at project level.
        conflicts: deduplicated conflicts (empty at project level, see ``conflicts_by_type``).
        conflicts_by_type: counts per type (covered and group conflicts included).
    """

    requirement: ResolvedRequirement
    labels: tuple[str, ...]
    matrix: np.ndarray
    calculation: Calculation
    frames: Mapping[int, FrameResult] | None
    conflicts: tuple[Conflict, ...] = ()
    conflicts_by_type: Mapping[str, int] = field(default_factory=dict)

    @property
    def score(self) -> Score | None:
        """The target metric, None when not computed."""
        if not self.calculation.computed:
            return None
        return score(self.matrix, self.labels, self.requirement.metric)

    @property
    def completed(self) -> bool:
        s = self.score
        return requirement_completed(
            self.calculation, None if s is None else s.value, self.requirement.required_score
        )

    def score_components(self) -> dict[str, int]:
        m = self.matrix
        return {
            "valid_count": int(np.trace(m[:-1, :-1])),
            "missing_count": int(m[-1, :].sum()),
            "extra_count": int(m[:, -1].sum()),
        }

    def score_interval(self) -> list[float] | None:
        """Wilson 95% interval of the score's proportion (micro and ``label_*``; None for
        ``mean_*``, which is no single proportion, and when not computed)."""
        s = self.score
        if s is None or s.aggregation == "mean":
            return None
        m = np.asarray(self.matrix, dtype=np.float64)
        if s.aggregation == "label":
            if not s.worst_labels:
                return None
            i = self.labels.index(s.worst_labels[0])
            succ, n = _label_ratio(m, i, base_metric(s.metric))
        else:
            succ, n = _micro_ratio(m, base_metric(s.metric))
        return list(wilson_interval(succ, n))


def _micro_ratio(m: np.ndarray, base: str) -> tuple[float, float]:
    valid = float(np.trace(m[:-1, :-1]))
    ds, gt, total = float(m[:-1, :].sum()), float(m[:, :-1].sum()), float(m.sum())
    return {
        "accuracy": (valid, total),
        "precision": (valid, ds),
        "recall": (valid, gt),
        "jaccard_index": (valid, ds + gt - valid),
        "dice": (2 * valid, ds + gt),
    }[base]


def _label_ratio(m: np.ndarray, i: int, base: str) -> tuple[float, float]:
    d, r, c, t = float(m[i, i]), float(m[i, :].sum()), float(m[:, i].sum()), float(m.sum())
    return {
        "accuracy": (t - (r - d) - (c - d), t),
        "precision": (d, r),
        "recall": (d, c),
        "jaccard_index": (d, r + c - d),
        "dice": (2 * d, r + c),
    }[base]


@dataclass(frozen=True)
class RequirementReport:
    """A requirement-mode quality report (job, task or project).

    Attributes:
        level: ``job``, ``task`` or ``project``.
        tree: the requirement tree that was scored.
        results: one per enabled requirement, depth-first.
        frames: the validation frames compared (empty at project level).
        total_frames, validation_frames: CVAT's frame counts.
        jobs, tasks: CVAT's counts at task / project level.
    """

    level: str
    tree: RequirementTree
    results: tuple[RequirementResult, ...]
    frames: tuple[int, ...]
    total_frames: int
    validation_frames: int
    jobs: Mapping[str, int] | None = None
    tasks: Mapping[str, int] | None = None
    data_errors: tuple[Mapping[str, Any], ...] = ()

    @property
    def completed(self) -> bool:
        """CVAT's rule: validation frames, at least one enabled requirement, all completed."""
        return all_completed(self.validation_frames, [r.completed for r in self.results])

    def result(self, name: str) -> RequirementResult:
        """One requirement's result.

        Raises:
            ValidationError: no enabled requirement of that name.
        """
        for r in self.results:
            if r.requirement.name == name:
                return r
        raise ValidationError(f"no scored requirement named {name!r}")

    def unique_conflicts(self) -> list[Conflict]:
        """Conflicts of every requirement, each reported once (CVAT stores them deduplicated)."""
        return _dedupe(c for r in self.results for c in r.conflicts)

    def to_dict(self) -> dict[str, Any]:
        """CVAT 2.74+'s report shape plus labelgate's extras (see docs/semantics.md)."""
        summary = self._summary()
        groups = {r.requirement.name: _group(r) for r in self.results}
        return {
            "semantics": self.tree.semantics,
            "level": self.level,
            "parameters": {
                "semantics": self.tree.semantics,
                "job_filter": self.tree.base.job_filter if self.tree.base else None,
            },
            "summary": summary,
            "comparison_summary": {**summary, "frames": list(self.frames)},
            "groups": groups,
            "completed": self.completed,
            "data_errors": [dict(e) for e in self.data_errors],
        }

    def _summary(self) -> dict[str, Any]:
        if self.level == "project":
            by_type = _sum_counts(r.conflicts_by_type for r in self.results)
        else:
            by_type = _count_types(self.unique_conflicts())
        total = sum(by_type.values())
        out: dict[str, Any] = {
            "total_frames": self.total_frames,
            "validation_frames": self.validation_frames,
            "validation_frame_share": self.validation_frames / (self.total_frames or 1),
            "conflict_count": total,
            "error_count": total,
            "conflicts_by_type": by_type,
        }
        if self.jobs is not None:
            out["jobs"] = dict(self.jobs)
        if self.tasks is not None:
            out["tasks"] = dict(self.tasks)
        items = [_summary_item(r) for r in self.results]
        out["requirements"] = {
            "total": len(self.tree),
            "enabled": len(self.results),
            "completed": sum(r.completed for r in self.results),
            "not_computed": sum(not r.calculation.computed for r in self.results),
            "items": items,
        }
        return out


def _summary_item(r: RequirementResult) -> dict[str, Any]:
    s = r.score
    return {
        "requirement_id": r.requirement.id,
        "name": r.requirement.name,
        "metric": r.requirement.metric,
        "score": None if s is None else s.value,
        "score_components": r.score_components(),
        "calculation": r.calculation.brief(),
        "threshold": r.requirement.required_score,
        # labelgate's extras
        "completed": r.completed,
        "worst_labels": [] if s is None else list(s.worst_labels),
        "score_ci95": r.score_interval(),
    }


def _matrix_blocks(
    labels: Sequence[str], matrices: np.ndarray, metric: str, computed: Sequence[bool]
) -> list[dict[str, Any]]:
    """CVAT's requirement confusion matrix JSON for each of (F, L+1, L+1) matrices, computed
    at once; a matrix whose requirement (or frame) is not computed has no target values."""
    m = np.asarray(matrices)
    per = {k: v.tolist() for k, v in label_metrics(m).items()}
    rows = m.astype(int).tolist()
    names = [*labels, "unmatched"]
    out = []
    for i, s in enumerate(scores(m, labels, metric)):
        ok = computed[i]
        out.append(
            {
                "labels": names,
                "rows": rows[i],
                "axes": {"cols": "gt", "rows": "ds"},
                **{k: v[i] for k, v in per.items()},
                "target_metric_summary": {
                    "metric": base_metric(metric),
                    "aggregation": s.aggregation,
                    "values": {
                        "micro": s.micro if ok else None,
                        "mean": s.mean if ok else None,
                        "label": s.label if ok else None,
                    },
                    "worst_labels": list(s.worst_labels) if ok else [],
                },
            }
        )
    return out


def _components(matrices: np.ndarray) -> list[dict[str, int]]:
    """CVAT's ``score_components`` of each of (F, L+1, L+1) matrices."""
    m = np.asarray(matrices)
    valid = np.trace(m[:, :-1, :-1], axis1=1, axis2=2).tolist()
    missing = m[:, -1, :].sum(1).tolist()
    extra = m[:, :, -1].sum(1).tolist()
    return [
        {"valid_count": int(v), "missing_count": int(mi), "extra_count": int(e)}
        for v, mi, e in zip(valid, missing, extra, strict=True)
    ]


def _frame_results(r: RequirementResult) -> dict[str, Any]:
    """Per-frame JSON of one requirement, the metrics of all frames computed at once."""
    frames = sorted((r.frames or {}).items())
    if not frames:
        return {}
    n = len(r.labels) + 1
    stack = np.stack([fr.matrix for _, fr in frames]).reshape(len(frames), n, n)
    computed = [fr.calculation.computed for _, fr in frames]
    metric = r.requirement.metric
    blocks = _matrix_blocks(r.labels, stack, metric, computed)
    values = scores(stack, r.labels, metric)
    comps = _components(stack)
    out = {}
    for i, (f, fr) in enumerate(frames):
        out[str(f)] = {
            "conflicts": [dict(c) for c in fr.conflicts],
            "conflict_count": len(fr.conflicts),
            "error_count": len(fr.conflicts),
            "conflicts_by_type": _count_types(fr.conflicts, only_present=True),
            "score": values[i].value if computed[i] else None,
            "score_components": comps[i],
            "calculation": fr.calculation.to_dict(),
            "confusion_matrix": blocks[i],
        }
    return out


def _group(r: RequirementResult) -> dict[str, Any]:
    req = r.requirement
    s = r.score
    by_type = dict(r.conflicts_by_type) if r.frames is None else _count_types(r.conflicts)
    (block,) = _matrix_blocks(r.labels, r.matrix[None], req.metric, [r.calculation.computed])
    return {
        "parameters": req.parameters(),
        "comparison_summary": {
            "conflict_count": sum(by_type.values()),
            "error_count": sum(by_type.values()),
            "conflicts_by_type": by_type,
            "score": None if s is None else s.value,
            "score_ci95": r.score_interval(),
            "score_components": r.score_components(),
            "calculation": r.calculation.to_dict(),
            "completed": r.completed,
            "confusion_matrix": block,
        },
        "frame_results": None if r.frames is None else _frame_results(r),
    }


# --- conflicts -----------------------------------------------------------------------------


def _conflict_key(c: Conflict) -> tuple[Any, ...]:
    ids = tuple(
        (a.get("obj_id"), a.get("job_id"), a.get("type")) for a in c.get("annotation_ids", ())
    )
    return (c.get("frame_id"), c.get("type"), ids)


def _dedupe(conflicts: Iterable[Conflict]) -> list[Conflict]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for c in conflicts:
        k = _conflict_key(c)
        if k not in seen:
            seen.add(k)
            out.append(c)
    return out


def _count_types(conflicts: Iterable[Conflict], only_present: bool = False) -> dict[str, int]:
    counts: dict[str, int] = {} if only_present else dict.fromkeys(_TYPES, 0)
    for c in conflicts:
        counts[c["type"]] = counts.get(c["type"], 0) + 1
    return counts


def _sum_counts(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out = dict.fromkeys(_TYPES, 0)
    for p in parts:
        for k, v in p.items():
            out[k] = out.get(k, 0) + v
    return out


#: Conflict types of requirement mode (no low_overlap since CVAT 2.74).
_TYPES = tuple(t for t in CONFLICT_TYPES if t != "low_overlap")


# --- scoring one job -----------------------------------------------------------------------


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
    items: np.ndarray, frames: np.ndarray, to_gt: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray:
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
    sel: SideSelection, frames: np.ndarray, to_gt: tuple[np.ndarray, np.ndarray] | None
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
    frames: np.ndarray,
    pairing: tuple[np.ndarray, np.ndarray],
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
        conflicts_by_type=_count_types(every),
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


# --- aggregation ---------------------------------------------------------------------------


def _embed(m: np.ndarray, labels: Sequence[str], into: Sequence[str]) -> np.ndarray:
    """A matrix over ``labels`` re-indexed onto the label list ``into`` (unmatched last)."""
    pos = [list(into).index(x) for x in labels] + [len(into)]
    out = np.zeros((len(into) + 1, len(into) + 1), dtype=np.int64)
    out[np.ix_(pos, pos)] = m
    return out


def _union_labels(results: Sequence[RequirementResult]) -> tuple[str, ...]:
    out: list[str] = []
    for r in results:
        out.extend(x for x in r.labels if x not in out)
    return tuple(out)


def _by_name(reports: Sequence[RequirementReport]) -> dict[str, list[RequirementResult]]:
    out: dict[str, list[RequirementResult]] = {}
    for rep in reports:
        for r in rep.results:
            out.setdefault(r.requirement.name, []).append(r)
    return out


def _merge_results(parts: Sequence[RequirementResult], keep_frames: bool) -> RequirementResult:
    labels = _union_labels(parts)
    matrix = sum(
        (_embed(p.matrix, p.labels, labels) for p in parts),
        np.zeros((len(labels) + 1,) * 2, np.int64),
    )
    if not keep_frames:
        return RequirementResult(
            requirement=parts[0].requirement,
            labels=labels,
            matrix=matrix,
            calculation=merge_calculations(p.calculation for p in parts),
            frames=None,
            conflicts_by_type=_sum_counts(p.conflicts_by_type for p in parts),
        )
    frames: dict[int, FrameResult] = {}
    for p in parts:
        for f, fr in (p.frames or {}).items():
            m = _embed(fr.matrix, p.labels, labels)
            if f in frames:  # a frame shared by two jobs: one frame, matrices added
                old = frames[f]
                frames[f] = FrameResult(
                    f,
                    old.matrix + m,
                    tuple(_dedupe([*old.conflicts, *fr.conflicts])),
                    merge_calculations([old.calculation, fr.calculation]),
                )
            else:
                frames[f] = FrameResult(f, m, fr.conflicts, fr.calculation)
    frames = dict(sorted(frames.items()))
    conflicts = tuple(c for fr in frames.values() for c in fr.conflicts)
    return RequirementResult(
        requirement=parts[0].requirement,
        labels=labels,
        matrix=sum((fr.matrix for fr in frames.values()), np.zeros_like(matrix)),
        calculation=merge_calculations(p.calculation for p in parts),
        frames=frames,
        conflicts=conflicts,
        conflicts_by_type=_count_types(conflicts),
    )


def task_requirement_report(
    job_reports: Sequence[RequirementReport],
    *,
    excluded: int = 0,
    not_checkable: int = 0,
) -> RequirementReport:
    """Job reports -> a task report, per requirement (§3.5).

    Frames shared by several jobs are counted once: their matrices are summed and their
    conflicts deduplicated; scores are recomputed on the summed matrix.

    Args:
        job_reports: the included jobs' reports (same tree).
        excluded: jobs left out by the job filter.
        not_checkable: jobs that could not be compared.

    Raises:
        ValidationError: no job reports.
    """
    if not job_reports:
        raise ValidationError("nothing to aggregate: no job reports given")
    merged = [_merge_results(parts, True) for parts in _by_name(job_reports).values()]
    frames = sorted({f for r in job_reports for f in r.frames})
    included = len(job_reports)
    return RequirementReport(
        level="task",
        tree=job_reports[0].tree,
        results=tuple(merged),
        frames=tuple(frames),
        total_frames=sum(r.total_frames for r in job_reports),
        validation_frames=sum(r.validation_frames for r in job_reports),
        jobs={
            "total": included + excluded + not_checkable,
            "excluded": excluded,
            "not_checkable": not_checkable,
            "included": included,
            "completed": sum(r.completed for r in job_reports),
        },
        data_errors=tuple(e for r in job_reports for e in r.data_errors),
    )


def project_requirement_report(
    task_reports: Sequence[RequirementReport],
    *,
    custom: int = 0,
    not_configured: int = 0,
    excluded: int = 0,
) -> RequirementReport:
    """Task reports -> a project report: matrices summed with weight 1 per task (§3.5).

    Tasks whose reports include no job are left out and counted as excluded; ``custom`` and
    ``not_configured`` count tasks the caller left out for those reasons.

    Raises:
        ValidationError: no task reports.
    """
    if not task_reports:
        raise ValidationError("nothing to aggregate: no task reports given")
    used = [r for r in task_reports if (r.jobs or {}).get("included", 1) > 0]
    skipped = len(task_reports) - len(used)
    merged = [_merge_results(parts, False) for parts in _by_name(used).values()]
    return RequirementReport(
        level="project",
        tree=task_reports[0].tree,
        results=tuple(merged),
        frames=(),
        total_frames=sum(r.total_frames for r in used),
        validation_frames=sum(r.validation_frames for r in used),
        tasks={
            "total": len(task_reports) + custom + not_configured + excluded,
            "custom": custom,
            "not_configured": not_configured,
            "excluded": excluded + skipped,
            "included": len(used),
            "completed": sum(r.completed for r in used),
        },
        data_errors=tuple(e for r in used for e in r.data_errors),
    )


__all__ = [
    "FrameResult",
    "RequirementReport",
    "RequirementResult",
    "compare_requirements",
    "project_requirement_report",
    "task_requirement_report",
]
