"""Every Label Studio export form on recorded JSON (issue #19): the default export with
prediction ids, JSON-MIN, e-mails from created_username, several ground-truth annotations,
labelgate's own predictions; and the per-control scores of a small NER export, by hand."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from ls_results import choices

from labelgate.cli import main
from labelgate.errors import DataWarning, FormatError, ValidationError
from labelgate_labelstudio.json_export import (
    is_labelgate_prediction,
    ls_tasks_to_annotation_set,
)

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="scene" toName="image"><Choice value="day"/><Choice value="night"/></Choices>
  <Choices name="tags" toName="image" choice="multiple">
    <Choice value="cat"/><Choice value="dog"/>
  </Choices>
</View>"""


def ann(aid, user, result, gt=False, created="2025-01-01T00:00:00Z", username=None):
    a = {
        "id": aid,
        "completed_by": user,
        "result": result,
        "ground_truth": gt,
        "created_at": created,
    }
    if username is not None:
        a["created_username"] = username
    return a


# Recorded shape of Label Studio 1.23's default JSON export: predictions are bare ids,
# completed_by a user id, created_username "<first> <last> <email>, <id>".
DEFAULT_EXPORT = [
    {
        "id": 1,
        "data": {"image": "/data/upload/1/a.jpg"},
        "annotations": [
            ann(10, 5, [choices("scene", "day")], username=" ann5@example.com, 5"),
            ann(11, 6, [choices("scene", "night")], username="Ann Six ann6@example.com, 6"),
        ],
        "predictions": [100, 101],
    }
]


def test_default_export_prediction_ids_and_user_ids():
    with pytest.warns(DataWarning, match="2 prediction\\(s\\) are given only as ids"):
        aset = ls_tasks_to_annotation_set(DEFAULT_EXPORT, CONFIG)
    assert set(aset.annotations.annotators) == {"ann5@example.com", "ann6@example.com"}
    assert aset.meta["unresolved_predictions"] == 2 and aset.data_errors == ()
    preds = {
        100: {"id": 100, "model_version": "team-v1", "result": [choices("scene", "day")]},
        101: {"id": 101, "model_version": "labelgate-consensus", "result": []},
    }
    users = {5: "five@example.com"}
    full = ls_tasks_to_annotation_set(DEFAULT_EXPORT, CONFIG, predictions=preds, users=users)
    # The API's users map wins over created_username; labelgate's own prediction is left out.
    assert set(full.annotations.annotators) == {
        "five@example.com",
        "ann6@example.com",
        "prediction:team-v1",
    }
    assert full.meta["labelgate_predictions_skipped"] == 1
    assert is_labelgate_prediction("labelgate-quality") and not is_labelgate_prediction("team")


def test_json_min_records_become_tasks():
    # Recorded JSON-MIN shape: one record per annotation; one choice written bare, several
    # as an object; data keys flattened into the record.
    records = [
        {
            "image": "/data/a.jpg",
            "id": 1,
            "scene": "day",
            "tags": {"choices": ["cat", "dog"]},
            "annotator": "x@example.com",
            "annotation_id": 10,
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
            "lead_time": 3.5,
        },
        {"image": "/data/a.jpg", "id": 1, "scene": "night", "annotator": 7, "annotation_id": 11},
        {"image": "/data/b.jpg", "id": 2, "annotator": {}, "annotation_id": None},
    ]
    aset = ls_tasks_to_annotation_set(records, CONFIG, users={7: "seven@example.com"})
    assert aset.items.id.tolist() == [1, 2]
    ann = aset.annotations
    got = sorted(
        (int(ann.item[r]), ann.annotators[ann.annotator[r]], aset.schema.names[ann.label[r]])
        for r in range(len(ann))
    )
    assert got == [
        (1, "seven@example.com", "night"),
        (1, "x@example.com", "cat"),
        (1, "x@example.com", "day"),
        (1, "x@example.com", "dog"),
    ]
    lead = {s.annotator: s.lead_time for s in aset.submissions}
    assert lead == {"x@example.com": 3.5, "seven@example.com": None}
    with pytest.raises(FormatError, match=r"record #0: id"):
        ls_tasks_to_annotation_set([{"annotator": 1, "annotation_id": 2}], CONFIG)


def _gt_tasks():
    return [
        {
            "id": 1,
            "data": {},
            "annotations": [
                ann(
                    21,
                    {"id": 2, "email": "b@x.org"},
                    [choices("scene", "night")],
                    True,
                    "2025-01-02",
                ),
                ann(
                    20, {"id": 1, "email": "a@x.org"}, [choices("scene", "day")], True, "2025-01-01"
                ),
                ann(22, {"id": 3, "email": "c@x.org"}, [choices("scene", "day")]),
            ],
        },
        {
            "id": 2,
            "data": {},
            "annotations": [
                ann(23, {"id": 1, "email": "a@x.org"}, [choices("scene", "day")], True),
                ann(24, {"id": 3, "email": "c@x.org"}, [choices("scene", "night")]),
            ],
        },
    ]


@pytest.mark.parametrize(
    ("policy", "annotators", "gold", "match"),
    [
        ("per-author", {"a@x.org", "b@x.org", "c@x.org", "ground_truth"}, [2], "none of them"),
        ("first", {"b@x.org", "c@x.org", "ground_truth"}, [1, 2], "the earliest"),
        ("merge", {"c@x.org", "ground_truth"}, [1, 2], "merged into one"),
    ],
)
def test_several_ground_truth_annotations(policy, annotators, gold, match):
    with pytest.warns(DataWarning, match=rf"1 task\(s\) have several ground-truth .*{match}"):
        aset = ls_tasks_to_annotation_set(_gt_tasks(), CONFIG, gt_policy=policy)
    assert set(aset.annotations.annotators) == annotators
    assert aset.items.id[aset.items.gold].tolist() == gold
    assert aset.meta["gt_conflicts"] == {"1": ["b@x.org", "a@x.org"]}
    if policy == "first":  # the earliest created (a, 2025-01-01), not the first listed (b)
        a = aset.annotations
        gt_rows = [r for r in range(len(a)) if a.annotators[a.annotator[r]] == "ground_truth"]
        assert sorted(aset.schema.names[a.label[r]] for r in gt_rows) == ["day", "day"]
    with pytest.raises(ValidationError, match="gt_policy must be one of"):
        ls_tasks_to_annotation_set(_gt_tasks(), CONFIG, gt_policy="newest")


@pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")
def test_gt_policy_flag_on_batch_commands(tmp_path):
    (tmp_path / "export.json").write_text(json.dumps(_gt_tasks()))
    (tmp_path / "config.xml").write_text(CONFIG)
    out = tmp_path / "agree.json"
    # The CLI prints data warnings itself ("warning: ..." on stderr).
    res = CliRunner().invoke(
        main,
        ["agree", str(tmp_path / "export.json"), "--gt-policy", "first", "--json", str(out)],
    )
    assert res.exit_code == 0, res.output
    assert "--gt-policy first" in res.stderr
    # first: b's second GT annotation on task 1 is b's own; b and c share task 1 only.
    data = json.loads(out.read_text())
    assert data["annotators"] == ["b@x.org", "c@x.org"]
    assert data["controls"]["scene"]["value"] == 0.0  # night vs day
    res = CliRunner().invoke(
        main, ["inspect", str(tmp_path / "export.json"), "--gt-policy", "merge", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert "--gt-policy merge" in res.stderr
    assert set(json.loads(res.stdout)["per_annotator"]) == {"ground_truth", "c@x.org"}


NER_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Labels name="ner" toName="text"><Label value="PER"/><Label value="ORG"/></Labels>
  <Choices name="topic" toName="text"><Choice value="a"/><Choice value="b"/></Choices>
  <Choices name="mood" toName="text" choice="multiple">
    <Choice value="x"/><Choice value="y"/><Choice value="z"/>
  </Choices>
</View>"""


def span(k, start, end, label):
    return {
        "id": f"s{k}",
        "from_name": "ner",
        "to_name": "text",
        "type": "labels",
        "value": {"start": start, "end": end, "labels": [label]},
    }


def text_choice(name, *values):
    return choices(name, *values, to_name="text")


def test_per_control_scores_on_a_recorded_ner_export():
    from labelgate.agreement.report import agreement_report

    tasks = [
        {
            "id": 1,
            "data": {"text": "Ann at Acme"},
            "annotations": [
                ann(
                    1,
                    {"email": "p@x"},
                    [
                        span(0, 0, 3, "PER"),
                        span(1, 7, 11, "ORG"),
                        text_choice("topic", "a"),
                        text_choice("mood", "x"),
                    ],
                ),
                ann(2, {"email": "q@x"}, [span(0, 0, 3, "PER"), text_choice("mood", "x", "z")]),
            ],
        },
        {
            "id": 2,
            "data": {"text": "Bo"},
            "annotations": [
                ann(
                    3,
                    {"email": "p@x"},
                    [span(0, 0, 2, "PER"), text_choice("topic", "b"), text_choice("mood", "y")],
                ),
                ann(
                    4,
                    {"email": "q@x"},
                    [span(0, 0, 2, "ORG"), text_choice("topic", "b"), text_choice("mood", "y")],
                ),
            ],
        },
    ]
    aset = ls_tasks_to_annotation_set(tasks, NER_CONFIG)
    rep = agreement_report(aset, n_boot=0)
    c = rep["controls"]
    # Spans: task 1 one of 2+1 spans matched (2/3); task 2 labels differ (0).
    assert c["ner"]["value"] == pytest.approx((2 / 3 + 0) / 2)
    # topic: q skipped it on task 1 (0), both said b on task 2 (1) - never mixed with mood.
    assert c["topic"]["value"] == pytest.approx(0.5)
    assert c["topic"]["classes"] == ["a", "b"]
    # mood is set-valued: Jaccard {x} vs {x,z} = 1/2, {y} vs {y} = 1.
    assert c["mood"]["metric"] == "jaccard" and c["mood"]["value"] == pytest.approx(0.75)
    assert rep["summary"]["headline"] == pytest.approx(np.mean([1 / 3, 0.5, 0.75]))


def test_legacy_tags_block_with_a_second_choice_only_class():
    """A class seen only as a second choice of a multi-choice control no longer crashes the
    tags block (was `zip() argument 2 is shorter`)."""
    from labelgate.agreement.report import agreement_report

    config = """<View><Image name="image" value="$image"/>
      <Choices name="tags" toName="image" choice="multiple">
        <Choice value="cat"/><Choice value="dog"/><Choice value="bird"/></Choices></View>"""

    def ann(aid, who, values):
        res = [
            {
                "id": "t",
                "from_name": "tags",
                "to_name": "image",
                "type": "choices",
                "value": {"choices": values},
            }
        ]
        return {"id": aid, "completed_by": {"email": who}, "result": res}

    tasks = [
        {"id": 1, "data": {}, "annotations": [ann(1, "a", ["cat", "bird"]), ann(2, "b", ["cat"])]},
        {"id": 2, "data": {}, "annotations": [ann(3, "a", ["dog"]), ann(4, "b", ["dog"])]},
    ]
    rep = agreement_report(ls_tasks_to_annotation_set(tasks, config), n_boot=0)
    assert set(rep["tags"]["marginals"]) == set(rep["tags"]["classes"])
    assert rep["controls"]["tags"]["value"] == pytest.approx((0.5 + 1.0) / 2)
