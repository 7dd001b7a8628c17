"""The columnar fast path of the CVAT payload converter against its per-row path.

``cvat_job_to_annotations`` takes common well-formed shapes straight into columns and leaves
everything else to the per-row path (every check, one ``AnnotationsBuilder.add`` per row). The
per-row path is the oracle here: with the fast path switched off the converter must give the
very same annotation set, data errors and warnings, on a mixed job and on seeded mutations.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from annotation_oracle import assert_same_conversion, convert_recorded
from cvat_double import load_state
from mutations import mutate_json

from labelgate.model import Kind, SourceType
from labelgate_cvat import payloads

STATE = load_state()
LABELS = [lab for lab in STATE["labels"] if lab.get("project_id") == 1]
META = {
    "start_frame": 0,
    "stop_frame": 9,
    "frames": [{"name": f"f{i}.jpg", "width": 64, "height": 48} for i in range(10)],
}


def _rect(i: int, frame: int, pts: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "rectangle",
        "id": i,
        "frame": frame,
        "label_id": 1,
        "points": pts,
        "attributes": [{"spec_id": 2, "value": "blue"}],
        **extra,
    }


def _mixed_job() -> dict[str, Any]:
    """Shapes of every path, frames out of order, good and bad rows interleaved, a track."""
    poly = {"type": "polygon", "label_id": 3, "points": [1, 1, 9, 1, 9, 9.5], "attributes": []}
    return {
        "shapes": [
            _rect(1, 5, [1.0, 2.0, 3.0, 4.0]),
            {**poly, "id": 2, "frame": 2, "group": 3, "z_order": -2, "source": "auto"},
            _rect(3, 5, [3.0, 2.0, 1.0, 4.0]),  # x2 < x1: the per-row path names it
            _rect(4, 1, [1, 2, 3, 4], attributes=[{"spec_id": 2, "value": "mauve"}]),
            {**poly, "id": 5, "frame": 5, "type": "ellipse", "points": [5, 5, 8, 3]},
            _rect(6, 5, [1, 2, 3, float("nan")]),
            {**poly, "id": 7, "frame": 0, "type": "points", "points": [2, 2], "occluded": True},
            _rect(8, 2, [0, 0, 1, 1], rotation=30, source="semi-auto"),
            _rect(9, 99, [0, 0, 1, 1]),  # frame outside the job
            {**poly, "id": 10, "frame": 2, "type": "polyline", "points": [0, 0, 4, 4]},
            _rect(11, 5, [0, 0, 1, 1], attributes=[{"spec_id": 77, "value": "red"}]),
            _rect(12, 3, [0, 0, 1, 1], group=True),
            _rect(13, 3, [0, 0, 1, "2"]),
        ],
        "tags": [{"id": 20, "frame": 5, "label_id": 3, "attributes": []}],
        "tracks": [
            {
                "id": 30,
                "frame": 0,
                "label_id": 1,
                "group": 0,
                "source": "manual",
                "attributes": [{"spec_id": 2, "value": "red"}],
                "shapes": [
                    {"type": "rectangle", "frame": 1, "points": [0, 0, 4, 4], "outside": False},
                    {"type": "rectangle", "frame": 4, "points": [4, 4, 8, 8], "outside": True},
                ],
            }
        ],
    }


def _convert(payload: Any, meta: Any = META, labels: Any = LABELS) -> tuple[Any, list[str]]:
    return convert_recorded(payload, meta, labels)


def _per_row_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(payloads._Converter, "fast_shape", lambda self, shape, owner=None: False)


def _assert_same(fast: Any, slow: Any) -> None:
    assert_same_conversion(fast, slow)


def test_mixed_job_converts_as_the_per_row_path_does(monkeypatch):
    fast, fast_warnings = _convert(_mixed_job())
    _per_row_only(monkeypatch)
    slow, slow_warnings = _convert(_mixed_job())
    _assert_same(fast, slow)
    assert fast_warnings == slow_warnings
    # The oracle is not vacuous: bad rows were reported and good rows of each path kept.
    kinds = set(fast.annotations.kind.tolist())
    assert {Kind.RECTANGLE, Kind.POLYGON, Kind.ELLIPSE, Kind.TAG, Kind.POINTS} <= kinds
    assert len(fast.data_errors) >= 6
    assert SourceType.TRACK in fast.annotations.source_type.tolist()


def test_common_shapes_take_the_fast_path_with_hand_computed_values(monkeypatch):
    slow_calls: list[Any] = []
    original = payloads._Converter.shape
    monkeypatch.setattr(
        payloads._Converter,
        "shape",
        lambda self, shape, **kw: slow_calls.append(shape) or original(self, shape, **kw),
    )
    job = {
        "shapes": [
            _rect(1, 4, [10.5, 20.0, 30.0, 40.25], rotation=15, z_order=2, group=7),
            {
                "type": "polygon",
                "id": 2,
                "frame": 1,
                "label_id": 3,
                "points": [5, 6, 1, 9, 3, 2],
                "occluded": True,
                "source": "auto",
            },
        ]
    }
    out, caught = _convert(job)
    assert slow_calls == [] and caught == []
    ann = out.annotations
    # Sorted by frame: the polygon (frame 1) first; its box spans its vertices.
    assert ann.item.tolist() == [1, 4]
    assert ann.bbox.tolist() == [[1.0, 2.0, 5.0, 9.0], [10.5, 20.0, 30.0, 40.25]]
    assert ann.points_of(0).tolist() == [[5, 6], [1, 9], [3, 2]] and len(ann.points_of(1)) == 0
    assert ann.kind.tolist() == [Kind.POLYGON, Kind.RECTANGLE]
    assert ann.rotation.tolist() == [0.0, 15.0] and ann.z_order.tolist() == [0, 2]
    assert ann.group.tolist() == [0, 7] and ann.occluded.tolist() == [True, False]
    assert ann.origin.tolist() == [1, 0] and ann.source_id.tolist() == [2, 1]
    # The car's colour was given; the person has no attributes.
    assert ann.attributes["color"].tolist() == [None, "blue"]


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_mutated_jobs_convert_as_the_per_row_path_does(monkeypatch, seed):
    base = {"payload": _mixed_job(), "meta": META, "labels": LABELS}
    rng = random.Random(seed)
    cases = []
    for _ in range(60):
        log: list[str] = []
        mutated = json.loads(mutate_json(json.dumps(base), rng, log))
        if isinstance(mutated, dict):
            cases.append(mutated)
    fast = [_convert(c.get("payload"), c.get("meta"), c.get("labels") or []) for c in cases]
    _per_row_only(monkeypatch)
    slow = [_convert(c.get("payload"), c.get("meta"), c.get("labels") or []) for c in cases]
    for (f, fw), (s, sw) in zip(fast, slow, strict=True):
        _assert_same(f, s)
        assert fw == sw
    assert sum(not isinstance(s, str) for s, _ in slow) > len(cases) // 3
