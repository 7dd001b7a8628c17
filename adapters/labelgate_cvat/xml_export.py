"""CVAT XML export reader: "CVAT for images 1.1" and "CVAT for video 1.1".

Pure functions: a file (or bytes) in, an :class:`~labelgate.model.AnnotationSet` out. One bad
shape (unknown label, too few points, NaN coordinate, bad mask RLE) is skipped with a
:class:`~labelgate.errors.DataWarning` and listed in ``data_errors``; a file that is not
well-formed XML raises :class:`~labelgate.errors.FormatError` naming the file and line.

The file is streamed (:mod:`labelgate_cvat.xml_fast`): plain image shapes go straight into
columns and each finished image leaves memory; so do the plain tracks of a video job, expanded
frame by frame with numpy (:mod:`labelgate_cvat.xml_tracks`). Everything else is rewritten into
the API's payload shapes and converted by the same functions as a live job
(:mod:`labelgate_cvat.payloads`), so the other video tracks are expanded with CVAT's
interpolation rules (:mod:`labelgate_cvat.tracks`), which the columnar expansion follows.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from labelgate.errors import FormatError, ValidationError
from labelgate.io.inputs import to_int
from labelgate.model import AnnotationSet, LabelSchema
from labelgate_cvat.payloads import MAX_FRAMES, cvat_job_to_annotations, schema_from_labels
from labelgate_cvat.xml_fast import Streamed, merge_rows, stream_cvat_xml

#: Shape elements (an image's children, a track's keyframes).
SHAPE_TAGS = ("box", "polygon", "polyline", "points", "ellipse", "mask", "skeleton", "cuboid")


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
    annotator = annotator or p.stem
    try:
        with p.open("rb") as fh:
            streamed = stream_cvat_xml(fh, _fast_labels, annotator, _fast_frames)
    except ET.ParseError as exc:
        line, col = exc.position
        raise FormatError(f"{p}: malformed XML at line {line}, column {col} ({exc})") from None
    except IsADirectoryError:
        raise FormatError(f"{p}: is a directory, expected a CVAT XML file") from None
    except OSError as exc:
        raise FormatError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except RecursionError:
        raise FormatError(f"{p}: XML nested too deeply to be a CVAT export") from None
    return parse_cvat_xml(
        streamed.root, name=p.stem, source=str(p), annotator=annotator, streamed=streamed
    )


def _fast_labels(root: ET.Element) -> tuple[list[dict[str, Any]], LabelSchema]:
    """The labels and schema for the streaming fast path, from a ``<labels>`` in ``<meta>``.

    Raises:
        FormatError: no ``<labels>`` yet (labels are then inferred from the whole document,
            so the document must be kept) or labels the schema refuses.
    """
    if root.find(".//meta//labels") is None:
        raise FormatError("no <labels> before the first <image>")
    labels = _labels(root)
    return labels, schema_from_labels(labels)


def _fast_frames(root: ET.Element) -> tuple[int, int]:
    """(start, stop) frames of a video job for the streaming track path, from ``<meta>``.

    Raises:
        FormatError: no ``<stop_frame>`` (the frames are then those the document uses, so
            the tracks must be kept) or a meta :func:`_video_meta` refuses.
    """
    owner = _owner(root)
    if owner is None or not (owner.findtext("stop_frame") or "").strip():
        raise FormatError("no <stop_frame> before the first <track>")
    meta = _video_meta(root, owner, "")
    return meta["start_frame"], meta["stop_frame"]


def parse_cvat_xml(
    root: ET.Element,
    *,
    name: str,
    source: str,
    annotator: str,
    streamed: Streamed | None = None,
) -> AnnotationSet:
    """Convert a parsed CVAT XML tree into an annotation set (see :func:`read_cvat_xml`).

    The XML is first rewritten into the API's payload shapes (labels, data meta, LabeledData)
    and then converted by :func:`labelgate_cvat.payloads.cvat_job_to_annotations`, the function
    the live adapter uses. With ``streamed`` (from :func:`read_cvat_xml`), the rows its fast
    path took are merged back in document order.

    Raises:
        FormatError: the root is not ``<annotations>`` or the label meta is unusable.
    """
    if root.tag != "annotations":
        raise FormatError(f"{source}: root element is <{root.tag}>, expected <annotations>")
    owner = _owner(root)
    labels, meta, payload = xml_to_payloads(root, source, streamed)
    try:
        schema = schema_from_labels(labels)
    except FormatError as exc:
        raise FormatError(f"{source}: <labels>: {exc}") from None
    # Tracks the stream took as columns; the others are in ``payload`` (still in the tree).
    taken = None if streamed is None or streamed.tracks is None else streamed.tracks.batch()
    info: dict[str, Any] = {}
    if owner is not None and owner.findtext("id") is not None:
        try:
            info["id"] = to_int(owner.findtext("id"), "id", lo=0)
        except ValidationError as exc:
            raise FormatError(f"{source}: <meta><{owner.tag}><id>: {exc}") from None
    aset = cvat_job_to_annotations(
        payload,
        meta,
        schema,
        annotator=annotator,
        job=info,
        name=name,
        context={"file": source},
        taken_tracks=taken,
    )
    if streamed is not None and streamed.fast is not None:
        merged = merge_rows(streamed.fast.build(), aset.annotations, all_fast=not streamed.objects)
        aset = aset.replace(annotations=merged)
    extra: dict[str, Any] = {"file": source}
    if owner is not None:
        for key, out in (("name", "name"), ("mode", "job_mode")):
            text = owner.findtext(key)
            if text:
                extra[out] = text
    return aset.replace(meta={**aset.meta, **extra})


def xml_to_payloads(
    root: ET.Element, source: str = "CVAT XML", streamed: Streamed | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """A CVAT XML tree as API payloads: (``Label`` dicts, ``/data/meta``, ``LabeledData``).

    Label and attribute ids are numbered in document order; object ids count from 0 over
    the children of every ``<image>``. With ``streamed``, only the image children its fast
    path left are converted (the images themselves come from it), and only the tracks it
    left (:attr:`Streamed.tracks` has the others).

    Raises:
        FormatError: unusable labels or image elements.
    """
    owner = _owner(root)
    try:
        labels = _labels(root)
    except FormatError as exc:
        raise FormatError(f"{source}: <labels>: {exc}") from None
    ids = _Ids(labels)
    if streamed is None:
        images = root.findall("image")
        objects = [(el, n, 0) for n, img in enumerate(images) for el in img]
        objects = [(el, n, seq) for seq, (el, n, _) in enumerate(objects)]
    else:
        images, objects = streamed.images, streamed.objects
    meta = _image_meta(images, source) if images else _video_meta(root, owner, source)
    size = (owner.findtext("size") or "").strip() if owner is not None else ""
    if size.isdigit():  # the segment length, even when the file lists only some of its frames
        meta["size"] = int(size)
    payload: dict[str, list[dict[str, Any]]] = {"tags": [], "shapes": [], "tracks": []}
    frames = meta.pop("frame_ids_in_file", ())
    for el, n, seq in objects:
        obj = _object(el, frames[n], ids, seq)
        if obj is not None:
            payload["tags" if el.tag == "tag" else "shapes"].append(obj)
    payload["tracks"] = [_track(track, ids) for track in root.findall("track")]
    return labels, meta, payload


def _owner(root: ET.Element) -> ET.Element | None:
    """The ``<job>``, ``<task>`` or ``<project>`` element of ``<meta>`` (None when absent)."""
    meta_el = root.find("meta")
    for tag in ("job", "task", "project"):
        el = meta_el.find(tag) if meta_el is not None else None
        if el is not None:
            return el
    return None


def _labels(root: ET.Element) -> list[dict[str, Any]]:
    """``<labels>`` as CVAT API ``Label`` dicts, with ids numbered in document order."""
    labels_el = root.find(".//meta//labels")
    if labels_el is None:
        names: list[str] = []
        for el in root.iter():
            lname = el.get("label")
            if el.tag in (*SHAPE_TAGS, "tag", "track") and lname and lname not in names:
                names.append(lname)
        return [{"id": i + 1, "name": n, "type": "any"} for i, n in enumerate(names)]
    next_id = iter(range(1, 1 << 30))
    parents: list[dict[str, Any]] = []
    children: dict[str, list[dict[str, Any]]] = {}
    for lab in labels_el.findall("label"):
        lname = lab.findtext("name", "").strip()
        if not lname:
            raise FormatError("a <label> has no <name>")
        kind = (lab.findtext("type") or "any").strip() or "any"
        entry: dict[str, Any] = {
            "id": next(next_id),
            "name": lname,
            "type": "rectangle" if kind == "box" else kind,
            "attributes": [
                _attribute(a, next(next_id)) for a in lab.findall("attributes/attribute")
            ],
            "svg": lab.findtext("svg") or "",
        }
        parent = (lab.findtext("parent") or "").strip()
        (children.setdefault(parent, []) if parent else parents).append(entry)
    for entry in parents:
        entry["sublabels"] = children.get(entry["name"], [])
    return parents


def _attribute(el: ET.Element, spec_id: int) -> dict[str, Any]:
    return {
        "id": spec_id,
        "name": el.findtext("name", "").strip(),
        "input_type": (el.findtext("input_type") or "text").strip(),
        "values": [v for v in (el.findtext("values") or "").split("\n") if v != ""],
        "default_value": el.findtext("default_value") or "",
        "mutable": (el.findtext("mutable") or "").strip().lower() == "true",
    }


class _Ids:
    """Label and attribute names → the ids given to them by :func:`_labels`."""

    def __init__(self, labels: list[dict[str, Any]]) -> None:
        self.label = {lab["name"]: lab["id"] for lab in labels}
        self.attr = {
            (lab["name"], a["name"]): a["id"] for lab in labels for a in lab.get("attributes", ())
        }
        self.element = {
            (lab["name"], s["name"]): s["id"] for lab in labels for s in lab.get("sublabels", ())
        }


def _image_meta(images: list[ET.Element], source: str) -> dict[str, Any]:
    frames, ids = [], []
    for n, img in enumerate(images):
        try:
            ids.append(to_int(img.get("id"), "id", lo=0))
            w = to_int(img.get("width", "0"), "width", lo=0)
            h = to_int(img.get("height", "0"), "height", lo=0)
        except ValidationError as exc:
            raise FormatError(f"{source}: <image> #{n} (name {img.get('name')!r}): {exc}") from None
        frames.append({"name": img.get("name", str(ids[-1])), "width": w, "height": h})
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise FormatError(f"{source}: <image id={dup}>: id: duplicate image id")
    in_file = list(ids)
    order = np.argsort(ids)
    ids = [ids[i] for i in order]
    frames = [frames[i] for i in order]
    # An export lists only some frames (a GT job's), so the ids are given explicitly.
    return {
        "start_frame": ids[0],
        "stop_frame": ids[-1],
        "frames": frames,
        "frame_ids": ids,
        "frame_ids_in_file": in_file,
    }


def _video_meta(root: ET.Element, owner: ET.Element | None, source: str) -> dict[str, Any]:
    """Frames of a video export: the job's range (or the highest frame used) at one size."""

    def number(el: ET.Element | None, key: str, where: str) -> int | None:
        text = el.findtext(key) if el is not None else None
        if text is None or not text.strip():
            return None
        try:
            return to_int(text, key, lo=0)
        except ValidationError as exc:
            raise FormatError(f"{source}: {where}: {exc}") from None

    size = root.find(".//meta//original_size")
    w = number(size, "width", "<original_size>") or 0
    h = number(size, "height", "<original_size>") or 0
    where = f"<meta><{owner.tag if owner is not None else 'job'}>"
    start = number(owner, "start_frame", where) or 0
    stop = number(owner, "stop_frame", where)
    if stop is None:
        used = []
        for el in root.iter():
            try:
                used.append(to_int(el.get("frame"), "frame", lo=0))
            except ValidationError:
                continue  # reported with its shape
        stop = max(used, default=start)
    if stop < start:
        raise FormatError(f"{source}: {where}: stop_frame {stop} is before start_frame {start}")
    if stop - start >= MAX_FRAMES:
        raise FormatError(f"{source}: {where}: frames {start}..{stop} are more than {MAX_FRAMES:,}")
    names = [{"name": f"frame_{f:06d}", "width": w, "height": h} for f in range(start, stop + 1)]
    return {"start_frame": start, "stop_frame": stop, "frames": names}


