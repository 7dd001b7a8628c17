"""Score a Label Studio project and push the results back (the same pipeline for CLI and
webhook worker)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from labelgate.adapters import GT_ANNOTATOR, PREDICTION_PREFIX
from labelgate.engine import QualitySettings
from labelgate.errors import ValidationError
from labelgate.model import AnnotationSet, Kind
from labelgate_labelstudio.client import CONSENSUS_MODEL, LabelStudioSource
from labelgate_labelstudio.pushback import DEFAULT_WORKERS, Progress, plan_push, run_push

if TYPE_CHECKING:
    from labelgate.agreement.controls import ControlScore


def humans_of(aset: AnnotationSet) -> list[str]:
    """The human annotators: not ground truth, not a model's predictions."""
    return [
        n
        for n in aset.split_by_annotator()
        if n and n != GT_ANNOTATOR and not n.startswith(PREDICTION_PREFIX)
    ]


def task_scores(
    aset: AnnotationSet,
    settings: QualitySettings | None = None,
    *,
    accuracy: Mapping[str, ControlScore] | None = None,
    agreement: Mapping[str, ControlScore] | None = None,
) -> dict[int, dict]:
    """Per task: accuracy against ground truth where it exists, else annotator agreement.

    Both are built from the task's controls (:mod:`labelgate.agreement.controls`): each
    control scored with its own metric, a task's score the mean over its controls.
    ``accuracy``/``agreement``: the control scores when the caller has them already.
    """
    from labelgate.agreement.controls import (
        control_accuracy,
        control_agreement,
        item_annotator_headline,
        item_headline,
    )

    humans = humans_of(aset)
    if accuracy is None:
        accuracy = control_accuracy(aset, humans, settings)
    out: dict[int, dict[str, Any]] = {}
    for item, per in item_annotator_headline(accuracy, GT_ANNOTATOR).items():
        per = {n: v for n, v in per.items() if n in humans}
        if per:
            out[item] = {"basis": "ground_truth", "per_annotator": per}
    if len(humans) >= 2:
        if agreement is None:
            agreement = control_agreement(aset, humans, settings)
        for item, value in item_headline(agreement).items():
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


