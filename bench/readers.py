"""Benchmark the export readers against bare stdlib loops over the same files.

Seeded synthetic files written to a temporary directory: a CVAT XML export ("CVAT for images
1.1", 4,000 frames x 50 boxes, each box with one attribute, as CVAT writes them), a COCO
instances file and a Label Studio JSON export of the same boxes. Each reader is timed next to
its peer in the same run (best of ``--repeat`` runs, interleaved, in CPU time of this process:
every reader and peer is single-threaded, and CPU time does not count the other processes
sharing the machine's cores, which wall time does): for CVAT XML a bare
``xml.etree.ElementTree.iterparse`` loop that only converts the four coordinates; for COCO and
Label Studio a bare ``json.load`` plus a loop over the annotations/results. Targets (issue #17):
CVAT XML >= 0.8x the peer's boxes/s, COCO and Label Studio >= 0.5x. Exit status 1 on a miss.

Usage: python bench/readers.py [--frames 4000] [--per-frame 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from labelgate.io.coco import read_coco
from labelgate_cvat.xml_export import read_cvat_xml
from labelgate_labelstudio.json_export import read_ls_export

LABELS = ("car", "person", "bike")
W, H = 1920, 1080


def _boxes(
    frames: int, per_frame: int, seed: int
) -> list[list[tuple[str, float, float, float, float]]]:
    r = random.Random(seed)
    out = []
    for _ in range(frames):
        row = []
        for _ in range(per_frame):
            x, y = r.uniform(0, W - 100), r.uniform(0, H - 60)
            row.append((r.choice(LABELS), x, y, x + r.uniform(1, 100), y + r.uniform(1, 60)))
        out.append(row)
    return out


def write_cvat_xml(path: Path, boxes: list[list[tuple[str, float, float, float, float]]]) -> None:
    """A "CVAT for images 1.1" job export: labels with one select attribute, one box per line."""
    with path.open("w") as f:
        f.write('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n')
        f.write(f"  <meta>\n    <job>\n      <id>1</id>\n      <size>{len(boxes)}</size>\n")
        f.write("      <mode>annotation</mode>\n      <labels>\n")
        for name in LABELS:
            f.write(
                f"        <label>\n          <name>{name}</name>\n          <type>rectangle</type>\n"
                "          <attributes>\n            <attribute>\n              <name>color</name>\n"
                "              <mutable>False</mutable>\n              <input_type>select</input_type>\n"
                "              <default_value>red</default_value>\n"
                "              <values>red\ngreen</values>\n            </attribute>\n"
                "          </attributes>\n        </label>\n"
            )
        f.write("      </labels>\n    </job>\n  </meta>\n")
        for i, row in enumerate(boxes):
            f.write(f'  <image id="{i}" name="frame_{i:06d}.jpg" width="{W}" height="{H}">\n')
            for n, (lab, x1, y1, x2, y2) in enumerate(row):
                f.write(
                    f'    <box label="{lab}" source="manual" occluded="0" xtl="{x1:.2f}" '
                    f'ytl="{y1:.2f}" xbr="{x2:.2f}" ybr="{y2:.2f}" z_order="0">\n'
                    f'      <attribute name="color">{("red", "green")[n % 2]}</attribute>\n'
                    "    </box>\n"
                )
            f.write("  </image>\n")
        f.write("</annotations>\n")


def write_coco(path: Path, boxes: list[list[tuple[str, float, float, float, float]]]) -> None:
    anns = []
    for i, row in enumerate(boxes):
        for lab, x1, y1, x2, y2 in row:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": LABELS.index(lab) + 1,
                    "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                    "area": 1.0,
                    "iscrowd": 0,
                }
            )
    data = {
        "images": [
            {"id": i, "file_name": f"f{i}.jpg", "width": W, "height": H} for i in range(len(boxes))
        ],
        "categories": [{"id": n + 1, "name": lab} for n, lab in enumerate(LABELS)],
        "annotations": anns,
    }
    path.write_text(json.dumps(data))


def write_ls(path: Path, boxes: list[list[tuple[str, float, float, float, float]]]) -> None:
    tasks = []
    for i, row in enumerate(boxes):
        results = [
            {
                "id": f"r{i}_{n}",
                "type": "rectanglelabels",
                "from_name": "label",
                "to_name": "image",
                "original_width": W,
                "original_height": H,
                "value": {
                    "x": x1 / W * 100,
                    "y": y1 / H * 100,
                    "width": (x2 - x1) / W * 100,
                    "height": (y2 - y1) / H * 100,
                    "rotation": 0,
                    "rectanglelabels": [lab],
                },
            }
            for n, (lab, x1, y1, x2, y2) in enumerate(row)
        ]
        tasks.append(
            {
                "id": i + 1,
                "data": {"image": f"/data/f{i}.jpg"},
                "annotations": [{"id": i + 1, "completed_by": 1, "result": results}],
            }
        )
    path.write_text(json.dumps(tasks))
    labels = "".join(f'<Label value="{lab}"/>' for lab in LABELS)
    (path.parent / "config.xml").write_text(
        '<View><Image name="image" value="$image"/>'
        f'<RectangleLabels name="label" toName="image">{labels}</RectangleLabels></View>'
    )


def bare_iterparse(path: Path) -> int:
    """The peer: iterparse, converting only the four coordinates of each box."""
    out = []
    for _, el in ET.iterparse(path):
        if el.tag == "box":
            out.append(
                (
                    float(el.get("xtl")),
                    float(el.get("ytl")),
                    float(el.get("xbr")),
                    float(el.get("ybr")),
                )
            )  # type: ignore[arg-type]
        elif el.tag == "image":
            el.clear()
    return len(out)


def bare_coco(path: Path) -> int:
    with path.open() as f:
        data = json.load(f)
    out = [(a["image_id"], a["category_id"], *a["bbox"]) for a in data["annotations"]]
    return len(out)


def bare_ls(path: Path) -> int:
    with path.open() as f:
        data = json.load(f)
    out = []
    for task in data:
        for ann in task["annotations"]:
            for r in ann["result"]:
                v = r["value"]
                out.append((v["x"], v["y"], v["width"], v["height"], v["rectanglelabels"][0]))
    return len(out)


def _best(fn: Callable[[Path], int], path: Path) -> tuple[float, int]:
    t = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file must read without a data warning
        n = fn(path)
    return time.process_time() - t, n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=4000)
    ap.add_argument("--per-frame", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    boxes = _boxes(args.frames, args.per_frame, seed=0)
    total = args.frames * args.per_frame
    rows = [
        (
            "CVAT XML",
            "job.xml",
            write_cvat_xml,
            lambda p: len(read_cvat_xml(p).annotations),
            bare_iterparse,
            "bare iterparse",
            0.8,
        ),
        (
            "COCO",
            "coco.json",
            write_coco,
            lambda p: len(read_coco(p).annotations),
            bare_coco,
            "bare json.load",
            0.5,
        ),
        (
            "Label Studio JSON",
            "ls.json",
            write_ls,
            lambda p: len(read_ls_export(p).annotations),
            bare_ls,
            "bare json.load",
            0.5,
        ),
    ]
    failed = False
    print(f"readers: {args.frames} frames x {args.per_frame} boxes = {total:,} boxes per file")
    with tempfile.TemporaryDirectory() as tmp:
        for name, fname, write, reader, peer, peer_name, target in rows:
            path = Path(tmp) / fname
            write(path, boxes)
            ours, theirs = [], []
            for _ in range(args.repeat):
                dt, n = _best(reader, path)
                ours.append(dt)
                dt_peer, n_peer = _best(peer, path)
                theirs.append(dt_peer)
                if n != total or n_peer != total:
                    print(f"{name}: read {n:,} rows, peer {n_peer:,}; expected {total:,}")
                    failed = True
            rate, peer_rate = total / min(ours), total / min(theirs)
            ratio = rate / peer_rate
            ok = ratio >= target
            failed |= not ok
            print(
                f"{name:18s} {rate:>11,.0f} boxes/s   {peer_name} {peer_rate:>11,.0f}/s   "
                f"ratio {ratio:.2f} (target >= {target})   {'ok' if ok else 'MISS'}   "
                f"[{path.stat().st_size / 1e6:.0f} MB]"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
