"""One configuration: a TOML file, ``LABELGATE_*`` variables and flags, for every entry point.

One file may hold::

    store_url = "sqlite:///labelgate.db"   # a key of [quality], [gate] or [server] may sit on top

    [quality]            # CVAT 2.42's flat settings (labelgate.engine.settings.QualitySettings)
    iou_threshold = 0.5
    # ...or [[requirement]] tables instead of [quality] (carried raw, for the requirement tree)

    [gate]               # the release gate (labelgate.decisions.gate.GatePolicy)
    min_agreement = 0.75
    [gate.audit]
    size = 20

    [server]             # the web app, worker and re-score jobs (ServerSettings); alias [labelgate]
    debounce_seconds = 10

Precedence, later wins: the source's stored settings (CVAT's, for [quality] only), the file,
``LABELGATE_<FIELD>`` variables, flags. Every value is coerced by its field's type
(:mod:`labelgate.config_fields`); every error reads ``<file>: [<section>] <key>: <problem>``
and is a :class:`~labelgate.errors.SettingsError` (exit 2). Secret values are never echoed.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelgate.config_fields import Entry, apply, entries_of, env_entries, field_names
from labelgate.config_server import ServerSettings
from labelgate.decisions.gate import GatePolicy
from labelgate.engine.settings import QualitySettings
from labelgate.errors import SettingsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: The variable naming the configuration file when no path is given.
CONFIG_VARIABLE = "LABELGATE_CONFIG"
#: Older table names read as the current ones.
ALIASES = {"labelgate": "server"}
_CLASSES: dict[str, type] = {
    "quality": QualitySettings,
    "gate": GatePolicy,
    "server": ServerSettings,
}
#: Which section owns a field name (the names are disjoint; a test checks it).
OWNER = {name: section for section, cls in _CLASSES.items() for name in field_names(cls)}
_KNOWN = "known: tables [quality], [[requirement]], [gate], [server] (or [labelgate]), or a key of one of them"


@dataclass(frozen=True)
class Config:
    """The configuration of one run, every layer but the source's stored settings applied.

    Attributes:
        path: the file read, if any.
        quality: the ``[quality]`` values of the file, the environment and the flags, in order
            (checked); :meth:`settings` applies them over the source's stored settings.
        requirements: the raw ``[[requirement]]`` tables (the requirement tree reads them).
        gate: the release gate, or None when nothing configures one.
        server: the web app's, worker's and re-score jobs' settings.
    """

    path: Path | None = None
    quality: tuple[Entry, ...] = ()
    requirements: tuple[Mapping[str, Any], ...] = ()
    gate: GatePolicy | None = None
    server: ServerSettings = dataclasses.field(default_factory=ServerSettings)

    def settings(
        self, stored: Mapping[str, Any] | None = None, *, base: QualitySettings | None = None
    ) -> QualitySettings:
        """The quality settings: ``base`` (default: the source's ``stored`` settings, e.g.
        CVAT's ``/api/quality/settings`` JSON, else CVAT's defaults), then this configuration.

        Raises:
            SettingsError: a stored value is invalid.
        """
        start = base or (QualitySettings.from_cvat(stored) if stored else QualitySettings())
        return apply(start, self.quality, section="quality")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read settings ({exc})") from None
    try:
        data: dict[str, Any] = tomllib.loads(text)  # Any when typed through the tomli fallback
        return data
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: cannot read settings: not valid TOML ({exc})") from None


@dataclass
class _Parts:
    """One layer: entries per section, raw requirement tables, whether it configures a gate."""

    entries: dict[str, list[Entry]]
    requirements: list[Any] = dataclasses.field(default_factory=list)
    has_gate: bool = False


def _empty() -> dict[str, list[Entry]]:
    return {name: [] for name in _CLASSES}


def _sections(data: Mapping[str, Any], where: str) -> _Parts:
    """One file's contents as a layer."""
    entries = _empty()
    requirements: list[Any] = []
    gate_table = False
    for key, value in data.items():
        section = ALIASES.get(key, key)
        if section in _CLASSES:
            if not isinstance(value, Mapping):
                raise SettingsError(f"{where}: [{key}]: expected a table, got {value!r}")
            if section == "gate":
                gate_table = True
                entries["gate"] += GatePolicy.entries(value, where)
            else:
                entries[section] += entries_of(value, where, key)
        elif key == "requirement":
            if not isinstance(value, list) or not all(isinstance(t, Mapping) for t in value):
                raise SettingsError(f"{where}: [[requirement]]: expected an array of tables")
            requirements = value
        elif key in OWNER and not isinstance(value, Mapping):
            entries[OWNER[key]].append(Entry(key, value, f"{where}: {key}"))
        else:
            raise SettingsError(f"{where}: {key}: unknown key; {_KNOWN}")
    if requirements and entries["quality"]:
        raise SettingsError(
            f"{where}: [quality] and [[requirement]]: give one or the other (requirements "
            "replace CVAT 2.42's flat settings)"
        )
    return _Parts(entries, requirements, gate_table or bool(entries["gate"]))


