"""Quality report: CVAT 2.42's JSON shape and formulas, plus Wilson intervals.

The confusion matrix has rows = DS labels and columns = GT labels, with an ``unmatched`` row and
column last. Counts are summed over frames (micro-average) and every summary is recomputed from
the summed matrix, exactly as CVAT does for jobs and tasks.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelgate.arrays import AnyArray, FloatArray
from labelgate.errors import FormatError
from labelgate.io.gc_pause import gc_paused
from labelgate.json_stream import dump_json_file, iter_json, key_text
from labelgate.stats import wilson_interval

if TYPE_CHECKING:
    from labelgate.engine.conflict_text import ConflictBytes
    from labelgate.engine.frame_text import FrameTexts

#: The six counts of CVAT's ``annotations`` summary and shape component.
COUNT_KEYS = ("valid_count", "missing_count", "extra_count", "total_count", "ds_count", "gt_count")
#: The counts of CVAT's label component.
LABEL_COUNT_KEYS = ("valid_count", "invalid_count", "total_count")


def label_metrics(matrix: AnyArray) -> dict[str, FloatArray]:
    """CVAT's per-label precision, recall, accuracy, Jaccard index and dice of confusion matrices.

    Args:
        matrix: (..., L+1, L+1) counts, rows ds, cols gt, last row/col "unmatched"; leading axes
            stack several matrices (one per frame).

    Returns:
        (..., L+1) arrays, 0 where a denominator is 0 (CVAT's ``_arr_div``).
    """
    m = np.asarray(matrix, dtype=np.float64)
    diag = np.diagonal(m, axis1=-2, axis2=-1)
    rows, cols = m.sum(-1), m.sum(-2)
    total = m.sum((-2, -1))[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        jac_den = rows + cols - diag
        return {
            "precision": np.where(rows > 0, diag / rows, 0.0),
            "recall": np.where(cols > 0, diag / cols, 0.0),
            "accuracy": np.where(
                total > 0, (total - (rows - diag) - (cols - diag)) / np.maximum(total, 1), 0.0
            ),
            "jaccard_index": np.where(jac_den > 0, diag / jac_den, 0.0),
            "dice": np.where(rows + cols > 0, 2 * diag / (rows + cols), 0.0),
        }


def confusion_block(labels: Sequence[str], rows: Any, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """CVAT's serialised ``ConfusionMatrix``: labels (``unmatched`` last), rows, per-label metrics."""
    return {
        "labels": list(labels),
        "rows": rows,
        "precision": metrics["precision"],
        "recall": metrics["recall"],
        "accuracy": metrics["accuracy"],
        "jaccard_index": metrics["jaccard_index"],
        "axes": {"cols": "gt", "rows": "ds"},
    }


def confusion_summary(matrix: AnyArray, labels: Sequence[str]) -> dict[str, Any]:
    """Counts, accuracy/precision/recall and per-label metrics from a confusion matrix.

    Args:
        matrix: (L+1, L+1) counts, rows ds, cols gt, last row/col "unmatched".
        labels: the L label names (``unmatched`` is appended).

    Returns:
        CVAT's ``annotations`` summary dict (``confusion_matrix`` included).
    """
    m = np.asarray(matrix, dtype=np.float64)
    rows, cols = m.sum(1), m.sum(0)
    metrics = {k: v.tolist() for k, v in label_metrics(m).items()}
    return {
        "valid_count": int(np.trace(m[:-1, :-1])),
        "missing_count": int(m[-1, :].sum()),
        "extra_count": int(m[:, -1].sum()),
        "total_count": int(m.sum()),
        "ds_count": int(rows[:-1].sum()),
        "gt_count": int(cols[:-1].sum()),
        "confusion_matrix": confusion_block(
            [*labels, "unmatched"], m.astype(int).tolist(), metrics
        ),
    }


def conflict_counts(conflicts: list[dict[str, Any]]) -> dict[str, Any]:
    """A frame's ``conflict_count``, ``warning_count``, ``error_count`` and ``conflicts_by_type``
    (only the types present, as CVAT's ``Counter``)."""
    severity = Counter(c["severity"] for c in conflicts)
    return {
        "conflict_count": len(conflicts),
        "warning_count": severity.get("warning", 0),
        "error_count": severity.get("error", 0),
        "conflicts_by_type": dict(Counter(c["type"] for c in conflicts)),
    }


def rates(valid: float, total: float, ds: float, gt: float) -> dict[str, Any]:
    """Accuracy, precision, recall (CVAT's ``x / (n or 1)``) with Wilson 95% intervals."""
    out: dict[str, Any] = {}
    for name, den in (("accuracy", total), ("precision", ds), ("recall", gt)):
        out[name] = valid / (den or 1)
        lo, hi = wilson_interval(valid, den)
        out[f"{name}_ci95"] = [lo, hi]
    return out


@dataclass(frozen=True)
class ConflictTexts:
    """A report's conflicts already encoded: their JSON texts (report order), and the
    ``frame_results`` text, which lists each frame's conflicts from the same texts."""

    texts: ConflictBytes
    frames: FrameTexts


@dataclass(frozen=True)
class ConflictTally:
    """What a scorecard reads from a report's conflicts, each list in order of first
    appearance (so ``Counter(dict(...)).most_common`` breaks ties as over the dicts).

    Attributes:
        count: number of conflicts.
        error_types: ``(type, count)`` of the error-severity conflicts.
        confused: ``((annotated label, GT label), count)`` of the ``mismatching_label`` ones.
    """

    count: int
    error_types: list[tuple[str, int]]
    confused: list[tuple[tuple[str | None, str | None], int]]

    @classmethod
    def of_dicts(cls, conflicts: Sequence[Mapping[str, Any]]) -> ConflictTally:
        """The tally of conflict dicts (``Report.to_dict()["conflicts"]``)."""
        errors = Counter(c["type"] for c in conflicts if c["severity"] == "error")
        confused = Counter(
            (c["label_names"][0], c["label_names"][1])
            for c in conflicts
            if c["type"] == "mismatching_label"
        )
        return cls(len(conflicts), list(errors.items()), list(confused.items()))


class Report:
    """A quality report. ``data`` holds the CVAT-shaped JSON; see :meth:`to_dict`.

    Conflict dicts and per-frame results can be supplied lazily (``materialize``): the engine
    keeps them columnar and only builds the JSON objects when someone reads them. ``encode``
    gives the same conflicts as JSON text straight from the columns, which :meth:`iter_json`
    and :meth:`save_json` write without building the dicts.
    """

    def __init__(
        self,
        data: dict[str, Any],
        conflicts: list[dict[str, Any]] | None = None,
        data_errors: list[dict[str, Any]] | None = None,
        materialize: Callable[[], tuple[list[dict[str, Any]], dict[str, Any]]] | None = None,
        encode: Callable[[], ConflictTexts] | None = None,
        head: Callable[[int], list[dict[str, Any]]] | None = None,
        tally: Callable[[], ConflictTally] | None = None,
    ) -> None:
        self.data = data
        self._conflicts = conflicts
        self.data_errors = list(data_errors or [])
        self._materialize = materialize
        self._encode = encode
        self._head = head
        self._tally = tally

    def _ensure(self) -> None:
        if self._materialize is not None:
            with gc_paused():
                conflicts, frames = self._materialize()
            self._materialize = None
            self._conflicts = conflicts
            self.data["frame_results"] = frames

    @property
    def conflicts(self) -> list[dict[str, Any]]:
        self._ensure()
        return self._conflicts if self._conflicts is not None else []

    def conflict_head(self, k: int) -> list[dict[str, Any]]:
        """The first ``k`` of :attr:`conflicts`; a lazy report builds only those dicts."""
        if self._materialize is not None and self._head is not None:
            return self._head(max(k, 0))
        return self.conflicts[: max(k, 0)]

    def conflict_tally(self) -> ConflictTally:
        """The :class:`ConflictTally` of :attr:`conflicts`; a lazy report counts its columns."""
        if self._materialize is not None and self._tally is not None:
            return self._tally()
        return ConflictTally.of_dicts(self.conflicts)

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.data["summary"])

    def to_dict(self) -> dict[str, Any]:
        """JSON form: CVAT's fields (``summary``, ``conflicts_by_type``, ``annotations``,
        ``comparison_summary``, ``frame_results``, ``parameters``) plus ``conflicts`` and
        ``data_errors``."""
        self._ensure()
        return {**self.data, "conflicts": self.conflicts, "data_errors": self.data_errors}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Report:
        """Inverse of :meth:`to_dict`.

        Raises:
            FormatError: not a labelgate/CVAT quality report.
        """
        if "summary" not in d or "comparison_summary" not in d:
            raise FormatError("not a quality report: 'summary'/'comparison_summary' missing")
        data = {k: v for k, v in d.items() if k not in ("conflicts", "data_errors")}
        return cls(data, list(d.get("conflicts", [])), list(d.get("data_errors", [])))

    def iter_json(self) -> Iterator[str]:
        """Pieces of the JSON text of :meth:`to_dict`; the conflicts of a lazy report come
        from their columns as text, never as dicts, and so do the frames' results (numbers then
        in orjson's spelling, no spaces inside ``position`` and the extra keys: the same values,
        not the same characters)."""
        if not self._encodable():
            yield from iter_json(self.to_dict())
            return
        for piece in self._encoded_pieces():
            yield str(piece, "utf-8")

    def iter_json_bytes(self) -> Iterator[bytes | memoryview]:
        """:meth:`iter_json` as UTF-8 pieces; a lazy report's conflict text never becomes
        ``str`` (a piece may be a view valid only until the next one is asked for)."""
        if not self._encodable():
            for text in iter_json(self.to_dict()):
                yield text.encode()
            return
        yield from self._encoded_pieces()

    def save_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as one-line JSON, in chunks (:meth:`iter_json_bytes`).

        Raises:
            OSError: the file cannot be written.
        """
        dump_json_file(path, self)

    def _encodable(self) -> bool:
        own = {"conflicts", "data_errors", "frame_results"}
        return (
            self._materialize is not None
            and self._encode is not None
            and not (own & self.data.keys())
        )

    def _encoded_pieces(self) -> Iterator[bytes | memoryview]:
        """UTF-8 pieces of the lazy report's JSON (whole characters each), conflicts from columns."""
        assert self._encode is not None
        with gc_paused():
            enc = self._encode()
        texts = enc.texts
        sep = "{"
        for k, value in self.data.items():
            yield f"{sep}{key_text(k)}: ".encode()
            for piece in iter_json(value):
                yield piece.encode()
            sep = ", "
        yield f'{sep}"frame_results": '.encode()
        yield from enc.frames.pieces()
        yield b', "conflicts": ['
        yield from texts.blocks()
        yield f'], "data_errors": {json.dumps(self.data_errors)}}}'.encode()

    @classmethod
    def load_json(cls, path: str | Path) -> Report:
        """Read a report written by :meth:`save_json`.

        Raises:
            FormatError: unreadable or not a report.
        """
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise FormatError(f"{path}: cannot read report ({exc})") from None


def summary_block(comparison: Mapping[str, Any]) -> dict[str, Any]:
    """CVAT's flat ``summary`` from a ``comparison_summary`` (plus Wilson intervals)."""
    ann = comparison["annotations"]
    out = {
        "frame_count": comparison["frame_count"],
        "frame_share": comparison["frame_share"],
        "conflict_count": comparison["conflict_count"],
        "warning_count": comparison["warning_count"],
        "error_count": comparison["error_count"],
        "conflicts_by_type": dict(comparison["conflicts_by_type"]),
        "valid_count": ann["valid_count"],
        "ds_count": ann["ds_count"],
        "gt_count": ann["gt_count"],
        "total_count": ann["total_count"],
        "missing_count": ann["missing_count"],
        "extra_count": ann["extra_count"],
        "mean_iou": comparison["annotation_components"]["shape"]["mean_iou"],
    }
    out.update(rates(ann["valid_count"], ann["total_count"], ann["ds_count"], ann["gt_count"]))
    return out
