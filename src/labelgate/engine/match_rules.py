"""How pairs are formed: CVAT 2.42 matching (the defaults) or CVAT 2.74+ requirement matching.

The per-type thresholds stay in :class:`~labelgate.engine.settings.QualitySettings`; these rules
switch the behaviours that changed with CVAT's quality requirements
(``../shared/reference/cvat-quality-current.md`` §3.2): two-stage label matching, attribute
gating with per-attribute comparators, and direction gating for polylines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Comparator = Literal["exact", "levenshtein"]


@dataclass(frozen=True)
class AttributeRule:
    """One attribute comparison rule (CVAT's ``attribute_comparison`` default or per-spec rule)."""

    enabled: bool = False
    comparator: Comparator = "exact"
    threshold: float = 1.0


@dataclass(frozen=True)
class MatchRules:
    """Matching behaviour switches.

    Attributes:
        two_stage_labels: pass 1 pairs only same-label annotations, pass 2 pairs the leftovers
            across labels (they become ``mismatching_label``). False: labels play no part in
            the cost (CVAT 2.42).
        attribute_default: the default attribute rule; when an enabled rule applies to an
            attribute, a pair whose values conflict (or one side lacks it) has similarity 0.
            None: attributes never gate matching (CVAT 2.42).
        attribute_rules: per-attribute rules by attribute name (CVAT keys them by spec id; the
            adapter maps ids to names); they override ``attribute_default``.
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


#: CVAT 2.42's matching (the default everywhere).
LEGACY = MatchRules()
#: CVAT 2.74+ requirement matching, before the requirement's own attribute rules are applied.
CURRENT = MatchRules(two_stage_labels=True, gate_direction=True, all_errors=True)
