"""Re-score jobs run by the worker: the same pipeline functions the CLI runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from labelgate.errors import MissingDependency, ValidationError
from labelgate.queue.durable import Job


def _target_id(job: Job, kind: str) -> int:
    prefix, _, value = job.target.partition(":")
    if prefix != kind or not value.isdigit():
        raise ValidationError(f"job {job.id}: target {job.target!r} is not '{kind}:<id>'")
    return int(value)


def labelstudio_rescore(job: Job, store: Any = None) -> dict[str, Any]:
    """Re-score a Label Studio project and push scores, meta and the review view back."""
    from labelgate_labelstudio.client import connect
    from labelgate_labelstudio.pipeline import score_project

    project = _target_id(job, "project")
    threshold = float(os.environ.get("LABELGATE_LS_THRESHOLD", "0.8"))
    with connect() as source:
        return score_project(
            source, project, store=store, push_scores=True, review_view=True, threshold=threshold
        )


def cvat_rescore(job: Job, store: Any = None) -> dict[str, Any]:
    """CVAT re-scoring needs the live CVAT adapter, which is not built yet (issue 5)."""
    raise MissingDependency(
        f"job {job.id} ({job.target}): the live CVAT adapter is not available yet; score CVAT "
        "exports with `labelgate compare` meanwhile"
    )


def handlers(store: Any = None) -> dict[str, Callable[[Job], Any]]:
    """Job name → handler, bound to a report store."""
    return {
        "labelstudio.rescore": lambda job: labelstudio_rescore(job, store),
        "cvat.rescore": lambda job: cvat_rescore(job, store),
    }
