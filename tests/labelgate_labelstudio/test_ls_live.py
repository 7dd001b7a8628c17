"""Against a real Label Studio server: seed a project, pull, score, push back, re-run, faults."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from ls_seed import close, ensure_users, import_bundled

from labelgate.cli import main
from labelgate.errors import AuthenticationFailed, ConnectionFailed, NotFound
from labelgate_labelstudio.client import (
    CONSENSUS_MODEL,
    QUALITY_MODEL,
    REVIEW_VIEW,
    SCORE_FIELD,
    connect,
)
from labelgate_labelstudio.pipeline import score_project

EX = Path(__file__).resolve().parents[2] / "examples" / "labelstudio"
N_TASKS = 6


@pytest.fixture(scope="module")
def project(ls_server):
    """The first 6 bundled tasks: 3 annotator users, GT on the gold ones, model predictions."""
    from label_studio_sdk import LabelStudio

    client = LabelStudio(base_url=ls_server.url, api_key=ls_server.api_key)
    users = ensure_users(client, {f"annotator{i}@example.com": f"annotator{i}" for i in (1, 2, 3)})
    project_id, _request = import_bundled(client, "labelgate live test", N_TASKS, users)
    close(client)
    return project_id


def test_pull_matches_the_export(ls_server, project):
    with connect(ls_server.url, ls_server.api_key) as src:
        aset = src.pull(project)
    assert len(aset.items) == N_TASKS
    names = set(aset.annotations.annotators)
    assert {"annotator1@example.com", "ground_truth", "prediction:yolo-demo"} <= names
    assert aset.items.width.tolist() == [640] * N_TASKS
    assert aset.data_errors == ()


def test_score_and_push_back_twice_without_duplicates(ls_server, project, tmp_path):
    from label_studio_sdk import LabelStudio

    with connect(ls_server.url, ls_server.api_key) as src:
        first = score_project(
            src, project, push_scores=True, review_view=True, predictions=True, meta=True
        )
        second = score_project(
            src, project, push_scores=True, review_view=True, predictions=True, meta=True
        )
    assert first["tasks"] == second["tasks"] and first["flagged"] == second["flagged"]
    assert second["push"]["requests"] == 0  # nothing changed, nothing written
    # Task ids are the server's (other tests' projects come first): the project's tasks in
    # import order are the bundled frames 0, 1, 2, ...
    frame_task = [str(t) for t in sorted(int(k) for k in first["tasks"])]
    # Gold tasks (bundled frames 0 and 2): scored against GT, as compare() does.
    assert first["tasks"][frame_task[0]]["basis"] == "ground_truth"
    assert first["tasks"][frame_task[1]]["basis"] == "agreement"
    # Cross-check task 1 (bundled frame 0) against the same frame scored from the CVAT XML
    # export: a different reader and different ids must give the same per-annotator accuracy.
    # A task's score is built from its controls (issue #19): the mean of CVAT's accuracy on
    # the boxes (bbox), on the polygons (sign) and the scene tag's exact match.
    from labelgate.adapters import read_any
    from labelgate.engine import compare
    from labelgate.model import Kind

    def only(aset, kind):
        return aset.replace(annotations=aset.annotations.select(aset.annotations.kind == kind))

    def frame0(gt, ds, kind):
        frames = compare(only(gt, kind), only(ds, kind)).to_dict()["frame_results"]
        return frames["0"]["annotations"]["accuracy"]

    cvat = EX.parent / "cvat"
    gt_xml = read_any(cvat / "gt.xml")
    for i in (1, 2, 3):
        ds = read_any(cvat / f"annotator{i}.xml")
        scene = only(gt_xml, Kind.TAG).annotations, only(ds, Kind.TAG).annotations
        (gt_tag,), (ds_tag,) = (a.label[a.item == 0].tolist() for a in scene)
        per_control = [
            frame0(gt_xml, ds, Kind.RECTANGLE),
            frame0(gt_xml, ds, Kind.POLYGON),
            float(gt_tag == ds_tag),
        ]
        got = first["tasks"][frame_task[0]]["per_annotator"][f"annotator{i}@example.com"]
        assert got == pytest.approx(sum(per_control) / 3)
    assert first["tasks"][frame_task[0]]["score"] == pytest.approx(
        sum(first["tasks"][frame_task[0]]["per_annotator"].values()) / 3
    )
    acc = first["annotators"]["annotator3@example.com"]
    assert acc["frame_count"] == 3  # gold tasks 1, 3 and 6 (frames 0, 2, 5) among the first six
    client = LabelStudio(base_url=ls_server.url, api_key=ls_server.api_key)
    tasks = list(client.tasks.list(project=project, fields="all"))
    for t in tasks:
        versions = [
            p["model_version"] if isinstance(p, dict) else p.model_version for p in t.predictions
        ]
        # The score lives in the task data (a Data Manager column), not in a prediction.
        assert versions.count(QUALITY_MODEL) == 0, versions
        assert versions.count(CONSENSUS_MODEL) <= 1
        assert t.meta["labelgate"]["score"] == first["tasks"][str(t.id)]["score"]
        assert t.data[SCORE_FIELD] == round(first["tasks"][str(t.id)]["score"], 4)
    views = [v for v in client.views.list(project=project) if v.data.get("title") == REVIEW_VIEW]
    assert len(views) == 1
    ids = views[0].data["filters"]["items"][0]["value"]
    assert sorted(ids) == first["flagged"]
    client._client_wrapper.httpx_client.httpx_client.close()
    out = tmp_path / "ls.json"
    res = CliRunner().invoke(
        main,
        [
            "ls",
            "score",
            "--project",
            str(project),
            "--url",
            ls_server.url,
            "--api-key",
            ls_server.api_key,
            "--json",
            str(out),
            "--store",
            f"sqlite:///{tmp_path / 's.db'}",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["flagged"] == first["flagged"]


def test_personal_access_token_works(ls_server, project):
    from label_studio_sdk import LabelStudio

    admin = LabelStudio(base_url=ls_server.url, api_key=ls_server.api_key)
    pat = admin.tokens.create().token
    admin._client_wrapper.httpx_client.httpx_client.close()
    assert pat.count(".") == 2  # a JWT refresh token, not a legacy token
    with connect(ls_server.url, pat) as src:
        assert len(src.pull(project).items) == N_TASKS


def test_faults(ls_server, project):
    with connect(ls_server.url, "0" * 40) as src, pytest.raises(AuthenticationFailed) as err:
        src.pull(project)
    assert "0" * 40 not in str(err.value)
    with connect(ls_server.url, ls_server.api_key) as src, pytest.raises(NotFound):
        src.pull(999999)
    with (
        connect("http://127.0.0.1:9", ls_server.api_key, timeout=2) as src,
        pytest.raises(ConnectionFailed, match="cannot reach Label Studio"),
    ):
        src.pull(project)
    res = CliRunner().invoke(
        main,
        [
            "ls",
            "score",
            "--project",
            str(project),
            "--url",
            ls_server.url,
            "--api-key",
            "bad-key-123",
        ],
    )
    assert res.exit_code == 3 and "bad-key-123" not in res.output


def test_gate_audit_sample_becomes_a_view(ls_server, project, tmp_path, monkeypatch):
    from labelgate_labelstudio.client import AUDIT_VIEW

    monkeypatch.setenv("LABELGATE_LS_URL", ls_server.url)
    monkeypatch.setenv("LABELGATE_LS_API_KEY", ls_server.api_key)
    with connect(ls_server.url, ls_server.api_key) as src:
        src.pull(project).save_json(tmp_path / "pulled.json")
    policy = tmp_path / "gate.toml"
    policy.write_text("[gate]\nmin_agreement = 0.1\n[gate.audit]\nsize = 3\nseed = 1\n")
    args = [
        "gate",
        str(tmp_path / "pulled.json"),
        "--policy",
        str(policy),
        "--quiet",
        "--push-ls-project",
        str(project),
        "--json",
        str(tmp_path / "g.json"),
    ]
    for _ in range(2):
        res = CliRunner().invoke(main, args)
        assert res.exit_code in (0, 1), res.output
    sample = sorted(
        s["item"] for s in json.loads((tmp_path / "g.json").read_text())["audit_sample"]
    )
    from label_studio_sdk import LabelStudio

    client = LabelStudio(base_url=ls_server.url, api_key=ls_server.api_key)
    views = [
        v for v in client.views.list(project=project) if (v.data or {}).get("title") == AUDIT_VIEW
    ]
    client._client_wrapper.httpx_client.httpx_client.close()
    assert len(views) == 1 and len(sample) == 3
    (item,) = views[0].data["filters"]["items"]
    assert sorted(item["value"]) == sample
