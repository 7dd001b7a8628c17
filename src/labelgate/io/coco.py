"""COCO instances JSON reader (boxes, polygons, RLE masks, optional scores).

One COCO annotation becomes one row: a mask for RLE segmentations, a polygon for a single-part
polygon segmentation, several polygon rows sharing a group for multi-part polygons (CVAT merges a
group of one label into one instance, so scoring treats them as one object), and a rectangle when
there is no segmentation. Bad annotations are skipped with a :class:`DataWarning` and listed in
``data_errors``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from labelgate.arrays import FloatArray, RunArray
from labelgate.errors import DataWarning, FormatError, ValidationError
from labelgate.io.coco_columns import plain_rows
from labelgate.io.inputs import read_json, to_float, to_int
from labelgate.model import (
    AnnotationsBuilder,
    AnnotationSet,
    Items,
    Kind,
    Label,
    LabelSchema,
    Origin,
)

_REQUIRED = ("images", "annotations", "categories")


def looks_like_coco(path: Path) -> bool:
    """True when ``path`` is a JSON object with COCO's images/annotations/categories keys."""
    if path.suffix.lower() != ".json":
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 16).decode("utf-8", errors="ignore")
    except OSError:
        return False
    # COCO is a JSON object with "images" first in practice; Label Studio exports are lists and
    # labelgate's own files carry a "format" marker, so this cannot mistake either.
    return (
        head.lstrip().startswith("{")
        and '"images"' in head
        and ('"categories"' in head or '"annotations"' in head)
        and '"labelgate.annotation_set/1"' not in head
    )


def decode_compressed_counts(text: str) -> list[int]:
    """Decode COCO's compressed RLE string into run lengths.

    Raises:
        ValidationError: the string is not valid compressed RLE.
    """
    counts: list[int] = []
    pos = 0
    data = text.encode("ascii")
    while pos < len(data):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(data):
                raise ValidationError("compressed RLE string ends inside a number")
            c = data[pos] - 48
            if c < 0 or c > 63:
                raise ValidationError(f"compressed RLE has an invalid character {chr(data[pos])!r}")
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            pos += 1
            shift += 1
            if not more and (c & 0x10):
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    if any(c < 0 for c in counts):
        raise ValidationError("compressed RLE decodes to a negative run length")
    return counts


def _rle_counts(seg: Mapping[str, Any], height: int, width: int) -> RunArray:
    size = seg.get("size")
    if (
        not isinstance(size, list)
        or len(size) != 2
        or [to_int(v, "segmentation.size") for v in size] != [height, width]
    ):
        raise ValidationError(
            f"RLE size {size!r} does not match the image size [{height}, {width}]"
        )
    raw = seg.get("counts")
    if isinstance(raw, str):
        counts = decode_compressed_counts(raw)
    elif isinstance(raw, list):
        counts = [to_int(c, "segmentation.counts", lo=0, hi=height * width) for c in raw]
    else:
        raise ValidationError("segmentation.counts: expected a list or a compressed string")
    arr = np.asarray(counts, dtype=np.int64)
    if np.any(arr < 0) or int(arr.sum()) != height * width:
        raise ValidationError(
            f"bad RLE: run lengths sum to {int(arr.sum())}, expected {height}x{width}={height * width}"
        )
    return arr.astype(np.uint32)


