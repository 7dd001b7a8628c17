"""Pairwise similarity kernels: ``(N, M)`` arrays between GT rows and DS rows of one frame.

Every kernel returns zeros of the right shape for empty input. Boxes are one broadcast array op;
polygons, rotated boxes and ellipses go through shapely 2's vectorised functions only for pairs
whose bounding boxes overlap; masks and mixed polygon/mask pairs are compared on bitmaps cropped
to the pair's window. Semantics follow CVAT 2.42 (see docs/semantics.md for the differences).
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.optimize import linear_sum_assignment

from labelgate.geometry import box_iou, rotated_corners
from labelgate.geometry import skeleton_oks as oks_skeletons
from labelgate.model import Annotations

__all__ = ["box_iou", "oks_skeletons", "rotated_corners"]  # re-exported for the engine


def boxes_touch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) bool: boxes intersect or touch (the cheap pre-filter)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=bool)
    return (
        (a[:, None, 0] <= b[None, :, 2])
        & (b[None, :, 0] <= a[:, None, 2])
        & (a[:, None, 1] <= b[None, :, 3])
        & (b[None, :, 1] <= a[:, None, 3])
    )


def outer_boxes(corners: np.ndarray) -> np.ndarray:
    """(N, 4) axis-aligned boxes around (N, K, 2) vertex sets."""
    if len(corners) == 0:
        return np.zeros((0, 4))
    return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)


def polygons_from_vertices(vertices: np.ndarray) -> np.ndarray:
    """Shapely polygons from an (N, K, 2) array, repaired with make_valid."""
    if len(vertices) == 0:
        return np.empty(0, dtype=object)
    geoms = shapely.polygons(vertices)
    return _valid(geoms)


def polygons_from_ragged(ann: Annotations, rows: np.ndarray) -> np.ndarray:
    """Shapely polygons for polygon rows of ``ann`` in one vectorised call."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return np.empty(0, dtype=object)
    starts, ends = ann.point_offsets[rows], ann.point_offsets[rows + 1]
    lengths = ends - starts
    idx = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
    coords = ann.points[idx]
    ring_ids = np.repeat(np.arange(len(rows)), lengths)
    # Close each ring explicitly: shapely.linearrings with indices wants closed or >= 3 coords.
    rings = shapely.linearrings(coords, indices=ring_ids)
    return _valid(shapely.polygons(rings))


def _valid(geoms: np.ndarray) -> np.ndarray:
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        geoms = geoms.copy()
        geoms[bad] = shapely.make_valid(geoms[bad])
    return geoms


def geom_iou(ga: np.ndarray, box_a: np.ndarray, gb: np.ndarray, box_b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of shapely geometries, computed only for pairs whose boxes overlap."""
    out = np.zeros((len(ga), len(gb)))
    if len(ga) == 0 or len(gb) == 0:
        return out
    ia, ib = np.nonzero(boxes_touch(box_a, box_b))
    if len(ia) == 0:
        return out
    inter = shapely.area(shapely.intersection(ga[ia], gb[ib]))
    union = shapely.area(ga)[ia] + shapely.area(gb)[ib] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out[ia, ib] = np.where(union > 0, inter / union, 0.0)
    return out


def bitmap_iou(ma: list[np.ndarray], mb: list[np.ndarray]) -> np.ndarray:
    """(N, M) IoU of full-frame boolean bitmaps (flattened matrix product, no pair loop)."""
    if not ma or not mb:
        return np.zeros((len(ma), len(mb)))
    a = np.stack([m.ravel() for m in ma]).astype(np.float32)
    b = np.stack([m.ravel() for m in mb]).astype(np.float32)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0).astype(np.float64)


def point_group_similarity(
    pa: np.ndarray, pb: np.ndarray, scale: float, sigma: float, threshold: float
) -> float:
    """CVAT's point-group similarity: nested Hungarian on per-point OKS.

    Σ_matched exp(-d²/(2·scale·(2σ)²)) / (matched + unmatched_a + unmatched_b).
    """
    if len(pa) == 0 or len(pb) == 0 or scale <= 0:
        return 0.0
    d2 = ((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1)
    sim = np.exp(-d2 / (2 * scale * (2 * sigma) ** 2))
    rows, cols = linear_sum_assignment(1 - sim)
    keep = sim[rows, cols] >= threshold
    matched = int(keep.sum())
    total = matched + (len(pa) - matched) + (len(pb) - matched)
    return float(sim[rows, cols][keep].sum() / total) if total else 0.0


def _arc_positions(line: np.ndarray) -> np.ndarray:
    seg = np.sqrt(((line[1:] - line[:-1]) ** 2).sum(1))
    total = seg.sum()
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    return cum / total if total > 0 else np.linspace(0, 1, len(line))


def _resample(line: np.ndarray, pos: np.ndarray, at: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(at, pos, line[:, 0]), np.interp(at, pos, line[:, 1])], axis=1)


def line_similarity(
    la: np.ndarray, lb: np.ndarray, image_area: float, thickness: float
) -> tuple[float, float]:
    """CVAT's LineMatcher: (unoriented, oriented) similarity of two polylines.

    Both lines are resampled on the union of their relative arc-length vertex positions;
    similarity = mean exp(-d²/(2·S·(2r)²)) with S the image area and r the line thickness.
    """
    if len(la) < 2 or len(lb) < 2 or image_area <= 0:
        return 0.0, 0.0
    r2 = (thickness**2) * image_area
    # Quick rejection on the two lines' bounding circles (CVAT's test).
    ca, cb = (la.min(0) + la.max(0)) / 2, (lb.min(0) + lb.max(0)) / 2
    ra2 = ((la.max(0) - la.min(0)) ** 2).sum() / 4
    rb2 = ((lb.max(0) - lb.min(0)) ** 2).sum() / 4
    if ((ca - cb) ** 2).sum() > ra2 + rb2 + image_area * (6 * thickness) ** 2:
        return 0.0, 0.0
    pos_a = _arc_positions(la)

    def oriented(other: np.ndarray) -> float:
        pos_b = _arc_positions(other)
        at = np.union1d(pos_a, pos_b)
        d2 = ((_resample(la, pos_a, at) - _resample(other, pos_b, at)) ** 2).sum(1)
        return float(np.exp(-d2 / (2 * 4 * r2)).mean())

    direct = oriented(lb)
    reverse = oriented(lb[::-1])
    return max(direct, reverse), direct
