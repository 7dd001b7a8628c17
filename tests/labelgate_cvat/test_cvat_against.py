"""``cvat score --against-server``: labelgate's task report beside CVAT's own, differences first.

Requirement era, one 100x100 frame: GT cars A (0,0)-(40,40) and B (50,0)-(90,40) and a person;
DS has A and the person exactly, B as (50,0)-(90,32) (IoU 1280/1600 = 0.8) and an extra person.
"Base rectangle" (IoU 0.75, precision): 3 valid, 1 extra, score 3/4, 1 conflict; its child
"cars strict" (car only, IoU 0.9): 1 valid, 1 missing, 1 extra, score 1/2, 2 conflicts.

Legacy era, task 10 of the recorded state (tests/labelgate_cvat/test_cvat_live.py derives it):
52 valid of 56 GT and 54 DS annotations (2 mismatched labels, 2 missing), so accuracy 52/56,
precision 52/54, recall 52/56.
"""

import json

import pytest
from click.testing import CliRunner
from engine_builders import box, make_set

from labelgate.cli import main
from labelgate.engine import compare
from labelgate.engine.req_score import compare_requirements
from labelgate.engine.requirements import RequirementTree
from labelgate.errors import ValidationError
from labelgate_cvat.against import compare_with_server

pytestmark = pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")

TABLES = [
    {"name": "Base rectangle", "type": "rectangle", "iou_threshold": 0.75,
     "metric": "precision", "required_score": 0.9},
    {"name": "cars strict", "parent": "Base rectangle", "iou_threshold": 0.9,
     "filter": '{"==": [{"var": "shape.label"}, "car"]}'},
]  # fmt: skip


def _sets():
    gt = make_set([box(0, 0, 40, 40), box(50, 0, 90, 40), box(0, 50, 40, 90, label="person")])
    ds = make_set(
        [
            box(0, 0, 40, 40),
            box(50, 0, 90, 32),
            box(0, 50, 40, 90, label="person"),
            box(50, 50, 90, 90, label="person"),
        ]
    )
    return gt, ds


def _ours():
    gt, ds = _sets()
    return compare_requirements(gt, ds, RequirementTree.from_tables(TABLES)).to_dict()


def _item(rid, name, score, valid, missing, extra):
    return {
        "requirement_id": rid,
        "name": name,
        "metric": "precision",
        "score": score,
        "score_components": {"valid_count": valid, "missing_count": missing, "extra_count": extra},
        "calculation": {"status": "computed"},
        "threshold": 0.9,
    }


def _cvat(items, conflicts):
    summary = {"requirements": {"total": len(items), "enabled": len(items), "items": items}}
    data = {"groups": {n: {"comparison_summary": {"conflict_count": c}} for n, c in conflicts}}
    return {"id": 7, "summary": summary}, data


AGREEING = _cvat(
    [_item(101, "Base rectangle", 0.75, 3, 0, 1), _item(900, "cars strict", 0.5, 1, 1, 1)],
    [("Base rectangle", 1), ("cars strict", 2)],
)


def test_requirement_report_that_agrees_with_cvat():
    result = compare_with_server(_ours(), AGREEING[0], AGREEING[1], report_id=7)
    assert result.agrees and result.era == "requirements"
    assert [r.name for r in result.rows] == ["Base rectangle", "cars strict"]
    cars = result.rows[1]
    assert (cars.labelgate.score, cars.labelgate.valid, cars.labelgate.conflicts) == (0.5, 1, 2)
    assert result.to_dict()["cvat_report_id"] == 7


def test_requirement_report_that_differs_lists_the_difference_first():
    # CVAT matched car B too (as at IoU 0.75), and has a tag requirement labelgate did not score.
    theirs, data = _cvat(
        [
            _item(101, "Base rectangle", 0.75, 3, 0, 1),
            _item(900, "cars strict", 1.0, 2, 0, 0),
            _item(100, "Base tag", None, 0, 0, 0),
        ],
        [("Base rectangle", 1), ("cars strict", 0)],
    )
    rows = compare_with_server(_ours(), theirs, data).rows
    assert [(r.name, r.differences) for r in rows] == [
        ("cars strict", ("score", "valid", "missing", "extra", "conflicts")),
        ("Base tag", ("presence",)),
        ("Base rectangle", ()),
    ]
    assert rows[1].labelgate is None and rows[1].cvat.score is None


