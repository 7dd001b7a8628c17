"""A quality run computes each engine result once, and every decision is a function of the run.

The engine entry points are wrapped in every loaded ``labelgate`` module that holds them (so a
new module that imports one and recomputes is counted too). With 3 annotators and ground truth,
a run compares 3 times, matches each of the 3 annotator pairs once, builds the agreement report
once (its per-control pass once), and matches 3 + 3 = 6 times in all.
"""

import importlib
import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from ls_seed import close, ensure_users, import_bundled

from labelgate.cli import main
from labelgate.decisions.gate import GatePolicy, gate_for
from labelgate.decisions.scorecards import alerts_for, per_label_for, scorecards_for
from labelgate.reporting.pipeline import bundle_for
from labelgate.run import RunOptions, run_quality
from labelgate.run_sources import FileSource, PushingSource, Source

EX = Path(__file__).resolve().parents[2] / "examples"
CVAT = EX / "cvat"
DS = [CVAT / f"annotator{i}.xml" for i in (1, 2, 3)]
FILE_ARGS = ["--gt", str(CVAT / "gt.xml"), *[a for p in DS for a in ("--ds", str(p))]]
#: (module, function): the engine computations a run must not repeat.
ENGINE = [
    ("labelgate.engine.compare", "compare"),
    ("labelgate.engine.matching", "match_annotations"),
    ("labelgate.agreement.report", "agreement_report"),
    ("labelgate.agreement.report", "pair_agreement"),
    ("labelgate.agreement.controls", "control_accuracy"),
    ("labelgate.agreement.controls", "control_agreement"),
]
ONCE = {
    "compare": 3,
    "pair_agreement": 3,
    "agreement_report": 1,
    "control_agreement": 1,  # the agreement report's per-control pass; {} without controls
    "match_annotations": 6,
}


@pytest.fixture
def calls(monkeypatch):
    """Counts of the engine functions, wherever they are looked up."""
    # Import every module that may hold a reference before patching (CLI commands load lazily).
    for name in (
        "labelgate.run",
        "labelgate.decisions.gate",
        "labelgate.decisions.scorecards",
        "labelgate.reporting.pipeline",
        "labelgate.cli.report_cmd",
        "labelgate.cli.decisions_cmd",
    ):
        importlib.import_module(name)
    counts: Counter = Counter()
    for module_name, func_name in ENGINE:
        original = getattr(sys.modules[module_name], func_name)

        def counted(*args, _f=original, _n=func_name, **kwargs):
            counts[_n] += 1
            return _f(*args, **kwargs)

        patched = 0
        for mod in list(sys.modules.values()):
            if getattr(mod, "__name__", "").startswith("labelgate") and (
                getattr(mod, func_name, None) is original
            ):
                monkeypatch.setattr(mod, func_name, counted)
                patched += 1
        assert patched, f"{module_name}.{func_name} is referenced nowhere"
    return counts


def invoke(args):
    res = CliRunner().invoke(main, args)
    assert res.exit_code in (0, 1), res.stderr
    return res


def test_report_command_computes_everything_once(calls, tmp_path):
    out = tmp_path / "r.json"
    report = ["report", *FILE_ARGS, "--policy", str(EX / "gate.toml"), "--no-history"]
    invoke([*report, "--json", str(out), "--quiet"])
    assert dict(calls) == ONCE
    bundle = json.loads(out.read_text())
    assert set(bundle["comparisons"]) == {"annotator1", "annotator2", "annotator3"}
    assert bundle["agreement"]["summary"]["annotator_pairs"] == 3


def test_gate_and_scorecards_commands_compute_once(calls, tmp_path):
    invoke(["gate", *FILE_ARGS, "--policy", str(EX / "gate.toml"), "--quiet"])
    assert dict(calls) == ONCE
    calls.clear()
    invoke(["scorecards", *FILE_ARGS, "--no-store", "--quiet"])
    assert dict(calls) == ONCE


def test_run_quality_then_decisions_call_no_engine(calls):
    run = run_quality(FileSource(gt=CVAT / "gt.xml", ds=tuple(DS)), options=RunOptions(n_boot=0))
    assert dict(calls) == ONCE
    calls.clear()
    policy = GatePolicy.from_toml(EX / "gate.toml")
    cards = scorecards_for(run)
    per_label_for(run)
    alerts_for(run, cards, agreement_history=[0.99], current_agreement=run.agreement.headline)
    gate = gate_for(run, policy)
    bundle = bundle_for(run, policy=policy)
    assert dict(calls) == {}
    # The bundle's sections are the same functions' values (the run is not mutated by them).
    assert bundle["scorecards"] == cards and bundle["gate"]["checks"] == gate["checks"]


