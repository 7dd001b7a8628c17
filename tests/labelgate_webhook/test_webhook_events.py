"""Webhook endpoints: signatures, parsing, loop prevention, coalescing, redelivery, metrics."""

import json

import pytest

from labelgate_webhook import create_app
from labelgate_webhook.signatures import cvat_signature

SECRET = "s3cret"


@pytest.fixture()
def app(tmp_path):
    app = create_app(
        {
            "STORE_URL": f"sqlite:///{tmp_path / 'store.db'}",
            "QUEUE_PATH": str(tmp_path / "q.db"),
            "CVAT_WEBHOOK_SECRET": SECRET,
            "LS_WEBHOOK_SECRET": "ls-secret",
            "DEBOUNCE_SECONDS": 30,
            "MAX_CONTENT_LENGTH": 4096,
            "TESTING": True,
        }
    )
    yield app
    app.extensions["labelgate_store"].close()
    app.extensions["labelgate_queue"].close()


def _job_update(job_id=7, changed=None, updated="2026-11-23T01:00:00Z"):
    return {
        "event": "update:job",
        "webhook_id": 1,
        "job": {"id": job_id, "task_id": 3, "updated_date": updated},
        "before_update": changed if changed is not None else {"updated_date": "x"},
    }


def _post(client, payload, *, sign=True, header=None, raw=None):
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["X-Signature-256"] = header
    elif sign:
        headers["X-Signature-256"] = cvat_signature(body, SECRET)
    return client.post("/webhooks/cvat", data=body, headers=headers)


@pytest.mark.parametrize(
    ("kind", "status"),
    [("valid", 202), ("missing", 401), ("wrong", 401), ("tampered", 401), ("prefix", 401)],
)
def test_cvat_signatures(app, kind, status):
    client = app.test_client()
    body = json.dumps(_job_update()).encode()
    good = cvat_signature(body, SECRET)
    header = {
        "valid": good,
        "missing": None,
        "wrong": cvat_signature(body, "other"),
        "tampered": good,
        "prefix": good.replace("sha256=", "sha1="),
    }[kind]
    raw = body.replace(b'"id": 7', b'"id": 8') if kind == "tampered" else body
    res = (
        _post(client, None, raw=raw, sign=False, header=header)
        if header
        else _post(client, None, raw=raw, sign=False)
    )
    assert res.status_code == status
    assert app.extensions["labelgate_queue"].counts() == ({"pending": 1} if status == 202 else {})


def test_malformed_large_unknown_ping(app):
    client = app.test_client()
    assert _post(client, None, raw=b"{not json").status_code == 400
    assert _post(client, None, raw=b"x" * 5000).status_code == 413
    res = _post(client, {"event": "create:issue"})
    assert res.status_code == 202 and res.get_json()["status"] == "ignored"
    assert _post(client, {"event": "ping"}).get_json() == {"status": "pong"}


def test_loop_prevention_ignores_stage_and_state_changes(app):
    client = app.test_client()
    res = _post(client, _job_update(changed={"stage": "annotation", "state": "new"}))
    assert res.get_json()["status"] == "ignored"
    assert app.extensions["labelgate_queue"].counts() == {}


def test_burst_coalesces_and_redelivery_is_idempotent(app):
    client = app.test_client()
    for i in range(20):
        res = _post(client, _job_update(updated=f"2026-11-23T01:00:{i:02d}Z"))
        assert res.status_code == 202
    again = _post(client, _job_update(updated="2026-11-23T01:00:19Z"))
    assert again.get_json()["status"] == "duplicate"
    touched = _post(
        client,
        {
            "event": "update:task",
            "task": {"id": 3, "updated_date": "t"},
            "before_update": {"updated_date": "s"},
        },
    )
    assert touched.get_json()["reason"] == "covered by update:job"  # the save's task touch
    _post(
        client,
        {
            "event": "update:task",
            "task": {"id": 3, "updated_date": "t"},
            "before_update": {"subset": "train"},
        },
    )
    jobs = app.extensions["labelgate_queue"].jobs()
    assert [(j["target"], j["events"]) for j in jobs] == [("job:7", 20), ("task:3", 1)]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "labelgate_events_received_total 23" in metrics
    assert "labelgate_jobs_coalesced_total 19" in metrics
    assert 'labelgate_queue_jobs{status="pending"} 2' in metrics


def test_labelstudio_shared_secret_and_events(app):
    client = app.test_client()
    payload = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 4},
        "annotation": {"id": 11, "updated_at": "t1"},
    }
    url = "/webhooks/labelstudio"
    assert client.post(url, json=payload).status_code == 401
    assert client.post(url, json=payload, headers={"X-Labelgate-Secret": "nope"}).status_code == 401
    ok = client.post(url, json=payload, headers={"X-Labelgate-Secret": "ls-secret"})
    assert ok.status_code == 202 and ok.get_json()["target"] == "project:4"
    ignored = client.post(
        url,
        json={"action": "WEBHOOK_SENT", "project": {"id": 4}},
        headers={"X-Labelgate-Secret": "ls-secret"},
    )
    assert ignored.get_json()["status"] == "ignored"
