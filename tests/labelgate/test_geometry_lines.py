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


def _cvat_approximate(a, b):
    """CVAT 2.42 LineMatcher.approximate_points, transcribed from quality_reports.py."""
    eps = 1e-7
    a_count, b_count = len(a) - 1, len(b) - 1
    a_lens = np.linalg.norm(a[1:] - a[:-1], axis=1)
    a_ends = [0]
    for seg in a_lens:
        a_ends.append(a_ends[-1] + seg)
    a_ends.pop(0)
    a_ends.append(a_ends[-1])
    b_lens = np.linalg.norm(b[1:] - b[:-1], axis=1)
    b_ends = [0]
    for seg in b_lens:
        b_ends.append(b_ends[-1] + seg)
    b_ends.pop(0)
    b_ends.append(b_ends[-1])
    a_len, b_len = a_ends[-1], b_ends[-1]
    size = len(a) + len(b) - 1
    an, bn = np.zeros((size, 2)), np.zeros((size, 2))
    an[0], bn[0] = a[0], b[0]
    ai = bi = 0
    while ai < a_count or bi < b_count:
        nxt = ai + bi + 1
        a_pos = a_ends[ai] / (a_len or 1)
        b_pos = b_ends[bi] / (b_len or 1)
        if ai < a_count and a_pos <= b_pos:
            if bi < b_count:
                q = (b_pos - a_pos) * (b_len / (b_lens[bi] or 1))
                bn[nxt] = b[1 + bi] if abs(q) <= eps else b[bi] * q + b[1 + bi] * (1 - q)
            elif bi == b_count:
                bn[nxt] = b[bi]
            ai += 1
            an[nxt] = a[ai]
        elif bi < b_count:
            if ai < a_count:
                q = (a_pos - b_pos) * (a_len / (a_lens[ai] or 1))
                an[nxt] = a[1 + ai] if abs(q) <= eps else a[ai] * q + a[1 + ai] * (1 - q)
            elif ai == a_count:
                an[nxt] = a[ai]
            bi += 1
            bn[nxt] = b[bi]
    if nxt < size:
        an, bn = an[:nxt], bn[:nxt]
    return an, bn


def _ref(a, b, area, r, oriented):
    """CVAT LineMatcher.distance: quick rejection, approximate_points, then the Gaussian, with
    the reversed candidate being the *resampled* second line reversed."""
    ca, cb = (a.min(0) + a.max(0)) / 2, (b.min(0) + b.max(0)) / 2
    ra = ((a.max(0) - a.min(0)) ** 2).sum() / 4
    rb = ((b.max(0) - b.min(0)) ** 2).sum() / 4
    if ((ca - cb) ** 2).sum() > ra + rb + area * (6 * r) ** 2:
        return 0.0
    pa, pb = _cvat_approximate(a, b)

    def cmp(x, y):
        d = np.linalg.norm(x - y, axis=1)
        return sum(np.exp(-(d**2) / (2 * area * (2 * r) ** 2))) / len(x)

    return cmp(pa, pb) if oriented else max(cmp(pa, pb), cmp(pa, pb[::-1]))


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
