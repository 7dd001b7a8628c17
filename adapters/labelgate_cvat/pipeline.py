"""Score CVAT jobs, tasks and projects the way CVAT's quality control does, then push back.

``score_target(source, "task", 10)`` pulls each task into one batch
(:class:`labelgate_cvat.source.CvatRunSource`: the GT job and every job the ``job_filter``
selects, on the active validation frames, honeypot placeholders paired with their real frames),
scores it with ONE :func:`~labelgate.run.run_quality` (each job compared once), and reads the
job reports, the task report (jobs summed) and the stored bundle from that run. Task reports sum
into the project report (tasks with custom settings left out, as CVAT does). In requirement mode
(CVAT 2.74+) every comparison is also scored requirement by requirement and the reports take
CVAT 2.74+'s shape. Push-back (:mod:`labelgate_cvat.pushback`) reads the same results.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from labelgate.engine import QualitySettings
from labelgate.engine.aggregate import project_report, task_report
from labelgate.engine.report import Report
from labelgate.engine.req_aggregate import project_requirement_report, task_requirement_report
from labelgate.engine.req_report import RequirementReport
from labelgate.errors import DataWarning, NotFound, ValidationError
from labelgate.io.fetch import Progress, map_ordered
from labelgate.io.gc_pause import gc_paused
from labelgate.model import AnnotationSet, Kind, LabelSchema
from labelgate.run import QualityRun, run_quality
from labelgate_cvat.payloads import cvat_job_to_annotations, schema_from_labels
from labelgate_cvat.versions import REPLICA_TYPES, REQUIREMENTS, check_quorum

if TYPE_CHECKING:
    from labelgate_cvat.source import TaskPull

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

    For the queue fan-out (:mod:`labelgate_cvat.fanout`), which scores with the 2.42 settings
    only: a 2.74+ row's requirements are not applied there, and a :class:`DataWarning` names
    them (scoring with 2.42 defaults without a word would disagree with the team's CVAT).
    :func:`score_target` applies them.

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


def task_result(run: QualityRun) -> TaskResult:
    """One task's job, task and requirement reports, all read from ``run`` (a pure function).

    Raises:
        ValidationError: the run was not pulled from CVAT.
    """
    from labelgate_cvat.source import task_pull

    pulled = task_pull(run)
    job_reports = {jid: run.comparisons[name].report for jid, name in pulled.annotators.items()}
    for rep in job_reports.values():
        rep.data["parameters"]["inherited"] = pulled.inherited
    report = task_report(list(job_reports.values())) if job_reports else None
    if report is not None:
        report.data["parameters"]["inherited"] = pulled.inherited
    job_reqs: dict[int, RequirementReport] = {}
    for jid, name in pulled.annotators.items():
        req = run.comparisons[name].requirements
        if req is not None:
            job_reqs[jid] = req
    requirements = (
        task_requirement_report(list(job_reqs.values()), excluded=pulled.excluded)
        if job_reqs
        else None
    )
    return TaskResult(pulled, run, job_reports, report, job_reqs, requirements)


@dataclasses.dataclass(frozen=True)
class TaskResult:
    """One task's scoring, read from its single quality run.

    Attributes:
        pull: what was pulled (task, jobs, sets, settings, semantics, tree).
        run: the quality run (one comparison per job, agreement once).
        job_reports: CVAT 2.42-shaped report per job id.
        report: the task's 2.42-shaped report (None: no job selected).
        job_requirements: requirement-mode report per job id (requirement mode only).
        requirements: the task's requirement-mode report (requirement mode only).
    """

    pull: TaskPull
    run: QualityRun
    job_reports: Mapping[int, Report]
    report: Report | None
    job_requirements: Mapping[int, RequirementReport]
    requirements: RequirementReport | None

    @property
    def task(self) -> Mapping[str, Any]:
        return self.pull.task

    @property
    def gt_job(self) -> Mapping[str, Any]:
        return self.pull.gt_job

    @property
    def jobs(self) -> Mapping[int, Mapping[str, Any]]:
        return self.pull.jobs

    @property
    def sets(self) -> Mapping[int, AnnotationSet]:
        return self.pull.sets

    @property
    def settings(self) -> QualitySettings:
        return self.pull.settings

    @property
    def inherited(self) -> bool:
        return self.pull.inherited

    @property
    def notes(self) -> tuple[str, ...]:
        return self.pull.notes

    @property
    def semantics(self) -> str:
        return self.pull.semantics

    def job_json(self, jid: int) -> dict[str, Any]:
        """A job's report JSON: requirement-shaped in requirement mode, else CVAT 2.42's."""
        req = self.job_requirements.get(jid)
        if req is None:
            return self.job_reports[jid].to_dict()
        return requirement_json(req, self.inherited)

    def task_json(self) -> dict[str, Any] | None:
        """The task report JSON in the run's semantics (None: nothing scored)."""
        if self.pull.semantics == REQUIREMENTS:
            req = self.requirements
            return requirement_json(req, self.inherited) if req is not None else None
        return self.report.to_dict() if self.report is not None else None

    def to_dict(self) -> dict[str, Any]:
        """``{"task", "gt_job", "inherited", "semantics", "notes", "report", "jobs"}``."""
        return {
            "task": {"id": self.task["id"], "name": self.task.get("name")},
            "gt_job": self.gt_job["id"],
            "inherited": self.inherited,
            "semantics": self.semantics,
            "notes": list(self.notes),
            "report": self.task_json(),
            "jobs": [
                {
                    "job": {k: self.jobs[jid].get(k) for k in ("id", "type", "stage", "state")}
                    | {"assignee": _username(self.jobs[jid])},
                    "report": self.job_json(jid),
                }
                for jid in self.job_reports
            ],
        }


