"""labelgate: annotation quality for CVAT and Label Studio teams."""

__version__ = "0.1.0"
