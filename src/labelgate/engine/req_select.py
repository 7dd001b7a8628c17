"""What one requirement scores: candidates of its type, narrowed by its filter (§3.2 step 1).

Types are evaluated separately (a GT polygon never pairs with a DS mask). For
``skeleton_keypoint`` each skeleton is first flattened into per-keypoint ``points``
annotations labelled ``parent.sublabel`` (:func:`flatten_skeletons`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labelgate.arrays import IntArray
from labelgate.engine.annotation_filter import TYPE_KIND, filter_table
from labelgate.engine.compare import COMPARED_KINDS
from labelgate.engine.requirements import ALL_TYPES, ResolvedRequirement
from labelgate.model import (
    ABSENT,
    HIDDEN,
    Annotations,
    AnnotationSet,
    Kind,
    Label,
    LabelSchema,
)


def keypoint_label_names(schema: LabelSchema) -> list[str]:
    """``parent.sublabel`` names of every skeleton point in ``schema``, in schema order."""
    return [f"{lb.name}.{s.name}" for lb in schema.labels for s in lb.sublabels]


def flatten_skeletons(aset: AnnotationSet) -> tuple[AnnotationSet, IntArray]:
    """One ``points`` annotation per present skeleton point.

    Each keypoint takes the sublabel as its label (``parent.sublabel``), its skeleton's group
    (a skeleton without a group gets a new one of its own, so its points stay together for the
    group-relative point size), its visibility (hidden points are occluded) and its skeleton's
    object id, origin and annotator. Absent points are dropped.

    Returns:
        (the flattened set, whose schema holds only the keypoint labels; for each keypoint
        the row of its skeleton in ``aset.annotations``).
    """
    ann = aset.annotations
    offsets = np.concatenate([[0], np.cumsum([len(lb.sublabels) for lb in aset.schema.labels])])
    schema = LabelSchema(
        tuple(Label(name=n, kind="points") for n in keypoint_label_names(aset.schema))
    )
    sk = np.flatnonzero(ann.kind == Kind.SKELETON)
    npts = ann.point_offsets[sk + 1] - ann.point_offsets[sk]
    parent = np.repeat(sk, npts)
    point = (
        np.concatenate(
            [
                np.arange(a, b)
                for a, b in zip(ann.point_offsets[sk], ann.point_offsets[sk + 1], strict=True)
            ]
        )
        if len(sk)
        else np.zeros(0, np.int64)
    ).astype(np.int64)
    local = point - ann.point_offsets[parent]
    keep = ann.vis[point] != ABSENT
    parent, point, local = parent[keep], point[keep], local[keep]
    n = len(parent)
    # Synthetic groups start above every real one so they never merge with a real group.
    top = int(ann.group.max()) + 1 if len(ann) else 1
    group = np.where(ann.group[parent] > 0, ann.group[parent], top + parent)
    xy = ann.points[point]
    vis = ann.vis[point]
    flat = Annotations(
        item=ann.item[parent],
        kind=np.full(n, int(Kind.POINTS), np.int8),
        label=(offsets[ann.label[parent]] + local).astype(np.int32),
        bbox=np.concatenate([xy, xy], axis=1).reshape(n, 4),
        rotation=np.zeros(n),
        z_order=ann.z_order[parent],
        group=group.astype(np.int64),
        occluded=vis == HIDDEN,
        source_id=ann.source_id[parent],
        source_type=ann.source_type[parent],
        origin=ann.origin[parent],
        annotator=ann.annotator[parent],
        control=ann.control[parent],
        score=ann.score[parent],
        number=np.full(n, np.nan),
        span=np.full((n, 2), np.nan),
        text=np.full(n, None, dtype=object),
        source_ref=ann.source_ref[parent],
        point_offsets=np.arange(n + 1, dtype=np.int64),
        points=xy.reshape(n, 2),
        vis=vis.astype(np.int8),
        rle_offsets=np.zeros(n + 1, np.int64),
        rle=np.zeros(0, np.uint32),
        annotators=ann.annotators,
    )
    return dataclasses.replace(aset, schema=schema, annotations=flat), parent


@dataclass(frozen=True)
class SideSelection:
    """One side's selection for a requirement.

    Attributes:
        selected: the set to compare (only the selected annotations; items unchanged).
        candidate_items: the item of every candidate row (annotations of the type).
        selected_items: the item of every selected row.
        lacking: for each rule attribute name, the items of selected rows that lack it.
    """

    selected: AnnotationSet
    candidate_items: IntArray
    selected_items: IntArray
    lacking: dict[str, IntArray]


def select(
    aset: AnnotationSet, req: ResolvedRequirement, rule_attributes: Sequence[str] = ()
) -> SideSelection:
    """Candidates of ``req``'s type in ``aset``, narrowed by its effective filter.

    Args:
        aset: one side (GT or DS).
        req: the resolved requirement.
        rule_attributes: attribute names of ``req``'s explicit attribute rules, to report
            selected annotations that lack them.
    """
    ann = aset.annotations
    if req.annotation_type == ALL_TYPES:
        cand = ann.select(np.isin(ann.kind, COMPARED_KINDS))
        base = dataclasses.replace(aset, annotations=cand)
        return SideSelection(base, cand.item, cand.item, {})
    flt = req.filter
    if req.annotation_type == "skeleton_keypoint":
        base, parent = flatten_skeletons(aset)
        cand = base.annotations
        if flt.rule is not None:
            table = filter_table(
                cand,
                base.schema.names,
                type_name="points",
                skeleton=(ann, aset.schema.names, parent),
                area=flt.uses_area,
            )
    else:
        cand = ann.select(ann.kind == TYPE_KIND[req.annotation_type])
        base = dataclasses.replace(aset, annotations=cand)
        if flt.rule is not None:
            table = filter_table(cand, aset.schema.names, area=flt.uses_area)
    chosen = cand if flt.rule is None else cand.select(flt.mask(table))
    lacking = {}
    for name in rule_attributes:
        col = chosen.attributes.get(name)
        has = (
            np.zeros(len(chosen), bool)
            if col is None
            else np.fromiter((v is not None for v in col), bool, len(chosen))
        )
        lacking[name] = chosen.item[~has]
    return SideSelection(
        dataclasses.replace(base, annotations=chosen), cand.item, chosen.item, lacking
    )


def compatible_labels(schema: LabelSchema, annotation_type: str) -> list[str]:
    """Labels a requirement's confusion matrix lists: kind ``any`` or the requirement's type
    (skeleton labels for ``skeleton``; every label for the 2.42 preset)."""
    if annotation_type in (ALL_TYPES, "skeleton_keypoint"):
        return schema.names
    return [lb.name for lb in schema.labels if lb.kind in ("any", annotation_type)]
