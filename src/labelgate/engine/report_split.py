"""One label subset's share of a comparison report (a Label Studio control's labels).

Matching never pairs rows of different controls (:func:`~labelgate.engine.match_annotations`),
so every confusion-matrix cell and every pair conflict belongs to one control: the subset's
rows and columns of each matrix (plus ``unmatched``) are the matrix a comparison of the
subset alone would give, without comparing again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelgate.engine.report import Report


@dataclass(frozen=True)
class ReportPart:
    """Counts, per-frame accuracy and conflicts of a label subset of one report.

    Attributes:
        valid_count, ds_count, gt_count, total_count: CVAT's counts over the subset's labels.
        frame_accuracy: frame → CVAT's accuracy on the subset, for the frames where the
            subset has an annotation on either side (``total_count > 0``).
        conflicts: the report's conflicts naming one of the subset's labels (report order).
    """

    valid_count: int
    ds_count: int
    gt_count: int
    total_count: int
    frame_accuracy: dict[int, float]
    conflicts: list[dict[str, Any]]

    @property
    def accuracy(self) -> float:
        """CVAT's ``valid / (total or 1)``."""
        return self.valid_count / (self.total_count or 1)


def _counts(block: Mapping[str, Any], labels: Collection[str]) -> tuple[int, int, int, int]:
    """(valid, ds, gt, total) of the subset in one serialised confusion matrix."""
    names = block["labels"]
    keep = [i for i, n in enumerate(names[:-1]) if n in labels] + [len(names) - 1]
    m = np.asarray(block["rows"], dtype=np.int64)[np.ix_(keep, keep)]
    return int(np.trace(m[:-1, :-1])), int(m[:-1].sum()), int(m[:, :-1].sum()), int(m.sum())


def split_report(report: Report, labels: Collection[str]) -> ReportPart:
    """The share of ``labels`` (names) in ``report``.

    Args:
        report: a comparison whose matching kept the subset apart from the other labels
            (pairs of a subset label with another label would be counted as missing/extra).
        labels: the subset's label names.

    Returns:
        The subset's :class:`ReportPart`.
    """
    labels = set(labels)
    data = report.to_dict()
    valid, ds, gt, total = _counts(data["annotations"]["confusion_matrix"], labels)
    frames: dict[int, float] = {}
    for frame, res in data["frame_results"].items():
        f_valid, _, _, f_total = _counts(res["annotations"]["confusion_matrix"], labels)
        if f_total:
            frames[int(frame)] = f_valid / f_total
    conflicts = [
        c for c in data["conflicts"] if any(n in labels for n in c.get("label_names") or ())
    ]
    return ReportPart(valid, ds, gt, total, frames, conflicts)
