"""The requirement filter: each operator and variable on hand-made annotations."""

import json
import math

import numpy as np
import pycocotools.mask as coco_mask
import pytest
from engine_builders import SCHEMA, box, make_set
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.engine.annotation_filter import AnnotationFilter, annotation_areas, filter_table
from labelgate.engine.job_filter import job_matches
from labelgate.engine.req_select import flatten_skeletons
from labelgate.errors import SettingsError
from labelgate.model import HIDDEN, VISIBLE, Origin, SourceType

# Rows (in item order, all on frame 0):
# 0 car box 10x20, occluded, manual, attributes color=red size=big
# 1 person box 5x5, auto, from track 7, attribute color=blue
# 2 car box 30x30, semi-auto, attributes size=red (a value "red" on another attribute)
# 3 day tag
ROWS = [
    box(0, 0, 10, 20, occluded=True, attributes={"color": "red", "size": "big"}),
    box(
        0,
        0,
        5,
        5,
        "person",
        origin=Origin.AUTO,
        source_type=SourceType.TRACK,
        source_id=7,
        attributes={"color": "blue"},
    ),
    box(0, 0, 30, 30, origin=Origin.SEMI_AUTO, attributes={"size": "red"}),
    {"kind": "tag", "label": "day"},
]


def _select(rule, annotation_type="rectangle"):
    ann = make_set(ROWS).annotations
    flt = AnnotationFilter.parse(rule, requirement="r", annotation_type=annotation_type)
    return np.flatnonzero(flt.mask(filter_table(ann, SCHEMA.names))).tolist()


def _v(name):
    return {"var": name}


@pytest.mark.parametrize(
    ("rule", "rows"),
    [
        ("", [0, 1, 2, 3]),
        ({"==": [_v("shape.label"), "car"]}, [0, 2]),
        ({"!=": [_v("shape.label"), "car"]}, [1, 3]),
        ({"==": [_v("shape.type"), "tag"]}, [3]),
        ({"<": [_v("shape.area"), 200]}, [1]),
        ({"<=": [_v("shape.area"), 200]}, [0, 1]),
        ({">": [_v("shape.area"), 200]}, [2]),
        ({">=": [_v("shape.area"), 200]}, [0, 2]),
        ({"<=": [100, _v("shape.area"), 900]}, [0, 2]),  # between, inclusive
        ({"in": [_v("shape.label"), ["person", "day"]]}, [1, 3]),
        ({"in": ["car", _v("shape.label")]}, [0, 2]),  # a scalar variable: equality
        ({"==": [_v("shape.source"), "semi-auto"]}, [2]),
        ({"==": [_v("shape.occluded"), True]}, [0]),
        ({"==": [_v("shape.occluded"), False]}, [1, 2]),  # tags have no occluded flag
        ({"==": [_v("shape.outside"), False]}, [0, 1, 2]),
        ({"==": [_v("shape.track_id"), 7]}, [1]),
        ({"!=": [_v("shape.track_id"), 7]}, []),  # absent values fail every comparison
        ({"var": "shape.track"}, [1]),
        ({"!": {"var": "shape.track"}}, [0, 2, 3]),
        ({"!!": {"var": "shape.track"}}, [1]),
        ({"==": [_v("shape.track.label"), "person"]}, [1]),
        ({"==": [_v("shape.track.label"), "car"]}, []),  # not from a track
        ({"var": "shape.keyframe"}, []),  # the model keeps no keyframe flag
        ({"==": [_v("shape.attribute.name"), "size"]}, [0, 2]),
        ({"==": [_v("shape.attribute.value"), "red"]}, [0, 2]),
        ({"or": [{"==": [_v("shape.label"), "day"]}, {"<": [_v("shape.area"), 30]}]}, [1, 3]),
        (
            {"and": [{"==": [_v("shape.label"), "car"]}, {"var": "shape.occluded"}]},
            [0, 2],  # a bare variable is "present", and False is present
        ),
    ],
)
def test_filter_table(rule, rows):
    assert _select(json.dumps(rule) if rule != "" else "") == rows


