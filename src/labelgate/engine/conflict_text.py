"""Conflicts straight from their columns to JSON text, without building one dict per conflict.

Each conflict's text is exactly ``json.dumps`` of the dict :func:`~labelgate.engine.compare.
conflicts_to_json` builds (same keys, order, separators and number forms): every column is
turned into strings at once (numbers through one ``json.dumps`` of the column, names through a
small lookup table) and one ``"".join`` per conflict glues the pieces.
"""

from __future__ import annotations

import json
from itertools import repeat
from typing import Any

import numpy as np

from labelgate.arrays import BoolArray, FloatArray, IntArray, ObjectArray
from labelgate.engine.conflicts import CONFLICT_TYPES, Conflicts
from labelgate.model import Annotations, Items


def _numbers(values: list[Any]) -> list[str]:
    """Each value's JSON text, through one C-encoder call (numbers and None only)."""
    if not values:
        return []
    return json.dumps(values)[1:-1].split(", ")


def _rows4(values: FloatArray) -> list[str]:
    """Each (4,) row's JSON text without its brackets (``"x1, y1, x2, y2"``)."""
    if not len(values):
        return []
    return json.dumps(values.tolist())[2:-2].split("], [")


def _id_pieces(
    ann: Annotations, rows: IntArray, present: BoolArray, job: Any
) -> tuple[ObjectArray, ObjectArray]:
    """Per row, the annotation id's ``obj_id`` text and the rest of the id object (from
    ``, "job_id"`` to the closing brace); empty strings where the row is absent."""
    from labelgate.engine.compare import _SHAPE_NAME, _SOURCE_TYPE

    n = len(rows)
    obj = np.full(n, "", dtype=object)
    tail = np.full(n, "", dtype=object)
    if not len(ann) or not present.any():
        return obj, tail
    safe = rows[present]
    # As an object array: numpy would turn a list of str into a fixed-width str array first.
    obj[present] = np.array(_numbers(ann.source_id[safe].tolist()), dtype=object)
    # The (source type, shape kind) pair decides the rest: one text per distinct pair.
    code = ann.source_type[safe].astype(np.int64) * 256 + ann.kind[safe].astype(np.int64)
    uniq, inverse = np.unique(code, return_inverse=True)
    job_text = json.dumps(job)
    table = np.array(
        [
            f', "job_id": {job_text}, "type": {json.dumps(_SOURCE_TYPE.get(int(u) // 256))}, '
            f'"shape_type": {json.dumps(_SHAPE_NAME.get(int(u) % 256))}}}'
            for u in uniq.tolist()
        ],
        dtype=object,
    )
    tail[present] = table[inverse.ravel()]
    return obj, tail


def _label_pieces(ann: Annotations, rows: IntArray, labels: list[str]) -> ObjectArray:
    """Per row, the JSON text of its label name (``null`` for label -1)."""
    table: ObjectArray = np.array([json.dumps(x) for x in [*labels, None]], dtype=object)
    if not len(ann):
        return np.full(len(rows), "null", dtype=object)
    pieces: ObjectArray = table[ann.label[np.maximum(rows, 0)]]
    return pieces


def conflict_texts(
    gt: Annotations,
    ds: Annotations,
    c: Conflicts,
    labels: list[str],
    job: dict[str, Any],
    extras: dict[int, dict[str, Any]],
) -> list[str]:
    """Each conflict's JSON text, ``json.dumps`` of its :func:`conflicts_to_json` dict.

    Args:
        gt, ds: the compared annotations (rows of ``c`` index them).
        c: the conflicts as columns.
        labels: label names by label index.
        job: ``{"gt": job id, "ds": job id}``.
        extras: per conflict position, the keys that follow ``similarity``
            (``attribute_names``, ``geometry``) in order.

    Returns:
        One string per conflict, in ``c``'s order.
    """
    n = len(c)
    if n == 0:
        return []
    has_d = (c.ds_row >= 0) if len(ds) else np.zeros(n, bool)
    has_g = (c.gt_row >= 0) if len(gt) else np.zeros(n, bool)
    d_obj, d_tail = _id_pieces(ds, c.ds_row, has_d, job["ds"])
    g_obj, g_tail = _id_pieces(gt, c.gt_row, has_g, job["gt"])
    d_lab = _label_pieces(ds, c.ds_row, labels)
    g_lab = _label_pieces(gt, c.gt_row, labels)
    both = has_d & has_g
    either = has_d | has_g
    # The first listed object is the DS one when present, else the GT one; the second is the
    # GT one when both are present.
    open_first = np.where(either, '{"obj_id": ', "").astype(object)
    first_obj = np.where(has_d, d_obj, g_obj)
    first_tail = np.where(has_d, d_tail, g_tail)
    first_lab = np.where(has_d, d_lab, np.where(has_g, g_lab, ""))
    open_second = np.where(both, ', {"obj_id": ', "").astype(object)
    second_obj = np.where(both, g_obj, "")
    second_tail = np.where(both, g_tail, "")
    second_lab = np.where(both, ", " + g_lab, "")
    empty = np.zeros((n, 4))
    pos = np.where(
        has_d[:, None],
        ds.bbox[np.maximum(c.ds_row, 0)] if len(ds) else empty,
        gt.bbox[np.maximum(c.gt_row, 0)] if len(gt) else empty,
    )
    sim = c.similarity.astype(object)
    sim[np.isnan(c.similarity)] = None
    head = np.array(
        [
            f'{{"type": {json.dumps(t)}, "severity": {json.dumps(c.severity(t))}, "frame_id": '
            for t in CONFLICT_TYPES
        ],
        dtype=object,
    )[c.type.astype(np.int64)]
    close = ["}"] * n
    for k, fields in extras.items():
        close[k] = "".join(f", {json.dumps(key)}: {json.dumps(v)}" for key, v in fields.items())
        close[k] += "}"
    return list(
        map(
            "".join,
            zip(
                head.tolist(),
                _numbers(c.frame.tolist()),
                repeat(', "annotation_ids": ['),
                open_first.tolist(),
                first_obj.tolist(),
                first_tail.tolist(),
                open_second.tolist(),
                second_obj.tolist(),
                second_tail.tolist(),
                repeat('], "label_names": ['),
                first_lab.tolist(),
                second_lab.tolist(),
                repeat('], "position": ['),
                _rows4(pos),
                repeat('], "similarity": '),
                _numbers(sim.tolist()),
                close,
                strict=False,
            ),
        )
    )


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
