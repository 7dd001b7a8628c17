"""Generate the bundled example dataset (seeded, reproducible).

One street-scene "truth" of 30 images (cars and persons as boxes, road signs as polygons, a
day/night tag per image) is drawn once. From it come:

- a ground-truth set on 12 validation frames;
- three annotators with realistic, different mistakes:
  * annotator1 — careful: small jitter, a few misses, rare label swaps;
  * annotator2 — loose boxes (sides pushed out 5-25%), more car/person swaps;
  * annotator3 — misses objects, adds extra boxes, mislabels the scene tag, and on a third of
    the images keeps the model's pre-annotations as they are (rubber-stamping);
- model predictions ("yolo-demo") used as pre-annotations.

Written as CVAT "for images 1.1" XML (``cvat/gt.xml``, ``cvat/annotator{1,2,3}.xml``,
``cvat/predictions.xml``), the ground truth as COCO instances JSON (``coco/gt.json``) and as one
Label Studio JSON export (``labelstudio/export.json``, every
annotator, gold tasks carrying a ground_truth annotation, predictions) with its label config.

Usage: ``python examples/make_examples.py [OUT_DIR]`` (default: the folder of this script).
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

SEED = 20261123
N_IMAGES = 30
N_GOLD = 12
WIDTH, HEIGHT = 640, 480
BOX_LABELS = ("car", "person")
POLY_LABEL = "road_sign"
TAGS = ("day", "night")
COLORS = ("red", "blue", "white", "black")
ANNOTATORS = ("annotator1", "annotator2", "annotator3")
EMAILS = {a: f"{a}@example.com" for a in ANNOTATORS} | {"lead": "lead@example.com"}
USER_IDS = {"lead": 1, "annotator1": 2, "annotator2": 3, "annotator3": 4}
MODEL = "yolo-demo"

LS_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="bbox" toName="image">
    <Label value="car" background="#1f77b4"/>
    <Label value="person" background="#ff7f0e"/>
  </RectangleLabels>
  <PolygonLabels name="sign" toName="image">
    <Label value="road_sign" background="#2ca02c"/>
  </PolygonLabels>
  <Choices name="color" toName="image" perRegion="true" choice="single">
    <Choice value="red"/>
    <Choice value="blue"/>
    <Choice value="white"/>
    <Choice value="black"/>
  </Choices>
  <Choices name="scene" toName="image" choice="single">
    <Choice value="day"/>
    <Choice value="night"/>
  </Choices>
</View>
"""


@dataclass(frozen=True)
class Obj:
    """One object of one image: a box (xyxy) or a polygon (k, 2), in pixels."""

    label: str
    box: tuple[float, float, float, float] | None = None
    poly: tuple[tuple[float, float], ...] | None = None
    color: str | None = None
    auto: bool = False  # kept from a pre-annotation


@dataclass(frozen=True)
class Frame:
    objects: tuple[Obj, ...]
    tag: str


def _clip_box(x1: float, y1: float, x2: float, y2: float) -> tuple[float, float, float, float]:
    x1, x2 = np.clip([x1, x2], 0, WIDTH)
    y1, y2 = np.clip([y1, y2], 0, HEIGHT)
    return (round(float(x1), 2), round(float(y1), 2), round(float(x2), 2), round(float(y2), 2))


def make_truth(rng: np.random.Generator) -> list[Frame]:
    frames = []
    for _ in range(N_IMAGES):
        objs: list[Obj] = []
        for _ in range(int(rng.integers(2, 6))):
            label = str(rng.choice(BOX_LABELS, p=[0.6, 0.4]))
            if label == "car":
                w, h = rng.uniform(60, 160), rng.uniform(40, 100)
            else:
                w, h = rng.uniform(20, 50), rng.uniform(60, 140)
            x, y = rng.uniform(0, WIDTH - w), rng.uniform(HEIGHT * 0.3, HEIGHT - h)
            color = str(rng.choice(COLORS)) if label == "car" else None
            objs.append(Obj(label, box=_clip_box(x, y, x + w, y + h), color=color))
        if rng.random() < 0.7:
            cx, cy, r = rng.uniform(60, WIDTH - 60), rng.uniform(50, 180), rng.uniform(18, 35)
            k = int(rng.choice([3, 4, 8]))
            ang = np.linspace(0, 2 * np.pi, k, endpoint=False) + rng.uniform(0, np.pi)
            pts = tuple(
                (round(float(cx + r * np.cos(a)), 2), round(float(cy + r * np.sin(a)), 2))
                for a in ang
            )
            objs.append(Obj(POLY_LABEL, poly=pts))
        frames.append(Frame(tuple(objs), str(rng.choice(TAGS, p=[0.7, 0.3]))))
    return frames


