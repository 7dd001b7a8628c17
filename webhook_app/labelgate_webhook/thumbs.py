"""Frame images for the conflict viewer: where they come from, and a bounded disk cache.

Images reach the browser only through labelgate. A :class:`LocalImages` folder (``serve
--images DIR`` / ``LABELGATE_IMAGES_DIR``) is looked up by item name; each image is turned
into a JPEG thumbnail at most :data:`THUMB_WIDTH` px wide and cached under
``LABELGATE_HOME/thumbs`` (``LABELGATE_THUMB_CACHE_BYTES``, least recently used files evicted
first once the total passes the limit).
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from labelgate.errors import NotFound
from labelgate.reporting.images import find_image

THUMB_WIDTH = 1280


class LocalImages:
    """Images of an export in a folder, found by item name (then by its base name)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def key(self, name: str) -> str:
        return f"local:{self.root}:{name}"

    def read(self, name: str) -> bytes:
        """The image bytes of item ``name``.

        Raises:
            NotFound: no such file inside the folder (names leaving it are refused).
        """
        path = find_image(self.root, name)
        if path is not None:
            return path.read_bytes()
        raise NotFound(f"no image for item {name[:200]!r} in the images folder")


def thumbnail(data: bytes, width: int = THUMB_WIDTH) -> bytes:
    """A JPEG no wider than ``width`` (smaller images keep their size).

    Raises:
        NotFound: the bytes are not an image Pillow can read.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("RGB")
            if img.width > width:
                img = img.resize((width, max(1, round(img.height * width / img.width))))
            out = io.BytesIO()
            img.save(out, "JPEG", quality=85)
    except (UnidentifiedImageError, OSError) as exc:
        raise NotFound(f"the frame image cannot be read: {exc}") from None
    return out.getvalue()


class ThumbCache:
    """Thumbnails on disk, at most ``max_bytes`` in total (LRU by file access time)."""

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._tick = 0

    def _path(self, key: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode()).hexdigest() + ".jpg")

    def get(self, key: str, produce: Callable[[], bytes]) -> bytes:
        """The cached thumbnail of ``key``, made by ``produce()`` on a miss."""
        path = self._path(key)
        with self._lock:
            if path.is_file():
                self._touch(path)
                return path.read_bytes()
        data = thumbnail(produce())
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            self._touch(path)
            self._evict()
        return data

    def _touch(self, path: Path) -> None:
        # mtime is the recency (atime is often off); strictly increasing, so order is exact.
        self._tick = max(time.time_ns(), self._tick + 1)
        os.utime(path, ns=(self._tick, self._tick))

    def files(self) -> list[Path]:
        """Cached files, least recently used first."""
        found = [p for p in self.folder.glob("*.jpg") if p.is_file()]
        return sorted(found, key=lambda p: p.stat().st_mtime_ns)

    def _evict(self) -> None:
        files = self.files()
        total = sum(p.stat().st_size for p in files)
        for p in files:
            if total <= self.max_bytes:
                break
            total -= p.stat().st_size
            p.unlink(missing_ok=True)
