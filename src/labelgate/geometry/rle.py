"""Masks as full-image, column-major (COCO) uncompressed RLE counts.

``counts`` is a uint32 array of alternating run lengths over the image flattened in Fortran
order (down each column, then the next column); the first run counts zeros (it may be 0).
Boxes returned here use pixel-edge coordinates: a mask covering only pixel (x=3, y=5) has bbox
``[3, 5, 4, 6]`` (x2 = last column + 1, y2 = last row + 1), matching pycocotools ``toBbox``
converted to xyxy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely

from labelgate.errors import ValidationError
from labelgate.geometry.boxes import as_boxes, box_overlap_pairs

__all__ = [
    "area",
    "bbox",
    "decode",
    "decode_window",
    "encode",
    "from_cvat",
    "rasterize_polygons",
    "rle_iou",
    "to_cvat",
    "validate",
]


def _counts_from_indices(idx: np.ndarray, total: int) -> np.ndarray:
    """Counts from sorted, unique flat (column-major) indices of set pixels."""
    if idx.size == 0:
        return np.array([total], dtype=np.uint32)
    breaks = np.flatnonzero(np.diff(idx) != 1)
    starts = np.concatenate([idx[:1], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], idx[-1:]]) + 1
    zeros = starts - np.concatenate([[0], ends[:-1]])
    ones = ends - starts
    counts = np.empty(2 * len(starts), dtype=np.int64)
    counts[0::2] = zeros
    counts[1::2] = ones
    tail = total - int(ends[-1])
    if tail:
        return np.append(counts, tail).astype(np.uint32)
    return counts.astype(np.uint32)


def encode(mask: np.ndarray) -> np.ndarray:
    """Encode a boolean mask as column-major RLE counts.

    Args:
        mask: bool (H, W).

    Returns:
        uint32 counts (first run = zeros).

    Raises:
        ValidationError: the mask is not 2-D.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValidationError(f"mask: expected a 2-D (H, W) array, got shape {m.shape}")
    flat = m.astype(bool).ravel(order="F")
    return _counts_from_indices(np.flatnonzero(flat), flat.size)


def validate(counts: np.ndarray, height: int, width: int) -> np.ndarray:
    """Check RLE counts against an image size.

    Args:
        counts: run lengths.
        height: image height.
        width: image width.

    Returns:
        The counts as int64.

    Raises:
        ValidationError: negative or non-integer counts, or a sum different from H*W.
    """
    c = np.asarray(counts)
    if c.ndim != 1:
        raise ValidationError(f"bad RLE: expected a 1-D counts array, got shape {c.shape}")
    if c.size and (not np.issubdtype(c.dtype, np.number) or not np.isfinite(c).all()):
        raise ValidationError("bad RLE: counts must be finite numbers")
    ci = c.astype(np.int64)
    if (ci != c).any() or (ci < 0).any():
        raise ValidationError("bad RLE: counts must be non-negative integers")
    total = int(ci.sum())
    if total != height * width:
        raise ValidationError(
            f"bad RLE: counts sum to {total} but the image is {height}x{width} = "
            f"{height * width} pixels"
        )
    return ci


