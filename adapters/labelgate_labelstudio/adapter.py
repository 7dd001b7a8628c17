"""The Label Studio adapter object registered in the ``labelgate.adapters`` entry-point group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labelgate.model import AnnotationSet
from labelgate_labelstudio.json_export import looks_like_ls_export, read_ls_export


class LabelStudioAdapter:
    """Reads Label Studio JSON exports; the live API lives in ``labelgate_labelstudio.client``."""

    name = "labelstudio"

    def sniff(self, path: Path) -> bool:
        return looks_like_ls_export(Path(path))

    def read_file(self, path: Path, **options: Any) -> AnnotationSet:
        return read_ls_export(
            path, config=options.get("config"), gt_policy=options.get("gt_policy") or "per-author"
        )

    def push_audit_sample(
        self, target: int, sample: list[dict[str, Any]], aset: AnnotationSet
    ) -> dict[str, Any]:
        """Show the gate's audit sample as the project tab "labelgate: audit sample".

        Items are Label Studio task ids; credentials from ``LABELGATE_LS_*``.
        """
        from labelgate_labelstudio.client import AUDIT_VIEW, connect

        with connect() as source:
            view = source.upsert_review_view(
                target, [int(s["item"]) for s in sample], title=AUDIT_VIEW
            )
        return {"system": "labelstudio", "project": target, "view": view, "items": len(sample)}


ADAPTER = LabelStudioAdapter()
