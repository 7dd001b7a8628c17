"""Per-annotator scorecards, the per-label view, and alerts with recommended actions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from labelgate.adapters import PREDICTION_PREFIX
from labelgate.agreement.report import pair_agreement
from labelgate.decisions.sampling import achieved_margin
from labelgate.engine import QualitySettings
from labelgate.model import AnnotationSet, Origin
from labelgate.stats import wilson_interval

if TYPE_CHECKING:
    from labelgate.run import QualityRun, RunOptions

REWORK_SECONDS = 3600.0


@dataclass(frozen=True)
class AlertThresholds:
    """Configurable alert thresholds (defaults from the issue)."""

    class_imbalance: float = 10.0
    min_accuracy: float = 0.7
    min_approval: float = 0.7
    agreement_drop: float = 0.1
    outlier_peer_agreement: float = 0.5
    gt_margin: float = 0.05
    rubber_stamp_gap: float = 0.15


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    # Times without a zone are taken as UTC so that they can be compared with zoned ones.
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def choose_model(aset: AnnotationSet, names: Any, model: str | None = None) -> str | None:
    """The prediction source the rubber-stamping check compares annotators with.

    ``model`` when given (a model version, with or without the ``prediction:`` prefix), else the
    source's own model version (``aset.meta["model_version"]``: a Label Studio project's), else
    the only prediction source; with several and no choice, none (never the alphabetically
    first). Sources only hold other systems' predictions: readers leave labelgate's own out.

    Raises:
        ValidationError: ``model`` names no prediction source of the set.
    """
    from labelgate.errors import ValidationError

    models = [n for n in names if str(n).startswith(PREDICTION_PREFIX)]
    if model:
        name = model if model.startswith(PREDICTION_PREFIX) else PREDICTION_PREFIX + model
        if name not in models:
            known = ", ".join(m[len(PREDICTION_PREFIX) :] for m in models) or "none"
            raise ValidationError(f"--model {model}: no such prediction source (have: {known})")
        return name
    version = aset.meta.get("model_version")
    if version and PREDICTION_PREFIX + str(version) in models:
        return PREDICTION_PREFIX + str(version)
    return models[0] if len(models) == 1 else None


def scorecards(
    aset: AnnotationSet,
    settings: QualitySettings | None = None,
    thresholds: AlertThresholds | None = None,
    model: str | None = None,
) -> list[dict[str, Any]]:
    """:func:`scorecards_for` of a run of ``aset`` (for callers holding a set, not a run)."""
    return scorecards_for(_run_of(aset, settings, model=model, model_check=True), thresholds)


def _run_of(
    aset: AnnotationSet,
    settings: QualitySettings | None,
    *,
    model: str | None = None,
    model_check: bool = False,
) -> QualityRun:
    """A run of ``aset`` with what the decisions read (humans compared, no intervals)."""
    from labelgate.run import run_quality
    from labelgate.run_sources import Batch

    options = replace(scorecard_options(model), model_check=model_check)
    return run_quality(Batch.of_set(aset, settings), options=options)


def scorecard_options(model: str | None = None) -> RunOptions:
    """What a run needs for the scorecards, per-label view and alerts: the humans'
    comparisons, agreement without intervals, the check against ``model``."""
    from labelgate.run import RunOptions

    return RunOptions(n_boot=0, compare_predictions=False, model=model)


def scorecards_for(
    run: QualityRun, thresholds: AlertThresholds | None = None
) -> list[dict[str, Any]]:
    """One scorecard per human annotator of a run.

    Each card: items and annotations done; accuracy/precision/recall vs GT with Wilson 95%
    intervals; mean agreement with peers (matched-F1, Wilson interval on pooled matches); median
    seconds per item (lead_time); approval/rejection rate from review states; rework rate
    (submissions updated after they were created); top error types and confused label pairs;
    AI-assisted share (annotations kept from pre-annotation); agreement with the model's
    predictions and a rubber-stamping flag when it is far above accuracy against GT. The model
    is the run's (:func:`choose_model`).
    """
    from labelgate.agreement.controls import annotator_summary

    th = thresholds or AlertThresholds()
    people = list(run.humans)
    peer_rows = run.agreement.peer_rows()
    cards = []
    for name in people:
        part = run.parts[name]
        ann = part.annotations
        card: dict[str, Any] = {
            "annotator": name,
            "items": len(part.items),
            "annotations": len(ann),
        }
        comparison = run.comparisons.get(name)
        if comparison is not None:
            rep = comparison.report
            s = rep.summary
            card.update(
                {
                    k: s[k]
                    for k in (
                        "accuracy",
                        "precision",
                        "recall",
                        "accuracy_ci95",
                        "precision_ci95",
                        "recall_ci95",
                        "mean_iou",
                    )
                }
            )
            card["gold_items"] = s["frame_count"]
            by_control = run.control_accuracy
            summary = annotator_summary(by_control, name) if by_control else None
            if summary is not None:
                card["accuracy"] = summary["value"]
                card["accuracy_ci95"] = summary["ci95"]
                card["per_control"] = summary["per_control"]
            # Counted from the report's columns: no conflict dict is built for a scorecard.
            tally = rep.conflict_tally()
            card["top_errors"] = Counter(dict(tally.error_types)).most_common(3)
            confused = Counter(dict(tally.confused))
            card["confused_labels"] = [
                {"annotated": a, "truth": b, "count": n} for (a, b), n in confused.most_common(3)
            ]
        matches, total = 0, 0.0
        for peer in people:
            res = run.agreement.pair(name, peer) if peer != name else None
            if res is not None:
                matches += res["matched"]
                total += (res["n_a"] + res["n_b"]) / 2
        if total:
            card["peer_agreement_ci95"] = list(wilson_interval(matches, total))
        if name in peer_rows:  # the same value `agree` reports (one computation)
            card["peer_agreement"] = peer_rows[name]["peer_agreement"]
        subs = part.submissions
        lead = [s.lead_time for s in subs if s.lead_time is not None]
        card["median_seconds_per_item"] = float(np.median(lead)) if lead else None
        reviewed = [s.state for s in subs if s.state in ("accepted", "rejected")]
        card["approval_rate"] = (reviewed.count("accepted") / len(reviewed)) if reviewed else None
        card["rejection_rate"] = (reviewed.count("rejected") / len(reviewed)) if reviewed else None
        times = [(_parse_time(s.created_at), _parse_time(s.updated_at)) for s in subs]
        dated = [(c, u) for c, u in times if c and u]
        # Rework: the submission was revisited later (saved again over an hour after creation),
        # not the seconds between the first save and the submit.
        card["rework_rate"] = (
            sum((u - c).total_seconds() > REWORK_SECONDS for c, u in dated) / len(dated)
            if dated
            else None
        )
        card["ai_assisted_share"] = (
            float(np.isin(ann.origin, (Origin.AUTO, Origin.SEMI_AUTO)).mean()) if len(ann) else 0.0
        )
        if run.model is not None:
            card["model"] = run.model[len(PREDICTION_PREFIX) :]
            card["prediction_agreement"] = run.model_agreement.get(name)
        cards.append(card)
    _flag_rubber_stamping(cards, th.rubber_stamp_gap)
    return cards


def prediction_agreement(
    aset: AnnotationSet,
    name: str,
    model: str,
    part: AnnotationSet,
    model_part: AnnotationSet,
    settings: QualitySettings | None = None,
) -> float | None:
    """Agreement of an annotator with a model: over the controls where the set has them."""
    if aset.schema.controls:
        from labelgate.agreement.controls import annotator_headline, control_agreement

        return annotator_headline(control_agreement(aset, [name, model], settings)).get(name)
    value = pair_agreement(part, model_part, settings)["f1"]
    return None if value is None else float(value)


def _flag_rubber_stamping(cards: list[dict[str, Any]], gap: float) -> None:
    """Flag annotators whose (agreement with predictions − accuracy vs GT) exceeds ``gap``, or
    exceeds the team's median of that difference by more than ``gap``: they keep pre-labels
    that are wrong more often than their peers do."""
    diffs = {
        c["annotator"]: c["prediction_agreement"] - c["accuracy"]
        for c in cards
        if c.get("prediction_agreement") is not None and c.get("accuracy") is not None
    }
    if not diffs:
        return
    typical = float(np.median(list(diffs.values())))
    for c in cards:
        d = diffs.get(c["annotator"])
        if d is not None:
            c["prediction_minus_accuracy"] = d
            c["rubber_stamping"] = bool(d > gap or d - typical > gap)


def per_label(aset: AnnotationSet, settings: QualitySettings | None = None) -> list[dict[str, Any]]:
    """:func:`per_label_for` of a run of ``aset``."""
    return per_label_for(_run_of(aset, settings))


def per_label_for(run: QualityRun) -> list[dict[str, Any]]:
    """Per class: counts, error rate against GT (pooled over the human annotators), top
    confusions, and agreement between annotators."""
    aset = run.aset
    names = aset.schema.names
    counts = np.bincount(aset.annotations.label[aset.annotations.label >= 0], minlength=len(names))
    matrix = None
    for n in run.humans:
        comparison = run.comparisons.get(n)
        if comparison is not None:
            rows = np.asarray(comparison.to_dict()["confusion_matrix"]["rows"])
            matrix = rows if matrix is None else matrix + rows
    report = run.agreement.report
    agreement = report["per_label"] if report is not None else {}
    out = []
    for i, name in enumerate(names):
        row: dict[str, Any] = {
            "label": name,
            "count": int(counts[i]),
            "agreement": agreement.get(name),
        }
        if matrix is not None and i < matrix.shape[0] - 1:
            gt_total = int(matrix[:, i].sum())
            row["gt_count"] = gt_total
            row["error_rate"] = float(1 - matrix[i, i] / gt_total) if gt_total else None
            confusions = [
                (names[j] if j < len(names) else "unmatched", int(matrix[j, i]))
                for j in range(matrix.shape[0])
                if j != i and matrix[j, i]
            ]
            row["confused_with"] = sorted(confusions, key=lambda x: -x[1])[:3]
        out.append(row)
    return out


def alerts(
    aset: AnnotationSet,
    cards: list[dict[str, Any]],
    *,
    thresholds: AlertThresholds | None = None,
    agreement_history: list[float] | None = None,
    current_agreement: float | None = None,
    settings: QualitySettings | None = None,
) -> list[dict[str, Any]]:
    """:func:`alerts_for` of a run of ``aset``."""
    return alerts_for(
        _run_of(aset, settings),
        cards,
        thresholds=thresholds,
        agreement_history=agreement_history,
        current_agreement=current_agreement,
    )


def alerts_for(
    run: QualityRun,
    cards: list[dict[str, Any]],
    *,
    thresholds: AlertThresholds | None = None,
    agreement_history: list[float] | None = None,
    current_agreement: float | None = None,
) -> list[dict[str, Any]]:
    """Alerts with severity, message and recommended action.

    Args:
        run: the scored batch.
        cards: its scorecards (:func:`scorecards_for`).
        agreement_history: earlier mean agreements, oldest first (for the drop alert).
        current_agreement: this batch's mean agreement.
    """
    aset = run.aset
    th = thresholds or AlertThresholds()
    out: list[dict[str, Any]] = []
    labels = aset.annotations.label[aset.annotations.label >= 0]
    counts = np.bincount(labels, minlength=len(aset.schema))
    used = counts[counts > 0]
    if len(used) >= 2 and used.max() / used.min() > th.class_imbalance:
        hi, lo = int(np.argmax(counts)), int(np.flatnonzero(counts == used.min())[0])
        out.append(
            {
                "type": "class_imbalance",
                "severity": "warning",
                "message": f"{aset.schema.names[hi]} is {used.max() / used.min():.1f}x "
                f"more frequent than {aset.schema.names[lo]}",
                "action": "collect or up-sample the rare class before training",
            }
        )
    for c in cards:
        acc = c.get("accuracy")
        if acc is not None and acc < th.min_accuracy:
            out.append(
                {
                    "type": "low_accuracy",
                    "severity": "error",
                    "annotator": c["annotator"],
                    "message": f"{c['annotator']}: accuracy {acc:.1%} against GT is below "
                    f"{th.min_accuracy:.0%}",
                    "action": "calibration session on the confused labels: "
                    + ", ".join(
                        f"{x['annotated']}→{x['truth']}" for x in c.get("confused_labels", [])
                    )
                    or "-",
                }
            )
        appr = c.get("approval_rate")
        if appr is not None and appr < th.min_approval:
            out.append(
                {
                    "type": "low_approval",
                    "severity": "warning",
                    "annotator": c["annotator"],
                    "message": f"{c['annotator']}: approval {appr:.1%} below {th.min_approval:.0%}",
                    "action": "review the rejected work with the annotator",
                }
            )
        if c.get("rubber_stamping"):
            out.append(
                {
                    "type": "rubber_stamping",
                    "severity": "error",
                    "annotator": c["annotator"],
                    "message": f"{c['annotator']}: agrees with pre-annotations "
                    f"({c['prediction_agreement']:.1%}) far more than with GT "
                    f"({c['accuracy']:.1%})",
                    "action": "re-check their pre-annotated items; hide pre-labels for a batch",
                }
            )
    if agreement_history and current_agreement is not None:
        avg = float(np.mean(agreement_history[-5:]))
        if avg - current_agreement > th.agreement_drop:
            out.append(
                {
                    "type": "agreement_drop",
                    "severity": "warning",
                    "message": f"agreement {current_agreement:.3f} is "
                    f"{avg - current_agreement:.3f} below its rolling average "
                    f"{avg:.3f}",
                    "action": "check for new guidelines, new annotators or a data shift",
                }
            )
    out += outlier_items_for(run, th)
    gold = int(aset.items.gold.sum()) or int(cards[0].get("gold_items", 0)) if cards else 0
    if cards and gold:
        acc = float(np.mean([c.get("accuracy", 0.5) or 0.5 for c in cards]))
        margin = achieved_margin(gold, acc, len(aset.items))
        if margin > th.gt_margin:
            out.append(
                {
                    "type": "gt_sample_too_small",
                    "severity": "warning",
                    "message": f"{gold} gold items give ±{margin:.1%} at 95% confidence, "
                    f"wider than the requested ±{th.gt_margin:.1%}",
                    "action": "add validation frames (see `labelgate plan-gt`)",
                }
            )
    return out


def outlier_items(
    aset: AnnotationSet, th: AlertThresholds, settings: QualitySettings | None = None
) -> list[dict[str, Any]]:
    """:func:`outlier_items_for` of a run of ``aset``."""
    return outlier_items_for(_run_of(aset, settings), th)


def outlier_items_for(run: QualityRun, th: AlertThresholds) -> list[dict[str, Any]]:
    """Items where one annotator disagrees with every peer while the peers agree."""
    names = list(run.agreement.annotators) if run.agreement.report is not None else []
    if len(names) < 3:
        return []
    per_pair: dict[tuple[str, str], Mapping[int, float]] = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            res = run.agreement.pair(a, b)
            per_pair[(a, b)] = per_pair[(b, a)] = res["per_item"] if res else {}
    out = []
    for item in run.aset.items.id.tolist():
        for a in names:
            peers = [b for b in names if b != a]
            found = [per_pair[(a, b)].get(item) for b in peers]
            others = [
                per_pair[(b, c)].get(item) for i, b in enumerate(peers) for c in peers[i + 1 :]
            ]
            mine = [v for v in found if v is not None]
            theirs = [v for v in others if v is not None]
            if len(mine) < len(found) or len(theirs) < len(others) or not theirs:
                continue
            if max(mine) < th.outlier_peer_agreement and min(theirs) >= 0.8:
                out.append(
                    {
                        "type": "outlier_item",
                        "severity": "warning",
                        "item": item,
                        "annotator": a,
                        "message": f"item {item}: {a} disagrees with every peer "
                        f"(best F1 {max(mine):.2f}) while peers agree",
                        "action": f"review {a}'s annotation of item {item}",
                    }
                )
    return out


def drift(values: list[float], window: int = 5, drop: float = 0.1) -> list[dict[str, Any]]:
    """Points of a metric series that fall more than ``drop`` below the rolling average of the
    ``window`` values before them."""
    out = []
    for i in range(1, len(values)):
        prev = values[max(0, i - window) : i]
        avg = float(np.mean(prev))
        if avg - values[i] > drop:
            out.append(
                {"index": i, "value": values[i], "rolling_average": avg, "drop": avg - values[i]}
            )
    return out
