"""Requirement reports aggregated: job -> task (shared frames once) -> project (weight 1).

Per requirement (by name), confusion matrices are summed and the score recomputed on the sum
(``cvat-quality-current.md`` §3.5).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labelgate.arrays import IntArray
from labelgate.engine.req_metrics import merge_calculations
from labelgate.engine.req_report import (
    FrameResult,
    RequirementReport,
    RequirementResult,
    count_conflict_types,
    dedupe_conflicts,
    sum_conflict_counts,
)
from labelgate.errors import ValidationError


def _embed(m: IntArray, labels: Sequence[str], into: Sequence[str]) -> IntArray:
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
            conflicts_by_type=sum_conflict_counts(p.conflicts_by_type for p in parts),
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
                    tuple(dedupe_conflicts([*old.conflicts, *fr.conflicts])),
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
        conflicts_by_type=count_conflict_types(conflicts),
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
