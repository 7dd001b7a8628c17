"""Label Studio task pages fetched concurrently, against a scripted HTTP transport.

The real server is exercised by test_ls_live / test_ls_projects_live; here the transport is
scripted so that pages answer out of order, one answers 429 first, and one is malformed.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from label_studio_sdk import LabelStudio
from label_studio_sdk.core import http_client

from labelgate.errors import FormatError
from labelgate_labelstudio.client import PAGE, LabelStudioSource

N_TASKS = 2 * PAGE + 50  # three pages: 100, 100, 50
_pause = time.sleep  # the server's own delays, untouched when a test records the client's


class _Server:
    """Task list pages of ``N_TASKS`` tasks; page 2 answers last, page 3 first."""

    def __init__(self, throttle: int = 0, broken_page: int | None = None) -> None:
        self.throttle = throttle
        self.broken_page = broken_page
        self.pages: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, req: httpx.Request) -> httpx.Response:
        assert req.url.path == "/api/tasks/"
        q = req.url.params
        assert (q["project"], q["fields"], q["page_size"]) == ("7", "all", str(PAGE))
        page = int(q["page"])
        with self.lock:
            self.pages.append(page)
            if page == 2 and self.throttle:
                self.throttle -= 1
                return httpx.Response(429, headers={"Retry-After": "3"}, json={"detail": "slow"})
        _pause({2: 0.2, 3: 0.0}.get(page, 0.05))
        if page == self.broken_page:
            return httpx.Response(200, json={"detail": "not a page"})
        first = (page - 1) * PAGE
        ids = range(first + 1, min(first + PAGE, N_TASKS) + 1)
        tasks = [{"id": i, "data": {}, "annotations": [], "predictions": []} for i in ids]
        return httpx.Response(200, json={"tasks": tasks, "total": N_TASKS})


def _source(server: _Server) -> LabelStudioSource:
    http = httpx.Client(transport=httpx.MockTransport(server))
    client = LabelStudio(base_url="http://ls.test", api_key="f" * 40, httpx_client=http)
    return LabelStudioSource(client, "http://ls.test", http)


def test_pages_come_back_in_task_order_with_progress_per_page():
    server = _Server()
    progress: list[tuple[str, int, int]] = []
    with _source(server) as src:
        tasks = src.tasks(7, workers=4, on_progress=lambda *a: progress.append(a), route="pages")
    assert [t["id"] for t in tasks] == list(range(1, N_TASKS + 1))
    assert sorted(server.pages) == [1, 2, 3] and server.pages[0] == 1
    assert progress == [
        (f"pulling {N_TASKS} tasks of project 7 (task pages)", n, 3) for n in (1, 2, 3)
    ]


def test_a_429_page_waits_its_retry_after_and_is_fetched_again(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(http_client.time, "sleep", waits.append)
    server = _Server(throttle=1)
    with _source(server) as src:
        tasks = src.tasks(7, workers=4, route="pages")
    assert len(tasks) == N_TASKS
    assert server.pages.count(2) == 2
    assert waits == [3.0]


def test_a_malformed_page_is_a_format_error_naming_it():
    with _source(_Server(broken_page=3)) as src, pytest.raises(FormatError, match="page 3"):
        src.tasks(7, workers=2, route="pages")
