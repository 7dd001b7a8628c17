"""Issue #19, data half, against a real Label Studio server: an NER project, a two-control
project, a multi-choice project, a project imported with every annotation marked ground truth,
and every export form. Expected values come from krippendorff, nltk, scikit-learn or by hand.
"""

import json
import time
import warnings
from itertools import combinations

import krippendorff
import numpy as np
import pytest
from click.testing import CliRunner
from ls_results import choices
from ls_seed import ensure_users

from labelgate.adapters import read_any
from labelgate.cli import main
from labelgate.errors import DataWarning
from labelgate_labelstudio.client import connect
from labelgate_labelstudio.json_export import ls_tasks_to_annotation_set
from labelgate_labelstudio.pipeline import score_project

NER_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Labels name="ner" toName="text"><Label value="PER"/><Label value="ORG"/></Labels>
  <TextArea name="summary" toName="text"/>
  <Rating name="quality" toName="text" maxRating="5"/>
</View>"""
TWO_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="scene" toName="image"><Choice value="day"/><Choice value="night"/></Choices>
  <Choices name="weather" toName="image">
    <Choice value="sun"/><Choice value="rain"/><Choice value="fog"/>
  </Choices>
</View>"""
MULTI_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="animals" toName="image" choice="multiple">
    <Choice value="cat"/><Choice value="dog"/><Choice value="bird"/>
  </Choices>
</View>"""


class Seeder:
    """Creates users and projects on the session's server through the SDK."""

    def __init__(self, server):
        from label_studio_sdk import LabelStudio

        self.server = server
        self.client = LabelStudio(base_url=server.url, api_key=server.api_key)
        names = ("a1", "a2", "a3", "lead")
        ids = ensure_users(self.client, {f"{n}.issue19@example.com": f"{n}-issue19" for n in names})
        self.users: dict[str, int] = {n: ids[f"{n}.issue19@example.com"] for n in names}

    def project(self, title, config, tasks):
        """tasks: [(data, [(user, result, ground_truth)], [(model_version, result)])]."""
        proj = self.client.projects.create(title=title, label_config=config)
        request = [
            {
                "data": data,
                "annotations": [
                    {"result": res, "completed_by": self.users[who], "ground_truth": gt}
                    for who, res, gt in anns
                ],
                "predictions": [
                    {"result": res, "model_version": mv, "score": 0.5} for mv, res in preds
                ],
            }
            for data, anns, preds in tasks
        ]
        self.client.projects.import_tasks(id=proj.id, request=request)
        ids = sorted(t.id for t in self.client.tasks.list(project=proj.id))
        return proj.id, ids

    def close(self):
        self.client._client_wrapper.httpx_client.httpx_client.close()


@pytest.fixture(scope="module")
def seeder(ls_server):
    s = Seeder(ls_server)
    yield s
    s.close()


def email(who):
    return f"{who}.issue19@example.com"


# --- NER: spans, a TextArea and a Rating -------------------------------------------------

TEXTS = ["Alice works at Acme.", "Bob met Carol.", "Dan joined Initech.", "Eve left."]
# Per task: (GT or None, a1, a2); each (spans [(start, end, label)], summary, rating).
NER = [
    (
        ([(0, 5, "PER"), (15, 19, "ORG")], "kitten", 4),
        ([(0, 5, "PER"), (15, 19, "ORG")], "kitten", 4),
        ([(0, 5, "PER"), (15, 19, "PER")], "sitting", 4),
    ),
    (
        ([(0, 3, "PER"), (8, 13, "PER")], "flaw", 2),
        ([(0, 3, "PER"), (8, 13, "PER")], "flaw", 2),
        ([(0, 3, "PER"), (8, 12, "PER")], "lawn", 3),
    ),
    (
        None,
        ([(0, 3, "PER"), (11, 18, "ORG")], "abc", 3),
        ([(0, 3, "PER"), (11, 18, "ORG")], "abd", 3),
    ),
    (None, ([(0, 3, "PER")], "x", 5), ([(0, 4, "PER")], "y", 1)),
]


