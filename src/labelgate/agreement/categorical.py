"""Categorical agreement over an (items × annotators) code matrix with missing values.

Codes are integers 0..K-1 and -1 marks "not rated". Every coefficient is computed from count
or coincidence matrices built with array operations (no loop over items), returns the number of
pairable values it rests on, and can carry a cluster-bootstrap interval over items.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from labelgate.arrays import AnyArray, FloatArray, IntArray
from labelgate.errors import ValidationError
from labelgate.stats import cluster_bootstrap, wilson_interval

MISSING = -1
LEVELS = ("nominal", "ordinal", "interval", "ratio")


@dataclass(frozen=True)
class Coefficient:
    """One agreement value with its support and (optionally) a bootstrap interval.

    ``value`` is NaN only when the data cannot define it, and ``reason`` then says why.
    """

    name: str
    value: float
    n_items: int
    n_pairable: int
    ci95: tuple[float, float] | None = None
    reason: str | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": None if np.isnan(self.value) else self.value,
            "n_items": self.n_items,
            "n_pairable": self.n_pairable,
            "ci95": list(self.ci95) if self.ci95 else None,
            "reason": self.reason,
            **self.extra,
        }


def check_codes(codes: AnyArray, n_classes: int | None = None) -> tuple[IntArray, int]:
    """Validate a code matrix and infer the number of classes.

    Raises:
        ValidationError: not 2-D, non-integer, or codes outside -1..K-1.
    """
    c = np.asarray(codes)
    if c.ndim != 2:
        raise ValidationError(f"codes must be (items, annotators), got shape {c.shape}")
    if c.size and not np.issubdtype(c.dtype, np.integer):
        raise ValidationError("codes must be integers (-1 for missing)")
    c = c.astype(np.int64)
    k = int(c.max(initial=-1)) + 1 if n_classes is None else n_classes
    if c.size and (c.min() < MISSING or c.max() >= max(k, 1)):
        raise ValidationError(f"codes must lie in -1..{k - 1}")
    return c, max(k, 1)


def counts_table(codes: IntArray, n_classes: int) -> FloatArray:
    """(items, K) number of annotators who chose each class."""
    n, _ = codes.shape
    rows = np.repeat(np.arange(n), codes.shape[1])
    flat = codes.ravel()
    ok = flat >= 0
    table = np.zeros((n, n_classes), dtype=np.float64)
    np.add.at(table, (rows[ok], flat[ok]), 1.0)
    return table


def percent_agreement(codes: AnyArray) -> Coefficient:
    """Share of agreeing annotator pairs, averaged over items with at least two ratings.

    ``extra`` carries a Wilson 95% interval (``wilson_low``, ``wilson_high``) over the items.
    """
    c, k = check_codes(codes)
    t = counts_table(c, k)
    m = t.sum(1)
    use = m >= 2
    if not use.any():
        return Coefficient("percent_agreement", np.nan, 0, 0, reason="no item has two ratings")
    agree = (t[use] * (t[use] - 1)).sum(1) / (m[use] * (m[use] - 1))
    value, n_items = float(agree.mean()), int(use.sum())
    # Wilson interval with the items as trials (an item counts as its share of agreeing pairs).
    low, high = wilson_interval(value * n_items, n_items)
    return Coefficient(
        "percent_agreement",
        value,
        n_items,
        int(m[use].sum()),
        extra={"wilson_low": low, "wilson_high": high},
    )


def _weights(k: int, weights: str | None) -> FloatArray:
    i: IntArray
    j: IntArray
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    if weights is None:
        return np.not_equal(i, j).astype(np.float64)
    if weights == "linear":
        return abs(i - j).astype(np.float64)
    if weights == "quadratic":
        return ((i - j) ** 2).astype(np.float64)
    raise ValidationError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")


def cohen_kappa(
    a: AnyArray, b: AnyArray, n_classes: int | None = None, weights: str | None = None
) -> Coefficient:
    """Cohen's κ between two annotators over the items both rated (weighted for ordered labels).

    κ = 1 − Σ w·O / Σ w·E with O the observed and E the chance confusion (product of marginals).
    """
    c, k = check_codes(np.stack([np.asarray(a), np.asarray(b)], axis=1), n_classes)
    both = (c[:, 0] >= 0) & (c[:, 1] >= 0)
    n = int(both.sum())
    if n == 0:
        return Coefficient("cohen_kappa", np.nan, 0, 0, reason="no item rated by both")
    obs = np.zeros((k, k))
    np.add.at(obs, (c[both, 0], c[both, 1]), 1.0)
    obs /= n
    exp = np.outer(obs.sum(1), obs.sum(0))
    w = _weights(k, weights)
    den = float((w * exp).sum())
    if den == 0:
        return Coefficient(
            "cohen_kappa",
            np.nan,
            n,
            2 * n,
            reason="both annotators used a single class: chance agreement is 1",
        )
    return Coefficient("cohen_kappa", 1.0 - float((w * obs).sum()) / den, n, 2 * n)


def fleiss_kappa(codes: AnyArray) -> Coefficient:
    """Fleiss' κ; with missing ratings, Gwet's generalisation (as in irrCAC).

    P̄ is the mean pair agreement over items with two or more ratings; the chance term uses
    class shares π_k = mean over every rated item of (ratings of k / ratings of the item).
    On complete data this is exactly Fleiss (1971).
    """
    c, k = check_codes(codes)
    t = counts_table(c, k)
    m = t.sum(1)
    use = m >= 2
    rated = m >= 1
    p_j = (t[rated] / m[rated][:, None]).mean(0) if rated.any() else np.zeros(k)
    t, m = t[use], m[use]
    if len(t) == 0:
        return Coefficient("fleiss_kappa", np.nan, 0, 0, reason="no item has two ratings")
    p_i = (t * (t - 1)).sum(1) / (m * (m - 1))
    p_bar = float(p_i.mean())
    pe = float((p_j**2).sum())
    if pe >= 1.0:
        return Coefficient(
            "fleiss_kappa",
            np.nan,
            len(t),
            int(m.sum()),
            reason="one class only: chance agreement is 1",
        )
    return Coefficient("fleiss_kappa", (p_bar - pe) / (1 - pe), len(t), int(m.sum()))


def coincidence_matrix(codes: IntArray, n_classes: int) -> FloatArray:
    """Krippendorff's coincidence matrix o[c, k] over pairable items (two or more ratings)."""
    t = counts_table(codes, n_classes)
    m: FloatArray = t.sum(1)
    use = m >= 2
    t, m = t[use], m[use]
    w = t / (m - 1)[:, None]
    out: FloatArray = w.T @ t - np.diag(w.sum(0))
    return out


