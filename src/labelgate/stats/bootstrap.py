"""Cluster (frame-level) bootstrap intervals.

Values observed on one item/frame are correlated (the same annotators, the same scene), so a
naive resample of single values understates the uncertainty. These helpers resample whole
clusters with replacement and take percentile intervals.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from labelgate.arrays import AnyArray, FloatArray, IntArray
from labelgate.errors import ValidationError


def _check(n_boot: int, level: float) -> None:
    if n_boot < 0:
        raise ValidationError(f"n_boot={n_boot!r}: the number of resamples must be >= 0")
    if not 0 < level < 1:
        raise ValidationError(f"level={level!r}: the interval level must lie in (0, 1)")


def cluster_bootstrap(
    stat: Callable[[IntArray], float],
    n_clusters: int,
    *,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    min_defined: float = 0.5,
) -> tuple[float, float] | None:
    """Percentile interval of ``stat`` over resamples of cluster indices.

    Args:
        stat: called with an int array of ``n_clusters`` cluster indices drawn with replacement
            (duplicates allowed); returns the statistic or NaN when it is undefined.
        n_clusters: number of clusters (items, frames).
        n_boot: number of resamples.
        seed: seed of the generator, so reports are reproducible.
        level: interval level.
        min_defined: share of resamples that must give a defined value.

    Returns:
        ``(low, high)``, or None when there are fewer than two clusters, no resamples, or too
        few defined resamples.

    Raises:
        ValidationError: negative ``n_boot`` or a level outside (0, 1).
    """
    _check(n_boot, level)
    if n_clusters < 2 or n_boot == 0:
        return None
    rng = np.random.default_rng(seed)
    draws = np.array(
        [stat(rng.integers(0, n_clusters, n_clusters)) for _ in range(n_boot)], dtype=float
    )
    draws = draws[~np.isnan(draws)]
    if len(draws) < max(1, min_defined * n_boot):
        return None
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return float(lo), float(hi)


def cluster_bootstrap_mean(
    clusters: AnyArray,
    values: FloatArray,
    *,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Interval of the overall mean of ``values`` when whole clusters are resampled.

    Fully vectorised: per-cluster sums and counts are drawn as an ``(n_boot, clusters)`` index
    matrix, so no Python loop runs per resample.

    Args:
        clusters: (N,) cluster key of each value (e.g. the item id of a matched pair).
        values: (N,) values (e.g. IoU of each matched pair).
        n_boot, seed, level: as in :func:`cluster_bootstrap`.

    Returns:
        ``(low, high)``, or None with fewer than two values or two clusters.

    Raises:
        ValidationError: arrays of different length, or bad ``n_boot``/``level``.
    """
    _check(n_boot, level)
    clusters, values = np.asarray(clusters), np.asarray(values, dtype=float)
    if clusters.shape != values.shape:
        raise ValidationError(
            f"clusters {clusters.shape} and values {values.shape} must have the same shape"
        )
    if len(values) < 2 or n_boot == 0:
        return None
    _, inv = np.unique(clusters, return_inverse=True)
    n_clusters = int(inv.max()) + 1
    if n_clusters < 2:
        return None
    sums = np.bincount(inv, weights=values)
    counts = np.bincount(inv).astype(float)
    draw = np.random.default_rng(seed).integers(0, n_clusters, size=(n_boot, n_clusters))
    means = sums[draw].sum(1) / counts[draw].sum(1)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)
