"""Conflicts straight from their columns to JSON bytes, without one object per conflict.

Each conflict's text parses to exactly the dict :func:`~labelgate.engine.compare.
conflicts_to_json` builds (same keys and order; numbers in orjson's shortest round-trip form,
which may spell exponents differently, and orjson's compact separators inside ``position`` and
the extra keys). Every numeric column is formatted once by orjson, names come from small lookup
tables (each piece carrying the constant text after it), and one compiled loop copies the pieces
of a block of conflicts into a reused buffer.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from numba import njit

from labelgate.arrays import AnyArray, FloatArray, IntArray
from labelgate.engine.conflicts import CONFLICT_TYPES, Conflicts
from labelgate.model import Annotations, Items

#: Fixed pieces of a conflict's text, by their index in the piece table. Table pieces carry
#: the constant text that follows them, so a conflict is about ten copies.
_FIXED = (
    ', "annotation_ids": [{"obj_id": ',  # 0: after the frame, with an annotation
    ', "annotation_ids": [], "label_names": [], "position": [',  # 1: without one
    '], "similarity": ',  # 2
    "}, ",  # 3: the end of a conflict without extra keys, and the separator
)
#: Suffixes of the two variants of each id-tail piece (another id follows, or not) and of
#: each label piece (another label follows, or not).
_TAIL_MORE, _TAIL_END = ', {"obj_id": ', '], "label_names": ['
_LABEL_MORE, _LABEL_END = ", ", '], "position": ['
ByteArray = npt.NDArray[np.uint8]
#: :func:`_assemble`'s twelve table and column arguments.
KernelArgs = tuple[Any, Any, Any, Any, Any, Any, Any, Any, Any, Any, Any, Any]


#: Bytes of conflict text assembled per block: the whole text is never held at once (its
#: fresh pages would cost more to fault in than the copying itself).
_BLOCK = 8 << 20


class ConflictBytes:
    """All conflicts' JSON texts, assembled on demand in blocks of about :data:`_BLOCK` bytes.

    Built by :func:`conflict_bytes`; ``args`` are :func:`_assemble`'s table and column arguments,
    ``sizes`` each conflict's text length plus its ``", "`` separator.
    """

    def __init__(self, args: KernelArgs, sizes: IntArray) -> None:
        self._args = args
        self._cum = np.zeros(len(sizes) + 1, np.int64)
        np.cumsum(sizes, out=self._cum[1:])
        # One buffer, reused block after block: fresh pages cost more to fault in than the
        # assembling (the report lists every conflict twice, so each block is built twice).
        self._buf = np.zeros(0, np.uint8)
        self._span = (0, 0)

    def __len__(self) -> int:
        return len(self._cum) - 1

    def _write(self, order: IntArray, out: ByteArray) -> ByteArray:
        _assemble(out, True, *self._args, order, np.zeros(0, np.int64))
        return out

    def block_end(self, a: int) -> int:
        """End (exclusive) of the block of conflicts that starts at ``a``."""
        hi = int(np.searchsorted(self._cum, self._cum[a] + _BLOCK, side="right")) - 1
        return min(max(hi, a + 1), len(self))

    def joined(self, a: int, b: int) -> memoryview:
        """Conflicts ``a`` to ``b - 1`` joined by ``", "``: a view of the current block, valid
        until the next call (ranges asked in increasing order share a block)."""
        if b <= a:
            return memoryview(b"")
        lo, hi = self._span
        if not lo <= a or not b <= hi:
            lo, hi = a, max(b, self.block_end(a))
            size = int(self._cum[hi] - self._cum[lo])
            if len(self._buf) < size:
                self._buf = np.empty(max(size, _BLOCK), np.uint8)
            self._write(np.arange(lo, hi, dtype=np.int64), self._buf)
            self._span = (lo, hi)
        base = int(self._cum[lo])
        return self._buf.data[int(self._cum[a]) - base : int(self._cum[b]) - base - 2]

    def picked(self, positions: IntArray) -> memoryview:
        """The conflicts at ``positions`` (any order) joined by ``", "``."""
        if not len(positions):
            return memoryview(b"")
        order = np.asarray(positions, np.int64)
        size = int((self._cum[order + 1] - self._cum[order]).sum())
        return self._write(order, np.empty(size, np.uint8)).data[: size - 2]

    def text(self, k: int) -> str:
        """Conflict ``k``'s text."""
        return self.picked(np.array([k])).tobytes().decode()


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
        if b - a > 32:
            out[at : at + b - a] = src[a:b]
        else:
            # A byte loop: a slice assignment builds two array views, which costs more than
            # copying the few bytes of most pieces.
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
    order: Any,
    sizes: Any,
) -> int:
    """Write (or, with ``write`` false, only measure into ``sizes``) the texts of the
    conflicts at ``order``, each followed by ``", "``; ``ints`` hold frame, DS and GT object
    ids (three per conflict), ``floats`` the four position values and the similarity (five
    per conflict). Returns the length written."""
    at = 0
    for i in range(len(order)):
        k = order[i]
        begin = at
        h = head[k]
        at = _copy(out, at, table, t_off[h], t_off[h + 1], write)
        at = _copy(out, at, ints, i_at[3 * k], i_at[3 * k + 1] - 1, write)
        first = d_tail[k] >= 0
        second = g_tail[k] >= 0
        both = first and second
        if first or second:
            at = _copy(out, at, table, t_off[0], t_off[1], write)
            o = 3 * k + 1 if first else 3 * k + 2
            at = _copy(out, at, ints, i_at[o], i_at[o + 1] - 1, write)
            # Tail pieces come in pairs: [ends the ids, another id follows].
            t = (d_tail[k] if first else g_tail[k]) + (1 if both else 0)
            at = _copy(out, at, table, t_off[t], t_off[t + 1], write)
            if both:
                at = _copy(out, at, ints, i_at[3 * k + 2], i_at[3 * k + 3] - 1, write)
                t = g_tail[k]
                at = _copy(out, at, table, t_off[t], t_off[t + 1], write)
            # Label pieces too: [ends the labels, another label follows].
            lab = (d_lab[k] if first else g_lab[k]) + (1 if both else 0)
            at = _copy(out, at, table, t_off[lab], t_off[lab + 1], write)
            if both:
                lab = g_lab[k]
                at = _copy(out, at, table, t_off[lab], t_off[lab + 1], write)
        else:
            at = _copy(out, at, table, t_off[1], t_off[2], write)
        # Five floats per conflict: the four position values (orjson's commas kept), then
        # the similarity.
        at = _copy(out, at, floats, f_at[5 * k], f_at[5 * k + 4] - 1, write)
        at = _copy(out, at, table, t_off[2], t_off[3], write)
        at = _copy(out, at, floats, f_at[5 * k + 4], f_at[5 * k + 5] - 1, write)
        c = close[k]
        at = _copy(out, at, table, t_off[c], t_off[c + 1], write)
        if not write:
            sizes[i] = at - begin
    return at


