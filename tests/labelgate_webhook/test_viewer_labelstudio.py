"""Issue #20, Label Studio in the conflict viewer, against the real Label Studio server.

Images are uploaded to Label Studio (the project import endpoint with a multipart file creates a
task whose image is ``/data/upload/...``); two annotators and a ground truth draw known boxes.
Expected shape positions are hand-computed: the box in pixels times the display scale
960 / image width. A third task points at an image on another server (a counting HTTP server on
127.0.0.1), which labelgate must refuse to fetch.
"""

from __future__ import annotations

import http.server
import io
import re
import shutil
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from werkzeug.serving import make_server

from labelgate.store import open_store
from labelgate_labelstudio.client import LabelStudioSource, connect, server_path
from labelgate_labelstudio.pipeline import score_project
from labelgate_webhook import create_app

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CONFIG = """<View>
  <Image name="img" value="$image"/>
  <RectangleLabels name="box" toName="img"><Label value="cat"/><Label value="dog"/></RectangleLabels>
</View>"""
# Two uploaded images: (file name, size, colour).
IMAGES = {"a": ((400, 200), (200, 30, 40)), "b": ((300, 300), (30, 60, 200))}
# Boxes in pixels (x1, y1, x2, y2) per image and author.
CAT_A, DOG_A = (40, 20, 120, 100), (200, 100, 300, 180)
CAT_B, CAT_B_WRONG = (30, 30, 150, 150), (210, 210, 270, 270)
BOXES = {
    "a": {
        "gt": [("cat", CAT_A), ("dog", DOG_A)],
        "a1": [("cat", CAT_A)],  # the dog is missing
        "a2": [("dog", CAT_A), ("dog", DOG_A)],  # the cat is called a dog
    },
    "b": {
        "gt": [("cat", CAT_B)],
        "a1": [("cat", CAT_B_WRONG)],  # elsewhere: one extra, one missing
        "a2": [("cat", CAT_B)],
    },
}


def _region(label: str, box: tuple[int, ...], size: tuple[int, int]) -> dict[str, Any]:
    (x1, y1, x2, y2), (w, h) = box, size
    return {
        "from_name": "box",
        "to_name": "img",
        "type": "rectanglelabels",
        "original_width": w,
        "original_height": h,
        "value": {
            "x": x1 / w * 100,
            "y": y1 / h * 100,
            "width": (x2 - x1) / w * 100,
            "height": (y2 - y1) / h * 100,
            "rotation": 0,
            "rectanglelabels": [label],
        },
    }


def _png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


@contextmanager
def _counting_server() -> Iterator[tuple[str, list[str]]]:
    """An image server that is not Label Studio: records every request it gets."""
    hits: list[str] = []
    body = _png((300, 300), (0, 255, 0))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def ls_run(ls_server, tmp_path_factory):
    """The project seeded, scored into a store; yields (store url, result, task ids, hits)."""
    from label_studio_sdk import LabelStudio

    out = tmp_path_factory.mktemp("lsviewer")
    client = LabelStudio(base_url=ls_server.url, api_key=ls_server.api_key)
    existing = {u.email: u.id for u in client.users.list()}
    users = {}
    for who in ("a1", "a2", "gt"):
        email = f"{who}.viewer@example.com"
        users[who] = existing.get(email) or client.users.create(email=email, username=who).id
    proj = client.projects.create(title="labelgate viewer test", label_config=CONFIG)
    headers = {"Authorization": f"Token {ls_server.api_key}"}
    tasks: dict[str, int] = {}
    urls: dict[str, str] = {}
    for name, (size, colour) in IMAGES.items():
        r = httpx.post(
            f"{ls_server.url}/api/projects/{proj.id}/import",
            headers=headers,
            files={"file": (f"{name}.png", _png(size, colour), "image/png")},
            timeout=60,
        )
        assert r.status_code == 201, r.text
        new = [t for t in client.tasks.list(project=proj.id) if t.id not in tasks.values()]
        assert len(new) == 1
        tasks[name], urls[name] = int(new[0].id), new[0].data["image"]
        assert urls[name].startswith("/data/upload/") and urls[name].endswith(f"{name}.png")
    with _counting_server() as (other, hits):
        try:
            # Task c: an image elsewhere (imported as JSON; the size comes from the regions).
            client.projects.import_tasks(id=proj.id, request=[{"image": f"{other}/c.png"}])
            tasks["c"] = max(int(t.id) for t in client.tasks.list(project=proj.id))
            for name, by_author in BOXES.items():
                size = IMAGES[name][0]
                for who, boxes in by_author.items():
                    client.annotations.create(
                        id=tasks[name],
                        result=[_region(label, box, size) for label, box in boxes],
                        completed_by=users[who],
                        ground_truth=who == "gt",
                    )
            for who, label in (("gt", "cat"), ("a1", "dog")):  # c: the cat called a dog
                client.annotations.create(
                    id=tasks["c"],
                    result=[_region(label, CAT_B, (300, 300))],
                    completed_by=users[who],
                    ground_truth=who == "gt",
                )
            url = f"sqlite:///{out / 'store.db'}"
            with open_store(url) as store, connect(ls_server.url, ls_server.api_key) as src:
                result = score_project(src, int(proj.id), store=store)
        finally:
            client._client_wrapper.httpx_client.httpx_client.close()
        yield url, result, tasks, hits


