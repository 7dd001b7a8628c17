"""``--semantics`` on compare, report and gate: the settings file decides, the flag overrides.

One frame, hand-built: GT has cars A (0,0)-(100,100) and B (200,0)-(300,100) and a person;
DS has A and the person exactly, B as (200,0)-(300,80) (IoU 8000/10000 = 0.8) and one extra
person. So at IoU 0.75 all three GT boxes match (3 valid, 1 extra: precision 3/4); at IoU 0.9
car B does not (cars: 1 valid, 1 missing, 1 extra: precision 1/2). At CVAT's stock IoU 0.4 the
stock "Base rectangle" (accuracy >= 0.7) scores 3 / (3 + 1) = 0.75 and is completed.
"""

import json
import math

import pytest
from click.testing import CliRunner

from labelgate.cli import main

pytestmark = pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")

GT = [("car", (0, 0, 100, 100)), ("car", (200, 0, 300, 100)), ("person", (400, 0, 450, 100))]
DS = [
    ("car", (0, 0, 100, 100)),
    ("car", (200, 0, 300, 80)),
    ("person", (400, 0, 450, 100)),
    ("person", (500, 0, 550, 100)),
]
REQUIREMENTS = """
[[requirement]]
name = "Base rectangle"
type = "rectangle"
iou_threshold = 0.75
metric = "precision"
required_score = 0.9

[[requirement]]
name = "cars strict"
parent = "Base rectangle"
filter = '{"==": [{"var": "shape.label"}, "car"]}'
iou_threshold = 0.9
"""


def _xml(boxes):
    shapes = "".join(
        f'<box label="{label}" occluded="0" xtl="{a}" ytl="{b}" xbr="{c}" ybr="{d}" z_order="0">'
        "</box>"
        for label, (a, b, c, d) in boxes
    )
    return (
        "<annotations><version>1.1</version><meta><job><id>1</id><size>1</size><labels>"
        "<label><name>car</name><type>rectangle</type><attributes/></label>"
        "<label><name>person</name><type>rectangle</type><attributes/></label></labels></job>"
        f'</meta><image id="0" name="f0.jpg" width="640" height="480">{shapes}</image>'
        "</annotations>"
    )


@pytest.fixture
def files(tmp_path):
    (tmp_path / "gt.xml").write_text(_xml(GT))
    (tmp_path / "ds.xml").write_text(_xml(DS))
    (tmp_path / "req.toml").write_text(REQUIREMENTS)
    (tmp_path / "flat.toml").write_text("[quality]\niou_threshold = 0.9\n")
    return tmp_path


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _compare(files, *extra):
    out = files / "out.json"
    res = run(["compare", "--gt", files / "gt.xml", "--ds", files / "ds.xml", "--json", out,
               "--quiet", *extra])  # fmt: skip
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text()), res


def _items(report):
    return {it["name"]: it for it in report["summary"]["requirements"]["items"]}


def _wilson(x, n, z=1.959963984540054):
    """Wilson score interval, closed form."""
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


# --- compare ---------------------------------------------------------------------------------


def test_no_settings_keeps_the_2_42_json_without_a_semantics_key(files):
    report, res = _compare(files)
    assert "semantics" not in report and "requirements" not in report["summary"]
    s = report["summary"]
    assert (s["valid_count"], s["ds_count"], s["gt_count"]) == (3, 4, 3)
    assert s["accuracy"] == pytest.approx(3 / 4)
    assert res.stderr == ""


def test_flat_settings_file_stays_2_42(files):
    report, _ = _compare(files, "--settings", files / "flat.toml")
    assert "semantics" not in report
    # IoU 0.9: car B no longer matches, so 2 valid of 3 GT and 4 DS.
    assert report["summary"]["valid_count"] == 2


def test_explicit_2_42_flag_records_it_and_changes_nothing_else(files):
    plain, _ = _compare(files)
    flagged, _ = _compare(files, "--semantics", "cvat-2.42")
    assert flagged.pop("semantics") == "cvat-2.42"
    assert flagged == plain


def test_requirement_tables_select_requirement_mode(files):
    report, res = _compare(files, "--settings", files / "req.toml")
    assert report["semantics"] == "cvat-requirements"
    items = _items(report)
    base, cars = items["Base rectangle"], items["cars strict"]
    assert base["score_components"] == {"valid_count": 3, "missing_count": 0, "extra_count": 1}
    assert base["score"] == pytest.approx(3 / 4) and base["threshold"] == 0.9
    assert base["score_ci95"] == pytest.approx(_wilson(3, 4))
    assert cars["score_components"] == {"valid_count": 1, "missing_count": 1, "extra_count": 1}
    assert cars["score"] == pytest.approx(1 / 2) and cars["metric"] == "precision"  # inherited
    assert not base["completed"] and not cars["completed"] and report["completed"] is False
    reqs = report["summary"]["requirements"]
    assert (reqs["total"], reqs["enabled"], reqs["completed"]) == (2, 2, 0)
    assert set(report["groups"]) == {"Base rectangle", "cars strict"}
    assert report["groups"]["cars strict"]["parameters"]["iou_threshold"] == 0.9
    assert res.stderr == ""


