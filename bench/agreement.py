"""Benchmark the agreement and consensus engine.

Targets (issue 6): Krippendorff's alpha on 100,000 items x 5 annotators under 1 s; Dawid-Skene
on 100,000 items x 5 annotators x 10 classes under 5 s. Also reported, without a target: the
other coefficients on the same matrix and the vectorised cluster bootstrap of a mean.

Usage: python bench/agreement.py
"""

from __future__ import annotations

import sys
import time

import numpy as np

from labelgate.agreement import fleiss_kappa, gwet_ac1, krippendorff_alpha, percent_agreement
from labelgate.consensus import DawidSkene, MajorityVote
from labelgate.stats import cluster_bootstrap_mean


def _timed(label: str, fn, target: float | None = None) -> bool:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    result = fn()
    el = time.perf_counter() - t
    goal = f" (target < {target:g} s)" if target else ""
    print(f"{label}: {el:.3f} s{goal} -> {result}")
    return target is None or el < target


def main() -> int:
    rng = np.random.default_rng(0)
    n, a, k = 100_000, 5, 10
    truth = rng.integers(0, k, n)
    codes = np.where(rng.random((n, a)) < 0.8, truth[:, None], rng.integers(0, k, (n, a)))
    codes[rng.random((n, a)) < 0.1] = -1
    ok = True
    for level in ("nominal", "ordinal", "interval"):
        ok &= _timed(
            f"krippendorff alpha ({level}), {n:,} items x {a}",
            lambda lv=level: round(krippendorff_alpha(codes, lv).value, 4),
            1.0,
        )
    for fn in (percent_agreement, fleiss_kappa, gwet_ac1):
        _timed(f"{fn.__name__}, {n:,} items x {a}", lambda f=fn: round(f(codes).value, 4))

    def dawid_skene() -> str:
        ds = DawidSkene(n_classes=k, max_iter=50).fit(codes)
        acc = float((ds.labels_ == truth).mean())
        return f"{ds.n_iter_} iterations, accuracy vs truth {acc:.3f}"

    ok &= _timed(f"dawid-skene, {n:,} items x {a} x {k} classes", dawid_skene, 5.0)
    _timed(
        f"majority vote, {n:,} items x {a}",
        lambda: f"accuracy {float((MajorityVote(k).fit_predict(codes) == truth).mean()):.3f}",
    )
    frames = rng.integers(0, 20_000, 1_000_000)
    ious = rng.random(1_000_000)
    _timed(
        "cluster bootstrap of a mean, 1,000,000 values in 20,000 frames, 200 resamples",
        lambda: cluster_bootstrap_mean(frames, ious, n_boot=200),
    )
    print("OK" if ok else "FAILED: a target was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
