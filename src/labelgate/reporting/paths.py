"""Served reports without server file paths.

A stored report remembers the files it read (``source.meta.file``, ``data_errors[].file`` and
messages that name the file). Served over HTTP, those paths would describe the server's disk,
so ``/reports/<id>`` and its page show file names only unless ``SHOW_FILE_PATHS`` is set.
"""

from __future__ import annotations

import ntpath
import posixpath
from typing import Any

#: Keys whose string values are file paths.
PATH_KEYS = frozenset({"file", "path"})


def _basename(path: str) -> str:
    return ntpath.basename(posixpath.basename(path)) or path


def _collect(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in PATH_KEYS and isinstance(value, str) and _basename(value) != value:
                found.add(value)
            else:
                _collect(value, found)
    elif isinstance(node, list):
        for value in node:
            _collect(value, found)


def _replace(node: Any, pairs: list[tuple[str, str]]) -> Any:
    if isinstance(node, dict):
        return {key: _replace(value, pairs) for key, value in node.items()}
    if isinstance(node, list):
        return [_replace(value, pairs) for value in node]
    if isinstance(node, str):
        for path, name in pairs:
            if path in node:
                node = node.replace(path, name)
        return node
    return node


def strip_paths(report: Any) -> Any:
    """A copy of ``report`` in which every recorded file path is cut to its file name,
    wherever it appears (path fields and messages alike).

    Args:
        report: a JSON-ready report (dicts, lists, strings, numbers).
    """
    found: set[str] = set()
    _collect(report, found)
    # Longest first, so a path is not half-replaced by a shorter one it contains.
    pairs = [(p, _basename(p)) for p in sorted(found, key=len, reverse=True)]
    return _replace(report, pairs) if pairs else report
