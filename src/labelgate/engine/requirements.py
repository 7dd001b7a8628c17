"""CVAT 2.74+ quality requirements: the requirement node, the tree and effective values.

A requirement selects annotations of one type (optionally narrowed by a JSON-logic filter),
matches them with its own thresholds and scores them with its own metric
(``cvat-quality-current.md`` §2). Children inherit every field left null from the nearest
ancestor that sets it; attribute rules merge per attribute; filters AND together. Every node,
not only the leaves, is scored. CVAT 2.42's flat settings are one preset of the same machinery
(:func:`legacy_preset`): a single node over every type with the 2.42 matching rules.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from labelgate.engine.annotation_filter import ANNOTATION_TYPES, AnnotationFilter, and_filters
from labelgate.engine.match_rules import CURRENT, LEGACY, AttributeRule, MatchRules
from labelgate.engine.settings import QualitySettings
from labelgate.errors import DataWarning, SettingsError
from labelgate.model import LabelSchema

Semantics = Literal["cvat-2.42", "cvat-requirements"]
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
        """Merge into ``parent``: default keys override, rules override per attribute."""
        rules = dict(parent.rules)
        for key, rule in self.rules.items():
            rules[key] = rule.over(rules[key]) if key in rules else rule
        return AttributeComparison(self.default.over(parent.default), rules)

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


@dataclass(frozen=True)
class ResolvedRequirement:
    """A requirement with every field resolved along its path from the root.

    Attributes:
        path: names from the root down to this node.
        values: every inheritable field (:data:`DEFAULTS` keys) with its effective value.
        filter: the effective filter (the path's filters ANDed), parsed.
        attributes: the merged attribute comparison.
        legacy: the CVAT 2.42 preset's node (2.42 matching; settings from ``base``).
    """

    name: str
    path: tuple[str, ...]
    annotation_type: str
    enabled: bool
    values: Mapping[str, Any]
    filter: AnnotationFilter
    attributes: AttributeComparison
    id: int | None = None
    base: QualitySettings | None = None
    legacy: bool = False

    @property
    def metric(self) -> str:
        return str(self.values["metric"])

    @property
    def required_score(self) -> float:
        return float(self.values["required_score"])

    def settings(self, base: QualitySettings | None = None) -> QualitySettings:
        """The engine's :class:`QualitySettings` for this requirement.

        Requirement names map onto 2.42 names (point_size -> oks_sigma, match_orientation ->
        compare_line_orientation, match_groups -> compare_groups); compare_attributes is on when
        the default rule or any per-attribute rule is enabled (CVAT's
        ``attribute_comparison_may_compare``). ``low_overlap`` and ``empty_is_annotated`` do not
        exist on 2.74+ and keep their inert defaults. ``base`` (else the tree's) supplies the
        fields a requirement does not have (``exact_geometry``, ``job_filter``).
        """
        start = base or self.base or QualitySettings()
        if self.legacy:
            return start
        changes = {
            SETTINGS_NAMES.get(k, k): v
            for k, v in self.values.items()
            if k not in ("metric", "required_score")
        }
        changes["compare_attributes"] = self.attributes.may_compare()
        changes["empty_is_annotated"] = False
        return start.merged(source=f"requirement {self.name!r}", **changes)

    def match_rules(self, schema: LabelSchema | None = None) -> MatchRules:
        """CVAT 2.74+ matching plus this requirement's attribute rules (by attribute name).

        Rules keyed by a CVAT spec id are named through ``schema``; an id the schema does not
        know is dropped (it names no attribute these annotations can carry).
        """
        if self.legacy:
            return LEGACY
        names = _spec_names(schema)
        rules: dict[str, AttributeRule] = {}
        for key, patch in self.attributes.rules.items():
            name = names.get(key) if isinstance(key, int) else key
            if name is not None:
                rules[name] = patch.over(self.attributes.default).resolved()
        return dataclasses.replace(
            CURRENT, attribute_default=self.attributes.default.resolved(), attribute_rules=rules
        )

    def required_attributes(self, schema: LabelSchema | None = None) -> list[str]:
        """Attributes named by enabled explicit rules: a selection lacking one of them on both
        sides is ``required_attributes_missing``. A spec id the schema does not know is named
        ``#<id>``, as CVAT names it."""
        names = _spec_names(schema)
        out = []
        for key, patch in self.attributes.rules.items():
            if patch.over(self.attributes.default).resolved().enabled:
                out.append(names.get(key, f"#{key}") if isinstance(key, int) else key)
        return out

    def parameters(self) -> dict[str, Any]:
        """CVAT's per-requirement ``parameters`` block (public names)."""
        return {
            "requirement_id": self.id,
            "name": self.name,
            "annotation_type": self.annotation_type,
            "filter": self.filter.text,
            **dict(self.values),
            "attribute_comparison": self.attributes.to_dict(),
        }


@dataclass(frozen=True)
class RequirementTree:
    """A validated requirement tree.

    Raises (on construction):
        SettingsError: duplicate names, an unknown parent, a cycle, a root without an
            annotation type, a child that changes its type, or a bad filter.
    """

    nodes: tuple[Requirement, ...]
    semantics: Semantics = "cvat-requirements"
    base: QualitySettings | None = None
    _children: Mapping[str | None, tuple[Requirement, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _resolved: Mapping[str, ResolvedRequirement] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        by_name: dict[str, Requirement] = {}
        for node in self.nodes:
            if node.name in by_name:
                raise SettingsError(f"requirement name {node.name!r} appears twice")
            by_name[node.name] = node
        for node in self.nodes:
            if node.parent is not None and node.parent not in by_name:
                raise SettingsError(f"requirement {node.name!r}: unknown parent {node.parent!r}")
            if node.parent is None and node.annotation_type is None:
                raise SettingsError(f"requirement {node.name!r}: a root needs an annotation_type")
        for node in self.nodes:  # walking up from every node finds any cycle
            seen = {node.name}
            up = node.parent
            while up is not None:
                if up in seen:
                    raise SettingsError(f"requirement {node.name!r}: parent chain has a cycle")
                seen.add(up)
                up = by_name[up].parent
        position = {n.name: i for i, n in enumerate(self.nodes)}
        children: dict[str | None, list[Requirement]] = {}
        for node in self.nodes:
            children.setdefault(node.parent, []).append(node)
        ordered = {
            k: tuple(
                sorted(
                    v,
                    key=lambda n: (n.sort_order, n.id if n.id is not None else 0, position[n.name]),
                )
            )
            for k, v in children.items()
        }
        object.__setattr__(self, "_children", ordered)
        resolved: dict[str, ResolvedRequirement] = {}
        for node in self._dfs():
            resolved[node.name] = self._resolve(node, resolved.get(node.parent or ""))
        object.__setattr__(self, "_resolved", resolved)

    def _dfs(self) -> Iterator[Requirement]:
        stack = list(reversed(self._children.get(None, ())))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(self._children.get(node.name, ())))

    def _resolve(
        self, node: Requirement, parent: ResolvedRequirement | None
    ) -> ResolvedRequirement:
        what = f"requirement {node.name!r}"
        if parent is None:
            values = {
                k: (DEFAULTS[k] if getattr(node, k) is None else getattr(node, k)) for k in DEFAULTS
            }
            atype = str(node.annotation_type)
            attrs = (node.attribute_comparison or AttributeComparison()).over(AttributeComparison())
            path: tuple[str, ...] = (node.name,)
            texts = [node.filter]
        else:
            if node.annotation_type not in (None, parent.annotation_type):
                raise SettingsError(
                    f"{what}: annotation_type {node.annotation_type!r} differs from its parent's "
                    f"{parent.annotation_type!r}; a child inherits the type"
                )
            values = {
                k: (parent.values[k] if getattr(node, k) is None else getattr(node, k))
                for k in DEFAULTS
            }
            atype = parent.annotation_type
            attrs = (node.attribute_comparison or AttributeComparison()).over(parent.attributes)
            path = (*parent.path, node.name)
            texts = [parent.filter.text, node.filter]
        if atype == ALL_TYPES:
            flt = AnnotationFilter("", None)
            if node.filter:
                raise SettingsError(f"{what}: the 2.42 preset takes no filter")
        else:
            flt = AnnotationFilter.parse(
                and_filters(texts), requirement=node.name, annotation_type=atype
            )
        return ResolvedRequirement(
            name=node.name,
            path=path,
            annotation_type=atype,
            enabled=node.enabled,
            values=values,
            filter=flt,
            attributes=attrs,
            id=node.id,
            base=self.base,
            legacy=self.semantics == "cvat-2.42",
        )

    # --- access -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[ResolvedRequirement]:
        """Every node, resolved, in depth-first order (siblings by sort order)."""
        return iter(self._resolved.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def resolved(self, name: str) -> ResolvedRequirement:
        """One node's effective values.

        Raises:
            SettingsError: no requirement of that name.
        """
        try:
            return self._resolved[name]
        except KeyError:
            raise SettingsError(f"no requirement named {name!r}") from None

    def enabled(self) -> list[ResolvedRequirement]:
        """The enabled nodes in depth-first order (what a report scores)."""
        return [r for r in self if r.enabled]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the stored nodes and each node's effective values."""
        return {
            "semantics": self.semantics,
            "requirements": [
                {**n.to_dict(), "effective": self._resolved[n.name].parameters()}
                for n in self._dfs()
            ],
        }

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def stock(cls, *, enabled: bool = False) -> RequirementTree:
        """CVAT's 9 base requirements (``Base <type>``) with the stock defaults.

        CVAT creates them disabled; ``enabled=True`` is what ``--semantics cvat-requirements``
        without a requirements file scores.
        """
        return cls(
            tuple(
                Requirement(
                    name=f"Base {t}", annotation_type=t, enabled=enabled, sort_order=i, **DEFAULTS
                )
                for i, t in enumerate(ANNOTATION_TYPES)
            )
        )

    @classmethod
    def from_cvat(cls, items: Sequence[Mapping[str, Any]]) -> RequirementTree:
        """From CVAT 2.74+'s requirement list items (``QualitySettings.requirements``).

        Parents are referenced by ``parent_requirement`` id; attribute rules by ``spec_id``.

        Raises:
            SettingsError: a malformed item (named by its id and name) or a bad tree.
        """
        ids = {it.get("id"): str(it.get("name")) for it in items}
        nodes = []
        for it in items:
            where = f"CVAT requirement {it.get('id')} ({it.get('name')!r})"
            parent_id = it.get("parent_requirement")
            if parent_id is not None and parent_id not in ids:
                raise SettingsError(f"{where}: unknown parent_requirement {parent_id}")
            data = {k: it.get(k) for k in DEFAULTS}
            try:
                nodes.append(
                    Requirement(
                        name=str(it.get("name")),
                        annotation_type=it.get("annotation_type") if parent_id is None else None,
                        parent=None if parent_id is None else ids[parent_id],
                        filter=str(it.get("filter") or ""),
                        enabled=bool(it.get("enabled", True)),
                        attribute_comparison=_attribute_comparison(
                            it.get("attribute_comparison"), where
                        ),
                        id=it.get("id"),
                        sort_order=int(it.get("sort_order") or 0),
                        **data,
                    )
                )
            except (TypeError, ValueError) as exc:
                raise SettingsError(f"{where}: {exc}") from None
        return cls(tuple(nodes))

    @classmethod
    def from_tables(
        cls, tables: Sequence[Mapping[str, Any]], source: str = "requirements"
    ) -> RequirementTree:
        """From the TOML form: ``[[requirement]]`` tables (see examples/cvat/requirements.toml).

        Each table has ``name``, ``type`` (roots), ``parent`` (a name), ``filter`` (JSON-logic
        text or an inline table), ``enabled`` and CVAT's field names; roots leave out what
        they want at CVAT's stock defaults.

        Raises:
            SettingsError: unknown key or bad value; the message names ``source``, the table
                (``requirement[2]``) and the key.
        """
        known = {f.name for f in fields(Requirement)} - {"annotation_type", "id"}
        nodes = []
        for i, raw in enumerate(tables):
            where = f"{source}: requirement[{i}]"
            if not isinstance(raw, Mapping):
                raise SettingsError(f"{where}: expected a table, got {raw!r}")
            data = dict(raw)
            if "name" in data:
                where += f" ({data['name']!r})"
            else:
                raise SettingsError(f"{where}: 'name' is missing")
            atype = data.pop("type", None)
            if "annotation_type" in data:
                atype = data.pop("annotation_type")
            for key in data:
                if key not in known:
                    raise SettingsError(
                        f"{where}: unknown key {key!r}; known: type, {', '.join(sorted(known))}"
                    )
            if isinstance(data.get("filter"), Mapping):
                data["filter"] = json.dumps(data["filter"])
            if "attribute_comparison" in data:
                data["attribute_comparison"] = _attribute_comparison(
                    data["attribute_comparison"], where
                )
            try:
                nodes.append(Requirement(annotation_type=atype, **data))
            except SettingsError as exc:
                raise SettingsError(f"{where}: {exc}") from None
            except TypeError as exc:
                raise SettingsError(f"{where}: {exc}") from None
        try:
            return cls(tuple(nodes))
        except SettingsError as exc:
            raise SettingsError(f"{source}: {exc}") from None


def tree_for(
    semantics: Semantics,
    *,
    settings: QualitySettings | None = None,
    tables: Sequence[Mapping[str, Any]] | None = None,
    source: str = "requirements",
) -> RequirementTree:
    """The tree a run scores under ``semantics`` (what ``--semantics`` selects).

    Args:
        semantics: ``cvat-2.42`` (the flat settings as :func:`legacy_preset`) or
            ``cvat-requirements``.
        settings: the flat settings (2.42 mode), or the base for fields requirements do not
            carry (``exact_geometry``, ``job_filter``).
        tables: ``[[requirement]]`` tables; in requirement mode without them every base
            requirement is enabled at its stock defaults, and a :class:`DataWarning` says so.
        source: names the tables' file in messages.

    Raises:
        SettingsError: unknown semantics, or bad tables.
    """
    if semantics == "cvat-2.42":
        return legacy_preset(settings)
    if semantics != "cvat-requirements":
        raise SettingsError(f"semantics {semantics!r}; expected cvat-2.42 or cvat-requirements")
    if tables:
        tree = RequirementTree.from_tables(tables, source)
    else:
        warnings.warn(
            "no quality requirements given: every base requirement is enabled with CVAT's stock "
            "defaults (add [[requirement]] tables to choose)",
            DataWarning,
            stacklevel=2,
        )
        tree = RequirementTree.stock(enabled=True)
    return dataclasses.replace(tree, base=settings) if settings is not None else tree


def legacy_preset(settings: QualitySettings | None = None) -> RequirementTree:
    """CVAT 2.42's flat settings as a one-node tree of the same machinery.

    The node covers every annotation type together, scores ``target_metric`` against
    ``target_metric_threshold``, matches with 2.42's rules and uses ``settings`` unchanged.
    """
    s = settings or QualitySettings()
    node = Requirement(
        name="CVAT 2.42",
        annotation_type=ALL_TYPES,
        metric=s.target_metric,
        required_score=s.target_metric_threshold,
        iou_threshold=s.iou_threshold,
        point_size=s.oks_sigma,
        point_size_base=s.point_size_base,
        line_thickness=s.line_thickness,
        match_orientation=s.compare_line_orientation,
        line_orientation_threshold=s.line_orientation_threshold,
        match_groups=s.compare_groups,
        group_match_threshold=s.group_match_threshold,
        check_covered_annotations=s.check_covered_annotations,
        object_visibility_threshold=s.object_visibility_threshold,
        panoptic_comparison=s.panoptic_comparison,
        attribute_comparison=AttributeComparison(RulePatch(enabled=s.compare_attributes)),
    )
    return RequirementTree((node,), semantics="cvat-2.42", base=s)


def _spec_names(schema: LabelSchema | None) -> dict[int, str]:
    names: dict[int, str] = {}
    for label in schema.labels if schema else ():
        for spec in label.attributes:
            if spec.id is not None:
                names.setdefault(spec.id, spec.name)
    return names


def _attribute_comparison(raw: Any, where: str) -> AttributeComparison | None:
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


__all__ = [
    "ALL_TYPES",
    "ANNOTATION_TYPES",
    "METRICS",
    "AttributeComparison",
    "Requirement",
    "RequirementTree",
    "ResolvedRequirement",
    "RulePatch",
    "legacy_preset",
    "tree_for",
]
