"""Benchmark: Krippendorff's alpha on 100,000 items x 5 annotators (target < 1 s) and
Dawid-Skene on 100,000 items x 5 annotators x 10 classes (target < 5 s).

Usage: python bench/agreement.py
"""

from __future__ import annotations

import sys
import time

import numpy as np

from labelgate.agreement import krippendorff_alpha
from labelgate.consensus import DawidSkene


def main() -> int:
    rng = np.random.default_rng(0)
    n, a, k = 100_000, 5, 10
    truth = rng.integers(0, k, n)
    codes = np.where(rng.random((n, a)) < 0.8, truth[:, None], rng.integers(0, k, (n, a)))
    codes[rng.random((n, a)) < 0.1] = -1
    ok = True
    for level in ("nominal", "interval"):
        t = time.perf_counter()
        alpha = krippendorff_alpha(codes, level).value
        el = time.perf_counter() - t
        print(f"krippendorff alpha ({level}), {n:,} items x {a}: {el:.3f} s (alpha {alpha:.3f})")
        ok &= el < 1.0
    t = time.perf_counter()
    ds = DawidSkene(n_classes=k, max_iter=50).fit(codes)
    el = time.perf_counter() - t
    acc = float((ds.labels_ == truth).mean())
    print(
        f"dawid-skene, {n:,} items x {a} x {k} classes: {el:.2f} s, {ds.n_iter_} iterations, "
        f"accuracy vs truth {acc:.3f}"
    )
    ok &= el < 5.0
    print("OK" if ok else "FAILED: a target was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
