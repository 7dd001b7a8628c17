"""Score CVAT jobs, tasks and projects the way CVAT's quality control does, then push back.

``score_target(source, "task", 10)`` pulls the task's labels, jobs, validation layout and quality
settings, compares every job the ``job_filter`` selects with the GT job on the active validation
frames (honeypot placeholders paired with their real frames), sums job reports into the task
report and task reports into the project report (tasks with custom settings left out, as CVAT
does), stores them, and optionally writes issues and stage/state changes back
(:mod:`labelgate_cvat.pushback`). The CLI, the webhook worker and scripts all call this.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Mapping
from contextlib import closing
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from labelgate.engine import QualitySettings, compare
from labelgate.engine.aggregate import project_report, task_report
from labelgate.engine.job_filter import job_matches
from labelgate.engine.report import Report
from labelgate.engine.settings import resolve_settings
from labelgate.errors import DataWarning, NotFound, ValidationError
from labelgate.io.fetch import Progress, iter_ordered, map_ordered
from labelgate.io.gc_pause import gc_paused
from labelgate.model import AnnotationSet, Kind, LabelSchema
from labelgate_cvat.payloads import cvat_job_to_annotations, schema_from_labels
from labelgate_cvat.versions import REPLICA_TYPES, REQUIREMENTS, check_quorum

GT_ANNOTATOR = "ground_truth"
_log = logging.getLogger("labelgate.cvat")
_SETTING_FIELDS = set(QualitySettings.field_names())


def _username(job: Mapping[str, Any]) -> str | None:
    who = job.get("assignee")
    return who.get("username") if isinstance(who, Mapping) else who


def job_view(job: Mapping[str, Any], task: Mapping[str, Any]) -> dict[str, Any]:
    """The fields CVAT's ``job_filter`` can refer to."""
    return {
        "id": job["id"],
        "type": job.get("type"),
        "state": job.get("state"),
        "stage": job.get("stage"),
        "assignee": _username(job),
        "task_id": job.get("task_id"),
        "task_name": task.get("name"),
    }


@dataclasses.dataclass(frozen=True)
class SettingsRow:
    """The QualitySettings row a task is scored with, as CVAT serves it.

    Attributes:
        row: the raw row (the task's, or its project's when the task inherits).
        inherited: the project's row applies.
        flat: the 2.42 fields of the row labelgate applies (on a 2.74+ server only
            ``job_filter``, ``inherit`` and ``max_validations_per_job`` are left).
        requirements: the row's quality requirements (2.74+), raw list items: fields a child
            inherits are null; ``source.requirement(id)["effective"]`` has them resolved.
    """

    row: Mapping[str, Any]
    inherited: bool
    flat: dict[str, Any]
    requirements: tuple[Mapping[str, Any], ...]


def settings_row(source: Any, task: Mapping[str, Any]) -> SettingsRow:
    """The task's CVAT quality settings row, or its project's when the task inherits them."""
    row = source.quality_settings(task_id=task["id"]) or {}
    inherited = bool(row.get("inherit", True)) and task.get("project_id") is not None
    if inherited:
        row = source.quality_settings(project_id=task["project_id"]) or row
    flat = {k: v for k, v in row.items() if k in _SETTING_FIELDS and v is not None}
    reqs = row.get("requirements")
    if reqs is None and row.get("id") is not None and source.detected_semantics == REQUIREMENTS:
        # A 2.74+ row always has requirements; ask for them if the row does not list them.
        reqs = source.requirements(int(row["id"]))
        row = {**row, "requirements": reqs}
    requirements = (
        tuple(r for r in reqs if isinstance(r, Mapping)) if isinstance(reqs, list) else ()
    )
    return SettingsRow(row=row, inherited=inherited, flat=flat, requirements=requirements)


