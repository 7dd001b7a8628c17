"""Polygon, rotated-box and ellipse IoU with shapely 2, plus panoptic occlusion.

Areas are exact polygon areas. CVAT rasterises rotated boxes, ellipses and polygons with
pycocotools at image resolution before taking IoU, so results differ from CVAT by the
rasterisation error along the outline (well under 1% IoU for objects larger than ~30 px).
"""

from __future__ import annotations

import numpy as np
import shapely

from labelgate.errors import ValidationError
from labelgate.geometry.boxes import (
    as_boxes,
    box_iou,
    box_overlap_pairs,
    corners_bbox,
    rotated_corners,
)

__all__ = [
    "ELLIPSE_VERTICES",
    "box_similarity",
    "covered_fraction",
    "ellipse_iou",
    "ellipse_polygons",
    "find_covered",
    "geometry_bounds",
    "make_polygons",
    "polygon_iou",
    "rotated_box_iou",
    "rotated_box_polygons",
    "visible_parts",
]

#: Vertex count of the ellipse approximation, as in Datumaro ``Ellipse.as_polygon(num_points=720)``
#: (used by CVAT's ``match_ellipses``): ``theta = linspace(0, 2*pi, 720)``, so the last vertex
#: repeats the first and the ring has 719 distinct vertices. Its area is within 0.002% of the
#: true ellipse.
ELLIPSE_VERTICES = 720


def make_polygons(points: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _repair(geoms: np.ndarray) -> np.ndarray:
    geoms = np.asarray(geoms, dtype=object)
    broken = ~shapely.is_valid(geoms)
    if broken.any():
        fixed = shapely.make_valid(geoms[broken])
        # a bow-tie repairs to a collection that can carry stray lines; keep the areal part
        geoms[broken] = shapely.intersection(fixed, shapely.envelope(fixed))
    return geoms


def geometry_bounds(geoms: np.ndarray) -> np.ndarray:
    """xyxy bounds of geometries; empty geometries get a zero box.

    Args:
        geoms: (N,) shapely geometries.

    Returns:
        (N, 4) float64.
    """
    b = shapely.bounds(np.asarray(geoms, dtype=object)).reshape(-1, 4)
    return np.nan_to_num(b, nan=0.0)


def polygon_iou(
    geoms_a: np.ndarray, bbox_a: np.ndarray, geoms_b: np.ndarray, bbox_b: np.ndarray
) -> np.ndarray:
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


def rotated_box_polygons(bbox: np.ndarray, rotation: np.ndarray) -> np.ndarray:
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
    return shapely.polygons(corners)


def rotated_box_iou(
    bbox_a: np.ndarray, rot_a: np.ndarray, bbox_b: np.ndarray, rot_b: np.ndarray
) -> np.ndarray:
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
    bbox_a: np.ndarray, rot_a: np.ndarray, bbox_b: np.ndarray, rot_b: np.ndarray
) -> np.ndarray:
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


def _ellipse_vertices(bbox: np.ndarray, rotation: np.ndarray, n_vertices: int) -> np.ndarray:
    box = as_boxes(bbox)
    rot = np.asarray(rotation, dtype=np.float64).ravel()
    if rot.size == 1 and len(box) != 1:
        rot = np.full(len(box), rot[0])
    if len(rot) != len(box) or not np.isfinite(rot).all():
        raise ValidationError(f"rotation: expected {len(box)} finite values, got {len(rot)}")
    if n_vertices < 4:
        raise ValidationError(f"n_vertices: expected at least 4, got {n_vertices}")
    c = (box[:, :2] + box[:, 2:]) / 2
    r = (box[:, 2:] - box[:, :2]) / 2
    # Datumaro's endpoint duplicates the first vertex; drop it (shapely closes the ring)
    t = np.linspace(0.0, 2 * np.pi, n_vertices)[:-1]
    dx = r[:, None, 0] * np.cos(t)[None, :]
    dy = r[:, None, 1] * np.sin(t)[None, :]
    th = np.deg2rad(rot)[:, None]
    x = c[:, None, 0] + dx * np.cos(th) - dy * np.sin(th)
    y = c[:, None, 1] + dx * np.sin(th) + dy * np.cos(th)
    return np.stack([x, y], axis=-1)


def ellipse_polygons(
    bbox: np.ndarray, rotation: np.ndarray, n_vertices: int = ELLIPSE_VERTICES
) -> np.ndarray:
    """Polygon approximation of (rotated) ellipses.

    Args:
        bbox: (N, 4) ``(cx - rx, cy - ry, cx + rx, cy + ry)``.
        rotation: (N,) degrees, clockwise on screen, about the centre.
        n_vertices: ring vertices per ellipse, the closing duplicate included (Datumaro's
            ``linspace(0, 2*pi, n)``).

    Returns:
        (N,) shapely polygons (empty polygon for a degenerate ellipse).

    Raises:
        ValidationError: non-finite input or fewer than 3 vertices.
    """
    v = _ellipse_vertices(bbox, rotation, n_vertices)
    if len(v) == 0:
        return np.zeros(0, dtype=object)
    return _repair(shapely.polygons(v))


