"""Benchmark the comparison engine against a straightforward per-pair reference matcher.

Seeded synthetic data: boxes (20,000 frames x 50 = 1,000,000 GT boxes and about as many DS
boxes), polygons and masks. For each type it prints annotations per second of the full report,
the per-pair reference's rate on a sample of the same frames (it is far too slow for the whole
set), the speedup, and checks that both produce identical matches on that sample. Peak memory
is the process's max RSS. Exit status 1 if the matches differ or a target is missed.

Usage: python bench/compare.py [--frames 20000] [--per-frame 50] [--sample 300]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

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


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--per-frame", type=int, default=50)
    ap.add_argument("--sample", type=int, default=300)
    args = ap.parse_args()
    ok = True
    settings = QualitySettings(check_covered_annotations=False)
    # The box kernel is JIT-compiled (cached on disk after the first run): warm it up on a
    # tiny separate input so the timings below measure matching, not compilation.
    t = time.perf_counter()
    compare(*make_boxes(2, 5, seed=99), settings)
    print(f"JIT warm-up (compile or cache load, not timed below): {time.perf_counter() - t:.2f} s")
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
    t = time.perf_counter()
    as_json = report.to_dict()
    print(
        f"  + JSON form ({len(as_json['conflicts']):,} conflict objects, "
        f"{len(as_json['frame_results']):,} frame results): {time.perf_counter() - t:.2f} s"
    )
    t = time.perf_counter()
    report_cov = compare(gt, ds)
    print(
        f"  with covered_annotation check: {time.perf_counter() - t:.2f} s "
        f"({report_cov.summary['conflicts_by_type']['covered_annotation']} covered)"
    )
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
    if args.frames * args.per_frame >= 1_000_000:
        ok &= full < 3.0 and (n / full) / (ns / ref_t) >= 50
    for masks in (False, True):
        kind = "masks vs polygons" if masks else "polygons"
        frames = 200 if masks else 1000
        pg, pd = make_polygons(frames, 10, masks)
        m = len(pg.annotations) + len(pd.annotations)
        t = time.perf_counter()
        r = compare(pg, pd, settings)
        el = time.perf_counter() - t
        print(
            f"{kind}: {frames} frames x 10 -> {m / el:,.0f} annotations/s "
            f"(mean IoU {r.summary['mean_iou']:.3f})"
        )
    mb = peak_mb()
    print(f"peak memory (max RSS): {mb:,.0f} MB")
    ok &= mb < 1536
    print("OK" if ok else "FAILED: a target was missed or matches differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
