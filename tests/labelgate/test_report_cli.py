"""``labelgate report`` on the bundled examples: golden bundle, exit codes, --json -, --quiet.

Regenerate the golden file after an intended change with ``LABELGATE_UPDATE_GOLDEN=1`` and
review the diff.
"""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from labelgate.cli import main
from labelgate.store import PUBLIC_ID

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
GOLDEN = Path(__file__).parent / "golden" / "report_cvat_examples.json"
CVAT_ARGS = [
    "report",
    "--gt",
    str(EX / "cvat/gt.xml"),
    *[a for i in (1, 2, 3) for a in ("--ds", str(EX / f"cvat/annotator{i}.xml"))],
    "--policy",
    str(EX / "gate.toml"),
    "--no-history",
]


def run(args, **kw):
    return CliRunner().invoke(main, args, **kw)


@pytest.fixture(scope="module")
def cvat_bundle():
    res = run([*CVAT_ARGS, "--json", "-", "--quiet"])
    assert res.exit_code == 0, res.stderr
    assert res.stderr == ""  # --quiet: nothing but the JSON
    return json.loads(res.stdout)


def _digest(bundle):
    """The stable, reviewable part of a bundle (no timestamps, no long conflict lists)."""
    return {
        "comparisons": {
            n: {
                k: c["summary"][k]
                for k in (
                    "valid_count",
                    "ds_count",
                    "gt_count",
                    "missing_count",
                    "extra_count",
                    "conflicts_by_type",
                    "accuracy",
                    "precision",
                    "recall",
                )
            }
            for n, c in bundle["comparisons"].items()
        },
        "conflict_rows": len(bundle["conflicts"]),
        "agreement": bundle["agreement"]["summary"]["mean_pairwise_f1"],
        "scorecards": {c["annotator"]: c["accuracy"] for c in bundle["scorecards"]},
        "gate": {c["check"]: [c["passed"], c["value"]] for c in bundle["gate"]["checks"]},
        "alerts": sorted(a["type"] for a in bundle["alerts"]),
    }


def test_golden_bundle_for_the_cvat_examples(cvat_bundle):
    digest = json.loads(json.dumps(_digest(cvat_bundle)))
    if os.environ.get("LABELGATE_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(digest, indent=1, sort_keys=True) + "\n")
    assert digest == json.loads(GOLDEN.read_text())


def test_bundle_agrees_with_its_own_counts(cvat_bundle):
    for c in cvat_bundle["comparisons"].values():
        s = c["summary"]
        rows = c["confusion_matrix"]["rows"]
        # CVAT: missing = last row, extra = last column, valid = the diagonal.
        assert s["missing_count"] == sum(rows[-1])
        assert s["extra_count"] == sum(r[-1] for r in rows)
        assert s["valid_count"] == sum(rows[i][i] for i in range(len(rows) - 1))
        assert s["accuracy"] == pytest.approx(s["valid_count"] / s["total_count"])
    assert len(cvat_bundle["conflicts"]) == sum(
        c["summary"]["conflict_count"] for c in cvat_bundle["comparisons"].values()
    )


def test_check_flag_turns_a_failed_gate_into_exit_1(tmp_path):
    res = run([*CVAT_ARGS, "--quiet", "--check", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 1
    assert "release gate failed: gold_pass_rate" in res.stderr
    assert json.loads((tmp_path / "r.json").read_text())["gate"]["passed"] is False


def test_summary_tables_on_stderr(tmp_path):
    res = run([*CVAT_ARGS, "--html", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""
    for text in ("Against ground truth", "annotator3", "77.6%", "gate: FAIL", "wrote "):
        assert text in res.stderr, text
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_label_studio_export_with_predictions_inside(tmp_path):
    res = run(
        [
            "report",
            str(EX / "labelstudio/export.json"),
            "--store",
            f"sqlite:///{tmp_path / 'h.db'}",
            "--json",
            "-",
            "--quiet",
        ]
    )
    assert res.exit_code == 0, res.stderr
    bundle = json.loads(res.stdout)
    assert "prediction:yolo-demo" in bundle["comparisons"]
    humans = [c["annotator"] for c in bundle["scorecards"]]
    assert humans == [f"annotator{i}@example.com" for i in (1, 2, 3)]
    # The stored id is the random public one (issue #18), not the row number.
    assert PUBLIC_ID.fullmatch(bundle["report_id"]) and len(bundle["history"]["time"]) == 1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["report"], 2, "give SOURCE"),
        (["report", "--gt", str(EX / "cvat/gt.xml")], 2, "give SOURCE"),
        (
            ["report", str(EX / "labelstudio/export.json"), "--gt", str(EX / "cvat/gt.xml")],
            2,
            "not both",
        ),
        (
            [
                "report",
                str(EX / "labelstudio/export.json"),
                "--predictions",
                str(EX / "cvat/predictions.xml"),
            ],
            2,
            "--predictions needs --gt",
        ),
        (["report", "--gt", "does-not-exist.xml", "--ds", str(EX / "cvat/gt.xml")], 2, "exist"),
        (
            ["report", "--gt", str(EX / "cvat/gt.xml"), "--ds", str(EX / "gate.toml")],
            2,
            "error:",
        ),
    ],
    ids=["nothing", "gt-only", "both-forms", "predictions-with-source", "missing-file", "bad-file"],
)
def test_input_errors_exit_2(args, code, message):
    res = run([*args, "--no-history", "--quiet"])
    assert res.exit_code == code
    assert message in res.stderr


def test_cli_doc_names_every_command_and_exit_code():
    from importlib.metadata import entry_points

    from labelgate.cli import EXIT_CHECK_FAILED, EXIT_INPUT, EXIT_OK, EXIT_REMOTE

    doc = (ROOT / "docs" / "cli.md").read_text()
    for ep in entry_points(group="labelgate.commands"):
        assert f"`labelgate {ep.name}" in doc, ep.name
    for code in (EXIT_OK, EXIT_CHECK_FAILED, EXIT_INPUT, EXIT_REMOTE):
        assert f"\n| {code} |" in doc
    for option in ("--json", "--quiet", "--check", "--html", "--policy", "--store"):
        assert f"`{option}" in doc, option
