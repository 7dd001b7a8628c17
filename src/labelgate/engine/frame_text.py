"""Per-frame results as columns, and their JSON text straight from the columns.

:func:`frame_record` is the one definition of a frame's record (CVAT 2.42's
``ComparisonReportFrameSummary``): :func:`~labelgate.engine.compare.frame_results` fills it with
each frame's values, and :func:`frame_texts` fills it once with column markers, walks it into a
template of constant pieces and value slots, and lets one compiled loop copy the pieces, the
numbers (each column formatted once by orjson) and the frame's conflict texts, frame after frame.
The text parses to exactly the dicts (same keys and order, ints as ints, floats as the same
doubles in orjson's shortest round-trip spelling).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from labelgate.arrays import FloatArray, IntArray
from labelgate.engine.conflict_text import (
    ByteArray,
    ConflictBytes,
    copy_piece,
    formatted,
    piece_table,
    write_conflicts,
)
from labelgate.engine.conflicts import CONFLICT_TYPES
from labelgate.engine.report import confusion_block, label_metrics

#: Bytes of frame text assembled per piece handed out (one reused buffer).
_BLOCK = 16 << 20
#: Slot kinds of the template: an int column, a float column, the frame's conflicts, its
#: conflicts_by_type entries.
_INT, _FLOAT, _CONFLICTS, _BY_TYPE = 0, 1, 2, 3


@dataclass(frozen=True)
class FrameConflicts:
    """Each frame's conflicts, as columns.

    Attributes:
        order: conflict positions sorted by frame (stable: report order within a frame).
        lo, hi: frame ``i`` lists the conflicts ``order[lo[i]:hi[i]]``.
        errors: per frame, its error-severity conflicts.
        cell_frame, cell_type, cell_count: the (frame index, type code, count) cells of
            ``conflicts_by_type``, frame after frame, each frame's types in order of first
            appearance (CVAT's ``Counter``).
    """

    order: IntArray
    lo: IntArray
    hi: IntArray
    errors: IntArray
    cell_frame: IntArray
    cell_type: IntArray
    cell_count: IntArray


def frame_conflicts(
    frames: IntArray, frame_col: IntArray, kind: IntArray, is_error: Any
) -> FrameConflicts:
    """:class:`FrameConflicts` of conflicts given as frame id, type code and error flag
    columns; conflicts on frames not in ``frames`` belong to none."""
    order = np.argsort(frame_col, kind="stable")
    frame_col, kind, is_error = frame_col[order], kind[order], is_error[order]
    lo = np.searchsorted(frame_col, frames, side="left")
    hi = np.searchsorted(frame_col, frames, side="right")
    at = np.minimum(np.searchsorted(frames, frame_col), max(len(frames) - 1, 0))
    known = frames[at] == frame_col if len(frames) else np.zeros(len(at), bool)
    at, kind, is_error = at[known], kind[known], is_error[known]
    errors = np.bincount(at[is_error], minlength=len(frames))
    n_types = len(CONFLICT_TYPES)
    cell, first, tally = np.unique(at * n_types + kind, return_index=True, return_counts=True)
    seq = np.argsort(first, kind="stable")  # first positions grow with the frame
    cell = cell[seq].astype(np.int64)
    return FrameConflicts(
        order.astype(np.int64),
        lo.astype(np.int64),
        hi.astype(np.int64),
        errors.astype(np.int64),
        cell // n_types,
        cell % n_types,
        tally[seq].astype(np.int64),
    )


@dataclass(frozen=True)
class FrameColumns:
    """A report's per-frame numbers, one value per frame in each column.

    Attributes:
        frames: the frame ids (ascending).
        labels: the confusion matrix labels, ``unmatched`` last.
        counts: the ``annotations`` counts (CVAT's key order).
        ratios: ``accuracy``, ``precision``, ``recall`` of the ``annotations``.
        cm: (frames, L+1, L+1) confusion matrices.
        metrics: per-label metrics, (frames, L+1) each.
        shape, label: the ``annotation_components`` (counts, then the ratios).
    """

    frames: IntArray
    labels: list[str]
    counts: dict[str, IntArray]
    ratios: dict[str, FloatArray]
    cm: IntArray
    metrics: dict[str, FloatArray]
    shape: dict[str, Any]
    label: dict[str, Any]


def _ratio(num: IntArray, den: IntArray) -> FloatArray:
    """``num / (den or 1)`` per value: both exact as doubles (counts below 2**53), so the
    quotient is the same correctly rounded double as Python's ``int / int``."""
    return np.asarray(num, np.float64) / np.where(den == 0, 1, den).astype(np.float64)


def _ints(values: Any) -> IntArray:
    return np.asarray(values).astype(np.int64)  # bool columns count as 0/1 ints


def frame_columns(f: Mapping[str, Any]) -> FrameColumns:
    """:class:`FrameColumns` of ``build_report_data``'s ``_frames`` payload."""
    counts = {k: _ints(v) for k, v in f["counts"].items()}
    ratios = {
        name: _ratio(counts["valid_count"], counts[den])
        for name, den in (
            ("accuracy", "total_count"),
            ("precision", "ds_count"),
            ("recall", "gt_count"),
        )
    }
    parts: dict[str, dict[str, Any]] = {}
    for part, cols in f["components"].items():
        parts[part] = {k: _ints(v) for k, v in cols.items()}
        if part == "shape":
            parts[part]["mean_iou"] = np.asarray(f["iou"], np.float64)
        parts[part]["accuracy"] = _ratio(parts[part]["valid_count"], parts[part]["total_count"])
    return FrameColumns(
        frames=np.asarray(f["frames"], np.int64),
        labels=[*f["labels"], "unmatched"],
        counts=counts,
        ratios=ratios,
        cm=_ints(f["cm"]),
        metrics=label_metrics(f["cm"]),
        shape=parts["shape"],
        label=parts["label"],
    )


def frame_record(
    conflicts: Any,
    cols: FrameColumns,
    counts: Mapping[str, Any],
    ratios: Mapping[str, Any],
    rows: Any,
    metrics: Mapping[str, Any],
    shape: Mapping[str, Any],
    label: Mapping[str, Any],
    tally: tuple[Any, Any, Any, Any],
) -> dict[str, Any]:
    """One frame's record: its ``conflicts``, the ``annotations`` summary with its labelled
    confusion matrix, the ``annotation_components``, and ``tally`` = (conflict count,
    warnings, errors, conflicts_by_type). The values are the frame's (or column markers)."""
    n, warnings, errors, by_type = tally
    return {
        "conflicts": conflicts,
        "annotations": {
            **counts,
            "confusion_matrix": confusion_block(cols.labels, rows, metrics),
            **ratios,
        },
        "annotation_components": {"shape": dict(shape), "label": dict(label)},
        "conflict_count": n,
        "warning_count": warnings,
        "error_count": errors,
        "conflicts_by_type": by_type,
    }


@dataclass(frozen=True)
class _Col:
    """Marker of a column in the template record: the value of the frame being written."""

    values: Any


@dataclass(frozen=True)
class _Special:
    """Marker of a frame's conflicts list or its conflicts_by_type object."""

    kind: int


class _Template:
    """Constant pieces around value slots: piece ``j`` comes before slot ``j``, the last
    piece ends the frame."""

    def __init__(self) -> None:
        self.pieces = [""]
        self.slots: list[tuple[int, int]] = []
        self.ints: list[Any] = []
        self.floats: list[Any] = []

    def lit(self, text: str) -> None:
        self.pieces[-1] += text

    def slot(self, kind: int, col: int = 0) -> None:
        self.slots.append((kind, col))
        self.pieces.append("")

    def walk(self, obj: Any) -> None:
        """Append ``obj``'s text as ``json.dumps`` spells it, markers as slots."""
        if isinstance(obj, _Col):
            values = np.asarray(obj.values)
            if np.issubdtype(values.dtype, np.integer):
                self.slot(_INT, len(self.ints))
                self.ints.append(values)
            else:
                self.slot(_FLOAT, len(self.floats))
                self.floats.append(values)
        elif isinstance(obj, _Special):
            brackets = "[]" if obj.kind == _CONFLICTS else "{}"
            self.lit(brackets[0])
            self.slot(obj.kind)
            self.lit(brackets[1])
        elif isinstance(obj, dict):
            self.lit("{")
            for i, (key, value) in enumerate(obj.items()):
                self.lit((", " if i else "") + json.dumps(key) + ": ")
                self.walk(value)
            self.lit("}")
        elif isinstance(obj, list | tuple):
            self.lit("[")
            for i, value in enumerate(obj):
                self.lit(", " if i else "")
                self.walk(value)
            self.lit("]")
        else:
            self.lit(json.dumps(obj))


def _template(cols: FrameColumns, fc: FrameConflicts) -> _Template:
    """The frame text's template: ``"<frame id>": <record>``, the record's values marked."""
    side = cols.cm.shape[1]
    record = frame_record(
        _Special(_CONFLICTS),
        cols,
        {k: _Col(v) for k, v in cols.counts.items()},
        {k: _Col(v) for k, v in cols.ratios.items()},
        [[_Col(cols.cm[:, r, c]) for c in range(side)] for r in range(side)],
        {k: [_Col(v[:, j]) for j in range(side)] for k, v in cols.metrics.items()},
        {k: _Col(v) for k, v in cols.shape.items()},
        {k: _Col(v) for k, v in cols.label.items()},
        (
            _Col(fc.hi - fc.lo),
            _Col(fc.hi - fc.lo - fc.errors),
            _Col(fc.errors),
            _Special(_BY_TYPE),
        ),
    )
    t = _Template()
    t.lit('"')
    t.walk(_Col(cols.frames))  # the key: the frame id as a string
    t.lit('": ')
    t.walk(record)
    return t


def _matrix(columns: list[Any], n: int, dtype: Any) -> Any:
    """Columns side by side, (n, len(columns)) C-ordered (a frame's values are one row)."""
    out = np.empty((n, len(columns)), dtype)
    for j, col in enumerate(columns):
        out[:, j] = col
    return out


def _row_lengths(at: IntArray, n: int, k: int) -> IntArray:
    """Per row of an (n, k) matrix formatted by :func:`formatted`, its values' text length
    (commas not counted)."""
    return at[k : n * k + 1 : k] - at[0 : n * k : k] - k if k else np.zeros(n, np.int64)


class FrameTexts:
    """A report's ``frame_results`` text, assembled in blocks of about :data:`_BLOCK` bytes.

    Built by :func:`frame_texts`; each block's conflicts are assembled straight into it.
    """

    def __init__(self, args: tuple[Any, ...], sizes: IntArray) -> None:
        self._args = args
        self._cum = np.zeros(len(sizes) + 1, np.int64)
        np.cumsum(sizes, out=self._cum[1:])

    def __len__(self) -> int:
        return len(self._cum) - 1

    def pieces(self) -> Iterator[memoryview | bytes]:
        """The ``frame_results`` object's text; each piece a view of one reused buffer,
        valid until the next piece is asked for."""
        n = len(self)
        if not n:
            yield b"{}"
            return
        yield b"{"
        buf = np.empty(0, np.uint8)
        a = 0
        while a < n:
            b = int(np.searchsorted(self._cum, self._cum[a] + _BLOCK, side="right")) - 1
            b = min(max(b, a + 1), n)
            size = int(self._cum[b] - self._cum[a])
            if len(buf) < size:
                buf = np.empty(max(size, _BLOCK), np.uint8)
            written = _frames_kernel(buf, a, b, *self._args)
            if written != size:  # the kernel and frame_texts' sizes disagree: a bug
                raise AssertionError(f"frame texts: {written} bytes written, {size} expected")
            yield buf.data[:size]
            a = b
        yield b"}"


def frame_texts(cols: FrameColumns, fc: FrameConflicts, texts: ConflictBytes) -> FrameTexts:
    """The ``frame_results`` text of :func:`~labelgate.engine.compare.frame_results`'s dicts.

    Args:
        cols: the per-frame numbers.
        fc: each frame's conflicts (positions into ``texts``).
        texts: the conflicts' texts in report order.

    Returns:
        The text, assembled as it is read.
    """
    nf = len(cols.frames)
    t = _template(cols, fc)
    ints, i_at = formatted(_matrix(t.ints, nf, np.int64))
    floats, f_at = formatted(_matrix(t.floats, nf, np.float64))
    counts, c_at = formatted(fc.cell_count)
    sep = len(t.pieces)
    type_base = sep + 1
    pieces: list[str | bytes] = [*t.pieces, ", "]
    pieces += [json.dumps(name) + ": " for name in CONFLICT_TYPES]
    table, t_off = piece_table(pieces)
    piece = np.diff(t_off)
    cell_lo = np.searchsorted(fc.cell_frame, np.arange(nf), side="left").astype(np.int64)
    cell_hi = np.searchsorted(fc.cell_frame, np.arange(nf), side="right").astype(np.int64)
    # Sizes: the template's pieces, the values, the conflicts' run and the by-type entries.
    sizes = np.full(nf, int(t_off[sep]), np.int64)
    sizes[1:] += piece[sep]  # the ", " before every frame but the first
    sizes += _row_lengths(i_at, nf, len(t.ints)) + _row_lengths(f_at, nf, len(t.floats))
    # Frame i's conflicts are order[lo[i]:hi[i]], joined by ", ".
    starts = np.zeros(len(fc.order) + 1, np.int64)
    np.cumsum(texts.sizes[fc.order], out=starts[1:])
    sizes += np.where(fc.hi > fc.lo, starts[fc.hi] - starts[fc.lo] - 2, 0)
    cell_size = piece[type_base + fc.cell_type] + np.diff(c_at) - 1 + piece[sep]
    per_frame = np.bincount(fc.cell_frame, cell_size, minlength=nf).astype(np.int64)
    sizes += per_frame - np.where(cell_hi > cell_lo, piece[sep], 0)
    slots = np.array(t.slots, np.int64).reshape(-1, 2)
    args = (
        table,
        t_off,
        np.ascontiguousarray(slots[:, 0]),
        np.ascontiguousarray(slots[:, 1]),
        ints,
        i_at,
        len(t.ints),
        floats,
        f_at,
        len(t.floats),
        fc.lo,
        fc.hi,
        cell_lo,
        cell_hi,
        fc.cell_type + type_base,
        counts,
        c_at,
        fc.order,
        texts.args,
    )
    return FrameTexts(args, sizes)


@njit(cache=True, nogil=True)
def _frames_kernel(
    out: ByteArray,
    a: int,
    b: int,
    table: Any,
    t_off: Any,
    slot_kind: Any,
    slot_col: Any,
    ints: Any,
    i_at: Any,
    ki: int,
    floats: Any,
    f_at: Any,
    kf: int,
    lo: Any,
    hi: Any,
    cell_lo: Any,
    cell_hi: Any,
    cell_piece: Any,
    counts: Any,
    c_at: Any,
    order: Any,
    conflict_args: Any,
) -> int:
    """Write frames ``a`` to ``b - 1`` (each but the first of all after ``", "``) into
    ``out``, each frame's conflicts ``order[lo[i]:hi[i]]`` by :func:`write_conflicts` (with
    ``conflict_args``, its :data:`~labelgate.engine.conflict_text.KernelArgs`); returns the
    length written."""
    n_slots = len(slot_kind)
    sep = n_slots + 1  # the ", " piece follows the template's pieces
    at = 0
    for i in range(a, b):
        if i > 0:
            at = copy_piece(out, at, table, t_off[sep], t_off[sep + 1])
        for j in range(n_slots):
            at = copy_piece(out, at, table, t_off[j], t_off[j + 1])
            kind = slot_kind[j]
            if kind == 0:
                v = i * ki + slot_col[j]
                at = copy_piece(out, at, ints, i_at[v], i_at[v + 1] - 1)
            elif kind == 1:
                v = i * kf + slot_col[j]
                at = copy_piece(out, at, floats, f_at[v], f_at[v + 1] - 1)
            elif kind == 2:
                if hi[i] > lo[i]:
                    at = write_conflicts(out, at, conflict_args, order, lo[i], hi[i])
                    at -= 2  # the separator after the frame's last conflict
            else:
                for c in range(cell_lo[i], cell_hi[i]):
                    if c > cell_lo[i]:
                        at = copy_piece(out, at, table, t_off[sep], t_off[sep + 1])
                    p = cell_piece[c]
                    at = copy_piece(out, at, table, t_off[p], t_off[p + 1])
                    at = copy_piece(out, at, counts, c_at[c], c_at[c + 1] - 1)
        at = copy_piece(out, at, table, t_off[n_slots], t_off[n_slots + 1])
    return at


def frame_dicts(cols: FrameColumns, fc: FrameConflicts, conflicts: Sequence[Any]) -> dict[str, Any]:
    """:func:`frame_record` of every frame, keyed by the frame id as a string; a frame's
    ``conflicts`` are the items of ``conflicts`` (report order) at its positions."""
    in_order = bool((fc.order == np.arange(len(fc.order))).all())
    listed = conflicts if in_order else [conflicts[k] for k in fc.order.tolist()]
    by_type: list[dict[str, int]] = [{} for _ in range(len(cols.frames))]
    for f, t, n in zip(
        fc.cell_frame.tolist(), fc.cell_type.tolist(), fc.cell_count.tolist(), strict=True
    ):
        by_type[f][CONFLICT_TYPES[t]] = n
    counts = {k: v.tolist() for k, v in cols.counts.items()}
    ratios = {k: v.tolist() for k, v in cols.ratios.items()}
    rows = cols.cm.tolist()
    metrics = {k: v.tolist() for k, v in cols.metrics.items()}
    shape = {k: v.tolist() for k, v in cols.shape.items()}
    label = {k: v.tolist() for k, v in cols.label.items()}
    errors = fc.errors.tolist()
    out: dict[str, Any] = {}
    for i, (frame, a, b) in enumerate(
        zip(cols.frames.tolist(), fc.lo.tolist(), fc.hi.tolist(), strict=True)
    ):
        out[str(frame)] = frame_record(
            listed[a:b],
            cols,
            {k: v[i] for k, v in counts.items()},
            {k: v[i] for k, v in ratios.items()},
            rows[i],
            {k: v[i] for k, v in metrics.items()},
            {k: v[i] for k, v in shape.items()},
            {k: v[i] for k, v in label.items()},
            (b - a, b - a - errors[i], errors[i], by_type[i]),
        )
    return out