def _build(path: Path | None, layers: list[_Parts]) -> Config:
    """Apply the layers over the defaults, checking every value."""
    quality = tuple(e for layer in layers for e in layer.entries["quality"])
    apply(QualitySettings(), quality, section="quality")  # fail now, not at the first pull
    gate_entries = [e for layer in layers for e in layer.entries["gate"]]
    server_entries = [e for layer in layers for e in layer.entries["server"]]
    gate = apply(GatePolicy(), gate_entries, section="gate")
    return Config(
        path=path,
        quality=quality,
        requirements=tuple(t for layer in layers for t in layer.requirements),
        # An empty [gate] table asks for the default policy; no table and no value, for none.
        gate=gate if any(layer.has_gate for layer in layers) else None,
        server=apply(ServerSettings(), server_entries, section="server"),
    )


def read_file(path: str | Path) -> Config:
    """The configuration of one file alone (no environment, no flags).

    Raises:
        SettingsError: missing or unreadable file, unknown key, bad value.
    """
    p = Path(path)
    return _build(p, [_sections(_read_toml(p), str(p))])


def _flags(flags: Mapping[str, Any], where: str, text: bool) -> _Parts:
    """Flag values (field name → value; None = not given) as a layer.

    Raises:
        SettingsError: a name no section has.
    """
    out = _empty()
    for key, value in flags.items():
        if key not in OWNER:
            raise SettingsError(f"{where}: {key}: unknown setting; {_KNOWN}")
        if value is not None:
            out[OWNER[key]].append(Entry(key, value, f"{where}: {key}", text=text))
    return _Parts(out, has_gate=bool(out["gate"]))


def _environment(env: Mapping[str, str]) -> _Parts:
    out = {name: env_entries(cls, env) for name, cls in _CLASSES.items()}
    return _Parts(out, has_gate=bool(out["gate"]))


def load(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    flags_source: str = "command line",
    flags_text: bool = False,
) -> Config:
    """The configuration: the file (``path``, else ``LABELGATE_CONFIG``), then the
    ``LABELGATE_<FIELD>`` variables, then ``flags`` (field name → value; None = not given).

    Args:
        path: the TOML file; None reads the one ``LABELGATE_CONFIG`` names, if any.
        environ: the environment (default ``os.environ``).
        flags: values given on the command line (or to ``create_app``), by field name.
        flags_source: how messages name the flags' origin.
        flags_text: the flags may be text to parse ("true", "30"), as a Flask mapping may hold.

    Raises:
        SettingsError: ``<file>: [<section>] <key>: <problem>`` for any layer.
    """
    env = os.environ if environ is None else environ
    where = path or env.get(CONFIG_VARIABLE) or None
    layers = [_sections(_read_toml(Path(where)), str(where))] if where else []
    layers += [_environment(env), _flags(flags or {}, flags_source, flags_text)]
    return _build(Path(where) if where else None, layers)


def load_for_cli(
    settings_path: str | Path | None,
    policy_path: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Config:
    """The configuration of a CLI command with ``--settings FILE`` and ``--policy FILE``.

    Both options take the same file format; the policy file's ``[gate]`` replaces the settings
    file's (a policy file without one gives the default policy, as before).

    Raises:
        SettingsError: as :func:`load`.
    """
    cfg = load(settings_path, flags=flags)
    if policy_path is None:
        return cfg
    if settings_path is None or Path(policy_path) != Path(settings_path):
        gate_flags = {k: v for k, v in (flags or {}).items() if OWNER.get(k) == "gate"}
        cfg = dataclasses.replace(cfg, gate=load(policy_path, flags=gate_flags).gate)
    return dataclasses.replace(cfg, gate=cfg.gate or GatePolicy())