def requirement_json(report: RequirementReport, inherited: bool | None = None) -> dict[str, Any]:
    """CVAT 2.74+'s report JSON plus ``parameters.inherited`` (as CVAT's ``/data`` has it)
    and ``conflicts``: each conflict once across requirements, as CVAT's conflict list stores
    them for a job report (the report pages and push-back read this list)."""
    data = report.to_dict()
    if inherited is not None:
        data["parameters"]["inherited"] = inherited
    data["conflicts"] = [dict(c) for c in report.unique_conflicts()]
    return data


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
    who: str | None = None,
) -> AnnotationSet:
    """A fetched job as an annotation set (annotator: ``who``, else ``ground_truth`` for the GT
    job, else its assignee or ``job <id>``)."""
    who = who or (GT_ANNOTATOR if gt else (_username(job) or f"job {job['id']}"))
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
    source: Any,
    job: Mapping[str, Any],
    schema: LabelSchema,
    *,
    gt: bool = False,
    who: str | None = None,
) -> AnnotationSet:
    """One job as an annotation set (annotator: ``who``, else ``ground_truth`` for the GT job,
    else its assignee or ``job <id>``)."""
    # One pause from the parse to the payload's release: resumed in between, the collector's
    # next young-generation pass walks every list and dict just parsed (~0.18 s for 200k
    # shapes), though none of them can be in a cycle.
    with gc_paused():
        return convert_job(source, job, schema, fetch_job(source, job), gt=gt, who=who)


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
    semantics: str | None = None,
    workers: int = 4,
    on_progress: Progress | None = None,
) -> TaskResult:
    """Score one task with ONE quality run: each selected job compared with the GT job once.

    Args:
        source: a :class:`~labelgate_cvat.client.CvatSource`.
        task_id: the task.
        settings_file: a TOML file layered over the CVAT settings (``[quality]``, or
            ``[[requirement]]`` tables that replace the server's requirement tree).
        overrides: CLI-level setting overrides (highest precedence).
        environ: environment for ``LABELGATE_<FIELD>`` settings (default ``os.environ``).
        only_job: score just this job (the filter is bypassed for it).
        semantics: ``cvat-2.42`` or ``cvat-requirements``; None: the file's tables, else
            the server's version (:func:`labelgate_cvat.source.choose_semantics`).
        workers: jobs downloaded at once (converted in job order as they arrive).
        on_progress: ``(description, done, total)`` after each job is read.

    Returns:
        The :class:`TaskResult`.

    Raises:
        NotFound: the task has no GT job.
    """
    from labelgate_cvat.source import CvatRunSource

    cvat = CvatRunSource(
        source,
        settings_file=settings_file,
        overrides=overrides,
        environ=environ,
        semantics=semantics,
        workers=workers,
        on_progress=on_progress,
    )
    batch = cvat.pull_task(task_id, only_job=only_job)
    return task_result(run_quality(batch, options=cvat.run_options(batch)))


