"""A job's plain shapes converted as whole columns (the bulk of a live CVAT pull).

A job's ``shapes`` list is read field by field with C-level calls (one ``itemgetter`` per shape,
``map``/``set`` over each field, numpy over the coordinates) instead of one Python call per
shape. Only shapes the per-shape fast path (:meth:`labelgate_cvat.payloads._Converter.fast_shape`)
would take without a word are taken here, with the values it would give them; every other shape
(a missing field, an unusual type, a bad coordinate, an attribute value not read before without
a problem) is left, by position, to the per-shape paths, which name the problem. So the result,
data errors and warnings are those of the per-shape paths.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import contains, itemgetter
from typing import Any

import numpy as np

from labelgate.io.inputs import INT64_MAX, INT64_MIN
from labelgate.model import MAX_COORDINATE, Annotations, Kind, Origin, SourceType
from labelgate.model.annotations import gather_ragged
from labelgate.model.columns import ColumnBlocks

FAST_KINDS = {
    "rectangle": Kind.RECTANGLE,
    "polygon": Kind.POLYGON,
    "polyline": Kind.POLYLINE,
    "points": Kind.POINTS,
}
MIN_COORDS = {"polygon": 6, "polyline": 4, "points": 2, "rectangle": 4, "ellipse": 4}
NUMBER_TYPES = {int, float}  # exact types: a JSON true/false is a bool, never a number

# Every field the API's LabeledShape always carries; a shape without one goes per shape.
_FIELD_NAMES = (
    "type",
    "frame",
    "label_id",
    "points",
    "id",
    "group",
    "z_order",
    "rotation",
    "occluded",
    "outside",
    "source",
    "attributes",
)
_FIELDS = itemgetter(*_FIELD_NAMES)
_SPEC_ID = itemgetter("spec_id")
_VALUE = itemgetter("value")
_MIN_BY_CODE = np.zeros(max(FAST_KINDS.values()) + 1, np.int64)
for _name, _code in FAST_KINDS.items():
    _MIN_BY_CODE[_code] = MIN_COORDS[_name]
_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class AttributeReader:
    """What the converter knows about attribute values (shared with its per-shape paths).

    Attributes:
        known: ``(spec_id, text) -> (label, name, value)`` for values read without a problem.
        parse: reads one ``(spec_id, text)`` silently and adds it to ``known`` when it has no
            problem.
        defaults: label position -> ``{name: default value}`` for every attribute it declares.
    """

    known: dict[tuple[int, str], tuple[int, str, Any]]
    parse: Callable[[int, str], None]
    defaults: Callable[[int], dict[str, Any]]


@dataclass(frozen=True)
class ShapeBatch:
    """The shapes taken as columns, and the positions of those left to the per-shape paths.

    Attributes:
        annotations: the taken rows, sorted by item (stable).
        seq: each row's arrival number (``base`` + its position in the list), in row order.
        rest: positions (ascending) of the shapes not taken.
    """

    annotations: Annotations
    seq: np.ndarray
    rest: list[int]


_KEEP: Any = object()


def _screen(
    col: Sequence[Any], types: set[type], ok: np.ndarray, neutral: Any, default: Any = _KEEP
) -> Sequence[Any]:
    """``col`` as the per-shape path reads it: ``value or default`` when a default is given,
    then values of other types replaced by ``neutral`` (their rows cleared in ``ok``). One
    C-level pass when every type fits (then a falsy value already equals the default, but for
    -0.0, which the caller fixes)."""
    if set(map(type, col)) <= types:
        return col
    if default is not _KEEP:
        col = [v or default for v in col]
    fits = [type(v) in types for v in col]
    ok &= np.array(fits, dtype=bool)
    return [v if f else neutral for v, f in zip(col, fits, strict=True)]


def _ints(col: Sequence[Any], lo: int, hi: int, ok: np.ndarray) -> np.ndarray:
    """Python ints as int64, rows outside [lo, hi] cleared in ``ok`` (exact comparisons)."""
    try:
        arr = np.fromiter(col, np.int64, len(col))
    except OverflowError:
        inside = [lo <= v <= hi for v in col]
        ok &= np.array(inside, dtype=bool)
        arr = np.fromiter((v if f else 0 for v, f in zip(col, inside, strict=True)), np.int64)
        return arr
    ok &= (arr >= lo) & (arr <= hi)
    return arr


def take_shapes(
    shapes: list[Any],
    *,
    base: int,
    frames: Mapping[int, Any],
    labels: Mapping[int, int],
    origins: dict[Any, Origin],
    attributes: AttributeReader,
    annotator: str,
) -> ShapeBatch:
    """Convert the plain shapes of a job's ``shapes`` list as columns.

    Args:
        shapes: the ``LabeledData.shapes`` list as parsed from JSON.
        base: the arrival number of ``shapes[0]``.
        frames: the job's frame numbers (keys).
        labels: CVAT label id -> schema position.
        origins: ``source`` text -> :class:`Origin` cache (shared with the per-shape path).
        attributes: the converter's attribute knowledge.
        annotator: the name of the set's one annotator.

    Returns:
        The :class:`ShapeBatch`.
    """
    cand: Sequence[int]
    if set(map(type, shapes)) <= {dict}:
        cand, picked = range(len(shapes)), shapes
    else:
        cand = [i for i, s in enumerate(shapes) if type(s) is dict]
        picked = [shapes[i] for i in cand]
    try:  # one C-level call per shape, then one tuple per field (transposed in C)
        cols: list[Any] = list(zip(*map(_FIELDS, picked), strict=True))
    except KeyError:  # some lack a field: keep the ones that have them all
        keep = [all(k in s for k in _FIELD_NAMES) for s in picked]
        cand = [i for i, k in zip(cand, keep, strict=True) if k]
        picked = [s for s, k in zip(picked, keep, strict=True) if k]
        cols = list(zip(*map(_FIELDS, picked), strict=True))
    m = len(picked)
    if m == 0:
        return _empty(annotator, list(range(len(shapes))))
    ok = np.ones(m, bool)
    if any(map(contains, picked, repeat("error"))):  # the XML reader's note
        ok &= ~np.fromiter(map(contains, picked, repeat("error")), bool, m)
    try:  # any other type, or an unknown name, is -1 (an unhashable one raises)
        codes = np.fromiter(map(FAST_KINDS.get, cols[0], repeat(-1)), np.int64, m)
    except TypeError:
        codes = np.fromiter(
            map(FAST_KINDS.get, _screen(cols[0], {str}, ok, ""), repeat(-1)), np.int64, m
        )
    ok &= codes >= 0
    # A frame of the job maps to itself, any other value to -1 (frame numbers are >= 0).
    item = _lookup(_screen(cols[1], {int}, ok, -1), dict(zip(frames, frames, strict=True)))
    ok &= item >= 0
    label = _lookup(_screen(cols[2], {int}, ok, -1), labels)
    ok &= label >= 0
    coords, offsets = _points(cols[3], codes, ok)
    ids = cols[4]
    if not set(map(type, ids)) <= {int}:  # an absent id (null) is -1
        ids = _screen(ids, {int, type(None)}, ok, None)
        ids = [-1 if v is None else v for v in ids]
    source_id = _ints(ids, INT64_MIN, INT64_MAX, ok)
    group = _ints(_screen(cols[5], {int}, ok, 0, default=0), 0, INT64_MAX, ok)
    z_col = _screen(cols[6], {int}, ok, 0, default=0)
    z_order = _ints(z_col, -(2**31), 2**31 - 1, ok)
    rotation = _rotation(cols[7], ok)
    occluded = np.fromiter(map(bool, cols[8]), bool, m)
    if any(cols[9]):  # an outside shape is left out (by the per-shape path)
        ok &= ~np.fromiter(map(bool, cols[9]), bool, m)
    origin = _origins(cols[10], origins, ok)
    attr_rows = _screen(cols[11], {list}, ok, [], default=[])
    given = _attribute_values(attr_rows, label, ok, attributes)
    taken = np.flatnonzero(ok)
    pos = np.arange(len(shapes)) if isinstance(cand, range) else np.asarray(cand, np.int64)
    if len(taken) == len(shapes):
        rest: list[int] = []
    else:
        left = np.ones(len(shapes), bool)
        left[pos[taken]] = False
        rest = np.flatnonzero(left).tolist()
    if not len(taken):
        return _empty(annotator, rest)
    order = taken[_stable_order(item[taken])]
    rect = codes[order] == Kind.RECTANGLE
    starts = offsets[order]
    counts = np.where(rect, 0, (offsets[order + 1] - starts) // 2)
    bbox = np.empty((len(order), 4))
    if rect.any():  # a rectangle's first four values are its box; any more are ignored
        bbox[rect] = coords[starts[rect, None] + np.arange(4)]
    shaped = order[~rect]
    _off, flat = gather_ragged(offsets, coords, shaped)
    pts = flat.reshape(-1, 2)
    if len(shaped):
        run = np.zeros(len(shaped) + 1, np.int64)
        np.cumsum(counts[~rect], out=run[1:])
        bbox[~rect] = np.column_stack(
            [
                np.minimum.reduceat(pts[:, 0], run[:-1]),
                np.minimum.reduceat(pts[:, 1], run[:-1]),
                np.maximum.reduceat(pts[:, 0], run[:-1]),
                np.maximum.reduceat(pts[:, 1], run[:-1]),
            ]
        )
    seq = base + pos[order]
    attrs = _attribute_columns(order, label, given, seq, attributes)
    blocks = ColumnBlocks([annotator])
    blocks.extend(
        item=item[order],
        kind=codes[order],
        bbox=bbox,
        point_counts=counts,
        points=pts,
        attributes=attrs,
        label=label[order],
        rotation=rotation[order],
        z_order=z_order[order],
        group=group[order],
        occluded=occluded[order],
        source_id=source_id[order],
        source_type=int(SourceType.SHAPE),
        origin=origin[order],
        annotator=0,
    )
    return ShapeBatch(blocks.build(reuse=True), seq, rest)


def _lookup(col: Sequence[Any], table: Mapping[int, int]) -> np.ndarray:
    """``table.get(v, -1)`` for each of a column of ints (values already screened to ints)."""
    try:
        keys = np.fromiter(col, np.int64, len(col))
        known = np.fromiter(table, np.int64, len(table))
    except OverflowError:  # a value or key beyond int64: one dict look-up per value
        return np.fromiter(map(table.get, col, repeat(-1)), np.int64, len(col))
    if not len(known):
        return np.full(len(col), -1, np.int64)
    values = np.fromiter(table.values(), np.int64, len(table))
    if known.min() >= 0 and known.max() <= 4 * len(col) + 4096:  # small keys: one direct table
        direct = np.full(int(known.max()) + 1, -1, np.int64)
        direct[known] = values
        inside = (keys >= 0) & (keys < len(direct))
        return np.where(inside, direct[np.where(inside, keys, 0)], -1)
    # Sorted known keys: each value's place, then whether it is there (one numpy pass each).
    by_key = np.argsort(known)
    known, values = known[by_key], values[by_key]
    at = np.minimum(np.searchsorted(known, keys), len(known) - 1)
    return np.where(known[at] == keys, values[at], -1)


def _stable_order(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")``; as int16 (radix sort, ~10x faster) when it fits."""
    if len(keys) and keys.min() >= 0 and keys.max() < 2**15:
        return np.argsort(keys.astype(np.int16), kind="stable")
    return np.argsort(keys, kind="stable")


