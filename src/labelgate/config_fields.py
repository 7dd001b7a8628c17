"""One coercion and one check for every settings dataclass, driven by the field's type.

A settings dataclass declares its fields with :func:`setting` (bounds, choices, secret); a value
from a TOML file, an environment variable, a flag or a stored server payload goes through
:func:`apply`, which coerces it by the field's annotation (bool, int, float, str, optional)
and checks it. Every message reads ``<where>: <problem>``, where ``where`` names the file and
key (``q.toml: [quality] iou_threshold``) or the variable (``environment: LABELGATE_X``).
Imports nothing of labelgate but its errors, so the settings classes can import it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import Field
from typing import Any, TypeVar

from labelgate.errors import SettingsError

T = TypeVar("T")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One value on its way into a settings object."""

    name: str  #: the field
    value: Any  #: as given (a TOML value, an environment string, a flag value)
    where: str  #: where it came from, for messages: ``q.toml: [quality] iou_threshold``
    #: the value is text to parse (an environment variable); a typed source (TOML, JSON,
    #: flags) must give a bool as a bool and a number as a number
    text: bool = False


def setting(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] = (),
    secret: bool = False,
    json_text: bool = False,
    max_length: int | None = None,
) -> Any:
    """A dataclass field with the constraints :func:`apply` and :func:`check` enforce.

    Args:
        default: the default value.
        low, high: inclusive bounds of a number.
        choices: the allowed strings.
        secret: never echo the value in a message.
        json_text: the string must parse as JSON (empty allowed).
        max_length: longest allowed string.
    """
    meta = {
        "low": low,
        "high": high,
        "choices": choices,
        "secret": secret,
        "json_text": json_text,
        "max_length": max_length,
    }
    return dataclasses.field(default=default, metadata=meta)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    # Resolved once per class: the annotations are strings (``from __future__``).
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _kind(hint: Any) -> tuple[type, bool]:
    """``(base type, optional)`` of an annotation such as ``float | None``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return hint, False


def field_names(cls: type) -> tuple[str, ...]:
    """The settings fields of a dataclass, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls))


def _shown(f: Field[Any], value: Any) -> str:
    return "" if f.metadata.get("secret") else f", got {value!r}"


def _problem(f: Field[Any], value: Any, given: Any) -> str | None:
    """What is wrong with the coerced ``value`` (shown as ``given``), or None."""
    meta = f.metadata
    if value is None:
        return None
    low, high = meta.get("low"), meta.get("high")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            noun = f"a number >= {low:g}" if low is not None and high is None else "a number"
            return f"expected {noun}, got {given!r}"
        if low is not None and high is not None and not low <= value <= high:
            return f"{given!r} is out of range [{low:g}, {high:g}]"
        if low is not None and value < low:
            noun = "an integer" if isinstance(value, int) else "a number"
            return f"expected {noun} >= {low:g}{_shown(f, given)}"
    if isinstance(value, str):
        choices = meta.get("choices") or ()
        if choices and value not in choices:
            return f"expected one of {', '.join(choices)}{_shown(f, given)}"
        if meta.get("max_length") is not None and len(value) > meta["max_length"]:
            return f"expected at most {meta['max_length']} characters"
        if meta.get("json_text") and value:
            try:
                json.loads(value)
            except json.JSONDecodeError as exc:
                return f"not valid JSON ({exc})"
    return None


def coerce(f: Field[Any], hint: Any, value: Any, where: str, *, text: bool = False) -> Any:
    """``value`` as the field's type, checked.

    Raises:
        SettingsError: ``<where>: <problem>`` (secrets are not echoed).
    """
    base, optional = _kind(hint)
    if optional and (value is None or (isinstance(value, str) and base is not str and not value)):
        return None
    low, high = f.metadata.get("low"), f.metadata.get("high")
    bound = f" >= {low:g}" if low is not None and high is None else ""
    noun = {bool: "true or false", int: f"an integer{bound}", float: f"a number{bound}"}
    out: Any = value
    problem: str | None = None
    if base in noun and isinstance(value, str) and not text:
        # A typed source (TOML, JSON, flags) gives "yes" or "5" as a string: not a bool/number.
        problem = f"expected {noun[base]}{_shown(f, value)}"
    elif base is bool:
        word = value.strip().lower() if isinstance(value, str) else None
        if isinstance(value, bool):
            out = value
        elif word in _TRUE or word in _FALSE:
            out = word in _TRUE
        else:
            problem = f"expected {noun[bool]}{_shown(f, value)}"
    elif base is int:
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            out = int(value)
        except (TypeError, ValueError, OverflowError):
            problem = f"expected {noun[int]}{_shown(f, value)}"
    elif base is float:
        try:
            if isinstance(value, bool):
                raise ValueError(value)
            out = float(value)
        except (TypeError, ValueError, OverflowError):
            problem = f"expected {noun[float]}{_shown(f, value)}"
    elif base is str:
        if isinstance(value, Mapping):  # CVAT may send a JSON-logic filter as an object
            out = json.dumps(value)
        elif not isinstance(value, str):
            problem = f"expected a string{_shown(f, value)}"
    problem = problem or _problem(f, out, value)
    if problem:
        raise SettingsError(f"{where}: {problem}")
    return out


def apply(obj: T, entries: Iterable[Entry], *, section: str) -> T:
    """A copy of the settings dataclass ``obj`` with ``entries`` coerced and applied in order.

    ``None`` values leave the field as it is (an unset flag).

    Raises:
        SettingsError: an unknown field (naming the known ones) or a bad value.
    """
    cls = type(obj)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = _hints(cls)
    changes: dict[str, Any] = {}
    for e in entries:
        if e.value is None:
            continue
        if e.name not in known:
            raise SettingsError(
                f"{e.where}: unknown key in [{section}]; known: {', '.join(sorted(known))}"
            )
        changes[e.name] = coerce(known[e.name], hints[e.name], e.value, e.where, text=e.text)
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]


def check(obj: Any, section: str) -> None:
    """Check a settings object built directly (its ``__post_init__``); same rules as apply.

    Raises:
        SettingsError: ``[<section>] <field>: <problem>``.
    """
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        coerce(f, hints[f.name], value, f"[{section}] {f.name}")


def env_entries(cls: type, environ: Mapping[str, str], prefix: str = "LABELGATE_") -> list[Entry]:
    """The ``LABELGATE_<FIELD>`` variables of a settings class that are set."""
    return [
        Entry(name, environ[key], f"environment: {key}", text=True)
        for name in field_names(cls)
        if (key := f"{prefix}{name.upper()}") in environ
    ]


def entries_of(
    values: Mapping[str, Any], where: str, section: str, *, bracket: bool = True
) -> list[Entry]:
    """Entries of a mapping read from ``where`` (a file, "command line", ...)."""
    label = f"[{section}] " if bracket else ""
    return [Entry(str(k), v, f"{where}: {label}{k}") for k, v in values.items()]
