"""Conflict viewer: ``GET /reports/<id>/conflicts`` draws a stored report's conflicts on the frame.

- ``GET /reports/<id>/conflicts?type=&annotator=&label=&frame=&i=``: one conflict of the
  filtered list (``i``, from 0) with every filtered conflict of the same frame and annotator,
  GT dashed and DS solid, colour-coded by type (:mod:`labelgate.reporting.shapes`), with
  previous/next links (arrow keys, ``j``/``k``).
- ``GET /reports/<id>/images/<frame>``: the frame's thumbnail through the disk cache
  (:mod:`labelgate_webhook.thumbs`): CVAT reports pull the frame through the SDK
  (``LABELGATE_CVAT_*``, as the worker does), file reports read the images folder
  (``IMAGES_DIR``, by item name), Label Studio reports fetch the task's image (the URL in the
  data field of the control's object tag) from ``LABELGATE_LS_URL`` with
  ``LABELGATE_LS_API_KEY``, only when it is on that server. Without an image the page draws on a blank canvas of the
  frame size. The browser only ever talks to labelgate.

Both need the read token when one is set (:func:`labelgate_webhook.auth.check_token`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, current_app, render_template, request

from labelgate.errors import LabelgateError, NotFound, ValidationError
from labelgate.reporting.shapes import TYPE_COLOURS, render_svg, shapes_of_conflict
from labelgate.store import home
from labelgate_webhook.auth import check_token
from labelgate_webhook.thumbs import LocalImages, ThumbCache

bp = Blueprint(
    "labelgate_viewer",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/viewer",
)
DISPLAY_WIDTH = 960
FILTERS = ("type", "annotator", "label", "frame")


def register(app: Flask) -> None:
    """Mount the viewer; ``IMAGES_DIR`` and ``THUMB_CACHE_BYTES`` come from ``app.config``."""
    folder = app.config.get("IMAGES_DIR")
    app.extensions["labelgate_images"] = LocalImages(folder) if folder else None
    app.extensions["labelgate_thumbs"] = ThumbCache(
        home() / "thumbs", int(app.config.get("THUMB_CACHE_BYTES") or 256 << 20)
    )
    app.register_blueprint(bp)


def conflict_rows(stored: Any) -> list[dict[str, Any]]:
    """The stored report's conflict rows (bundle and Label Studio rows; CVAT-shaped reports
    converted)."""
    if stored.kind == "bundle" or (stored.kind == "ls_project" and "conflicts" in stored.report):
        return list(stored.report.get("conflicts") or [])
    from labelgate.reporting.pipeline import bundle_from_report

    try:
        return list(bundle_from_report(stored.report, annotator=stored.target)["conflicts"])
    except ValidationError:
        raise NotFound(f"report {stored.id} is a {stored.kind} report without conflicts") from None


def _filtered(rows: list[dict[str, Any]], args: Mapping[str, str]) -> list[dict[str, Any]]:
    out = rows
    if args.get("type"):
        out = [r for r in out if r.get("type") == args["type"]]
    if args.get("annotator"):
        out = [r for r in out if r.get("annotator") == args["annotator"]]
    if args.get("label"):
        out = [r for r in out if args["label"] in (r.get("label_names") or [])]
    if args.get("frame"):
        try:
            frame = int(args["frame"])
        except ValueError:
            raise ValidationError(f"frame must be an integer, got {args['frame'][:40]!r}") from None
        out = [r for r in out if r.get("frame") == frame]
    return out


def _frame_size(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """The frame size stored with the conflicts, else the extent of their shapes."""
    w = h = 0
    for r in rows:
        geo = r.get("geometry") or {}
        fw, fh = geo.get("frame_size") or (0, 0)
        if fw and fh:
            return int(fw), int(fh)
        for side in ("ds", "gt"):
            if geo.get(side):
                _, _, x2, y2 = geo[side]["bbox"]
                w, h = max(w, int(x2) + 1), max(h, int(y2) + 1)
    return max(w, 1), max(h, 1)


def _cvat_job(stored: Any, frame: int) -> int:
    """The CVAT job that shows ``frame``: the report's own job, else a conflict's job id."""
    kind, _, value = str(stored.target).partition(":")
    if kind == "job" and value.isdigit():
        return int(value)
    for c in stored.report.get("conflicts") or []:
        if c.get("frame_id") == frame:
            for ref in c.get("annotation_ids") or []:
                if ref.get("job_id") is not None:
                    return int(ref["job_id"])
    raise NotFound(f"report {stored.id} names no CVAT job for frame {frame}")


def _image(stored: Any, rows: list[dict[str, Any]], frame: int) -> bytes:
    """The frame's thumbnail: CVAT frames through the SDK, else the images folder."""
    cache: ThumbCache = current_app.extensions["labelgate_thumbs"]
    # Only frames the report lists: the route is not a general frame proxy.
    row = next((r for r in rows if r.get("frame") == frame), None)
    if row is None:
        raise NotFound(f"report {stored.id} has no conflict on frame {frame}")
    if stored.source == "cvat":
        job = _cvat_job(stored, frame)
        host = os.environ.get("LABELGATE_CVAT_HOST", "")

        def pull() -> bytes:
            from labelgate_cvat.client import connect

            # LABELGATE_CVAT_* as for the worker's re-scores; a page waits for this, so an
            # unreachable CVAT gives up quickly (the frame is then drawn on a blank canvas).
            with connect(retries=1, timeout=10.0) as source:
                return source.frame(job, frame)

        return cache.get(f"cvat:{host}:{job}:{frame}", pull)
    if stored.source == "labelstudio":
        return _ls_image(stored, row, frame)
    local: LocalImages | None = current_app.extensions.get("labelgate_images")
    if local is None:
        raise NotFound("no images configured: start `labelgate serve --images DIR`")
    name = str(row.get("item_name") or frame)
    return cache.get(local.key(name), lambda: local.read(name))


