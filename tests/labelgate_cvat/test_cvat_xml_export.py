"""CVAT XML reader on the bundled examples and on malformed files."""

from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from labelgate.adapters import read_any
from labelgate.errors import DataWarning, FormatError
from labelgate.io.rle import decode_column_major
from labelgate.model import HIDDEN, VISIBLE, Kind, Origin, SourceType
from labelgate_cvat.xml_export import read_cvat_xml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "cvat"

HEADER = """<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version><meta><job><id>12</id><name>j</name><labels>
<label><name>car</name><type>rectangle</type><attributes><attribute><name>color</name>
<mutable>False</mutable><input_type>select</input_type><default_value>red</default_value>
<values>red
blue</values></attribute><attribute><name>speed</name><mutable>True</mutable>
<input_type>number</input_type><default_value>0</default_value><values>0;100;1</values>
</attribute></attributes></label>
<label><name>sign</name><type>polygon</type><attributes/></label>
<label><name>day</name><type>tag</type><attributes/></label>
<label><name>person</name><type>skeleton</type><attributes/>
<svg>&lt;line data-type="edge" data-node-from="1" data-node-to="2"&gt;&lt;/line&gt;
&lt;circle data-type="element node" data-node-id="1" data-label-name="head"&gt;&lt;/circle&gt;
&lt;circle data-type="element node" data-node-id="2" data-label-name="foot"&gt;&lt;/circle&gt;</svg></label>
<label><name>head</name><type>points</type><attributes/><parent>person</parent></label>
<label><name>foot</name><type>points</type><attributes/><parent>person</parent></label>
</labels></job></meta>
"""


def _xml(tmp_path, body, name="job.xml"):
    path = tmp_path / name
    path.write_text(HEADER + body + "</annotations>\n")
    return path


def test_every_shape_type_with_attributes_groups_and_z_order(tmp_path):
    body = """<image id="3" name="a.png" width="20" height="10">
  <box label="car" source="auto" occluded="1" xtl="1" ytl="2" xbr="5" ybr="6" z_order="2"
       rotation="30" group_id="4"><attribute name="speed">12.5</attribute></box>
  <polygon label="sign" source="manual" occluded="0" points="0,0;4,0;4,4" z_order="1"/>
  <polyline label="sign" points="0,0;9,9" z_order="0"/>
  <points label="sign" points="3,3" z_order="0"/>
  <ellipse label="sign" cx="10" cy="5" rx="3" ry="2" rotation="0" z_order="0"/>
  <mask label="sign" source="semi-auto" rle="1, 2, 3" left="2" top="1" width="3" height="2"
        z_order="0"/>
  <skeleton label="person" z_order="0">
    <points label="head" occluded="1" outside="0" points="1,1"/>
    <points label="foot" occluded="0" outside="0" points="2,8"/>
  </skeleton>
  <tag label="day" source="manual"/>
</image>"""
    aset = read_cvat_xml(_xml(tmp_path, body))
    ann = aset.annotations
    assert aset.meta["job_id"] == 12
    assert ann.kind.tolist() == [
        Kind.RECTANGLE,
        Kind.POLYGON,
        Kind.POLYLINE,
        Kind.POINTS,
        Kind.ELLIPSE,
        Kind.MASK,
        Kind.SKELETON,
        Kind.TAG,
    ]
    np.testing.assert_allclose(ann.bbox[0], [1, 2, 5, 6])
    assert ann.rotation[0] == 30 and ann.z_order[0] == 2 and ann.group[0] == 4
    assert bool(ann.occluded[0]) and ann.origin[0] == Origin.AUTO
    assert ann.attributes["speed"][0] == 12.5 and ann.attributes["color"][0] == "red"
    np.testing.assert_allclose(ann.bbox[4], [7, 3, 13, 7])  # ellipse cx±rx, cy±ry
    # Mask: row-major runs 1 off, 2 on, 3 off over a 3x2 window at (2, 1).
    bitmap = decode_column_major(ann.rle_of(5), 10, 20)
    expected = np.zeros((10, 20), bool)
    expected[1, 3:5] = True
    np.testing.assert_array_equal(bitmap, expected)
    assert ann.origin[5] == Origin.SEMI_AUTO
    counts = mask_utils.encode(np.asfortranarray(expected.astype(np.uint8)))
    assert mask_utils.area(counts) == 2
    np.testing.assert_array_equal(ann.vis_of(6), [HIDDEN, VISIBLE])
    np.testing.assert_allclose(ann.points_of(6), [[1, 1], [2, 8]])
    assert aset.schema.labels[3].edges == ((0, 1),)
    assert ann.source_type[7] == SourceType.TAG


