"""COCO annotations straight into columns: the plain boxes and single polygons of a file.

An annotation is plain when it is an object whose ``id``, ``image_id`` and ``category_id`` are
integers naming a known image and category, with no ``score`` and no ``attributes``, and either
no segmentation (a box: four finite numbers with w, h >= 0) or one polygon (an even number, at
least six, of finite numbers). Plain annotations are converted by C-level ``map`` calls and
numpy; every other one is left to the per-annotation path (:func:`labelgate.io.coco.read_coco`),
which owns every error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain, compress, repeat
from typing import Any

import numpy as np

from labelgate.arrays import BoolArray, FloatArray, IntArray, IntegerArray
from labelgate.model import MAX_COORDINATE, Kind

_NUMBER = {int, float}


@dataclass(frozen=True)
class PlainRows:
    """The plain annotations of a file, as columns over the rows in ``index`` (file order)."""

    index: IntArray  # position of each plain annotation in the file's list
    item: IntArray
    kind: IntegerArray
    label: IntArray
    source_id: IntArray
    bbox: FloatArray
    point_counts: IntArray
    points: FloatArray

    def block(self, lo: int, hi: int) -> dict[str, Any]:
        """Keyword columns of rows ``lo:hi`` for :meth:`AnnotationsBuilder.extend`."""
        counts = self.point_counts
        starts = np.concatenate([[0], np.cumsum(counts)])
        return {
            "item": self.item[lo:hi],
            "kind": self.kind[lo:hi],
            "label": self.label[lo:hi],
            "source_id": self.source_id[lo:hi],
            "bbox": self.bbox[lo:hi],
            "point_counts": counts[lo:hi],
            "points": self.points[starts[lo] : starts[hi]],
        }


def _ints(values: list[Any], ok: BoolArray) -> IntArray:
    """Integer values as int64 where ``ok`` can stay true; clears ``ok`` elsewhere."""
    is_int = np.fromiter(map(int.__instancecheck__, values), bool, len(values))
    is_int &= ~np.fromiter(map(bool.__instancecheck__, values), bool, len(values))
    ok &= is_int
    out = np.zeros(len(values), np.int64)
    if not ok.any():
        return out
    picked = list(compress(values, ok.tolist()))
    try:
        out[ok] = np.array(picked, dtype=np.int64)
    except OverflowError:
        big = np.fromiter((abs(v) >= 2**63 for v in picked), bool, len(picked))
        sel = np.flatnonzero(ok)
        ok[sel[big]] = False
        out[ok] = np.array(list(compress(values, ok.tolist())), dtype=np.int64)
    return out


def plain_rows(
    anns: list[Any], image_ids: IntegerArray, label_of: Mapping[int, int]
) -> PlainRows | None:
    """The plain annotations of ``anns`` as columns (None when none is plain)."""
    n = len(anns)
    ok = np.fromiter(map(dict.__instancecheck__, anns), bool, n)
    dicts = [a if good else {} for a, good in zip(anns, ok.tolist(), strict=True)]
    for key in ("score",):
        ok &= ~np.fromiter(map(dict.__contains__, dicts, repeat(key)), bool, n)
    ok &= ~np.fromiter(map(bool, map(dict.get, dicts, repeat("attributes"))), bool, n)
    image = _ints(list(map(dict.get, dicts, repeat("image_id"))), ok)
    ok &= np.isin(image, image_ids)
    category = _ints(list(map(dict.get, dicts, repeat("category_id"))), ok)
    known = np.fromiter(label_of, np.int64, len(label_of))
    ok &= np.isin(category, known)
    source_id = _ints(list(map(dict.get, dicts, repeat("id"), repeat(-1))), ok)
    segs: list[Any] = list(map(dict.get, dicts, repeat("segmentation")))
    # A box: no segmentation (absent, None, empty list); a polygon: a list of one list.
    seg_list = np.fromiter(map(list.__instancecheck__, segs), bool, n)
    seg_dict = np.fromiter(map(dict.__instancecheck__, segs), bool, n)
    seg_len = np.zeros(n, np.int64)
    seg_len[seg_list] = np.fromiter(map(len, compress(segs, seg_list.tolist())), np.int64)
    is_box = ~seg_dict & (~seg_list | (seg_len == 0))
    is_poly = seg_list & (seg_len == 1)
    ok &= is_box | is_poly
    bbox = np.zeros((n, 4))
    boxes = _numbers([d.get("bbox") for d in compress(dicts, (ok & is_box).tolist())], 4)
    sel = np.flatnonzero(ok & is_box)
    if boxes is not None:
        good, flat = boxes
        x, y, w, h = flat.reshape(-1, 4).T if len(flat) else np.zeros((4, 0))
        xyxy = np.stack([x, y, x + w, y + h], axis=1) if len(flat) else np.zeros((0, 4))
        inside = (np.abs(xyxy) <= MAX_COORDINATE).all(axis=1) & (w >= 0) & (h >= 0)
        rows = sel[good]
        bbox[rows] = xyxy
        ok[rows[~inside]] = False
        ok[sel[~good]] = False
    else:
        ok[sel] = False
    psel = np.flatnonzero(ok & is_poly)
    parts = [segs[i][0] for i in psel]
    counts = np.zeros(n, np.int64)
    flat_pts = np.zeros(0)
    if len(psel):
        lens = np.fromiter(map(len, map(_as_list, parts)), np.int64, len(parts))
        numeric = _numbers(parts, None)
        if numeric is None:
            ok[psel] = False
        else:
            good, values = numeric
            offsets = np.concatenate([[0], np.cumsum(lens[good])])
            finite = np.concatenate([[0], np.cumsum(np.abs(values) <= MAX_COORDINATE)])
            usable = (lens[good] % 2 == 0) & (lens[good] >= 6)
            usable &= finite[offsets[1:]] - finite[offsets[:-1]] == lens[good]
            keep = np.zeros(len(psel), bool)
            keep[np.flatnonzero(good)[usable]] = True
            ok[psel[~keep]] = False
            mask = np.repeat(usable, lens[good])
            flat_pts = values[mask]
            counts[psel[keep]] = lens[keep] // 2
            xy = flat_pts.reshape(-1, 2)
            if len(xy):
                starts = np.concatenate([[0], np.cumsum(counts[psel[keep]])[:-1]])
                bbox[psel[keep], 0] = np.minimum.reduceat(xy[:, 0], starts)
                bbox[psel[keep], 1] = np.minimum.reduceat(xy[:, 1], starts)
                bbox[psel[keep], 2] = np.maximum.reduceat(xy[:, 0], starts)
                bbox[psel[keep], 3] = np.maximum.reduceat(xy[:, 1], starts)
    index = np.flatnonzero(ok)
    if not len(index):
        return None
    return PlainRows(
        index=index,
        item=image[index],
        kind=np.where(is_poly[index], int(Kind.POLYGON), int(Kind.RECTANGLE)).astype(np.int8),
        label=np.fromiter(map(label_of.__getitem__, category[index].tolist()), np.int64),
        source_id=source_id[index],
        bbox=bbox[index],
        point_counts=counts[index],
        points=flat_pts.reshape(-1, 2),
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _numbers(lists: list[Any], width: int | None) -> tuple[BoolArray, FloatArray] | None:
    """(rows whose value is a list of int/float of the right width, their values flattened).

    None when no row qualifies. NaN/inf stay in the values for the caller's checks.
    """
    is_list = np.fromiter(map(list.__instancecheck__, lists), bool, len(lists))
    good = is_list.copy()
    if width is not None:
        lens = np.zeros(len(lists), np.int64)
        lens[is_list] = np.fromiter(map(len, compress(lists, is_list.tolist())), np.int64)
        good &= lens == width
    rows = list(compress(lists, good.tolist()))
    types = set(map(type, chain.from_iterable(rows)))
    if not types <= _NUMBER:
        # Some row holds text, bools or nested lists: check them one by one.
        for j, i in enumerate(np.flatnonzero(good)):
            if not set(map(type, rows[j])) <= _NUMBER:
                good[i] = False
        rows = list(compress(lists, good.tolist()))
    if not good.any():
        return None
    try:
        values = np.fromiter(map(float, chain.from_iterable(rows)), np.float64)
    except OverflowError:  # an integer beyond float range: the per-annotation path reports it
        return None
    return good, values
