"""The read-only quality API over HTTP: bearer token, 404s, pagination links, stored values."""

import pytest
from quality_store import fill_store

from labelgate.store import open_store
from labelgate_webhook import create_app
from labelgate_webhook.app import load_config

TOKEN = "s3cret-token"
BASE = "/api/projects/cvat/1/quality"


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'store.db'}"
    return url, fill_store(url)


def make_client(stored, tmp_path, **config):
    app = create_app(
        {"STORE_URL": stored[0], "QUEUE_PATH": str(tmp_path / "q.db"), "TESTING": True, **config}
    )
    return app, app.test_client()


@pytest.fixture()
def client(stored, tmp_path):
    app, client = make_client(stored, tmp_path, API_TOKEN=TOKEN)
    yield client
    app.extensions["labelgate_store"].close()


def get(client, path, token=TOKEN, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(path, headers=headers, query_string=params)


def test_no_token_configured_means_no_api(stored, tmp_path):
    app, client = make_client(stored, tmp_path)  # API_TOKEN unset
    for token in (None, TOKEN, ""):
        res = get(client, f"{BASE}/overview", token=token)
        assert res.status_code == 404 and "API disabled" in res.get_json()["error"]
    # An empty token (LABELGATE_API_TOKEN="") is "not configured", not "anything goes".
    app2, client2 = make_client(stored, tmp_path, API_TOKEN="")
    assert get(client2, f"{BASE}/overview", token=None).status_code == 404
    for a in (app, app2):
        a.extensions["labelgate_store"].close()


def test_missing_or_wrong_token_is_401(client):
    res = get(client, f"{BASE}/overview", token=None)
    assert res.status_code == 401 and res.get_json() == {"error": "missing bearer token"}
    assert res.headers["WWW-Authenticate"].startswith("Bearer")
    for header in (f"Bearer {TOKEN}x", "Bearer s3cret", f"Basic {TOKEN}", "Bearer ", TOKEN):
        res = client.get(f"{BASE}/overview", headers={"Authorization": header})
        assert res.status_code == 401, header
        assert res.headers["WWW-Authenticate"].startswith("Bearer")
    res = client.get(f"{BASE}/overview", headers={"Authorization": "Bearer tökén"})
    assert res.status_code == 401 and 'error="invalid_token"' in res.headers["WWW-Authenticate"]
    # Unauthenticated callers learn nothing about which projects exist.
    assert get(client, "/api/projects/cvat/99/quality/overview", token="x").status_code == 401


def test_token_from_the_environment(stored, tmp_path, monkeypatch):
    monkeypatch.setenv("LABELGATE_API_TOKEN", "from-env")
    assert load_config()["API_TOKEN"] == "from-env"
    app, client = make_client(stored, tmp_path)
    assert get(client, f"{BASE}/overview", token="from-env").status_code == 200
    assert get(client, f"{BASE}/overview").status_code == 401
    app.extensions["labelgate_store"].close()


def test_unknown_source_project_section_and_report_are_json_404(client, stored):
    cases = {
        "/api/projects/jira/1/quality/overview": "unknown source 'jira'",
        "/api/projects/cvat/99/quality/overview": "no stored quality report for project 'cvat:99'",
        f"{BASE}/scores": "unknown section 'scores'",
    }
    for path, message in cases.items():
        res = get(client, path)
        assert res.status_code == 404 and message in res.get_json()["error"], path
    ls_id = stored[1]["ls"]["report_id"]
    res = get(client, f"{BASE}/alerts", report=ls_id)
    assert (
        res.status_code == 404
        and "not a quality report of project 'cvat:1'" in (res.get_json()["error"])
    )
    # Report ids are random 22-character URL-safe strings (issue #18): a well-formed unknown
    # id is a 404, an integer or any other shape is not an id at all (400).
    assert get(client, f"{BASE}/alerts", report="A" * 22).status_code == 404
    assert get(client, f"{BASE}/alerts", report=999999).status_code == 400
    assert get(client, f"{BASE}/alerts", report="x").status_code == 400
    res = get(client, f"{BASE}/items", page=0)
    assert res.status_code == 400 and "page must be a positive integer" in res.get_json()["error"]


def test_overview_and_annotators_equal_the_stored_bundle(client, stored):
    url, runs = stored
    with open_store(url) as store:
        bundle = store.get_report(runs["bundle"]["report_id"]).report
    res = get(client, f"{BASE}/overview")
    assert res.status_code == 200 and res.mimetype == "application/json"
    body = res.get_json()
    assert body["project"] == "cvat:1" and body["report"]["id"] == runs["bundle"]["report_id"]
    ov = body["overview"]
    assert (ov["items"], ov["labelled_items"], ov["unlabelled_items"]) == (30, 30, 0)
    assert ov["ai_assisted_share"] == pytest.approx(49 / 431)
    assert ov["approval_rate"] is None and "approval_rate" in body["notes"]
    cards = get(client, f"{BASE}/annotators").get_json()["results"]
    assert cards == bundle["scorecards"]
    bench = {r["annotator"]: r for r in get(client, f"{BASE}/benchmark").get_json()["results"]}
    assert (
        bench["annotator3"]["accuracy"]
        == bundle["comparisons"]["annotator3"]["summary"]["accuracy"]
    )
    assert bench["annotator3"]["accuracy_ci95"] == bundle["scorecards"][2]["accuracy_ci95"]
    assert get(client, f"{BASE}/alerts").get_json()["results"] == bundle["alerts"]


def test_pagination_links_walk_every_item_once(client, stored):
    res = get(client, f"{BASE}/agreement", page_size=7)
    body = res.get_json()
    assert (body["count"], body["page"], body["page_size"], body["pages"]) == (30, 1, 7, 5)
    assert body["previous"] is None and len(body["results"]) == 7
    seen = [r["item"] for r in body["results"]]
    report_id = stored[1]["bundle"]["report_id"]
    while body["next"]:
        assert f"report={report_id}" in body["next"] and "page_size=7" in body["next"]
        body = client.get(body["next"], headers={"Authorization": f"Bearer {TOKEN}"}).get_json()
        seen += [r["item"] for r in body["results"]]
    assert body["page"] == 5 and len(body["results"]) == 2 and body["previous"]
    assert sorted(seen) == list(range(30))
    capped = get(client, f"{BASE}/items", page_size=100000).get_json()
    assert capped["page_size"] == 500 and capped["count"] == 30 and capped["next"] is None
    flagged = get(client, f"{BASE}/items", flagged="true").get_json()
    assert (
        flagged["count"] == get(client, f"{BASE}/overview").get_json()["overview"]["flagged_items"]
    )
    assert all(r["flagged"] for r in flagged["results"])


def test_label_studio_project(client, stored):
    ls = stored[1]["ls"]
    base = "/api/projects/labelstudio/7/quality"
    items = get(client, f"{base}/items", page_size=500).get_json()
    # One stored report kind: a Label Studio run is stored as a bundle too.
    assert items["report"]["kind"] == "bundle"
    assert {r["item"] for r in items["results"] if r["flagged"]} == set(ls["flagged"])
    # ... so its alerts are recorded, and its page exists like every stored report's.
    full = get(client, f"/reports/{items['report']['id']}").get_json()["report"]
    alerts = get(client, f"{base}/alerts", page_size=500)
    assert alerts.status_code == 200 and alerts.get_json()["results"] == full["alerts"]
    page = get(client, f"/reports/{items['report']['id']}.html")
    assert page.status_code == 200 and "annotator1@example.com" in page.text
