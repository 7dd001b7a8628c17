"""Categorical agreement: library oracles on random data with missing values, worked examples."""

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


# Gwet, Handbook of Inter-Rater Reliability (4th ed.), data set "cac.raw4raters" (the R irrCAC
# package's worked example): 12 units, 4 raters, values 1..5, missing ratings.
RAW4RATERS = (
    np.array(
        [
            [1, 1, 0, 1],
            [2, 2, 3, 2],
            [3, 3, 3, 3],
            [3, 3, 3, 3],
            [2, 2, 2, 2],
            [1, 2, 3, 4],
            [4, 4, 4, 4],
            [1, 1, 2, 1],
            [2, 2, 2, 2],
            [0, 5, 5, 5],
            [0, 0, 1, 1],
            [0, 0, 3, 0],
        ]
    )
    - 1
)  # 0 above marks a missing rating -> -1


def test_gwet_handbook_example_all_coefficients():
    # Published irrCAC results: pa 0.81818; Fleiss 0.76117; AC1 0.77544; alpha 0.74342.
    assert percent_agreement(RAW4RATERS).value == pytest.approx(0.81818, abs=1e-5)
    assert fleiss_kappa(RAW4RATERS).value == pytest.approx(0.76117, abs=1e-5)
    assert gwet_ac1(RAW4RATERS).value == pytest.approx(0.77544, abs=1e-5)
    alpha = krippendorff_alpha(RAW4RATERS)
    assert alpha.value == pytest.approx(0.74342, abs=1e-5)
    # Unit 12 has a single rating: 11 pairable units carrying 40 pairable values.
    assert (alpha.n_items, alpha.n_pairable) == (11, 40)


def test_published_2x2_prevalence_paradox_ac1():
    # Reference table [[118, 5], [2, 0]]: p_o 0.944, kappa -0.023, AC1 0.941.
    a = np.array([0] * 123 + [1] * 2)
    b = np.array([0] * 118 + [1] * 5 + [0] * 2)
    codes = np.stack([a, b], axis=1)
    assert gwet_ac1(codes).value == pytest.approx(0.941, abs=5e-4)
    assert cohen_kappa(a, b).value == pytest.approx(-0.023, abs=5e-4)


def _pairs_from_table(table):
    rows, cols = np.nonzero(np.asarray(table))
    counts = np.asarray(table)[rows, cols]
    return np.repeat(rows, counts), np.repeat(cols, counts)


def test_cohen_sas_worked_example_unweighted_and_linear():
    # SAS PROC FREQ example (reproduced in statsmodels' tests): kappa 0.4842, weighted 0.4701.
    a, b = _pairs_from_table([[0, 4, 1], [0, 8, 0], [0, 1, 5]])
    assert cohen_kappa(a, b, 3).value == pytest.approx(0.4842, abs=1e-4)
    assert cohen_kappa(a, b, 3, "linear").value == pytest.approx(0.4701, abs=1e-4)


def test_percent_agreement_fleiss_1971_p_bar():
    # Same Fleiss (1971) table as above: P-bar = 0.378 (Wikipedia's worked example).
    table = [
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
    codes = np.array([np.repeat(np.arange(5), row) for row in table])
    assert percent_agreement(codes).value == pytest.approx(0.378, abs=1e-3)


@pytest.mark.parametrize("seed", range(6))
def test_percent_agreement_matches_statsmodels_randolph(seed):
    # Randolph's free-marginal kappa = (P - 1/k) / (1 - 1/k): invert it to get statsmodels' P.
    codes = _random(seed, missing=0.0)
    randolph = sm_fleiss(counts_table(codes, 4), method="randolph")
    expected = randolph * (1 - 1 / 4) + 1 / 4
    assert percent_agreement(codes).value == pytest.approx(expected)


def _gwet_by_definition(codes, k):
    """Gwet (2008) AC1 and Fleiss' kappa (Gwet's missing-data form), one item at a time."""
    pa, pi, n_pair, n_rated = 0.0, np.zeros(k), 0, 0
    for row in codes:
        r = row[row >= 0]
        if len(r) == 0:
            continue
        n_rated += 1
        counts = np.bincount(r, minlength=k)
        pi += counts / len(r)
        if len(r) >= 2:
            n_pair += 1
            pa += (counts * (counts - 1)).sum() / (len(r) * (len(r) - 1))
    pa, pi = pa / n_pair, pi / n_rated
    pe_ac1 = (pi * (1 - pi)).sum() / (k - 1)
    pe_fleiss = (pi**2).sum()
    return (pa - pe_ac1) / (1 - pe_ac1), (pa - pe_fleiss) / (1 - pe_fleiss)


@pytest.mark.parametrize("seed", range(6))
def test_gwet_and_fleiss_with_missing_match_item_by_item_definition(seed):
    codes = _random(seed, missing=0.3)
    ac1, fleiss = _gwet_by_definition(codes, 4)
    assert gwet_ac1(codes).value == pytest.approx(ac1)
    assert fleiss_kappa(codes).value == pytest.approx(fleiss)


@pytest.mark.parametrize("seed", range(4))
def test_per_class_matches_krippendorff_on_binary_recoding(seed):
    codes = _random(seed)
    per = per_class_agreement(codes)
    for cls, coef in per.items():
        binary = np.where(codes < 0, np.nan, (codes == cls).astype(float)).T
        expected = krippendorff.alpha(reliability_data=binary, level_of_measurement="nominal")
        assert coef.value == pytest.approx(expected)


def test_percent_agreement_wilson_interval():
    # 2 raters, 45 of 50 items agree: the Wilson interval of 45/50 is [0.7864, 0.9565].
    a = np.zeros(50, dtype=int)
    b = np.array([0] * 45 + [1] * 5)
    coef = percent_agreement(np.stack([a, b], axis=1))
    assert coef.value == pytest.approx(0.9)
    assert coef.extra["wilson_low"] == pytest.approx(0.7864, abs=1e-4)
    assert coef.to_dict()["wilson_high"] == pytest.approx(0.9565, abs=1e-4)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10_000),
    st.sampled_from(["nominal", "ordinal", "interval"]),
)
def test_coefficients_ignore_item_and_annotator_order(seed, level):
    rng = np.random.default_rng(seed)
    codes = _random(seed, n=int(rng.integers(3, 30)), raters=int(rng.integers(2, 5)))
    shuffled = codes[rng.permutation(len(codes))][:, rng.permutation(codes.shape[1])]
    for fn in (percent_agreement, fleiss_kappa, gwet_ac1):
        assert fn(shuffled).value == pytest.approx(fn(codes).value, nan_ok=True)
    assert krippendorff_alpha(shuffled, level).value == pytest.approx(
        krippendorff_alpha(codes, level).value, nan_ok=True
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_nominal_coefficients_ignore_class_renaming(seed):
    codes = _random(seed, n=25, k=4)
    perm = np.random.default_rng(seed).permutation(4)
    renamed = np.where(codes < 0, -1, perm[np.maximum(codes, 0)])
    for fn in (percent_agreement, fleiss_kappa, gwet_ac1, krippendorff_alpha):
        assert fn(renamed).value == pytest.approx(fn(codes).value, nan_ok=True)
    kappa = cohen_kappa(codes[:, 0], codes[:, 1], 4).value
    assert cohen_kappa(renamed[:, 0], renamed[:, 1], 4).value == pytest.approx(kappa, nan_ok=True)
