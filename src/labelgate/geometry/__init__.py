"""Geometry kernels of the quality engine: pairwise (N, M) similarity arrays."""

from labelgate.geometry.boxes import (
    box_area,
    box_iou,
    box_overlap_pairs,
    box_overlap_pairs_batched,
    corners_bbox,
    rotated_corners,
)

__all__ = [
    "box_area",
    "box_iou",
    "box_overlap_pairs",
    "box_overlap_pairs_batched",
    "corners_bbox",
    "rotated_corners",
]