def _jitter(obj: Obj, rng: np.random.Generator, sigma: float, loose: float = 0.0) -> Obj:
    if obj.box is not None:
        x1, y1, x2, y2 = obj.box
        w, h = x2 - x1, y2 - y1
        grow = rng.uniform(0.05, loose, size=4) if loose else np.zeros(4)
        d = rng.normal(0, sigma, size=4)
        box = _clip_box(
            x1 - grow[0] * w + d[0],
            y1 - grow[1] * h + d[1],
            x2 + grow[2] * w + d[2],
            y2 + grow[3] * h + d[3],
        )
        return replace(obj, box=box)
    pts = np.asarray(obj.poly or ()) + rng.normal(0, sigma, size=(len(obj.poly), 2))
    return replace(obj, poly=tuple((round(float(x), 2), round(float(y), 2)) for x, y in pts))


def _swap(label: str) -> str:
    return {"car": "person", "person": "car"}.get(label, label)


def _extra(rng: np.random.Generator) -> Obj:
    w, h = rng.uniform(30, 90), rng.uniform(30, 90)
    x, y = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
    label = str(rng.choice(BOX_LABELS))
    return Obj(label, box=_clip_box(x, y, x + w, y + h), color="red" if label == "car" else None)


def annotate(
    truth: Frame,
    rng: np.random.Generator,
    *,
    sigma: float,
    miss: float,
    swap: float,
    extra: float,
    tag_error: float,
    color_error: float,
    loose: float = 0.0,
    auto: bool = False,
) -> Frame:
    """One annotator's (or model's) version of a frame, with the given error rates."""
    out = []
    for obj in truth.objects:
        if rng.random() < miss:
            continue
        o = _jitter(obj, rng, sigma, loose if obj.box is not None else 0.0)
        if rng.random() < swap:
            o = replace(o, label=_swap(o.label))
        if o.label == "car":
            color = o.color or "red"
            if rng.random() < color_error:
                color = str(rng.choice([c for c in COLORS if c != color]))
            o = replace(o, color=color)
        else:
            o = replace(o, color=None)
        out.append(replace(o, auto=auto))
    n_extra = rng.poisson(extra)
    out.extend(replace(_extra(rng), auto=auto) for _ in range(n_extra))
    tag = truth.tag if rng.random() >= tag_error else ("night" if truth.tag == "day" else "day")
    return Frame(tuple(out), tag)


PROFILES = {
    "annotator1": dict(
        sigma=1.5, miss=0.04, swap=0.03, extra=0.05, tag_error=0.0, color_error=0.05
    ),
    "annotator2": dict(
        sigma=2.5, miss=0.05, swap=0.10, extra=0.1, tag_error=0.05, color_error=0.1, loose=0.22
    ),
    "annotator3": dict(sigma=3.0, miss=0.15, swap=0.05, extra=0.35, tag_error=0.2, color_error=0.1),
}
MODEL_PROFILE = dict(sigma=3.0, miss=0.1, swap=0.1, extra=0.25, tag_error=0.1, color_error=0.2)


def build(seed: int = SEED) -> dict[str, list[Frame]]:
    """All sources by name: "truth", the annotators and "predictions", one Frame per image."""
    rng = np.random.default_rng(seed)
    truth = make_truth(rng)
    preds = [annotate(f, rng, **MODEL_PROFILE, auto=True) for f in truth]  # type: ignore[arg-type]
    sources: dict[str, list[Frame]] = {"truth": truth, "predictions": preds}
    for name, profile in PROFILES.items():
        frames = [annotate(f, rng, **profile) for f in truth]  # type: ignore[arg-type]
        if name == "annotator3":
            # Rubber-stamping: every third image keeps the model's pre-annotation untouched.
            frames = [preds[i] if i % 3 == 0 else fr for i, fr in enumerate(frames)]
        sources[name] = frames
    return sources


def gold_frames() -> list[int]:
    """The validation frames: every 5th image plus a few more, 12 in all."""
    return sorted({*range(0, N_IMAGES, 5), 2, 7, 13, 19, 24, 28})[:N_GOLD]


def image_name(i: int) -> str:
    return f"street_{i:03d}.jpg"


# --- CVAT XML ------------------------------------------------------------------------------


