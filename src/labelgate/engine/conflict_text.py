"""Conflicts straight from their columns to JSON bytes, without one object per conflict.

Each conflict's text parses to exactly the dict :func:`~labelgate.engine.compare.
conflicts_to_json` builds (same keys and order, ``json.dumps``'s separators; numbers in
orjson's shortest round-trip form, which may spell exponents differently). Every numeric column
is formatted once by orjson, names come from small lookup tables, and one compiled loop copies
the pieces of all conflicts into one buffer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from numba import njit

from labelgate.arrays import AnyArray, FloatArray, IntArray
from labelgate.engine.conflicts import CONFLICT_TYPES, Conflicts
from labelgate.model import Annotations, Items

#: Fixed pieces of a conflict's text, by their index in the piece table.
_FIXED = (
    ', "annotation_ids": [',  # 0
    '{"obj_id": ',  # 1
    ', {"obj_id": ',  # 2
    '], "label_names": [',  # 3
    ", ",  # 4
    '], "position": [',  # 5
    '], "similarity": ',  # 6
    "}",  # 7
)
_SEP = b", "

ByteArray = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class ConflictBytes:
    """All conflicts' JSON texts in one UTF-8 buffer, each followed by ``", "``; conflict ``k``
    is ``buf[starts[k]:ends[k]]``."""

    buf: ByteArray
    starts: IntArray
    ends: IntArray

    def __len__(self) -> int:
        return len(self.starts)

    def joined(self, a: int, b: int) -> memoryview:
        """Conflicts ``a`` to ``b - 1`` joined by ``", "`` (a view, no copy)."""
        if b <= a:
            return memoryview(b"")
        return self.buf.data[int(self.starts[a]) : int(self.ends[b - 1])]

    def text(self, k: int) -> str:
        """Conflict ``k``'s text."""
        return self.buf[self.starts[k] : self.ends[k]].tobytes().decode()


def _table(pieces: list[str | bytes]) -> tuple[ByteArray, IntArray]:
    """Pieces as one UTF-8 byte array and their offsets (``len(pieces) + 1``)."""
    raw = [p if isinstance(p, bytes) else p.encode() for p in pieces]
    off = np.zeros(len(raw) + 1, np.int64)
    off[1:] = np.cumsum([len(r) for r in raw])
    return np.frombuffer(b"".join(raw), np.uint8).copy(), off


def _formatted(values: AnyArray) -> tuple[ByteArray, IntArray]:
    """Each value's JSON text in one orjson call (NaN becomes ``null``): the bytes and the
    start of each value (plus one past the end); value ``k`` ends at ``starts[k + 1] - 1``."""
    flat = np.ascontiguousarray(values).ravel()
    data = np.frombuffer(orjson.dumps(flat, option=orjson.OPT_SERIALIZE_NUMPY), np.uint8)
    return data, _value_starts(data, len(flat))


@njit(cache=True, nogil=True)
def _value_starts(data: Any, n: int) -> Any:
    """Start of each of the ``n`` values of a flat JSON number array's text, then one past the
    last value's end (no number text holds a comma: the commas split the values)."""
    starts = np.empty(n + 1, np.int64)
    starts[0] = 1
    k = 1
    for i in range(1, len(data)):
        if data[i] == 44:
            starts[k] = i + 1
            k += 1
    starts[n] = len(data)  # the closing bracket, as the comma after the last value
    return starts


# Inlined: a call would count references to both arrays, per piece.
@njit(cache=True, nogil=True, inline="always")
def _copy(out: Any, at: int, src: Any, a: int, b: int, write: bool) -> int:
    if write:
        # A byte loop: a slice assignment builds two array views per piece, which costs more
        # than copying the few bytes of a piece.
        for j in range(b - a):
            out[at + j] = src[a + j]
    return at + b - a


