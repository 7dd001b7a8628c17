"""A webhook event, parsed: what to re-score, and the field checks every parser shares.

Each adapter owns its system's parser (``labelgate_cvat.events.parse_event``,
``labelgate_labelstudio.webhooks.parse_event``) and the event list it subscribes to; the
webhook app only verifies, parses and queues. A validly signed body can still be malformed (a
sender bug, a proxy, a hostile holder of the secret): each field a parser uses is checked for
its type and id range, and a bad one is a :class:`~labelgate.errors.FormatError` (400) naming
the field, so nothing malformed reaches the queue or a worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from labelgate.errors import FormatError
from labelgate.run_sources import Target

#: Largest id accepted: CVAT and Label Studio ids are positive 32-bit database integers.
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class Event:
    """A parsed webhook: ``target`` to re-score, or ``ignored`` with its reason.

    ``status`` is ``"rescore"``, ``"ignored"`` or ``"pong"`` (CVAT's ping).
    """

    status: str
    name: str
    target: Target | None = None
    delivery: str | None = None
    reason: str | None = None

    @property
    def key(self) -> str | None:
        """The queue's target key ``<kind>:<id>`` (``job:5``, ``project:7``)."""
        return None if self.target is None else f"{self.target.kind}:{self.target.id}"


def object_field(data: Mapping[str, Any], field: str, where: str) -> dict[str, Any]:
    """``data[field]`` as a JSON object ({} when absent).

    Raises:
        FormatError: present but not an object.
    """
    value = data.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FormatError(
            f"{where}: field {field!r} must be a JSON object, got {type(value).__name__}"
        )
    return value


def text_field(data: Mapping[str, Any], field: str, where: str) -> str:
    """``data[field]`` as a string ("" when absent).

    Raises:
        FormatError: present but not a string.
    """
    value = data.get(field, "")
    if not isinstance(value, str):
        raise FormatError(f"{where}: field {field!r} must be a string, got {type(value).__name__}")
    return value


def id_value(value: Any, field: str, where: str) -> int:
    """``value`` as a database id.

    Raises:
        FormatError: not an integer from 1 to :data:`MAX_ID`.
    """
    # bool is an int in Python; JSON true is no id.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise FormatError(
            f"{where}: {field} must be an integer from 1 to {MAX_ID}, got {value!r}"[:300]
        )
    return value
