"""Read-only quality API: ``GET /api/projects/<source>/<id>/quality/<section>``.

Sections (``overview``, ``agreement``, ``annotators``, ``items``, ``benchmark``, ``alerts``) are
served as JSON from the newest stored quality report of the project; the mapping lives in
:mod:`labelgate.reporting.quality_api`, this module only does HTTP.

Access needs ``Authorization: Bearer <API_TOKEN>`` (``LABELGATE_API_TOKEN``), compared in
constant time. Without a configured token the API does not exist (404 for every path): reports
name annotators and their error rates, so the API is never open by default.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request, url_for

from labelgate.errors import LabelgateError, ValidationError
from labelgate.reporting.quality_api import (
    build_section,
    latest_report,
    parse_paging,
    pinned_report,
)

bp = Blueprint("labelgate_read_api", __name__, url_prefix="/api")
#: ``WWW-Authenticate`` challenge of a 401 (RFC 6750).
REALM = 'Bearer realm="labelgate"'


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
def _authenticate() -> Response | None:
    """Refuse every request without the configured bearer token (before any lookup, so an
    unauthenticated caller cannot probe which projects exist)."""
    token = current_app.config.get("API_TOKEN")
    if not token:
        return _error(404, "API disabled: set LABELGATE_API_TOKEN to enable the read API")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return _error(401, "missing bearer token", **{"WWW-Authenticate": REALM})
    # Bytes, so a non-ASCII header is a wrong token rather than a TypeError.
    if not hmac.compare_digest(given.strip().encode(), str(token).encode()):
        return _error(
            401, "invalid bearer token", **{"WWW-Authenticate": f'{REALM}, error="invalid_token"'}
        )
    return None


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
        if not pinned.isdigit():
            raise ValidationError(f"report must be a report id, got {pinned!r}")
        stored = pinned_report(store, source, project_id, int(pinned))
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