def _num(el: ET.Element, key: str) -> float:
    raw = el.get(key)
    if raw is None:
        raise ValidationError(f"missing attribute {key!r}")
    try:
        return float(raw)
    except ValueError:
        raise ValidationError(f"{key}={raw!r} is not a number") from None


def _points(text: str | None) -> list[float]:
    if text is None:
        raise ValidationError("missing points")
    try:
        return [float(v) for v in re.split(r"[;,]", text.strip()) if v.strip() != ""]
    except ValueError:
        raise ValidationError(f"points {text!r} is not a list of numbers") from None


def _geometry(el: ET.Element) -> list[float]:
    """An XML shape's coordinates in the API's ``points`` layout."""
    tag = el.tag
    if tag == "box":
        return [_num(el, k) for k in ("xtl", "ytl", "xbr", "ybr")]
    if tag == "ellipse":
        cx, cy, rx, ry = (_num(el, k) for k in ("cx", "cy", "rx", "ry"))
        return [cx, cy, cx + rx, cy - ry]
    if tag == "cuboid":
        return [
            _num(el, f"{c}{side}")
            for side in "12"
            for c in ("xtl", "ytl", "xbl", "ybl", "xtr", "ytr", "xbr", "ybr")
        ]
    if tag == "mask":
        runs = _points(el.get("rle"))
        left, top, bw, bh = (to_int(el.get(k), k, lo=0) for k in ("left", "top", "width", "height"))
        return [*runs, left, top, left + bw - 1, top + bh - 1]
    if tag == "skeleton":
        return []
    return _points(el.get("points"))


