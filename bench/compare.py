"""Benchmark the comparison engine against straightforward peers, in one run.

Seeded synthetic data: boxes (20,000 frames x 50 = 1,000,000 GT boxes and about as many DS
boxes), polygons and masks. Rows, each with its peer and target (issue #17):

- boxes: annotations/s of the full report vs a per-pair Python reference on a sample of the
  same frames (identical matches checked);
- JSON form of the 1M-box report: conflict objects/s of ``report.save_json(path)`` on the fresh
  (lazy) report, i.e. process CPU time (user + system) from the engine's columns to the whole
  JSON file on disk (conflict texts, frame results, writing), best of ``--repeat`` writes with
  the first (cold page cache on this VM) printed beside it, target >= 1M/s; ``to_dict()`` (the
  API users' dicts) is timed after it for information;
- covered check: the 1M-box report with ``check_covered_annotations`` on vs off (<= 1.3x);
- polygons (1,000 frames x 10) and masks vs polygons (200 x 10): the full report vs the
  pycocotools raster peer, i.e. what CVAT does per frame (``frPyObjects`` + ``iou`` +
  ``linear_sum_assignment``; the peer's inputs are built before its clock starts), target
  >= 2x; the peer's matches are checked against ours (panoptic occlusion off, as the peer).

Ratio rows take the best of ``--repeat`` runs of process CPU time on both sides, so other
work on a shared machine does not decide them. Peak memory is the process's max RSS. Exit
status 1 if matches differ or a target is missed.

Usage: python bench/compare.py [--frames 20000] [--per-frame 50] [--sample 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from labelgate.engine import QualitySettings, compare, match_annotations
from labelgate.io.rle import encode_column_major
from labelgate.model import (
    Annotations,
    AnnotationsBuilder,
    AnnotationSet,
    Items,
    Kind,
    LabelSchema,
)

SCHEMA = LabelSchema.from_names(["car", "person", "bike", "truck", "bus"])


def _columns(item: np.ndarray, kind: int, label: np.ndarray, bbox: np.ndarray) -> Annotations:
    n = len(item)
    return Annotations(
        item=item.astype(np.int64),
        kind=np.full(n, kind, np.int8),
        label=label.astype(np.int32),
        bbox=bbox,
        rotation=np.zeros(n),
        z_order=np.zeros(n, np.int32),
        group=np.zeros(n, np.int64),
        occluded=np.zeros(n, bool),
        source_id=np.arange(n, dtype=np.int64),
        source_type=np.zeros(n, np.int8),
        origin=np.zeros(n, np.int8),
        annotator=np.zeros(n, np.int32),
        control=np.full(n, -1, np.int16),
        score=np.full(n, np.nan),
        number=np.full(n, np.nan),
        span=np.full((n, 2), np.nan),
        text=np.full(n, None, object),
        source_ref=np.full(n, None, object),
        point_offsets=np.zeros(n + 1, np.int64),
        points=np.zeros((0, 2)),
        vis=np.zeros(0, np.int8),
        rle_offsets=np.zeros(n + 1, np.int64),
        rle=np.zeros(0, np.uint32),
        annotators=("bench",),
    )


def make_boxes(frames: int, per_frame: int, seed: int = 0) -> tuple[AnnotationSet, AnnotationSet]:
    """GT boxes and a DS copy with jitter, 5% misses, 5% extras and 5% label swaps."""
    rng = np.random.default_rng(seed)
    n = frames * per_frame
    item = np.repeat(np.arange(frames), per_frame)
    xy = rng.uniform(0, 1800, size=(n, 2))
    wh = rng.uniform(10, 120, size=(n, 2))
    gt_box = np.c_[xy, xy + wh]
    label = rng.integers(0, 5, n)
    keep = rng.random(n) > 0.05
    ds_box = gt_box[keep] + rng.normal(0, 3, size=(int(keep.sum()), 4))
    ds_box[:, 2:] = np.maximum(ds_box[:, 2:], ds_box[:, :2] + 1)
    ds_label = np.where(rng.random(int(keep.sum())) < 0.05, (label[keep] + 1) % 5, label[keep])
    n_extra = n // 20
    ex_xy = rng.uniform(0, 1800, size=(n_extra, 2))
    ex = np.c_[ex_xy, ex_xy + rng.uniform(10, 120, size=(n_extra, 2))]
    ds_item = np.concatenate([item[keep], rng.integers(0, frames, n_extra)])
    ds_all = np.concatenate([ds_box, ex])
    ds_lab = np.concatenate([ds_label, rng.integers(0, 5, n_extra)])
    order = np.argsort(ds_item, kind="stable")
    items = Items.create(np.arange(frames), width=1920, height=1080)
    gt = AnnotationSet("gt", SCHEMA, items, _columns(item, Kind.RECTANGLE, label, gt_box))
    ds = AnnotationSet(
        "ds",
        SCHEMA,
        items,
        _columns(ds_item[order], Kind.RECTANGLE, ds_lab[order], ds_all[order]),
    )
    return gt, ds


def make_polygons(frames: int, per_frame: int, masks: bool, seed: int = 1):
    rng = np.random.default_rng(seed)
    size = 256
    items = Items.create(np.arange(frames), width=size, height=size)
    sets = []
    for side in range(2):
        b = AnnotationsBuilder(["bench"])
        for f in range(frames):
            frame_rng = np.random.default_rng(seed * 100003 + f)
            for _ in range(per_frame):
                cx, cy = frame_rng.uniform(30, size - 30, 2)
                r = frame_rng.uniform(8, 25)
                ang = np.sort(frame_rng.uniform(0, 2 * np.pi, 8))
                jitter = rng.normal(0, 1.5, size=(8, 2)) if side else 0
                pts = np.c_[cx + r * np.cos(ang), cy + r * np.sin(ang)] + jitter
                pts = np.clip(pts, 0, size - 1)
                if masks and side:
                    import shapely

                    poly = shapely.Polygon(pts)
                    yy, xx = np.mgrid[0:size, 0:size]
                    m = shapely.contains_xy(poly, xx + 0.5, yy + 0.5)
                    ys, xs = np.nonzero(m)
                    if len(xs) == 0:
                        continue
                    bbox = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
                    b.add(f, Kind.MASK, 0, rle=encode_column_major(m), bbox=bbox, annotator=0)
                else:
                    b.add(f, Kind.POLYGON, 0, points=pts, annotator=0)
        sets.append(AnnotationSet("gt" if side == 0 else "ds", SCHEMA, items, b.build()))
    return sets[0], sets[1]


def reference_box_matches(gt: Annotations, ds: Annotations, threshold: float):
    """The straightforward way: a Python double loop per frame computing one IoU per pair."""

    def iou(a, b):
        ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = ix * iy
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    pairs = set()
    for f in np.union1d(gt.item, ds.item):
        glo, ghi = gt.item_range(int(f))
        dlo, dhi = ds.item_range(int(f))
        g = [gt.bbox[i].tolist() for i in range(glo, ghi)]
        d = [ds.bbox[j].tolist() for j in range(dlo, dhi)]
        if not g or not d:
            continue
        cost = [[1.0 for _ in d] for _ in g]
        for i, a in enumerate(g):
            for j, b in enumerate(d):
                s = iou(a, b)
                if s >= threshold and s > 0:
                    cost[i][j] = 1.0 - s
        rows, cols = linear_sum_assignment(np.array(cost))
        for r, c in zip(rows, cols, strict=True):
            if cost[r][c] < 1.0:
                pairs.add((glo + int(r), dlo + int(c)))
    return pairs


def _sample(aset: AnnotationSet, frames: int) -> AnnotationSet:
    keep = aset.annotations.item < frames
    return aset.replace(
        annotations=aset.annotations.select(keep), items=aset.items.select(aset.items.id < frames)
    )


def best_cpu(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best process CPU time of ``repeat`` runs, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t)
    return best, out


def coco_peer_inputs(gt: AnnotationSet, ds: AnnotationSet) -> list[tuple[list, list, int, int]]:
    """Per frame, what the pycocotools peer feeds ``frPyObjects``: flat polygon lists, or
    uncompressed RLE dicts for masks (built outside its clock)."""
    out = []
    a, b = gt.annotations, ds.annotations
    for f in np.union1d(a.item, b.item).tolist():
        w, h = (int(v[0]) for v in gt.items.size_of(np.array([f])))
        sides = []
        for ann in (a, b):
            lo, hi = ann.item_range(f)
            objs = []
            for r in range(lo, hi):
                if ann.kind[r] == Kind.MASK:
                    objs.append({"size": [h, w], "counts": ann.rle_of(r).astype(int).tolist()})
                else:
                    objs.append(ann.points_of(r).ravel().tolist())
            sides.append(objs)
        out.append((sides[0], sides[1], h, w))
    return out


def coco_peer(frames: list[tuple[list, list, int, int]], threshold: float) -> list[list]:
    """CVAT's per-frame raster comparison: rasterise, IoU matrix, Hungarian on 1 - IoU."""
    from pycocotools import mask as mask_utils

    matched = []
    for ga, db, h, w in frames:
        if not ga or not db:
            matched.append([])
            continue
        ra = mask_utils.frPyObjects(ga, h, w)
        rb = mask_utils.frPyObjects(db, h, w)
        iou = np.asarray(mask_utils.iou(ra, rb, [0] * len(rb)))
        ok = (iou >= threshold) & (iou > 0)
        r, c = linear_sum_assignment(np.where(ok, 1 - iou, 1.0))
        keep = ok[r, c]
        matched.append(list(zip(r[keep].tolist(), c[keep].tolist(), strict=True)))
    return matched


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--per-frame", type=int, default=50)
    ap.add_argument("--sample", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--only",
        choices=("boxes", "raster", "json"),
        help="run one section, or the box rows up to the JSON row (while iterating)",
    )
    args = ap.parse_args()
    ok = True
    full_size = args.frames * args.per_frame >= 1_000_000
    settings = QualitySettings(check_covered_annotations=False)
    # The kernels are JIT-compiled (cached on disk after the first run): warm them up on tiny
    # separate inputs so the timings below measure work, not compilation.
    t = time.perf_counter()
    compare(*make_boxes(2, 5, seed=99)).to_dict()
    with tempfile.TemporaryDirectory() as tmp:
        compare(*make_boxes(2, 5, seed=99)).save_json(Path(tmp) / "warm.json")
    for masks in (False, True):
        compare(*make_polygons(2, 3, masks, seed=98)).to_dict()
    print(f"JIT warm-up (compile or cache load, not timed below): {time.perf_counter() - t:.2f} s")
    if args.only != "raster":
        ok &= _box_rows(args, settings, full_size)
    if args.only not in ("boxes", "json"):
        for masks in (False, True):
            ok &= _raster_row(masks, args.repeat)
    mb = peak_mb()
    print(f"peak memory (max RSS): {mb:,.0f} MB")
    ok &= mb < 1536
    print("OK" if ok else "FAILED: a target was missed or matches differ")
    return 0 if ok else 1


