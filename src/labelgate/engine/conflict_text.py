"""Conflicts straight from their columns to JSON bytes, without one object per conflict.

Each conflict's text parses to exactly the dict :func:`~labelgate.engine.compare.
conflicts_to_json` builds (same keys and order; numbers in orjson's shortest round-trip form,
which may spell exponents differently, and orjson's compact separators inside ``position`` and
the extra keys). Every numeric column is formatted once by orjson, names come from small lookup
tables (each piece carrying the constant text after it), and one compiled loop copies the pieces
of a run of conflicts into a buffer, whose size is known beforehand from the pieces' lengths.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from numba import njit
from numba.core import cgutils, types
from numba.extending import intrinsic

from labelgate.arrays import AnyArray, FloatArray, IntArray
from labelgate.engine.conflicts import CONFLICT_TYPES, Conflicts
from labelgate.model import Annotations, Items

#: Fixed pieces of a conflict's text, by their index in the piece table. Table pieces carry
#: the constant text that follows them, so a conflict is about ten copies.
_FIXED = (
    ', "annotation_ids": [{"obj_id": ',  # 0: after the frame, with an annotation
    ', "annotation_ids": [], "label_names": [], "position": [',  # 1: without one
    '], "similarity": ',  # 2
    "}, ",  # 3: the end of a conflict, and the separator
    ", ",  # 4: before a conflict's extra keys
)
#: Suffixes of the two variants of each id-tail piece (another id follows, or not) and of
#: each label piece (another label follows, or not).
_TAIL_MORE, _TAIL_END = ', {"obj_id": ', '], "label_names": ['
_LABEL_MORE, _LABEL_END = ", ", '], "position": ['
ByteArray = npt.NDArray[np.uint8]
#: :func:`write_conflicts`'s fourteen table and column arguments.
KernelArgs = tuple[Any, Any, Any, Any, Any, Any, Any, Any, Any, Any, Any, Any, Any, Any]


#: Bytes of conflict text assembled per piece of the top-level list, into one reused buffer:
#: the whole text (hundreds of MB) is never held, and fresh memory costs more to fault in
#: than assembling the text twice (once in its frame, once in the list).
_BLOCK = 8 << 20


class ConflictBytes:
    """All conflicts' JSON texts, assembled on demand from their columns.

    Built by :func:`conflict_bytes`: ``args`` are :func:`write_conflicts`' table and column
    arguments, ``sizes`` each conflict's text length plus its ``", "`` separator.
    """

    def __init__(self, args: KernelArgs, sizes: IntArray) -> None:
        self.args = args
        self.sizes = sizes
        self.starts = np.zeros(len(sizes) + 1, np.int64)
        np.cumsum(sizes, out=self.starts[1:])
        self._buf = np.empty(0, np.uint8)

    def __len__(self) -> int:
        return len(self.sizes)

    def _write(self, order: IntArray, out: ByteArray) -> int:
        """The conflicts at ``order``, each followed by ``", "``, into ``out``; their length.

        Raises:
            AssertionError: the kernel wrote another length than :func:`_sizes` gave (a bug).
        """
        size = int(self.sizes[order].sum())
        written = write_conflicts(out, 0, self.args, order, 0, len(order))
        if written != size:
            raise AssertionError(f"conflict texts: {written} bytes written, {size} expected")
        return size

    def blocks(self) -> Iterator[memoryview]:
        """All conflicts joined by ``", "`` (report order), in pieces of about :data:`_BLOCK`
        bytes cut between conflicts; each piece a view of one reused buffer, valid until the
        next one is asked for."""
        n = len(self)
        a = 0
        while a < n:
            hi = int(np.searchsorted(self.starts, self.starts[a] + _BLOCK, side="right")) - 1
            b = min(max(hi, a + 1), n)
            need = int(self.starts[b] - self.starts[a])
            if len(self._buf) < need:
                self._buf = np.empty(max(need, _BLOCK), np.uint8)
            size = self._write(np.arange(a, b, dtype=np.int64), self._buf)
            # Every piece but the last keeps its trailing separator.
            yield self._buf.data[: size - (2 if b == n else 0)]
            a = b

    def picked(self, positions: IntArray) -> memoryview:
        """The conflicts at ``positions`` (any order) joined by ``", "``, in a buffer of their own."""
        order = np.asarray(positions, np.int64)
        if not len(order):
            return memoryview(b"")
        out = np.empty(int(self.sizes[order].sum()), np.uint8)
        return out.data[: self._write(order, out) - 2]


def piece_table(pieces: list[str | bytes]) -> tuple[ByteArray, IntArray]:
    """Pieces as one UTF-8 byte array and their offsets (``len(pieces) + 1``)."""
    raw = [p if isinstance(p, bytes) else p.encode() for p in pieces]
    off = np.zeros(len(raw) + 1, np.int64)
    off[1:] = np.cumsum([len(r) for r in raw])
    return np.frombuffer(b"".join(raw), np.uint8).copy(), off


def formatted(values: AnyArray) -> tuple[ByteArray, IntArray]:
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


@intrinsic
def _copy_piece(typingctx: Any, out: Any, at: Any, src: Any, a: Any, b: Any) -> Any:
    """Copy ``src[a:b]`` to ``out`` at ``at`` (1-D C-contiguous byte arrays); returns the end
    of the copy, ``at + b - a``.

    One ``memcpy``, emitted in place: a compiled function would count references to both
    arrays on every call (and is not inlined into other modules' kernels), a slice assignment
    builds two views, and the C library copies the few bytes of most pieces with a couple of
    vector moves. A copy that would leave either array is skipped, never touching memory past
    them: the callers compare the returned length with the one they sized ``out`` for.
    """
    sig = types.intp(out, types.intp, src, types.intp, types.intp)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        out_v, at_v, src_v, a_v, b_v = args
        dst = context.make_array(signature.args[0])(context, builder, out_v)
        source = context.make_array(signature.args[2])(context, builder, src_v)
        n = builder.sub(b_v, a_v)
        end = builder.add(at_v, n)
        zero = context.get_constant(types.intp, 0)
        inside = [
            builder.icmp_signed(">=", a_v, zero),
            builder.icmp_signed(">=", n, zero),
            builder.icmp_signed("<=", b_v, source.nitems),
            builder.icmp_signed(">=", at_v, zero),
            builder.icmp_signed("<=", end, dst.nitems),
        ]
        ok = inside[0]
        for cond in inside[1:]:
            ok = builder.and_(ok, cond)
        with builder.if_then(ok, likely=True):
            d_ptr = builder.gep(dst.data, [at_v])
            s_ptr = builder.gep(source.data, [a_v])
            cgutils.raw_memcpy(builder, d_ptr, s_ptr, n, 1)  # type: ignore[no-untyped-call]
        return end

    return sig, codegen


#: ``copy_piece(out, at, src, a, b) -> at + b - a`` in compiled code (typed loosely: mypy sees
#: the intrinsic's typing function, with its extra context argument).
copy_piece: Any = _copy_piece


@njit(cache=True, nogil=True)
def write_conflicts(out: Any, at: int, args: Any, order: Any, p0: int, p1: int) -> int:
    """Write the texts of the conflicts ``order[p0:p1]`` into ``out`` from ``at``, each
    followed by ``", "``. ``args`` (:data:`KernelArgs`): the piece table and its offsets, each
    conflict's head, tail and label pieces, its extra keys (``extra[k]`` = ``e`` >= 0: they are
    ``ex_text[ex_at[2e]:ex_at[2e + 1]]``), ``ints`` (frame, DS and GT object ids, three per
    conflict) and ``floats`` (the four position values and the similarity, five per conflict),
    each with its value offsets. Returns the end of the text written."""
    table, t_off, head, d_tail, g_tail, d_lab, g_lab, extra, ex_text, ex_at = args[:10]
    ints, i_at, floats, f_at = args[10:]
    for p in range(p0, p1):
        k = order[p]
        h = head[k]
        at = copy_piece(out, at, table, t_off[h], t_off[h + 1])
        at = copy_piece(out, at, ints, i_at[3 * k], i_at[3 * k + 1] - 1)
        first = d_tail[k] >= 0
        second = g_tail[k] >= 0
        both = first and second
        if first or second:
            at = copy_piece(out, at, table, t_off[0], t_off[1])
            o = 3 * k + 1 if first else 3 * k + 2
            at = copy_piece(out, at, ints, i_at[o], i_at[o + 1] - 1)
            # Tail pieces come in pairs: [ends the ids, another id follows].
            t = (d_tail[k] if first else g_tail[k]) + (1 if both else 0)
            at = copy_piece(out, at, table, t_off[t], t_off[t + 1])
            if both:
                at = copy_piece(out, at, ints, i_at[3 * k + 2], i_at[3 * k + 3] - 1)
                t = g_tail[k]
                at = copy_piece(out, at, table, t_off[t], t_off[t + 1])
            # Label pieces too: [ends the labels, another label follows].
            lab = (d_lab[k] if first else g_lab[k]) + (1 if both else 0)
            at = copy_piece(out, at, table, t_off[lab], t_off[lab + 1])
            if both:
                lab = g_lab[k]
                at = copy_piece(out, at, table, t_off[lab], t_off[lab + 1])
        else:
            at = copy_piece(out, at, table, t_off[1], t_off[2])
        # Five floats per conflict: the four position values (orjson's commas kept), then
        # the similarity.
        at = copy_piece(out, at, floats, f_at[5 * k], f_at[5 * k + 4] - 1)
        at = copy_piece(out, at, table, t_off[2], t_off[3])
        at = copy_piece(out, at, floats, f_at[5 * k + 4], f_at[5 * k + 5] - 1)
        e = extra[k]
        if e >= 0:
            at = copy_piece(out, at, table, t_off[4], t_off[5])
            at = copy_piece(out, at, ex_text, ex_at[2 * e], ex_at[2 * e + 1])
        at = copy_piece(out, at, table, t_off[3], t_off[4])
    return at


@njit(cache=True, nogil=True)
def _object_spans(data: Any, n: int) -> Any:
    """Where the insides (between the braces) of the ``n`` objects of a JSON array of objects
    start and end: ``2 * n`` offsets. Strings are skipped (they may hold braces)."""
    spans = np.zeros(2 * n, np.int64)
    depth = 0
    j = 0
    in_string = False
    escaped = False
    for i in range(len(data)):
        ch = data[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == 92:  # backslash
                escaped = True
            elif ch == 34:  # quote
                in_string = False
        elif ch == 34:
            in_string = True
        elif ch == 91 or ch == 123:  # [ {
            depth += 1
            if depth == 2 and j < n:
                spans[2 * j] = i + 1
        elif ch == 93 or ch == 125:  # ] }
            if depth == 2 and j < n:
                spans[2 * j + 1] = i
                j += 1
            depth -= 1
    return spans


def _sizes(args: KernelArgs) -> IntArray:
    """Each conflict's text length plus its separator, as :func:`write_conflicts` writes it,
    from the piece and value lengths (vectorised: no measuring pass)."""
    _, t_off, head, d_tail, g_tail, d_lab, g_lab, extra, _, ex_at, _, i_at, _, f_at = args
    piece = np.diff(t_off)
    value = np.diff(i_at) - 1  # each value's text without the comma after it
    first, second = d_tail >= 0, g_tail >= 0
    both = first & second
    # The frame id, the four position values (orjson's commas kept) and the similarity.
    size = piece[head] + value[0::3] + (f_at[4::5] - f_at[:-1:5] - 1) + np.diff(f_at)[4::5] - 1
    size += piece[2] + piece[3]
    ex_len = np.append(ex_at[1::2] - ex_at[0::2], 0)  # extra -1 reads the appended 0
    size += np.where(extra >= 0, piece[4] + ex_len[extra], 0)
    one = np.where(first, d_tail, g_tail) + both
    lab = np.where(first, d_lab, g_lab) + both
    ids = first | second
    size += np.where(
        ids,
        piece[0] + np.where(first, value[1::3], value[2::3]) + piece[one * ids] + piece[lab],
        piece[1],
    )
    size += np.where(both, value[2::3] + piece[g_tail * both] + piece[g_lab], 0)
    return np.asarray(size, np.int64)


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
        The texts in ``c``'s order, assembled as they are read.
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
    extra = np.full(n, -1, np.int64)
    keys = sorted(extras)
    extra[keys] = np.arange(len(keys))
    # One orjson call for tens of thousands of geometry payloads; their coordinates are finite
    # (the model rejects others), so its ``null`` for NaN never applies.
    ex_text = np.frombuffer(orjson.dumps([extras[k] for k in keys]), np.uint8)
    ex_at = _object_spans(ex_text, len(keys))
    table, t_off = piece_table(pieces)
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
    ints, i_at = formatted(ids)
    floats, f_at = formatted(nums)
    head = np.asarray(c.type, np.int64) + head_base
    args: KernelArgs = (
        table,
        t_off,
        head,
        d_tail,
        g_tail,
        d_lab,
        g_lab,
        extra,
        ex_text,
        ex_at,
        ints,
        i_at,
        floats,
        f_at,
    )
    return ConflictBytes(args, _sizes(args))


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