def _object(el: ET.Element, frame: int, ids: _Ids, oid: int) -> dict[str, Any] | None:
    """One ``<image>`` child (or track keyframe) as an API tag/shape dict.

    Numbers that do not parse (``group``, ``z_order``, ``rotation``) are passed on as text: the
    payload converter checks them, naming the field, as it does for the API.
    """
    if el.tag not in (*SHAPE_TAGS, "tag"):
        return None
    lname = el.get("label", "")
    obj: dict[str, Any] = {
        "id": oid,
        "frame": frame,
        "label_id": ids.label.get(lname, f"unknown label {lname!r}"),
        "group": _number(el.get("group_id"), int),
        "source": el.get("source") or "manual",
        "attributes": _attr_values(el, lname, ids),
    }
    if el.tag == "tag":
        return obj
    obj.update(_shape_fields(el, lname, ids))
    return obj


def _number(text: str | None, kind: type[int] | type[float]) -> int | float | str:
    """An XML number attribute as the API would send it (0 when absent).

    Text that is not a number is passed on unchanged, so the payload converter reports it as a
    data error of that object naming the field.
    """
    if text is None or not text.strip():
        return 0
    try:
        return kind(text)
    except ValueError:
        return text


def _shape_fields(el: ET.Element, lname: str, ids: _Ids) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "rectangle" if el.tag == "box" else el.tag,
        "occluded": el.get("occluded", "0") == "1",
        "outside": el.get("outside", "0") == "1",
        "z_order": _number(el.get("z_order"), int),
        "rotation": _number(el.get("rotation"), float),
    }
    try:
        out["points"] = _geometry(el)
        if el.tag == "skeleton":
            out["elements"] = [
                {
                    "label_id": ids.element.get((lname, p.get("label", "")), p.get("label", "")),
                    "points": _points(p.get("points")),
                    "occluded": p.get("occluded", "0") == "1",
                    "outside": p.get("outside", "0") == "1",
                }
                for p in el.findall("points")
            ]
    except ValidationError as exc:
        out["points"] = []
        out["error"] = f"<{el.tag}>: {exc}"
    return out


