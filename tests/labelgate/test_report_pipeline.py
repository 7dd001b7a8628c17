"""The main job's bundle, on small hand-built batches whose scores are worked out by hand."""

import numpy as np
import pytest

from labelgate.agreement.report import agreement_report
from labelgate.decisions.gate import GatePolicy
from labelgate.engine import QualitySettings, compare
from labelgate.errors import ValidationError
from labelgate.model import AnnotationsBuilder, AnnotationSet, Items, Label, LabelSchema
from labelgate.reporting.pipeline import (
    BUNDLE_KIND,
    HISTORY_KIND,
    as_predictions,
    build_bundle,
    bundle_for_set,
    combine_batch,
)
from labelgate.store import open_store

SCHEMA = LabelSchema(labels=(Label("car", "rectangle", id=1), Label("person", "rectangle", id=2)))
CAR, PERSON = 0, 1
CVAT = {"system": "cvat", "host": "https://cvat.example", "task_id": 3}


def make_set(name, boxes, *, job=None, meta=None, items=(0, 1)):
    """A one-annotator set; ``boxes`` = [(item, label, xyxy), ...], object ids from 100."""
    b = AnnotationsBuilder((name,))
    for k, (item, label, box) in enumerate(boxes):
        b.add(item, "rectangle", label, bbox=box, source_id=100 + k, annotator=0)
    return AnnotationSet(
        name=name,
        schema=SCHEMA,
        items=Items.create(
            id=list(items), name=[f"img{i}.png" for i in items], width=100, height=100
        ),
        annotations=b.build(),
        meta={**CVAT, "job_id": job, **(meta or {})} if job is not None else dict(meta or {}),
    )


# GT: item 0 has a car and a person, item 1 a car.
GT = [(0, CAR, [0, 0, 10, 10]), (0, PERSON, [50, 50, 70, 70]), (1, CAR, [20, 20, 40, 40])]
# a: the car right, the person called a car, item 1's car missed.
A = [(0, CAR, [0, 0, 10, 10]), (0, CAR, [50, 50, 70, 70])]
# b: everything right plus one extra person on item 1.
B = [*GT, (1, PERSON, [80, 80, 90, 90])]


@pytest.fixture(scope="module")
def bundle():
    return build_bundle(
        make_set("gt", GT, job=10),
        [make_set("a", A, job=11), make_set("b", B, job=12)],
        QualitySettings(),
    )


def test_comparisons_match_the_hand_count(bundle):
    a = bundle["comparisons"]["a"]["summary"]
    # a: 1 label-correct match, 1 label mismatch, 1 missing -> valid 1, ds 2, gt 3, total 3.
    assert (a["valid_count"], a["ds_count"], a["gt_count"], a["total_count"]) == (1, 2, 3, 3)
    assert a["accuracy"] == pytest.approx(1 / 3)
    assert a["precision"] == pytest.approx(1 / 2)
    assert a["recall"] == pytest.approx(1 / 3)
    assert a["conflicts_by_type"]["mismatching_label"] == 1
    assert a["conflicts_by_type"]["missing_annotation"] == 1
    b = bundle["comparisons"]["b"]["summary"]
    # b: 3 correct matches, 1 extra -> valid 3, ds 4, gt 3, total 4.
    assert (b["accuracy"], b["precision"], b["recall"]) == pytest.approx((3 / 4, 3 / 4, 1.0))
    assert b["conflict_count"] == 1
    # rows = annotated (ds), columns = GT, "unmatched" last: a's person-as-car is [car, person].
    cm = bundle["comparisons"]["a"]["confusion_matrix"]
    assert cm["labels"] == ["car", "person", "unmatched"]
    assert cm["rows"] == [[1, 1, 0], [0, 0, 0], [1, 0, 0]]


