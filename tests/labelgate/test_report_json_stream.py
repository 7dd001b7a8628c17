"""The report JSON written from the conflict columns (``Report.iter_json``/``save_json``) and the
chunked JSON writer: the columns' text parses to exactly the stdlib's ``json.dumps`` of
``to_dict()`` (numbers in orjson's spelling, e.g. ``0.00001`` for ``1e-05``); the generic writer
is character for character ``json.dumps``."""

import importlib
import io
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import labelgate.json_stream as json_stream
from labelgate.engine import QualitySettings, compare
from labelgate.engine.report import Report
from labelgate.model import AnnotationsBuilder, AnnotationSet, Items, Label, LabelSchema

# The package re-exports the function under the module's name.
compare_module = importlib.import_module("labelgate.engine.compare")

# Unicode names: json.dumps escapes them (ensure_ascii), the column writer must too.
SCHEMA = LabelSchema(
    labels=(Label("voiture é"), Label("人"), Label('say "hi"\n'), Label("jour", "tag"))
)


def _random_set(seed: int, frames: int, name: str, job_id, variant: int) -> AnnotationSet:
    """Boxes (some with attributes), polygons and tags at random on ``frames`` frames; the
    shapes come from ``seed``, while ``variant`` drops, moves and relabels some of them."""
    rng = np.random.default_rng(seed)
    vary = np.random.default_rng(variant)
    b = AnnotationsBuilder(["a"])
    sid = 1
    for f in range(frames):
        for _ in range(rng.integers(0, 6)):
            x, y = rng.uniform(0, 80, 2) + vary.uniform(0, 4, 2)
            w, h = rng.uniform(3, 30, 2)
            kind = str(rng.choice(["rectangle", "rectangle", "polygon"]))
            label = int(rng.integers(0, 3))
            label = label if vary.random() < 0.8 else int(vary.integers(0, 3))
            kw: dict = {"bbox": [x, y, x + w, y + h]}
            if kind == "polygon":
                kw = {"points": [x, y, x + w, y, x + w / 2, y + h]}
            if rng.random() < 0.5:
                kw["attributes"] = {"colour": str(vary.choice(["red", "blue"]))}
            if vary.random() < 0.9:
                b.add(f, kind, label, source_id=sid, annotator=0, **kw)
            sid += 1
        if rng.random() < 0.5 and vary.random() < 0.7:
            b.add(f, "tag", 3, source_id=sid, annotator=0)
            sid += 1
    items = Items.create(
        list(range(frames)), name=[f"f{f}.jpg" for f in range(frames)], width=100, height=100
    )
    return AnnotationSet(name, SCHEMA, items, b.build(), meta={"job_id": job_id})


def _pair(seed: int, frames: int = 40):
    return (
        _random_set(seed, frames, "gt", 7, seed + 1),
        _random_set(seed, frames, "ds", None, seed + 2),
    )


def _kinds(report) -> dict[str, int]:
    return {k: v for k, v in report.summary["conflicts_by_type"].items() if v}


@pytest.mark.parametrize("seed", [1, 2])
def test_streamed_text_parses_to_json_dumps_of_to_dict(seed, monkeypatch):
    # Few geometry payloads, so the cut after MAX_GEOMETRY_CONFLICTS is inside the report.
    monkeypatch.setattr(compare_module, "MAX_GEOMETRY_CONFLICTS", 5)
    gt, ds = _pair(seed)
    settings = QualitySettings(compare_attributes=True, iou_threshold=0.3)
    streamed = "".join(compare(gt, ds, settings).iter_json())
    expected = compare(gt, ds, settings).to_dict()
    assert json.loads(streamed) == json.loads(json.dumps(expected))
    # Not merely equal as numbers: every float is the same double (1.0 == 1 would hide an int).
    assert repr(json.loads(streamed)) == repr(json.loads(json.dumps(expected)))
    # The seeded sets exercise what the writer special-cases.
    conflicts = expected["conflicts"]
    assert len(conflicts) > 20
    assert sum("geometry" in c for c in conflicts) == 5
    assert any("attribute_names" in c for c in conflicts)
    assert any(c["similarity"] is None for c in conflicts)
    assert any(isinstance(c["similarity"], float) for c in conflicts)
    assert {len(c["annotation_ids"]) for c in conflicts} == {1, 2}
    assert "\\u00e9" in streamed and "\\u4eba" in streamed


