"""Scoring requirement trees: the issue's 2.80 scenario, aggregation and the report shape."""

import json

import numpy as np
import pytest
from engine_builders import box, make_set

from labelgate.engine import (
    QualitySettings,
    compare,
    compare_requirements,
    project_requirement_report,
    task_requirement_report,
)
from labelgate.engine.requirements import Requirement, RequirementTree, legacy_preset
from labelgate.errors import DataWarning

CAR = '{"==":[{"var":"shape.label"},"car"]}'
TRUCK = '{"==":[{"var":"shape.label"},"truck"]}'


def _scenario_tree():
    """CVAT's 9 bases (disabled) with Base rectangle at iou 0.75, precision >= 0.9, and Base tag
    enabled at stock defaults; children "cars strict" (iou 0.9) and "trucks" (selects nothing)."""
    nodes = []
    for n in RequirementTree.stock().nodes:
        if n.name == "Base rectangle":
            n = Requirement(
                n.name,
                "rectangle",
                enabled=True,
                iou_threshold=0.75,
                metric="precision",
                required_score=0.9,
                sort_order=n.sort_order,
            )
        elif n.name == "Base tag":
            n = Requirement(n.name, "tag", enabled=True, sort_order=n.sort_order)
        nodes.append(n)
    nodes.append(Requirement("cars strict", parent="Base rectangle", filter=CAR, iou_threshold=0.9))
    nodes.append(Requirement("trucks", parent="Base rectangle", filter=TRUCK))
    return RequirementTree(tuple(nodes))


def _scenario_sets():
    # A/A' IoU 90/110 = 0.818: matched at 0.75, not at 0.9. B/B' and C/C' identical.
    # D' is an extra car. The polygons would match, but Base polygon is disabled.
    poly = {"kind": "polygon", "points": [0, 50, 20, 50, 20, 70], "label": "car"}
    gt = make_set([box(0, 0, 10, 10), box(20, 0, 30, 10), box(50, 50, 60, 60, "person"), poly])
    ds = make_set(
        [
            box(1, 0, 11, 10),
            box(20, 0, 30, 10),
            box(50, 50, 60, 60, "person"),
            box(80, 80, 90, 90),
            poly,
        ]
    )
    return gt, ds


def test_the_issue_2_80_scenario():
    gt, ds = _scenario_sets()
    rep = compare_requirements(gt, ds, _scenario_tree())
    names = [r.requirement.name for r in rep.results]
    assert names == ["Base tag", "Base rectangle", "cars strict", "trucks"]  # DFS, enabled only
    base = rep.result("Base rectangle")
    # Matched A, B, C; D' extra: precision 3/4 < 0.9. Polygons are not in this requirement.
    assert base.labels == ("car", "person")  # rectangle-compatible labels only
    np.testing.assert_array_equal(base.matrix, [[2, 0, 1], [0, 1, 0], [0, 0, 0]])
    assert base.score.value == pytest.approx(3 / 4) and not base.completed
    strict = rep.result("cars strict")
    # Cars only at IoU 0.9: A/A' fail (missing + extra), B matches, D' extra: precision 1/3.
    np.testing.assert_array_equal(strict.matrix, [[1, 0, 2], [0, 0, 0], [1, 0, 0]])
    assert strict.score.value == pytest.approx(1 / 3)
    assert strict.requirement.metric == "precision" and strict.requirement.required_score == 0.9
    trucks = rep.result("trucks")
    assert (trucks.calculation.status, trucks.calculation.reason) == (
        "not_computed",
        "filter_no_matches",
    )
    assert trucks.score is None and trucks.completed  # not computed is not failed
    tag = rep.result("Base tag")
    assert tag.calculation.reason == "no_annotations"
    assert not rep.completed
    d = rep.to_dict()
    req = d["summary"]["requirements"]
    assert (req["total"], req["enabled"], req["completed"], req["not_computed"]) == (11, 4, 2, 2)
    item = req["items"][1]
    assert item["name"] == "Base rectangle" and item["threshold"] == 0.9
    assert item["score_components"] == {"valid_count": 3, "missing_count": 0, "extra_count": 1}
    assert item["calculation"] == {"status": "computed"}
    assert req["items"][3]["calculation"] == {
        "status": "not_computed",
        "reason": "filter_no_matches",
    }
    summary = d["groups"]["trucks"]["comparison_summary"]["confusion_matrix"][
        "target_metric_summary"
    ]
    assert summary["values"] == {"micro": None, "mean": None, "label": None}
    # Wilson interval of 3 successes in 4 (precision), by the closed form.
    z = 1.959963984540054
    p, n = 0.75, 4
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    assert np.mean(item["score_ci95"]) == pytest.approx(centre)
    assert set(d["groups"]) == {"Base tag", "Base rectangle", "cars strict", "trucks"}
    json.dumps(d)  # JSON-serialisable


