"""A job's shapes converted as whole columns (shape_batch) against the per-shape paths.

``cvat_job_to_annotations`` first takes a job's plain shapes as columns
(:func:`labelgate_cvat.shape_batch.take_shapes`) and leaves every other shape to the
per-shape paths. The per-shape paths are the oracle: with the column pass switched off the
converter must give the very same annotation set, data errors and warnings, on seeded jobs
full of near-miss values and on mutated ones.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import pytest
from annotation_oracle import assert_same_conversion, convert_recorded
from cvat_double import load_state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import mutate_json

from labelgate.io.inputs import loads_json
from labelgate.model import Kind, Origin
from labelgate_cvat import payloads, shape_batch

STATE = load_state()
LABELS = [lab for lab in STATE["labels"] if lab.get("project_id") == 1]
FRAMES = 12
META = {
    "start_frame": 0,
    "stop_frame": FRAMES - 1,
    "frames": [{"name": f"f{i}.jpg", "width": 64, "height": 48} for i in range(FRAMES)],
}
# Near misses for each field: the column pass must refuse exactly what the per-shape path does.
ODD = {
    "type": ["ellipse", "mask", "skeleton", "cuboid", 3, None, "Rectangle"],
    "frame": [True, -1, FRAMES, 2.0, "3", 10**30, None],
    "label_id": [True, 99, "1", None, 1.0],
    "id": [None, True, 2**63, -(2**63), 2**64, "7", 1.5],
    "group": [None, False, True, -1, 2**63, 0.0, "2", []],
    "z_order": [None, False, 2**31, -(2**31), 1.5, "1"],
    "rotation": [None, -0.0, 7, 2**63, 2**63 + 1, -(2**64), math.nan, math.inf, "5", True],
    "occluded": [None, 1, "", [], "no"],
    "outside": [True, 1, None, "", []],
    "source": [None, "", "auto", " Semi-Auto ", "weird", 5, ["auto"]],
    "attributes": [
        None,
        [],
        [{"spec_id": 2, "value": "mauve"}],
        [{"spec_id": 2, "value": "red"}, {"spec_id": 2, "value": "blue"}],
        [{"spec_id": 77, "value": "red"}],
        [{"spec_id": True, "value": "red"}],
        [{"spec_id": 2, "value": 5}],
        [{"spec_id": 2, "value": None}],
        [{"spec_id": 2}],
        [{"spec_id": 2, "value": ["red"]}],
        ["red"],
        {"spec_id": 2},
    ],
}
ODD_POINTS = [
    [1, 2, 3],
    [1, 2],
    [1, 2, 3, math.nan],
    [1, 2, 3, math.inf],
    [1, 2, 3, 2**31 + 1],
    [1, 2, 3, 10**400],
    [1, 2, 3, True],
    [1, 2, 3, "4"],
    [5, 5, 1, 9],
    [1, 2, 3, 4, 5, 6],
    "1,2,3,4",
    None,
]


def _shape(rng: random.Random, i: int) -> Any:
    kind = rng.choice(["rectangle", "polygon", "polyline", "points"])
    n = {"rectangle": 2, "polygon": rng.randint(3, 5), "polyline": 2, "points": 1}[kind]
    pts = [round(rng.uniform(0, 60), rng.choice([0, 2])) for _ in range(2 * n)]
    if kind == "rectangle":
        pts = [min(pts[0], pts[2]), min(pts[1], pts[3]), max(pts[0], pts[2]), max(pts[1], pts[3])]
    label = 1 if kind == "rectangle" else 3
    shape: dict[str, Any] = {
        "type": kind,
        "id": i,
        "frame": rng.randrange(FRAMES),
        "label_id": label,
        "points": [int(v) if v == int(v) and rng.random() < 0.5 else v for v in pts],
        "group": rng.choice([0, 0, 3]),
        "z_order": rng.choice([0, 0, -2]),
        "rotation": rng.choice([0.0, 0.0, 30.5]),
        "occluded": rng.random() < 0.2,
        "outside": False,
        "source": rng.choice(["manual", "auto", "semi-auto"]),
        "attributes": [{"spec_id": 2, "value": rng.choice(["red", "blue"])}] if label == 1 else [],
        "elements": [],
    }
    roll = rng.random()
    if roll < 0.35:  # one near miss
        key = rng.choice([*ODD, "points"])
        shape[key] = rng.choice(ODD_POINTS if key == "points" else ODD[key])
    elif roll < 0.4:
        del shape[rng.choice(list(shape))]
    elif roll < 0.42:
        shape["error"] = "the XML reader's note"
    elif roll < 0.44:
        return rng.choice([["rectangle"], "shape", 5, None])
    return shape


def _job(seed: int, n: int) -> dict[str, Any]:
    rng = random.Random(seed)
    return {"shapes": [_shape(rng, i) for i in range(n)], "tags": [], "tracks": []}


def _convert(payload: Any, meta: Any = META, labels: Any = LABELS) -> tuple[Any, list[str]]:
    return convert_recorded(payload, meta, labels)


def _no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shape through the per-shape paths (the column pass takes none)."""
    empty = shape_batch._empty

    def per_shape(shapes: list[Any], **kw: Any) -> shape_batch.ShapeBatch:
        return empty(kw["annotator"], list(range(len(shapes))))

    monkeypatch.setattr(payloads, "take_shapes", per_shape)


