"""labelgate Label Studio adapter: LS payloads and exports to and from the common model."""

from labelgate_labelstudio.adapter import ADAPTER

__all__ = ["ADAPTER"]
