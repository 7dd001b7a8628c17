"""Column-major RLE: encode/decode, CVAT conversion, rasterisation and mask IoU."""

from __future__ import annotations

import numpy as np
import pytest
from cvat_sdk.masks import encode_mask
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils

from labelgate.errors import ValidationError
from labelgate.geometry import rle

masks = st.tuples(st.integers(1, 12), st.integers(1, 12)).flatmap(lambda hw: arrays(np.bool_, hw))


def _coco(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def test_encode_golden():
    m = np.zeros((3, 2), dtype=bool)
    m[1, 0] = m[2, 0] = m[0, 1] = True
    # column-major: col0 = 0,1,1 ; col1 = 1,0,0
    np.testing.assert_array_equal(rle.encode(m), [1, 3, 2])
    np.testing.assert_array_equal(rle.encode(np.ones((2, 2), bool)), [0, 4])
    np.testing.assert_array_equal(rle.encode(np.zeros((2, 2), bool)), [4])


@settings(max_examples=80, deadline=None)
@given(masks)
def test_roundtrip_area_bbox_vs_pycocotools(mask):
    h, w = mask.shape
    counts = rle.encode(mask)
    assert counts.dtype == np.uint32
    assert counts.sum() == h * w
    np.testing.assert_array_equal(rle.decode(counts, h, w), mask)
    assert rle.area(counts) == int(mask.sum())
    coco = _coco(mask)
    x, y, bw, bh = mask_utils.toBbox(coco)
    expected = [x, y, x + bw, y + bh] if mask.any() else [0, 0, 0, 0]
    np.testing.assert_array_equal(rle.bbox(counts, h, w), expected)
    # same counts as pycocotools' uncompressed form
    ref = mask_utils.frPyObjects({"counts": counts.tolist(), "size": [h, w]}, h, w)
    assert mask_utils.area(ref) == mask.sum()
    if mask.any():
        assert mask_utils.iou([ref], [coco], [0])[0][0] == pytest.approx(1.0)


@settings(max_examples=80, deadline=None)
@given(masks)
def test_cvat_roundtrip_and_sdk_oracle(mask):
    h, w = mask.shape
    counts = rle.encode(mask)
    values = rle.to_cvat(counts, h, w)
    assert values == [float(v) for v in encode_mask(mask)]
    np.testing.assert_array_equal(rle.from_cvat(values, h, w), counts)


def test_from_cvat_golden():
    # 2x2 box at (1, 1): row-major runs 1 zero, 2 ones, 1 zero -> pixels (x2,y1) and (x1,y2)
    counts = rle.from_cvat([1, 2, 1, 1, 1, 2, 2], 4, 4)
    expected = np.zeros((4, 4), bool)
    expected[1, 2] = expected[2, 1] = True
    np.testing.assert_array_equal(rle.decode(counts, 4, 4), expected)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ([1, 2, 3], "expected run lengths"),
        ([1, 2, 1, 5, 5, 6, 6], "outside"),
        ([1, 2, 0, 0, 1, 1], "runs sum to 3"),
        ([np.nan, 1, 0, 0, 0, 0], "expected run lengths"),
    ],
)
def test_from_cvat_errors(values, match):
    with pytest.raises(ValidationError, match=match):
        rle.from_cvat(values, 4, 4)


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        ([3, 4], "sum to 7 but the image is 2x4 = 8"),
        ([-1, 9], "non-negative"),
        ([1.5, 6.5], "integers"),
    ],
)
def test_bad_rle_errors(counts, match):
    with pytest.raises(ValidationError, match=match):
        rle.decode(np.array(counts), 2, 4)


def test_decode_window_matches_full_decode():
    rng = np.random.default_rng(3)
    mask = rng.random((9, 11)) > 0.5
    counts = rle.encode(mask)
    np.testing.assert_array_equal(rle.decode_window(counts, 9, [2, 3, 7, 8]), mask[3:8, 2:7])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        masks.filter(lambda m: m.shape == (6, 7)) | arrays(np.bool_, (6, 7)), min_size=0, max_size=4
    ),
    st.lists(arrays(np.bool_, (6, 7)), min_size=0, max_size=4),
)
def test_rle_iou_vs_pycocotools(ma, mb):
    h, w = 6, 7
    ca = [rle.encode(m) for m in ma]
    cb = [rle.encode(m) for m in mb]
    ba = np.array([rle.bbox(c, h, w) for c in ca]).reshape(-1, 4)
    bb = np.array([rle.bbox(c, h, w) for c in cb]).reshape(-1, 4)
    got = rle.rle_iou(ca, cb, ba, bb, h, w)
    assert got.shape == (len(ma), len(mb))
    if ma and mb:
        ref = np.asarray(
            mask_utils.iou([_coco(m) for m in ma], [_coco(m) for m in mb], [0] * len(mb))
        )
        np.testing.assert_allclose(got, ref, atol=1e-12)
    np.testing.assert_allclose(got, rle.rle_iou(cb, ca, bb, ba, h, w).T)


def test_rle_iou_golden_and_large_image():
    h, w = 2160, 3840  # 4k: only the two small windows are decoded
    a = np.zeros((h, w), bool)
    b = np.zeros((h, w), bool)
    a[100:110, 200:210] = True
    b[100:110, 205:215] = True
    ca, cb = rle.encode(a), rle.encode(b)
    got = rle.rle_iou([ca], [cb], rle.bbox(ca, h, w)[None], rle.bbox(cb, h, w)[None], h, w)
    assert got[0, 0] == pytest.approx(1 / 3)


def test_rasterize_polygons_vs_pycocotools():
    h, w = 40, 50
    polys = [
        np.array([[5, 5], [30, 5], [30, 20], [5, 20]], float),
        np.array([[10, 10], [40, 12], [25, 35]], float),
        np.array([[1, 1], [2, 2]], float),  # 2 points: empty
    ]
    offsets = np.cumsum([0] + [len(p) for p in polys])
    got = rle.rasterize_polygons(np.concatenate(polys), offsets, [0, 1, 2], h, w)
    # axis-aligned rectangle on integer edges: exactly 25 x 15 pixels
    assert rle.area(got[0]) == 375
    np.testing.assert_array_equal(rle.bbox(got[0], h, w), [5, 5, 30, 20])
    assert rle.area(got[2]) == 0
    ref = mask_utils.frPyObjects([polys[1].ravel().tolist()], h, w)
    ours = _coco(rle.decode(got[1], h, w))
    # pycocotools rasterises the outline differently: only a thin boundary band may differ
    assert mask_utils.iou([ours], ref, [0])[0][0] > 0.93
    assert abs(rle.area(got[1]) - 360) <= 15  # exact triangle area is 360


def test_rasterize_rejects_nan():
    with pytest.raises(ValidationError, match="row 0"):
        rle.rasterize_polygons(np.array([[0, 0], [np.nan, 1], [1, 1]]), [0, 3], [0], 4, 4)
