"""Span, free-text and number agreement."""

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.agreement.text import edit_distance, number_alpha, span_f1, text_similarity


def _lev(s, t):
    d = list(range(len(t) + 1))
    for i, cs in enumerate(s, 1):
        prev, d[0] = d[0], i
        for j, ct in enumerate(t, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (cs != ct))
    return d[-1]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12), st.text(max_size=12))
def test_edit_distance_equals_reference(s, t):
    assert edit_distance(s, t) == _lev(s, t)
    assert edit_distance(s, t) == edit_distance(t, s)


def test_text_similarity_examples():
    assert text_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert text_similarity("", "") == 1.0
    assert text_similarity("abc", "") == 0.0


def test_span_f1_exact_and_partial():
    a = np.array([[0, 5], [10, 15]])
    b = np.array([[0, 5], [11, 15], [20, 22]])
    la, lb = np.array([0, 1]), np.array([0, 1, 1])
    assert span_f1(a, la, b, lb, "exact") == pytest.approx(2 * 1 / 5)
    assert span_f1(a, la, b, lb, "partial") == pytest.approx(2 * 2 / 5)
    assert span_f1(a, np.array([1, 1]), b, lb, "partial") == pytest.approx(2 * 1 / 5)
    assert span_f1(np.zeros((0, 2)), la[:0], np.zeros((0, 2)), lb[:0]) == 1.0


def test_number_alpha_matches_krippendorff():
    rng = np.random.default_rng(2)
    v = rng.integers(1, 6, size=(40, 3)).astype(float)
    v[rng.random(v.shape) < 0.2] = np.nan
    expected = krippendorff.alpha(reliability_data=v.T, level_of_measurement="interval")
    assert number_alpha(v).value == pytest.approx(expected)


def test_span_f1_rejects_an_unknown_mode():
    from labelgate.errors import ValidationError

    spans = np.array([[0, 3]])
    with pytest.raises(ValidationError, match="mode must be 'exact' or 'partial'"):
        span_f1(spans, np.array([0]), spans, np.array([0]), "fuzzy")
