"""Recorded CVAT payloads: cvat-sdk's own models accept them; converters on edge cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cvat_double import PAYLOADS, load_state
from cvat_sdk import masks, models
from cvat_sdk.api_client import ApiClient

from labelgate.errors import DataWarning, FormatError
from labelgate.io.rle import decode_column_major
from labelgate.model import ABSENT, VISIBLE, Kind
from labelgate_cvat.payloads import cvat_job_to_annotations, items_from_meta, schema_from_labels
from labelgate_cvat.tracks import expand_track, polyshape, shortest_arc

STATE = load_state()


class _Body:
    def __init__(self, obj):
        self.data = json.dumps(obj).encode()
        self.headers = {"Content-Type": "application/json"}

    def getheader(self, name, default=None):
        return "application/json" if name.lower() == "content-type" else default


def _sdk(obj, model):
    return ApiClient().deserialize(_Body(obj), (model,), _check_type=True)


def test_payload_file_is_up_to_date():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_payloads", PAYLOADS / "make_payloads.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == json.loads((PAYLOADS / "project.json").read_text())


@pytest.mark.parametrize("job", sorted(STATE["annotations"]))
def test_sdk_models_accept_recorded_annotations(job):
    data = {"version": 0, "tags": [], "shapes": [], "tracks": [], **STATE["annotations"][job]}
    parsed = _sdk(data, models.LabeledData)
    assert len(parsed.shapes) == len(data["shapes"]) and len(parsed.tracks) == len(data["tracks"])


def test_sdk_models_accept_recorded_labels_and_layouts():
    for lab in STATE["labels"]:
        assert _sdk(lab, models.Label).name == lab["name"]
    for layout in STATE["task_layout"].values():
        _sdk(layout, models.TaskValidationLayoutRead)
    for layout in STATE["job_layout"].values():
        _sdk(layout, models.JobValidationLayoutRead)
    kinds = {s["type"] for a in STATE["annotations"].values() for s in a.get("shapes", ())}
    assert {"rectangle", "polygon", "mask", "skeleton"} <= kinds


def test_mask_decoding_agrees_with_cvat_sdk():
    rng = np.random.default_rng(3)
    bitmap = np.zeros((12, 17), bool)
    bitmap[2:9, 4:15] = rng.random((7, 11)) > 0.5
    encoded = masks.encode_mask(bitmap)
    meta = {"start_frame": 0, "stop_frame": 0, "frames": [{"name": "a", "width": 17, "height": 12}]}
    labels = [{"id": 1, "name": "x", "type": "mask"}]
    shape = {"id": 1, "type": "mask", "frame": 0, "label_id": 1, "points": encoded}
    ann = cvat_job_to_annotations({"shapes": [shape]}, meta, labels, annotator="a").annotations
    ours = decode_column_major(ann.rle_of(0), 12, 17)
    theirs = masks.decode_mask(encoded, image_width=17, image_height=12)
    np.testing.assert_array_equal(ours, theirs)


def _meta(n=10, **kw):
    return {
        "start_frame": 0,
        "stop_frame": n - 1,
        "frames": [{"name": f"f{i}.png", "width": 100, "height": 100} for i in range(n)],
        **kw,
    }


LABELS = [
    {
        "id": 5,
        "name": "car",
        "type": "rectangle",
        "attributes": [
            {
                "id": 50,
                "name": "color",
                "input_type": "select",
                "mutable": True,
                "values": ["red", "blue"],
                "default_value": "red",
            },
            {
                "id": 51,
                "name": "parked",
                "input_type": "checkbox",
                "mutable": False,
                "values": ["false"],
                "default_value": "false",
            },
        ],
    },
    {
        "id": 6,
        "name": "pose",
        "type": "skeleton",
        "sublabels": [
            {"id": 61, "name": "a", "type": "points"},
            {"id": 62, "name": "b", "type": "points"},
        ],
        "svg": '<line data-node-from="1" data-node-to="2"/><circle data-node-id="1" '
        'data-label-id="61"/><circle data-node-id="2" data-label-id="62"/>',
    },
]


def test_schema_keeps_ids_attributes_and_skeleton_edges():
    schema = schema_from_labels([*LABELS, {"id": 61, "name": "a", "parent_id": 6}])
    assert schema.names == ["car", "pose"]
    assert schema.labels[1].edges == ((0, 1),)
    assert schema.labels[0].attributes[0].values == ("red", "blue")


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ({"type": "rectangle", "points": [1, 1, 5]}, "odd number"),
        ({"type": "polygon", "points": [0, 0, 1, 1]}, "polygon with 2 points"),
        ({"type": "rectangle", "points": [1, 1, 5, 5], "label_id": 99}, "label_id 99"),
        ({"type": "mask", "points": [3, 2, 0, 0, 1, 1]}, "runs sum to 5"),
        ({"type": "rectangle", "points": [1, 1, 5, 5], "frame": 42}, "frame 42"),
        ({"type": "hexagon", "points": [1, 1]}, "unknown shape type"),
    ],
    ids=["odd", "short-polygon", "unknown-label", "bad-mask", "bad-frame", "type"],
)
def test_one_bad_shape_is_a_data_error(shape, message):
    good = {"id": 1, "type": "rectangle", "frame": 0, "label_id": 5, "points": [0, 0, 4, 4]}
    bad = {"id": 2, "frame": 0, "label_id": 5, **shape}
    with pytest.warns(DataWarning, match=message):
        aset = cvat_job_to_annotations(
            {"shapes": [good, bad]}, _meta(), LABELS, annotator="a", job={"id": 7}
        )
    assert len(aset.annotations) == 1
    (err,) = aset.data_errors
    assert err["obj_id"] == 2 and err["source"] == "job 7" and message in err["message"]


def test_attributes_default_and_normalise():
    shape = {
        "id": 1,
        "type": "rectangle",
        "frame": 0,
        "label_id": 5,
        "points": [0, 0, 4, 4],
        "attributes": [{"spec_id": 51, "value": "true"}],
    }
    ann = cvat_job_to_annotations({"shapes": [shape]}, _meta(), LABELS, annotator="a").annotations
    assert ann.attributes["color"][0] == "red" and ann.attributes["parked"][0] is True


def test_meta_marks_excluded_and_deleted_frames():
    items = items_from_meta(_meta(5, deleted_frames=[1], included_frames=[0, 1, 3]))
    assert items.deleted.tolist() == [False, True, True, False, True]
    with pytest.raises(FormatError, match="3 frame entries"):
        items_from_meta({"start_frame": 0, "stop_frame": 4, "frames": [{}, {}, {}]})


def _track(shapes, **kw):
    return {"id": 9, "frame": shapes[0]["frame"], "label_id": 5, "shapes": shapes, **kw}


def _key(frame, points, kind="rectangle", **kw):
    return {"frame": frame, "type": kind, "points": points, "attributes": [], **kw}


def test_track_rules_outside_propagation_and_attribute_carry():
    shapes = expand_track(
        _track(
            [
                _key(0, [0, 0, 10, 10], attributes=[{"spec_id": 50, "value": "blue"}]),
                _key(2, [2, 0, 12, 10]),
                _key(4, [2, 0, 12, 10], outside=True),
                _key(7, [0, 0, 1, 1]),
            ]
        ),
        stop_frame=8,
    )
    visible = [(s["frame"], s["points"]) for s in shapes if not s.get("outside")]
    assert [f for f, _ in visible] == [0, 1, 2, 3, 7, 8]
    assert visible[1][1] == [1, 0, 11, 10]
    kf2 = next(s for s in shapes if s["frame"] == 2)
    assert kf2["attributes"] == [{"spec_id": 50, "value": "blue"}]  # carried forward
    assert shortest_arc(350, 10) == 20 and shortest_arc(10, 350) == -20


def test_points_interpolate_only_single_points():
    one = expand_track(_track([_key(0, [0, 0], "points"), _key(2, [4, 2], "points")]), 2)
    assert one[1]["points"] == [2, 1]
    two = expand_track(
        _track([_key(0, [0, 0, 1, 1], "points"), _key(2, [4, 2, 5, 5], "points")]), 2
    )
    assert two[1]["points"] == [0, 0, 1, 1]


def test_polyshape_identical_outlines_interpolate_vertexwise():
    square = [0, 0, 10, 0, 10, 10, 0, 10]
    moved = [4, 0, 14, 0, 14, 10, 4, 10]
    assert polyshape(square, moved, 0.5, closed=True) == [2, 0, 12, 0, 12, 10, 2, 10]
    line = polyshape([0, 0, 10, 0], [0, 10, 10, 10], 0.25, closed=False)
    assert line == [0, 2.5, 10, 2.5]


def test_polyshape_different_vertex_counts_stays_on_both_outlines():
    tri = [0, 0, 10, 0, 5, 10]
    quad = [0, 0, 10, 0, 10, 10, 0, 10]
    for t in (0.01, 0.5, 0.99):
        pts = np.asarray(polyshape(tri, quad, t, closed=True)).reshape(-1, 2)
        assert len(pts) >= 3 and np.isfinite(pts).all()
    near_quad = np.asarray(polyshape(tri, quad, 0.999, closed=True)).reshape(-1, 2)
    assert np.abs(near_quad - [[0, 0], [10, 0], [10, 10], [0, 10]]).max() < 0.1


def test_skeleton_track_elements_outside_and_all_absent():
    labels = LABELS
    track = {
        "id": 3,
        "frame": 0,
        "label_id": 6,
        "shapes": [_key(0, [], "skeleton"), _key(4, [], "skeleton")],
        "elements": [
            {
                "id": 4,
                "frame": 0,
                "label_id": 61,
                "shapes": [_key(0, [0, 0], "points"), _key(2, [0, 0], "points", outside=True)],
            },
            {
                "id": 5,
                "frame": 0,
                "label_id": 62,
                "shapes": [_key(0, [0, 4], "points"), _key(4, [4, 4], "points")],
            },
        ],
    }
    ann = cvat_job_to_annotations({"tracks": [track]}, _meta(5), labels, annotator="a").annotations
    assert ann.item.tolist() == [0, 1, 2, 3, 4] and set(ann.kind.tolist()) == {Kind.SKELETON}
    np.testing.assert_array_equal(ann.vis_of(2), [ABSENT, VISIBLE])
    np.testing.assert_allclose(ann.points_of(2)[1], [2, 4])