def test_conflict_rows_link_back_to_the_cvat_job(bundle):
    rows = {(r["annotator"], r["type"]): r for r in bundle["conflicts"]}
    assert set(rows) == {
        ("a", "mismatching_label"),
        ("a", "missing_annotation"),
        ("b", "extra_annotation"),
    }
    wrong = rows["a", "mismatching_label"]
    assert (wrong["frame"], wrong["item_name"], wrong["labels"]) == (0, "img0.png", "car vs person")
    # The DS annotation comes first: a's second box (object id 101) in a's job 11.
    assert wrong["link"] == ("https://cvat.example/tasks/3/jobs/11?frame=0&type=shape&serverID=101")
    # A missing object exists only in the GT job (10): the link opens it there.
    assert rows["a", "missing_annotation"]["link"] == (
        "https://cvat.example/tasks/3/jobs/10?frame=1&type=shape&serverID=102"
    )
    assert rows["b", "extra_annotation"]["link"].startswith(
        "https://cvat.example/tasks/3/jobs/12?frame=1&"
    )


def test_agreement_and_scorecards_are_the_public_functions(bundle):
    combined, metas = combine_batch(
        make_set("gt", GT, job=10), [make_set("a", A, job=11), make_set("b", B, job=12)]
    )
    assert combined.annotations.annotators == ("ground_truth", "a", "b")
    assert metas["a"]["job_id"] == 11 and metas["ground_truth"]["job_id"] == 10
    expected = agreement_report(combined, QualitySettings(), n_boot=100)
    assert bundle["agreement"]["summary"] == expected["summary"]
    assert [c["annotator"] for c in bundle["scorecards"]] == ["a", "b"]
    cards = {c["annotator"]: c for c in bundle["scorecards"]}
    assert cards["a"]["accuracy"] == pytest.approx(1 / 3)
    # Per label, pooled over a and b: GT has 2 cars x 2 annotators = 4, 3 found as cars.
    labels = {r["label"]: r for r in bundle["labels"]}
    assert labels["car"]["gt_count"] == 4
    assert labels["car"]["error_rate"] == pytest.approx(1 / 4)
    assert labels["person"]["error_rate"] == pytest.approx(1 / 2)


def test_predictions_are_compared_but_not_scored_as_people():
    pred = make_set("yolo", [(0, CAR, [0, 0, 10, 10])], meta={"model_version": "v8"})
    assert as_predictions(pred).annotations.annotators == ("prediction:v8",)
    out = build_bundle(make_set("gt", GT), [make_set("a", A), make_set("b", B)], predictions=pred)
    assert set(out["comparisons"]) == {"a", "b", "prediction:v8"}
    p = out["comparisons"]["prediction:v8"]["summary"]
    assert (p["valid_count"], p["gt_count"]) == (1, 3)
    assert [c["annotator"] for c in out["scorecards"]] == ["a", "b"]
    assert out["agreement"]["annotators"] == ["a", "b"]
    # File sources have no host: no links.
    assert all(r["link"] is None for r in out["conflicts"])


def test_sections_without_data_are_absent():
    # One annotator: no agreement; no policy: no gate; no store: no history.
    out = build_bundle(make_set("gt", GT), [make_set("a", A)])
    assert out["agreement"] is None and out["gate"] is None and out["history"] == {}
    assert "report_id" not in out
    # No ground truth at all: nothing to compare, agreement still there.
    both = AnnotationSet(
        name="peers",
        schema=SCHEMA,
        items=make_set("a", A).items,
        annotations=type(make_set("a", A).annotations).concat(
            [make_set("a", A).annotations, make_set("b", B).annotations]
        ),
    )
    peers = bundle_for_set(both)
    assert peers["comparisons"] == {} and peers["conflicts"] == []
    assert peers["agreement"]["annotators"] == ["a", "b"]


def test_gate_section_follows_the_policy():
    gt, sources = make_set("gt", GT), [make_set("a", A), make_set("b", B)]
    # Missing rate: a misses 1 of 3 GT objects, b none -> 1/6.
    lax = build_bundle(gt, sources, policy=GatePolicy.from_mapping({"max_missing_rate": 0.2}))
    strict = build_bundle(gt, sources, policy=GatePolicy.from_mapping({"max_missing_rate": 0.1}))
    assert lax["gate"]["passed"] is True and strict["gate"]["passed"] is False
    check = {c["check"]: c for c in strict["gate"]["checks"]}["missing_label_rate"]
    assert check["passed"] is False and check["value"] == pytest.approx(1 / 6)


