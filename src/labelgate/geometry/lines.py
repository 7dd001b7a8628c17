"""Polyline similarity: CVAT 2.42's ``LineMatcher`` (a Gaussian on resampled lines), compiled.

Both lines are first resampled onto a shared arc-length parametrisation
(``LineMatcher.approximate_points``, reproduced step for step: a vertex position shared by both
lines is emitted twice, and the final end-point pair is dropped), then compared point by point.
The reversed comparison reverses the already-resampled second line, as CVAT does. A
zero-length second line, on which CVAT's resampling fails, is compared as its single point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit

from labelgate.arrays import AnyArray, FloatArray, IntArray
from labelgate.errors import ValidationError

__all__ = ["line_similarities", "line_similarity", "resample_pair"]

_EPSILON = 1e-7  # LineMatcher.EPSILON


@njit(cache=True, nogil=True)
def _ends(line: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Segment lengths and cumulative segment end distances (last one duplicated)."""
    k = len(line) - 1
    seg = np.empty(k)
    ends = np.empty(k + 1)
    acc = 0.0
    for i in range(k):
        dx = line[i + 1, 0] - line[i, 0]
        dy = line[i + 1, 1] - line[i, 1]
        seg[i] = math.sqrt(dx * dx + dy * dy)
        acc += seg[i]
        ends[i] = acc
    ends[k] = ends[k - 1] if k > 0 else 0.0
    return seg, ends


@njit(cache=True, nogil=True)
def _point_at(
    line: FloatArray, seg: FloatArray, idx: int, count: int, length: float, gap: float
) -> FloatArray:
    """The point of ``line`` at relative distance ``gap`` before the end of segment ``idx``
    (its last vertex once the line is used up), with CVAT's arithmetic."""
    # typed locals: an integer index of an NDArray is Any to numpy's stubs
    point: FloatArray
    if idx >= count:
        point = line[idx]
        return point
    q = gap * (length / (seg[idx] if seg[idx] != 0 else 1.0))
    if abs(q) <= _EPSILON:
        point = line[1 + idx]
        return point
    point = line[idx] * q + line[1 + idx] * (1 - q)
    return point


