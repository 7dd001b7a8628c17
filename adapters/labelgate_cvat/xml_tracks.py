"""CVAT XML ``<track>`` elements expanded into column blocks, without per-frame Python objects.

The keyframes of a batch of tracks are read as columns at once (the image children's reader,
:func:`labelgate_cvat.xml_fast.fast_rows`), sorted by (track, frame) and expanded into one row
per frame with numpy, by the rules of :func:`labelgate_cvat.tracks.expand_track`: rectangles interpolate
linearly with rotation along the shortest arc, single points linearly, other point lists are
copied; the last keyframe is copied to the end of the job unless it is ``outside``; nothing
follows an ``outside`` keyframe; keyframe attributes carry forward to later keyframes that do not
set them. A track is taken only when every one of its rows is one the converter's fast path
(:meth:`labelgate_cvat.payloads._Converter.fast_shape`) would take without a word. Every other
track (skeletons, masks, ellipses, cuboids, polygons and polylines that need CVAT's polyshape
interpolation, a field the converter would report, a frame outside the job) is left, by
position, to the per-object path (:func:`labelgate_cvat.xml_export._track`), which owns every
error message.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from itertools import chain, compress
from operator import attrgetter
from typing import Any

import numpy as np

from labelgate.model import MAX_COORDINATE, Kind, SourceType, gather_ragged
from labelgate.model.columns import ColumnBlocks
from labelgate_cvat.payloads import TRACK_SHIFT
from labelgate_cvat.shape_batch import ShapeBatch
from labelgate_cvat.xml_export import SHAPE_TAGS
from labelgate_cvat.xml_fast import (
    KINDS,
    ONE,
    FieldRows,
    Fields,
    column,
    distinct_in_order,
    fast_rows,
    lookup,
    uniform,
    values_of,
)

_attrib = attrgetter("attrib")
_tag = attrgetter("tag")


@dataclass
class TakenTracks:
    """The rows of the tracks taken so far, and the positions of those left, in document order.

    Attributes:
        frames: the job's frame numbers, ascending (a row on another frame is not taken).
        stop: the job's last frame (rows run up to it).
        blocks: the rows, one block per :meth:`take`.
        seq: each block's arrival keys, ``(track position << TRACK_SHIFT) + row in the track``.
        items: each block's items.
        rest: positions of the tracks left to the per-object path.
        seen: tracks looked at (the next one's position).
    """

    frames: np.ndarray
    stop: int
    blocks: ColumnBlocks
    seq: list[np.ndarray] = field(default_factory=list)
    items: list[np.ndarray] = field(default_factory=list)
    rest: list[int] = field(default_factory=list)
    seen: int = 0

    def take(self, tracks: list[ET.Element], fields: Fields) -> list[ET.Element]:
        """Expand the plain ones of the next ``tracks`` into rows.

        Returns:
            The tracks left, in document order.
        """
        cols, seq, left = _take(tracks, fields, self.frames, self.stop)
        if len(seq):
            self.blocks.extend(**cols)
            self.seq.append(seq + (self.seen << TRACK_SHIFT))
            self.items.append(cols["item"])
        self.rest.extend(self.seen + i for i in left)
        self.seen += len(tracks)
        return [tracks[i] for i in left]

    def batch(self) -> ShapeBatch:
        """All rows sorted by item (stable) with their arrival keys, and ``rest``."""
        seq = np.concatenate([*self.seq, np.zeros(0, np.int64)])
        items = np.concatenate([*self.items, np.zeros(0, np.int64)])
        order = np.argsort(items, kind="stable")  # one sort for the rows and their keys
        annotations = self.blocks.build(order=order)
        return ShapeBatch(annotations, seq[order], list(self.rest))


def _take(
    tracks: list[ET.Element], fields: Fields, frames: np.ndarray, stop: int
) -> tuple[dict[str, Any], np.ndarray, list[int]]:
    """The rows of the plain ``tracks`` as :meth:`ColumnBlocks.extend` arguments, their arrival
    keys (positions counted from ``tracks[0]``), and the positions of the
    tracks left."""
    n_tracks = len(tracks)
    tattr = list(map(_attrib, tracks))
    label = lookup(values_of(tattr, "label", ""), fields.label, -1, np.int64)
    ok = label >= 0
    source_id, good = column(fields, "id", values_of(tattr, "id"), np.int64)
    ok &= good
    group, good = column(fields, "group", values_of(tattr, "group_id"), np.int64)
    ok &= good
    origin, _ = column(fields, "origin", values_of(tattr, "source"), np.int64)
    lens = np.fromiter(map(len, tracks), np.int64, n_tracks)
    kids = list(chain.from_iterable(tracks))
    owner = np.repeat(np.arange(n_tracks), lens)
    tags = list(map(_tag, kids))
    # Other children are ignored, as the per-object path does (the usual case: one tag).
    if not (uniform(tags) and tags[0] in SHAPE_TAGS):
        shape = np.fromiter(map(SHAPE_TAGS.__contains__, tags), bool, len(kids))
        keep = shape.tolist()
        kids, tags, owner = list(compress(kids, keep)), list(compress(tags, keep)), owner[shape]
    keys = _Keyframes.read(kids, tags, owner, label, ok, fields)
    ok &= np.bincount(owner, minlength=n_tracks) > 0  # no keyframes: no rows, nothing to gain
    ok &= ~_any(~keys.rows.ok, owner, n_tracks)
    rows = _expand(keys, ok, owner, stop)
    bbox = _row_boxes(rows, keys)
    bad = _any(~_fast(rows, keys, frames, bbox), rows.track, n_tracks)
    ok &= ~bad
    if bad.any():
        kept = np.flatnonzero(ok[rows.track])
        rows, bbox = rows.take(kept), bbox[kept]
    cols, seq = _columns(rows, keys, bbox, label, source_id, group, origin, fields)
    return cols, seq, np.flatnonzero(~ok).tolist()


def _any(flags: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Per owner: whether any of its entries is flagged."""
    return np.bincount(owner[flags], minlength=n) > 0


@dataclass(frozen=True)
class _Keyframes:
    """Every keyframe's fields (rows of :func:`fast_rows`; ``rows.ok``: read cleanly), its frame,
    ``outside`` flag and kind."""

    rows: FieldRows
    frame: np.ndarray
    outside: np.ndarray
    kind: np.ndarray

    @classmethod
    def read(
        cls,
        kids: list[ET.Element],
        tags: list[str],
        owner: np.ndarray,
        label: np.ndarray,
        track_ok: np.ndarray,
        fields: Fields,
    ) -> _Keyframes:
        attribs = list(map(_attrib, kids))
        kind = lookup(tags, KINDS, -1, np.int64)
        frame, good = column(fields, "frame", values_of(attribs, "frame"), np.int64)
        outside = lookup(values_of(attribs, "outside"), ONE, False, bool)
        want = (kind >= 0) & track_ok[owner] & good
        rows = fast_rows(kids, attribs, kind, want, fields, label=label[owner])
        # The converter's fast path takes rotations within ±2**63 only.
        rows.ok &= np.abs(rows.rotation) <= 2.0**63
        # One kind per track: a keyframe of another kind is copied, never interpolated.
        first = np.r_[True, owner[1:] != owner[:-1]] if len(owner) else np.zeros(0, bool)
        first_kind = kind[np.maximum.accumulate(np.where(first, np.arange(len(kind)), 0))]
        rows.ok &= kind == first_kind
        return cls(rows, frame, outside, kind)


@dataclass(frozen=True)
class _Expanded:
    """Expanded rows in the order the per-object path adds them, and where each comes from.

    Attributes:
        order: the keyframes sorted by (track, frame), as indices into the keyframe columns.
        sorted_track: the track of each sorted keyframe.
        key: each row's keyframe, as a position in ``order`` (``key + 1`` is the next one).
        frame: each row's frame.
        step: 0 the keyframe itself, 1 interpolated towards ``key + 1``, 2 copied from ``key``.
        t: the interpolation fraction of step 1 rows.
        track: each row's track.
    """

    order: np.ndarray
    sorted_track: np.ndarray
    key: np.ndarray
    frame: np.ndarray
    step: np.ndarray
    t: np.ndarray
    track: np.ndarray

    def take(self, sel: np.ndarray) -> _Expanded:
        """The rows ``sel`` (the keyframe layout unchanged)."""
        return replace(
            self,
            key=self.key[sel],
            frame=self.frame[sel],
            step=self.step[sel],
            t=self.t[sel],
            track=self.track[sel],
        )


def _expand(keys: _Keyframes, ok: np.ndarray, owner: np.ndarray, stop: int) -> _Expanded:
    """The rows of the ``ok`` tracks (as :func:`labelgate_cvat.tracks.expand_track` has them)."""
    sel = np.flatnonzero(ok[owner])
    order = sel[np.lexsort((keys.frame[sel], owner[sel]))]  # stable: equal frames keep order
    trk, f = owner[order], keys.frame[order]
    end = stop + 1
    nxt = np.r_[trk[1:] == trk[:-1], False]
    f_next = np.r_[f[1:], 0]
    # A keyframe at or past the end stops the track; rows run up to the next keyframe (or the
    # end), not after an outside one.
    reach = np.where(nxt, np.minimum(f_next, end), end)
    own = (f < end) & ~keys.outside[order]
    count = np.where(own, 1 + np.maximum(reach - f - 1, 0), 0)
    key = np.repeat(np.arange(len(order)), count)
    j = np.arange(len(key)) - (np.cumsum(count) - count)[key]
    frame = f[key] + j
    step = np.where(j == 0, 0, np.where(nxt[key], 1, 2)).astype(np.int8)
    t = np.zeros(len(key))
    inter = np.flatnonzero(step == 1)
    if len(inter):
        f0, f1 = f[key[inter]], f_next[key[inter]]
        t[inter] = (frame[inter] - f0).astype(np.float64) / (f1 - f0).astype(np.float64)
    return _Expanded(order, trk, key, frame, step, t, trk[key])


def _row_boxes(rows: _Expanded, keys: _Keyframes) -> np.ndarray:
    """Each row's keyframe box, interpolated for the rectangles between two keyframes (the
    other kinds' boxes are taken from their points by :func:`_columns`)."""
    order = rows.order
    src = order[rows.key]
    bbox = keys.rows.bbox[src]
    rect = np.flatnonzero((rows.step == 1) & (keys.kind[src] == Kind.RECTANGLE))
    if len(rect):
        bbox[rect] = _lerp(keys.rows.bbox, order, rows.key[rect], rows.t[rect])
    return bbox


def _fast(rows: _Expanded, keys: _Keyframes, frames: np.ndarray, bbox: np.ndarray) -> np.ndarray:
    """Rows the converter's fast path takes as they are (a False row sends its track back);
    ``bbox``: the rows' boxes (:func:`_row_boxes`)."""
    order = rows.order
    at = np.searchsorted(frames, rows.frame)
    good = at < len(frames)
    good[good] = frames[at[good]] == rows.frame[good]
    kind = keys.kind[order[rows.key]]
    # Polygons and polylines between keyframes need CVAT's polyshape interpolation.
    good &= ~((rows.step == 1) & ((kind == Kind.POLYGON) | (kind == Kind.POLYLINE)))
    rect = np.flatnonzero((rows.step == 1) & (kind == Kind.RECTANGLE))
    if len(rect):
        box = bbox[rect]
        fits = (np.abs(box) <= MAX_COORDINATE).all(axis=1)
        fits &= (box[:, 2] >= box[:, 0]) & (box[:, 3] >= box[:, 1])
        good[rect] &= fits
    return good


def _lerp(values: np.ndarray, order: np.ndarray, key: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``a + (b - a) * t`` of sorted keyframes ``key`` and ``key + 1`` (as tracks.interpolate)."""
    a, b = values[order[key]], values[order[key + 1]]
    return a + (b - a) * t[:, None]


def _columns(
    rows: _Expanded,
    keys: _Keyframes,
    bbox: np.ndarray,
    label: np.ndarray,
    source_id: np.ndarray,
    group: np.ndarray,
    origin: np.ndarray,
    fields: Fields,
) -> tuple[dict[str, Any], np.ndarray]:
    """The rows' columns (in track order; :meth:`ColumnBlocks.build` sorts them by item, as
    :meth:`TakenTracks.batch` does their arrival keys), and their arrival keys; ``bbox`` is
    :func:`_row_boxes` (the other kinds' boxes are filled in here, in place)."""
    order = rows.order
    kf = keys.rows
    src = order[rows.key]  # each row's keyframe, as an index into the keyframe columns
    n = len(src)
    kind = keys.kind[src]
    inter = rows.step == 1
    rotation = kf.rotation[src].copy()
    rect = np.flatnonzero(inter & (kind == Kind.RECTANGLE))
    if len(rect):
        r0, r1 = kf.rotation[order[rows.key[rect]]], kf.rotation[order[rows.key[rect] + 1]]
        arc = np.remainder(r1 - r0, 360.0)
        arc = np.where(arc > 180.0, arc - 360.0, arc)
        rotation[rect] = np.remainder(r0 + arc * rows.t[rect], 360.0)
    rotation[rotation == 0.0] = 0.0  # the converter reads ``rotation or 0.0``: never -0.0
    shaped = np.flatnonzero(kind != Kind.RECTANGLE)
    counts = np.zeros(n, np.int64)
    counts[shaped] = kf.counts[src[shaped]]
    offsets = np.concatenate([kf.offsets, [len(kf.points)]])
    run, points = gather_ragged(offsets, kf.points, src[shaped])
    points = points.copy()
    single = np.flatnonzero(inter[shaped] & (kind[shaped] == Kind.POINTS))
    if len(single):
        at = shaped[single]
        one = (kf.counts[src[at]] == 1) & (kf.counts[order[rows.key[at] + 1]] == 1)
        at, single = at[one], single[one]
        a = kf.points[kf.offsets[src[at]]]
        b = kf.points[kf.offsets[order[rows.key[at] + 1]]]
        points[run[single]] = a + (b - a) * rows.t[at][:, None]
    if len(shaped):
        starts = run[:-1]
        bbox[shaped] = np.column_stack(
            [
                np.minimum.reduceat(points[:, 0], starts),
                np.minimum.reduceat(points[:, 1], starts),
                np.maximum.reduceat(points[:, 0], starts),
                np.maximum.reduceat(points[:, 1], starts),
            ]
        )
    attributes = _carried(rows, keys, label, fields)
    trk = rows.track
    first = np.r_[True, trk[1:] != trk[:-1]] if n else np.zeros(0, bool)
    within = np.arange(n) - np.maximum.accumulate(np.where(first, np.arange(n), 0))
    cols = dict(
        item=rows.frame,
        kind=kind.astype(np.int8),
        bbox=bbox,
        point_counts=counts,
        points=points,
        attributes=attributes,
        label=label[trk],
        rotation=rotation,
        z_order=kf.z_order[src],
        group=group[trk],
        occluded=kf.occluded[src],
        source_id=source_id[trk],
        source_type=int(SourceType.TRACK),
        origin=origin[trk],
        annotator=0,
    )
    return cols, (trk << TRACK_SHIFT) + within


def _carried(
    rows: _Expanded, keys: _Keyframes, label: np.ndarray, fields: Fields
) -> dict[str, np.ndarray]:
    """Each row's attribute columns: its keyframe's values, a value not set there carried from
    the latest earlier keyframe (in frame order) of its track that sets it, else the default.

    Only the attributes of the rows' labels are columns (None on rows of other labels).
    """
    order, kf = rows.order, keys.rows
    idx = np.arange(len(order))
    trk = rows.sorted_track
    first = np.r_[True, trk[1:] != trk[:-1]] if len(trk) else np.zeros(0, bool)
    track_start = np.maximum.accumulate(np.where(first, idx, 0)) if len(trk) else idx
    # Labels in the order their first track with rows comes (a track without rows names
    # nothing), as the per-object path meets their attributes; not sorted by label.
    with_rows = distinct_in_order(label[rows.track])
    names = dict.fromkeys(name for lab in with_rows for name in fields.defaults[lab])
    out: dict[str, np.ndarray] = {}
    for name in names:
        col = kf.attributes[name][order]
        given = kf.given.get(name)
        if given is not None and len(idx):
            last = np.maximum.accumulate(np.where(given[order], idx, -1))
            col = col[np.where(last >= track_start, last, idx)]
        out[name] = col[rows.key]
    return out