def ner_result(text, answer):
    spans, summary, rating = answer
    out = [
        {
            "id": f"s{k}",
            "from_name": "ner",
            "to_name": "text",
            "type": "labels",
            "value": {"start": a, "end": b, "text": text[a:b], "labels": [lab]},
        }
        for k, (a, b, lab) in enumerate(spans)
    ]
    out.append(
        {
            "id": "t",
            "from_name": "summary",
            "to_name": "text",
            "type": "textarea",
            "value": {"text": [summary]},
        }
    )
    out.append(
        {
            "id": "r",
            "from_name": "quality",
            "to_name": "text",
            "type": "rating",
            "value": {"rating": rating},
        }
    )
    return out


@pytest.fixture(scope="module")
def ner_project(seeder):
    tasks = []
    for text, (gt, a1, a2) in zip(TEXTS, NER, strict=True):
        anns = [("a1", ner_result(text, a1), False), ("a2", ner_result(text, a2), False)]
        if gt is not None:
            anns.append(("lead", ner_result(text, gt), True))
        tasks.append(({"text": text}, anns, []))
    return seeder.project("issue19 NER", NER_CONFIG, tasks)


def test_ner_project_scores_per_control(ls_server, ner_project, tmp_path):
    project, ids = ner_project
    with connect(ls_server.url, ls_server.api_key) as src:
        res = score_project(src, project, threshold=0.8)
    # Accuracy against GT on the two gold tasks, by hand:
    # a1 equals GT everywhere; a2: exact span F1 2·1/4 on both tasks, partial 2·1/4 then 1.0
    # (Carol [8,12) overlaps [8,13)), edit similarity 1 − 3/7 (kitten/sitting) and
    # 1 − 2/4 (flaw/lawn), ratings equal on task 1 only.
    a1, a2 = res["annotators"][email("a1")], res["annotators"][email("a2")]
    assert a1["accuracy"] == pytest.approx(1.0)
    assert {c: v["value"] for c, v in a1["per_control"].items()} == {
        "ner": 1.0,
        "summary": 1.0,
        "quality": 1.0,
    }
    text_a2 = ((1 - 3 / 7) + (1 - 2 / 4)) / 2
    assert a2["per_control"]["ner"]["value"] == pytest.approx(0.5)
    assert a2["per_control"]["summary"]["value"] == pytest.approx(text_a2)
    assert a2["per_control"]["quality"]["value"] == pytest.approx(0.5)
    assert a2["accuracy"] == pytest.approx((0.5 + text_a2 + 0.5) / 3)
    # Agreement a1 × a2 over all four tasks, per control.
    controls = res["agreement"]["controls"]
    assert controls["ner"]["metric"] == "span_f1_exact"
    assert controls["ner"]["value"] == pytest.approx((0.5 + 0.5 + 1 + 0) / 4)
    assert controls["ner"]["span_f1_partial"] == pytest.approx((0.5 + 1 + 1 + 1) / 4)
    sims = [1 - 3 / 7, 1 - 2 / 4, 1 - 1 / 3, 0.0]
    assert controls["summary"]["value"] == pytest.approx(np.mean(sims))
    ratings = np.array([[4, 2, 3, 5], [4, 3, 3, 1]], dtype=float)
    assert controls["quality"]["alpha_interval"]["value"] == pytest.approx(
        krippendorff.alpha(reliability_data=ratings, level_of_measurement="interval")
    )
    assert controls["quality"]["value"] == pytest.approx(0.5)
    headline = np.mean([0.5, np.mean(sims), 0.5])
    assert res["agreement"]["summary"]["headline"] == pytest.approx(headline)
    # The review queue: gold tasks by accuracy, the others by agreement over their controls.
    t3 = (1.0 + (1 - 1 / 3) + 1.0) / 3  # spans equal, abc/abd, ratings equal
    t4 = 0.0  # Eve [0,3) vs [0,4), x/y, 5 vs 1
    assert res["tasks"][str(ids[2])]["score"] == pytest.approx(t3)
    assert res["tasks"][str(ids[3])]["score"] == pytest.approx(t4)
    t1 = (1.0 + (0.5 + (1 - 3 / 7) + 1.0) / 3) / 2  # 0.845: a2 erred, still above 0.8
    t2 = (1.0 + (0.5 + 0.5 + 0.0) / 3) / 2  # 0.667
    assert res["tasks"][str(ids[0])]["score"] == pytest.approx(t1)
    assert res["tasks"][str(ids[1])]["score"] == pytest.approx(t2)
    assert res["tasks"][str(ids[0])]["conflicting_annotators"] == [email("a2")]
    # --threshold alone decides: the gold task with one error but a score of 0.845 is not
    # flagged; the real disagreement (task 4) is.
    assert res["flagged"] == [ids[1], ids[3]]
    # The terminal says so too: a perfect annotator is 100.0%, not 0.0%.
    out = CliRunner().invoke(
        main,
        [
            "ls",
            "score",
            "--project",
            str(project),
            "--url",
            ls_server.url,
            "--api-key",
            ls_server.api_key,
        ],
    )
    assert out.exit_code == 0, out.output
    assert "100.0%" in out.output and " 0.0%" not in out.output
    assert "agreement on ner (span_f1_exact): 0.500" in out.output


