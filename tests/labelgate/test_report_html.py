"""The HTML report in headless Chromium: offline, no console errors, charts, filter, screenshot."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from labelgate.cli import main

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    store = f"sqlite:///{out / 'h.db'}"
    args = [
        "report",
        "--gt",
        str(EX / "cvat/gt.xml"),
        "--policy",
        str(EX / "gate.toml"),
        "--store",
        store,
        "--html",
        str(out / "r.html"),
        "--json",
        str(out / "r.json"),
        "--quiet",
    ]
    for i in (1, 2, 3):
        args += ["--ds", str(EX / f"cvat/annotator{i}.xml")]
    for _ in range(2):  # a second run gives the history chart two points
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
    return out / "r.html", json.loads((out / "r.json").read_text())


def test_bundle_contents(report):
    _, bundle = report
    assert set(bundle["comparisons"]) == {"annotator1", "annotator2", "annotator3"}
    assert bundle["gate"]["passed"] is False
    assert len(bundle["history"]["time"]) == 2
    assert bundle["agreement"]["annotators"] == ["annotator1", "annotator2", "annotator3"]
    assert len(bundle["conflicts"]) == sum(
        c["summary"]["conflict_count"] for c in bundle["comparisons"].values()
    )


def test_page_in_headless_chromium_offline(report):
    from playwright.sync_api import sync_playwright  # a test dependency: never skipped

    assert Path(CHROMIUM).exists(), "Chromium is required: `make test` installs it"
    html, bundle = report
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_offline(True)
        # Anything that is not the file itself would be a network request: refuse it.
        blocked: list[str] = []

        def only_files(route):
            if route.request.url.startswith("file://"):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        context.route("**/*", only_files)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(html.as_uri())
        page.wait_for_function(
            "document.querySelectorAll('.plotly-graph-div .main-svg').length >= 5", timeout=30000
        )
        charts = page.eval_on_selector_all(
            ".plotly-graph-div",
            "els => els.map(e => [e.id, e.querySelectorAll('.main-svg *').length])",
        )
        assert {c[0] for c in charts} == {
            "chart-conflicts",
            "chart-confusion",
            "chart-labels",
            "chart-agreement",
            "chart-history",
        }
        assert all(n > 10 for _, n in charts), charts
        total = len(bundle["conflicts"])
        visible = (
            "[...document.querySelectorAll('#conflicts tbody tr')]"
            ".filter(r => r.style.display !== 'none').length"
        )
        assert page.evaluate(visible) == total
        page.click(".filters button[data-type='missing_annotation']")
        missing = sum(1 for c in bundle["conflicts"] if c["type"] == "missing_annotation")
        assert 0 < missing < total
        assert page.evaluate(visible) == missing
        assert page.inner_text("#conflict-count") == str(missing)
        page.click(".filters button[data-type='missing_annotation']")
        page.fill("#conflict-filter", "annotator3")
        assert page.evaluate(visible) == sum(
            1 for c in bundle["conflicts"] if c["annotator"] == "annotator3"
        )
        assert "FAIL: do not ship" in page.inner_text("body")
        # Sorting: a click on "similarity" orders the rows by it, a second click reverses.
        page.fill("#conflict-filter", "")
        column = (
            "[...document.querySelectorAll('#conflicts tbody tr')].map(r => r.cells[5].textContent)"
        )
        page.click("#conflicts th:nth-child(6)")
        values = [float(v) for v in page.evaluate(column)]
        assert values == sorted(values)
        page.click("#conflicts th:nth-child(6)")
        assert [float(v) for v in page.evaluate(column)] == sorted(values, reverse=True)
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        page.fill("#conflict-filter", "")
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(artifacts / "report.png"), full_page=False)
        page.screenshot(path=str(artifacts / "report-full.png"), full_page=True)
        browser.close()
    assert errors == []
    assert blocked == []  # the page asked for nothing outside its own file
