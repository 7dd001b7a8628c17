"""The column helpers of labelgate_cvat.xml_fast against plain per-element oracles.

Their fast paths (an early answer, itemgetter instead of ``dict.get``, indexing instead of
chaining, texts memoised across batches) must give what the obvious per-element code gives.
"""

import math
import xml.etree.ElementTree as ET
from itertools import chain

import numpy as np
import pytest
from cvat_xml_oracle import LABELS
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate_cvat.xml_export import _fast_labels
from labelgate_cvat.xml_fast import (
    _SLOW,
    Fields,
    _children,
    _convert,
    column,
    distinct_in_order,
    uniform,
    values_of,
)

NAN = math.nan


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        ([], False),
        (["a"], True),
        (["a", "a", "a"], True),
        (["a", "b", "a"], False),  # the last like the first: count decides
        (["a", "a", "b"], False),  # the last unlike the first: answered at once
        ([None, None], True),
        ([None, "0"], False),
        ([NAN, NAN], True),  # one object: equal by identity, as list.count compares
        ([NAN, float("nan")], False),
    ],
)
def test_uniform(texts, expected):
    assert uniform(texts) is expected
    assert expected == (bool(texts) and all(t is texts[0] or t == texts[0] for t in texts))


@pytest.mark.parametrize(
    "attribs",
    [
        [],
        [{"k": "1"}, {"k": "2"}],
        [{}, {"k": "2"}],  # missing at the first
        [{"k": "1"}, {"k": "2"}, {}],  # missing at the last
        [{}, {}],
        [{"k": None}, {"k": ""}],
    ],
)
@pytest.mark.parametrize("default", [None, ""])
def test_values_of(attribs, default):
    assert values_of(attribs, "k", default) == [a.get("k", default) for a in attribs]


@pytest.mark.parametrize(
    "counts",
    [[], [1], [1, 1, 1], [0], [1, 0, 1], [2, 1], [1, 1, 3], [0, 0]],
)
def test_children(counts):
    elements = []
    for n, count in enumerate(counts):
        el = ET.Element("box")
        for j in range(count):
            ET.SubElement(el, "attribute", name=f"{n}.{j}")
        elements.append(el)
    got = _children(elements, np.array(counts, np.int64))
    assert [id(e) for e in got] == [id(e) for e in chain.from_iterable(elements)]


def _fields() -> Fields:
    root = ET.fromstring(f"<annotations><meta><job>{LABELS}</job></meta></annotations>")
    return Fields(*_fast_labels(root))


TEXTS = st.sampled_from(["0", "1", "7", "-3", "2.5", "x", "", None, "1e3", "99999999999"])


@settings(max_examples=200, deadline=None)
@given(
    what=st.sampled_from(["frame", "z_order", "group", "id", "rotation", "origin"]),
    batches=st.lists(st.lists(TEXTS, max_size=8), min_size=1, max_size=4),
)
def test_column_matches_per_text_conversion(what, batches):
    fields = _fields()  # one per file: batches share its memo
    dtype = np.float64 if what == "rotation" else np.int64
    for texts in batches:
        values, ok = column(fields, what, texts, dtype)
        converted = [_convert(what, t) for t in texts]
        expected_ok = [v is not _SLOW for v in converted]
        expected = np.array([v if v is not _SLOW else 0 for v in converted], dtype)
        assert len(values) == len(texts) and values.dtype == dtype
        np.testing.assert_array_equal(values, expected)
        if ok is True:
            assert all(expected_ok)
        else:
            assert ok.tolist() == expected_ok and not all(expected_ok)


@pytest.mark.parametrize(
    "values", [[], [3], [2, 0, 2, 1, 0], [0, 1, 2], [5, 5, 5], [-1, 4, -1, 7, 4]]
)
def test_distinct_in_order(values):
    assert distinct_in_order(np.array(values, np.int64)) == list(dict.fromkeys(values))
