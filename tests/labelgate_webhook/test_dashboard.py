"""The dashboard over HTTP (Flask test client): sources, project page, token, pagination,
filters and JSON 404s. Expected values are recomputed here from the stored reports."""

from __future__ import annotations

import re

import pytest
from quality_store import fill_store

from labelgate.stats import wilson_interval
from labelgate.store import open_store
from labelgate_webhook import create_app
from labelgate_webhook.auth import COOKIE, session_value

TOKEN = "dash-token-0123456789"


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'store.db'}"
    return url, fill_store(url)


@pytest.fixture()
def client(stored, tmp_path):
    app = create_app(
        {
            "STORE_URL": stored[0],
            "QUEUE_PATH": str(tmp_path / "q.db"),
            "TESTING": True,
            "API_TOKEN": TOKEN,
        }
    )
    client = app.test_client()
    client.set_cookie(COOKIE, session_value(TOKEN))
    yield client
    app.extensions["labelgate_store"].close()
    app.extensions["labelgate_queue"].close()


def _pct(v):
    return f"{v * 100:.1f}%"


def _items(html):
    return [int(i) for i in re.findall(r'<tr data-item="(\d+)"', html)]


def test_home_lists_every_source_with_pooled_scores(client, stored):
    html = client.get("/").text
    links = re.findall(r'href="(/sources/[^"]+)"', html)
    assert sorted(links) == [
        "/sources/cvat/1",
        "/sources/cvat/2",
        "/sources/cvat/3",
        "/sources/labelstudio/7",
    ]
    bundle = stored[1]["bundle"]
    human = [
        c["summary"] for n, c in bundle["comparisons"].items() if not n.startswith("prediction:")
    ]
    valid = sum(s["valid_count"] for s in human)
    total = sum(s["total_count"] for s in human)
    low, high = wilson_interval(valid, total)
    row = html[html.index('href="/sources/cvat/1"') :]
    row = row[: row.index("</tr>")]
    assert (
        f'{_pct(valid / total)}</span> <span class="ci" title="95% Wilson interval">[{_pct(low)}, {_pct(high)}]'
        in row
    )
    assert '<span class="fail">failed</span>' in row  # the example gate fails
    assert f'<td class="num">{len(bundle["alerts"])}</td>' in row
    assert row.count('<circle class="pt"') == 1  # one bundle run so far


def test_project_page_sections(client, stored):
    bundle = stored[1]["bundle"]
    html = client.get("/sources/cvat/1").text
    for alert in bundle["alerts"]:
        assert alert["action"].replace("`", "") in html.replace("`", "").replace("&#39;", "'")
    for card in bundle["scorecards"]:
        assert f"<td>{card['annotator']}</td>" in html
    # Scores per label: one row per label of the schema, and one trend chart per label.
    labels = bundle["comparisons"]["annotator1"]["confusion_matrix"]["labels"][:-1]
    table = html[html.index('id="requirements"') : html.index('id="scorecards"')]
    assert re.findall(r"<tr><td>([^<]+)</td>", table) == labels
    assert html.count('data-series="label"') == len(labels)
    assert html.count('data-series="annotator"') == 3
    f1 = bundle["agreement"]["matrix"]["f1"]
    assert f'style="--v: {f1[0][1]}">{_pct(f1[0][1])}' in html
    assert f"/reports/{bundle['report_id']}.html" in html
    assert f"/reports/{bundle['report_id']}/conflicts?frame=" in html


def test_items_are_paginated_worst_first(client):
    first = client.get("/sources/cvat/1?page_size=5").text
    assert len(_items(first)) == 5 and "30 items; page 1 of 6." in first
    assert 'rel="next" href="?page_size=5&amp;page=2"' in first and 'rel="prev"' not in first
    second = client.get("/sources/cvat/1?page_size=5&page=2").text
    assert len(_items(second)) == 5 and not set(_items(first)) & set(_items(second))
    last = client.get("/sources/cvat/1?page_size=5&page=6").text
    assert 'rel="prev"' in last and 'rel="next"' not in last


def test_item_filters_match_the_stored_conflicts(client, stored):
    bundle = stored[1]["bundle"]
    # Items flagged for annotator3: its error conflicts and the outlier alerts naming it.
    expected = {
        c["frame"]
        for c in bundle["conflicts"]
        if c["annotator"] == "annotator3" and c["severity"] == "error"
    }
    expected |= {
        a["item"]
        for a in bundle["alerts"]
        if a["type"] == "outlier_item" and a["annotator"] == "annotator3"
    }
    html = client.get("/sources/cvat/1?annotator=annotator3&page_size=500").text
    assert set(_items(html)) == expected and f"{len(expected)} items" in html
    missing = {
        c["frame"]
        for c in bundle["conflicts"]
        if c["type"] == "missing_annotation" and not c["annotator"].startswith("prediction:")
    }
    html = client.get("/sources/cvat/1?reason=missing_annotation&page_size=500").text
    assert set(_items(html)) == missing


def test_label_studio_and_scorecards_sources(client, stored):
    ls = stored[1]["ls"]
    html = client.get("/sources/labelstudio/7?page_size=500").text
    assert sorted(_items(html)) == sorted(int(t) for t in ls["tasks"])
    people = [n for n in ls["annotators"] if not n.startswith("prediction:")]
    mean = sum(ls["annotators"][n]["accuracy"] for n in people) / len(people)
    assert f'<span class="val">{_pct(mean)}</span>' in html
    cards = client.get("/sources/cvat/2").text
    assert "scorecards report has no per-item data" in cards and "<svg" in cards


def test_errors_are_json(client):
    res = client.get("/sources/cvat/999")
    assert res.status_code == 404 and "no stored quality report" in res.get_json()["error"]
    res = client.get("/sources/nowhere/1")
    assert res.status_code == 404 and res.is_json
    res = client.get("/sources/cvat/1?page=0")
    assert res.status_code == 400 and "page must be a positive integer" in res.get_json()["error"]


def test_token_guards_pages_but_not_the_stylesheet(client):
    client.delete_cookie(COOKIE)
    res = client.get("/sources/cvat/1")
    assert res.status_code == 303 and res.headers["Location"] == "/login?next=/sources/cvat/1"
    ok = client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    css = client.get("/static/dashboard/dashboard.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    css.close()  # a file response keeps its file open until closed


def test_empty_store_says_so(tmp_path):
    app = create_app(
        {"STORE_URL": f"sqlite:///{tmp_path / 'e.db'}", "QUEUE_PATH": str(tmp_path / "q.db")}
    )
    html = app.test_client().get("/").text
    assert "Nothing scored yet" in html
    app.extensions["labelgate_store"].close()
    app.extensions["labelgate_queue"].close()


def test_trend_grows_with_each_run(stored, tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    bundle = dict(stored[1]["bundle"])
    with open_store(url) as store:
        for _ in range(3):
            store.save_report("bundle", "file", "gt", bundle, project="cvat:9")
    app = create_app({"STORE_URL": url, "QUEUE_PATH": str(tmp_path / "q.db")})
    html = app.test_client().get("/sources/cvat/9").text
    overall = html[html.index('data-series="overall"') :]
    overall = overall[: overall.index("</figure>")]
    assert overall.count('<circle class="pt"') == 3
    app.extensions["labelgate_store"].close()
    app.extensions["labelgate_queue"].close()
