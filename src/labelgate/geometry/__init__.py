"""Geometry kernels of the quality engine: pairwise (N, M) similarity arrays.

Submodules: :mod:`~labelgate.geometry.boxes` (axis-aligned/rotated boxes, overlap pre-filter),
:mod:`~labelgate.geometry.polygons` (shapely IoU, ellipses, occlusion),
:mod:`~labelgate.geometry.rle` (column-major COCO RLE masks), :mod:`~labelgate.geometry.points`
(skeleton OKS, point groups) and :mod:`~labelgate.geometry.lines` (polylines).
"""

from labelgate.geometry import rle
from labelgate.geometry.boxes import (
    box_area,
    box_iou,
    box_overlap_pairs,
    box_overlap_pairs_batched,
    corners_bbox,
    rotated_corners,
)
from labelgate.geometry.lines import line_similarity, resample_pair
from labelgate.geometry.points import point_group_similarity, skeleton_oks
from labelgate.geometry.polygons import (
    ELLIPSE_VERTICES,
    box_similarity,
    covered_fraction,
    ellipse_iou,
    ellipse_polygons,
    find_covered,
    geometry_bounds,
    make_polygons,
    polygon_iou,
    rotated_box_iou,
    rotated_box_polygons,
    visible_parts,
)
from labelgate.geometry.rle import rasterize_polygons, rle_iou

__all__ = [
    "ELLIPSE_VERTICES",
    "box_area",
    "box_iou",
    "box_overlap_pairs",
    "box_overlap_pairs_batched",
    "box_similarity",
    "corners_bbox",
    "covered_fraction",
    "ellipse_iou",
    "ellipse_polygons",
    "find_covered",
    "geometry_bounds",
    "line_similarity",
    "make_polygons",
    "point_group_similarity",
    "polygon_iou",
    "rasterize_polygons",
    "resample_pair",
    "rle",
    "rle_iou",
    "rotated_box_iou",
    "rotated_box_polygons",
    "rotated_corners",
    "skeleton_oks",
    "visible_parts",
]
