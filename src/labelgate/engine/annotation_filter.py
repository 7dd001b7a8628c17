"""CVAT's requirement filter: JSON-logic over annotations, as a boolean mask over the rows.

Variables (CVAT's ``RequirementJsonLogicFilter``; ``cvat-quality-current.md`` §2.7):
``shape.label``, ``shape.type``, ``shape.area``, ``shape.source``, ``shape.occluded``,
``shape.outside``, ``shape.keyframe``, ``shape.track_id``, ``shape.attribute.name`` /
``.value`` (iterated per attribute), ``shape.track`` and ``shape.track.*`` (only for rows that
come from a track), and ``shape.skeleton.*`` (the parent skeleton; ``skeleton_keypoint`` only).
Operators: ``and``, ``or``, ``!``, ``!!``, ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, the
3-argument ``<=`` (between) and ``in``; each comparison names a variable, the other operand is
a literal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelgate.arrays import AnyArray, BoolArray, FloatArray, IntArray, ObjectArray
from labelgate.engine.jsonlogic import COMPARE, Iterator, Table, evaluate, parse_rule
from labelgate.errors import SettingsError
from labelgate.geometry import rle
from labelgate.model import Annotations, Kind, Origin, SourceType

#: The requirement annotation types (CVAT 2.80 ``AnnotationTypeEnum``); polygon and mask apart.
ANNOTATION_TYPES = (
    "tag",
    "rectangle",
    "skeleton",
    "skeleton_keypoint",
    "points",
    "polyline",
    "mask",
    "polygon",
    "ellipse",
)
#: The model kind each type selects (``skeleton_keypoint`` selects flattened skeletons).
TYPE_KIND = {
    "tag": Kind.TAG,
    "rectangle": Kind.RECTANGLE,
    "skeleton": Kind.SKELETON,
    "skeleton_keypoint": Kind.SKELETON,
    "points": Kind.POINTS,
    "polyline": Kind.POLYLINE,
    "mask": Kind.MASK,
    "polygon": Kind.POLYGON,
    "ellipse": Kind.ELLIPSE,
}
_KIND_TYPE = {
    int(Kind.TAG): "tag",
    int(Kind.RECTANGLE): "rectangle",
    int(Kind.SKELETON): "skeleton",
    int(Kind.POINTS): "points",
    int(Kind.POLYLINE): "polyline",
    int(Kind.MASK): "mask",
    int(Kind.POLYGON): "polygon",
    int(Kind.ELLIPSE): "ellipse",
}
#: CVAT's ``source`` text, indexed by the :class:`Origin` code of the origin column.
_SOURCE = np.empty(max(Origin) + 1, dtype=object)
for _origin, _text in {
    Origin.MANUAL: "manual",
    Origin.AUTO: "auto",
    Origin.SEMI_AUTO: "semi-auto",
    Origin.FILE: "file",
    Origin.CONSENSUS: "consensus",
}.items():
    _SOURCE[_origin] = _text
SHAPE_FIELDS = ("label", "type", "area", "source", "occluded", "track_id", "outside", "keyframe")
_ATTRIBUTE_FIELDS = ("name", "value")


def _terms(prefix: str) -> set[str]:
    out = {f"{prefix}.{f}" for f in SHAPE_FIELDS}
    out |= {f"{prefix}.attribute.{f}" for f in _ATTRIBUTE_FIELDS}
    out.add(f"{prefix}.track")
    out |= {f"{prefix}.track.{f}" for f in SHAPE_FIELDS}
    out |= {f"{prefix}.track.attribute.{f}" for f in _ATTRIBUTE_FIELDS}
    return out


_SHAPE_TERMS = _terms("shape")
_SKELETON_TERMS = {"shape.skeleton"} | _terms("shape.skeleton")


def allowed_terms(annotation_type: str) -> set[str]:
    """Variables a filter of this requirement type may name."""
    if annotation_type == "skeleton_keypoint":
        return _SHAPE_TERMS | _SKELETON_TERMS
    return set(_SHAPE_TERMS)


@dataclass(frozen=True)
class AnnotationFilter:
    """A parsed, validated requirement filter (an empty text selects everything)."""

    text: str
    rule: Any

    @classmethod
    def parse(cls, text: str, *, requirement: str, annotation_type: str) -> AnnotationFilter:
        """Parse and validate ``text`` as CVAT's server does before storing it.

        Raises:
            SettingsError: bad JSON, an unknown operator or variable, a comparison without a
                variable; the message names the requirement.
        """
        what = f"requirement {requirement!r}: filter"
        rule = parse_rule(text or "", what)
        if rule is not None:
            _validate(rule, allowed_terms(annotation_type), what)
        return cls(text or "", rule)

    def mask(self, table: Table) -> BoolArray:
        """The rows of ``table`` (see :func:`filter_table`) this filter selects."""
        return evaluate(self.rule, table)

    def narrowed(self, child: AnnotationFilter) -> AnnotationFilter:
        """This filter ANDed with a child's, as CVAT combines a path's filters (an empty one
        drops out)."""
        if child.rule is None:
            return self
        if self.rule is None:
            return child
        rule = {"and": [self.rule, child.rule]}
        return AnnotationFilter(json.dumps(rule, separators=(",", ":")), rule)

    @property
    def uses_area(self) -> bool:
        """Whether the filter reads an area (the one costly column: polygons are rasterised)."""
        return ".area" in self.text


def _validate(node: Any, terms: set[str], what: str) -> None:
    if not isinstance(node, dict) or len(node) != 1:
        raise SettingsError(f"{what}: expected an object with one operator, got {node!r}")
    op, args = next(iter(node.items()))
    if op in ("and", "or"):
        if not isinstance(args, list) or not args:
            raise SettingsError(f"{what}: {op!r} needs a non-empty list")
        for a in args:
            _validate(a, terms, what)
    elif op in ("!", "!!"):
        inner = args[0] if isinstance(args, list) and len(args) == 1 else args
        _validate(inner, terms, what)
    elif op == "var":
        _check_var(args, terms, what)
    elif op == "<=" and isinstance(args, list) and len(args) == 3:
        _check_var_operand(args[1], op, terms, what)
    elif op in COMPARE:
        if not isinstance(args, list) or len(args) != 2:
            raise SettingsError(f"{what}: {op!r} needs exactly 2 arguments")
        _check_var_operand(args[0], op, terms, what)
    elif op == "in":
        if not isinstance(args, list) or len(args) != 2:
            raise SettingsError(f"{what}: 'in' needs exactly 2 arguments")
        side = args[0] if isinstance(args[0], dict) else args[1]
        _check_var_operand(side, op, terms, what)
    else:
        raise SettingsError(
            f"{what}: operator {op!r} is not supported; use and, or, !, !!, ==, !=, <, <=, >, "
            ">=, in"
        )


def _check_var_operand(arg: Any, op: str, terms: set[str], what: str) -> None:
    if not isinstance(arg, dict) or set(arg) != {"var"}:
        raise SettingsError(f"{what}: {op!r} needs a {{'var': ...}} operand")
    _check_var(arg["var"], terms, what)


def _check_var(arg: Any, terms: set[str], what: str) -> None:
    name = arg[0] if isinstance(arg, list) and arg else arg
    if not isinstance(name, str) or name not in terms:
        raise SettingsError(
            f"{what}: unknown variable {name!r}; allowed: {', '.join(sorted(terms))}"
        )


# --- the columns a filter reads ---------------------------------------------------------------


def _objects(values: Sequence[Any]) -> ObjectArray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


def annotation_areas(ann: Annotations) -> FloatArray:
    """``shape.area`` per row as Datumaro's ``get_area()`` gives it (NaN = no area).

    Rectangles w*h; polygons the pycocotools raster area on a canvas reaching the polygon's far
    corner (Datumaro's ``Polygon.get_area``); masks their pixel count; ellipses pi*rx*ry;
    points and polylines 0; tags and skeletons have none.
    """
    n = len(ann)
    area = np.full(n, np.nan)
    w = ann.bbox[:, 2] - ann.bbox[:, 0]
    h = ann.bbox[:, 3] - ann.bbox[:, 1]
    k = ann.kind
    area[k == Kind.RECTANGLE] = (w * h)[k == Kind.RECTANGLE]
    area[k == Kind.ELLIPSE] = (math.pi * w * h / 4)[k == Kind.ELLIPSE]
    area[(k == Kind.POINTS) | (k == Kind.POLYLINE)] = 0.0
    for r in np.flatnonzero(k == Kind.MASK):
        area[r] = rle.area(ann.rle_of(int(r)))
    for r in np.flatnonzero(k == Kind.POLYGON):
        x2, y2 = int(ann.bbox[r, 2]), int(ann.bbox[r, 3])
        if x2 <= 0 or y2 <= 0:
            area[r] = 0.0
            continue
        (counts,) = rle.rasterize_polygons(ann.points, ann.point_offsets, [r], y2, x2)
        area[r] = rle.area(counts)
    return area


def _shape_columns(
    ann: Annotations, labels: Sequence[str], type_name: str | None, area: bool
) -> dict[str, AnyArray]:
    n = len(ann)
    names = _objects([*labels, None])
    is_track = ann.source_type == SourceType.TRACK
    is_tag = ann.kind == Kind.TAG
    track_id = np.where(is_track, ann.source_id.astype(np.float64), np.nan)
    kind_names = _objects([_KIND_TYPE.get(k) for k in range(max(Kind) + 1)])
    types = _objects([type_name] * n) if type_name else kind_names[ann.kind]
    # Readers drop outside shapes (CVAT's matchers ignore them), so a row is never outside;
    # tags have neither flag. The model keeps no keyframe flag: shape.keyframe is absent.
    flag = _masked(np.zeros(n, bool), ~is_tag)
    occluded = _masked(ann.occluded, ~is_tag)
    return {
        "label": names[ann.label],
        "type": types,
        "area": annotation_areas(ann) if area else np.full(n, np.nan),
        "source": _SOURCE[ann.origin],
        "occluded": occluded,
        "outside": flag,
        "keyframe": _objects([None] * n),
        "track_id": track_id,
        "_is_track": is_track,
    }


def _attribute_iterator(ann: Annotations) -> Iterator:
    cols, present = [], []
    for name, values in ann.attributes.items():
        has = np.fromiter((v is not None for v in values), bool, len(values))
        cols.append({"name": _objects([name] * len(ann)), "value": values})
        present.append(has)
    return Iterator(cols, present)


def _masked(col: AnyArray, keep: BoolArray) -> AnyArray:
    """``col`` with the rows outside ``keep`` absent (NaN for floats, else None)."""
    if col.dtype.kind == "f":
        return np.where(keep, col, np.nan)
    out = col.astype(object).copy()
    out[~keep] = None
    return out


def _add_prefixed(
    table_cols: dict[str, AnyArray],
    iters: dict[str, Iterator],
    prefix: str,
    cols: dict[str, AnyArray],
    it: Iterator,
) -> None:
    is_track = cols["_is_track"]
    for f in SHAPE_FIELDS:
        table_cols[f"{prefix}.{f}"] = cols[f]
        table_cols[f"{prefix}.track.{f}"] = _masked(cols[f], is_track)
    table_cols[f"{prefix}.track"] = cols["track_id"]
    iters[f"{prefix}.attribute"] = it
    iters[f"{prefix}.track.attribute"] = Iterator(
        [dict(c) for c in it.columns], [p & is_track for p in it.present]
    )


def filter_table(
    ann: Annotations,
    labels: Sequence[str],
    *,
    type_name: str | None = None,
    skeleton: tuple[Annotations, Sequence[str], IntArray] | None = None,
    area: bool = True,
) -> Table:
    """The filter's view of ``ann``.

    Args:
        ann: the candidate annotations.
        labels: label names ``ann.label`` indexes.
        type_name: the requirement type to report as ``shape.type`` (``skeleton_keypoint``
            rows are points); None derives it from each row's kind.
        skeleton: for flattened keypoints, (skeleton rows, their label names, the parent row
            of each keypoint) giving ``shape.skeleton.*``.
        area: compute ``shape.area`` (False leaves it absent, for filters that do not read it).
    """
    cols: dict[str, AnyArray] = {}
    iters: dict[str, Iterator] = {}
    own = _shape_columns(ann, labels, type_name, area)
    _add_prefixed(cols, iters, "shape", own, _attribute_iterator(ann))
    if skeleton is not None:
        parents, parent_labels, parent_row = skeleton
        p = parents.take(parent_row)
        pcols = _shape_columns(p, parent_labels, "skeleton", area)
        _add_prefixed(cols, iters, "shape.skeleton", pcols, _attribute_iterator(p))
        cols["shape.skeleton"] = _objects(["skeleton"] * len(ann))
    return Table(len(ann), cols, iters)
