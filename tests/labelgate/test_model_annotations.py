"""Common model: construction, validation messages, slicing, concat, JSON round trip."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.errors import SchemaError, ValidationError
from labelgate.model import (
    Annotations,
    AnnotationsBuilder,
    AnnotationSet,
    AttributeSpec,
    Items,
    Kind,
    Label,
    LabelSchema,
    Submission,
    combine,
)


def _sample() -> Annotations:
    b = AnnotationsBuilder(["ann", "bob"])
    b.add(3, "rectangle", 0, bbox=[0, 0, 10, 10], annotator="ann", attributes={"color": "red"})
    b.add(1, Kind.POLYGON, 1, points=[0, 0, 5, 0, 5, 5], annotator="bob", group=2)
    b.add(1, "mask", 1, bbox=[0, 0, 2, 2], rle=[0, 4, 12], source_id=77)
    b.add(2, "tag", 0, source_type=2)
    b.add(2, "skeleton", 1, points=[[1, 1], [0, 0], [3, 4]], vis=[2, 0, 1])
    return b.build()


def test_builder_sorts_by_item_and_keeps_ragged_data_aligned():
    a = _sample()
    assert a.item.tolist() == [1, 1, 2, 2, 3]
    assert a.kind.tolist() == [Kind.POLYGON, Kind.MASK, Kind.TAG, Kind.SKELETON, Kind.RECTANGLE]
    np.testing.assert_array_equal(a.points_of(0), [[0, 0], [5, 0], [5, 5]])
    np.testing.assert_array_equal(a.rle_of(1), [0, 4, 12])
    np.testing.assert_array_equal(a.vis_of(3), [2, 0, 1])
    # Skeleton bbox ignores absent points: (1,1) and (3,4) only.
    np.testing.assert_array_equal(a.bbox[3], [1, 1, 3, 4])
    np.testing.assert_array_equal(a.bbox[0], [0, 0, 5, 5])
    assert a.attributes["color"].tolist() == [None, None, None, None, "red"]
    assert a.annotators == ("ann", "bob")


def test_item_slices_and_for_item():
    a = _sample()
    ids, starts, ends = a.item_slices()
    assert ids.tolist() == [1, 2, 3]
    assert starts.tolist() == [0, 2, 4] and ends.tolist() == [2, 4, 5]
    two = a.for_item(2)
    assert two.kind.tolist() == [Kind.TAG, Kind.SKELETON]
    np.testing.assert_array_equal(two.points_of(1), [[1, 1], [0, 0], [3, 4]])
    assert len(a.for_item(99)) == 0


def test_json_round_trip_is_exact():
    a = _sample()
    b = Annotations.from_dict(a.to_dict())
    for name in (
        "item",
        "kind",
        "label",
        "bbox",
        "points",
        "vis",
        "rle",
        "point_offsets",
        "rle_offsets",
        "group",
        "source_id",
        "annotator",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert np.isnan(b.score).all()
    assert b.attributes["color"].tolist() == a.attributes["color"].tolist()


def test_concat_remaps_annotators_and_resorts():
    a = _sample()
    other = Annotations.from_records(
        [{"item": 0, "kind": "rectangle", "label": 0, "bbox": [1, 1, 2, 2], "annotator": "carl"}]
    )
    c = Annotations.concat([a, other])
    assert c.item.tolist() == [0, 1, 1, 2, 2, 3]
    assert c.annotators == ("ann", "bob", "carl")
    assert c.annotators[c.annotator[0]] == "carl"
    assert c.attributes["color"].tolist()[-1] == "red"
    np.testing.assert_array_equal(c.points_of(1), [[0, 0], [5, 0], [5, 5]])


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ({"points": [0, 0, 1]}, "odd number of point coordinates"),
        ({"points": [0, np.nan, 1, 1]}, "NaN or infinite point"),
        ({"bbox": [5, 0, 1, 1]}, "x2 < x1"),
        ({"bbox": [0, 0, np.inf, 1]}, "4 finite numbers"),
        ({"points": [0, 0, 1, 1], "vis": [2]}, "1 visibility flags for 2 points"),
        ({"kind": "hexagon"}, "unknown annotation kind 'hexagon'"),
    ],
    ids=["odd-coords", "nan-point", "inverted-box", "inf-box", "vis-length", "unknown-kind"],
)
def test_builder_rejects_bad_rows(record, error):
    rec = {"item": 1, "kind": "polygon", "label": 0, **record}
    with pytest.raises(ValidationError, match=error):
        Annotations.from_records([rec])


def test_direct_construction_validates_sorting_and_offsets():
    a = _sample()
    with pytest.raises(ValidationError, match="sorted ascending"):
        a.with_columns(item=a.item[::-1].copy())
    with pytest.raises(ValidationError, match="point_offsets"):
        a.with_columns(point_offsets=a.point_offsets[:-1])
    bad = a.bbox.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValidationError, match=r"row 2 \(item 2, source id -1\): bbox has a NaN"):
        a.with_columns(bbox=bad)


def test_schema_lookup_and_errors():
    schema = LabelSchema(
        labels=(
            Label("car", "rectangle", id=10, attributes=(AttributeSpec("speed", "number"),)),
            Label("person", id=11),
        )
    )
    assert schema.index("person") == 1
    assert schema.by_id(10) == 0
    with pytest.raises(SchemaError, match="unknown label 'bus'; the schema has: car, person"):
        schema.index("bus")
    assert schema.labels[0].attributes[0].normalize("3.5") == 3.5
    with pytest.raises(SchemaError, match="expected a number"):
        schema.labels[0].attributes[0].normalize("fast")
    with pytest.raises(SchemaError, match="appears twice"):
        LabelSchema.from_names(["a", "a"])
    assert LabelSchema.from_dict(schema.to_dict()) == schema


def test_annotation_set_checks_and_round_trip(tmp_path):
    schema = LabelSchema.from_names(["car", "person"])
    items = Items.create([1, 2, 3], width=100, height=50)
    aset = AnnotationSet(
        "s", schema, items, _sample(), submissions=(Submission(1, "ann", lead_time=3.5),)
    )
    path = tmp_path / "s.json"
    aset.save_json(path)
    back = AnnotationSet.load_json(path)
    assert back.items.width.tolist() == [100, 100, 100]
    assert back.submissions[0].lead_time == 3.5
    assert len(back.annotations) == 5
    with pytest.raises(ValidationError, match="not in the item table: \\[3\\]"):
        AnnotationSet("s", schema, Items.create([1, 2]), _sample())
    with pytest.raises(ValidationError, match="schema has 1 labels"):
        AnnotationSet("s", LabelSchema.from_names(["car"]), items, _sample())
    parts = aset.split_by_annotator()
    assert sorted(parts) == ["", "ann", "bob"]
    assert len(parts["bob"].annotations) == 1
    both = combine([parts["ann"], parts["bob"]])
    assert len(both.annotations) == 2


box = st.tuples(st.floats(0, 100), st.floats(0, 100), st.floats(0, 50), st.floats(0, 50)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]
)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20), box, st.integers(0, 5)), max_size=40),
    st.randoms(use_true_random=False),
)
def test_take_and_concat_preserve_every_row(rows, rnd):
    recs = [
        {"item": i, "kind": "polygon", "label": 0, "bbox": b, "points": np.tile(b[:2], k + 1)}
        for i, b, k in rows
    ]
    a = Annotations.from_records(recs)
    assert len(a) == len(rows)
    assert np.all(np.diff(a.item) >= 0)
    half = len(a) // 2
    c = Annotations.concat([a.take(np.arange(half)), a.take(np.arange(half, len(a)))])
    np.testing.assert_array_equal(c.points, a.points)
    np.testing.assert_array_equal(c.point_offsets, a.point_offsets)
    mask = np.array([rnd.random() < 0.5 for _ in range(len(a))], dtype=bool)
    s = a.select(mask)
    assert len(s) == int(mask.sum())
    for out_row, in_row in enumerate(np.flatnonzero(mask)):
        np.testing.assert_array_equal(s.points_of(out_row), a.points_of(in_row))


def test_items_create_sorts_and_sizes():
    items = Items.create([5, 1], name=["e.jpg", "a.jpg"], width=[50, 10], height=[40, 8])
    assert items.id.tolist() == [1, 5]
    assert items.name.tolist() == ["a.jpg", "e.jpg"]
    w, h = items.size_of(np.array([5, 1, 9]))
    assert w.tolist() == [50, 10, 0] and h.tolist() == [40, 8, 0]
    with pytest.raises(ValidationError, match="unique and ascending"):
        Items.create([1, 1])
