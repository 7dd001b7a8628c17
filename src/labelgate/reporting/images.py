"""Frame images of file sources: one lookup by item name in a folder (``--images DIR``).

Used by the static report's gallery (embedded as data URIs) and by the conflict viewer of
``labelgate serve``.
"""

from __future__ import annotations

import base64
import mimetypes
import os
from pathlib import Path

#: Images larger than this are not embedded in the static report (its frame is drawn blank).
MAX_EMBED_BYTES = 4 << 20


def find_image(root: str | os.PathLike[str], name: str) -> Path | None:
    """The file of item ``name`` in ``root`` (by its relative path, then its base name).

    Names that would leave ``root`` (``../``, absolute paths) find nothing.
    """
    base = Path(root).resolve()
    for candidate in (name, Path(name).name):
        if not candidate:
            continue
        path = (base / candidate).resolve()
        if path.is_relative_to(base) and path.is_file():
            return path
    return None


def data_uri(path: Path, limit: int = MAX_EMBED_BYTES) -> str | None:
    """``data:`` URI of an image file, or None when it is over ``limit`` bytes or not an image."""
    kind = mimetypes.guess_type(path.name)[0]
    if not kind or not kind.startswith("image/") or path.stat().st_size > limit:
        return None
    return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")
