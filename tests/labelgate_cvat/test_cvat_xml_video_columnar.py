"""Video tracks expanded as columns (labelgate_cvat.xml_tracks) against the per-object path.

The oracle converts every ``<track>`` through ``xml_export._track`` and ``tracks.expand_track``
(one dict per frame). Seeded "CVAT for video 1.1" files mix tracks the columnar path takes
(boxes with rotation, points, polygons and polylines listed frame by frame) with those it must
leave (polyshape interpolation, skeletons, ellipses, mixed kinds, any field the converter
reports), with random keyframes, outside keyframes, occlusion, z_order, attributes changing at
keyframes, keyframes past the job's end or before its start (several segments of one video),
duplicate frames and keyframes out of document order. Set, warnings and attribute columns must
be identical; a table of single tracks pins which path each kind of track takes.
"""

import random
from pathlib import Path

import numpy as np
import pytest
from cvat_xml_oracle import LABELS, assert_same
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelgate.errors import FormatError
from labelgate_cvat import xml_fast
from labelgate_cvat.xml_export import _fast_frames, _fast_labels, read_cvat_xml
from labelgate_cvat.xml_fast import stream_cvat_xml

KINDS = ["box"] * 5 + ["polygon", "polyline", "points", "points1", "skeleton", "ellipse"]


def _attrs(r: random.Random, label: str, bad: float) -> str:
    names = [*{"car": ["color", "speed", "parked"], "sign": ["note"]}.get(label, []), "ghost"]
    out = []
    for _ in range(r.choice([0, 0, 1, 2])):
        name = r.choice(names)
        value = r.choice(["red", "blue", "12.5", "true", "", "fast" if r.random() < bad else "7"])
        out.append(f'<attribute name="{name}">{value}</attribute>')
    return "".join(out)


def _coords(r: random.Random, kind: str, bad: float) -> str:
    def num() -> str:
        return (
            r.choice(["nan", "x", "1e400"]) if r.random() < bad / 4 else f"{r.uniform(0, 400):.2f}"
        )

    if kind == "box":
        x, y = r.uniform(0, 300), r.uniform(0, 300)
        c = [f"{x:.2f}", f"{y:.2f}", f"{x + r.uniform(0, 60):.2f}", f"{y + r.uniform(0, 60):.2f}"]
        if r.random() < bad / 3:
            c[r.randrange(4)] = num()
        if r.random() < bad / 4:
            c[0], c[2] = c[2], c[0]
        return 'xtl="{}" ytl="{}" xbr="{}" ybr="{}"'.format(*c)
    if kind == "ellipse":
        return f'cx="{num()}" cy="40" rx="5" ry="7"'
    k = 1 if kind == "points1" else r.randint(1 if kind == "points" else 3, 5)
    return f'points="{";".join(f"{num()},{num()}" for _ in range(k))}"'


def _keyframe(r: random.Random, kind: str, frame: int, label: str, bad: float, last: bool) -> str:
    tag = "points" if kind == "points1" else kind
    if r.random() < bad / 6:
        tag = r.choice(["box", "points", "polygon"])  # a keyframe of another kind
    outside = int(r.random() < (0.5 if last else 0.15))
    common = (
        f'frame="{frame}" keyframe="{r.choice("01")}" outside="{outside}" '
        f'occluded="{r.choice("01")}" z_order="{r.choice(["0", "1", "-3"] + (["z"] if r.random() < bad else []))}"'
    )
    if tag == "box" and r.random() < 0.6:
        rot = r.choice(["0", "30.5", "350", "-20", "-0", "720.25", "180"])
        common += f' rotation="{r.choice(["nan", "r"]) if r.random() < bad / 3 else rot}"'
    if tag == "skeleton":
        pts = "".join(
            f'<points label="{n}" {common} points="{r.uniform(0, 99):.1f},{r.uniform(0, 99):.1f}"/>'
            for n in ("head", "foot")
        )
        return f"<skeleton {common}>{pts}</skeleton>"
    return f"<{tag} {common} {_coords(r, kind, bad)}>{_attrs(r, label, bad)}</{tag}>"


