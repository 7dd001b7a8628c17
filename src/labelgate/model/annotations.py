"""Columnar annotations: one frozen dataclass of parallel numpy arrays per annotation source.

A source is a CVAT job, one Label Studio annotator, a ground-truth set or a prediction set. Rows
are sorted by ``item`` so the annotations of one frame are a contiguous slice
(:meth:`Annotations.item_slices`). Ragged data (polygon vertices, skeleton points, mask runs)
lives in flat arrays indexed by CSR-style offsets.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from labelgate.arrays import (
    AnyArray,
    BoolArray,
    FloatArray,
    IntArray,
    IntegerArray,
    ObjectArray,
    RunArray,
)
from labelgate.errors import ValidationError


class Kind(enum.IntEnum):
    """Annotation kind. Spatial kinds follow CVAT's shape types."""

    TAG = 0
    RECTANGLE = 1
    POLYGON = 2
    POLYLINE = 3
    POINTS = 4
    ELLIPSE = 5
    MASK = 6
    SKELETON = 7
    CUBOID = 8
    SPAN = 9  # text span (NER): ``span`` holds [start, end)
    TEXT = 10  # free text (TextArea): ``text``
    NUMBER = 11  # Rating / Number: ``number``
    # Audio interval (CVAT 2.67+): one point (start, stop) in ms, stop -1 = to the end of the
    # recording. Read but not compared (CVAT 2.80 has no audio quality control).
    INTERVAL = 12

    @classmethod
    def parse(cls, name: str) -> Kind:
        """Kind from a CVAT shape type or a kind name (``"rectangle"``, ``"tag"`` ...).

        Raises:
            ValidationError: unknown name.
        """
        try:
            return cls[name.upper()]
        except KeyError:
            known = ", ".join(k.name.lower() for k in cls)
            raise ValidationError(
                f"unknown annotation kind {name!r}; expected one of {known}"
            ) from None


class SourceType(enum.IntEnum):
    """Which kind of source object a row came from (CVAT's AnnotationId.type)."""

    SHAPE = 0
    TRACK = 1
    TAG = 2


class Origin(enum.IntEnum):
    """How an annotation was made (CVAT ``source``; LS result left equal to a prediction)."""

    MANUAL = 0
    AUTO = 1
    SEMI_AUTO = 2
    FILE = 3
    CONSENSUS = 4

    @classmethod
    def parse(cls, name: str | None) -> Origin:
        """CVAT's ``source`` text (unknown names are manual).

        Raises:
            ValidationError: ``name`` is not text.
        """
        if not name:
            return cls.MANUAL
        if not isinstance(name, str):
            raise ValidationError(f"source={name!r} is not a source name")
        key = name.strip().upper().replace("-", "_")
        return cls[key] if key in cls.__members__ else cls.MANUAL


#: Point visibility flags for skeleton elements and point groups.
ABSENT, HIDDEN, VISIBLE = 0, 1, 2

#: No image is 2**31 pixels wide; coordinates beyond it are corrupt and would overflow the
#: geometry kernels (rasterising, shapely), so the builder refuses them.
MAX_COORDINATE = float(2**31)

_ROW_COLUMNS: dict[str, tuple[Any, Any]] = {
    # name: (dtype, fill value for a new row)
    "item": (np.int64, 0),
    "kind": (np.int8, 0),
    "label": (np.int32, -1),
    "rotation": (np.float64, 0.0),
    "z_order": (np.int32, 0),
    "group": (np.int64, 0),
    "occluded": (np.bool_, False),
    "source_id": (np.int64, -1),
    "source_type": (np.int8, 0),
    "origin": (np.int8, 0),
    "annotator": (np.int32, -1),
    "control": (np.int16, -1),
    "score": (np.float64, np.nan),
    "number": (np.float64, np.nan),
}


#: Shared empty ragged parts for rows without points or mask runs (never written to).
_NO_POINTS: FloatArray = np.zeros((0, 2))
_NO_VIS: IntegerArray = np.zeros(0, np.int8)
_NO_RLE: RunArray = np.zeros(0, np.uint32)
for _empty in (_NO_POINTS, _NO_VIS, _NO_RLE):
    _empty.flags.writeable = False


