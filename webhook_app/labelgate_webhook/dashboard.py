"""The dashboard: ``GET /`` (every scored source) and ``GET /sources/<source>/<id>`` (one
source's trends, scores, scorecards, alerts, agreement, worst items and stored reports).

Server-rendered Jinja pages with inline SVG charts and local CSS; no script is needed and none
is loaded from elsewhere. What the pages show comes from :mod:`labelgate.reporting.dashboard`;
this module only does HTTP. Read-only, and behind the read token when one is set
(:func:`labelgate_webhook.auth.check_token`, the same check as every read path).
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Flask, current_app, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from labelgate.reporting.dashboard import (
    DigestCache,
    SourceKey,
    filter_items,
    group_heads,
    series,
    source_heads,
    sparkline,
    summarize,
)
from labelgate.reporting.paths import strip_paths
from labelgate.reporting.quality_api import paginate, parse_paging
from labelgate_webhook.auth import check_token

bp = Blueprint(
    "labelgate_dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/dashboard",
)
#: Runs drawn in the trend charts.
HISTORY = 30


def register(app: Flask) -> None:
    """Mount the dashboard on ``app`` (needs ``app.extensions["labelgate_store"]``)."""
    app.extensions["labelgate_digests"] = DigestCache(app.extensions["labelgate_store"])
    app.register_blueprint(bp)


@bp.before_request
def _authenticate() -> BaseResponse | None:
    if request.endpoint == "labelgate_dashboard.static":
        return None  # the stylesheet holds no data (the token form is open too)
    return check_token(page=True)


def _cache() -> DigestCache:
    return current_app.extensions["labelgate_digests"]  # type: ignore[no-any-return]


def _name(text: str) -> str:
    """A target as the page shows it: a file name, unless SHOW_FILE_PATHS is set."""
    if current_app.config.get("SHOW_FILE_PATHS"):
        return text
    return str(strip_paths({"file": text})["file"])


@bp.get("/")
def home() -> str:
    """Every source with its latest scores, gate verdict, alert count and trend."""
    groups = group_heads(current_app.extensions["labelgate_store"].list_heads())
    rows = [summarize(_cache(), key, heads, HISTORY) for key, heads in groups.items()]
    rows.sort(key=lambda s: s.heads[0].created_at, reverse=True)
    return render_template(
        "dashboard/home.html",
        rows=rows,
        name=_name,
        sparkline=sparkline,
    )


@bp.get("/sources/<source>/<path:source_id>")
def source_page(source: str, source_id: str) -> str:
    """One source: trends, requirement/score table, scorecards, alerts, agreement, items."""
    key = SourceKey(source, source_id)
    heads = source_heads(current_app.extensions["labelgate_store"], key)
    summary = summarize(_cache(), key, heads, HISTORY)
    digests = summary.digests
    latest_head = summary.runs[-1]
    page, page_size = parse_paging(request.args)
    flagged = request.args.get("flagged", "").lower() in ("1", "true", "yes", "on")
    annotator = request.args.get("annotator") or None
    reason = request.args.get("reason") or None
    filters = {"flagged": flagged, "annotator": annotator, "reason": reason}
    table = _cache().items(latest_head)
    rows = table.rows
    kept = (
        filter_items(rows, flagged=flagged, annotator=annotator, reason=reason)
        if rows is not None
        else None
    )
    items = paginate(kept, page, page_size)
    base = {k: v for k, v in request.args.items() if k != "page" and v}

    def page_url(number: int | None) -> str | None:
        return None if number is None else "?" + urlencode({**base, "page": number})

    return render_template(
        "dashboard/source.html",
        key=key,
        summary=summary,
        latest=summary.latest,
        label_trends=series(digests, lambda d: {k: v["accuracy"] for k, v in d.per_label.items()}),
        annotator_trends=series(digests, lambda d: d.per_annotator),
        accuracy_trend=summary.trend,
        items=items,
        filters=filters,
        links=table.links,
        reasons=table.reasons,
        annotators=sorted(summary.latest.per_annotator),
        next_url=page_url(items["next_page"]),
        previous_url=page_url(items["previous_page"]),
        heads=heads,
        name=_name,
        sparkline=sparkline,
    )