def _track(r: random.Random, t: int, start: int, stop: int, bad: float) -> str:
    kind = r.choice(KINDS)
    label = "person" if kind == "skeleton" else r.choice(["car", "car", "sign", "lane"])
    if r.random() < bad / 4:
        label = "bus"
    lo = r.randint(max(0, start - 4), stop)
    if r.random() < 0.3:  # every frame listed, as CVAT exports interpolated tracks
        frames = list(range(lo, min(stop + 3, lo + r.randint(1, 12))))
    else:
        frames = sorted(r.sample(range(lo, stop + 6), min(r.randint(1, 5), stop + 6 - lo)))
    if r.random() < 0.1:
        frames.insert(r.randrange(len(frames)), r.choice(frames))  # two keyframes, one frame
    keys = [_keyframe(r, kind, f, label, bad, n == len(frames) - 1) for n, f in enumerate(frames)]
    if r.random() < 0.15:
        r.shuffle(keys)  # keyframes out of frame order in the document
    ident = r.choice(["x", "1.5"]) if r.random() < bad / 4 else str(r.choice([t, t, 3]))
    group = f' group_id="{r.choice(["0", "2", "-1" if r.random() < bad else "4"])}"'
    source = r.choice(["manual", "auto", "semi-auto", "file", ""])
    return f'<track id="{ident}" label="{label}" source="{source}"{group}>{"".join(keys)}</track>'


def _video(path: Path, seed: int, *, bad: float, start: int = 0, stop: int = 30) -> Path:
    r = random.Random(seed)
    return _document(path, [_track(r, t, start, stop, bad) for t in range(40)], start, stop)


def _document(path: Path, tracks: list[str], start: int, stop: int) -> Path:
    """A video job's XML file holding ``tracks`` (their XML texts) on frames start..stop."""
    tracks = "\n".join(tracks)
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version><meta><job>'
        f"<id>3</id><size>{stop - start + 1}</size><mode>interpolation</mode>"
        f"<start_frame>{start}</start_frame><stop_frame>{stop}</stop_frame>{LABELS}"
        "<original_size><width>640</width><height>480</height></original_size></job></meta>\n"
        f"{tracks}\n</annotations>\n"
    )
    return path


def _taken(path: Path) -> tuple[int, list[int]]:
    """(rows the columnar path makes, positions of the tracks it leaves) for a file."""
    with path.open("rb") as fh:
        streamed = stream_cvat_xml(fh, _fast_labels, "a", _fast_frames)
    assert streamed.tracks is not None
    batch = streamed.tracks.batch()
    assert len(streamed.root.findall("track")) == len(batch.rest)  # the others left the tree
    return len(batch.annotations), batch.rest


@pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("bad", "start", "stop"), [(0.0, 0, 30), (0.2, 0, 30), (0.1, 12, 40)])
def test_video_tracks_match_per_object_path(tmp_path, seed, bad, start, stop, monkeypatch):
    # Small chunks and batches: tracks are taken in several blocks, as a long file's are.
    monkeypatch.setattr(xml_fast, "CHUNK", 997)
    monkeypatch.setattr(xml_fast, "BATCH", 3)
    path = _video(tmp_path / f"v{seed}.xml", seed, bad=bad, start=start, stop=stop)
    assert_same(path)
    rows, rest = _taken(path)
    assert rows > 0 and len(rest) < 40  # the columnar path is exercised, not bypassed


