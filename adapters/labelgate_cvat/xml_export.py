"""CVAT XML export reader: "CVAT for images 1.1" and "CVAT for video 1.1".

Pure functions: a file (or bytes) in, an :class:`~labelgate.model.AnnotationSet` out. One bad
shape (unknown label, too few points, NaN coordinate, bad mask RLE) is skipped with a
:class:`~labelgate.errors.DataWarning` and listed in ``data_errors``; a file that is not
well-formed XML raises :class:`~labelgate.errors.FormatError` naming the file and line.

Video tracks are expanded per frame: rectangles, ellipses and single points interpolate linearly
between keyframes (rotation along the shortest arc); polygons, polylines and multi-point shapes
keep the previous keyframe; frames where the track is ``outside`` are dropped and the last
keyframe is propagated to the end of the segment, as CVAT does.
"""

from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from labelgate.errors import DataWarning, FormatError, LabelgateError, ValidationError
from labelgate.io.rle import window_to_full
from labelgate.model import (
    ABSENT,
    HIDDEN,
    VISIBLE,
    AnnotationsBuilder,
    AnnotationSet,
    AttributeSpec,
    Items,
    Kind,
    Label,
    LabelSchema,
    Origin,
    SourceType,
)

_SHAPES = ("box", "polygon", "polyline", "points", "ellipse", "mask", "skeleton", "cuboid")
_MIN_POINTS = {"polygon": 3, "polyline": 2, "points": 1}
_KIND = {
    "box": Kind.RECTANGLE,
    "polygon": Kind.POLYGON,
    "polyline": Kind.POLYLINE,
    "points": Kind.POINTS,
    "ellipse": Kind.ELLIPSE,
    "mask": Kind.MASK,
    "skeleton": Kind.SKELETON,
    "cuboid": Kind.CUBOID,
}
_NODE = re.compile(r'data-node-id="(\d+)"[^>]*data-label-name="([^"]*)"')
_EDGE = re.compile(r'data-node-from="(\d+)"[^>]*data-node-to="(\d+)"')


def looks_like_cvat_xml(path: Path) -> bool:
    """True for an XML file whose root element is ``<annotations>`` (CVAT's export)."""
    if path.suffix.lower() != ".xml":
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return b"<annotations" in head


def read_cvat_xml(path: str | Path, annotator: str | None = None) -> AnnotationSet:
    """Read a CVAT XML export file.

    Args:
        path: the XML file.
        annotator: name given to every annotation (default: the file stem).

    Returns:
        The annotation set; ``meta`` holds ``system="cvat"``, the file and job/task ids.

    Raises:
        FormatError: not well-formed XML, or not a CVAT export.
    """
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as exc:
        line, col = exc.position
        raise FormatError(f"{p}: malformed XML at line {line}, column {col} ({exc})") from None
    except OSError as exc:
        raise FormatError(f"{p}: cannot read ({exc})") from None
    return parse_cvat_xml(root, name=p.stem, source=str(p), annotator=annotator or p.stem)


def parse_cvat_xml(root: ET.Element, *, name: str, source: str, annotator: str) -> AnnotationSet:
    """Convert a parsed CVAT XML tree into an annotation set (see :func:`read_cvat_xml`).

    Raises:
        FormatError: the root is not ``<annotations>`` or the label meta is unusable.
    """
    if root.tag != "annotations":
        raise FormatError(f"{source}: root element is <{root.tag}>, expected <annotations>")
    meta_el = root.find("meta")
    owner = None
    if meta_el is not None:
        owner = meta_el.find("job") or meta_el.find("task") or meta_el.find("project")
    try:
        schema = _read_labels(root)
    except LabelgateError as exc:
        raise FormatError(f"{source}: <labels>: {exc}") from None
    reader = _Reader(schema, source, annotator)
    images = root.findall("image")
    items = reader.images(images) if images else reader.video(root, owner)
    for track in root.findall("track"):
        reader.track(track, items)
    meta: dict[str, Any] = {"system": "cvat", "file": source}
    if owner is not None:
        for key in ("id", "name", "mode"):
            text = owner.findtext(key)
            if text:
                meta[f"job_{key}" if key != "name" else "name"] = text
        if owner.findtext("id", "").isdigit():
            meta["job_id"] = int(owner.findtext("id", "0"))
    return AnnotationSet(
        name=name,
        schema=schema,
        items=items,
        annotations=reader.builder.build(),
        meta=meta,
        data_errors=tuple(reader.errors),
    )


