"""Inter-annotator agreement report for one multi-annotator annotation set.

Spatial and tag agreement between two annotators reuses the comparison engine's matcher
(:func:`labelgate.engine.match_annotations`): matched-F1 = 2·(label-equal matches) / (n_A + n_B)
and mean IoU/OKS over matched shape pairs. Image-level tags also feed the categorical
coefficients (Krippendorff's α, Fleiss' κ, Gwet's AC1, percent agreement) with bootstrap
intervals over items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from labelgate.adapters import GT_ANNOTATOR, PREDICTION_PREFIX
from labelgate.agreement.categorical import (
    bootstrap,
    cohen_kappa,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    marginals,
    per_class_agreement,
    percent_agreement,
)
from labelgate.agreement.text import number_alpha, span_f1, text_similarity
from labelgate.arrays import BoolArray, FloatArray, IntArray
from labelgate.engine.compare import COMPARED_KINDS
from labelgate.engine.matching import GROUP_CODE, match_annotations
from labelgate.engine.settings import QualitySettings
from labelgate.errors import ValidationError
from labelgate.model import Annotations, AnnotationSet, Kind
from labelgate.stats import cluster_bootstrap_mean


def _items_of(part: AnnotationSet) -> IntArray:
    return part.items.id


def pair_agreement(
    a: AnnotationSet,
    b: AnnotationSet,
    settings: QualitySettings | None = None,
    *,
    by_control: bool = False,
) -> dict[str, Any]:
    """Agreement of two annotators on the items both worked on.

    Args:
        a, b: the two annotators' sets.
        settings: matching thresholds (CVAT defaults).
        by_control: add ``per_control``: Label Studio control index → the same fields
            computed on that control's rows only (matching keeps controls apart, so this is
            the agreement of the control alone, from the same matches).

    Returns:
        ``{"items", "f1", "mean_iou", "mean_iou_ci95", "matched", "n_a", "n_b",
        "per_item": {item: f1}, "per_item_mean_iou", "per_label": {label: f1},
        "per_label_mean_iou", "iou_items", "iou_values"}`` (the last two: item and similarity
        (IoU/OKS) of every label-equal matched shape pair, as arrays). Items both left empty
        count as full agreement.
    """
    shared = np.intersect1d(_items_of(a), _items_of(b))
    keep_a = np.isin(a.annotations.item, shared) & np.isin(a.annotations.kind, COMPARED_KINDS)
    keep_b = np.isin(b.annotations.item, shared) & np.isin(b.annotations.kind, COMPARED_KINDS)
    ann_a, ann_b = a.annotations.select(keep_a), b.annotations.select(keep_b)
    m = match_annotations(ann_a, ann_b, a.items, settings)
    pairs = _Pairs(m.gt_row, m.label_equal, m.type_group != GROUP_CODE["tag"], m.similarity)
    out = _pair_stats(ann_a, ann_b, pairs, shared, a.schema.names)
    if by_control:
        out["per_control"] = {
            int(c): _pair_stats(
                *_control_share(ann_a, ann_b, pairs, int(c)), shared, a.schema.names
            )
            for c in np.union1d(ann_a.control, ann_b.control)
            if c >= 0
        }
    return out


@dataclass(frozen=True)
class _Pairs:
    """The matched pairs :func:`_pair_stats` reads: A's row, label-equal, shape (not tag),
    similarity."""

    gt_row: IntArray
    good: BoolArray
    shape: BoolArray
    similarity: FloatArray


def _control_share(
    ann_a: Annotations, ann_b: Annotations, pairs: _Pairs, control: int
) -> tuple[Annotations, Annotations, _Pairs]:
    """One control's rows of both sides and its pairs, rows renumbered (pairs never cross
    controls)."""
    keep_a = ann_a.control == control
    at = np.cumsum(keep_a) - 1
    p = keep_a[pairs.gt_row]
    return (
        ann_a.select(keep_a),
        ann_b.select(ann_b.control == control),
        _Pairs(at[pairs.gt_row[p]], pairs.good[p], pairs.shape[p], pairs.similarity[p]),
    )


def _pair_stats(
    ann_a: Annotations, ann_b: Annotations, pairs: _Pairs, shared: IntArray, names: Sequence[str]
) -> dict[str, Any]:
    """:func:`pair_agreement`'s fields from the compared rows and their matched pairs."""
    good = pairs.good
    matched = int(good.sum())
    n_a, n_b = len(ann_a), len(ann_b)
    ious = pairs.similarity[pairs.shape & good]
    iou_items = ann_a.item[pairs.gt_row[pairs.shape & good]]
    iou_labels = ann_a.label[pairs.gt_row[pairs.shape & good]]
    # Per item: 2·matches / (n_a + n_b), 1.0 where both are empty.
    idx = {int(x): i for i, x in enumerate(shared)}
    pos = np.searchsorted(shared, ann_a.item[pairs.gt_row[good]]) if matched else np.zeros(0, int)
    hits = np.bincount(pos, minlength=len(shared)).astype(float)
    na = np.bincount(np.searchsorted(shared, ann_a.item), minlength=len(shared)).astype(float)
    nb = np.bincount(np.searchsorted(shared, ann_b.item), minlength=len(shared)).astype(float)
    den = na + nb
    per_item = np.where(den > 0, 2 * hits / np.maximum(den, 1), 1.0)
    per_label: dict[str, float] = {}
    for lab in np.union1d(ann_a.label, ann_b.label):
        if lab < 0:
            continue
        la, lb = int((ann_a.label == lab).sum()), int((ann_b.label == lab).sum())
        hit = int((good & (ann_a.label[pairs.gt_row] == lab)).sum())
        per_label[names[int(lab)]] = 2 * hit / (la + lb) if la + lb else 1.0
    return {
        "items": len(shared),
        "f1": 2 * matched / (n_a + n_b) if n_a + n_b else (1.0 if len(shared) else None),
        "mean_iou": float(ious.mean()) if len(ious) else None,
        "mean_iou_ci95": _item_bootstrap_mean(iou_items, ious),
        "matched": matched,
        "n_a": n_a,
        "n_b": n_b,
        "per_item": {int(k): float(per_item[i]) for k, i in idx.items()},
        "per_item_mean_iou": _per_item_mean(shared, iou_items, ious),
        "per_label": per_label,
        "per_label_mean_iou": {
            names[int(lab)]: float(ious[iou_labels == lab].mean()) for lab in np.unique(iou_labels)
        },
        "iou_items": iou_items,
        "iou_values": ious,
    }


