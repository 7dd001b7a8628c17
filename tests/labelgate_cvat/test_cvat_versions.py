"""CVAT server eras: version detection, 2.80 job types, quorum, intervals, requirement rows.

Against the CVAT double at a chosen version (``cvat_double_at``). Version thresholds are the
first SDK/API releases with each change (reference note on current CVAT, §1.1); payload shapes
are cvat-sdk 2.80's own generated models.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from labelgate.cli import main
from labelgate.errors import DataWarning, ValidationError
from labelgate.model import Kind
from labelgate_cvat.client import connect
from labelgate_cvat.payloads import cvat_job_to_annotations, schema_from_labels
from labelgate_cvat.pipeline import (
    consensus_parameters,
    merge_consensus,
    score_target,
    settings_row,
)
from labelgate_cvat.versions import ServerVersion, detected_semantics


def _source(double):
    return connect(double.url, token=double.token, retries=1, backoff=0.01, timeout=5)


@pytest.mark.parametrize(
    ("version", "semantics", "has_quorum", "replica"),
    [
        ("2.42.0", "cvat-2.42", True, "consensus_replica"),
        ("2.55.0", "cvat-2.42", True, "consensus_replica"),
        ("2.56.0", "cvat-2.42", False, "consensus_replica"),
        ("2.73.0", "cvat-2.42", False, "consensus_replica"),
        ("2.74.0", "cvat-requirements", False, "consensus_replica"),
        ("2.79.0", "cvat-requirements", False, "consensus_replica"),
        ("2.80.0", "cvat-requirements", False, "replica"),
    ],
)
def test_version_table(version, semantics, has_quorum, replica):
    v = ServerVersion.parse(version)
    assert (v.semantics, v.has_quorum, v.replica_type) == (semantics, has_quorum, replica)
    assert detected_semantics(version) == semantics


def test_version_parsing_edge_cases():
    assert ServerVersion.parse("v2.74") == ServerVersion(2, 74, 0)
    assert ServerVersion.parse("2.74.1.dev0") == ServerVersion(2, 74, 1)
    assert str(ServerVersion.parse("2.9.10")) == "2.9.10"
    assert ServerVersion.parse("2.9.0") < ServerVersion.parse("2.10.0")  # not text order
    with pytest.raises(ValidationError, match="'nightly' is not a version"):
        ServerVersion.parse("nightly")


@pytest.mark.parametrize(
    ("version", "semantics"),
    [
        ("2.42.0", "cvat-2.42"),
        ("2.73.0", "cvat-2.42"),
        ("2.74.0", "cvat-requirements"),
        ("2.80.0", "cvat-requirements"),
    ],
)
def test_semantics_detected_from_the_server(cvat_double_at, version, semantics):
    double = cvat_double_at(version)
    with _source(double) as src:
        assert src.detected_semantics == semantics
        assert src.detected_semantics == semantics
    # Asked once per connection (plus the SDK's own check at login).
    assert len(double.requests("GET", "/api/server/about")) == 2


def test_cli_says_which_semantics_ran(cvat_double_at, monkeypatch, tmp_path):
    double = cvat_double_at("2.80.0")
    monkeypatch.setenv("LABELGATE_CVAT_HOST", double.url)
    monkeypatch.setenv("LABELGATE_CVAT_TOKEN", double.token)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, ["cvat", "score", "--task", "10", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "CVAT server 2.80.0: cvat-requirements semantics detected" in res.stderr
    assert json.loads(out.read_text())["server"] == {
        "version": "2.80.0",
        "semantics": "cvat-requirements",
    }


@pytest.mark.parametrize(
    ("version", "type_name", "count_key"),
    [
        ("2.42.0", "consensus_replica", "consensus_replicas"),
        ("2.80.0", "replica", "replicas_count"),
    ],
)
def test_replica_jobs_of_both_eras(cvat_double_at, version, type_name, count_key):
    with _source(cvat_double_at(version)) as src:
        jobs = {j["id"]: j for j in src.jobs(13)}
    assert {jobs[j]["type"] for j in (1311, 1312, 1313)} == {type_name}
    assert jobs[131][count_key] == 3 and count_key in jobs[1311]


def test_merge_consensus_on_2_80_writes_what_2_42_writes(cvat_double_at):
    written = {}
    for version in ("2.42.0", "2.80.0"):
        double = cvat_double_at(version)
        with _source(double) as src:
            (entry,) = merge_consensus(src, 13)
        assert entry == {"job": 131, "replicas": [1311, 1312, 1313], "shapes": 22, "tags": 5}
        written[version] = [
            {k: v for k, v in s.items() if k != "id"}
            for s in double.state["annotations"]["131"]["shapes"]
        ]
    assert written["2.80.0"] == written["2.42.0"]


def test_cli_merge_consensus_on_2_80(cvat_double_at, monkeypatch):
    double = cvat_double_at("2.80.0")
    monkeypatch.setenv("LABELGATE_CVAT_HOST", double.url)
    monkeypatch.setenv("LABELGATE_CVAT_TOKEN", double.token)
    res = CliRunner().invoke(main, ["cvat", "score", "--task", "13", "--merge-consensus"])
    assert res.exit_code == 3 and "no ground_truth job" in res.output  # task 13 has no GT
    assert len(double.state["annotations"]["131"]["shapes"]) == 22  # merged before scoring


@pytest.mark.parametrize("version", ["2.56.0", "2.80.0"])
def test_quorum_is_refused_where_cvat_removed_it(cvat_double_at, monkeypatch, version):
    double = cvat_double_at(version)
    monkeypatch.setenv("LABELGATE_CVAT_HOST", double.url)
    monkeypatch.setenv("LABELGATE_CVAT_TOKEN", double.token)
    args = ["cvat", "score", "--task", "13", "--merge-consensus", "--quorum", "0.6"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    assert f"CVAT {version} has no consensus quorum (CVAT removed it in 2.56)" in res.stderr
    assert "Traceback" not in res.output
    assert not double.requests("PUT")  # nothing was merged


def test_quorum_is_accepted_before_2_56(cvat_double_at, monkeypatch):
    double = cvat_double_at("2.55.0")
    monkeypatch.setenv("LABELGATE_CVAT_HOST", double.url)
    monkeypatch.setenv("LABELGATE_CVAT_TOKEN", double.token)
    args = ["cvat", "score", "--task", "13", "--merge-consensus", "--quorum", "0.6"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 3 and "no ground_truth job" in res.output
    assert len(double.requests("PUT", "/api/jobs/131/annotations")) == 1


@pytest.mark.parametrize(
    ("version", "expected"),
    # The server's settings fill what the caller left unset; 2.56+ has no quorum: 0.5.
    [("2.42.0", (0.9, 0.6)), ("2.80.0", (0.5, 0.6))],
)
def test_consensus_parameters_come_from_the_server(cvat_double_at, version, expected):
    double = cvat_double_at(version)
    double.state["consensus_settings"] = {"13": {"quorum": 0.9, "iou_threshold": 0.6}}
    with _source(double) as src:
        assert consensus_parameters(src, 13, None, None) == expected
        assert consensus_parameters(src, 13, None, 0.3) == (expected[0], 0.3)
        assert src.consensus_settings(13) == {"id": 13, "task_id": 13, "iou_threshold": 0.6} | (
            {"quorum": 0.9} if version == "2.42.0" else {}
        )


def _intervals():
    return [
        {"id": 71, "label_id": 1, "start": 1500, "stop": 4200, "source": "manual"},
        {"id": 72, "label_id": 3, "start": 5000, "stop": None, "group": 2, "source": "auto"},
        {"id": 73, "label_id": 1, "start": 900, "stop": 800},  # stop before start: bad
    ]


def test_intervals_are_read_into_the_model(cvat_double_at):
    double = cvat_double_at("2.80.0")
    double.state["annotations"]["103"]["intervals"] = _intervals()
    with _source(double) as src:
        payload = src.annotations(103)  # validated by the SDK's LabeledInterval model
        schema = schema_from_labels(src.labels(task_id=10))
        with pytest.warns(DataWarning, match=r"interval 73 .*stop=800 is out of range"):
            aset = cvat_job_to_annotations(
                payload, src.meta(103), schema, annotator="a", job=src.job(103)
            )
    rows = np.flatnonzero(aset.annotations.kind == Kind.INTERVAL)
    assert len(rows) == 2
    ann = aset.annotations
    starts_stops = [
        ann.points[ann.point_offsets[r] : ann.point_offsets[r + 1]].tolist() for r in rows
    ]
    # ms; -1 = open to the end of the recording. The recording is the job's first item.
    assert sorted(starts_stops) == [[[1500.0, 4200.0]], [[5000.0, -1.0]]]
    assert set(ann.item[rows].tolist()) == {20}
    assert sorted(schema.labels[i].name for i in ann.label[rows]) == ["car", "person"]
    (error,) = [e for e in aset.data_errors if e["obj_type"] == "interval"]
    assert error["obj_id"] == 73 and error["source"] == "job 103"


def test_intervals_are_counted_as_not_scored(cvat_double_at):
    double = cvat_double_at("2.80.0")
    with _source(double) as src:
        before = score_target(src, "job", 103).to_dict()
    double.state["annotations"]["103"]["intervals"] = _intervals()[:2]
    with _source(double) as src:
        after = score_target(src, "job", 103).to_dict()
    (task,) = after["tasks"]
    assert (
        "job 103: 2 intervals not scored (audio quality control is not implemented)"
        in (task["notes"])
    )
    # Not compared: the job's scores are those without the intervals.
    assert (
        after["tasks"][0]["jobs"][0]["report"]["summary"]
        == (before["tasks"][0]["jobs"][0]["report"]["summary"])
    )


def _why_scenario(src):
    """Issue #16's 2.80 row: Base rectangle at IoU 0.75 and precision >= 0.9, a strict child."""
    row = settings_row(src, src.task(10))
    base = {r["name"]: r for r in row.requirements}["Base rectangle"]
    patch = src.api.quality_api.partial_update_settings_requirements_endpoint
    from cvat_sdk import models

    patch.call_with_http_info(
        id=base["id"],
        patched_quality_requirement_request=models.PatchedQualityRequirementRequest(
            iou_threshold=0.75, metric="precision", required_score=0.9
        ),
    )
    child, _ = src.api.quality_api.create_settings_requirements_endpoint.call_with_http_info(
        quality_requirement_request=models.QualityRequirementRequest(
            settings_id=row.row["id"],
            name="cars strict",
            parent_requirement=base["id"],
            filter='{"==":[{"var":"shape.label"},"car"]}',
            iou_threshold=0.9,
        )
    )
    return row, base, child