def _read_labels(root: ET.Element) -> LabelSchema:
    labels_el = root.find(".//meta//labels")
    if labels_el is None:
        return _labels_from_usage(root)
    parents: list[dict[str, Any]] = []
    children: dict[str, list[Label]] = {}
    for lab in labels_el.findall("label"):
        lname = lab.findtext("name", "").strip()
        if not lname:
            raise ValidationError("a <label> has no <name>")
        kind = (lab.findtext("type") or "any").strip() or "any"
        if kind == "rectangle" or kind == "box":
            kind = "rectangle"
        attrs = tuple(_attribute_spec(a) for a in lab.findall("attributes/attribute"))
        parent = (lab.findtext("parent") or "").strip()
        if parent:
            children.setdefault(parent, []).append(Label(name=lname, kind=kind, attributes=attrs))
        else:
            parents.append(
                {"name": lname, "kind": kind, "attributes": attrs, "svg": lab.findtext("svg") or ""}
            )
    out = []
    for spec in parents:
        subs = tuple(children.get(spec["name"], ()))
        edges: tuple[tuple[int, int], ...] = ()
        if spec["kind"] == "skeleton" and spec["svg"]:
            node_name = {nid: nm for nid, nm in _NODE.findall(spec["svg"])}
            order = {s.name: i for i, s in enumerate(subs)}
            edges = tuple(
                (order[node_name[a]], order[node_name[b]])
                for a, b in _EDGE.findall(spec["svg"])
                if node_name.get(a) in order and node_name.get(b) in order
            )
        out.append(
            Label(
                name=spec["name"],
                kind=spec["kind"],
                attributes=spec["attributes"],
                sublabels=subs,
                edges=edges,
            )
        )
    return LabelSchema(labels=tuple(out))


def _labels_from_usage(root: ET.Element) -> LabelSchema:
    names: list[str] = []
    for el in root.iter():
        if (
            el.tag in (*_SHAPES, "tag", "track")
            and el.get("label")
            and el.get("label") not in names
        ):
            names.append(el.get("label", ""))
    return LabelSchema.from_names(names)


def _attribute_spec(el: ET.Element) -> AttributeSpec:
    values = tuple(v for v in (el.findtext("values") or "").split("\n") if v != "")
    return AttributeSpec(
        name=el.findtext("name", "").strip(),
        input_type=(el.findtext("input_type") or "text").strip(),
        values=values,
        default=el.findtext("default_value") or "",
        mutable=(el.findtext("mutable") or "").strip().lower() == "true",
    )


def _floats(text: str | None, what: str) -> list[float]:
    if text is None:
        raise ValidationError(f"missing {what}")
    try:
        values = [float(v) for v in re.split(r"[;,]", text.strip()) if v.strip() != ""]
    except ValueError:
        raise ValidationError(f"{what} {text!r} is not a list of numbers") from None
    if not np.isfinite(values).all():
        raise ValidationError(f"{what} has a NaN or infinite coordinate")
    return values


def _float(el: ET.Element, key: str) -> float:
    raw = el.get(key)
    if raw is None:
        raise ValidationError(f"missing attribute {key!r}")
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(f"{key}={raw!r} is not a number") from None
    if not np.isfinite(value):
        raise ValidationError(f"{key} is NaN or infinite")
    return value


