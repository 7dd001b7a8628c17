"""The CVAT side of a quality run: a task pulled into one :class:`~labelgate.run_sources.Batch`.

:class:`CvatRunSource` implements the core ``Source``/``PushingSource`` protocols over the SDK
client (:class:`labelgate_cvat.client.CvatSource`): ``pull`` reads a task's labels, jobs,
validation layout and settings and returns one multi-annotator batch (the GT job as
``ground_truth``, one annotator per selected job); :func:`labelgate.run.run_quality` scores it
once; ``push`` writes issues and stage changes back from that run.

Which CVAT scoring is reproduced (:func:`choose_semantics`): ``--semantics`` when given, else
a settings file with ``[[requirement]]`` tables selects requirement mode, else the server's
version decides. In requirement mode the tree is the file's tables, else the task's (or its
project's) requirement rows on the server.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from contextlib import closing
from typing import TYPE_CHECKING, Any

from labelgate.config import Config, load
from labelgate.engine.job_filter import job_matches
from labelgate.engine.requirements import RequirementTree, Semantics, tree_for
from labelgate.engine.settings import QualitySettings
from labelgate.errors import DataWarning, NotFound, ValidationError
from labelgate.io.fetch import Progress, iter_ordered
from labelgate.io.gc_pause import gc_paused
from labelgate.model import AnnotationSet
from labelgate.run import RunOptions
from labelgate.run_sources import Batch, Target, as_ground_truth
from labelgate_cvat.payloads import schema_from_labels
from labelgate_cvat.pipeline import (
    GT_ANNOTATOR,
    SettingsRow,
    convert_job,
    fetch_job,
    intervals_not_scored,
    job_view,
    restrict_gt,
    restrict_job,
    settings_row,
)
from labelgate_cvat.versions import LEGACY, REQUIREMENTS

if TYPE_CHECKING:
    from labelgate.run import QualityRun


@dataclasses.dataclass(frozen=True)
class TaskPull:
    """What the source pulled for one task (the batch's ``handle``).

    Attributes:
        task, gt_job: CVAT's task and GT job.
        jobs: the selected annotation jobs by id.
        annotators: each selected job's annotator name in the batch.
        sets: each selected job's annotations, restricted to the compared frames.
        gt: the GT job's annotations on the active validation frames.
        settings: the flat settings (2.42 mode: all of them; requirement mode: job_filter,
            max_validations_per_job and the fields requirements do not carry).
        inherited: the project's settings row applies.
        excluded: annotation jobs the job filter left out.
        semantics: ``cvat-2.42`` or ``cvat-requirements``.
        tree: the requirement tree (requirement mode only).
    """

    task: Mapping[str, Any]
    gt_job: Mapping[str, Any]
    jobs: Mapping[int, Mapping[str, Any]]
    annotators: Mapping[int, str]
    sets: Mapping[int, AnnotationSet]
    gt: AnnotationSet
    settings: QualitySettings
    inherited: bool
    excluded: int
    notes: tuple[str, ...]
    semantics: Semantics
    tree: RequirementTree | None = None


def choose_semantics(client: Any, config: Config, flag: str | None) -> Semantics:
    """The flag, else requirement mode for a file with ``[[requirement]]`` tables, else the
    server's semantics.

    Raises:
        ValidationError: an unknown flag value, or ``cvat-2.42`` with requirement tables.
    """
    if flag is not None:
        if flag not in (LEGACY, REQUIREMENTS):
            raise ValidationError(f"--semantics {flag!r}; expected {LEGACY} or {REQUIREMENTS}")
        if flag == LEGACY and config.requirements:
            # Silently dropping the file's requirements would score something else than asked.
            raise ValidationError(
                f"{config.path}: [[requirement]] tables are scored in {REQUIREMENTS} mode; "
                f"drop --semantics {LEGACY} or the tables"
            )
        return LEGACY if flag == LEGACY else REQUIREMENTS
    if config.requirements:
        return REQUIREMENTS
    return REQUIREMENTS if client.detected_semantics == REQUIREMENTS else LEGACY


def requirement_tree(
    task: Mapping[str, Any], row: SettingsRow, config: Config, settings: QualitySettings
) -> RequirementTree:
    """The tree a task is scored with in requirement mode: the file's tables override the
    server's rows; with neither, every base requirement at CVAT's stock defaults (warned).

    A tree with every requirement disabled warns: CVAT computes nothing for such a task.
    """
    if config.requirements:
        tree = RequirementTree.from_tables(config.requirements, str(config.path or "settings"))
    elif row.requirements:
        tree = RequirementTree.from_cvat(row.requirements)
    else:
        tree = tree_for(REQUIREMENTS, settings=settings)
    if not tree.enabled():
        owner = f"project {task.get('project_id')}" if row.inherited else f"task {task['id']}"
        warnings.warn(
            f"CVAT task {task['id']}: the quality requirements of {owner} are all "
            f"{len(tree)} disabled (CVAT itself computes nothing for this task): no "
            "requirement is scored",
            DataWarning,
            stacklevel=2,
        )
    return dataclasses.replace(tree, base=settings)


def _annotator_names(jobs: list[Mapping[str, Any]]) -> dict[int, str]:
    """Each job's annotator: its assignee, or ``job <id>``; an assignee with several selected
    jobs gets ``<name> (job <id>)`` per job (each job is one comparison)."""
    base = {int(j["id"]): pull_job_name(j) for j in jobs}
    counts: dict[str, int] = {}
    for name in base.values():
        counts[name] = counts.get(name, 0) + 1
    return {jid: name if counts[name] == 1 else f"{name} (job {jid})" for jid, name in base.items()}


def pull_job_name(job: Mapping[str, Any]) -> str:
    """A job's annotator name before de-duplication: its assignee, or ``job <id>``."""
    who = job.get("assignee")
    name = who.get("username") if isinstance(who, Mapping) else who
    return str(name) if name else f"job {job['id']}"


@dataclasses.dataclass
class CvatRunSource:
    """A CVAT server as a quality-run source (see the module docstring).

    Attributes:
        client: the SDK client wrapper (:class:`labelgate_cvat.client.CvatSource`).
        settings_file: a TOML file layered over the CVAT settings (``[quality]`` or
            ``[[requirement]]`` tables).
        overrides: setting overrides by field name (highest precedence).
        environ: environment for ``LABELGATE_<FIELD>`` settings (default ``os.environ``).
        semantics: ``cvat-2.42`` / ``cvat-requirements``; None: see :func:`choose_semantics`.
        issues, per_frame, stage_policy: what :meth:`push` writes back.
        workers: jobs downloaded at once (converted in job order as they arrive).
        on_progress: ``(description, done, total)`` as jobs are read.
    """

    client: Any
    settings_file: str | None = None
    overrides: Mapping[str, Any] | None = None
    environ: Mapping[str, str] | None = None
    semantics: str | None = None
    issues: bool = False
    per_frame: bool = False
    stage_policy: bool = False
    workers: int = 4
    on_progress: Progress | None = None

    @property
    def system(self) -> str:
        return "cvat"

    def pull(self, target: Target | None, settings: QualitySettings | None = None) -> Batch:
        """One task's batch (``target`` kind ``task``, or ``job``: that job of its task).

        Raises:
            ValidationError: no target, or a kind other than task or job.
            NotFound: the task has no GT job.
        """
        if target is None or target.kind not in ("task", "job"):
            raise ValidationError(f"CVAT pulls a task or a job, not {target}")
        if target.kind == "job":
            job = self.client.job(int(target.id))
            return self.pull_task(int(job["task_id"]), only_job=int(target.id), settings=settings)
        return self.pull_task(int(target.id), settings=settings)

    def pull_task(
        self, task_id: int, *, only_job: int | None = None, settings: QualitySettings | None = None
    ) -> Batch:
        """The task's batch; ``only_job`` scores just that job (the job filter is bypassed).

        Raises:
            NotFound: the task has no GT job.
        """
        client = self.client
        task = client.task(task_id)
        schema = schema_from_labels(client.labels(task_id=task_id))
        jobs = client.jobs(task_id)
        gt_jobs = [j for j in jobs if j.get("type") == "ground_truth"]
        if not gt_jobs:
            raise NotFound(
                f"CVAT task {task_id} has no ground_truth job; create one (or a honeypot pool) "
                "to score it"
            )
        row = settings_row(client, task)
        config = load(self.settings_file, environ=self.environ, flags=self.overrides)
        flat = settings or config.settings(row.flat)
        semantics = choose_semantics(client, config, self.semantics)
        tree = requirement_tree(task, row, config, flat) if semantics == REQUIREMENTS else None
        gt_job = gt_jobs[0]
        notes = []
        if (gt_job.get("stage"), gt_job.get("state")) != ("acceptance", "completed"):
            # CVAT refuses to compute a report in this case; labelgate scores and says so.
            notes.append(
                f"GT job {gt_job['id']} is {gt_job.get('stage')}/{gt_job.get('state')}, not "
                "acceptance/completed: CVAT itself would refuse this report"
            )
        layout = client.task_validation_layout(task_id)
        candidates = [j for j in jobs if j.get("type") != "ground_truth"]
        selected = [
            j
            for j in candidates
            if (
                j["id"] == only_job
                if only_job is not None
                else job_matches(flat.job_filter, job_view(j, task))
            )
        ]
        names = _annotator_names(selected)
        sets: dict[int, AnnotationSet] = {}
        pool_mode = layout.get("mode") == "gt_pool"
        what, total = f"scoring task {task_id}", len(selected) + 1
        progress = self.on_progress
        # Jobs download concurrently; each is converted in job order as soon as it and the jobs
        # before it have arrived, so warnings and rows come out as a serial pull gives them.
        # The collector stays paused until the last payload is released (see pull_job).
        with (
            gc_paused(),
            closing(
                iter_ordered(
                    lambda j: fetch_job(client, j, layout=pool_mode and j is not gt_job),
                    [gt_job, *selected],
                    workers=self.workers,
                )
            ) as payloads,
        ):
            if progress is not None:
                progress(what, 0, total)
            gt = restrict_gt(convert_job(client, gt_job, schema, next(payloads), gt=True), layout)
            notes += intervals_not_scored(gt, f"GT job {gt_job['id']}")
            for n, (job, payload) in enumerate(zip(selected, payloads, strict=True), 1):
                if progress is not None:
                    progress(what, n, total)
                part = convert_job(client, job, schema, payload, who=names[int(job["id"])])
                sets[int(job["id"])] = restrict_job(part, gt, layout, payload.layout)
                notes += intervals_not_scored(sets[int(job["id"])], f"job {job['id']}")
                del payload  # released while the collector is still paused
        if progress is not None:
            progress(what, total, total)
        pulled = TaskPull(
            task=task,
            gt_job=gt_job,
            jobs={int(j["id"]): j for j in selected},
            annotators=names,
            sets=sets,
            gt=gt,
            settings=flat,
            inherited=row.inherited,
            excluded=0 if only_job is not None else len(candidates) - len(selected),
            notes=tuple(notes),
            semantics=semantics,
            tree=tree,
        )
        project = f"cvat:{task['project_id']}" if task.get("project_id") else f"cvat:task:{task_id}"
        if sets:
            batch = Batch.of_parts(gt, list(sets.values()), flat, project=project)
        else:  # nothing selected: a batch of GT alone compares nobody
            batch = Batch.of_set(as_ground_truth(gt), flat, project=project)
        target = Target("cvat", "task", str(task_id))
        return dataclasses.replace(batch, target=target, handle=pulled)

    @staticmethod
    def run_options(batch: Batch) -> RunOptions:
        """What :func:`~labelgate.run.run_quality` must compute for a pulled CVAT batch: the
        requirement tree in requirement mode (the batch alone does not carry it)."""
        handle = batch.handle
        return RunOptions(requirements=handle.tree if isinstance(handle, TaskPull) else None)

    def parse_event(self, event: Mapping[str, Any]) -> Target | None:
        """The task or job a CVAT webhook body asks to re-score (None: not a re-score).

        Raises:
            FormatError: a malformed body.
        """
        from labelgate_cvat.events import event_target

        return event_target(event)

    def push(self, run: QualityRun) -> Mapping[str, Any]:
        """Issues and/or stage changes for every job of the run (``{"pushed": [...]}``).

        Raises:
            ValidationError: a requirement-mode pull scored without its tree
                (run it with :meth:`run_options`).
        """
        from labelgate_cvat.pipeline import task_result
        from labelgate_cvat.pushback import push_task

        pulled = task_pull(run)
        if pulled.tree is not None and any(
            c.requirements is None for c in run.comparisons.values()
        ):
            raise ValidationError(
                f"CVAT task {pulled.task['id']} was pulled in requirement mode but scored "
                "without its requirements: run_quality(batch, options=CvatRunSource."
                "run_options(batch))"
            )
        entries = push_task(
            self.client,
            task_result(run),
            issues=self.issues,
            per_frame=self.per_frame,
            stage_policy=self.stage_policy,
        )
        return {"pushed": entries}


def task_pull(run: QualityRun) -> TaskPull:
    """The CVAT pull a run scored.

    Raises:
        ValidationError: the run's batch did not come from :class:`CvatRunSource`.
    """
    handle = run.batch.handle
    if not isinstance(handle, TaskPull):
        raise ValidationError(f"run of {run.batch.target} was not pulled from CVAT")
    return handle


__all__ = [
    "GT_ANNOTATOR",
    "CvatRunSource",
    "TaskPull",
    "choose_semantics",
    "requirement_tree",
    "task_pull",
]