def _assert_same(fast: Any, slow: Any) -> None:
    assert_same_conversion(fast, slow, bitwise=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_seeded_near_miss_jobs_convert_as_the_per_shape_paths_do(monkeypatch, seed):
    job = _job(seed, 1500)
    taken: list[int] = []
    real = payloads.take_shapes

    def counting(shapes: list[Any], **kw: Any) -> shape_batch.ShapeBatch:
        batch = real(shapes, **kw)
        taken.append(len(batch.annotations))
        return batch

    monkeypatch.setattr(payloads, "take_shapes", counting)
    fast, fast_warnings = _convert(json.loads(json.dumps(job)))
    _no_columns(monkeypatch)
    slow, slow_warnings = _convert(json.loads(json.dumps(job)))
    _assert_same(fast, slow)
    assert fast_warnings == slow_warnings
    # Not vacuous: most shapes went through the columns, and many were refused with a word.
    assert taken[0] > 800 and len(slow.data_errors) > 100


@pytest.mark.parametrize("seed", [31, 32])
def test_mutated_jobs_convert_as_the_per_shape_paths_do(monkeypatch, seed):
    base = {"payload": _job(seed, 40), "meta": META, "labels": LABELS}
    rng = random.Random(seed)
    cases = []
    for _ in range(40):
        log: list[str] = []
        mutated = json.loads(mutate_json(json.dumps(base), rng, log))
        if isinstance(mutated, dict):
            cases.append(mutated)
    fast = [_convert(c.get("payload"), c.get("meta"), c.get("labels") or []) for c in cases]
    _no_columns(monkeypatch)
    slow = [_convert(c.get("payload"), c.get("meta"), c.get("labels") or []) for c in cases]
    for (f, fw), (s, sw) in zip(fast, slow, strict=True):
        _assert_same(f, s)
        assert fw == sw
    assert sum(not isinstance(s, str) for s, _ in slow) > len(cases) // 3


def test_api_shapes_go_through_the_columns_with_hand_computed_values(monkeypatch):
    calls: list[Any] = []
    monkeypatch.setattr(
        payloads._Converter, "fast_shape", lambda self, s, owner=None: calls.append(s)
    )
    common = {"group": 0, "z_order": 0, "rotation": 0.0, "occluded": False, "outside": False}
    job = {
        "shapes": [
            {
                **common,
                "type": "rectangle",
                "id": 11,
                "frame": 4,
                "label_id": 1,
                "points": [10.5, 20, 30, 40.25],
                "source": "auto",
                "attributes": [{"spec_id": 2, "value": "blue"}],
                "rotation": 15,
            },
            {
                **common,
                "type": "polygon",
                "id": 12,
                "frame": 1,
                "label_id": 3,
                "points": [5, 6, 1, 9, 3, 2],
                "source": "manual",
                "attributes": [],
                "group": 7,
                "occluded": True,
            },
            {
                **common,
                "type": "rectangle",
                "id": 13,
                "frame": 1,
                "label_id": 1,
                "points": [0, 0, 2, 2],
                "source": None,
                "attributes": [],
            },
        ]
    }
    out, caught = _convert(job)
    assert calls == [] and caught == []  # no shape left to the per-shape paths
    ann = out.annotations
    # By frame, then by arrival: the polygon (frame 1, 2nd), the small box (frame 1, 3rd).
    assert ann.source_id.tolist() == [12, 13, 11]
    assert ann.bbox.tolist() == [[1, 2, 5, 9], [0, 0, 2, 2], [10.5, 20, 30, 40.25]]
    assert ann.kind.tolist() == [Kind.POLYGON, Kind.RECTANGLE, Kind.RECTANGLE]
    assert ann.points_of(0).tolist() == [[5, 6], [1, 9], [3, 2]]
    assert len(ann.points_of(1)) == 0 and len(ann.points_of(2)) == 0
    assert ann.rotation.tolist() == [0.0, 0.0, 15.0] and ann.group.tolist() == [7, 0, 0]
    assert ann.occluded.tolist() == [True, False, False]
    assert ann.origin.tolist() == [Origin.MANUAL, Origin.MANUAL, Origin.AUTO]
    # The car's colour: given (blue) or its declared default; the person has none.
    default = next(a for a in LABELS[0]["attributes"] if a["id"] == 2)["default_value"]
    assert ann.attributes["color"].tolist() == [None, default, "blue"]


def test_bulk_bodies_parse_with_orjson_and_non_strict_json_still_reads():
    assert loads_json(b'{"shapes": [{"points": [1, 2.5]}]}') == {"shapes": [{"points": [1, 2.5]}]}
    # Python's json writes NaN; orjson refuses it, so the body is read by json instead and the
    # converter names the bad coordinate.
    assert math.isnan(loads_json(b'{"points": [NaN]}')["points"][0])
    with pytest.raises(ValueError):
        loads_json(b'{"shapes": [')


def test_negative_zero_rotation_reads_as_the_per_shape_path_reads_it(monkeypatch):
    """``rotation or 0.0`` makes -0.0 a plain 0.0; the column pass must too (bit for bit)."""
    rng = random.Random(5)
    shapes = [_shape(random.Random(i), i) for i in range(40)]
    shapes = [s for s in shapes if isinstance(s, dict) and type(s.get("rotation")) is float]
    for s in shapes:
        s["rotation"] = rng.choice([-0.0, 0.0, 12.5])
    fast, _ = _convert({"shapes": json.loads(json.dumps(shapes))})
    _no_columns(monkeypatch)
    slow, _ = _convert({"shapes": json.loads(json.dumps(shapes))})
    _assert_same(fast, slow)
    assert 0.0 in fast.annotations.rotation.tolist()
    assert not np.signbit(fast.annotations.rotation).any()


# The column helpers against the per-value Python they replace.
_BIG = st.integers(min_value=-(2**70), max_value=2**70)
_SMALL = st.integers(min_value=-3, max_value=40)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.one_of(_SMALL, _BIG), max_size=40),
    table=st.dictionaries(st.one_of(_SMALL, _BIG), st.integers(0, 9), max_size=8),
)
def test_lookup_gives_what_one_dict_get_per_value_gives(values, table):
    expected = [table.get(v, -1) for v in values]
    assert shape_batch._lookup(values, table).tolist() == expected


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(st.integers(0, 40), st.integers(-(2**40), 2**40), st.just(2**15 - 1)),
        max_size=60,
    )
)
def test_stable_order_is_numpys_stable_argsort(keys):
    arr = np.array(keys, np.int64)
    expected = np.argsort(arr, kind="stable")
    assert shape_batch._stable_order(arr).tolist() == expected.tolist()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.one_of(st.integers(0, 4), _BIG), st.sampled_from(["red", "blue", "", "é"])),
        max_size=40,
    )
)
def test_pair_codes_name_each_entry_s_own_pair_once(entries):
    sids, texts = [s for s, _ in entries], [t for _, t in entries]
    distinct, code = shape_batch._pair_codes(sids, texts)
    assert len(set(distinct)) == len(distinct) == len(set(entries))
    assert [distinct[c] for c in code.tolist()] == entries
    assert all(type(s) is int for s, _ in distinct)


