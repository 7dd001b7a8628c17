"""The streaming columnar CVAT XML reader against the per-object conversion of the whole tree.

The oracle parses the file with ``ET.parse`` and converts every element through the payload
path (the reader before its fast path, which still handles every uncommon element). Seeded
synthetic files mix the shapes the fast path takes with everything it must hand over: masks,
skeletons, ellipses, cuboids, tags, tracks with keyframes and outside frames, and malformed
fields. The whole annotation set (every column, items, schema, meta, data errors), the order of
the attribute columns and the warning texts must be identical.
"""

import random
from pathlib import Path

import numpy as np
import pytest
from cvat_xml_oracle import LABELS, assert_same

from labelgate_cvat import xml_fast
from labelgate_cvat.xml_export import read_cvat_xml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "cvat"


def _num(r: random.Random, bad: float) -> str:
    if r.random() < bad:
        return r.choice(["nan", "inf", "x", "", "1e400", "-3e9", " 4 ", "1_0"])
    return f"{r.uniform(0, 500):.2f}"


def _attrs(r: random.Random, label: str, bad: float) -> str:
    out = []
    names = [*{"car": ["color", "speed", "parked"], "sign": ["note"]}.get(label, []), "ghost"]
    for _ in range(r.randint(0, 3)):
        name = r.choice(names)
        value = r.choice(
            ["red", "blue", "12.5", "true", "FALSE", "", "fast" if r.random() < bad else "7"]
        )
        out.append(f'<attribute name="{name}">{value}</attribute>')
    return "".join(out)


def _common(r: random.Random, bad: float, label: str) -> str:
    parts = [
        f'label="{label}"',
        f'source="{r.choice(["manual", "auto", "semi-auto", "file", "odd"])}"',
    ]
    parts.append(f'occluded="{r.choice("01")}"')
    if r.random() < 0.1:
        parts.append('outside="1"')
    if r.random() < 0.5:
        parts.append(
            f'z_order="{r.choice(["0", "1", "-2", "x", "9999999999"] if r.random() < bad else ["0", "1", "3"])}"'
        )
    if r.random() < 0.3:
        parts.append(
            f'group_id="{r.choice(["0", "4", "-1", "g"] if r.random() < bad else ["0", "2", "5"])}"'
        )
    if r.random() < 0.3:
        parts.append(
            f'rotation="{r.choice(["0", "30.5", "nan", "r"] if r.random() < bad else ["0.0", "12"])}"'
        )
    return " ".join(parts)


def _points(r: random.Random, k: int, bad: float) -> str:
    pts = ";".join(f"{_num(r, bad / 4)},{_num(r, bad / 4)}" for _ in range(k))
    if r.random() < bad:
        pts = r.choice([pts + ";", pts + ",1", " " + pts, pts.replace(";", "; "), "", "1,2,3"])
    return pts


def _shape(r: random.Random, bad: float) -> str:
    label = r.choice(["car", "car", "sign", "lane"] + (["bus"] if r.random() < bad else []))
    tag = r.choice(
        ["box"] * 6
        + [
            "polygon",
            "polygon",
            "polyline",
            "points",
            "ellipse",
            "mask",
            "skeleton",
            "cuboid",
            "tag",
            "note",
        ]
    )
    c = _common(r, bad, label)
    if tag == "box":
        x, y = r.uniform(0, 400), r.uniform(0, 400)
        coords = [
            f"{x:.2f}",
            f"{y:.2f}",
            f"{x + r.uniform(0, 50):.2f}",
            f"{y + r.uniform(0, 50):.2f}",
        ]
        if r.random() < bad:
            coords[r.randrange(4)] = _num(r, 1.0)
        if r.random() < bad / 2:
            coords[0], coords[2] = coords[2], coords[0]
        xml = 'xtl="{}" ytl="{}" xbr="{}" ybr="{}"'.format(*coords)
        if r.random() < bad / 3:
            xml = xml.split(" ", 1)[1]
        return f"<box {c} {xml}>{_attrs(r, label, bad)}</box>"
    if tag in ("polygon", "polyline", "points"):
        k = r.randint(1, 6)
        return f'<{tag} {c} points="{_points(r, k, bad)}">{_attrs(r, label, bad)}</{tag}>'
    if tag == "ellipse":
        return f'<ellipse {c} cx="50" cy="40" rx="{_num(r, bad)}" ry="7"/>'
    if tag == "mask":
        return f'<mask {c} rle="2, 3, 1" left="3" top="2" width="3" height="2"/>'
    if tag == "cuboid":
        vals = " ".join(
            f'{k}{s}="{_num(r, bad)}"'
            for s in "12"
            for k in ("xtl", "ytl", "xbl", "ybl", "xtr", "ytr", "xbr", "ybr")
        )
        return f"<cuboid {c} {vals}/>"
    if tag == "skeleton":
        pts = "".join(
            f'<points label="{n}" occluded="{r.choice("01")}" outside="{r.choice("001")}" '
            f'points="{_points(r, 1, bad)}"/>'
            for n in ("head", "foot")
        )
        return f'<skeleton label="person" z_order="0">{pts}</skeleton>'
    if tag == "tag":
        return f'<tag label="{r.choice(["day", "car", "nope"])}" source="manual">{_attrs(r, "car", bad)}</tag>'
    return "<note/>"  # an element the reader ignores (still counted)