def test_attribute_terms_in_one_and_refer_to_the_same_attribute():
    same = {
        "and": [
            {"==": [_v("shape.attribute.name"), "color"]},
            {"==": [_v("shape.attribute.value"), "red"]},
        ]
    }
    # Row 2 has "red" only on size: it does not pass.
    assert _select(json.dumps(same)) == [0]
    # Row 0 has an attribute named size and one valued red, but not one that is both.
    size_red = {
        "and": [
            {"==": [_v("shape.attribute.name"), "size"]},
            {"==": [_v("shape.attribute.value"), "red"]},
        ]
    }
    assert _select(json.dumps(size_red)) == [2]
    # Under "or" the terms bind separately.
    either = {"or": same["and"]}
    assert _select(json.dumps(either)) == [0, 1, 2]
    # A negation does not bind: "no attribute named size".
    assert _select(json.dumps({"!": {"==": [_v("shape.attribute.name"), "size"]}})) == [1, 3]


def test_areas_follow_datumaro_get_area():
    s = make_set(
        [
            box(0, 0, 10, 20),
            {"kind": "ellipse", "bbox": [0, 0, 10, 20], "label": "car"},
            {"kind": "polygon", "points": [0, 0, 10, 0, 0, 10], "label": "car"},
            {"kind": "points", "points": [1, 1, 5, 5], "label": "car"},
            {"kind": "tag", "label": "day"},
        ]
    )
    area = annotation_areas(s.annotations)
    tri = coco_mask.area(coco_mask.frPyObjects([[0, 0, 10, 0, 0, 10]], 10, 10))[0]
    assert area[:4].tolist() == [200, pytest.approx(math.pi * 5 * 10), tri, 0]
    assert np.isnan(area[4])


def test_skeleton_keypoints_see_their_parent():
    s = make_set(
        [
            {
                "kind": "skeleton",
                "label": "body",
                "points": [1, 1, 3, 3],
                "vis": [VISIBLE, HIDDEN],
                "attributes": {"pose": "sit"},
            },
            {"kind": "skeleton", "label": "body", "points": [5, 5, 0, 0], "vis": [VISIBLE, 0]},
        ]
    )
    flat, parent = flatten_skeletons(s)
    a = flat.annotations
    assert flat.schema.names == ["body.head", "body.foot"]
    assert [flat.schema.names[x] for x in a.label] == ["body.head", "body.foot", "body.head"]
    assert parent.tolist() == [0, 0, 1]
    assert a.occluded.tolist() == [False, True, False]  # the hidden point is occluded
    assert a.points.tolist() == [[1, 1], [3, 3], [5, 5]]
    assert len(set(a.group.tolist())) == 2  # one synthetic group per ungrouped skeleton
    table = filter_table(
        a, flat.schema.names, type_name="points", skeleton=(s.annotations, s.schema.names, parent)
    )
    rule = {"==": [_v("shape.skeleton.attribute.value"), "sit"]}
    flt = AnnotationFilter.parse(
        json.dumps(rule), requirement="k", annotation_type="skeleton_keypoint"
    )
    assert flt.mask(table).tolist() == [True, True, False]
    flt = AnnotationFilter.parse(
        json.dumps({"==": [_v("shape.label"), "body.foot"]}),
        requirement="k",
        annotation_type="skeleton_keypoint",
    )
    assert flt.mask(table).tolist() == [False, True, False]