def _one_runs(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and length of every non-empty 1-run."""
    c = np.asarray(counts, dtype=np.int64)
    ends = np.cumsum(c)
    starts = ends - c
    s, n = starts[1::2], c[1::2]
    keep = n > 0
    return s[keep], n[keep]


def decode(counts: np.ndarray, height: int, width: int) -> np.ndarray:
    """Decode column-major RLE counts into a boolean mask.

    Args:
        counts: run lengths (first = zeros).
        height: image height.
        width: image width.

    Returns:
        bool (H, W).

    Raises:
        ValidationError: bad RLE (see :func:`validate`).
    """
    c = validate(counts, height, width)
    values = np.zeros(len(c), dtype=bool)
    values[1::2] = True
    return np.repeat(values, c).reshape((height, width), order="F")


def area(counts: np.ndarray) -> int:
    """Number of set pixels.

    Args:
        counts: run lengths.

    Returns:
        The pixel count.
    """
    return int(np.asarray(counts, dtype=np.int64)[1::2].sum())


def bbox(counts: np.ndarray, height: int, width: int) -> np.ndarray:
    """Tight pixel-edge bounding box of a mask.

    Args:
        counts: run lengths.
        height: image height.
        width: image width.

    Returns:
        float64 ``[x1, y1, x2, y2]`` with x2 = last column + 1; all zeros for an empty mask.
    """
    del width  # the column count follows from the runs
    s, n = _one_runs(counts)
    if s.size == 0:
        return np.zeros(4)
    e = s + n - 1
    c0, c1 = s // height, e // height
    r0, r1 = s % height, e % height
    # a run that crosses a column boundary covers the bottom of one column and the top of the
    # next, so it spans every row
    spans = c1 > c0
    y1 = int(np.where(spans, 0, r0).min())
    y2 = int(np.where(spans, height - 1, r1).max()) + 1
    return np.array([c0.min(), y1, c1.max() + 1, y2], dtype=np.float64)


def decode_window(
    counts: np.ndarray, height: int, window: Sequence[int] | np.ndarray
) -> np.ndarray:
    """Decode only the pixels inside ``window = [x1, y1, x2, y2]`` (integers, pixel edges).

    Memory is proportional to the window column band, not the whole image.

    Args:
        counts: run lengths (column-major, full image).
        height: image height.
        window: integer xyxy window.

    Returns:
        bool (y2 - y1, x2 - x1).
    """
    x1, y1, x2, y2 = (int(v) for v in window)
    out = np.zeros((max(y2 - y1, 0), max(x2 - x1, 0)), dtype=bool)
    if out.size == 0:
        return out
    s, n = _one_runs(counts)
    lo, hi = x1 * height, x2 * height
    e = np.minimum(s + n, hi)
    s = np.maximum(s, lo)
    keep = e > s
    s, e = s[keep], e[keep]
    lens = e - s
    total = int(lens.sum())
    if total == 0:
        return out
    idx = np.repeat(s - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(total)
    rows, cols = idx % height, idx // height - x1
    inside = (rows >= y1) & (rows < y2)
    out[rows[inside] - y1, cols[inside]] = True
    return out


def from_cvat(values: Sequence[float], height: int, width: int) -> np.ndarray:
    """Convert CVAT mask ``points`` to full-image column-major counts.

    CVAT stores row-major alternating runs (zeros first) over the tight box
    ``[left, top, right, bottom]`` (inclusive), appended as the last four values.

    Args:
        values: CVAT mask points.
        height: image height.
        width: image width.

    Returns:
        uint32 counts.

    Raises:
        ValidationError: fewer than 5 values, a box outside the image, or runs that do not
            fill the box.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 5 or not np.isfinite(v).all():
        raise ValidationError(
            f"bad CVAT mask: expected run lengths followed by [left, top, right, bottom], got "
            f"{v.size} values"
        )
    left, top, right, bottom = (round(x) for x in v[-4:])
    bw, bh = right - left + 1, bottom - top + 1
    if left < 0 or top < 0 or bw <= 0 or bh <= 0 or right >= width or bottom >= height:
        raise ValidationError(
            f"bad CVAT mask: box [{left}, {top}, {right}, {bottom}] is outside the "
            f"{width}x{height} image"
        )
    runs = v[:-4].astype(np.int64)
    if int(runs.sum()) != bw * bh or (runs < 0).any():
        raise ValidationError(
            f"bad CVAT mask: runs sum to {int(runs.sum())} but the box is {bw}x{bh} = "
            f"{bw * bh} pixels"
        )
    vals = np.zeros(len(runs), dtype=bool)
    vals[1::2] = True
    box = np.repeat(vals, runs).reshape(bh, bw)
    r, c = np.nonzero(box)
    idx = np.sort((c + left) * height + (r + top))
    return _counts_from_indices(idx, height * width)


def to_cvat(counts: np.ndarray, height: int, width: int) -> list[float]:
    """Convert column-major counts to CVAT mask ``points``.

    Same output as ``cvat_sdk.masks.encode_mask(mask)`` (tight box; an empty mask becomes the
    1x1 box at the origin, ``[1, 0, 0, 0, 0]``).

    Args:
        counts: run lengths.
        height: image height.
        width: image width.

    Returns:
        Row-major runs over the tight box followed by ``[left, top, right, bottom]``.

    Raises:
        ValidationError: bad RLE.
    """
    validate(counts, height, width)
    b = bbox(counts, height, width).astype(int)
    if area(counts) == 0:
        b = np.array([0, 0, 1, 1])
    flat = decode_window(counts, height, b).ravel()
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0, *runs]
    return [float(x) for x in runs] + [float(b[0]), float(b[1]), float(b[2] - 1), float(b[3] - 1)]


