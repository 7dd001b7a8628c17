"""Which CVAT scoring an offline command runs: ``--semantics``, else the settings file.

Offline there is no server version to read, so the configuration decides: ``[[requirement]]``
tables select CVAT 2.74+'s requirement mode, flat ``[quality]`` fields (or no file) CVAT 2.42's.
The flag overrides either way.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from labelgate.config import Config
from labelgate.engine.requirements import RequirementTree, Semantics, tree_for
from labelgate.engine.settings import QualitySettings
from labelgate.errors import DataWarning, SettingsError


@dataclass(frozen=True)
class SemanticsChoice:
    """The semantics a command runs with.

    Attributes:
        semantics: ``cvat-2.42`` or ``cvat-requirements``.
        tree: the requirement tree to score (None in 2.42 mode, whose reports stay as before).
        explicit: ``--semantics`` was given.
    """

    semantics: Semantics
    tree: RequirementTree | None
    explicit: bool

    @property
    def requirements(self) -> bool:
        return self.tree is not None

    def record(self) -> dict[str, Any]:
        """The ``semantics`` key outputs carry: always in requirement mode, and in 2.42 mode
        when the flag asked for it (an unchanged script keeps its JSON byte for byte)."""
        return {"semantics": self.semantics} if self.requirements or self.explicit else {}


def choose_semantics(
    flag: str | None, cfg: Config, settings: QualitySettings | None = None
) -> SemanticsChoice:
    """The semantics of an offline run.

    Args:
        flag: ``--semantics`` (None: the settings file decides).
        cfg: the loaded configuration (its ``requirements`` are the ``[[requirement]]`` tables).
        settings: the flat settings, the base of fields requirements do not carry.

    Returns:
        The choice. ``--semantics cvat-requirements`` without tables enables every base
        requirement with CVAT's stock defaults and warns (:class:`DataWarning`);
        ``--semantics cvat-2.42`` with tables warns that they are not used.

    Raises:
        SettingsError: an unknown semantics, or bad ``[[requirement]]`` tables (named by
            file, table and key).
    """
    source = str(cfg.path) if cfg.path else "requirements"
    chosen = flag or ("cvat-requirements" if cfg.requirements else "cvat-2.42")
    if chosen not in ("cvat-2.42", "cvat-requirements"):
        raise SettingsError(f"--semantics {chosen!r}; expected cvat-2.42 or cvat-requirements")
    if chosen == "cvat-2.42":
        if cfg.requirements:
            warnings.warn(
                f"{source}: {len(cfg.requirements)} [[requirement]] table(s) not used: "
                "--semantics cvat-2.42 scores with the flat [quality] settings",
                DataWarning,
                stacklevel=2,
            )
        return SemanticsChoice("cvat-2.42", None, flag is not None)
    tree = tree_for(
        "cvat-requirements", settings=settings, tables=cfg.requirements or None, source=source
    )
    return SemanticsChoice("cvat-requirements", tree, flag is not None)
