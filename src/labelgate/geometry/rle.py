"""Masks as full-image, column-major (COCO) uncompressed RLE counts.

``counts`` is a uint32 array of alternating run lengths over the image flattened in Fortran
order (down each column, then the next column); the first run counts zeros (it may be 0).
Boxes returned here use pixel-edge coordinates: a mask covering only pixel (x=3, y=5) has bbox
``[3, 5, 4, 6]`` (x2 = last column + 1, y2 = last row + 1), matching pycocotools ``toBbox``
converted to xyxy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labelgate.arrays import AnyArray, BoolArray, FloatArray, IntArray, RunArray
from labelgate.errors import ValidationError
from labelgate.geometry import rle_kernels
from labelgate.geometry.boxes import as_boxes, box_overlap_pairs

__all__ = [
    "area",
    "areas_and_boxes",
    "bbox",
    "decode",
    "decode_window",
    "encode",
    "find_covered",
    "find_covered_frames",
    "from_cvat",
    "mask_iou",
    "merge",
    "ragged",
    "rasterize_polygons",
    "rasterize_polygons_ragged",
    "rle_iou",
    "to_cvat",
    "unragged",
    "validate",
    "visible_parts",
]


def _counts_from_indices(idx: IntArray, total: int) -> RunArray:
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


def encode(mask: AnyArray) -> RunArray:
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


def validate(counts: AnyArray, height: int, width: int) -> IntArray:
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


def _one_runs(counts: AnyArray) -> tuple[IntArray, IntArray]:
    """Start index and length of every non-empty 1-run."""
    c = np.asarray(counts, dtype=np.int64)
    ends = np.cumsum(c)
    starts = ends - c
    s, n = starts[1::2], c[1::2]
    keep = n > 0
    return s[keep], n[keep]


def decode(counts: AnyArray, height: int, width: int) -> BoolArray:
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


def area(counts: AnyArray) -> int:
    """Number of set pixels.

    Args:
        counts: run lengths.

    Returns:
        The pixel count.
    """
    return int(np.asarray(counts, dtype=np.int64)[1::2].sum())


def bbox(counts: AnyArray, height: int, width: int) -> FloatArray:
    """Tight pixel-edge bounding box of a mask.

    Args:
        counts: run lengths.
        height: image height.
        width: image width.

    Returns:
        float64 ``[x1, y1, x2, y2]`` with x2 = last column + 1; all zeros for an empty mask.
    """
    del width  # the column count follows from the runs
    box: FloatArray = areas_and_boxes([np.asarray(counts, dtype=np.uint32)], height)[1][0]
    return box


def decode_window(counts: AnyArray, height: int, window: Sequence[int] | AnyArray) -> BoolArray:
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


def from_cvat(values: Sequence[float], height: int, width: int) -> RunArray:
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


def to_cvat(counts: AnyArray, height: int, width: int) -> list[float]:
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


def ragged(counts: Sequence[AnyArray]) -> tuple[RunArray, IntArray]:
    """Masks as one flat uint32 counts array plus (N + 1) offsets (the kernels' layout)."""
    off = np.zeros(len(counts) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(c) for c in counts])
    flat = np.concatenate(counts).astype(np.uint32) if counts else np.zeros(0, np.uint32)
    return flat, off


def unragged(flat: RunArray, off: IntArray) -> list[RunArray]:
    """Inverse of :func:`ragged`."""
    return [flat[off[i] : off[i + 1]] for i in range(len(off) - 1)]