def test_streamed_report_keeps_to_dict_available_and_frames_in_order():
    gt, ds = _pair(5, frames=12)
    report = compare(gt, ds)
    first = "".join(report.iter_json())
    # Still lazy: to_dict builds the dicts afterwards, and the text then comes from them.
    data = report.to_dict()
    assert "".join(report.iter_json()) == json.dumps(data)
    assert json.loads(first) == json.loads(json.dumps(data))
    listed = [c for f in data["frame_results"].values() for c in f["conflicts"]]
    assert sorted(map(json.dumps, listed)) == sorted(map(json.dumps, data["conflicts"]))


def test_hand_made_conflicts_text():
    # One GT box and one DS box of another label with IoU 1: a mismatching_label conflict with
    # both ids (DS first), label names of each side and the DS box as position.
    b = AnnotationsBuilder(["a"])
    b.add(0, "rectangle", 0, bbox=[1.5, 2.0, 11.5, 12.0], source_id=4, annotator=0)
    gt = AnnotationSet(
        "gt", SCHEMA, Items.create([0], name=["a.jpg"], width=50, height=50), b.build()
    )
    b = AnnotationsBuilder(["a"])
    b.add(0, "rectangle", 1, bbox=[1.5, 2.0, 11.5, 12.0], source_id=9, annotator=0)
    ds = AnnotationSet(
        "ds", SCHEMA, Items.create([0], name=["a.jpg"], width=50, height=50), b.build()
    )
    report = compare(gt, ds, QualitySettings(check_covered_annotations=False))
    text = "".join(report.iter_json())
    conflict = json.loads(text)["conflicts"][0]
    del conflict["geometry"]
    assert conflict == {
        "type": "mismatching_label",
        "severity": "error",  # CVAT: a wrong label is an error
        "frame_id": 0,
        "annotation_ids": [
            {"obj_id": 9, "job_id": None, "type": "shape", "shape_type": "rectangle"},
            {"obj_id": 4, "job_id": None, "type": "shape", "shape_type": "rectangle"},
        ],
        "label_names": ["人", "voiture é"],
        "position": [1.5, 2.0, 11.5, 12.0],
        "similarity": 1.0,
    }


def test_save_json_round_trips_and_writes_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(json_stream, "_WRITE_CHUNK", 1000)
    gt, ds = _pair(9)
    report = compare(gt, ds)
    path = tmp_path / "r.json"
    report.save_json(path)
    loaded = Report.load_json(path)
    assert loaded.to_dict() == json.loads(json.dumps(compare(gt, ds).to_dict()))
    # A report read back (no columns) writes through the generic path: same values.
    again = tmp_path / "again.json"
    loaded.save_json(again)
    assert json.loads(again.read_text()) == json.loads(path.read_text())
    assert again.read_text() == json.dumps(loaded.to_dict())


def test_iter_json_matches_json_dumps_on_big_and_odd_values():
    big = [{"i": i, "x": i / 7, "s": f"é{i}"} for i in range(3000)]
    obj = {
        "a": big,
        1: {str(k): [k, None, math.nan, math.inf] for k in range(400)},
        None: (1, 2),
        "deep": {"b": {"c": {"d": {"e": {"f": list(range(300))}}}}},
        "empty": {},
        "obj": object,
    }
    text = "".join(json_stream.iter_json(obj, default=str))
    assert text == json.dumps(obj, default=str)
    with pytest.raises(TypeError):
        "".join(json_stream.iter_json({"x": [object] * 300}))


def test_write_chunks_gathers_pieces():
    class Sink(io.StringIO):
        writes = 0

        def write(self, s):
            Sink.writes += 1
            return super().write(s)

    sink = Sink()
    json_stream.write_chunks(sink, ["x" * 600_000] * 5)
    assert sink.getvalue() == "x" * 3_000_000
    assert Sink.writes == 3  # 1.2M, 1.2M, then the last 0.6M


