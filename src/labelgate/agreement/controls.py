"""Agreement and accuracy per labelling control (a Label Studio ``from_name``).

Each control is its own variable, scored with the metric that fits it, per item and pair of
annotators (or annotator and ground truth):

- Choices/Taxonomy, one answer: exact match (κ, α and AC1 over the control's own classes);
- Choices with ``choice="multiple"`` (or any item answered with several classes): Jaccard
  similarity of the chosen sets (α with MASI and Jaccard distances, per-class binary α);
- Labels (NER spans): span F1, exact (partial in ``details``);
- TextArea: 1 − normalised edit distance;
- Rating/Number: exact match (interval α in ``details``);
- regions (RectangleLabels, PolygonLabels, ...): matched F1 between annotators and CVAT's
  accuracy against ground truth, with mean IoU.

An annotator who worked on an item but left the control empty scores 0 against one who
answered (an empty span list against spans too); items where neither answered are left out.
The headline of a project is the mean over its controls (:func:`headline`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any, TypeVar

import numpy as np

from labelgate.adapters import GT_ANNOTATOR
from labelgate.agreement.categorical import (
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    marginals,
    per_class_agreement,
    percent_agreement,
)
from labelgate.agreement.sets import (
    jaccard_distance,
    mean_pairwise_jaccard,
    per_class_set_alpha,
    set_alpha,
)
from labelgate.agreement.text import number_alpha, span_f1, text_similarity
from labelgate.arrays import FloatArray, IntArray
from labelgate.engine.report import Report
from labelgate.engine.report_split import split_report
from labelgate.engine.settings import QualitySettings
from labelgate.model import AnnotationSet, Control

#: An annotator name or an item id: what the headlines group by.
K = TypeVar("K", str, int)

CATEGORY = ("Choices", "Taxonomy")
SPAN = ("Labels",)
TEXT = ("TextArea",)
NUMBER = ("Rating", "Number")
METRIC = {
    "category": "exact_match",
    "set": "jaccard",
    "span": "span_f1_exact",
    "text": "text_similarity",
    "number": "exact_match",
    "region": "matched_f1",
}


@dataclass(frozen=True)
class ControlScore:
    """One control's score: ``value`` is the mean over (pair, item) scores (None: no pair)."""

    control: str
    type: str
    metric: str
    value: float | None
    per_item: dict[int, float]
    per_annotator: dict[str, float]
    pairs: int
    details: dict[str, Any] = field(default_factory=dict)
    #: item → annotator → mean score of that annotator's pairs on the item (not serialised).
    per_item_annotator: dict[int, dict[str, float]] = field(default_factory=dict, repr=False)
    #: Region controls against ground truth: annotator → the comparison's conflicts
    #: (:func:`labelgate.engine.compare.conflicts_to_json`, with geometry; not serialised).
    conflicts: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "control": self.control,
            "type": self.type,
            "metric": self.metric,
            "value": self.value,
            "pairs": self.pairs,
            "per_annotator": dict(self.per_annotator),
            "per_item": {str(k): v for k, v in sorted(self.per_item.items())},
            **self.details,
        }


def scored_controls(aset: AnnotationSet) -> list[tuple[int, Control]]:
    """The controls that are their own variable (per-region ones are attributes of regions)."""
    return [(i, c) for i, c in enumerate(aset.schema.controls) if not c.per_region]


def _family(control: Control, answers: Mapping[str, Mapping[int, Any]]) -> str:
    if control.type in CATEGORY:
        multiple = dict(control.attrs).get("choice") == "multiple"
        several = any(len(v) > 1 for per in answers.values() for v in per.values())
        return "set" if multiple or several else "category"
    if control.type in SPAN:
        return "span"
    if control.type in TEXT:
        return "text"
    if control.type in NUMBER:
        return "number"
    return "region"


def _answers(aset: AnnotationSet, ci: int, control: Control) -> dict[str, dict[int, Any]]:
    """Annotator → item → answer (a set of classes, spans, a text or a number)."""
    ann = aset.annotations
    out: dict[str, dict[int, Any]] = {}
    prefix = f"{control.name}:"
    for r in np.flatnonzero(ann.control == ci):
        who = ann.annotators[ann.annotator[r]] if ann.annotator[r] >= 0 else ""
        per = out.setdefault(who, {})
        item = int(ann.item[r])
        if control.type in CATEGORY:
            name = aset.schema.names[int(ann.label[r])]
            value = ann.text[r] if control.type == "Taxonomy" and ann.text[r] else name
            per.setdefault(item, set()).add(str(value).removeprefix(prefix))
        elif control.type in SPAN:
            per.setdefault(item, []).append((*ann.span[r].tolist(), int(ann.label[r])))
        elif control.type in TEXT:
            text = "" if ann.text[r] is None else str(ann.text[r])
            per[item] = text if item not in per else f"{per[item]}\n{text}"
        elif control.type in NUMBER:
            per[item] = float(ann.number[r])
    return {
        who: {i: frozenset(v) if isinstance(v, set) else v for i, v in per.items()}
        for who, per in out.items()
    }


