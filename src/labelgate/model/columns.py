"""Columnar construction of :class:`~labelgate.model.Annotations`: rows appended in blocks.

Readers that parse many rows at once (CVAT XML, COCO) append whole column blocks here instead
of calling :meth:`AnnotationsBuilder.add` per row; the blocks are concatenated with one numpy
call per column when the set is built. Blocks are checked vectorised (coordinates finite and in
range, boxes ordered); readers route rows that would fail to their per-row path first, so a
failure here means a reader bug, reported as a :class:`ValidationError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from labelgate.arrays import AnyArray, IntArray, IntegerArray, ObjectArray
from labelgate.errors import ValidationError
from labelgate.model.annotations import (
    _ROW_COLUMNS,
    MAX_COORDINATE,
    VISIBLE,
    Annotations,
    _sorted_annotations,
)


class ColumnBlocks:
    """Accumulates blocks of rows given as columns and builds one sorted :class:`Annotations`.

    Row columns not given to :meth:`extend` take their "none" values (label -1, NaN score ...).
    """

    def __init__(self, annotators: Sequence[str] = ()) -> None:
        self._annotators: tuple[str, ...] = tuple(annotators)
        self._blocks: list[dict[str, Any]] = []
        self._attr_keys: dict[str, None] = {}
        self._rows = 0

    def __len__(self) -> int:
        return self._rows

    def extend(
        self,
        *,
        item: AnyArray,
        kind: AnyArray | int,
        bbox: AnyArray,
        point_counts: IntegerArray | None = None,
        points: AnyArray | None = None,
        attributes: Mapping[str, ObjectArray] | None = None,
        source_ref: ObjectArray | None = None,
        **row_columns: AnyArray | int | float,
    ) -> None:
        """Append ``len(item)`` rows.

        Args:
            item: (n,) item ids.
            kind: (n,) or one :class:`Kind` for all rows.
            bbox: (n, 4) xyxy.
            point_counts: (n,) vertices per row (with ``points``); none when omitted.
            points: (P, 2) vertices of all rows, all visible.
            attributes: name -> (n,) object array (None where the row has no such attribute).
            source_ref: (n,) object array of the source objects' text ids (None by default).
            **row_columns: other row columns (``label``, ``group``, ``origin`` ...), arrays or
                one value for all rows.

        Raises:
            ValidationError: an unknown column, a wrong shape, or a coordinate that is not
                finite or beyond the model's range.
        """
        n = len(item)
        block: dict[str, Any] = {}
        for name, (dtype, fill) in _ROW_COLUMNS.items():
            raw = (
                item if name == "item" else kind if name == "kind" else row_columns.pop(name, fill)
            )
            col = np.asarray(raw, dtype=dtype)
            block[name] = np.full(n, col, dtype=dtype) if col.ndim == 0 else col
            if block[name].shape != (n,):
                raise ValidationError(f"ColumnBlocks: {name} has shape {block[name].shape}")
        if row_columns:
            raise ValidationError(f"ColumnBlocks: unknown columns {sorted(row_columns)}")
        box = np.asarray(bbox, dtype=np.float64).reshape(n, 4)
        pts = np.zeros((0, 2)) if points is None else np.asarray(points, np.float64).reshape(-1, 2)
        counts = np.zeros(n, np.int64) if point_counts is None else np.asarray(point_counts)
        if counts.shape != (n,) or int(counts.sum()) != len(pts):
            raise ValidationError("ColumnBlocks: point_counts do not add up to the points given")
        for what, values in (("bbox", box), ("points", pts)):
            if len(values) and not (np.abs(values) <= MAX_COORDINATE).all():  # False for NaN
                raise ValidationError(f"ColumnBlocks: {what} not finite or beyond the range")
        if ((box[:, 2] < box[:, 0]) | (box[:, 3] < box[:, 1])).any():
            raise ValidationError("ColumnBlocks: a bbox has x2 < x1 or y2 < y1")
        block.update(bbox=box, points=pts, counts=counts.astype(np.int64))
        block.update(
            span=np.full((n, 2), np.nan),
            text=np.full(n, None, dtype=object),
            source_ref=np.full(n, None, dtype=object) if source_ref is None else source_ref,
            vis=np.full(len(pts), VISIBLE, dtype=np.int8),
            rle_counts=np.zeros(n, np.int64),
            rle=np.zeros(0, np.uint32),
        )
        if block["source_ref"].shape != (n,):
            raise ValidationError("ColumnBlocks: source_ref has the wrong shape")
        for key, col in (attributes or {}).items():
            if col.shape != (n,):
                raise ValidationError(f"ColumnBlocks: attribute {key!r} has shape {col.shape}")
        self.append_block(block, dict(attributes or {}))

    def append_block(self, block: dict[str, Any], attributes: dict[str, ObjectArray]) -> None:
        """Append a block holding every column already checked (the per-row builder's rows).

        ``block`` has the row columns, ``bbox``, ``span``, ``text``, ``source_ref``, ``points``
        with ``vis`` and per-row ``counts``, and ``rle`` with per-row ``rle_counts``.
        """
        block["attributes"] = attributes
        for key in attributes:
            self._attr_keys.setdefault(key, None)
        self._blocks.append(block)
        self._rows += len(block["item"])

    def build(
        self,
        annotators: Sequence[str] | None = None,
        *,
        reuse: bool = False,
        order: IntArray | None = None,
    ) -> Annotations:
        """Concatenate the blocks (one numpy call per column) and sort rows by item (stable).

        Args:
            annotators: the annotator names (default: those given at construction).
            reuse: a single block's arrays become the set's own instead of being copied (the
                caller builds once and keeps no reference to the arrays it gave).
            order: the rows' stable sort by item, when the caller has computed it already.
        """
        blocks = self._blocks
        if reuse and len(blocks) == 1 and order is None:
            return self._adopt(blocks[0], annotators)
        cols: dict[str, Any] = {}
        for name, (dtype, _) in _ROW_COLUMNS.items():
            cols[name] = np.concatenate([b[name] for b in blocks] or [np.zeros(0, dtype)])
        empty = {
            "bbox": np.zeros((0, 4)),
            "span": np.zeros((0, 2)),
            "text": np.zeros(0, object),
            "source_ref": np.zeros(0, object),
            "points": np.zeros((0, 2)),
            "vis": np.zeros(0, np.int8),
            "rle": np.zeros(0, np.uint32),
        }
        for name, none in empty.items():
            cols[name] = np.concatenate([b[name] for b in blocks] or [none])
        for offsets, counts in (("point_offsets", "counts"), ("rle_offsets", "rle_counts")):
            per_row = np.concatenate([b[counts] for b in blocks] or [np.zeros(0, np.int64)])
            cols[offsets] = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int64)
        attrs = {}
        for key in self._attr_keys:
            parts = []
            for b in blocks:
                col = b["attributes"].get(key)
                parts.append(np.full(len(b["item"]), None, dtype=object) if col is None else col)
            attrs[key] = np.concatenate(parts)
        names = self._annotators if annotators is None else tuple(annotators)
        return _sorted_annotations(cols, attrs, names, order)

    def _adopt(self, block: dict[str, Any], annotators: Sequence[str] | None) -> Annotations:
        """:meth:`build` of one block without copying its columns."""
        cols = {name: block[name] for name in _ROW_COLUMNS}
        for name in ("bbox", "span", "text", "source_ref", "points", "vis", "rle"):
            cols[name] = block[name]
        for offsets, counts in (("point_offsets", "counts"), ("rle_offsets", "rle_counts")):
            out = np.zeros(len(block[counts]) + 1, np.int64)
            np.cumsum(block[counts], out=out[1:])
            cols[offsets] = out
        names = self._annotators if annotators is None else tuple(annotators)
        return _sorted_annotations(cols, dict(block["attributes"]), names)
