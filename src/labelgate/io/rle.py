"""Mask run-length helpers used by the readers: full-image column-major COCO counts."""

from __future__ import annotations

import numpy as np

from labelgate.errors import ValidationError


def encode_column_major(mask: np.ndarray) -> np.ndarray:
    """Encode a boolean (H, W) mask as COCO-style uncompressed counts (first run is zeros).

    Args:
        mask: (H, W) array; non-zero means foreground.

    Returns:
        uint32 run lengths over the column-major (Fortran order) flattening.
    """
    flat = np.asarray(mask, dtype=bool).flatten(order="F").astype(np.int8)
    if flat.size == 0:
        return np.zeros(0, np.uint32)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds)
    if flat[0]:
        runs = np.concatenate([[0], runs])
    return runs.astype(np.uint32)


def decode_column_major(counts: np.ndarray, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`encode_column_major`.

    Raises:
        ValidationError: the runs do not add up to ``height * width``.
    """
    c = np.asarray(counts, dtype=np.int64)
    if int(c.sum()) != height * width:
        raise ValidationError(
            f"bad RLE: run lengths sum to {int(c.sum())}, expected {height}x{width}={height * width}"
        )
    values = np.repeat(np.arange(len(c)) % 2 == 1, c)
    return values.reshape((height, width), order="F")


def window_to_full(
    runs: np.ndarray, left: int, top: int, box_w: int, box_h: int, height: int, width: int
) -> np.ndarray:
    """Row-major runs over a box window (CVAT's mask form) → full-image column-major counts.

    Raises:
        ValidationError: the runs do not cover the box exactly, or the box leaves the image.
    """
    r = np.asarray(runs, dtype=np.int64)
    if np.any(r < 0) or int(r.sum()) != box_w * box_h:
        raise ValidationError(
            f"bad RLE: run lengths sum to {int(r.sum())}, expected {box_w}x{box_h}={box_w * box_h}"
        )
    if left < 0 or top < 0 or left + box_w > width or top + box_h > height:
        raise ValidationError(
            f"mask box ({left}, {top}, {box_w}x{box_h}) lies outside the {width}x{height} image"
        )
    window = np.repeat(np.arange(len(r)) % 2 == 1, r).reshape(box_h, box_w)
    full = np.zeros((height, width), dtype=bool)
    full[top : top + box_h, left : left + box_w] = window
    return encode_column_major(full)
