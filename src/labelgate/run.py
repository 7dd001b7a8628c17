"""One quality run: every engine result of a batch, computed once.

:func:`run_quality` pulls a :class:`~labelgate.run_sources.Batch` from a source and computes
the comparisons with ground truth (one per annotator and prediction set), the agreement between
the human annotators (each pair matched once), the per-control accuracy of sets with labelling
controls, the agreement with the chosen model and, when asked, the consensus. Scorecards,
per-label figures, alerts, the gate (:mod:`labelgate.decisions`), the report bundle and its page
(:mod:`labelgate.reporting`) are pure functions of the resulting :class:`QualityRun`: they never
call the engine again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any

from labelgate.adapters import GT_ANNOTATOR, PREDICTION_PREFIX
from labelgate.agreement import report as agreement_mod
from labelgate.agreement.controls import ControlScore, control_accuracy, control_agreement
from labelgate.decisions.scorecards import choose_model, prediction_agreement
from labelgate.engine import QualitySettings, Report, compare
from labelgate.engine.match_rules import MatchRules
from labelgate.engine.req_report import RequirementReport
from labelgate.engine.req_score import compare_requirements
from labelgate.engine.requirements import RequirementTree
from labelgate.errors import ValidationError
from labelgate.model import AnnotationSet
from labelgate.run_sources import Batch, Source, StepCallback, Target


class Progress:
    """Numbered steps of a job whose later part (after the run) has ``later`` steps.

    The run announces its own step count first (:meth:`begin`), so every callback sees the
    final total.
    """

    def __init__(self, on_step: StepCallback | None, later: int = 0) -> None:
        self._on_step = on_step
        self._later = later
        self.total = later
        self.done = 0

    def begin(self, own: int) -> None:
        """Fix the total: ``own`` steps of the run plus the later ones."""
        self.total = own + self._later

    def step(self, description: str) -> None:
        """Report the start of the next step."""
        if self._on_step is not None:
            self._on_step(description, self.done, self.total)
        self.done += 1


@dataclass(frozen=True)
class ConsensusOptions:
    """How the consensus is merged (:func:`labelgate.consensus.spatial.merge`'s arguments)."""

    method: str = "cvat"
    quorum: float = 0.5
    iou_threshold: float = 0.4
    tag_method: str | None = None
    annotators: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RunOptions:
    """What a run computes.

    Attributes:
        n_boot: bootstrap resamples of the agreement intervals (0: none; the point values,
            which every decision reads, do not depend on it).
        compare_predictions: compare prediction sets with GT too (the report shows them).
        agreement: compute agreement between the human annotators.
        model_check: compare each human with the chosen model (the scorecards'
            rubber-stamping check; the gate does not need it).
        model: the prediction source that check compares with
            (:func:`labelgate.decisions.scorecards.choose_model`).
        consensus: merge the annotators into a consensus set with these options.
        rules: the comparisons' matching behaviour (:mod:`labelgate.engine.match_rules`;
            CVAT 2.42's when None).
    """

    n_boot: int = 100
    compare_predictions: bool = True
    agreement: bool = True
    model_check: bool = True
    model: str | None = None
    consensus: ConsensusOptions | None = None
    rules: MatchRules | None = None
    #: CVAT 2.74+ requirement mode: each comparison is also scored requirement by requirement
    #: (``Comparison.requirements``); None keeps the CVAT 2.42 report only.
    requirements: RequirementTree | None = None


@dataclass(frozen=True)
class Comparison:
    """One annotator's (or prediction set's) comparison with ground truth."""

    annotator: str
    report: Report
    #: The annotator's source meta (job/task ids for links back to the tool).
    meta: Mapping[str, Any]
    #: The requirement-mode report when the run scored a requirement tree.
    requirements: RequirementReport | None = None

    def to_dict(self) -> dict[str, Any]:
        """The bundle's section: CVAT's ``summary`` and the confusion matrix, plus the
        requirement-mode report (CVAT 2.74+'s shape) under ``requirements`` when one was run."""
        out = {
            "summary": self.report.summary,
            "confusion_matrix": self.report.data["annotations"]["confusion_matrix"],
        }
        if self.requirements is not None:
            out["requirements"] = self.requirements.to_dict()
        return out


@dataclass(frozen=True)
class AgreementResult:
    """Agreement between the human annotators.

    Attributes:
        annotators: who was compared, in the report's order.
        pairs: :func:`~labelgate.agreement.report.pair_agreement` of each pair ``(a, b)``.
        report: the :func:`~labelgate.agreement.report.agreement_report` JSON; None with fewer
            than two annotators.
        controls: :func:`~labelgate.agreement.controls.control_agreement` of the annotators
            (per labelling control; empty for sets without controls), the report's own pass.
    """

    annotators: tuple[str, ...] = ()
    pairs: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    report: Mapping[str, Any] | None = None
    controls: Mapping[str, ControlScore] = field(default_factory=dict)

    def pair(self, a: str, b: str) -> Mapping[str, Any] | None:
        """The pair's result in either order (None: not compared)."""
        return self.pairs.get((a, b)) or self.pairs.get((b, a))

    @property
    def headline(self) -> float | None:
        """The project's headline agreement (over controls where the set has them)."""
        return agreement_mod.agreement_headline(self.report)

    def peer_rows(self) -> dict[str, Mapping[str, Any]]:
        """The report's per-annotator rows by annotator."""
        rows = self.report["per_annotator"] if self.report else []
        return {r["annotator"]: r for r in rows}

    def to_dict(self) -> dict[str, Any] | None:
        return dict(self.report) if self.report is not None else None


@dataclass(frozen=True)
class QualityRun:
    """Everything the engine computed for one batch.

    Attributes:
        batch: what was scored (the set, its settings, target and history key).
        settings: the settings used (defaults filled in).
        parts: the batch split by annotator (each with its own source meta).
        humans: the human annotators (not GT, not predictions), sorted.
        comparisons: each compared annotator's comparison with GT (empty without GT).
        agreement: the agreement between the human annotators.
        control_accuracy: per labelling control, each compared annotator (humans, and
            predictions when compared) against GT (sets with controls).
        model: the prediction source chosen for the rubber-stamping check (``prediction:<v>``).
        model_agreement: each human's agreement with that model.
        consensus: the merged set, when asked for.
    """

    batch: Batch
    settings: QualitySettings
    parts: Mapping[str, AnnotationSet]
    humans: tuple[str, ...]
    comparisons: Mapping[str, Comparison]
    agreement: AgreementResult
    control_accuracy: Mapping[str, ControlScore] = field(default_factory=dict)
    model: str | None = None
    model_agreement: Mapping[str, float | None] = field(default_factory=dict)
    consensus: AnnotationSet | None = None

    @property
    def aset(self) -> AnnotationSet:
        return self.batch.aset

    @property
    def gt(self) -> AnnotationSet | None:
        return self.parts.get(GT_ANNOTATOR)

    @property
    def data_errors(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self.aset.data_errors]

    def to_dict(self) -> dict[str, Any]:
        """The run's JSON: source, settings, comparisons, agreement, consensus size, errors."""
        return {
            "source": {
                "name": self.aset.name,
                "items": len(self.aset.items),
                "meta": dict(self.aset.meta),
                "target": str(self.batch.target),
                "project": self.batch.project,
            },
            "settings": self.settings.to_dict(),
            "comparisons": {n: c.to_dict() for n, c in self.comparisons.items()},
            "agreement": self.agreement.to_dict(),
            "model": self.model,
            "model_agreement": dict(self.model_agreement),
            "consensus": None if self.consensus is None else len(self.consensus.annotations),
            "data_errors": self.data_errors,
        }


def run_quality(
    source: Source | Batch,
    *,
    target: Target | None = None,
    settings: QualitySettings | None = None,
    options: RunOptions | None = None,
    progress: Progress | None = None,
) -> QualityRun:
    """Pull a batch (unless given one) and compute its :class:`QualityRun`.

    Args:
        source: a source to pull ``target`` from, or a batch already pulled.
        settings: override the batch's settings.
        options: what to compute (:class:`RunOptions` defaults).
        progress: step reporting (one step per comparison, one for agreement).

    Raises:
        ValidationError: ``options.model`` names no prediction source of the batch.
    """
    batch = source if isinstance(source, Batch) else source.pull(target, settings)
    if settings is not None and batch.settings is not settings:
        batch = replace(batch, settings=settings)
    opts = options or RunOptions()
    s = batch.settings or QualitySettings()
    aset = batch.aset
    split = batch.split if batch.split is not None else aset.split_by_annotator()
    parts = {
        n: p.replace(meta=dict(batch.metas[n])) if n in batch.metas else p for n, p in split.items()
    }
    gt = parts.get(GT_ANNOTATOR)
    people = [n for n in parts if n and n != GT_ANNOTATOR]
    humans = tuple(n for n in people if not n.startswith(PREDICTION_PREFIX))
    compared = people if opts.compare_predictions else list(humans)
    progress = progress or Progress(None)
    progress.begin((len(compared) if gt is not None else 0) + 1)
    comparisons: dict[str, Comparison] = {}
    if gt is not None:
        for name in compared:
            progress.step(f"comparing {name} with the ground truth")
            req = (
                compare_requirements(gt, parts[name], opts.requirements, s)
                if opts.requirements is not None
                else None
            )
            comparisons[name] = Comparison(
                name, compare(gt, parts[name], s, rules=opts.rules), parts[name].meta, req
            )
    progress.step("agreement between annotators")
    agreement = _agreement(aset, parts, humans, s, opts) if opts.agreement else AgreementResult()
    by_control = (
        control_accuracy(
            aset,
            list(compared),
            s,
            reports={n: c.report for n, c in comparisons.items()},
        )
        if aset.schema.controls and gt is not None
        else {}
    )
    model = choose_model(aset, parts, opts.model) if opts.model_check else None
    model_agreement = (
        {n: prediction_agreement(aset, n, model, parts[n], parts[model], s) for n in humans}
        if model is not None
        else {}
    )
    consensus = None
    if opts.consensus is not None:
        from labelgate.consensus.spatial import merge

        c = opts.consensus
        consensus = merge(
            aset,
            quorum=c.quorum,
            iou_threshold=c.iou_threshold,
            method=c.method,
            tag_method=c.tag_method,
            annotators=list(c.annotators) if c.annotators else None,
        )
    return QualityRun(
        batch=batch,
        settings=s,
        parts=parts,
        humans=humans,
        comparisons=comparisons,
        agreement=agreement,
        control_accuracy=by_control,
        model=model,
        model_agreement=model_agreement,
        consensus=consensus,
    )


def _agreement(
    aset: AnnotationSet,
    parts: Mapping[str, AnnotationSet],
    humans: tuple[str, ...],
    settings: QualitySettings,
    opts: RunOptions,
) -> AgreementResult:
    """Each pair of humans matched once; the agreement report built from those matches."""
    if len(humans) < 2:
        return AgreementResult(annotators=humans)
    pairs = {
        (a, b): agreement_mod.pair_agreement(
            parts[a], parts[b], settings, by_control=bool(aset.schema.controls)
        )
        for a, b in combinations(humans, 2)
    }
    # The per-control pass is the report's own; kept so per-task scores reuse it.
    controls = control_agreement(aset, list(humans), settings, pair_results=pairs)
    try:
        report = agreement_mod.agreement_report(
            aset, settings, n_boot=opts.n_boot, pair_results=pairs, controls=controls
        )
    except ValidationError:  # no shared items: the section says "not available"
        report = None
    return AgreementResult(annotators=humans, pairs=pairs, report=report, controls=controls)


__all__ = [
    "AgreementResult",
    "Comparison",
    "ConsensusOptions",
    "Progress",
    "QualityRun",
    "RunOptions",
    "StepCallback",
    "run_quality",
]