def test_history_grows_with_each_stored_run(tmp_path):
    gt, sources = make_set("gt", GT), [make_set("a", A), make_set("b", B)]
    with open_store(f"sqlite:///{tmp_path / 'h.db'}") as store:
        first = build_bundle(gt, sources, store=store, project="p")
        second = build_bundle(gt, sources, store=store, project="p")
        other = build_bundle(gt, sources, store=store, project="q")
        assert len(first["history"]["time"]) == 1
        assert len(second["history"]["time"]) == 2 and len(other["history"]["time"]) == 1
        # Mean accuracy over the scorecards: (1/3 + 3/4) / 2.
        assert second["history"]["accuracy"] == pytest.approx([13 / 24, 13 / 24])
        stored = store.get_report(second["report_id"])
        assert stored.kind == BUNDLE_KIND and stored.report["comparisons"].keys() == {"a", "b"}
        assert len(store.list_reports(project="p", kind=HISTORY_KIND)) == 2


def test_steps_are_reported_in_order():
    seen = []
    build_bundle(
        make_set("gt", GT),
        [make_set("a", A), make_set("b", B)],
        policy=GatePolicy.from_mapping({"max_missing_rate": 0.2}),
        on_step=lambda d, done, total: seen.append((done, total, d.split()[0])),
    )
    assert [s[0] for s in seen] == list(range(6)) and {s[1] for s in seen} == {6}
    assert [s[2] for s in seen] == [
        "comparing",
        "comparing",
        "agreement",
        "scorecards",
        "history",
        "release",
    ]


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        ([], "at least one annotator"),
        ([make_set("a", A), make_set("a", B)], "annotator 'a' also appears"),
        (
            [
                AnnotationSet(
                    name="other",
                    schema=LabelSchema(labels=(Label("dog", "rectangle"),)),
                    items=Items.create(id=[0]),
                    annotations=AnnotationsBuilder(("o",)).build(),
                )
            ],
            "labels \\['dog'\\] differ",
        ),
    ],
    ids=["no-sources", "duplicate-annotator", "other-schema"],
)
def test_bad_batches_are_rejected(sources, message):
    with pytest.raises(ValidationError, match=message):
        build_bundle(make_set("gt", GT), sources)


def test_compare_is_not_reimplemented(bundle):
    # The bundle's summary is exactly the engine's for the same pair.
    direct = compare(make_set("gt", GT, job=10), make_set("a", A, job=11)).to_dict()["summary"]
    assert bundle["comparisons"]["a"]["summary"] == direct
    assert np.isclose(bundle["comparisons"]["a"]["summary"]["mean_iou"], direct["mean_iou"])


def test_a_drop_below_the_rolling_average_is_marked_as_drift(tmp_path):
    gt, sources = make_set("gt", GT), [make_set("a", A), make_set("b", B)]
    with open_store(f"sqlite:///{tmp_path / 'h.db'}") as store:
        for _ in range(3):  # three earlier runs at 90% accuracy, agreement unknown
            store.save_report(
                HISTORY_KIND,
                "file",
                "gt",
                {"summary": {"mean_accuracy": 0.9, "mean_agreement": None}},
                project="gt",
            )
        out = build_bundle(gt, sources, store=store)
    assert out["history"]["accuracy"] == pytest.approx([0.9, 0.9, 0.9, 13 / 24])
    (d,) = out["history"]["drift"]
    assert d["metric"] == "accuracy" and d["time"] == out["history"]["time"][-1]
    assert d["drop"] == pytest.approx(0.9 - 13 / 24)


@pytest.mark.parametrize("kept", [1, 2, 3])
def test_conflict_rows_keep_the_first_rows_in_annotator_order_and_count_the_rest(
    bundle, kept, monkeypatch
):
    # a has 2 conflicts (person called a car, item 1's car missed), b has 1 (extra person):
    # 3 rows in all, a's first. Only the kept rows are built; the rest are counted.
    import labelgate.reporting.pipeline as pipeline

    assert len(bundle["conflicts"]) == 3 and bundle["conflicts_truncated"] == 0
    assert [r["annotator"] for r in bundle["conflicts"]] == ["a", "a", "b"]
    monkeypatch.setattr(pipeline, "MAX_CONFLICT_ROWS", kept)
    small = build_bundle(
        make_set("gt", GT, job=10),
        [make_set("a", A, job=11), make_set("b", B, job=12)],
        QualitySettings(),
    )
    assert small["conflicts"] == bundle["conflicts"][:kept]
    assert small["conflicts_truncated"] == 3 - kept
