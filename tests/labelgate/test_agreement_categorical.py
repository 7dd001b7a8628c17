"""Categorical agreement: library oracles on random data with missing values, worked examples."""

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from labelgate.agreement.categorical import (
    bootstrap,
    cohen_kappa,
    counts_table,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    marginals,
    per_class_agreement,
    percent_agreement,
)
from labelgate.errors import ValidationError


def _random(seed, n=60, raters=4, k=4, missing=0.2):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    codes = np.where(rng.random((n, raters)) < 0.7, truth[:, None], rng.integers(0, k, (n, raters)))
    codes[rng.random((n, raters)) < missing] = -1
    return codes


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_alpha_matches_krippendorff_package(seed, level):
    codes = _random(seed)
    data = np.where(codes < 0, np.nan, codes + 1.0).T  # values 1..k so ratio is defined
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    ours = krippendorff_alpha(codes, level, values=np.arange(1, 5)).value
    assert ours == pytest.approx(expected, abs=1e-9)


def test_alpha_published_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders, 12 units.
    nan = np.nan
    data = np.array(
        [
            [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
            [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
        ]
    )
    codes = np.where(np.isnan(data), -1, data - 1).astype(int).T
    vals = np.arange(1, 6)
    assert krippendorff_alpha(codes, "nominal", vals).value == pytest.approx(0.743, abs=1e-3)
    assert krippendorff_alpha(codes, "ordinal", vals).value == pytest.approx(0.815, abs=1e-3)
    assert krippendorff_alpha(codes, "interval", vals).value == pytest.approx(0.849, abs=1e-3)
    assert krippendorff_alpha(codes, "ratio", vals).value == pytest.approx(0.797, abs=1e-3)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_matches_sklearn(seed, weights):
    codes = _random(seed, raters=2)
    both = (codes >= 0).all(1)
    expected = cohen_kappa_score(codes[both, 0], codes[both, 1], labels=range(4), weights=weights)
    assert cohen_kappa(codes[:, 0], codes[:, 1], 4, weights).value == pytest.approx(expected)


def test_cohen_published_example():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> kappa 0.4 (the textbook example).
    a = np.array([0] * 25 + [1] * 25)
    b = np.array([0] * 20 + [1] * 5 + [0] * 10 + [1] * 15)
    assert cohen_kappa(a, b).value == pytest.approx(0.4)


@pytest.mark.parametrize("seed", range(6))
def test_fleiss_matches_statsmodels_on_complete_data(seed):
    codes = _random(seed, missing=0.0)
    assert fleiss_kappa(codes).value == pytest.approx(sm_fleiss(counts_table(codes, 4)))


def test_fleiss_published_example():
    # Fleiss (1971) as reproduced on Wikipedia: 10 subjects, 14 raters, 5 categories -> 0.210.
    table = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    codes = np.array([np.repeat(np.arange(5), row) for row in table])
    assert fleiss_kappa(codes).value == pytest.approx(0.210, abs=1e-3)


def test_kappa_paradox_and_gwet_ac1():
    # 125 items, 2 raters: 118 agree on class 0, 5 + 2 disagree, 0 agree on class 1.
    a = np.array([0] * 118 + [0] * 5 + [1] * 2)
    b = np.array([0] * 118 + [1] * 5 + [0] * 2)
    codes = np.stack([a, b], axis=1)
    assert percent_agreement(codes).value == pytest.approx(0.944)
    assert cohen_kappa(a, b).value == pytest.approx(-0.0234, abs=1e-4)
    # Hand-computed: pa = 0.944, pi = (0.972, 0.028), pe = 2 * 0.972 * 0.028 = 0.054432.
    assert gwet_ac1(codes).value == pytest.approx((0.944 - 0.054432) / (1 - 0.054432))
    np.testing.assert_allclose(marginals(codes), [0.972, 0.028])


def test_degenerate_inputs_are_defined_or_explained():
    one_class = np.zeros((5, 3), dtype=int)
    coef = krippendorff_alpha(one_class)
    assert np.isnan(coef.value) and "one value only" in coef.reason
    assert "one class only" in fleiss_kappa(one_class).reason
    assert percent_agreement(one_class).value == 1.0
    lonely = np.array([[0, -1], [-1, 1]])
    assert np.isnan(cohen_kappa(lonely[:, 0], lonely[:, 1]).value)
    assert "no item rated by both" in cohen_kappa(lonely[:, 0], lonely[:, 1]).reason
    assert krippendorff_alpha(lonely).reason == "no item has two ratings"
    with pytest.raises(ValidationError, match=r"codes must lie in -1\.\.1"):
        cohen_kappa(np.array([0, 5]), np.array([1, 0]), n_classes=2)
    with pytest.raises(ValidationError, match="integers"):
        fleiss_kappa(np.array([[0.5, 1.0]]))


def test_per_class_and_bootstrap():
    codes = _random(3, n=200)
    per = per_class_agreement(codes)
    assert set(per) == {0, 1, 2, 3}
    assert all(0 < c.value < 1 for c in per.values())
    coef = bootstrap(lambda c: krippendorff_alpha(c), codes, n_boot=100, seed=1)
    lo, hi = coef.ci95
    assert lo < coef.value < hi and hi - lo < 0.3
    again = bootstrap(lambda c: krippendorff_alpha(c), codes, n_boot=100, seed=1)
    assert again.ci95 == coef.ci95  # seeded
