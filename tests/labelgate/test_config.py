"""One configuration file for every entry point (issue #15): the same file with ``store_url``,
``[quality]``, ``[gate]`` and ``[server]`` is read by ``report``, ``gate``, ``cvat score`` and the
web app (``ls score``: tests/labelgate_labelstudio/test_ls_settings_live.py); bad values name the
file, section and key; precedence is file < environment < flag."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from labelgate.cli import main
from labelgate.config import OWNER, load, load_for_cli, read_file
from labelgate.config_server import ServerSettings
from labelgate.decisions.gate import GatePolicy
from labelgate.engine import QualitySettings
from labelgate.errors import SettingsError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GT, DS = EXAMPLES / "cvat" / "gt.xml", EXAMPLES / "cvat" / "annotator1.xml"

ONE_FILE = """\
store_url = "{store}"

[quality]
iou_threshold = 0.55
compare_groups = false

[gate]
max_missing_rate = 0.25
[gate.audit]
size = 3
seed = 11

[server]
debounce_seconds = 7
retry_attempts = 4
ls_threshold = 0.6
"""


@pytest.fixture
def one_file(tmp_path, monkeypatch):
    for name in ("LABELGATE_CONFIG", "LABELGATE_STORE_URL", "LABELGATE_IOU_THRESHOLD"):
        monkeypatch.delenv(name, raising=False)
    store = tmp_path / "from-file.db"
    path = tmp_path / "labelgate.toml"
    path.write_text(ONE_FILE.format(store=f"sqlite:///{store}"))
    return path, store


def test_the_file_reads_into_every_section(one_file):
    path, store = one_file
    cfg = read_file(path)
    assert cfg.settings().iou_threshold == 0.55 and cfg.settings().compare_groups is False
    assert cfg.gate == GatePolicy(max_missing_rate=0.25, audit_size=3, audit_seed=11)
    assert cfg.server.store_url == f"sqlite:///{store}"
    assert (cfg.server.debounce_seconds, cfg.server.retry_attempts) == (7.0, 4)
    assert cfg.server.ls_threshold == 0.6
    # The file sits over the source's stored settings (CVAT's), key by key.
    stored = {"iou_threshold": 0.9, "oks_sigma": 0.2, "id": 3}
    assert (cfg.settings(stored).iou_threshold, cfg.settings(stored).oks_sigma) == (0.55, 0.2)


def test_report_reads_quality_gate_and_store_url_from_the_file(one_file, tmp_path):
    path, store = one_file
    out = tmp_path / "bundle.json"
    args = ["report", "--gt", str(GT), "--ds", str(DS), "--settings", str(path)]
    res = CliRunner().invoke(main, [*args, "--json", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    bundle = json.loads(out.read_text())
    assert bundle["settings"]["iou_threshold"] == 0.55
    assert bundle["settings"]["compare_groups"] is False
    missing = next(c for c in bundle["gate"]["checks"] if c["check"] == "missing_label_rate")
    assert missing["threshold"] == 0.25  # the file's [gate], with no --policy
    assert len(bundle["gate"]["audit_sample"]) == 3
    assert store.exists()  # the file's store_url, with no --store


def test_gate_takes_the_same_file_as_policy_and_settings(one_file, tmp_path):
    path, _ = one_file
    out = tmp_path / "gate.json"
    args = ["gate", "--gt", str(GT), "--ds", str(DS), "--policy", str(path)]
    res = CliRunner().invoke(main, [*args, "--settings", str(path), "--json", str(out), "--quiet"])
    assert res.exit_code in (0, 1), res.output  # a verdict, not a refused file
    result = json.loads(out.read_text())
    assert [c["threshold"] for c in result["checks"] if c["check"] == "missing_label_rate"] == [
        0.25
    ]


def test_create_app_reads_the_file(one_file, tmp_path):
    from labelgate_webhook import create_app

    path, store = one_file
    app = create_app({"CONFIG_FILE": str(path), "QUEUE_PATH": str(tmp_path / "q.db")})
    try:
        assert app.config["DEBOUNCE_SECONDS"] == 7.0 and app.config["RETRY_ATTEMPTS"] == 4
        assert app.config["STORE_URL"] == f"sqlite:///{store}"
        cfg = app.extensions["labelgate_config"]  # what the embedded worker's re-scores use
        assert cfg.settings().iou_threshold == 0.55 and cfg.server.ls_threshold == 0.6
    finally:
        app.extensions["labelgate_queue"].close()
        app.extensions["labelgate_store"].close()


def test_cvat_score_reads_the_file(one_file, cvat_env, tmp_path):
    path, store = one_file
    out = tmp_path / "r.json"
    args = ["cvat", "score", "--task", "10", "--settings", str(path), "--json", str(out)]
    res = CliRunner().invoke(main, [*args, "--quiet"])
    assert res.exit_code == 0, res.output
    from labelgate.store import open_store

    with open_store(f"sqlite:///{store}") as st:  # the file's store_url
        reports = st.list_reports()
    assert reports, "no report in the file's store"
    # Task 10's CVAT settings say 0.9 (docs: the file is layered over them).
    assert {r.settings["iou_threshold"] for r in reports if r.settings} == {0.55}


# --- bad values: one table, one message style -------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[quality]\niou_threshold = 1.5\n", "[quality] iou_threshold: 1.5 is out of range [0, 1]"),
        ("[quality]\ncompare_groups = 'yes'\n", "[quality] compare_groups: expected true or false"),
        ("[quality]\niou = 0.5\n", "[quality] iou: unknown key in [quality]; known:"),
        (
            '[quality]\ntarget_metric = "f1"\n',
            "[quality] target_metric: expected one of accuracy, precision",
        ),
        ("[gate]\nmin_agreement = 2\n", "[gate] min_agreement: 2 is out of range [0, 1]"),
        (
            "[gate]\nmax_class_imbalance = 0.5\n",
            "[gate] max_class_imbalance: expected a number >= 1",
        ),
        ("[gate.audit]\nsize = -2\n", "[gate.audit] size: expected an integer >= 0, got -2"),
        ("[gate.audit]\ncount = 2\n", "[gate.audit] count: unknown key in [gate.audit]"),
        ("[server]\nthreads = 0\n", "[server] threads: expected an integer >= 1, got 0"),
        (
            "[server]\ndebounce_seconds = 'soon'\n",
            "[server] debounce_seconds: expected a number >= 0",
        ),
        ("[labelgate]\nworker = 3\n", "[labelgate] worker: expected true or false, got 3"),
        (
            "[server]\ndebounce = 3\n",
            "[server] debounce: unknown key in [server]; known: api_token",
        ),
        ("store = 'x'\n", "store: unknown key; known: tables [quality]"),
        ("server = 3\n", "[server]: expected a table, got 3"),
        (
            "[quality]\niou_threshold = 0.5\n[[requirement]]\nid = 'a'\n",
            "[quality] and [[requirement]]",
        ),
        ("requirement = 3\n", "[[requirement]]: expected an array of tables"),
    ],
    ids=lambda v: v.split("\n")[0][:24] if "\n" in v else None,
)
def test_bad_values_name_file_section_and_key_and_exit_2(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    args = ["report", "--gt", str(GT), "--ds", str(DS), "--settings", str(path), "--no-history"]
    res = CliRunner().invoke(main, [*args, "--quiet"])
    assert res.exit_code == 2, res.output
    assert f"{path}: {words}" in res.stderr, res.stderr
    assert "Traceback" not in res.output


def test_a_secret_is_never_echoed(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[server]\napi_token = 987654321\n")
    with pytest.raises(SettingsError, match=r"\[server\] api_token: expected a string") as err:
        read_file(path)
    assert "987654321" not in str(err.value)


def test_environment_values_are_parsed_and_named(tmp_path):
    with pytest.raises(SettingsError, match="environment: LABELGATE_IOU_THRESHOLD: expected a num"):
        load(environ={"LABELGATE_IOU_THRESHOLD": "high"})
    cfg = load(environ={"LABELGATE_WORKER": "yes", "LABELGATE_AUDIT_SIZE": "4"})
    assert cfg.server.worker is True and cfg.gate == GatePolicy(audit_size=4)


# --- precedence -----------------------------------------------------------------------------


def test_precedence_file_then_environment_then_flag(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        "[quality]\niou_threshold = 0.5\noks_sigma = 0.2\n"
        "[gate]\nmin_agreement = 0.5\n[server]\ndebounce_seconds = 5\nthreads = 2\n"
    )
    env = {
        "LABELGATE_CONFIG": str(path),  # the file by variable
        "LABELGATE_IOU_THRESHOLD": "0.6",
        "LABELGATE_OKS_SIGMA": "0.3",
        "LABELGATE_MIN_AGREEMENT": "0.6",
        "LABELGATE_DEBOUNCE_SECONDS": "6",
    }
    flags = {"iou_threshold": 0.7, "min_agreement": None, "debounce_seconds": 8}
    cfg = load(environ=env, flags=flags)
    s = cfg.settings({"iou_threshold": 0.1, "line_thickness": 0.05})
    assert s.line_thickness == 0.05  # stored only
    assert s.oks_sigma == 0.3  # env over file
    assert s.iou_threshold == 0.7  # flag over env, file and stored
    assert cfg.gate is not None and cfg.gate.min_agreement == 0.6  # None flag: not given
    assert (cfg.server.debounce_seconds, cfg.server.threads) == (8.0, 2)


def test_cli_flag_beats_environment_beats_file(tmp_path, monkeypatch):
    # compare --iou-threshold on a pair whose one box overlaps at IoU 0.6 (hand-computed):
    # [10,10,50,50] vs [20,10,60,50]: 1200 / (1600 + 1600 - 1200) = 0.6.
    gt, ds = tmp_path / "gt.json", tmp_path / "ds.json"
    for path, box in ((gt, [10, 10, 40, 40]), (ds, [20, 10, 40, 40])):
        path.write_text(
            json.dumps(
                {
                    "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
                    "categories": [{"id": 1, "name": "car"}],
                    "annotations": [
                        {"id": 1, "image_id": 1, "category_id": 1, "bbox": box, "area": 1600}
                    ],
                }
            )
        )
    cfg = tmp_path / "c.toml"
    cfg.write_text("[quality]\niou_threshold = 0.7\n")

    def matched(*extra: str) -> int:
        out = tmp_path / "r.json"
        args = ["compare", "--gt", str(gt), "--ds", str(ds), "--settings", str(cfg)]
        res = CliRunner().invoke(main, [*args, *extra, "--json", str(out)])
        assert res.exit_code == 0, res.output
        return int(json.loads(out.read_text())["summary"]["valid_count"])

    monkeypatch.delenv("LABELGATE_IOU_THRESHOLD", raising=False)
    assert matched() == 0  # file: 0.7 > 0.6
    monkeypatch.setenv("LABELGATE_IOU_THRESHOLD", "0.5")
    assert matched() == 1  # environment: 0.5 over the file
    assert matched("--iou-threshold", "0.65") == 0  # flag over the environment


# --- the shape of the configuration -----------------------------------------------------------


def test_section_fields_are_disjoint_and_all_owned():
    names = [
        f.name
        for cls in (QualitySettings, GatePolicy, ServerSettings)
        for f in dataclasses.fields(cls)
    ]
    assert len(names) == len(set(names)) == len(OWNER)


def test_top_level_keys_aliases_and_requirements(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        'store_url = "sqlite:///x.db"\nmin_agreement = 0.5\n'
        "[labelgate]\nthreads = 3\n"
        "[[requirement]]\nid = 'boxes'\nmetric = 'accuracy'\n"
        "[[requirement]]\nid = 'masks'\n"
    )
    cfg = read_file(path)
    assert cfg.server.store_url == "sqlite:///x.db" and cfg.server.threads == 3
    assert cfg.gate == GatePolicy(min_agreement=0.5)
    assert [dict(t) for t in cfg.requirements] == [
        {"id": "boxes", "metric": "accuracy"},
        {"id": "masks"},
    ]
    # A flat quality key at the top is [quality] too: it cannot stand beside requirements.
    path.write_text("iou_threshold = 0.45\n[[requirement]]\nid = 'boxes'\n")
    with pytest.raises(SettingsError, match=r"c\.toml: \[quality\] and \[\[requirement\]\]"):
        read_file(path)


def test_policy_file_without_gate_gives_the_default_policy(tmp_path, monkeypatch):
    monkeypatch.delenv("LABELGATE_CONFIG", raising=False)
    settings, policy = tmp_path / "s.toml", tmp_path / "p.toml"
    settings.write_text("[gate]\nmin_agreement = 0.9\n")
    policy.write_text("[server]\nthreads = 2\n")
    assert load_for_cli(settings, policy).gate == GatePolicy()  # the policy file decides
    assert load_for_cli(settings, None).gate == GatePolicy(min_agreement=0.9)
    assert load_for_cli(None, None).gate is None


def test_the_example_file_holds_every_section():
    cfg = read_file(EXAMPLES / "labelgate.toml")
    assert cfg.settings().iou_threshold == 0.5 and cfg.server.debounce_seconds == 10.0
    assert cfg.gate == GatePolicy.from_toml(EXAMPLES / "gate.toml")  # the same release policy
    assert cfg.server.store_url == "sqlite:///labelgate-example.db"
