"""``labelgate cvat requirements --task ID``: the effective requirement tree a task is scored with.

Task 10 of the recorded state inherits project 1's settings row (iou_threshold 0.4,
target_metric accuracy at 0.7). On 2.80 the double serves that row as CVAT's 9 base
requirements (ids 100..108, sort order tag, rectangle, ...); the tests add issue #16's child
"cars strict" (IoU 0.9, label car) under "Base rectangle" (IoU 0.75, precision >= 0.9).
"""

import json

import pytest
from click.testing import CliRunner
from cvat_double import requirement_row

from labelgate.cli import main

pytestmark = pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")
CARS = '{"==": [{"var": "shape.label"}, "car"]}'


def _env(double, monkeypatch):
    monkeypatch.setenv("LABELGATE_CVAT_HOST", double.url)
    monkeypatch.setenv("LABELGATE_CVAT_TOKEN", double.token)
    return double


def _why_scenario(double):
    reqs = double.state["requirements"]
    base = reqs["101"]
    assert (base["name"], base["settings_id"]) == ("Base rectangle", 1)
    base.update(iou_threshold=0.75, metric="precision", required_score=0.9)
    row = next(r for r in double.state["quality_settings"] if r["id"] == 1)
    reqs["900"] = requirement_row(
        900, row, "cars strict", parent_requirement=101, filter=CARS, iou_threshold=0.9
    )


def _tree(args=("--json",)):
    res = CliRunner().invoke(main, ["cvat", "requirements", "--task", "10", *args])
    assert res.exit_code == 0, res.output
    return res


def test_2_80_task_prints_the_inherited_tree_depth_first(cvat_double_at, monkeypatch):
    _why_scenario(_env(cvat_double_at("2.80.0"), monkeypatch))
    res = _tree()
    data = json.loads(res.stdout)
    assert (data["semantics"], data["settings_of"], data["all_disabled"]) == (
        "cvat-requirements",
        "project 1",
        False,
    )
    names = [r["name"] for r in data["requirements"]]
    # Depth first: the child right after its parent, then the other base requirements.
    assert names[:3] == ["Base tag", "Base rectangle", "cars strict"]
    assert len(names) == 10
    child = data["requirements"][2]["effective"]
    # Nearest non-null up the path: its own IoU, the parent's metric and score and type.
    assert (child["iou_threshold"], child["metric"], child["required_score"]) == (
        0.9,
        "precision",
        0.9,
    )
    assert child["annotation_type"] == "rectangle"
    assert json.loads(child["filter"]) == json.loads(CARS)
    tag = data["requirements"][0]["effective"]
    assert (tag["metric"], tag["required_score"], tag["iou_threshold"]) == ("accuracy", 0.7, 0.4)
    assert res.stderr == ""


def test_2_80_table_shows_type_filter_metric_and_thresholds(cvat_double_at, monkeypatch):
    _why_scenario(_env(cvat_double_at("2.80.0"), monkeypatch))
    res = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["cvat", "requirements", "--task", "10"])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.stdout.splitlines() if "cars strict" in ln)
    assert "  cars strict" in line  # indented under its parent
    assert "rectangle" in line and "precision" in line and ">= 0.9" in line
    assert "iou_threshold=0.9" in line and '"shape.label"' in line
    assert "10 of 10 requirement(s) enabled" in res.stdout


def test_all_disabled_gets_a_clear_warning(cvat_double_at, monkeypatch):
    double = _env(cvat_double_at("2.80.0"), monkeypatch)
    for r in double.state["requirements"].values():
        r["enabled"] = False
    res = _tree()
    assert json.loads(res.stdout)["all_disabled"] is True
    assert (
        "warning: CVAT task 10: all 9 quality requirement(s) of project 1 are disabled: CVAT "
        "computes no quality report for this task" in res.stderr
    )


def test_2_42_server_shows_the_flat_settings_as_the_legacy_preset(cvat_double_at, monkeypatch):
    _env(cvat_double_at("2.42.0"), monkeypatch)
    data = json.loads(_tree().stdout)
    assert data["semantics"] == "cvat-2.42"
    (node,) = data["requirements"]
    eff = node["effective"]
    # Project 1's row: iou 0.4, accuracy >= 0.7, attributes compared.
    assert (eff["annotation_type"], eff["metric"], eff["required_score"]) == (
        "all",
        "accuracy",
        0.7,
    )
    assert eff["iou_threshold"] == 0.4
    assert eff["attribute_comparison"]["default"]["enabled"] is True
    text = _tree(()).stdout
    assert "predates quality requirements (2.74)" in text