def _app(ls_run, ls_server, tmp_path, monkeypatch, **config):
    monkeypatch.setenv("LABELGATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LABELGATE_LS_URL", ls_server.url)
    monkeypatch.setenv("LABELGATE_LS_API_KEY", ls_server.api_key)
    return create_app(
        {"STORE_URL": ls_run[0], "QUEUE_PATH": str(tmp_path / "q.db"), "TESTING": True, **config}
    )


def _svg(html: str) -> ET.Element:
    return ET.fromstring(re.search(r"<svg.*?</svg>", html, re.S).group(0))


def _rects(svg: ET.Element, side: str) -> list[tuple[float, ...]]:
    return sorted(
        tuple(round(float(r.get(k)), 2) for k in ("x", "y", "width", "height"))
        for r in svg.findall(f"{SVG}rect[@data-side='{side}']")
    )


def _scaled(box: tuple[int, ...], width: int) -> tuple[float, ...]:
    s = 960 / width
    x1, y1, x2, y2 = box
    return (round(x1 * s, 2), round(y1 * s, 2), round((x2 - x1) * s, 2), round((y2 - y1) * s, 2))


def _close(got: list[tuple[float, ...]], want: list[tuple[float, ...]]) -> bool:
    return len(got) == len(want) and all(
        all(abs(g - w) < 0.05 for g, w in zip(a, b, strict=True))
        for a, b in zip(got, sorted(want), strict=True)
    )


def test_stored_report_lists_the_region_conflicts(ls_run):
    _, result, tasks, _ = ls_run
    got = sorted(
        (c["task_id"], c["annotator"], c["type"], c["control"], c["object"])
        for c in result["conflicts"]
    )
    a1, a2 = "a1.viewer@example.com", "a2.viewer@example.com"
    assert got == sorted(
        [
            (tasks["a"], a1, "missing_annotation", "box", "img"),
            (tasks["a"], a2, "mismatching_label", "box", "img"),
            (tasks["b"], a1, "extra_annotation", "box", "img"),
            (tasks["b"], a1, "missing_annotation", "box", "img"),
            (tasks["c"], a1, "mismatching_label", "box", "img"),
        ]
    )
    assert result["conflicts_truncated"] == 0
    sizes = {c["frame"]: c["geometry"]["frame_size"] for c in result["conflicts"]}
    assert sizes == {tasks["a"]: [400, 200], tasks["b"]: [300, 300], tasks["c"]: [300, 300]}


def test_page_draws_the_boxes_where_they_were_drawn(ls_run, ls_server, tmp_path, monkeypatch):
    _, result, tasks, _ = ls_run
    app = _app(ls_run, ls_server, tmp_path, monkeypatch)
    c = app.test_client()
    rid = result["report_id"]
    cases = [
        # (task, annotator, GT rects, DS rects, image width)
        ("a", "a1", [DOG_A], [], 400),
        ("a", "a2", [CAT_A], [CAT_A], 400),
        ("b", "a1", [CAT_B], [CAT_B_WRONG], 300),
    ]
    for name, who, gt, ds, width in cases:
        res = c.get(
            f"/reports/{rid}/conflicts?annotator={who}.viewer@example.com&frame={tasks[name]}"
        )
        assert res.status_code == 200, res.get_data(as_text=True)
        assert f"· task {tasks[name]} " in res.get_data(as_text=True)  # a task, not a frame
        svg = _svg(res.get_data(as_text=True))
        height = IMAGES[name][0][1] * 960 // width
        assert (svg.get("width"), svg.get("height")) == ("960", str(height))
        assert _close(_rects(svg, "gt"), [_scaled(b, width) for b in gt]), _rects(svg, "gt")
        assert _close(_rects(svg, "ds"), [_scaled(b, width) for b in ds]), _rects(svg, "ds")
        # The task image is served by labelgate itself.
        assert svg.find(f"{SVG}image").get("href") == f"/reports/{rid}/images/{tasks[name]}"
    app.extensions["labelgate_store"].close()


