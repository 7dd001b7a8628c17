"""COCO reader: boxes, polygons, RLE (plain and compressed), scores, malformed input."""

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from labelgate.errors import DataWarning, FormatError
from labelgate.io.coco import decode_compressed_counts, looks_like_coco, read_coco
from labelgate.model import Kind


def _write(tmp_path, data, name="coco.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _base(annotations):
    return {
        "images": [
            {"id": 7, "file_name": "a.jpg", "width": 20, "height": 10},
            {"id": 3, "file_name": "b.jpg", "width": 20, "height": 10},
        ],
        "categories": [{"id": 5, "name": "dog"}, {"id": 1, "name": "cat"}],
        "annotations": annotations,
    }


def test_reads_box_polygon_and_scores(tmp_path):
    path = _write(
        tmp_path,
        _base(
            [
                {"id": 1, "image_id": 7, "category_id": 5, "bbox": [1, 2, 3, 4]},
                {
                    "id": 2,
                    "image_id": 3,
                    "category_id": 1,
                    "bbox": [0, 0, 4, 4],
                    "segmentation": [[0, 0, 4, 0, 4, 4]],
                    "score": 0.9,
                },
            ]
        ),
    )
    assert looks_like_coco(path)
    aset = read_coco(path)
    assert aset.schema.names == ["cat", "dog"]  # sorted by category id
    ann = aset.annotations
    assert ann.item.tolist() == [3, 7]
    assert ann.kind.tolist() == [Kind.POLYGON, Kind.RECTANGLE]
    assert ann.label.tolist() == [0, 1]
    np.testing.assert_allclose(ann.bbox[1], [1, 2, 4, 6])
    np.testing.assert_allclose(ann.points_of(0), [[0, 0], [4, 0], [4, 4]])
    assert ann.score[0] == pytest.approx(0.9)
    assert ann.annotators[ann.annotator[0]] == "prediction:coco"


def test_multi_part_polygon_shares_a_group(tmp_path):
    path = _write(
        tmp_path,
        _base(
            [
                {
                    "id": 9,
                    "image_id": 7,
                    "category_id": 5,
                    "segmentation": [[0, 0, 2, 0, 2, 2], [5, 5, 7, 5, 7, 7]],
                    "bbox": [0, 0, 7, 7],
                },
            ]
        ),
    )
    ann = read_coco(path).annotations
    assert len(ann) == 2
    assert ann.group.tolist() == [10, 10]


@pytest.mark.parametrize("second", [[5, 5, 7, 5, 7, 7], [0, 0, 2, 0, 2, 2]], ids=["apart", "same"])
def test_multi_part_polygon_scored_against_itself_is_one_clean_match(tmp_path, second):
    """A grouped annotation compared with itself: no error and no group mismatch, accuracy 1.

    Its parts are paired part by part (2 x 2 pairs for two identical parts), which made the
    group similarity divide by zero and abort ``compare`` before the fix.
    """
    from labelgate.engine import compare

    seg = [[0, 0, 2, 0, 2, 2], second]
    ann = {"id": 9, "image_id": 7, "category_id": 5, "segmentation": seg, "bbox": [0, 0, 7, 7]}
    aset = read_coco(_write(tmp_path, _base([ann])))
    report = compare(aset, aset).to_dict()
    assert report["summary"]["accuracy"] == 1.0
    assert report["summary"]["error_count"] == 0
    assert report["summary"]["conflicts_by_type"]["mismatching_groups"] == 0


@pytest.mark.parametrize("compressed", [False, True], ids=["plain-counts", "compressed-string"])
def test_rle_masks_match_pycocotools(tmp_path, compressed):
    rng = np.random.default_rng(1)
    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[2:7, 4:15] = 1
    mask[rng.random((10, 20)) < 0.05] = 1
    enc = mask_utils.encode(np.asfortranarray(mask))
    if compressed:
        seg = {"size": [10, 20], "counts": enc["counts"].decode("ascii")}
    else:
        flat = mask.flatten(order="F")
        change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])))
        seg = {"size": [10, 20], "counts": np.diff(np.concatenate([[0], change])).tolist()}
    path = _write(
        tmp_path, _base([{"id": 1, "image_id": 7, "category_id": 1, "segmentation": seg}])
    )
    ann = read_coco(path).annotations
    assert ann.kind.tolist() == [Kind.MASK]
    counts = ann.rle_of(0).astype(np.int64)
    assert counts.sum() == 200
    x, y, w, h = mask_utils.toBbox(enc)
    np.testing.assert_allclose(ann.bbox[0], [x, y, x + w, y + h])
    # Decode our counts back to a bitmap and compare pixel for pixel.
    values = np.repeat(np.arange(len(counts)) % 2, counts).astype(np.uint8)
    np.testing.assert_array_equal(values.reshape((10, 20), order="F"), mask)


def test_compressed_counts_roundtrip_random():
    rng = np.random.default_rng(7)
    for _ in range(20):
        mask = (rng.random((13, 17)) < rng.uniform(0.1, 0.9)).astype(np.uint8)
        enc = mask_utils.encode(np.asfortranarray(mask))
        counts = decode_compressed_counts(enc["counts"].decode("ascii"))
        assert sum(counts) == 13 * 17
        values = np.repeat(np.arange(len(counts)) % 2, counts).astype(np.uint8)
        np.testing.assert_array_equal(values.reshape((13, 17), order="F"), mask)


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ({"category_id": 99, "bbox": [0, 0, 1, 1]}, "unknown category_id 99"),
        ({"category_id": 1, "segmentation": [[0, 0, 1, 1]]}, "polygon with 2 points"),
        ({"category_id": 1, "bbox": [0, float("nan"), 1, 1]}, "4 finite numbers"),
        ({"category_id": 1, "segmentation": {"size": [10, 20], "counts": [5, 5]}}, "bad RLE"),
        ({"category_id": 1, "segmentation": {"size": [9, 20], "counts": [180]}}, "does not match"),
    ],
    ids=["unknown-label", "two-point-polygon", "nan-coordinate", "bad-rle-sum", "rle-size"],
)
def test_bad_annotation_is_a_data_error_not_a_failure(tmp_path, annotation, message):
    good = {"id": 1, "image_id": 7, "category_id": 5, "bbox": [1, 1, 2, 2]}
    bad = {"id": 2, "image_id": 7, **annotation}
    path = _write(tmp_path, _base([good, bad]))
    with pytest.warns(DataWarning, match=message):
        aset = read_coco(path)
    assert len(aset.annotations) == 1
    assert len(aset.data_errors) == 1
    err = aset.data_errors[0]
    assert message in err["message"] and "annotation #1 (id 2)" in err["where"]
    assert err["file"] == str(path)


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [{"id": 1')
    with pytest.raises(FormatError, match=r"broken\.json: not valid JSON"):
        read_coco(path)


def test_missing_sections(tmp_path):
    path = _write(tmp_path, {"images": []})
    with pytest.raises(FormatError, match="needs 'images' and 'categories'"):
        read_coco(path)