@dataclasses.dataclass
class CvatScore:
    """A scored CVAT target: its tasks' runs and the project's aggregate.

    Attributes:
        target: ``<kind>:<id>``.
        server: the server's version and semantics (:func:`server_info`).
        semantics: which CVAT scoring ran (``cvat-2.42`` or ``cvat-requirements``).
        project_id: the target's project, if any.
        tasks: one :class:`TaskResult` per scored task.
        skipped: tasks of a project left out (no GT job), with the reason.
        project: the 2.42 project report (``project`` targets, 2.42 mode).
        project_requirements: the requirement-mode project report (weight 1 per task).
        report_ids: stored report ids by ``job:<id>``, ``task:<id>``, ``bundle:task:<id>``,
            ``project:<id>`` (filled by :func:`save_score`).
    """

    target: str
    server: Mapping[str, str]
    semantics: str
    project_id: int | None
    tasks: tuple[TaskResult, ...]
    skipped: tuple[Mapping[str, Any], ...] = ()
    project: Report | None = None
    project_requirements: RequirementReport | None = None
    report_ids: dict[str, str] = dataclasses.field(default_factory=dict)

    def project_json(self) -> dict[str, Any] | None:
        """The project report JSON in the run's semantics (None: not a project target)."""
        if self.project_requirements is not None:
            return requirement_json(self.project_requirements)
        return self.project.to_dict() if self.project is not None else None

    def to_dict(self) -> dict[str, Any]:
        """``{"target", "server", "semantics", "project_id", "tasks", "skipped", "project",
        "report_ids"}`` (reports requirement-shaped in requirement mode)."""
        return {
            "target": self.target,
            "server": dict(self.server),
            "semantics": self.semantics,
            "project_id": self.project_id,
            "tasks": [t.to_dict() for t in self.tasks],
            "skipped": [dict(s) for s in self.skipped],
            "project": self.project_json(),
            "report_ids": dict(self.report_ids),
        }


def score_target(
    source: Any,
    kind: str,
    target_id: int,
    *,
    settings_file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    store: Any = None,
    semantics: str | None = None,
    workers: int = 4,
    on_progress: Progress | None = None,
) -> CvatScore:
    """Score a CVAT ``project``, ``task`` or ``job`` and store job/task/project reports.

    Each task is one quality run (:func:`score_task`); the project report sums the task
    reports of tasks that inherit the project's settings (CVAT leaves custom ones out): with
    1/frame_share weights in 2.42 mode, weight 1 in requirement mode. ``workers`` and
    ``on_progress`` are passed to :func:`score_task` for each task.

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
                    semantics=semantics,
                    workers=workers,
                    on_progress=on_progress,
                )
            )
        except NotFound as exc:
            if kind != "project":
                raise
            warnings.warn(f"task {tid} skipped: {exc}", DataWarning, stacklevel=2)
            skipped.append({"task": tid, "reason": str(exc)})
    info = server_info(source)
    mode = results[0].semantics if results else info["semantics"]
    score = CvatScore(
        target=f"{kind}:{target_id}",
        server=info,
        semantics=mode,
        project_id=project_id,
        tasks=tuple(results),
        skipped=tuple(skipped),
    )
    if kind == "project":
        score = _with_project(score)
    if store is not None:
        save_score(store, score)
    return score


def _with_project(score: CvatScore) -> CvatScore:
    """The project aggregate: tasks inheriting the project's settings, as CVAT counts them."""
    inherited = [r for r in score.tasks if r.inherited]
    custom = len(score.tasks) - len(inherited)
    if score.semantics == REQUIREMENTS:
        reqs = [r.requirements for r in inherited if r.requirements is not None]
        excluded = len(inherited) - len(reqs)
        if not reqs:
            return score
        project = project_requirement_report(reqs, custom=custom, excluded=excluded)
        return dataclasses.replace(score, project_requirements=project)
    usable = [r.report for r in inherited if r.report is not None]
    return dataclasses.replace(score, project=project_report(usable) if usable else None)


def save_score(store: Any, score: CvatScore) -> None:
    """Store every job, task and project report of ``score`` and each task's bundle; the ids
    go to ``score.report_ids``."""
    key = f"cvat:{score.project_id}" if score.project_id is not None else None
    ids = score.report_ids
    for r in score.tasks:
        settings = r.settings.to_dict()
        for jid in r.job_reports:
            ids[f"job:{jid}"] = store.save_report(
                "cvat_job", "cvat", f"job:{jid}", r.job_json(jid), project=key, settings=settings
            )
        task_json = r.task_json()
        if task_json is not None:
            tid = r.task["id"]
            ids[f"task:{tid}"] = store.save_report(
                "cvat_task", "cvat", f"task:{tid}", task_json, project=key, settings=settings
            )
            if r.sets:
                ids[f"bundle:task:{tid}"] = _save_bundle(store, r)
    project = score.project_json()
    if project is not None:
        ids[f"project:{score.project_id}"] = store.save_report(
            "cvat_project", "cvat", f"project:{score.project_id}", project, project=key
        )


def _save_bundle(store: Any, r: TaskResult) -> str:
    """The same report bundle ``labelgate report`` builds, from the task's own run."""
    from labelgate.reporting.pipeline import bundle_for

    bundle = bundle_for(r.run, store=store)
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