def _cvat_meta(root: ET.Element, name: str, frames: list[int]) -> None:
    meta = ET.SubElement(root, "meta")
    job = ET.SubElement(meta, "job")
    for key, value in (
        ("id", "1"),
        ("size", str(len(frames))),
        ("mode", "annotation"),
        ("overlap", "0"),
        ("start_frame", "0"),
        ("stop_frame", str(N_IMAGES - 1)),
    ):
        ET.SubElement(job, key).text = value
    ET.SubElement(job, "name").text = name
    labels = ET.SubElement(job, "labels")
    specs = [
        ("car", "rectangle"),
        ("person", "rectangle"),
        (POLY_LABEL, "polygon"),
        ("day", "tag"),
        ("night", "tag"),
    ]
    for lname, ltype in specs:
        lab = ET.SubElement(labels, "label")
        ET.SubElement(lab, "name").text = lname
        ET.SubElement(lab, "type").text = ltype
        attrs = ET.SubElement(lab, "attributes")
        if lname == "car":
            a = ET.SubElement(attrs, "attribute")
            ET.SubElement(a, "name").text = "color"
            ET.SubElement(a, "mutable").text = "False"
            ET.SubElement(a, "input_type").text = "select"
            ET.SubElement(a, "default_value").text = "red"
            ET.SubElement(a, "values").text = "\n".join(COLORS)


def to_cvat_xml(frames: list[Frame], indices: list[int], name: str) -> bytes:
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    _cvat_meta(root, name, indices)
    for i in indices:
        fr = frames[i]
        img = ET.SubElement(
            root, "image", id=str(i), name=image_name(i), width=str(WIDTH), height=str(HEIGHT)
        )
        for z, obj in enumerate(fr.objects):
            common = {
                "label": obj.label,
                "source": "auto" if obj.auto else "manual",
                "occluded": "0",
                "z_order": str(z % 2),
                "group_id": "0",
            }
            if obj.box is not None:
                x1, y1, x2, y2 = obj.box
                el = ET.SubElement(
                    img,
                    "box",
                    common,
                    xtl=f"{x1:.2f}",
                    ytl=f"{y1:.2f}",
                    xbr=f"{x2:.2f}",
                    ybr=f"{y2:.2f}",
                    rotation="0.0",
                )
            else:
                pts = ";".join(f"{x:.2f},{y:.2f}" for x, y in obj.poly or ())
                el = ET.SubElement(img, "polygon", common, points=pts)
            del el.attrib["group_id"]
            if obj.color is not None:
                ET.SubElement(el, "attribute", name="color").text = obj.color
        ET.SubElement(
            img,
            "tag",
            label=fr.tag,
            source="auto" if fr.objects and fr.objects[0].auto else "manual",
        )
    ET.indent(root)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8")


# --- Label Studio JSON export --------------------------------------------------------------


def _pct(v: float, size: int) -> float:
    return round(v / size * 100.0, 4)


