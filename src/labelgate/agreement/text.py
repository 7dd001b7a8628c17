"""Agreement on text spans (NER), free text (TextArea) and numbers (Rating/Number)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from labelgate.agreement.categorical import Coefficient, krippendorff_alpha
from labelgate.arrays import AnyArray, FloatArray
from labelgate.errors import ValidationError


def span_f1(a: FloatArray, la: AnyArray, b: FloatArray, lb: AnyArray, mode: str = "exact") -> float:
    """F1 between two annotators' labelled spans on one text.

    Args:
        a, b: (n, 2) and (m, 2) [start, end) character offsets.
        la, lb: their labels.
        mode: ``"exact"`` (same start, end and label) or ``"partial"`` (same label and any
            overlap; pairs chosen one-to-one by the largest overlap ratio).

    Returns:
        2·matches / (n + m); 1.0 when both are empty.
    """
    n, m = len(a), len(b)
    if n + m == 0:
        return 1.0
    if n == 0 or m == 0:
        return 0.0
    same = la[:, None] == lb[None, :]
    if mode == "exact":
        eq = same & (a[:, None, 0] == b[None, :, 0]) & (a[:, None, 1] == b[None, :, 1])
        # Exact duplicates pair one-to-one: count the smaller multiplicity per span.
        matches = min(int(eq.any(1).sum()), int(eq.any(0).sum()))
    elif mode == "partial":
        inter = np.clip(
            np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]),
            0,
            None,
        )
        union = np.maximum(a[:, None, 1], b[None, :, 1]) - np.minimum(a[:, None, 0], b[None, :, 0])
        ratio = np.where(same & (inter > 0), inter / np.maximum(union, 1e-12), 0.0)
        r, c = linear_sum_assignment(-ratio)
        matches = int((ratio[r, c] > 0).sum())
    else:
        raise ValidationError(f"mode must be 'exact' or 'partial', got {mode!r}")
    return 2 * matches / (n + m)


def edit_distance(s: str, t: str) -> int:
    """Levenshtein distance, one numpy row per character of ``s`` (no per-cell Python)."""
    if not s:
        return len(t)
    if not t:
        return len(s)
    tv = np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32)
    prev = np.arange(len(t) + 1)
    for ch in s:
        sub = prev[:-1] + (tv != ord(ch))
        cur = np.empty_like(prev)
        cur[0] = prev[0] + 1
        cur[1:] = np.minimum(prev[1:] + 1, sub)
        # Insertions chain left to right: a running minimum of (cur[j] - j) + j.
        cur = np.minimum.accumulate(cur - np.arange(len(cur))) + np.arange(len(cur))
        prev = cur
    return int(prev[-1])


def text_similarity(s: str, t: str) -> float:
    """1 − normalised edit distance (1.0 for two empty texts)."""
    longest = max(len(s), len(t))
    return 1.0 if longest == 0 else 1.0 - edit_distance(s, t) / longest


def number_alpha(values: FloatArray) -> Coefficient:
    """Interval Krippendorff's α on an (items × annotators) float matrix, NaN = missing."""
    v = np.asarray(values, dtype=float)
    uniq = np.unique(v[~np.isnan(v)])
    codes = np.where(np.isnan(v), -1, np.searchsorted(uniq, np.nan_to_num(v))).astype(np.int64)
    coef = krippendorff_alpha(codes, "interval", values=uniq)
    return Coefficient(
        "number_alpha_interval", coef.value, coef.n_items, coef.n_pairable, reason=coef.reason
    )