@pytest.mark.parametrize("seed", range(4))
def test_one_attribute_child_per_keyframe(tmp_path, seed, monkeypatch):
    # The usual export: every keyframe holds exactly one <attribute> (its children are then
    # taken by indexing, not chained) and every batch repeats the same frame texts (converted
    # in the first, looked up after); values valid and not, names known and not.
    monkeypatch.setattr(xml_fast, "CHUNK", 997)
    monkeypatch.setattr(xml_fast, "BATCH", 3)
    r = random.Random(seed)
    tracks = []
    for t in range(30):
        label = r.choice(["car", "car", "sign", "lane"])
        name = {"car": r.choice(["color"] * 4 + ["speed"]), "sign": "note"}.get(label, "ghost")
        values = ["red", "blue"] if name == "color" else ["7", "12.5"]
        if seed % 2 and r.random() < 0.2:
            values = ["purple"]  # not a value of ``color``: a car track left to the other path
        keys = "".join(
            f'<box frame="{f}" keyframe="1" outside="0" occluded="0" z_order="0" '
            f'{_coords(r, "box", 0.0)}><attribute name="{name}">{r.choice(values)}</attribute>'
            "</box>"
            for f in range(0, 31, r.choice([1, 1, 5]))
        )
        tracks.append(f'<track id="{t}" label="{label}" source="manual">{keys}</track>')
    path = _document(tmp_path / "one.xml", tracks, 0, 30)
    assert_same(path)
    rows, rest = _taken(path)
    assert rows > 0
    if seed % 2 == 0:
        assert rest == []  # every track read as columns


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), bad=st.sampled_from([0.0, 0.3]), stop=st.integers(0, 25))
def test_video_tracks_property(tmp_path, seed, bad, stop):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert_same(_video(tmp_path / "p.xml", seed, bad=bad, start=0, stop=stop))


HEAD = (
    "<annotations><meta><job><id>1</id><start_frame>{start}</start_frame><stop_frame>9"
    "</stop_frame>" + LABELS + "<original_size><width>64</width><height>48</height>"
    "</original_size></job></meta>{body}</annotations>"
)


def _box(frame: int, x: float, *, out: int = 0, rot: str = "0", extra: str = "") -> str:
    return (
        f'<box frame="{frame}" outside="{out}" occluded="0" keyframe="1" z_order="0" '
        f'rotation="{rot}" xtl="{x}" ytl="1" xbr="{x + 4}" ybr="5">{extra}</box>'
    )


CASES = {
    "box rotation across 0": (
        f'<track id="1" label="car">{_box(0, 0, rot="350")}{_box(4, 8, rot="10")}</track>',
        True,
    ),
    "outside gap then back": (
        f'<track id="1" label="car">{_box(0, 0)}{_box(3, 6, out=1)}{_box(6, 2)}</track>',
        True,
    ),
    "keyframe past the job end": (
        f'<track id="1" label="car">{_box(2, 0)}{_box(14, 24)}</track>',
        True,
    ),
    "keyframes out of order and one frame twice": (
        f'<track id="1" label="car">{_box(5, 9)}{_box(1, 0)}{_box(5, 3)}</track>',
        True,
    ),
    "attributes carried": (
        '<track id="1" label="car">'
        + _box(0, 0, extra='<attribute name="color">blue</attribute>')
        + _box(2, 4, extra='<attribute name="speed">7</attribute>')
        + _box(
            5, 1, extra='<attribute name="color">red</attribute><attribute name="x">1</attribute>'
        )
        + "</track>",
        True,
    ),
    "single points interpolate": (
        '<track id="2" label="lane"><points frame="0" outside="0" occluded="1" points="0,0"/>'
        '<points frame="4" outside="0" occluded="0" points="8,4"/></track>',
        True,
    ),
    "point lists copied": (
        '<track id="2" label="lane"><points frame="0" outside="0" points="0,0;1,1"/>'
        '<points frame="4" outside="0" points="8,4"/></track>',
        True,
    ),
    "polygon every frame": (
        '<track id="3" label="sign"><polygon frame="0" outside="0" points="0,0;4,0;4,4"/>'
        '<polygon frame="1" outside="0" points="1,0;5,0;5,4"/></track>',
        True,
    ),
    "polygon between keyframes": (
        '<track id="3" label="sign"><polygon frame="0" outside="0" points="0,0;4,0;4,4"/>'
        '<polygon frame="5" outside="0" points="1,0;5,0;5,4;2,6"/></track>',
        False,
    ),
    "before the segment start": (
        f'<track id="1" label="car">{_box(1, 0)}{_box(6, 4)}</track>',
        False,
    ),
    "mixed kinds": (
        f'<track id="1" label="car">{_box(0, 0)}<points frame="3" outside="0" points="1,1"/></track>',
        False,
    ),
    "bad attribute value": (
        '<track id="1" label="car">'
        + _box(0, 0, extra='<attribute name="speed">fast</attribute>')
        + "</track>",
        False,
    ),
    "unknown label": (f'<track id="1" label="bus">{_box(0, 0)}</track>', False),
    "NaN coordinate": (f'<track id="1" label="car">{_box(0, float("nan"))}</track>', False),
    "flipped box": (
        '<track id="1" label="car"><box frame="0" outside="0" xtl="5" ytl="1" xbr="2" ybr="5"/>'
        "</track>",
        False,
    ),
    "text id": (f'<track id="t1" label="car">{_box(0, 0)}</track>', False),
    "no keyframes": ('<track id="1" label="car"></track>', False),
}


@pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")
@pytest.mark.parametrize("name", list(CASES))
def test_single_track_path_and_result(tmp_path, name):
    body, taken = CASES[name]
    start = 3 if name == "before the segment start" else 0
    path = tmp_path / "t.xml"
    # A box track taken as columns on each side, so rows of both paths interleave by position.
    other = f'<track id="9" label="car">{_box(start, 30)}{_box(9, 40)}</track>'
    path.write_text(HEAD.format(start=start, body=other + body + other))
    assert_same(path)
    _, rest = _taken(path)
    assert rest == ([] if taken else [1])


def test_interpolated_box_and_rotation_values(tmp_path):
    # Independent numbers: halfway between x 0 and 8, and 350 deg -> 10 deg the short way.
    path = tmp_path / "t.xml"
    path.write_text(HEAD.format(start=0, body=CASES["box rotation across 0"][0]))
    ann = read_cvat_xml(path).annotations
    assert ann.item.tolist() == list(range(10))
    np.testing.assert_allclose(ann.bbox[2], [4, 1, 8, 5])
    np.testing.assert_allclose(ann.rotation[:6], [350, 355, 0, 5, 10, 10])


def _doc(meta: str, body: str) -> str:
    return f"<annotations><meta><job><id>1</id>{meta}{LABELS}</job></meta>{body}</annotations>"


TRACK = f'<track id="1" label="car">{_box(0, 0)}{_box(4, 8)}</track>'
IMAGE = (
    '<image id="2" name="a" width="64" height="48">'
    '<box label="car" xtl="1" ytl="1" xbr="2" ybr="2"/></image>'
)
DOCUMENTS = {
    # (document, whether the stream takes the tracks)
    "start and stop": (_doc("<start_frame>0</start_frame><stop_frame>9</stop_frame>", TRACK), True),
    "no stop_frame: frames from the document": (_doc("<start_frame>0</start_frame>", TRACK), False),
    "bad stop_frame": (_doc("<stop_frame>x</stop_frame>", TRACK), False),
    "image before the tracks": (_doc("<stop_frame>9</stop_frame>", IMAGE + TRACK), False),
    "image after the tracks": (_doc("<stop_frame>9</stop_frame>", TRACK * 40 + IMAGE), False),
    "no labels: labels from the document": (
        f"<annotations><meta><job><stop_frame>9</stop_frame></job></meta>{TRACK}</annotations>",
        False,
    ),
}


@pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")
@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_documents_the_stream_must_not_take_tracks_from(tmp_path, name, monkeypatch):
    monkeypatch.setattr(xml_fast, "BATCH", 2)  # tracks taken before the image is seen
    text, taken = DOCUMENTS[name]
    path = tmp_path / "d.xml"
    path.write_text(text)
    try:
        assert_same(path)
    except FormatError:  # the per-object path refuses the meta: so must the reader
        with pytest.raises(FormatError):
            read_cvat_xml(path)
    with path.open("rb") as fh:
        streamed = stream_cvat_xml(fh, _fast_labels, "a", _fast_frames)
    assert (streamed.tracks is not None) == taken
