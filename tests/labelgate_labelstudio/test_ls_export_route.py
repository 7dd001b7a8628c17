"""The pull's export route against a scripted HTTP transport: the export's tasks made the task
list's, the fallback to the task pages, malformed exports and the progress in bytes.

The real server is exercised by test_ls_export_pull (export == pages on a seeded project).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from label_studio_sdk import LabelStudio

from labelgate.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    FormatError,
    NotFound,
    ValidationError,
)
from labelgate_labelstudio import client as client_module
from labelgate_labelstudio.client import EXPORT_TIMEOUT, LabelStudioSource

USERS = [{"id": 1, "email": "lead@example.com"}, {"id": 2, "email": "a1@example.com"}]


def _ann(aid: int, who: Any = 2, **extra: Any) -> dict[str, Any]:
    return {"id": aid, "completed_by": who, "result": [], "was_cancelled": False, **extra}


def _pred(pid: int, task: int) -> dict[str, Any]:
    return {"id": pid, "task": task, "model_version": "m", "score": 0.5, "result": []}


#: The export (out of id order, predictions as ids) and what the task list says of it.
EXPORT = [
    {
        "id": 12,
        "data": {"image": "b.png"},
        "meta": {},
        "annotations": [_ann(3)],
        "predictions": [7],
    },
    {"id": 11, "data": {"image": "a.png"}, "meta": {"k": 1}, "annotations": [_ann(1), _ann(2, 1)]}
    | {"predictions": [5, 4]},
]
PREDICTIONS = [_pred(4, 11), _pred(5, 11), _pred(7, 12), _pred(9, 99)]
PAGE_TASKS = [
    {"id": 11, "data": {"image": "a.png"}, "meta": {"k": 1}, "annotations": [_ann(1), _ann(2, 1)]}
    | {"predictions": [_pred(5, 11), _pred(4, 11)]},
    {"id": 12, "data": {"image": "b.png"}, "meta": {}, "annotations": [_ann(3)]}
    | {"predictions": [_pred(7, 12)]},
]


class _Server:
    """The routes a pull reads; ``export`` is the export's answer (status, body bytes)."""

    def __init__(self, export: Any = EXPORT, status: int = 200, predictions: Any = PREDICTIONS):
        self.status = status
        self.body = export if isinstance(export, bytes) else json.dumps(export).encode()
        self.predictions = predictions
        self.paths: list[str] = []

    def __call__(self, req: httpx.Request) -> httpx.Response:
        path = req.url.path
        self.paths.append(path)
        if path == "/api/projects/7/export":
            q = req.url.params
            assert (q["exportType"], q["download_all_tasks"]) == ("JSON", "true")
            # The server builds the whole export before its first byte: a long read timeout.
            assert req.extensions["timeout"]["read"] == EXPORT_TIMEOUT
            return httpx.Response(self.status, content=self.body)
        if path == "/api/users/":
            return httpx.Response(200, json=USERS)
        if path == "/api/predictions/":
            assert req.url.params["project"] == "7"
            return httpx.Response(200, json=self.predictions)
        if path == "/api/tasks/":
            return httpx.Response(200, json={"tasks": PAGE_TASKS, "total": len(PAGE_TASKS)})
        return httpx.Response(404, json={"detail": "no such route"})


def _source(server: _Server) -> LabelStudioSource:
    http = httpx.Client(transport=httpx.MockTransport(server), timeout=30)
    client = LabelStudio(base_url="http://ls.test", api_key="f" * 40, httpx_client=http)
    return LabelStudioSource(client, "http://ls.test", http)


def test_the_export_becomes_the_task_list(monkeypatch):
    monkeypatch.setattr(client_module, "_PROGRESS_STEP", 100)
    server = _Server()
    progress: list[tuple[str, int, int]] = []
    with _source(server) as src:
        read = src.read_tasks(7, on_progress=lambda *a: progress.append(a))
    assert read.route == "export" and "/api/tasks/" not in server.paths
    # Id order, each prediction id replaced by the prediction, as the task list gives them.
    assert read.tasks == PAGE_TASKS
    assert read.users == {1: "lead@example.com", 2: "a1@example.com"}
    size = len(server.body)
    assert progress[-1] == ("pulling project 7 through its export", size, size)
    assert all(d == progress[-1][0] and done <= total for d, done, total in progress)


def test_no_prediction_request_without_predictions():
    export = [{k: v for k, v in t.items() if k != "predictions"} for t in EXPORT]
    server = _Server(export)
    with _source(server) as src:
        tasks = src.tasks(7)
    assert "/api/predictions/" not in server.paths
    assert [t["id"] for t in tasks] == [11, 12]