def rasterize_polygons(
    points: AnyArray,
    offsets: AnyArray,
    rows: Sequence[int] | AnyArray,
    height: int | AnyArray,
    width: int | AnyArray,
) -> list[RunArray]:
    """Rasterise polygons to RLE at image resolution, exactly as pycocotools ``frPyObjects``.

    CVAT 2.42 compares polygons, rotated boxes and ellipses on these rasters; the counts are
    identical to pycocotools' (its ``rleFrPoly`` outline tracing on a 5x upsampled grid).

    Args:
        points: (P, 2) ragged vertices.
        offsets: (N + 1,) row offsets into ``points``.
        rows: which polygons to rasterise.
        height: image height, or one per requested row.
        width: image width, or one per requested row.

    Returns:
        One uint32 counts array per requested row (fewer than 3 vertices -> all zeros).

    Raises:
        ValidationError: non-finite vertices (the row is named).
    """
    return unragged(*rasterize_polygons_ragged(points, offsets, rows, height, width))


def rasterize_polygons_ragged(
    points: AnyArray,
    offsets: AnyArray,
    rows: Sequence[int] | AnyArray,
    height: int | AnyArray,
    width: int | AnyArray,
) -> tuple[RunArray, IntArray]:
    """:func:`rasterize_polygons` as one ragged ``(flat, offsets)`` pair (no per-mask arrays).

    Raises:
        ValidationError: non-finite vertices (the row is named).
    """
    pts = np.ascontiguousarray(np.asarray(points, dtype=np.float64).reshape(-1, 2))
    off = np.asarray(offsets, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    # one flat check first: the per-vertex one costs more than a tenth of the rasterising
    bad = np.zeros(0, bool) if np.isfinite(pts).all() else ~np.isfinite(pts).all(axis=1)
    if bad.any():
        owner = np.searchsorted(off, np.flatnonzero(bad), side="right") - 1
        hit = rows[np.isin(rows, owner)]
        if len(hit):
            raise ValidationError(f"polygon row {int(hit[0])}: non-finite vertex coordinates")
    hs = np.broadcast_to(np.asarray(height, np.int64), rows.shape)
    ws = np.broadcast_to(np.asarray(width, np.int64), rows.shape)
    return rle_kernels.fr_polys(pts, off, rows, np.ascontiguousarray(hs), np.ascontiguousarray(ws))


def areas_and_boxes(counts: Sequence[AnyArray], height: int) -> tuple[IntArray, FloatArray]:
    """Pixel counts (N,) and tight pixel-edge xyxy boxes (N, 4) of many masks."""
    flat, off = ragged(counts)
    return rle_kernels.areas_and_boxes(flat, off, int(height))


def merge(counts: Sequence[AnyArray], height: int, width: int) -> RunArray:
    """Union of masks (pycocotools ``merge``); an empty mask for no input."""
    if not counts:
        return np.array([height * width], dtype=np.uint32)
    out = np.asarray(counts[0], dtype=np.uint32)  # the first mask fixes the size
    for c in counts[1:]:
        out = rle_kernels.merge2(out, np.asarray(c, dtype=np.uint32), rle_kernels.UNION)
    return out


def visible_parts(
    counts: Sequence[AnyArray],
    owner: AnyArray,
    n_owners: int,
    height: int,
    width: int,
    *,
    occlude: bool = True,
) -> list[RunArray]:
    """Panoptic occlusion as CVAT's compiled mask: each pixel belongs to the last mask painted.

    Args:
        counts: masks in paint order (bottom first; later ones cover earlier ones).
        owner: (N,) which output (instance) each mask belongs to.
        n_owners: number of outputs.
        height: image height.
        width: image width.
        occlude: False gives each owner the plain union of its masks.

    Returns:
        ``n_owners`` masks: the pixels where a mask of that owner is the top one.
    """
    owner = np.asarray(owner, np.int64)
    by_owner = np.argsort(owner, kind="stable")  # each owner's masks contiguous
    flat, off = ragged([np.asarray(counts[k], dtype=np.uint32) for k in by_owner.tolist()])
    inst_ptr = np.zeros(n_owners + 1, np.int64)
    inst_ptr[1:] = np.cumsum(np.bincount(owner, minlength=n_owners))
    vis_flat, vis_off = rle_kernels.instance_masks(
        flat,
        off,
        np.array([0, len(owner)], np.int64),
        inst_ptr,
        by_owner,  # a mask's paint position is its input position
        np.array([height], np.int64),
        np.full(n_owners, int(height) * int(width), np.int64),
        occlude,
    )
    return unragged(vis_flat, vis_off)


def find_covered(counts: Sequence[AnyArray], height: int, visibility_threshold: float) -> BoolArray:
    """CVAT's ``covered_annotation`` rule on masks given in paint order (bottom first).

    Mask i is covered when the union of every later mask overlaps it and its visible share
    ``1 - area(top & i) / area(i)`` is below ``visibility_threshold``. Masks are merged only
    where the boxes of later masks could hide that much of the mask's own area (the sum of box
    intersections bounds the hidden area), which leaves the result unchanged.

    Args:
        counts: masks of one frame, in paint order.
        height: image height.
        visibility_threshold: ``object_visibility_threshold``.

    Returns:
        (N,) bool.
    """
    frame = np.array([0, len(counts)], np.int64)
    return find_covered_frames(counts, frame, np.array([height]), visibility_threshold)


def find_covered_frames(
    counts: Sequence[AnyArray],
    frame_ptr: AnyArray,
    heights: AnyArray,
    visibility_threshold: float,
) -> BoolArray:
    """:func:`find_covered` for many frames in one compiled pass.

    Args:
        counts: masks, frame after frame, each frame's in paint order.
        frame_ptr: (F + 1,) where each frame's masks start (and the end).
        heights: (F,) image height of each frame.
        visibility_threshold: ``object_visibility_threshold``.

    Returns:
        (N,) bool.
    """
    flat, off = ragged([np.asarray(c, dtype=np.uint32) for c in counts])
    return rle_kernels.covered_frames(
        flat,
        off,
        np.asarray(frame_ptr, np.int64),
        np.asarray(heights, np.int64),
        float(visibility_threshold),
    )


def mask_iou(
    counts_a: Sequence[AnyArray], counts_b: Sequence[AnyArray], height: int, width: int
) -> FloatArray:
    """Pairwise IoU of valid masks (rasters built here, or rows ``compare`` checked), with
    their own tight boxes as the pre-filter; :func:`rle_iou` for unchecked input."""
    n, m = len(counts_a), len(counts_b)
    if n == 0 or m == 0:
        return np.zeros((n, m))
    fa, oa = ragged(counts_a)
    fb, ob = ragged(counts_b)
    _, ba = rle_kernels.areas_and_boxes(fa, oa, int(height))
    _, bb = rle_kernels.areas_and_boxes(fb, ob, int(height))
    out = np.zeros((n, m))
    pairs = box_overlap_pairs(ba, bb)
    if len(pairs):
        out[pairs[:, 0], pairs[:, 1]] = rle_kernels.pair_iou(
            fa, oa, fb, ob, pairs[:, 0], pairs[:, 1]
        )
    return out


def rle_iou(
    counts_a: Sequence[AnyArray],
    counts_b: Sequence[AnyArray],
    bbox_a: AnyArray,
    bbox_b: AnyArray,
    height: int,
    width: int,
) -> FloatArray:
    """Pairwise mask IoU (pycocotools ``iou`` without crowd), only for pairs whose boxes overlap.

    Args:
        counts_a: N masks (column-major counts).
        counts_b: M masks.
        bbox_a: (N, 4) xyxy boxes covering the masks (the pre-filter, e.g. from
            :func:`areas_and_boxes`).
        bbox_b: (M, 4) xyxy boxes.
        height: image height.
        width: image width.

    Returns:
        (N, M) float64 IoU; 0 for pairs that share no pixel.

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
    ca = [validate(counts_a[i], height, width) for i in range(n)]
    cb = [validate(counts_b[j], height, width) for j in range(m)]
    fa, oa = ragged(ca)
    fb, ob = ragged(cb)
    out[pairs[:, 0], pairs[:, 1]] = rle_kernels.pair_iou(fa, oa, fb, ob, pairs[:, 0], pairs[:, 1])
    return out