def _rle_bbox(counts: RunArray, height: int) -> tuple[float, float, float, float]:
    ends = np.cumsum(counts.astype(np.int64))
    starts = ends - counts
    ones = np.arange(len(counts)) % 2 == 1
    s, e = starts[ones & (counts > 0)], ends[ones & (counts > 0)] - 1
    if len(s) == 0:
        return (0.0, 0.0, 0.0, 0.0)
    # Column-major: pixel index = x * height + y.
    x1, x2 = float(s.min() // height), float(e.max() // height) + 1
    ys = np.concatenate([s % height, e % height])
    spans_columns = (e // height) > (s // height)
    y1 = 0.0 if spans_columns.any() else float(ys.min())
    y2 = float(height) if spans_columns.any() else float(ys.max()) + 1
    return (x1, y1, x2, y2)


def read_coco(path: str | Path) -> AnnotationSet:
    """Read a COCO instances JSON file.

    Args:
        path: the file.

    Returns:
        One :class:`AnnotationSet`; detections with a ``score`` become predictions
        (annotator ``"prediction:coco"``, origin auto).

    Raises:
        FormatError: not JSON, or images/annotations/categories missing or malformed.
    """
    p = Path(path)
    data = read_json(p, "COCO instances JSON")
    if not isinstance(data, dict) or any(k not in data for k in ("images", "categories")):
        raise FormatError(f"{p}: not a COCO instances file (needs 'images' and 'categories')")
    for key in ("images", "categories", "annotations"):
        if not isinstance(data.get(key, []), list):
            raise FormatError(f"{p}: {key}: expected a list, got {type(data[key]).__name__}")
    schema, items = _categories(p, data["categories"]), _images(p, data["images"])
    label_of = {int(lb.id or 0): i for i, lb in enumerate(schema.labels)}
    builder = AnnotationsBuilder()
    errors: list[dict[str, Any]] = []
    anns = data.get("annotations", [])
    plain = plain_rows(anns, items.id, label_of)
    index = plain.index if plain is not None else np.zeros(0, np.int64)
    # Runs of plain annotations go in as column blocks, the others one by one, in file order.
    cuts = np.flatnonzero(np.diff(index) != 1) + 1
    firsts, lasts = np.concatenate([[0], cuts]), np.concatenate([cuts, [len(index)]])
    runs = zip(firsts.tolist(), lasts.tolist(), strict=True)
    n = 0
    for lo, hi in [*runs, (len(index), len(index))]:
        end = int(index[lo]) if lo < len(index) else len(anns)
        for k in range(n, end):
            _add_one(builder, anns[k], k, p, items, label_of, schema, errors)
        if plain is not None and hi > lo:
            builder.extend(**plain.block(lo, hi))
            end = int(index[hi - 1]) + 1
        n = end
    return AnnotationSet(
        name=p.stem,
        schema=schema,
        items=items,
        annotations=builder.build(),
        meta={"system": "coco", "file": str(p)},
        data_errors=tuple(errors),
    )


def _add_one(
    builder: AnnotationsBuilder,
    ann: Any,
    n: int,
    p: Path,
    items: Items,
    label_of: Mapping[int, int],
    schema: LabelSchema,
    errors: list[dict[str, Any]],
) -> None:
    """Add annotation #n, or warn and list it in ``errors`` when it is not usable."""
    where = f"annotation #{n} (id {ann.get('id') if isinstance(ann, dict) else '?'})"
    try:
        if not isinstance(ann, dict):
            raise ValidationError(f"expected an object, got {type(ann).__name__}")
        _add_annotation(builder, ann, items, label_of, schema)
    except (ValidationError, KeyError, TypeError, ValueError, OverflowError) as exc:
        warnings.warn(f"{p}: {where}: {exc}", DataWarning, stacklevel=3)
        errors.append(
            {"type": "invalid_annotation", "file": str(p), "where": where, "message": str(exc)}
        )


def _categories(p: Path, categories: list[Any]) -> LabelSchema:
    """The label schema from ``categories``.

    Raises:
        FormatError: naming the category and field.
    """
    labels = []
    for n, c in enumerate(categories):
        try:
            if not isinstance(c, dict):
                raise ValidationError(f"expected an object, got {type(c).__name__}")
            if not isinstance(c.get("name"), str) or not c["name"]:
                raise ValidationError(f"name={c.get('name')!r} is not a label name")
            labels.append(Label(name=c["name"], id=to_int(c.get("id"), "id")))
        except ValidationError as exc:
            raise FormatError(f"{p}: categories[{n}]: {exc}") from None
    try:
        return LabelSchema(labels=tuple(sorted(labels, key=lambda lb: int(lb.id or 0))))
    except ValidationError as exc:
        raise FormatError(f"{p}: categories: {exc}") from None


def _images(p: Path, images: list[Any]) -> Items:
    """The item table from ``images``.

    Raises:
        FormatError: naming the image and field.
    """
    ids, names, widths, heights = [], [], [], []
    for n, im in enumerate(images):
        try:
            if not isinstance(im, dict):
                raise ValidationError(f"expected an object, got {type(im).__name__}")
            ids.append(to_int(im.get("id"), "id"))
            widths.append(to_int(im.get("width", 0), "width", lo=0, hi=2**31 - 1))
            heights.append(to_int(im.get("height", 0), "height", lo=0, hi=2**31 - 1))
            names.append(str(im.get("file_name", ids[-1])))
        except ValidationError as exc:
            raise FormatError(f"{p}: images[{n}]: {exc}") from None
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise FormatError(f"{p}: images: id {dup} appears twice")
    return Items.create(id=ids, name=names, width=widths, height=heights)


def _add_annotation(
    builder: AnnotationsBuilder,
    ann: Mapping[str, Any],
    items: Items,
    label_of: Mapping[int, int],
    schema: LabelSchema,
) -> None:
    image_id = to_int(ann.get("image_id"), "image_id")
    pos = items.position(image_id)
    height, width = int(items.height[pos]), int(items.width[pos])
    cat = to_int(ann.get("category_id"), "category_id")
    if cat not in label_of:
        raise ValidationError(f"unknown category_id {cat}; known: {sorted(label_of)}")
    source_id = to_int(ann.get("id", -1), "id")
    common: dict[str, Any] = {"source_id": source_id, "group": 0}
    if "score" in ann:
        score = to_float(ann["score"], "score")
        common.update(score=score, annotator="prediction:coco", origin=Origin.AUTO)
    if ann.get("attributes"):
        attrs = ann["attributes"]
        if not isinstance(attrs, dict) or not all(
            v is None or isinstance(v, str | int | float) for v in attrs.values()
        ):
            raise ValidationError("attributes: expected an object of text, number or bool values")
        common["attributes"] = dict(attrs)
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        counts = _rle_counts(seg, height, width)
        builder.add(
            image_id, Kind.MASK, label_of[cat], rle=counts, bbox=_rle_bbox(counts, height), **common
        )
        return
    if isinstance(seg, list) and seg:
        parts = [_coordinates(poly, "segmentation") for poly in seg]
        for part in parts:
            if len(part) % 2 or len(part) < 6:
                raise ValidationError(
                    f"polygon with {len(part) // 2} points; a polygon needs at least 3"
                )
            if not np.isfinite(part).all():
                raise ValidationError("polygon has a NaN or infinite coordinate")
        if len(parts) > 1:
            if source_id < 0:
                raise ValidationError(f"id={source_id}: a multi-part polygon needs an id >= 0")
            common["group"] = source_id + 1
        for part in parts:
            builder.add(image_id, Kind.POLYGON, label_of[cat], points=part, **common)
        return
    box = _coordinates(ann.get("bbox"), "bbox").tolist()
    if len(box) != 4 or not np.isfinite(box).all() or box[2] < 0 or box[3] < 0:
        raise ValidationError(f"bbox must be 4 finite numbers [x, y, w, h] with w, h >= 0: {box}")
    x, y, w, h = box
    builder.add(image_id, Kind.RECTANGLE, label_of[cat], bbox=(x, y, x + w, y + h), **common)


def _coordinates(value: Any, field: str) -> FloatArray:
    """A flat list of numbers (NaN/inf kept for the caller's geometry check)."""
    if not isinstance(value, list):
        raise ValidationError(f"{field}: expected a list of numbers, got {type(value).__name__}")
    return np.asarray([to_float(v, field, finite=False) for v in value], dtype=np.float64)
