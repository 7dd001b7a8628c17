"""Issue #20, conflict viewer: pages, filters, token, frame images and their cache, CVAT frames
through the SDK, and the page in headless Chromium.

Expected shape positions come from the example CVAT XML (parsed here with ElementTree) times
the display scale 960 / 640 = 1.5.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from werkzeug.serving import make_server

from labelgate.cli import main
from labelgate.store import open_store
from labelgate_webhook import create_app
from labelgate_webhook.thumbs import LocalImages, ThumbCache

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
SVG = "{http://www.w3.org/2000/svg}"
SCALE = 960 / 640


def _colour(name: str) -> tuple[int, int, int]:
    n = int(re.sub(r"\D", "", name) or 0)
    return (150 + 3 * n, 175, 165)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    out = tmp_path_factory.mktemp("viewer")
    url = f"sqlite:///{out / 'h.db'}"
    args = ["report", "--gt", str(EX / "cvat/gt.xml"), "--store", url]
    args += ["--ds", str(EX / "cvat/annotator1.xml"), "--ds", str(EX / "cvat/annotator2.xml")]
    res = CliRunner().invoke(main, [*args, "--json", str(out / "b.json"), "--quiet"])
    assert res.exit_code == 0, res.output
    images = out / "images"
    images.mkdir()
    for img in ET.parse(EX / "cvat/gt.xml").getroot().iter("image"):
        name = img.get("name")
        size = (int(img.get("width")), int(img.get("height")))
        Image.new("RGB", size, _colour(name)).save(images / name)
    return url, json.loads((out / "b.json").read_text()), images


def _gt_boxes(name: str) -> set[tuple[float, ...]]:
    for img in ET.parse(EX / "cvat/gt.xml").getroot().iter("image"):
        if img.get("name") == name:
            return {
                tuple(round(float(b.get(k)) * SCALE, 2) for k in ("xtl", "ytl", "xbr", "ybr"))
                for b in img.iter("box")
            }
    raise AssertionError(name)


def _app(stored, tmp_path, monkeypatch, **config):
    monkeypatch.setenv("LABELGATE_HOME", str(tmp_path / "home"))
    app = create_app(
        {"STORE_URL": stored[0], "QUEUE_PATH": str(tmp_path / "q.db"), "TESTING": True, **config}
    )
    return app


@pytest.fixture()
def client(stored, tmp_path, monkeypatch):
    app = _app(stored, tmp_path, monkeypatch, IMAGES_DIR=str(stored[2]))
    yield app.test_client()
    app.extensions["labelgate_store"].close()


def _svg(html: str) -> ET.Element:
    return ET.fromstring(re.search(r"<svg.*?</svg>", html, re.S).group(0))


def _busiest(bundle, annotator="annotator2"):
    """The frame of ``annotator`` with the most drawable (box) conflicts, and those conflicts."""
    rows = [c for c in bundle["conflicts"] if c["annotator"] == annotator]
    frames: dict[int, list] = {}
    for c in rows:
        if c["geometry"]["ds"] or c["geometry"]["gt"]:
            kinds = {g["kind"] for g in (c["geometry"]["ds"], c["geometry"]["gt"]) if g}
            if kinds == {"rectangle"}:
                frames.setdefault(c["frame"], []).append(c)
    frame = max(frames, key=lambda f: len(frames[f]))
    return frame, frames[frame]


def test_page_draws_the_frame_conflicts_where_the_xml_puts_them(client, stored):
    _, bundle, _ = stored
    frame, conflicts = _busiest(bundle)
    assert len(conflicts) >= 2
    res = client.get(f"/reports/{bundle['report_id']}/conflicts?annotator=annotator2&frame={frame}")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert f"1 / {len(conflicts)}" in html
    svg = _svg(html)
    assert (svg.get("width"), svg.get("height")) == ("960", "720")  # 640x480 at 960 px
    gt = svg.findall(f"{SVG}rect[@data-side='gt']")
    ds = svg.findall(f"{SVG}rect[@data-side='ds']")
    assert len(gt) == sum(1 for c in conflicts if c["geometry"]["gt"])
    assert len(ds) == sum(1 for c in conflicts if c["geometry"]["ds"])
    expected = _gt_boxes(conflicts[0]["item_name"])
    for r in gt:
        x, y, w, h = (float(r.get(k)) for k in ("x", "y", "width", "height"))
        assert any(
            abs(x - e[0]) < 0.02 and abs(y - e[1]) < 0.02 and abs(x + w - e[2]) < 0.03
            for e in expected
        ), (x, y, w, h)
    # The frame image is served by labelgate itself.
    image = svg.find(f"{SVG}image")
    assert image.get("href") == f"/reports/{bundle['report_id']}/images/{frame}"


def test_filters_and_paging(client, stored):
    _, bundle, _ = stored
    rid = bundle["report_id"]
    rows = bundle["conflicts"]
    for key, value, keep in (
        ("type", "missing_annotation", lambda c: c["type"] == "missing_annotation"),
        ("annotator", "annotator2", lambda c: c["annotator"] == "annotator2"),
        ("label", "person", lambda c: "person" in c["label_names"]),
    ):
        n = sum(1 for c in rows if keep(c))
        assert 0 < n < len(rows)
        html = client.get(f"/reports/{rid}/conflicts?{key}={value}").get_data(as_text=True)
        assert f"1 / {n}" in html
        last = client.get(f"/reports/{rid}/conflicts?{key}={value}&i={n - 1}")
        page = last.get_data(as_text=True)
        assert f"{n} / {n}" in page and 'id="next"' not in page and 'id="prev"' in page
        assert f"{key}={value}&amp;i={n - 2}" in page  # the filter is kept by the links
    none = client.get(f"/reports/{rid}/conflicts?type=low_overlap&label=nosuchlabel")
    assert none.status_code == 200 and "No conflict matches" in none.get_data(as_text=True)
    bad = client.get(f"/reports/{rid}/conflicts?frame=x1")
    assert bad.status_code == 400 and "frame must be an integer" in bad.get_json()["error"]
    out = client.get(f"/reports/{rid}/conflicts?i={len(rows)}")
    assert out.status_code == 404 and "out of range" in out.get_json()["error"]
    missing = client.get("/reports/AAAAAAAAAAAAAAAAAAAAAA/conflicts")
    assert missing.status_code == 404 and "no stored report" in missing.get_json()["error"]
    js = client.get("/static/viewer/viewer.js")
    assert js.status_code == 200 and "ArrowRight" in js.get_data(as_text=True)
    js.close()


def test_token_guards_page_and_images(stored, tmp_path, monkeypatch):
    app = _app(stored, tmp_path, monkeypatch, IMAGES_DIR=str(stored[2]), API_TOKEN="t0k3n")
    c = app.test_client()
    rid = stored[1]["report_id"]
    frame = stored[1]["conflicts"][0]["frame"]
    page = c.get(f"/reports/{rid}/conflicts?type=missing_annotation")
    assert page.status_code == 303
    assert page.headers["Location"].startswith("/login?next=/reports/")
    img = c.get(f"/reports/{rid}/images/{frame}")
    assert img.status_code == 401 and img.get_json() == {"error": "missing bearer token"}
    wrong = c.get(f"/reports/{rid}/images/{frame}", headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401
    ok = {"Authorization": "Bearer t0k3n"}
    assert c.get(f"/reports/{rid}/conflicts", headers=ok).status_code == 200
    assert c.get(f"/reports/{rid}/images/{frame}", headers=ok).status_code == 200
    app.extensions["labelgate_store"].close()


def test_image_endpoint_and_blank_canvas(stored, tmp_path, monkeypatch):
    _, bundle, images = stored
    rid = bundle["report_id"]
    first = bundle["conflicts"][0]
    app = _app(stored, tmp_path, monkeypatch, IMAGES_DIR=str(images))
    c = app.test_client()
    res = c.get(f"/reports/{rid}/images/{first['frame']}")
    assert res.status_code == 200 and res.mimetype == "image/jpeg"
    with Image.open(io.BytesIO(res.data)) as img:
        assert img.size == (640, 480)
        pixel = img.convert("RGB").getpixel((5, 5))
    assert all(abs(a - b) <= 3 for a, b in zip(pixel, _colour(first["item_name"]), strict=True))
    nowhere = c.get(f"/reports/{rid}/images/999999")
    assert nowhere.status_code == 404 and "no conflict on frame" in nowhere.get_json()["error"]
    app.extensions["labelgate_store"].close()
    # Without images: 404 JSON for the image, and the page draws on a blank canvas.
    bare = _app(stored, tmp_path, monkeypatch)
    c = bare.test_client()
    res = c.get(f"/reports/{rid}/images/{first['frame']}")
    assert res.status_code == 404 and "--images" in res.get_json()["error"]
    svg = _svg(c.get(f"/reports/{rid}/conflicts").get_data(as_text=True))
    assert svg.find(f"{SVG}image") is None and svg.find(f"{SVG}rect[@class='canvas']") is not None
    bare.extensions["labelgate_store"].close()


def test_thumbnail_cache_evicts_least_recently_used(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        Image.new("RGB", (2000, 1000), (60 * i, 30, 90)).save(folder / name)
    local = LocalImages(folder)
    calls: list[str] = []

    def get(cache: ThumbCache, name: str) -> bytes:
        return cache.get(local.key(name), lambda: calls.append(name) or local.read(name))

    probe = ThumbCache(tmp_path / "probe", 1 << 30)
    one = len(get(probe, "a.png"))
    with Image.open(io.BytesIO(get(probe, "a.png"))) as img:
        assert img.size == (1280, 640)  # thumbnail width, aspect kept
    assert calls == ["a.png"]  # the second read was a hit
    cache = ThumbCache(tmp_path / "cache", int(one * 2.5))  # room for two thumbnails
    calls.clear()
    for name in ("a.png", "b.png", "a.png", "c.png"):
        get(cache, name)
    assert calls == ["a.png", "b.png", "c.png"]
    names = {p.name for p in cache.files()}
    assert names == {cache._path(local.key(n)).name for n in ("a.png", "c.png")}  # b evicted
    assert sum(p.stat().st_size for p in cache.files()) <= cache.max_bytes
    calls.clear()
    get(cache, "b.png")
    assert calls == ["b.png"]  # a miss again
    with pytest.raises(Exception, match="no image for item"):
        local.read("../../etc/passwd")


def test_cvat_frames_come_through_the_sdk_and_are_cached(cvat_env, tmp_path, monkeypatch):
    from labelgate_cvat.client import connect
    from labelgate_cvat.pipeline import score_target

    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = open_store(url)
    with connect(retries=1, backoff=0.01, timeout=5) as src:
        # The page reads a 2.42-shaped job report (a requirement-shaped one has no page yet).
        result = score_target(src, "task", 10, store=store, semantics="cvat-2.42")
    store.close()
    rid = result.report_ids["job:103"]
    monkeypatch.setenv("LABELGATE_HOME", str(tmp_path / "home"))
    app = create_app({"STORE_URL": url, "QUEUE_PATH": str(tmp_path / "q.db"), "TESTING": True})
    c = app.test_client()
    page = c.get(f"/reports/{rid}/conflicts?type=missing_annotation")
    assert page.status_code == 200
    svg = _svg(page.get_data(as_text=True))
    frame = int(re.search(r'data-frame="(\d+)"', page.get_data(as_text=True)).group(1))
    assert 20 <= frame <= 29  # job 103 holds frames 20-29
    assert svg.find(f"{SVG}image").get("href") == f"/reports/{rid}/images/{frame}"
    res = c.get(f"/reports/{rid}/images/{frame}")
    assert res.status_code == 200
    with Image.open(io.BytesIO(res.data)) as img:
        assert img.size == (640, 480)
        grey = img.convert("L").getpixel((10, 10))
    assert abs(grey - 10 * frame) <= 2  # the double paints frame N with grey 10 * N
    asked = [p for _, p in cvat_env.requests("GET", "/api/jobs/103/data?")]
    assert asked == [f"/api/jobs/103/data?type=frame&number={frame}&quality=compressed"]
    assert cvat_env.frames_served == 1  # the page fetched it once; the image came from cache
    other = c.get(f"/reports/{rid}/images/5")  # a frame the report does not list: no proxying
    assert other.status_code == 404 and "no conflict on frame 5" in other.get_json()["error"]
    assert cvat_env.frames_served == 1
    app.extensions["labelgate_store"].close()
    # CVAT unreachable and nothing cached: the page draws on a blank canvas, the image is 502.
    from services_plugin import free_port

    monkeypatch.setenv("LABELGATE_CVAT_HOST", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("LABELGATE_HOME", str(tmp_path / "home2"))
    app = create_app({"STORE_URL": url, "QUEUE_PATH": str(tmp_path / "q.db"), "TESTING": True})
    c = app.test_client()
    page = c.get(f"/reports/{rid}/conflicts?type=missing_annotation")
    svg = _svg(page.get_data(as_text=True))
    assert page.status_code == 200 and svg.find(f"{SVG}image") is None
    assert svg.find(f"{SVG}rect[@class='canvas']") is not None
    res = c.get(f"/reports/{rid}/images/{frame}")
    assert res.status_code == 502 and "unreachable" in res.get_json()["error"]
    app.extensions["labelgate_store"].close()


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


@pytest.mark.browser
def test_viewer_in_headless_chromium(stored, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright  # a test dependency: never skipped

    _, bundle, images = stored
    frame, conflicts = _busiest(bundle)
    app = _app(stored, tmp_path, monkeypatch, IMAGES_DIR=str(images))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    rows = [c for c in bundle["conflicts"] if c["annotator"] == "annotator2"]
    start = next(i for i, c in enumerate(rows) if c["frame"] == frame)
    errors: list[str] = []
    requested: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            page.on("request", lambda r: requested.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(
                f"{base}/reports/{bundle['report_id']}/conflicts?annotator=annotator2&i={start}"
            )
            page.wait_for_function("document.querySelector('svg.frame image').getBBox().width > 0")
            shapes = page.eval_on_selector_all("svg.frame .shape", "els => els.length")
            assert shapes == sum(
                (c["geometry"]["ds"] is not None) + (c["geometry"]["gt"] is not None)
                for c in conflicts
            )
            # Where the browser drew the GT boxes, relative to the frame's top-left corner.
            boxes = page.evaluate(
                """() => {
                  const o = document.querySelector('svg.frame').getBoundingClientRect();
                  return [...document.querySelectorAll('svg.frame rect.gt')].map(r => {
                    const b = r.getBoundingClientRect();
                    return [b.left - o.left, b.top - o.top, b.right - o.left, b.bottom - o.top];
                  });
                }"""
            )
            expected = _gt_boxes(conflicts[0]["item_name"])
            for b in boxes:  # the stroke adds up to 1.5 px around the box
                assert any(
                    all(abs(v - e) <= 2 for v, e in zip(b, exp, strict=True)) for exp in expected
                ), b
            artifacts = ROOT / "test-artifacts"
            artifacts.mkdir(exist_ok=True)
            page.screenshot(path=str(artifacts / "conflict-viewer.png"))
            total = len(rows)
            assert page.inner_text("#position") == f"{start + 1} / {total}"
            page.keyboard.press("ArrowRight")
            page.wait_for_url(f"**i={start + 1}")
            assert page.inner_text("#position") == f"{start + 2} / {total}"
            page.keyboard.press("k")
            page.wait_for_url(f"**i={start}")
            page.keyboard.press("j")
            page.wait_for_url(f"**i={start + 1}")
            page.keyboard.press("ArrowLeft")
            page.wait_for_url(f"**i={start}")
            assert page.inner_text("#position") == f"{start + 1} / {total}"
            browser.close()
    finally:
        server.shutdown()
        app.extensions["labelgate_store"].close()
    assert errors == []
    assert requested and all(u.startswith(base + "/") for u in requested), requested


def test_cvat_mask_and_skeleton_drawn_at_hand_computed_places(cvat_env, tmp_path, monkeypatch):
    """Job 121 (a 64x48 video, shown 960 px wide: scale 15): the extra mask on frame 5 covers
    pixels x 30-31, y 30-31 (CVAT RLE [0, 4] over the box 30,30-31,31); the extra skeleton track
    on frame 0 has its first point at (5, 30)."""
    from labelgate_cvat.client import connect
    from labelgate_cvat.pipeline import score_target

    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = open_store(url)
    with connect(retries=1, backoff=0.01, timeout=5) as src:
        score = score_target(src, "task", 12, store=store, semantics="cvat-2.42")
        rid = score.report_ids["job:121"]
    store.close()
    monkeypatch.setenv("LABELGATE_HOME", str(tmp_path / "home"))
    app = create_app({"STORE_URL": url, "QUEUE_PATH": str(tmp_path / "q.db"), "TESTING": True})
    c = app.test_client()
    mask = _svg(c.get(f"/reports/{rid}/conflicts?type=extra_annotation&frame=5").get_data(True))
    assert (mask.get("width"), mask.get("height")) == ("960", "720")
    path = mask.find(f"{SVG}path[@data-kind='mask']")
    assert path.get("d") == "M450 450h15v30h-15zM465 450h15v30h-15z"
    skel = _svg(c.get(f"/reports/{rid}/conflicts?type=extra_annotation&frame=0").get_data(True))
    dots = skel.findall(f"{SVG}g[@data-kind='skeleton']/{SVG}circle")
    assert dots and (dots[0].get("cx"), dots[0].get("cy")) == ("75", "450")
    app.extensions["labelgate_store"].close()
