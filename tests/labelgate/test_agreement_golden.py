"""Golden outputs (crowd-kit style) on the bundled CVAT replicas: agreement and consensus.

Regenerate after an intended change with ``LABELGATE_UPDATE_GOLDEN=1`` and review the diff.
The merged objects are independently checked against the ground truth in
test_consensus_spatial.py (the consensus reproduces gt.xml), so this file pins the exact values.
"""

import json
import os
from pathlib import Path

import pytest

from labelgate.agreement.report import agreement_report
from labelgate.cli.options import load_multi
from labelgate.consensus import merge

ROOT = Path(__file__).resolve().parents[2]
CVAT = ROOT / "examples" / "cvat"
GOLDEN = Path(__file__).parent / "golden"


def _replicas():
    ds = tuple(CVAT / f"annotator{n}.xml" for n in (1, 2, 3))
    return load_multi(None, CVAT / "gt.xml", ds, None)


def _check(name, data):
    path = GOLDEN / name
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    if os.environ.get("LABELGATE_UPDATE_GOLDEN"):
        path.write_text(text)
    expected = json.loads(path.read_text())
    assert json.loads(text) == _approx(expected)


def _approx(value):
    if isinstance(value, float):
        return pytest.approx(value, abs=1e-9)
    if isinstance(value, dict):
        return {k: _approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_approx(v) for v in value]
    return value


def test_golden_agreement_on_cvat_replicas():
    r = agreement_report(_replicas(), n_boot=100, seed=0)
    keep = ("annotators", "matrix", "per_annotator", "per_label", "summary", "tags")
    data = {k: r[k] for k in keep}
    data["lowest_items"] = r["per_item"][:5]
    _check("agreement_cvat_replicas.json", data)


@pytest.mark.parametrize("method", ["cvat", "dawid-skene"])
def test_golden_merge_on_cvat_replicas(method):
    aset = _replicas()
    ann = merge(aset, method=method).annotations
    names = aset.schema.names
    objects = [
        {
            "item": int(ann.item[i]),
            "label": names[ann.label[i]],
            "bbox": [round(float(v), 6) for v in ann.bbox[i]],
            "score": round(float(ann.score[i]), 9),
            "group": int(ann.group[i]),
        }
        for i in range(len(ann))
    ]
    _check(f"agreement_merge_{method.replace('-', '_')}.json", objects)
