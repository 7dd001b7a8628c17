"""CVAT API payloads → the common model (pure functions, no network).

The payloads are the JSON shapes the CVAT REST API returns (and ``cvat-sdk`` models serialise
to with ``to_dict()``): ``Label`` lists, ``/data/meta``, ``LabeledData`` (tags, shapes, tracks;
audio intervals since 2.67) and ``validation_layout``. The CVAT XML export reader turns its files into the same shapes and
calls the same functions, so an export and a live job convert identically.

One bad object (unknown label, too few points, bad mask runs) is skipped with a
:class:`~labelgate.errors.DataWarning` and listed in ``data_errors`` naming the job, object type,
id, frame and field; it never stops the conversion. Attribute values are read as CVAT 2.42 reads
them (:meth:`~labelgate.model.AttributeSpec.normalize`): one bad attribute is reported as an
``invalid_attribute`` data error and never drops its annotation.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from math import isfinite
from typing import Any

import numpy as np

from labelgate.arrays import AnyArray, IntArray
from labelgate.errors import DataWarning, FormatError, ValidationError
from labelgate.geometry.rle import from_cvat
from labelgate.io.inputs import INT64_MAX, INT64_MIN, to_float, to_int
from labelgate.model import (
    ABSENT,
    HIDDEN,
    MAX_COORDINATE,
    VISIBLE,
    Annotations,
    AnnotationsBuilder,
    AnnotationSet,
    AttributeSpec,
    Items,
    Kind,
    Label,
    LabelSchema,
    Origin,
    SourceType,
    Submission,
    gather_ragged,
)
from labelgate_cvat.shape_batch import (
    FAST_KINDS,
    MIN_COORDS,
    NUMBER_TYPES,
    AttributeReader,
    ShapeBatch,
    take_shapes,
)
from labelgate_cvat.tracks import expand_track

#: Track rows a reader expanded itself are numbered (track position << TRACK_SHIFT) + row.
TRACK_SHIFT = 32

#: Most frames one job may span: a frame range is expanded into one item per frame, so a
#: corrupt stop_frame (10**30) must be refused rather than allocated.
MAX_FRAMES = 1_000_000
_SVG_TAG = re.compile(r"<(\w+)\b([^>]*)>")
_SVG_ATTR = re.compile(r'([\w-]+)="([^"]*)"')


def skeleton_edges(svg: str, sublabels: Sequence[Label]) -> tuple[tuple[int, int], ...]:
    """Edges of a skeleton from CVAT's SVG layout, as pairs of sublabel positions.

    Nodes are ``<circle data-node-id=.. data-label-name=..>`` (or ``data-label-id``); edges are
    ``<line data-node-from=.. data-node-to=..>``.
    """
    by_name = {s.name: i for i, s in enumerate(sublabels)}
    by_id = {s.id: i for i, s in enumerate(sublabels) if s.id is not None}
    node: dict[str, int] = {}
    edges = []
    for _tag, raw in _SVG_TAG.findall(svg or ""):
        attrs = dict(_SVG_ATTR.findall(raw))
        if "data-node-id" in attrs and "data-node-from" not in attrs:
            pos = by_name.get(attrs.get("data-label-name", ""))
            if pos is None and attrs.get("data-label-id", "").isdigit():
                pos = by_id.get(int(attrs["data-label-id"]))
            if pos is not None:
                node[attrs["data-node-id"]] = pos
        elif "data-node-from" in attrs and "data-node-to" in attrs:
            edges.append((attrs["data-node-from"], attrs["data-node-to"]))
    return tuple((node[a], node[b]) for a, b in edges if a in node and b in node)


def _attribute(spec: Mapping[str, Any]) -> AttributeSpec:
    if not isinstance(spec.get("values") or [], list):
        raise ValidationError(f"attribute {spec.get('name')!r}: values: expected a list")
    return AttributeSpec(
        name=str(spec["name"]),
        input_type=str(spec.get("input_type") or "text"),
        values=tuple(str(v) for v in spec.get("values") or () if str(v) != ""),
        default=str(spec.get("default_value") or ""),
        mutable=bool(spec.get("mutable", False)),
        id=_optional_id(spec),
    )


def schema_from_labels(labels: Iterable[Mapping[str, Any]]) -> LabelSchema:
    """Build the label schema from CVAT ``Label`` dicts (``GET /api/labels?task_id=``).

    Sublabels listed on their own (``parent_id`` set) are taken from their parent instead.

    Raises:
        FormatError: a label without a name, or an attribute/skeleton the schema rejects.
    """
    out = []
    try:
        entries = _records({"labels": labels if isinstance(labels, list) else None}, "labels")
    except ValidationError as exc:
        raise FormatError(f"CVAT labels: {exc}") from None
    for n, lab in enumerate(entries):
        if lab.get("parent_id") is not None or lab.get("has_parent"):
            continue
        try:
            subs = tuple(
                Label(
                    name=_name(s),
                    kind=str(s.get("type") or "points"),
                    id=_optional_id(s),
                    attributes=tuple(_attribute(a) for a in _records(s, "attributes")),
                )
                for s in _records(lab, "sublabels")
            )
            out.append(
                Label(
                    name=_name(lab),
                    kind=str(lab.get("type") or "any"),
                    id=_optional_id(lab),
                    attributes=tuple(_attribute(a) for a in _records(lab, "attributes")),
                    sublabels=subs,
                    edges=skeleton_edges(str(lab.get("svg") or ""), subs),
                    color=lab.get("color"),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:  # SchemaError is a ValueError
            raise FormatError(f"CVAT label #{n} (id {lab.get('id', '?')!r}): {exc}") from None
    try:
        return LabelSchema(labels=tuple(out))
    except ValidationError as exc:
        raise FormatError(f"CVAT labels: {exc}") from None


def _optional_id(obj: Mapping[str, Any]) -> int | None:
    return None if obj.get("id") is None else to_int(obj["id"], "id")


def _name(obj: Mapping[str, Any]) -> str:
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ValidationError(f"name={name!r} is not a label name")
    return name


def _step(frame_filter: str | None) -> int:
    match = re.search(r"step\s*=\s*(\d+)", frame_filter or "")
    return max(1, int(match.group(1))) if match else 1


def items_from_meta(meta: Mapping[str, Any]) -> Items:
    """Frames of a job or task from its ``/data/meta`` payload.

    Image tasks have one ``frames`` entry per frame of the range; videos have one entry for all.
    Deleted frames, and frames a GT job does not include (``included_frames``), are marked
    ``deleted`` so they are never compared. ``frame_ids`` (labelgate's extension, used for XML
    exports that list only some frames) gives the frame number of each entry explicitly.

    Raises:
        FormatError: the meta has no frames or sizes that do not fit the frame range.
    """
    if not isinstance(meta, Mapping):
        raise FormatError(f"CVAT data meta: expected an object, got {type(meta).__name__}")
    try:
        start = to_int(meta.get("start_frame"), "start_frame", lo=0)
        stop = to_int(meta.get("stop_frame"), "stop_frame", lo=0)
        frames = meta.get("frames")
        if not isinstance(frames, list) or not all(isinstance(f, Mapping) for f in frames):
            raise ValidationError("frames: expected a list of objects")
        if meta.get("frame_ids") is not None:
            ids = [to_int(f, "frame_ids", lo=0) for f in meta["frame_ids"]]
        elif stop < start or stop - start >= MAX_FRAMES:
            raise ValidationError(f"frames {start}..{stop}: not a range of 1 to {MAX_FRAMES:,}")
        else:
            ids = list(range(start, stop + 1, _step(meta.get("frame_filter"))))
        deleted = set(to_int(f, "deleted_frames") for f in meta.get("deleted_frames") or ())
        included = meta.get("included_frames")
        included_ids = set(to_int(f, "included_frames") for f in included or ())
        names = [str(f.get("name") or "") for f in frames]
        widths = [to_int(f.get("width") or 0, "frames.width", lo=0) for f in frames]
        heights = [to_int(f.get("height") or 0, "frames.height", lo=0) for f in frames]
    except (ValidationError, TypeError) as exc:
        raise FormatError(f"CVAT data meta: {exc}") from None
    if len(frames) == 1 and len(ids) > 1:  # video: one entry describes every frame
        # Datumaro names video frames frame_000123; the video file name would pair them all.
        names, widths, heights = ([""] * len(ids), widths * len(ids), heights * len(ids))
    if len(names) != len(ids):
        raise FormatError(
            f"CVAT data meta: {len(frames)} frame entries for frames {start}..{stop} "
            f"({len(ids)} expected)"
        )
    if len(set(ids)) != len(ids):
        raise FormatError("CVAT data meta: frame_ids: duplicate frame ids")
    excluded = set(ids) - included_ids if included else set()
    return Items.create(
        ids,
        name=[n or f"frame_{i:06d}" for n, i in zip(names, ids, strict=True)],
        width=widths,
        height=heights,
        deleted=[i in deleted or i in excluded for i in ids],
    )


class _ShapeColumns:
    """Fast-path rows as plain column lists (no per-row arrays), appended to by
    :meth:`_Converter.fast_shape`; :meth:`build` freezes them."""

    def __init__(self) -> None:
        self.seq: list[int] = []
        self.table: list[tuple[Any, ...]] = []  # one tuple of _FAST_COLUMNS values per row
        self.coords: list[float] = []  # flat x, y of polygon/polyline/points rows
        self.counts: list[int] = []  # points per row (0 for rectangles)
        self.box: list[float] = []  # x1, y1, x2, y2 per row (NaN until built for point shapes)
        self.attrs: dict[str, dict[int, Any]] = {}

    def __len__(self) -> int:
        return len(self.seq)

    def build(self, annotator: str) -> tuple[Annotations, np.ndarray]:
        """The rows as :class:`Annotations` sorted by item (stable), and their ``seq`` numbers
        in that order."""
        n = len(self.seq)
        # Transposed in C: one tuple per column, then one array per column.
        by_column = list(zip(*self.table, strict=True)) if n else [()] * len(_FAST_COLUMNS)
        cols: dict[str, Any] = {
            name: np.asarray(values, dtype=dtype)
            for (name, dtype), values in zip(_FAST_COLUMNS.items(), by_column, strict=True)
        }
        counts = np.asarray(self.counts, dtype=np.int64)
        offsets: IntArray = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        points: AnyArray = np.asarray(self.coords, dtype=np.float64).reshape(-1, 2)
        bbox: np.ndarray = np.asarray(self.box, dtype=np.float64).reshape(n, 4)
        shaped = np.flatnonzero(counts)
        if len(shaped):  # their point runs are contiguous and cover ``points``
            starts = offsets[shaped]
            bbox[shaped, 0] = np.minimum.reduceat(points[:, 0], starts)
            bbox[shaped, 1] = np.minimum.reduceat(points[:, 1], starts)
            bbox[shaped, 2] = np.maximum.reduceat(points[:, 0], starts)
            bbox[shaped, 3] = np.maximum.reduceat(points[:, 1], starts)
        attrs: dict[str, np.ndarray] = {}
        for key, by_row in self.attrs.items():
            col = np.full(n, None, dtype=object)
            col[list(by_row)] = list(by_row.values())
            attrs[key] = col
        seq = np.asarray(self.seq, dtype=np.int64)
        order = np.argsort(cols["item"], kind="stable")
        if np.any(order != np.arange(n)):
            cols = {k: v[order] for k, v in cols.items()}
            bbox, seq = bbox[order], seq[order]
            offsets, points = gather_ragged(offsets, points, order)
            attrs = {k: v[order] for k, v in attrs.items()}
        empty = np.full(n, None, dtype=object)
        annotations = Annotations(
            **cols,
            bbox=bbox,
            annotator=np.zeros(n, np.int32),
            control=np.full(n, -1, np.int16),
            score=np.full(n, np.nan),
            number=np.full(n, np.nan),
            span=np.full((n, 2), np.nan),
            text=empty,
            source_ref=empty.copy(),
            point_offsets=offsets,
            points=points,
            vis=np.full(len(points), VISIBLE, np.int8),
            rle_offsets=np.zeros(n + 1, np.int64),
            rle=np.zeros(0, np.uint32),
            attributes=attrs,
            annotators=(annotator,),
        )
        return annotations, seq


#: The fast path's own row columns and their dtypes (the model's, see ``Annotations``).
_FAST_COLUMNS: dict[str, Any] = {
    "item": np.int64,
    "kind": np.int8,
    "label": np.int32,
    "rotation": np.float64,
    "z_order": np.int32,
    "group": np.int64,
    "occluded": np.bool_,
    "source_id": np.int64,
    "source_type": np.int8,
    "origin": np.int8,
}
_NAN_BOX = (np.nan,) * 4
_NONE: list[Any] = []  # shared "no attributes": only ever read


@dataclass
class _Index:
    """CVAT ids → schema positions."""

    schema: LabelSchema
    label: dict[int, int] = field(default_factory=dict)
    element: dict[int, tuple[int, int]] = field(default_factory=dict)
    attribute: dict[int, tuple[int, AttributeSpec]] = field(default_factory=dict)

    @classmethod
    def build(cls, schema: LabelSchema) -> _Index:
        idx = cls(schema)
        for i, lab in enumerate(schema.labels):
            idx.label[lab.id if lab.id is not None else i] = i
            for j, sub in enumerate(lab.sublabels):
                if sub.id is not None:
                    idx.element[sub.id] = (i, j)
            for spec in lab.attributes:
                if spec.id is not None:
                    idx.attribute[spec.id] = (i, spec)
        return idx


class _Converter:
    def __init__(
        self, index: _Index, items: Items, annotator: str, where: str, context: Mapping[str, Any]
    ) -> None:
        self.context = dict(context)
        self.ix = index
        self.items = items
        self.where = where
        self.annotator = annotator
        # Rows from the general path (every check, one builder call each) and from the fast
        # path (common shapes, straight into columns); ``seq`` numbers rows in arrival order
        # across both so the merged set keeps the order one builder would have given it.
        self.builder = AnnotationsBuilder([annotator])
        self.slow_item: list[int] = []
        self.slow_seq: list[int] = []
        self.fast = _ShapeColumns()
        self.batches: list[ShapeBatch] = []  # a job's plain shapes, taken as whole columns
        self.seq = 0
        self.errors: list[dict[str, Any]] = []
        self._defaults: dict[int, dict[str, Any]] = {}
        self._known: dict[tuple[int, str], tuple[int, str, Any]] = {}
        self._origins: dict[str, Origin] = {}
        self.size = {
            int(i): (int(w), int(h))
            for i, w, h in zip(items.id, items.width, items.height, strict=True)
        }

    def fail(
        self,
        obj: Mapping[str, Any],
        otype: str,
        frame: Any,
        exc: Exception | str,
        *,
        kind: str = "invalid_annotation",
        field: str | None = None,
    ) -> None:
        oid = obj.get("id")
        shape_type = f"{obj['type']}, " if isinstance(obj.get("type"), str) else ""
        where = f"{otype} {oid} ({shape_type}label_id {obj.get('label_id')!r})"
        where = where if frame is None else f"frame {frame}, {where}"
        file = f"{self.context['file']}: " if self.context.get("file") else ""
        warnings.warn(f"{file}{self.where}: {where}: {exc}", DataWarning, stacklevel=3)
        error = {
            **self.context,
            "type": kind,
            "source": self.where,
            "where": where,
            "obj_type": otype,
            "obj_id": oid,
            "frame": frame,
            "message": str(exc),
        }
        if field:
            error["field"] = field
        self.errors.append(error)

    def _add(self, item: int, kind: Kind, label: int, **values: Any) -> None:
        """One row through :meth:`AnnotationsBuilder.add` (which re-checks it)."""
        self.builder.add(item, kind, label, **values)
        self.slow_item.append(item)
        self.slow_seq.append(self.seq)
        self.seq += 1

    def label(self, obj: Mapping[str, Any]) -> int:
        lid = obj.get("label_id")
        if isinstance(lid, str):  # the XML reader's note for a name it could not resolve
            raise ValidationError(lid)
        if lid not in self.ix.label:
            raise ValidationError(f"label_id {lid!r} is not a label of this task")
        return self.ix.label[int(lid)]

    def known_attributes(self, label: int, *groups: list[dict[str, Any]]) -> dict[str, Any] | None:
        """:meth:`attributes` from values already read without a problem; None when a value
        is new or bad (then :meth:`attributes` reads, and reports, them all)."""
        defaults = self._defaults.get(label)
        if defaults is None:
            return None
        out = dict(defaults)
        for attrs in groups:
            for a in attrs:
                sid, raw = a.get("spec_id"), a.get("value")
                if type(sid) is not int or type(raw) is not str:
                    return None
                hit = self._known.get((sid, raw))
                if hit is None or hit[0] != label:
                    return None
                out[hit[1]] = hit[2]
        return out

    def label_defaults(self, label: int) -> dict[str, Any]:
        """Every attribute the label declares, at its default value (read once per label)."""
        defaults = self._defaults.get(label)
        if defaults is None:
            specs = self.ix.schema.labels[label].attributes
            defaults = self._defaults[label] = {s.name: s.parse(s.default).value for s in specs}
        return defaults

    def parse_attribute(self, sid: int, raw: str) -> None:
        """Read one attribute value silently into the cache :meth:`known_attributes` uses,
        when it has no problem (a bad or unknown one is left for :meth:`attributes` to report)."""
        found = self.ix.attribute.get(sid)
        if found is not None:
            parsed = found[1].parse(raw)
            if not parsed.problem:
                self._known[(sid, raw)] = (found[0], found[1].name, parsed.value)

    def shapes(self, records: list[Any]) -> None:
        """Add a job's ``shapes`` list: plain shapes as whole columns (:func:`take_shapes`),
        the rest one by one in list order; each keeps its list position as its arrival."""
        base = self.seq
        batch = take_shapes(
            records,
            base=base,
            frames=self.size,
            labels=self.ix.label,
            origins=self._origins,
            attributes=AttributeReader(self._known, self.parse_attribute, self.label_defaults),
            annotator=self.annotator,
        )
        if len(batch.annotations):
            self.batches.append(batch)
        for n in batch.rest:
            self.seq = base + n
            obj = records[n]
            if type(obj) is dict or isinstance(obj, Mapping):  # the ABC check is the slow one
                if not self.fast_shape(obj):
                    self.shape(obj)
            else:
                self.fail({"id": f"#{n}"}, "shape", None, ValidationError("not an object"))
        self.seq = base + len(records)

    def attributes(
        self,
        obj: Mapping[str, Any],
        otype: str,
        frame: Any,
        label: int,
        *groups: Iterable[Mapping[str, Any]],
    ) -> dict[str, Any]:
        """Every attribute declared on the label, as CVAT's comparator sees it.

        An absent attribute takes the label's default (so "" and omitted are equal for a text
        attribute whose default is ""). A value CVAT cannot read, or a spec_id of another label,
        is an ``invalid_attribute`` data error; the annotation is kept either way.
        """
        out = dict(self.label_defaults(label))
        for attrs in groups:
            for a in attrs:
                sid = a.get("spec_id")
                found = self.ix.attribute.get(sid) if isinstance(sid, int) else None
                if found is None or found[0] != label:
                    self.fail(
                        obj,
                        otype,
                        frame,
                        f"attribute spec_id {sid!r} is not declared on this label; ignored",
                        kind="invalid_attribute",
                        field=f"attribute spec_id {sid!r}",
                    )
                    continue
                spec = found[1]
                raw = a.get("value")
                parsed = spec.parse("" if raw is None else raw)
                if type(raw) is str and type(sid) is int and not parsed.problem:
                    # Parsing is pure: the same text parses the same way next time.
                    self._known[(sid, raw)] = (found[0], spec.name, parsed.value)
                if parsed.problem:
                    self.fail(
                        obj,
                        otype,
                        frame,
                        parsed.problem,
                        kind="invalid_attribute",
                        field=f"attribute {spec.name!r}",
                    )
                out[spec.name] = parsed.value
        return out

    def tag(self, tag: Mapping[str, Any]) -> None:
        try:
            frame = to_int(tag.get("frame"), "frame")
            if frame not in self.size:
                raise ValidationError(f"frame {frame} is outside the job's frames")
            label = self.label(tag)
            self._add(
                frame,
                Kind.TAG,
                label,
                source_id=_source_id(tag),
                source_type=SourceType.TAG,
                origin=Origin.parse(tag.get("source")),
                annotator=0,
                group=to_int(tag.get("group") or 0, "group"),
                attributes=self.attributes(
                    tag, "tag", tag.get("frame"), label, _records(tag, "attributes")
                )
                or None,
            )
        except (ValidationError, ValueError, KeyError, TypeError, OverflowError) as exc:
            self.fail(tag, "tag", tag.get("frame"), exc)

    def fast_shape(self, shape: Any, owner: Mapping[str, Any] | None = None) -> bool:
        """Add a common, well-formed shape straight to the columns; False leaves it to
        :meth:`shape`.

        Taken here: rectangles, polygons, polylines and points whose every field already has
        its final type and range (JSON ints and floats, a known frame and label, finite
        coordinates within ±2**31 px, a rectangle with x2 >= x1 and y2 >= y1). Nothing here
        can fail after a row's attributes are read, so a shape either goes here without a
        data error of its own or to :meth:`shape`, which names the problem; attribute errors
        are reported the same way on both paths, in the same order.
        """
        get = shape.get
        src = shape if owner is None else owner
        kind, frame, pts = get("type"), get("frame"), get("points")
        lid, oid, origin = src.get("label_id"), src.get("id", -1), src.get("source")
        group, z_order, rotation = (
            src.get("group") or 0,
            get("z_order") or 0,
            get("rotation") or 0.0,
        )
        # Exact types: a JSON true/false is a bool, never a number.
        if (
            type(kind) is not str
            or type(frame) is not int
            or type(lid) is not int
            or type(pts) is not list
            or type(group) is not int
            or type(z_order) is not int
            or (oid is not None and type(oid) is not int)
            or (type(rotation) is not float and type(rotation) is not int)
            or get("outside")
            or get("error")
            or frame not in self.size
            or not 0 <= group <= INT64_MAX
            or not -(2**31) <= z_order < 2**31
            or not -(2.0**63) <= rotation <= 2.0**63  # also refuses NaN and infinities
        ):
            return False
        code = FAST_KINDS.get(kind)
        label = self.ix.label.get(lid)
        n = len(pts)
        if code is None or label is None or n % 2 or n < MIN_COORDS[kind]:
            return False
        if not set(map(type, pts)) <= NUMBER_TYPES:
            return False
        if min(pts) < -MAX_COORDINATE or max(pts) > MAX_COORDINATE or not isfinite(sum(pts)):
            return False  # sum() is NaN when any value is NaN or infinite
        if code == Kind.RECTANGLE and (pts[2] < pts[0] or pts[3] < pts[1]):
            return False
        if oid is None:
            oid = -1
        elif not INT64_MIN <= oid <= INT64_MAX:
            return False
        if origin is None or origin == "":
            origin = Origin.MANUAL
        elif type(origin) is str:
            found = self._origins.get(origin)
            if found is None:
                found = self._origins[origin] = Origin.parse(origin)
            origin = found
        else:
            return False
        mine = get("attributes") or _NONE
        theirs = (owner.get("attributes") or _NONE) if owner is not None else _NONE
        if type(mine) is not list or type(theirs) is not list:
            return False
        for attrs in (mine, theirs):
            for a in attrs:
                if type(a) is not dict:
                    return False
        values = self.known_attributes(label, mine, theirs)
        if values is None:
            values = self.attributes(
                src, "shape" if owner is None else "track", frame, label, mine, theirs
            )
        fast = self.fast
        fast.seq.append(self.seq)
        fast.table.append(
            (
                frame,
                code,
                label,
                float(rotation),
                z_order,
                group,
                bool(get("occluded")),
                oid,
                SourceType.SHAPE if owner is None else SourceType.TRACK,
                origin,
            )
        )
        if code == Kind.RECTANGLE:
            fast.box.extend(pts[:4])
            fast.counts.append(0)
        else:
            fast.box.extend(_NAN_BOX)
            fast.coords.extend(pts)
            fast.counts.append(n // 2)
        row = len(fast.seq) - 1
        for key, value in values.items():
            column = fast.attrs.get(key)
            if column is None:
                column = fast.attrs[key] = {}
            column[row] = value
        self.seq += 1
        return True

    def shape(
        self,
        shape: Mapping[str, Any],
        *,
        owner: Mapping[str, Any] | None = None,
        otype: str = "shape",
    ) -> None:
        """Add one shape; ``owner`` is the track a per-frame track shape belongs to."""
        src = owner or shape
        frame = shape.get("frame")
        try:
            if shape.get("outside"):
                return  # CVAT ignores outside annotations in every matcher
            frame = to_int(shape.get("frame"), "frame")
            if frame not in self.size:
                raise ValidationError(f"frame {frame} is outside the job's frames")
            if shape.get("error"):  # the XML reader could not read this element
                raise ValidationError(shape["error"])
            label = self.label(src)
            attrs = self.attributes(
                src,
                otype,
                frame,
                label,
                _records(shape, "attributes"),
                _records(owner or {}, "attributes"),
            )
            common: dict[str, Any] = {
                "source_id": _source_id(src),
                "source_type": SourceType.TRACK if owner is not None else SourceType.SHAPE,
                "origin": Origin.parse(src.get("source")),
                "annotator": 0,
                "group": to_int(src.get("group") or 0, "group"),
                "z_order": to_int(shape.get("z_order") or 0, "z_order", -(2**31), 2**31 - 1),
                "occluded": bool(shape.get("occluded")),
                "rotation": to_float(shape.get("rotation") or 0.0, "rotation"),
                "attributes": attrs or None,
            }
            self._geometry(shape, frame, label, common, owner)
        except (ValidationError, ValueError, KeyError, TypeError, OverflowError) as exc:
            self.fail(src, otype, frame, exc)

    def _geometry(
        self,
        shape: Mapping[str, Any],
        frame: int,
        label: int,
        common: dict[str, Any],
        owner: Mapping[str, Any] | None,
    ) -> None:
        kind = str(shape.get("type"))
        pts = _points(shape)
        least = MIN_COORDS.get(kind, 0)
        if kind in MIN_COORDS and len(pts) % 2:
            raise ValidationError(f"{kind} has an odd number of coordinates ({len(pts)})")
        if len(pts) < least:
            raise ValidationError(
                f"{kind} with {len(pts) // 2} points; at least {least // 2} needed"
            )
        if kind == "rectangle":
            self._add(frame, Kind.RECTANGLE, label, bbox=tuple(pts[:4]), **common)
        elif kind == "ellipse":
            cx, cy, rx_pt, ty_pt = pts[:4]
            rx, ry = abs(rx_pt - cx), abs(cy - ty_pt)
            box = (cx - rx, cy - ry, cx + rx, cy + ry)
            self._add(frame, Kind.ELLIPSE, label, bbox=box, **common)
        elif kind in ("polygon", "polyline", "points"):
            self._add(frame, Kind.parse(kind), label, points=pts, **common)
        elif kind == "cuboid":
            if len(pts) != 16:
                raise ValidationError(f"cuboid has {len(pts)} coordinates; 16 expected")
            self._add(frame, Kind.CUBOID, label, points=pts, **common)
        elif kind == "mask":
            self._mask(pts, frame, label, common)
        elif kind == "skeleton":
            self._skeleton(shape, frame, label, common, owner)
        else:
            raise ValidationError(f"unknown shape type {kind!r}")

    def _mask(self, pts: np.ndarray, frame: int, label: int, common: dict[str, Any]) -> None:
        if len(pts) < 5:
            raise ValidationError(f"mask has {len(pts)} values; runs plus a 4-value box expected")
        w, h = self.size[frame]
        if w <= 0 or h <= 0:
            raise ValidationError("a mask needs the frame's width and height (data meta)")
        left, top, right, bottom = (int(v) for v in pts[-4:])
        counts = from_cvat(pts.tolist(), h, w)
        box = (float(left), float(top), float(right + 1), float(bottom + 1))
        self._add(frame, Kind.MASK, label, bbox=box, rle=counts, **common)

    def _skeleton(
        self,
        shape: Mapping[str, Any],
        frame: int,
        label: int,
        common: dict[str, Any],
        owner: Mapping[str, Any] | None,
    ) -> None:
        subs = self.ix.schema.labels[label].sublabels
        xy = np.zeros((len(subs), 2))
        vis = np.full(len(subs), ABSENT, dtype=np.int8)
        for el in shape.get("elements") or ():
            lid = el.get("label_id")
            where = self.ix.element.get(lid) if lid is not None else None
            if where is None or where[0] != label:
                raise ValidationError(f"skeleton point {lid!r} is not a sublabel of this label")
            if el.get("outside"):
                continue
            p = np.asarray(el.get("points") or (), dtype=np.float64)
            if p.shape != (2,) or not np.isfinite(p).all():
                raise ValidationError(f"skeleton element {lid} must have one finite x,y pair")
            xy[where[1]] = p
            vis[where[1]] = HIDDEN if el.get("occluded") else VISIBLE
        if not (vis != ABSENT).any():
            return  # CVAT drops skeletons whose points are all absent
        self._add(frame, Kind.SKELETON, label, points=xy, vis=vis, **common)

    def interval(self, interval: Mapping[str, Any], item: int) -> None:
        """Add one audio interval (CVAT 2.67+) on the recording's item ``item``."""
        try:
            label = self.label(interval)
            start = to_int(interval.get("start"), "start", lo=0)
            raw_stop = interval.get("stop")
            stop = -1 if raw_stop is None else to_int(raw_stop, "stop", lo=start)
            self._add(
                item,
                Kind.INTERVAL,
                label,
                points=[float(start), float(stop)],
                source_id=_source_id(interval),
                source_type=SourceType.SHAPE,
                origin=Origin.parse(interval.get("source")),
                annotator=0,
                group=to_int(interval.get("group") or 0, "group"),
                attributes=self.attributes(
                    interval, "interval", None, label, _records(interval, "attributes")
                )
                or None,
            )
        except (ValidationError, ValueError, KeyError, TypeError, OverflowError) as exc:
            self.fail(interval, "interval", None, exc)

    def track(self, track: Mapping[str, Any], stop_frame: int) -> None:
        try:
            if track.get("error"):  # the XML reader could not read this track
                raise ValidationError(track["error"])
            _source_id(track)
            # Interpolation does arithmetic on the keyframes: check them before it.
            keys = _records(track, "shapes")
            for el in _records(track, "elements"):
                keys += _records(el, "shapes")
            for key in keys:
                to_int(key.get("frame"), "frame", lo=0)
                _points(key)
            shapes = expand_track(track, stop_frame)
            elements = {
                int(el["label_id"]): {
                    int(s["frame"]): s for s in expand_track(el, stop_frame) if not s.get("outside")
                }
                for el in track.get("elements") or ()
            }
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            self.fail(track, "track", track.get("frame"), exc)
            return
        for s in shapes:
            if s.get("outside"):
                continue
            if s.get("type") == "skeleton":
                f = int(s["frame"])
                s = {
                    **s,
                    "elements": [
                        {"label_id": lid, **per_frame[f]}
                        for lid, per_frame in elements.items()
                        if f in per_frame
                    ],
                }
            if not self.fast_shape(s, track):
                self.shape(s, owner=track, otype="track")


