"""``cvat score --against-server``: labelgate's task report beside CVAT's own, differences first.

:func:`compare_with_server` is pure: it reads labelgate's task report JSON and CVAT's report
(its summary row, plus ``/data`` for per-requirement conflict counts) in either era: CVAT
2.74+'s requirement shape (one row per requirement, matched by id, else by name) or CVAT 2.42's
legacy shape (one row per headline metric: accuracy, precision, recall). :func:`fetch_server_report`
asks the server for its newest task report of the same shape.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from labelgate.errors import DataWarning, ValidationError

#: Scores closer than this are the same (both sides print them rounded far coarser).
SCORE_TOLERANCE = 1e-6
LEGACY_METRICS = ("accuracy", "precision", "recall")
_COUNTS = ("valid", "missing", "extra", "conflicts")


@dataclass(frozen=True)
class Figures:
    """One side's figures for one row (None: that side does not report the value)."""

    score: float | None
    valid: int | None
    missing: int | None
    extra: int | None
    conflicts: int | None


@dataclass(frozen=True)
class AgainstRow:
    """One requirement (or one legacy headline metric) on both sides.

    Attributes:
        name: the requirement's name (legacy: ``summary``).
        metric: the scored metric.
        labelgate, cvat: each side's figures; None when that side has no such requirement.
    """

    name: str
    metric: str
    labelgate: Figures | None
    cvat: Figures | None

    @property
    def differences(self) -> tuple[str, ...]:
        """The fields that differ (``presence`` when only one side has the row)."""
        if self.labelgate is None or self.cvat is None:
            return ("presence",)
        ours, theirs = self.labelgate, self.cvat
        out = []
        if not _same_score(ours.score, theirs.score):
            out.append("score")
        out += [k for k in _COUNTS if getattr(ours, k) != getattr(theirs, k)]
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metric": self.metric,
            "labelgate": None if self.labelgate is None else asdict(self.labelgate),
            "cvat": None if self.cvat is None else asdict(self.cvat),
            "differences": list(self.differences),
        }


@dataclass(frozen=True)
class AgainstResult:
    """labelgate's task report against CVAT's.

    Attributes:
        era: ``requirements`` (CVAT 2.74+ shape) or ``legacy`` (CVAT 2.42 shape).
        rows: differing rows first, then the agreeing ones, each group in report order.
        cvat_report_id: CVAT's report id, when known.
    """

    era: str
    rows: tuple[AgainstRow, ...]
    cvat_report_id: int | None = None

    @property
    def agrees(self) -> bool:
        return not any(r.differences for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "era": self.era,
            "cvat_report_id": self.cvat_report_id,
            "agrees": self.agrees,
            "rows": [r.to_dict() for r in self.rows],
        }


def _same_score(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=0.0, abs_tol=SCORE_TOLERANCE)


def report_era(summary: Mapping[str, Any]) -> str:
    """``requirements`` for a CVAT 2.74+ summary, ``legacy`` for a 2.42 one.

    Raises:
        ValidationError: neither shape.
    """
    if isinstance(summary.get("requirements"), Mapping):
        return "requirements"
    if all(k in summary for k in ("valid_count", "ds_count", "gt_count")):
        return "legacy"
    raise ValidationError(
        "quality report summary: neither CVAT 2.74+'s (requirements) nor 2.42's "
        "(valid_count, ds_count, gt_count) shape"
    )


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _legacy_rows(summary: Mapping[str, Any]) -> dict[str, Figures]:
    valid = int(summary["valid_count"])
    counts = {
        "valid": valid,
        "missing": int(summary["gt_count"]) - valid,
        "extra": int(summary["ds_count"]) - valid,
        "conflicts": _int(summary.get("conflict_count")),
    }
    return {m: Figures(summary.get(m), **counts) for m in LEGACY_METRICS}


@dataclass(frozen=True)
class _Item:
    name: str
    metric: str
    requirement_id: int | None
    figures: Figures


def _requirement_items(summary: Mapping[str, Any], data: Mapping[str, Any] | None) -> list[_Item]:
    groups = (data or {}).get("groups") or {}
    out = []
    for item in summary["requirements"].get("items") or ():
        comps = item.get("score_components") or {}
        group = (groups.get(item["name"]) or {}).get("comparison_summary") or {}
        fig = Figures(
            score=item.get("score"),
            valid=_int(comps.get("valid_count")),
            missing=_int(comps.get("missing_count")),
            extra=_int(comps.get("extra_count")),
            conflicts=_int(group.get("conflict_count")),
        )
        out.append(
            _Item(str(item["name"]), str(item.get("metric")), item.get("requirement_id"), fig)
        )
    return out


