"""Flask application factory for labelgate's HTTP side.

- ``GET /healthz``: 200 when the store and the queue take a write, else 503 naming the part.
- ``GET /reports/<id>`` (JSON) and ``GET /reports/<id>.html`` (the page ``labelgate report
  --html`` writes), ``GET /metrics`` (Prometheus text) and the quality API under ``/api``: with
  ``API_TOKEN`` set, each needs it (:mod:`labelgate_webhook.auth`).
- ``POST /webhooks/cvat`` and ``POST /webhooks/labelstudio``: verify, parse (each adapter's
  ``parse_event``: :mod:`labelgate_cvat.events`, :mod:`labelgate_labelstudio.webhooks`) and
  enqueue a re-score (coalesced per target with a
  debounce; redeliveries are idempotent). The handler does nothing else, so it answers in
  milliseconds; an event the queue cannot persist is answered 503 so the sender retries.

Every answer is JSON (the pages and the token form aside), errors included: no HTML 500.
"""

from __future__ import annotations

import json
import time
import traceback
from collections import Counter
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from labelgate.config import load as load_configuration
from labelgate.config_fields import field_names
from labelgate.config_server import ServerSettings
from labelgate.errors import FormatError, LabelgateError, NotFound, SignatureError
from labelgate.queue import Queue, open_queue
from labelgate.queue.durable import DurableQueue
from labelgate.queue.retry import RetryPolicy
from labelgate.reporting.paths import strip_paths
from labelgate.security import redact
from labelgate.store import Store, home, open_store
from labelgate.webhook_events import Event
from labelgate_cvat.events import parse_event as parse_cvat
from labelgate_labelstudio.webhooks import parse_event as parse_labelstudio
from labelgate_webhook import auth, viewer
from labelgate_webhook.health import health
from labelgate_webhook.signatures import verify_cvat, verify_labelstudio

SERVER_FIELDS = frozenset(field_names(ServerSettings))

#: Every server setting under its Flask name, with its default (labelgate.config_server).
DEFAULTS: dict[str, Any] = ServerSettings().to_flask()


def load_config(
    environ: Mapping[str, str] | None = None, config_file: str | None = None
) -> dict[str, Any]:
    """Server settings under Flask's names: defaults < file < ``LABELGATE_*`` variables.

    Args:
        environ: the environment to read (default ``os.environ``).
        config_file: the configuration file (its ``[server]`` table, alias ``[labelgate]``, or
            server keys at the top); default ``LABELGATE_CONFIG``.

    Raises:
        SettingsError: the file is missing or not TOML, or a key is unknown or a value bad.
    """
    return load_configuration(config_file, environ=environ).server.to_flask()


def queue_location(cfg: Mapping[str, Any]) -> str:
    """The configured queue: QUEUE_URL, else QUEUE_PATH, else ``queue.db`` in LABELGATE_HOME."""
    return str(cfg.get("QUEUE_URL") or cfg.get("QUEUE_PATH") or home() / "queue.db")


