"""App settings (defaults < TOML file < LABELGATE_* env < create_app config), the queue backends
behind the endpoints, and the re-score metrics."""

from __future__ import annotations

import json
import re

import pytest

from labelgate.errors import SettingsError
from labelgate.queue.redis_queue import RedisQueue
from labelgate.queue.retry import RetryPolicy
from labelgate_webhook import create_app
from labelgate_webhook.app import load_config
from labelgate_webhook.signatures import cvat_signature


def _save(job_id: int, n: int) -> bytes:
    return json.dumps(
        {
            "event": "update:job",
            "webhook_id": 1,
            "job": {"id": job_id, "task_id": 1, "updated_date": f"2026-11-30T00:00:{n:02d}Z"},
            "before_update": {"updated_date": "2026-11-29T00:00:00Z"},
        }
    ).encode()


def _post(client, body: bytes, secret: str):
    return client.post(
        "/webhooks/cvat",
        data=body,
        headers={
            "X-Signature-256": cvat_signature(body, secret),
            "Content-Type": "application/json",
        },
    )


def test_toml_file_then_environment(tmp_path):
    cfg = tmp_path / "labelgate.toml"
    cfg.write_text('[labelgate]\ndebounce_seconds = 5\ncvat_webhook_secret = "from-file"\n')
    loaded = load_config({"LABELGATE_CONFIG": str(cfg)})
    assert loaded["DEBOUNCE_SECONDS"] == 5.0 and loaded["CVAT_WEBHOOK_SECRET"] == "from-file"
    env = {"LABELGATE_CONFIG": str(cfg), "LABELGATE_DEBOUNCE_SECONDS": "2.5"}
    assert load_config(env)["DEBOUNCE_SECONDS"] == 2.5  # the environment wins over the file
    assert load_config({}, config_file=str(cfg))["CVAT_WEBHOOK_SECRET"] == "from-file"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("debounce = 3\n", {}, r"labelgate\.toml: debounce: unknown key; known: tables"),
        ("debounce_seconds = [\n", {}, r"labelgate\.toml: cannot read settings: not valid TOML"),
        (
            "",
            {"LABELGATE_DEBOUNCE_SECONDS": "soon"},
            r"environment: LABELGATE_DEBOUNCE_SECONDS: expected a number >= 0",
        ),
        (
            "",
            {"LABELGATE_MAX_CONTENT_LENGTH": "1MB"},
            r"LABELGATE_MAX_CONTENT_LENGTH: expected an integer >= 1, got '1MB'",
        ),
    ],
    ids=["unknown-key", "bad-toml", "bad-number-env", "bad-size-env"],
)
def test_bad_settings_name_the_file_and_field(tmp_path, text, env, message):
    cfg = tmp_path / "labelgate.toml"
    cfg.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_config({"LABELGATE_CONFIG": str(cfg), **env})


def test_missing_config_file(tmp_path):
    with pytest.raises(SettingsError, match=r"nope\.toml: config file not found"):
        load_config({}, config_file=str(tmp_path / "nope.toml"))


@pytest.mark.redis
def test_endpoints_enqueue_into_redis_when_the_queue_url_says_so(tmp_path, redis_db):
    app = create_app(
        {
            "STORE_URL": f"sqlite:///{tmp_path}/s.db",
            "QUEUE_URL": redis_db,
            "CVAT_WEBHOOK_SECRET": "k",
            "DEBOUNCE_SECONDS": 30,
            "WORKER": True,  # ignored for Redis: `labelgate worker` processes run RQ jobs
        }
    )
    queue = app.extensions["labelgate_queue"]
    assert isinstance(queue, RedisQueue) and "labelgate_worker" not in app.extensions
    client = app.test_client()
    statuses = [_post(client, _save(7, i), "k").get_json()["status"] for i in range(20)]
    assert statuses == ["queued"] + ["coalesced"] * 19
    assert _post(client, _save(7, 19), "k").get_json()["status"] == "duplicate"
    assert [(j["target"], j["events"]) for j in queue.jobs()] == [("job:7", 20)]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'labelgate_queue_jobs{status="pending"} 1' in metrics
    app.extensions["labelgate_store"].close()


def test_metrics_count_rescores_and_their_durations(tmp_path):
    app = create_app(
        {
            "STORE_URL": f"sqlite:///{tmp_path}/s.db",
            "QUEUE_PATH": str(tmp_path / "q.db"),
            "CVAT_WEBHOOK_SECRET": "k",
            "DEBOUNCE_SECONDS": 0,
        }
    )
    client = app.test_client()
    for job in (1, 2):
        assert _post(client, _save(job, 0), "k").status_code == 202
    queue = app.extensions["labelgate_queue"]

    def fail(job):
        raise RuntimeError("CVAT down")

    queue.run_once({"cvat.rescore": lambda job: None})
    queue.policy = RetryPolicy(max_attempts=1)  # was `max_attempts = 1` before issue 18
    queue.run_once({"cvat.rescore": fail})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'labelgate_rescores_total{outcome="done"} 1' in text
    assert 'labelgate_rescores_total{outcome="failed"} 1' in text
    assert "labelgate_rescore_duration_seconds_count 2" in text
    assert 'labelgate_queue_jobs{status="dead"} 1' in text
    assert 'labelgate_queue_jobs{status="done"} 1' in text
    assert "labelgate_webhook_request_duration_seconds_count 2" in text
    acked = float(re.search(r"webhook_request_duration_seconds_sum (\S+)", text).group(1))
    assert 0 < acked < 5
    app.extensions["labelgate_store"].close()


def test_every_setting_and_metric_is_documented():
    from pathlib import Path

    from labelgate_webhook.app import DEFAULTS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    missing = [key for key in DEFAULTS if f"`{key}`" not in doc]
    assert missing == []
    for metric in ("labelgate_rescores_total", "labelgate_rescore_duration_seconds_sum"):
        assert metric in doc


def test_healthz_is_503_when_the_queue_is_down(tmp_path):
    from services_plugin import free_port

    app = create_app(
        {
            "STORE_URL": f"sqlite:///{tmp_path}/s.db",
            "QUEUE_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        }
    )
    res = app.test_client().get("/healthz")
    body = res.get_json()
    assert res.status_code == 503 and body["status"] == "unavailable"
    assert body["store"] == "ok" and "ConnectionError" in body["queue"]
    app.extensions["labelgate_queue"].close()
    app.extensions["labelgate_store"].close()