def test_predictions_are_compared_once_and_kept_out_of_agreement(calls):
    source = FileSource(gt=CVAT / "gt.xml", ds=tuple(DS), predictions=(CVAT / "predictions.xml",))
    run = run_quality(source, options=RunOptions(n_boot=0))
    # 3 annotator pairs + each annotator against the only model (the rubber-stamping check).
    assert calls["compare"] == 4 and calls["pair_agreement"] == 3 + 3
    assert run.model == "prediction:predictions" and set(run.model_agreement) == set(run.humans)
    assert run.humans == ("annotator1", "annotator2", "annotator3")
    assert set(run.comparisons) == {*run.humans, "prediction:predictions"}


def test_file_source_is_a_source_without_push_or_events():
    files = FileSource(gt=CVAT / "gt.xml", ds=(DS[0],))
    assert isinstance(files, Source) and not isinstance(files, PushingSource)
    assert files.parse_event({"event": "update:job"}) is None
    assert files.paths == (CVAT / "gt.xml", DS[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give SOURCE"),
        ({"source": CVAT / "gt.xml", "gt": CVAT / "gt.xml"}, "not both"),
        ({"source": EX / "labelstudio/export.json", "predictions": (DS[0],)}, "--predictions"),
    ],
    ids=["nothing", "both-forms", "predictions-with-source"],
)
def test_file_source_rejects_incomplete_input(kwargs, message):
    from labelgate.errors import ValidationError

    with pytest.raises(ValidationError, match=message):
        FileSource(**kwargs)


def test_set_based_wrappers_build_one_run_each(calls):
    from labelgate.cli.options import load_multi
    from labelgate.decisions.gate import evaluate_gate
    from labelgate.decisions.scorecards import scorecards

    aset = load_multi(None, CVAT / "gt.xml", tuple(DS), None)
    calls.clear()
    evaluate_gate(aset, GatePolicy.from_toml(EX / "gate.toml"))
    assert dict(calls) == ONCE
    calls.clear()
    evaluate_gate(aset, GatePolicy.from_mapping({"max_missing_rate": 0.1}))
    # No agreement check in the policy: no agreement computed, only the comparisons.
    assert dict(calls) == {"compare": 3, "match_annotations": 3}
    calls.clear()
    scorecards(aset)
    assert dict(calls) == ONCE


def test_file_source_reports_each_file_it_reads():
    seen = []
    files = FileSource(gt=CVAT / "gt.xml", ds=(DS[0],), on_read=lambda *a: seen.append(a))
    batch = files.pull()
    assert seen == [("reading gt.xml", 0, 2), ("reading annotator1.xml", 1, 2)]
    assert batch.aset.annotations.annotators == ("ground_truth", "annotator1")
    assert batch.target.system == "cvat" and batch.project.startswith("file:")


def test_cvat_task_is_one_run_on_both_eras(calls, cvat_double, tmp_path, monkeypatch):
    """Task 10 has 3 annotation jobs: 3 comparisons and one agreement report, the stored job,
    task and bundle reports included (the bundle reads the same run); on 2.80 (requirement
    mode) each job is also scored by requirement once."""
    import labelgate.run
    from labelgate.store import open_store
    from labelgate_cvat.client import connect
    from labelgate_cvat.pipeline import score_target
    from labelgate_cvat.source import CvatRunSource

    by_requirement = labelgate.run.compare_requirements

    def counted(*args, **kwargs):
        calls["compare_requirements"] += 1
        before = calls["compare"]
        try:
            return by_requirement(*args, **kwargs)
        finally:  # a requirement matches with its own thresholds: its comparisons are its own
            calls["compare_inside_requirements"] += calls["compare"] - before

    monkeypatch.setattr(labelgate.run, "compare_requirements", counted)
    client = connect(cvat_double.url, token=cvat_double.token, retries=1, backoff=0.01)
    with client as src, open_store(f"sqlite:///{tmp_path}/s.db") as store:
        assert isinstance(CvatRunSource(src), PushingSource)
        score = score_target(src, "task", 10, store=store)
        assert {"job:101", "job:102", "job:103", "task:10", "bundle:task:10"} <= set(
            score.report_ids
        )
    assert calls["compare"] - calls["compare_inside_requirements"] == 3
    assert calls["agreement_report"] == 1
    requirements = cvat_double.era >= (2, 74, 0)
    assert score.semantics == ("cvat-requirements" if requirements else "cvat-2.42")
    assert calls["compare_requirements"] == (3 if requirements else 0)
    assert calls["pair_agreement"] == 3  # the 3 job annotators' pairs, each matched once
    (task,) = score.tasks
    assert set(task.run.comparisons) == {"annotator1", "annotator2", "annotator3"}
    assert task.job_reports[103] is task.run.comparisons["annotator3"].report