def _spans(v: list[tuple[float, float, int]] | None) -> tuple[FloatArray, IntArray]:
    arr = np.asarray(v or [], dtype=float).reshape(-1, 3)
    return arr[:, :2], arr[:, 2].astype(np.int64)


def item_score(family: str, a: Any, b: Any, mode: str = "exact") -> float:
    """Score of answer ``b`` against ``a`` on one item (None: not answered)."""
    if family == "category":
        return float(a is not None and a == b)
    if family == "set":
        return 1.0 - jaccard_distance(a or frozenset(), b or frozenset())
    if family == "span":
        (sa, la), (sb, lb) = _spans(a), _spans(b)
        return span_f1(sa, la, sb, lb, mode)
    if family == "text":
        return text_similarity(a or "", b or "")
    return float(a is not None and b is not None and a == b)


class _Pairs:
    """Collects per-item scores of pairs: per item, per annotator, and overall."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.items: dict[int, list[float]] = {}
        self.annotators: dict[str, list[float]] = {}
        self.item_annotators: dict[int, dict[str, list[float]]] = {}
        self.pairs = 0

    def add(self, names: Sequence[str], item: int, value: float) -> None:
        self.values.append(value)
        self.items.setdefault(item, []).append(value)
        for n in names:
            self.annotators.setdefault(n, []).append(value)
            self.item_annotators.setdefault(item, {}).setdefault(n, []).append(value)

    def score(self, control: Control, family: str, **details: Any) -> ControlScore:
        mean = float(np.mean(self.values)) if self.values else None
        return ControlScore(
            control.name,
            control.type,
            METRIC[family],
            details.pop("value", mean),
            {i: float(np.mean(v)) for i, v in self.items.items()},
            details.pop("per_annotator", None)
            or {n: float(np.mean(v)) for n, v in sorted(self.annotators.items())},
            self.pairs,
            details,
            {
                i: {n: float(np.mean(v)) for n, v in per.items()}
                for i, per in self.item_annotators.items()
            },
        )


def _compare_answers(
    family: str,
    answers: Mapping[str, Mapping[int, Any]],
    worked: Mapping[str, IntArray],
    pairs: Sequence[tuple[str, str]],
) -> tuple[_Pairs, _Pairs]:
    """Exact and (for spans) partial scores of every pair on the items both worked on."""
    exact, partial = _Pairs(), _Pairs()
    for a, b in pairs:
        shared = np.intersect1d(worked[a], worked[b])
        ans_a, ans_b = answers.get(a, {}), answers.get(b, {})
        used = False
        for item in shared.tolist():
            va, vb = ans_a.get(item), ans_b.get(item)
            if va is None and vb is None:
                continue
            used = True
            exact.add((a, b), item, item_score(family, va, vb, "exact"))
            if family == "span":
                partial.add((a, b), item, item_score(family, va, vb, "partial"))
        exact.pairs += used
    return exact, partial


def _category_details(
    family: str,
    answers: Mapping[str, Mapping[int, Any]],
    names: Sequence[str],
    classes: Sequence[str],
    items: IntArray,
) -> dict[str, Any]:
    """Chance-corrected coefficients over (items × annotators) of one category control."""
    values = [[answers.get(n, {}).get(int(i)) for n in names] for i in items]
    if family == "set":
        return {
            "classes": list(classes),
            "alpha_masi": set_alpha(values, "masi").to_dict(),
            "alpha_jaccard": set_alpha(values, "jaccard").to_dict(),
            "per_class": {c: v.to_dict() for c, v in per_class_set_alpha(values, classes).items()},
            "mean_pairwise_jaccard": mean_pairwise_jaccard(values),
        }
    index = {c: k for k, c in enumerate(classes)}
    codes = np.array(
        [[-1 if v is None else index[next(iter(v))] for v in row] for row in values],
        dtype=np.int64,
    ).reshape(len(values), len(names))
    share = marginals(codes, len(classes)) if (codes >= 0).any() else np.zeros(len(classes))
    return {
        "classes": list(classes),
        "percent_agreement": percent_agreement(codes).to_dict(),
        "krippendorff_alpha": krippendorff_alpha(codes, "nominal").to_dict(),
        "fleiss_kappa": fleiss_kappa(codes).to_dict(),
        "gwet_ac1": gwet_ac1(codes, len(classes)).to_dict(),
        "per_class": {
            classes[c]: coef.to_dict()
            for c, coef in per_class_agreement(codes, len(classes)).items()
        },
        "marginals": dict(zip(classes, share.tolist(), strict=True)),
    }


def _classes(aset: AnnotationSet, control: Control, answers: Mapping[str, Any]) -> list[str]:
    seen = {c for per in answers.values() for v in per.values() for c in v}
    declared = [
        lab.name.removeprefix(f"{control.name}:")
        for lab in aset.schema.labels
        if lab.control == control.name
    ]
    return declared + sorted(seen - set(declared))


def control_agreement(
    aset: AnnotationSet,
    names: Sequence[str],
    settings: QualitySettings | None = None,
    pair_results: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
) -> dict[str, ControlScore]:
    """Agreement between ``names`` (annotators of ``aset``), one score per control.

    Args:
        aset: the multi-annotator set.
        names: the annotators compared.
        settings: matching thresholds for region controls.
        pair_results: :func:`~labelgate.agreement.report.pair_agreement` of annotator pairs
            made with ``by_control=True`` (a quality run's); the pairs missing are matched
            here, once each.
    """
    from labelgate.agreement.report import pair_agreement

    parts = aset.split_by_annotator()
    worked = {n: parts[n].items.id for n in names if n in parts}
    names = [n for n in names if n in worked]
    pairs = list(combinations(names, 2))
    known = dict(pair_results or {})

    def per_control(a: str, b: str) -> Mapping[int, Mapping[str, Any]]:
        res = known.get((a, b))
        if res is None or "per_control" not in res:
            res = known[(a, b)] = pair_agreement(parts[a], parts[b], settings, by_control=True)
        per: Mapping[int, Mapping[str, Any]] = res["per_control"]
        return per

    out: dict[str, ControlScore] = {}
    for ci, control in scored_controls(aset):
        answers = _answers(aset, ci, control)
        family = _family(control, answers)
        if family == "region":
            acc = _Pairs()
            f1s, ious = [], []
            for a, b in pairs:
                # A control neither drew on the shared items is absent (n_a = n_b = 0).
                res = per_control(a, b).get(ci)
                if res is None or (not res["n_a"] and not res["n_b"]):
                    continue
                acc.pairs += 1
                f1s.append(res["f1"])
                if res["mean_iou"] is not None:
                    ious.append(res["mean_iou"])
                for item, v in res["per_item"].items():
                    acc.add((a, b), item, v)
            if acc.pairs:
                out[control.name] = acc.score(
                    control,
                    family,
                    value=float(np.mean(f1s)),
                    mean_iou=float(np.mean(ious)) if ious else None,
                )
            continue
        if not answers:
            continue
        exact, partial = _compare_answers(family, answers, worked, pairs)
        details: dict[str, Any] = {}
        if family in ("category", "set"):
            items = np.unique(np.concatenate([list(a) for a in answers.values()]))
            details = _category_details(
                family, answers, names, _classes(aset, control, answers), items
            )
        elif family == "span" and partial.values:
            details = {"span_f1_partial": float(np.mean(partial.values))}
        elif family == "number":
            items = np.unique(np.concatenate([list(a) for a in answers.values()]))
            grid = np.array(
                [[answers.get(n, {}).get(int(i), np.nan) for n in names] for i in items]
            )
            details = {"alpha_interval": number_alpha(grid).to_dict()}
        if exact.values:
            out[control.name] = exact.score(control, family, **details)
    return out


def control_accuracy(
    aset: AnnotationSet,
    names: Sequence[str],
    settings: QualitySettings | None = None,
    reference: str = GT_ANNOTATOR,
    reports: Mapping[str, Report] | None = None,
) -> dict[str, ControlScore]:
    """Each of ``names`` against ``reference`` (ground truth) on the items both worked on.

    ``per_annotator`` is each annotator's accuracy on the control; regions use CVAT's
    accuracy, each control's share of the annotator's one comparison
    (:func:`~labelgate.engine.report_split.split_report`).

    Args:
        aset: the multi-annotator set.
        names: the annotators scored.
        settings: comparison settings.
        reference: the annotator taken as ground truth.
        reports: each annotator's :func:`~labelgate.engine.compare` with ``reference`` (a
            quality run's); the missing ones are compared here, once each.
    """
    from labelgate.engine import compare

    parts = aset.split_by_annotator()
    if reference not in parts:
        return {}
    worked = {n: parts[n].items.id for n in [reference, *names] if n in parts}
    names = [n for n in names if n in worked and n != reference]
    whole = dict(reports or {})

    def report_of(n: str) -> Report:
        if n not in whole:
            whole[n] = compare(parts[reference], parts[n], settings)
        return whole[n]

    out: dict[str, ControlScore] = {}
    for ci, control in scored_controls(aset):
        answers = _answers(aset, ci, control)
        family = _family(control, answers)
        if family == "region":
            labels = {lab.name for lab in aset.schema.labels if lab.control == control.name}
            acc = _Pairs()
            per_annotator = {}
            counts: dict[str, dict[str, int]] = {}
            conflicts: dict[str, list[dict[str, Any]]] = {}
            drew = {n: bool((parts[n].annotations.control == ci).any()) for n in worked}
            for n in names:
                if not drew[reference] and not drew[n]:
                    continue
                part = split_report(report_of(n), labels)
                counts[n] = {
                    "valid_count": part.valid_count,
                    "ds_count": part.ds_count,
                    "gt_count": part.gt_count,
                }
                conflicts[n] = part.conflicts
                shared = set(np.intersect1d(worked[reference], worked[n]).tolist())
                for frame, accuracy in part.frame_accuracy.items():
                    # A task where neither drew a region of this control says nothing about it.
                    if frame in shared:
                        acc.add((n,), frame, accuracy)
                per_annotator[n] = part.accuracy
                acc.pairs += 1
            if acc.pairs:
                score = acc.score(
                    control,
                    family,
                    value=float(np.mean(list(per_annotator.values()))),
                    per_annotator=per_annotator,
                    counts=counts,
                )
                out[control.name] = replace(score, metric="accuracy", conflicts=conflicts)
            continue
        if reference not in answers:
            continue
        exact, partial = _compare_answers(family, answers, worked, [(reference, n) for n in names])
        # Per annotator: only their own pairs with the reference (not the reference's row).
        exact_by = {n: float(np.mean(v)) for n, v in exact.annotators.items() if n != reference}
        details: dict[str, Any] = {}
        if family == "span" and partial.values:
            details["span_f1_partial"] = {
                n: float(np.mean(v)) for n, v in partial.annotators.items() if n != reference
            }
        if exact.values:
            out[control.name] = exact.score(control, family, per_annotator=exact_by, **details)
    return out


def headline(scores: Mapping[str, ControlScore]) -> float | None:
    """A project's headline: the mean of its controls' scores."""
    values = [s.value for s in scores.values() if s.value is not None]
    return float(np.mean(values)) if values else None


def annotator_headline(scores: Mapping[str, ControlScore]) -> dict[str, float]:
    """Per annotator, the mean of their scores over the controls they were scored on."""
    return _group_means((n, v) for s in scores.values() for n, v in s.per_annotator.items())


def item_annotator_headline(
    scores: Mapping[str, ControlScore], exclude: str | None = None
) -> dict[int, dict[str, float]]:
    """Per item and annotator, the mean of their scores over the controls on that item."""
    by: dict[int, list[tuple[str, float]]] = {}
    for s in scores.values():
        for item, per in s.per_item_annotator.items():
            by.setdefault(item, []).extend((n, v) for n, v in per.items() if n != exclude)
    return {i: _group_means(pairs) for i, pairs in sorted(by.items()) if pairs}


def item_headline(scores: Mapping[str, ControlScore]) -> dict[int, float]:
    """Per item, the mean of its controls' scores (controls answered on that item)."""
    return _group_means((i, v) for s in scores.values() for i, v in s.per_item.items())


def _group_means(pairs: Iterable[tuple[K, float]]) -> dict[K, float]:
    """The mean of the values of each key, keys sorted (the headlines' one reduction)."""
    by: dict[K, list[float]] = {}
    for key, value in pairs:
        by.setdefault(key, []).append(value)
    return {key: float(np.mean(v)) for key, v in sorted(by.items())}


def annotator_summary(
    scores: Mapping[str, ControlScore], name: str, n_boot: int = 200, seed: int = 0
) -> dict[str, Any] | None:
    """One annotator's headline over the controls, its 95% interval (resampling items) and
    the per-control values; None when no control scored them."""
    from labelgate.stats import cluster_bootstrap_mean

    per_control = {
        c: {"metric": s.metric, "value": s.per_annotator[name]}
        for c, s in scores.items()
        if name in s.per_annotator
    }
    if not per_control:
        return None
    items = item_annotator_headline(scores)
    pairs = [(i, per[name]) for i, per in items.items() if name in per]
    ci = cluster_bootstrap_mean(
        np.array([i for i, _ in pairs], dtype=np.int64),
        np.array([v for _, v in pairs], dtype=float),
        n_boot=n_boot,
        seed=seed,
    )
    return {
        "value": float(np.mean([v["value"] for v in per_control.values()])),
        "ci95": list(ci) if ci else None,
        "per_control": per_control,
    }
