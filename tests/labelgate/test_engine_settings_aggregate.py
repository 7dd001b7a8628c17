"""Settings layering/validation and job → task → project aggregation."""

import json

import pytest
from click.testing import CliRunner
from engine_builders import box, make_set

from labelgate.cli import main
from labelgate.engine import QualitySettings, compare, project_report, resolve_settings, task_report
from labelgate.errors import SettingsError


def test_defaults_are_cvats():
    s = QualitySettings()
    assert (s.iou_threshold, s.low_overlap_threshold, s.oks_sigma, s.line_thickness) == (
        0.4,
        0.8,
        0.09,
        0.01,
    )
    assert s.point_size_base == "group_bbox_size" and s.target_metric == "accuracy"
    assert s.job_filter == '{"==":[{"var":"type"},"annotation"]}'


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"iou_threshold": 1.5}, r"\[quality\] iou_threshold: 1.5 is out of range \[0, 1\]"),
        ({"oks_sigma": -0.1}, "oks_sigma: -0.1 is out of range"),
        ({"target_metric": "f1"}, "expected one of accuracy, precision, recall"),
        ({"point_size_base": "huge"}, "expected one of image_size, group_bbox_size"),
        ({"max_validations_per_job": -1}, "expected an integer >= 0"),
        ({"job_filter": "{not json"}, "job_filter: not valid JSON"),
        ({"iou": 0.5}, "iou: unknown key in \\[quality\\]; known: check_covered"),
        ({"compare_groups": "maybe"}, "compare_groups: expected true or false, got 'maybe'"),
    ],
    ids=["iou", "sigma", "metric", "size-base", "max-validations", "job-filter", "unknown", "bool"],
)
def test_bad_settings_are_rejected_clearly(change, message):
    with pytest.raises(SettingsError, match=message):
        QualitySettings.from_mapping(change)


def test_precedence_cvat_toml_env_cli(tmp_path):
    toml = tmp_path / "q.toml"
    toml.write_text("[quality]\niou_threshold = 0.5\noks_sigma = 0.2\ncompare_groups = false\n")
    s = resolve_settings(
        cvat={"iou_threshold": 0.3, "oks_sigma": 0.1, "line_thickness": 0.05, "id": 9},
        toml_path=toml,
        environ={"LABELGATE_OKS_SIGMA": "0.3", "LABELGATE_UNRELATED": "x"},
        cli={"iou_threshold": 0.6, "low_overlap_threshold": None},
    )
    assert s.line_thickness == 0.05  # CVAT only
    assert s.compare_groups is False  # TOML
    assert s.oks_sigma == 0.3  # env beats TOML
    assert s.iou_threshold == 0.6  # CLI beats all
    assert s.low_overlap_threshold == 0.8  # None leaves the lower layer


def _job(offset, frames, job_id):
    gt = make_set([box(0, 0, 10, 10, item=f) for f in frames], frames=frames)
    ds = make_set(
        [box(offset, 0, 10 + offset, 10, item=f) for f in frames], frames=frames, job_id=job_id
    )
    return compare(gt, ds)


def test_task_sums_jobs_and_fixes_mean_iou():
    j1, j2 = _job(0, (0, 1), 1), _job(5, (2,), 2)  # job 2: IoU 1/3 -> missing + extra
    t = task_report([j1, j2])
    s = t.summary
    assert (s["valid_count"], s["gt_count"], s["ds_count"], s["total_count"]) == (2, 3, 3, 4)
    assert s["accuracy"] == pytest.approx(0.5)
    assert s["frame_count"] == 3
    # Frame-weighted mean of job mean IoUs: (1.0 * 2 + (1/3 + 1/3) / 2 * 1) / 3.
    assert s["mean_iou"] == pytest.approx((2 * 1.0 + 1 / 3) / 3)
    assert len(t.conflicts) == 2


def test_project_weights_by_inverse_frame_share():
    # GT validates frames 0-1 of a 5-frame job: frame_share = 0.4, weight 2.5.
    gt = make_set([box(0, 0, 10, 10, item=f) for f in (0, 1)], frames=(0, 1))
    ds = make_set([box(0, 0, 10, 10, item=f) for f in range(5)], frames=tuple(range(5)))
    task = task_report([compare(gt, ds)])
    assert task.summary["frame_share"] == pytest.approx(0.4)
    p = project_report([task])
    # Every count becomes ceil(2 * 2.5) = 5.
    assert p.summary["valid_count"] == 5 and p.summary["gt_count"] == 5
    assert p.to_dict()["frame_results"] == {}


def test_cli_compare_writes_cvat_shaped_json(tmp_path):
    gt = make_set([box(0, 0, 10, 10)], name="gt")
    ds = make_set([box(0, 0, 10, 10), box(50, 50, 60, 60)], name="ds")
    gt.save_json(tmp_path / "gt.json")
    ds.save_json(tmp_path / "ds.json")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        main,
        [
            "compare",
            "--gt",
            str(tmp_path / "gt.json"),
            "--ds",
            str(tmp_path / "ds.json"),
            "--json",
            str(out),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    for key in (
        "summary",
        "conflicts_by_type",
        "annotations",
        "comparison_summary",
        "frame_results",
        "parameters",
    ):
        assert key in data
    assert data["summary"]["precision"] == 0.5
    lo, hi = data["summary"]["precision_ci95"]
    assert lo == pytest.approx(0.0945, abs=1e-3) and hi == pytest.approx(0.9055, abs=1e-3)
    res = CliRunner().invoke(
        main,
        [
            "compare",
            "--gt",
            str(tmp_path / "gt.json"),
            "--ds",
            str(tmp_path / "ds.json"),
            "--iou-threshold",
            "7",
        ],
    )
    assert res.exit_code == 2 and "out of range" in res.output
