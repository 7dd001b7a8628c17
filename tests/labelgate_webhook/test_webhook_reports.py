"""The Flask app serves stored reports as JSON and as the same HTML page, and runs on waitress."""

import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import pytest
from click.testing import CliRunner
from services_plugin import free_port

from labelgate.cli import main
from labelgate.reporting.html import render_html
from labelgate.store import open_store
from labelgate_webhook import create_app

EX = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    out = tmp_path_factory.mktemp("web")
    url = f"sqlite:///{out / 'h.db'}"
    res = CliRunner().invoke(
        main,
        [
            "report",
            str(EX / "labelstudio/export.json"),
            "--store",
            url,
            "--json",
            str(out / "b.json"),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    bundle = json.loads((out / "b.json").read_text())
    return url, bundle


@pytest.fixture()
def client(stored, tmp_path):
    app = create_app(
        {"STORE_URL": stored[0], "QUEUE_PATH": str(tmp_path / "q.db"), "TESTING": True}
    )
    yield app.test_client()
    app.extensions["labelgate_store"].close()


def test_healthz_and_report_json(client, stored):
    assert client.get("/healthz").get_json() == {"status": "ok", "store": "ok", "queue": "ok"}
    _, bundle = stored
    res = client.get(f"/reports/{bundle['report_id']}")
    data = res.get_json()
    assert res.status_code == 200 and data["kind"] == "bundle"
    assert data["report"]["comparisons"].keys() == bundle["comparisons"].keys()


def test_report_page_is_the_cli_page(client, stored):
    url, bundle = stored
    res = client.get(f"/reports/{bundle['report_id']}.html")
    assert res.status_code == 200 and res.mimetype == "text/html"
    page = res.get_data(as_text=True)
    with open_store(url) as store:
        assert page == render_html(store.get_report(bundle["report_id"]).report)
    assert "Annotator scorecards" in page and "plotly" in page


def test_unknown_and_wrong_kind_reports(client, stored):
    res = client.get("/reports/999999")
    assert res.status_code == 404 and "no stored report with id 999999" in res.get_json()["error"]
    with open_store(stored[0]) as store:
        (scorecards,) = store.list_reports(kind="scorecards")  # the run's trend record
    res = client.get(f"/reports/{scorecards.id}.html")
    assert res.status_code == 404 and "pages exist for bundles" in res.get_json()["error"]


def test_serve_runs_on_waitress(stored, tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "labelgate.cli", "serve", "--port", str(port), "--store", stored[0]],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            try:
                with urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    assert json.loads(r.read())["status"] == "ok"
                    assert r.headers["Server"] == "waitress"
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("labelgate serve did not answer within 10 s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
