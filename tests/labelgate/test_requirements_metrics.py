"""Requirement metrics, calculation status and completion (cvat-quality-current.md §3.3-3.4)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, jaccard_score, precision_score, recall_score

from labelgate.engine.req_metrics import (
    Calculation,
    SideCounts,
    all_completed,
    frame_calculation,
    merge_calculations,
    micro_metrics,
    requirement_completed,
    score,
)
from labelgate.engine.requirements import METRICS

# CVAT's published example: rows DS, columns GT, last row/column unmatched.
CVAT_EXAMPLE = np.array([[2, 1, 1], [0, 1, 0], [1, 0, 0]])
LABELS = ("a", "b")


def test_cvat_published_example():
    assert score(CVAT_EXAMPLE, LABELS, "jaccard_index").value == pytest.approx(3 / 7)
    assert score(CVAT_EXAMPLE, LABELS, "mean_recall").value == pytest.approx(7 / 12)
    s = score(CVAT_EXAMPLE, LABELS, "label_dice")
    assert s.value == pytest.approx(4 / 7) and s.worst_labels == ("a",)


def test_every_metric_by_hand_on_the_cvat_example():
    # These are also the 15 values CVAT's own test asserts for this matrix
    # (test_all_target_metrics_use_the_expected_aggregation, stored quality_control tests).
    # valid 3, ds 5 (rows a, b), gt 5 (cols a, b), total 6.
    # a: diag 2, row 4, col 3; b: diag 1, row 1, col 2.
    expected = {
        "accuracy": 3 / 6,
        "precision": 3 / 5,
        "recall": 3 / 5,
        "jaccard_index": 3 / 7,
        "dice": 6 / 10,
        "mean_accuracy": ((6 - 2 - 1) / 6 + (6 - 0 - 1) / 6) / 2,
        "mean_precision": (2 / 4 + 1 / 1) / 2,
        "mean_recall": (2 / 3 + 1 / 2) / 2,
        "mean_jaccard_index": (2 / 5 + 1 / 2) / 2,
        "mean_dice": (4 / 7 + 2 / 3) / 2,
        "label_accuracy": 3 / 6,
        "label_precision": 2 / 4,
        "label_recall": 1 / 2,
        "label_jaccard_index": 2 / 5,
        "label_dice": 4 / 7,
    }
    assert set(expected) == set(METRICS)
    for metric, value in expected.items():
        assert score(CVAT_EXAMPLE, LABELS, metric).value == pytest.approx(value), metric
    assert score(CVAT_EXAMPLE, LABELS, "label_recall").worst_labels == ("b",)


def test_zero_denominators_give_zero_and_inactive_labels_are_skipped():
    empty = np.zeros((3, 3))
    for metric in METRICS:
        assert score(empty, LABELS, metric).value == 0.0
    only_extras = np.array([[0, 0, 2], [0, 0, 0], [0, 0, 0]])  # label b has no support
    assert micro_metrics(only_extras)["recall"] == 0.0  # gt = 0
    s = score(only_extras, LABELS, "label_precision")
    assert s.value == 0.0 and s.worst_labels == ("a",)
    # b is inactive, so the mean is over a alone (precision 0/2).
    assert score(only_extras, LABELS, "mean_accuracy").value == pytest.approx(0 / 2)


def test_a_class_on_one_side_only_is_active():
    # CVAT's test: car matched once, bus only missed. Recall: car 1, bus 0.
    m = np.array([[1, 0, 0], [0, 0, 0], [0, 1, 0]])
    assert score(m, ("car", "bus"), "mean_recall").value == 0.5
    assert score(m, ("car", "bus"), "label_recall").value == 0.0


def test_score_is_computed_on_the_merged_matrix_not_averaged():
    # CVAT's test: frames [[1,0],[0,0]] and [[1,1],[0,0]] -> jaccard 2/3 of the sum,
    # not the mean (1 + 1/2) / 2 of the frame scores.
    frames = [np.array([[1, 0], [0, 0]]), np.array([[1, 1], [0, 0]])]
    assert score(sum(frames), ("car",), "jaccard_index").value == pytest.approx(2 / 3)


def test_ties_list_every_worst_label():
    m = np.array([[1, 0, 1], [0, 1, 1], [0, 0, 0]])
    assert score(m, LABELS, "label_precision").worst_labels == ("a", "b")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_micro_and_mean_agree_with_scikit_learn(pairs):
    """Labels 0-2 are classes, 3 is "unmatched": a (ds, gt) pair per annotation."""
    pairs = [p for p in pairs if p != (3, 3)]
    m = np.zeros((4, 4), int)
    for d, g in pairs:
        m[d, g] += 1
    ds = [d for d, _ in pairs]
    gt = [g for _, g in pairs]
    classes = [0, 1, 2]
    kw = {"labels": classes, "zero_division": 0}
    # micro over the classes, with "unmatched" as a non-class outcome, is CVAT's micro score
    assert micro_metrics(m)["precision"] == pytest.approx(
        precision_score(gt, ds, average="micro", **kw) if pairs else 0.0
    )
    assert micro_metrics(m)["recall"] == pytest.approx(
        recall_score(gt, ds, average="micro", **kw) if pairs else 0.0
    )
    assert micro_metrics(m)["dice"] == pytest.approx(
        f1_score(gt, ds, average="micro", **kw) if pairs else 0.0
    )
    active = [c for c in classes if m[c, :].sum() + m[:, c].sum() > 0]
    if active:
        kw_active = {"labels": active, "zero_division": 0}
        want = {
            "mean_precision": precision_score(gt, ds, average="macro", **kw_active),
            "mean_recall": recall_score(gt, ds, average="macro", **kw_active),
            "mean_dice": f1_score(gt, ds, average="macro", **kw_active),
            "mean_jaccard_index": jaccard_score(gt, ds, average="macro", **kw_active),
            "label_dice": min(f1_score(gt, ds, average=None, **kw_active)),
        }
        for metric, value in want.items():
            assert score(m, ("a", "b", "c"), metric).value == pytest.approx(value), metric


COMPUTED = Calculation("computed")


@pytest.mark.parametrize(
    ("gt", "ds", "status", "reason"),
    [
        (SideCounts(2, 1), SideCounts(0, 0), "computed", None),
        (SideCounts(0, 0), SideCounts(3, 2), "computed", None),
        (SideCounts(2, 0), SideCounts(1, 0), "not_computed", "filter_no_matches"),
        (SideCounts(0, 0), SideCounts(0, 0), "not_computed", "no_annotations"),
        (
            SideCounts(1, 1, ("color",)),
            SideCounts(1, 1, ("color",)),
            "not_computed",
            "required_attributes_missing",
        ),
        # missing on one side only, or only one side selected: still computed
        (SideCounts(1, 1, ("color",)), SideCounts(1, 1), "computed", None),
        (SideCounts(1, 1, ("color",)), SideCounts(1, 0), "computed", None),
    ],
)
def test_frame_calculation_table(gt, ds, status, reason):
    c = frame_calculation(gt, ds)
    assert (c.status, c.reason) == (status, reason)
    if status == "computed":
        assert c.to_dict() == c.brief() == {"status": "computed"}
    else:
        assert c.to_dict()["ground_truth"]["candidate_count"] == gt.candidate_count
        assert c.brief() == {"status": status, "reason": reason}


def test_reason_priority_across_frames():
    no_ann = Calculation("not_computed", "no_annotations")
    no_match = Calculation("not_computed", "filter_no_matches")
    missing = Calculation("not_computed", "required_attributes_missing")
    assert merge_calculations([no_ann, no_match]).reason == "filter_no_matches"
    assert merge_calculations([missing, no_match, no_ann]).reason == "required_attributes_missing"
    first = Calculation("not_computed", "filter_no_matches", SideCounts(5, 0))
    assert merge_calculations([no_ann, first, no_match]) is first  # ties keep the first
    assert merge_calculations([no_match, COMPUTED]).status == "computed"
    assert merge_calculations([]).reason == "no_annotations"


@pytest.mark.parametrize(
    ("calc", "value", "required", "done"),
    [
        (COMPUTED, 0.9, 0.9, True),
        (COMPUTED, 0.89, 0.9, False),
        (Calculation("not_computed", "filter_no_matches"), None, 0.9, True),
        (COMPUTED, 0.0, 0.0, True),
    ],
)
def test_requirement_completion_table(calc, value, required, done):
    assert requirement_completed(calc, value, required) is done


@pytest.mark.parametrize(
    ("frames", "completed", "done"),
    [
        (3, [True, True], True),
        (3, [True, False], False),
        (0, [True], False),  # no validation frames
        (3, [], False),  # no enabled requirement
    ],
)
def test_job_completion_table(frames, completed, done):
    assert all_completed(frames, completed) is done


@pytest.mark.parametrize("metric", ["accuracy", "mean_recall", "label_dice"])
def test_no_compatible_label_scores_zero_without_error(metric: str) -> None:
    """A requirement whose type no label is compatible with: only the unmatched cell, score 0."""
    from labelgate.engine.req_metrics import scores

    (s,) = scores(np.zeros((1, 1, 1)), [], metric)
    assert s.value == 0.0
