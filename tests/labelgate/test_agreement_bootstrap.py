"""Cluster (frame-level) bootstrap intervals."""

import numpy as np
import pytest

from labelgate.agreement.categorical import bootstrap, fleiss_kappa, krippendorff_alpha
from labelgate.errors import ValidationError
from labelgate.stats import cluster_bootstrap, cluster_bootstrap_mean


def test_iid_mean_interval_is_close_to_the_normal_theory_interval():
    rng = np.random.default_rng(5)
    values = rng.normal(10.0, 2.0, 400)
    lo, hi = cluster_bootstrap_mean(np.arange(400), values, n_boot=2000, seed=1)
    half = 1.96 * values.std(ddof=1) / np.sqrt(400)  # 0.196 for sigma 2
    assert lo == pytest.approx(values.mean() - half, abs=0.03)
    assert hi == pytest.approx(values.mean() + half, abs=0.03)


def test_clustered_values_give_a_wider_interval_than_pretending_independence():
    # 40 frames x 10 objects; a frame effect (sd 1) dominates the object noise (sd 0.1).
    rng = np.random.default_rng(0)
    frames = np.repeat(np.arange(40), 10)
    values = rng.normal(0, 1, 40)[frames] + rng.normal(0, 0.1, 400)
    clustered = np.subtract(*cluster_bootstrap_mean(frames, values, seed=2)[::-1])
    naive = np.subtract(*cluster_bootstrap_mean(np.arange(400), values, seed=2)[::-1])
    # Design effect 1 + (m - 1) rho with rho ~ 0.99: the width grows by about sqrt(10).
    assert clustered / naive == pytest.approx(np.sqrt(10), rel=0.3)


def test_generic_bootstrap_equals_the_vectorised_mean_on_the_same_draws():
    # With one value per cluster both paths compute the same statistic; numpy's Generator
    # draws a (n_boot, n) matrix in the same order as n_boot sequential draws.
    values = np.random.default_rng(3).random(50)
    generic = cluster_bootstrap(lambda rows: values[rows].mean(), 50, n_boot=300, seed=9)
    fast = cluster_bootstrap_mean(np.arange(50), values, n_boot=300, seed=9)
    assert generic == pytest.approx(fast)


def test_degenerate_and_bad_inputs():
    assert cluster_bootstrap(lambda r: 1.0, 1) is None  # one cluster: no interval
    assert cluster_bootstrap(lambda r: np.nan, 10) is None  # never defined
    assert cluster_bootstrap_mean(np.zeros(5), np.ones(5)) is None  # one frame
    assert cluster_bootstrap_mean(np.arange(3), np.ones(3), n_boot=0) is None
    with pytest.raises(ValidationError, match="same shape"):
        cluster_bootstrap_mean(np.arange(3), np.ones(4))
    with pytest.raises(ValidationError, match="level"):
        cluster_bootstrap(lambda r: 1.0, 5, level=1.5)
    with pytest.raises(ValidationError, match="n_boot"):
        cluster_bootstrap(lambda r: 1.0, 5, n_boot=-1)


def test_coefficient_bootstrap_reports_support_next_to_the_interval():
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 3, 300)
    codes = np.where(rng.random((300, 3)) < 0.8, truth[:, None], rng.integers(0, 3, (300, 3)))
    for fn in (krippendorff_alpha, fleiss_kappa):
        coef = bootstrap(fn, codes, n_boot=200, seed=0)
        lo, hi = coef.ci95
        assert lo < coef.value < hi and hi - lo < 0.15
        d = coef.to_dict()
        assert d["n_items"] == 300 and d["n_pairable"] == 900 and d["ci95"] == [lo, hi]
    # A coefficient that is undefined on the data carries no interval and says why.
    flat = bootstrap(krippendorff_alpha, np.zeros((10, 2), dtype=int))
    assert flat.ci95 is None and flat.reason