@njit(cache=True, nogil=True)
def _approximate(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """CVAT ``approximate_points``: both lines with the same number of points."""
    ac, bc = len(a) - 1, len(b) - 1
    a_seg, a_end = _ends(a)
    b_seg, b_end = _ends(b)
    a_len, b_len = a_end[ac], b_end[bc]
    a_div = a_len if a_len != 0 else 1.0
    b_div = b_len if b_len != 0 else 1.0
    size = len(a) + len(b) - 1
    an = np.zeros((size, 2))
    bn = np.zeros((size, 2))
    an[0] = a[0]
    bn[0] = b[0]
    ai = 0
    bi = 0
    nxt = 0
    while ai < ac or bi < bc:
        nxt = ai + bi + 1
        a_pos = a_end[ai] / a_div
        b_pos = b_end[bi] / b_div
        # CVAT fails (assert False) once a zero-length second line is used up while the first
        # is not; advancing the first line instead compares the rest with b's end point
        if ai < ac and (a_pos <= b_pos or bi >= bc):
            bn[nxt] = _point_at(b, b_seg, bi, bc, b_len, b_pos - a_pos)
            ai += 1
            an[nxt] = a[ai]
        else:
            an[nxt] = _point_at(a, a_seg, ai, ac, a_len, a_pos - b_pos)
            bi += 1
            bn[nxt] = b[bi]
    if nxt < size:
        return an[:nxt], bn[:nxt]
    return an, bn


@njit(cache=True, nogil=True)
def _gauss_mean(a: FloatArray, b: FloatArray, reverse: bool, denom: float) -> float:
    n = len(a)
    total = 0.0
    for i in range(n):
        j = n - 1 - i if reverse else i
        dx = a[i, 0] - b[j, 0]
        dy = a[i, 1] - b[j, 1]
        d = math.sqrt(dx * dx + dy * dy)
        total += math.exp(-(d**2) / denom)
    return total / n


@njit(cache=True, nogil=True)
def _circle(line: FloatArray) -> tuple[float, float, float]:
    x0, x1 = line[:, 0].min(), line[:, 0].max()
    y0, y1 = line[:, 1].min(), line[:, 1].max()
    return (x0 + x1) / 2, (y0 + y1) / 2, ((x1 - x0) ** 2 + (y1 - y0) ** 2) / 4


@njit(cache=True, nogil=True)
def _similarities(
    pa: FloatArray, oa: IntArray, pb: FloatArray, ob: IntArray, scale: float, r: float
) -> FloatArray:
    n, m = len(oa) - 1, len(ob) - 1
    out = np.zeros((n, m, 2))
    sigma6_2 = scale * (6 * r) ** 2
    denom = 2 * scale * (2 * r) ** 2
    for i in range(n):
        a = pa[oa[i] : oa[i + 1]]
        acx, acy, ar2 = _circle(a)
        for j in range(m):
            b = pb[ob[j] : ob[j + 1]]
            bcx, bcy, br2 = _circle(b)
            if (bcx - acx) ** 2 + (bcy - acy) ** 2 > br2 + ar2 + sigma6_2:
                continue
            ra, rb = _approximate(a, b)
            direct = _gauss_mean(ra, rb, False, denom)
            out[i, j, 0] = max(direct, _gauss_mean(ra, rb, True, denom))
            out[i, j, 1] = direct
    return out


def resample_pair(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Resample two polylines to the same number of points (CVAT ``approximate_points``).

    Args:
        a: (ka, 2) vertices, ka >= 2.
        b: (kb, 2) vertices, kb >= 2.

    Returns:
        ``(a_new, b_new)``, both (ka + kb - 2, 2).
    """
    return _approximate(_as_line(a, "a", 0), _as_line(b, "b", 0))


def line_similarities(
    lines_a: Sequence[FloatArray],
    lines_b: Sequence[FloatArray],
    image_area: float,
    thickness: float,
) -> tuple[FloatArray, FloatArray]:
    """CVAT's unoriented and oriented polyline similarity for every pair.

    With S = image area and r = ``thickness``: pairs whose bbox circles are too far apart
    (squared centre distance > r_a^2 + r_b^2 + S * (6r)^2, r_* = bbox half-diagonals) get 0;
    otherwise both lines are resampled (:func:`resample_pair`) and the similarity is
    ``mean(exp(-d^2 / (2 * S * (2r)^2)))``. Unoriented is the max of that and the same with the
    resampled second line reversed; oriented is the direct comparison only.

    Args:
        lines_a: N arrays (k, 2), k >= 2 (the GT side).
        lines_b: M arrays (k, 2), k >= 2.
        image_area: width * height.
        thickness: CVAT ``line_thickness`` (relative).

    Returns:
        ``(unoriented, oriented)``, each (N, M) float64 in [0, 1].

    Raises:
        ValidationError: a line with fewer than 2 points or with non-finite coordinates.
    """
    n, m = len(lines_a), len(lines_b)
    if n == 0 or m == 0 or image_area <= 0 or thickness <= 0:
        return np.zeros((n, m)), np.zeros((n, m))
    pa, oa = _ragged([_as_line(x, "a", i) for i, x in enumerate(lines_a)])
    pb, ob = _ragged([_as_line(x, "b", j) for j, x in enumerate(lines_b)])
    out = _similarities(pa, oa, pb, ob, float(image_area), float(thickness))
    return out[..., 0], out[..., 1]


def line_similarity(
    lines_a: Sequence[FloatArray],
    lines_b: Sequence[FloatArray],
    image_area: float,
    thickness: float,
    oriented: bool = False,
) -> FloatArray:
    """One of :func:`line_similarities`: unoriented (matching) or ``oriented`` (direction)."""
    unoriented, direct = line_similarities(lines_a, lines_b, image_area, thickness)
    return direct if oriented else unoriented


def _ragged(lines: list[FloatArray]) -> tuple[FloatArray, IntArray]:
    off = np.zeros(len(lines) + 1, np.int64)
    off[1:] = np.cumsum([len(x) for x in lines])
    return np.ascontiguousarray(np.concatenate(lines)), off


def _as_line(x: AnyArray | Sequence[Sequence[float]], side: str, row: int) -> FloatArray:
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float64).reshape(-1, 2))
    if len(arr) < 2:
        raise ValidationError(f"polyline {side} row {row}: needs at least 2 points")
    if not np.isfinite(arr).all():
        raise ValidationError(f"polyline {side} row {row}: non-finite coordinates")
    return arr
