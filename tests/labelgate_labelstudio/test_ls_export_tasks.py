"""The export's tasks made the task list's (labelgate_labelstudio.export_tasks), as properties:
any JSON is either read or refused with a FormatError naming the project; a well-formed export
comes out in id order with every listed prediction in its place."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.errors import FormatError
from labelgate_labelstudio.export_tasks import (
    check_export,
    unlisted_annotators,
    with_predictions,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False)
    | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["id", "annotations", "predictions", "x"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values, max_size=4))
def test_any_json_list_is_read_or_refused_naming_the_project(tasks):
    try:
        wanted = check_export(tasks, 7)
    except FormatError as exc:
        assert str(exc).startswith("Label Studio: the export of project 7: task #")
        return
    assert all(isinstance(p, int) for p in wanted)
    with_predictions(copy.deepcopy(tasks), {})


@st.composite
def exports(draw):
    """A well-formed export (distinct task ids, predictions as ids) and the prediction list."""
    ids = draw(st.lists(st.integers(1, 10**6), unique=True, max_size=8))
    pred_ids = iter(range(1, 10**6))
    tasks = []
    for tid in ids:
        preds = [next(pred_ids) for _ in range(draw(st.integers(0, 3)))]
        tasks.append({"id": tid, "data": {}, "annotations": [], "predictions": preds})
    listed = {
        p: {"id": p, "model_version": f"m{p % 2}"}
        for t in tasks
        for p in t["predictions"]
        if draw(st.booleans()) or not draw(st.booleans())  # some deleted meanwhile
    }
    return tasks, listed


@settings(max_examples=200, deadline=None)
@given(exports())
def test_a_well_formed_export_comes_out_in_id_order_with_its_predictions(case):
    tasks, listed = case
    original = copy.deepcopy(tasks)
    assert check_export(tasks, 7) == {p for t in tasks for p in t["predictions"]}
    out = with_predictions(tasks, listed)
    assert [t["id"] for t in out] == sorted(t["id"] for t in original)
    by_id = {t["id"]: t for t in original}
    for task in out:
        assert task["predictions"] == [
            listed[p] for p in by_id[task["id"]]["predictions"] if p in listed
        ]


def test_unlisted_annotators_are_the_ids_missing_from_the_users():
    tasks = [
        {
            "id": 1,
            "annotations": [{"completed_by": 1}, {"completed_by": 9}, {"completed_by": None}],
        },
        {"id": 2, "annotations": [{"completed_by": {"id": 8}}, {"completed_by": True}]},
        {"id": 3},
    ]
    assert unlisted_annotators(tasks, {1: "a@example.com"}) == {9}