def test_requirement_rows_are_read_with_their_effective_values(cvat_double_at):
    with _source(cvat_double_at("2.80.0")) as src:
        row, _base, child = _why_scenario(src)
        assert row.inherited and row.row["project_id"] == 1  # task 10 inherits project 1's
        assert row.flat == {
            "inherit": False,
            "job_filter": '{"==":[{"var":"type"},"annotation"]}',
            "max_validations_per_job": 2,
        }
        # CVAT's 9 base requirements, in base order (sort_order 0..8).
        assert [r["name"] for r in row.requirements] == [
            "Base tag",
            "Base rectangle",
            "Base skeleton",
            "Base skeleton_keypoint",
            "Base points",
            "Base polyline",
            "Base mask",
            "Base polygon",
            "Base ellipse",
        ]
        listed = src.requirements(row.row["id"], enabled=True, annotation_type="rectangle")
        assert [r["name"] for r in listed] == ["Base rectangle"]
        (item,) = [r for r in src.requirements(row.row["id"]) if r["name"] == "cars strict"]
        assert item["metric"] is None and item["required_score"] is None  # inherited: null
        eff = src.requirement(child.id)["effective"]
    # Nearest non-null up the path: the child's IoU, the parent's metric and score.
    assert (eff["iou_threshold"], eff["metric"], eff["required_score"]) == (0.9, "precision", 0.9)
    assert eff["annotation_type"] == "rectangle"
    assert eff["attribute_comparison"]["default"]["enabled"] is True  # project row compared them
    assert json.loads(eff["filter"]) == {"==": [{"var": "shape.label"}, "car"]}


