"""Issue #18, server side: the read token on every read path, unguessable report ids, no server
paths in served reports, validated payloads (400, nothing queued) and JSON for every error."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from labelgate.cli import main
from labelgate.store import PUBLIC_ID, open_store
from labelgate_webhook import create_app
from labelgate_webhook.auth import COOKIE, session_value
from labelgate_webhook.signatures import cvat_signature

TOKEN = "read-token-0123456789"
EX = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A store with one `labelgate report` run, read from a folder under a recognisable path."""
    out = tmp_path_factory.mktemp("sec")
    data = out / "secret-server-folder"
    data.mkdir()
    for name in ("gt.xml", "annotator1.xml", "annotator2.xml"):
        shutil.copy(EX / "cvat" / name, data / name)
    url = f"sqlite:///{out / 'store.db'}"
    args = ["report", "--gt", str(data / "gt.xml")]
    args += ["--ds", str(data / "annotator1.xml"), "--ds", str(data / "annotator2.xml")]
    res = CliRunner().invoke(main, [*args, "--store", url, "--json", str(out / "b.json")])
    assert res.exit_code == 0, res.output
    bundle = json.loads((out / "b.json").read_text())
    with open_store(url) as store:
        # The same bundle as project cvat:1, so the quality API has something to serve.
        store.save_report("bundle", "file", "t", bundle, project="cvat:1")
    return url, bundle, str(data)


def make_app(stored, tmp_path, **config):
    app = create_app(
        {
            "STORE_URL": stored[0],
            "QUEUE_PATH": str(tmp_path / "q.db"),
            "CVAT_WEBHOOK_SECRET": "cvat-secret",
            "LS_WEBHOOK_SECRET": "ls-secret",
            "TESTING": True,
            **config,
        }
    )
    return app


@pytest.fixture()
def app(stored, tmp_path):
    app = make_app(stored, tmp_path, API_TOKEN=TOKEN)
    yield app
    app.extensions["labelgate_store"].close()
    app.extensions["labelgate_queue"].close()


SECTIONS = ("overview", "agreement", "annotators", "items", "benchmark", "alerts")
#: Every GET that returns data ({id}: the stored bundle's public id); /healthz is not one.
READ_PATHS = {
    "report-json": "/reports/{id}",
    "report-page": "/reports/{id}.html",
    "conflicts-page": "/reports/{id}/conflicts",
    "metrics": "/metrics",
    "dashboard": "/",
    "dashboard-source": "/sources/cvat/1",
    **{f"api-{s}": f"/api/projects/cvat/1/quality/{s}" for s in SECTIONS},
}


def test_the_table_covers_every_get_route(app):
    """A new GET route must be added to READ_PATHS (or to the open ones) to pass."""
    gets = {r.rule for r in app.url_map.iter_rules() if "GET" in r.methods}
    # The viewer's script and style sheet and the dashboard's stylesheet hold no data.
    open_routes = {
        "/healthz",
        "/login",
        "/static/<path:filename>",
        "/static/viewer/<path:filename>",
        "/static/dashboard/<path:filename>",
    }
    covered = {"/reports/<report_id>", "/reports/<report_id>.html", "/metrics"}
    covered |= {"/", "/sources/<source>/<path:source_id>", "/reports/<report_id>/conflicts"}
    # Frame images: token checked in test_viewer.py::test_token_guards_page_and_images (here
    # no images folder is configured, so an authorised request gets 404).
    covered.add("/reports/<report_id>/images/<int:frame>")
    covered.add("/api/projects/<source>/<project_id>/quality/<section>")
    assert gets == open_routes | covered


@pytest.mark.parametrize("which", list(READ_PATHS))
def test_every_read_path_needs_the_token(app, stored, which):
    path = READ_PATHS[which].format(id=stored[1]["report_id"])
    client = app.test_client()
    res = client.get(path)
    if which in ("report-page", "conflicts-page", "dashboard", "dashboard-source"):
        # A browser is sent to the token form, and nothing of the report is in the answer.
        assert res.status_code == 303 and res.headers["Location"].startswith("/login?next=")
    else:
        assert res.status_code == 401 and res.get_json()["error"] == "missing bearer token"
        assert res.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"annotator1" not in res.data
    wrong = client.get(path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid bearer token"
    ok = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200, ok.data[:300]
    if which == "metrics":
        assert b"labelgate_events_received_total 0" in ok.data
    elif which.startswith("api-"):
        assert ok.get_json()["section"] == which.removeprefix("api-")
    elif which == "dashboard":
        assert b'href="/sources/cvat/1"' in ok.data
    else:
        assert b"annotator1" in ok.data


def test_health_and_login_form_stay_open(app):
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    form = client.get("/login?next=/reports/abc.html")
    assert form.status_code == 200 and b"name='token'" in form.data


def test_browser_token_form_sets_a_cookie_that_opens_pages(app, stored):
    client = app.test_client()
    page = f"/reports/{stored[1]['report_id']}.html"
    res = client.get(page)
    assert res.status_code == 303
    wrong = client.post("/login", data={"token": "guess", "next": page})
    assert wrong.status_code == 401 and b"Wrong token" in wrong.data
    assert client.get_cookie(COOKIE) is None
    res = client.post("/login", data={"token": TOKEN, "next": page})
    assert res.status_code == 303 and res.headers["Location"] == page
    cookie = res.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    assert client.get_cookie(COOKIE).value == session_value(TOKEN)
    assert client.get(page).status_code == 200
    assert client.get(f"/reports/{stored[1]['report_id']}").status_code == 200
    # A cookie made for another token opens nothing.
    other = app.test_client()
    other.set_cookie(COOKIE, session_value("another-token"))
    assert other.get(f"/reports/{stored[1]['report_id']}").status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "\\\\evil", ""])
