"""labelgate_cvat adapter."""
