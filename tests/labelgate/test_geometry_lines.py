"""Polyline similarity (CVAT LineMatcher)."""

from __future__ import annotations

import cvat_reference as cr
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


def test_resample_pair_repeats_a_shared_vertex_position():
    # both lines have a vertex at relative 0.5: CVAT's approximate_points emits it twice
    a = np.array([[0, 0], [5, 0], [10, 0]], float)
    b = np.array([[0, 1], [5, 1], [10, 1]], float)
    ra, rb = resample_pair(a, b)
    np.testing.assert_allclose(ra, [[0, 0], [5, 0], [5, 0], [10, 0]])
    np.testing.assert_allclose(rb, [[0, 1], [5, 1], [5, 1], [10, 1]])


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
        # resampled: the shared middle vertex twice (coinciding) and the two ends 50*sqrt(2)
        # apart (exp(-5000/8) = 0): (0 + 1 + 1 + 0) / 4
        assert got == pytest.approx(0.5)
    else:
        assert got == pytest.approx(1.0)


def test_far_lines_rejected_and_empty():
    a = [np.array([[0, 0], [1, 0]], float)]
    b = [np.array([[90, 90], [91, 90]], float)]
    assert line_similarity(a, b, AREA, 0.01)[0, 0] == 0.0
    assert line_similarity([], b, AREA, 0.01).shape == (0, 1)
    assert line_similarity(a, [], AREA, 0.01).shape == (1, 0)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (np.zeros((0, 2)), "at least 2 points"),
        ([[3, 4]], "at least 2 points"),
        ([[0, 0], [np.nan, 1]], "non-finite"),
    ],
)
def test_bad_lines(line, match):
    with pytest.raises(ValidationError, match=match):
        line_similarity([np.array(line, float)], [np.zeros((2, 2))], AREA, 0.01)


lines = st.lists(
    st.integers(2, 5).flatmap(lambda k: arrays(np.float64, (k, 2), elements=st.floats(0, 100))),
    max_size=3,
)


def test_zero_length_second_line_is_compared_as_its_point():
    # CVAT raises on this pair (approximate_points: assert False); labelgate keeps resampling
    # the first line: it becomes [(0, 0), (0, 0)] (the last pair is truncated as in CVAT),
    # both sqrt(2) from b's point (1, 1)
    a = [np.array([[0, 0], [0, 2]], float)]
    b = [np.array([[1, 1], [1, 1]], float)]
    expected = np.exp(-2 / (2 * AREA * (2 * 0.01) ** 2))
    assert line_similarity(a, b, AREA, 0.01)[0, 0] == pytest.approx(expected)


def _ref(a, b, area, r, oriented):
    """CVAT LineMatcher.distance, transcribed (the reversed candidate is the *resampled*
    second line reversed)."""
    return cr.line_distance(a.ravel().tolist(), b.ravel().tolist(), area, r, oriented)


@settings(max_examples=40, deadline=None)
@given(lines, lines, st.booleans(), st.floats(0.005, 0.2))
def test_vs_reference(la, lb, oriented, r):
    got = line_similarity(la, lb, AREA, r, oriented=oriented)
    assert got.shape == (len(la), len(lb))
    assert ((got >= 0) & (got <= 1)).all()
    for i, a in enumerate(la):
        for j, b in enumerate(lb):
            if not np.ptp(b, axis=0).any():
                continue  # CVAT's resampling fails on a zero-length second line
            assert got[i, j] == pytest.approx(_ref(a, b, AREA, r, oriented), abs=1e-12)
    same = line_similarity(la, la, AREA, r, oriented=oriented)
    np.testing.assert_allclose(np.diag(same), 1.0)
