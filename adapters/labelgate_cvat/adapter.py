"""The CVAT adapter object registered in the ``labelgate.adapters`` entry-point group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labelgate.model import AnnotationSet
from labelgate_cvat.xml_export import looks_like_cvat_xml, read_cvat_xml


class CvatAdapter:
    """Reads CVAT XML exports; the live API lives in ``labelgate_cvat.client``."""

    name = "cvat"

    def sniff(self, path: Path) -> bool:
        return looks_like_cvat_xml(Path(path))

    def read_file(self, path: Path, **options: Any) -> AnnotationSet:
        return read_cvat_xml(path, annotator=options.get("annotator"))

    def push_audit_sample(
        self, target: int, sample: list[dict[str, Any]], aset: AnnotationSet
    ) -> dict[str, Any]:
        """Open one "please audit" issue per sampled frame on CVAT job ``target``.

        Idempotent like every labelgate issue (marker ``audit:<frame>``); frames no longer in
        the sample get their audit issue resolved. Credentials from ``LABELGATE_CVAT_*``.
        """
        from labelgate_cvat.client import connect
        from labelgate_cvat.pushback import AUDIT, marker, push_issues

        size = {
            int(i): (int(w), int(h))
            for i, w, h in zip(aset.items.id, aset.items.width, aset.items.height, strict=True)
        }
        wanted = {}
        for entry in sample:
            frame = int(entry["item"])
            w, h = size.get(frame, (1, 1))
            key = f"{AUDIT}:{frame}"
            wanted[key] = {
                "frame": frame,
                "position": [0.0, 0.0, float(max(w, 1)), float(max(h, 1))],
                "message": f"labelgate audit sample: please review frame {frame} "
                f"({entry.get('name', '')}) before release. {marker(key)}",
            }
        with connect() as source:
            counts = push_issues(source, target, wanted, scope=AUDIT)
        return {"system": "cvat", "job": target, **counts}


ADAPTER = CvatAdapter()
