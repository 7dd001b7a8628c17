"""End-to-end benchmark: the user's whole path, export files to JSON and page, as one process.

Writes a seeded CVAT-for-images XML pair (ground truth and one annotator: by default 20,000
frames x 50 boxes each, 2M boxes in all; the annotator's boxes jittered, some dropped, some
added, some relabelled), then times in the same run:

- the peer: a bare stdlib ``xml.etree.ElementTree.iterparse`` loop over both files that only
  converts the four box coordinates (the least any reader must do);
- ``labelgate report --gt gt.xml --ds ds.xml --json out.json --html out.html`` as a separate
  process, wall time and peak RSS (``wait4``'s ru_maxrss).

Targets (from the end-to-end speed issue): the whole process within 2.5x the peer's time, and
peak RSS at most 1.5 GB. Exit status 1 on a miss.

Usage: python bench/e2e.py [--frames 20000] [--per-frame 50] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

LABELS = ("car", "person", "bike", "truck", "bus")
MAX_RATIO = 2.5
MAX_RSS_MB = 1536
WIDTH, HEIGHT = 1920, 1080


def _header(name: str, frames: int) -> str:
    labels = "".join(
        f"<label><name>{lb}</name><type>rectangle</type><attributes>"
        + (
            "<attribute><name>occluded_by</name><mutable>False</mutable>"
            "<input_type>select</input_type><default_value>none</default_value>"
            "<values>none\ncar\nperson</values></attribute>"
            if lb == "car"
            else ""
        )
        + "</attributes></label>"
        for lb in LABELS
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>'
        f"<meta><job><id>1</id><size>{frames}</size><mode>annotation</mode><overlap>0</overlap>"
        f"<start_frame>0</start_frame><stop_frame>{frames - 1}</stop_frame><name>{name}</name>"
        f"<labels>{labels}</labels></job></meta>\n"
    )


def make_boxes(frames: int, per_frame: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Ground-truth boxes: frame, label, xyxy."""
    n = frames * per_frame
    w = rng.uniform(20, 160, n)
    h = rng.uniform(20, 160, n)
    x = rng.uniform(0, WIDTH - 160, n)
    y = rng.uniform(0, HEIGHT - 160, n)
    return {
        "frame": np.repeat(np.arange(frames), per_frame),
        "label": rng.integers(0, len(LABELS), n),
        "box": np.stack([x, y, x + w, y + h], axis=1),
    }