def _box_rows(args: argparse.Namespace, settings: QualitySettings, full_size: bool) -> bool:
    """The 1M-box rows: full report, JSON form, covered check, per-pair reference."""
    ok = True
    print(f"boxes: {args.frames} frames x {args.per_frame} per frame")
    gt, ds = make_boxes(args.frames, args.per_frame)
    n = len(gt.annotations) + len(ds.annotations)
    t = time.perf_counter()
    report = compare(gt, ds, settings)
    full = time.perf_counter() - t
    print(
        f"  full report: {len(gt.annotations):,} GT + {len(ds.annotations):,} DS boxes "
        f"in {full:.2f} s -> {n / full:,.0f} annotations/s "
        f"(accuracy {report.summary['accuracy']:.3f})"
    )
    # Best of ``--repeat`` writes, each file removed before the next: the first write into
    # memory this VM's guest has never touched costs several times the kernel time of later
    # ones (measured: 389 MB in 0.9 s vs 0.1 s of system time), which is the host's lazy
    # backing, not the writer. The first (cold) write is printed too.
    times: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        for _ in range(max(args.repeat, 1)):
            out.unlink(missing_ok=True)
            before = resource.getrusage(resource.RUSAGE_SELF)
            report.save_json(out)
            after = resource.getrusage(resource.RUSAGE_SELF)
            times.append((after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime))
        size = out.stat().st_size
    cold = sum(times[0])
    user, system = min(times, key=sum)
    written = user + system
    n_conf = report.summary["conflict_count"]
    t = time.process_time()
    as_json = report.to_dict()
    to_dict = time.process_time() - t
    json_rate = n_conf / written
    print(
        f"  JSON form: {n_conf:,} conflict objects, {len(as_json['frame_results']):,} frame "
        f"results: save_json (columns -> {size / 1e6:,.0f} MB file) best of {len(times)} "
        f"{written:.2f} s CPU ({user:.2f} user + {system:.2f} system; first write {cold:.2f} s) "
        f"-> {json_rate:,.0f} conflicts/s (target >= 1,000,000/s); to_dict() dicts "
        f"{to_dict:.2f} s -> {n_conf / to_dict:,.0f} conflicts/s (information)"
    )
    del as_json, report
    if args.only == "json":
        return json_rate >= 1_000_000 or not full_size
    off_t, _ = best_cpu(lambda: compare(gt, ds, settings), args.repeat)
    on_t, report_cov = best_cpu(lambda: compare(gt, ds), args.repeat)
    print(
        f"  covered_annotation check: report {on_t:.2f} s CPU with it, {off_t:.2f} s without "
        f"-> {on_t / off_t:.2f}x (target <= 1.3x; "
        f"{report_cov.summary['conflicts_by_type']['covered_annotation']} covered)"
    )
    if full_size:
        ok &= json_rate >= 1_000_000 and on_t / off_t <= 1.3
    sg, sd = _sample(gt, args.sample), _sample(ds, args.sample)
    ns = len(sg.annotations) + len(sd.annotations)
    t = time.perf_counter()
    fast = match_annotations(sg.annotations, sd.annotations, sg.items, settings)
    fast_t = time.perf_counter() - t
    t = time.perf_counter()
    ref = reference_box_matches(sg.annotations, sd.annotations, settings.iou_threshold)
    ref_t = time.perf_counter() - t
    same = ref == set(zip(fast.gt_row.tolist(), fast.ds_row.tolist(), strict=True))
    print(
        f"  reference per-pair matcher on {args.sample} frames: {ns / ref_t:,.0f} annotations/s; "
        f"vectorised matcher on the same frames: {ns / fast_t:,.0f}/s; "
        f"full report vs reference speedup {(n / full) / (ns / ref_t):.0f}x; "
        f"identical matches: {same}"
    )
    ok &= same
    if full_size:
        ok &= full < 3.0 and (n / full) / (ns / ref_t) >= 50
    return ok