def test_requirement_mode_prints_the_requirement_table(files):
    res = run(["compare", "--gt", files / "gt.xml", "--ds", files / "ds.xml",
               "--settings", files / "req.toml"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "cars strict" in res.stdout and "75.0%" in res.stdout and "50.0%" in res.stdout
    assert "0 of 2 enabled requirement(s) completed" in res.stdout


def test_requirements_flag_without_file_enables_every_stock_requirement_and_says_so(files):
    report, res = _compare(files, "--semantics", "cvat-requirements")
    assert "warning: no quality requirements given" in res.stderr
    items = _items(report)
    assert len(items) == 9  # CVAT's nine base requirements, all enabled
    rect = items["Base rectangle"]
    assert (rect["metric"], rect["threshold"]) == ("accuracy", 0.7)
    assert rect["score"] == pytest.approx(3 / 4) and rect["completed"]
    tag = items["Base tag"]
    assert tag["score"] is None
    assert tag["calculation"] == {"status": "not_computed", "reason": "no_annotations"}
    assert tag["completed"]  # not computed counts as completed (CVAT's rule)
    assert report["completed"] is True


def test_2_42_flag_over_a_requirements_file_warns_that_the_tables_are_unused(files):
    report, res = _compare(files, "--settings", files / "req.toml", "--semantics", "cvat-2.42")
    assert "2 [[requirement]] table(s) not used" in res.stderr
    assert report["semantics"] == "cvat-2.42"
    assert report["summary"]["valid_count"] == 3  # the 2.42 default IoU 0.4


def test_setting_flags_are_reported_unused_in_requirement_mode(files):
    _, res = _compare(files, "--settings", files / "req.toml", "--iou-threshold", "0.1")
    assert "--iou-threshold: CVAT 2.42 setting(s) not used in requirement mode" in res.stderr


def test_bad_requirement_table_exits_2_naming_file_table_and_key(files):
    bad = files / "bad.toml"
    bad.write_text('[[requirement]]\nname = "x"\ntype = "rectangle"\niou = 0.5\n')
    res = run(["compare", "--gt", files / "gt.xml", "--ds", files / "ds.xml", "--settings", bad])
    assert res.exit_code == 2
    assert "bad.toml: requirement[0] ('x'): unknown key 'iou'" in res.stderr
    assert "Traceback" not in res.output


# --- report and gate -------------------------------------------------------------------------


def _report(files, *extra):
    out = files / "bundle.json"
    page = files / "page.html"
    res = run(["report", "--gt", files / "gt.xml", "--ds", files / "ds.xml", "--no-history",
               "--quiet", "--json", out, "--html", page, *extra])  # fmt: skip
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text()), page.read_text()


def test_report_adds_a_requirement_section_per_annotator(files):
    bundle, page = _report(files, "--settings", files / "req.toml")
    assert bundle["semantics"] == "cvat-requirements"
    (comp,) = bundle["comparisons"].values()
    items = _items(comp["requirements"])
    assert items["cars strict"]["score"] == pytest.approx(1 / 2)
    # The 2.42 summary stays beside it (scorecards and alerts read it).
    assert comp["summary"]["valid_count"] == 3
    assert "id='sec-requirements'" in page
    assert "cars strict" in page and "NOT completed" in page and "50.0%" in page


def test_report_without_requirements_has_no_requirement_section(files):
    bundle, page = _report(files)
    assert "semantics" not in bundle
    assert all("requirements" not in c for c in bundle["comparisons"].values())
    assert "sec-requirements" not in page


def _gate(files, policy_text, *extra):
    policy = files / "policy.toml"
    policy.write_text(policy_text)
    out = files / "gate.json"
    res = run(["gate", "--gt", files / "gt.xml", "--ds", files / "ds.xml", "--policy", policy,
               "--json", out, "--quiet", *extra])  # fmt: skip
    return res, json.loads(out.read_text())


def test_gate_requires_every_requirement_completed_in_requirement_mode(files):
    res, result = _gate(files, "[gate]\n", "--settings", files / "req.toml")
    assert res.exit_code == 1
    (check,) = [c for c in result["checks"] if c["check"] == "requirements_completed"]
    assert (check["passed"], check["value"], check["threshold"]) == (False, 1, 0)
    assert "Base rectangle (precision 0.750 < 0.900)" in check["reason"]
    assert "cars strict (precision 0.500 < 0.900)" in check["reason"]
    assert result["semantics"] == "cvat-requirements"


def test_gate_passes_when_the_stock_requirements_are_completed(files):
    res, result = _gate(files, "[gate]\n", "--semantics", "cvat-requirements")
    (check,) = [c for c in result["checks"] if c["check"] == "requirements_completed"]
    assert check["passed"] and check["value"] == 0 and res.exit_code == 0


def test_gate_check_can_be_switched_off_and_is_absent_in_2_42_mode(files):
    off = "[gate]\nrequire_requirements_completed = false\n"
    _, result = _gate(files, off, "--settings", files / "req.toml")
    assert "requirements_completed" not in [c["check"] for c in result["checks"]]
    _, result = _gate(files, "[gate]\n")
    assert "requirements_completed" not in [c["check"] for c in result["checks"]]
    assert "semantics" not in result


def test_report_policy_verdict_includes_the_requirement_check(files):
    policy = files / "policy.toml"
    policy.write_text("[gate]\n")
    bundle, page = _report(files, "--settings", files / "req.toml", "--policy", policy)
    (check,) = [c for c in bundle["gate"]["checks"] if c["check"] == "requirements_completed"]
    assert not check["passed"] and bundle["gate"]["passed"] is False
    assert "requirements_completed" in page
