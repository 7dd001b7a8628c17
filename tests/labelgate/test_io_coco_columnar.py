"""COCO's columnar path against the per-annotation conversion of every annotation.

The oracle is the reader's loop before its columnar path: each annotation through
``coco._add_annotation`` into a per-row builder. Seeded synthetic files mix plain boxes and
polygons with everything the columnar path must leave to that loop (RLE masks, multi-part
polygons, scores, attributes) and malformed fields; the annotation set (every column, items,
schema, meta, data errors) and the warning texts must be identical.
"""

import json
import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from labelgate.errors import DataWarning, ValidationError
from labelgate.io import coco
from labelgate.io.inputs import read_json
from labelgate.model import AnnotationsBuilder, AnnotationSet


def _oracle(path: Path) -> AnnotationSet:
    data = read_json(path)
    schema, items = coco._categories(path, data["categories"]), coco._images(path, data["images"])
    label_of = {int(lb.id or 0): i for i, lb in enumerate(schema.labels)}
    builder = AnnotationsBuilder()
    errors = []
    for n, ann in enumerate(data.get("annotations", [])):
        where = f"annotation #{n} (id {ann.get('id') if isinstance(ann, dict) else '?'})"
        try:
            if not isinstance(ann, dict):
                raise ValidationError(f"expected an object, got {type(ann).__name__}")
            coco._add_annotation(builder, ann, items, label_of, schema)
        except (ValidationError, KeyError, TypeError, ValueError, OverflowError) as exc:
            warnings.warn(f"{path}: {where}: {exc}", DataWarning, stacklevel=2)
            errors.append(
                {
                    "type": "invalid_annotation",
                    "file": str(path),
                    "where": where,
                    "message": str(exc),
                }
            )
    return AnnotationSet(
        name=path.stem,
        schema=schema,
        items=items,
        annotations=builder.build(),
        meta={"system": "coco", "file": str(path)},
        data_errors=tuple(errors),
    )


def _value(r: random.Random, bad: float):
    if r.random() < bad:
        return r.choice(["3", True, None, float("nan"), float("inf"), 10**400, -1e12, [1]])
    return round(r.uniform(0, 300), 2) if r.random() < 0.7 else r.randint(0, 300)


def _annotation(r: random.Random, n: int, bad: float) -> object:
    if r.random() < bad / 4:
        return r.choice([[], "x", 3])
    ann: dict = {
        "id": n + 1 if r.random() > bad / 3 else r.choice(["7", None, 2**64, True]),
        "image_id": r.choice([1, 2, 5, 9]) if r.random() > bad / 3 else r.choice([77, "1", 1.0]),
        "category_id": r.choice([1, 3]) if r.random() > bad / 3 else r.choice([2, "1", False]),
        "area": 1.0,
        "iscrowd": 0,
    }
    if r.random() < bad / 3:
        del ann[r.choice(["id", "image_id", "category_id"])]
    shape = r.choice(["box", "box", "box", "poly", "poly", "multi", "rle", "empty", "none"])
    if shape in ("box", "empty", "none"):
        w, h = r.uniform(0, 50), r.uniform(0, 50)
        box = [_value(r, bad / 2), _value(r, bad / 2), w if r.random() > bad else -w, h]
        ann["bbox"] = box if r.random() > bad / 3 else r.choice([box[:3], "x", None])
        if shape == "empty":
            ann["segmentation"] = []
        elif shape == "none":
            ann["segmentation"] = None
    elif shape in ("poly", "multi"):
        parts = 1 if shape == "poly" else 2
        ann["segmentation"] = [
            [_value(r, bad / 6) for _ in range(2 * r.randint(2 if r.random() < bad else 3, 6))]
            for _ in range(parts)
        ]
        if r.random() < bad / 2:
            ann["segmentation"][0].append(4.0)
        ann["bbox"] = [0, 0, 1, 1]
    else:
        ann["segmentation"] = {"size": [10, 12], "counts": [5, 10, 105]}
    if r.random() < 0.1:
        ann["score"] = r.choice([0.5, 0.9, "x"]) if r.random() < bad else 0.7
    if r.random() < 0.1:
        ann["attributes"] = r.choice([{}, {"occluded": True}, {"x": [1]}])
    return ann


def _file(path: Path, seed: int, count: int, bad: float) -> Path:
    r = random.Random(seed)
    data = {
        "images": [
            {"id": i, "file_name": f"{i}.jpg", "width": 12, "height": 10} for i in (1, 2, 5, 9)
        ],
        "categories": [{"id": 1, "name": "car"}, {"id": 3, "name": "person"}],
        "annotations": [_annotation(r, n, bad) for n in range(count)],
    }
    path.write_text(json.dumps(data))
    return path


def _read(reader, path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        aset = reader(path)
    return aset, [str(w.message) for w in caught]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("bad", [0.0, 0.2])
def test_columnar_matches_per_annotation_reader(tmp_path, seed, bad):
    path = _file(tmp_path / f"c{seed}.json", seed, count=120, bad=bad)
    new, new_warn = _read(coco.read_coco, path)
    old, old_warn = _read(_oracle, path)
    assert new.to_dict() == old.to_dict()
    assert new_warn == old_warn
    if bad == 0.0:
        assert len(new.annotations) > 50  # the clean files really go through both paths


def test_plain_rows_hand_computed(tmp_path):
    path = tmp_path / "plain.json"
    path.write_text(
        json.dumps(
            {
                "images": [{"id": 4, "file_name": "a", "width": 9, "height": 9}],
                "categories": [{"id": 7, "name": "car"}],
                "annotations": [
                    {"id": 1, "image_id": 4, "category_id": 7, "bbox": [1, 2, 3, 4]},
                    {
                        "id": 2,
                        "image_id": 4,
                        "category_id": 7,
                        "segmentation": [[0, 0, 4, 0, 4, 5]],
                    },
                    {"id": 3, "image_id": 4, "category_id": 7, "bbox": [1, 2, 3, 4], "score": 0.5},
                ],
            }
        )
    )
    rows = coco.plain_rows(read_json(path)["annotations"], np.array([4]), {7: 0})
    assert rows is not None
    assert rows.index.tolist() == [0, 1]  # the scored detection is left to the per-row path
    np.testing.assert_array_equal(rows.bbox, [[1, 2, 4, 6], [0, 0, 4, 5]])
    assert rows.point_counts.tolist() == [0, 3]
    np.testing.assert_array_equal(rows.points, [[0, 0], [4, 0], [4, 5]])
    ann = coco.read_coco(path).annotations
    assert ann.source_id.tolist() == [1, 2, 3]
    assert ann.annotators == ("prediction:coco",)
    assert ann.annotator.tolist() == [-1, -1, 0]