@njit(cache=True, nogil=True)
def _assemble(
    out: Any,
    write: bool,
    table: Any,
    t_off: Any,
    head: Any,
    d_tail: Any,
    g_tail: Any,
    d_lab: Any,
    g_lab: Any,
    close: Any,
    ints: Any,
    i_at: Any,
    floats: Any,
    f_at: Any,
    starts: Any,
    ends: Any,
) -> int:
    """Write (or, with ``write`` false, only measure) every conflict's text followed by
    ``", "``; ``ints`` hold frame, DS and GT object ids (n each), ``floats`` the four position
    values per conflict, then the similarities. Returns the total length."""
    n = len(head)
    at = 0
    for k in range(n):
        starts[k] = at
        h = head[k]
        at = _copy(out, at, table, t_off[h], t_off[h + 1], write)
        at = _copy(out, at, ints, i_at[k], i_at[k + 1] - 1, write)
        at = _copy(out, at, table, t_off[0], t_off[1], write)
        first = d_tail[k] >= 0
        second = g_tail[k] >= 0
        if first or second:
            at = _copy(out, at, table, t_off[1], t_off[2], write)
            o = k + n if first else k + 2 * n
            at = _copy(out, at, ints, i_at[o], i_at[o + 1] - 1, write)
            t = d_tail[k] if first else g_tail[k]
            at = _copy(out, at, table, t_off[t], t_off[t + 1], write)
        if first and second:
            at = _copy(out, at, table, t_off[2], t_off[3], write)
            o = k + 2 * n
            at = _copy(out, at, ints, i_at[o], i_at[o + 1] - 1, write)
            t = g_tail[k]
            at = _copy(out, at, table, t_off[t], t_off[t + 1], write)
        at = _copy(out, at, table, t_off[3], t_off[4], write)
        lab = d_lab[k] if first else g_lab[k]
        if first or second:
            at = _copy(out, at, table, t_off[lab], t_off[lab + 1], write)
        if first and second:
            at = _copy(out, at, table, t_off[4], t_off[5], write)
            lab = g_lab[k]
            at = _copy(out, at, table, t_off[lab], t_off[lab + 1], write)
        at = _copy(out, at, table, t_off[5], t_off[6], write)
        for j in range(4):
            o = 4 * k + j
            if j:
                at = _copy(out, at, table, t_off[4], t_off[5], write)
            at = _copy(out, at, floats, f_at[o], f_at[o + 1] - 1, write)
        at = _copy(out, at, table, t_off[6], t_off[7], write)
        o = 4 * n + k
        at = _copy(out, at, floats, f_at[o], f_at[o + 1] - 1, write)
        c = close[k]
        at = _copy(out, at, table, t_off[c], t_off[c + 1], write)
        ends[k] = at
        at = _copy(out, at, table, t_off[4], t_off[5], write)
    return at


def _tails(ann: Annotations, rows: IntArray, job: Any, pieces: list[str | bytes]) -> IntArray:
    """Per row, the table index of its id object's rest (from ``, "job_id"`` to the closing
    brace; one piece per distinct source type and shape kind, appended to ``pieces``), -1 where
    the row is absent."""
    from labelgate.engine.compare import _SHAPE_NAME, _SOURCE_TYPE

    out = np.full(len(rows), -1, np.int64)
    present = rows >= 0
    if not len(ann) or not present.any():
        return out
    safe = rows[present]
    code = ann.source_type[safe].astype(np.int64) * 256 + ann.kind[safe].astype(np.int64)
    uniq, inverse = np.unique(code, return_inverse=True)
    job_text = json.dumps(job)
    base = len(pieces)
    pieces += [
        f', "job_id": {job_text}, "type": {json.dumps(_SOURCE_TYPE.get(int(u) // 256))}, '
        f'"shape_type": {json.dumps(_SHAPE_NAME.get(int(u) % 256))}}}'
        for u in uniq.tolist()
    ]
    out[present] = base + inverse.ravel()
    return out


def _labels(ann: Annotations, rows: IntArray, base: int, n_labels: int) -> IntArray:
    """Per row, the table index of its label name's text (``null`` for label -1)."""
    if not len(ann):
        return np.full(len(rows), base + n_labels, np.int64)
    lab = ann.label[np.maximum(rows, 0)].astype(np.int64)
    return base + np.where(lab < 0, n_labels, lab)


