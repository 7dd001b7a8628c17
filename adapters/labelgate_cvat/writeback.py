"""The common model → CVAT ``LabeledData`` (the inverse of :mod:`labelgate_cvat.payloads`).

Used to write merged consensus annotations into a parent job. Masks are encoded with
``cvat_sdk.masks.encode_mask`` (CVAT's own encoder); labels, skeleton points and attributes are
written back with the ids the schema kept from CVAT.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labelgate.errors import ValidationError
from labelgate.io.rle import decode_column_major
from labelgate.model import ABSENT, HIDDEN, AnnotationSet, Kind, LabelSchema

_TYPE = {
    Kind.RECTANGLE: "rectangle",
    Kind.POLYGON: "polygon",
    Kind.POLYLINE: "polyline",
    Kind.POINTS: "points",
    Kind.ELLIPSE: "ellipse",
    Kind.MASK: "mask",
    Kind.SKELETON: "skeleton",
    Kind.CUBOID: "cuboid",
}


def _attributes(schema: LabelSchema, label: int, aset: AnnotationSet, row: int) -> list[Any]:
    out = []
    for spec in schema.labels[label].attributes:
        col = aset.annotations.attributes.get(spec.name)
        if spec.id is None or col is None:
            continue
        value = col[row]
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        if isinstance(value, (bool, np.bool_)):
            text = "true" if value else "false"
        elif isinstance(value, float) and value.is_integer():
            text = str(int(value))
        else:
            text = str(value)
        out.append({"spec_id": spec.id, "value": text})
    return out


def annotations_to_cvat(aset: AnnotationSet, *, source: str = "consensus") -> dict[str, Any]:
    """An annotation set as a CVAT ``LabeledData`` dict (tags and shapes; no tracks).

    Raises:
        ValidationError: a label without a CVAT id (the set did not come from CVAT).
    """
    from cvat_sdk.masks import encode_mask

    schema = aset.schema
    ann = aset.annotations
    width = {int(i): int(w) for i, w in zip(aset.items.id, aset.items.width, strict=True)}
    height = {int(i): int(h) for i, h in zip(aset.items.id, aset.items.height, strict=True)}
    tags: list[dict[str, Any]] = []
    shapes: list[dict[str, Any]] = []
    for r in range(len(ann)):
        label = int(ann.label[r])
        lab = schema.labels[label]
        if lab.id is None:
            raise ValidationError(f"label {lab.name!r} has no CVAT id; cannot write it to CVAT")
        frame = int(ann.item[r])
        base: dict[str, Any] = {
            "frame": frame,
            "label_id": lab.id,
            "group": int(ann.group[r]),
            "source": source,
            "attributes": _attributes(schema, label, aset, r),
        }
        kind = Kind(int(ann.kind[r]))
        if kind == Kind.TAG:
            tags.append(base)
            continue
        if kind not in _TYPE:
            continue
        x1, y1, x2, y2 = (float(v) for v in ann.bbox[r])
        shape = {
            **base,
            "type": _TYPE[kind],
            "occluded": bool(ann.occluded[r]),
            "outside": False,
            "z_order": int(ann.z_order[r]),
            "rotation": float(ann.rotation[r]),
        }
        if kind == Kind.RECTANGLE:
            shape["points"] = [x1, y1, x2, y2]
        elif kind == Kind.ELLIPSE:
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            shape["points"] = [cx, cy, x2, y1]
        elif kind == Kind.MASK:
            h, w = height[frame], width[frame]
            bitmap = decode_column_major(ann.rle_of(r), h, w).astype(bool)
            shape["points"] = [float(v) for v in encode_mask(bitmap)]
        elif kind == Kind.SKELETON:
            pts, vis = ann.points_of(r), ann.vis_of(r)
            shape["points"] = []
            shape["elements"] = [
                {
                    "type": "points",
                    "frame": frame,
                    "label_id": sub.id,
                    "points": [float(v) for v in pts[j]],
                    "occluded": int(vis[j]) == HIDDEN,
                    "outside": int(vis[j]) == ABSENT,
                    "z_order": 0,
                    "rotation": 0.0,
                    "group": 0,
                    "source": source,
                    "attributes": [],
                }
                for j, sub in enumerate(lab.sublabels)
            ]
        else:
            shape["points"] = [float(v) for v in ann.points_of(r).reshape(-1)]
        shapes.append(shape)
    return {"version": 0, "tags": tags, "shapes": shapes, "tracks": []}


def labeled_data_request(payload: dict[str, Any]) -> Any:
    """The ``LabeledData`` dict as cvat-sdk's ``LabeledDataRequest`` model (validated)."""
    from cvat_sdk import models

    def attrs(rows: list[dict[str, Any]]) -> list[Any]:
        return [models.AttributeValRequest(spec_id=a["spec_id"], value=a["value"]) for a in rows]

    def shape(s: dict[str, Any], cls: Any) -> Any:
        fields = {
            k: s[k]
            for k in ("frame", "label_id", "occluded", "outside", "z_order", "rotation", "source")
            if k in s
        }
        extra = {"group": s["group"]} if "group" in s else {}
        return cls(
            type=models.ShapeType(s["type"]),
            points=[float(v) for v in s["points"]],
            attributes=attrs(s.get("attributes", [])),
            **fields,
            **extra,
        )

    shapes = []
    for s in payload["shapes"]:
        elements = [shape(e, models.SubLabeledShapeRequest) for e in s.get("elements", [])]
        obj = shape(s, models.LabeledShapeRequest)
        if elements:
            obj.elements = elements
        shapes.append(obj)
    tags = [
        models.LabeledImageRequest(
            frame=t["frame"],
            label_id=t["label_id"],
            group=t["group"],
            source=t["source"],
            attributes=attrs(t["attributes"]),
        )
        for t in payload["tags"]
    ]
    return models.LabeledDataRequest(version=0, tags=tags, shapes=shapes, tracks=[])