def _tails(ann: Annotations, rows: IntArray, job: Any, pieces: list[str | bytes]) -> IntArray:
    """Per row, the table index of its id object's rest (from ``, "job_id"`` to the closing
    brace; two pieces per distinct source type and shape kind, appended to ``pieces``: the
    last id's, then one followed by another id), -1 where the row is absent."""
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
    for u in uniq.tolist():
        tail = (
            f', "job_id": {job_text}, "type": {json.dumps(_SOURCE_TYPE.get(u // 256))}, '
            f'"shape_type": {json.dumps(_SHAPE_NAME.get(u % 256))}}}'
        )
        pieces += [tail + _TAIL_END, tail + _TAIL_MORE]
    out[present] = base + 2 * inverse.ravel()
    return out


def _labels(ann: Annotations, rows: IntArray, base: int, n_labels: int) -> IntArray:
    """Per row, the table index of its label name's text (``null`` for label -1; two pieces
    per label from ``base``: the last label's, then one followed by another label)."""
    if not len(ann):
        return np.full(len(rows), base + 2 * n_labels, np.int64)
    lab = ann.label[np.maximum(rows, 0)].astype(np.int64)
    return base + 2 * np.where(lab < 0, n_labels, lab)


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
    for x in [*labels, None]:
        pieces += [json.dumps(x) + _LABEL_END, json.dumps(x) + _LABEL_MORE]
    d_rows = c.ds_row if len(ds) else np.full(n, -1, np.int64)
    g_rows = c.gt_row if len(gt) else np.full(n, -1, np.int64)
    d_tail = _tails(ds, d_rows, job["ds"], pieces)
    g_tail = _tails(gt, g_rows, job["gt"], pieces)
    d_lab = _labels(ds, d_rows, label_base, len(labels))
    g_lab = _labels(gt, g_rows, label_base, len(labels))
    close = np.full(n, 3, np.int64)
    if extras:
        keys = sorted(extras)
        close[keys] = len(pieces) + np.arange(len(keys))
        # orjson: tens of thousands of geometry payloads; their coordinates are finite (the
        # model rejects others), so its ``null`` for NaN never applies.
        pieces += [b", " + orjson.dumps(extras[k])[1:] + b", " for k in keys]
    table, t_off = _table(pieces)
    has_d = d_rows >= 0
    # Per conflict, in the order the kernel reads them: frame, DS id, GT id.
    ids = np.zeros((n, 3), np.int64)
    ids[:, 0] = c.frame
    if len(ds):
        ids[:, 1] = ds.source_id[np.maximum(d_rows, 0)]
    if len(gt):
        ids[:, 2] = gt.source_id[np.maximum(g_rows, 0)]
    # Per conflict: the position (the DS box when there is one, else the GT box; as in
    # conflicts_to_json, GT row 0 stands in when neither is), then the similarity.
    nums: FloatArray = np.zeros((n, 5))
    if len(ds):
        nums[has_d, :4] = ds.bbox[d_rows[has_d]]
    if len(gt):
        nums[~has_d, :4] = gt.bbox[np.maximum(g_rows[~has_d], 0)]
    nums[:, 4] = c.similarity
    ints, i_at = _formatted(ids)
    floats, f_at = _formatted(nums)
    head = np.asarray(c.type, np.int64) + head_base
    args: KernelArgs = (
        table,
        t_off,
        head,
        d_tail,
        g_tail,
        d_lab,
        g_lab,
        close,
        ints,
        i_at,
        floats,
        f_at,
    )
    sizes = np.empty(n, np.int64)
    _assemble(np.empty(0, np.uint8), False, *args, np.arange(n, dtype=np.int64), sizes)
    return ConflictBytes(args, sizes)


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