def configured_queue(cfg: Mapping[str, Any], url: str | None = None) -> Queue:
    """The queue at ``url`` (default :func:`queue_location`) with the configured lease, retry
    policy and retention."""
    policy = RetryPolicy(
        backoff=cfg["RETRY_BACKOFF"],
        backoff_max=cfg["RETRY_BACKOFF_MAX"],
        window=cfg["RETRY_WINDOW"],
        max_attempts=cfg["RETRY_ATTEMPTS"],
    )
    return open_queue(
        url or queue_location(cfg),
        lease=cfg["QUEUE_LEASE"],
        policy=policy,
        retention=cfg["QUEUE_RETENTION"],
    )


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` overrides the environment (tests pass ``STORE_URL``);
    ``CONFIG_FILE`` names the configuration file (default ``LABELGATE_CONFIG``).

    Raises:
        SettingsError: the file or a setting is bad.
    """
    app = Flask("labelgate_webhook")
    overrides = dict(config or {})
    path = overrides.pop("CONFIG_FILE", None)
    # Server settings among the overrides take the same coercion as the file's; any other
    # key (Flask's own, TESTING ...) goes to Flask as given.
    ours = {k: overrides.pop(k) for k in list(overrides) if k.lower() in SERVER_FIELDS}
    cfg = load_configuration(
        path,
        flags={k.lower(): v for k, v in ours.items()},
        flags_source="create_app config",
        flags_text=True,
    )
    app.config.update(cfg.server.to_flask())
    app.config.update(overrides)
    app.extensions["labelgate_config"] = cfg
    store: Store = open_store(app.config["STORE_URL"])
    app.extensions["labelgate_store"] = store
    queue = configured_queue(app.config)
    app.extensions["labelgate_queue"] = queue
    metrics: Counter[str] = Counter()
    timings: Counter[str] = Counter()
    app.extensions["labelgate_metrics"] = metrics
    if app.config["WORKER"] and isinstance(queue, DurableQueue):
        # Redis queues are worked by `labelgate worker` processes; the embedded thread serves
        # the durable default (its connection is per thread, so it can share the instance).
        from labelgate_webhook.jobs import handlers
        from labelgate_webhook.worker import start_in_process

        app.extensions["labelgate_worker"] = start_in_process(
            queue, handlers(store, cfg), float(app.config["WORKER_POLL"])
        )

    def _secrets() -> list[str]:
        keys = ("API_TOKEN", "CVAT_WEBHOOK_SECRET", "LS_WEBHOOK_SECRET")
        return [str(app.config[k]) for k in keys if app.config.get(k)]

    def _error(status: int, message: str) -> tuple[Response, int]:
        return jsonify({"error": redact(message, _secrets())}), status

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
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise FormatError("the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise FormatError("the body must be a JSON object")
        return data

    def _answer(system: str, parse: Any) -> Any:
        try:
            event: Event = parse(_json_body())
        except FormatError:
            metrics["events_rejected"] += 1
            raise
        if event.status == "pong":
            return jsonify({"status": "pong"}), 200
        key = "event" if system == "cvat" else "action"
        if event.status == "ignored":
            metrics["events_ignored"] += 1
            return jsonify({"status": "ignored", key: event.name, "reason": event.reason}), 202
        delivery = request.headers.get("X-Delivery-Id") or event.delivery
        try:
            job_id, outcome = queue.enqueue(
                f"{system}.rescore",
                system,
                str(event.key),
                {key: event.name},
                debounce=float(app.config["DEBOUNCE_SECONDS"]),
                max_wait=float(app.config["DEBOUNCE_MAX_WAIT"]),
                delivery=delivery,
            )
        except Exception as exc:  # not persisted: the sender must retry, so say 503
            metrics["events_failed"] += 1
            app.logger.error(redact(f"cannot queue {event.key}: {exc}", _secrets()))
            return _error(503, f"the queue cannot take the event: {type(exc).__name__}: {exc}")
        metrics[f"jobs_{outcome}"] += 1
        return jsonify({"status": outcome, "job": job_id, "target": event.key}), 202

    @app.errorhandler(LabelgateError)
    def _labelgate_error(exc: LabelgateError) -> tuple[Response, int]:
        return _error(exc.status, str(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        if exc.code == 413:
            if request.path.startswith("/webhooks/"):
                metrics["events_rejected"] += 1
            return _error(413, "request body over the configured limit")
        return _error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        # A bug, not the caller's fault: log it (redacted) and answer JSON, never a page.
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        app.logger.error(redact(f"{request.method} {request.path}: {trace}", _secrets()))
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")

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
        return _answer("cvat", parse_cvat)

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
        return _answer("labelstudio", parse_labelstudio)

    @app.get("/metrics")
    def prometheus() -> Any:
        refused = auth.check_token()
        if refused is not None:
            return refused
        counts = queue.counts()
        lines = []
        for name in (
            "events_received",
            "events_rejected",
            "events_ignored",
            "events_failed",
            "jobs_queued",
            "jobs_coalesced",
            "jobs_duplicate",
        ):
            lines += [
                f"# TYPE labelgate_{name}_total counter",
                f"labelgate_{name}_total {metrics[name]}",
            ]
        lines.append("# TYPE labelgate_queue_jobs gauge")
        for status in ("pending", "failed", "running", "dead", "done"):
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

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        # A load balancer should stop sending webhooks here when events could not be queued.
        checks = health(store, queue)
        ok = all(v == "ok" for v in checks.values())
        return jsonify({"status": "ok" if ok else "unavailable", **checks}), 200 if ok else 503

    def _served(report: Any) -> Any:
        return report if app.config["SHOW_FILE_PATHS"] else strip_paths(report)

    @app.get("/reports/<report_id>")
    def report_json(report_id: str) -> Any:
        refused = auth.check_token()
        if refused is not None:
            return refused
        r = store.get_report(report_id)
        # One pass over the whole answer: a path recorded in the report is also cut where the
        # target or the project key (``file:<path>`` for file runs) repeats it.
        return jsonify(
            _served(
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
        )

    @app.get("/reports/<report_id>.html")
    def report_html(report_id: str) -> Any:
        from labelgate.reporting.html import render_html
        from labelgate.reporting.quality_api import page_bundle

        refused = auth.check_token(page=True)
        if refused is not None:
            return refused
        r = store.get_report(report_id)
        bundle = page_bundle(r)
        if bundle is None:
            raise NotFound(
                f"report {report_id} is a {r.kind} report; pages exist for bundles "
                "(every quality run is stored as one)"
            )
        return Response(render_html(_served(bundle)), mimetype="text/html")

    from labelgate_webhook.dashboard import register as register_dashboard
    from labelgate_webhook.read_api import register as register_read_api

    auth.register(app)
    register_read_api(app)
    viewer.register(app)
    register_dashboard(app)
    return app