def test_conflicts_are_errors_without_low_overlap():
    # IoU 100/130 = 0.77: a match at 0.75 that CVAT 2.42 would flag as low overlap (< 0.8).
    gt = make_set([box(0, 0, 10, 10), box(50, 50, 60, 60)])
    ds = make_set([box(0, 0, 10, 13)])
    tree = RequirementTree((Requirement("r", "rectangle", iou_threshold=0.75),))
    r = compare_requirements(gt, ds, tree).result("r")
    assert [c["type"] for c in r.conflicts] == ["missing_annotation"]
    assert all(c["severity"] == "error" and c["requirement"] == "r" for c in r.conflicts)
    group = compare_requirements(gt, ds, tree).to_dict()["groups"]["r"]
    assert group["frame_results"]["0"]["score_components"]["valid_count"] == 1
    assert group["comparison_summary"]["conflicts_by_type"]["missing_annotation"] == 1
    assert "low_overlap" not in group["comparison_summary"]["conflicts_by_type"]


def test_all_disabled_warns_and_computes_nothing():
    gt, ds = _scenario_sets()
    with pytest.warns(DataWarning, match="every quality requirement is disabled"):
        rep = compare_requirements(gt, ds, RequirementTree.stock())
    d = rep.to_dict()
    assert d["summary"]["requirements"]["items"] == [] and d["groups"] == {}
    assert d["summary"]["requirements"]["enabled"] == 0 and not rep.completed
    assert rep.validation_frames == 0 and d["comparison_summary"]["frames"] == []


def test_rule_attributes_missing_on_both_sides():
    from labelgate.engine.requirements import AttributeComparison, RulePatch

    rule = AttributeComparison(rules={"color": RulePatch(enabled=True)})
    tree = RequirementTree(
        (
            Requirement("r", "rectangle", attribute_comparison=rule),
            Requirement(
                "unknown id",
                "polygon",
                attribute_comparison=AttributeComparison(rules={42: RulePatch(enabled=True)}),
            ),
        )
    )
    gt = make_set([box(0, 0, 10, 10)])
    plain = compare_requirements(gt, make_set([box(0, 0, 10, 10)]), tree).result("r")
    assert plain.calculation.reason == "required_attributes_missing"
    assert plain.calculation.to_dict()["annotations"]["missing_attributes"] == ["color"]
    assert plain.score is None and plain.completed
    # one side carries it: computed
    ds = make_set([box(0, 0, 10, 10, attributes={"color": "red"})])
    assert compare_requirements(gt, ds, tree).result("r").calculation.computed
    assert tree.resolved("unknown id").required_attributes() == ["#42"]


