"""Score a Label Studio project on one quality run and push the results back (the same
pipeline for ``labelgate ls score`` and the webhook worker).

Every section here is a pure function of the :class:`~labelgate.run.QualityRun`: per-task
scores, the annotator table, flagged tasks, region conflicts and consensus predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from labelgate.adapters import GT_ANNOTATOR
from labelgate.engine import QualitySettings
from labelgate.model import AnnotationSet, Kind
from labelgate.run import QualityRun, run_quality
from labelgate_labelstudio.client import LabelStudioSource
from labelgate_labelstudio.pushback import DEFAULT_WORKERS, Progress
from labelgate_labelstudio.source import (
    ProjectSource,
    PushOptions,
    project_id_of,
    project_target,
)

if TYPE_CHECKING:
    from labelgate.agreement.controls import ControlScore


def task_scores(run: QualityRun) -> dict[int, dict[str, Any]]:
    """Per task: accuracy against ground truth where it exists, else annotator agreement.

    Both are the run's per-control scores (:mod:`labelgate.agreement.controls`): each control
    scored with its own metric, a task's score the mean over its controls.
    """
    from labelgate.agreement.controls import item_annotator_headline, item_headline

    humans = set(run.humans)
    out: dict[int, dict[str, Any]] = {}
    for item, per in item_annotator_headline(run.control_accuracy, GT_ANNOTATOR).items():
        per = {n: v for n, v in per.items() if n in humans}
        if per:
            out[item] = {"basis": "ground_truth", "per_annotator": per}
    if len(humans) >= 2:
        for item, value in item_headline(run.agreement.controls).items():
            entry = out.setdefault(item, {"basis": "agreement", "per_annotator": {}})
            entry["agreement"] = value
    for entry in out.values():
        if entry["basis"] == "ground_truth":
            entry["score"] = float(np.mean(list(entry["per_annotator"].values())))
        else:
            entry["score"] = entry["agreement"]
        entry["conflicting_annotators"] = sorted(
            n for n, v in entry["per_annotator"].items() if v < 1.0
        )
    return out


def flagged_tasks(scores: Mapping[int, Mapping[str, Any]], threshold: float) -> list[int]:
    """The tasks scoring below ``threshold``.

    The threshold alone decides: one annotator's single error on a gold task is listed in
    ``conflicting_annotators`` but does not flag a task that still scores above it.
    """
    return sorted(t for t, e in scores.items() if e["score"] < threshold)


def annotator_accuracy(run: QualityRun) -> dict[str, dict[str, Any]]:
    """Each annotator and model against ground truth, per control and as one headline.

    ``accuracy`` is the mean of the annotator's per-control accuracy; ``accuracy_ci95``
    resamples the gold tasks; ``precision``/``recall`` are CVAT's, pooled over the region
    controls (None without one). Read from the run's per-control accuracy.
    """
    from labelgate.agreement.controls import annotator_summary

    gt = run.gt
    if gt is None:
        return {}
    controls = run.control_accuracy
    out: dict[str, dict[str, Any]] = {}
    for name in run.comparisons:
        headline = annotator_summary(controls, name) or {"value": 0.0, "ci95": None}
        pooled = [
            c.details["counts"][name]
            for c in controls.values()
            if name in c.details.get("counts", {})
        ]
        valid = sum(c["valid_count"] for c in pooled)
        ds = sum(c["ds_count"] for c in pooled)
        gt_n = sum(c["gt_count"] for c in pooled)
        out[name] = {
            "accuracy": headline["value"],
            "accuracy_ci95": headline["ci95"],
            "precision": valid / (ds or 1) if pooled else None,
            "recall": valid / (gt_n or 1) if pooled else None,
            "frame_count": len(np.intersect1d(gt.items.id, run.parts[name].items.id)),
            "per_control": headline.get("per_control", {}),
        }
    return out


def region_conflicts(
    aset: AnnotationSet, accuracy: Mapping[str, ControlScore]
) -> tuple[list[dict[str, Any]], int]:
    """The region controls' conflicts against ground truth as bundle rows, and how many more.

    Reuses the comparisons :func:`~labelgate.agreement.controls.control_accuracy` already made
    (one per control and annotator). Each row is the bundle's conflict row (``frame`` is the
    task id, ``geometry.frame_size`` the task's image size) plus ``task_id``, ``control`` and
    ``object`` (the control's ``toName`` tag, whose data field holds the task's image URL);
    rows past :data:`~labelgate.reporting.pipeline.MAX_CONFLICT_ROWS` are only counted.
    """
    from labelgate.reporting.pipeline import MAX_CONFLICT_ROWS, conflict_rows

    controls = {c.name: c for c in aset.schema.controls}
    rows: list[dict[str, Any]] = []
    for name, score in accuracy.items():
        obj = controls[name].to_name.split(",")[0] if name in controls else ""
        for annotator, conflicts in score.conflicts.items():
            rows += [
                {**row, "task_id": row["frame"], "control": name, "object": obj}
                for row in conflict_rows(aset, annotator, aset.meta, conflicts)
            ]
    return rows[:MAX_CONFLICT_ROWS], max(0, len(rows) - MAX_CONFLICT_ROWS)


def to_ls_results(aset: AnnotationSet) -> dict[int, list[dict[str, Any]]]:
    """Label Studio result regions per task for boxes, polygons and choices (consensus output)."""
    ann, schema = aset.annotations, aset.schema
    controls = {c.name: c for c in schema.controls}
    out: dict[int, list[dict[str, Any]]] = {}
    for r in range(len(ann)):
        label = schema.labels[int(ann.label[r])]
        control = controls.get(label.control or "")
        if control is None:
            continue
        item = int(ann.item[r])
        sizes = aset.items.size_of(np.array([item]))
        w, h = float(sizes[0][0]), float(sizes[1][0])
        value_name = label.name.split(":", 1)[-1]
        region: dict[str, Any] = {
            "id": f"lg{r}",
            "from_name": control.name,
            "to_name": control.to_name,
            "score": float(ann.score[r]),
        }
        kind = int(ann.kind[r])
        if kind == Kind.RECTANGLE and w and h:
            x1, y1, x2, y2 = ann.bbox[r].tolist()
            region.update(
                type="rectanglelabels",
                original_width=int(w),
                original_height=int(h),
                value={
                    "x": x1 / w * 100,
                    "y": y1 / h * 100,
                    "width": (x2 - x1) / w * 100,
                    "height": (y2 - y1) / h * 100,
                    "rotation": 0,
                    "rectanglelabels": [value_name],
                },
            )
        elif kind == Kind.POLYGON and w and h:
            pts = (ann.points_of(r) / np.array([w, h]) * 100).tolist()
            region.update(
                type="polygonlabels",
                original_width=int(w),
                original_height=int(h),
                value={"points": pts, "polygonlabels": [value_name]},
            )
        elif kind == Kind.TAG and control.type == "Choices":
            region.update(type="choices", value={"choices": [value_name]})
        else:
            continue
        out.setdefault(item, []).append(region)
    return out


def consensus_regions(run: QualityRun) -> dict[int, tuple[float, list[dict[str, Any]]]]:
    """The run's consensus as Label Studio predictions: task id -> (mean score, regions)."""
    if run.consensus is None:
        return {}
    return {
        task: (float(np.mean([r["score"] for r in res])) if res else 0.0, res)
        for task, res in to_ls_results(run.consensus).items()
    }