def test_legacy_reports_compare_the_three_headline_metrics():
    gt, ds = _sets()
    ours = compare(gt, ds).to_dict()  # IoU 0.4: 3 valid, 1 extra -> accuracy 3/4, recall 1
    theirs = {
        "valid_count": 3, "ds_count": 4, "gt_count": 3, "accuracy": 0.75, "precision": 0.75,
        "recall": 1.0, "conflict_count": ours["summary"]["conflict_count"],
    }  # fmt: skip
    result = compare_with_server(ours, {"summary": theirs})
    assert result.agrees and [r.metric for r in result.rows] == ["accuracy", "precision", "recall"]
    assert (result.rows[0].cvat.missing, result.rows[0].cvat.extra) == (0, 1)
    with pytest.raises(ValidationError, match=r"^labelgate's report is in the legacy shape"):
        compare_with_server(ours, AGREEING[0], AGREEING[1])


# --- the command, against the CVAT test double (both eras) ------------------------------------

LEGACY = {
    "total_frames": 30, "validation_frames": 12, "validation_frame_share": 0.4,
    "warning_count": 0, "error_count": 0, "conflicts_by_type": {},
    "valid_count": 52, "ds_count": 54, "gt_count": 56, "total_count": 56,
    "accuracy": 52 / 56, "precision": 52 / 54, "recall": 52 / 56,
    "frame_count": 12, "frame_share": 0.4,
}  # fmt: skip


# These compare against CVAT's legacy (2.42-shaped) reports, so labelgate scores in 2.42
# semantics on both eras (a 2.80 server would otherwise select requirement mode).
LEGACY_MODE = ("--semantics", "cvat-2.42")


def _score(tmp_path, *extra):
    out = tmp_path / "out.json"
    res = CliRunner(env={"COLUMNS": "200"}).invoke(
        main,
        [
            "cvat",
            "score",
            "--task",
            "10",
            "--against-server",
            "--json",
            str(out),
            *LEGACY_MODE,
            *extra,
        ],
    )
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text()), res


def _conflicts(cvat_env, tmp_path):
    """labelgate's conflict count of task 10 (copied into the seeded report: the conflict
    lists themselves are another test's subject)."""
    res = CliRunner().invoke(main, ["cvat", "score", "--task", "10", "--json",
                                    str(tmp_path / "plain.json"), "--quiet", *LEGACY_MODE])  # fmt: skip
    assert res.exit_code == 0, res.output
    return json.loads((tmp_path / "plain.json").read_text())["tasks"][0]["report"]["summary"][
        "conflict_count"
    ]


def test_score_against_a_cvat_report_that_agrees(cvat_env, tmp_path):
    n = _conflicts(cvat_env, tmp_path)
    rid = cvat_env.seed_report({**LEGACY, "conflict_count": n}, {}, target="task", task_id=10)
    if cvat_env.version != "2.42.0":  # a newer requirement-shaped report is not like for like
        newer = {
            **{k: LEGACY[k] for k in ("total_frames", "validation_frames")},
            "validation_frame_share": 0.4, "conflict_count": 0, "error_count": 0,
            "conflicts_by_type": {},
            "requirements": {"total": 1, "enabled": 1, "completed": 1, "not_computed": 0,
                             "items": [_item(101, "Base rectangle", 1.0, 6, 0, 0)]},
        }  # fmt: skip
        cvat_env.seed_report(newer, {}, target="task", task_id=10)
    result, res = _score(tmp_path)
    (task,) = result["against_server"]
    assert (task["task"], task["era"], task["cvat_report_id"], task["agrees"]) == (
        10,
        "legacy",
        rid,
        True,
    )
    rows = {r["metric"]: r for r in task["rows"]}
    assert rows["precision"]["cvat"]["score"] == pytest.approx(52 / 54)
    assert (rows["recall"]["labelgate"]["valid"], rows["recall"]["labelgate"]["missing"]) == (52, 4)
    assert "agrees with CVAT" in res.stdout


