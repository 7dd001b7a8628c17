"""Requirement-mode results and their JSON in CVAT 2.74+'s report shape.

:func:`~labelgate.engine.req_score.compare_requirements` builds them for a job and
:mod:`~labelgate.engine.req_aggregate` for tasks and projects; every score is recomputed from a
(summed) confusion matrix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labelgate.arrays import FloatArray, IntArray
from labelgate.engine.conflicts import CONFLICT_TYPES
from labelgate.engine.report import label_metrics
from labelgate.engine.req_metrics import (
    Calculation,
    Score,
    all_completed,
    base_metric,
    requirement_completed,
    score,
    scores,
)
from labelgate.engine.requirements import RequirementTree, ResolvedRequirement
from labelgate.errors import ValidationError
from labelgate.stats import wilson_interval

Conflict = Mapping[str, Any]


@dataclass(frozen=True)
class FrameResult:
    """One validation frame of one requirement."""

    frame: int
    matrix: IntArray
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
    matrix: IntArray
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


def _micro_ratio(m: FloatArray, base: str) -> tuple[float, float]:
    valid = float(np.trace(m[:-1, :-1]))
    ds, gt, total = float(m[:-1, :].sum()), float(m[:, :-1].sum()), float(m.sum())
    return {
        "accuracy": (valid, total),
        "precision": (valid, ds),
        "recall": (valid, gt),
        "jaccard_index": (valid, ds + gt - valid),
        "dice": (2 * valid, ds + gt),
    }[base]


def _label_ratio(m: FloatArray, i: int, base: str) -> tuple[float, float]:
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
        return dedupe_conflicts(c for r in self.results for c in r.conflicts)

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
            by_type = sum_conflict_counts(r.conflicts_by_type for r in self.results)
        else:
            by_type = count_conflict_types(self.unique_conflicts())
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
    labels: Sequence[str], matrices: IntArray, metric: str, computed: Sequence[bool]
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


def _components(matrices: IntArray) -> list[dict[str, int]]:
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
            "conflicts_by_type": count_conflict_types(fr.conflicts, only_present=True),
            "score": values[i].value if computed[i] else None,
            "score_components": comps[i],
            "calculation": fr.calculation.to_dict(),
            "confusion_matrix": blocks[i],
        }
    return out


def _group(r: RequirementResult) -> dict[str, Any]:
    req = r.requirement
    s = r.score
    by_type = dict(r.conflicts_by_type) if r.frames is None else count_conflict_types(r.conflicts)
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


def dedupe_conflicts(conflicts: Iterable[Conflict]) -> list[Conflict]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for c in conflicts:
        k = _conflict_key(c)
        if k not in seen:
            seen.add(k)
            out.append(c)
    return out


def count_conflict_types(
    conflicts: Iterable[Conflict], only_present: bool = False
) -> dict[str, int]:
    counts: dict[str, int] = {} if only_present else dict.fromkeys(_TYPES, 0)
    for c in conflicts:
        counts[c["type"]] = counts.get(c["type"], 0) + 1
    return counts


def sum_conflict_counts(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out = dict.fromkeys(_TYPES, 0)
    for p in parts:
        for k, v in p.items():
            out[k] = out.get(k, 0) + v
    return out


#: Conflict types of requirement mode (no low_overlap since CVAT 2.74).
_TYPES = tuple(t for t in CONFLICT_TYPES if t != "low_overlap")


__all__ = [
    "Conflict",
    "FrameResult",
    "RequirementReport",
    "RequirementResult",
    "count_conflict_types",
    "dedupe_conflicts",
    "sum_conflict_counts",
]