def project_result(run: QualityRun, threshold: float = 0.8) -> dict[str, Any]:
    """The project's Label Studio sections of a run (pure): per-annotator accuracy, agreement,
    per-task scores, flagged tasks and the region conflicts for the viewer."""
    aset = run.aset
    project = project_id_of(run.batch.target)
    scores = task_scores(run)
    conflicts, truncated = region_conflicts(aset, run.control_accuracy)
    return {
        "project": project,
        "annotators": annotator_accuracy(run),
        "agreement": run.agreement.to_dict(),
        "tasks": {str(k): v for k, v in sorted(scores.items())},
        "flagged": flagged_tasks(scores, threshold),
        "pushed": {},
        # The region controls' conflicts with GT, for the conflict viewer (labelgate serve).
        "conflicts": conflicts,
        "conflicts_truncated": truncated,
        # Where the tasks live, so a dashboard can link each task (labelgate.reporting.links).
        "source": {
            "name": aset.name,
            "meta": {"system": "labelstudio", "url": aset.meta.get("url"), "project_id": project},
        },
        **{k: aset.meta[k] for k in ("gt_policy", "gt_conflicts") if k in aset.meta},
    }


#: The Label Studio sections a stored run carries next to the bundle's own.
STORED_SECTIONS = (
    "project",
    "annotators",
    "tasks",
    "flagged",
    "pushed",
    "push",
    "conflicts",
    "conflicts_truncated",
    "gt_policy",
    "gt_conflicts",
)


def score_project(
    source: LabelStudioSource,
    project_id: int,
    *,
    store: Any = None,
    push_scores: bool = False,
    review_view: bool = False,
    predictions: bool | None = False,
    meta: bool = False,
    threshold: float = 0.8,
    settings: QualitySettings | None = None,
    gt_policy: str = "per-author",
    workers: int = DEFAULT_WORKERS,
    on_progress: Progress | None = None,
    route: str = "auto",
) -> dict[str, Any]:
    """Pull, run once (:func:`~labelgate.run.run_quality`), push back (opt-in) and store.

    Args:
        push_scores, review_view, predictions, meta, threshold, workers, on_progress:
            :class:`~labelgate_labelstudio.source.PushOptions`.
        settings: the quality settings (None: CVAT defaults).
        gt_policy: how several ground-truth annotations on one task are treated.
        route: how the tasks are read (:data:`~labelgate.config_server.LS_PULL_ROUTES`).

    Returns:
        JSON-ready summary (:func:`project_result`) with what was pushed, the push statistics
        and the stored report id. The store keeps the run's bundle with these sections (one
        report kind for every source; its page is ``/reports/<id>.html``).
    """
    push = PushOptions(
        scores=push_scores,
        review_view=review_view,
        predictions=predictions,
        meta=meta,
        threshold=threshold,
        workers=workers,
        on_progress=on_progress,
    )
    ls = ProjectSource(
        source, gt_policy=gt_policy, settings=settings, push_options=push, route=route
    )
    batch = ls.pull(project_target(project_id))
    run = run_quality(batch, options=ls.run_options(batch))
    result = project_result(run, threshold)
    result.update(ls.push(run))
    if store is not None:
        result["report_id"] = save_project_run(store, run, result)
    return result


def save_project_run(store: Any, run: QualityRun, result: Mapping[str, Any]) -> str:
    """Store the run's bundle with its Label Studio sections; returns the report id.

    The bundle's conflicts are the region controls' (each row names its task, control and
    image tag, which the conflict viewer needs).
    """
    from labelgate.reporting.pipeline import bundle_for

    sections = {k: result[k] for k in STORED_SECTIONS if k in result}
    bundle = bundle_for(run, store=store, sections=sections)
    return str(bundle["report_id"])
