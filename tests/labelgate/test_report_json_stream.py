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
        attribute_names={2: ("couleur é", 'q"uote')},
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
    got = [json.loads(enc.text(k)) for k in range(4)]
    assert repr(got) == repr(expected)  # same doubles, None for NaN, same key order
    assert got[1]["similarity"] == 1e-05 and got[0]["similarity"] is None
    assert got[2]["position"] == [-0.0, 2.5, 7.25, 9.0]
    assert got[0]["label_names"] == [None]
    assert got[2]["attribute_names"] == ["couleur é", 'q"uote']
    # Ranges, picks in any order and the block cut all give the same texts.
    assert json.loads("[" + str(enc.joined(1, 4), "utf-8") + "]") == expected[1:]
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
