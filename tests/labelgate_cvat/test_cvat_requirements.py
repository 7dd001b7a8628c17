"""Requirement mode on the CVAT path (CVAT 2.74+), end to end on the 2.80 test double.

Issue #16's "Why" row: Base rectangle at IoU 0.75, metric precision, required 0.9, and a child
"cars strict" (filter label == car, IoU 0.9). Task 10's GT job and its three annotation jobs are
replaced by a few boxes on the validation frames (0, 10, 20 of jobs 101, 102, 103), so every
score below is counted by hand:

- job 101, frame 0: GT car [0,0,100,100] and person [200,200,300,300]; DS the person exactly
  and the car as [0,0,100,80] (IoU 8000/10000 = 0.8: matched at 0.75, not at 0.9). A GT
  polygon on frame 2 that nobody drew is left out: "Base polygon" is disabled.
- job 102, frame 10: GT car; DS the same car and an extra person.
- job 103, frame 20: GT person; DS the same person (no car on either side).

Base rectangle precision: job 101 2/2, job 102 1/2, job 103 1/1; task (matrices summed) 4/5.
cars strict precision: job 101 0/1, job 102 1/1, job 103 not computed (filter_no_matches);
task 1/2.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from cvat_double import requirement_row

from labelgate.cli import main
from labelgate.errors import DataWarning, ValidationError
from labelgate_cvat.client import connect
from labelgate_cvat.pipeline import score_target

CAR, PERSON, SIGN = 1, 3, 4


def _box(sid, frame, label, points, kind="rectangle"):
    return {
        "attributes": [],
        "frame": frame,
        "group": 0,
        "id": sid,
        "label_id": label,
        "occluded": False,
        "outside": False,
        "points": [float(v) for v in points],
        "rotation": 0.0,
        "source": "manual",
        "type": kind,
        "z_order": 0,
    }


def _annotations(*shapes):
    return {"shapes": list(shapes), "tags": [], "tracks": [], "version": 0}


@pytest.fixture
def why(cvat_double_at):
    """The 2.80 double with the "Why" requirements and the hand-made annotations."""
    double = cvat_double_at("2.80.0")
    state = double.state
    reqs = state["requirements"]
    rows = {r["name"]: r for r in reqs.values() if r["settings_id"] == 1}
    rows["Base rectangle"].update(iou_threshold=0.75, metric="precision", required_score=0.9)
    rows["Base polygon"]["enabled"] = False
    project_row = next(r for r in state["quality_settings"] if r["id"] == 1)
    child = requirement_row(
        999,
        project_row,
        "cars strict",
        parent_requirement=rows["Base rectangle"]["id"],
        filter='{"==":[{"var":"shape.label"},"car"]}',
        iou_threshold=0.9,
    )
    reqs["999"] = child
    car, person = [0, 0, 100, 100], [200, 200, 300, 300]
    state["annotations"]["100"] = _annotations(
        _box(1, 0, CAR, car),
        _box(2, 0, PERSON, person),
        _box(3, 2, SIGN, [10, 10, 60, 10, 60, 60], "polygon"),
        _box(4, 10, CAR, car),
        _box(5, 20, PERSON, [0, 0, 50, 50]),
    )
    state["annotations"]["101"] = _annotations(
        _box(11, 0, CAR, [0, 0, 100, 80]), _box(12, 0, PERSON, person)
    )
    state["annotations"]["102"] = _annotations(_box(21, 10, CAR, car), _box(22, 10, PERSON, person))
    state["annotations"]["103"] = _annotations(_box(31, 20, PERSON, [0, 0, 50, 50]))
    return double


def _source(double):
    return connect(double.url, token=double.token, retries=1, backoff=0.01, timeout=5)


def _items(report):
    return {i["name"]: i for i in report["summary"]["requirements"]["items"]}


def test_the_why_scenario_scores_with_the_servers_requirements(why):
    with _source(why) as src:
        score = score_target(src, "task", 10)
    data = score.to_dict()
    assert data["semantics"] == "cvat-requirements"
    (task,) = data["tasks"]
    items = _items(task["report"])
    # Disabled types are not scored: no "Base polygon" item (its GT polygon would be missing).
    assert "Base polygon" not in items and len(items) == 9  # 8 base + the child
    base, strict = items["Base rectangle"], items["cars strict"]
    assert (base["metric"], base["threshold"], base["score"]) == ("precision", 0.9, 4 / 5)
    assert base["score_components"] == {"valid_count": 4, "missing_count": 0, "extra_count": 1}
    assert (strict["metric"], strict["threshold"], strict["score"]) == ("precision", 0.9, 1 / 2)
    assert strict["score_components"] == {"valid_count": 1, "missing_count": 1, "extra_count": 1}
    assert task["report"]["groups"]["cars strict"]["parameters"]["iou_threshold"] == 0.9
    assert task["report"]["groups"]["Base rectangle"]["parameters"]["iou_threshold"] == 0.75
    assert task["report"]["summary"]["jobs"]["included"] == 3
    jobs = {j["job"]["id"]: _items(j["report"]) for j in task["jobs"]}
    assert [jobs[j]["Base rectangle"]["score"] for j in (101, 102, 103)] == [1.0, 0.5, 1.0]
    assert [jobs[j]["cars strict"]["score"] for j in (101, 102)] == [0.0, 1.0]
    not_computed = jobs[103]["cars strict"]
    assert not_computed["score"] is None and not_computed["completed"] is True
    assert not_computed["calculation"]["reason"] == "filter_no_matches"
    assert not any(c["frame_id"] == 2 for j in task["jobs"] for c in _conflicts(j["report"]))


def _conflicts(report):
    return [
        c
        for g in report["groups"].values()
        for fr in (g["frame_results"] or {}).values()
        for c in fr["conflicts"]
    ]


def test_stage_policy_uses_cvats_completion_rule(why):
    jobs = why.state["jobs"]
    with _source(why) as src:
        (task,) = score_target(src, "task", 10).tasks
        from labelgate_cvat.pushback import push_task

        entries = {e["job"]: e["stage"] for e in push_task(src, task, stage_policy=True)}
    # 101: cars strict 0.0 < 0.9; 102: Base rectangle 0.5 < 0.9; 103: all completed (its
    # cars strict is not computed, which counts as completed).
    assert {j: e["action"] for j, e in entries.items()} == {
        101: "rejected",
        102: "rejected",
        103: "accepted",
    }
    assert entries[103]["completed"] is True and entries[101]["completed"] is False
    assert (jobs["103"]["stage"], jobs["103"]["state"]) == ("acceptance", "completed")
    assert (jobs["101"]["stage"], jobs["101"]["state"]) == ("annotation", "rejected")
    notes = [c["message"] for c in why.state["comments"].values()]
    assert any("'cars strict': precision 0.000 < 0.90" in m for m in notes)
    assert any("'Base rectangle': precision 0.500 < 0.90" in m for m in notes)


def test_issues_name_the_requirement_and_every_conflict_is_one(why):
    # Job 102's car: "black" where GT says "white" (the project row compares attributes).
    why.state["annotations"]["100"]["shapes"][3]["attributes"] = [{"spec_id": 2, "value": "white"}]
    why.state["annotations"]["102"]["shapes"][0]["attributes"] = [{"spec_id": 2, "value": "black"}]
    with _source(why) as src:
        (task,) = score_target(src, "task", 10).tasks
        from labelgate_cvat.pushback import push_task

        counts = {e["job"]: e["issues"]["created"] for e in push_task(src, task, issues=True)}
    # 101: the IoU-0.8 car is missing and extra for cars strict (IoU 0.9). 102: attribute
    # gating (reference §3.2) unmatches the car for both requirements -> missing + extra,
    # one issue each naming both requirements, plus the extra person. 103: none.
    assert counts == {101: 2, 102: 3, 103: 0}
    messages = sorted(c["message"].split(". [")[0] for c in why.state["comments"].values())
    check = "labelgate quality check: "
    assert messages == [
        f"{check}extra annotation (car, similarity 0.80; requirement 'cars strict')",
        f"{check}extra annotation (car, similarity 1.00; requirement 'Base rectangle', "
        "'cars strict')",
        f"{check}extra annotation (person; requirement 'Base rectangle')",
        f"{check}missing annotation (car, similarity 0.80; requirement 'cars strict')",
        f"{check}missing annotation (car, similarity 1.00; requirement 'Base rectangle', "
        "'cars strict')",
    ]


def test_attribute_conflicts_name_their_attributes():
    from labelgate_cvat.pushback import _message

    conflict = {
        "type": "mismatching_attributes",
        "label_names": ["car", "car"],
        "attribute_names": ["color", "model"],
        "requirements": ["Base rectangle"],
    }
    assert _message([conflict], "k") == (
        "labelgate quality check: mismatching attributes (car, attributes color, model; "
        "requirement 'Base rectangle'). [labelgate:k]"
    )


def test_semantics_flag_overrides_the_server(why, monkeypatch, tmp_path):
    monkeypatch.setenv("LABELGATE_CVAT_HOST", why.url)
    monkeypatch.setenv("LABELGATE_CVAT_TOKEN", why.token)
    out = tmp_path / "r.json"
    args = ["cvat", "score", "--task", "10", "--quiet", "--json", str(out)]
    res = CliRunner().invoke(main, [*args, "--semantics", "cvat-2.42"])
    assert res.exit_code == 0, res.output
    legacy = json.loads(out.read_text())
    assert legacy["semantics"] == "cvat-2.42"
    assert "requirements" not in legacy["tasks"][0]["report"]["summary"]
    wide = {"COLUMNS": "200"}  # one table row per line
    res = CliRunner(env=wide).invoke(main, [a for a in args if a != "--quiet"])
    assert res.exit_code == 0, res.output
    assert "cars strict" in res.stdout and "not computed" in res.stdout  # job 103's row
    current = json.loads(out.read_text())
    assert current["semantics"] == "cvat-requirements"
    assert _items(current["tasks"][0]["report"])["Base rectangle"]["score"] == 4 / 5


def test_a_requirements_file_overrides_the_server_tree(why, tmp_path):
    path = tmp_path / "req.toml"
    path.write_text(
        '[[requirement]]\nname = "boxes"\ntype = "rectangle"\niou_threshold = 0.5\n'
        'metric = "recall"\nrequired_score = 0.5\n'
    )
    with _source(why) as src:
        (task,) = score_target(src, "task", 10, settings_file=str(path)).tasks
    with _source(why) as src, pytest.raises(ValidationError, match="drop --semantics"):
        score_target(src, "task", 10, settings_file=str(path), semantics="cvat-2.42")
    items = _items(task.task_json())
    # recall = valid / GT: job 101 2/2, 102 1/1, 103 1/1 -> 4/4 (the car matches at 0.5).
    assert list(items) == ["boxes"] and items["boxes"]["score"] == 1.0


def test_all_disabled_warns_and_scores_nothing(why):
    for req in why.state["requirements"].values():
        req["enabled"] = False
    with _source(why) as src, pytest.warns(DataWarning) as caught:
        (task,) = score_target(src, "task", 10).tasks
    (said,) = [str(w.message) for w in caught if str(w.message).startswith("CVAT task 10")]
    assert "project 1 are all 10 disabled (CVAT itself computes nothing" in said
    report = task.task_json()
    assert report["summary"]["requirements"]["items"] == [] and report["completed"] is False


def test_project_sums_task_matrices_with_weight_one(why):
    with _source(why) as src:
        data = score_target(src, "project", 1).to_dict()
    project = data["project"]
    assert project["level"] == "project"
    assert project["summary"]["tasks"] == {
        "total": 3,
        "custom": 0,
        "not_configured": 0,
        "excluded": 0,
        "included": 3,
        "completed": sum(t["report"]["completed"] for t in data["tasks"]),
    }
    # Weight 1 (reference §3.5): each count is the plain sum over the tasks, where 2.42 mode
    # scales task 10 by 2.5, task 11 by 3 and task 12 by 5 (test_cvat_live.py).
    for name, item in _items(project).items():
        parts = [_items(t["report"]).get(name) for t in data["tasks"]]
        for key in ("valid_count", "missing_count", "extra_count"):
            expected = sum(p["score_components"][key] for p in parts if p is not None)
            assert item["score_components"][key] == expected, (name, key)
    assert _items(project)["Base rectangle"]["score_components"]["valid_count"] >= 4
