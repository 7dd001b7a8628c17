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

Video ("CVAT for video 1.1", ``--tracks`` tracks of rectangles over ``--track-frames`` frames with
a keyframe every ``--key-every`` frames and attributes changing at keyframes): two files of the
same tracks. "every frame" is what CVAT writes (each track lists every frame of its range,
``keyframe="0"`` on the interpolated ones), so the reader and the bare iterparse loop (the four
coordinates of each ``<box>``) handle the same boxes: a target row (>= 0.8x). "keyframes only"
lists just the keyframes, so the reader interpolates ten rows per element the loop converts: an
information row (the ratio of the two times; the loop produces a tenth of the boxes).

Without ``--only``, the image and video sections run one after the other, each in a fresh
process (as ``--only images`` and ``--only video``).

Usage: python bench/readers.py [--frames 4000] [--per-frame 50] [--repeat 3] [--tracks 2000]
    [--track-frames 100] [--key-every 10] [--only images|video]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

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


def bare_iterparse(path: Path, container: str = "image") -> int:
    """The peer: iterparse, converting only the four coordinates of each ``<box>``, each
    ``container`` element (``image``; ``track`` for video) cleared once read."""
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
        elif el.tag == container:
            el.clear()
    return len(out)


def write_cvat_video(
    path: Path, tracks: int, frames: int, key_every: int, seed: int, every_frame: bool
) -> int:
    """A "CVAT for video 1.1" job export of rectangle tracks; returns the boxes it describes.

    Each track spans the job, moves linearly between keyframes (its attribute changing at
    some) and stays put after the last one; ``every_frame`` writes the interpolated frames too
    (as CVAT exports), each box with the attribute of its keyframe.
    """
    r = random.Random(seed)
    described = 0
    with path.open("w") as f:
        f.write('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n')
        f.write(f"  <meta>\n    <job>\n      <id>1</id>\n      <size>{frames}</size>\n")
        f.write("      <mode>interpolation</mode>\n      <start_frame>0</start_frame>\n")
        f.write(f"      <stop_frame>{frames - 1}</stop_frame>\n      <labels>\n")
        for name in LABELS:
            f.write(
                f"        <label>\n          <name>{name}</name>\n          <type>rectangle</type>\n"
                "          <attributes>\n            <attribute>\n              <name>color</name>\n"
                "              <mutable>True</mutable>\n              <input_type>select</input_type>\n"
                "              <default_value>red</default_value>\n"
                "              <values>red\ngreen</values>\n            </attribute>\n"
                "          </attributes>\n        </label>\n"
            )
        f.write("      </labels>\n    </job>\n    <original_size>\n      <width>1920</width>\n")
        f.write("      <height>1080</height>\n    </original_size>\n  </meta>\n")
        for t in range(tracks):
            lab = r.choice(LABELS)
            f.write(f'  <track id="{t}" label="{lab}" source="manual">\n')
            keys = list(range(0, frames, key_every))
            points = [
                (
                    r.uniform(0, W - 200),
                    r.uniform(0, H - 120),
                    r.uniform(20, 100),
                    r.uniform(20, 60),
                )
                for _ in keys
            ]
            color = [("red", "green")[r.randrange(2)] for _ in keys]
            for k, f0 in enumerate(keys):
                last = k == len(keys) - 1
                stop = frames if last else keys[k + 1]
                for frame in range(f0, stop if every_frame else f0 + 1):
                    x, y, w, h = points[k]
                    if not last:
                        t_ = (frame - f0) / (stop - f0)
                        x2, y2, w2, h2 = points[k + 1]
                        h += (h2 - h) * t_
                        x, y, w = x + (x2 - x) * t_, y + (y2 - y) * t_, w + (w2 - w) * t_
                    f.write(
                        f'    <box frame="{frame}" keyframe="{int(frame == f0)}" outside="0" '
                        f'occluded="0" xtl="{x:.2f}" ytl="{y:.2f}" xbr="{x + w:.2f}" '
                        f'ybr="{y + h:.2f}" z_order="0">\n'
                        f'      <attribute name="color">{color[k]}</attribute>\n    </box>\n'
                    )
                described += stop - f0
            f.write("  </track>\n")
        f.write("</annotations>\n")
    return described


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