def _raster_row(masks: bool, repeat: int) -> bool:
    """One raster row: the full report vs the pycocotools peer on the same frames."""
    kind = "masks vs polygons" if masks else "polygons"
    frames = 200 if masks else 1000
    pg, pd = make_polygons(frames, 10, masks)
    m = len(pg.annotations) + len(pd.annotations)
    settings = QualitySettings(check_covered_annotations=False)
    ours, r = best_cpu(lambda: compare(pg, pd, settings), repeat)
    peer_in = coco_peer_inputs(pg, pd)
    peer, peer_pairs = best_cpu(lambda: coco_peer(peer_in, settings.iou_threshold), repeat)
    plain = QualitySettings(check_covered_annotations=False, panoptic_comparison=False)
    got = match_annotations(pg.annotations, pd.annotations, pg.items, plain)
    want = set()
    for pairs, f in zip(
        peer_pairs, np.union1d(pg.annotations.item, pd.annotations.item), strict=True
    ):
        g0, d0 = pg.annotations.item_range(int(f))[0], pd.annotations.item_range(int(f))[0]
        want |= {(g0 + a, d0 + b) for a, b in pairs}
    same = want == set(zip(got.gt_row.tolist(), got.ds_row.tolist(), strict=True))
    print(
        f"{kind}: {frames} frames x 10: report {m / ours:,.0f} annotations/s; pycocotools "
        f"peer {m / peer:,.0f}/s -> {peer / ours:.2f}x (target >= 2x; mean IoU "
        f"{r.summary['mean_iou']:.3f}); peer's matches identical: {same}"
    )
    return same and peer / ours >= 2.0


if __name__ == "__main__":
    sys.exit(main())