def _merged(conv: _Converter) -> Annotations:
    """The converter's rows from every path as one set, in the order one builder would give:
    by item, then by arrival."""
    parts = [(b.annotations, b.seq) for b in conv.batches]
    if len(conv.fast):
        parts.append(conv.fast.build(conv.annotator))
    if conv.slow_seq or not parts:
        slow = conv.builder.build()
        slow_seq = np.asarray(conv.slow_seq, np.int64)[
            np.argsort(np.asarray(conv.slow_item, np.int64), kind="stable")
        ]
        parts.insert(0, (slow, slow_seq))
    if len(parts) == 1:
        return parts[0][0]
    both = Annotations.concat([p for p, _ in parts])  # stable by item
    seq = np.concatenate([s for _, s in parts])[
        np.argsort(np.concatenate([p.item for p, _ in parts]), kind="stable")
    ]
    order = np.lexsort((seq, both.item))
    both, seq = both.take(order), seq[order]
    # Attribute columns in order of first use, as one builder would have listed them; arrival
    # numbers may skip (a refused shape keeps its number), so none is beyond INT64_MAX.
    first = {
        key: int(seq[[v is not None for v in col]].min(initial=INT64_MAX))
        for key, col in both.attributes.items()
    }
    ordered = {k: both.attributes[k] for k in sorted(first, key=first.__getitem__)}
    return both.with_columns(attributes=ordered)


