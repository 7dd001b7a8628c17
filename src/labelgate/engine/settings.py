"""Quality settings: CVAT 2.42's QualitySettings fields and defaults, with layered sources.

Precedence (later wins): CVAT's stored settings → TOML file → ``LABELGATE_*`` environment
variables → explicit overrides (CLI flags); :mod:`labelgate.config` layers them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelgate.config_fields import apply, check, entries_of, env_entries, field_names, setting

DEFAULT_JOB_FILTER = '{"==":[{"var":"type"},"annotation"]}'
#: The configuration file's table of these settings.
SECTION = "quality"


@dataclass(frozen=True)
class QualitySettings:
    """CVAT 2.42 quality settings (same names, same defaults). See docs/semantics.md.

    Constraints are declared per field; :mod:`labelgate.config_fields` coerces and checks them.
    """

    iou_threshold: float = setting(0.4, low=0.0, high=1.0)
    low_overlap_threshold: float = setting(0.8, low=0.0, high=1.0)
    oks_sigma: float = setting(0.09, low=0.0, high=1.0)
    point_size_base: str = setting("group_bbox_size", choices=("image_size", "group_bbox_size"))
    line_thickness: float = setting(0.01, low=0.0, high=1.0)
    compare_line_orientation: bool = True
    line_orientation_threshold: float = setting(0.1, low=0.0, high=1.0)
    compare_groups: bool = True
    group_match_threshold: float = setting(0.5, low=0.0, high=1.0)
    check_covered_annotations: bool = True
    object_visibility_threshold: float = setting(0.05, low=0.0, high=1.0)
    panoptic_comparison: bool = True
    compare_attributes: bool = True
    empty_is_annotated: bool = False
    #: labelgate's own: polygon, ellipse and rotated-box IoU on exact (shapely) geometry
    #: instead of CVAT's pycocotools rasters at image resolution.
    exact_geometry: bool = False
    target_metric: str = setting("accuracy", choices=("accuracy", "precision", "recall"))
    target_metric_threshold: float = setting(0.7, low=0.0, high=1.0)
    max_validations_per_job: int = setting(0, low=0)
    job_filter: str = setting(DEFAULT_JOB_FILTER, json_text=True, max_length=1024)
    inherit: bool = True

    def __post_init__(self) -> None:
        check(self, SECTION)

    @classmethod
    def field_names(cls) -> list[str]:
        return list(field_names(cls))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "settings") -> QualitySettings:
        """Build from a mapping of field names; unknown keys are an error.

        Raises:
            SettingsError: unknown key or bad value (the message names ``source`` and the key).
        """
        return cls().merged(source=source, **dict(data))

    def merged(self, *, source: str = "overrides", **changes: Any) -> QualitySettings:
        """A copy with ``changes`` applied (``None`` values are ignored).

        Raises:
            SettingsError: unknown key or bad value.
        """
        return apply(self, entries_of(changes, source, SECTION), section=SECTION)

    @classmethod
    def from_toml(cls, path: str | Path, base: QualitySettings | None = None) -> QualitySettings:
        """The ``[quality]`` section of a configuration file (:mod:`labelgate.config`).

        Raises:
            SettingsError: unreadable file, unknown key or bad value.
        """
        from labelgate.config import read_file

        return read_file(path).settings(base=base)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, base: QualitySettings | None = None
    ) -> QualitySettings:
        """Apply ``LABELGATE_<FIELD>`` variables (e.g. ``LABELGATE_IOU_THRESHOLD=0.5``)."""
        env = os.environ if environ is None else environ
        return apply(base or cls(), env_entries(cls, env), section=SECTION)

    @classmethod
    def from_cvat(cls, payload: Mapping[str, Any]) -> QualitySettings:
        """From CVAT's ``/api/quality/settings`` JSON (extra server fields are ignored)."""
        names = set(cls.field_names())
        return cls().merged(
            source="CVAT quality settings", **{k: v for k, v in payload.items() if k in names}
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_settings(
    cvat: Mapping[str, Any] | None = None,
    toml_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
) -> QualitySettings:
    """Layer the sources in order of precedence: CVAT → file → environment → CLI.

    A thin front of :func:`labelgate.config.load` (which see) for the quality settings alone.

    Raises:
        SettingsError: any layer holds an unknown key or a bad value.
    """
    from labelgate.config import load

    return load(toml_path, environ=environ, flags=cli).settings(cvat)