def conflict_bytes(
    gt: Annotations,
    ds: Annotations,
    c: Conflicts,
    labels: list[str],
    job: dict[str, Any],
    extras: dict[int, dict[str, Any]],
) -> ConflictBytes:
    """All conflicts' JSON texts; each parses to its :func:`conflicts_to_json` dict.

    Args:
        gt, ds: the compared annotations (rows of ``c`` index them).
        c: the conflicts as columns.
        labels: label names by label index.
        job: ``{"gt": job id, "ds": job id}``.
        extras: per conflict position, the keys that follow ``similarity``
            (``attribute_names``, ``geometry``) in order.

    Returns:
        The texts in ``c``'s order, in one buffer.
    """
    n = len(c)
    pieces: list[str | bytes] = list(_FIXED)
    head_base = len(pieces)
    pieces += [
        f'{{"type": {json.dumps(t)}, "severity": {json.dumps(c.severity(t))}, "frame_id": '
        for t in CONFLICT_TYPES
    ]
    label_base = len(pieces)
    pieces += [json.dumps(x) for x in [*labels, None]]
    d_rows = c.ds_row if len(ds) else np.full(n, -1, np.int64)
    g_rows = c.gt_row if len(gt) else np.full(n, -1, np.int64)
    d_tail = _tails(ds, d_rows, job["ds"], pieces)
    g_tail = _tails(gt, g_rows, job["gt"], pieces)
    d_lab = _labels(ds, d_rows, label_base, len(labels))
    g_lab = _labels(gt, g_rows, label_base, len(labels))
    close = np.full(n, 7, np.int64)
    if extras:
        keys = sorted(extras)
        close[keys] = len(pieces) + np.arange(len(keys))
        # orjson: tens of thousands of geometry payloads; their coordinates are finite (the
        # model rejects others), so its ``null`` for NaN never applies.
        pieces += [b", " + orjson.dumps(extras[k])[1:] for k in keys]
    table, t_off = _table(pieces)
    has_d = d_rows >= 0
    ids = np.concatenate(
        [
            np.asarray(c.frame, np.int64),
            ds.source_id[np.maximum(d_rows, 0)] if len(ds) else np.zeros(n, np.int64),
            gt.source_id[np.maximum(g_rows, 0)] if len(gt) else np.zeros(n, np.int64),
        ]
    )
    box = np.zeros((n, 4))
    if len(ds):
        box[has_d] = ds.bbox[d_rows[has_d]]
    if len(gt):
        box[~has_d & (g_rows >= 0)] = gt.bbox[g_rows[~has_d & (g_rows >= 0)]]
    nums: FloatArray = np.concatenate([box.ravel(), np.asarray(c.similarity, np.float64)])
    ints, i_at = _formatted(ids)
    floats, f_at = _formatted(nums)
    starts = np.empty(n, np.int64)
    ends = np.empty(n, np.int64)
    args = (table, t_off, np.asarray(c.type, np.int64) + head_base, d_tail, g_tail, d_lab, g_lab)
    size = _assemble(
        np.empty(0, np.uint8), False, *args, close, ints, i_at, floats, f_at, starts, ends
    )
    buf = np.empty(size, np.uint8)
    _assemble(buf, True, *args, close, ints, i_at, floats, f_at, starts, ends)
    return ConflictBytes(buf, starts, ends)


def conflict_extras(
    gt: Annotations, ds: Annotations, c: Conflicts, items: Items | None
) -> dict[int, dict[str, Any]]:
    """Per conflict position, the optional keys after ``similarity``: ``attribute_names`` and
    (for the first :data:`MAX_GEOMETRY_CONFLICTS`, with ``items``) ``geometry``."""
    from labelgate.engine.compare import conflict_geometries

    out: dict[int, dict[str, Any]] = {
        k: {"attribute_names": list(names)} for k, names in c.attribute_names.items()
    }
    for k, geo in enumerate(conflict_geometries(gt, ds, c, items)):
        out.setdefault(k, {})["geometry"] = geo
    return out