def test_skeleton_keypoint_requirement_scores_each_point():
    def skel(points, vis):
        return {"kind": "skeleton", "label": "body", "points": points, "vis": vis}

    gt = make_set([skel([10, 10, 50, 50], [2, 2])])
    ds = make_set([skel([10, 10, 90, 90], [2, 2])])  # head exact, foot far away
    tree = RequirementTree((Requirement("kp", "skeleton_keypoint", metric="mean_recall"),))
    r = compare_requirements(gt, ds, tree).result("kp")
    assert r.labels == ("body.head", "body.foot")
    np.testing.assert_array_equal(r.matrix, [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert r.score.value == pytest.approx((1 + 0) / 2)


def test_the_2_42_preset_gives_compare_s_accuracy():
    gt, ds = _scenario_sets()
    s = QualitySettings(iou_threshold=0.5)
    rep = compare_requirements(gt, ds, legacy_preset(s))
    (r,) = rep.results
    legacy = compare(gt, ds, s).summary
    assert r.score.value == pytest.approx(legacy["accuracy"])
    assert r.score_components()["valid_count"] == legacy["valid_count"]
    assert rep.to_dict()["semantics"] == "cvat-2.42"


# --- aggregation ---------------------------------------------------------------------------


def _jobs():
    """GT job 100 on frames 0-2: a car on each frame, a person on frame 1.
    Job 1 (frames 0, 1) and job 2 (frames 1, 2) both find every car and miss the person."""
    car, person = box(0, 0, 10, 10), box(50, 50, 60, 60, "person")
    gt = make_set(
        [{**car, "item": 0}, {**car, "item": 1}, {**person, "item": 1}, {**car, "item": 2}],
        frames=(0, 1, 2),
        job_id=100,
    )
    ds1 = make_set([{**car, "item": 0}, {**car, "item": 1}], frames=(0, 1), job_id=1)
    ds2 = make_set([{**car, "item": 1}, {**car, "item": 2}], frames=(1, 2), job_id=2)
    tree = RequirementTree(
        (Requirement("r", "rectangle", metric="mean_recall", required_score=0.5),)
    )
    return [compare_requirements(gt, ds, tree) for ds in (ds1, ds2)]


def test_job_to_task_counts_a_shared_frame_once():
    j1, j2 = _jobs()
    np.testing.assert_array_equal(j1.result("r").matrix, [[2, 0, 0], [0, 0, 0], [0, 1, 0]])
    task = task_requirement_report([j1, j2], excluded=1)
    r = task.result("r")
    np.testing.assert_array_equal(r.matrix, [[4, 0, 0], [0, 0, 0], [0, 2, 0]])
    assert r.score.value == pytest.approx((4 / 4 + 0 / 2) / 2)
    assert r.score.worst_labels == ("person",)
    assert task.frames == (0, 1, 2)
    assert sorted(r.frames) == [0, 1, 2]
    shared = r.frames[1]
    np.testing.assert_array_equal(shared.matrix, [[2, 0, 0], [0, 0, 0], [0, 2, 0]])
    # Both jobs miss the same GT person: one conflict, not two.
    assert len(shared.conflicts) == 1 and shared.conflicts[0]["type"] == "missing_annotation"
    assert (task.validation_frames, task.total_frames) == (4, 4)
    assert task.jobs == {
        "total": 3,
        "excluded": 1,
        "not_checkable": 0,
        "included": 2,
        "completed": 2,
    }
    d = task.to_dict()["summary"]
    assert d["conflict_count"] == 1 and d["jobs"]["included"] == 2
    assert task.completed


def test_task_to_project_weights_each_task_one():
    task = task_requirement_report(_jobs())
    other = task_requirement_report(_jobs()[:1])
    project = project_requirement_report([task, other], custom=1)
    r = project.result("r")
    np.testing.assert_array_equal(r.matrix, task.result("r").matrix + other.result("r").matrix)
    assert r.frames is None
    assert project.tasks == {
        "total": 3,
        "custom": 1,
        "not_configured": 0,
        "excluded": 0,
        "included": 2,
        "completed": 2,
    }
    d = project.to_dict()
    assert d["groups"]["r"]["frame_results"] is None
    # the project's conflicts are the tasks' counts summed: 1 + 1
    assert d["summary"]["conflict_count"] == 2


def test_group_and_covered_conflicts_are_listed_outside_the_matrix():
    # Two matched pairs; the DS puts them in one group (GT ungrouped): two group conflicts.
    gt = make_set([box(0, 0, 10, 10), box(20, 20, 30, 30)])
    ds = make_set([box(0, 0, 10, 10, group=5), box(20, 20, 30, 30, group=5)])
    tree = RequirementTree((Requirement("r", "rectangle"),))
    r = compare_requirements(gt, ds, tree).result("r")
    assert r.conflicts_by_type["mismatching_groups"] == 2
    assert all(c["severity"] == "error" for c in r.conflicts)
    np.testing.assert_array_equal(r.matrix, [[2, 0, 0], [0, 0, 0], [0, 0, 0]])
    assert r.score.value == 1.0
    # A DS box hidden under another (z_order): covered, yet both still count as extras only.
    ds = make_set([box(0, 0, 10, 10, z_order=0), box(0, 0, 10, 10, "person", z_order=1)])
    r = compare_requirements(make_set([box(50, 50, 60, 60)]), ds, tree).result("r")
    assert r.conflicts_by_type["covered_annotation"] == 1
    np.testing.assert_array_equal(r.matrix, [[0, 0, 1], [0, 0, 1], [1, 0, 0]])


def test_polygon_and_mask_are_separate_requirements():
    from labelgate.io.rle import encode_column_major

    # In 2.42 this polygon and mask match (same pixels); per requirement they never pair.
    pixels = np.zeros((100, 100), bool)
    pixels[0:4, 0:4] = True
    gt = make_set([{"kind": "polygon", "label": "car", "points": [0, 0, 4, 0, 4, 4, 0, 4]}])
    ds = make_set(
        [{"kind": "mask", "label": "car", "rle": encode_column_major(pixels), "bbox": [0, 0, 4, 4]}]
    )
    assert compare(gt, ds).summary["valid_count"] == 1
    tree = RequirementTree((Requirement("poly", "polygon"), Requirement("mask", "mask")))
    rep = compare_requirements(gt, ds, tree)
    poly, mask = rep.result("poly"), rep.result("mask")
    assert poly.score_components() == {"valid_count": 0, "missing_count": 1, "extra_count": 0}
    assert mask.score_components() == {"valid_count": 0, "missing_count": 0, "extra_count": 1}
    assert poly.score.value == mask.score.value == 0.0
