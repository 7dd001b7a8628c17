"""Conflict geometry: a compact per-object payload, and the one SVG renderer that draws it.

The payload (``conflict["geometry"]``, written by :func:`labelgate.engine.compare.conflicts_to_json`)
holds the frame size and the DS and GT shape of the conflicting pair, each
``{"kind", "bbox": [x1, y1, x2, y2], "rotation", "points": [[x, y], ...], "rle": [...]}``
(``rotation`` only when not 0)
in image pixels. It is size-bounded: a shape keeps at most :data:`MAX_POINTS` vertices (evenly
thinned beyond that) and a mask its RLE only up to :data:`MAX_RLE_COUNTS` counts (else it is
drawn as its box), and only the first :data:`MAX_GEOMETRY_CONFLICTS` conflicts of a report
carry it, so a stored report with 100k conflicts stays small.

:func:`render_svg` draws such shapes scaled to a display width; both the conflict viewer of
``labelgate serve`` and the gallery of the static HTML report use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np

from labelgate.arrays import BoolArray, IntArray
from labelgate.model import Annotations, Kind

MAX_POINTS = 256
MAX_RLE_COUNTS = 4096
#: Conflicts of one report that carry geometry (in report order; the rest are listed without).
MAX_GEOMETRY_CONFLICTS = 20_000

#: Colour of each conflict type (colour-blind-safe palette; GT dashed, DS solid).
TYPE_COLOURS = {
    "missing_annotation": "#d62728",
    "extra_annotation": "#ff7f0e",
    "mismatching_label": "#9467bd",
    "low_overlap": "#1f77b4",
    "mismatching_direction": "#17becf",
    "covered_annotation": "#8c564b",
    "mismatching_attributes": "#e377c2",
    "mismatching_groups": "#bcbd22",
}
_DEFAULT_COLOUR = "#7f7f7f"
DRAWN_KINDS = frozenset(
    {"rectangle", "polygon", "polyline", "points", "ellipse", "mask", "skeleton", "cuboid"}
)


_RAGGED = (Kind.POLYGON, Kind.POLYLINE, Kind.POINTS, Kind.SKELETON, Kind.CUBOID)
_KIND_NAMES = {int(k): k.name.lower() for k in Kind}


def shape_geometries(ann: Annotations, rows: IntArray, frame_ok: BoolArray) -> list[Any]:
    """The bounded geometry payload of each row in ``rows`` (None where a row is -1).

    Args:
        ann: the annotations.
        rows: row indices, -1 for "no object on this side".
        frame_ok: per entry, whether the frame size is known (a mask's RLE needs it).

    Vectorised over the rows; only rows with vertices or a mask do per-row work, so a report
    with 100k box conflicts stays cheap to build.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if not len(ann) or not len(rows):
        return [None] * len(rows)
    safe = np.maximum(rows, 0)
    kinds = ann.kind[safe].tolist()
    boxes = np.round(ann.bbox[safe], 2).tolist()
    turns = np.round(ann.rotation[safe], 2).tolist()
    out: list[Any] = []
    for k, r in enumerate(rows.tolist()):
        if r < 0:
            out.append(None)
            continue
        geo: dict[str, Any] = {"kind": _KIND_NAMES[kinds[k]], "bbox": boxes[k]}
        if turns[k]:  # only rotated shapes carry it, to keep the payload small
            geo["rotation"] = turns[k]
        kind = kinds[k]
        if kind in _RAGGED:
            _add_points(geo, ann, r, kind)
        elif kind == Kind.MASK:
            counts = ann.rle_of(r)
            if 0 < len(counts) <= MAX_RLE_COUNTS and frame_ok[k]:
                geo["rle"] = counts.astype(int).tolist()
            else:
                geo["rle_omitted"] = True  # drawn as its box
        out.append(geo)
    return out


def _add_points(geo: dict[str, Any], ann: Annotations, row: int, kind: int) -> None:
    pts = ann.points_of(row)
    if not len(pts):
        return
    keep = np.arange(len(pts))
    if len(pts) > MAX_POINTS:  # thin evenly; the last vertex stays so a line keeps its end
        keep = np.unique(np.linspace(0, len(pts) - 1, MAX_POINTS).round().astype(int))
    geo["points"] = np.round(pts[keep], 2).tolist()
    if kind == Kind.SKELETON:
        geo["visibility"] = ann.vis_of(row)[keep].astype(int).tolist()


@dataclass(frozen=True)
class DrawnShape:
    """One shape to draw: its geometry payload, side (``"gt"``/``"ds"``) and conflict type."""

    geometry: Mapping[str, Any]
    side: str
    conflict_type: str
    label: str | None = None
    current: bool = False  # the conflict being looked at: drawn thicker


def shapes_of_conflict(conflict: Mapping[str, Any], *, current: bool = False) -> list[DrawnShape]:
    """The drawable shapes of one stored conflict (none when it carries no geometry)."""
    geo = conflict.get("geometry") or {}
    labels = conflict.get("label_names") or []
    out = []
    sides = [s for s in ("ds", "gt") if geo.get(s)]
    for side in sides:
        if geo[side].get("kind") not in DRAWN_KINDS:  # tags and text have no place on the image
            continue
        # label_names lists the DS label first when both sides exist.
        idx = sides.index(side)
        label = labels[idx] if idx < len(labels) else None
        out.append(DrawnShape(geo[side], side, str(conflict.get("type", "")), label, current))
    return out


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def _mask_path(counts: Sequence[int], width: int, height: int, s: float) -> str:
    """SVG path of a column-major RLE: each run of ones as at most three rectangles."""
    parts = []
    pos = 0
    for k, n in enumerate(counts):
        if k % 2 and n:
            start, end = pos, pos + n  # [start, end) in column-major pixel order
            c0, r0 = divmod(start, height)
            c1, r1 = divmod(end - 1, height)
            rects = []
            if c0 == c1:
                rects.append((c0, r0, 1, r1 - r0 + 1))
            else:
                rects.append((c0, r0, 1, height - r0))
                if c1 - c0 > 1:
                    rects.append((c0 + 1, 0, c1 - c0 - 1, height))
                rects.append((c1, 0, 1, r1 + 1))
            for x, y, w, h in rects:
                parts.append(
                    f"M{_num(x * s)} {_num(y * s)}h{_num(w * s)}v{_num(h * s)}h{_num(-w * s)}z"
                )
        pos += n
    return "".join(parts)


def _element(shape: DrawnShape, s: float, width: int, height: int) -> str:
    g = shape.geometry
    colour = TYPE_COLOURS.get(shape.conflict_type, _DEFAULT_COLOUR)
    dash = " stroke-dasharray='6 4'" if shape.side == "gt" else ""
    title = f"<title>{escape(shape.side.upper())}: {escape(shape.label or '—')} ({escape(str(g.get('kind')))}, {escape(shape.conflict_type)})</title>"
    cls = f"shape {shape.side}" + (" current" if shape.current else "")
    attrs = (
        f"class='{cls}' data-side='{shape.side}' data-kind='{escape(str(g.get('kind')))}'"
        f" data-type='{escape(shape.conflict_type)}' stroke='{colour}'"
        f" stroke-width='{3 if shape.current else 1.5}'{dash}"
    )
    x1, y1, x2, y2 = (float(v) * s for v in g.get("bbox", (0, 0, 0, 0)))
    rot = float(g.get("rotation") or 0.0)
    turn = (
        f" transform='rotate({_num(rot)} {_num((x1 + x2) / 2)} {_num((y1 + y2) / 2)})'"
        if rot
        else ""
    )
    kind = g.get("kind")
    pts = [(float(x) * s, float(y) * s) for x, y in g.get("points") or []]
    fill = " fill='none'"
    if kind == "mask" and g.get("rle"):
        d = _mask_path(g["rle"], width, height, s)
        return f"<path {attrs} fill='{colour}' fill-opacity='0.35' d='{d}'>{title}</path>"
    if kind in ("polygon", "polyline") and pts:
        tag = "polygon" if kind == "polygon" else "polyline"
        coords = " ".join(f"{_num(x)},{_num(y)}" for x, y in pts)
        return f"<{tag} {attrs}{fill} points='{coords}'>{title}</{tag}>"
    if kind in ("points", "skeleton") and pts:
        vis = g.get("visibility") or [2] * len(pts)
        dots = "".join(
            f"<circle cx='{_num(x)}' cy='{_num(y)}' r='4'/>"
            for (x, y), v in zip(pts, vis, strict=False)
            if v  # 0 = absent
        )
        return f"<g {attrs} fill='{colour}'>{title}{dots}</g>"
    if kind == "ellipse":
        return (
            f"<ellipse {attrs}{fill} cx='{_num((x1 + x2) / 2)}' cy='{_num((y1 + y2) / 2)}'"
            f" rx='{_num((x2 - x1) / 2)}' ry='{_num((y2 - y1) / 2)}'{turn}>{title}</ellipse>"
        )
    # Rectangles, cuboids, masks without their RLE: the (rotated) box.
    return (
        f"<rect {attrs}{fill} x='{_num(x1)}' y='{_num(y1)}' width='{_num(x2 - x1)}'"
        f" height='{_num(y2 - y1)}'{turn}>{title}</rect>"
    )


def render_svg(
    shapes: Iterable[DrawnShape],
    width: int,
    height: int,
    display_width: float,
    *,
    image_href: str | None = None,
) -> str:
    """An ``<svg>`` of ``display_width`` px showing ``shapes`` over the frame.

    Coordinates are the image's pixel coordinates times ``display_width / width``. Without an
    image (``image_href`` None) the frame is a blank canvas of its size.
    """
    width = max(int(width), 1)
    height = max(int(height), 1)
    s = display_width / width
    w, h = _num(display_width), _num(height * s)
    back = (
        f"<image href='{escape(image_href)}' x='0' y='0' width='{w}' height='{h}'"
        " preserveAspectRatio='none'/>"
        if image_href
        else f"<rect class='canvas' x='0' y='0' width='{w}' height='{h}' fill='#f4f4f4'/>"
    )
    body = "".join(_element(sh, s, width, height) for sh in shapes)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' class='frame' width='{w}' height='{h}'"
        f" viewBox='0 0 {w} {h}' data-scale='{s:.6g}'>{back}{body}</svg>"
    )
