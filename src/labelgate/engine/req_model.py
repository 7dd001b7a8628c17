"""The stored form of a CVAT 2.74+ quality requirement (one node, null = inherited).

Field names, choices and stock defaults are CVAT's (``cvat-quality-current.md`` §2); the tree
and effective values are in :mod:`labelgate.engine.requirements`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from labelgate.engine.annotation_filter import ANNOTATION_TYPES
from labelgate.engine.match_rules import AttributeRule
from labelgate.errors import SettingsError

#: The annotation type of the 2.42 preset: every type together, as CVAT 2.42 scores a job.
ALL_TYPES = "all"
METRIC_NAMES = ("accuracy", "precision", "recall", "jaccard_index", "dice")
#: The 15 target metrics: micro, ``mean_*`` (over labels) and ``label_*`` (worst label).
METRICS = (
    *METRIC_NAMES,
    *(f"mean_{m}" for m in METRIC_NAMES),
    *(f"label_{m}" for m in METRIC_NAMES),
)
COMPARATORS = ("exact", "levenshtein")

#: Inheritable fields and CVAT's stock defaults for a base requirement (§2.3).
DEFAULTS: dict[str, Any] = {
    "metric": "accuracy",
    "required_score": 0.7,
    "iou_threshold": 0.4,
    "point_size": 0.09,
    "point_size_base": "group_bbox_size",
    "line_thickness": 0.01,
    "match_orientation": True,
    "line_orientation_threshold": 0.1,
    "match_groups": True,
    "group_match_threshold": 0.5,
    "check_covered_annotations": True,
    "object_visibility_threshold": 0.05,
    "panoptic_comparison": True,
}
_UNIT = {
    "required_score",
    "iou_threshold",
    "point_size",
    "line_thickness",
    "line_orientation_threshold",
    "group_match_threshold",
    "object_visibility_threshold",
}
_BOOLS = {"match_orientation", "match_groups", "check_covered_annotations", "panoptic_comparison"}
#: Requirement field -> QualitySettings field where the names differ (CVAT's rename map).
SETTINGS_NAMES = {
    "point_size": "oks_sigma",
    "match_orientation": "compare_line_orientation",
    "match_groups": "compare_groups",
}


@dataclass(frozen=True)
class RulePatch:
    """An attribute rule whose null fields are inherited."""

    enabled: bool | None = None
    comparator: str | None = None
    threshold: float | None = None

    def over(self, parent: RulePatch) -> RulePatch:
        """This patch's set fields over ``parent``'s."""
        return RulePatch(
            parent.enabled if self.enabled is None else self.enabled,
            parent.comparator if self.comparator is None else self.comparator,
            parent.threshold if self.threshold is None else self.threshold,
        )

    def resolved(self) -> AttributeRule:
        """Null fields take CVAT's defaults (disabled, exact, 1.0)."""
        return AttributeRule(
            enabled=bool(self.enabled) if self.enabled is not None else False,
            comparator=self.comparator or "exact",  # type: ignore[arg-type]
            threshold=1.0 if self.threshold is None else float(self.threshold),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AttributeComparison:
    """CVAT's ``attribute_comparison``: a default rule and per-attribute rules.

    ``rules`` keys are CVAT AttributeSpec ids (int) or attribute names (str, the TOML form).
    """

    default: RulePatch = field(default_factory=RulePatch)
    rules: Mapping[int | str, RulePatch] = field(default_factory=dict)

    def over(self, parent: AttributeComparison) -> AttributeComparison:
        """Merge into ``parent`` as CVAT's ``merge_attribute_comparison``: the default's set keys
        override the parent's; a rule replaces the parent's rule for the same attribute whole
        (its unset fields then come from the effective default, not from the parent's rule)."""
        return AttributeComparison(
            self.default.over(parent.default), {**parent.rules, **self.rules}
        )

    def may_compare(self) -> bool:
        """Whether any attribute is compared: the default rule or a per-attribute rule is on."""
        return bool(self.default.enabled) or any(
            r.over(self.default).resolved().enabled for r in self.rules.values()
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "default": self.default.to_dict(),
            "rules": [
                {("spec_id" if isinstance(k, int) else "name"): k, **r.to_dict()}
                for k, r in self.rules.items()
            ],
        }


@dataclass(frozen=True)
class Requirement:
    """One requirement node as stored (null = inherited from the parent).

    Attributes:
        name: unique within the tree.
        annotation_type: one of :data:`ANNOTATION_TYPES` on a root; None (inherited) on a child.
        parent: the parent's name, None for a root.
        filter: JSON-logic text over the annotation variables ("" selects all of the type).
        enabled: disabled requirements are not scored and do not count for completion.
        id: CVAT's requirement id, when read from a server.
        sort_order: siblings are ordered by (sort_order, id, position).
    """

    name: str
    annotation_type: str | None = None
    parent: str | None = None
    filter: str = ""
    enabled: bool = True
    metric: str | None = None
    required_score: float | None = None
    iou_threshold: float | None = None
    point_size: float | None = None
    point_size_base: str | None = None
    line_thickness: float | None = None
    match_orientation: bool | None = None
    line_orientation_threshold: float | None = None
    match_groups: bool | None = None
    group_match_threshold: float | None = None
    check_covered_annotations: bool | None = None
    object_visibility_threshold: float | None = None
    panoptic_comparison: bool | None = None
    attribute_comparison: AttributeComparison | None = None
    id: int | None = None
    sort_order: int = 0

    def __post_init__(self) -> None:
        what = f"requirement {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip() or len(self.name) > 250:
            raise SettingsError(f"requirement name {self.name!r}: expected 1-250 characters")
        if not isinstance(self.filter, str):
            raise SettingsError(f"{what}: filter={self.filter!r}; expected JSON-logic text")
        if self.parent is not None and not isinstance(self.parent, str):
            raise SettingsError(f"{what}: parent={self.parent!r}; expected a requirement name")
        if isinstance(self.sort_order, bool) or not isinstance(self.sort_order, int):
            raise SettingsError(f"{what}: sort_order={self.sort_order!r}; expected an integer")
        allowed = (*ANNOTATION_TYPES, ALL_TYPES)
        if self.annotation_type is not None and self.annotation_type not in allowed:
            raise SettingsError(
                f"{what}: annotation_type {self.annotation_type!r}; expected one of "
                f"{', '.join(ANNOTATION_TYPES)}"
            )
        if self.metric is not None and self.metric not in METRICS:
            raise SettingsError(
                f"{what}: metric {self.metric!r}; expected one of {', '.join(METRICS)}"
            )
        for name in _UNIT:
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v <= 1.0:
                raise SettingsError(f"{what}: {name}={v!r}; expected a number in [0, 1]")
        for name in _BOOLS | {"enabled"}:
            v = getattr(self, name)
            if v is not None and not isinstance(v, bool):
                raise SettingsError(f"{what}: {name}={v!r}; expected true or false")
        if self.point_size_base not in (None, "image_size", "group_bbox_size"):
            raise SettingsError(
                f"{what}: point_size_base={self.point_size_base!r}; expected image_size or "
                "group_bbox_size"
            )
        ac = self.attribute_comparison
        for rule in [] if ac is None else [ac.default, *ac.rules.values()]:
            if rule.comparator not in (None, *COMPARATORS):
                raise SettingsError(
                    f"{what}: attribute comparator {rule.comparator!r}; expected exact or "
                    "levenshtein"
                )
            t = rule.threshold
            if t is not None and (isinstance(t, bool) or not 0.0 <= float(t) <= 1.0):
                raise SettingsError(f"{what}: attribute threshold {t!r}; expected [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, AttributeComparison) else v
        return out


def parse_attribute_comparison(raw: Any, where: str) -> AttributeComparison | None:
    """CVAT's ``attribute_comparison`` mapping (or the TOML inline table), validated.

    Raises:
        SettingsError: unknown key or bad value; the message starts with ``where``.
    """
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SettingsError(f"{where}: attribute_comparison: expected a table, got {raw!r}")
    unknown = set(raw) - {"default", "rules"}
    if unknown:
        raise SettingsError(
            f"{where}: attribute_comparison: unknown key {sorted(unknown)[0]!r}; known: default, "
            "rules"
        )
    default = _patch(raw.get("default") or {}, f"{where}: attribute_comparison.default")
    rules: dict[int | str, RulePatch] = {}
    for j, r in enumerate(raw.get("rules") or ()):
        at = f"{where}: attribute_comparison.rules[{j}]"
        if not isinstance(r, Mapping):
            raise SettingsError(f"{at}: expected a table")
        key = r.get("spec_id", r.get("name"))
        if key is None or isinstance(key, bool) or not isinstance(key, int | str):
            raise SettingsError(f"{at}: needs 'spec_id' (CVAT) or 'name' (attribute name)")
        rules[key] = _patch({k: v for k, v in r.items() if k not in ("spec_id", "name")}, at)
    return AttributeComparison(default, rules)


def _patch(raw: Mapping[str, Any], at: str) -> RulePatch:
    unknown = set(raw) - {"enabled", "comparator", "threshold"}
    if unknown:
        raise SettingsError(
            f"{at}: unknown key {sorted(unknown)[0]!r}; known: enabled, comparator, threshold"
        )
    enabled = raw.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise SettingsError(f"{at}: enabled={enabled!r}; expected true or false")
    threshold = raw.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float)
    ):
        raise SettingsError(f"{at}: threshold={threshold!r}; expected a number")
    return RulePatch(enabled, raw.get("comparator"), threshold)
