"""Every report a CVAT run stores has a page: the run's bundle and CVAT's own job, task and
project reports (2.42 shape, or requirement shape on a 2.80 server), on both eras."""

from labelgate.store import open_store
from labelgate_cvat.client import connect
from labelgate_cvat.pipeline import score_target
from labelgate_webhook import create_app


def test_every_stored_cvat_report_opens_as_a_page(cvat_double, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    client = connect(cvat_double.url, token=cvat_double.token, retries=1, backoff=0.01)
    with client as src, open_store(url) as store:
        score = score_target(src, "project", 1, store=store)
    ids = score.report_ids
    # the jobs of task 10, the task, its bundle and the project
    assert {"job:101", "task:10", "bundle:task:10", "project:1"} <= set(ids)
    app = create_app({"STORE_URL": url, "QUEUE_PATH": str(tmp_path / "q.db"), "TESTING": True})
    web = app.test_client()
    requirement_mode = cvat_double.era >= (2, 74, 0)
    for key, rid in ids.items():
        page = web.get(f"/reports/{rid}.html")
        assert page.status_code == 200, (key, page.get_data(as_text=True)[:300])
        text = page.get_data(as_text=True)
        if key.startswith(("job:", "task:", "project:")):
            assert f"CVAT {key.replace(':', ' ')}" in text
            # requirement-shaped reports show the requirement table instead of 2.42's cards
            assert ("requirements completed" in text) == requirement_mode
    app.extensions["labelgate_store"].close()
