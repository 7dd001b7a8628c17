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

from labelgate.engine.annotation_filter import ANNOTATION_TYPES, AnnotationFilter
from labelgate.engine.match_rules import CURRENT, LEGACY, AttributeRule, MatchRules
from labelgate.engine.req_model import (
    ALL_TYPES,
    DEFAULTS,
    METRICS,
    SETTINGS_NAMES,
    AttributeComparison,
    Requirement,
    RulePatch,
    parse_attribute_comparison,
)
from labelgate.engine.settings import QualitySettings
from labelgate.errors import DataWarning, SettingsError
from labelgate.model import LabelSchema

Semantics = Literal["cvat-2.42", "cvat-requirements"]


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
            "attribute_comparison": {
                **self.attributes.to_dict(),
                "default": dataclasses.asdict(self.attributes.default.resolved()),
            },
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
        if atype == ALL_TYPES:
            flt = AnnotationFilter("", None)
            if node.filter:
                raise SettingsError(f"{what}: the 2.42 preset takes no filter")
        else:
            own = AnnotationFilter.parse(node.filter, requirement=node.name, annotation_type=atype)
            flt = own if parent is None else parent.filter.narrowed(own)
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
        ids: dict[int, str] = {}
        for k, it in enumerate(items):
            if not isinstance(it, Mapping):
                raise SettingsError(f"CVAT requirement list item {k}: expected an object")
            for key in ("id", "parent_requirement", "sort_order"):
                v = it.get(key)
                if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                    raise SettingsError(f"CVAT requirement list item {k}: {key}={v!r} is not an id")
            if it.get("id") is not None:
                ids[it["id"]] = str(it.get("name"))
        nodes = []
        for it in items:
            where = f"CVAT requirement {it.get('id')} ({it.get('name')!r})"
            parent_id = it.get("parent_requirement")
            if parent_id is not None and parent_id not in ids:
                raise SettingsError(f"{where}: unknown parent_requirement {parent_id}")
            if not isinstance(it.get("filter") or "", str):
                raise SettingsError(
                    f"{where}: filter={it.get('filter')!r}; expected JSON-logic text"
                )
            data = {k: it.get(k) for k in DEFAULTS}
            try:
                nodes.append(
                    Requirement(
                        name=str(it.get("name")),
                        annotation_type=it.get("annotation_type") if parent_id is None else None,
                        parent=None if parent_id is None else ids[parent_id],
                        filter=it.get("filter") or "",
                        enabled=bool(it.get("enabled", True)),
                        attribute_comparison=parse_attribute_comparison(
                            it.get("attribute_comparison"), where
                        ),
                        id=it.get("id"),
                        sort_order=it.get("sort_order") or 0,
                        **data,
                    )
                )
            except SettingsError as exc:
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
                data["attribute_comparison"] = parse_attribute_comparison(
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


__all__ = [
    "ALL_TYPES",
    "ANNOTATION_TYPES",
    "DEFAULTS",
    "METRICS",
    "AttributeComparison",
    "Requirement",
    "RequirementTree",
    "ResolvedRequirement",
    "RulePatch",
    "legacy_preset",
    "tree_for",
]