def _per_item_mean(shared: IntArray, items: IntArray, values: FloatArray) -> dict[int, float]:
    pos = np.searchsorted(shared, items)
    sums = np.bincount(pos, weights=values, minlength=len(shared))
    counts = np.bincount(pos, minlength=len(shared))
    return {int(shared[i]): float(sums[i] / counts[i]) for i in np.flatnonzero(counts)}


def _item_bootstrap_mean(items: IntArray, values: FloatArray) -> list[float] | None:
    """95% interval of a mean by resampling whole items (values of one item move together)."""
    ci = cluster_bootstrap_mean(items, values)
    return list(ci) if ci else None


def text_agreement(parts: dict[str, AnnotationSet], names: list[str]) -> dict[str, Any]:
    """Span F1 (exact/partial), TextArea similarity and Rating/Number interval α, if present."""
    out: dict[str, Any] = {}
    kinds = (Kind.SPAN, Kind.TEXT, Kind.NUMBER)
    if not any(np.isin(parts[n].annotations.kind, kinds).any() for n in names):
        return out  # an image project: nothing to loop over
    spans: dict[str, list[float]] = {"exact": [], "partial": []}
    texts: list[float] = []
    for a, b in combinations(names, 2):
        pa, pb = parts[a].annotations, parts[b].annotations
        shared = np.intersect1d(parts[a].items.id, parts[b].items.id)
        for item in shared:
            ra, rb = pa.for_item(int(item)), pb.for_item(int(item))
            sa, sb = ra.select(ra.kind == Kind.SPAN), rb.select(rb.kind == Kind.SPAN)
            if len(sa) or len(sb):
                for mode in spans:
                    spans[mode].append(span_f1(sa.span, sa.label, sb.span, sb.label, mode))
            ta, tb = ra.select(ra.kind == Kind.TEXT), rb.select(rb.kind == Kind.TEXT)
            for ctrl in np.union1d(ta.control, tb.control):
                xa = "\n".join(str(t) for t in ta.text[ta.control == ctrl] if t is not None)
                xb = "\n".join(str(t) for t in tb.text[tb.control == ctrl] if t is not None)
                texts.append(text_similarity(xa, xb))
    if spans["exact"]:
        out["spans"] = {f"{k}_f1": float(np.mean(v)) for k, v in spans.items()}
        out["spans"]["item_pairs"] = len(spans["exact"])
    if texts:
        out["text"] = {"mean_similarity": float(np.mean(texts)), "item_pairs": len(texts)}
    numbers: dict[str, Any] = {}
    items = np.unique(np.concatenate([parts[n].items.id for n in names]))
    controls = np.unique(
        np.concatenate(
            [parts[n].annotations.control[parts[n].annotations.kind == Kind.NUMBER] for n in names]
        )
    )
    for ctrl in controls:
        grid = np.full((len(items), len(names)), np.nan)
        for j, n in enumerate(names):
            ann = parts[n].annotations
            rows = np.flatnonzero((ann.kind == Kind.NUMBER) & (ann.control == ctrl))
            grid[np.searchsorted(items, ann.item[rows]), j] = ann.number[rows]
        key = str(int(ctrl))
        schema = parts[names[0]].schema
        if 0 <= ctrl < len(schema.controls):
            key = schema.controls[int(ctrl)].name
        numbers[key] = number_alpha(grid).to_dict()
    if numbers:
        out["numbers"] = numbers
    return out