def test_a_2_80_row_is_scored_with_its_requirements(cvat_double_at):
    with _source(cvat_double_at("2.80.0")) as src:
        _why_scenario(src)
        with warnings.catch_warnings():
            warnings.simplefilter("error", DataWarning)  # nothing is silently dropped now
            (task,) = score_target(src, "task", 10).tasks
    report = task.task_json()
    assert report["semantics"] == "cvat-requirements"
    items = {i["name"]: i for i in report["summary"]["requirements"]["items"]}
    # The row's 9 enabled base requirements and the child, with their effective values.
    assert len(items) == 10
    assert (items["Base rectangle"]["metric"], items["Base rectangle"]["threshold"]) == (
        "precision",
        0.9,
    )
    assert items["cars strict"]["threshold"] == 0.9  # inherited from its parent
    groups = report["groups"]
    assert groups["Base rectangle"]["parameters"]["iou_threshold"] == 0.75
    assert groups["cars strict"]["parameters"]["iou_threshold"] == 0.9


def test_a_row_without_its_list_has_its_requirements_fetched(cvat_double_at, monkeypatch):
    double = cvat_double_at("2.74.0")
    served = double._settings_read
    monkeypatch.setattr(
        double,
        "_settings_read",
        lambda row: {k: v for k, v in served(row).items() if k != "requirements"},
    )
    with _source(double) as src:
        row = settings_row(src, src.task(10))
    assert len(row.requirements) == 9 and row.row["requirements"][1]["name"] == "Base rectangle"
    assert double.requests("GET", "/api/quality/settings/requirements?settings_id=1")