def _delta2(values: FloatArray, n_c: FloatArray, level: str) -> FloatArray:
    v = values.astype(np.float64)
    # Broadcast row and column views; typed once so every branch returns float64 arrays.
    row: FloatArray = v[:, None]
    col: FloatArray = v[None, :]
    if level == "nominal":
        return np.not_equal(row, col).astype(np.float64)
    if level == "interval":
        return (row - col) ** 2
    if level == "ratio":
        s = row + col
        with np.errstate(divide="ignore", invalid="ignore"):
            d: FloatArray = np.where(s != 0, (row - col) / s, 0.0)
        return d**2
    if level == "ordinal":
        cum = np.concatenate([[0.0], np.cumsum(n_c)])
        i: IntArray
        j: IntArray
        i, j = np.meshgrid(np.arange(len(v)), np.arange(len(v)), indexing="ij")
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        between: FloatArray = cum[hi + 1] - cum[lo] - (n_c[i] + n_c[j]) / 2
        return between**2
    raise ValidationError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")


def krippendorff_alpha(
    codes: AnyArray,
    level: str = "nominal",
    values: FloatArray | None = None,
    distance: FloatArray | None = None,
) -> Coefficient:
    """Krippendorff's α at the given level of measurement, or with any distance between codes.

    Args:
        codes: (items, annotators) codes, -1 missing.
        level: nominal, ordinal, interval or ratio.
        values: the numeric value (interval/ratio) or the rank (ordinal) of each code; default:
            the codes. Ordinal ranks follow these values, not the code numbers.
        distance: (K, K) distance δ² between codes (e.g. MASI between label sets); replaces
            the level's metric.

    Returns:
        α = 1 − (n − 1) Σ o·δ² / Σ n_c n_k δ², over the categories actually used.
    """
    k_given = None if distance is None else len(distance)
    c, k = check_codes(codes, k_given)
    o = coincidence_matrix(c, k)
    n_c = o.sum(1)
    used = n_c > 0
    o, n_c = o[np.ix_(used, used)], n_c[used]
    vals = (np.arange(k) if values is None else np.asarray(values, dtype=float))[used]
    if level == "ordinal":  # the ordinal metric sums the categories lying between two ranks
        order = np.argsort(vals, kind="stable")
        o, n_c, vals = o[np.ix_(order, order)], n_c[order], vals[order]
    n = float(n_c.sum())
    items = int((counts_table(c, k).sum(1) >= 2).sum())
    if n == 0:
        return Coefficient(
            f"krippendorff_alpha_{level}", np.nan, 0, 0, reason="no item has two ratings"
        )
    if len(n_c) == 1:
        return Coefficient(
            f"krippendorff_alpha_{level}",
            np.nan,
            items,
            int(n),
            reason="one value only: no variation to agree on",
        )
    d2 = (
        _delta2(vals, n_c, level)
        if distance is None
        else np.asarray(distance, dtype=float)[np.ix_(used, used)]
    )
    name = f"krippendorff_alpha_{level}" if distance is None else "krippendorff_alpha"
    if distance is not None and d2.sum() == 0:
        return Coefficient(name, np.nan, items, int(n), reason="no two values differ")
    d_o = float((o * d2).sum())
    d_e = float((np.outer(n_c, n_c) * d2).sum())
    return Coefficient(name, 1 - (n - 1) * d_o / d_e, items, int(n))


