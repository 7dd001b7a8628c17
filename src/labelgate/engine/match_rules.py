"""How pairs are formed: CVAT 2.42 matching (the defaults) or CVAT 2.74+ requirement matching.

The per-type thresholds stay in :class:`~labelgate.engine.settings.QualitySettings`; these rules
switch the behaviours that changed with CVAT's quality requirements
(``../shared/reference/cvat-quality-current.md`` §3.2): two-stage label matching, attribute
gating with per-attribute comparators, and direction gating for polylines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from labelgate.arrays import BoolArray, IntArray, ObjectArray
from labelgate.model import Annotations

Comparator = Literal["exact", "levenshtein"]
COMPARATORS: tuple[Comparator, ...] = ("exact", "levenshtein")
#: Attributes CVAT never compares (2.42's ``Comparator.ignored_attrs``).
IGNORED_ATTRIBUTES = frozenset({"track_id", "keyframe", "z_order", "group", "rotation", "outside"})
#: CVAT 2.74+ also skips the builtin ``score`` (``Comparator.IGNORED_ATTRIBUTES``).
CURRENT_IGNORED_ATTRIBUTES = IGNORED_ATTRIBUTES | {"score"}
#: Occlusion is an attribute to CVAT; it has no spec id, so only the default rule covers it.
OCCLUDED = "occluded"


def levenshtein_similarity(a: Any, b: Any) -> float:
    """CVAT's ``levenshtein`` comparator: ``1 - distance / max(len)`` on ``str`` values.

    Equal strings (two empty ones included) give 1; exactly one empty string gives 0.
    """
    x, y = str(a), str(b)
    if x == y:
        return 1.0
    if not x or not y:
        return 0.0
    prev = list(range(len(y) + 1))
    for i, cx in enumerate(x, start=1):
        cur = [i]
        for j, cy in enumerate(y, start=1):
            cur.append(min(cur[j - 1] + 1, prev[j] + 1, prev[j - 1] + (cx != cy)))
        prev = cur
    return 1.0 - prev[-1] / max(len(x), len(y))


@dataclass(frozen=True)
class AttributeRule:
    """One attribute comparison rule (CVAT's ``attribute_comparison`` default or per-spec rule)."""

    enabled: bool = False
    comparator: Comparator = "exact"
    threshold: float = 1.0

    def matches(self, a: Any, b: Any) -> bool:
        """Whether two present values agree under this rule."""
        if self.comparator == "levenshtein":
            return levenshtein_similarity(a, b) >= self.threshold
        return bool(a == b)


@dataclass(frozen=True)
class MatchRules:
    """Matching behaviour switches.

    Attributes:
        two_stage_labels: pass 1 pairs only same-label annotations, pass 2 pairs the leftovers
            across labels (they become ``mismatching_label``). False: labels play no part in
            the cost (CVAT 2.42).
        attribute_default: the default attribute rule; when an enabled rule applies to an
            attribute, a pair whose values conflict (or one side lacks it) has similarity 0,
            except tags, which are never gated. It also covers occlusion. None: attributes
            never gate matching (CVAT 2.42).
        attribute_rules: per-attribute rules by attribute name (CVAT keys them by spec id; the
            adapter maps ids to names); they override ``attribute_default`` (a disabled rule
            switches that attribute off).
        gate_direction: with ``QualitySettings.compare_line_orientation``, a polyline pair whose
            unoriented minus oriented similarity exceeds ``line_orientation_threshold`` cannot
            match.
        all_errors: every conflict has severity ``error`` and there is no ``low_overlap``.
    """

    two_stage_labels: bool = False
    attribute_default: AttributeRule | None = None
    attribute_rules: Mapping[str, AttributeRule] = field(default_factory=dict)
    gate_direction: bool = False
    all_errors: bool = False

    @property
    def gates_attributes(self) -> bool:
        """Whether any attribute rule is enabled (CVAT ``attribute_comparison_may_compare``)."""
        default = self.attribute_default is not None and self.attribute_default.enabled
        return default or any(r.enabled for r in self.attribute_rules.values())

    @property
    def is_legacy(self) -> bool:
        """True when matching is CVAT 2.42's (no two-stage labels, no gating)."""
        return not (self.two_stage_labels or self.gate_direction or self.gates_attributes)

    def rule_for(self, name: str) -> AttributeRule | None:
        """The enabled rule comparing attribute ``name``, or None when it is not compared."""
        rule = None if name == OCCLUDED else self.attribute_rules.get(name)
        rule = rule if rule is not None else self.attribute_default
        return rule if rule is not None and rule.enabled else None


def attribute_conflicts(
    gt: Annotations, g: IntArray, ds: Annotations, d: IntArray, rules: MatchRules
) -> BoolArray:
    """(len(g), len(d)) bool: pairs with an attribute that conflicts under ``rules`` or that
    only one side has (CVAT 2.74+ ``_match_attrs``; occlusion counts as an attribute)."""
    gi, di = np.meshgrid(np.arange(len(g)), np.arange(len(d)), indexing="ij")
    flat = pair_attribute_conflicts(gt, g[gi.ravel()], ds, d[di.ravel()], rules)
    return flat.reshape(len(g), len(d))


def pair_attribute_conflicts(
    gt: Annotations, g: IntArray, ds: Annotations, d: IntArray, rules: MatchRules
) -> BoolArray:
    """Bool per aligned pair ``(g[k], d[k])``: :func:`attribute_conflicts` for given pairs."""
    out = np.zeros(len(g), bool)
    if not len(g):
        return out
    if rules.rule_for(OCCLUDED) is not None:
        out |= gt.occluded[g] != ds.occluded[d]
    for key in sorted(set(gt.attributes) | set(ds.attributes)):
        rule = rules.rule_for(key)
        if rule is None or key in CURRENT_IGNORED_ATTRIBUTES:
            continue
        out |= _key_conflicts(_values(gt, key, g), _values(ds, key, d), rule)
    return out


def attribute_classes(
    gt: Annotations, g: IntArray, ds: Annotations, d: IntArray, rules: MatchRules
) -> tuple[IntArray, IntArray] | None:
    """Class ids such that two rows' attributes agree under ``rules`` iff their ids are equal.

    Exact comparison makes agreement an equivalence (equal values of every compared
    attribute, absent ones included); Levenshtein does not, so then None.
    """
    enabled = [r for r in (rules.attribute_default, *rules.attribute_rules.values()) if r]
    if any(r.enabled and r.comparator != "exact" for r in enabled):
        return None
    keys = [
        k
        for k in sorted(set(gt.attributes) | set(ds.attributes))
        if k not in CURRENT_IGNORED_ATTRIBUTES and rules.rule_for(k) is not None
    ]
    occ = rules.rule_for(OCCLUDED) is not None
    if not keys and not occ:
        return np.zeros(len(g), np.int64), np.zeros(len(d), np.int64)
    # One integer code per value and column, then one class per distinct row of codes.
    codes = []
    for k in keys:
        values = np.concatenate([_values(gt, k, g), _values(ds, k, d)])
        seen: dict[Any, int] = {}
        codes.append(np.fromiter((seen.setdefault(v, len(seen)) for v in values), np.int64))
    if occ:
        codes.append(np.concatenate([gt.occluded[g], ds.occluded[d]]).astype(np.int64))
    ids = codes[0]
    for c in codes[1:]:
        # combine column by column, renumbering densely so the product never overflows
        ids = np.unique(ids * (int(c.max()) + 1) + c, return_inverse=True)[1].reshape(-1)
    return ids[: len(g)], ids[len(g) :]


def conflicting_attribute_names(
    gt: Annotations, g: int, ds: Annotations, d: int, rules: MatchRules | None
) -> tuple[str, ...]:
    """Sorted names of the attributes one GT/DS pair disagrees on.

    With ``rules`` that gate attributes, CVAT 2.74+'s comparison (per-attribute comparators);
    otherwise CVAT 2.42's exact comparison of every attribute and occlusion.
    """
    current = rules is not None and rules.gates_attributes
    r = rules if rules is not None and current else _EVERY_ATTRIBUTE
    ignored = CURRENT_IGNORED_ATTRIBUTES if current else IGNORED_ATTRIBUTES
    names = []
    if r.rule_for(OCCLUDED) is not None and gt.occluded[g] != ds.occluded[d]:
        names.append(OCCLUDED)
    for key in set(gt.attributes) | set(ds.attributes):
        rule = r.rule_for(key)
        if key in ignored or rule is None:
            continue
        if _key_conflicts(_values(gt, key, np.array([g])), _values(ds, key, np.array([d])), rule)[
            0
        ]:
            names.append(key)
    return tuple(sorted(names))


def _values(ann: Annotations, key: str, rows: IntArray) -> ObjectArray:
    col = ann.attributes.get(key)
    return col[rows] if col is not None else np.full(len(rows), None, dtype=object)


def _key_conflicts(va: ObjectArray, vb: ObjectArray, rule: AttributeRule) -> BoolArray:
    """Per aligned pair, one attribute: present on one side only, or values that disagree."""
    na = np.array([v is None for v in va], bool)
    nb = np.array([v is None for v in vb], bool)
    out: BoolArray = np.not_equal(na, nb)
    cache: dict[tuple[str, str], bool] = {}
    for k in np.flatnonzero(~na & ~nb):
        a, b = va[k], vb[k]
        key = (repr(a), repr(b))
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = not rule.matches(a, b)
        out[k] = hit
    return out


#: CVAT 2.42's matching (the default everywhere).
LEGACY = MatchRules()
#: CVAT 2.74+ requirement matching, before the requirement's own attribute rules are applied.
CURRENT = MatchRules(two_stage_labels=True, gate_direction=True, all_errors=True)
#: CVAT 2.42's attribute comparison: every attribute and occlusion, exactly.
_EVERY_ATTRIBUTE = MatchRules(attribute_default=AttributeRule(enabled=True))