def gather_ragged(offsets: IntArray, values: AnyArray, rows: IntArray) -> tuple[IntArray, AnyArray]:
    """Select ``rows`` of a CSR-style ragged column without a Python loop.

    Args:
        offsets: (N+1,) start offsets into ``values``.
        values: flat values (first axis is the ragged one).
        rows: row indices to keep, in the wanted order.

    Returns:
        (new_offsets, new_values).
    """
    rows = np.asarray(rows, dtype=np.int64)
    if len(values) == 0:  # e.g. no points in a set of boxes: every row is empty
        return np.zeros(len(rows) + 1, dtype=np.int64), values[:0]
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    new_off = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_off[1:])
    total = int(new_off[-1])
    if total == 0:
        return new_off, values[:0]
    idx = np.repeat(starts - new_off[:-1], lengths) + np.arange(total, dtype=np.int64)
    return new_off, values[idx]


@dataclass(frozen=True, eq=False)
class Annotations:
    """N annotations as parallel arrays.

    Row columns (length N): ``item`` (item id, ascending), ``kind`` (:class:`Kind`), ``label``
    (index into the :class:`~labelgate.model.schema.LabelSchema`, -1 = none), ``bbox`` (N, 4)
    xyxy in pixels (always filled: the cheap pre-filter), ``rotation`` (degrees, clockwise about
    the box centre), ``z_order``, ``group`` (0 = ungrouped), ``occluded``, ``source_id`` and
    ``source_type`` (the source-system object: CVAT shape/track/tag id, LS region id hash),
    ``origin`` (:class:`Origin`), ``annotator`` (index into ``annotators``), ``control`` (index of
    the LS control tag, -1 for CVAT), ``score`` (prediction score, NaN if none), ``span`` (N, 2)
    text offsets, ``number`` (Rating/Number value), ``text`` (TextArea / Taxonomy path).

    Ragged columns: ``points`` (P, 2) xy with visibility ``vis`` (P,) over ``point_offsets``
    (N+1); masks as column-major full-image COCO RLE counts ``rle`` over ``rle_offsets`` (N+1).

    ``attributes`` maps each attribute name to an (N,) object array of normalised values (None
    where the row has no such attribute). ``source_ref`` keeps the original object id as text
    when it is not an integer (Label Studio region ids).
    """

    item: npt.NDArray[np.int64]
    kind: npt.NDArray[np.int8]
    label: npt.NDArray[np.int32]
    bbox: npt.NDArray[np.float64]
    rotation: npt.NDArray[np.float64]
    z_order: npt.NDArray[np.int32]
    group: npt.NDArray[np.int64]
    occluded: npt.NDArray[np.bool_]
    source_id: npt.NDArray[np.int64]
    source_type: npt.NDArray[np.int8]
    origin: npt.NDArray[np.int8]
    annotator: npt.NDArray[np.int32]
    control: npt.NDArray[np.int16]
    score: npt.NDArray[np.float64]
    number: npt.NDArray[np.float64]
    span: npt.NDArray[np.float64]
    text: npt.NDArray[np.object_]
    source_ref: npt.NDArray[np.object_]
    point_offsets: npt.NDArray[np.int64]
    points: npt.NDArray[np.float64]
    vis: npt.NDArray[np.int8]
    rle_offsets: npt.NDArray[np.int64]
    rle: npt.NDArray[np.uint32]
    attributes: Mapping[str, npt.NDArray[np.object_]] = field(default_factory=dict)
    annotators: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.item)
        for name in _ROW_COLUMNS:
            col = getattr(self, name)
            if col.shape != (n,):
                raise ValidationError(f"Annotations.{name}: expected shape ({n},), got {col.shape}")
        for name, width in (("bbox", 4), ("span", 2)):
            col = getattr(self, name)
            if col.shape != (n, width):
                raise ValidationError(
                    f"Annotations.{name}: expected shape ({n}, {width}), got {col.shape}"
                )
        for name in ("text", "source_ref"):
            if getattr(self, name).shape != (n,):
                raise ValidationError(f"Annotations.{name}: expected {n} values")
        for key, col in self.attributes.items():
            if col.shape != (n,):
                raise ValidationError(f"Annotations.attributes[{key!r}]: expected {n} values")
        self._check_offsets("point_offsets", self.point_offsets, len(self.points))
        self._check_offsets("rle_offsets", self.rle_offsets, len(self.rle))
        if self.points.ndim != 2 or self.points.shape[1] != 2:
            raise ValidationError(
                f"Annotations.points: expected shape (P, 2), got {self.points.shape}"
            )
        if self.vis.shape != (len(self.points),):
            raise ValidationError("Annotations.vis: expected one flag per point")
        if n > 1 and np.any(np.diff(self.item) < 0):
            raise ValidationError(
                "Annotations.item must be sorted ascending (use Annotations.concat)"
            )
        bad = ~np.isfinite(self.bbox).all(axis=1)
        if bad.any():
            self._fail_row(int(np.flatnonzero(bad)[0]), "bbox has a NaN or infinite coordinate")
        bad = (self.bbox[:, 2] < self.bbox[:, 0]) | (self.bbox[:, 3] < self.bbox[:, 1])
        if bad.any():
            self._fail_row(int(np.flatnonzero(bad)[0]), "bbox has x2 < x1 or y2 < y1")
        if len(self.points) and not np.isfinite(self.points).all():
            p = int(np.flatnonzero(~np.isfinite(self.points).all(axis=1))[0])
            row = int(np.searchsorted(self.point_offsets, p, side="right") - 1)
            self._fail_row(row, "points has a NaN or infinite coordinate")
        if n and (self.kind.min() < 0 or self.kind.max() > max(Kind)):
            raise ValidationError("Annotations.kind holds a value that is not a Kind")
        if n and self.label.min() < -1:
            raise ValidationError("Annotations.label must be >= -1")
        if n and self.annotator.max() >= max(len(self.annotators), 0) and self.annotator.max() >= 0:
            raise ValidationError(
                f"Annotations.annotator: index {int(self.annotator.max())} but only "
                f"{len(self.annotators)} annotators are named"
            )

    def _check_offsets(self, name: str, offsets: IntArray, total: int) -> None:
        n = len(self.item)
        if offsets.shape != (n + 1,):
            raise ValidationError(
                f"Annotations.{name}: expected {n + 1} offsets, got {offsets.shape}"
            )
        if offsets[0] != 0 or offsets[-1] != total or np.any(np.diff(offsets) < 0):
            raise ValidationError(
                f"Annotations.{name}: offsets must start at 0, never decrease and end at {total}"
            )

    def _fail_row(self, row: int, problem: str) -> None:
        raise ValidationError(
            f"annotation row {row} (item {int(self.item[row])}, source id "
            f"{int(self.source_id[row])}): {problem}"
        )

    # --- construction -------------------------------------------------------------------

    @classmethod
    def empty(cls, annotators: Sequence[str] = ()) -> Annotations:
        return AnnotationsBuilder(annotators).build()

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, Any]], annotators: Sequence[str] = ()
    ) -> Annotations:
        """Build from dicts with the keys of :meth:`AnnotationsBuilder.add` (for tests/scripts).

        ``kind`` may be a :class:`Kind` or its name; ``annotator`` may be a name.
        """
        builder = AnnotationsBuilder(annotators)
        for rec in records:
            builder.add(**dict(rec))
        return builder.build()

    @classmethod
    def concat(cls, parts: Sequence[Annotations]) -> Annotations:
        """Concatenate several sets into one, re-sorted by item (stable).

        Annotator names are unified; attribute columns are the union (None where missing).
        """
        parts = [p for p in parts]
        if not parts:
            return cls.empty()
        names: list[str] = []
        for p in parts:
            for a in p.annotators:
                if a not in names:
                    names.append(a)
        lookup = {a: i for i, a in enumerate(names)}
        # Each row is written once, straight to its sorted place (no concatenated copy to
        # re-sort: on millions of rows the fresh memory costs more than the moves).
        item = np.concatenate([p.item for p in parts])
        order = dest = None
        if len(item) > 1 and np.any(item[1:] < item[:-1]):
            order = np.argsort(item, kind="stable")
            dest = np.empty(len(item), np.int64)
            dest[order] = np.arange(len(item))
        cols: dict[str, Any] = {"item": item if dest is None else _rows_to(dest, [item])}
        for name in (*_ROW_COLUMNS, "bbox", "span", "text", "source_ref"):
            if name != "item":
                cols[name] = _rows_to(dest, [getattr(p, name) for p in parts])
        remapped = []
        for p in parts:
            table = np.array([lookup[a] for a in p.annotators] + [-1], dtype=np.int32)
            remapped.append(table[p.annotator])  # -1 indexes the trailing -1
        cols["annotator"] = _rows_to(dest, remapped)
        for off_name, val_names in (
            ("point_offsets", ("points", "vis")),
            ("rle_offsets", ("rle",)),
        ):
            values = {v: np.concatenate([getattr(p, v) for p in parts]) for v in val_names}
            shifts = np.cumsum([0] + [len(getattr(p, val_names[0])) for p in parts[:-1]])
            pieces = [getattr(p, off_name)[:-1] + s for p, s in zip(parts, shifts, strict=True)]
            total = len(values[val_names[0]])
            offsets = np.concatenate([*pieces, np.array([total], dtype=np.int64)])
            for v, flat in values.items():
                if order is not None:
                    cols[off_name], cols[v] = gather_ragged(offsets, flat, order)
                else:
                    cols[off_name], cols[v] = offsets, flat
        keys: list[str] = []
        for p in parts:
            keys.extend(k for k in p.attributes if k not in keys)
        attrs = {
            k: _rows_to(
                dest, [p.attributes.get(k, np.full(len(p), None, dtype=object)) for p in parts]
            )
            for k in keys
        }
        return cls(**cols, attributes=attrs, annotators=tuple(names))

    def annotator_rows_in(self, whole: Annotations) -> dict[str, Annotations] | None:
        """These rows per annotator as ``whole.by_annotator()`` gives them, ``whole`` being
        :meth:`concat` of this set and others (whose annotators differ from this set's): the
        same rows in the same order, annotator indices into ``whole``'s names, ``whole``'s
        attribute columns (None where this set has none) and dtypes. Shares this set's arrays
        instead of selecting rows from ``whole``.

        Returns:
            None for rows without an annotator (``whole`` pools them across sets) or more
            than one annotator here (not worth it); else ``{name: rows}`` (empty without rows).
        """
        if len(self) == 0:
            return {}
        if len(self.annotators) != 1 or int(self.annotator.min()) < 0:
            return None
        cols = {
            f.name: np.asarray(getattr(self, f.name), getattr(whole, f.name).dtype)
            for f in fields(self)
            if f.name not in ("attributes", "annotators")
        }
        index = whole.annotators.index(self.annotators[0])
        cols["annotator"] = np.full(len(self), index, whole.annotator.dtype)
        attrs = {
            k: np.asarray(self.attributes[k], whole.attributes[k].dtype)
            if k in self.attributes
            else np.full(len(self), None, dtype=object)
            for k in whole.attributes
        }
        rows = Annotations(**cols, attributes=attrs, annotators=whole.annotators)
        return {self.annotators[0]: rows}

    # --- access -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.item)

    def item_slices(self) -> tuple[IntArray, IntArray, IntArray]:
        """Unique item ids and, for each, the [start, end) row slice holding its rows."""
        if len(self.item) == 0:
            e = np.zeros(0, np.int64)
            return e, e, e
        change = np.flatnonzero(np.diff(self.item)) + 1
        starts = np.concatenate([[0], change]).astype(np.int64)
        ends = np.concatenate([change, [len(self.item)]]).astype(np.int64)
        return self.item[starts], starts, ends

    def item_range(self, item_id: int) -> tuple[int, int]:
        """[start, end) rows of one item (empty range if it has none)."""
        lo = int(np.searchsorted(self.item, item_id, side="left"))
        hi = int(np.searchsorted(self.item, item_id, side="right"))
        return lo, hi

    def for_item(self, item_id: int) -> Annotations:
        lo, hi = self.item_range(item_id)
        return self.take(np.arange(lo, hi))

    def points_of(self, row: int) -> FloatArray:
        """(k, 2) vertices of one row."""
        return self.points[self.point_offsets[row] : self.point_offsets[row + 1]]

    def vis_of(self, row: int) -> IntegerArray:
        return self.vis[self.point_offsets[row] : self.point_offsets[row + 1]]

    def rle_of(self, row: int) -> RunArray:
        """Column-major COCO RLE counts of one mask row (empty for non-masks)."""
        return self.rle[self.rle_offsets[row] : self.rle_offsets[row + 1]]

    def take(self, rows: IntArray | Sequence[int]) -> Annotations:
        """Rows by index, in the given order (must keep items ascending)."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = _take_columns(self.__dict__, rows)
        attrs = {k: v[rows] for k, v in self.attributes.items()}
        return Annotations(**cols, attributes=attrs, annotators=self.annotators)

    def select(self, mask: BoolArray) -> Annotations:
        """Rows where the boolean ``mask`` is true."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(self),):
            raise ValidationError(f"select: mask must have shape ({len(self)},)")
        if mask.all():
            return self  # frozen: sharing is safe and saves a full copy
        return self.take(np.flatnonzero(mask))

    def by_annotator(self) -> dict[str, Annotations]:
        """Split into one set per annotator name (rows with no annotator under ``""``)."""
        out: dict[str, Annotations] = {}
        for idx in np.unique(self.annotator):
            name = self.annotators[idx] if idx >= 0 else ""
            sub = self.select(self.annotator == idx)
            out[name] = sub
        return out

    def with_items(self, new_item: IntArray) -> Annotations:
        """A copy whose rows move to new item ids (re-sorted stably by the new ids)."""
        cols = {f.name: getattr(self, f.name) for f in fields(self)}
        attrs, names = cols.pop("attributes"), cols.pop("annotators")
        cols["item"] = np.asarray(new_item, dtype=np.int64)
        return _sorted_annotations(cols, dict(attrs), names)

    def with_columns(self, **changes: Any) -> Annotations:
        """A copy with some row columns replaced (same length)."""
        cols = {f.name: getattr(self, f.name) for f in fields(self)}
        cols.update(changes)
        return Annotations(**cols)

    # --- JSON form ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (lists); :meth:`from_dict` restores it exactly."""
        out: dict[str, Any] = {"annotators": list(self.annotators)}
        for name in _ROW_COLUMNS:
            col = getattr(self, name)
            if col.dtype.kind == "f":
                out[name] = [None if not np.isfinite(v) else float(v) for v in col]
            else:
                out[name] = col.tolist()
        out["bbox"] = self.bbox.tolist()
        out["span"] = [[None if not np.isfinite(v) else float(v) for v in row] for row in self.span]
        out["text"] = list(self.text)
        out["source_ref"] = list(self.source_ref)
        out["point_offsets"] = self.point_offsets.tolist()
        out["points"] = self.points.tolist()
        out["vis"] = self.vis.tolist()
        out["rle_offsets"] = self.rle_offsets.tolist()
        out["rle"] = self.rle.tolist()
        out["attributes"] = {k: list(v) for k, v in self.attributes.items()}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Annotations:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValidationError: a column is missing or malformed.
        """
        try:
            cols: dict[str, Any] = {}
            for name, (dtype, _) in _ROW_COLUMNS.items():
                raw = d[name]
                if np.dtype(dtype).kind == "f":
                    raw = [np.nan if v is None else v for v in raw]
                cols[name] = np.asarray(raw, dtype=dtype).reshape(-1)
            n = len(cols["item"])
            cols["bbox"] = np.asarray(d["bbox"], dtype=np.float64).reshape(n, 4)
            cols["span"] = np.asarray(
                [[np.nan if v is None else v for v in row] for row in d["span"]], dtype=np.float64
            ).reshape(n, 2)
            cols["text"] = _object_array(d["text"])
            cols["source_ref"] = _object_array(d["source_ref"])
            cols["point_offsets"] = np.asarray(d["point_offsets"], dtype=np.int64)
            cols["points"] = np.asarray(d["points"], dtype=np.float64).reshape(-1, 2)
            cols["vis"] = np.asarray(d["vis"], dtype=np.int8)
            cols["rle_offsets"] = np.asarray(d["rle_offsets"], dtype=np.int64)
            cols["rle"] = np.asarray(d["rle"], dtype=np.uint32)
            attrs = {k: _object_array(v) for k, v in d.get("attributes", {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"Annotations.from_dict: malformed input ({exc})") from None
        return cls(**cols, attributes=attrs, annotators=tuple(d.get("annotators", ())))


def _object_array(values: Sequence[Any]) -> ObjectArray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


class AnnotationsBuilder:
    """Accumulates annotations one at a time (readers, tests) and builds a sorted set.

    Readers validate each source object before :meth:`add`, so one bad object is reported and
    skipped rather than failing the whole set. Rows are kept as column blocks
    (:class:`~labelgate.model.columns.ColumnBlocks`): the rows added one by one since the last
    block become one block when a reader appends a block of its own (:meth:`extend`) or the
    set is built, so both kinds of rows keep the order they were added in.
    """

    def __init__(self, annotators: Sequence[str] = ()) -> None:
        from labelgate.model.columns import ColumnBlocks

        self._annotators: list[str] = list(annotators)
        self._annotator_pos: dict[str, int] = {}
        self._blocks = ColumnBlocks()
        self._done = 0  # rows already in blocks
        self._reset()

    def _reset(self) -> None:
        self._rows: dict[str, list[Any]] = {name: [] for name in _ROW_COLUMNS}
        self._row_lists = list(self._rows.values())
        self._bbox: list[Any] = []  # (4,) arrays or tuples of 4 floats
        self._span: list[Sequence[float]] = []
        self._text: list[Any] = []
        self._ref: list[Any] = []
        self._points: list[FloatArray] = []
        self._vis: list[IntegerArray] = []
        self._rle: list[RunArray] = []
        self._attrs: dict[str, dict[int, Any]] = {}

    def __len__(self) -> int:
        return self._done + len(self._bbox)

    def annotator_index(self, name: str) -> int:
        pos = self._annotator_pos.get(name)
        if pos is None:
            if name not in self._annotators:
                self._annotators.append(name)
            pos = self._annotator_pos[name] = self._annotators.index(name)
        return pos

    def add(
        self,
        item: int,
        kind: Kind | str | int,
        label: int = -1,
        *,
        bbox: Sequence[float] | None = None,
        points: Sequence[float] | Sequence[Sequence[float]] | AnyArray | None = None,
        vis: Sequence[int] | AnyArray | None = None,
        rle: Sequence[int] | AnyArray | None = None,
        rotation: float = 0.0,
        z_order: int = 0,
        group: int = 0,
        occluded: bool = False,
        source_id: int = -1,
        source_type: SourceType | int = SourceType.SHAPE,
        origin: Origin | int = Origin.MANUAL,
        annotator: int | str = -1,
        control: int = -1,
        score: float = np.nan,
        number: float = np.nan,
        span: Sequence[float] | None = None,
        text: Any = None,
        source_ref: Any = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one annotation; returns its (pre-sort) row number.

        ``points`` is a flat ``[x0, y0, x1, y1, ...]`` list or a (k, 2) array. When ``bbox`` is
        not given it is the points' bounding box (zeros for tags and non-spatial rows).

        Raises:
            ValidationError: malformed geometry (odd coordinate count, NaN, bad bbox).
        """
        if isinstance(kind, str):
            kind = Kind.parse(kind)
        if isinstance(annotator, str):
            known = self._annotator_pos.get(annotator)
            annotator = self.annotator_index(annotator) if known is None else known
        box: Any
        if points is None and vis is None and type(bbox) is tuple and _plain_box(bbox):
            # The common row (a box given as Python floats): the same checks, without numpy.
            pts, flags, box = _NO_POINTS, _NO_VIS, bbox
        else:
            pts, flags, box = self._geometry(item, source_id, bbox, points, vis)
        row = self._done + len(self._bbox)
        values = (
            item,
            int(kind),
            label,
            rotation,
            z_order,
            group,
            occluded,
            source_id,
            int(source_type),
            int(origin),
            annotator,
            control,
            score,
            number,
        )  # in _ROW_COLUMNS order
        if not _row_fits(values):
            _check_row(item, source_id, dict(zip(_ROW_COLUMNS, values, strict=True)))
        if span is not None and not np.isfinite(np.asarray(span, dtype=np.float64)).all():
            raise ValidationError(f"item {item}, source id {source_id}: span is not finite")
        for column, v in zip(self._row_lists, values, strict=True):
            column.append(v)
        self._bbox.append(box)
        self._span.append((np.nan, np.nan) if span is None else tuple(span))
        self._text.append(text)
        self._ref.append(source_ref)
        self._points.append(pts)
        self._vis.append(flags)
        self._rle.append(_NO_RLE if rle is None else np.asarray(rle, dtype=np.uint32).reshape(-1))
        for key, value in (attributes or {}).items():
            self._attrs.setdefault(key, {})[row] = value
        return row

    @staticmethod
    def _geometry(
        item: int, source_id: int, bbox: Any, points: Any, vis: Any
    ) -> tuple[FloatArray, IntegerArray, FloatArray]:
        """Checked (points, visibility flags, bbox) of one row.

        Raises:
            ValidationError: malformed geometry (odd coordinate count, NaN, bad bbox).
        """
        pts = _NO_POINTS if points is None else np.asarray(points, dtype=np.float64)
        if pts.ndim == 1:
            if len(pts) % 2:
                raise ValidationError(f"item {item}: odd number of point coordinates ({len(pts)})")
            pts = pts.reshape(-1, 2)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValidationError(f"item {item}: points must be (k, 2), got {pts.shape}")
        if not np.isfinite(pts).all():
            raise ValidationError(f"item {item}, source id {source_id}: NaN or infinite point")
        if len(pts) and np.abs(pts).max() > MAX_COORDINATE:
            raise ValidationError(
                f"item {item}, source id {source_id}: a point lies beyond ±{MAX_COORDINATE:.0f} px"
            )
        flags = (
            np.full(len(pts), VISIBLE, dtype=np.int8)
            if vis is None
            else np.asarray(vis, dtype=np.int8).reshape(-1)
        )
        if len(flags) != len(pts):
            raise ValidationError(
                f"item {item}: {len(flags)} visibility flags for {len(pts)} points"
            )
        if bbox is None:
            shown = pts[flags != ABSENT] if len(pts) else pts
            if len(shown):
                bbox = (shown[:, 0].min(), shown[:, 1].min(), shown[:, 0].max(), shown[:, 1].max())
            else:
                bbox = (0.0, 0.0, 0.0, 0.0)
        box = np.asarray(bbox, dtype=np.float64).reshape(-1)
        if box.shape != (4,) or not np.isfinite(box).all():
            raise ValidationError(
                f"item {item}, source id {source_id}: bbox must be 4 finite numbers"
            )
        if np.abs(box).max() > MAX_COORDINATE:
            raise ValidationError(
                f"item {item}, source id {source_id}: bbox lies beyond ±{MAX_COORDINATE:.0f} px"
            )
        if box[2] < box[0] or box[3] < box[1]:
            raise ValidationError(
                f"item {item}, source id {source_id}: bbox has x2 < x1 or y2 < y1"
            )
        return pts, flags, box

    def extend(self, **columns: Any) -> None:
        """Append a block of rows given as columns (see :meth:`ColumnBlocks.extend`).

        Raises:
            ValidationError: a column of the wrong shape or a coordinate out of range.
        """
        self._flush()
        before = len(self._blocks)
        self._blocks.extend(**columns)
        self._done += len(self._blocks) - before

    def _flush(self) -> None:
        """Turn the rows added one by one into a block."""
        n = len(self._bbox)
        if not n:
            return
        block: dict[str, Any] = {
            name: np.asarray(vals, dtype=_ROW_COLUMNS[name][0]).reshape(n)
            for name, vals in self._rows.items()
        }
        block["bbox"] = np.asarray(self._bbox, dtype=np.float64).reshape(n, 4)
        block["span"] = np.asarray(self._span, dtype=np.float64).reshape(n, 2)
        block["text"] = _object_array(self._text)
        block["source_ref"] = _object_array(self._ref)
        block["counts"] = np.array([len(p) for p in self._points], dtype=np.int64)
        block["points"] = np.concatenate(self._points).reshape(-1, 2)
        block["vis"] = np.concatenate(self._vis).astype(np.int8)
        block["rle_counts"] = np.array([len(r) for r in self._rle], dtype=np.int64)
        block["rle"] = np.concatenate(self._rle).astype(np.uint32)
        attrs: dict[str, ObjectArray] = {}
        for key, by_row in self._attrs.items():
            col = np.full(n, None, dtype=object)
            for r, v in by_row.items():
                col[r - self._done] = v
            attrs[key] = col
        self._blocks.append_block(block, attrs)
        self._done += n
        self._reset()

    def build(self) -> Annotations:
        """Sort by item (stable) and freeze into :class:`Annotations`."""
        self._flush()
        return self._blocks.build(tuple(self._annotators))


