"""Push-back at scale against the real Label Studio server: bulk writes, changed-only re-pushes,
consensus refresh, the Data Manager score column; and the request engine on a recording double
(bounded concurrency, the per-task fallback)."""

import json
import threading
import time

import pytest
from ls_seed import ensure_users, import_bundled

from labelgate_labelstudio.client import (
    CONSENSUS_MODEL,
    QUALITY_MODEL,
    REVIEW_VIEW,
    SCORE_FIELD,
    Snapshot,
    connect,
)
from labelgate_labelstudio.pipeline import score_project
from labelgate_labelstudio.pushback import CONFLICTS_FIELD, plan_push, run_push

N_TASKS = 12


@pytest.fixture(scope="module")
def sdk(ls_server):
    from label_studio_sdk import LabelStudio

    client = LabelStudio(base_url=ls_server.url, api_key=ls_server.api_key)
    yield client
    client._client_wrapper.httpx_client.httpx_client.close()


@pytest.fixture(scope="module")
def project(sdk):
    """12 bundled tasks, 3 annotators (+ the lead's gold on some), no predictions."""
    users = ensure_users(sdk, {f"annotator{i}@example.com": f"annotator{i}" for i in (1, 2, 3)})
    project_id, _request = import_bundled(
        sdk, "labelgate push-back", N_TASKS, users, predictions=False, lead_time=False
    )
    # A prediction an older labelgate wrote: the push removes it.
    first = min(t.id for t in sdk.tasks.list(project=project_id, fields="task_only"))
    sdk.predictions.create(task=first, result=[], score=0.5, model_version=QUALITY_MODEL)
    return project_id


def _state(source, project):
    snap = source.snapshot(project)
    return {
        t["id"]: {
            "data": {k: t["data"].get(k) for k in (SCORE_FIELD, CONFLICTS_FIELD)},
            "preds": sorted(
                (p["model_version"], p["id"]) for p in t["predictions"] if isinstance(p, dict)
            ),
        }
        for t in snap.tasks
    }


def test_push_is_bulk_idempotent_and_changed_only(ls_server, sdk, project):
    model_version = sdk.projects.get(id=project).model_version
    with connect(ls_server.url, ls_server.api_key) as src:
        first = score_project(
            src, project, push_scores=True, review_view=True, predictions=True, meta=True
        )
        push = first["push"]
        assert push["tasks"] == N_TASKS and push["tasks_changed"] == N_TASKS
        assert push["bulk_fields"] is True and push["predictions_created"] == N_TASKS
        # Bulk: one request per distinct field value, one import, one version deletion, and
        # the opt-in meta one PATCH per task - far fewer than the 4-5 calls per task of old.
        distinct = {(SCORE_FIELD, round(e["score"], 4)) for e in first["tasks"].values()} | {
            (CONFLICTS_FIELD, ", ".join(e["conflicting_annotators"]))
            for e in first["tasks"].values()
        }
        assert push["requests"] == len(distinct) + 1 + 1 + N_TASKS
        state = _state(src, project)
        for tid, entry in first["tasks"].items():
            got = state[int(tid)]
            assert got["data"][SCORE_FIELD] == round(entry["score"], 4)
            assert got["data"][CONFLICTS_FIELD] == ", ".join(entry["conflicting_annotators"])
            assert [v for v, _ in got["preds"]] == [CONSENSUS_MODEL]  # old quality one gone
        meta = sdk.tasks.get(id=int(min(first["tasks"], key=int))).meta
        assert meta["labelgate"] == first["tasks"][min(first["tasks"], key=int)]

        again = score_project(
            src, project, push_scores=True, review_view=True, predictions=True, meta=True
        )
        assert again["push"]["requests"] == 0 and again["push"]["tasks_changed"] == 0
        assert _state(src, project) == state

        # An annotator edits one agreement task so that all three agree: exactly that task is
        # re-pushed, its score becomes 1.0 (identical annotations agree perfectly) and its
        # consensus prediction is refreshed in place; every other task is left as it was.
        task = next(int(t) for t, e in first["tasks"].items() if e["basis"] == "agreement")
        anns = sorted(sdk.annotations.list(id=task), key=lambda a: a.id)
        assert len(anns) == 3 and first["tasks"][str(task)]["score"] < 1.0
        for a in anns[1:]:
            sdk.annotations.update(id=a.id, result=anns[0].result)
        third = score_project(src, project, push_scores=True, predictions=True, meta=True)
        assert third["tasks"][str(task)]["score"] == 1.0
        assert third["push"]["tasks_changed"] == 1
        assert third["push"]["predictions_updated"] == 1
        after = _state(src, project)
        assert after[task]["data"] == {SCORE_FIELD: 1.0, CONFLICTS_FIELD: ""}
        assert after[task]["preds"] == state[task]["preds"]  # same prediction id, new content
        assert {t: v for t, v in after.items() if t != task} == {
            t: v for t, v in state.items() if t != task
        }
        consensus = next(
            p for p in sdk.predictions.list(task=task) if p.model_version == CONSENSUS_MODEL
        )
        boxes = sorted(
            round(r["value"]["x"], 3) for r in anns[0].result if r["type"] == "rectanglelabels"
        )
        assert (
            sorted(
                round(r["value"]["x"], 3)
                for r in consensus.result
                if r["type"] == "rectanglelabels"
            )
            == boxes
        )
    # labelgate never touches the project's model version.
    assert sdk.projects.get(id=project).model_version == model_version


