"""Read-only quality API: ``GET /api/projects/<source>/<id>/quality/<section>``.

Sections (``overview``, ``agreement``, ``annotators``, ``items``, ``benchmark``, ``alerts``) are
served as JSON from the newest stored quality report of the project; the mapping lives in
:mod:`labelgate.reporting.quality_api`, this module only does HTTP.

Access needs the read token (``LABELGATE_API_TOKEN``), checked by
:func:`labelgate_webhook.auth.check_token` like every other read path. Without a configured
token the API does not exist (404 for every path): reports name annotators and their error
rates, so the API is never open by default.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from labelgate.errors import LabelgateError, ValidationError
from labelgate.reporting.quality_api import (
    build_section,
    latest_report,
    parse_paging,
    pinned_report,
)
from labelgate.store import PUBLIC_ID
from labelgate_webhook.auth import check_token

bp = Blueprint("labelgate_read_api", __name__, url_prefix="/api")


def register(app: Flask) -> None:
    """Mount the API on ``app`` (its token comes from ``app.config["API_TOKEN"]``).

    Args:
        app: the labelgate Flask app; ``app.extensions["labelgate_store"]`` must be set.
    """
    app.config.setdefault("API_TOKEN", None)
    app.register_blueprint(bp)


def _error(status: int, message: str, **headers: str) -> Response:
    res = jsonify({"error": message})
    res.status_code = status
    res.headers.update(headers)
    return res


@bp.before_request
def _authenticate() -> BaseResponse | None:
    """Refuse every request without the configured bearer token (before any lookup, so an
    unauthenticated caller cannot probe which projects exist)."""
    if not current_app.config.get("API_TOKEN"):
        return _error(404, "API disabled: set LABELGATE_API_TOKEN to enable the read API")
    return check_token()


@bp.errorhandler(LabelgateError)
def _labelgate_error(exc: LabelgateError) -> Response:
    return _error(exc.status, str(exc))


@bp.get("/projects/<source>/<project_id>/quality/<section>")
def quality_section(source: str, project_id: str, section: str) -> Response:
    """One section of the project's newest quality report (query: page, page_size, report,
    flagged)."""
    store: Any = current_app.extensions["labelgate_store"]
    page, page_size = parse_paging(request.args)
    pinned = request.args.get("report")
    if pinned:
        if not PUBLIC_ID.fullmatch(pinned):
            raise ValidationError(f"report must be a report id, got {pinned[:40]!r}")
        stored = pinned_report(store, source, project_id, pinned)
    else:
        stored = latest_report(store, source, project_id)
    flagged = request.args.get("flagged", "").lower() in ("1", "true", "yes")
    body = build_section(stored, section, page=page, page_size=page_size, flagged_only=flagged)
    if "results" in body:
        # Links pin the report, so a run stored mid-way does not shift the later pages.
        args = {**request.args.to_dict(), "report": stored.id, "page_size": page_size}
        for key in ("next", "previous"):
            number = body.pop(f"{key}_page")
            body[key] = (
                url_for(
                    ".quality_section",
                    source=source,
                    project_id=project_id,
                    section=section,
                    _external=True,
                    **{**args, "page": number},
                )
                if number is not None
                else None
            )
    return jsonify(body)