def rasterize_polygons(
    points: np.ndarray,
    offsets: np.ndarray,
    rows: Sequence[int] | np.ndarray,
    height: int,
    width: int,
) -> list[np.ndarray]:
    """Rasterise polygons to RLE at image resolution.

    A pixel is set when its centre ``(x + 0.5, y + 0.5)`` lies inside the polygon (or on its
    boundary). pycocotools ``frPyObjects`` instead traces the outline on a 5x upsampled grid,
    so the two differ by at most about one pixel along the outline.

    Args:
        points: (P, 2) ragged vertices.
        offsets: (N + 1,) row offsets into ``points``.
        rows: which polygons to rasterise.
        height: image height.
        width: image width.

    Returns:
        One uint32 counts array per requested row (empty polygon -> all zeros).

    Raises:
        ValidationError: non-finite vertices (the row is named).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    off = np.asarray(offsets, dtype=np.int64)
    out: list[np.ndarray] = []
    for row in np.asarray(rows, dtype=np.int64):
        v = pts[off[row] : off[row + 1]]
        if not np.isfinite(v).all():
            raise ValidationError(f"polygon row {int(row)}: non-finite vertex coordinates")
        if len(v) < 3:
            out.append(np.array([height * width], dtype=np.uint32))
            continue
        geom = shapely.make_valid(shapely.Polygon(v))
        x1 = max(math.floor(v[:, 0].min()), 0)
        y1 = max(math.floor(v[:, 1].min()), 0)
        x2 = min(math.ceil(v[:, 0].max()), width)
        y2 = min(math.ceil(v[:, 1].max()), height)
        if x2 <= x1 or y2 <= y1:
            out.append(np.array([height * width], dtype=np.uint32))
            continue
        # column-major order of the window so the indices come out sorted
        xs, ys = np.meshgrid(np.arange(x1, x2), np.arange(y1, y2), indexing="ij")
        xs, ys = xs.ravel(), ys.ravel()
        inside = shapely.intersects_xy(geom, xs + 0.5, ys + 0.5)
        idx = xs[inside] * height + ys[inside]
        out.append(_counts_from_indices(idx, height * width))
    return out


def rle_iou(
    counts_a: Sequence[np.ndarray],
    counts_b: Sequence[np.ndarray],
    bbox_a: np.ndarray,
    bbox_b: np.ndarray,
    height: int,
    width: int,
) -> np.ndarray:
    """Pairwise mask IoU, computed only for pairs whose boxes overlap.

    Each mask is decoded once, inside its own tight box; a pair intersects the two windows.
    Memory therefore scales with object size, not image size.

    Args:
        counts_a: N masks (column-major counts).
        counts_b: M masks.
        bbox_a: (N, 4) xyxy boxes used as the pre-filter (e.g. ``Annotations.bbox``).
        bbox_b: (M, 4) xyxy boxes.
        height: image height.
        width: image width.

    Returns:
        (N, M) float64 IoU; 0 for non-overlapping boxes and empty masks.

    Raises:
        ValidationError: bad RLE or box arrays of the wrong length.
    """
    n, m = len(counts_a), len(counts_b)
    if n == 0 or m == 0:
        return np.zeros((n, m))
    ba, bb = as_boxes(bbox_a, "bbox_a"), as_boxes(bbox_b, "bbox_b")
    if len(ba) != n or len(bb) != m:
        raise ValidationError(f"rle_iou: {n} and {m} masks but {len(ba)} and {len(bb)} boxes")
    out = np.zeros((n, m))
    pairs = box_overlap_pairs(ba, bb)
    if len(pairs) == 0:
        return out

    def prep(counts: Sequence[np.ndarray], rows: np.ndarray) -> dict[int, tuple]:
        cache = {}
        for r in rows:
            c = validate(counts[r], height, width)
            win = bbox(c, height, width).astype(np.int64)
            cache[int(r)] = (win, decode_window(c, height, win), area(c))
        return cache

    wa = prep(counts_a, np.unique(pairs[:, 0]))
    wb = prep(counts_b, np.unique(pairs[:, 1]))
    for i, j in pairs:
        (a_win, a_mask, a_area), (b_win, b_mask, b_area) = wa[int(i)], wb[int(j)]
        union = a_area + b_area
        if union == 0:
            continue
        x1, y1 = max(a_win[0], b_win[0]), max(a_win[1], b_win[1])
        x2, y2 = min(a_win[2], b_win[2]), min(a_win[3], b_win[3])
        inter = 0
        if x2 > x1 and y2 > y1:
            sa = a_mask[y1 - a_win[1] : y2 - a_win[1], x1 - a_win[0] : x2 - a_win[0]]
            sb = b_mask[y1 - b_win[1] : y2 - b_win[1], x1 - b_win[0] : x2 - b_win[0]]
            inter = int(np.count_nonzero(sa & sb))
        out[i, j] = inter / (union - inter)
    return out