def test_a_prediction_deleted_meanwhile_is_left_out():
    with _source(_Server(predictions=PREDICTIONS[1:])) as src:
        tasks = src.tasks(7)
    assert [[p["id"] for p in t["predictions"]] for t in tasks] == [[5], [7]]


@pytest.mark.parametrize(
    ("export", "message"),
    [
        ([1], r"task #0: expected an object, got int"),
        ([{"data": {}}], r"task #0: id: expected an integer, got None"),
        ([{"id": True}], r"task #0: id: expected an integer, got True"),
        ([{"id": 1}, {"id": "2"}], r"task #1: id: expected an integer, got '2'"),
        ([{"id": 3, "annotations": {}}], r"task #0 \(id 3\): annotations: expected a list"),
        ([{"id": 3, "annotations": [7]}], r"task #0 \(id 3\): annotations\[0\]: expected an obj"),
        ([{"id": 3, "predictions": 4}], r"task #0 \(id 3\): predictions: expected a list"),
        (
            [{"id": 3, "predictions": [1, {"id": 2}]}],
            r"task #0 \(id 3\): predictions\[1\]: expected a prediction id, got dict",
        ),
    ],
)
@pytest.mark.parametrize("route", ["auto", "export"])
def test_a_malformed_export_is_a_format_error_naming_the_task(export, message, route):
    with _source(_Server(export)) as src, pytest.raises(FormatError) as caught:
        src.tasks(7, route=route)
    assert str(caught.value).startswith("Label Studio: the export of project 7: ")
    assert caught.match(message)


@pytest.mark.parametrize("body", [b"<html>login</html>", b'{"detail": "busy"}', b"PK\x03\x04"])
def test_an_answer_that_is_no_task_list_reads_the_pages(body, caplog):
    server = _Server(body)
    with _source(server) as src, caplog.at_level("INFO", "labelgate.labelstudio"):
        read = src.read_tasks(7)
    assert read.route == "pages" and read.tasks == PAGE_TASKS and read.users is None
    assert "its export is not a task list; reading the task pages instead" in caplog.text
    with _source(server) as src, pytest.raises(FormatError, match="project 7 is not a task list"):
        src.tasks(7, route="export")


@pytest.mark.parametrize("status", [403, 404, 405])
def test_a_refused_export_reads_the_pages(status, caplog):
    server = _Server(status=status)
    progress: list[str] = []
    with _source(server) as src, caplog.at_level("INFO", "labelgate.labelstudio"):
        read = src.read_tasks(7, on_progress=lambda d, *_: progress.append(d))
    assert read.route == "pages" and read.tasks == PAGE_TASKS
    assert f"export is refused (HTTP {status})" in caplog.text
    assert progress == ["pulling 2 tasks of project 7 (task pages)"]


@pytest.mark.parametrize(
    ("status", "route", "error"),
    [
        (401, "auto", AuthenticationFailed),  # a bad key is no reason to try the pages
        (500, "auto", ConnectionFailed),
        (403, "export", AuthenticationFailed),
        (404, "export", NotFound),
    ],
)
def test_export_errors_that_are_not_a_refusal(status, route, error):
    server = _Server(status=status)
    with _source(server) as src, pytest.raises(error, match=f"HTTP {status}"):
        src.tasks(7, route=route)
    assert "/api/tasks/" not in server.paths


def test_an_unlisted_annotator_reads_the_pages_unless_the_export_is_asked_for(caplog):
    export = [{"id": 1, "annotations": [_ann(1, who=42), _ann(2, who=None)]}]
    with _source(_Server(export)) as src, caplog.at_level("INFO", "labelgate.labelstudio"):
        assert src.read_tasks(7).route == "pages"
        forced = src.read_tasks(7, route="export")
    assert "annotators who are not listed users (42)" in caplog.text
    assert forced.route == "export" and forced.tasks[0]["annotations"][0]["completed_by"] == 42


def test_a_prediction_list_that_is_no_list_is_a_format_error():
    with (
        _source(_Server(predictions={"detail": "x"})) as src,
        pytest.raises(FormatError, match="predictions of project 7 are not a list"),
    ):
        src.tasks(7)


def test_an_unknown_route_is_refused():
    with _source(_Server()) as src, pytest.raises(ValidationError, match="auto, export, pages"):
        src.tasks(7, route="fast")
