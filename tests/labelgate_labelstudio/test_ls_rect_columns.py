"""Label Studio rectangles as column blocks against the per-result conversion.

The oracle is the reader with its column path switched off (every result through
``_Converter.region``, the reader before that path). Seeded synthetic exports mix plain
rectangle annotations with everything the column path must leave alone (rotation, several
labels, scores, pre-annotation origins, polygons, choices, malformed numbers and sizes); the
annotation set (every column, items, submissions, meta, data errors) and the warnings must be
identical.
"""

import json
import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from labelgate.errors import DataWarning
from labelgate_labelstudio import json_export
from labelgate_labelstudio.json_export import read_ls_export
from labelgate_labelstudio.rect_columns import plain_rectangles

CONFIG = """<View><Image name="image" value="$image"/>
<RectangleLabels name="label" toName="image"><Label value="car"/><Label value="person"/></RectangleLabels>
<PolygonLabels name="poly" toName="image"><Label value="road"/></PolygonLabels>
<Choices name="quality" toName="image"><Choice value="good"/><Choice value="bad"/></Choices>
</View>"""


def _num(r: random.Random, bad: float):
    if r.random() < bad:
        return r.choice(["7", True, None, float("nan"), -5.0, 10**400, 1e300])
    return round(r.uniform(0, 80), 3) if r.random() < 0.8 else r.randint(0, 80)


def _rect(r: random.Random, rid: str, bad: float) -> dict:
    value = {"x": _num(r, bad), "y": _num(r, bad), "width": _num(r, bad), "height": _num(r, bad)}
    if r.random() < 0.5:
        value["rotation"] = 0 if r.random() > bad else r.choice([30, 0.0, False, "0"])
    value["rectanglelabels"] = (
        [r.choice(["car", "person"])]
        if r.random() > bad
        else r.choice([["car", "person"], [], ["bus"], "car", [3]])
    )
    res = {
        "id": rid,
        "type": "rectanglelabels",
        "from_name": "label" if r.random() > bad / 4 else "nope",
        "to_name": "image",
        "original_width": 640 if r.random() > bad / 3 else r.choice([0, "640", 640.0, None]),
        "original_height": 480,
        "value": value,
    }
    if r.random() < bad:
        res[r.choice(["score", "origin"])] = r.choice([0.5, "prediction"])
    return res


def _results(r: random.Random, bad: float) -> list:
    out = [_rect(r, f"r{r.randrange(10**6)}", bad) for _ in range(r.randint(0, 6))]
    if r.random() < bad and out:
        out.append(dict(out[0]))  # a repeated region id
    if r.random() < 0.15:
        pts = [[_num(r, 0), _num(r, 0)] for _ in range(4)]
        out.append(
            {
                "id": "p1",
                "type": "polygonlabels",
                "from_name": "poly",
                "to_name": "image",
                "original_width": 640,
                "original_height": 480,
                "value": {"points": pts, "polygonlabels": ["road"]},
            }
        )
    if r.random() < 0.15:
        out.insert(
            0,
            {
                "id": "c1",
                "type": "choices",
                "from_name": "quality",
                "to_name": "image",
                "value": {"choices": ["good"]},
            },
        )
    return out


def _export(tmp_path: Path, seed: int, bad: float) -> Path:
    r = random.Random(seed)
    tasks = []
    for t in range(30):
        anns = [
            {
                "id": 100 * t + k,
                "completed_by": r.choice([1, 2, 3]),
                "result": _results(r, bad),
                "ground_truth": r.random() < 0.1,
            }
            for k in range(r.randint(0, 3))
        ]
        preds = [
            {"id": 9000 + t, "model_version": "m1", "score": 0.8, "result": _results(r, bad)}
            for _ in range(r.randint(0, 1))
        ]
        tasks.append(
            {
                "id": t + 1,
                "data": {"image": f"/data/{t}.jpg"},
                "annotations": anns,
                "predictions": preds,
            }
        )
    path = tmp_path / f"ls{seed}.json"
    path.write_text(json.dumps(tasks))
    (tmp_path / "config.xml").write_text(CONFIG)
    return path


def _read(path: Path, columns: bool, monkeypatch):
    with monkeypatch.context() as m:
        if not columns:
            m.setattr(json_export._Converter, "rectangles", lambda self, *a: False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataWarning)
            aset = read_ls_export(path)
    return aset, [str(w.message) for w in caught]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("bad", [0.0, 0.15])
def test_rectangle_blocks_match_per_result_reader(tmp_path, seed, bad, monkeypatch):
    path = _export(tmp_path, seed, bad)
    new, new_warn = _read(path, True, monkeypatch)
    old, old_warn = _read(path, False, monkeypatch)
    assert new.to_dict() == old.to_dict()
    assert new_warn == old_warn


def test_clean_exports_go_through_the_column_path(tmp_path, monkeypatch):
    taken = []
    real = json_export._Converter.rectangles

    def spy(self, *args):
        taken.append(real(self, *args))
        return taken[-1]

    monkeypatch.setattr(json_export._Converter, "rectangles", spy)
    # The seeded export gives one task two ground-truth annotations: the reader says so.
    with pytest.warns(DataWarning, match="several ground-truth annotations"):
        read_ls_export(_export(tmp_path, 3, 0.0))
    assert sum(taken) > 10


def test_plain_rectangles_hand_computed():
    results = [
        {
            "id": "a",
            "type": "rectanglelabels",
            "from_name": "label",
            "original_width": 200,
            "original_height": 100,
            "value": {
                "x": 10,
                "y": 20.0,
                "width": 50,
                "height": 40,
                "rotation": 0,
                "rectanglelabels": ["car"],
            },
        },
    ]
    block = plain_rectangles(results, manual=True)
    assert block is not None
    # x = 10% of 200 = 20, y = 20% of 100 = 20, w = 100, h = 40.
    np.testing.assert_array_equal(block.bbox, [[20, 20, 120, 60]])
    assert block.size == (200, 100)
    rotated = [{**results[0], "value": {**results[0]["value"], "rotation": 30}}]
    assert plain_rectangles(rotated, manual=True) is None
    assert plain_rectangles([{**results[0], "origin": "prediction"}], manual=True) is None
    assert plain_rectangles([{**results[0], "origin": "prediction"}], manual=False) is not None
