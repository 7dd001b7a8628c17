"""Label Studio webhook secrets per project: one `serve` accepts each project's own secret, a
wrong one is refused and logged with the project id; `webhooks install` keeps a project's secret
unless --rotate (against the real Label Studio server)."""

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from labelgate.cli import main
from labelgate.store import open_store
from labelgate.webhook_secrets import save_secret, secret_matches
from labelgate_webhook import create_app

EX = Path(__file__).resolve().parents[2] / "examples" / "labelstudio"
HEADER = "X-Labelgate-Secret"


def _app(tmp_path, **extra):
    app = create_app(
        {
            "STORE_URL": f"sqlite:///{tmp_path / 'store.db'}",
            "QUEUE_PATH": str(tmp_path / "q.db"),
            "DEBOUNCE_SECONDS": 30,
            "TESTING": True,
            **extra,
        }
    )
    engine = app.extensions["labelgate_store"].engine
    save_secret(engine, "labelstudio", 1, "secret-of-one")
    save_secret(engine, "labelstudio", 2, "secret-of-two")
    return app


def _deliver(client, project, secret):
    body = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": project},
        "annotation": {"id": 10 * project},
    }
    headers = {HEADER: secret} if secret is not None else {}
    return client.post("/webhooks/labelstudio", json=body, headers=headers)


def test_each_project_is_accepted_with_its_own_secret_only(tmp_path, caplog):
    app = _app(tmp_path)
    client = app.test_client()
    try:
        one = _deliver(client, 1, "secret-of-one")
        two = _deliver(client, 2, "secret-of-two")
        assert (one.status_code, two.status_code) == (202, 202)
        assert [j["target"] for j in app.extensions["labelgate_queue"].jobs()] == [
            "project:1",
            "project:2",
        ]
        with caplog.at_level(logging.WARNING, logger=app.logger.name):
            crossed = _deliver(client, 2, "secret-of-one")  # project 1's secret for project 2
            missing = _deliver(client, 2, None)
            unknown = _deliver(client, 3, "secret-of-one")  # no secret stored, no global one
        assert [r.status_code for r in (crossed, missing, unknown)] == [401, 401, 401]
        assert "Label Studio project 2" in crossed.get_json()["error"]
        logged = [r.getMessage() for r in caplog.records]
        assert sum("Label Studio project 2" in m for m in logged) == 2
        assert any("Label Studio project 3" in m for m in logged)
        assert not any("secret-of" in m for m in logged)  # the secrets are never logged
    finally:
        app.extensions["labelgate_store"].close()
        app.extensions["labelgate_queue"].close()


def test_the_global_secret_serves_only_projects_without_their_own(tmp_path):
    app = _app(tmp_path, LS_WEBHOOK_SECRET="global-secret")
    client = app.test_client()
    try:
        assert _deliver(client, 3, "global-secret").status_code == 202
        assert _deliver(client, 1, "global-secret").status_code == 401
        assert _deliver(client, 1, "secret-of-one").status_code == 202
    finally:
        app.extensions["labelgate_store"].close()
        app.extensions["labelgate_queue"].close()


def test_install_keeps_the_secret_unless_rotated(ls_server, tmp_path, monkeypatch):
    from label_studio_sdk import LabelStudio

    monkeypatch.setenv("LABELGATE_LS_URL", ls_server.url)
    monkeypatch.setenv("LABELGATE_LS_API_KEY", ls_server.api_key)
    client = LabelStudio(base_url=ls_server.url, api_key=ls_server.api_key)
    projects = [
        client.projects.create(
            title=f"labelgate secrets {i}", label_config=(EX / "config.xml").read_text()
        ).id
        for i in (1, 2)
    ]
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    url = "http://127.0.0.1:9/webhooks/labelstudio"

    def install(project, *extra):
        args = ["webhooks", "install", "--ls-project", str(project), "--url", url]
        res = CliRunner().invoke(main, [*args, "--store", store_url, *extra])
        assert res.exit_code == 0, res.output
        (hook,) = [w for w in client.webhooks.list(project=project) if w.url == url]
        return res.output, hook.headers[HEADER]

    try:
        out, first = install(projects[0])
        assert "new secret" in out and first not in out  # never printed
        out, again = install(projects[0])
        assert "kept its secret" in out and again == first
        _, other = install(projects[1])
        assert other != first  # every project has its own
        out, rotated = install(projects[0], "--rotate")
        assert "rotated" in out and rotated != first
        with open_store(store_url) as store:
            assert secret_matches(store.engine, "labelstudio", projects[0], rotated) is True
            assert secret_matches(store.engine, "labelstudio", projects[0], first) is False
            assert secret_matches(store.engine, "labelstudio", projects[1], other) is True
        # What serve sees: deliveries of both projects with their own secrets pass.
        app = create_app(
            {"STORE_URL": store_url, "QUEUE_PATH": str(tmp_path / "q.db"), "TESTING": True}
        )
        try:
            http = app.test_client()
            assert _deliver(http, projects[0], rotated).status_code == 202
            assert _deliver(http, projects[1], other).status_code == 202
            assert _deliver(http, projects[0], first).status_code == 401
        finally:
            app.extensions["labelgate_store"].close()
            app.extensions["labelgate_queue"].close()
    finally:
        client._client_wrapper.httpx_client.httpx_client.close()


@pytest.mark.parametrize(
    ("body", "project"),
    [
        (b"not json", None),
        (json.dumps({"project": {"id": True}}).encode(), None),
        (json.dumps({"project": {"id": 5}}).encode(), 5),
        (json.dumps([1]).encode(), None),
    ],
    ids=["not-json", "bool-id", "id", "not-object"],
)
def test_project_id_of_a_delivery(body, project):
    from labelgate_webhook.signatures import labelstudio_project

    assert labelstudio_project(body) == project
