"""Streaming CVAT XML: the plain shapes of ``<image>`` elements read straight into columns.

The file is parsed in chunks; each finished ``<image>`` is taken out of the tree at once, so
the reader never holds the document. Its boxes, polygons, polylines and points whose every field
converts cleanly become column blocks through C-level ``map`` calls and numpy (no per-row dict
or payload); everything else (tags, masks, skeletons, ellipses, cuboids, and any plain shape
with a field the per-object path would report) stays an element for that path
(:func:`labelgate_cvat.xml_export.xml_to_payloads`), which owns every error message. Rows carry
their document counter as ``source_id``, so the two halves merge back into document order.
Finished ``<track>`` elements of a video job likewise become rows
(:mod:`labelgate_cvat.xml_tracks`) or stay elements, by track.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import chain, compress, repeat
from operator import attrgetter, is_not, itemgetter, methodcaller
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from labelgate.errors import FormatError, ValidationError
from labelgate.io.gc_pause import gc_paused
from labelgate.io.inputs import to_float, to_int
from labelgate.model import MAX_COORDINATE, Annotations, Kind, LabelSchema, Origin, gather_ragged
from labelgate.model.columns import ColumnBlocks

if TYPE_CHECKING:  # xml_tracks reads keyframes with this module's helpers
    from labelgate_cvat.xml_tracks import TakenTracks

#: Bytes fed to the parser at a time (small: the parser's allocations stay in cache).
CHUNK = 1 << 14
#: Finished children of the root gathered before a harvest (numpy calls amortised over them).
BATCH = 32
#: ... or fewer, once their own children (shapes, keyframes) are this many: a video's tracks
#: are large, and a smaller batch leaves the parser's memory in cache (4096 measured best on
#: 100-keyframe tracks: 2048 spends ~1.5% more CPU on per-batch numpy calls, 8192 on misses).
BATCH_ELEMENTS = 4096
#: Harvested rows gathered before they go to ``Streamed.fast`` as one block.
FLUSH = 1 << 15
KINDS = {"box": Kind.RECTANGLE, "polygon": Kind.POLYGON, "polyline": Kind.POLYLINE}
KINDS["points"] = Kind.POINTS
_MIN_COORDS = {Kind.POLYGON: 6, Kind.POLYLINE: 4, Kind.POINTS: 2}
_BOX_KEYS = ("xtl", "ytl", "xbr", "ybr")
_BOX_GETS = tuple(map(itemgetter, _BOX_KEYS))
ONE = {"1": True}  # CVAT writes flags as "0"/"1"; anything but "1" is false
_SLOW = object()  # a cached field value the per-object path must report
_attrib = attrgetter("attrib")
_tag = attrgetter("tag")
_text = attrgetter("text")
_first = itemgetter(0)


def lookup(texts: list[Any], table: Any, default: Any, dtype: Any) -> np.ndarray:
    """``table.get(text, default)`` for every text, as an array (one lookup when all agree)."""
    if uniform(texts):
        return np.full(len(texts), table.get(texts[0], default), dtype=dtype)
    return np.fromiter(map(table.get, texts, repeat(default)), dtype, len(texts))


def uniform(texts: list[Any]) -> bool:
    """Every text equal to the first (one C comparison each; no hashing, unlike ``set``)."""
    if not texts:
        return False
    first, last = texts[0], texts[-1]
    # ``list.count`` scans to the end: a last text unlike the first answers at once (compared
    # as count compares, identity first).
    return (last is first or last == first) and texts.count(first) == len(texts)


def values_of(attribs: list[dict[str, str]], key: str, default: str | None = None) -> list[Any]:
    """One XML attribute of every element (mapped in C, no per-row Python)."""
    try:  # the usual case, every element has it: itemgetter calls no method per row
        return list(map(itemgetter(key), attribs))
    except KeyError:  # raised at the first element without it
        return list(map(dict.get, attribs, repeat(key), repeat(default)))


@dataclass
class Streamed:
    """What a streaming parse leaves for the per-object path.

    Attributes:
        root: ``<annotations>`` without the children of its images (meta, tracks kept).
        images: the ``<image>`` elements in file order (attributes only once harvested).
        objects: (element, index of its image in ``images``, document counter) of every image
            child the fast path did not take.
        fast: the rows the fast path took (None when it was off: no ``<labels>`` in ``<meta>``).
        counted: children of images seen (the document counter's end).
        pending: harvested column blocks not yet handed to ``fast`` (see :data:`FLUSH`).
        pending_rows: their rows.
        tracks: the rows of the ``<track>`` elements taken out of ``root``
            (:class:`labelgate_cvat.xml_tracks.TakenTracks`); None when no track was taken
            (the per-object path converts every track).
    """

    root: ET.Element
    images: list[ET.Element] = field(default_factory=list)
    objects: list[tuple[ET.Element, int, int]] = field(default_factory=list)
    fast: ColumnBlocks | None = None
    counted: int = 0
    pending: list[dict[str, Any]] = field(default_factory=list)
    pending_rows: int = 0
    tracks: TakenTracks | None = None


class Fields:
    """Per-label lookups and memoised conversions of repeated field texts."""

    def __init__(self, labels: list[dict[str, Any]], schema: LabelSchema) -> None:
        position = {lab.name: i for i, lab in enumerate(schema.labels)}
        self.label = {lab["name"]: position[lab["name"]] for lab in labels}
        self.specs = {  # (label position, attribute name) -> spec
            (position[lab["name"]], a["name"]): spec
            for lab, slab in ((lab, schema.labels[position[lab["name"]]]) for lab in labels)
            for a, spec in zip(lab.get("attributes", ()), slab.attributes, strict=True)
        }
        self.defaults = [
            {s.name: s.parse(s.default).value for s in lab.attributes} for lab in schema.labels
        ]
        # Attribute name -> each label's default (None past the last label and for labels
        # without it): a batch's default column is one fancy index by row label.
        self.default_columns: dict[str, np.ndarray] = {}
        for lab, values in enumerate(self.defaults):
            for key, value in values.items():
                col = self.default_columns.setdefault(
                    key, np.full(len(self.defaults) + 1, None, dtype=object)
                )
                col[lab] = value
        # Field name -> (text -> converted value, 0 where the per-object path would fail;
        # the texts it would fail on).
        self.cache: dict[str, tuple[dict[Any, Any], set[Any]]] = {}
        self.attr_cache: dict[tuple[int, str, str | None], tuple[str | int, Any]] = {}

    def attribute(self, label: int, name: str, text: str | None) -> tuple[str | int, Any]:
        """(column name, value) of an ``<attribute>`` child of a row with this label.

        The column is -1 for a name the label does not declare (the XML path ignores it) and
        -2 for a value the spec cannot read (the per-object path reports it).
        """
        key = (label, name, text)
        if key not in self.attr_cache:
            spec = self.specs.get((label, name))
            parsed = spec.parse(text or "") if spec is not None else None
            if spec is None or parsed is None:
                self.attr_cache[key] = (-1, None)
            elif parsed.problem:
                self.attr_cache[key] = (-2, None)
            else:
                self.attr_cache[key] = (spec.name, parsed.value)
        return self.attr_cache[key]

    def converted(self, what: str, texts: set[Any]) -> tuple[dict[Any, Any], set[Any]]:
        """Field ``what`` as the per-object path reads it, for at least the given ``texts``.

        Returns:
            (text -> value, 0 for a text it would fail on; the texts it would fail on), memoised
            over the whole file: a batch's texts are looked up in C, each new one converted once.
        """
        clean, slow = self.cache.setdefault(what, ({}, set()))
        for text in texts.difference(clean):
            value = _convert(what, text)
            clean[text] = 0 if value is _SLOW else value
            if value is _SLOW:
                slow.add(text)
        return clean, slow


def _convert(what: str, text: Any) -> Any:
    # The same chain as xml_export._object/_shape_fields then payloads._Converter.shape.
    from labelgate_cvat.xml_export import _number

    # A track's ``id`` and its keyframes' ``frame`` as xml_export._track and the converter's
    # track checks read them.
    try:
        if what == "origin":
            return int(Origin.parse(text or "manual"))
        if what == "rotation":
            value = to_float(_number(text, float) or 0.0, "rotation")
            return value
        if what == "frame":
            return to_int(text, "frame", lo=0)
        if what == "id":
            return to_int(_number(text, int) or 0, "id")
        lo, hi = (0, 2**63 - 1) if what == "group" else (-(2**31), 2**31 - 1)
        return to_int(_number(text, int) or 0, what, lo, hi)
    except ValidationError:
        return _SLOW


def stream_cvat_xml(
    fh: IO[bytes],
    labels_of: Callable[[ET.Element], tuple[list[dict[str, Any]], LabelSchema]],
    annotator: str,
    job_frames: Callable[[ET.Element], tuple[int, int]] | None = None,
) -> Streamed:
    """Parse a CVAT XML file in chunks, taking plain image shapes and tracks into columns.

    Args:
        fh: the open file (seekable when ``job_frames`` is given).
        labels_of: ``root -> (Label dicts, schema)``; raising FormatError turns the fast path
            off (the per-object path then reports the problem).
        annotator: the name of the fast rows' annotator.
        job_frames: ``root -> (start, stop)`` frames of a video job from its meta, asked at
            the first ``<track>``; raising FormatError (or None) leaves every track to the
            per-object path. Tracks are taken only in a document without images (an image
            after a taken track starts the parse again without taking tracks).

    Raises:
        ET.ParseError: not well-formed XML.
    """
    # The cyclic collector would rescan the parser's young elements after every few thousand
    # allocations (a third of the reading time); nothing here makes cycles, so it waits.
    with gc_paused():
        try:
            return _stream(fh, labels_of, annotator, job_frames)
        except _ImageAfterTracks:
            fh.seek(0)
            return _stream(fh, labels_of, annotator, None)


class _ImageAfterTracks(Exception):
    """An ``<image>`` after tracks were taken as video frames: the document is not a video."""


def _stream(
    fh: IO[bytes],
    labels_of: Callable[[ET.Element], tuple[list[dict[str, Any]], LabelSchema]],
    annotator: str,
    job_frames: Callable[[ET.Element], tuple[int, int]] | None,
) -> Streamed:
    from labelgate_cvat.xml_tracks import TakenTracks

    parser: ET.XMLPullParser[Any] = ET.XMLPullParser(events=("start",))
    # The parser's event deque (private, stable since 3.4): cleared in one C call, as only the
    # root's start event is used; read_events() would run Python code per element.
    queue: Any = getattr(parser, "_events_queue")  # noqa: B009
    out: Streamed | None = None
    fields: Fields | None = None
    fast_off = False
    tracks_off = job_frames is None
    kept = 0  # leading children of root already looked at and kept
    while True:
        data = fh.read(CHUNK)
        if data:
            parser.feed(data)
        else:
            parser.close()
        if queue and isinstance(queue[-1], Exception):
            raise queue[-1]
        if out is None and queue:
            out = Streamed(root=queue[0][1])
            # No more start events: the parser stops building an event tuple per element.
            parser._parser._setevents(queue, ())  # type: ignore[attr-defined]
        queue.clear()
        if out is None:
            continue  # close() has raised when the document had no element
        root = out.root
        if data and (len(root) - kept <= BATCH and sum(map(len, root[kept:-1])) < BATCH_ELEMENTS):
            continue
        end = len(root) - (1 if data else 0)  # the last child may still be open
        batch = root[kept:end]
        images = [el for el in batch if el.tag == "image"]
        tracks = [el for el in batch if el.tag == "track"]
        if (images or tracks) and fields is None and not fast_off:
            try:
                fields = Fields(*labels_of(root))
            except Exception:
                fast_off = True
        if images and out.tracks is not None:
            raise _ImageAfterTracks
        if tracks and out.tracks is None and not tracks_off:
            # Decided once, at the first track: the meta (before it) gives the job's frames.
            tracks_off = True
            if fields is not None and not (out.images or images) and job_frames is not None:
                with suppress(FormatError):
                    start, stop = job_frames(root)
                    out.tracks = TakenTracks(
                        np.arange(start, stop + 1), stop, ColumnBlocks([annotator])
                    )
        take_images = bool(images) and fields is not None
        taken: list[ET.Element] = []  # tracks taken as rows: out of the tree
        if tracks and out.tracks is not None and fields is not None:
            left = {id(el) for el in out.tracks.take(tracks, fields)}
            taken = [el for el in tracks if id(el) not in left]
        if take_images or taken:
            gone = {id(el) for el in taken}
            rest = [
                el for el in batch if not (take_images and el.tag == "image") and id(el) not in gone
            ]
            root[kept:end] = rest
            kept += len(rest)
        else:
            kept = end
        if take_images:
            if out.fast is None:
                out.fast = ColumnBlocks([annotator])
            assert fields is not None
            _harvest(out, images, fields)
        else:
            for img in images:
                n = len(out.images)
                out.images.append(img)
                out.objects.extend((el, n, out.counted + j) for j, el in enumerate(img))
                out.counted += len(img)
        if not data:
            _flush(out)
            return out


def _harvest(out: Streamed, images: list[ET.Element], fields: Fields) -> None:
    """Take the plain shapes of finished images into ``out.fast``; leave the rest as objects."""
    first = len(out.images)
    out.images.extend(map(ET.Element, repeat("image"), map(_attrib, images)))
    frames = _frames(images)
    lens = np.fromiter(map(len, images), np.int64, len(images))
    kids = list(chain.from_iterable(images))
    img_of = np.repeat(np.arange(len(images)), lens)
    seq = out.counted + np.arange(len(kids), dtype=np.int64)
    out.counted += len(kids)
    kinds = lookup(list(map(_tag, kids)), KINDS, -1, np.int64)
    ok = (kinds >= 0) & (frames[img_of] >= 0)
    attribs = list(map(_attrib, kids))
    outside = lookup(values_of(attribs, "outside"), ONE, False, bool)
    rows = fast_rows(kids, attribs, kinds, ok & ~outside, fields)
    taken = ok & (outside | rows.ok)
    for i in np.flatnonzero(~taken):
        out.objects.append((kids[i], first + int(img_of[i]), int(seq[i])))
    use = rows.ok & ok & ~outside
    if use.any():
        sel = np.flatnonzero(use)
        counts = rows.counts[sel]
        offsets = np.concatenate([rows.offsets, [len(rows.points)]])
        _, points = gather_ragged(offsets, rows.points, sel)
        assert out.fast is not None
        out.pending.append(
            dict(
                item=frames[img_of[sel]],
                kind=kinds[sel].astype(np.int8),
                bbox=rows.bbox[sel],
                point_counts=counts,
                points=points,
                attributes={
                    k: v[sel]
                    for k, v in rows.attributes.items()
                    if any(map(is_not, v[sel], repeat(None)))
                },
                label=rows.label[sel],
                rotation=rows.rotation[sel],
                z_order=rows.z_order[sel],
                group=rows.group[sel],
                occluded=rows.occluded[sel],
                source_id=seq[sel],
                origin=rows.origin[sel],
            )
        )
        out.pending_rows += len(sel)
        if out.pending_rows >= FLUSH:
            _flush(out)


def _flush(out: Streamed) -> None:
    """Hand the pending harvests to ``out.fast`` as one column block (its checks run once)."""
    blocks, out.pending, out.pending_rows = out.pending, [], 0
    if not blocks:
        return
    names: dict[str, None] = {}  # attribute columns in the order the blocks first name them
    for b in blocks:
        names.update(dict.fromkeys(b["attributes"]))
    attributes = {
        name: np.concatenate(
            [b["attributes"].get(name, np.full(len(b["item"]), None, object)) for b in blocks]
        )
        for name in names
    }
    columns = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0] if k != "attributes"}
    assert out.fast is not None
    out.fast.extend(**columns, attributes=attributes, annotator=0)


def _frames(images: list[ET.Element]) -> np.ndarray:
    """Each image's id, -1 where the image meta reports it (its children stay objects)."""
    try:  # the usual case: every id a plain integer text (int() accepts what to_int does)
        ids = list(map(int, map(ET.Element.get, images, repeat("id"))))  # type: ignore[arg-type]
        if ids and min(ids) >= 0 and max(ids) < 2**63:
            return np.array(ids, np.int64)
    except (TypeError, ValueError):
        pass
    frames = np.full(len(images), -1, np.int64)
    for n, img in enumerate(images):
        with suppress(ValidationError):
            frames[n] = to_int(img.get("id"), "id", lo=0)
    return frames


@dataclass
class FieldRows:
    ok: np.ndarray
    label: np.ndarray
    bbox: np.ndarray
    counts: np.ndarray
    offsets: np.ndarray
    points: np.ndarray
    rotation: np.ndarray
    z_order: np.ndarray
    group: np.ndarray
    occluded: np.ndarray
    origin: np.ndarray
    attributes: dict[str, np.ndarray]  # label defaults, then the values given
    given: dict[str, np.ndarray]  # name -> rows whose element gives it (bool)


def column(fields: Fields, what: str, texts: list[Any], dtype: Any) -> tuple[Any, Any]:
    """(values, ok) of one memoised field over all rows (converted once per distinct text)."""
    one = uniform(texts)
    clean, slow = fields.converted(what, set(texts[:1]))
    if one:  # the usual case: one value for the whole batch
        values = np.full(len(texts), clean[texts[0]], dtype=dtype)
    else:
        try:  # texts met in earlier batches (a video's frames): no set of them
            values = np.fromiter(map(clean.__getitem__, texts), dtype, len(texts))
        except KeyError:
            clean, slow = fields.converted(what, set(texts))
            values = np.fromiter(map(clean.__getitem__, texts), dtype, len(texts))
    if not slow or (one and texts[0] not in slow):
        return values, True
    good = ~np.fromiter(map(slow.__contains__, texts), bool, len(texts))
    return values, True if good.all() else good


def fast_rows(
    kids: list[ET.Element],
    attribs: list[Any],
    kinds: np.ndarray,
    want: np.ndarray,
    f: Fields,
    label: np.ndarray | None = None,
) -> FieldRows:
    """Every field of the candidate rows, and which rows convert cleanly (``ok``).

    Args:
        kids: the shape elements; attribs: their attribute dicts; kinds: their :class:`Kind`
            codes (-1 for others); want: the candidate rows.
        f: the label lookups.
        label: each row's label position, for track keyframes, whose label, group and source
            are their track's (``group`` and ``origin`` are then zeros, not read); default:
            the elements' own ``label``, ``group_id`` and ``source``.
    """
    n = len(kids)
    own = label is None
    if label is None:
        label = lookup(values_of(attribs, "label", ""), f.label, -1, np.int64)
    ok = want & (label >= 0)
    rotation, good = column(f, "rotation", values_of(attribs, "rotation"), np.float64)
    ok &= good
    z_order, good = column(f, "z_order", values_of(attribs, "z_order"), np.int64)
    ok &= good
    group = origin = np.zeros(n, np.int64)
    if own:
        group, good = column(f, "group", values_of(attribs, "group_id"), np.int64)
        ok &= good
        origin, _ = column(f, "origin", values_of(attribs, "source"), np.int64)
    occluded = lookup(values_of(attribs, "occluded"), ONE, False, bool)
    bbox = np.zeros((n, 4))
    is_box = ok & (kinds == Kind.RECTANGLE)
    if is_box.any():
        sel = np.flatnonzero(is_box)
        boxes = attribs if len(sel) == n else list(compress(attribs, is_box.tolist()))
        try:  # each coordinate of every box in one C pass (no per-row tuple)
            coords = np.empty((len(sel), 4))
            for j, get in enumerate(_BOX_GETS):
                coords[:, j] = np.fromiter(map(float, map(get, boxes)), np.float64, len(sel))
        except (KeyError, TypeError, ValueError):
            coords = np.stack([_floats(values_of(boxes, key)) for key in _BOX_KEYS], axis=1)
        good = (np.abs(coords) <= MAX_COORDINATE).all(axis=1)  # False for NaN
        good &= (coords[:, 2] >= coords[:, 0]) & (coords[:, 3] >= coords[:, 1])
        ok[sel[~good]] = False
        bbox[sel] = coords
    counts, offsets, points = _polylines(attribs, ok & (kinds > Kind.RECTANGLE), kinds, ok)
    has = counts > 0
    if has.any():
        starts = offsets[has]
        xy = points
        bbox[has, 0] = np.minimum.reduceat(xy[:, 0], starts)
        bbox[has, 1] = np.minimum.reduceat(xy[:, 1], starts)
        bbox[has, 2] = np.maximum.reduceat(xy[:, 0], starts)
        bbox[has, 3] = np.maximum.reduceat(xy[:, 1], starts)
    attributes, given = _attributes(kids, label, ok, f)
    return FieldRows(
        ok,
        label,
        bbox,
        counts,
        offsets,
        points,
        rotation,
        z_order,
        group,
        occluded,
        origin,
        attributes,
        given,
    )


def _floats(texts: list[Any]) -> np.ndarray:
    """Texts as floats; NaN where ``float()`` fails (such rows go to the per-object path)."""
    try:  # numpy parses each text as float() does, None -> NaN
        return np.array(texts, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array([_float_or_nan(t) for t in texts], dtype=np.float64)


def _float_or_nan(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _polylines(
    attribs: list[Any], want: np.ndarray, kinds: np.ndarray, ok: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertex counts, offsets and (P, 2) vertices of the wanted point-list rows.

    Rows whose ``points`` text does not split into an even number of finite coordinates (at
    least the kind's minimum) are cleared from ``ok``.
    """
    n = len(attribs)
    counts = np.zeros(n, np.int64)
    sel = np.flatnonzero(want)
    if not len(sel):
        return counts, np.zeros(n, np.int64), np.zeros((0, 2))
    texts = values_of(list(compress(attribs, want.tolist())), "points", "")
    numbers = np.fromiter(map(methodcaller("count", ","), texts), np.int64, len(texts))
    numbers += np.fromiter(map(methodcaller("count", ";"), texts), np.int64, len(texts)) + 1
    pieces = ";".join(texts).replace(";", ",").split(",")
    values = _floats(pieces) if len(pieces) == int(numbers.sum()) else None
    if values is None or np.isnan(values).any():
        # Something unusual (empty pieces, blanks, bad numbers): parse row by row.
        per_row = [_row_coords(t) for t in texts]
        numbers = np.array([len(v) for v in per_row], np.int64)
        values = np.concatenate([np.asarray(v, np.float64) for v in per_row] + [np.zeros(0)])
    offsets = np.concatenate([[0], np.cumsum(numbers)]).astype(np.int64)
    least = np.array([_MIN_COORDS.get(Kind(k), 0) for k in range(int(Kind.POINTS) + 1)])
    bad = (numbers % 2 == 1) | (numbers < least[kinds[sel]]) | (numbers == 0)
    finite = np.concatenate([[0], np.cumsum(np.abs(values) <= MAX_COORDINATE)])  # NaN: False
    bad |= finite[offsets[1:]] - finite[offsets[:-1]] != numbers
    ok[sel[bad]] = False
    keep = np.flatnonzero(~bad)
    _, flat = gather_ragged(offsets, values, keep)
    counts[sel[keep]] = numbers[keep] // 2
    point_offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return counts, point_offsets, flat.reshape(-1, 2)


def _row_coords(text: str) -> list[float]:
    from labelgate_cvat.xml_export import _points

    try:
        return _points(text)
    except ValidationError:
        return []


def _attributes(
    kids: list[ET.Element], label: np.ndarray, ok: np.ndarray, f: Fields
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Attribute columns of the ``ok`` rows: label defaults, then each ``<attribute>`` child;
    and for each name given by some row, which rows give it.

    Rows with a child other than a plain ``<attribute>``, an attribute given twice, or a value
    the label's spec cannot read are cleared from ``ok`` (the per-object path reports them).
    """
    n = len(kids)
    nkids = np.fromiter(map(len, kids), np.int64, n)
    parents = ok & (nkids > 0)
    if parents.all():
        subs = _children(kids, nkids)
        owner = np.repeat(np.arange(n), nkids)
    else:
        with_kids = np.flatnonzero(parents)
        subs = _children(list(compress(kids, parents.tolist())), nkids[with_kids])
        owner = np.repeat(with_kids, nkids[with_kids])
    # The per-object path reads only ``<attribute>`` children (their name and text; anything
    # inside them does not matter); a row with any other child is left to it.
    plain = None  # the usual case: every child an <attribute>
    if set(map(_tag, subs)) - {"attribute"}:
        plain = np.fromiter(map("attribute".__eq__, map(_tag, subs)), bool, len(subs))
        ok[owner[~plain]] = False
    cols: dict[str, np.ndarray] = {}
    row_label = np.where(ok, label, len(f.defaults))  # past the last label: no default
    for lab in distinct_in_order(label[ok]):  # in document order, as the per-object path
        for key in f.defaults[lab]:  # meets them
            if key not in cols:
                cols[key] = f.default_columns[key][row_label]
    given: dict[str, np.ndarray] = {}
    if not len(subs):
        return cols, given
    # Each child's (label, name, text) as one integer (names and texts numbered per batch);
    # each distinct triple is resolved once into its column code and value.
    names = _numbered(list(map(ET.Element.get, subs, repeat("name"), repeat(""))))
    texts = _numbered(list(map(_text, subs)))
    # Labels shifted by one: an unknown label (-1) is 0, so every triple is >= 0.
    per_label = len(names[0]) * len(texts[0])
    triple = (label[owner] + 1) * per_label + names[1] * len(texts[0]) + texts[1]
    distinct, which = _distinct(triple, (int(label.max(initial=0)) + 2) * per_label)
    codes: dict[str, int] = {}
    found_code = np.empty(len(distinct), np.int64)
    found_value = np.empty(len(distinct), dtype=object)
    for i, t in enumerate(distinct.tolist()):
        lab, rest = divmod(t, per_label)
        lab -= 1
        name, text = names[0][rest // len(texts[0])], texts[0][rest % len(texts[0])]
        name_of, found_value[i] = f.attribute(lab, name, text)
        found_code[i] = (
            name_of if isinstance(name_of, int) else codes.setdefault(name_of, len(codes))
        )
    code = found_code[which]
    value = found_value[which]
    bad = code == -2
    if plain is not None:
        bad |= ~plain
    ok[owner[bad]] = False
    named = np.flatnonzero(code >= 0)
    if len(named) > 1 and (np.diff(owner[named]) == 0).any():
        pairs = owner[named] * (len(codes) + 1) + code[named]
        uniq, count = np.unique(pairs, return_counts=True)
        ok[uniq[count > 1] // (len(codes) + 1)] = False  # an attribute given twice
    use_rows = ok[owner]
    if plain is not None:
        use_rows &= plain
    for name, c in codes.items():
        use = (code == c) & use_rows
        cols[name][owner[use]] = value[use]
        given[name] = np.zeros(n, bool)
        given[name][owner[use]] = True
    return cols, given


def _children(elements: list[ET.Element], counts: np.ndarray) -> list[ET.Element]:
    """The children of ``elements`` (``counts``: how many each has), in document order."""
    if len(counts) and counts.min() == counts.max() == 1:
        # The usual case, one child each: indexing costs a quarter of chaining, which makes
        # an iterator per element.
        return list(map(_first, elements))
    return list(chain.from_iterable(elements))


def distinct_in_order(values: np.ndarray) -> list[Any]:
    """The distinct ``values`` in the order they first occur (without a Python list of all)."""
    distinct, first = np.unique(values, return_index=True)  # the first of equal values
    return distinct[np.argsort(first)].tolist()


def _distinct(codes: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(codes, return_inverse=True)`` for codes in [0, bound): by a table (no sort)
    when the bound is small next to the number of codes."""
    if bound > 4 * len(codes) + 1024:
        distinct, which = np.unique(codes, return_inverse=True)
        return distinct, which.reshape(-1)
    present = np.zeros(bound, bool)
    present[codes] = True
    distinct = np.flatnonzero(present)
    table = np.zeros(bound, np.int64)
    table[distinct] = np.arange(len(distinct))
    return distinct, table[codes]


def _numbered(texts: list[Any]) -> tuple[list[Any], np.ndarray]:
    """(distinct texts, each text's index among them); the index mapped in C."""
    if uniform(texts):
        return texts[:1], np.zeros(len(texts), np.int64)
    distinct = list(set(texts))
    index = {t: i for i, t in enumerate(distinct)}
    return distinct, np.fromiter(map(index.__getitem__, texts), np.int64, len(texts))


def merge_rows(fast: Annotations, slow: Annotations, *, all_fast: bool = False) -> Annotations:
    """Fast and per-object rows in the order the per-object path alone would give.

    That order is: by item; within an item, image shapes in document order (their
    ``source_id`` is the document counter), then tags (likewise), then track rows as converted.
    Attribute columns keep the order in which the per-object path would first meet them.
    ``all_fast`` (every object was taken by the fast path) returns ``fast`` as it is: its
    blocks are in document order already.
    """
    if all_fast and not len(slow):
        return fast
    both = Annotations.concat([fast, slow])
    rank = np.array([0, 2, 1], np.int64)[both.source_type]  # SHAPE, TRACK, TAG
    key = np.where(rank == 2, np.arange(len(both)), both.source_id)
    both = both.take(np.lexsort((key, rank, both.item)))
    rank = np.array([0, 2, 1], np.int64)[both.source_type]
    slow_order = {k: i for i, k in enumerate(slow.attributes)}

    def first_met(name: str) -> tuple[int, int, int]:
        has = np.fromiter(map(is_not, both.attributes[name], repeat(None)), bool, len(both))
        early = np.flatnonzero(has & (rank < 2))
        if not len(early):
            return (2, 0, slow_order.get(name, 0))
        r = int(rank[early].min())
        return (r, int(both.source_id[early[rank[early] == r]].min()), 0)

    order = sorted(both.attributes, key=first_met)
    return both.with_columns(attributes={k: both.attributes[k] for k in order})
