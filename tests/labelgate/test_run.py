"""``run_quality`` on a hand-built batch whose comparisons and agreement are worked out by hand.

GT: item 0 has a car and a person, item 1 a car. Annotator a: the car right, the person called
a car, item 1's car missed. Annotator b: everything right plus an extra person on item 1.
"""

import json
from pathlib import Path

import pytest

from labelgate.engine import QualitySettings
from labelgate.model import AnnotationsBuilder, AnnotationSet, Items, Label, LabelSchema
from labelgate.run import ConsensusOptions, Progress, RunOptions, run_quality
from labelgate.run_sources import Batch, Target

SCHEMA = LabelSchema(labels=(Label("car", "rectangle", id=1), Label("person", "rectangle", id=2)))
CAR, PERSON = 0, 1
GT = [(0, CAR, [0, 0, 10, 10]), (0, PERSON, [50, 50, 70, 70]), (1, CAR, [20, 20, 40, 40])]
A = [(0, CAR, [0, 0, 10, 10]), (0, CAR, [50, 50, 70, 70])]
B = [*GT, (1, PERSON, [80, 80, 90, 90])]


def make_set(name, boxes, meta=None):
    b = AnnotationsBuilder((name,))
    for k, (item, label, box) in enumerate(boxes):
        b.add(item, "rectangle", label, bbox=box, source_id=100 + k, annotator=0)
    return AnnotationSet(
        name=name,
        schema=SCHEMA,
        items=Items.create(id=[0, 1], name=["img0.png", "img1.png"], width=100, height=100),
        annotations=b.build(),
        meta=dict(meta or {}),
    )


@pytest.fixture(scope="module")
def batch():
    return Batch.of_parts(
        make_set("gt", GT, {"job_id": 10}),
        [make_set("a", A, {"job_id": 11}), make_set("b", B, {"job_id": 12})],
    )


def test_comparisons_and_agreement_match_the_hand_count(batch):
    run = run_quality(batch, options=RunOptions(n_boot=0))
    assert run.humans == ("a", "b") and set(run.comparisons) == {"a", "b"}
    a = run.comparisons["a"].report.summary
    # 1 label-correct match, 1 label mismatch, 1 missing: valid 1 of total 3.
    assert (a["valid_count"], a["total_count"]) == (1, 3)
    assert run.comparisons["a"].meta["job_id"] == 11  # the annotator's own job, for links
    # a vs b on items 0 and 1: one label-equal match (the car), n_a = 2, n_b = 4.
    pair = run.agreement.pair("b", "a")
    assert (pair["matched"], pair["n_a"], pair["n_b"]) == (1, 2, 4)
    assert run.agreement.headline == pytest.approx(2 * 1 / (2 + 4))
    assert run.agreement.pair("a", "a") is None


def test_to_dict_is_json_and_names_the_batch(batch):
    run = run_quality(batch, settings=QualitySettings(iou_threshold=0.6))
    data = json.loads(json.dumps(run.to_dict()))
    assert data["settings"]["iou_threshold"] == 0.6
    assert data["source"]["target"] == "file:set:gt" and data["source"]["project"] == "gt"
    assert data["comparisons"]["b"]["summary"]["extra_count"] == 1
    assert data["agreement"]["annotators"] == ["a", "b"]
    assert data["consensus"] is None and data["model"] is None


def test_consensus_only_when_asked(batch):
    run = run_quality(batch, options=RunOptions(n_boot=0, consensus=ConsensusOptions()))
    assert run.consensus is not None
    assert run.consensus.meta["consensus"]["annotators"] == ["a", "b"]
    # Both annotators drew item 0's car at the same box: the consensus keeps it as a car.
    ann = run.consensus.annotations
    cars = ann.bbox[(ann.item == 0) & (ann.label == CAR)].tolist()
    assert [0, 0, 10, 10] in cars


def test_progress_sees_the_final_total_from_the_first_step(batch):
    seen = []
    progress = Progress(lambda d, done, total: seen.append((done, total)), later=2)
    run_quality(batch, progress=progress)
    # 2 comparisons + agreement, plus the 2 later steps the caller announced.
    assert seen == [(0, 5), (1, 5), (2, 5)]


def test_a_source_is_pulled_with_the_callers_settings(batch):
    class Fixed:
        system = "test"

        def __init__(self):
            self.asked = []

        def pull(self, target, settings=None):
            self.asked.append((target, settings))
            return batch

        def parse_event(self, event):
            return None

    source, target, s = Fixed(), Target("test", "job", "7"), QualitySettings(iou_threshold=0.7)
    run = run_quality(source, target=target, settings=s)
    assert source.asked == [(target, s)] and run.settings.iou_threshold == 0.7


def test_match_rules_reach_the_comparisons(batch, monkeypatch):
    import labelgate.run as run_module
    from labelgate.engine.match_rules import CURRENT

    seen = []
    original = run_module.compare

    def spy(gt, ds, settings=None, *, rules=None):
        seen.append(rules)
        return original(gt, ds, settings, rules=rules)

    monkeypatch.setattr(run_module, "compare", spy)
    run_quality(batch, options=RunOptions(n_boot=0, agreement=False, rules=CURRENT))
    run_quality(batch, options=RunOptions(n_boot=0, agreement=False))
    # The engine applies the rules (its own tests); the run hands them to every comparison.
    assert seen == [CURRENT, CURRENT, None, None]


def test_requirement_mode_scores_each_comparison_by_requirement() -> None:
    """With a requirement tree in the options, each comparison carries its requirement report.

    Hand check on the CVAT examples: the stock tree with every base enabled scores the
    rectangle requirement on rectangles only, so its score components count exactly the
    rectangle pairs of the legacy report's confusion matrix.
    """
    from labelgate.engine.requirements import RequirementTree
    from labelgate.run import RunOptions, run_quality
    from labelgate.run_sources import FileSource

    ex = Path(__file__).resolve().parents[2] / "examples" / "cvat"
    src = FileSource(gt=ex / "gt.xml", ds=(ex / "annotator1.xml",))
    run = run_quality(src, options=RunOptions(requirements=RequirementTree.stock(enabled=True)))
    (comparison,) = run.comparisons.values()
    assert comparison.requirements is not None
    rect = comparison.requirements.to_dict()["groups"]["Base rectangle"]
    assert rect["comparison_summary"]["calculation"]["status"] == "computed"
    plain = run_quality(src)
    assert next(iter(plain.comparisons.values())).requirements is None