@pytest.mark.parametrize(
    ("text", "atype", "message"),
    [
        ('{"==":[{"var":"shape.colour"},1]}', "rectangle", "unknown variable 'shape.colour'"),
        ('{"==":[{"var":"shape.skeleton.label"},1]}', "rectangle", "unknown variable"),
        ('{"xor":[{"var":"shape.label"},1]}', "rectangle", "operator 'xor' is not supported"),
        ('{"==":["car",{"var":"shape.label"}]}', "rectangle", "needs a {'var': ...} operand"),
        ('{"==":[{"var":"shape.label"}]}', "rectangle", "exactly 2 arguments"),
        ('{"and":[]}', "rectangle", "non-empty list"),
        ("{not json", "rectangle", "not valid JSON"),
    ],
)
def test_bad_filters_name_the_requirement(text, atype, message):
    with pytest.raises(SettingsError, match="requirement 'cars'") as info:
        AnnotationFilter.parse(text, requirement="cars", annotation_type=atype)
    assert message in str(info.value)


def test_job_filter_shares_the_core_and_keeps_its_behaviour():
    job = {"type": "annotation", "id": 3, "assignee": None}
    assert job_matches('{"==":[{"var":"type"},"annotation"]}', job)
    assert job_matches('{"<=":[1,{"var":"id"},5]}', job)
    assert not job_matches('{"<":[{"var":"assignee"},3]}', job)
    with pytest.raises(SettingsError, match="job_filter is not valid JSON"):
        job_matches("{", job)


# --- property: the column-wise evaluator agrees with a row-at-a-time reading of CVAT's rules ---

_TERMS = {
    "shape.label": ["car", "person", "day"],
    "shape.area": [0, 25, 200, 900],
    "shape.occluded": [True, False],
    "shape.source": ["manual", "auto"],
}
_ATTR = {"shape.attribute.name": ["color", "size"], "shape.attribute.value": ["red", "big"]}


def _row_context(row):
    """One row as CVAT's filter sees it: scalar fields and a list of (name, value) attributes."""
    ann = make_set(ROWS).annotations
    table = filter_table(ann, SCHEMA.names)
    scalars = {k: table.columns[k][row] for k in _TERMS}
    scalars = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in scalars.items()}
    attrs = [(n, v[row]) for n, v in ann.attributes.items() if v[row] is not None]
    return scalars, attrs


def _ref(node, ctx, binding):
    """CVAT's _match_filter for one row: the list of attribute bindings that satisfy ``node``."""
    scalars, attrs = ctx
    op, args = next(iter(node.items()))
    if op == "and":
        current = [binding]
        for arg in args:
            current = [b for c in current for b in _ref(arg, ctx, c)]
            if not current:
                return []
        return current
    if op == "or":
        return [b for arg in args for b in _ref(arg, ctx, binding)]
    if op == "!":
        return [] if _ref(args, ctx, binding) else [binding]
    name, lit = args[0]["var"], args[1]

    def test(v):
        if v is None:
            return False
        try:
            return {"==": v == lit, "!=": v != lit, "<": v < lit, ">=": v >= lit}[op]
        except TypeError:
            return False

    if name in _TERMS:
        return [binding] if test(scalars[name]) else []
    field = name.rsplit(".", 1)[1]
    if binding is not None:
        n, v = attrs[binding]
        return [binding] if test(n if field == "name" else v) else []
    return [k for k, (n, v) in enumerate(attrs) if test(n if field == "name" else v)]


def _leaves():
    return st.one_of(
        *[
            st.tuples(st.sampled_from(["==", "!=", "<", ">="]), st.just(t), st.sampled_from(vs))
            for t, vs in {**_TERMS, **_ATTR}.items()
        ]
    ).map(lambda x: {x[0]: [{"var": x[1]}, x[2]]})


_RULES = st.recursive(
    _leaves(),
    lambda kids: st.one_of(
        st.lists(kids, min_size=1, max_size=3).map(lambda xs: {"and": xs}),
        st.lists(kids, min_size=1, max_size=3).map(lambda xs: {"or": xs}),
        kids.map(lambda x: {"!": x}),
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(_RULES)
def test_column_wise_evaluation_matches_a_row_reference(rule):
    got = _select(json.dumps(rule))
    want = [r for r in range(len(ROWS)) if _ref(rule, _row_context(r), None)]
    assert got == want
