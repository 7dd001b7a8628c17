"""Fan a large CVAT scoring run out over queue workers and aggregate their job reports.

``labelgate cvat score --project 7 --queue URL`` plans the run here (which jobs of which tasks,
with which settings), enqueues one ``cvat.score_job`` per job, and waits while any number of
``labelgate worker`` processes (on any machine that reaches CVAT and the shared report store)
each score one job and store its report under a run-specific key. The job reports are then read
back and summed into task and project reports exactly as a local run does. A job that is
retried after a worker died overwrites its keyed report, so nothing is counted twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from labelgate.engine.aggregate import project_report, task_report
from labelgate.engine.job_filter import job_matches
from labelgate.engine.report import Report
from labelgate.engine.settings import QualitySettings, resolve_settings
from labelgate.errors import ConnectionFailed, NotFound
from labelgate_cvat.payloads import schema_from_labels
from labelgate_cvat.pipeline import (
    effective_settings,
    job_view,
    pull_job,
    restrict_gt,
    restrict_job,
)

JOB_NAME = "cvat.score_job"


def plan(
    source: Any,
    kind: str,
    target_id: int,
    *,
    settings_file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Which jobs a run scores: one entry per task with its GT job, settings and jobs."""
    if kind == "project":
        tasks = [t["id"] for t in source.tasks(target_id)]
    elif kind == "task":
        tasks = [target_id]
    else:
        tasks = [source.job(target_id)["task_id"]]
    out = []
    for tid in tasks:
        task = source.task(tid)
        jobs = source.jobs(tid)
        cvat_settings, inherited = effective_settings(source, task)
        settings = resolve_settings(cvat_settings, settings_file, None, overrides)
        gt = [j for j in jobs if j.get("type") == "ground_truth"]
        if not gt:
            continue
        chosen = [
            j["id"]
            for j in jobs
            if j.get("type") != "ground_truth"
            and (
                j["id"] == target_id
                if kind == "job"
                else job_matches(settings.job_filter, job_view(j, task))
            )
        ]
        out.append(
            {
                "task": tid,
                "project": task.get("project_id"),
                "gt_job": gt[0]["id"],
                "inherited": inherited,
                "settings": settings.to_dict(),
                "jobs": chosen,
            }
        )
    return out


def score_job(payload: Mapping[str, Any], source: Any, store: Any) -> int:
    """Worker side: score one job of a planned run and store its report under the run key."""
    task = int(payload["task"])
    schema = schema_from_labels(source.labels(task_id=task))
    layout = source.task_validation_layout(task)
    gt = restrict_gt(pull_job(source, source.job(int(payload["gt_job"])), schema, gt=True), layout)
    job = source.job(int(payload["job"]))
    job_layout = (
        source.job_validation_layout(job["id"]) if layout.get("mode") == "gt_pool" else None
    )
    ds = restrict_job(pull_job(source, job, schema), gt, layout, job_layout)
    from labelgate.engine import compare

    report = compare(gt, ds, QualitySettings.from_mapping(payload["settings"]))
    report.data["parameters"]["inherited"] = bool(payload.get("inherited"))
    project = payload.get("project")
    return int(
        store.save_report(
            "cvat_job",
            "cvat",
            f"job:{job['id']}",
            report.to_dict(),
            project=f"cvat:{project}" if project is not None else None,
            settings=payload["settings"],
            key=f"run:{payload['run']}:job:{job['id']}",
        )
    )


def run(
    source: Any,
    queue: Any,
    store: Any,
    kind: str,
    target_id: int,
    *,
    settings_file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    timeout: float = 3600.0,
    poll: float = 0.5,
) -> dict[str, Any]:
    """Enqueue every planned job, wait for the workers, aggregate and store task/project reports.

    Returns:
        ``{"run", "target", "tasks": [{"task", "report", "jobs": {id: report}}], "project"}``.

    Raises:
        NotFound: nothing to score.
        ConnectionFailed: the workers did not finish within ``timeout`` (names the jobs left).
    """
    tasks = plan(source, kind, target_id, settings_file=settings_file, overrides=overrides)
    if not any(t["jobs"] for t in tasks):
        raise NotFound(f"CVAT {kind} {target_id}: no job to score (no GT job or none selected)")
    run_id = uuid.uuid4().hex[:12]
    for t in tasks:
        for jid in t["jobs"]:
            payload = {**{k: t[k] for k in ("task", "project", "gt_job", "inherited", "settings")}}
            queue.enqueue(
                JOB_NAME, "cvat", f"run:{run_id}:job:{jid}", {**payload, "job": jid, "run": run_id}
            )
    wanted = {f"run:{run_id}:job:{jid}": (t["task"], jid) for t in tasks for jid in t["jobs"]}
    found: dict[str, Report] = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(wanted):
        for key in wanted.keys() - found.keys():
            row = store.find_key(key)
            if row is not None:
                found[key] = Report.from_dict(row.report)
        if len(found) < len(wanted):
            if time.monotonic() > deadline:
                left = sorted(jid for key, (_t, jid) in wanted.items() if key not in found)
                raise ConnectionFailed(
                    f"run {run_id}: workers did not score jobs {left} within {timeout:.0f} s; "
                    "is a `labelgate worker` running on this queue and store?"
                )
            time.sleep(poll)
    out_tasks = []
    task_reports = []
    for t in tasks:
        jobs = {jid: found[f"run:{run_id}:job:{jid}"] for jid in t["jobs"]}
        rep = task_report(list(jobs.values())) if jobs else None
        if rep is not None:
            rep.data["parameters"]["inherited"] = t["inherited"]
            if t["inherited"]:
                task_reports.append(rep)
            project = t["project"]
            store.save_report(
                "cvat_task",
                "cvat",
                f"task:{t['task']}",
                rep.to_dict(),
                project=f"cvat:{project}" if project is not None else None,
                settings=t["settings"],
                key=f"run:{run_id}:task:{t['task']}",
            )
        out_tasks.append(
            {
                "task": t["task"],
                "report": rep.to_dict() if rep is not None else None,
                "jobs": {jid: r.to_dict() for jid, r in jobs.items()},
            }
        )
    proj = project_report(task_reports) if kind == "project" and task_reports else None
    if proj is not None:
        store.save_report(
            "cvat_project",
            "cvat",
            f"project:{target_id}",
            proj.to_dict(),
            project=f"cvat:{target_id}",
            key=f"run:{run_id}:project:{target_id}",
        )
    return {
        "run": run_id,
        "target": f"{kind}:{target_id}",
        "tasks": out_tasks,
        "project": proj.to_dict() if proj is not None else None,
    }