#: Columns whose values have a meaning below zero only as the "none" marker.
_MIN_VALUE = {"group": 0, "label": -1}


def _limits(name: str, dtype: Any, fill: Any) -> tuple[str, int, int, Any]:
    dt = np.dtype(dtype)
    if dt.kind != "i":
        return dt.kind, 0, 0, fill
    return dt.kind, _MIN_VALUE.get(name, int(np.iinfo(dt).min)), int(np.iinfo(dt).max), fill


#: Per row column: (dtype kind, lowest, highest value, fill) for the per-row checks.
_LIMITS = {name: _limits(name, dtype, fill) for name, (dtype, fill) in _ROW_COLUMNS.items()}


_LIMIT_LIST = [(*_LIMITS[name], name != "rotation") for name in _ROW_COLUMNS]


def _row_fits(values: tuple[Any, ...]) -> bool:
    """True when every value fits its column as it is (Python ints in range, usable floats).

    False sends the row to :func:`_check_row`, which names the value that does not fit (or
    accepts it after a conversion, e.g. a numpy integer).
    """
    for v, (kind, lo, hi, fill, nan_ok) in zip(values, _LIMIT_LIST, strict=True):
        if v is fill:
            continue
        if kind == "i":
            if type(v) is not int or not lo <= v <= hi:
                return False
        elif kind == "f" and (
            type(v) is not float or not (math.isfinite(v) or (nan_ok and v != v))
        ):
            return False
    return True