def test_data_manager_sorts_and_filters_by_the_score(ls_server, sdk, project):
    with connect(ls_server.url, ls_server.api_key) as src:
        res = score_project(src, project, push_scores=True, review_view=True)
    scores = {int(t): round(e["score"], 4) for t, e in res["tasks"].items()}
    column = f"tasks:data.{SCORE_FIELD}"
    # The column exists in the Data Manager ...
    with connect(ls_server.url, ls_server.api_key) as src:
        cols = src.request("columns", "GET", "api/dm/columns", params={"project": project})
    assert SCORE_FIELD in {c["id"] for c in cols["columns"]}
    # ... a filter "labelgate_score < cut" returns exactly the tasks scored below the cut ...
    values = sorted(set(scores.values()))
    cut = values[len(values) // 2]
    query = {
        "filters": {
            "conjunction": "and",
            "items": [
                {"filter": f"filter:{column}", "operator": "less", "type": "Number", "value": cut}
            ],
        },
        "ordering": [column],
    }
    got = [
        t.id for t in sdk.tasks.list(project=project, query=json.dumps(query), fields="task_only")
    ]
    low = [t for t in scores if scores[t] < cut]
    assert sorted(got) == sorted(low) and low
    # ... ordered by score, lowest first.
    assert [scores[t] for t in got] == sorted(scores[t] for t in low)
    # The review tab lists the flagged tasks, lowest score first.
    view = next(v for v in sdk.views.list(project=project) if v.data.get("title") == REVIEW_VIEW)
    in_view = [t.id for t in sdk.tasks.list(project=project, view=view.id, fields="task_only")]
    assert sorted(in_view) == res["flagged"]
    assert [scores[t] for t in in_view] == sorted(scores[t] for t in res["flagged"])


class RecordingSource:
    """Counts calls and the most requests in flight at once; no bulk field action."""

    def __init__(self, bulk: bool = True) -> None:
        self.bulk = bulk
        self.calls: list[tuple] = []
        self.active = self.peak = 0
        self.lock = threading.Lock()

    def _op(self, *call) -> None:
        with self.lock:
            self.calls.append(call)
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(0.01)
        with self.lock:
            self.active -= 1

    def set_data_field(self, project, ids, name, value):
        self._op("field", tuple(ids), name, value)
        return self.bulk

    def patch_task(self, tid, patch):
        self._op("patch", tid, json.dumps(patch, sort_keys=True))

    def update_prediction(self, pid, fields):
        self._op("update", pid)

    def delete_prediction(self, pid):
        self._op("delete", pid)

    def import_predictions(self, project, chunk):
        self._op("import", len(chunk))

    def delete_model_version(self, project, version):
        self._op("delete_version", version)


def _snapshot(n: int) -> Snapshot:
    tasks = [
        {
            "id": i,
            "data": {"image": f"{i}.jpg"},
            "meta": {},
            "predictions": [
                {"id": 100 + i, "model_version": CONSENSUS_MODEL, "score": 0.5, "result": []}
            ],
        }
        for i in range(1, n + 1)
    ]
    return Snapshot(1, "p", "<View/>", None, tasks)


def test_per_object_requests_stay_within_the_worker_limit():
    snap = _snapshot(40)
    consensus = {i: (0.9, [{"id": "r", "from_name": "c"}]) for i in range(1, 41)}
    plan = plan_push(snap, None, consensus)
    assert len(plan.updates) == 40 and not plan.creates
    src = RecordingSource()
    stats = run_push(src, snap, plan, workers=3)
    assert stats.requests == 40 and len(src.calls) == 40
    assert src.peak == 3  # 40 updates of 10 ms each: the pool is full, never over


def test_without_the_bulk_action_each_task_is_patched_with_its_whole_data():
    snap = _snapshot(3)
    scores = {
        1: {"score": 0.5, "conflicting_annotators": ["a@x"]},
        2: {"score": 0.5, "conflicting_annotators": []},
        3: {"score": 1.0, "conflicting_annotators": []},
    }
    plan = plan_push(snap, scores, None)
    assert plan.field_groups == {
        (SCORE_FIELD, 0.5): [1, 2],
        (SCORE_FIELD, 1.0): [3],
        (CONFLICTS_FIELD, "a@x"): [1],
        (CONFLICTS_FIELD, ""): [2, 3],
    }
    src = RecordingSource(bulk=False)
    stats = run_push(src, snap, plan)
    assert stats.bulk_fields is False and stats.tasks_patched == 3
    patches = {c[1]: json.loads(c[2]) for c in src.calls if c[0] == "patch"}
    assert patches[1] == {"data": {"image": "1.jpg", SCORE_FIELD: 0.5, CONFLICTS_FIELD: "a@x"}}
    assert patches[3] == {"data": {"image": "3.jpg", SCORE_FIELD: 1.0, CONFLICTS_FIELD: ""}}
    # A task that lost its score loses the columns; its other data stays.
    snap2 = Snapshot(
        1, "p", "<View/>", None, [{"id": 1, "data": {"image": "1.jpg", SCORE_FIELD: 0.5}}]
    )
    plan2 = plan_push(snap2, {}, None)
    assert plan2.task_patches == {1: {"data": {"image": "1.jpg"}}}
    assert not plan2.field_groups