def annotator(gt: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The annotator's version: 5% dropped, 2% relabelled, jitter, 3% extra boxes."""
    n = len(gt["frame"])
    keep = rng.random(n) >= 0.05
    frame, label, box = gt["frame"][keep], gt["label"][keep].copy(), gt["box"][keep].copy()
    flip = rng.random(len(label)) < 0.02
    label[flip] = (label[flip] + 1) % len(LABELS)
    box += rng.normal(0, 3.0, box.shape)
    extra = int(n * 0.03)
    ex = make_boxes(1, extra, rng)
    ex_frame = rng.integers(0, int(gt["frame"].max()) + 1, extra)
    frame = np.concatenate([frame, ex_frame])
    order = np.argsort(frame, kind="stable")
    return {
        "frame": frame[order],
        "label": np.concatenate([label, ex["label"]])[order],
        "box": np.concatenate([box, ex["box"]])[order],
    }


def write_xml(path: Path, name: str, frames: int, boxes: dict[str, np.ndarray]) -> None:
    """Write a CVAT-for-images 1.1 file, one ``<image>`` per frame (empty frames included)."""
    starts = np.searchsorted(boxes["frame"], np.arange(frames + 1))
    coords = np.round(np.clip(boxes["box"], 0, [WIDTH, HEIGHT, WIDTH, HEIGHT]), 2)
    coords[:, 2:] = np.maximum(coords[:, 2:], coords[:, :2] + 1)
    label = boxes["label"]
    with path.open("w", encoding="utf-8") as f:
        f.write(_header(name, frames))
        for i in range(frames):
            rows = []
            for r in range(starts[i], starts[i + 1]):
                x1, y1, x2, y2 = coords[r]
                lb = LABELS[label[r]]
                attr = '<attribute name="occluded_by">none</attribute>' if lb == "car" else ""
                rows.append(
                    f'<box label="{lb}" source="manual" occluded="0" z_order="0" '
                    f'xtl="{x1:.2f}" ytl="{y1:.2f}" xbr="{x2:.2f}" ybr="{y2:.2f}" '
                    f'rotation="0.0">{attr}</box>'
                )
            f.write(
                f'<image id="{i}" name="frame_{i:06d}.jpg" width="{WIDTH}" height="{HEIGHT}">'
                + "".join(rows)
                + "</image>\n"
            )
        f.write("</annotations>\n")


def bare_iterparse(paths: list[Path]) -> tuple[float, int]:
    """The peer: iterparse both files, convert each box's four coordinates, nothing else."""
    t = time.perf_counter()
    count = 0
    for path in paths:
        out: list[tuple[float, float, float, float]] = []
        for _, el in ET.iterparse(path, events=("end",)):
            if el.tag == "box":
                a = el.attrib
                out.append((float(a["xtl"]), float(a["ytl"]), float(a["xbr"]), float(a["ybr"])))
            elif el.tag == "image":
                el.clear()
        count += len(out)
    return time.perf_counter() - t, count


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run the labelgate CLI as its own process: (wall seconds, peak RSS in MB, exit code)."""
    exe = Path(sys.executable).with_name("labelgate")
    t = time.perf_counter()
    proc = subprocess.Popen([str(exe), *args], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--per-frame", type=int, default=50)
    ap.add_argument("--keep", type=Path, default=None, help="write the files here and keep them")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(17)
        gt = make_boxes(args.frames, args.per_frame, rng)
        ds = annotator(gt, rng)
        t = time.perf_counter()
        gt_path, ds_path = root / "gt.xml", root / "ds.xml"
        write_xml(gt_path, "gt", args.frames, gt)
        write_xml(ds_path, "annotator", args.frames, ds)
        n = len(gt["frame"]) + len(ds["frame"])
        size = (gt_path.stat().st_size + ds_path.stat().st_size) / 1e6
        print(
            f"CVAT XML: {args.frames:,} frames, {len(gt['frame']):,} GT + {len(ds['frame']):,} "
            f"annotator boxes ({size:,.0f} MB) written in {time.perf_counter() - t:.1f} s"
        )
        peer, counted = bare_iterparse([gt_path, ds_path])
        if counted != n:
            print(f"FAILED: the peer read {counted} boxes, expected {n}")
            return 1
        print(
            f"  peer: bare iterparse loop over both files: {peer:.2f} s ({n / peer:,.0f} boxes/s)"
        )
        env = {**os.environ, "LABELGATE_HOME": str(root / "home")}
        # numba compiles the kernels once per install (cached on disk): a small untimed run
        # first, so the timing below is the user's everyday run, not the first one ever.
        warm = root / "warm"
        warm.mkdir(exist_ok=True)
        small = make_boxes(20, 5, np.random.default_rng(1))
        write_xml(warm / "gt.xml", "gt", 20, small)
        write_xml(warm / "ds.xml", "annotator", 20, annotator(small, np.random.default_rng(2)))
        t = time.perf_counter()
        run_cli(
            ["report", "--gt", str(warm / "gt.xml"), "--ds", str(warm / "ds.xml"), "--quiet"],
            {**env, "LABELGATE_HOME": str(warm / "home")},
        )
        print(f"  warm-up run (JIT cache, not timed below): {time.perf_counter() - t:.1f} s")
        wall, rss, code = run_cli(
            [
                "report",
                "--gt",
                str(gt_path),
                "--ds",
                str(ds_path),
                "--json",
                str(root / "report.json"),
                "--html",
                str(root / "report.html"),
            ],
            env,
        )
        ratio = wall / peer
        print(
            f"  labelgate report --json --html (whole process): {wall:.2f} s "
            f"({n / wall:,.0f} boxes/s), {ratio:.2f}x the peer (target <= {MAX_RATIO}x); "
            f"peak RSS {rss:,.0f} MB (target <= {MAX_RSS_MB} MB); exit {code}"
        )
        ok = code in (0, 1) and ratio <= MAX_RATIO and rss <= MAX_RSS_MB
        if code not in (0, 1):
            print("FAILED: labelgate report did not finish")
        print("OK" if ok else "FAILED: a target was missed")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