@pytest.mark.parametrize(
    ("flat", "plain"),
    [
        ([], True),
        ([{"spec_id": 2, "value": "red"}, {"spec_id": 3, "value": ""}], True),
        ([{"spec_id": True, "value": "red"}], False),  # a bool is no id
        ([{"spec_id": 2, "value": 5}], False),
        ([{"spec_id": 2}], False),
        ([{"spec_id": 2, "value": ["red"]}], False),
        (["red"], False),
        ([{"spec_id": 2.0, "value": "red"}], False),
    ],
)
def test_entry_fields_take_only_int_ids_with_text_values(flat, plain):
    assert (shape_batch._entry_fields(flat) is not None) is plain


@pytest.mark.parametrize("first_frame", [0, 2**15 - 6, 2**15, 10**6])
def test_high_frame_numbers_convert_as_the_per_shape_paths_do(monkeypatch, first_frame):
    """Frames past int16 take numpy's own stable sort; both sorts must give one order."""
    job = _job(4, 600)
    for s in job["shapes"]:
        if isinstance(s, dict) and type(s.get("frame")) is int and 0 <= s["frame"] < FRAMES:
            s["frame"] += first_frame
    meta = {**META, "start_frame": first_frame, "stop_frame": first_frame + FRAMES - 1}
    fast, fast_warnings = _convert(json.loads(json.dumps(job)), meta)
    _no_columns(monkeypatch)
    slow, slow_warnings = _convert(json.loads(json.dumps(job)), meta)
    _assert_same(fast, slow)
    assert fast_warnings == slow_warnings
    assert fast.annotations.item.min() >= first_frame and len(fast.annotations) > 300


_FIELD_VALUES = {
    key: st.sampled_from(values) for key, values in {**ODD, "points": ODD_POINTS}.items()
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 10**6), n=st.integers(1, 30))
def test_random_payloads_with_malformed_fields_convert_as_the_per_shape_paths_do(data, seed, n):
    rng = random.Random(seed)
    shapes = []
    for i in range(n):
        shape = _shape(rng, i)
        if isinstance(shape, dict):
            for key in data.draw(st.lists(st.sampled_from(sorted(_FIELD_VALUES)), max_size=3)):
                shape[key] = data.draw(_FIELD_VALUES[key])
        shapes.append(shape)
    body = json.dumps({"shapes": shapes, "tags": [], "tracks": []})
    fast = _convert(json.loads(body))
    with pytest.MonkeyPatch.context() as mp:
        _no_columns(mp)
        slow = _convert(json.loads(body))
    _assert_same(fast[0], slow[0])
    assert fast[1] == slow[1]
