"""Quality settings: CVAT 2.42's QualitySettings fields and defaults, with layered sources.

Precedence (later wins): CVAT's stored settings → TOML file → ``LABELGATE_*`` environment
variables → explicit overrides (CLI flags).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from labelgate.errors import SettingsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_JOB_FILTER = '{"==":[{"var":"type"},"annotation"]}'
_UNIT_FIELDS = (
    "iou_threshold",
    "low_overlap_threshold",
    "oks_sigma",
    "line_thickness",
    "line_orientation_threshold",
    "group_match_threshold",
    "object_visibility_threshold",
    "target_metric_threshold",
)
_CHOICES = {
    "point_size_base": ("image_size", "group_bbox_size"),
    "target_metric": ("accuracy", "precision", "recall"),
}


@dataclass(frozen=True)
class QualitySettings:
    """CVAT 2.42 quality settings (same names, same defaults). See docs/semantics.md."""

    iou_threshold: float = 0.4
    low_overlap_threshold: float = 0.8
    oks_sigma: float = 0.09
    point_size_base: str = "group_bbox_size"
    line_thickness: float = 0.01
    compare_line_orientation: bool = True
    line_orientation_threshold: float = 0.1
    compare_groups: bool = True
    group_match_threshold: float = 0.5
    check_covered_annotations: bool = True
    object_visibility_threshold: float = 0.05
    panoptic_comparison: bool = True
    compare_attributes: bool = True
    empty_is_annotated: bool = False
    #: labelgate's own: polygon, ellipse and rotated-box IoU on exact (shapely) geometry
    #: instead of CVAT's pycocotools rasters at image resolution.
    exact_geometry: bool = False
    target_metric: str = "accuracy"
    target_metric_threshold: float = 0.7
    max_validations_per_job: int = 0
    job_filter: str = DEFAULT_JOB_FILTER
    inherit: bool = True

    def __post_init__(self) -> None:
        for name in _UNIT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SettingsError(f"setting {name}: expected a number, got {value!r}")
            if not 0.0 <= float(value) <= 1.0:
                raise SettingsError(f"setting {name}={value!r} is out of range [0, 1]")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise SettingsError(
                    f"setting {name}={getattr(self, name)!r}; expected one of {', '.join(allowed)}"
                )
        m = self.max_validations_per_job
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise SettingsError(f"setting max_validations_per_job={m!r}; expected an integer >= 0")
        if not isinstance(self.job_filter, str) or len(self.job_filter) > 1024:
            raise SettingsError("setting job_filter: expected a JSON-logic string of <= 1024 chars")
        if self.job_filter:
            try:
                json.loads(self.job_filter)
            except json.JSONDecodeError as exc:
                raise SettingsError(f"setting job_filter is not valid JSON ({exc})") from None

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "settings") -> QualitySettings:
        """Build from a mapping of field names; unknown keys are an error.

        Raises:
            SettingsError: unknown key or bad value (the message names ``source``).
        """
        return cls().merged(source=source, **dict(data))

    def merged(self, *, source: str = "overrides", **changes: Any) -> QualitySettings:
        """A copy with ``changes`` applied (``None`` values are ignored).

        Raises:
            SettingsError: unknown key or bad value.
        """
        known = {f.name: f for f in fields(self)}
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if value is None:
                continue
            if key not in known:
                raise SettingsError(
                    f"{source}: unknown setting {key!r}; known: {', '.join(sorted(known))}"
                )
            clean[key] = _coerce(key, value, known[key].type, source)
        try:
            return dataclasses.replace(self, **clean)
        except SettingsError as exc:
            raise SettingsError(f"{source}: {exc}") from None

    @classmethod
    def from_toml(cls, path: str | Path, base: QualitySettings | None = None) -> QualitySettings:
        """Read a TOML file with the fields at top level or under ``[quality]``.

        Raises:
            SettingsError: unreadable file, unknown key or bad value.
        """
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"{p}: cannot read settings ({exc})") from None
        table = data.get("quality", data)
        if not isinstance(table, dict):
            raise SettingsError(f"{p}: quality: expected a table, got {table!r}")
        return (base or cls()).merged(source=str(p), **table)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, base: QualitySettings | None = None
    ) -> QualitySettings:
        """Apply ``LABELGATE_<FIELD>`` variables (e.g. ``LABELGATE_IOU_THRESHOLD=0.5``)."""
        env = os.environ if environ is None else environ
        found = {
            name: env[f"LABELGATE_{name.upper()}"]
            for name in cls.field_names()
            if f"LABELGATE_{name.upper()}" in env
        }
        return (base or cls()).merged(source="environment", **found)

    @classmethod
    def from_cvat(cls, payload: Mapping[str, Any]) -> QualitySettings:
        """From CVAT's ``/api/quality/settings`` JSON (extra server fields are ignored)."""
        names = set(cls.field_names())
        return cls().merged(
            source="CVAT quality settings", **{k: v for k, v in payload.items() if k in names}
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(key: str, value: Any, annotation: Any, source: str) -> Any:
    kind = str(annotation)
    try:
        if kind == "bool":
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return low in ("true", "1", "yes")
            return bool(value)
        if kind == "float":
            return float(value)
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{source}: setting {key}={value!r} is not a valid {kind}") from None
    return value if not isinstance(value, dict) else json.dumps(value)


def resolve_settings(
    cvat: Mapping[str, Any] | None = None,
    toml_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
) -> QualitySettings:
    """Layer the sources in order of precedence: CVAT → TOML → environment → CLI.

    Raises:
        SettingsError: any layer holds an unknown key or a bad value.
    """
    settings = QualitySettings.from_cvat(cvat) if cvat else QualitySettings()
    if toml_path:
        settings = QualitySettings.from_toml(toml_path, base=settings)
    settings = QualitySettings.from_env(environ, base=settings)
    return settings.merged(source="command line", **dict(cli or {}))
