"""Spatial consensus: CVAT 2.42's merge of several annotators' shapes and tags into one set.

1. Every pair of annotators is matched with the comparison engine's matcher (labels ignored,
   same thresholds); matched pairs are edges of a graph.
2. Clusters grow breadth-first: a candidate joins only if the cluster has nothing from its
   annotator yet and it is matched to every member (at most one annotation per annotator).
3. Label vote: the label with the most votes (sum of member scores) wins; clusters whose winner
   has fewer than ``ceil(quorum x annotators)`` votes are dropped.
4. Shape: the member whose box has the highest IoU with the cluster's mean box (``method="cvat"``;
   skeletons take the medoid), or a score-weighted average box (``method="fused"``, rectangles).
   Confidence = label share x mean similarity of the representative to the other members.
5. Attributes: majority vote per attribute, dropped below the quorum. Tags: every label with at
   least the quorum of votes becomes a tag, with score votes / annotators.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict, deque
from itertools import combinations
from typing import Any

import numpy as np

from labelgate.adapters import GT_ANNOTATOR, PREDICTION_PREFIX
from labelgate.engine.compare import COMPARED_KINDS
from labelgate.engine.matching import GROUP_CODE, match_annotations
from labelgate.engine.settings import QualitySettings
from labelgate.engine.similarity import box_iou
from labelgate.errors import ValidationError
from labelgate.model import (
    AnnotationsBuilder,
    AnnotationSet,
    Kind,
    Origin,
    SourceType,
)

CONSENSUS = "consensus"


def _edges(
    aset: AnnotationSet, names: list[str], settings: QualitySettings
) -> dict[int, dict[int, float]]:
    """Similarity of every matched pair of global rows across annotator pairs (labels ignored)."""
    ann = aset.annotations
    rows_of = {
        n: np.flatnonzero(
            (ann.annotator == ann.annotators.index(n)) & np.isin(ann.kind, COMPARED_KINDS)
        )
        for n in names
    }
    graph: dict[int, dict[int, float]] = defaultdict(dict)
    for a, b in combinations(names, 2):
        ra, rb = rows_of[a], rows_of[b]
        m = match_annotations(ann.take(ra), ann.take(rb), aset.items, settings)
        shape = m.type_group != GROUP_CODE["tag"]
        for g, d, s in zip(
            ra[m.gt_row[shape]], rb[m.ds_row[shape]], m.similarity[shape], strict=True
        ):
            graph[int(g)][int(d)] = float(s)
            graph[int(d)][int(g)] = float(s)
    return graph


def _clusters(
    rows: np.ndarray, who: np.ndarray, graph: dict[int, dict[int, float]]
) -> list[list[int]]:
    seen: set[int] = set()
    out = []
    for start in rows.tolist():
        if start in seen:
            continue
        cluster = [start]
        seen.add(start)
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for nb in sorted(graph.get(node, {})):
                if nb in seen or any(who[nb] == who[c] for c in cluster):
                    continue
                if all(nb in graph.get(c, {}) for c in cluster):
                    cluster.append(nb)
                    seen.add(nb)
                    queue.append(nb)
        out.append(cluster)
    return out


def merge(
    aset: AnnotationSet,
    *,
    quorum: float = 0.5,
    iou_threshold: float = 0.4,
    method: str = "cvat",
    annotators: list[str] | None = None,
    tag_method: str = "quorum",
) -> AnnotationSet:
    """Merge several annotators into one consensus set (annotator ``"consensus"``).

    Args:
        aset: a multi-annotator set.
        quorum: share of annotators a label (or attribute value) needs (CVAT default 0.5).
        iou_threshold: matching threshold (CVAT consensus default 0.4).
        method: ``"cvat"`` (representative shape) or ``"fused"`` (score-weighted mean box for
            rectangles).
        annotators: who takes part (default: everyone but ground truth and predictions).
        tag_method: image tags by CVAT's ``"quorum"`` rule (every label with enough votes), by
            ``"majority"`` vote or by ``"dawid-skene"`` (one tag per item, score = posterior).

    Returns:
        The merged set; each row's ``score`` is its confidence.

    Raises:
        ValidationError: bad quorum/method or no annotator.
    """
    if not 0 < quorum <= 1:
        raise ValidationError(f"quorum={quorum!r} must be in (0, 1]")
    if method not in ("cvat", "fused"):
        raise ValidationError(f"method must be 'cvat' or 'fused', got {method!r}")
    if tag_method not in ("quorum", "majority", "dawid-skene"):
        raise ValidationError(
            f"tag_method must be 'quorum', 'majority' or 'dawid-skene', got {tag_method!r}"
        )
    ann = aset.annotations
    names = annotators or [
        n for n in ann.annotators if n and n != GT_ANNOTATOR and not n.startswith(PREDICTION_PREFIX)
    ]
    if not names:
        raise ValidationError(f"{aset.name}: no annotators to merge")
    n_src = len(names)
    need = math.ceil(quorum * n_src)
    settings = QualitySettings(iou_threshold=iou_threshold, panoptic_comparison=False)
    graph = _edges(aset, names, settings)
    ids = np.array([ann.annotators.index(n) for n in names])
    who = ann.annotator
    out = AnnotationsBuilder([CONSENSUS])
    weights = np.where(np.isnan(ann.score), 1.0, ann.score)
    participating = np.isin(who, ids)
    spatial = participating & np.isin(ann.kind, COMPARED_KINDS) & (ann.kind != Kind.TAG)
    for cluster in _clusters(np.flatnonzero(spatial), who, graph):
        votes: Counter[int] = Counter()
        for r in cluster:
            votes[int(ann.label[r])] += weights[r]
        label, top = max(votes.items(), key=lambda kv: (kv[1], -kv[0]))
        if top < need:
            continue
        members = np.array(cluster)
        rep = _representative(ann, members, graph)
        sims = [graph[rep][m] for m in cluster if m != rep]
        shape_score = float(np.mean(sims)) if sims else 1.0
        attrs = _vote_attributes(ann, members, need)
        bbox = ann.bbox[rep]
        if method == "fused" and ann.kind[rep] == Kind.RECTANGLE:
            w = weights[members]
            bbox = (ann.bbox[members] * w[:, None]).sum(0) / w.sum()
        out.add(
            int(ann.item[rep]),
            int(ann.kind[rep]),
            label,
            bbox=bbox,
            points=ann.points_of(rep),
            vis=ann.vis_of(rep),
            rle=ann.rle_of(rep) if ann.kind[rep] == Kind.MASK else None,
            rotation=float(ann.rotation[rep]),
            z_order=int(ann.z_order[members].max()),
            source_id=int(ann.source_id[rep]),
            origin=Origin.CONSENSUS,
            annotator=0,
            score=(top / n_src) * shape_score,
            attributes=attrs or None,
        )
    tags = np.flatnonzero(participating & (ann.kind == Kind.TAG))
    if tag_method == "quorum":
        by_item: dict[int, Counter[int]] = defaultdict(Counter)
        for r in tags:
            by_item[int(ann.item[r])][int(ann.label[r])] += 1
        for item, counts in sorted(by_item.items()):
            for label, v in sorted(counts.items()):
                if v >= need:
                    out.add(
                        item,
                        Kind.TAG,
                        label,
                        source_type=SourceType.TAG,
                        origin=Origin.CONSENSUS,
                        annotator=0,
                        score=v / n_src,
                    )
    elif len(tags):
        _categorical_tags(out, aset, names, tag_method)
    return aset.replace(
        name=f"{aset.name}:consensus",
        annotations=out.build(),
        submissions=(),
        meta={
            **dict(aset.meta),
            "consensus": {
                "annotators": names,
                "quorum": quorum,
                "iou_threshold": iou_threshold,
                "method": method,
            },
        },
    )


def _categorical_tags(
    out: AnnotationsBuilder, aset: AnnotationSet, names: list[str], tag_method: str
) -> None:
    """One consensus tag per item from majority vote or Dawid-Skene posteriors."""
    from labelgate.agreement.report import tag_codes
    from labelgate.consensus.categorical import DawidSkene, MajorityVote

    codes, classes, items = tag_codes(aset, names)
    labels = [aset.schema.index(c) for c in classes]
    if tag_method == "majority":
        mv = MajorityVote(n_classes=len(classes)).fit(codes)
        winners, scores = mv.labels_, mv.confidence_
    else:
        ds = DawidSkene(n_classes=len(classes)).fit(codes)
        winners, scores = ds.labels_, ds.posteriors_.max(1)
    for item, w, sc in zip(items.tolist(), winners.tolist(), scores.tolist(), strict=True):
        if w >= 0:
            out.add(
                item,
                Kind.TAG,
                labels[w],
                source_type=SourceType.TAG,
                origin=Origin.CONSENSUS,
                annotator=0,
                score=sc,
            )


def _representative(ann: Any, members: np.ndarray, graph: dict[int, dict[int, float]]) -> int:
    if len(members) == 1:
        return int(members[0])
    if ann.kind[members[0]] == Kind.SKELETON:
        cost = [np.mean([1 - graph[m].get(o, 0.0) for o in members if o != m]) for m in members]
        return int(members[int(np.argmin(cost))])
    mean_box = ann.bbox[members].mean(0, keepdims=True)
    return int(members[int(np.argmax(box_iou(ann.bbox[members], mean_box)[:, 0]))])


def _vote_attributes(ann: Any, members: np.ndarray, need: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, col in ann.attributes.items():
        values = [col[m] for m in members if col[m] is not None]
        if not values:
            continue
        value, n = Counter(values).most_common(1)[0]
        if n >= need:
            out[key] = value
    return out