def compare_with_server(
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    data: Mapping[str, Any] | None = None,
    *,
    report_id: int | None = None,
) -> AgainstResult:
    """labelgate's task report against CVAT's report of the same task.

    Args:
        ours: labelgate's task report JSON (CVAT 2.42 shape, or 2.74+ requirement shape).
        theirs: CVAT's report (the row from ``/api/quality/reports``, or just its
            ``summary``).
        data: CVAT's ``/data`` JSON (its ``groups`` give per-requirement conflict counts).
        report_id: CVAT's report id, for the output.

    Returns:
        Rows matched by requirement id (else name), differences first.

    Raises:
        ValidationError: a report of neither shape, the two of different eras, or a malformed
            field (named with the CVAT report id).
    """
    try:
        return _compare(ours, theirs, data, report_id)
    except ValidationError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValidationError(
            f"CVAT quality report {report_id}: malformed summary or /data ({exc!r})"
        ) from None


def _compare(
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    data: Mapping[str, Any] | None,
    report_id: int | None,
) -> AgainstResult:
    their_summary = theirs.get("summary", theirs)
    era = report_era(ours["summary"])
    if report_era(their_summary) != era:
        raise ValidationError(
            f"labelgate's report is in the {era} shape but CVAT's is not: compare like with like "
            "(--semantics, or CVAT's include_legacy reports)"
        )
    rows: list[AgainstRow] = []
    if era == "legacy":
        mine, cvat = _legacy_rows(ours["summary"]), _legacy_rows(their_summary)
        rows = [AgainstRow("summary", m, mine[m], cvat[m]) for m in LEGACY_METRICS]
    else:
        other = _requirement_items(their_summary, data)
        left = list(other)
        for item in _requirement_items(ours["summary"], ours):
            match = next(
                (
                    o
                    for o in left
                    if item.requirement_id is not None and o.requirement_id == item.requirement_id
                ),
                None,
            ) or next((o for o in left if o.name == item.name), None)
            if match is not None:
                left.remove(match)
            rows.append(
                AgainstRow(
                    item.name, item.metric, item.figures, None if match is None else match.figures
                )
            )
        rows += [AgainstRow(o.name, o.metric, None, o.figures) for o in left]
    ordered = [r for r in rows if r.differences] + [r for r in rows if not r.differences]
    return AgainstResult(era, tuple(ordered), report_id)


def fetch_server_report(
    source: Any, task_id: int, era: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """CVAT's newest task report of ``era``'s shape and its ``/data``; None when it has none.

    A 2.74+ server hides legacy reports unless ``include_legacy``, so the legacy era asks for
    them; a 2.42 server ignores the flag.
    """
    rows = source.quality_reports(task_id, target="task", include_legacy=era == "legacy")
    # Newest first; ids grow with time, so they break a tie of creation dates.
    rows = sorted(rows, key=lambda r: (str(r.get("created_date") or ""), r.get("id") or 0))
    for row in reversed(rows):
        try:
            if report_era(row.get("summary") or {}) == era:
                return row, source.quality_report_data(int(row["id"]))
        except ValidationError:
            continue
    return None


def against_tasks(source: Any, tasks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """:func:`compare_with_server` for each scored task of ``cvat score``'s JSON (``tasks``).

    A task CVAT has no report for (of the same shape) gets a :class:`DataWarning` and is left
    out: CVAT computes reports on request (Quality control, "Refresh").
    """
    out = []
    for t in tasks:
        report = t.get("report")
        tid = int(t["task"]["id"])
        if report is None:
            continue
        era = report_era(report["summary"])
        found = fetch_server_report(source, tid, era)
        if found is None:
            warnings.warn(
                f"CVAT task {tid}: the server has no {era}-shaped quality report to compare with; "
                "compute one in CVAT (Quality control, Refresh) and run again",
                DataWarning,
                stacklevel=2,
            )
            continue
        row, data = found
        result = compare_with_server(report, row, data, report_id=row.get("id"))
        out.append({"task": tid, **result.to_dict()})
    return out


def _fig(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if kind == "score" else str(value)


def render(results: Sequence[Mapping[str, Any]], console: Console | None = None) -> None:
    """One rich table per task: labelgate | CVAT per figure, differing rows first."""
    console = console or Console()
    for res in results:
        verdict = "agrees with CVAT" if res["agrees"] else "DIFFERS from CVAT"
        table = Table(
            title=f"task {res['task']}: labelgate vs CVAT report {res['cvat_report_id']} "
            f"({res['era']}): {verdict}"
        )
        table.add_column("requirement")
        table.add_column("metric")
        for kind in ("score", *_COUNTS):
            table.add_column(f"{kind} lg | cvat", justify="right")
        table.add_column("differs")
        for row in res["rows"]:
            ours, theirs = row["labelgate"] or {}, row["cvat"] or {}
            table.add_row(
                row["name"],
                row["metric"],
                *(
                    f"{_fig(ours.get(k), k)} | {_fig(theirs.get(k), k)}"
                    for k in ("score", *_COUNTS)
                ),
                ", ".join(row["differences"]) or "-",
                style="red" if row["differences"] else None,
            )
        console.print(table)
