"""A report's first conflicts and its conflict tally, taken from the columns, equal what the
conflict dicts give (the bundle and the scorecards read these instead of every dict)."""

import pytest
from engine_builders import box, make_set

from labelgate.engine import compare
from labelgate.engine.report import ConflictTally, Report

# Frame 0: a shifted car (low_overlap warning), a car drawn on a person (label mismatch), a
# missed car. Frame 1: two cars drawn as persons (label mismatches) and one extra car.
GT = [
    box(0, 0, 10, 10, item=0),
    box(50, 50, 60, 60, "person", item=0),
    box(80, 80, 90, 90, item=0),
    box(0, 0, 10, 10, item=1),
    box(50, 50, 60, 60, item=1),
]
DS = [
    box(2, 0, 12, 10, item=0),
    box(50, 50, 60, 60, item=0),
    box(0, 0, 10, 10, "person", item=1),
    box(50, 50, 60, 60, "person", item=1),
    box(20, 20, 30, 30, item=1),
]


def _report():
    return compare(make_set(GT, frames=(0, 1)), make_set(DS, frames=(0, 1)))


def test_tally_from_columns_matches_the_hand_count_and_the_dicts():
    tally = _report().conflict_tally()
    assert tally.count == 6
    assert dict(tally.error_types) == {
        "mismatching_label": 3,
        "missing_annotation": 1,
        "extra_annotation": 1,
    }
    # Annotated label first, then the GT label.
    assert dict(tally.confused) == {("car", "person"): 1, ("person", "car"): 2}
    # Same lists, same first-appearance order, as counting the materialised dicts.
    assert tally == ConflictTally.of_dicts(_report().conflicts)


def test_an_eager_report_tallies_its_dicts():
    lazy = _report()
    eager = Report.from_dict(_report().to_dict())
    assert eager.conflict_tally() == lazy.conflict_tally()
    assert eager.conflict_head(2) == eager.conflicts[:2]


@pytest.mark.parametrize("k", [0, 1, 4, 6, 100])
def test_head_equals_the_first_conflict_dicts(k):
    assert _report().conflict_head(k) == _report().conflicts[:k]
