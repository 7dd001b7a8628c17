"""Re-score jobs run by the worker: the same pipeline functions the CLI runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labelgate.config import Config, load
from labelgate.errors import ValidationError
from labelgate.queue.durable import Job


def _target_id(job: Job, kind: str) -> int:
    prefix, _, value = job.target.partition(":")
    if prefix != kind or not value.isdigit():
        raise ValidationError(f"job {job.id}: target {job.target!r} is not '{kind}:<id>'")
    return int(value)


def labelstudio_rescore(
    job: Job, store: Any = None, config: Config | None = None
) -> dict[str, Any]:
    """Re-score a Label Studio project and push the changed tasks' scores, the review view and
    (where the project already has them) fresh consensus predictions back.

    The same path as ``labelgate ls score``: ``ProjectSource.pull`` -> one ``run_quality`` ->
    ``ProjectSource.push``, stored as a bundle whose page is ``/reports/<id>.html``.

    The configuration's quality settings score it; its ``ls_threshold`` (default 0.8),
    ``ls_meta`` (also write task meta, default off), ``ls_workers`` (concurrent requests,
    default 8) and ``ls_pull_route`` (default ``pages`` here) tune it (``config`` default:
    :func:`labelgate.config.load`).
    """
    from labelgate_labelstudio.client import connect
    from labelgate_labelstudio.pipeline import score_project

    project = _target_id(job, "project")
    cfg = config or load()
    with connect() as source:
        return score_project(
            source,
            project,
            store=store,
            push_scores=True,
            review_view=True,
            predictions=None,  # refresh the consensus where it was pushed once, never add it
            meta=cfg.server.ls_meta,
            threshold=cfg.server.ls_threshold,
            settings=cfg.settings(),
            workers=cfg.server.ls_workers,
            # Re-scores come often: the task pages leave nothing behind on the server,
            # where every export stores a file (unless ls_pull_route says otherwise).
            route=cfg.server.ls_pull_route or "pages",
        )


def cvat_rescore(job: Job, store: Any = None, config: Config | None = None) -> dict[str, Any]:
    """Re-score a CVAT job (``job:<id>``) or task (``task:<id>``) and push results back.

    The task's CVAT settings are layered under the configuration file's; push-back follows
    ``cvat_push_issues`` (default on) and ``cvat_stage_policy`` (default off).
    """
    from labelgate_cvat.client import connect
    from labelgate_cvat.pipeline import score_target
    from labelgate_cvat.pushback import push_task

    kind = job.target.partition(":")[0]
    target = _target_id(job, kind if kind in ("job", "task") else "job")
    cfg = config or load()
    path = str(cfg.path) if cfg.path else None
    with connect() as source:
        score = score_target(source, kind, target, store=store, settings_file=path)
        pushed = []
        issues, stages = cfg.server.cvat_push_issues, cfg.server.cvat_stage_policy
        if issues or stages:
            for r in score.tasks:
                pushed += push_task(source, r, issues=issues, stage_policy=stages)
    result = score.to_dict()
    result["pushed"] = pushed
    return result


def cvat_score_job(job: Job, store: Any = None) -> int:
    """One job of a fanned-out ``labelgate cvat score --queue`` run (see labelgate_cvat.fanout)."""
    from labelgate_cvat.client import connect
    from labelgate_cvat.fanout import score_job

    with connect() as source:
        return score_job(job.payload, source, store)


def handlers(store: Any = None, config: Config | None = None) -> dict[str, Callable[[Job], Any]]:
    """Job name → handler, bound to a report store and a configuration (default: loaded
    when a job runs)."""
    return {
        "labelstudio.rescore": lambda job: labelstudio_rescore(job, store, config),
        "cvat.rescore": lambda job: cvat_rescore(job, store, config),
        "cvat.score_job": lambda job: cvat_score_job(job, store),
    }
