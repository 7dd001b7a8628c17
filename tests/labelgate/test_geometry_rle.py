"""Column-major RLE: encode/decode, CVAT conversion, rasterisation and mask IoU."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from cvat_sdk.masks import encode_mask
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils

from labelgate.errors import ValidationError
from labelgate.geometry import rle
from labelgate.geometry.shapes import box_outlines, box_pixel_rects

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


def test_rasterize_polygons_golden():
    h, w = 40, 50
    polys = [
        np.array([[5, 5], [30, 5], [30, 20], [5, 20]], float),
        np.array([[1, 1], [2, 2]], float),  # 2 points: empty
    ]
    offsets = np.cumsum([0] + [len(p) for p in polys])
    got = rle.rasterize_polygons(np.concatenate(polys), offsets, [0, 1], h, w)
    # axis-aligned rectangle on integer edges: exactly 25 x 15 pixels
    assert rle.area(got[0]) == 375
    np.testing.assert_array_equal(rle.bbox(got[0], h, w), [5, 5, 30, 20])
    assert rle.area(got[1]) == 0


def _coco_counts(counts, h, w):
    """Compressed pycocotools RLE of our counts (the string encodes the exact run list)."""
    return mask_utils.frPyObjects([{"size": [h, w], "counts": [int(c) for c in counts]}], h, w)[0]


# vertices on a 0.1 grid hit pycocotools' rounding boundaries (5 * x.1 + .5 is an integer)
coords = st.one_of(st.floats(-8, 60, allow_nan=False), st.integers(-80, 600).map(lambda v: v / 10))
polygon = st.lists(st.tuples(coords, coords), min_size=3, max_size=9)


@settings(max_examples=300, deadline=None)
@given(st.lists(polygon, min_size=1, max_size=4), st.integers(1, 50), st.integers(1, 50))
def test_rasterize_polygons_identical_to_pycocotools(polys, h, w):
    pts = np.concatenate([np.asarray(p, float) for p in polys])
    offsets = np.cumsum([0] + [len(p) for p in polys])
    got = rle.rasterize_polygons(pts, offsets, range(len(polys)), h, w)
    for p, counts in zip(polys, got, strict=True):
        ref = mask_utils.frPyObjects([np.asarray(p, float).ravel().tolist()], h, w)[0]
        assert _coco_counts(counts, h, w)["counts"] == ref["counts"]  # identical runs
        assert rle.area(counts) == mask_utils.area(ref)


@settings(max_examples=150, deadline=None)
@given(st.lists(polygon, min_size=1, max_size=5), st.lists(polygon, min_size=1, max_size=5))
def test_raster_iou_merge_and_visible_parts_vs_pycocotools(pa, pb):
    h, w = 45, 55
    ra = [mask_utils.frPyObjects([np.ravel(p).tolist()], h, w)[0] for p in pa]
    rb = [mask_utils.frPyObjects([np.ravel(p).tolist()], h, w)[0] for p in pb]
    ca = rle.rasterize_polygons(
        np.concatenate(pa), np.cumsum([0] + [len(p) for p in pa]), range(len(pa)), h, w
    )
    cb = rle.rasterize_polygons(
        np.concatenate(pb), np.cumsum([0] + [len(p) for p in pb]), range(len(pb)), h, w
    )
    # IoU: pycocotools iou(dt=b, gt=a) as CVAT calls it, transposed to (a, b)
    ref = np.asarray(mask_utils.iou(rb, ra, [0] * len(ra))).T
    np.testing.assert_array_equal(rle.mask_iou(ca, cb, h, w), ref)
    # union
    merged = rle.merge(ca, h, w)
    assert _coco_counts(merged, h, w)["counts"] == mask_utils.merge(ra)["counts"]
    # panoptic: paint a in order, later on top; each keeps the pixels where it is on top
    stack = np.zeros((h, w), int)
    for k, r in enumerate(ra):
        with warnings.catch_warnings():  # pycocotools' decode trips a numpy 2 deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            stack[mask_utils.decode([r])[:, :, 0].astype(bool)] = k + 1
    vis = rle.visible_parts(ca, np.arange(len(ca)), len(ca), h, w)
    for k, v in enumerate(vis):
        np.testing.assert_array_equal(rle.decode(v, h, w), stack == k + 1)
    # covered: CVAT's _find_covered_segments with pycocotools
    for thr in (0.05, 0.5, 1.0):
        expected = []
        for i, bottom in enumerate(ra):
            top = mask_utils.merge(ra[i + 1 :]) if i + 1 < len(ra) else None
            if top is None:
                expected.append(False)
                continue
            inter = mask_utils.area(mask_utils.merge([top, bottom], intersect=True))
            union = mask_utils.area(mask_utils.merge([top, bottom]))
            area = mask_utils.area(bottom)
            iou = inter / (union or 1)
            expected.append(bool(iou != 0 and 1 - inter / (area or 1) < thr))
        np.testing.assert_array_equal(rle.find_covered(ca, h, thr), expected)


def test_rasterize_rejects_nan():
    with pytest.raises(ValidationError, match="row 0"):
        rle.rasterize_polygons(np.array([[0, 0], [np.nan, 1], [1, 1]]), [0, 3], [0], 4, 4)


# box outlines on a 0.1 grid and off it, partly (or wholly) outside the image or not
box_coord = st.one_of(
    st.floats(-30, 70, allow_nan=False), st.integers(-300, 700).map(lambda v: v / 10)
)


@settings(max_examples=400, deadline=None)
@given(box_coord, box_coord, box_coord, box_coord, st.integers(1, 60), st.integers(1, 60))
def test_box_pixel_rects_are_pycocotools_rasters(x1, y1, x2, y2, h, w):
    box = np.array([[min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]])
    rects, exact = box_pixel_rects(box, np.array([h]), np.array([w]))
    if not exact[0]:
        assert not (box[0, 2] - box[0, 0] > 1 and box[0, 3] - box[0, 1] > 1)
        return  # degenerate outlines are traced instead
    outline = box_outlines(box, np.zeros(1), rotate=False)[0]
    ref = mask_utils.frPyObjects([outline.ravel().tolist()], h, w)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        want = mask_utils.decode(ref).astype(bool)
    x0, y0, x1_, y1_ = rects[0].astype(int)
    got = np.zeros((h, w), bool)
    got[y0:y1_, x0:x1_] = True
    np.testing.assert_array_equal(got, want)


def test_rasterize_polygons_one_size_per_row():
    """Frames of different sizes in one call: each row as pycocotools rasterises it alone."""
    rng = np.random.default_rng(3)
    sizes = [(480, 640), (17, 900), (1080, 1920), (5, 5)]
    polys = [rng.uniform(-20, 1000, size=(int(rng.integers(3, 30)), 2)) for _ in sizes]
    pts = np.concatenate(polys)
    offsets = np.cumsum([0] + [len(p) for p in polys])
    hs = np.array([s[0] for s in sizes])
    ws = np.array([s[1] for s in sizes])
    got = rle.rasterize_polygons(pts, offsets, range(len(polys)), hs, ws)
    for p, (h, w), counts in zip(polys, sizes, got, strict=True):
        ref = mask_utils.frPyObjects([p.ravel().tolist()], h, w)[0]
        assert _coco_counts(counts, h, w)["counts"] == ref["counts"]


# Edges traced along y (|dy| > |dx|) are searched column by column, not stepped: long
# near-vertical edges, slopes close to +-1 and tall images exercise that search.
steep_x = st.integers(-200, 4000).map(lambda v: v / 10)
steep_y = st.integers(-500, 30000).map(lambda v: v / 10)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(steep_x, steep_y), min_size=3, max_size=8), st.integers(1, 3000))
def test_rasterize_steep_polygons_identical_to_pycocotools(poly, h):
    w = 420
    pts = np.asarray(poly, float)
    got = rle.rasterize_polygons(pts, np.array([0, len(pts)]), [0], h, w)[0]
    ref = mask_utils.frPyObjects([pts.ravel().tolist()], h, w)[0]
    assert _coco_counts(got, h, w)["counts"] == ref["counts"]


def test_rasterize_slope_near_one_identical_to_pycocotools():
    """Edges one upsampled step short of 45 degrees (u moves on all but one trace step)."""
    h, w = 2100, 2100
    polys = [
        np.array([[x0, 0.0], [x0 + d, d + 0.2], [x0 - 3.0, d + 0.2]])
        for x0 in (3.0, 10.1, 50.3)
        for d in (7.9, 99.9, 1999.9)
    ]
    pts = np.concatenate(polys)
    offsets = np.cumsum([0] + [len(p) for p in polys])
    got = rle.rasterize_polygons(pts, offsets, range(len(polys)), h, w)
    for p, counts in zip(polys, got, strict=True):
        ref = mask_utils.frPyObjects([p.ravel().tolist()], h, w)[0]
        assert _coco_counts(counts, h, w)["counts"] == ref["counts"]


@pytest.mark.parametrize("occlude", [True, False])
def test_instance_mask_boxes_are_pycocotools_boxes(occlude):
    """Instance boxes come out of the instance pass (a whole single member keeps its own):
    each equals pycocotools' toBbox of the instance raster, empty instances all zeros."""
    from labelgate.geometry import rle_kernels

    rng = np.random.default_rng(11)
    sizes = [(40, 60), (33, 20), (50, 50)]
    # frame 0 starts with squares under bigger ones, painted last in row order: 5..15 is hidden
    # whole (box all zeros), 20..40 x 20..30 keeps 20..30 x 20..30
    fixed = [(5, 5, 15, 15), (0, 0, 18, 18), (20, 20, 40, 30), (30, 0, 60, 40)]
    polys = [np.array([[a, b], [c, b], [c, d], [a, d]], float) for a, b, c, d in fixed]
    hs, frame_ptr, inst_ptr = [40] * 4, [0], [0, 1, 2, 3, 4]
    for f, (h, w) in enumerate(sizes):
        n = int(rng.integers(3, 9))
        for _ in range(n):
            c = rng.uniform(0, [w, h])
            polys.append(c + rng.uniform(-12, 12, size=(int(rng.integers(3, 7)), 2)))
            hs.append(h)
        frame_ptr.append(frame_ptr[-1] + n + (4 if f == 0 else 0))
        # instances of 1-3 consecutive members within the frame
        while inst_ptr[-1] < frame_ptr[-1]:
            inst_ptr.append(min(inst_ptr[-1] + int(rng.integers(1, 4)), frame_ptr[-1]))
    counts_per_frame = np.diff(frame_ptr)
    ws = np.repeat([w for _, w in sizes], counts_per_frame)
    offsets = np.cumsum([0] + [len(p) for p in polys])
    flat, off = rle.rasterize_polygons_ragged(
        np.concatenate(polys), offsets, range(len(polys)), np.array(hs), ws
    )
    rank = np.concatenate(
        [np.r_[counts_per_frame[0] - 4 + np.arange(4), rng.permutation(counts_per_frame[0] - 4)]]
        + [rng.permutation(k) for k in counts_per_frame[1:]]
    )
    fp, ip = np.array(frame_ptr, np.int64), np.array(inst_ptr, np.int64)
    heights = np.array([h for h, _ in sizes], np.int64)
    frame_of_inst = np.searchsorted(fp, ip[:-1], side="right") - 1
    totals = np.array([sizes[f][0] * sizes[f][1] for f in frame_of_inst], np.int64)
    args = (flat, off, fp, ip, rank.astype(np.int64), heights, totals, occlude)
    got_flat, got_off, box = rle_kernels.instance_masks_boxed(*args)
    plain_flat, plain_off = rle_kernels.instance_masks(*args)
    np.testing.assert_array_equal(got_flat, plain_flat)
    np.testing.assert_array_equal(got_off, plain_off)
    for i, f in enumerate(frame_of_inst):
        h, w = sizes[f]
        counts = got_flat[got_off[i] : got_off[i + 1]]
        x, y, bw, bh = mask_utils.toBbox(_coco_counts(counts, h, w))
        np.testing.assert_array_equal(box[i], [x, y, x + bw, y + bh])
    if occlude:  # the hand-computed visible parts
        np.testing.assert_array_equal(box[:3], [[0, 0, 0, 0], [0, 0, 18, 18], [20, 20, 30, 30]])