def _images_file(path: Path, seed: int, frames: int, per: int, bad: float) -> Path:
    r = random.Random(seed)
    body = []
    ids = r.sample(range(frames * 3), frames)
    for i in ids:
        shapes = "".join(_shape(r, bad) for _ in range(r.randint(0, per)))
        body.append(f'<image id="{i}" name="f{i}.png" width="640" height="480">{shapes}</image>')
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version><meta><job>'
        f"<id>7</id><size>{frames * 3}</size><mode>annotation</mode>{LABELS}</job></meta>\n"
        + "\n".join(body)
        + "\n</annotations>\n"
    )
    return path


def _video_file(path: Path, seed: int, bad: float) -> Path:
    r = random.Random(seed)
    tracks = []
    for t in range(12):
        keys = sorted(r.sample(range(0, 40), r.randint(1, 4)))
        shape = r.choice(["box", "polygon", "skeleton"])
        label = "person" if shape == "skeleton" else r.choice(["car", "sign"])
        frames = []
        for n, f in enumerate(keys):
            outside = "1" if n == len(keys) - 1 and r.random() < 0.5 else "0"
            common = f'frame="{f}" outside="{outside}" occluded="0" keyframe="1" z_order="0"'
            if shape == "box":
                x = r.uniform(0, 300)
                frames.append(
                    f'<box {common} xtl="{x:.1f}" ytl="5" xbr="{x + 20:.1f}" ybr="{_num(r, bad)}"/>'
                )
            elif shape == "polygon":
                frames.append(f'<polygon {common} points="{_points(r, 3, bad)}"/>')
            else:
                pts = "".join(
                    f'<points label="{n2}" {common} points="{_points(r, 1, 0)}"/>'
                    for n2 in ("head", "foot")
                )
                frames.append(f"<skeleton {common}>{pts}</skeleton>")
        tracks.append(f'<track id="{t}" label="{label}" source="manual">{"".join(frames)}</track>')
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version><meta><job>'
        "<id>3</id><size>40</size><mode>interpolation</mode><start_frame>0</start_frame>"
        f"<stop_frame>39</stop_frame>{LABELS}<original_size><width>640</width><height>480</height>"
        "</original_size></job></meta>\n" + "\n".join(tracks) + "\n</annotations>\n"
    )
    return path


@pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("bad", [0.0, 0.15])
def test_images_match_per_object_reader(tmp_path, seed, bad, monkeypatch):
    # Small chunks so images end in every possible place relative to a feed.
    monkeypatch.setattr(xml_fast, "CHUNK", 997)
    path = _images_file(tmp_path / f"s{seed}.xml", seed, frames=25, per=12, bad=bad)
    assert_same(path)


@pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")
def test_fast_path_takes_the_plain_shapes(tmp_path):
    path = _images_file(tmp_path / "clean.xml", 11, frames=20, per=10, bad=0.0)
    with path.open("rb") as fh:
        streamed = xml_fast.stream_cvat_xml(fh, _labels_of, "a")
    assert streamed.fast is not None
    taken = len(streamed.fast.build())
    left = {el.tag for el, _, _ in streamed.objects}
    assert taken > 0
    assert left <= {
        "ellipse",
        "mask",
        "skeleton",
        "cuboid",
        "tag",
        "note",
        "box",
        "polygon",
        "polyline",
        "points",
    }
    # Boxes are left only when outside (dropped) or with a field the per-object path reports.
    assert_same(path)


def _labels_of(root):
    from labelgate_cvat.xml_export import _fast_labels

    return _fast_labels(root)


@pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("bad", [0.0, 0.2])
def test_video_tracks_match_per_object_reader(tmp_path, seed, bad):
    assert_same(_video_file(tmp_path / f"v{seed}.xml", seed, bad))


@pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")
@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.xml")), ids=lambda p: p.name)
def test_bundled_examples_match_per_object_reader(path):
    assert_same(path)


@pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")
def test_labels_after_images_keep_the_whole_document(tmp_path):
    # No <labels> before the images: labels are inferred from the document, so nothing is
    # streamed away; the result is still the per-object one.
    path = tmp_path / "nolabels.xml"
    path.write_text(
        '<annotations><image id="0" name="a" width="9" height="9">'
        '<box label="a" xtl="1" ytl="1" xbr="2" ybr="2"/></image>'
        '<image id="1" name="b" width="9" height="9"><polygon label="b" points="0,0;1,0;1,1"/>'
        "</image></annotations>"
    )
    assert_same(path)
    aset = read_cvat_xml(path)
    assert list(aset.schema.names) == ["a", "b"]
    np.testing.assert_array_equal(aset.annotations.bbox, [[1, 1, 2, 2], [0, 0, 1, 1]])


def test_every_shape_fast_keeps_document_order_of_rows_and_attributes(tmp_path):
    # Only plain shapes: nothing goes to the per-object path, so the fast rows stand alone.
    path = tmp_path / "plain.xml"
    path.write_text(
        f"<annotations><meta><job><id>1</id>{LABELS}</job></meta>"
        '<image id="5" name="a" width="9" height="9">'
        '<polygon label="sign" points="0,0;4,0;4,4"><attribute name="note">hi</attribute></polygon>'
        '<box label="car" xtl="1" ytl="1" xbr="2" ybr="3"><attribute name="speed">7</attribute></box>'
        '</image><image id="2" name="b" width="9" height="9">'
        '<points label="lane" points="1,2;3,4" group_id="3"/></image></annotations>'
    )
    with path.open("rb") as fh:
        assert xml_fast.stream_cvat_xml(fh, _labels_of, "a").objects == []
    assert_same(path)
    ann = read_cvat_xml(path).annotations
    assert list(ann.attributes) == ["note", "color", "speed", "parked"]
    assert ann.item.tolist() == [2, 5, 5]
    assert ann.source_id.tolist() == [2, 0, 1]  # the document counter over image children
    assert ann.attributes["speed"].tolist() == [None, None, 7.0]
    assert ann.attributes["note"].tolist() == [None, "hi", None]
    np.testing.assert_array_equal(ann.bbox, [[1, 2, 3, 4], [0, 0, 4, 4], [1, 1, 2, 3]])
    assert ann.group.tolist() == [3, 0, 0]


@pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")
@pytest.mark.parametrize("seed", range(3))
def test_blocks_handed_over_mid_stream_keep_the_per_object_result(tmp_path, seed, monkeypatch):
    # Harvests every 2 images, flushed to the column blocks every few rows: attribute columns a
    # later block names first, and blocks without some attribute, must still line up.
    monkeypatch.setattr(xml_fast, "CHUNK", 997)
    monkeypatch.setattr(xml_fast, "BATCH", 2)
    monkeypatch.setattr(xml_fast, "FLUSH", 7)
    path = _images_file(tmp_path / f"f{seed}.xml", seed + 40, frames=30, per=8, bad=0.1)
    assert_same(path)
