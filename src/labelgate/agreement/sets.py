"""Agreement on set-valued answers (multi-choice controls: each annotator picks a set of classes).

Krippendorff's α takes any distance between two values; for sets labelgate uses the MASI
distance (Passonneau 2006) or the Jaccard distance. Per-class binary α says which class the
annotators disagree on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labelgate.agreement.categorical import MISSING, Coefficient, krippendorff_alpha
from labelgate.arrays import IntArray
from labelgate.errors import ValidationError

SetValue = frozenset[str] | None
DISTANCES = ("masi", "jaccard")


def jaccard_distance(a: frozenset[str], b: frozenset[str]) -> float:
    """1 − |A∩B| / |A∪B|; 0 for two empty sets."""
    union = len(a | b)
    return 0.0 if union == 0 else 1.0 - len(a & b) / union


def masi_distance(a: frozenset[str], b: frozenset[str]) -> float:
    """1 − J·M: Jaccard J weighted by monotonicity M (1 equal, 2/3 subset, 1/3 overlap, 0)."""
    union = len(a | b)
    if union == 0:
        return 0.0
    inter = len(a & b)
    if a == b:
        m = 1.0
    elif a <= b or b <= a:
        m = 2 / 3
    elif inter:
        m = 1 / 3
    else:
        m = 0.0
    return 1.0 - inter / union * m


def set_codes(values: Sequence[Sequence[SetValue]]) -> tuple[IntArray, list[frozenset[str]]]:
    """(items × annotators) set values → integer codes (-1 missing) and the distinct sets."""
    distinct = sorted({v for row in values for v in row if v is not None}, key=sorted)
    index = {v: i for i, v in enumerate(distinct)}
    codes = np.array(
        [[MISSING if v is None else index[v] for v in row] for row in values], dtype=np.int64
    ).reshape(len(values), -1)
    return codes, distinct


def set_alpha(values: Sequence[Sequence[SetValue]], distance: str = "masi") -> Coefficient:
    """Krippendorff's α over set values with the MASI or Jaccard distance.

    Args:
        values: per item, per annotator, the chosen set (None: the annotator did not answer).
        distance: ``"masi"`` or ``"jaccard"``.

    Raises:
        ValidationError: unknown distance.
    """
    if distance not in DISTANCES:
        raise ValidationError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
    fn = masi_distance if distance == "masi" else jaccard_distance
    codes, distinct = set_codes(values)
    d = np.array([[fn(a, b) for b in distinct] for a in distinct]).reshape(len(distinct), -1)
    coef = krippendorff_alpha(codes, distance=d)
    return Coefficient(
        f"krippendorff_alpha_{distance}",
        coef.value,
        coef.n_items,
        coef.n_pairable,
        reason=coef.reason,
    )


def per_class_set_alpha(
    values: Sequence[Sequence[SetValue]], classes: Sequence[str]
) -> dict[str, Coefficient]:
    """Per class, nominal α on "chose this class or not" over the annotators who answered."""
    out = {}
    for cls in classes:
        binary = np.array(
            [[MISSING if v is None else int(cls in v) for v in row] for row in values],
            dtype=np.int64,
        ).reshape(len(values), -1)
        coef = krippendorff_alpha(binary, "nominal", distance=None)
        out[cls] = Coefficient(
            f"alpha_class_{cls}", coef.value, coef.n_items, coef.n_pairable, reason=coef.reason
        )
    return out


def mean_pairwise_jaccard(values: Sequence[Sequence[SetValue]]) -> float | None:
    """Mean Jaccard similarity over every pair of answers given to the same item."""
    sims = [
        1.0 - jaccard_distance(a, b)
        for row in values
        for i, a in enumerate(row)
        for b in row[i + 1 :]
        if a is not None and b is not None
    ]
    return float(np.mean(sims)) if sims else None
