"""Exact geometry (setting ``exact_geometry``): polygon, rotated-box and ellipse IoU with shapely.

Areas are exact polygon areas. By default the engine compares these shapes on pycocotools
rasters as CVAT does (:mod:`labelgate.geometry.shapes`, :mod:`labelgate.geometry.rle`); this
module is the exact alternative, with the same outlines and the same paint order.
"""

from __future__ import annotations

import numpy as np
import shapely

from labelgate.arrays import AnyArray, BoolArray, FloatArray, IntArray, IntegerArray, ObjectArray
from labelgate.errors import ValidationError
from labelgate.geometry.boxes import (
    as_boxes,
    box_iou,
    box_overlap_pairs,
    corners_bbox,
    rotated_corners,
)
from labelgate.geometry.shapes import ELLIPSE_VERTICES, ellipse_outlines

__all__ = [
    "ELLIPSE_VERTICES",  # re-exported from labelgate.geometry.shapes
    "box_similarity",
    "ellipse_iou",
    "ellipse_polygons",
    "geometry_bounds",
    "make_polygons",
    "polygon_iou",
    "rotated_box_iou",
    "rotated_box_polygons",
    "visible_parts",
]


def make_polygons(points: AnyArray, offsets: IntArray) -> tuple[ObjectArray, BoolArray]:
    """Build shapely polygons from ragged vertex arrays in one vectorised call.

    Self-intersecting polygons are repaired with ``shapely.make_valid`` (keeping their
    polygonal area). Rows with fewer than 3 vertices get an empty polygon and ``valid=False``
    so the caller can report them as data errors.

    Args:
        points: (P, 2) vertices.
        offsets: (N + 1,) row offsets into ``points``.

    Returns:
        ``(geoms, valid)``: (N,) object array of shapely geometries and (N,) bool mask.

    Raises:
        ValidationError: non-finite coordinates or malformed offsets (the row is named).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    off = np.asarray(offsets, dtype=np.int64).ravel()
    if off.size == 0 or off[0] != 0 or off[-1] != len(pts) or (np.diff(off) < 0).any():
        raise ValidationError(
            f"polygon offsets: expected non-decreasing offsets from 0 to {len(pts)}"
        )
    n = len(off) - 1
    sizes = np.diff(off)
    row_of_point = np.repeat(np.arange(n), sizes)
    bad = ~np.isfinite(pts).all(axis=1)
    if bad.any():
        row = int(row_of_point[np.flatnonzero(bad)[0]])
        raise ValidationError(f"polygon row {row}: non-finite vertex coordinates")
    valid = sizes >= 3
    geoms = np.array([shapely.Polygon()] * n, dtype=object)
    if valid.any():
        keep = valid[row_of_point]
        rows = np.flatnonzero(valid)
        # indices must be 0..k-1 for the k polygons built
        ring_idx = np.searchsorted(rows, row_of_point[keep])
        rings = shapely.linearrings(pts[keep], indices=ring_idx)
        built = shapely.polygons(rings)
        geoms[rows] = _repair(built)
    return geoms, valid


def _repair(geoms: ObjectArray) -> ObjectArray:
    geoms = np.asarray(geoms, dtype=object)
    broken = ~shapely.is_valid(geoms)
    if broken.any():
        fixed = shapely.make_valid(geoms[broken])
        # a bow-tie repairs to a collection that can carry stray lines; keep the areal part
        geoms[broken] = shapely.intersection(fixed, shapely.envelope(fixed))
    return geoms


def geometry_bounds(geoms: ObjectArray) -> FloatArray:
    """xyxy bounds of geometries; empty geometries get a zero box.

    Args:
        geoms: (N,) shapely geometries.

    Returns:
        (N, 4) float64.
    """
    b: FloatArray = shapely.bounds(np.asarray(geoms, dtype=object)).reshape(-1, 4)
    return np.nan_to_num(b, nan=0.0)


def polygon_iou(
    geoms_a: ObjectArray, bbox_a: AnyArray, geoms_b: ObjectArray, bbox_b: AnyArray
) -> FloatArray:
    """Pairwise area IoU, computed only on pairs whose boxes overlap.

    Args:
        geoms_a: (N,) shapely geometries.
        bbox_a: (N, 4) xyxy boxes covering ``geoms_a`` (the pre-filter).
        geoms_b: (M,) shapely geometries.
        bbox_b: (M, 4) xyxy boxes.

    Returns:
        (N, M) float64 IoU in [0, 1]; 0 for empty or invalid geometries.
    """
    ga = np.asarray(geoms_a, dtype=object).ravel()
    gb = np.asarray(geoms_b, dtype=object).ravel()
    out = np.zeros((len(ga), len(gb)))
    if len(ga) == 0 or len(gb) == 0:
        return out
    pairs = box_overlap_pairs(as_boxes(bbox_a, "bbox_a"), as_boxes(bbox_b, "bbox_b"))
    if len(pairs) == 0:
        return out
    i, j = pairs[:, 0], pairs[:, 1]
    area_a = np.nan_to_num(shapely.area(ga))
    area_b = np.nan_to_num(shapely.area(gb))
    inter = np.nan_to_num(shapely.area(shapely.intersection(ga[i], gb[j])))
    union = area_a[i] + area_b[j] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    out[i, j] = np.clip(iou, 0.0, 1.0)
    return out


def rotated_box_polygons(bbox: AnyArray, rotation: AnyArray) -> ObjectArray:
    """Rectangles rotated about their centres, as shapely polygons.

    Args:
        bbox: (N, 4) xyxy before rotation.
        rotation: (N,) degrees, clockwise on screen.

    Returns:
        (N,) shapely polygons.
    """
    corners = rotated_corners(bbox, rotation)
    if len(corners) == 0:
        return np.zeros(0, dtype=object)
    geoms: ObjectArray = shapely.polygons(corners)
    return geoms


def rotated_box_iou(
    bbox_a: AnyArray, rot_a: AnyArray, bbox_b: AnyArray, rot_b: AnyArray
) -> FloatArray:
    """Pairwise IoU of rotated rectangles (exact polygon areas).

    CVAT uses axis-aligned IoU when both rotations are equal; this function is purely
    geometric (equal rotations give the same value anyway, up to float rounding).

    Args:
        bbox_a: (N, 4) xyxy before rotation.
        rot_a: (N,) degrees.
        bbox_b: (M, 4) xyxy before rotation.
        rot_b: (M,) degrees.

    Returns:
        (N, M) float64 IoU.
    """
    ca, cb = rotated_corners(bbox_a, rot_a), rotated_corners(bbox_b, rot_b)
    if len(ca) == 0 or len(cb) == 0:
        return np.zeros((len(ca), len(cb)))
    return polygon_iou(
        shapely.polygons(ca), corners_bbox(ca), shapely.polygons(cb), corners_bbox(cb)
    )


def box_similarity(
    bbox_a: AnyArray, rot_a: AnyArray, bbox_b: AnyArray, rot_b: AnyArray
) -> FloatArray:
    """CVAT ``match_boxes`` similarity: axis-aligned IoU when rotations are equal.

    Pairs with equal rotation use :func:`~labelgate.geometry.boxes.box_iou` (rotation ignored,
    as in CVAT); the others use :func:`rotated_box_iou` (exact areas instead of CVAT's
    rasterised polygons).

    Args:
        bbox_a: (N, 4) xyxy before rotation.
        rot_a: (N,) degrees.
        bbox_b: (M, 4).
        rot_b: (M,) degrees.

    Returns:
        (N, M) float64 IoU.
    """
    ra = np.asarray(rot_a, dtype=np.float64).ravel()
    rb = np.asarray(rot_b, dtype=np.float64).ravel()
    aligned = box_iou(bbox_a, bbox_b)
    same = ra[:, None] == rb[None, :]
    if aligned.size == 0 or same.all():
        return aligned
    return np.where(same, aligned, rotated_box_iou(bbox_a, ra, bbox_b, rb))


def ellipse_polygons(bbox: AnyArray, rotation: AnyArray) -> ObjectArray:
    """Shapely polygons of (rotated) ellipses, on CVAT's 720-vertex outlines.

    Args:
        bbox: (N, 4) ``(cx - rx, cy - ry, cx + rx, cy + ry)``.
        rotation: (N,) degrees, clockwise on screen, about the centre.

    Returns:
        (N,) shapely polygons (empty polygon for a degenerate ellipse).

    Raises:
        ValidationError: non-finite input or a rotation array of the wrong length.
    """
    box = as_boxes(bbox)
    rot = np.asarray(rotation, dtype=np.float64).ravel()
    if rot.size == 1 and len(box) != 1:
        rot = np.full(len(box), rot[0])
    if len(rot) != len(box) or not np.isfinite(rot).all():
        raise ValidationError(f"rotation: expected {len(box)} finite values, got {len(rot)}")
    if len(box) == 0:
        return np.zeros(0, dtype=object)
    return _repair(shapely.polygons(ellipse_outlines(box, rot, round_output=False)))


def ellipse_iou(bbox_a: AnyArray, rot_a: AnyArray, bbox_b: AnyArray, rot_b: AnyArray) -> FloatArray:
    """Pairwise exact IoU of rotated ellipses via their 720-vertex outlines.

    Args:
        bbox_a: (N, 4) unrotated ellipse boxes.
        rot_a: (N,) degrees.
        bbox_b: (M, 4).
        rot_b: (M,) degrees.

    Returns:
        (N, M) float64 IoU.
    """
    ga, gb = ellipse_polygons(bbox_a, rot_a), ellipse_polygons(bbox_b, rot_b)
    if len(ga) == 0 or len(gb) == 0:
        return np.zeros((len(ga), len(gb)))
    return polygon_iou(ga, geometry_bounds(ga), gb, geometry_bounds(gb))


def visible_parts(
    geoms: ObjectArray, owner: IntegerArray, n_owners: int, *, occlude: bool = True
) -> list[shapely.Geometry]:
    """Panoptic occlusion on exact geometry, the counterpart of ``rle.visible_parts``.

    Args:
        geoms: (N,) shapely geometries in paint order (bottom first; later ones cover).
        owner: (N,) which output (instance) each geometry belongs to.
        n_owners: number of outputs.
        occlude: False gives each owner the plain union of its geometries.

    Returns:
        ``n_owners`` geometries: the area where a geometry of that owner is the top one.
    """
    g = np.asarray(geoms, dtype=object).ravel()
    out: list[shapely.Geometry] = [shapely.Polygon()] * n_owners
    cover = None
    for k in range(len(g) - 1, -1, -1):
        vis = g[k] if cover is None or not occlude else shapely.difference(g[k], cover)
        o = int(owner[k])
        out[o] = vis if shapely.is_empty(out[o]) else shapely.union(out[o], vis)
        if not shapely.is_empty(g[k]):
            cover = g[k] if cover is None else shapely.union(cover, g[k])
    return out