def test_dashboard_links_the_label_studio_viewer(ls_run, ls_server, tmp_path, monkeypatch):
    """The project page links the run's conflict viewer and each flagged task's conflicts."""
    import re

    _, result, _, _ = ls_run
    app = _app(ls_run, ls_server, tmp_path, monkeypatch)
    c = app.test_client()
    rid = result["report_id"]
    page = c.get(f"/sources/labelstudio/{result['project']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    links = set(re.findall(r'href="(/reports/[^"]+/conflicts[^"]*)"', html))
    assert f"/reports/{rid}/conflicts" in links
    for link in links:  # every link the page offers opens
        assert c.get(link.replace("&amp;", "&")).status_code == 200, link
    app.extensions["labelgate_store"].close()


def test_image_comes_from_label_studio_then_the_cache(ls_run, ls_server, tmp_path, monkeypatch):
    _, result, tasks, hits = ls_run
    calls: list[int] = []
    real = LabelStudioSource.task_image

    def spy(self: LabelStudioSource, task_id: int, object_name: str) -> bytes:
        calls.append(task_id)
        return real(self, task_id, object_name)

    monkeypatch.setattr(LabelStudioSource, "task_image", spy)
    app = _app(ls_run, ls_server, tmp_path, monkeypatch)
    c = app.test_client()
    rid = result["report_id"]
    first = c.get(f"/reports/{rid}/images/{tasks['a']}")
    assert first.status_code == 200 and first.mimetype == "image/jpeg"
    with Image.open(io.BytesIO(first.data)) as img:
        assert img.size == (400, 200)
        pixel = img.convert("RGB").getpixel((200, 100))
    assert all(abs(p - e) <= 6 for p, e in zip(pixel, IMAGES["a"][1], strict=True)), pixel
    second = c.get(f"/reports/{rid}/images/{tasks['a']}")
    assert second.status_code == 200 and second.data == first.data
    assert calls == [tasks["a"]]  # the second answer came from the thumbnail cache
    # An image URL on another server is refused, and that server never hears from labelgate.
    off = c.get(f"/reports/{rid}/images/{tasks['c']}")
    assert off.status_code == 400
    assert "not on the Label Studio server" in off.get_json()["error"]
    page = c.get(f"/reports/{rid}/conflicts?frame={tasks['c']}")
    svg = _svg(page.get_data(as_text=True))
    assert page.status_code == 200 and svg.find(f"{SVG}image") is None  # a blank canvas
    assert svg.find(f"{SVG}rect[@class='canvas']") is not None
    assert hits == []
    app.extensions["labelgate_store"].close()


def test_a_report_from_another_server_is_not_fetched(ls_run, ls_server, tmp_path, monkeypatch):
    _, result, tasks, _ = ls_run
    app = _app(ls_run, ls_server, tmp_path, monkeypatch)
    monkeypatch.setenv("LABELGATE_LS_URL", "http://127.0.0.1:9")
    res = app.test_client().get(f"/reports/{result['report_id']}/images/{tasks['a']}")
    assert res.status_code == 404 and "not on LABELGATE_LS_URL" in res.get_json()["error"]
    app.extensions["labelgate_store"].close()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("/data/upload/3/a.png", "data/upload/3/a.png"),
        ("http://ls.test:8080/data/upload/3/a.png?x=1", "data/upload/3/a.png?x=1"),
        ("HTTP://LS.test:8080/data/a.png", "data/a.png"),
        ("http://ls.test:8081/a.png", None),
        ("https://ls.test:8080/a.png", None),
        ("http://user@ls.test:8080/a.png", None),
        ("//evil.test/a.png", None),
        ("http://evil.test/a.png", None),
        ("file:///etc/passwd", None),
        ("data/a.png", None),
        ("/data/../api/users", None),
    ],
)
def test_server_path_refuses_other_servers(url, path):
    from labelgate.errors import ValidationError

    if path is None:
        with pytest.raises(ValidationError, match="not on the Label Studio server"):
            server_path(url, "http://ls.test:8080")
    else:
        assert server_path(url, "http://ls.test:8080/") == path
    assert server_path("/ls/data/a.png", "http://ls.test/ls") == "data/a.png"


@pytest.mark.browser
def test_label_studio_viewer_in_headless_chromium(ls_run, ls_server, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright  # a test dependency: never skipped

    _, result, tasks, hits = ls_run
    app = _app(ls_run, ls_server, tmp_path, monkeypatch)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    errors: list[str] = []
    requested: list[str] = []
    who = "a1.viewer@example.com"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            page.on("request", lambda r: requested.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(
                f"{base}/reports/{result['report_id']}/conflicts?annotator={who}&frame={tasks['b']}"
            )
            page.wait_for_function("document.querySelector('svg.frame image').getBBox().width > 0")
            assert page.eval_on_selector_all("svg.frame .shape", "els => els.length") == 2
            # The GT box where the browser drew it, relative to the frame's top-left corner.
            box = page.evaluate(
                """() => {
                  const o = document.querySelector('svg.frame').getBoundingClientRect();
                  const b = document.querySelector('svg.frame rect.gt').getBoundingClientRect();
                  return [b.left - o.left, b.top - o.top, b.right - o.left, b.bottom - o.top];
                }"""
            )
            want = [v * 960 / 300 for v in CAT_B]
            assert all(abs(g - w) <= 2 for g, w in zip(box, want, strict=True)), box
            artifacts = ROOT / "test-artifacts"
            artifacts.mkdir(exist_ok=True)
            page.screenshot(path=str(artifacts / "conflict-viewer-labelstudio.png"))
            browser.close()
    finally:
        server.shutdown()
        thread.join(5)
        app.extensions["labelgate_store"].close()
    assert errors == []
    assert requested and all(u.startswith(base + "/") for u in requested), requested
    assert hits == []
