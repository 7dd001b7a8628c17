"""GT / honeypot planning: how many validation frames, and which ones (as CVAT selects them)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from labelgate.errors import ValidationError
from labelgate.stats.intervals import Z95


def required_sample_size(
    population: int, margin: float, expected: float = 0.5, z: float = Z95
) -> int:
    """Frames to validate so a proportion is known within ``±margin`` at 95% confidence.

    n0 = z²·p(1−p)/m², corrected for a finite population: n = n0 / (1 + (n0 − 1)/N).

    Raises:
        ValidationError: margin outside (0, 1), expected outside [0, 1], or population < 1.
    """
    if not 0 < margin < 1:
        raise ValidationError(f"margin={margin!r} must be between 0 and 1 (e.g. 0.03)")
    if not 0 <= expected <= 1:
        raise ValidationError(f"expected={expected!r} must be a proportion in [0, 1]")
    if population < 1:
        raise ValidationError(f"items={population!r} must be at least 1")
    n0 = z * z * expected * (1 - expected) / (margin * margin)
    n = n0 / (1 + (n0 - 1) / population) if n0 > 1 else n0
    return int(min(population, max(1, math.ceil(n - 1e-9))))


def achieved_margin(
    n: int, expected: float, population: int | None = None, z: float = Z95
) -> float:
    """The ± margin a sample of ``n`` frames gives (finite-population corrected)."""
    if n <= 0:
        return 1.0
    if population is not None and n >= population:
        return 0.0  # every item is checked: the proportion is known exactly
    se = math.sqrt(expected * (1 - expected) / n)
    if population and population > 1:
        se *= math.sqrt(max(population - n, 0) / (population - 1))
    return z * se


def select_frames(
    n_frames: int,
    count: int,
    method: str = "random_uniform",
    *,
    seed: int = 0,
    job_size: int | None = None,
    frames: Sequence[int] | None = None,
) -> list[int]:
    """Choose validation frames reproducibly.

    Args:
        n_frames: frames in the task (0..n_frames-1).
        count: how many to choose (``random_uniform``), or per job (``random_per_job``).
        method: ``random_uniform``, ``random_per_job`` (``count`` frames from each job of
            ``job_size`` frames) or ``manual`` (``frames`` as given, checked).
        seed: random seed; the same seed gives the same frames.

    Raises:
        ValidationError: unknown method, impossible count, or bad manual frames.
    """
    rng = np.random.default_rng(seed)
    if method == "random_uniform":
        if not 0 < count <= n_frames:
            raise ValidationError(f"cannot pick {count} frames out of {n_frames}")
        return sorted(rng.choice(n_frames, size=count, replace=False).tolist())
    if method == "random_per_job":
        if not job_size or job_size < 1:
            raise ValidationError("random_per_job needs job_size >= 1")
        out: list[int] = []
        for start in range(0, n_frames, job_size):
            size = min(job_size, n_frames - start)
            if count > size:
                raise ValidationError(f"cannot pick {count} frames from a job of {size}")
            out += (start + rng.choice(size, size=count, replace=False)).tolist()
        return sorted(out)
    if method == "manual":
        chosen = sorted(set(frames or ()))
        bad = [f for f in chosen if not 0 <= f < n_frames]
        if not chosen or bad:
            raise ValidationError(f"manual frames must be within 0..{n_frames - 1}; bad: {bad}")
        return chosen
    raise ValidationError(f"method {method!r} is not one of random_uniform, random_per_job, manual")