# --- Two Choices controls ------------------------------------------------------------------

SCENE = [
    ("day", "day", "day"),
    ("night", "night", "day"),
    ("day", None, "day"),
    ("night", "night", "night"),
    ("day", "day", "night"),
    ("day", "day", "day"),
]
WEATHER = [
    ("sun", "sun", "sun"),
    ("rain", "rain", "rain"),
    ("fog", "fog", "fog"),
    ("sun", "rain", "sun"),
    ("rain", "rain", "rain"),
    ("sun", "sun", "fog"),
]


@pytest.fixture(scope="module")
def two_control_project(seeder):
    tasks = []
    for n, (scene, weather) in enumerate(zip(SCENE, WEATHER, strict=True)):
        anns = []
        for who, s, w in zip(("a1", "a2", "a3"), scene, weather, strict=True):
            res = [choices("weather", w)] + ([choices("scene", s)] if s else [])
            anns.append((who, res, False))
        tasks.append(({"image": f"https://example.com/img{n}.jpg"}, anns, []))
    return seeder.project("issue19 two controls", TWO_CONFIG, tasks)


def _nominal(rows, classes):
    data = np.array([[np.nan if v is None else classes.index(v) for v in r] for r in rows]).T
    return krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")


def test_two_choices_controls_are_two_variables(ls_server, two_control_project):
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    project, _ = two_control_project
    with connect(ls_server.url, ls_server.api_key) as src:
        res = score_project(src, project)
    controls = res["agreement"]["controls"]
    scene, weather = controls["scene"], controls["weather"]
    assert scene["krippendorff_alpha"]["value"] == pytest.approx(_nominal(SCENE, ["day", "night"]))
    assert weather["krippendorff_alpha"]["value"] == pytest.approx(
        _nominal(WEATHER, ["sun", "rain", "fog"])
    )
    table, _ = aggregate_raters(
        np.array([[["sun", "rain", "fog"].index(v) for v in r] for r in WEATHER])
    )
    assert weather["fleiss_kappa"]["value"] == pytest.approx(fleiss_kappa(table))

    # Exact match over the pairs that both answered (a2 skipped scene on task 3), by hand.
    def pairs(rows):
        return [
            float(r[i] == r[j])
            for r in rows
            for i, j in combinations(range(3), 2)
            if r[i] is not None and r[j] is not None
        ]

    # An annotator who skipped a control on a task they worked on scores 0 against a peer.
    scene_pairs = [float(r[i] == r[j]) for r in SCENE for i, j in combinations(range(3), 2)]
    assert scene["value"] == pytest.approx(np.mean(scene_pairs))
    assert weather["value"] == pytest.approx(np.mean(pairs(WEATHER)))
    assert scene["percent_agreement"]["value"] == pytest.approx(
        np.mean(
            [
                np.mean(
                    [float(r[i] == r[j]) for i, j in combinations(range(3), 2) if r[i] and r[j]]
                )
                for r in SCENE
            ]
        )
    )
    # Gwet's AC1 with the control's own class count (3 weather classes), by hand.
    ratings = np.array([[["sun", "rain", "fog"].index(v) for v in r] for r in WEATHER])
    pa = np.mean(
        [np.mean([float(r[i] == r[j]) for i, j in combinations(range(3), 2)]) for r in ratings]
    )
    pi = np.array([np.mean(ratings == k) for k in range(3)])
    pe = (pi * (1 - pi)).sum() / 2
    assert weather["gwet_ac1"]["value"] == pytest.approx((pa - pe) / (1 - pe))
    # The legacy tags block is the first control alone, never a mix of the two.
    tags = res["agreement"]["tags"]
    assert tags["classes"] == ["day", "night"]
    assert tags["coefficients"]["krippendorff_alpha"]["value"] == pytest.approx(
        scene["krippendorff_alpha"]["value"]
    )