def test_kinds_fixture_covers_missing_and_extra():
    r = compare(*_pair(1))
    assert {"missing_annotation", "extra_annotation"} <= set(_kinds(r))


def _hand_conflicts():
    """Four conflicts out of frame order, with numbers orjson and ``repr`` spell differently
    (``1e-05``/``0.00001``, ``1e-07``), a NaN similarity, an unlabelled (-1) GT row and
    a unicode attribute name."""
    from labelgate.engine.conflicts import CONFLICT_TYPES, Conflicts

    b = AnnotationsBuilder(["a"])
    b.add(0, "rectangle", 0, bbox=[1e-7, 0.1 + 0.2, 1.5e9, 2e9], source_id=40, annotator=0)
    b.add(3, "polygon", 2, points=[1, 1, 5, 1, 3, 4], source_id=41, annotator=0)
    gt = b.build()
    b = AnnotationsBuilder(["a"])
    b.add(0, "rectangle", 1, bbox=[-0.0, 2.5, 7.25, 9.0], source_id=90, annotator=0)
    ds = b.build()
    gt.label[1] = -1  # an annotation without a label writes null
    code = {t: i for i, t in enumerate(CONFLICT_TYPES)}
    c = Conflicts(
        type=np.array([code["low_overlap"], code["missing_annotation"]] * 2),
        frame=np.array([3, 0, 0, 3]),
        ds_row=np.array([-1, 0, 0, -1]),
        gt_row=np.array([1, -1, 0, 1]),
        similarity=np.array([math.nan, 1e-05, 0.1 + 0.2, 1 / 3]),
        # names with quotes, braces, brackets and a backslash: the extras' spans skip strings
        attribute_names={2: ("couleur é", 'q"uote'), 3: ("b{r}a[c]e\\", '"}')},
    )
    return gt, ds, c


def test_conflict_bytes_parse_to_conflicts_to_json_dicts():
    from labelgate.engine.compare import conflicts_to_json
    from labelgate.engine.conflict_text import conflict_bytes, conflict_extras

    gt, ds, c = _hand_conflicts()
    labels = [lb.name for lb in SCHEMA.labels]
    job = {"gt": 7, "ds": "j\u00e9"}
    expected = json.loads(json.dumps(conflicts_to_json(gt, ds, c, labels, job)))
    enc = conflict_bytes(gt, ds, c, labels, job, conflict_extras(gt, ds, c, None))
    assert len(enc) == 4
    got = [json.loads(str(enc.picked(np.array([k])), "utf-8")) for k in range(4)]
    assert repr(got) == repr(expected)  # same doubles, None for NaN, same key order
    assert got[1]["similarity"] == 1e-05 and got[0]["similarity"] is None
    assert got[2]["position"] == [-0.0, 2.5, 7.25, 9.0]
    assert got[0]["label_names"] == [None]
    assert got[2]["attribute_names"] == ["couleur é", 'q"uote']
    assert got[3]["attribute_names"] == ["b{r}a[c]e\\", '"}']
    # Ranges, picks in any order and the block cut all give the same texts.
    assert json.loads("[" + str(enc.picked(np.arange(1, 4)), "utf-8") + "]") == expected[1:]
    assert json.loads("[" + str(enc.picked(np.array([3, 0])), "utf-8") + "]") == [
        expected[3],
        expected[0],
    ]


def test_conflict_blocks_cut_anywhere(monkeypatch):
    import labelgate.engine.conflict_text as conflict_text

    # Blocks of a few bytes: every conflict is its own block, the stream still whole.
    monkeypatch.setattr(conflict_text, "_BLOCK", 10)
    gt, ds = _pair(3)
    streamed = "".join(compare(gt, ds).iter_json())
    assert json.loads(streamed) == json.loads(json.dumps(compare(gt, ds).to_dict()))


# --- frame_results text from the per-frame columns (labelgate.engine.frame_text) ---------------


def _saved(report, tmp_path, name="r.json"):
    path = tmp_path / name
    report.save_json(path)
    return path.read_text()


def _assert_parses_to_dicts(text: str, expected: dict) -> None:
    got = json.loads(text)
    want = json.loads(json.dumps(expected))
    # repr: the same doubles and ints (1.0 == 1 would hide an int written as a float)
    assert repr(got) == repr(want)
    for token in ("NaN", "Infinity"):
        assert token not in text


