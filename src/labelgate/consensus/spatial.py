"""Spatial consensus: CVAT 2.42's merge of several annotators' shapes and tags into one set.

1. Every pair of annotators is matched with the comparison engine's matcher (labels ignored,
   same thresholds); matched pairs are edges of a graph.
2. Clusters grow breadth-first: a candidate joins only if the cluster has nothing from its
   annotator yet and it is matched to every member (at most one annotation per annotator).
3. Label vote: the label with the most votes (sum of member scores) wins; clusters whose winner
   has fewer than ``ceil(quorum x annotators)`` votes are dropped. ``method="majority"`` counts
   plain votes; ``method="dawid-skene"`` takes the posterior mode of a Dawid-Skene model fitted
   over all clusters (so annotators who often confuse classes weigh less).
4. Shape: the member whose box has the highest IoU with the cluster's mean box (skeletons take
   the medoid), or a score-weighted average box (``method="fused"``, rectangles).
   Confidence = label share (or posterior) x mean similarity of the representative to the other
   members. Merged objects whose members shared a group get a common new group id.
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
from labelgate.arrays import FloatArray, IntArray, IntegerArray
from labelgate.engine.compare import COMPARED_KINDS
from labelgate.engine.matching import GROUP_CODE, match_annotations
from labelgate.engine.settings import QualitySettings
from labelgate.errors import ValidationError
from labelgate.geometry import box_iou
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
        if n in ann.annotators
    }
    graph: dict[int, dict[int, float]] = defaultdict(dict)
    for a, b in combinations(list(rows_of), 2):
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
    rows: IntArray, who: IntegerArray, graph: dict[int, dict[int, float]]
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


METHODS = ("cvat", "fused", "majority", "dawid-skene")
TAG_METHODS = ("quorum", "majority", "dawid-skene")


def merge(
    aset: AnnotationSet,
    *,
    quorum: float = 0.5,
    iou_threshold: float = 0.4,
    method: str = "cvat",
    annotators: list[str] | None = None,
    tag_method: str | None = None,
) -> AnnotationSet:
    """Merge several annotators into one consensus set (annotator ``"consensus"``).

    Args:
        aset: a multi-annotator set.
        quorum: share of annotators a label (or attribute value) needs (CVAT default 0.5).
        iou_threshold: matching threshold (CVAT consensus default 0.4).
        method: how a cluster's label and shape are chosen:
            ``"cvat"``: score-weighted label vote, representative shape (CVAT 2.42);
            ``"fused"``: as cvat, but rectangles get the score-weighted mean box;
            ``"majority"``: unweighted label vote, representative shape;
            ``"dawid-skene"``: label = Dawid-Skene posterior mode over all clusters (annotators
            who confuse classes weigh less); the quorum then applies to the cluster size.
        annotators: who takes part (default: everyone but ground truth and predictions).
        tag_method: image tags by CVAT's ``"quorum"`` rule (every label with enough votes), by
            ``"majority"`` vote or by ``"dawid-skene"`` (one tag per item, score = posterior).
            Default: ``"quorum"`` for cvat/fused, else the same as ``method``.

    Returns:
        The merged set; each row's ``score`` is its confidence (label share or posterior x
        mean similarity of the representative to the other members).

    Raises:
        ValidationError: bad quorum/method or no annotator.
    """
    if not 0 < quorum <= 1:
        raise ValidationError(f"quorum={quorum!r} must be in (0, 1]")
    if method not in METHODS:
        raise ValidationError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if tag_method is None:
        tag_method = method if method in TAG_METHODS else "quorum"
    if tag_method not in TAG_METHODS:
        raise ValidationError(
            f"tag_method must be 'quorum', 'majority' or 'dawid-skene', got {tag_method!r}"
        )
    ann = aset.annotations
    # Annotators who submitted nothing still count towards the quorum.
    known = list(ann.annotators) + sorted(
        {s.annotator for s in aset.submissions} - set(ann.annotators)
    )
    names = annotators or [
        n for n in known if n and n != GT_ANNOTATOR and not n.startswith(PREDICTION_PREFIX)
    ]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValidationError(f"{aset.name}: unknown annotators {unknown}")
    if not names:
        raise ValidationError(f"{aset.name}: no annotators to merge")
    n_src = len(names)
    need = math.ceil(quorum * n_src)
    settings = QualitySettings(iou_threshold=iou_threshold, panoptic_comparison=False)
    graph = _edges(aset, names, settings)
    ids = np.array([ann.annotators.index(n) for n in names if n in ann.annotators], dtype=np.int64)
    who = ann.annotator
    weights = np.where(np.isnan(ann.score), 1.0, ann.score)
    participating = np.isin(who, ids)
    spatial = participating & np.isin(ann.kind, COMPARED_KINDS) & (ann.kind != Kind.TAG)
    clusters = _clusters(np.flatnonzero(spatial), who, graph)
    decided = _cluster_labels(ann, clusters, weights, ids, method, need, n_src)
    dropped = _dropped(ann, clusters, decided)
    rows: list[dict[str, Any]] = []
    for cluster, (label, share) in zip(clusters, decided, strict=True):
        if label < 0:
            continue
        members = np.array(cluster)
        rep = _representative(ann, members, graph)
        sims = [graph[rep][m] for m in cluster if m != rep]
        shape_score = float(np.mean(sims)) if sims else 1.0
        bbox = ann.bbox[rep]
        if method == "fused" and ann.kind[rep] == Kind.RECTANGLE:
            w = weights[members]
            bbox = (ann.bbox[members] * w[:, None]).sum(0) / w.sum()
        rows.append(
            {
                "members": members,
                "item": int(ann.item[rep]),
                "kind": int(ann.kind[rep]),
                "label": label,
                "bbox": bbox,
                "points": ann.points_of(rep),
                "vis": ann.vis_of(rep),
                "rle": ann.rle_of(rep) if ann.kind[rep] == Kind.MASK else None,
                "rotation": float(ann.rotation[rep]),
                "z_order": int(ann.z_order[members].max()),
                "source_id": int(ann.source_id[rep]),
                "score": share * shape_score,
                "attributes": _vote_attributes(ann, members, need) or None,
            }
        )
    groups = _merged_groups(ann, [r.pop("members") for r in rows])
    out = AnnotationsBuilder([CONSENSUS])
    for row, group in zip(rows, groups, strict=True):
        out.add(**row, group=group, origin=Origin.CONSENSUS, annotator=0)
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
                "tag_method": tag_method,
                **dropped,
            },
        },
    )


def _dropped(
    ann: Any, clusters: list[list[int]], decided: list[tuple[int, float]]
) -> dict[str, Any]:
    """Clusters left out for missing the quorum, and how many of them were ties between labels
    (reported, never dropped silently)."""
    out = [c for c, (label, _) in zip(clusters, decided, strict=True) if label < 0]
    ties = 0
    for c in out:
        counts = Counter(int(ann.label[r]) for r in c).most_common()
        ties += len(counts) > 1 and counts[0][1] == counts[1][1]
    return {
        "dropped_clusters": len(out),
        "dropped_ties": int(ties),
        "dropped_items": sorted({int(ann.item[c[0]]) for c in out}),
    }


def _cluster_labels(
    ann: Any,
    clusters: list[list[int]],
    weights: FloatArray,
    ids: IntArray,
    method: str,
    need: int,
    n_src: int,
) -> list[tuple[int, float]]:
    """(label, label share) per cluster; label -1 when the cluster misses the quorum."""
    if method == "dawid-skene":
        return _dawid_skene_labels(ann, clusters, ids, need)
    out = []
    for cluster in clusters:
        votes: dict[int, float] = defaultdict(float)
        for r in cluster:
            votes[int(ann.label[r])] += float(weights[r]) if method in ("cvat", "fused") else 1.0
        # Highest vote wins; ties go to the lowest label id so reruns are deterministic.
        label, top = max(votes.items(), key=lambda kv: (kv[1], -kv[0]))
        out.append((label, top / n_src) if top >= need else (-1, 0.0))
    return out


def _dawid_skene_labels(
    ann: Any, clusters: list[list[int]], ids: IntArray, need: int
) -> list[tuple[int, float]]:
    """Cluster labels from Dawid-Skene over (clusters x annotators) label codes."""
    from labelgate.consensus.categorical import DawidSkene

    if not clusters:
        return []
    rows = np.concatenate([np.array(c) for c in clusters])
    owner = np.repeat(np.arange(len(clusters)), [len(c) for c in clusters])
    labels, codes_flat = np.unique(ann.label[rows], return_inverse=True)
    codes = np.full((len(clusters), len(ids)), -1, dtype=np.int64)
    codes[owner, np.searchsorted(np.sort(ids), ann.annotator[rows])] = codes_flat
    ds = DawidSkene(n_classes=len(labels)).fit(codes)
    size = (codes >= 0).sum(1)
    best = ds.posteriors_.max(1)
    return [
        (int(labels[ds.labels_[c]]), float(best[c])) if size[c] >= need else (-1, 0.0)
        for c in range(len(clusters))
    ]


def _merged_groups(ann: Any, members: list[IntArray]) -> list[int]:
    """New group ids: merged objects whose members shared an (annotator, group) get one id."""
    parent = list(range(len(members)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first: dict[tuple[int, int], int] = {}
    for obj, rows in enumerate(members):
        for r in rows[ann.group[rows] > 0]:
            key = (int(ann.annotator[r]), int(ann.group[r]))
            if key in first:
                parent[find(obj)] = find(first[key])
            else:
                first[key] = obj
    roots = [find(o) for o in range(len(members))]
    sizes = Counter(roots)
    ids: dict[int, int] = {}
    out = []
    for root in roots:
        if sizes[root] < 2:
            out.append(0)  # a group of one object carries no information
        else:
            out.append(ids.setdefault(root, len(ids) + 1))
    return out


def _categorical_tags(
    out: AnnotationsBuilder, aset: AnnotationSet, names: list[str], tag_method: str
) -> None:
    """One consensus tag per item from majority vote or Dawid-Skene posteriors."""
    from labelgate.agreement.report import tag_controls

    for control in tag_controls(aset):  # one vote per control: two controls are two answers
        _control_tags(out, aset, names, tag_method, control)


def _control_tags(
    out: AnnotationsBuilder,
    aset: AnnotationSet,
    names: list[str],
    tag_method: str,
    control: int | None,
) -> None:
    from labelgate.agreement.report import tag_codes
    from labelgate.consensus.categorical import DawidSkene, MajorityVote

    codes, classes, items = tag_codes(aset, names, control)
    if not classes:
        return
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
                control=-1 if control is None else control,
            )


def _representative(ann: Any, members: IntArray, graph: dict[int, dict[int, float]]) -> int:
    if len(members) == 1:
        return int(members[0])
    if ann.kind[members[0]] == Kind.SKELETON:
        cost = [np.mean([1 - graph[m].get(o, 0.0) for o in members if o != m]) for m in members]
        return int(members[int(np.argmin(cost))])
    mean_box = ann.bbox[members].mean(0, keepdims=True)
    return int(members[int(np.argmax(box_iou(ann.bbox[members], mean_box)[:, 0]))])


def _vote_attributes(ann: Any, members: IntArray, need: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, col in ann.attributes.items():
        values = [col[m] for m in members if col[m] is not None]
        if not values:
            continue
        value, n = Counter(values).most_common(1)[0]
        if n >= need:
            out[key] = value
    return out