def ellipse_iou(
    bbox_a: np.ndarray,
    rot_a: np.ndarray,
    bbox_b: np.ndarray,
    rot_b: np.ndarray,
    n_vertices: int = ELLIPSE_VERTICES,
) -> np.ndarray:
    """Pairwise IoU of rotated ellipses via their polygon approximations.

    Args:
        bbox_a: (N, 4) unrotated ellipse boxes.
        rot_a: (N,) degrees.
        bbox_b: (M, 4).
        rot_b: (M,) degrees.
        n_vertices: polygon vertices per ellipse.

    Returns:
        (N, M) float64 IoU.
    """
    va = _ellipse_vertices(bbox_a, rot_a, n_vertices)
    vb = _ellipse_vertices(bbox_b, rot_b, n_vertices)
    if len(va) == 0 or len(vb) == 0:
        return np.zeros((len(va), len(vb)))
    return polygon_iou(
        _repair(shapely.polygons(va)),
        corners_bbox(va),
        _repair(shapely.polygons(vb)),
        corners_bbox(vb),
    )


def _draw_order(z_order: np.ndarray, n: int) -> np.ndarray:
    z = np.asarray(z_order).ravel()
    if len(z) != n:
        raise ValidationError(f"z_order: expected {n} values, got {len(z)}")
    # stable: equal z_order keeps row order, later rows drawn on top (CVAT sorts stably)
    return np.argsort(z, kind="stable")


def _tops(geoms: np.ndarray, order: np.ndarray) -> np.ndarray:
    """For each row, the union of every geometry drawn above it (None when nothing is)."""
    tops = np.empty(len(geoms), dtype=object)
    acc = None
    # one union per annotation, from the top of the stack down
    for row in order[::-1]:
        tops[row] = acc
        g = geoms[row]
        if g is not None and not shapely.is_empty(g):
            acc = g if acc is None else shapely.union(acc, g)
    return tops


def visible_parts(geoms: np.ndarray, z_order: np.ndarray) -> np.ndarray:
    """Panoptic occlusion: each geometry minus everything drawn above it.

    Args:
        geoms: (N,) shapely geometries of one frame.
        z_order: (N,) draw order; higher is on top, ties go to the later row.

    Returns:
        (N,) visible geometries.

    Raises:
        ValidationError: z_order of the wrong length.
    """
    g = np.asarray(geoms, dtype=object).ravel()
    if len(g) == 0:
        return g
    tops = _tops(g, _draw_order(z_order, len(g)))
    out = g.copy()
    has_top = np.array([t is not None for t in tops])
    if has_top.any():
        out[has_top] = shapely.difference(g[has_top], tops[has_top])
    return out


def covered_fraction(geoms: np.ndarray, z_order: np.ndarray) -> np.ndarray:
    """Share of each geometry's area hidden by geometries drawn above it.

    Args:
        geoms: (N,) shapely geometries.
        z_order: (N,) draw order.

    Returns:
        (N,) float64 in [0, 1]; 0 for empty geometries or when nothing is on top.
    """
    g = np.asarray(geoms, dtype=object).ravel()
    out = np.zeros(len(g))
    if len(g) == 0:
        return out
    tops = _tops(g, _draw_order(z_order, len(g)))
    has_top = np.array([t is not None for t in tops])
    if not has_top.any():
        return out
    area = np.nan_to_num(shapely.area(g[has_top]))
    inter = np.nan_to_num(shapely.area(shapely.intersection(g[has_top], tops[has_top])))
    out[has_top] = np.divide(inter, area, out=np.zeros_like(area), where=area > 0)
    return np.clip(out, 0.0, 1.0)


def find_covered(geoms: np.ndarray, z_order: np.ndarray, visibility_threshold: float) -> np.ndarray:
    """CVAT's ``covered_annotation`` rule (reference section 2.4 item 6).

    Annotation i is covered when the union of everything above it overlaps it
    (IoU > 0) and its visible share ``1 - area(top & i) / area(i)`` is below
    ``visibility_threshold``. The caller passes boxes and ellipses *unrotated*, like CVAT.

    Args:
        geoms: (N,) shapely geometries of one (DS) frame.
        z_order: (N,) draw order.
        visibility_threshold: ``object_visibility_threshold`` in [0, 1].

    Returns:
        (N,) bool.
    """
    frac = covered_fraction(geoms, z_order)
    # IoU(top, i) > 0 is the same as a positive-area intersection
    return (frac > 0) & ((1.0 - frac) < visibility_threshold)
