"""The bundled examples: reproducible from their seeded script, readable by every reader."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from labelgate.adapters import read_any
from labelgate.engine import compare

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = [
    "cvat/gt.xml",
    "cvat/annotator1.xml",
    "cvat/annotator2.xml",
    "cvat/annotator3.xml",
    "cvat/predictions.xml",
    "coco/gt.json",
    "labelstudio/export.json",
    "labelstudio/config.xml",
]


def test_generator_reproduces_the_bundled_files(tmp_path):
    subprocess.run([sys.executable, str(EXAMPLES / "make_examples.py"), str(tmp_path)], check=True)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes(), name


def test_the_three_formats_agree_on_the_ground_truth():
    cvat = read_any(EXAMPLES / "cvat/gt.xml")
    coco = read_any(EXAMPLES / "coco/gt.json")
    ls = read_any(EXAMPLES / "labelstudio/export.json").split_by_annotator()["ground_truth"]
    spatial = [a.select(a.kind != 0) for a in (cvat.annotations, coco.annotations)]
    np.testing.assert_allclose(spatial[0].bbox, spatial[1].bbox, atol=0.01)
    # Scored against each other, the CVAT and Label Studio ground truths are identical.
    r = compare(cvat, ls)
    assert r.summary["accuracy"] == 1.0 and r.summary["valid_count"] == 56


def test_annotators_have_the_intended_profiles():
    gt = read_any(EXAMPLES / "cvat/gt.xml")
    acc = {
        a: compare(gt, read_any(EXAMPLES / f"cvat/{a}.xml")).summary
        for a in ("annotator1", "annotator2", "annotator3")
    }
    # Careful > loose boxes > misses/extras, and loose boxes show as low overlap.
    assert (
        acc["annotator1"]["mean_iou"]
        > acc["annotator3"]["mean_iou"]
        > acc["annotator2"]["mean_iou"]
    )
    assert acc["annotator3"]["accuracy"] < acc["annotator1"]["accuracy"]
    assert acc["annotator2"]["conflicts_by_type"]["low_overlap"] > 30
