"""Mask helpers for the readers: CVAT XML's box-window runs onto :mod:`labelgate.geometry.rle`.

Masks in the common model are full-image column-major COCO counts; encoding and decoding live
in :mod:`labelgate.geometry.rle` (re-exported here under the names the readers use).
"""

from __future__ import annotations

import numpy as np

from labelgate.arrays import AnyArray, RunArray
from labelgate.errors import ValidationError
from labelgate.geometry.rle import decode as decode_column_major
from labelgate.geometry.rle import encode as encode_column_major
from labelgate.geometry.rle import from_cvat

__all__ = ["decode_column_major", "encode_column_major", "window_to_full"]


def window_to_full(
    runs: AnyArray, left: int, top: int, box_w: int, box_h: int, height: int, width: int
) -> RunArray:
    """Row-major runs over a box window (CVAT XML's ``<mask rle= left= top= width= height=>``)
    → full-image column-major counts.

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
    # The API form is the same runs followed by the inclusive box [left, top, right, bottom].
    values = [*r.tolist(), left, top, left + box_w - 1, top + box_h - 1]
    return from_cvat(values, height, width)
