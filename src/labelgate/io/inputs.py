"""Reading untrusted input files and coercing their fields: the one place readers share.

Every reader opens its file through :func:`read_text` or :func:`read_json` and turns numbers
from the file into Python values through :func:`to_int` / :func:`to_float`, so a file that
cannot be read and a field that is not the number it should be give a
:class:`~labelgate.errors.FormatError` / :class:`~labelgate.errors.ValidationError` naming the
file or field, never a Python traceback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import orjson

from labelgate.errors import FormatError, ValidationError

#: Integers stored in the columnar model are int64.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def read_text(path: str | Path, what: str = "file") -> str:
    """The file's text (UTF-8).

    Raises:
        FormatError: missing, a directory, unreadable, not UTF-8 or empty; names the file.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise FormatError(f"{p}: is a directory, expected a {what}") from None
    except OSError as exc:
        raise FormatError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise FormatError(f"{p}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if not text.strip():
        raise FormatError(f"{p}: empty file, expected a {what}")
    return text


def loads_json(body: bytes) -> Any:
    """Parse a JSON body with orjson (2-4x faster than :mod:`json` on bulk payloads).

    orjson is strict: it refuses ``NaN``/``Infinity``, which :mod:`json` (and so servers built
    on it) may write; those bodies are read by :mod:`json` instead, so the converters name the
    bad value rather than refusing the whole answer.

    Raises:
        ValueError: the body is not JSON.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The file's JSON value.

    ``NaN``/``Infinity`` literals are accepted (Python's json does, and readers check every
    number they use); nesting too deep for the parser is refused.

    Raises:
        FormatError: unreadable (see :func:`read_text`), not JSON, or nested too deeply.
    """
    p = Path(path)
    text = read_text(p, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(
            f"{p}: not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
        ) from None
    except RecursionError:
        raise FormatError(f"{p}: JSON nested too deeply to be a {what}") from None
    except ValueError as exc:  # e.g. an integer literal over Python's 4300-digit limit
        raise FormatError(f"{p}: not valid JSON ({exc})") from None


def to_int(value: Any, field: str, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int:
    """An integer field of an input record, in [lo, hi].

    Accepts ints and integral numbers written as text or floats (``"3"``, ``3.0``); refuses
    booleans, fractions, NaN, infinities and values outside the range.

    Raises:
        ValidationError: naming ``field`` and the value.
    """
    if isinstance(value, bool) or value is None:
        raise ValidationError(f"{field}={value!r} is not an integer")
    if isinstance(value, int):
        out = value
    else:
        try:
            out = int(str(value).strip())
        except ValueError:
            try:
                f = float(value)
            except (TypeError, ValueError):
                raise ValidationError(f"{field}={_short(value)} is not an integer") from None
            if not math.isfinite(f) or f != int(f):
                raise ValidationError(f"{field}={_short(value)} is not an integer") from None
            out = int(f)
    if not lo <= out <= hi:
        raise ValidationError(f"{field}={_short(value)} is out of range [{lo}, {hi}]")
    return out


def to_float(value: Any, field: str, *, finite: bool = True) -> float:
    """A number field of an input record; NaN and infinities are refused unless ``finite=False``.

    Raises:
        ValidationError: naming ``field`` and the value.
    """
    if type(value) is float and (not finite or math.isfinite(value)):
        return value  # the common case, decided without the checks below
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        raise ValidationError(f"{field}={_short(value)} is not a number")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{field}={_short(value)} is not a number") from None
    except OverflowError:
        raise ValidationError(f"{field}={_short(value)} is too large") from None
    if finite and not math.isfinite(out):
        raise ValidationError(f"{field}={_short(value)} is not a finite number")
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