def _one_frame_set(name, boxes, frames=3, job_id=None):
    b = AnnotationsBuilder(["a"])
    for sid, (f, label, x) in enumerate(boxes, start=1):
        b.add(f, "rectangle", label, bbox=[x, 10, x + 20, 40], source_id=sid, annotator=0)
    items = Items.create(
        list(range(frames)), name=[f"f{f}.jpg" for f in range(frames)], width=100, height=100
    )
    return AnnotationSet(name, SCHEMA, items, b.build(), meta={"job_id": job_id})


@pytest.mark.parametrize(
    ("case", "gt_boxes", "ds_boxes", "frames"),
    [
        ("no conflicts", [(0, 0, 10), (1, 1, 30)], [(0, 0, 10), (1, 1, 30)], 3),
        ("frames without conflicts", [(0, 0, 10), (2, 1, 30)], [(0, 0, 10), (2, 0, 30)], 4),
        ("nothing annotated", [], [], 2),
        ("only missing", [(1, 0, 10), (1, 2, 50)], [], 2),
        ("only extra", [], [(0, 1, 10)], 1),
        ("label needing escapes", [(0, 2, 10)], [(0, 1, 10)], 1),
    ],
)
def test_saved_json_parses_to_to_dict_on_edge_reports(case, gt_boxes, ds_boxes, frames, tmp_path):
    def pair():
        return (
            _one_frame_set("gt", gt_boxes, frames, job_id=3),
            _one_frame_set("ds", ds_boxes, frames),
        )

    text = _saved(compare(*pair()), tmp_path)
    _assert_parses_to_dicts(text, compare(*pair()).to_dict())


def test_saved_json_with_no_paired_frames_has_empty_frame_results(tmp_path):
    gt = _one_frame_set("gt", [(0, 0, 10)], 2)
    ds = _one_frame_set("ds", [(0, 0, 10)], 2)
    ds = AnnotationSet(
        "ds",
        SCHEMA,
        Items.create([0, 1], name=["other0.jpg", "other1.jpg"], width=100, height=100),
        ds.annotations,
    )
    text = _saved(compare(gt, ds), tmp_path)
    assert json.loads(text)["frame_results"] == {}
    _assert_parses_to_dicts(text, compare(gt, ds).to_dict())


@pytest.mark.parametrize("rules_name", ["LEGACY", "CURRENT"])
def test_saved_json_severities_follow_the_rules(rules_name, tmp_path):
    from labelgate.engine import match_rules

    rules = getattr(match_rules, rules_name)
    gt, ds = _pair(4)
    text = _saved(compare(gt, ds, rules=rules), tmp_path)
    expected = compare(gt, ds, rules=rules).to_dict()
    _assert_parses_to_dicts(text, expected)
    severities = {c["severity"] for c in expected["conflicts"]}
    # requirement mode: every conflict is an error; CVAT 2.42 has warnings too
    assert severities == ({"error"} if rules_name == "CURRENT" else {"error", "warning"})