def test_score_against_a_cvat_report_that_differs(cvat_env, tmp_path):
    n = _conflicts(cvat_env, tmp_path)
    cvat_env.seed_report(
        {**LEGACY, "precision": 0.95, "conflict_count": n}, {}, target="task", task_id=10
    )
    result, res = _score(tmp_path)
    (task,) = result["against_server"]
    assert not task["agrees"]
    assert [(r["metric"], r["differences"]) for r in task["rows"]] == [
        ("precision", ["score"]),
        ("accuracy", []),
        ("recall", []),
    ]
    assert "DIFFERS from CVAT" in res.stdout
    table = res.stdout[res.stdout.index("labelgate vs CVAT") :]
    assert table.index("precision") < table.index("accuracy")


def test_score_against_a_server_without_a_report_warns(cvat_env, tmp_path):
    result, res = _score(tmp_path)
    assert result["against_server"] == []
    assert "CVAT task 10: the server has no legacy-shaped quality report" in res.stderr


def test_against_server_needs_a_task(cvat_env):
    res = CliRunner().invoke(main, ["cvat", "score", "--project", "1", "--against-server"])
    assert res.exit_code == 2 and "use it with --task" in res.output


def test_requirement_era_fetches_cvat_s_newest_requirement_report(cvat_double_at):
    """The path a requirement-mode task report takes (2.80): the newest requirement-shaped
    report and its /data groups, not the hidden legacy one."""
    from labelgate_cvat.against import against_tasks
    from labelgate_cvat.client import connect

    double = cvat_double_at("2.80.0")
    double.seed_report(LEGACY, {}, target="task", task_id=10)
    frame_fields = {
        "total_frames": 1, "validation_frames": 1, "validation_frame_share": 1.0,
        "conflict_count": 3, "error_count": 3, "conflicts_by_type": {},
    }  # fmt: skip
    older = double.seed_report(
        {**frame_fields, "requirements": {"total": 2, "enabled": 2, "completed": 0,
                                          "not_computed": 0, "items": AGREEING[0]["summary"][
                                              "requirements"]["items"]}},
        AGREEING[1], target="task", task_id=10,
    )  # fmt: skip
    items = [_item(101, "Base rectangle", 0.75, 3, 0, 1), _item(900, "cars strict", 1.0, 2, 0, 0)]
    newest = double.seed_report(
        {**frame_fields, "requirements": {"total": 2, "enabled": 2, "completed": 1,
                                          "not_computed": 0, "items": items}},
        {"groups": {"Base rectangle": {"comparison_summary": {"conflict_count": 1}},
                    "cars strict": {"comparison_summary": {"conflict_count": 0}}}},
        target="task", task_id=10,
    )  # fmt: skip
    assert newest > older
    with connect(double.url, token=double.token, retries=1, backoff=0.01, timeout=5) as src:
        (res,) = against_tasks(src, [{"task": {"id": 10}, "report": _ours()}])
    assert (res["era"], res["cvat_report_id"], res["agrees"]) == ("requirements", newest, False)
    assert [(r["name"], r["differences"]) for r in res["rows"]] == [
        ("cars strict", ["score", "valid", "missing", "extra", "conflicts"]),
        ("Base rectangle", []),
    ]


def test_a_malformed_cvat_report_is_an_input_error_naming_the_report():
    theirs, data = _cvat([{"score": 1.0}], [])  # an item without its name
    with pytest.raises(ValidationError, match="CVAT quality report 9: malformed"):
        compare_with_server(_ours(), theirs, data, report_id=9)