def _plain_box(box: tuple[Any, ...]) -> bool:
    """True for 4 Python floats, finite, within range, ordered: a box needing no numpy check."""
    if len(box) != 4:
        return False
    x1, y1, x2, y2 = box
    if not (type(x1) is type(y1) is type(x2) is type(y2) is float):
        return False
    m = MAX_COORDINATE
    return -m <= x1 <= x2 <= m and -m <= y1 <= y2 <= m  # False for NaN


def _check_row(item: Any, source_id: Any, values: Mapping[str, Any]) -> None:
    """Refuse values that do not fit their column (so one bad object is skipped, not the set).

    Integers must fit the column's dtype; rotation must be finite; score and number are NaN
    (none) or finite.
    """
    for name, value in values.items():
        kind, lo, hi, fill = _LIMITS[name]
        if value is fill:
            continue  # the column's "none" value, passed on as it is
        if kind == "i":
            if type(value) is int and lo <= value <= hi:
                continue
        elif kind == "f":
            if type(value) is float and (
                math.isfinite(value) or (value != value and name != "rotation")
            ):
                continue
        else:
            continue
        dtype = np.dtype(_ROW_COLUMNS[name][0])
        if dtype.kind == "i":
            info = np.iinfo(dtype)
            if isinstance(value, float | np.floating) and np.isfinite(value):
                value = int(value)  # callers may pass whole floats; numpy casts them
            if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
                problem = f"{name}={value!r} is not an integer"
            elif _MIN_VALUE.get(name, info.min) <= int(value) <= info.max:
                continue
            else:
                lo = _MIN_VALUE.get(name, info.min)
                problem = f"{name}={value} is out of range [{lo}, {info.max}]"
        elif dtype.kind == "f":
            try:
                number = float(value)
            except (TypeError, ValueError, OverflowError):
                problem = f"{name}={value!r} is not a number"
            else:
                if np.isfinite(number) or (np.isnan(number) and name != "rotation"):
                    continue
                problem = f"{name}={value!r} is not a finite number"
        else:
            continue
        raise ValidationError(f"item {item}, source id {source_id}: {problem}")


