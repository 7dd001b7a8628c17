"""Which CVAT a server is: its API version and the quality semantics that go with it.

The versions are the first SDK/API releases with each change (see
``docs/semantics.md`` and the reference note on current CVAT): quality requirements replaced
the flat QualitySettings in 2.74.0, consensus ``quorum`` went away in 2.56.0, audio
``intervals`` arrived in 2.67.0 and the ``consensus_replica`` job type became ``replica`` in
2.80.0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from labelgate.errors import ValidationError

#: Flat 2.42-style QualitySettings (one set of thresholds for every annotation type).
LEGACY: Final = "cvat-2.42"
#: Per-type quality requirements (a tree of them per settings row).
REQUIREMENTS: Final = "cvat-requirements"
SEMANTICS = (LEGACY, REQUIREMENTS)

REQUIREMENTS_SINCE = (2, 74, 0)
NO_QUORUM_SINCE = (2, 56, 0)
INTERVALS_SINCE = (2, 67, 0)
REPLICA_RENAMED_SINCE = (2, 80, 0)

#: Job types of consensus replicas: ``replica`` since 2.80, ``consensus_replica`` before.
REPLICA_TYPES = frozenset({"replica", "consensus_replica"})

_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, order=True)
class ServerVersion:
    """A CVAT server API version (``major.minor.patch``; pre-release tags are ignored)."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> ServerVersion:
        """``"2.80.0"`` (also ``"2.42"``, ``"v2.74.1.dev0"``) as a version.

        Raises:
            ValidationError: not a version number.
        """
        match = _VERSION.match(str(text))
        if match is None:
            raise ValidationError(f"CVAT server version {text!r} is not a version number")
        major, minor, patch = match.groups()
        return cls(int(major), int(minor), int(patch or 0))

    def at_least(self, since: tuple[int, int, int]) -> bool:
        return (self.major, self.minor, self.patch) >= since

    @property
    def semantics(self) -> str:
        """``cvat-requirements`` from 2.74 on, ``cvat-2.42`` before."""
        return REQUIREMENTS if self.at_least(REQUIREMENTS_SINCE) else LEGACY

    @property
    def has_quorum(self) -> bool:
        """Consensus settings still carry ``quorum`` (removed in 2.56)."""
        return not self.at_least(NO_QUORUM_SINCE)

    @property
    def replica_type(self) -> str:
        """The job type this server gives consensus replicas."""
        return "replica" if self.at_least(REPLICA_RENAMED_SINCE) else "consensus_replica"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def detected_semantics(version: str) -> str:
    """The quality semantics of a server reporting ``version`` (see :class:`ServerVersion`).

    Raises:
        ValidationError: not a version number.
    """
    return ServerVersion.parse(version).semantics


def check_quorum(version: ServerVersion, quorum: float | None) -> None:
    """Refuse a consensus ``quorum`` for a server that no longer has one.

    Raises:
        ValidationError: ``quorum`` is set and the server is 2.56 or newer.
    """
    if quorum is not None and not version.has_quorum:
        raise ValidationError(
            f"--quorum: CVAT {version} has no consensus quorum (CVAT removed it in 2.56); drop "
            "the option (labelgate merges with a majority quorum of 0.5)"
        )
