"""Set-valued agreement (MASI/Jaccard α), AC1's class count, ordinal α's order (issue #19)."""

import krippendorff
import numpy as np
import pytest
from nltk.metrics.agreement import AnnotationTask
from nltk.metrics.distance import jaccard_distance as nltk_jaccard
from nltk.metrics.distance import masi_distance as nltk_masi

from labelgate.agreement.categorical import gwet_ac1, krippendorff_alpha
from labelgate.agreement.sets import (
    jaccard_distance,
    masi_distance,
    per_class_set_alpha,
    set_alpha,
)

SETS = [
    [{"cat"}, {"cat"}, {"cat", "bird"}],
    [{"dog"}, {"dog"}, None],
    [{"cat", "dog"}, {"cat"}, {"dog"}],
    [{"cat"}, {"cat", "bird"}, {"cat"}],
    [{"dog"}, {"cat"}, {"dog"}],
    [{"bird"}, {"bird", "dog"}, {"bird"}],
]


def _values():
    return [[None if v is None else frozenset(v) for v in row] for row in SETS]


@pytest.mark.parametrize(("distance", "oracle"), [("masi", nltk_masi), ("jaccard", nltk_jaccard)])
def test_set_alpha_matches_nltk(distance, oracle):
    data = [
        (f"c{j}", str(i), frozenset(v))
        for i, row in enumerate(SETS)
        for j, v in enumerate(row)
        if v is not None
    ]
    expected = AnnotationTask(data=data, distance=oracle).alpha()
    assert set_alpha(_values(), distance).value == pytest.approx(expected)


def test_set_distances_by_hand():
    a, b = frozenset({"x", "y"}), frozenset({"x"})
    assert jaccard_distance(a, b) == pytest.approx(0.5)
    assert masi_distance(a, b) == pytest.approx(1 - 0.5 * 2 / 3)  # subset: M = 2/3
    assert masi_distance(frozenset({"x", "y"}), frozenset({"y", "z"})) == pytest.approx(
        1 - (1 / 3) * (1 / 3)
    )
    assert masi_distance(frozenset(), frozenset()) == 0.0


def test_per_class_binary_alpha_matches_krippendorff():
    got = per_class_set_alpha(_values(), ["cat", "dog", "bird"])
    for cls in ("cat", "dog", "bird"):
        data = np.array([[np.nan if v is None else float(cls in v) for v in row] for row in SETS]).T
        expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
        assert got[cls].value == pytest.approx(expected)


def test_gwet_ac1_uses_the_controls_class_count():
    # Two of three classes used; AC1's chance term divides by K - 1 with K = 3 (by hand).
    codes = np.array([[0, 0], [0, 1], [1, 1], [0, 0]])
    pa = 3 / 4
    pi = np.array([5 / 8, 3 / 8, 0.0])
    pe3 = (pi * (1 - pi)).sum() / 2
    assert gwet_ac1(codes, n_classes=3).value == pytest.approx((pa - pe3) / (1 - pe3))
    pe2 = (pi[:2] * (1 - pi[:2])).sum() / 1
    assert gwet_ac1(codes).value == pytest.approx((pa - pe2) / (1 - pe2))


def test_ordinal_alpha_follows_the_order_of_values():
    # Codes 0, 1, 2 stand for ranks 3, 1, 2 (e.g. classes listed out of order).
    codes = np.array([[0, 0, 2], [1, 1, 1], [2, 0, 2], [1, 2, 1], [0, 0, 0]])
    ranks = np.array([3.0, 1.0, 2.0])
    expected = krippendorff.alpha(
        reliability_data=ranks[codes].T, level_of_measurement="ordinal", value_domain=[1, 2, 3]
    )
    assert krippendorff_alpha(codes, "ordinal", values=ranks).value == pytest.approx(expected)
    plain = krippendorff.alpha(reliability_data=codes.T, level_of_measurement="ordinal")
    assert krippendorff_alpha(codes, "ordinal").value == pytest.approx(plain)
    assert not np.isclose(expected, plain)