def test_login_never_redirects_off_site(app, target):
    res = app.test_client().post("/login", data={"token": TOKEN, "next": target})
    assert res.status_code == 303 and res.headers["Location"] == "/"


def test_query_string_tokens_are_not_accepted(app, stored):
    res = app.test_client().get(f"/reports/{stored[1]['report_id']}", query_string={"token": TOKEN})
    assert res.status_code == 401


def test_without_a_token_reports_are_served_and_the_api_is_off(stored, tmp_path):
    app = make_app(stored, tmp_path)
    client = app.test_client()
    assert client.get(f"/reports/{stored[1]['report_id']}").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/api/projects/cvat/1/quality/overview").status_code == 404
    app.extensions["labelgate_store"].close()


def test_report_ids_are_random_and_integers_find_nothing(app, stored):
    with open_store(stored[0]) as store:
        ids = [r.id for r in store.list_reports()]
    assert len(ids) == 3 and all(PUBLIC_ID.fullmatch(i) for i in ids) and len(set(ids)) == 3
    assert stored[1]["report_id"] in ids
    client = app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/reports/1", "/reports/2.html", "/reports/99999999999999999999", "/reports/-1"):
        res = client.get(path, headers=auth)
        assert res.status_code == 404 and res.is_json, path


def test_served_reports_carry_no_server_paths_unless_asked(app, stored, tmp_path):
    folder = stored[2]
    raw = json.dumps(stored[1])
    assert folder in raw  # the CLI's own JSON keeps the paths it was given
    auth = {"Authorization": f"Bearer {TOKEN}"}
    rid = stored[1]["report_id"]
    client = app.test_client()
    body = client.get(f"/reports/{rid}", headers=auth).get_data(as_text=True)
    page = client.get(f"/reports/{rid}.html", headers=auth).get_data(as_text=True)
    assert folder not in body and "secret-server-folder" not in body
    assert "secret-server-folder" not in page
    assert json.loads(body)["report"]["source"]["meta"]["file"] == "gt.xml"
    shown = make_app(stored, tmp_path, API_TOKEN=TOKEN, SHOW_FILE_PATHS="true")
    body = shown.test_client().get(f"/reports/{rid}", headers=auth).get_data(as_text=True)
    assert json.loads(body)["report"]["source"]["meta"]["file"] == f"{folder}/gt.xml"
    shown.extensions["labelgate_store"].close()


def _cvat(client, payload):
    body = json.dumps(payload).encode()
    headers = {"X-Signature-256": cvat_signature(body, "cvat-secret")}
    return client.post("/webhooks/cvat", data=body, headers=headers)


def _ls(client, payload):
    headers = {"X-Labelgate-Secret": "ls-secret"}
    return client.post("/webhooks/labelstudio", data=json.dumps(payload), headers=headers)


def _save(job):
    return {
        "event": "update:job",
        "webhook_id": 1,
        "job": job,
        "before_update": {"updated_date": "x"},
    }


