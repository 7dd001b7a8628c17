"""labelgate CVAT adapter: CVAT payloads and export files to and from the common model."""

from labelgate_cvat.adapter import ADAPTER

__all__ = ["ADAPTER"]