# --- A multi-choice control ------------------------------------------------------------------

ANIMALS = [
    (["cat"], ["cat"], ["cat", "bird"]),  # bird only ever a second choice
    (["dog"], ["dog"], ["dog"]),
    (["cat", "dog"], ["cat"], ["dog"]),
    (["cat"], ["cat", "bird"], ["cat"]),
    (["dog"], ["cat"], ["dog"]),
]


@pytest.fixture(scope="module")
def multi_project(seeder):
    tasks = [
        (
            {"image": f"https://example.com/m{n}.jpg"},
            [
                (who, [choices("animals", *v)], False)
                for who, v in zip(("a1", "a2", "a3"), row, strict=True)
            ],
            [],
        )
        for n, row in enumerate(ANIMALS)
    ]
    return seeder.project("issue19 multi-choice", MULTI_CONFIG, tasks)


def test_multi_choice_gets_set_valued_agreement(ls_server, multi_project):
    from nltk.metrics.agreement import AnnotationTask
    from nltk.metrics.distance import jaccard_distance, masi_distance

    project, _ = multi_project
    with connect(ls_server.url, ls_server.api_key) as src:
        res = score_project(src, project)  # a class only seen as a second choice: no crash
    animals = res["agreement"]["controls"]["animals"]
    data = [
        (c, str(i), frozenset(v))
        for i, row in enumerate(ANIMALS)
        for c, v in zip("abc", row, strict=True)
    ]
    assert animals["alpha_masi"]["value"] == pytest.approx(
        AnnotationTask(data=data, distance=masi_distance).alpha()
    )
    assert animals["alpha_jaccard"]["value"] == pytest.approx(
        AnnotationTask(data=data, distance=jaccard_distance).alpha()
    )
    for cls in ("cat", "dog", "bird"):
        binary = np.array([[float(cls in v) for v in row] for row in ANIMALS]).T
        assert animals["per_class"][cls]["value"] == pytest.approx(
            krippendorff.alpha(reliability_data=binary, level_of_measurement="nominal")
        )
    sims = [
        1 - jaccard_distance(set(r[i]), set(r[j]))
        for r in ANIMALS
        for i, j in combinations(range(3), 2)
    ]
    assert animals["metric"] == "jaccard" and animals["value"] == pytest.approx(np.mean(sims))


# --- Imported with the ground-truth default ----------------------------------------------------


@pytest.fixture(scope="module")
def gt_default_project(seeder):
    """Every imported annotation marked ground truth, as an import does by default."""
    tasks = [
        (
            {"image": f"https://example.com/g{n}.jpg"},
            [
                (who, [choices("weather", v)], True)
                for who, v in zip(("a1", "a2", "a3"), row, strict=True)
            ],
            [("team-model", [choices("weather", row[0] if n % 2 else "fog")])],
        )
        for n, row in enumerate(WEATHER)
    ]
    return seeder.project("issue19 GT default", TWO_CONFIG, tasks)


@pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")
def test_several_gt_annotations_are_reported_and_chosen_by_policy(
    ls_server, gt_default_project, tmp_path
):
    project, ids = gt_default_project
    with connect(ls_server.url, ls_server.api_key) as src:
        with pytest.warns(DataWarning, match=r"6 task\(s\) have several ground-truth"):
            per_author = score_project(src, project)
        assert per_author["gt_conflicts"] == {
            str(t): [email("a1"), email("a2"), email("a3")] for t in ids
        }
        # per-author: nobody is ground truth; the three are annotators who agree or not.
        assert per_author["annotators"] == {}
        assert per_author["agreement"]["controls"]["weather"]["krippendorff_alpha"][
            "value"
        ] == pytest.approx(_nominal(WEATHER, ["sun", "rain", "fog"]))
        with pytest.warns(DataWarning, match="the earliest is the ground truth"):
            first = score_project(src, project, gt_policy="first")
        with pytest.warns(DataWarning, match="merged into one ground truth"):
            merged = score_project(src, project, gt_policy="merge")
    # first: a1's annotation (imported first, lowest id) is GT; the model said a1's answer on
    # odd tasks and "fog" on even ones: right on 3 odd tasks + task 3 (a1 said fog).
    model = [row[0] if n % 2 else "fog" for n, row in enumerate(WEATHER)]
    assert first["annotators"]["prediction:team-model"]["accuracy"] == pytest.approx(
        np.mean([m == row[0] for m, row in zip(model, WEATHER, strict=True)])
    )
    assert first["annotators"][email("a2")]["accuracy"] == pytest.approx(
        np.mean([row[1] == row[0] for row in WEATHER])
    )
    assert email("a1") not in first["annotators"]
    assert merged["gt_policy"] == "merge" and email("a2") not in merged["annotators"]
    res = CliRunner().invoke(
        main,
        [
            "ls",
            "score",
            "--project",
            str(project),
            "--url",
            ls_server.url,
            "--api-key",
            ls_server.api_key,
            "--gt-policy",
            "first",
            "--json",
            str(tmp_path / "first.json"),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "--gt-policy first" in res.stderr  # the CLI prints data warnings itself
    assert json.loads((tmp_path / "first.json").read_text())["annotators"] == first["annotators"]


# --- Export forms, labelgate's own predictions, the browser URL ------------------------------


def test_every_export_form_reads_the_same(ls_server, seeder, gt_default_project, tmp_path):
    project, ids = gt_default_project
    with connect(ls_server.url, ls_server.api_key) as src, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        pulled = src.pull(project, gt_policy="first")
        # labelgate's own consensus, pushed back, is never read as an annotator or a model.
        pushed = score_project(src, project, predictions=True, push_scores=True, gt_policy="first")[
            "pushed"
        ]
        again = src.pull(project, gt_policy="first")
        users = src.users()
    names = set(pulled.annotations.annotators)
    assert names == {
        email("a1"),
        email("a2"),
        email("a3"),
        "ground_truth",
        "prediction:team-model",
    } - {email("a1")}
    assert set(again.annotations.annotators) == names
    # --scores writes task data fields, not predictions: labelgate's own predictions are the
    # consensus ones.
    own = pushed["predictions"]
    assert pushed["scores"] == len(ids) and again.meta["labelgate_predictions_skipped"] == own

    def rows(aset):
        a = aset.annotations
        return sorted(
            (int(a.item[r]), a.annotators[a.annotator[r]], aset.schema.names[int(a.label[r])])
            for r in range(len(a))
        )

    # The default export: predictions as bare ids, users as ids.
    client = seeder.client
    raw = json.loads(
        b"".join(
            client.projects.exports.download_sync(
                project, export_type="JSON", download_all_tasks=True
            )
        )
    )
    assert all(isinstance(p, int) for t in raw for p in t["predictions"])
    config = client.projects.get(id=project).label_config
    with pytest.warns(DataWarning) as caught:
        plain = ls_tasks_to_annotation_set(raw, config, gt_policy="first")
    # Without a server the default export names annotators by id only ...
    assert {n for n in plain.annotations.annotators if n.startswith("user:")} == {
        f"user:{seeder.users[w]}" for w in ("a2", "a3")
    }
    # ... with one, through the API, by e-mail.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        plain = ls_tasks_to_annotation_set(raw, config, gt_policy="first", users=users)
    assert any("given only as ids" in str(w.message) for w in caught)
    assert plain.meta["unresolved_predictions"] == len(ids) + own
    assert rows(plain) == [r for r in rows(again) if not r[1].startswith("prediction:")]
    # `labelgate ls export` writes it complete, with config.xml, in one step (and from a
    # browser URL).
    out = tmp_path / "full"
    res = CliRunner().invoke(
        main,
        [
            "ls",
            "export",
            "--project",
            str(project),
            "--url",
            f"{ls_server.url}/projects/{project}/data",
            "--api-key",
            ls_server.api_key,
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "config.xml").read_text() == config
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        full = read_any(out / "export.json", gt_policy="first")
    assert rows(full) == rows(again)
    # A snapshot export reads the same.
    snap = client.projects.exports.create(id=project, title="issue19")
    deadline = time.monotonic() + 60
    while client.projects.exports.get(id=project, export_pk=snap.id).status != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    snapshot = json.loads(
        b"".join(
            client.projects.exports.download(id=project, export_pk=snap.id, export_type="JSON")
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        snap_set = ls_tasks_to_annotation_set(snapshot, config, gt_policy="first", users=users)
    assert [r for r in rows(snap_set) if not r[1].startswith("prediction:")] == [
        r for r in rows(again) if not r[1].startswith("prediction:")
    ]


def test_json_min_export_gives_the_same_per_control_agreement(
    ls_server, seeder, two_control_project
):
    from labelgate.agreement.report import agreement_report

    project, _ = two_control_project
    client = seeder.client
    raw = json.loads(
        b"".join(
            client.projects.exports.download_sync(
                project, export_type="JSON_MIN", download_all_tasks=True
            )
        )
    )
    assert "annotator" in raw[0] and "annotations" not in raw[0]
    config = client.projects.get(id=project).label_config
    with connect(ls_server.url, ls_server.api_key) as src:
        pulled = src.pull(project)
        users = src.users()
    minimal = ls_tasks_to_annotation_set(raw, config, users=users)
    a, b = agreement_report(minimal, n_boot=0), agreement_report(pulled, n_boot=0)
    for control in ("scene", "weather"):
        assert (
            a["controls"][control]["krippendorff_alpha"]
            == b["controls"][control]["krippendorff_alpha"]
        )
    assert sorted(minimal.annotations.annotators) == sorted(pulled.annotations.annotators)


def test_history_finds_label_studio_runs(ls_server, two_control_project, tmp_path):
    project, _ = two_control_project
    store = f"sqlite:///{tmp_path / 's.db'}"
    for _ in range(2):
        res = CliRunner().invoke(
            main,
            [
                "ls",
                "score",
                "--project",
                str(project),
                "--url",
                ls_server.url,
                "--api-key",
                ls_server.api_key,
                "--store",
                store,
                "--quiet",
            ],
        )
        assert res.exit_code == 0, res.output
    out = tmp_path / "h.json"
    res = CliRunner().invoke(
        main,
        ["history", "--project", f"labelstudio:{project}", "--store", store, "--json", str(out)],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert len(data["runs"]) == 2
    # The trend's agreement is the project's headline: the mean over its two controls.
    scene = np.mean([float(r[i] == r[j]) for r in SCENE for i, j in combinations(range(3), 2)])
    weather = np.mean([float(r[i] == r[j]) for r in WEATHER for i, j in combinations(range(3), 2)])
    assert data["series"]["agreement"] == pytest.approx([(scene + weather) / 2] * 2)
