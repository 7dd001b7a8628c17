"""Score a Label Studio project and push the results back (the same pipeline for CLI and
webhook worker)."""

from __future__ import annotations

from typing import Any

import numpy as np

from labelgate.adapters import GT_ANNOTATOR, PREDICTION_PREFIX
from labelgate.engine import QualitySettings, compare
from labelgate.errors import ValidationError
from labelgate.model import AnnotationSet, Kind
from labelgate_labelstudio.client import CONSENSUS_MODEL, LabelStudioSource
from labelgate_labelstudio.pushback import DEFAULT_WORKERS, Progress, plan_push, run_push


def task_scores(aset: AnnotationSet, settings: QualitySettings | None = None) -> dict[int, dict]:
    """Per task: accuracy against ground truth where it exists, else annotator agreement."""
    from labelgate.agreement.report import agreement_report

    parts = aset.split_by_annotator()
    gt = parts.get(GT_ANNOTATOR)
    humans = [n for n in parts if n and n != GT_ANNOTATOR and not n.startswith(PREDICTION_PREFIX)]
    out: dict[int, dict[str, Any]] = {}
    if gt is not None:
        for name in humans:
            frames = compare(gt, parts[name], settings).to_dict()["frame_results"]
            for frame, res in frames.items():
                entry = out.setdefault(int(frame), {"basis": "ground_truth", "per_annotator": {}})
                entry["per_annotator"][name] = res["annotations"]["accuracy"]
    if len(humans) >= 2:
        try:
            rep = agreement_report(aset, settings, n_boot=0)
        except ValidationError:
            rep = None
        for row in rep["per_item"] if rep else []:
            entry = out.setdefault(row["item"], {"basis": "agreement", "per_annotator": {}})
            entry["agreement"] = row["agreement"]
    for entry in out.values():
        if entry["basis"] == "ground_truth":
            entry["score"] = float(np.mean(list(entry["per_annotator"].values())))
        else:
            entry["score"] = entry["agreement"]
        entry["conflicting_annotators"] = sorted(
            n for n, v in entry["per_annotator"].items() if v < 1.0
        )
    return out


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
        workers: concurrent requests for the per-object writes.
        on_progress: ``(description, done, total)`` callback of the push.

    Returns:
        JSON-ready summary: per-annotator accuracy, agreement, per-task scores, flagged tasks,
        stored report id, what was pushed and the push statistics.
    """
    from labelgate.agreement.report import agreement_report, text_agreement

    # The raw tasks are kept only when something is pushed: the push compares with them.
    pushing = push_scores or predictions is not False
    snapshot = source.snapshot(project_id) if pushing else None
    aset = source.pull(project_id, snapshot) if snapshot else source.pull(project_id)
    parts = aset.split_by_annotator()
    gt = parts.get(GT_ANNOTATOR)
    annotators: dict[str, Any] = {}
    if gt is not None:
        for name in parts:
            if name and name != GT_ANNOTATOR:
                s = compare(gt, parts[name], settings).summary
                annotators[name] = {
                    k: s[k]
                    for k in ("accuracy", "precision", "recall", "accuracy_ci95", "frame_count")
                }
                # Non-spatial controls against GT: span F1, TextArea similarity, number alpha.
                annotators[name].update(
                    text_agreement({GT_ANNOTATOR: gt, name: parts[name]}, [GT_ANNOTATOR, name])
                )
    try:
        agreement = agreement_report(aset, settings, n_boot=100)
    except ValidationError:
        agreement = None
    scores = task_scores(aset, settings)
    flagged = sorted(
        t for t, e in scores.items() if e["score"] < threshold or e["conflicting_annotators"]
    )
    result: dict[str, Any] = {
        "project": project_id,
        "annotators": annotators,
        "agreement": agreement,
        "tasks": {str(k): v for k, v in sorted(scores.items())},
        "flagged": flagged,
        "pushed": {},
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

        regions = to_ls_results(merge(aset))
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
        result["report_id"] = store.save_report(
            "ls_project",
            "labelstudio",
            f"project:{project_id}",
            result,
            project=f"labelstudio:{project_id}",
        )
    return result