@pytest.mark.parametrize(
    ("element", "message"),
    [
        ('<box label="bus" xtl="1" ytl="1" xbr="2" ybr="2"/>', "unknown label 'bus'"),
        ('<polygon label="sign" points="0,0;4,4"/>', "polygon with 2 points"),
        ('<box label="car" xtl="nan" ytl="1" xbr="2" ybr="2"/>', "NaN or infinite"),
        ('<polygon label="sign" points="0,0;nan,4;5,5"/>', "NaN or infinite coordinate"),
        ('<mask label="sign" rle="1, 2" left="0" top="0" width="3" height="2"/>', "bad CVAT mask"),
    ],
    ids=["unknown-label", "two-point-polygon", "nan-box", "nan-polygon", "bad-rle"],
)
def test_one_bad_shape_is_a_data_error(tmp_path, element, message):
    body = f"""<image id="0" name="a.png" width="20" height="10">
  <box label="car" xtl="1" ytl="1" xbr="2" ybr="2"/>
  {element}
</image>"""
    path = _xml(tmp_path, body)
    with pytest.warns(DataWarning, match=message):
        aset = read_cvat_xml(path)
    assert len(aset.annotations) == 1
    (err,) = aset.data_errors
    assert message in err["message"] and err["file"] == str(path)
    assert err["where"].startswith("frame 0, ")


def test_truncated_xml_names_file_and_line(tmp_path):
    path = tmp_path / "cut.xml"
    path.write_text(HEADER + '<image id="0" name="a.png" width="20" height="10">\n<box label=')
    with pytest.raises(FormatError, match=r"cut\.xml: malformed XML at line \d+"):
        read_cvat_xml(path)


def test_video_track_interpolates_and_drops_outside(tmp_path):
    body = """<track id="5" label="car" source="manual">
  <box frame="0" outside="0" occluded="0" keyframe="1" xtl="0" ytl="0" xbr="10" ybr="10" z_order="0"/>
  <box frame="4" outside="0" occluded="0" keyframe="1" xtl="8" ytl="0" xbr="18" ybr="10" z_order="0"/>
  <box frame="6" outside="1" occluded="0" keyframe="1" xtl="8" ytl="0" xbr="18" ybr="10" z_order="0"/>
  <box frame="8" outside="0" occluded="0" keyframe="1" xtl="1" ytl="1" xbr="2" ybr="2" z_order="0"/>
</track>"""
    text = HEADER.replace(
        "<job><id>12</id>", "<job><id>12</id><start_frame>0</start_frame><stop_frame>9</stop_frame>"
    )
    path = tmp_path / "video.xml"
    path.write_text(
        text.replace(
            "</meta>", "<original_size><width>50</width><height>40</height></original_size></meta>"
        )
        + body
        + "</annotations>"
    )
    ann = read_cvat_xml(path).annotations
    assert ann.item.tolist() == [0, 1, 2, 3, 4, 5, 8, 9]  # 6-7 outside, 8-9 propagated
    np.testing.assert_allclose(ann.bbox[2], [4, 0, 14, 10])  # halfway between keyframes
    assert set(ann.source_type.tolist()) == {SourceType.TRACK}
    assert set(ann.source_id.tolist()) == {5}


def test_bundled_examples_read():
    gt = read_any(EXAMPLES / "gt.xml")
    assert len(gt.items) == 12
    assert gt.schema.names == ["car", "person", "road_sign", "day", "night"]
    assert gt.data_errors == ()
    # One scene tag per frame in the ground truth.
    assert int((gt.annotations.kind == Kind.TAG).sum()) == 12
    for i in (1, 2, 3):
        ann = read_any(EXAMPLES / f"annotator{i}.xml")
        assert len(ann.items) == 30 and len(ann.annotations) > 100
    a3 = read_any(EXAMPLES / "annotator3.xml").annotations
    assert int((a3.origin == Origin.AUTO).sum()) > 0  # rubber-stamped pre-annotations