def test_shape_rles_of_mask_rows_are_their_stored_runs():
    """Mask-only rows (consecutive, shuffled, a subset) give the runs each mask was encoded
    to, and a mix with a polygon gives pycocotools' raster for the polygon."""
    from labelgate.geometry.shapes import shape_rles_ragged
    from labelgate.io.rle import encode_column_major
    from labelgate.model import AnnotationsBuilder, Kind

    rng = np.random.default_rng(4)
    h, w = 12, 9
    b = AnnotationsBuilder(["x"])
    grids = [rng.random((h, w)) < p for p in (0.1, 0.5, 0.9, 0.0)]
    for m in grids:
        b.add(0, Kind.MASK, 0, rle=encode_column_major(m), bbox=(0, 0, w, h), annotator=0)
    tri = [[1.0, 1.0], [8.0, 2.0], [3.0, 10.0]]
    b.add(0, Kind.POLYGON, 0, points=np.array(tri), annotator=0)
    ann = b.build()
    for rows in ([0, 1, 2, 3], [2, 0, 3], [1, 2], [3, 4, 0]):
        rows = np.array(rows)
        flat, off = shape_rles_ragged(ann, rows, np.full(len(rows), h), np.full(len(rows), w))
        for k, r in enumerate(rows):
            counts = flat[off[k] : off[k + 1]]
            if r < 4:
                np.testing.assert_array_equal(rle.decode(counts, h, w), grids[r])
            else:
                ref = mask_utils.frPyObjects([np.ravel(tri).tolist()], h, w)[0]
                assert _coco_counts(counts, h, w)["counts"] == ref["counts"]