def ls_result(fr: Frame, prefix: str) -> list[dict]:
    """Label Studio result regions for one frame (percent coordinates, shared region ids)."""
    out: list[dict] = []
    size = {"original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0}
    for k, obj in enumerate(fr.objects):
        rid = f"{prefix}{k}"
        if obj.box is not None:
            x1, y1, x2, y2 = obj.box
            geom = {
                "x": _pct(x1, WIDTH),
                "y": _pct(y1, HEIGHT),
                "width": _pct(x2 - x1, WIDTH),
                "height": _pct(y2 - y1, HEIGHT),
                "rotation": 0,
            }
            out.append(
                {
                    "id": rid,
                    "from_name": "bbox",
                    "to_name": "image",
                    "type": "rectanglelabels",
                    **size,
                    "value": {**geom, "rectanglelabels": [obj.label]},
                    "origin": "prediction" if obj.auto else "manual",
                }
            )
            if obj.color is not None:
                out.append(
                    {
                        "id": rid,
                        "from_name": "color",
                        "to_name": "image",
                        "type": "choices",
                        **size,
                        "value": {**geom, "choices": [obj.color]},
                    }
                )
        else:
            pts = [[_pct(x, WIDTH), _pct(y, HEIGHT)] for x, y in obj.poly or ()]
            out.append(
                {
                    "id": rid,
                    "from_name": "sign",
                    "to_name": "image",
                    "type": "polygonlabels",
                    **size,
                    "value": {"points": pts, "closed": True, "polygonlabels": [obj.label]},
                    "origin": "prediction" if obj.auto else "manual",
                }
            )
    out.append(
        {
            "id": f"{prefix}scene",
            "from_name": "scene",
            "to_name": "image",
            "type": "choices",
            "value": {"choices": [fr.tag]},
        }
    )
    return out


def to_ls_export(sources: dict[str, list[Frame]], rng: np.random.Generator) -> list[dict]:
    gold = set(gold_frames())
    tasks = []
    ann_id = 1000
    for i in range(N_IMAGES):
        task_id = i + 1
        annotations = []
        if i in gold:
            ann_id += 1
            annotations.append(
                _ls_annotation(
                    ann_id, "lead", sources["truth"][i], task_id, ground_truth=True, lead_time=60.0
                )
            )
        for name in ANNOTATORS:
            ann_id += 1
            speed = {"annotator1": 45.0, "annotator2": 30.0, "annotator3": 14.0}[name]
            lead = round(float(rng.gamma(4.0, speed / 4.0)), 2)
            annotations.append(
                _ls_annotation(
                    ann_id, name, sources[name][i], task_id, ground_truth=False, lead_time=lead
                )
            )
        pred = sources["predictions"][i]
        tasks.append(
            {
                "id": task_id,
                "data": {"image": f"/data/upload/1/{image_name(i)}"},
                "meta": {},
                "annotations": annotations,
                "predictions": [
                    {
                        "id": 500 + task_id,
                        "model_version": MODEL,
                        "score": 0.8,
                        "result": [{**r, "score": 0.8} for r in ls_result(pred, f"p{task_id}_")],
                    }
                ],
                "created_at": "2026-11-01T09:00:00.000000Z",
                "updated_at": "2026-11-02T17:00:00.000000Z",
                "inner_id": task_id,
                "project": 1,
            }
        )
    return tasks


def _ls_annotation(
    ann_id: int, who: str, fr: Frame, task_id: int, *, ground_truth: bool, lead_time: float
) -> dict:
    # Rubber-stamped frames keep the prediction's region ids, as Label Studio does when a
    # pre-annotation is accepted unchanged.
    prefix = f"p{task_id}_" if fr.objects and fr.objects[0].auto else f"a{ann_id}_"
    day = 2 + (ann_id % 5)
    return {
        "id": ann_id,
        "completed_by": {
            "id": USER_IDS[who],
            "email": EMAILS[who],
            "first_name": "",
            "last_name": "",
        },
        "result": ls_result(fr, prefix),
        "was_cancelled": False,
        "ground_truth": ground_truth,
        "created_at": f"2026-11-0{day}T10:{ann_id % 60:02d}:00.000000Z",
        "updated_at": f"2026-11-0{day}T10:{ann_id % 60:02d}:30.000000Z",
        "lead_time": lead_time,
        "task": task_id,
        "project": 1,
        "parent_prediction": 500 + task_id if prefix.startswith("p") else None,
    }


def to_coco(frames: list[Frame], indices: list[int]) -> dict:
    """COCO instances JSON of the given frames (boxes and polygons; COCO has no image tags)."""
    cats = [{"id": i + 1, "name": n} for i, n in enumerate((*BOX_LABELS, POLY_LABEL))]
    cat_id = {c["name"]: c["id"] for c in cats}
    images, anns = [], []
    for i in indices:
        images.append({"id": i, "file_name": image_name(i), "width": WIDTH, "height": HEIGHT})
        for obj in frames[i].objects:
            ann: dict = {
                "id": len(anns) + 1,
                "image_id": i,
                "category_id": cat_id[obj.label],
                "iscrowd": 0,
            }
            if obj.box is not None:
                x1, y1, x2, y2 = obj.box
                ann.update(
                    bbox=[x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                    area=round((x2 - x1) * (y2 - y1), 2),
                )
            else:
                pts = np.asarray(obj.poly)
                ann.update(
                    segmentation=[pts.ravel().round(2).tolist()],
                    bbox=[
                        *pts.min(0).round(2).tolist(),
                        *(pts.max(0) - pts.min(0)).round(2).tolist(),
                    ],
                )
            if obj.color is not None:
                ann["attributes"] = {"color": obj.color}
            anns.append(ann)
    return {"images": images, "annotations": anns, "categories": cats}


def main(out_dir: Path) -> None:
    sources = build()
    cvat = out_dir / "cvat"
    ls = out_dir / "labelstudio"
    cvat.mkdir(parents=True, exist_ok=True)
    ls.mkdir(parents=True, exist_ok=True)
    all_frames = list(range(N_IMAGES))
    (cvat / "gt.xml").write_bytes(to_cvat_xml(sources["truth"], gold_frames(), "gt"))
    for name in ANNOTATORS:
        (cvat / f"{name}.xml").write_bytes(to_cvat_xml(sources[name], all_frames, name))
    (cvat / "predictions.xml").write_bytes(
        to_cvat_xml(sources["predictions"], all_frames, "predictions")
    )
    coco = out_dir / "coco"
    coco.mkdir(parents=True, exist_ok=True)
    (coco / "gt.json").write_text(json.dumps(to_coco(sources["truth"], gold_frames()), indent=1))
    export = to_ls_export(sources, np.random.default_rng(SEED + 1))
    (ls / "export.json").write_text(json.dumps(export, indent=1) + "\n")
    (ls / "config.xml").write_text(LS_CONFIG)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
