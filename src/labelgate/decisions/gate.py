"""Release gate: policy thresholds checked against a scored batch, with a reason per failure.

Policy file (TOML)::

    [gate]
    min_agreement = 0.75          # mean pairwise matched-F1 between annotators
    gold_accuracy = 0.8           # an annotator "passes" a gold item at this accuracy
    min_gold_pass_rate = 0.8      # share of (annotator, gold item) passes
    max_missing_rate = 0.1        # GT objects missed / GT objects
    max_class_imbalance = 10.0    # most / least frequent class among used classes
    require_valid_export = true   # no data errors, every label in the schema
    require_requirements_completed = true  # requirement mode: every annotator's report
                                  # completed (CVAT's rule; see docs/semantics.md)

    [gate.audit]
    size = 20                     # items drawn for a manual audit
    seed = 7

A check whose input is missing (e.g. agreement with one annotator) fails and says why: a gate
that cannot measure something does not wave it through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelgate.adapters import GT_ANNOTATOR, PREDICTION_PREFIX
from labelgate.config_fields import Entry, apply, check, entries_of, setting
from labelgate.engine import QualitySettings
from labelgate.errors import SettingsError
from labelgate.model import AnnotationSet, Origin

if TYPE_CHECKING:
    from labelgate.engine.req_report import RequirementReport
    from labelgate.run import QualityRun, RunOptions

#: The configuration file's table of the policy (with its ``[gate.audit]`` sub-table).
SECTION = "gate"
_AUDIT = {"size": "audit_size", "seed": "audit_seed"}


@dataclass(frozen=True)
class GatePolicy:
    """Thresholds of the release gate; a None threshold is not checked."""

    min_agreement: float | None = setting(None, low=0.0, high=1.0)
    gold_accuracy: float = setting(0.8, low=0.0, high=1.0)
    min_gold_pass_rate: float | None = setting(None, low=0.0, high=1.0)
    max_missing_rate: float | None = setting(None, low=0.0, high=1.0)
    max_class_imbalance: float | None = setting(None, low=1.0)
    require_valid_export: bool = True
    #: Requirement mode only: every annotator's requirement report completed (CVAT's rule).
    require_requirements_completed: bool = True
    audit_size: int = setting(0, low=0)
    audit_seed: int = setting(0, low=0)

    def __post_init__(self) -> None:
        check(self, SECTION)

    @staticmethod
    def entries(table: Mapping[str, Any], where: str) -> list[Entry]:
        """The ``[gate]`` table's values as settings entries (``[gate.audit]`` flattened).

        Raises:
            SettingsError: ``[gate.audit]`` is not a table or holds an unknown key.
        """
        rest = dict(table)
        audit = rest.pop("audit", {})
        if not isinstance(audit, Mapping):
            raise SettingsError(f"{where}: [gate.audit]: expected a table, got {audit!r}")
        out = entries_of(rest, where, SECTION)
        for key, value in audit.items():
            if key not in _AUDIT:
                raise SettingsError(
                    f"{where}: [gate.audit] {key}: unknown key in [gate.audit]; known: size, seed"
                )
            out.append(Entry(_AUDIT[key], value, f"{where}: [gate.audit] {key}"))
        return out

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "policy") -> GatePolicy:
        """Build from the ``[gate]`` table (or a mapping holding it under ``gate``).

        Raises:
            SettingsError: unknown key, wrong type or a rate outside [0, 1].
        """
        table = data.get("gate", data)
        if not isinstance(table, Mapping):
            raise SettingsError(f"{source}: [gate]: expected a table, got {table!r}")
        return apply(cls(), cls.entries(table, source), section=SECTION)

    @classmethod
    def from_toml(cls, path: str | Path) -> GatePolicy:
        """The ``[gate]`` section of a configuration file (defaults where it has none).

        Raises:
            SettingsError: unreadable file, unknown key or bad value.
        """
        from labelgate.config import read_file

        return read_file(path).gate or cls()


def _gold_scores(run: QualityRun) -> list[float]:
    """Each (annotator, gold item) score: over the item's controls where the set has them,
    else the comparison's per-frame accuracy."""
    if run.aset.schema.controls:
        from labelgate.agreement.controls import item_annotator_headline

        per_item = item_annotator_headline(run.control_accuracy, GT_ANNOTATOR)
        # The gate judges people: prediction sets compared with GT are not gold scores.
        return [v for per in per_item.values() for n, v in per.items() if n in run.humans]
    return [
        res["annotations"]["accuracy"]
        for n in run.humans
        if n in run.comparisons
        for res in run.comparisons[n].report.to_dict()["frame_results"].values()
    ]


def class_balance(aset: AnnotationSet) -> tuple[float | None, dict[str, dict[str, int]]]:
    """Most / least frequent class, counted over the human annotators' labels only (not ground
    truth, models or consensus) and per control (boxes and a Choices control are separate
    variables; without controls, shapes and image tags). The value is the worst control's.

    Returns:
        (ratio or None when no control uses two classes, counts per control and class).
    """
    ann = aset.annotations
    others = [
        i
        for i, n in enumerate(ann.annotators)
        if n == GT_ANNOTATOR or n.startswith(PREDICTION_PREFIX)
    ]
    rows = ~np.isin(ann.annotator, others) & (ann.origin != Origin.CONSENSUS) & (ann.label >= 0)
    labels = aset.schema.labels
    counts: dict[str, dict[str, int]] = {}
    for r in np.flatnonzero(rows):
        label = labels[int(ann.label[r])]
        group = label.control or ("tags" if label.kind == "tag" else "shapes")
        short = label.name.removeprefix(f"{label.control}:") if label.control else label.name
        per = counts.setdefault(group, {})
        per[short] = per.get(short, 0) + 1
    ratios = [max(c.values()) / min(c.values()) for c in counts.values() if len(c) >= 2]
    return (max(ratios) if ratios else None), counts


