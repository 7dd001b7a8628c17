"""Format readers that need no SDK (COCO)."""
