"""JSON text in pieces: big documents written in chunks, never held as one string.

The text is exactly ``json.dumps(obj, default=default)`` (same separators, key order, number
forms): small subtrees go through the stdlib's C encoder whole, and only the containers around
big ones are walked here. Objects with an ``iter_json()`` method (a lazy
:class:`~labelgate.engine.report.Report`) contribute their own pieces.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

#: Containers this deep or with more entries than :data:`_BIG` are walked; others are encoded
#: whole (a conflict list or a frame_results mapping is big; one frame's record is not).
_WALK_DEPTH = 4
_BIG = 256
#: Entries of a big list encoded per C-encoder call.
_LIST_CHUNK = 2048
#: Characters gathered before each write.
_WRITE_CHUNK = 1 << 20


@runtime_checkable
class JsonStreamable(Protocol):
    """An object that writes its own JSON text in pieces."""

    def iter_json(self) -> Iterator[str]:
        """The object's JSON text, in pieces."""
        ...


@runtime_checkable
class JsonBytesStreamable(Protocol):
    """An object that writes its own JSON document as UTF-8 pieces (each whole characters)."""

    def iter_json_bytes(self) -> Iterator[bytes | memoryview]:
        """The object's JSON text as UTF-8, in pieces."""
        ...


def key_text(key: Any) -> str:
    """A mapping key as ``json.dumps`` writes it (non-string keys become strings)."""
    return json.dumps({key: 0})[1:-4]


def iter_json(
    obj: Any, default: Callable[[Any], Any] | None = None, _depth: int = 0
) -> Iterator[str]:
    """Pieces of ``json.dumps(obj, default=default)``.

    Args:
        obj: a JSON-able value; :class:`JsonStreamable` values anywhere in the walked
            containers stream themselves.
        default: as ``json.dumps``'s, for values it cannot encode.

    Raises:
        TypeError, ValueError: as ``json.dumps`` (unencodable value, circular reference).
    """
    if isinstance(obj, JsonStreamable):
        yield from obj.iter_json()
    elif isinstance(obj, dict) and obj and (_depth < _WALK_DEPTH or len(obj) > _BIG):
        sep = "{"
        for key, value in obj.items():
            yield f"{sep}{key_text(key)}: "
            yield from iter_json(value, default, _depth + 1)
            sep = ", "
        yield "}"
    elif isinstance(obj, list | tuple) and len(obj) > _BIG:
        sep = "["
        for at in range(0, len(obj), _LIST_CHUNK):
            yield sep + json.dumps(obj[at : at + _LIST_CHUNK], default=default)[1:-1]
            sep = ", "
        yield "]"
    else:
        yield json.dumps(obj, default=default)


def write_chunks(fh: IO[str], pieces: Iterable[str]) -> None:
    """Write ``pieces`` to ``fh``, gathered into writes of about :data:`_WRITE_CHUNK` chars."""
    buf: list[str] = []
    size = 0
    for piece in pieces:
        buf.append(piece)
        size += len(piece)
        if size >= _WRITE_CHUNK:
            fh.write("".join(buf))
            buf, size = [], 0
    if buf:
        fh.write("".join(buf))


def dump_json_file(path: str | Path, obj: Any, default: Callable[[Any], Any] | None = None) -> None:
    """Write ``obj`` as one-line JSON to ``path`` (UTF-8), in chunks; a
    :class:`JsonBytesStreamable` writes its own bytes.

    Raises:
        OSError: the file cannot be written.
    """
    if isinstance(obj, JsonBytesStreamable):
        with open(path, "wb") as bfh:
            for piece in obj.iter_json_bytes():
                bfh.write(piece)
        return
    with open(path, "w", encoding="utf-8") as fh:
        write_chunks(fh, iter_json(obj, default))
