"""Polyline similarity (CVAT LineMatcher)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from labelgate.errors import ValidationError
from labelgate.geometry import line_similarity, resample_pair

AREA = 100 * 100


def test_resample_pair_union_of_positions():
    a = np.array([[0, 0], [10, 0]], float)
    b = np.array([[0, 1], [2, 1], [10, 1]], float)  # vertex at relative 0.2
    ra, rb = resample_pair(a, b)
    np.testing.assert_allclose(ra, [[0, 0], [2, 0], [10, 0]])
    np.testing.assert_allclose(rb, [[0, 1], [2, 1], [10, 1]])


def test_line_similarity_golden():
    a = [np.array([[0, 0], [10, 0]], float)]
    b = [np.array([[0, 1], [2, 1], [10, 1]], float)]  # parallel, offset by 1 px
    r = 0.01
    expected = np.exp(-1 / (2 * AREA * (2 * r) ** 2))
    assert line_similarity(a, b, AREA, r)[0, 0] == pytest.approx(expected)


@pytest.mark.parametrize("oriented", [False, True])
def test_reversed_line(oriented):
    a = [np.array([[0, 0], [50, 0], [50, 50]], float)]
    b = [a[0][::-1].copy()]
    got = line_similarity(a, b, AREA, 0.01, oriented=oriented)[0, 0]
    if oriented:
        # resampled end points are 50*sqrt(2) apart, the middle vertex coincides
        assert got < 0.5
    else:
        assert got == pytest.approx(1.0)


def test_far_lines_rejected_and_empty():
    a = [np.array([[0, 0], [1, 0]], float)]
    b = [np.array([[90, 90], [91, 90]], float)]
    assert line_similarity(a, b, AREA, 0.01)[0, 0] == 0.0
    assert line_similarity([], b, AREA, 0.01).shape == (0, 1)
    assert line_similarity(a, [], AREA, 0.01).shape == (1, 0)


@pytest.mark.parametrize(
    ("line", "match"), [(np.zeros((0, 2)), "no points"), ([[0, 0], [np.nan, 1]], "non-finite")]
)
def test_bad_lines(line, match):
    with pytest.raises(ValidationError, match=match):
        line_similarity([np.array(line, float)], [np.zeros((2, 2))], AREA, 0.01)


lines = st.lists(
    st.integers(1, 5).flatmap(lambda k: arrays(np.float64, (k, 2), elements=st.floats(0, 100))),
    max_size=3,
)


def _ref(a, b, area, r, oriented):
    ca, cb = (a.min(0) + a.max(0)) / 2, (b.min(0) + b.max(0)) / 2
    ra = ((a.max(0) - a.min(0)) ** 2).sum() / 4
    rb = ((b.max(0) - b.min(0)) ** 2).sum() / 4
    if ((ca - cb) ** 2).sum() > ra + rb + area * (6 * r) ** 2:
        return 0.0
    pa, pb = resample_pair(a, b)

    def cmp(x, y):
        return np.mean(
            [
                np.exp(-((p - q) ** 2).sum() / (2 * area * (2 * r) ** 2))
                for p, q in zip(x, y, strict=True)
            ]
        )

    return cmp(pa, pb) if oriented else max(cmp(pa, pb), cmp(pa, pb[::-1]))


@settings(max_examples=40, deadline=None)
@given(lines, lines, st.booleans(), st.floats(0.005, 0.2))
def test_vs_reference(la, lb, oriented, r):
    got = line_similarity(la, lb, AREA, r, oriented=oriented)
    assert got.shape == (len(la), len(lb))
    assert ((got >= 0) & (got <= 1)).all()
    for i, a in enumerate(la):
        for j, b in enumerate(lb):
            assert got[i, j] == pytest.approx(_ref(a, b, AREA, r, oriented), abs=1e-12)
    same = line_similarity(la, la, AREA, r, oriented=oriented)
    np.testing.assert_allclose(np.diag(same), 1.0)