def cvat_job_to_annotations(
    payload: Mapping[str, Any],
    meta: Mapping[str, Any],
    labels: Iterable[Mapping[str, Any]] | LabelSchema,
    *,
    annotator: str,
    job: Mapping[str, Any] | None = None,
    name: str | None = None,
    context: Mapping[str, Any] | None = None,
    taken_tracks: ShapeBatch | None = None,
) -> AnnotationSet:
    """Convert one CVAT job's annotations into an annotation set.

    Args:
        payload: ``LabeledData`` (``GET /api/jobs/{id}/annotations``): tags, shapes, tracks
            and (2.67+) audio intervals, read as :attr:`Kind.INTERVAL` rows (never compared).
        meta: the job's ``/data/meta``.
        labels: the task's ``Label`` dicts, or a schema already built from them.
        annotator: the name the rows are attributed to (assignee, or ``ground_truth``).
        job: the ``JobRead`` dict (id, task_id, type, stage, state, assignee ...) kept in meta.
        name: the set's name (default ``job <id>``).
        context: extra fields copied into every ``data_errors`` entry (e.g. the file).
        taken_tracks: tracks a reader expanded into rows itself
            (:func:`labelgate_cvat.xml_tracks.take_tracks`): each row's ``seq`` is (its track's
            position << ``TRACK_SHIFT``) + its row within the track, and ``payload["tracks"]``
            holds the other tracks, at positions ``taken_tracks.rest``; the rows merge in the
            order converting every track here would give.

    Returns:
        The annotation set; tracks are expanded per frame; bad objects are in ``data_errors``.

    Raises:
        FormatError: the meta or labels are unusable (nothing could be converted).
    """
    schema = labels if isinstance(labels, LabelSchema) else schema_from_labels(labels)
    items = items_from_meta(meta)
    job = dict(job or {})
    if "id" in job:
        try:
            job["id"] = to_int(job["id"], "id", lo=0)
        except ValidationError as exc:
            raise FormatError(f"CVAT job: {exc}") from None
    where = f"job {job['id']}" if "id" in job else (name or "CVAT job")
    conv = _Converter(_Index.build(schema), items, annotator, where, context or {})
    if not isinstance(payload, Mapping):
        raise FormatError(f"{where}: annotations: expected an object with tags, shapes, tracks")
    groups = {}
    for key in ("shapes", "tags", "tracks", "intervals"):
        records = payload.get(key) or []
        if not isinstance(records, list):
            raise FormatError(f"{where}: annotations: {key!r} is not a list")
        groups[key] = records
    stop = to_int(meta["stop_frame"], "stop_frame")
    conv.shapes(groups["shapes"])
    for n, obj in enumerate(groups["tags"]):
        if isinstance(obj, Mapping):
            conv.tag(obj)
        else:
            conv.fail({"id": f"#{n}"}, "tag", None, ValidationError("not an object"))
    base = conv.seq
    if taken_tracks is not None:
        if len(taken_tracks.rest) != len(groups["tracks"]):
            raise ValueError("taken_tracks.rest must give the position of every track left")
        if len(taken_tracks.annotations):
            conv.batches.append(replace(taken_tracks, seq=base + taken_tracks.seq))
    for n, track in enumerate(groups["tracks"]):
        if taken_tracks is not None:  # the arrival numbers the taken tracks' rows were given
            conv.seq = base + (taken_tracks.rest[n] << TRACK_SHIFT)
        if isinstance(track, Mapping):
            conv.track(track, stop)
        else:
            conv.fail({"id": f"#{n}"}, "track", None, ValidationError("not an object"))
    # Intervals carry no frame: the whole recording is one sample, its first item.
    for n, interval in enumerate(groups["intervals"]):
        if not isinstance(interval, Mapping):
            conv.fail({"id": f"#{n}"}, "interval", None, ValidationError("not an object"))
        elif len(items) == 0:
            conv.fail(interval, "interval", None, ValidationError("the job has no frames"))
        else:
            conv.interval(interval, int(items.id[0]))
    # CVAT's total_frames is the job's segment length (meta ``size``), however many frames
    # the source lists; an export may leave some out.
    info: dict[str, Any] = {
        "system": "cvat",
        "segment_size": max(_segment_size(meta), len(items)),
    }
    if "id" in job:
        info["job_id"] = int(job["id"])
    # ``host`` (set by the live pipeline) lets reports link each conflict to its job/frame.
    for key in ("task_id", "project_id", "type", "stage", "state", "host"):
        if job.get(key) is not None:
            info[key] = job[key]
    verdict = job_verdict(job)
    submissions = tuple(
        Submission(item=int(i), annotator=annotator, state=verdict)
        for i, gone in zip(items.id, items.deleted, strict=True)
        if not gone
    )
    return AnnotationSet(
        name=name or where,
        schema=schema,
        items=items,
        annotations=_merged(conv),
        # Only live jobs carry a stage/state; an export's job has no verdict to report.
        submissions=submissions if ("state" in job or "stage" in job) else (),
        meta=info,
        data_errors=tuple(conv.errors),
    )


