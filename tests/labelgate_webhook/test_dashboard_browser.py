"""The dashboard in headless Chromium (Playwright): sources stored by a CVAT run (the CVAT API
test double) and a real Label Studio server, the token form, keyboard navigation, charts, no
console errors and no request leaving 127.0.0.1. Screenshots land in test-artifacts/."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from labelgate.store import open_store
from labelgate_cvat.client import connect as cvat_connect
from labelgate_cvat.pipeline import score_target
from labelgate_labelstudio.client import connect as ls_connect
from labelgate_labelstudio.pipeline import score_project
from labelgate_webhook import create_app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
EX = ROOT / "examples" / "labelstudio"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "browser-token-0123456789"
N_TASKS = 8


def _ls_project(ls_server) -> int:
    """The first bundled tasks in a new project, annotated by this module's own users."""
    from label_studio_sdk import LabelStudio

    client = LabelStudio(base_url=ls_server.url, api_key=ls_server.api_key)
    proj = client.projects.create(
        title="labelgate dashboard test", label_config=(EX / "config.xml").read_text()
    )
    existing = {u.email: u.id for u in client.users.list()}
    users = {}
    for i in (1, 2, 3):
        email = f"dash{i}@example.com"
        users[f"annotator{i}@example.com"] = existing.get(email) or (
            client.users.create(email=email, username=f"dash{i}").id
        )
    admin = client.users.whoami().id
    request = []
    for t in json.loads((EX / "export.json").read_text())[:N_TASKS]:
        anns = [
            {
                "result": a["result"],
                "ground_truth": a["ground_truth"],
                "completed_by": users.get(a["completed_by"]["email"], admin),
            }
            for a in t["annotations"]
        ]
        request.append({"data": t["data"], "annotations": anns})
    client.projects.import_tasks(id=proj.id, request=request)
    client._client_wrapper.httpx_client.httpx_client.close()
    return int(proj.id)


@contextmanager
def serving(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def test_dashboard_in_chromium(cvat_double, ls_server, tmp_path):
    from playwright.sync_api import sync_playwright  # a test dependency: never skipped

    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        with cvat_connect(
            cvat_double.url, token=cvat_double.token, retries=3, backoff=0.01, timeout=5
        ) as src:
            score_target(src, "project", 1, store=store)
        with ls_connect(ls_server.url, ls_server.api_key) as src:
            ls_id = _ls_project(ls_server)
            ls = score_project(src, ls_id, store=store)
        bundle_labels = store.list_reports(project="cvat:1", kind="bundle")[0]
    app = create_app({"STORE_URL": url, "QUEUE_PATH": str(tmp_path / "q.db"), "API_TOKEN": TOKEN})
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    requests: list[str] = []
    with serving(app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        failed: list[str] = []
        page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
        # The read token: the browser is sent to the form, and back to the dashboard.
        page.goto(base + "/")
        assert page.url.startswith(base + "/login")
        page.fill("input[name=token]", TOKEN)
        page.keyboard.press("Enter")
        page.wait_for_url(base + "/")
        rows = page.eval_on_selector_all(
            "table.sources tbody tr",
            "rs => rs.map(r => [r.dataset.source, r.querySelector('a').getAttribute('href')])",
        )
        assert ["labelstudio", f"/sources/labelstudio/{ls_id}"] in rows
        assert ["cvat", "/sources/cvat/1"] in rows
        # Every row has its trend chart, one point per stored run of its headline kind.
        assert page.locator("table.sources svg.chart").count() == len(rows)
        page.screenshot(path=str(ARTIFACTS / "dashboard-home.png"), full_page=True)

        # Keyboard only: Tab to the Label Studio project's link, Enter opens it.
        target = f"/sources/labelstudio/{ls_id}"
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.getAttribute('href')") == target:
                break
        else:
            pytest.fail(f"Tab never reached {target}")
        page.keyboard.press("Enter")
        page.wait_for_url(base + target)
        items = page.locator("table.items tbody tr")
        assert items.count() == len(ls["tasks"])
        task_link = page.locator("table.items a", has_text="Label Studio").first
        assert task_link.get_attribute("href").startswith(
            f"{ls_server.url}/projects/{ls_id}/data?task="
        )
        page.screenshot(path=str(ARTIFACTS / "dashboard-labelstudio.png"), full_page=True)

        page.goto(base + "/sources/cvat/1")
        overall = page.locator('[data-series="overall"] circle.pt')
        assert overall.count() == 1  # one bundle run stored for the project
        labels = [
            lab
            for lab in bundle_labels.report["comparisons"][
                next(iter(bundle_labels.report["comparisons"]))
            ]["confusion_matrix"]["labels"]
            if lab != "unmatched"
        ]
        assert page.locator('[data-series="label"] svg').count() == len(labels)
        assert page.locator('[data-series="annotator"] svg').count() >= 1
        cvat_links = page.eval_on_selector_all(
            "table.items a", "as => as.map(a => a.getAttribute('href'))"
        )
        assert any(h.startswith(f"{cvat_double.url}/tasks/") and "/jobs/" in h for h in cvat_links)
        page.screenshot(path=str(ARTIFACTS / "dashboard-cvat.png"), full_page=True)
        browser.close()
    app.extensions["labelgate_store"].close()
    app.extensions["labelgate_queue"].close()
    assert errors == [] and failed == []
    assert requests and all(r.startswith(base + "/") for r in requests), [
        r for r in requests if not r.startswith(base)
    ]
