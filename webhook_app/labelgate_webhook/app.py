"""Flask application factory for labelgate's HTTP side.

Today it serves stored reports: ``GET /healthz``, ``GET /reports/<id>`` (JSON) and
``GET /reports/<id>.html`` (the same self-contained page ``labelgate report --html`` writes).
Webhook endpoints and the read API are planned (issue 7).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify

from labelgate.errors import LabelgateError, NotFound
from labelgate.store import Store, open_store

DEFAULTS: dict[str, Any] = {"STORE_URL": None, "MAX_CONTENT_LENGTH": 1 << 20}


def load_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Settings from ``LABELGATE_*`` variables (``LABELGATE_STORE_URL`` ...)."""
    env = os.environ if environ is None else environ
    cfg = dict(DEFAULTS)
    for key in cfg:
        if f"LABELGATE_{key}" in env:
            cfg[key] = env[f"LABELGATE_{key}"]
    return cfg


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` overrides the environment (tests pass ``STORE_URL``)."""
    app = Flask("labelgate_webhook")
    app.config.update(load_config())
    app.config.update(dict(config or {}))
    store: Store = open_store(app.config["STORE_URL"])
    app.extensions["labelgate_store"] = store

    @app.errorhandler(LabelgateError)
    def _labelgate_error(exc: LabelgateError) -> tuple[Response, int]:
        return jsonify({"error": str(exc)}), exc.status

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

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

    return app
