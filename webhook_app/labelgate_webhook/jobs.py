"""Re-score jobs run by the worker: the same pipeline functions the CLI runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from labelgate.errors import ValidationError
from labelgate.queue.durable import Job


def _target_id(job: Job, kind: str) -> int:
    prefix, _, value = job.target.partition(":")
    if prefix != kind or not value.isdigit():
        raise ValidationError(f"job {job.id}: target {job.target!r} is not '{kind}:<id>'")
    return int(value)


def labelstudio_rescore(job: Job, store: Any = None) -> dict[str, Any]:
    """Re-score a Label Studio project and push the changed tasks' scores, the review view and
    (where the project already has them) fresh consensus predictions back.

    ``LABELGATE_LS_THRESHOLD`` (default 0.8), ``LABELGATE_LS_META`` (also write task meta,
    default off) and ``LABELGATE_LS_WORKERS`` (concurrent requests, default 8) tune it.
    """
    from labelgate_labelstudio.client import connect
    from labelgate_labelstudio.pipeline import score_project

    project = _target_id(job, "project")
    threshold = float(os.environ.get("LABELGATE_LS_THRESHOLD", "0.8"))
    meta = os.environ.get("LABELGATE_LS_META", "").strip().lower() in ("1", "true", "yes")
    workers = int(os.environ.get("LABELGATE_LS_WORKERS", "8"))
    with connect() as source:
        return score_project(
            source,
            project,
            store=store,
            push_scores=True,
            review_view=True,
            predictions=None,  # refresh the consensus where it was pushed once, never add it
            meta=meta,
            threshold=threshold,
            workers=workers,
        )


def cvat_rescore(job: Job, store: Any = None) -> dict[str, Any]:
    """Re-score a CVAT job (``job:<id>``) or task (``task:<id>``) and push results back.

    Push-back follows ``LABELGATE_CVAT_PUSH_ISSUES`` (default on) and
    ``LABELGATE_CVAT_STAGE_POLICY`` (default off).
    """
    from labelgate_cvat.client import connect
    from labelgate_cvat.pipeline import score_target
    from labelgate_cvat.pushback import push_task

    kind = job.target.partition(":")[0]
    target = _target_id(job, kind if kind in ("job", "task") else "job")

    def flag(name: str, default: str) -> bool:
        return os.environ.get(name, default).strip().lower() in ("1", "true", "yes")

    with connect() as source:
        result = score_target(source, kind, target, store=store)
        pushed = []
        issues = flag("LABELGATE_CVAT_PUSH_ISSUES", "true")
        stages = flag("LABELGATE_CVAT_STAGE_POLICY", "false")
        if issues or stages:
            for r in result["_results"]:
                pushed += push_task(source, r, issues=issues, stage_policy=stages)
    result.pop("_results")
    result["pushed"] = pushed
    return result


def cvat_score_job(job: Job, store: Any = None) -> int:
    """One job of a fanned-out ``labelgate cvat score --queue`` run (see labelgate_cvat.fanout)."""
    from labelgate_cvat.client import connect
    from labelgate_cvat.fanout import score_job

    with connect() as source:
        return score_job(job.payload, source, store)


def handlers(store: Any = None) -> dict[str, Callable[[Job], Any]]:
    """Job name → handler, bound to a report store."""
    return {
        "labelstudio.rescore": lambda job: labelstudio_rescore(job, store),
        "cvat.rescore": lambda job: cvat_rescore(job, store),
        "cvat.score_job": lambda job: cvat_score_job(job, store),
    }
