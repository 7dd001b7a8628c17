"""Label Studio sources take the same quality settings as CVAT ones (issue #15), on a real server:
``labelgate ls score --settings FILE`` / ``--iou-threshold`` and the webhook re-score job.

One task, one image: ground truth box (x, y, w, h) = (10, 10, 40, 40) in percent and the
annotator's (20, 10, 40, 40). By hand: intersection 30 x 40 = 1200, union 1600 + 1600 - 1200 =
2000, IoU = 0.6. So the box matches at iou_threshold 0.5 (precision = recall = 1) and does not
at 0.7 (precision = recall = 0; CVAT's accuracy 0 / (1 + 1 - 0) = 0).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from labelgate.cli import main
from labelgate.config import load
from labelgate.queue.durable import Job

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image"><Label value="car"/></RectangleLabels>
</View>"""


def _box(x: float) -> list[dict]:
    return [
        {
            "id": "r1",
            "from_name": "box",
            "to_name": "image",
            "type": "rectanglelabels",
            "original_width": 100,
            "original_height": 100,
            "value": {
                "x": x,
                "y": 10,
                "width": 40,
                "height": 40,
                "rotation": 0,
                "rectanglelabels": ["car"],
            },
        }
    ]


@pytest.fixture(scope="module")
def box_project(ls_server):
    from label_studio_sdk import LabelStudio

    client = LabelStudio(base_url=ls_server.url, api_key=ls_server.api_key)
    users = {u.email: u.id for u in client.users.list()}
    ids = {}
    for name in ("lead", "a1"):
        email = f"{name}.issue15@example.com"
        ids[name] = users.get(email) or client.users.create(email=email, username=f"{name}-i15").id
    project = client.projects.create(title="issue15 settings", label_config=CONFIG)
    client.projects.import_tasks(
        id=project.id,
        request=[
            {
                "data": {"image": "https://example.com/a.jpg"},
                "annotations": [
                    {"result": _box(10), "completed_by": ids["lead"], "ground_truth": True},
                    {"result": _box(20), "completed_by": ids["a1"], "ground_truth": False},
                ],
            }
        ],
    )
    client._client_wrapper.httpx_client.httpx_client.close()
    return project.id


def _annotator(result: dict) -> dict:
    (entry,) = [v for k, v in result["annotators"].items() if "a1" in k]
    return entry


def _score(ls_server, project: int, tmp_path, *extra: str) -> dict:
    out = tmp_path / "r.json"
    args = ["ls", "score", "--project", str(project), "--url", ls_server.url]
    args += ["--api-key", ls_server.api_key, "--store", f"sqlite:///{tmp_path / 's.db'}"]
    res = CliRunner().invoke(main, [*args, *extra, "--json", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    return _annotator(json.loads(out.read_text()))


@pytest.mark.parametrize(("iou", "expected"), [(0.5, 1.0), (0.7, 0.0)])
def test_ls_score_settings_file_moves_the_match(ls_server, box_project, tmp_path, iou, expected):
    settings = tmp_path / "labelgate.toml"
    settings.write_text(f"[quality]\niou_threshold = {iou}\n[server]\nls_threshold = 0.5\n")
    a1 = _score(ls_server, box_project, tmp_path, "--settings", str(settings))
    assert (a1["precision"], a1["recall"]) == (expected, expected)


def test_ls_score_iou_flag_beats_the_file(ls_server, box_project, tmp_path, monkeypatch):
    monkeypatch.delenv("LABELGATE_IOU_THRESHOLD", raising=False)
    assert _score(ls_server, box_project, tmp_path)["precision"] == 1.0  # default 0.4
    settings = tmp_path / "labelgate.toml"
    settings.write_text("[quality]\niou_threshold = 0.7\n")
    args = ("--settings", str(settings))
    assert (
        _score(ls_server, box_project, tmp_path, *args, "--iou-threshold", "0.5")["recall"] == 1.0
    )
    monkeypatch.setenv("LABELGATE_IOU_THRESHOLD", "0.5")
    assert _score(ls_server, box_project, tmp_path, *args)["recall"] == 1.0  # env over file


def test_webhook_rescore_uses_the_configured_settings(
    ls_server, box_project, tmp_path, monkeypatch
):
    from labelgate.store import open_store
    from labelgate_webhook.jobs import labelstudio_rescore

    monkeypatch.setenv("LABELGATE_LS_URL", ls_server.url)
    monkeypatch.setenv("LABELGATE_LS_API_KEY", ls_server.api_key)
    settings = tmp_path / "labelgate.toml"
    settings.write_text("[quality]\niou_threshold = 0.7\n")
    job = Job(1, "labelstudio.rescore", "labelstudio", f"project:{box_project}", {}, 0, 1)
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        strict = labelstudio_rescore(job, store, load(settings, environ={}))
        lax = labelstudio_rescore(job, store, load(None, environ={}))  # CVAT's default 0.4
        stored = store.get_report(strict["report_id"])
    assert _annotator(strict)["precision"] == 0.0 and _annotator(lax)["precision"] == 1.0
    assert stored.settings["iou_threshold"] == 0.7  # the report records what it was scored with
    # The single task scores below the default review threshold at 0.7, above it at 0.4.
    assert strict["flagged"] and not lax["flagged"]