# --- Label Studio and the worker (a real Label Studio server) ----------------------------------

LS_EX = EX / "labelstudio"
LS_TASKS = 6


def _ls_project(ls_server) -> tuple[int, list[str]]:
    """The bundled export's first tasks in a new project: ground truth plus 3 annotators, each
    a user of the server. Returns the project id and the annotators' emails."""
    from label_studio_sdk import LabelStudio

    client = LabelStudio(base_url=ls_server.url, api_key=ls_server.api_key)
    ids = ensure_users(client, {f"count{i}@example.com": f"count{i}" for i in (1, 2, 3)})
    # The bundled annotators' work, each done by a counting user.
    users = {f"annotator{i}@example.com": ids[f"count{i}@example.com"] for i in (1, 2, 3)}
    project_id, _request = import_bundled(
        client, "labelgate call counts", LS_TASKS, users, predictions=False, lead_time=False
    )
    close(client)
    return project_id, list(ids)


def ls_once() -> dict[str, int]:
    """What one run of a 3-annotator Label Studio project computes (see the module docstring
    for the whole-set part): one comparison per annotator and one match per annotator pair.
    The per-control accuracy and agreement of the region controls (RectangleLabels bbox,
    PolygonLabels sign) are those controls' shares of the same comparisons and matches
    (matching keeps controls apart); the agreement report, the per-control agreement and the
    per-control accuracy run once each."""
    return {
        "compare": 3,
        "pair_agreement": 3,
        "agreement_report": 1,
        "control_agreement": 1,
        "control_accuracy": 1,
    }


def _engine_only(counts):
    # match_annotations is the matcher under compare and pair_agreement; counted above.
    return {k: v for k, v in counts.items() if k != "match_annotations"}


def test_label_studio_score_computes_everything_once(calls, ls_server, tmp_path):
    project, emails = _ls_project(ls_server)
    out = tmp_path / "ls.json"
    args = [
        "ls",
        "score",
        "--project",
        str(project),
        "--url",
        ls_server.url,
        "--api-key",
        ls_server.api_key,
    ]
    store = f"sqlite:///{tmp_path / 's.db'}"
    calls.clear()
    invoke([*args, "--store", store, "--json", str(out), "--quiet"])
    assert _engine_only(calls) == ls_once()
    result = json.loads(out.read_text())
    assert set(result["annotators"]) == set(emails)
    assert result["agreement"]["summary"]["annotator_pairs"] == 3
    assert result["report_id"]


def test_worker_rescore_computes_once_and_its_report_has_a_page(
    calls, ls_server, tmp_path, monkeypatch
):
    """A Label Studio webhook queues a re-score; the worker runs it (one quality run) and the
    stored report opens at /reports/<id>.html naming the project's annotators."""
    from labelgate_webhook import create_app
    from labelgate_webhook.jobs import handlers

    monkeypatch.setenv("LABELGATE_LS_URL", ls_server.url)
    monkeypatch.setenv("LABELGATE_LS_API_KEY", ls_server.api_key)
    project, emails = _ls_project(ls_server)
    app = create_app(
        {
            "STORE_URL": f"sqlite:///{tmp_path / 's.db'}",
            "QUEUE_PATH": str(tmp_path / "q.db"),
            "LS_WEBHOOK_SECRET": "hook-secret",
            "DEBOUNCE_SECONDS": 0,
            "WORKER": False,
        }
    )
    client = app.test_client()
    event = {"action": "ANNOTATION_CREATED", "project": {"id": project}, "annotation": {"id": 1}}
    answer = client.post(
        "/webhooks/labelstudio", json=event, headers={"X-Labelgate-Secret": "hook-secret"}
    )
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["target"] == f"project:{project}"
    queue, store = app.extensions["labelgate_queue"], app.extensions["labelgate_store"]
    calls.clear()
    job = queue.run_once(handlers(store, app.extensions["labelgate_config"]))
    assert job is not None
    assert [(j["target"], j["status"], j["error"]) for j in queue.jobs()] == [
        (f"project:{project}", "done", None)
    ]
    assert _engine_only(calls) == ls_once()
    (row,) = store.list_reports(project=f"labelstudio:{project}", kind="bundle")
    assert (row.source, row.target) == ("labelstudio", f"project:{project}")
    page = client.get(f"/reports/{row.id}.html")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert all(email in html for email in emails)
    as_json = client.get(f"/reports/{row.id}").get_json()
    assert as_json["kind"] == "bundle" and set(as_json["report"]["annotators"]) == set(emails)