def _ls_image(stored: Any, row: Mapping[str, Any], task: int) -> bytes:
    """A Label Studio task's image, fetched from ``LABELGATE_LS_URL`` with the worker's key."""
    from labelgate_labelstudio.client import base_url

    server = base_url(os.environ.get("LABELGATE_LS_URL", ""))
    reported = str(((stored.report.get("source") or {}).get("meta") or {}).get("url") or "")
    # Task ids mean nothing on another server: never ask the configured one about them.
    if not server or reported.rstrip("/") != server:
        raise NotFound(
            f"report {stored.id} was scored on Label Studio {reported or '(unknown)'}, "
            "not on LABELGATE_LS_URL"
        )
    obj = str(row.get("object") or "")
    cache: ThumbCache = current_app.extensions["labelgate_thumbs"]

    def pull() -> bytes:
        from labelgate_labelstudio.client import connect

        # A page waits for this: an unreachable server gives up quickly (blank canvas).
        with connect(timeout=10.0) as source:
            return source.task_image(task, obj)

    return cache.get(f"labelstudio:{server}:{task}:{obj}", pull)


@bp.get("/reports/<report_id>/images/<int:frame>")
def frame_image(report_id: str, frame: int) -> Any:
    refused = check_token()
    if refused is not None:
        return refused
    store = current_app.extensions["labelgate_store"]
    stored = store.get_report(report_id)
    data = _image(stored, conflict_rows(stored), frame)
    return Response(data, mimetype="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


@bp.get("/reports/<report_id>/conflicts")
def conflicts_page(report_id: str) -> Any:
    refused = check_token(page=True)
    if refused is not None:
        return refused
    store = current_app.extensions["labelgate_store"]
    stored = store.get_report(report_id)
    rows = conflict_rows(stored)
    args = {k: request.args.get(k, "") for k in FILTERS}
    chosen = _filtered(rows, args)
    try:
        i = int(request.args.get("i", "0"))
    except ValueError:
        raise ValidationError("i must be an integer") from None
    if chosen and not 0 <= i < len(chosen):
        raise NotFound(f"conflict {i} out of range: the filtered list has {len(chosen)}")
    kept = {k: v for k, v in args.items() if v}

    def link(j: int) -> str | None:
        if not 0 <= j < len(chosen):
            return None
        return f"/reports/{report_id}/conflicts?" + urlencode({**kept, "i": j})

    svg, current = "", None
    if chosen:
        current = chosen[i]
        same = [
            r
            for r in chosen
            if r.get("frame") == current.get("frame")
            and r.get("annotator") == current.get("annotator")
        ]
        shapes = [s for r in same for s in shapes_of_conflict(r, current=r is current)]
        width, height = _frame_size(same)
        href = None
        try:  # fetched (and cached) now, so a frame without an image gets the blank canvas
            _image(stored, rows, int(current["frame"]))
            href = f"/reports/{report_id}/images/{int(current['frame'])}"
        except LabelgateError:
            href = None
        svg = render_svg(shapes, width, height, DISPLAY_WIDTH, image_href=href)
        same_count = len(same)
    else:
        same_count = 0
    options = {
        "type": sorted({str(r.get("type")) for r in rows}),
        "annotator": sorted({str(r.get("annotator")) for r in rows}),
        "label": sorted({str(x) for r in rows for x in (r.get("label_names") or []) if x}),
    }
    return render_template(
        "viewer.html",
        report=stored,
        rows=rows,
        chosen=chosen,
        i=i,
        current=current,
        svg=svg,
        same_count=same_count,
        previous=link(i - 1),
        next=link(i + 1),
        args=args,
        options=options,
        colours=TYPE_COLOURS,
    )
