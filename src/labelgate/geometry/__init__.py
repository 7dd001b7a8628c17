"""Geometry kernels of the quality engine: pairwise (N, M) similarity arrays.

Every similarity the engine computes lives here, once. Submodules:
:mod:`~labelgate.geometry.boxes` (axis-aligned/rotated boxes, overlap pre-filter),
:mod:`~labelgate.geometry.shapes` (boxes, ellipses and polygons rasterised as CVAT does),
:mod:`~labelgate.geometry.rle` and :mod:`~labelgate.geometry.rle_kernels` (column-major COCO
RLE masks: pycocotools-exact rasterisation, merges, IoU, panoptic occlusion, coverage),
:mod:`~labelgate.geometry.polygons` (exact shapely IoU, the ``exact_geometry`` setting),
:mod:`~labelgate.geometry.points` (skeleton OKS, point groups) and
:mod:`~labelgate.geometry.lines` (polylines).
"""

from labelgate.geometry import rle
from labelgate.geometry.boxes import (
    box_area,
    box_iou,
    box_overlap_pairs,
    box_overlap_pairs_batched,
    boxes_near_another,
    corners_bbox,
    rotate_about,
    rotated_corners,
)
from labelgate.geometry.lines import line_similarities, line_similarity, resample_pair
from labelgate.geometry.points import point_group_similarity, skeleton_oks
from labelgate.geometry.polygons import (
    box_similarity,
    ellipse_iou,
    ellipse_polygons,
    geometry_bounds,
    make_polygons,
    polygon_iou,
    rotated_box_iou,
    rotated_box_polygons,
    visible_parts,
)
from labelgate.geometry.rle import rasterize_polygons, rle_iou
from labelgate.geometry.shapes import (
    ELLIPSE_VERTICES,
    box_outlines,
    ellipse_outlines,
    shape_rles,
    shape_rles_ragged,
)

__all__ = [
    "ELLIPSE_VERTICES",
    "box_area",
    "box_iou",
    "box_outlines",
    "box_overlap_pairs",
    "box_overlap_pairs_batched",
    "box_similarity",
    "boxes_near_another",
    "corners_bbox",
    "ellipse_iou",
    "ellipse_outlines",
    "ellipse_polygons",
    "geometry_bounds",
    "line_similarities",
    "line_similarity",
    "make_polygons",
    "point_group_similarity",
    "polygon_iou",
    "rasterize_polygons",
    "resample_pair",
    "rle",
    "rle_iou",
    "rotate_about",
    "rotated_box_iou",
    "rotated_box_polygons",
    "rotated_corners",
    "shape_rles",
    "shape_rles_ragged",
    "skeleton_oks",
    "visible_parts",
]
