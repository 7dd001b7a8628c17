"""The live CVAT adapter end to end: the real cvat-sdk client against the CVAT API test double.

Expected values are hand-checked from the recorded state (tests/fixtures/cvat_payloads).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from cvat_double_plugin import job_103_issues

from labelgate.cli import main
from labelgate.errors import AuthenticationFailed, ConnectionFailed, NotFound, ValidationError
from labelgate_cvat.client import connect
from labelgate_cvat.pipeline import score_target
from labelgate_cvat.pushback import desired_issues, push_issues, push_task
from labelgate_cvat.webhooks import install_webhook


def _source(double, **kw):
    return connect(double.url, token=double.token, retries=3, backoff=0.01, timeout=0.3, **kw)


def _score(src, kind, target, **kw):
    """``score_target`` in CVAT 2.42 semantics on both eras: these expectations are 2.42's
    (requirement mode on the 2.80 double: test_cvat_requirements.py)."""
    return score_target(src, kind, target, semantics="cvat-2.42", **kw)


def _jobs(result):
    data = result if isinstance(result, dict) else result.to_dict()
    return {j["job"]["id"]: j["report"] for t in data["tasks"] for j in t["jobs"]}


def test_task_in_gt_mode_matches_hand_checked_values(cvat_double):
    with _source(cvat_double) as src:
        result = _score(src, "task", 10).to_dict()
    jobs = _jobs(result)
    assert sorted(jobs) == [101, 102, 103]  # the GT job is not scored against itself
    s = jobs[103]["summary"]
    assert (s["valid_count"], s["ds_count"], s["gt_count"]) == (14, 16, 18)
    assert s["accuracy"] == pytest.approx(14 / 18)
    assert s["conflicts_by_type"]["missing_annotation"] == 2
    assert s["conflicts_by_type"]["mismatching_label"] == 2
    assert jobs[101]["summary"]["accuracy"] == 1.0
    task = result["tasks"][0]["report"]["summary"]
    assert task["valid_count"] == 20 + 18 + 14 and task["gt_count"] == 56
    # The task inherits the project's settings (iou 0.4), not its own row (0.9).
    params = result["tasks"][0]["report"]["parameters"]
    assert params["inherited"] is True and params["iou_threshold"] == 0.4
    conflict = next(c for c in jobs[103]["conflicts"] if c["type"] == "missing_annotation")
    assert conflict["annotation_ids"][0]["job_id"] == 100


def test_honeypot_placeholder_pairs_with_its_real_frame(cvat_double):
    with _source(cvat_double) as src:
        s = _jobs(_score(src, "task", 11))[111]["summary"]
    # Frame 0 is a regular frame and is not compared; frame 2 shows pool frame 3.
    assert (s["ds_count"], s["gt_count"], s["valid_count"]) == (1, 1, 1)
    assert s["mean_iou"] == pytest.approx(870 / 930)  # 30x30 boxes offset by 1 px in x


def test_video_tracks_are_interpolated(cvat_double):
    with _source(cvat_double) as src:
        rep = _jobs(_score(src, "task", 12))[121]
    s = rep["summary"]
    # Frame 0: car (rotation 350), polygon, skeleton; frame 5: car interpolated to [5,0,15,10]
    # with rotation 0 (350 -> 10 the short way), skeleton interpolated onto GT, and a mask.
    assert (s["ds_count"], s["gt_count"], s["valid_count"]) == (6, 4, 4)
    extras = sorted(
        (c["frame_id"], c["annotation_ids"][0]["type"])
        for c in rep["conflicts"]
        if c["type"] == "extra_annotation"
    )
    assert extras == [(0, "track"), (5, "shape")]  # skeleton track on frame 0, the mask


def test_project_report_weights_tasks(cvat_double):
    with _source(cvat_double) as src:
        result = _score(src, "project", 1).to_dict()
    assert [t["task"]["id"] for t in result["tasks"]] == [10, 11, 12]
    s = result["project"]["summary"]
    # CVAT's total_frames is each job's segment length: task 10 validates 12 of 30 frames
    # (weight 2.5), task 11 one honeypot in a 3-frame job (weight 3), task 12 two of 10 video
    # frames (weight 5); each count adds ceil(count * weight).
    assert [t["report"]["summary"]["frame_share"] for t in result["tasks"]] == pytest.approx(
        [12 / 30, 1 / 3, 2 / 10]
    )
    assert s["valid_count"] == 52 * 2.5 + 1 * 3 + 4 * 5
    assert s["gt_count"] == 56 * 2.5 + 1 * 3 + 4 * 5


def test_issues_are_pushed_once_and_resolved(cvat_double):
    with _source(cvat_double) as src:
        result = _score(src, "task", 10)
        (r,) = result.tasks
        first = push_task(src, r, issues=True)
        again = push_task(src, r, issues=True)
        counts = {e["job"]: e["issues"] for e in first}
        assert counts[103]["created"] == 4 and counts[101]["created"] == 0
        assert {e["job"]: e["issues"]["kept"] for e in again}[103] == 4
        issues = [i for i in cvat_double.state["issues"].values() if i["job"] == 103]
        assert len(issues) == 4
        wanted = desired_issues(r.job_reports[103])
        keep = dict(list(wanted.items())[:3])
        assert push_issues(src, 103, keep)["resolved"] == 1
        assert push_issues(src, 103, wanted)["reopened"] == 1
    messages = [c["message"] for c in cvat_double.state["comments"].values()]
    assert sum("missing annotation (car)" in m for m in messages) >= 1
    assert len([i for i in cvat_double.state["issues"].values() if i["job"] == 103]) == 4


def test_push_that_fails_halfway_resumes_without_duplicates(cvat_double):
    cvat_double.fail("POST", r"^/api/issues$", 500, times=1, after=2)
    with _source(cvat_double) as src:
        (r,) = _score(src, "job", 103).tasks
        with pytest.raises(ConnectionFailed):
            push_task(src, r, issues=True)
        assert len(cvat_double.state["issues"]) == 2
        (entry,) = push_task(src, r, issues=True)
    assert entry["issues"] == {"created": 2, "kept": 2, "reopened": 0, "resolved": 0}
    assert len(cvat_double.state["issues"]) == 4


def test_stage_policy_accepts_rejects_and_stops_at_the_limit(cvat_double):
    jobs = cvat_double.state["jobs"]
    with _source(cvat_double) as src:

        def run():
            result = _score(src, "task", 10, overrides={"target_metric_threshold": 0.9})
            (r,) = result.tasks
            return {e["job"]: e["stage"]["action"] for e in push_task(src, r, stage_policy=True)}

        assert run() == {101: "accepted", 102: "accepted", 103: "rejected"}
        assert (jobs["101"]["stage"], jobs["101"]["state"]) == ("acceptance", "completed")
        assert (jobs["103"]["stage"], jobs["103"]["state"]) == ("annotation", "rejected")
        assert run()[103] == "unchanged"  # still rejected: waiting for the annotator
        jobs["103"]["state"] = "completed"  # the annotator resubmits without fixing
        assert run()[103] == "rejected"
        jobs["103"]["state"] = "completed"
        assert run()[103] == "manual_review"  # max_validations_per_job = 2 (project settings)
    notes = [c["message"] for c in cvat_double.state["comments"].values()]
    assert sum("labelgate: job rejected" in m for m in notes) == 2
    assert any("rejection 2 of 2" in m for m in notes)


@pytest.mark.parametrize(
    ("status", "times"),
    [(503, 2), (429, 1), (502, 3), (0, 1)],
    ids=["503", "429", "502", "timeout"],
)
def test_transient_read_failures_are_retried(cvat_double, status, times):
    cvat_double.fail("GET", r"/api/jobs/103/annotations", status, times=times)
    with _source(cvat_double) as src:
        rep = _jobs(_score(src, "job", 103))[103]
    assert rep["summary"]["valid_count"] == 14
    assert len(cvat_double.requests("GET", "/api/jobs/103/annotations")) == times + 1


def test_reads_give_up_after_the_retries(cvat_double):
    cvat_double.fail("GET", r"/api/jobs/103/annotations", 503, times=1000)
    with _source(cvat_double) as src, pytest.raises(ConnectionFailed, match="503"):
        _score(src, "job", 103)


def test_auth_and_lookup_errors_are_clear(cvat_double):
    with pytest.raises(AuthenticationFailed, match="HTTP 401"):
        connect(cvat_double.url, token="wrong", retries=0)
    with pytest.raises(AuthenticationFailed, match="HTTP 403"):
        connect(cvat_double.url, token=cvat_double.token, org="other-team", retries=0)
    with pytest.raises(ValidationError, match="LABELGATE_CVAT_TOKEN"):
        connect(cvat_double.url, environ={})
    with _source(cvat_double) as src, pytest.raises(NotFound, match="task 999"):
        _score(src, "task", 999)
    with pytest.raises(ConnectionFailed, match="unreachable"):
        connect("http://127.0.0.1:9", token="x", retries=0)


def test_password_login(cvat_double):
    with connect(cvat_double.url, user="admin", password="password1") as src:
        assert src.job(103)["assignee"]["username"] == "annotator3"
    with pytest.raises(AuthenticationFailed):
        connect(cvat_double.url, user="admin", password="nope")


def test_webhook_install_is_idempotent(cvat_double):
    with _source(cvat_double) as src:
        first = install_webhook(src, 1, "https://lg.example/webhooks/cvat", "s1")
        second = install_webhook(src, 1, "https://lg.example/webhooks/cvat", "s2")
    (hook,) = cvat_double.state["webhooks"].values()
    assert first == second == hook["id"] and hook["secret"] == "s2"
    assert set(hook["events"]) == {"update:job", "create:job", "delete:job", "update:task"}


def test_cli_score_writes_json_and_pushes_issues(cvat_env, tmp_path):
    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        main,
        [
            "cvat",
            "score",
            "--task",
            "10",
            "--issues",
            "--semantics",
            "cvat-2.42",
            "--json",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert _jobs(data)[103]["summary"]["accuracy"] == pytest.approx(14 / 18)
    assert "103" in res.output and "77.8%" in res.output
    assert cvat_env.token not in res.output
    assert len(cvat_env.state["issues"]) == 4
    args = ["cvat", "score", "--task", "10", "--issues", "--semantics", "cvat-2.42", "--quiet"]
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and len(cvat_env.state["issues"]) == 4


def test_cli_bad_token_exit_code(cvat_env, monkeypatch):
    monkeypatch.setenv("LABELGATE_CVAT_TOKEN", "wrong")
    res = CliRunner().invoke(main, ["cvat", "score", "--job", "103"])
    assert res.exit_code == 3 and "HTTP 401" in res.output and "wrong" not in res.output


def test_webhook_save_rescores_and_pushes_issues(cvat_env, tmp_path):
    import hashlib
    import hmac

    from labelgate_webhook.app import create_app
    from labelgate_webhook.jobs import handlers

    app = create_app(
        {
            "STORE_URL": f"sqlite:///{tmp_path}/s.db",
            "QUEUE_PATH": str(tmp_path / "q.db"),
            "CVAT_WEBHOOK_SECRET": "sek",
            "DEBOUNCE_SECONDS": 0.0,
        }
    )
    body = json.dumps(
        {
            "event": "update:job",
            "webhook_id": 1,
            "job": {"id": 103, "task_id": 10, "updated_date": "2026-11-23T02:00:00Z"},
            "before_update": {"updated_date": "2026-11-23T01:00:00Z"},
        }
    ).encode()
    sig = "sha256=" + hmac.new(b"sek", body, hashlib.sha256).hexdigest()
    res = app.test_client().post(
        "/webhooks/cvat",
        data=body,
        headers={"X-Signature-256": sig, "Content-Type": "application/json"},
    )
    assert res.status_code == 202
    queue = app.extensions["labelgate_queue"]
    ran = queue.run_once(handlers(app.extensions["labelgate_store"]))
    assert ran is not None
    # The re-score runs in the server's semantics (job_103_issues says what each era opens).
    assert len([i for i in cvat_env.state["issues"].values() if i["job"] == 103]) == (
        job_103_issues(cvat_env)
    )
    stored = app.extensions["labelgate_store"].list_reports(source="cvat", kind="cvat_job")
    assert [r.target for r in stored] == ["job:103"]
    # labelgate's own writes come back as update:job with stage/state: ignored (no loop).
    own = json.dumps(
        {"event": "update:job", "job": {"id": 103}, "before_update": {"state": "in progress"}}
    ).encode()
    sig = "sha256=" + hmac.new(b"sek", own, hashlib.sha256).hexdigest()
    res = app.test_client().post(
        "/webhooks/cvat",
        data=own,
        headers={"X-Signature-256": sig, "Content-Type": "application/json"},
    )
    assert res.get_json()["status"] == "ignored"
    app.extensions["labelgate_store"].close()


@pytest.mark.redis
def test_webhook_save_through_redis_and_an_rq_worker_pushes_issues(cvat_env, tmp_path, redis_db):
    from rq import SimpleWorker

    from labelgate.queue.redis_queue import set_handlers
    from labelgate_webhook.app import create_app
    from labelgate_webhook.jobs import handlers
    from labelgate_webhook.loadgen import cvat_save_event
    from labelgate_webhook.signatures import cvat_signature

    app = create_app(
        {
            "STORE_URL": f"sqlite:///{tmp_path}/s.db",
            "QUEUE_URL": redis_db,
            "CVAT_WEBHOOK_SECRET": "sek",
            "DEBOUNCE_SECONDS": 0.0,
        }
    )
    body = cvat_save_event(job_id=103, task_id=10, save=1)
    headers = {"X-Signature-256": cvat_signature(body, "sek"), "Content-Type": "application/json"}
    assert app.test_client().post("/webhooks/cvat", data=body, headers=headers).status_code == 202
    queue = app.extensions["labelgate_queue"]
    set_handlers(handlers(app.extensions["labelgate_store"]))
    SimpleWorker([queue.rq], connection=queue.redis).work(burst=True, logging_level="ERROR")
    assert [(j["target"], j["status"]) for j in queue.jobs()] == [("job:103", "done")]
    assert len([i for i in cvat_env.state["issues"].values() if i["job"] == 103]) == (
        job_103_issues(cvat_env)
    )
    stored = app.extensions["labelgate_store"].list_reports(source="cvat", kind="cvat_job")
    assert [r.target for r in stored] == ["job:103"]
    app.extensions["labelgate_store"].close()


@pytest.mark.redis
def test_debounced_saves_reach_a_labelgate_worker_process_through_redis(
    cvat_env, tmp_path, redis_db
):
    """The scale-out path: saves coalesce in RQ's schedule; a separate worker re-scores once."""
    import os
    import subprocess
    import sys
    import time

    from labelgate_webhook.app import create_app
    from labelgate_webhook.loadgen import cvat_save_event
    from labelgate_webhook.signatures import cvat_signature

    store = f"sqlite:///{tmp_path}/s.db"
    app = create_app(
        {
            "STORE_URL": store,
            "QUEUE_URL": redis_db,
            "CVAT_WEBHOOK_SECRET": "sek",
            "DEBOUNCE_SECONDS": 1.0,
        }
    )
    client = app.test_client()
    for save in range(10):
        body = cvat_save_event(job_id=103, task_id=10, save=save)
        headers = {"X-Signature-256": cvat_signature(body, "sek")}
        assert client.post("/webhooks/cvat", data=body, headers=headers).status_code == 202
    env = {**os.environ, "LABELGATE_QUEUE_URL": redis_db, "LABELGATE_STORE_URL": store}
    worker = subprocess.Popen(
        [sys.executable, "-m", "labelgate.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    queue = app.extensions["labelgate_queue"]
    try:
        deadline = time.monotonic() + 60
        while queue.counts()["done"] < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(20)
    assert [(j["target"], j["status"], j["events"]) for j in queue.jobs()] == [
        ("job:103", "done", 10)
    ]
    assert len([i for i in cvat_env.state["issues"].values() if i["job"] == 103]) == (
        job_103_issues(cvat_env)
    )
    assert queue.stats()["done"] == 1
    app.extensions["labelgate_store"].close()


def test_consensus_replicas_merge_into_the_parent_job(cvat_double):
    from labelgate.consensus import merge
    from labelgate.model.annotation_set import combine
    from labelgate_cvat.payloads import cvat_job_to_annotations
    from labelgate_cvat.pipeline import merge_consensus, pull_job

    st = cvat_double.state
    with _source(cvat_double) as src:
        (entry,) = merge_consensus(src, 13)
        first = json.loads(json.dumps(st["annotations"]["131"]))
        merge_consensus(src, 13)  # a re-run replaces the parent with the same result
        schema = pull_job(src, st["jobs"]["131"], _schema(src, 13)).schema
    assert entry == {"job": 131, "replicas": [1311, 1312, 1313], "shapes": 22, "tags": 5}
    strip = lambda rows: [{k: v for k, v in r.items() if k != "id"} for r in rows]  # noqa: E731
    again = st["annotations"]["131"]
    assert strip(again["shapes"]) == strip(first["shapes"]) and len(again["tags"]) == 5
    # What was written reads back as exactly the local merge of the three replicas.
    sets = [
        cvat_job_to_annotations(
            st["annotations"][str(j)], st["meta"][str(j)], schema, annotator=f"r{j}"
        )
        for j in (1311, 1312, 1313)
    ]
    local = merge(combine(sets)).annotations
    back = cvat_job_to_annotations(again, st["meta"]["131"], schema, annotator="c").annotations
    assert back.kind.tolist() == local.kind.tolist() and back.label.tolist() == local.label.tolist()
    np.testing.assert_allclose(back.bbox, local.bbox, atol=1e-6)
    assert {s["source"] for s in again["shapes"]} == {"consensus"}


def _schema(src, task):
    from labelgate_cvat.payloads import schema_from_labels

    return schema_from_labels(src.labels(task_id=task))


def test_cli_merge_consensus_flag(cvat_env):
    res = CliRunner().invoke(
        main, ["cvat", "score", "--job", "103", "--merge-consensus", "--quiet"]
    )
    assert res.exit_code == 0, res.output  # task 10 has no replicas: nothing merged
    res = CliRunner().invoke(main, ["cvat", "score", "--task", "13", "--merge-consensus"])
    assert res.exit_code == 3 and "no ground_truth job" in res.output
    assert len(cvat_env.state["annotations"]["131"]["shapes"]) == 22  # merged before scoring


def test_lists_are_read_page_by_page(cvat_double):
    with _source(cvat_double) as src:
        jobs = src.jobs(10)
    assert sorted(j["id"] for j in jobs) == [100, 101, 102, 103]
    pages = cvat_double.requests("GET", "/api/jobs?")
    assert len(pages) == 2 and "page=2" in pages[1][1]  # the double serves 2 rows per page


def test_gate_audit_sample_becomes_cvat_issues(cvat_env, tmp_path):
    ex = "examples/cvat"
    args = [
        "gate",
        "--gt",
        f"{ex}/gt.xml",
        "--ds",
        f"{ex}/annotator1.xml",
        "--ds",
        f"{ex}/annotator2.xml",
        "--policy",
        "examples/gate.toml",
        "--quiet",
        "--push-cvat-job",
        "103",
        "--json",
        str(tmp_path / "g.json"),
    ]
    with _source(cvat_env) as src:
        (r,) = _score(src, "job", 103).tasks
        push_task(src, r, issues=True)  # 4 conflict issues that the audit push must not touch
    first = CliRunner().invoke(main, args)
    assert first.exit_code in (0, 1), first.output
    data = json.loads((tmp_path / "g.json").read_text())
    frames = sorted(s["item"] for s in data["audit_sample"])
    assert len(frames) == 5 and data["pushed"][0]["created"] == 5
    CliRunner().invoke(main, args)
    issues = [i for i in cvat_env.state["issues"].values() if i["job"] == 103]
    assert len(issues) == 9 and not any(i["resolved"] for i in issues)
    audit = [
        c["message"] for c in cvat_env.state["comments"].values() if "audit sample" in c["message"]
    ]
    assert sorted(int(m.split("review frame ")[1].split()[0]) for m in audit) == frames


def test_job_states_become_approval_rates_in_the_stored_scorecards(cvat_double, tmp_path):
    from labelgate.store import open_store

    jobs = cvat_double.state["jobs"]
    jobs["101"].update(stage="acceptance", state="completed")
    jobs["103"].update(stage="annotation", state="rejected")
    with _source(cvat_double) as src, open_store(f"sqlite:///{tmp_path}/s.db") as store:
        result = _score(src, "task", 10, store=store)
        bundle = store.get_report(result.report_ids["bundle:task:10"]).report
        kinds = sorted({r.kind for r in store.list_reports(project="cvat:1")})
    cards = {c["annotator"]: c for c in bundle["scorecards"]}
    assert cards["annotator1"]["approval_rate"] == 1.0
    assert cards["annotator3"]["rejection_rate"] == 1.0
    assert cards["annotator2"]["approval_rate"] is None
    assert cards["annotator3"]["accuracy"] == pytest.approx(14 / 18)
    assert {"bundle", "cvat_job", "cvat_task"} <= set(kinds)


def _fresh_postgres_database(url: str) -> str:
    """A new empty database on the session's PostgreSQL server; returns its URL."""
    import uuid

    import sqlalchemy as sa

    name = f"fanout_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


@pytest.mark.parametrize(
    "backend",
    [
        "durable",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis+postgres", marks=[pytest.mark.redis, pytest.mark.postgres]),
    ],
)
def test_queue_fans_jobs_out_to_worker_processes(cvat_env, tmp_path, request, backend):
    import os
    import subprocess
    import sys

    store = f"sqlite:///{tmp_path}/store.db"
    if backend == "redis+postgres":  # the scale-out deployment: shared Redis and PostgreSQL
        store = _fresh_postgres_database(request.getfixturevalue("postgres_url"))
    queue = (
        str(tmp_path / "queue.db") if backend == "durable" else request.getfixturevalue("redis_db")
    )
    env = {
        **os.environ,
        "LABELGATE_QUEUE_URL": queue,
        "LABELGATE_STORE_URL": store,
        "LABELGATE_HOME": str(tmp_path / "home"),
    }
    # Two workers share the jobs (RQ: two machines' worth; durable: two processes, one file).
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "labelgate.cli", "worker", "--poll", "0.1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        out = tmp_path / "fan.json"
        res = CliRunner().invoke(
            main,
            [
                "cvat",
                "score",
                "--project",
                "1",
                "--queue",
                queue,
                "--store",
                store,
                "--json",
                str(out),
                "--wait-timeout",
                "120",
            ],
        )
        assert res.exit_code == 0, res.output
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(10)
    fanned = json.loads(out.read_text())
    with _source(cvat_env) as src:
        local = _score(src, "project", 1).to_dict()
    assert fanned["project"]["summary"] == local["project"]["summary"]
    for t_fan, t_loc in zip(fanned["tasks"], local["tasks"], strict=True):
        assert t_fan["report"]["summary"] == t_loc["report"]["summary"]
        assert sorted(map(int, t_fan["jobs"])) == sorted(j["job"]["id"] for j in t_loc["jobs"])
    from labelgate.store import open_store

    with open_store(store) as s:
        assert len(s.list_reports(kind="cvat_job")) == 5  # jobs 101-103, 111, 121
