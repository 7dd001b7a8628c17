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


ADAPTER = CvatAdapter()
