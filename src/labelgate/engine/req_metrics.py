"""Requirement scores, calculation status and completion (``cvat-quality-current.md`` §3.2-3.4).

Scores come from a confusion matrix (rows DS, columns GT, ``unmatched`` last), always the
matrix summed over frames, never an average of frame scores. A zero denominator gives 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from labelgate.arrays import AnyArray, FloatArray
from labelgate.engine.report import label_metrics

COMPUTED = "computed"
NOT_COMPUTED = "not_computed"
#: not_computed reasons, lowest priority first (a frame's reason loses to a later one).
REASONS = ("no_annotations", "filter_no_matches", "required_attributes_missing")


def _div(a: FloatArray, b: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


def micro_stack(matrices: AnyArray) -> dict[str, FloatArray]:
    """The five micro metrics of (..., L+1, L+1) matrices, as (...) arrays."""
    m = np.asarray(matrices, dtype=np.float64)
    valid = np.trace(m[..., :-1, :-1], axis1=-2, axis2=-1)
    ds = m[..., :-1, :].sum((-2, -1))
    gt = m[..., :, :-1].sum((-2, -1))
    total = m.sum((-2, -1))
    return {
        "accuracy": _div(valid, total),
        "precision": _div(valid, ds),
        "recall": _div(valid, gt),
        "jaccard_index": _div(valid, ds + gt - valid),
        "dice": _div(2 * valid, ds + gt),
    }


def micro_metrics(matrix: AnyArray) -> dict[str, float]:
    """The five micro metrics of one matrix: accuracy, precision, recall, jaccard_index, dice."""
    return {k: float(v) for k, v in micro_stack(matrix).items()}


@dataclass(frozen=True)
class Score:
    """A target metric's value and what it came from.

    Attributes:
        metric: one of the 15 names.
        value: the score.
        micro: the micro value of the same base metric.
        mean: the mean over active labels (0 when no label is active).
        label: the worst active label's value (0 when none).
        worst_labels: the labels at that minimum.
    """

    metric: str
    value: float
    micro: float
    mean: float
    label: float
    worst_labels: tuple[str, ...] = ()

    @property
    def aggregation(self) -> str:
        return (
            self.metric.split("_", 1)[0] if self.metric.startswith(("mean_", "label_")) else "micro"
        )


def base_metric(metric: str) -> str:
    """``mean_recall`` -> ``recall``; ``accuracy`` -> ``accuracy``."""
    for prefix in ("mean_", "label_"):
        if metric.startswith(prefix):
            return metric[len(prefix) :]
    return metric


def score(matrix: AnyArray, labels: Sequence[str], metric: str) -> Score:
    """The target ``metric`` of ``matrix``.

    Args:
        matrix: (L+1, L+1) counts, rows DS, columns GT, ``unmatched`` last.
        labels: the L label names.
        metric: ``accuracy`` ... ``dice``, ``mean_*`` or ``label_*``.

    Returns:
        The :class:`Score`; active labels are those with row + column support > 0.
    """
    return scores(np.asarray(matrix)[None], labels, metric)[0]


def scores(matrices: AnyArray, labels: Sequence[str], metric: str) -> list[Score]:
    """:func:`score` of each of (F, L+1, L+1) matrices (one per frame), computed at once."""
    m = np.asarray(matrices, dtype=np.float64)
    base = base_metric(metric)
    micro = micro_stack(m)[base]
    per_label = label_metrics(m)[base][:, :-1]
    active = (m[:, :-1, :].sum(2) + m[:, :, :-1].sum(1)) > 0
    n_active = active.sum(1)
    mean = _div(np.where(active, per_label, 0.0).sum(1), n_active)
    # initial=inf: a requirement whose type no label is compatible with has no label columns.
    worst = np.where(n_active > 0, np.where(active, per_label, np.inf).min(1, initial=np.inf), 0.0)
    at_worst = active & (np.abs(per_label - worst[:, None]) <= 1e-12)
    agg = (
        "mean"
        if metric.startswith("mean_")
        else "label"
        if metric.startswith("label_")
        else "micro"
    )
    value = {"micro": micro, "mean": mean, "label": worst}[agg]
    names = np.asarray(list(labels), dtype=object)
    return [
        Score(metric, v, mi, me, w, tuple(names[row]) if n else ())
        for v, mi, me, w, row, n in zip(
            value.tolist(),
            micro.tolist(),
            mean.tolist(),
            worst.tolist(),
            at_worst,
            n_active.tolist(),
            strict=True,
        )
    ]


@dataclass(frozen=True)
class SideCounts:
    """One side's annotation counts on a frame: of the requirement's type, and selected by its
    filter. ``missing_attributes`` names explicit-rule attributes that no selected annotation
    carries (empty when nothing is selected)."""

    candidate_count: int = 0
    selected_count: int = 0
    missing_attributes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "candidate_count": self.candidate_count,
            "selected_count": self.selected_count,
            "missing_attributes": list(self.missing_attributes),
        }


@dataclass(frozen=True)
class Calculation:
    """Whether a requirement could be computed, and why not.

    Attributes:
        status: ``computed`` or ``not_computed``.
        reason: None when computed; else one of :data:`REASONS`.
        ds: DS-side counts ("annotations" in CVAT's JSON); gt: ground-truth side counts.
    """

    status: str
    reason: str | None = None
    ds: SideCounts = field(default_factory=SideCounts)
    gt: SideCounts = field(default_factory=SideCounts)

    @property
    def computed(self) -> bool:
        return self.status == COMPUTED

    def brief(self) -> dict[str, object]:
        """The summary item's form: the status and, when not computed, the reason."""
        return (
            {"status": self.status}
            if self.computed
            else {"status": self.status, "reason": self.reason}
        )

    def to_dict(self) -> dict[str, object]:
        """CVAT's JSON: ``{"status": "computed"}``, or the reason and both sides' counts."""
        if self.computed:
            return {"status": self.status}
        return {
            "status": self.status,
            "reason": self.reason,
            "annotations": self.ds.to_dict(),
            "ground_truth": self.gt.to_dict(),
        }


def frame_calculation(gt: SideCounts, ds: SideCounts) -> Calculation:
    """One frame's status from its counts, as CVAT's ``_make_requirement_calculation``.

    No candidates of the type on either side: ``no_annotations``. Candidates but nothing
    selected: ``filter_no_matches``. Both sides selected, but an explicit-rule attribute is
    missing from both: ``required_attributes_missing``. Otherwise computed (a computed status
    carries no counts, as CVAT's).
    """
    common = set(gt.missing_attributes) & set(ds.missing_attributes)
    if not gt.candidate_count and not ds.candidate_count:
        return Calculation(NOT_COMPUTED, "no_annotations", ds, gt)
    if not gt.selected_count and not ds.selected_count:
        reason = "required_attributes_missing" if common else "filter_no_matches"
        return Calculation(NOT_COMPUTED, reason, ds, gt)
    if gt.selected_count and ds.selected_count and common:
        return Calculation(NOT_COMPUTED, "required_attributes_missing", ds, gt)
    return Calculation(COMPUTED)


def _priority(c: Calculation) -> int:
    return len(REASONS) if c.computed else REASONS.index(c.reason or REASONS[0])


def merge_calculations(parts: Iterable[Calculation]) -> Calculation:
    """Across frames (or jobs): the calculation of highest priority, the first one on ties
    (computed > required_attributes_missing > filter_no_matches > no_annotations), as CVAT's
    ``select_requirement_calculation``. With no parts the requirement saw nothing
    (``no_annotations``)."""
    best: Calculation | None = None
    for c in parts:
        if best is None or _priority(c) > _priority(best):
            best = c
    return best if best is not None else Calculation(NOT_COMPUTED, "no_annotations")


def requirement_completed(calculation: Calculation, value: float | None, required: float) -> bool:
    """CVAT's rule: a requirement that cannot be computed is not failed; else score >= required."""
    if not calculation.computed or value is None:
        return True
    return value >= required


def all_completed(validation_frames: int, completed: Sequence[bool]) -> bool:
    """A job or task is completed when it has validation frames, at least one enabled
    requirement, and every enabled requirement completed (``completed`` lists those)."""
    return validation_frames > 0 and len(completed) > 0 and all(completed)