def test_all_requirements_disabled_says_cvat_computes_nothing(cvat_double_at):
    double = cvat_double_at("2.80.0")
    for req in double.state["requirements"].values():
        req["enabled"] = False
    with _source(double) as src, pytest.warns(DataWarning) as caught:
        score_target(src, "task", 10)
    said = [str(w.message) for w in caught if str(w.message).startswith("CVAT task 10")]
    assert said == [
        "CVAT task 10: the quality requirements of project 1 are all 9 disabled (CVAT itself "
        "computes nothing for this task): no requirement is scored"
    ]


def test_a_2_42_row_scores_without_a_requirement_warning(cvat_double_at):
    with _source(cvat_double_at("2.42.0")) as src, warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        row = settings_row(src, src.task(10))
        score_target(src, "task", 10)
    assert row.requirements == () and row.flat["iou_threshold"] == 0.4


def _report_summary(score):
    """A CVAT 2.74+ report summary (one requirement item)."""
    return {
        "total_frames": 10,
        "validation_frames": 3,
        "validation_frame_share": 0.3,
        "conflict_count": 2,
        "error_count": 2,
        "conflicts_by_type": {"missing_annotation": 2},
        "jobs": {"total": 3, "excluded": 0, "not_checkable": 0, "included": 3, "completed": 2},
        "requirements": {
            "total": 9,
            "enabled": 1,
            "completed": 1,
            "not_computed": 0,
            "items": [
                {
                    "requirement_id": 101,
                    "name": "Base rectangle",
                    "metric": "precision",
                    "score": score,
                    "score_components": {"valid_count": 6, "missing_count": 2, "extra_count": 0},
                    "calculation": {"status": "computed"},
                    "threshold": 0.9,
                }
            ],
        },
    }


_LEGACY_SUMMARY = {
    "total_frames": 10,
    "validation_frames": 3,
    "validation_frame_share": 0.3,
    "conflict_count": 2,
    "warning_count": 0,
    "error_count": 2,
    "conflicts_by_type": {"missing_annotation": 2},
    "valid_count": 6,
    "ds_count": 6,
    "gt_count": 8,
    "total_count": 8,
    "accuracy": 0.75,
    "precision": 1.0,
    "recall": 0.75,
    "frame_count": 3,
    "frame_share": 0.3,
}


def test_quality_reports_hide_legacy_ones_on_2_80_unless_asked(cvat_double_at):
    double = cvat_double_at("2.80.0")
    old = double.seed_report(_LEGACY_SUMMARY, {"legacy": True}, target="task", task_id=10)
    new = double.seed_report(
        _report_summary(1.0), {"groups": {"Base rectangle": {}}}, target="task", task_id=10
    )
    double.seed_report(_report_summary(0.5), target="job", task_id=10, job_id=101)
    with _source(double) as src:
        assert [r["id"] for r in src.quality_reports(10)] == [new]
        assert {r["id"] for r in src.quality_reports(10, include_legacy=True)} == {old, new}
        (job_report,) = src.quality_reports(10, target="job")
        item = job_report["summary"]["requirements"]["items"][0]
        assert (item["score"], item["threshold"]) == (0.5, 0.9)
        assert src.quality_report(old)["summary"]["accuracy"] == 0.75
        assert src.quality_report_data(new) == {"groups": {"Base rectangle": {}}}


def test_quality_reports_on_2_42_are_the_legacy_shape(cvat_double_at):
    double = cvat_double_at("2.42.0")
    rid = double.seed_report(_LEGACY_SUMMARY, {"parameters": {}}, target="task", task_id=10)
    with _source(double) as src:
        (report,) = src.quality_reports(10, include_legacy=False)  # 2.42 ignores the flag
        assert report["id"] == rid and report["summary"]["recall"] == 0.75
        assert src.quality_report_data(rid) == {"parameters": {}}


def _strict(value, where="payload"):
    """Every key of a parsed SDK model is one its class declares (recursively)."""
    from cvat_sdk.api_client.model_utils import ModelComposed, ModelNormal

    if isinstance(value, ModelNormal | ModelComposed):
        declared = set(type(value).attribute_map)
        extra = set(value.to_dict()) - declared
        assert not extra, f"{where}: {type(value).__name__} has undeclared fields {extra}"
        for key in value.to_dict():
            _strict(getattr(value, key), f"{where}.{key}")
    elif isinstance(value, list):
        for n, v in enumerate(value):
            _strict(v, f"{where}[{n}]")


