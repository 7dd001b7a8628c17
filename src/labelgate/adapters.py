"""Adapter registry: built-in and third-party adapters found through entry points.

An adapter package exposes an ``ADAPTER`` object registered in the ``labelgate.adapters``
entry-point group. It must provide:

- ``name``: short system name (``"cvat"``, ``"labelstudio"``);
- ``sniff(path) -> bool``: whether a file looks like this system's export;
- ``read_file(path, **options) -> AnnotationSet``: read an export file. Every annotator's
  annotations come back in one set, told apart by ``Annotations.annotator``; ground-truth
  annotations use the annotator name ``"ground_truth"`` and predictions ``"prediction:<model>"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from labelgate.errors import FormatError, MissingDependency, ValidationError
from labelgate.model import AnnotationSet

GROUP = "labelgate.adapters"
GT_ANNOTATOR = "ground_truth"
PREDICTION_PREFIX = "prediction:"
#: How a reader treats several ground-truth annotations on one item: ``per-author`` (none of
#: them is ground truth; each is scored as its author's), ``first`` (the earliest is the ground
#: truth, the others count as their authors'), ``merge`` (all of them are ground truth).
GT_POLICIES = ("per-author", "first", "merge")


@runtime_checkable
class Adapter(Protocol):
    name: str

    def sniff(self, path: Path) -> bool: ...

    def read_file(self, path: Path, **options: Any) -> AnnotationSet: ...


def discover() -> dict[str, Adapter]:
    """All registered adapters by name.

    Raises:
        MissingDependency: a registered adapter cannot be imported.
    """
    found: dict[str, Adapter] = {}
    for ep in entry_points(group=GROUP):
        try:
            adapter = ep.load()
        except ImportError as exc:
            raise MissingDependency(f"adapter {ep.name!r} cannot be imported: {exc}") from exc
        found[ep.name] = adapter
    return found


def _candidates(path: Path) -> Iterator[Adapter]:
    for adapter in discover().values():
        if adapter.sniff(path):
            yield adapter


def read_any(path: str | Path, **options: Any) -> AnnotationSet:
    """Read an annotation file of any supported format.

    Supports every adapter's export files, COCO instances JSON and labelgate's own JSON.

    Raises:
        FormatError: the file does not exist or no reader recognises it.
    """
    from labelgate.io.coco import looks_like_coco, read_coco

    p = Path(path)
    if p.is_dir():
        raise FormatError(f"{p}: is a directory, expected an annotation file")
    if not p.is_file():
        raise FormatError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise FormatError(f"{p}: empty file, expected an annotation file")
    try:
        for adapter in _candidates(p):
            return adapter.read_file(p, **options)
        if looks_like_coco(p):
            return read_coco(p)
        if p.suffix.lower() == ".json":
            return AnnotationSet.load_json(p)
    except FormatError:
        raise
    except ValidationError as exc:
        # A check of the common model (e.g. Items, AnnotationSet) that a reader did not word:
        # still name the file.
        raise FormatError(f"{p}: {exc}") from None
    raise FormatError(
        f"{p}: not a recognised annotation file (expected CVAT XML, Label Studio JSON export, "
        "COCO instances JSON or labelgate JSON)"
    )