def _attr_values(el: ET.Element, lname: str, ids: _Ids) -> list[dict[str, Any]]:
    out = []
    for a in el.findall("attribute"):
        key = (lname, a.get("name", ""))
        if key in ids.attr:
            out.append({"spec_id": ids.attr[key], "value": a.text or ""})
    return out


def _track(track: ET.Element, ids: _Ids) -> dict[str, Any]:
    """A ``<track>`` as an API ``LabeledTrack`` dict (keyframes; skeleton elements as sub-tracks).

    A malformed keyframe makes the whole track one data error (``error``): its frames between
    keyframes cannot be interpolated without it.
    """
    lname = track.get("label", "")
    keyframes = [el for el in track if el.tag in SHAPE_TAGS]
    out: dict[str, Any] = {
        "id": _number(track.get("id"), int),
        "frame": 0,
        "label_id": ids.label.get(lname, f"unknown label {lname!r}"),
        "group": _number(track.get("group_id"), int),
        "source": track.get("source") or "manual",
        "attributes": [],
        "shapes": [],
    }
    elements: dict[str, list[dict[str, Any]]] = {}
    try:
        for n, el in enumerate(keyframes):
            try:
                frame = to_int(el.get("frame"), "frame", lo=0)
            except ValidationError as exc:
                raise ValidationError(f"keyframe #{n} <{el.tag}>: {exc}") from None
            shape = {"frame": frame, **_shape_fields(el, lname, ids)}
            if "error" in shape:
                raise ValidationError(f"keyframe #{n} at frame {frame}: {shape['error']}")
            shape["attributes"] = _attr_values(el, lname, ids)
            shape.pop("elements", None)
            out["shapes"].append(shape)
            for p in el.findall("points"):
                elements.setdefault(p.get("label", ""), []).append(
                    {
                        "frame": frame,
                        "type": "points",
                        "points": _points(p.get("points")),
                        "occluded": p.get("occluded", "0") == "1",
                        "outside": p.get("outside", "0") == "1",
                        "attributes": [],
                    }
                )
    except ValidationError as exc:
        out.update(error=f"<track id={track.get('id')!r}>: {exc}", frame=None)
        return out
    out["frame"] = min((s["frame"] for s in out["shapes"]), default=0)
    if elements:
        out["elements"] = [
            {"label_id": ids.element.get((lname, sub), sub), "shapes": s, "frame": out["frame"]}
            for sub, s in elements.items()
        ]
    return out
