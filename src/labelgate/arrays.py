"""Typed numpy array aliases, the one place the project names array dtypes.

Column tables, kernels and statistics annotate with these so ``mypy --strict`` checks element
types instead of a bare ``np.ndarray``. ``AnyArray`` is for columns whose dtype truly varies
(a JSON-logic column may hold numbers, strings or objects).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

#: float64 values: IoUs, areas, coordinates, rates.
FloatArray = npt.NDArray[np.float64]
#: int64 values: row indices, item ids, frame numbers, counts.
IntArray = npt.NDArray[np.int64]
#: RLE run lengths, as ``Annotations.rle`` stores them.
RunArray = npt.NDArray[np.uint32]
#: Integers of any width: label, annotator and control codes (int8/int16/int32 columns).
IntegerArray = npt.NDArray[np.integer[Any]]
#: Boolean masks.
BoolArray = npt.NDArray[np.bool_]
#: Python objects (labels, attribute values, text).
ObjectArray = npt.NDArray[np.object_]
#: Any dtype, for columns that hold numbers, strings or objects depending on the data.
AnyArray = npt.NDArray[Any]

__all__ = [
    "AnyArray",
    "BoolArray",
    "FloatArray",
    "IntArray",
    "IntegerArray",
    "ObjectArray",
    "RunArray",
]
