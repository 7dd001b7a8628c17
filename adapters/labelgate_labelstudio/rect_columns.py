"""One Label Studio annotation of plain unrotated rectangles, converted as columns.

Plain means: every result is an object of type ``rectanglelabels`` with its own text id, from
one ``RectangleLabels`` control, holding ``x``/``y``/``width``/``height`` numbers, no rotation,
exactly one label, integer ``original_width``/``original_height`` above 0, no ``score`` and (for
an annotator's results) no ``origin: prediction``. Such a result list is converted with C-level
``map`` calls and numpy, with the same float operations as
:func:`labelgate_labelstudio.json_export.rectangle_to_pixels` at rotation 0, so the rows are
identical; any other list goes through the per-result path, which owns every message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from labelgate.model import MAX_COORDINATE, Kind

_NUMBERS = {int, float}
_first = itemgetter(0)


@dataclass(frozen=True)
class RectBlock:
    """Columns of one annotation's rectangles (in result order) and the image size they set."""

    control: str
    label: list[str]
    ref: np.ndarray
    bbox: np.ndarray
    size: tuple[int, int]


def _all(values: Sequence[Any], types: set[type]) -> bool:
    return set(map(type, values)) <= types


def plain_rectangles(results: Sequence[Any], manual: bool) -> RectBlock | None:
    """The results as a :class:`RectBlock`, or None when any result is not plain."""
    n = len(results)
    if not n or not _all(results, {dict}):
        return None
    get = dict.get
    if set(map(get, results, repeat("type"))) != {"rectanglelabels"}:
        return None
    controls = set(map(get, results, repeat("from_name")))
    ids = list(map(get, results, repeat("id")))
    if len(controls) != 1 or not _all(ids, {str}) or len(set(ids)) != n:
        return None
    if set(map(get, results, repeat("score"))) != {None}:
        return None
    if manual and "prediction" in set(map(get, results, repeat("origin"))):
        return None
    widths: list[Any] = list(map(get, results, repeat("original_width")))
    heights: list[Any] = list(map(get, results, repeat("original_height")))
    if not _all(widths, {int}) or not _all(heights, {int}):
        return None
    w = np.array(widths, np.float64)
    h = np.array(heights, np.float64)
    if not ((w > 0).all() and (h > 0).all() and w.max() < 2**31 and h.max() < 2**31):
        return None
    values: list[Any] = list(map(get, results, repeat("value")))
    if not _all(values, {dict}):
        return None
    if not set(map(get, values, repeat("rotation"))) <= {None, 0} or not _all(
        list(map(get, values, repeat("rotation"))), {type(None), int, float}
    ):
        return None
    coords = []
    for key in ("x", "y", "width", "height"):
        col = list(map(get, values, repeat(key)))
        if not _all(col, _NUMBERS):
            return None
        coords.append(np.array(col, np.float64))
    chosen: list[Any] = list(map(get, values, repeat("rectanglelabels")))
    if not _all(chosen, {list}) or set(map(len, chosen)) != {1}:
        return None
    labels = list(map(_first, chosen))
    if not _all(labels, {str}):
        return None
    px, py, pw, ph = coords
    # rectangle_to_pixels at rotation 0, operation for operation (cos 0 = 1, sin 0 = 0).
    x, y = px * w / 100, py * h / 100
    bw, bh = pw * w / 100, ph * h / 100
    if not ((bw >= 0).all() and (bh >= 0).all()):
        return None
    cx = x + (bw / 2) * 1.0 - (bh / 2) * 0.0
    cy = y + (bw / 2) * 0.0 + (bh / 2) * 1.0
    bbox = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    if not (np.abs(bbox) <= MAX_COORDINATE).all():  # False for NaN
        return None
    if ((bbox[:, 2] < bbox[:, 0]) | (bbox[:, 3] < bbox[:, 1])).any():
        return None
    ref = np.empty(n, dtype=object)
    ref[:] = ids
    return RectBlock(
        control=str(next(iter(controls))),
        label=labels,
        ref=ref,
        bbox=bbox,
        size=(widths[-1], heights[-1]),
    )


def block_columns(
    block: RectBlock,
    task_id: int,
    label_of: Callable[[str], int],
    *,
    source_id: int,
    annotator: int,
    origin: int,
    control: int,
    score: float,
) -> dict[str, Any]:
    """Keyword columns of ``block`` for :meth:`AnnotationsBuilder.extend`.

    Raises:
        ValidationError: from ``label_of``, for a label the control does not have.
    """
    n = len(block.label)
    table = {name: label_of(name) for name in set(block.label)}
    return {
        "item": np.full(n, task_id, np.int64),
        "kind": int(Kind.RECTANGLE),
        "bbox": block.bbox,
        "label": np.fromiter(map(table.__getitem__, block.label), np.int64, n),
        "source_id": source_id,
        "source_ref": block.ref,
        "annotator": annotator,
        "origin": origin,
        "control": control,
        "score": score,
    }
