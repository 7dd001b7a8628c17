"""Spatial consensus (CVAT merge semantics) on hand-built clusters and the bundled export."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from engine_builders import SCHEMA, box

from labelgate.adapters import read_any
from labelgate.cli import main
from labelgate.consensus import merge
from labelgate.engine import compare
from labelgate.errors import ValidationError
from labelgate.model import AnnotationsBuilder, AnnotationSet, Items, Origin, Submission

EXPORT = Path(__file__).resolve().parents[2] / "examples" / "labelstudio" / "export.json"


def _multi(rows_by_annotator):
    b = AnnotationsBuilder()
    for who, rows in rows_by_annotator.items():
        for n, row in enumerate(rows):
            row = dict(row)
            row["label"] = SCHEMA.index(row["label"])
            b.add(annotator=who, item=0, source_id=n, **row)
    return AnnotationSet("m", SCHEMA, Items.create([0], width=100, height=100), b.build())


def test_cluster_vote_representative_and_quorum():
    aset = _multi(
        {
            "a": [
                box(0, 0, 10, 10, attributes={"color": "red"}),
                box(60, 60, 70, 70),
                {"kind": "tag", "label": "day"},
            ],
            "b": [box(1, 0, 11, 10, attributes={"color": "red"}), {"kind": "tag", "label": "day"}],
            "c": [
                box(0, 1, 10, 11, "person", attributes={"color": "blue"}),
                {"kind": "tag", "label": "night"},
            ],
        }
    )
    m = merge(aset).annotations
    # One 3-member cluster survives (car 2 votes >= ceil(0.5 * 3) = 2); the lone box does not.
    boxes = m.select(m.kind == 1)
    assert len(boxes) == 1 and SCHEMA.names[boxes.label[0]] == "car"
    # Representative: highest IoU with the mean box (0.33, 0.33, 10.33, 10.33): annotator c's
    # box (0, 1, 10, 11) and a's (0, 0, 10, 10) tie at 0.8795; the first member (a) is kept.
    np.testing.assert_allclose(boxes.bbox[0], [0, 0, 10, 10])
    assert boxes.attributes["color"][0] == "red"
    # Confidence = label share 2/3 x mean IoU of a's box with b's and c's (both 0.8182).
    assert boxes.score[0] == pytest.approx(2 / 3 * 90 / 110)
    assert boxes.origin[0] == Origin.CONSENSUS
    tags = m.select(m.kind == 0)
    assert [SCHEMA.names[x] for x in tags.label] == ["day"] and tags.score[0] == pytest.approx(
        2 / 3
    )


def test_fused_box_averages_members():
    aset = _multi({"a": [box(0, 0, 10, 10)], "b": [box(2, 0, 12, 10)]})
    m = merge(aset, method="fused").annotations
    np.testing.assert_allclose(m.bbox[0], [1, 0, 11, 10])


def test_bad_arguments():
    aset = _multi({"a": [box(0, 0, 10, 10)]})
    with pytest.raises(ValidationError, match="quorum"):
        merge(aset, quorum=0)
    with pytest.raises(ValidationError, match="method"):
        merge(aset, method="median")
    assert len(merge(aset).annotations) == 1  # one annotator: everything has the quorum


def test_bundled_consensus_beats_each_annotator(tmp_path):
    aset = read_any(EXPORT)
    gt = aset.split_by_annotator()["ground_truth"]
    merged = merge(aset)
    best_single = max(
        compare(gt, aset.split_by_annotator()[a]).summary["accuracy"]
        for a in ("annotator1@example.com", "annotator2@example.com", "annotator3@example.com")
    )
    assert compare(gt, merged).summary["accuracy"] > best_single
    out = tmp_path / "merged.json"
    res = CliRunner().invoke(main, ["merge", str(EXPORT), "--out", str(out)])
    assert res.exit_code == 0, res.output
    back = read_any(out)
    assert back.annotations.annotators == ("consensus",)
    assert len(back.annotations) == len(merged.annotations)
    assert json.loads(out.read_text())["meta"]["consensus"]["quorum"] == 0.5


@pytest.mark.parametrize("tag_method", ["majority", "dawid-skene"])
def test_categorical_tag_consensus(tag_method):
    aset = _multi(
        {
            "a": [{"kind": "tag", "label": "day"}],
            "b": [{"kind": "tag", "label": "day"}],
            "c": [{"kind": "tag", "label": "night"}],
        }
    )
    m = merge(aset, tag_method=tag_method).annotations
    assert [SCHEMA.names[x] for x in m.label] == ["day"]
    if tag_method == "majority":
        assert m.score[0] == pytest.approx(2 / 3)
    with pytest.raises(ValidationError, match="tag_method"):
        merge(aset, tag_method="vote")


def test_bundled_merged_objects_on_one_task():
    aset = read_any(EXPORT)
    merged = merge(aset).annotations.for_item(1)
    gt = aset.split_by_annotator()["ground_truth"].annotations.for_item(1)
    merged, gt = merged.select(merged.kind != 0), gt.select(gt.kind != 0)  # shapes only
    # Task 1 is a gold task: the merged objects are the GT objects, label for label, each
    # within a few pixels (every merged shape is one annotator's shape).
    names = aset.schema.names
    assert sorted(names[x] for x in merged.label) == sorted(names[x] for x in gt.label)
    from labelgate.geometry import box_iou

    for lab in np.unique(gt.label):
        mg, gg = merged.bbox[merged.label == lab], gt.bbox[gt.label == lab]
        assert (box_iou(mg, gg).max(1) > 0.8).all()


CVAT = Path(__file__).resolve().parents[2] / "examples" / "cvat"


def test_score_weighted_vote_versus_plain_majority():
    # Two low-score "car" boxes and one confident "person" box on the same object.
    aset = _multi(
        {
            "a": [box(0, 0, 10, 10, score=0.3)],
            "b": [box(0, 0, 10, 10, score=0.3)],
            "c": [box(0, 0, 10, 10, "person", score=1.0)],
        }
    )
    # cvat: person wins 1.0 to 0.6 but misses the quorum ceil(0.5 x 3) = 2 -> dropped.
    assert len(merge(aset).annotations) == 0
    # majority: car has 2 plain votes >= 2 -> kept with share 2/3 (identical boxes: IoU 1).
    m = merge(aset, method="majority").annotations
    assert SCHEMA.names[m.label[0]] == "car" and m.score[0] == pytest.approx(2 / 3)


def test_dawid_skene_labels_trust_the_reliable_annotator():
    # 60 frames, one object each. c is always right; a alone is wrong on frames 0-19, b alone on
    # 20-39, and both together on 40-43, where plain majority follows them. Only the
    # Dawid-Skene model sees that a and b are often the odd one out, and so trusts c there.
    truth = np.array(["car", "person"] * 30)
    flip = {"car": "person", "person": "car"}
    a_wrong = set(range(0, 20)) | set(range(40, 44))
    b_wrong = set(range(20, 44))
    rows = {"a": [], "b": [], "c": []}
    for f, t in enumerate(truth):
        for who, wrong in (("a", a_wrong), ("b", b_wrong), ("c", set())):
            rows[who].append(box(10, 10, 40, 40, flip[t] if f in wrong else t, item=f))
    b = AnnotationsBuilder()
    for who, rs in rows.items():
        for row in rs:
            b.add(annotator=who, **{**row, "label": SCHEMA.index(row["label"])})
    aset = AnnotationSet(
        "ds", SCHEMA, Items.create(list(range(60)), width=100, height=100), b.build()
    )
    names = np.array(SCHEMA.names)
    majority = merge(aset, method="majority").annotations
    assert (names[majority.label] != truth).sum() == 4  # frames 40-43
    ds = merge(aset, method="dawid-skene").annotations
    assert (names[ds.label] == truth).all()
    assert merge(aset, method="dawid-skene").meta["consensus"]["tag_method"] == "dawid-skene"


def test_members_sharing_a_group_get_one_new_group():
    aset = _multi(
        {
            "a": [
                box(0, 0, 10, 10, group=4),
                box(20, 0, 30, 10, "person", group=4),
                box(60, 60, 70, 70),
            ],
            "b": [
                box(0, 0, 10, 10, group=9),
                box(20, 0, 30, 10, "person", group=9),
                box(60, 60, 70, 70),
            ],
        }
    )
    m = merge(aset).annotations
    by_x = dict(zip(m.bbox[:, 0].tolist(), m.group.tolist(), strict=True))
    assert by_x == {0.0: 1, 20.0: 1, 60.0: 0}


def test_degenerate_inputs():
    # No overlap between two annotators: each lone box has ceil(0.5 x 2) = 1 vote -> kept, and
    # its confidence is the label share 1/2 (no other member to be similar to).
    apart = merge(_multi({"a": [box(0, 0, 10, 10)], "b": [box(50, 50, 60, 60)]})).annotations
    assert len(apart) == 2 and np.allclose(apart.score, 0.5)
    # Annotators who submitted nothing: a defined, empty consensus.
    empty = AnnotationSet(
        "e",
        SCHEMA,
        Items.create([0]),
        AnnotationsBuilder().build(),
        submissions=(Submission(0, "a"), Submission(0, "b")),
    )
    out = merge(empty)
    assert len(out.annotations) == 0 and out.meta["consensus"]["annotators"] == ["a", "b"]
    # One of three annotators drew the box: 1 vote < 2 -> nothing merged, no NaN anywhere.
    lonely = AnnotationSet(
        "l",
        SCHEMA,
        Items.create([0], width=100, height=100),
        _multi({"a": [box(0, 0, 10, 10)]}).annotations,
        submissions=(Submission(0, "a"), Submission(0, "b"), Submission(0, "c")),
    )
    assert len(merge(lonely).annotations) == 0
    with pytest.raises(ValidationError, match="no annotators"):
        merge(AnnotationSet("n", SCHEMA, Items.create([0]), AnnotationsBuilder().build()))
    with pytest.raises(ValidationError, match="unknown annotators"):
        merge(_multi({"a": [box(0, 0, 10, 10)]}), annotators=["zed"])


@pytest.mark.parametrize("method", ["cvat", "fused", "majority", "dawid-skene"])
def test_bundled_cvat_replicas_merge_to_the_ground_truth(tmp_path, method):
    out = tmp_path / "merged.json"
    files = ["--gt", str(CVAT / "gt.xml")]
    for n in (1, 2, 3):
        files += ["--ds", str(CVAT / f"annotator{n}.xml")]
    res = CliRunner().invoke(main, ["merge", *files, "--out", str(out), "--method", method])
    assert res.exit_code == 0, res.output
    merged = read_any(out)
    gt = read_any(CVAT / "gt.xml")
    # Annotator 3 is careless (accuracy 0.78 alone); consensus of the three reproduces the GT.
    assert compare(gt, merged).summary["accuracy"] == pytest.approx(1.0)
    assert merged.meta["consensus"]["method"] == method
    assert not np.isnan(merged.annotations.score).any()


def test_clusters_left_out_are_reported_with_their_ties():
    """Three annotators, quorum 0.5 (2 votes): a car/person pair ties at 1 vote each and two
    lone boxes have 1 vote each; all three are left out, and the merge says so (issue #19)."""
    aset = _multi(
        {
            "a": [box(0, 0, 10, 10), box(50, 50, 60, 60)],
            "b": [box(0, 0, 10, 10, "person")],
            "c": [box(80, 80, 90, 90, "person")],
        }
    )
    info = merge(aset).meta["consensus"]
    assert info["dropped_clusters"] == 3 and info["dropped_ties"] == 1
    assert info["dropped_items"] == [0]