def _check(
    name: str,
    value: float | None,
    threshold: float,
    higher_is_better: bool,
    reason_missing: str,
    fmt: str = "{:.3f}",
) -> dict[str, Any]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return {
            "check": name,
            "passed": False,
            "value": None,
            "threshold": threshold,
            "reason": reason_missing,
        }
    ok = value >= threshold if higher_is_better else value <= threshold
    word = "at least" if higher_is_better else "at most"
    reason = (
        None if ok else f"{fmt.format(value)} but the policy wants {word} {fmt.format(threshold)}"
    )
    return {
        "check": name,
        "passed": bool(ok),
        "value": value,
        "threshold": threshold,
        "reason": reason,
    }


def evaluate_gate(
    aset: AnnotationSet, policy: GatePolicy, settings: QualitySettings | None = None
) -> dict[str, Any]:
    """:func:`gate_for` a run of ``aset`` (GT = annotator "ground_truth")."""
    from labelgate.run import run_quality
    from labelgate.run_sources import Batch

    options = gate_options(policy)
    return gate_for(run_quality(Batch.of_set(aset, settings), options=options), policy)


def gate_options(policy: GatePolicy) -> RunOptions:
    """What a run needs for the gate alone: the humans' comparisons, agreement only when the
    policy checks it, no intervals, no model check."""
    from labelgate.run import RunOptions

    return RunOptions(
        n_boot=0,
        compare_predictions=False,
        model_check=False,
        agreement=policy.min_agreement is not None,
    )


def gate_for(run: QualityRun, policy: GatePolicy) -> dict[str, Any]:
    """Run every configured check on a scored batch.

    Returns:
        ``{"passed", "checks": [...], "audit_sample": [...], "summary": {...}}``.
    """
    aset = run.aset
    people = list(run.humans)
    gt = run.gt
    checks: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"annotators": people, "gold_items": 0}
    reports = {n: run.comparisons[n].report for n in people if n in run.comparisons}
    if policy.min_agreement is not None:
        # The project's headline: built from its controls where it has them.
        value = run.agreement.headline if len(people) >= 2 else None
        checks.append(
            _check(
                "agreement",
                value,
                policy.min_agreement,
                True,
                "needs at least two annotators on shared items",
            )
        )
    if policy.min_gold_pass_rate is not None:
        passes = total = 0
        for score in _gold_scores(run):
            total += 1
            passes += score >= policy.gold_accuracy
        summary["gold_items"] = len(gt.items) if gt is not None else 0
        checks.append(
            _check(
                "gold_pass_rate",
                passes / total if total else None,
                policy.min_gold_pass_rate,
                True,
                "no ground-truth items were annotated",
            )
        )
    if policy.max_missing_rate is not None:
        missing = sum(r.summary["missing_count"] for r in reports.values())
        gt_count = sum(r.summary["gt_count"] for r in reports.values())
        checks.append(
            _check(
                "missing_label_rate",
                missing / gt_count if gt_count else None,
                policy.max_missing_rate,
                False,
                "no ground-truth objects to miss",
            )
        )
    if policy.max_class_imbalance is not None:
        ratio, summary["class_counts"] = class_balance(aset)
        checks.append(
            _check(
                "class_balance",
                ratio,
                policy.max_class_imbalance,
                False,
                "fewer than two classes are used",
                fmt="{:.1f}",
            )
        )
    if policy.require_valid_export:
        n_err = len(aset.data_errors)
        checks.append(
            {
                "check": "export_validity",
                "passed": n_err == 0,
                "value": n_err,
                "threshold": 0,
                "reason": None
                if n_err == 0
                else f"{n_err} annotation(s) could not be read: first: {aset.data_errors[0].get('message')}",
            }
        )
    requirement_reports = {
        n: c.requirements
        for n in people
        if (c := run.comparisons.get(n)) is not None and c.requirements is not None
    }
    if requirement_reports and policy.require_requirements_completed:
        checks.append(_requirements_check(requirement_reports))
    audit: list[dict[str, Any]] = []
    if policy.audit_size:
        rng = np.random.default_rng(policy.audit_seed)
        k = min(policy.audit_size, len(aset.items))
        pick = np.sort(rng.choice(len(aset.items), size=k, replace=False))
        audit = [{"item": int(aset.items.id[i]), "name": str(aset.items.name[i])} for i in pick]
    return {
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
        "audit_sample": audit,
        "summary": summary,
    }


def _requirements_check(reports: Mapping[str, RequirementReport]) -> dict[str, Any]:
    """Requirement mode's check: the number of annotators whose report is not completed
    (CVAT's rule: validation frames, an enabled requirement, every one completed) must be 0."""
    failing = []
    for name, rep in reports.items():
        if rep.completed:
            continue
        missed = [
            f"{r.requirement.name} ({r.requirement.metric} "
            f"{'not computed' if r.score is None else f'{r.score.value:.3f}'} < "
            f"{r.requirement.required_score:.3f})"
            for r in rep.results
            if not r.completed
        ]
        failing.append(
            f"{name}: {', '.join(missed) or 'no enabled requirement or no validation frame'}"
        )
    return {
        "check": "requirements_completed",
        "passed": not failing,
        "value": len(failing),
        "threshold": 0,
        "reason": "; ".join(failing) or None,
    }