def _rows_to(dest: IntArray | None, arrays: Sequence[AnyArray]) -> AnyArray:
    """``np.concatenate(arrays)`` with row ``r`` of the result moved to row ``dest[r]``
    (a permutation; None: left in place), each row written once."""
    if dest is None:
        return np.concatenate(arrays)
    out = np.empty((len(dest), *arrays[0].shape[1:]), np.result_type(*arrays))
    lo = 0
    for a in arrays:
        out[dest[lo : lo + len(a)]] = a
        lo += len(a)
    return out


def _take_columns(cols: Mapping[str, Any], rows: IntArray) -> dict[str, Any]:
    """Gather rows of raw column arrays (row and ragged columns alike)."""
    out: dict[str, Any] = {name: cols[name][rows] for name in _ROW_COLUMNS}
    for name in ("bbox", "span", "text", "source_ref"):
        out[name] = cols[name][rows]
    out["point_offsets"], out["points"] = gather_ragged(cols["point_offsets"], cols["points"], rows)
    _, out["vis"] = gather_ragged(cols["point_offsets"], cols["vis"], rows)
    out["rle_offsets"], out["rle"] = gather_ragged(cols["rle_offsets"], cols["rle"], rows)
    return out


def _sorted_annotations(
    cols: dict[str, Any],
    attrs: Mapping[str, AnyArray],
    names: tuple[str, ...],
    order: IntArray | None = None,
) -> Annotations:
    """Freeze raw columns into Annotations, stably re-sorting rows by item when needed
    (``order``: that sort, when the caller has it already)."""
    item = cols["item"]
    if order is None and len(item) > 1 and np.any(item[1:] < item[:-1]):
        order = np.argsort(item, kind="stable")
    if order is not None:
        cols = _take_columns(cols, order)
        attrs = {k: v[order] for k, v in attrs.items()}
    return Annotations(**cols, attributes=attrs, annotators=names)
