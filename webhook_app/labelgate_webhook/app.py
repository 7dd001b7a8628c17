"""Flask application factory for labelgate's HTTP side.

- ``GET /healthz``; ``GET /reports/<id>`` (JSON) and ``GET /reports/<id>.html`` (the page
  ``labelgate report --html`` writes); ``GET /metrics`` (Prometheus text).
- ``POST /webhooks/cvat`` and ``POST /webhooks/labelstudio``: verify, parse and enqueue a
  re-score in the durable queue (coalesced per target with a debounce; redeliveries are
  idempotent). The handler does nothing else, so it answers in milliseconds.

Loop prevention: CVAT reports an annotation save as ``update:job`` whose ``before_update`` holds
only ``updated_date``; stage/state/assignee changes (which labelgate's own push-back makes) are
acknowledged and ignored. Label Studio sends no event for predictions, views or task meta,
which is all labelgate writes there.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify, request

from labelgate.errors import FormatError, LabelgateError, NotFound, SignatureError
from labelgate.queue import open_queue
from labelgate.queue.durable import DurableQueue
from labelgate.store import Store, home, open_store
from labelgate_webhook.signatures import verify_cvat, verify_labelstudio

DEFAULTS: dict[str, Any] = {
    "STORE_URL": None,
    "MAX_CONTENT_LENGTH": 1 << 20,
    "QUEUE_URL": None,  # redis://… (RQ workers) or a durable queue file; default under HOME
    "QUEUE_PATH": None,  # older name for a durable queue file
    "QUEUE_LEASE": 300.0,  # seconds before a dead worker's job is handed out again
    "DEBOUNCE_SECONDS": 30.0,
    "CVAT_WEBHOOK_SECRET": None,
    "LS_WEBHOOK_SECRET": None,
    "LS_SECRET_HEADER": "X-Labelgate-Secret",
    "WORKER": False,
    "WORKER_POLL": 0.5,
    "API_TOKEN": None,  # bearer token of the read API (/api); unset = API off
}
CVAT_EVENTS = {"update:job", "update:task", "create:job", "delete:job"}
LS_EVENTS = {
    "ANNOTATION_CREATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
    "TASKS_CREATED",
    "TASKS_DELETED",
    "PROJECT_UPDATED",
}


def _read_toml(path: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise FormatError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"{path}: not valid TOML: {exc}") from None
    table = data.get("labelgate", data)
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = str(key).upper()
        if name not in DEFAULTS:
            raise FormatError(
                f"{path}: unknown setting {key!r}; expected one of "
                + ", ".join(sorted(k.lower() for k in DEFAULTS))
            )
        out[name] = value
    return out


def load_config(
    environ: Mapping[str, str] | None = None, config_file: str | None = None
) -> dict[str, Any]:
    """Settings: defaults < TOML file < ``LABELGATE_*`` variables (``LABELGATE_STORE_URL`` ...).

    Args:
        environ: the environment to read (default ``os.environ``).
        config_file: a TOML file of settings (keys as in DEFAULTS, any case, optionally under a
            ``[labelgate]`` table); default ``LABELGATE_CONFIG``.

    Raises:
        FormatError: the file is missing, not TOML, has an unknown key, or a number is not one.
    """
    env = os.environ if environ is None else environ
    cfg = dict(DEFAULTS)
    path = config_file or env.get("LABELGATE_CONFIG")
    if path:
        cfg.update(_read_toml(path))
    for key in DEFAULTS:
        if f"LABELGATE_{key}" in env:
            cfg[key] = env[f"LABELGATE_{key}"]
    return _coerce(cfg)


def _coerce(cfg: dict[str, Any]) -> dict[str, Any]:
    for key, kind in (
        ("MAX_CONTENT_LENGTH", int),
        ("DEBOUNCE_SECONDS", float),
        ("QUEUE_LEASE", float),
        ("WORKER_POLL", float),
    ):
        try:
            cfg[key] = kind(cfg[key])
        except (TypeError, ValueError):
            raise FormatError(
                f"setting {key} (LABELGATE_{key}): expected a number, got {cfg[key]!r}"
            ) from None
    return cfg


def queue_location(cfg: Mapping[str, Any]) -> str:
    """The configured queue: QUEUE_URL, else QUEUE_PATH, else ``queue.db`` in LABELGATE_HOME."""
    return str(cfg.get("QUEUE_URL") or cfg.get("QUEUE_PATH") or home() / "queue.db")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` overrides the environment (tests pass ``STORE_URL``)."""
    app = Flask("labelgate_webhook")
    overrides = dict(config or {})
    app.config.update(load_config(config_file=overrides.get("CONFIG_FILE")))
    app.config.update(overrides)
    _coerce(app.config)  # type: ignore[arg-type]
    store: Store = open_store(app.config["STORE_URL"])
    app.extensions["labelgate_store"] = store
    location = queue_location(app.config)
    queue = open_queue(location, lease=app.config["QUEUE_LEASE"])
    app.extensions["labelgate_queue"] = queue
    metrics: Counter[str] = Counter()
    timings: Counter[str] = Counter()
    app.extensions["labelgate_metrics"] = metrics
    if str(app.config["WORKER"]).lower() in ("1", "true", "yes") and isinstance(
        queue, DurableQueue
    ):
        # Redis queues are worked by `labelgate worker` processes; the embedded thread serves
        # the durable default (its connection is per thread, so it can share the instance).
        from labelgate_webhook.jobs import handlers
        from labelgate_webhook.worker import start_in_process

        app.extensions["labelgate_worker"] = start_in_process(
            queue, handlers(store), float(app.config["WORKER_POLL"])
        )

    @app.before_request
    def _start_timer() -> None:
        request.environ["labelgate.t0"] = time.perf_counter()

    @app.after_request
    def _stop_timer(response: Response) -> Response:
        if request.path.startswith("/webhooks/"):
            timings["count"] += 1
            timings["seconds"] += time.perf_counter() - request.environ["labelgate.t0"]
        return response

    def _json_body() -> dict[str, Any]:
        try:
            data = json.loads(request.get_data(cache=True) or b"")
        except (json.JSONDecodeError, UnicodeDecodeError):
            metrics["events_rejected"] += 1
            raise FormatError("the body is not valid JSON") from None
        if not isinstance(data, dict):
            metrics["events_rejected"] += 1
            raise FormatError("the body must be a JSON object")
        return data

    def _enqueue(system: str, target: str, payload: dict[str, Any], delivery: str | None):
        job_id, outcome = queue.enqueue(
            f"{system}.rescore",
            system,
            target,
            payload,
            debounce=float(app.config["DEBOUNCE_SECONDS"]),
            delivery=delivery,
        )
        metrics[f"jobs_{outcome}"] += 1
        return jsonify({"status": outcome, "job": job_id, "target": target}), 202

    @app.errorhandler(413)
    def _too_large(_: Any) -> tuple[Response, int]:
        metrics["events_rejected"] += 1
        return jsonify({"error": "request body over the configured limit"}), 413

    @app.post("/webhooks/cvat")
    def cvat_webhook() -> Any:
        metrics["events_received"] += 1
        try:
            verify_cvat(
                request.get_data(cache=True),
                request.headers.get("X-Signature-256"),
                app.config["CVAT_WEBHOOK_SECRET"],
            )
        except SignatureError:
            metrics["events_rejected"] += 1
            raise
        data = _json_body()
        event = str(data.get("event", ""))
        if event == "ping":
            return jsonify({"status": "pong"}), 200
        if event not in CVAT_EVENTS:
            metrics["events_ignored"] += 1
            return jsonify({"status": "ignored", "event": event}), 202
        if event == "update:job":
            changed = set((data.get("before_update") or {}).keys())
            if changed - {"updated_date"}:
                # A stage/state/assignee change (labelgate's own push-back included).
                metrics["events_ignored"] += 1
                return jsonify({"status": "ignored", "reason": "not an annotation save"}), 202
        if event == "update:task" and set(data.get("before_update") or {}) <= {"updated_date"}:
            # An annotation save touches the task too; its update:job already re-scores.
            metrics["events_ignored"] += 1
            return jsonify({"status": "ignored", "reason": "covered by update:job"}), 202
        job = data.get("job") or {}
        task = data.get("task") or {}
        if event == "update:job":
            target = f"job:{job.get('id')}"
        else:  # task changes and job creation/deletion re-score the whole task
            target = f"task:{task.get('id') or job.get('task_id')}"
        if target.endswith(":None"):
            metrics["events_rejected"] += 1
            raise FormatError(f"{event} payload has no job/task id")
        delivery = request.headers.get("X-Delivery-Id") or (
            f"{data.get('webhook_id')}:{event}:{target}:{job.get('updated_date') or task.get('updated_date')}"
        )
        return _enqueue("cvat", target, {"event": event}, delivery)

    @app.post("/webhooks/labelstudio")
    def labelstudio_webhook() -> Any:
        metrics["events_received"] += 1
        header = app.config["LS_SECRET_HEADER"]
        try:
            verify_labelstudio(
                request.get_data(cache=True),
                request.headers.get(header),
                header,
                app.config["LS_WEBHOOK_SECRET"],
                store.engine,
            )
        except SignatureError as exc:
            metrics["events_rejected"] += 1
            app.logger.warning("rejected delivery: %s", exc)  # names the project, never a secret
            raise
        data = _json_body()
        action = str(data.get("action", ""))
        if action not in LS_EVENTS:
            metrics["events_ignored"] += 1
            return jsonify({"status": "ignored", "action": action}), 202
        project = (data.get("project") or {}).get("id")
        if project is None:
            metrics["events_rejected"] += 1
            raise FormatError(f"{action} payload has no project id")
        ann = data.get("annotation") or {}
        delivery = f"ls:{action}:{ann.get('id')}:{ann.get('updated_at')}" if ann else None
        return _enqueue("labelstudio", f"project:{project}", {"action": action}, delivery)

    @app.get("/metrics")
    def prometheus() -> Response:
        counts = queue.counts()
        lines = []
        for name in (
            "events_received",
            "events_rejected",
            "events_ignored",
            "jobs_queued",
            "jobs_coalesced",
            "jobs_duplicate",
        ):
            lines += [
                f"# TYPE labelgate_{name}_total counter",
                f"labelgate_{name}_total {metrics[name]}",
            ]
        lines.append("# TYPE labelgate_queue_jobs gauge")
        for status in ("pending", "running", "done", "failed"):
            lines.append(f'labelgate_queue_jobs{{status="{status}"}} {counts.get(status, 0)}')
        stats = queue.stats()
        lines.append("# TYPE labelgate_rescores_total counter")
        for outcome in ("done", "failed"):
            lines.append(
                f'labelgate_rescores_total{{outcome="{outcome}"}} {int(stats.get(outcome, 0))}'
            )
        lines += [
            "# TYPE labelgate_rescore_duration_seconds summary",
            f"labelgate_rescore_duration_seconds_sum {stats.get('done_seconds', 0.0) + stats.get('failed_seconds', 0.0):.6f}",
            f"labelgate_rescore_duration_seconds_count {int(stats.get('done', 0) + stats.get('failed', 0))}",
            "# TYPE labelgate_webhook_request_duration_seconds summary",
            f"labelgate_webhook_request_duration_seconds_sum {timings['seconds']:.6f}",
            f"labelgate_webhook_request_duration_seconds_count {int(timings['count'])}",
        ]
        return Response("\n".join(lines) + "\n", mimetype="text/plain")

    @app.errorhandler(LabelgateError)
    def _labelgate_error(exc: LabelgateError) -> tuple[Response, int]:
        return jsonify({"error": str(exc)}), exc.status

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        # A load balancer should stop sending webhooks here when events could not be queued.
        checks: dict[str, str] = {}
        for part, probe in (("store", store.ping), ("queue", queue.counts)):
            try:
                probe()
                checks[part] = "ok"
            except Exception as exc:
                checks[part] = f"{type(exc).__name__}: {exc}"[:300]
        ok = all(v == "ok" for v in checks.values())
        return jsonify({"status": "ok" if ok else "unavailable", **checks}), 200 if ok else 503

    @app.get("/reports/<int:report_id>")
    def report_json(report_id: int) -> Response:
        r = store.get_report(report_id)
        return jsonify(
            {
                "id": r.id,
                "kind": r.kind,
                "source": r.source,
                "target": r.target,
                "project": r.project,
                "created_at": r.created_at.isoformat(),
                "report": r.report,
                "settings": r.settings,
            }
        )

    @app.get("/reports/<int:report_id>.html")
    def report_html(report_id: int) -> Response:
        from labelgate.reporting.html import render_html

        r = store.get_report(report_id)
        if r.kind != "bundle":
            raise NotFound(
                f"report {report_id} is a {r.kind} report; pages exist for bundles "
                "written by `labelgate report`"
            )
        return Response(render_html(r.report), mimetype="text/html")

    from labelgate_webhook.read_api import register as register_read_api

    register_read_api(app)
    return app