class _Reader:
    """Accumulates rows and data errors while walking one XML tree."""

    def __init__(self, schema: LabelSchema, source: str, annotator: str) -> None:
        self.schema = schema
        self.source = source
        self.builder = AnnotationsBuilder([annotator])
        self.annotator = 0
        self.errors: list[dict[str, Any]] = []
        self.next_id = 0
        self.frame_size: dict[int, tuple[int, int]] = {}

    def fail(self, where: str, exc: Exception) -> None:
        msg = f"{self.source}: {where}: {exc}"
        warnings.warn(msg, DataWarning, stacklevel=3)
        self.errors.append(
            {"type": "invalid_annotation", "file": self.source, "where": where, "message": str(exc)}
        )

    def images(self, images: list[ET.Element]) -> Items:
        ids, names, widths, heights = [], [], [], []
        for img in images:
            try:
                frame = int(img.get("id", ""))
                w, h = int(img.get("width", "0")), int(img.get("height", "0"))
            except ValueError:
                raise FormatError(
                    f"{self.source}: <image name={img.get('name')!r}> has a non-integer id/size"
                ) from None
            ids.append(frame)
            names.append(img.get("name", str(frame)))
            widths.append(w)
            heights.append(h)
            self.frame_size[frame] = (w, h)
        try:
            items = Items.create(ids, name=names, width=widths, height=heights)
        except ValidationError as exc:
            raise FormatError(f"{self.source}: <image> elements: {exc}") from None
        for img in images:
            frame = int(img.get("id", "0"))
            for el in img:
                self.shape(el, frame, SourceType.SHAPE if el.tag != "tag" else SourceType.TAG)
        return items

    def video(self, root: ET.Element, owner: ET.Element | None) -> Items:
        size = root.find(".//meta//original_size")
        w = int(size.findtext("width", "0")) if size is not None else 0
        h = int(size.findtext("height", "0")) if size is not None else 0
        start = int(owner.findtext("start_frame", "0")) if owner is not None else 0
        stop_text = owner.findtext("stop_frame") if owner is not None else None
        frames = [int(f) for f in (el.get("frame", "0") for el in root.iter()) if f.isdigit()]
        stop = int(stop_text) if stop_text and stop_text.isdigit() else max(frames, default=start)
        ids = list(range(start, stop + 1))
        for f in ids:
            self.frame_size[f] = (w, h)
        return Items.create(ids, name=[f"frame_{f:06d}" for f in ids], width=w, height=h)

    def _label(self, el: ET.Element) -> int:
        name = el.get("label")
        if name is None:
            raise ValidationError("missing attribute 'label'")
        return self.schema.index(name)

    def _attributes(self, el: ET.Element, label: int) -> dict[str, Any]:
        spec_of = {a.name: a for a in self.schema.labels[label].attributes}
        out: dict[str, Any] = {}
        for spec in spec_of.values():
            out[spec.name] = spec.normalize(spec.default) if spec.default != "" else None
        for a in el.findall("attribute"):
            key = a.get("name", "")
            known = spec_of.get(key)
            out[key] = known.normalize(a.text or "") if known else (a.text or "")
        return out

    def shape(
        self,
        el: ET.Element,
        frame: int,
        source_type: SourceType,
        source_id: int | None = None,
        extra_attrs: dict[str, Any] | None = None,
    ) -> None:
        if el.tag not in (*_SHAPES, "tag"):
            return
        sid = self.next_id if source_id is None else source_id
        if source_id is None:
            self.next_id += 1
        where = f"frame {frame}, <{el.tag} label={el.get('label')!r}> (#{sid})"
        try:
            self._add(el, frame, source_type, sid, extra_attrs or {})
        except (ValidationError, ValueError) as exc:
            self.fail(where, exc)

    def _add(
        self,
        el: ET.Element,
        frame: int,
        source_type: SourceType,
        sid: int,
        extra_attrs: dict[str, Any],
    ) -> None:
        label = self._label(el)
        attrs = {**self._attributes(el, label), **extra_attrs}
        common: dict[str, Any] = {
            "source_id": sid,
            "source_type": source_type,
            "origin": Origin.parse(el.get("source")),
            "annotator": self.annotator,
            "group": int(el.get("group_id", "0") or 0),
            "z_order": int(el.get("z_order", "0") or 0),
            "occluded": el.get("occluded", "0") == "1",
        }
        if attrs:
            common["attributes"] = attrs
        tag = el.tag
        if tag == "tag":
            self.builder.add(frame, Kind.TAG, label, **common)
            return
        common["rotation"] = float(el.get("rotation", "0") or 0)
        if tag == "box":
            x1, y1, x2, y2 = (_float(el, k) for k in ("xtl", "ytl", "xbr", "ybr"))
            self.builder.add(frame, Kind.RECTANGLE, label, bbox=(x1, y1, x2, y2), **common)
        elif tag == "ellipse":
            cx, cy, rx, ry = (_float(el, k) for k in ("cx", "cy", "rx", "ry"))
            box = (cx - rx, cy - ry, cx + rx, cy + ry)
            self.builder.add(frame, Kind.ELLIPSE, label, bbox=box, **common)
        elif tag in _MIN_POINTS:
            pts = _floats(el.get("points"), "points")
            if len(pts) % 2:
                raise ValidationError(f"points has an odd number of coordinates ({len(pts)})")
            if len(pts) // 2 < _MIN_POINTS[tag]:
                raise ValidationError(
                    f"{tag} with {len(pts) // 2} points; at least {_MIN_POINTS[tag]} needed"
                )
            self.builder.add(frame, _KIND[tag], label, points=pts, **common)
        elif tag == "cuboid":
            keys = tuple(
                f"{c}{side}"
                for side in "12"
                for c in ("xtl", "ytl", "xbl", "ybl", "xtr", "ytr", "xbr", "ybr")
            )
            pts = [_float(el, k) for k in keys]
            self.builder.add(frame, Kind.CUBOID, label, points=pts, **common)
        elif tag == "mask":
            self._mask(el, frame, label, common)
        elif tag == "skeleton":
            self._skeleton(el, frame, label, common)

    def _mask(self, el: ET.Element, frame: int, label: int, common: dict[str, Any]) -> None:
        runs = _floats(el.get("rle"), "rle")
        left, top = int(_float(el, "left")), int(_float(el, "top"))
        bw, bh = int(_float(el, "width")), int(_float(el, "height"))
        w, h = self.frame_size.get(frame, (0, 0))
        if w <= 0 or h <= 0:
            raise ValidationError("a mask needs the image width and height")
        counts = window_to_full(np.asarray(runs, np.int64), left, top, bw, bh, h, w)
        box = (float(left), float(top), float(left + bw), float(top + bh))
        self.builder.add(frame, Kind.MASK, label, bbox=box, rle=counts, **common)

    def _skeleton(self, el: ET.Element, frame: int, label: int, common: dict[str, Any]) -> None:
        subs = self.schema.labels[label].sublabels
        order = {s.name: i for i, s in enumerate(subs)}
        pts = np.zeros((len(subs), 2))
        vis = np.full(len(subs), ABSENT, dtype=np.int8)
        for child in el.findall("points"):
            name = child.get("label", "")
            if name not in order:
                raise ValidationError(f"skeleton point {name!r} is not a sublabel of this label")
            if child.get("outside", "0") == "1":
                continue
            xy = _floats(child.get("points"), "points")
            if len(xy) != 2:
                raise ValidationError(f"skeleton point {name!r} must have one x,y pair")
            pts[order[name]] = xy
            vis[order[name]] = HIDDEN if child.get("occluded", "0") == "1" else VISIBLE
        if not (vis != ABSENT).any():
            return  # CVAT drops skeletons whose points are all absent
        self.builder.add(frame, Kind.SKELETON, label, points=pts, vis=vis, **common)

    def track(self, track: ET.Element, items: Items) -> None:
        try:
            tid = int(track.get("id", "0"))
            label_name = track.get("label")
            keyframes = sorted(
                (el for el in track if el.tag in _SHAPES), key=lambda e: int(e.get("frame", "0"))
            )
        except ValueError as exc:
            self.fail(f"<track id={track.get('id')!r}>", exc)
            return
        last = int(items.id[-1]) if len(items) else 0
        for el, frame in _expand_track(keyframes, last):
            el.set("label", label_name or "")
            for key in ("source", "group_id"):
                if track.get(key) is not None and el.get(key) is None:
                    el.set(key, track.get(key, ""))
            if frame not in self.frame_size:
                continue
            self.shape(el, frame, SourceType.TRACK, source_id=tid)