def _empty(annotator: str, rest: list[int]) -> ShapeBatch:
    return ShapeBatch(ColumnBlocks([annotator]).build(), np.zeros(0, np.int64), rest)


def _points(col: Sequence[Any], codes: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's flat coordinates checked as the per-shape path checks them: a list of JSON
    numbers, an even count of at least the kind's minimum, all finite within ±2**31 px, a
    rectangle's x2 >= x1 and y2 >= y1.

    Returns:
        (every row's values as float64, (n+1,) row offsets into them).
    """
    col = _screen(col, {list}, ok, [])
    lens = np.fromiter(map(len, col), np.int64, len(col))
    if not set(map(type, chain.from_iterable(col))) <= NUMBER_TYPES:
        fits = [set(map(type, p)) <= NUMBER_TYPES for p in col]
        ok &= np.array(fits, dtype=bool)
        col = [p if f else [] for p, f in zip(col, fits, strict=True)]
        lens = np.fromiter(map(len, col), np.int64, len(col))
    try:  # straight from the lists (no flat list of every value)
        coords = np.fromiter(chain.from_iterable(col), np.float64, int(lens.sum()))
    except OverflowError:  # an int beyond float range: only its own row goes per shape
        fits = [all(abs(v) <= MAX_COORDINATE for v in p) for p in col]
        ok &= np.array(fits, dtype=bool)
        col = [p if f else [] for p, f in zip(col, fits, strict=True)]
        coords = np.array(list(chain.from_iterable(col)), dtype=np.float64)
        lens = np.fromiter(map(len, col), np.int64, len(col))
    offsets = np.zeros(len(col) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    need = np.where(codes >= 0, _MIN_BY_CODE[np.maximum(codes, 0)], 0)
    ok &= (lens % 2 == 0) & (lens >= need)
    bad_value = ~(np.abs(coords) <= MAX_COORDINATE)  # NaN compares False
    if bad_value.any():
        ok[np.repeat(np.arange(len(col)), lens)[bad_value]] = False
    rect = np.flatnonzero(ok & (codes == Kind.RECTANGLE))
    if len(rect):
        at = offsets[rect]
        flipped = (coords[at + 2] < coords[at]) | (coords[at + 3] < coords[at + 1])
        ok[rect[flipped]] = False
    return coords, offsets


def _rotation(col: Sequence[Any], ok: np.ndarray) -> np.ndarray:
    """``rotation or 0.0`` as float64; a row whose value is not a number within ±2**63 is
    cleared (compared as the per-shape path compares it, exactly for ints)."""
    if not set(map(type, col)) <= {float}:
        col = [v or 0.0 for v in col]
        fits = [type(v) in NUMBER_TYPES and -(2.0**63) <= v <= 2.0**63 for v in col]
        ok &= np.array(fits, dtype=bool)
        col = [float(v) if f else 0.0 for v, f in zip(col, fits, strict=True)]
    rot = np.fromiter(col, np.float64, len(col))
    ok &= (rot >= -(2.0**63)) & (rot <= 2.0**63)  # also refuses NaN and infinities
    rot[rot == 0.0] = 0.0  # ``-0.0 or 0.0`` is 0.0
    return rot


def _origins(col: Sequence[Any], cache: dict[Any, Origin], ok: np.ndarray) -> np.ndarray:
    """Each row's :class:`Origin` (absent or "" is manual); a non-text source is cleared."""
    col = _screen(col, {str, type(None)}, ok, None)
    lookup = {}
    for text in set(col):
        if text is None or text == "":
            lookup[text] = Origin.MANUAL
        else:
            found = cache.get(text)
            if found is None:
                found = cache[text] = Origin.parse(text)
            lookup[text] = found
    if len(lookup) == 1:  # one source for all (the common case)
        return np.full(len(col), next(iter(lookup.values())), np.int8)
    return np.fromiter(map(lookup.__getitem__, col), np.int8, len(col))


@dataclass(frozen=True)
class _Given:
    """The attribute entries of every row: each entry's row and its distinct-value code."""

    row: np.ndarray  # (E,) row of each entry, in list order
    code: np.ndarray  # (E,) index into ``values``
    values: list[tuple[int, str, Any]]  # (label, name, value) of each distinct entry


def _attribute_values(
    rows: Sequence[Any], label: np.ndarray, ok: np.ndarray, reader: AttributeReader
) -> _Given:
    """Each row's given attribute values, read from ``reader.known``.

    A row is cleared when one of its entries is not an object with an int ``spec_id`` and a
    text ``value``, or is a value not read before without a problem (tried here silently
    first), or belongs to another label: the per-shape path reads, and reports, those.
    """
    flat = list(chain.from_iterable(rows))
    fields = _entry_fields(flat)
    if fields is None:
        fits = [all(_plain_entry(a) for a in r) for r in rows]
        ok &= np.array(fits, dtype=bool)
        rows = [r if f else [] for r, f in zip(rows, fits, strict=True)]
        fields = _entry_fields(list(chain.from_iterable(rows)))
        assert fields is not None  # every entry left is plain
    sids, texts = fields
    distinct, code = _pair_codes(sids, texts)  # few distinct values: read each once
    known = reader.known
    for sid, text in distinct:
        if (sid, text) not in known:
            reader.parse(sid, text)
    values = [known.get(p, (-1, "", None)) for p in distinct]
    owner = np.array([v[0] for v in values] or [-1], np.int64)[code] if len(code) else code
    lens = np.fromiter(map(len, rows), np.int64, len(rows))
    row_of = np.repeat(np.arange(len(rows)), lens)
    ok[row_of[owner != label[row_of]]] = False
    return _Given(row_of, code, values)


def _entry_fields(flat: list[Any]) -> tuple[list[int], list[str]] | None:
    """The ``spec_id`` and ``value`` of every entry, or None unless each entry is an object
    with an int ``spec_id`` and a text ``value`` (exact types: a bool is no id)."""
    if not set(map(type, flat)) <= {dict}:
        return None
    try:
        sids, texts = list(map(_SPEC_ID, flat)), list(map(_VALUE, flat))
    except KeyError:
        return None
    if set(map(type, sids)) <= {int} and set(map(type, texts)) <= {str}:
        return sids, texts
    return None


def _pair_codes(sids: list[int], texts: list[str]) -> tuple[list[tuple[int, str]], np.ndarray]:
    """The distinct ``(spec_id, value)`` pairs and each entry's index into them."""
    index = {t: i for i, t in enumerate(dict.fromkeys(texts))}
    text_code = np.fromiter(map(index.__getitem__, texts), np.int64, len(texts))
    try:
        sid = np.fromiter(sids, np.int64, len(sids))
    except OverflowError:  # an id beyond int64 (known to no label): pair by pair
        pairs = list(zip(sids, texts, strict=True))
        code_of = {p: i for i, p in enumerate(dict.fromkeys(pairs))}
        return list(code_of), np.fromiter(map(code_of.__getitem__, pairs), np.int64, len(pairs))
    unique_sid, sid_code = np.unique(sid, return_inverse=True)
    pair_key, code = np.unique(sid_code * len(index) + text_code, return_inverse=True)
    by_code = list(index)
    distinct = [
        (int(unique_sid[k // len(index)]), by_code[k % len(index)]) for k in pair_key.tolist()
    ]
    return distinct, code.reshape(-1)


def _plain_entry(a: Any) -> bool:
    return type(a) is dict and type(a.get("spec_id")) is int and type(a.get("value")) is str


def _attribute_columns(
    order: np.ndarray,
    label: np.ndarray,
    given: _Given,
    seq: np.ndarray,
    reader: AttributeReader,
) -> dict[str, np.ndarray]:
    """Attribute columns of the taken rows (``order``), named in order of first use: every
    attribute of a row's label, its default unless given (a later entry of one name wins)."""
    n = len(order)
    labels = label[order]
    columns: dict[str, np.ndarray] = {}
    first_use: dict[str, int] = {}
    for lab in np.unique(labels).tolist():
        rows = np.flatnonzero(labels == lab)
        for key, value in reader.defaults(lab).items():
            col = columns.get(key)
            if col is None:
                col = columns[key] = np.full(n, None, dtype=object)
            _fill(col, rows, value)
            first = int(seq[rows].min())
            first_use[key] = min(first, first_use.get(key, first))
    at = np.full(len(label), -1, np.int64)
    at[order] = np.arange(n)
    entry_row = at[given.row]
    taken = entry_row >= 0
    entry_row, code = entry_row[taken], given.code[taken]
    names = sorted({given.values[c][1] for c in np.unique(code).tolist()})
    name_code = np.array([names.index(v[1]) if v[1] in names else -1 for v in given.values])
    for j, name in enumerate(names):
        mine = np.flatnonzero(name_code[code] == j)
        # Entries in list order: when a row names one attribute twice, its last entry wins
        # (rows come in list order, so only a repeat within a row keeps them from rising).
        last = mine
        if np.any(np.diff(given.row[taken][mine]) <= 0):
            last = mine[::-1][np.unique(entry_row[mine][::-1], return_index=True)[1]]
        for c in np.unique(code[last]).tolist():
            _fill(columns[name], entry_row[last[code[last] == c]], given.values[c][2])
    ordered = sorted(first_use, key=first_use.__getitem__)
    return {k: columns[k] for k in ordered}


def _fill(col: np.ndarray, rows: np.ndarray, value: Any) -> None:
    """``col[rows] = value`` for any value (numpy would spread a sequence over the rows)."""
    if isinstance(value, _SCALARS):
        col[rows] = value
    else:
        for r in rows.tolist():
            col[r] = value