def _row(
    name: str,
    path: Path,
    reader: Callable[[Path], int],
    peer: Callable[[Path], int],
    peer_name: str,
    expect: tuple[int, int],
    repeat: int,
    target: float | None,
) -> bool:
    """Time reader and peer (best CPU time of ``repeat`` interleaved runs) and print the row.

    ``expect`` is (rows the reader must produce, rows the peer must produce); the ratio is the
    peer's time over the reader's (on the same file). ``target`` None prints it as information.
    Returns False on a miss or a wrong count.
    """
    ours, theirs = [], []
    good = True
    for _ in range(repeat):
        dt, n = _best(reader, path)
        ours.append(dt)
        dt_peer, n_peer = _best(peer, path)
        theirs.append(dt_peer)
        if (n, n_peer) != expect:
            print(
                f"{name}: read {n:,} rows, peer {n_peer:,}; expected {expect[0]:,}, {expect[1]:,}"
            )
            good = False
    ratio = min(theirs) / min(ours)
    verdict = "info" if target is None else ("ok" if ratio >= target else "MISS")
    goal = "(information)" if target is None else f"(target >= {target})"
    print(
        f"{name:18s} {expect[0] / min(ours):>11,.0f} boxes/s ({min(ours):.3f} s)   "
        f"{peer_name} {expect[1] / min(theirs):>11,.0f}/s ({min(theirs):.3f} s)   "
        f"ratio {ratio:.2f} {goal}   {verdict}   [{path.stat().st_size / 1e6:.0f} MB]"
    )
    return good and (target is None or ratio >= target)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=4000)
    ap.add_argument("--per-frame", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tracks", type=int, default=2000)
    ap.add_argument("--track-frames", type=int, default=100)
    ap.add_argument("--key-every", type=int, default=10)
    ap.add_argument("--only", choices=("images", "video"))
    args = ap.parse_args()
    if args.only is None:
        # Each section in a process of its own: a section's timings must not depend on the
        # heap the sections before it left behind (the image rows' freed memory made the bare
        # loop of the video rows 6% faster and the readers no faster).
        status = 0
        for section in ("images", "video"):
            argv = [sys.executable, __file__, *sys.argv[1:], "--only", section]
            status |= subprocess.run(argv, check=False).returncode
        return 1 if status else 0
    with tempfile.TemporaryDirectory() as tmp:
        good = (_images if args.only == "images" else _video)(Path(tmp), args)
    return 0 if good else 1


def _images(tmp: Path, args: argparse.Namespace) -> bool:
    boxes = _boxes(args.frames, args.per_frame, seed=0)
    total = args.frames * args.per_frame
    rows = [
        ("CVAT XML", "job.xml", write_cvat_xml, read_cvat_xml, bare_iterparse, "bare iterparse"),
        ("COCO", "coco.json", write_coco, read_coco, bare_coco, "bare json.load"),
        ("Label Studio JSON", "ls.json", write_ls, read_ls_export, bare_ls, "bare json.load"),
    ]
    targets = {"CVAT XML": 0.8, "COCO": 0.5, "Label Studio JSON": 0.5}
    good = True
    print(f"readers: {args.frames} frames x {args.per_frame} boxes = {total:,} boxes per file")
    for name, fname, write, read, peer, peer_name in rows:
        path = tmp / fname
        write(path, boxes)

        def reader(p: Path, read: Callable[[Path], Any] = read) -> int:
            return len(read(p).annotations)

        good &= _row(
            name, path, reader, peer, peer_name, (total, total), args.repeat, targets[name]
        )
    return good


def _video(tmp: Path, args: argparse.Namespace) -> bool:
    good = True
    keys = -(-args.track_frames // args.key_every)
    print(
        f"video: {args.tracks} tracks x {args.track_frames} frames, a keyframe every "
        f"{args.key_every} = {args.tracks * args.track_frames:,} boxes per file"
    )
    for every_frame, name in ((True, "video every frame"), (False, "video keyframes")):
        path = tmp / f"video_{int(every_frame)}.xml"
        total = write_cvat_video(
            path, args.tracks, args.track_frames, args.key_every, 0, every_frame
        )
        in_file = total if every_frame else args.tracks * keys

        def reader(p: Path) -> int:
            return len(read_cvat_xml(p).annotations)

        good &= _row(
            name,
            path,
            reader,
            partial(bare_iterparse, container="track"),
            "bare iterparse",
            (total, in_file),
            args.repeat,
            0.8 if every_frame else None,
        )
    return good


if __name__ == "__main__":
    sys.exit(main())