def tag_controls(aset: AnnotationSet) -> list[int | None]:
    """The controls whose image-level tags are one variable each (None: a set without controls)."""
    ann = aset.annotations
    found = np.unique(ann.control[ann.kind == Kind.TAG]).tolist()
    return [int(c) if c >= 0 else None for c in found] or [None]


def tag_codes(
    aset: AnnotationSet, annotators: list[str], control: int | None = None
) -> tuple[IntArray, list[str], IntArray]:
    """(items × annotators) codes of image-level tags (first tag per item), -1 when none.

    Args:
        control: only this control's tags (two controls are two variables, never one).

    Returns:
        (codes, class names, item ids).
    """
    ann = aset.annotations
    tags = ann.kind == Kind.TAG
    if control is not None:
        tags &= ann.control == control
    labels = np.unique(ann.label[tags])
    names = [aset.schema.names[int(x)] for x in labels]
    items = aset.items.id
    codes = np.full((len(items), len(annotators)), -1, dtype=np.int64)
    col = {n: i for i, n in enumerate(annotators)}
    for r in np.flatnonzero(tags)[::-1]:  # reversed so the first tag of an item wins
        who = ann.annotators[ann.annotator[r]] if ann.annotator[r] >= 0 else ""
        if who in col:
            codes[np.searchsorted(items, ann.item[r]), col[who]] = int(
                np.searchsorted(labels, ann.label[r])
            )
    return codes, names, items


