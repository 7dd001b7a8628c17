"""Label Studio as a quality-run source: pull a project into a batch, push a run's results back.

:class:`ProjectSource` implements :class:`labelgate.run_sources.PushingSource` over the SDK
wrapper (:class:`labelgate_labelstudio.client.LabelStudioSource`, kept under its old name
because every caller and test holds that client). Everything pushed is a pure function of the
:class:`~labelgate.run.QualityRun` (:mod:`labelgate_labelstudio.pipeline`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labelgate.engine import QualitySettings
from labelgate.errors import ValidationError
from labelgate.run import ConsensusOptions, RunOptions
from labelgate.run_sources import Batch, Target
from labelgate_labelstudio.client import CONSENSUS_MODEL, Snapshot
from labelgate_labelstudio.pushback import DEFAULT_WORKERS, Progress

if TYPE_CHECKING:
    from labelgate.run import QualityRun

SYSTEM = "labelstudio"


@dataclass(frozen=True)
class PushOptions:
    """What :meth:`ProjectSource.push` writes (every part off by default).

    Attributes:
        scores: the task score columns (:mod:`labelgate_labelstudio.pushback`).
        review_view: the "labelgate: review queue" tab listing the flagged tasks.
        predictions: the consensus as ``labelgate-consensus`` predictions; None refreshes them
            only where the project already has some (the webhook worker's choice).
        meta: also the full per-task entry in ``meta["labelgate"]``.
        threshold: a task scoring below it is flagged.
        workers: concurrent requests for the task pages read (when the export is refused)
            and the per-object writes.
        on_progress: ``(description, done, total)`` callback of the pull and the push.
    """

    scores: bool = False
    review_view: bool = False
    predictions: bool | None = False
    meta: bool = False
    threshold: float = 0.8
    workers: int = DEFAULT_WORKERS
    on_progress: Progress | None = field(default=None, compare=False)

    @property
    def needs_snapshot(self) -> bool:
        """The push compares with the raw tasks, so the pull keeps them."""
        return self.scores or self.predictions is not False


def project_target(project_id: int | str) -> Target:
    """The target of one Label Studio project."""
    return Target(SYSTEM, "project", str(project_id))


def project_id_of(target: Target | None) -> int:
    """The project id of ``target``.

    Raises:
        ValidationError: not a Label Studio project target.
    """
    if target is None or target.system != SYSTEM or target.kind != "project":
        raise ValidationError(f"target {target}: expected labelstudio:project:<id>")
    if not target.id.isdigit():
        raise ValidationError(f"target {target}: the project id must be a positive integer")
    return int(target.id)


@dataclass(frozen=True)
class ProjectSource:
    """A Label Studio server's projects as a :class:`~labelgate.run_sources.PushingSource`.

    Attributes:
        client: the SDK wrapper (or any object with its ``pull``).
        gt_policy: how several ground-truth annotations on one task are treated.
        settings: the quality settings to score with (None: CVAT defaults).
        push_options: what :meth:`push` writes.
        route: how the tasks are read (:data:`~labelgate.config_server.LS_PULL_ROUTES`): ``auto``
            reads the project's export, which Label Studio also keeps as a file on its disk
            per distinct content; ``pages`` reads the task list instead.
    """

    client: Any
    gt_policy: str = "per-author"
    settings: QualitySettings | None = None
    push_options: PushOptions = PushOptions()
    route: str = "auto"

    @property
    def system(self) -> str:
        return SYSTEM

    def pull(self, target: Target | None, settings: QualitySettings | None = None) -> Batch:
        """The project as a batch; its handle is the raw snapshot when a push will need it.

        Raises:
            ValidationError: ``target`` is not a Label Studio project.
            NotFound, AuthenticationFailed, ConnectionFailed: as the server answers.
        """
        project = project_id_of(target)
        snapshot: Snapshot | None = None
        # The export is one request; task pages (its fallback) are read concurrently with the
        # same worker count as the writes.
        fetch = {
            "workers": self.push_options.workers,
            "on_progress": self.push_options.on_progress,
            "route": self.route,
        }
        if self.push_options.needs_snapshot:
            snapshot = self.client.snapshot(project, **fetch)
            aset = self.client.pull(project, snapshot, gt_policy=self.gt_policy)
        else:
            aset = self.client.pull(project, gt_policy=self.gt_policy, **fetch)
        return Batch(
            aset,
            settings or self.settings,
            project_target(project),
            f"{SYSTEM}:{project}",
            handle=snapshot,
        )

    def parse_event(self, event: Mapping[str, Any]) -> Target | None:
        """The project a Label Studio webhook asks to re-score (None: not a re-score).

        Raises:
            FormatError: a malformed field (:func:`labelgate_labelstudio.webhooks.parse_event`).
        """
        from labelgate_labelstudio.webhooks import parse_event

        parsed = parse_event(event)
        return parsed.target if parsed.status == "rescore" else None

    def run_options(self, batch: Batch) -> RunOptions:
        """What a run of ``batch`` computes: agreement with intervals, the consensus when the
        push writes predictions (merged at the settings' IoU, as the scores match regions)."""
        consensus = None
        if self.wants_consensus(batch):
            iou = (batch.settings or QualitySettings()).iou_threshold
            consensus = ConsensusOptions(iou_threshold=iou)
        return RunOptions(n_boot=100, model_check=False, consensus=consensus)

    def wants_consensus(self, batch: Batch) -> bool:
        """Predictions are written (or, when None, the project already has labelgate's)."""
        wanted = self.push_options.predictions
        if wanted is None:
            snap = batch.handle
            return isinstance(snap, Snapshot) and any(
                isinstance(p, dict) and p.get("model_version") == CONSENSUS_MODEL
                for t in snap.tasks
                for p in t.get("predictions") or []
            )
        return wanted

    def push(self, run: QualityRun) -> dict[str, Any]:
        """Write the run's task scores, consensus predictions and review view (as asked).

        Returns:
            ``{"pushed": {part: count or view id}, "push": statistics}`` (``push`` only when
            tasks were written).
        """
        from labelgate_labelstudio.pipeline import consensus_regions, flagged_tasks, task_scores
        from labelgate_labelstudio.pushback import plan_push, run_push

        opts = self.push_options
        project = project_id_of(run.batch.target)
        scores = task_scores(run)
        out: dict[str, Any] = {"pushed": {}}
        snap = run.batch.handle
        consensus = consensus_regions(run) if run.consensus is not None else None
        if isinstance(snap, Snapshot) and (opts.scores or consensus is not None):
            plan = plan_push(snap, scores if opts.scores else None, consensus, meta=opts.meta)
            stats = run_push(
                self.client, snap, plan, workers=opts.workers, on_progress=opts.on_progress
            )
            out["push"] = stats.to_dict()
            if opts.scores:
                out["pushed"]["scores"] = len(scores)
            if consensus is not None:
                out["pushed"]["predictions"] = len(consensus)
        if opts.review_view:
            flagged = flagged_tasks(scores, opts.threshold)
            out["pushed"]["review_view"] = self.client.upsert_review_view(project, flagged)
        return out
