"""ColumnBlocks and the per-row builder on top of it: order, defaults, checks."""

import numpy as np
import pytest

from labelgate.errors import ValidationError
from labelgate.model import VISIBLE, AnnotationsBuilder, Kind
from labelgate.model.columns import ColumnBlocks


def test_blocks_and_single_rows_keep_the_order_they_were_added_in():
    b = AnnotationsBuilder(["a"])
    assert b.add(2, Kind.RECTANGLE, 0, bbox=(0.0, 0.0, 1.0, 1.0), source_id=10) == 0
    b.extend(
        item=np.array([1, 2]),
        kind=np.array([Kind.RECTANGLE, Kind.POLYGON], np.int8),
        bbox=np.array([[0, 0, 2, 2], [1, 1, 3, 4]], float),
        point_counts=np.array([0, 3]),
        points=np.array([[1, 1], [3, 1], [3, 4]], float),
        source_id=np.array([11, 12]),
        label=0,
        annotator=0,
    )
    assert len(b) == 3
    assert b.add(2, Kind.POINTS, 0, points=[5, 6], source_id=13) == 3
    ann = b.build()
    # Stable by item: item 1 first, then item 2 in the order added (10, 12, 13).
    assert ann.item.tolist() == [1, 2, 2, 2]
    assert ann.source_id.tolist() == [11, 10, 12, 13]
    assert ann.point_offsets.tolist() == [0, 0, 0, 3, 4]
    np.testing.assert_array_equal(ann.points_of(2), [[1, 1], [3, 1], [3, 4]])
    assert ann.vis.tolist() == [VISIBLE] * 4
    # Columns a block did not give take their "none" values.
    assert ann.control.tolist() == [-1] * 4
    assert np.isnan(ann.score).all()
    assert ann.annotator.tolist() == [0, -1, 0, -1]  # rows 11 and 12 came from the block


def test_a_box_of_python_floats_and_the_same_box_as_an_array_build_the_same_row():
    rows = []
    for box in ((1.0, 2.0, 3.0, 4.0), np.array([1.0, 2.0, 3.0, 4.0]), [1, 2, 3, 4]):
        b = AnnotationsBuilder()
        b.add(0, Kind.RECTANGLE, 0, bbox=box, rotation=5.0, score=0.5)
        rows.append(b.build().to_dict())
    assert rows[0] == rows[1] == rows[2]


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ((1.0, 2.0, 0.5, 4.0), "x2 < x1"),
        ((1.0, float("nan"), 3.0, 4.0), "4 finite numbers"),
        ((1.0, 2.0, 3.0, 2.0**40), "beyond"),
    ],
)
def test_bad_boxes_are_refused_with_the_same_message_either_way(box, message):
    for given in (box, np.array(box)):
        with pytest.raises(ValidationError, match=message):
            AnnotationsBuilder().add(0, Kind.RECTANGLE, 0, bbox=given, source_id=3)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("group", -1, "group=-1 is out of range"),
        ("z_order", 2**31, "out of range"),
        ("rotation", float("nan"), "rotation=nan is not a finite number"),
        ("score", float("inf"), "score=inf is not a finite number"),
        ("label", True, "label=True is not an integer"),
    ],
)
def test_row_values_outside_their_column_are_refused(field, value, message):
    with pytest.raises(ValidationError, match=message):
        AnnotationsBuilder().add(0, Kind.RECTANGLE, bbox=(0.0, 0.0, 1.0, 1.0), **{field: value})


def test_blocks_check_their_coordinates():
    blocks = ColumnBlocks()
    with pytest.raises(ValidationError, match="x2 < x1"):
        blocks.extend(item=np.array([0]), kind=1, bbox=np.array([[3.0, 0, 1, 1]]))
    with pytest.raises(ValidationError, match="not finite"):
        blocks.extend(item=np.array([0]), kind=1, bbox=np.array([[np.nan, 0, 1, 1]]))
    with pytest.raises(ValidationError, match="unknown columns"):
        blocks.extend(item=np.array([0]), kind=1, bbox=np.zeros((1, 4)), colour=np.zeros(1))
    assert len(blocks.build()) == 0


def _block(blocks: ColumnBlocks, items: list[int], first_id: int) -> None:
    n = len(items)
    blocks.extend(
        item=np.array(items),
        kind=np.array([Kind.RECTANGLE, Kind.POLYGON] * (n // 2) + [Kind.RECTANGLE] * (n % 2)),
        bbox=np.array([[0, 0, 1 + i, 2] for i in range(n)], float),
        point_counts=np.array([0, 3] * (n // 2) + [0] * (n % 2)),
        points=np.arange(6.0 * (n // 2)).reshape(-1, 2),
        source_id=np.arange(first_id, first_id + n),
        attributes={"color": np.array(["red", None] * (n // 2) + [None] * (n % 2), object)},
        label=0,
    )


@pytest.mark.parametrize("n_blocks", [0, 1, 2])
def test_a_reused_block_builds_the_same_set_as_a_copied_one(n_blocks):
    built = []
    for reuse in (False, True):
        blocks = ColumnBlocks(["a"])
        for b in range(n_blocks):
            _block(blocks, [3, 1, 2, 1, 0][b:], 10 * b)
        built.append(blocks.build(reuse=reuse))
    copied, reused = built
    assert reused.to_dict() == copied.to_dict()
    assert list(reused.attributes) == list(copied.attributes)
    for key in copied.attributes:
        assert reused.attributes[key].tolist() == copied.attributes[key].tolist()
    for name in ("point_offsets", "rle_offsets"):
        assert getattr(reused, name).dtype == getattr(copied, name).dtype == np.int64