def annotator_accuracy(
    aset: AnnotationSet,
    settings: QualitySettings | None = None,
    controls: Mapping[str, ControlScore] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each annotator and model against ground truth, per control and as one headline.

    ``accuracy`` is the mean of the annotator's per-control accuracy; ``accuracy_ci95``
    resamples the gold tasks; ``precision``/``recall`` are CVAT's, pooled over the region
    controls (None without one). ``controls``: :func:`control_accuracy` of every annotator
    and model, when the caller has it.
    """
    from labelgate.agreement.controls import annotator_summary, control_accuracy

    parts = aset.split_by_annotator()
    gt = parts.get(GT_ANNOTATOR)
    if gt is None:
        return {}
    names = [n for n in parts if n and n != GT_ANNOTATOR]
    if controls is None:
        controls = control_accuracy(aset, names, settings)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
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
            "frame_count": len(np.intersect1d(gt.items.id, parts[name].items.id)),
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
) -> dict[str, Any]:
    """Pull, score every annotator against GT and each other, store, and push back (opt-in).

    Args:
        push_scores: write the task score columns (:mod:`labelgate_labelstudio.pushback`).
        review_view: keep the "labelgate: review queue" tab listing the flagged tasks.
        predictions: write the consensus as ``labelgate-consensus`` predictions; None refreshes
            them only where the project already has some (the webhook worker's choice).
        meta: also write the full per-task entry into ``meta["labelgate"]`` (one request per
            changed task).
        workers: concurrent requests for the task pages and the per-object writes.
        on_progress: ``(description, done, total)`` callback of the pull and the push.

    Returns:
        JSON-ready summary: per-annotator accuracy, agreement, per-task scores, flagged tasks,
        stored report id, what was pushed and the push statistics.
    """
    from labelgate.agreement.report import agreement_report

    # The raw tasks are kept only when something is pushed: the push compares with them.
    pushing = push_scores or predictions is not False
    snapshot = (
        source.snapshot(project_id, workers=workers, on_progress=on_progress) if pushing else None
    )
    aset = (
        source.pull(project_id, snapshot, gt_policy=gt_policy)
        if snapshot
        else source.pull(project_id, gt_policy=gt_policy, workers=workers, on_progress=on_progress)
    )
    from labelgate.agreement.controls import control_accuracy, control_agreement

    # Each control scored once, shared by the annotators' table, agreement and task scores.
    humans = humans_of(aset)
    named = [n for n in aset.split_by_annotator() if n and n != GT_ANNOTATOR]
    accuracy = control_accuracy(aset, named, settings)
    agreement_controls = control_agreement(aset, humans, settings) if len(humans) >= 2 else {}
    annotators = annotator_accuracy(aset, settings, accuracy)
    try:
        agreement = agreement_report(aset, settings, n_boot=100, controls=agreement_controls)
    except ValidationError:
        agreement = None
    scores = task_scores(aset, settings, accuracy=accuracy, agreement=agreement_controls)
    # The threshold alone decides: one annotator's single error on a gold task is listed in
    # conflicting_annotators but does not flag a task that still scores above it.
    flagged = sorted(t for t, e in scores.items() if e["score"] < threshold)
    conflicts, truncated = region_conflicts(aset, accuracy)
    result: dict[str, Any] = {
        "project": project_id,
        "annotators": annotators,
        "agreement": agreement,
        "tasks": {str(k): v for k, v in sorted(scores.items())},
        "flagged": flagged,
        "pushed": {},
        # The region controls' conflicts with GT, for the conflict viewer (labelgate serve).
        "conflicts": conflicts,
        "conflicts_truncated": truncated,
        # Where the tasks live, so a dashboard can link each task (labelgate.reporting.links).
        "source": {
            "name": aset.name,
            "meta": {
                "system": "labelstudio",
                "url": aset.meta.get("url"),
                "project_id": project_id,
            },
        },
        **{k: aset.meta[k] for k in ("gt_policy", "gt_conflicts") if k in aset.meta},
    }
    if predictions is None and snapshot is not None:
        predictions = any(
            isinstance(p, dict) and p.get("model_version") == CONSENSUS_MODEL
            for t in snapshot.tasks
            for p in t.get("predictions") or []
        )
    consensus = None
    if predictions:
        from labelgate.consensus import merge

        # The consensus groups regions at the configured IoU, as the scores above match them.
        iou = (settings or QualitySettings()).iou_threshold
        regions = to_ls_results(merge(aset, iou_threshold=iou))
        consensus = {
            task: (float(np.mean([r["score"] for r in res])) if res else 0.0, res)
            for task, res in regions.items()
        }
    if snapshot is not None and (push_scores or predictions):
        plan = plan_push(snapshot, scores if push_scores else None, consensus, meta=meta)
        stats = run_push(source, snapshot, plan, workers=workers, on_progress=on_progress)
        result["push"] = stats.to_dict()
        if push_scores:
            result["pushed"]["scores"] = len(scores)
        if consensus is not None:
            result["pushed"]["predictions"] = len(consensus)
    if review_view:
        result["pushed"]["review_view"] = source.upsert_review_view(project_id, flagged)
    if store is not None:
        from labelgate.agreement.report import agreement_headline
        from labelgate.reporting.pipeline import save_trend

        # The trend record `labelgate history --project labelstudio:<id>` reads.
        save_trend(
            store,
            source="labelstudio",
            target=f"project:{project_id}",
            project=f"labelstudio:{project_id}",
            agreement=agreement_headline(agreement),
            annotators=[
                {"annotator": n, **v}
                for n, v in annotators.items()
                if not n.startswith(PREDICTION_PREFIX)
            ],
        )
        result["report_id"] = store.save_report(
            "ls_project",
            "labelstudio",
            f"project:{project_id}",
            result,
            project=f"labelstudio:{project_id}",
            settings=(settings or QualitySettings()).to_dict(),  # what the scores were made with
        )
    return result