def _segment_size(meta: Mapping[str, Any]) -> int:
    try:
        return int(meta.get("size") or 0)
    except (TypeError, ValueError):
        return 0  # not a usable size: the listed frames stand in for it


def _records(obj: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """A list-of-objects field (``attributes``, ``elements``); empty when absent.

    Raises:
        ValidationError: the field is not a list of objects.
    """
    value = obj.get(key) or []
    if not isinstance(value, list | tuple) or not all(isinstance(v, Mapping) for v in value):
        raise ValidationError(f"{key}: expected a list of objects")
    return list(value)


def _points(shape: Mapping[str, Any]) -> np.ndarray:
    """A shape's flat ``points`` as float64, every value finite (and a coordinate in range).

    Raises:
        ValidationError: not a list of numbers, NaN/infinite, or beyond ±2**31 px (mask run
            lengths, which share the list, may be larger).
    """
    points = shape.get("points") or ()
    if not isinstance(points, list | tuple) or not all(
        isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in points
    ):
        raise ValidationError("points: expected a list of numbers")
    pts = np.asarray([to_float(v, "points", finite=False) for v in points], dtype=np.float64)
    if not np.isfinite(pts).all():
        raise ValidationError("points has a NaN or infinite coordinate")
    if shape.get("type") != "mask" and len(pts) and np.abs(pts).max() > MAX_COORDINATE:
        raise ValidationError(f"points has a coordinate beyond ±{MAX_COORDINATE:.0f} px")
    return pts


def _source_id(obj: Mapping[str, Any]) -> int:
    """The object's CVAT id (-1 when absent)."""
    oid = obj.get("id")
    return -1 if oid is None else to_int(oid, "id")


def job_verdict(job: Mapping[str, Any]) -> str | None:
    """A job's review verdict from its stage/state: accepted, rejected, or None (pending).

    acceptance/completed counts as approved; a rejected state (CVAT's reviewers, or labelgate's
    stage policy) as rejected. Scorecards turn these into approval/rejection rates.
    """
    if job.get("state") == "rejected":
        return "rejected"
    if job.get("stage") == "acceptance" and job.get("state") == "completed":
        return "accepted"
    return None
