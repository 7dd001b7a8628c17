"""A control's share of the one comparison equals comparing that control alone.

Random Label Studio projects with two RectangleLabels controls (so regions of different
controls share a type group and overlap), a PolygonLabels and a Choices control: for every
region control, :func:`split_report` of the whole-set comparison gives the counts, per-frame
accuracy and conflicts of :func:`compare` run on the control's rows only.
"""

import json
from dataclasses import replace

import numpy as np
import pytest

from labelgate.adapters import GT_ANNOTATOR
from labelgate.engine import QualitySettings, compare
from labelgate.engine.matching import match_annotations
from labelgate.engine.report_split import split_report
from labelgate.run_sources import FileSource

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="bbox" toName="image">
    <Label value="car"/><Label value="person"/>
  </RectangleLabels>
  <RectangleLabels name="vehicle" toName="image">
    <Label value="truck"/><Label value="bus"/>
  </RectangleLabels>
  <PolygonLabels name="sign" toName="image"><Label value="road_sign"/></PolygonLabels>
  <Choices name="scene" toName="image"><Choice value="day"/><Choice value="night"/></Choices>
</View>"""
LABELS = {"bbox": ("car", "person"), "vehicle": ("truck", "bus")}
W, H = 640, 480


def _box(control, label, x, y, w, h, k):
    return {
        "id": f"r{k}",
        "from_name": control,
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": W,
        "original_height": H,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                  "rectanglelabels": [label]},
    }  # fmt: skip


def _polygon(x, y, k):
    pts = [[x, y], [x + 6, y], [x + 6, y + 8], [x, y + 8]]
    return {
        "id": f"p{k}",
        "from_name": "sign",
        "to_name": "image",
        "type": "polygonlabels",
        "original_width": W,
        "original_height": H,
        "value": {"points": pts, "closed": True, "polygonlabels": ["road_sign"]},
    }


def _project(rng, n_tasks=6):
    """GT and one annotator who jitters, drops, adds, relabels within a control and moves
    regions to the other rectangle control (same geometry: a cross-control overlap)."""
    tasks = []
    for t in range(n_tasks):
        gt, ds = [], []
        for k in range(int(rng.integers(0, 7))):
            control = str(rng.choice(list(LABELS)))
            label = str(rng.choice(LABELS[control]))
            x, y = rng.uniform(0, 80), rng.uniform(0, 80)
            w, h = rng.uniform(4, 20), rng.uniform(4, 20)
            gt.append(_box(control, label, x, y, w, h, k))
            roll = rng.uniform()
            if roll < 0.15:
                continue  # missing
            if roll < 0.35:
                control = "vehicle" if control == "bbox" else "bbox"
                label = str(rng.choice(LABELS[control]))
            elif roll < 0.45:
                label = str(rng.choice(LABELS[control]))
            jitter = rng.normal(0, 1.5, 2)
            ds.append(_box(control, label, x + jitter[0], y + jitter[1], w, h, k))
        for k in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 80), rng.uniform(0, 80)
            gt.append(_polygon(x, y, 100 + k))
            if rng.uniform() < 0.8:
                ds.append(_polygon(x + rng.normal(0, 0.5), y, 100 + k))
        for k in range(int(rng.integers(0, 2))):
            ds.append(_box("bbox", "car", *rng.uniform(0, 80, 2), 10, 10, 200 + k))  # extra
        scene = {"from_name": "scene", "to_name": "image", "type": "choices"}
        gt.append({**scene, "id": "s", "value": {"choices": ["day"]}})
        ds.append({**scene, "id": "s", "value": {"choices": [str(rng.choice(["day", "night"]))]}})
        tasks.append(
            {
                "id": t + 1,
                "data": {"image": f"/data/upload/1/img{t}.jpg"},
                "annotations": [
                    {"id": 10 * t + 1, "completed_by": {"email": "lead@example.com"},
                     "ground_truth": True, "result": gt},
                    {"id": 10 * t + 2, "completed_by": {"email": "a@example.com"},
                     "ground_truth": False, "result": ds},
                ],
            }
        )  # fmt: skip
    return tasks


def _load(tmp_path, tasks):
    (tmp_path / "config.xml").write_text(CONFIG)
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    source = FileSource(
        tmp_path / "export.json", reader_options={"config": tmp_path / "config.xml"}
    )
    aset = source.pull().aset
    parts = aset.split_by_annotator()
    return aset, parts[GT_ANNOTATOR], parts["a@example.com"]


def _only(part, ci):
    return part.replace(annotations=part.annotations.select(part.annotations.control == ci))


def _alone(rep):
    """What the old per-control pass read from a comparison of the control alone."""
    d = rep.to_dict()
    frames = {
        int(f): r["annotations"]["accuracy"]
        for f, r in d["frame_results"].items()
        if r["annotations"]["total_count"]
    }
    counts = {k: rep.summary[k] for k in ("valid_count", "ds_count", "gt_count", "total_count")}
    return counts, rep.summary["accuracy"], frames, d["conflicts"]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("covered", [False, True], ids=["no-covered", "covered"])
def test_control_split_equals_comparing_the_control_alone(tmp_path, seed, covered):
    aset, gt, ds = _load(tmp_path, _project(np.random.default_rng(seed)))
    settings = QualitySettings(check_covered_annotations=covered)
    whole = compare(gt, ds, settings)
    for ci, control in enumerate(aset.schema.controls):
        if control.type not in ("RectangleLabels", "PolygonLabels"):
            continue
        labels = [lab.name for lab in aset.schema.labels if lab.control == control.name]
        part = split_report(whole, labels)
        counts, accuracy, frames, conflicts = _alone(
            compare(_only(gt, ci), _only(ds, ci), settings)
        )
        assert {
            "valid_count": part.valid_count,
            "ds_count": part.ds_count,
            "gt_count": part.gt_count,
            "total_count": part.total_count,
        } == counts
        assert part.accuracy == pytest.approx(accuracy)
        assert part.frame_accuracy == pytest.approx(frames)
        if not covered:
            assert part.conflicts == conflicts
        else:
            # The covered check looks at every shape the annotator painted on the frame,
            # whatever its control: the split keeps the control's covered rows that only a
            # region of another control hides. Every other conflict is the control's own.
            def others(cs):
                return [c for c in cs if c["type"] != "covered_annotation"]

            assert others(part.conflicts) == others(conflicts)


def test_regions_of_different_controls_never_pair(tmp_path):
    """A car box and a truck box at the same place: without controls they would match (a
    label mismatch); as two controls they are one missing and one extra."""
    gt_box = _box("bbox", "car", 10, 10, 20, 20, 0)
    ds_box = _box("vehicle", "truck", 10, 10, 20, 20, 0)
    tasks = [
        {
            "id": 1,
            "data": {"image": "/x.jpg"},
            "annotations": [
                {"id": 1, "completed_by": {"email": "lead@example.com"}, "ground_truth": True,
                 "result": [gt_box]},
                {"id": 2, "completed_by": {"email": "a@example.com"}, "ground_truth": False,
                 "result": [ds_box]},
            ],
        }
    ]  # fmt: skip
    _, gt, ds = _load(tmp_path, tasks)
    m = match_annotations(gt.annotations, ds.annotations, gt.items)
    assert len(m.gt_row) == 0
    assert m.unmatched_gt.tolist() == [0] and m.unmatched_ds.tolist() == [0]
    # Best overlap of a leftover is taken within its control: none here.
    assert m.best_gt.tolist() == [0.0] and m.best_ds.tolist() == [0.0]
    s = compare(gt, ds).summary
    assert (s["valid_count"], s["missing_count"], s["extra_count"]) == (0, 1, 1)
    # Same rows without controls (CVAT data): one pair, a label mismatch.
    plain = replace(gt.annotations, control=np.full(1, -1, np.int16))
    plain_ds = replace(ds.annotations, control=np.full(1, -1, np.int16))
    m = match_annotations(plain, plain_ds, gt.items)
    assert m.gt_row.tolist() == [0] and m.label_equal.tolist() == [False]
    # One side without controls (a CVAT or COCO file, a consensus): matched as before.
    m = match_annotations(plain, ds.annotations, gt.items)
    assert m.gt_row.tolist() == [0] and m.label_equal.tolist() == [False]


def test_covered_check_stays_within_a_control(tmp_path):
    """The annotator's car box lies under their larger truck box of another control: a control
    is its own layer, so no covered conflict, in the whole comparison's share as when the bbox
    control is compared alone."""
    result = [
        _box("bbox", "car", 10, 10, 5, 5, 0),
        _box("vehicle", "truck", 5, 5, 30, 30, 1),
    ]
    tasks = [
        {
            "id": 1,
            "data": {"image": "/x.jpg"},
            "annotations": [
                {"id": 1, "completed_by": {"email": "lead@example.com"}, "ground_truth": True,
                 "result": result},
                {"id": 2, "completed_by": {"email": "a@example.com"}, "ground_truth": False,
                 "result": result},
            ],
        }
    ]  # fmt: skip
    _, gt, ds = _load(tmp_path, tasks)
    settings = QualitySettings(check_covered_annotations=True)
    part = split_report(compare(gt, ds, settings), ["car", "person"])
    alone = compare(_only(gt, 0), _only(ds, 0), settings)
    assert part.conflicts == [] == alone.conflicts
    # The counts are the control's own either way.
    assert (
        (part.valid_count, part.total_count)
        == (1, 1)
        == (
            alone.summary["valid_count"],
            alone.summary["total_count"],
        )
    )


@pytest.mark.parametrize("seed", range(6))
def test_pair_agreement_per_control_equals_matching_the_control_alone(tmp_path, seed):
    """The agreement side: a pair's ``per_control`` share, from its one matching, equals
    :func:`pair_agreement` of the two annotators' rows of that control only."""
    from labelgate.agreement.report import pair_agreement

    aset, a, b = _load(tmp_path, _project(np.random.default_rng(100 + seed)))
    per = pair_agreement(a, b, by_control=True)["per_control"]
    seen = 0
    for ci, control in enumerate(aset.schema.controls):
        alone = pair_agreement(_only(a, ci), _only(b, ci))
        if not alone["n_a"] and not alone["n_b"]:
            assert ci not in per or (not per[ci]["n_a"] and not per[ci]["n_b"])
            continue
        seen += control.type != "Choices"
        share = per[ci]
        for key in ("items", "f1", "matched", "n_a", "n_b", "per_item", "per_label"):
            assert share[key] == alone[key], key
        assert share["mean_iou"] == pytest.approx(alone["mean_iou"])
        assert share["per_label_mean_iou"] == pytest.approx(alone["per_label_mean_iou"])
        np.testing.assert_array_equal(share["iou_values"], alone["iou_values"])
    assert seen  # a region control was compared
