"""The pull through the project export against a real Label Studio server: it must read the
same annotation set, score the same and plan the same push-back as the task pages, on a project
with predictions (a team model's and labelgate's own), ground truth, cancelled annotations,
drafts and task meta; the export route refused on one route of the otherwise real server makes
the pull read the pages."""

from __future__ import annotations

import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest
from label_studio_sdk import LabelStudio
from ls_seed import close, ensure_users, import_bundled

from labelgate.adapters import GT_POLICIES
from labelgate.errors import DataWarning
from labelgate.run import run_quality
from labelgate_labelstudio.client import CONSENSUS_MODEL, LabelStudioSource, connect
from labelgate_labelstudio.pipeline import (
    consensus_regions,
    project_result,
    score_project,
    task_scores,
)
from labelgate_labelstudio.pushback import plan_push
from labelgate_labelstudio.source import ProjectSource, PushOptions, project_target

EX = Path(__file__).resolve().parents[2] / "examples" / "labelstudio"
N_TASKS = 9


@pytest.fixture(scope="module")
def project(ls_server):
    """9 bundled tasks (3 annotators, GT on the gold ones, yolo-demo predictions), then: a
    cancelled annotation, a draft, task meta, and labelgate's consensus predictions, scores and
    meta pushed back (so the push-back compares with what the server holds)."""
    client = LabelStudio(base_url=ls_server.url, api_key=ls_server.api_key)
    users = ensure_users(client, {f"annotator{i}@example.com": f"annotator{i}" for i in (1, 2, 3)})
    project_id, request = import_bundled(client, "labelgate export pull", N_TASKS, users)
    close(client)
    with connect(ls_server.url, ls_server.api_key) as src:
        ids = [t["id"] for t in src.tasks(project_id, route="pages")]
        result = request[0]["annotations"][0]["result"]
        src.request(
            "cancel",
            "POST",
            f"api/tasks/{ids[1]}/annotations/",
            json={"result": [], "was_cancelled": True},
        )
        src.request("draft", "POST", f"api/tasks/{ids[2]}/drafts", json={"result": result})
        src.patch_task(ids[3], {"meta": {"source": "camera 2"}})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            score_project(src, project_id, push_scores=True, predictions=True, meta=True)
    return project_id, ids


def _columns_equal(a, b) -> None:
    """The two annotation sets hold the same values, column by column."""
    x, y = a.annotations, b.annotations
    for name in x.__dataclass_fields__:
        left, right = getattr(x, name), getattr(y, name)
        if name == "attributes":
            assert left.keys() == right.keys()
            for key in left:
                assert left[key].tolist() == right[key].tolist(), key
        elif isinstance(left, np.ndarray):
            np.testing.assert_array_equal(left, right, err_msg=name)
        else:
            assert left == right, name
    for name in ("id", "name", "width", "height", "deleted", "real_frame", "gold"):
        np.testing.assert_array_equal(getattr(a.items, name), getattr(b.items, name), name)
    assert a.submissions == b.submissions
    assert a.meta == b.meta
    assert a.data_errors == b.data_errors
    assert a.to_dict() == b.to_dict()


def _pull(src, project, route, policy):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        snap = src.snapshot(project, route=route)
        aset = src.pull(project, snap, gt_policy=policy)
    return snap, aset, sorted(str(w.message) for w in caught)