def _expand_track(keyframes: list[ET.Element], last_frame: int) -> Iterable[tuple[ET.Element, int]]:
    """Per-frame shapes of one track (outside frames dropped, last keyframe propagated)."""
    for i, key in enumerate(keyframes):
        start = int(key.get("frame", "0"))
        nxt = keyframes[i + 1] if i + 1 < len(keyframes) else None
        end = int(nxt.get("frame", "0")) if nxt is not None else last_frame + 1
        if key.get("outside", "0") == "1":
            continue
        for frame in range(start, end):
            yield _interpolate(key, nxt, frame), frame


_LINEAR = {
    "box": ("xtl", "ytl", "xbr", "ybr"),
    "ellipse": ("cx", "cy", "rx", "ry"),
}


def _interpolate(a: ET.Element, b: ET.Element | None, frame: int) -> ET.Element:
    out = ET.Element(a.tag, dict(a.attrib))
    out.extend(list(a))
    fa = int(a.get("frame", "0"))
    if b is None or b.tag != a.tag or frame == fa or b.get("outside", "0") == "1":
        return out
    t = (frame - fa) / (int(b.get("frame", "0")) - fa)
    keys = _LINEAR.get(a.tag)
    if keys:
        for k in keys:
            va, vb = float(a.get(k, "0")), float(b.get(k, "0"))
            out.set(k, f"{va + (vb - va) * t:.4f}")
        ra, rb = float(a.get("rotation", "0")), float(b.get("rotation", "0"))
        delta = (rb - ra + 180.0) % 360.0 - 180.0  # shortest arc
        out.set("rotation", f"{(ra + delta * t) % 360.0:.4f}")
    elif a.tag == "points":
        pa, pb = a.get("points", ""), b.get("points", "")
        if pa.count(";") == 0 and pb.count(";") == 0 and pa and pb:
            xa, ya = (float(v) for v in pa.split(","))
            xb, yb = (float(v) for v in pb.split(","))
            out.set("points", f"{xa + (xb - xa) * t:.4f},{ya + (yb - ya) * t:.4f}")
    return out