def test_every_2_80_payload_deserializes_with_the_sdk_models(cvat_double_at):
    """Each endpoint the 2.80 double serves, through cvat-sdk 2.80's parsing API calls."""
    from cvat_sdk import models

    double = cvat_double_at("2.80.0")
    double.state["annotations"]["103"]["intervals"] = _intervals()[:2]
    rid = double.seed_report(_report_summary(0.75), target="task", task_id=10)
    with _source(double) as src:
        src.create_issue(103, 21, [1.0, 2.0, 3.0, 4.0], "check")
        api = src.api
        settings_id = api.quality_api.list_settings(project_id=1)[0].results[0].id
        req_id = (
            api.quality_api.list_settings_requirements(settings_id=settings_id)[0].results[1].id
        )
        calls = {
            "about": api.server_api.retrieve_about(),
            "self": api.users_api.retrieve_self(),
            "project": api.projects_api.retrieve(1),
            "tasks": api.tasks_api.list(project_id=2, page_size=100),
            "task": api.tasks_api.retrieve(13),
            "task layout": api.tasks_api.retrieve_validation_layout(10),
            "jobs": api.jobs_api.list(task_id=13, page_size=100),
            "job": api.jobs_api.retrieve(1311),
            "annotations": api.jobs_api.retrieve_annotations(103),
            "meta": api.jobs_api.retrieve_data_meta(103),
            "job layout": api.jobs_api.retrieve_validation_layout(103),
            "labels": api.labels_api.list(task_id=10, page_size=100),
            "settings": api.quality_api.list_settings(project_id=1),
            "requirements": api.quality_api.list_settings_requirements(
                settings_id=settings_id, enabled=True, annotation_type="rectangle"
            ),
            "requirement": api.quality_api.retrieve_settings_requirements(req_id),
            "create requirement": api.quality_api.create_settings_requirements(
                quality_requirement_request=models.QualityRequirementRequest(
                    settings_id=settings_id, name="child", parent_requirement=req_id
                )
            ),
            "patch requirement": api.quality_api.partial_update_settings_requirements(
                req_id,
                patched_quality_requirement_request=models.PatchedQualityRequirementRequest(
                    iou_threshold=0.75
                ),
            ),
            "bulk": api.quality_api.create_settings_requirements_bulk(
                models.QualityRequirementBulkCreateRequest(
                    settings_id=settings_id,
                    requirements=[
                        models.QualityRequirementBulkCreateNodeRequest(
                            name="people",
                            annotation_type="rectangle",
                            metric="mean_recall",
                            required_score=0.8,
                            iou_threshold=0.5,
                            children=[
                                models.QualityRequirementBulkCreateNodeRequest(
                                    name="people strict", iou_threshold=0.8
                                )
                            ],
                        )
                    ],
                )
            ),
            "reports": api.quality_api.list_reports(task_id=10, target="task"),
            "report": api.quality_api.retrieve_report(rid),
            "consensus": api.consensus_api.list_settings(task_id=13),
            "issues": api.issues_api.list(job_id=103),
            "comments": api.comments_api.list(job_id=103),
            "webhooks": api.webhooks_api.list(),
        }
        data = src.quality_report_data(rid)
    for name, (model, _response) in calls.items():
        _strict(model, name)
    assert isinstance(calls["about"][0], models.About)
    assert calls["about"][0].version == "2.80.0"
    assert {j.type for j in calls["jobs"][0].results} == {"annotation", "replica"}
    assert calls["job"][0].replicas_count == 0 and calls["task"][0].initial_replicas == 3
    assert [(i.start, i.stop) for i in calls["annotations"][0].intervals] == [
        (1500, 4200),
        (5000, None),
    ]
    row = calls["settings"][0].results[0]
    assert isinstance(row, models.QualitySettings) and len(row.requirements) == 9
    (listed,) = calls["requirements"][0].results
    assert isinstance(listed, models.QualityRequirementListItem)
    child = calls["create requirement"][0]
    assert child.effective["iou_threshold"] == 0.4 and child.iou_threshold is None
    assert calls["patch requirement"][0].effective["iou_threshold"] == 0.75
    people, strict = calls["bulk"][0]
    assert strict.parent_requirement == people.id
    assert strict.effective["metric"] == "mean_recall" and strict.effective["iou_threshold"] == 0.8
    (report,) = calls["reports"][0].results
    assert report.summary.requirements.items[0].score == 0.75
    assert not hasattr(calls["consensus"][0].results[0], "quorum")
    assert data == {}