@pytest.mark.parametrize("policy", GT_POLICIES)
def test_the_export_reads_what_the_pages_read(ls_server, project, policy):
    project_id, ids = project
    with connect(ls_server.url, ls_server.api_key) as src:
        snap_e, export, warned_e = _pull(src, project_id, "export", policy)
        snap_p, pages, warned_p = _pull(src, project_id, "pages", policy)
        auto = src.snapshot(project_id)
    assert (snap_e.route, snap_p.route, auto.route) == ("export", "pages", "export")
    assert [t["id"] for t in snap_e.tasks] == ids
    # The seeded parts are there to be compared: both predictions kinds, a cancelled
    # annotation, a draft, meta, ground truth.
    tasks = {t["id"]: t for t in snap_e.tasks}
    assert {p["model_version"] for t in snap_e.tasks for p in t["predictions"]} == {
        "yolo-demo",
        CONSENSUS_MODEL,
    }
    assert any(a["was_cancelled"] for a in tasks[ids[1]]["annotations"])
    assert tasks[ids[2]]["drafts"] and tasks[ids[3]]["meta"]["source"] == "camera 2"
    assert any(a["ground_truth"] for t in snap_e.tasks for a in t["annotations"])
    _columns_equal(export, pages)
    assert warned_e == warned_p
    assert len(export.items) == N_TASKS and "ground_truth" in export.annotations.annotators
    # What the converter and the push-back read, task by task.
    for te, tp in zip(snap_e.tasks, snap_p.tasks, strict=True):
        assert {k: te.get(k) for k in ("id", "data", "meta")} == {
            k: tp.get(k) for k in ("id", "data", "meta")
        }
        keys = ("id", "model_version", "score", "result", "task")
        assert [{k: p.get(k) for k in keys} for p in te["predictions"]] == [
            {k: p.get(k) for k in keys} for p in tp["predictions"]
        ]


def test_the_export_scores_and_plans_the_push_as_the_pages(ls_server, project):
    project_id, _ = project
    push = PushOptions(scores=True, predictions=True, meta=True)
    out = {}
    with connect(ls_server.url, ls_server.api_key) as src, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        for route in ("export", "pages"):
            ls = ProjectSource(src, gt_policy="first", push_options=push, route=route)
            batch = ls.pull(project_target(project_id))
            assert batch.handle.route == route
            run = run_quality(batch, options=ls.run_options(batch))
            scores, consensus = task_scores(run), consensus_regions(run)
            # A changed wish on some tasks, so that the plan has updates, creates and deletes.
            wanted_scores = {t: {**e, "score": 0.5} if t % 2 else e for t, e in scores.items()}
            first = min(consensus)
            wanted = {t: c for t, c in consensus.items() if t != first}
            plans = [
                plan_push(batch.handle, s, c, meta=True)
                for s, c in ((scores, consensus), (wanted_scores, wanted))
            ]
            out[route] = (project_result(run), plans)
    result_e, plans_e = out["export"]
    result_p, plans_p = out["pages"]
    assert result_e == result_p
    assert plans_e == plans_p
    unchanged, changed = plans_e
    assert not unchanged.changed_tasks  # the fixture pushed this run already
    assert changed.deletes and changed.field_groups


def test_a_refused_export_reads_the_task_pages(ls_server, project, caplog):
    """The export route answers 403 (a role without export rights); the rest is the server."""
    project_id, ids = project
    with connect(ls_server.url, ls_server.api_key) as src, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        expected = src.pull(project_id, route="pages")
    real = httpx.HTTPTransport()
    refused: list[str] = []

    def transport(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(f"/projects/{project_id}/export"):
            refused.append(request.url.path)
            return httpx.Response(403, json={"detail": "no export for this role"})
        return real.handle_request(request)

    http = httpx.Client(transport=httpx.MockTransport(transport), timeout=60)
    client = LabelStudio(base_url=ls_server.url, api_key=ls_server.api_key, httpx_client=http)
    progress: list[str] = []
    with (
        real,
        LabelStudioSource(client, ls_server.url, http) as src,
        caplog.at_level("INFO", "labelgate.labelstudio"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", DataWarning)
        snap = src.snapshot(project_id, on_progress=lambda d, *_: progress.append(d))
        aset = src.pull(project_id, snap)
    assert refused and snap.route == "pages"
    assert [t["id"] for t in snap.tasks] == ids
    assert "export is refused (HTTP 403); reading the task pages instead" in caplog.text
    assert progress and all("(task pages)" in d for d in progress)
    _columns_equal(aset, expected)