def agreement_report(
    aset: AnnotationSet,
    settings: QualitySettings | None = None,
    *,
    include_predictions: bool = False,
    include_ground_truth: bool = False,
    n_boot: int = 200,
    seed: int = 0,
    controls: Mapping[str, Any] | None = None,
    pair_results: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Annotator × annotator agreement, per item, per annotator, per label, and tag coefficients.

    Args:
        aset: a set with several annotators (``Annotations.annotator``).
        settings: matching thresholds (CVAT defaults).
        include_predictions / include_ground_truth: treat model and GT as annotators too.
        n_boot, seed: cluster bootstrap for the categorical coefficients.
        controls: :func:`labelgate.agreement.controls.control_agreement` of the same
            annotators when the caller has it already.
        pair_results: :func:`pair_agreement` of each annotator pair ``(a, b)`` (in the
            report's annotator order) when the caller has them already (a quality run).

    Raises:
        ValidationError: fewer than two annotators.
    """
    parts = aset.split_by_annotator()
    names = [
        n
        for n in parts
        if n
        and (include_predictions or not n.startswith(PREDICTION_PREFIX))
        and (include_ground_truth or n != GT_ANNOTATOR)
    ]
    if len(names) < 2:
        raise ValidationError(
            f"{aset.name}: agreement needs at least two annotators, found {names or 'none'}"
        )
    k = len(names)
    f1 = np.eye(k)
    iou = np.full((k, k), np.nan)
    item_scores: dict[int, list[float]] = {}
    pairs = []
    label_scores: dict[str, list[float]] = {}
    label_matrix: dict[str, FloatArray] = {}
    all_iou_items: list[IntArray] = []
    all_ious: list[FloatArray] = []
    item_ious: dict[int, list[float]] = {}
    label_ious: dict[str, list[float]] = {}
    matched: dict[tuple[str, str], Mapping[str, Any]] = dict(pair_results or {})
    for i, j in combinations(range(k), 2):
        key = (names[i], names[j])
        if key not in matched:  # per control too, for the per-control pass below
            matched[key] = pair_agreement(
                parts[names[i]], parts[names[j]], settings, by_control=bool(aset.schema.controls)
            )
        res = matched[key]
        all_iou_items.append(res["iou_items"])
        all_ious.append(res["iou_values"])
        for item, v in res["per_item_mean_iou"].items():
            item_ious.setdefault(item, []).append(v)
        for lab, v in res["per_label_mean_iou"].items():
            label_ious.setdefault(lab, []).append(v)
        pairs.append(
            {
                "a": names[i],
                "b": names[j],
                **{x: res[x] for x in ("items", "f1", "mean_iou", "matched", "n_a", "n_b")},
            }
        )
        value = res["f1"] if res["f1"] is not None else np.nan
        f1[i, j] = f1[j, i] = value
        if res["mean_iou"] is not None:
            iou[i, j] = iou[j, i] = res["mean_iou"]
        for item, v in res["per_item"].items():
            item_scores.setdefault(item, []).append(v)
        for lab, v in res["per_label"].items():
            label_scores.setdefault(lab, []).append(v)
            mat = label_matrix.setdefault(lab, np.eye(k))
            mat[i, j] = mat[j, i] = v
    per_item: list[dict[str, Any]] = sorted(
        (
            {
                "item": it,
                "agreement": float(np.mean(v)),
                "pairs": len(v),
                "mean_iou": float(np.mean(item_ious[it])) if it in item_ious else None,
            }
            for it, v in item_scores.items()
        ),
        key=lambda d: (d["agreement"], d["item"]),
    )
    name_of = dict(zip(aset.items.id.tolist(), aset.items.name.tolist(), strict=True))
    for row in per_item:
        row["name"] = name_of.get(row["item"])
    off = ~np.eye(k, dtype=bool)
    # Per-control agreement: each control its own variable with its own metric.
    from labelgate.agreement.controls import annotator_headline, control_agreement, headline

    if controls is None:
        controls = control_agreement(aset, names, settings, pair_results=matched)
    peers = annotator_headline(controls)
    # peer_agreement: the one per-annotator agreement every view shows (scorecards, agree):
    # the mean over controls where the set has them, else the mean matched-F1 with peers.
    per_annotator = [
        {
            "annotator": names[i],
            "mean_f1_with_peers": _mean_defined(f1[i][off[i]]),
            "peer_agreement": peers.get(names[i]) if controls else _mean_defined(f1[i][off[i]]),
        }
        for i in range(k)
    ]
    pooled = np.concatenate(all_ious) if all_ious else np.zeros(0)
    pooled_items = np.concatenate(all_iou_items) if all_iou_items else np.zeros(0, np.int64)
    # The legacy "tags" block: one classification control only (the first), never a mix.
    codes, classes, _ = tag_codes(aset, names, tag_controls(aset)[0])
    tags: dict[str, Any] = {"classes": classes}
    if (codes >= 0).sum(1).max(initial=0) >= 2:
        stats = {
            "percent_agreement": percent_agreement,
            "krippendorff_alpha": krippendorff_alpha,
            "fleiss_kappa": fleiss_kappa,
            "gwet_ac1": lambda c: gwet_ac1(c, len(classes)),
        }
        tags["coefficients"] = {
            key: bootstrap(fn, codes, n_boot=n_boot, seed=seed).to_dict()
            for key, fn in stats.items()
        }
        tags["marginals"] = dict(zip(classes, marginals(codes, len(classes)).tolist(), strict=True))
        # One-vs-rest alpha per class: a macro average would hide a rare class nobody agrees on.
        tags["per_class"] = {
            classes[c]: coef.to_dict()
            for c, coef in per_class_agreement(codes, len(classes)).items()
        }
        kappa = np.eye(k)
        for i, j in combinations(range(k), 2):
            kappa[i, j] = kappa[j, i] = cohen_kappa(codes[:, i], codes[:, j], len(classes)).value
        tags["cohen_kappa_matrix"] = _clean(kappa)
    return {
        "source": aset.name,
        "annotators": names,
        "matrix": {"f1": _clean(f1), "mean_iou": _clean(iou)},
        "pairs": pairs,
        "per_annotator": per_annotator,
        "per_item": per_item,
        "per_label": {lab: float(np.mean(v)) for lab, v in sorted(label_scores.items())},
        "per_label_matrix": {lab: _clean(m) for lab, m in sorted(label_matrix.items())},
        **text_agreement(parts, names),
        "tags": tags,
        "controls": {name: score.to_dict() for name, score in controls.items()},
        "per_label_mean_iou": {lab: float(np.mean(v)) for lab, v in sorted(label_ious.items())},
        "summary": {
            # The project's headline: the mean of its controls' agreement (matched-F1 where
            # the set has no controls).
            "headline": headline(controls) if controls else _mean_defined(f1[off]),
            "headline_metric": "mean over controls" if controls else "matched_f1",
            "mean_pairwise_f1": _mean_defined(f1[off]),
            "mean_iou": float(pooled.mean()) if len(pooled) else None,
            "mean_iou_ci95": _ci(
                cluster_bootstrap_mean(pooled_items, pooled, n_boot=n_boot, seed=seed)
            ),
            "matched_pairs": len(pooled),
            "items": len(per_item),
            "annotator_pairs": len(pairs),
        },
    }


def agreement_headline(report: Mapping[str, Any] | None) -> float | None:
    """A report's headline agreement (over controls); reports stored before it: matched-F1."""
    if not report:
        return None
    summary = report.get("summary") or {}
    value = summary.get("headline", summary.get("mean_pairwise_f1"))
    return None if value is None else float(value)


def _mean_defined(values: FloatArray) -> float | None:
    """Mean over the defined (non-NaN) values; None when no pair shared an item."""
    ok = ~np.isnan(values)
    return float(values[ok].mean()) if ok.any() else None


def _ci(ci: tuple[float, float] | None) -> list[float] | None:
    return list(ci) if ci else None


def _clean(m: FloatArray) -> list[list[float | None]]:
    return [[None if np.isnan(v) else float(v) for v in row] for row in m]


__all__ = ["agreement_headline", "agreement_report", "pair_agreement", "tag_codes", "tag_controls"]
