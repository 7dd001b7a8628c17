"""Polyline similarity: CVAT's ``LineMatcher`` (Datumaro-derived Gaussian on resampled lines)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labelgate.errors import ValidationError

__all__ = ["line_similarity", "resample_pair"]


def _relative_positions(line: np.ndarray) -> np.ndarray:
    seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = cum[-1]
    if total <= 0:
        return np.zeros(len(line))
    return cum / total


def _interp(line: np.ndarray, rel: np.ndarray, at: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(at, rel, line[:, 0]), np.interp(at, rel, line[:, 1])], axis=1)


def resample_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resample two polylines onto a shared arc-length parametrisation.

    The shared positions are the union of both lines' relative vertex positions (CVAT
    ``approximate_points``), so each output has the same number of points.

    Args:
        a: (ka, 2) vertices.
        b: (kb, 2) vertices.

    Returns:
        ``(a_new, b_new)`` both (k, 2).
    """
    return _resample(a, _relative_positions(a), b, _relative_positions(b))


def _resample(
    a: np.ndarray, ra: np.ndarray, b: np.ndarray, rb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    at = np.unique(np.concatenate([ra, rb]))
    return _interp(a, ra, at), _interp(b, rb, at)


def _gauss_mean(a: np.ndarray, b: np.ndarray, denom: float) -> float:
    d2 = ((a - b) ** 2).sum(axis=1)
    return float(np.exp(-d2 / denom).mean())


def line_similarity(
    lines_a: Sequence[np.ndarray],
    lines_b: Sequence[np.ndarray],
    image_area: float,
    thickness: float,
    oriented: bool = False,
) -> np.ndarray:
    """CVAT's polyline similarity for every pair.

    With S = image area and r = ``thickness``: pairs whose bbox circles are too far apart
    (squared centre distance > r_a^2 + r_b^2 + S * (6r)^2, r_* = bbox half-diagonals) get 0;
    otherwise both lines are resampled (:func:`resample_pair`) and the similarity is
    ``mean(exp(-d^2 / (2 * S * (2r)^2)))``. Unoriented similarity is the max of the direct and
    the reversed (resampled ``b`` reversed) comparison.

    Args:
        lines_a: N arrays (k, 2).
        lines_b: M arrays (k, 2).
        image_area: width * height.
        thickness: CVAT ``line_thickness`` (relative).
        oriented: compare in the drawn direction only.

    Returns:
        (N, M) float64 in [0, 1].

    Raises:
        ValidationError: a line without points or with non-finite coordinates.
    """
    n, m = len(lines_a), len(lines_b)
    out = np.zeros((n, m))
    if n == 0 or m == 0:
        return out
    la = [_as_line(x, "a", i) for i, x in enumerate(lines_a)]
    lb = [_as_line(x, "b", j) for j, x in enumerate(lines_b)]
    ca, ra2 = _circles(la)
    cb, rb2 = _circles(lb)
    dist2 = ((ca[:, None, :] - cb[None, :, :]) ** 2).sum(axis=-1)
    limit = ra2[:, None] + rb2[None, :] + image_area * (6 * thickness) ** 2
    denom = 2 * image_area * (2 * thickness) ** 2
    if denom <= 0:
        return out
    rel_a = [_relative_positions(x) for x in la]
    rel_b = [_relative_positions(x) for x in lb]
    for i, j in np.argwhere(dist2 <= limit):
        a, b = _resample(la[i], rel_a[i], lb[j], rel_b[j])
        sim = _gauss_mean(a, b, denom)
        if not oriented:
            sim = max(sim, _gauss_mean(a, b[::-1], denom))
        out[i, j] = sim
    return out


def _as_line(x: np.ndarray, side: str, row: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1, 2)
    if len(arr) == 0:
        raise ValidationError(f"polyline {side} row {row}: no points")
    if not np.isfinite(arr).all():
        raise ValidationError(f"polyline {side} row {row}: non-finite coordinates")
    return arr


def _circles(lines: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([x.min(axis=0) for x in lines])
    hi = np.array([x.max(axis=0) for x in lines])
    centre = (lo + hi) / 2
    r2 = ((hi - lo) ** 2).sum(axis=1) / 4
    return centre, r2