def effective_settings(source: Any, task: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The task's CVAT quality settings, or its project's when the task inherits them.

    A 2.74+ row's quality requirements are not applied yet: a :class:`DataWarning` names them
    (scoring them with 2.42 defaults without a word would disagree with the team's CVAT).

    Returns:
        (settings dict with only the fields labelgate knows, inherited?)
    """
    found = settings_row(source, task)
    if "requirements" in found.row:
        warnings.warn(unapplied_requirements(task, found), DataWarning, stacklevel=2)
    return found.flat, found.inherited


def unapplied_requirements(task: Mapping[str, Any], found: SettingsRow) -> str:
    """The warning for a requirement-shaped (2.74+) row scored with the 2.42 settings."""
    owner = f"project {task.get('project_id')}" if found.inherited else f"task {task['id']}"
    enabled = [r for r in found.requirements if r.get("enabled")]
    head = f"CVAT task {task['id']}: the quality settings of {owner} are quality requirements"
    tail = "labelgate scored with its CVAT 2.42 settings instead"
    if not enabled:
        return (
            f"{head}, all {len(found.requirements)} disabled (CVAT itself computes nothing for "
            f"this task); {tail}"
        )
    names = ", ".join(
        f"{r.get('name')!r} ({r.get('annotation_type') or 'inherited type'})" for r in enabled
    )
    return f"{head}; {len(enabled)} enabled requirement(s) NOT applied: {names}; {tail}"


def _active_frames(layout: Mapping[str, Any]) -> set[int]:
    return set(layout.get("validation_frames") or ()) - set(layout.get("disabled_frames") or ())


def restrict_gt(gt: AnnotationSet, layout: Mapping[str, Any]) -> AnnotationSet:
    """GT frames outside the active validation frames (disabled ones) are never compared."""
    if not layout.get("mode"):
        return gt
    active = _active_frames(layout)
    deleted = gt.items.deleted | ~np.isin(gt.items.id, list(active))
    return gt.replace(items=dataclasses.replace(gt.items, deleted=deleted))


def restrict_job(
    ds: AnnotationSet,
    gt: AnnotationSet,
    layout: Mapping[str, Any],
    job_layout: Mapping[str, Any] | None = None,
) -> AnnotationSet:
    """Keep only the frames CVAT compares for an annotation job.

    ``gt`` mode: the active validation frames. ``gt_pool`` mode: the honeypot placeholders
    whose real frame is active; each takes its real frame's name so it pairs with that GT
    frame. No layout: every frame, paired with GT frames by file name.
    """
    mode = layout.get("mode")
    if not mode:
        return ds
    items = ds.items
    active = _active_frames(layout)
    if mode == "gt":
        keep = np.isin(items.id, list(active))
        return ds.replace(items=dataclasses.replace(items, deleted=items.deleted | ~keep))
    source = job_layout or layout
    real = dict(
        zip(
            source.get("honeypot_frames") or (),
            source.get("honeypot_real_frames") or (),
            strict=True,
        )
    )
    gt_name = {int(i): str(n) for i, n in zip(gt.items.id, gt.items.name, strict=True)}
    names = items.name.copy()
    real_frame = np.full(len(items), -1, np.int64)
    keep = np.zeros(len(items), bool)
    for pos, fid in enumerate(items.id.tolist()):
        rf = real.get(fid)
        if rf is not None and rf in active and rf in gt_name:
            keep[pos] = True
            names[pos] = gt_name[rf]
            real_frame[pos] = rf
    return ds.replace(
        items=dataclasses.replace(
            items, name=names, real_frame=real_frame, deleted=items.deleted | ~keep
        )
    )


@dataclasses.dataclass
class TaskResult:
    """One task's scoring: job reports (by job id), the task report, and what was skipped."""

    task: dict[str, Any]
    gt_job: dict[str, Any]
    jobs: dict[int, dict[str, Any]]
    job_reports: dict[int, Report]
    report: Report | None
    settings: QualitySettings
    inherited: bool
    sets: dict[int, AnnotationSet]
    gt: AnnotationSet
    notes: list[str]


def _public_host(source: Any) -> str | None:
    """The CVAT server's URL without credentials (links in reports must not carry them)."""
    config = getattr(getattr(source, "api", None), "configuration", None)
    host = getattr(config, "host", None)
    if not isinstance(host, str) or not host:
        return None
    parts = urlsplit(host)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


@dataclasses.dataclass(frozen=True)
class JobPayload:
    """What one job's conversion reads from the server (raw JSON, fetched together)."""

    annotations: dict[str, Any]
    meta: dict[str, Any]
    layout: dict[str, Any] | None = None  # the job's validation layout (gt_pool tasks only)


def fetch_job(source: Any, job: Mapping[str, Any], *, layout: bool = False) -> JobPayload:
    """One job's annotations and frame list (and its validation layout when ``layout``),
    requested at once: the small answers arrive while the big one downloads."""
    jid = job["id"]
    calls = [source.annotations, source.meta] + ([source.job_validation_layout] if layout else [])
    answers = map_ordered(lambda call: call(jid), calls, workers=len(calls))
    return JobPayload(answers[0], answers[1], answers[2] if layout else None)


def convert_job(
    source: Any,
    job: Mapping[str, Any],
    schema: LabelSchema,
    payload: JobPayload,
    *,
    gt: bool = False,
) -> AnnotationSet:
    """A fetched job as an annotation set (annotator: its assignee, or ``ground_truth``)."""
    who = GT_ANNOTATOR if gt else (_username(job) or f"job {job['id']}")
    host = _public_host(source)
    with gc_paused():
        return cvat_job_to_annotations(
            payload.annotations,
            payload.meta,
            schema,
            annotator=who,
            job={**job, "host": host} if host else job,
            name=f"job {job['id']}",
        )


def pull_job(
    source: Any, job: Mapping[str, Any], schema: LabelSchema, *, gt: bool = False
) -> AnnotationSet:
    """One job as an annotation set (annotator: its assignee, or ``ground_truth``)."""
    return convert_job(source, job, schema, fetch_job(source, job), gt=gt)


def intervals_not_scored(aset: AnnotationSet, where: str) -> list[str]:
    """The note for audio intervals read but not compared (CVAT 2.80 has no audio QC)."""
    n = int(np.count_nonzero(aset.annotations.kind == Kind.INTERVAL))
    if not n:
        return []
    return [f"{where}: {n} intervals not scored (audio quality control is not implemented)"]


def server_info(source: Any) -> dict[str, str]:
    """The server's version and the quality semantics it implies (logged once per run)."""
    version = source.server_version
    info = {"version": str(version), "semantics": version.semantics}
    _log.info("CVAT server %s: %s semantics detected", info["version"], info["semantics"])
    return info


def score_task(
    source: Any,
    task_id: int,
    *,
    settings_file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    only_job: int | None = None,
    workers: int = 4,
    on_progress: Progress | None = None,
) -> TaskResult:
    """Compare every selected job of a task with its GT job.

    Args:
        source: a :class:`~labelgate_cvat.client.CvatSource`.
        task_id: the task.
        settings_file: a TOML file layered over the CVAT settings.
        overrides: CLI-level setting overrides (highest precedence).
        environ: environment for ``LABELGATE_<FIELD>`` settings (default ``os.environ``).
        only_job: score just this job (the filter is bypassed for it).
        workers: jobs downloaded at once (each is converted and compared as soon as it and
            the jobs before it have arrived, in job order).
        on_progress: ``(description, done, total)`` after each job is scored.

    Returns:
        The :class:`TaskResult`.

    Raises:
        NotFound: the task has no GT job.
    """
    task = source.task(task_id)
    schema = schema_from_labels(source.labels(task_id=task_id))
    jobs = source.jobs(task_id)
    cvat_settings, inherited = effective_settings(source, task)
    settings = resolve_settings(cvat_settings, settings_file, environ, overrides)
    gt_jobs = [j for j in jobs if j.get("type") == "ground_truth"]
    if not gt_jobs:
        raise NotFound(
            f"CVAT task {task_id} has no ground_truth job; create one (or a honeypot pool) to "
            "score it"
        )
    gt_job = gt_jobs[0]
    notes = []
    if (gt_job.get("stage"), gt_job.get("state")) != ("acceptance", "completed"):
        # CVAT refuses to compute a report in this case; labelgate scores and says so.
        notes.append(
            f"GT job {gt_job['id']} is {gt_job.get('stage')}/{gt_job.get('state')}, not "
            "acceptance/completed: CVAT itself would refuse this report"
        )
    layout = source.task_validation_layout(task_id)
    selected = [
        j
        for j in jobs
        if j.get("type") != "ground_truth"
        and (
            j["id"] == only_job
            if only_job is not None
            else job_matches(settings.job_filter, job_view(j, task))
        )
    ]
    pool_mode = layout.get("mode") == "gt_pool"
    what, total = f"scoring task {task_id}", len(selected) + 1
    job_reports: dict[int, Report] = {}
    sets: dict[int, AnnotationSet] = {}
    with closing(
        iter_ordered(
            lambda j: fetch_job(source, j, layout=pool_mode and j is not gt_job),
            [gt_job, *selected],
            workers=workers,
        )
    ) as payloads:
        if on_progress is not None:
            on_progress(what, 0, total)
        gt = restrict_gt(convert_job(source, gt_job, schema, next(payloads), gt=True), layout)
        notes += intervals_not_scored(gt, f"GT job {gt_job['id']}")
        for n, (job, payload) in enumerate(zip(selected, payloads, strict=True), 1):
            if on_progress is not None:
                on_progress(what, n, total)
            ds = restrict_job(convert_job(source, job, schema, payload), gt, layout, payload.layout)
            sets[job["id"]] = ds
            notes += intervals_not_scored(ds, f"job {job['id']}")
            job_reports[job["id"]] = compare(gt, ds, settings)
            job_reports[job["id"]].data["parameters"]["inherited"] = inherited
    if on_progress is not None:
        on_progress(what, total, total)
    report = task_report(list(job_reports.values())) if job_reports else None
    if report is not None:
        report.data["parameters"]["inherited"] = inherited
    return TaskResult(
        task=task,
        gt_job=gt_job,
        jobs={j["id"]: j for j in selected},
        job_reports=job_reports,
        report=report,
        settings=settings,
        inherited=inherited,
        sets=sets,
        gt=gt,
        notes=notes,
    )


def score_target(
    source: Any,
    kind: str,
    target_id: int,
    *,
    settings_file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    store: Any = None,
    workers: int = 4,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Score a CVAT ``project``, ``task`` or ``job`` and store job/task/project reports.

    ``workers`` and ``on_progress`` are passed to :func:`score_task` for each task.

    Returns:
        ``{"target", "tasks": [{"task", "report", "jobs": [{"job", "report"}], "notes"}],
        "project": report | None, "report_ids": {...}}`` plus the live :class:`TaskResult`
        objects under ``"_results"`` for push-back.

    Raises:
        ValidationError: unknown kind.
        NotFound: the target or its GT job does not exist.
    """
    if kind not in ("project", "task", "job"):
        raise ValidationError(f"CVAT target kind must be project, task or job, not {kind!r}")
    only_job = None
    if kind == "project":
        tasks = [t["id"] for t in source.tasks(target_id)]
        project_id: int | None = target_id
    elif kind == "task":
        tasks = [target_id]
        project_id = source.task(target_id).get("project_id")
    else:
        job = source.job(target_id)
        tasks, only_job, project_id = [job["task_id"]], target_id, job.get("project_id")
    results: list[TaskResult] = []
    skipped: list[dict[str, Any]] = []
    for tid in tasks:
        try:
            results.append(
                score_task(
                    source,
                    tid,
                    settings_file=settings_file,
                    overrides=overrides,
                    environ=environ,
                    only_job=only_job,
                    workers=workers,
                    on_progress=on_progress,
                )
            )
        except NotFound as exc:
            if kind != "project":
                raise
            warnings.warn(f"task {tid} skipped: {exc}", DataWarning, stacklevel=2)
            skipped.append({"task": tid, "reason": str(exc)})
    usable = [r.report for r in results if r.report is not None and r.inherited]
    project = project_report(usable) if kind == "project" and usable else None
    out: dict[str, Any] = {
        "target": f"{kind}:{target_id}",
        "server": server_info(source),
        "project_id": project_id,
        "tasks": [_task_json(r) for r in results],
        "skipped": skipped,
        "project": project.to_dict() if project is not None else None,
        "report_ids": {},
        "_results": results,
    }
    if store is not None:
        _save(store, out, results, project, project_id)
    return out


def _task_json(r: TaskResult) -> dict[str, Any]:
    return {
        "task": {"id": r.task["id"], "name": r.task.get("name")},
        "gt_job": r.gt_job["id"],
        "inherited": r.inherited,
        "notes": r.notes,
        "report": r.report.to_dict() if r.report is not None else None,
        "jobs": [
            {
                "job": {k: r.jobs[jid].get(k) for k in ("id", "type", "stage", "state")}
                | {"assignee": _username(r.jobs[jid])},
                "report": rep.to_dict(),
            }
            for jid, rep in r.job_reports.items()
        ],
    }


def _save(
    store: Any,
    out: dict[str, Any],
    results: list[TaskResult],
    project: Report | None,
    project_id: int | None,
) -> None:
    key = f"cvat:{project_id}" if project_id is not None else None
    ids = out["report_ids"]
    for r in results:
        settings = r.settings.to_dict()
        for jid, rep in r.job_reports.items():
            ids[f"job:{jid}"] = store.save_report(
                "cvat_job", "cvat", f"job:{jid}", rep.to_dict(), project=key, settings=settings
            )
        if r.report is not None:
            tid = r.task["id"]
            ids[f"task:{tid}"] = store.save_report(
                "cvat_task",
                "cvat",
                f"task:{tid}",
                r.report.to_dict(),
                project=key,
                settings=settings,
            )
            if r.sets:
                ids[f"bundle:task:{tid}"] = _save_bundle(store, r, key or f"cvat:task:{tid}")
    if project is not None:
        ids[f"project:{project_id}"] = store.save_report(
            "cvat_project", "cvat", f"project:{project_id}", project.to_dict(), project=key
        )


def _save_bundle(store: Any, r: TaskResult, project: str) -> str:
    """The same report bundle ``labelgate report`` builds (scorecards, per label, alerts)."""
    from labelgate.reporting.pipeline import build_bundle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # already reported per job
        bundle = build_bundle(r.gt, list(r.sets.values()), r.settings, store=store, project=project)
    return str(bundle["report_id"])


def merge_consensus(
    source: Any,
    task_id: int,
    *,
    quorum: float | None = None,
    iou_threshold: float | None = None,
    method: str = "cvat",
) -> list[dict[str, Any]]:
    """Merge each job's consensus replicas and write the result into the parent job.

    Like CVAT's consensus merge, the parent job's annotations are replaced (a PUT), so running
    it again gives the same parent annotations. Replicas are jobs of type ``replica`` (CVAT
    2.80+) or ``consensus_replica`` (before). Unset ``quorum`` / ``iou_threshold`` come from the
    task's consensus settings on the server (a 2.56+ server has no quorum: 0.5 is used).

    Returns:
        One entry per parent job: ``{"job", "replicas", "shapes", "tags"}``.

    Raises:
        ValidationError: ``quorum`` given for a 2.56+ server, which removed it.
    """
    from labelgate.consensus import merge
    from labelgate.model.annotation_set import combine
    from labelgate_cvat.writeback import annotations_to_cvat

    quorum, iou_threshold = consensus_parameters(source, task_id, quorum, iou_threshold)
    schema = schema_from_labels(source.labels(task_id=task_id))
    replicas: dict[int, list[dict[str, Any]]] = {}
    for job in source.jobs(task_id):
        if job.get("type") in REPLICA_TYPES and job.get("parent_job_id") is not None:
            replicas.setdefault(int(job["parent_job_id"]), []).append(job)
    out = []
    for parent, reps in sorted(replicas.items()):
        sets = []
        for rep in sorted(reps, key=lambda j: j["id"]):
            part = pull_job(source, rep, schema)
            who = f"{_username(rep) or 'replica'}#{rep['id']}"
            subs = tuple(dataclasses.replace(x, annotator=who) for x in part.submissions)
            ann = part.annotations.with_columns(annotators=(who,))
            sets.append(part.replace(annotations=ann, submissions=subs))
        merged = merge(combine(sets), quorum=quorum, iou_threshold=iou_threshold, method=method)
        payload = annotations_to_cvat(merged)
        source.put_annotations(parent, payload)
        out.append(
            {
                "job": parent,
                "replicas": [r["id"] for r in reps],
                "shapes": len(payload["shapes"]),
                "tags": len(payload["tags"]),
            }
        )
    return out


#: CVAT's consensus defaults (quorum until 2.56).
DEFAULT_QUORUM, DEFAULT_CONSENSUS_IOU = 0.5, 0.4


def consensus_parameters(
    source: Any, task_id: int, quorum: float | None, iou_threshold: float | None
) -> tuple[float, float]:
    """(quorum, iou_threshold) for a task's merge: the caller's, else the server's settings.

    Raises:
        ValidationError: ``quorum`` given for a server that removed it (2.56+).
    """
    check_quorum(source.server_version, quorum)
    row = source.consensus_settings(task_id) or {}
    if quorum is None:
        quorum = float(row.get("quorum") or DEFAULT_QUORUM)
    if iou_threshold is None:
        iou_threshold = float(row.get("iou_threshold") or DEFAULT_CONSENSUS_IOU)
    return quorum, iou_threshold