def _frame_payload(frames, n_labels=4, seed=0):
    """A ``build_report_data`` frames payload with random counts, IoUs and matrices."""
    rng = np.random.default_rng(seed)
    nf = len(frames)
    side = n_labels + 1
    cm = rng.integers(0, 4, (nf, side, side))
    cm[: nf // 3] = 0  # some frames with nothing (ratios of 0 / (0 or 1))
    comps = {
        "shape": {k: rng.integers(0, 9, nf) for k in compare_module.COUNT_KEYS},
        "label": {k: rng.integers(0, 9, nf) for k in compare_module.LABEL_COUNT_KEYS},
    }
    return {
        "frames": np.asarray(frames, np.int64),
        "cm": cm,
        "counts": compare_module._frame_counts(cm, bool(seed % 2)),
        "components": comps,
        "iou": rng.random(nf) / 3,
        "labels": [lb.name for lb in SCHEMA.labels],
    }


@pytest.mark.parametrize("block", [1 << 24, 40])
def test_frame_texts_parse_to_frame_dicts_with_conflicts_out_of_frame_order(block, monkeypatch):
    import labelgate.engine.frame_text as frame_text
    from labelgate.engine.compare import _frame_conflicts, conflicts_to_json
    from labelgate.engine.conflict_text import conflict_bytes, conflict_extras

    # Tiny blocks: every frame is cut into a block of its own.
    monkeypatch.setattr(frame_text, "_BLOCK", block)
    gt, ds, c = _hand_conflicts()  # frames 3, 0, 0, 3: out of frame order
    labels = [lb.name for lb in SCHEMA.labels]
    job = {"gt": 7, "ds": None}
    dicts = conflicts_to_json(gt, ds, c, labels, job)
    # frame 5 has no conflicts, frame 3's come back in report order after frame 0's
    payload = _frame_payload([0, 3, 5])
    texts = conflict_bytes(gt, ds, c, labels, job, conflict_extras(gt, ds, c, None))
    fc = _frame_conflicts(payload["frames"], [], c)
    assert fc.order.tolist() == [1, 2, 0, 3]
    text = b"".join(
        bytes(p)
        for p in frame_text.frame_texts(frame_text.frame_columns(payload), fc, texts).pieces()
    ).decode()
    expected = compare_module.frame_results(payload, dicts, c)
    _assert_parses_to_dicts(text, expected)
    assert [len(f["conflicts"]) for f in json.loads(text).values()] == [2, 2, 0]
    # the dicts path without columns reads the same frames from the dicts
    assert compare_module.frame_results(payload, dicts) == expected


def test_frame_texts_of_no_frames_and_conflicts_on_unknown_frames():
    import labelgate.engine.frame_text as frame_text
    from labelgate.engine.compare import _frame_conflicts
    from labelgate.engine.conflict_text import conflict_bytes

    gt, ds, c = _hand_conflicts()
    labels = [lb.name for lb in SCHEMA.labels]
    texts = conflict_bytes(gt, ds, c, labels, {"gt": 1, "ds": 2}, {})
    for frames in ([], [7]):  # no frames; a frame none of the conflicts is on
        payload = _frame_payload(frames)
        fc = _frame_conflicts(payload["frames"], [], c)
        got = b"".join(
            bytes(p)
            for p in frame_text.frame_texts(frame_text.frame_columns(payload), fc, texts).pieces()
        )
        expected = compare_module.frame_results(payload, [{}] * len(c), c)
        _assert_parses_to_dicts(got.decode(), expected)


def test_copy_piece_never_leaves_its_arrays():
    from numba import njit

    from labelgate.engine.conflict_text import copy_piece

    @njit
    def copy(out, at, src, a, b):
        return copy_piece(out, at, src, a, b)

    src = np.frombuffer(b"0123456789", np.uint8).copy()
    out = np.zeros(6, np.uint8)
    assert copy(out, 1, src, 2, 6) == 5
    assert bytes(out) == b"\x002345\x00"
    # out of either array: skipped, the length still counted (the callers check it)
    for at, a, b in [(4, 0, 3), (-1, 0, 2), (0, 8, 12), (0, -1, 2), (0, 5, 3)]:
        before = bytes(out)
        assert copy(out, at, src, a, b) == at + b - a
        assert bytes(out) == before


@given(
    seed=st.integers(0, 10_000),
    frames=st.integers(1, 12),
    iou=st.sampled_from([0.3, 0.5, 0.9]),
    attributes=st.booleans(),
    geometry=st.integers(0, 6),
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_streamed_bytes_parse_to_to_dict_on_random_reports(seed, frames, iou, attributes, geometry):
    gt, ds = _pair(seed, frames)
    s = QualitySettings(compare_attributes=attributes, iou_threshold=iou)
    old = compare_module.MAX_GEOMETRY_CONFLICTS
    compare_module.MAX_GEOMETRY_CONFLICTS = geometry  # the cut inside small reports too
    try:
        text = b"".join(bytes(p) for p in compare(gt, ds, s).iter_json_bytes()).decode()
        expected = compare(gt, ds, s).to_dict()
    finally:
        compare_module.MAX_GEOMETRY_CONFLICTS = old
    _assert_parses_to_dicts(text, expected)
