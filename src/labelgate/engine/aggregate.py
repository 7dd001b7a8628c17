"""Job → task (plain sums) → project (weighted by 1/frame_share) aggregation, as CVAT does.

Difference from CVAT 2.42: the task-level ``mean_iou`` is the frame-weighted mean of the job
values (CVAT averages an accumulator that is always 0, so its task mean IoU is always 0); the
project mean IoU is the frame-weighted mean of the task values (CVAT leaves it at 0).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from labelgate.arrays import FloatArray
from labelgate.engine.conflicts import CONFLICT_TYPES
from labelgate.engine.report import (
    COUNT_KEYS,
    LABEL_COUNT_KEYS,
    Report,
    conflict_counts,
    confusion_block,
    confusion_summary,
    label_metrics,
    summary_block,
)
from labelgate.errors import ValidationError


def _matrix(r: Report) -> FloatArray:
    return np.asarray(r.data["annotations"]["confusion_matrix"]["rows"], dtype=np.float64)


def _labels(reports: Sequence[Report]) -> list[str]:
    labels = reports[0].data["annotations"]["confusion_matrix"]["labels"][:-1]
    for r in reports[1:]:
        if r.data["annotations"]["confusion_matrix"]["labels"][:-1] != labels:
            raise ValidationError("cannot aggregate reports with different label sets")
    return list(labels)


def _combine(reports: Sequence[Report], weights: Sequence[float], keep_frames: bool) -> Report:
    if not reports:
        raise ValidationError("nothing to aggregate: no reports given")
    labels = _labels(reports)
    matrix = np.zeros_like(_matrix(reports[0]))
    comps: dict[str, dict[str, float]] = {"shape": {}, "label": {}}
    by_type = dict.fromkeys(CONFLICT_TYPES, 0)
    frame_count = total_frames = conflicts = errors = 0
    counts = dict.fromkeys(COUNT_KEYS, 0)
    iou_num = iou_den = 0.0
    for r, w in zip(reports, weights, strict=True):
        cs = r.data["comparison_summary"]
        matrix += np.ceil(_matrix(r) * w)
        for part in ("shape", "label"):
            for k, v in cs["annotation_components"][part].items():
                if k.endswith("_count"):
                    comps[part][k] = comps[part].get(k, 0) + math.ceil(v * w)
        for k, v in cs["conflicts_by_type"].items():
            by_type[k] = by_type.get(k, 0) + v
        # Each count is ceil(count * w) of the report's own count (CVAT's accumulate), not a
        # sum of the ceiled matrix cells; virtual empty-frame counts are in the counts only.
        ann = cs["annotations"]
        for k in COUNT_KEYS:
            counts[k] += math.ceil(ann[k] * w)
        frame_count += cs["frame_count"]
        total_frames += cs["total_frames"]
        conflicts += cs["conflict_count"]
        errors += cs["error_count"]
        mean = cs["annotation_components"]["shape"].get("mean_iou", 0.0)
        iou_num += mean * cs["frame_count"]
        iou_den += cs["frame_count"]
    summary = {**confusion_summary(matrix, labels), **counts}
    comps["shape"]["mean_iou"] = iou_num / iou_den if iou_den else 0.0
    for part in ("shape", "label"):
        comps[part]["accuracy"] = comps[part].get("valid_count", 0) / (
            comps[part].get("total_count", 0) or 1
        )
    frames: list[int] = sorted(
        {f for r in reports for f in r.data["comparison_summary"].get("frames", [])}
    )
    comparison: dict[str, Any] = {
        "frame_share": frame_count / (total_frames or 1),
        "frames": frames if keep_frames else [],
        "total_frames": total_frames,
        "frame_count": frame_count,
        "mean_conflict_count": conflicts / (frame_count or 1),
        "conflict_count": conflicts,
        "warning_count": conflicts - errors,
        "error_count": errors,
        "conflicts_by_type": by_type,
        "annotations": summary,
        "annotation_components": comps,
    }
    data: dict[str, Any] = {
        "parameters": reports[0].data["parameters"],
        "comparison_summary": comparison,
        "summary": summary_block(comparison),
        "conflicts_by_type": by_type,
        "annotations": summary,
        "frame_results": _merge_frames(reports) if keep_frames else {},
    }
    conflict_list = [c for r in reports for c in r.conflicts] if keep_frames else []
    errs = [e for r in reports for e in r.data_errors]
    return Report(data=data, conflicts=conflict_list, data_errors=errs)


def _merge_frames(reports: Sequence[Report]) -> dict[str, Any]:
    """Task ``frame_results``: a frame checked by several jobs has its conflicts concatenated,
    its counts, confusion matrix and components summed and its mean IoU running-averaged
    (CVAT's ``_compute_task_report``)."""
    out: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for r in reports:
        for frame, res in r.to_dict().get("frame_results", {}).items():
            n = seen.get(frame, 0)
            seen[frame] = n + 1
            if n == 0:
                out[frame] = copy.deepcopy(res)
                continue
            cur = out[frame]
            cur["conflicts"] = cur["conflicts"] + res["conflicts"]
            cur.update(conflict_counts(cur["conflicts"]))
            _add_counts(cur["annotations"], res["annotations"], COUNT_KEYS)
            a = cur["annotations"]
            a["accuracy"] = a["valid_count"] / (a["total_count"] or 1)
            a["precision"] = a["valid_count"] / (a["ds_count"] or 1)
            a["recall"] = a["valid_count"] / (a["gt_count"] or 1)
            mine, theirs = a.get("confusion_matrix"), res["annotations"].get("confusion_matrix")
            if isinstance(mine, dict) and isinstance(theirs, dict):
                rows = np.asarray(mine["rows"]) + np.asarray(theirs["rows"])
                a["confusion_matrix"] = confusion_block(
                    mine["labels"],
                    rows.tolist(),
                    {k: v.tolist() for k, v in label_metrics(rows).items()},
                )
            comps, other = cur["annotation_components"], res["annotation_components"]
            for part, keys in (("shape", COUNT_KEYS), ("label", LABEL_COUNT_KEYS)):
                if part in comps and part in other:
                    _add_counts(comps[part], other[part], keys)
                    comps[part]["accuracy"] = comps[part]["valid_count"] / (
                        comps[part]["total_count"] or 1
                    )
            shape = comps["shape"]
            shape["mean_iou"] = (shape["mean_iou"] * n + other["shape"]["mean_iou"]) / (n + 1)
    return out


def _add_counts(into: dict[str, Any], other: Mapping[str, Any], keys: Sequence[str]) -> None:
    for k in keys:
        if k in into and k in other:
            into[k] += other[k]


def task_report(job_reports: Sequence[Report]) -> Report:
    """Sum job reports into a task report (micro-average over the summed matrix).

    Raises:
        ValidationError: no reports, or reports over different label sets.
    """
    return _combine(job_reports, [1.0] * len(job_reports), keep_frames=True)


def project_report(task_reports: Sequence[Report]) -> Report:
    """Weighted sum of task reports: each count becomes ``ceil(count / frame_share)``.

    Tasks with no compared frames (frame_share 0) are left out, as CVAT excludes them.

    Raises:
        ValidationError: no usable task report.
    """
    usable = [r for r in task_reports if r.data["comparison_summary"]["frame_share"] > 0]
    weights = [1.0 / r.data["comparison_summary"]["frame_share"] for r in usable]
    return _combine(usable, weights, keep_frames=False)
