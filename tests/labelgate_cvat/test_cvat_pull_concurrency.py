"""Concurrent job downloads against the CVAT API test double: order, limits, 429s, progress."""

from __future__ import annotations

import gc
import json
import threading
import time

import pytest
from click.testing import CliRunner
from flask import Response, request

from labelgate.cli import main
from labelgate_cvat import client as cvat_client
from labelgate_cvat import pipeline as cvat_pipeline
from labelgate_cvat import source as cvat_source
from labelgate_cvat.client import connect
from labelgate_cvat.payloads import schema_from_labels
from labelgate_cvat.pipeline import pull_job, score_target

#: Seconds each job's annotations take to answer: the first jobs answer last.
DELAY = {100: 0.4, 101: 0.3, 102: 0.2, 103: 0.0}


def _slow_and_counted(double) -> dict[str, int]:
    """Delay annotation answers per job and count the downloads in flight at once."""
    seen = {"now": 0, "most": 0}
    lock = threading.Lock()

    @double.app.before_request
    def slow() -> None:
        if request.path.endswith("/annotations/") and request.method == "GET":
            with lock:
                seen["now"] += 1
                seen["most"] = max(seen["most"], seen["now"])
            time.sleep(DELAY.get(int(request.path.split("/")[3]), 0.0))

    @double.app.teardown_request
    def done(_exc: object) -> None:
        if request.path.endswith("/annotations/") and request.method == "GET":
            with lock:
                seen["now"] -= 1

    return seen


def _summary(result):
    """Job ids in report order with their (valid, ds, gt) counts and the task's conflicts."""
    (task,) = result.to_dict()["tasks"]
    jobs = [
        (j["job"]["id"], tuple(j["report"]["summary"][k] for k in ("valid_count", "ds_count")))
        for j in task["jobs"]
    ]
    return jobs, json.dumps(task["report"], sort_keys=True)


def test_concurrent_pull_keeps_job_order_and_equals_the_serial_pull(cvat_double):
    seen = _slow_and_counted(cvat_double)
    with connect(cvat_double.url, token=cvat_double.token) as src:
        serial = _summary(score_target(src, "task", 10, semantics="cvat-2.42", workers=1))
        assert seen["most"] == 1
        concurrent = _summary(score_target(src, "task", 10, semantics="cvat-2.42", workers=4))
    # Answers arrived 103, 102, 101, 100; the reports are still in job order, and identical.
    assert [jid for jid, _ in concurrent[0]] == [101, 102, 103]
    assert concurrent == serial
    assert concurrent[0][2] == (103, (14, 16))  # hand-checked in test_cvat_live
    # Several of the four jobs (GT and three annotation jobs) were downloading at once.
    assert 2 <= seen["most"] <= 4


def test_workers_bound_the_downloads_in_flight(cvat_double):
    seen = _slow_and_counted(cvat_double)
    with connect(cvat_double.url, token=cvat_double.token) as src:
        score_target(src, "task", 10, semantics="cvat-2.42", workers=2)
    assert seen["most"] == 2  # 100 and 101 take 0.4 and 0.3 s: they overlap, never a third


def test_a_429_during_a_concurrent_pull_waits_its_retry_after_and_is_retried(
    cvat_double, monkeypatch
):
    waits: list[float] = []
    monkeypatch.setattr(cvat_client.time, "sleep", waits.append)  # the module, as urllib3's
    refused = {"n": 0}

    @cvat_double.app.before_request
    def throttle() -> Response | None:
        if request.path == "/api/jobs/102/annotations/" and refused["n"] < 2:
            refused["n"] += 1
            return Response("slow down", status=429, headers={"Retry-After": "7"})
        return None

    with connect(cvat_double.url, token=cvat_double.token) as src:
        jobs, _ = _summary(score_target(src, "task", 10, semantics="cvat-2.42", workers=4))
    assert [jid for jid, _ in jobs] == [101, 102, 103]
    assert jobs[1] == (102, (18, 18))  # 18 of the task's 20 + 18 + 14 (test_cvat_live)
    assert len(cvat_double.requests("GET", "/api/jobs/102/annotations")) == 3
    assert waits == [7.0, 7.0]  # what the server asked for, not the client's own backoff


def test_progress_reports_each_job_of_the_task(cvat_double):
    calls: list[tuple[str, int, int]] = []
    with connect(cvat_double.url, token=cvat_double.token) as src:
        score_target(src, "task", 10, semantics="cvat-2.42", on_progress=lambda *a: calls.append(a))
    # The GT job and three annotation jobs: 0 of 4 before the first download, then each.
    assert calls == [("scoring task 10", n, 4) for n in range(5)]


def test_cli_shows_progress_on_stderr(cvat_env, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich draws bars only on a terminal otherwise
    res = CliRunner().invoke(main, ["cvat", "score", "--task", "10", "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert "scoring task 10" in res.stderr and "4/4" in res.stderr
    assert "scoring task 10" not in res.stdout  # the tables stay on stdout, bars on stderr
    quiet = CliRunner().invoke(main, ["cvat", "score", "--task", "10", "--quiet"])
    assert quiet.exit_code == 0 and "scoring task" not in quiet.stderr


@pytest.mark.parametrize("workers", ["0", "33"])
def test_cli_refuses_a_worker_count_out_of_range(cvat_env, workers):
    res = CliRunner().invoke(main, ["cvat", "score", "--task", "10", "--workers", workers])
    assert res.exit_code == 2 and "--workers" in res.output


def _watch(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Events in order: ``parsed`` (a body read), ``converted`` (a job converted) and ``gc``
    (a collection started)."""
    events: list[str] = []
    loads, convert = cvat_client.loads_json, cvat_source.convert_job

    def parsed(body: bytes) -> object:
        out = loads(body)
        events.append("parsed")
        return out

    def converted(*args: object, **kwargs: object) -> object:
        out = convert(*args, **kwargs)
        events.append("converted")
        return out

    def collected(phase: str, _info: object) -> None:
        if phase == "start":
            events.append("gc")

    monkeypatch.setattr(cvat_client, "loads_json", parsed)
    monkeypatch.setattr(cvat_source, "convert_job", converted)
    monkeypatch.setattr(cvat_pipeline, "convert_job", converted)
    gc.callbacks.append(collected)
    return events


def _unwalked(events: list[str], jobs: int) -> None:
    """No collection from the first parse to the last conversion, which saw ``jobs`` jobs."""
    first, last = events.index("parsed"), len(events) - events[::-1].index("converted")
    assert events[first:last].count("converted") == jobs
    assert "gc" not in events[first:last], events


@pytest.mark.parametrize("workers", [1, 4])
def test_the_collector_never_walks_a_parsed_job(cvat_double, monkeypatch, workers):
    """From a job's parse to its payload's release the collector stays paused: resumed in
    between, its next pass would walk every list and dict of the parsed job."""
    shapes = cvat_double.state["annotations"]["101"]["shapes"]
    shapes += [{**shapes[0], "id": 10_000 + i} for i in range(3000)]  # far past gen 0's 700
    with connect(cvat_double.url, token=cvat_double.token) as src:
        schema = schema_from_labels(src.labels(task_id=10))
        job = src.job(101)
        gc.collect()
        events = _watch(monkeypatch)
        try:
            assert len(pull_job(src, job, schema).annotations) > 3000
            _unwalked(events, 1)
            events.clear()
            score_target(src, "task", 10, semantics="cvat-2.42", workers=workers)
            _unwalked(events, 4)  # the GT job and three annotation jobs
        finally:
            gc.callbacks.pop()