def gwet_ac1(codes: AnyArray, n_classes: int | None = None) -> Coefficient:
    """Gwet's AC1 for several raters (nominal), robust to the κ prevalence paradox.

    Args:
        codes: (items, annotators) codes, -1 missing.
        n_classes: the number of categories of the control (chance agreement depends on it:
            a class nobody chose still counts); default: the highest code + 1.
    """
    c, k = check_codes(codes, n_classes)
    t = counts_table(c, k)
    m = t.sum(1)
    pair = m >= 2
    if not pair.any():
        return Coefficient("gwet_ac1", np.nan, 0, 0, reason="no item has two ratings")
    pa = float(((t[pair] * (t[pair] - 1)).sum(1) / (m[pair] * (m[pair] - 1))).mean())
    rated = m >= 1
    pi = (t[rated] / m[rated][:, None]).mean(0)
    if k < 2:
        return Coefficient(
            "gwet_ac1", np.nan, int(pair.sum()), int(m[pair].sum()), reason="one class only"
        )
    pe = float((pi * (1 - pi)).sum() / (k - 1))
    return Coefficient("gwet_ac1", (pa - pe) / (1 - pe), int(pair.sum()), int(m[pair].sum()))


def per_class_agreement(codes: AnyArray, n_classes: int | None = None) -> dict[int, Coefficient]:
    """One-vs-rest nominal α for each class (which classes annotators confuse)."""
    c, k = check_codes(codes, n_classes)
    out = {}
    for cls in range(k):
        binary = np.where(c < 0, MISSING, (c == cls).astype(np.int64))
        coef = krippendorff_alpha(binary, "nominal")
        out[cls] = Coefficient(
            f"alpha_class_{cls}", coef.value, coef.n_items, coef.n_pairable, reason=coef.reason
        )
    return out


def marginals(codes: AnyArray, n_classes: int | None = None) -> FloatArray:
    """Share of all ratings that went to each class (κ alone hides skewed marginals)."""
    c, k = check_codes(codes, n_classes)
    t: FloatArray = counts_table(c, k).sum(0)
    return t / t.sum() if t.sum() else t


def bootstrap(
    stat: Callable[[AnyArray], Coefficient],
    codes: AnyArray,
    n_boot: int = 200,
    seed: int = 0,
) -> Coefficient:
    """``stat`` with a 95% percentile interval from resampling items (cluster bootstrap).

    Resamples that leave the coefficient undefined are skipped; the interval is omitted when
    fewer than half the resamples are defined.

    Args:
        stat: a coefficient function of a code matrix (e.g. :func:`krippendorff_alpha`).
        codes: (items, annotators) codes, -1 missing; rows are the resampled clusters.
        n_boot, seed: number of resamples and generator seed.

    Returns:
        The coefficient on all items, with ``ci95`` set when an interval exists.
    """
    c = np.asarray(codes)
    base = stat(c)
    if np.isnan(base.value):
        return base
    ci = cluster_bootstrap(lambda rows: stat(c[rows]).value, len(c), n_boot=n_boot, seed=seed)
    return Coefficient(
        base.name, base.value, base.n_items, base.n_pairable, ci, base.reason, base.extra
    )