@pytest.mark.parametrize(
    ("send", "payload", "message"),
    [
        (_cvat, _save("x"), "field 'job' must be a JSON object, got str"),
        (_cvat, _save([1]), "field 'job' must be a JSON object, got list"),
        (
            _cvat,
            {"event": "update:job", "job": {"id": 1}, "before_update": ["updated_date"]},
            "field 'before_update' must be a JSON object, got list",
        ),
        (_cvat, _save({"id": "../../etc/passwd"}), "job.id must be an integer"),
        (_cvat, _save({"id": -5}), "job.id must be an integer from 1 to 2147483647, got -5"),
        (_cvat, _save({"id": 0}), "job.id must be an integer"),
        (_cvat, _save({"id": 2**63}), "job.id must be an integer"),
        (_cvat, _save({"id": True}), "job.id must be an integer"),
        (_cvat, _save({"id": 1.5}), "job.id must be an integer"),
        (_cvat, _save({}), "payload has no job.id"),
        (_cvat, {"event": 5}, "field 'event' must be a string, got int"),
        (
            _cvat,
            {"event": "create:job", "job": {"task_id": "7"}},
            "job.task_id must be an integer",
        ),
        (_cvat, {"event": "update:task", "task": "7"}, "field 'task' must be a JSON object"),
        (_cvat, {"event": "delete:job", "task": {"id": None}}, "no task.id or job.task_id"),
        (
            _cvat,
            {**_save({"id": 3}), "webhook_id": "1; DROP"},
            "webhook_id must be an integer",
        ),
        (_ls, {"action": "ANNOTATION_CREATED", "project": 3}, "field 'project' must be a JSON"),
        (_ls, {"action": "ANNOTATION_CREATED", "project": {"id": "x"}}, "project.id must be"),
        (_ls, {"action": "ANNOTATION_CREATED", "project": {"id": -1}}, "project.id must be"),
        (_ls, {"action": "ANNOTATION_CREATED", "project": {}}, "payload has no project.id"),
        (
            _ls,
            {"action": "ANNOTATION_UPDATED", "project": {"id": 2}, "annotation": [1]},
            "field 'annotation' must be a JSON object",
        ),
        (_ls, {"action": ["ANNOTATION_CREATED"]}, "field 'action' must be a string"),
    ],
    ids=[
        "cvat-job-string",
        "cvat-job-list",
        "cvat-before-update-list",
        "cvat-job-id-path",
        "cvat-job-id-negative",
        "cvat-job-id-zero",
        "cvat-job-id-huge",
        "cvat-job-id-bool",
        "cvat-job-id-float",
        "cvat-job-id-missing",
        "cvat-event-number",
        "cvat-task-id-string",
        "cvat-task-string",
        "cvat-task-id-null",
        "cvat-webhook-id-string",
        "ls-project-number",
        "ls-project-id-string",
        "ls-project-id-negative",
        "ls-project-id-missing",
        "ls-annotation-list",
        "ls-action-list",
    ],
)
def test_malformed_signed_payloads_are_400_and_queue_nothing(app, send, payload, message):
    res = send(app.test_client(), payload)
    assert res.status_code == 400 and res.is_json
    assert message in res.get_json()["error"]
    assert app.extensions["labelgate_queue"].jobs() == []


def test_well_formed_ids_still_queue(app):
    client = app.test_client()
    assert _cvat(client, _save({"id": 2147483647})).status_code == 202
    res = _ls(client, {"action": "ANNOTATION_CREATED", "project": {"id": 3}})
    assert res.status_code == 202
    targets = sorted(j["target"] for j in app.extensions["labelgate_queue"].jobs())
    assert targets == ["job:2147483647", "project:3"]


def test_every_error_is_json_never_an_html_page(app, monkeypatch, caplog):
    client = app.test_client()
    for res in (
        client.get("/no/such/page"),
        client.delete("/healthz"),
        client.post("/webhooks/cvat", data=b"{" * 200_000),  # unsigned: 401 before parsing
    ):
        assert res.is_json and not res.data.lstrip().startswith(b"<"), res.data[:100]
    assert client.get("/no/such/page").status_code == 404
    assert client.delete("/healthz").status_code == 405

    def boom(*_a, **_k):
        raise RuntimeError("unexpected failure with password=hunter2-secret")

    store = app.extensions["labelgate_store"]
    monkeypatch.setattr(store, "get_report", boom)
    monkeypatch.setenv("LABELGATE_DB_PASSWORD", "hunter2-secret")
    res = client.get("/reports/" + "A" * 22, headers={"Authorization": f"Bearer {TOKEN}"})
    assert res.status_code == 500 and res.is_json
    assert res.get_json()["error"] == "internal error (RuntimeError); see the server log"
    # The log has the traceback for the operator, with the secret masked.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError: unexpected failure with password=***" in logged
    assert "hunter2-secret" not in logged and "Traceback" in logged


def test_deeply_nested_json_is_a_400_not_a_crash(app):
    body = b"[" * 100_000 + b"]" * 100_000
    res = app.test_client().post(
        "/webhooks/cvat",
        data=body,
        headers={"X-Signature-256": cvat_signature(body, "cvat-secret")},
    )
    # Over MAX_CONTENT_LENGTH? No: 200 kB < 1 MiB, so it reaches the parser.
    assert res.status_code == 400 and res.get_json() == {"error": "the body is not valid JSON"}


def test_an_event_that_cannot_be_queued_is_a_503(app, monkeypatch):
    import sqlite3

    def full(*_a, **_k):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(app.extensions["labelgate_queue"], "enqueue", full)
    res = _cvat(app.test_client(), _save({"id": 4}))
    assert res.status_code == 503 and res.is_json
    assert re.search(
        r"queue cannot take the event: OperationalError: database or disk is full",
        res.get_json()["error"],
    )
