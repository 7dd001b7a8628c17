"""End to end: the real Label Studio server calls labelgate's webhook on a new annotation, the
embedded worker re-scores the project, and the score columns and the review view appear in Label Studio."""

import json
import threading
import time
from pathlib import Path

import waitress
from services_plugin import free_port

from labelgate_labelstudio.client import REVIEW_VIEW, SCORE_FIELD, connect
from labelgate_labelstudio.pushback import CONFLICTS_FIELD
from labelgate_labelstudio.webhooks import install_webhook
from labelgate_webhook import create_app

EX = Path(__file__).resolve().parents[2] / "examples" / "labelstudio"


def test_new_annotation_triggers_rescore_and_push_back(ls_server, tmp_path, monkeypatch):
    from label_studio_sdk import LabelStudio

    monkeypatch.setenv("LABELGATE_LS_URL", ls_server.url)
    monkeypatch.setenv("LABELGATE_LS_API_KEY", ls_server.api_key)
    client = LabelStudio(base_url=ls_server.url, api_key=ls_server.api_key)
    proj = client.projects.create(
        title="labelgate webhook e2e", label_config=(EX / "config.xml").read_text()
    )
    tasks = json.loads((EX / "export.json").read_text())[:2]
    client.projects.import_tasks(
        id=proj.id,
        request=[
            {"data": t["data"], "annotations": [{"result": t["annotations"][1]["result"]}]}
            for t in tasks
        ],
    )
    task_ids = sorted(t.id for t in client.tasks.list(project=proj.id))

    port = free_port()
    app = create_app(
        {
            "STORE_URL": f"sqlite:///{tmp_path / 's.db'}",
            "QUEUE_PATH": str(tmp_path / "q.db"),
            "LS_WEBHOOK_SECRET": "hook-secret",
            "DEBOUNCE_SECONDS": 0.5,
            "WORKER": True,
            "WORKER_POLL": 0.2,
        }
    )
    server = waitress.create_server(app, host="127.0.0.1", port=port, threads=2)
    closing = threading.Event()

    def serve() -> None:
        try:
            server.run()
        except OSError:  # the loop's select() on a socket closed by server.close() below
            if not closing.is_set():
                raise

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}/webhooks/labelstudio"
        with connect() as src:
            first = install_webhook(src, proj.id, url, "X-Labelgate-Secret", "hook-secret")
            again = install_webhook(src, proj.id, url, "X-Labelgate-Secret", "hook-secret")
        assert first.hook_id == again.hook_id  # idempotent registration
        # An annotator saves a second annotation: Label Studio calls the receiver.
        client.annotations.create(id=task_ids[0], result=tasks[0]["annotations"][2]["result"])
        deadline = time.monotonic() + 60
        queue = app.extensions["labelgate_queue"]
        while time.monotonic() < deadline:
            jobs = queue.jobs()
            if jobs and all(j["status"] in ("done", "failed") for j in jobs):
                break
            time.sleep(0.5)
        assert [(j["target"], j["status"], j["error"]) for j in queue.jobs()] == [
            (f"project:{proj.id}", "done", None)
        ]
        data = client.tasks.get(id=task_ids[0]).data
        # Label Studio marks a task's first imported annotation as its ground truth, so the new
        # annotation is scored against it: the score column and the conflicts column are set.
        assert 0 <= data[SCORE_FIELD] <= 1
        assert data[CONFLICTS_FIELD] in ("", "admin@example.com"), data
        views = [
            v
            for v in client.views.list(project=proj.id)
            if (v.data or {}).get("title") == REVIEW_VIEW
        ]
        assert len(views) == 1
    finally:
        _, stop = app.extensions["labelgate_worker"]
        stop.set()
        closing.set()
        server.close()
        thread.join(5)
        app.extensions["labelgate_store"].close()
        app.extensions["labelgate_queue"].close()
        client._client_wrapper.httpx_client.httpx_client.close()
