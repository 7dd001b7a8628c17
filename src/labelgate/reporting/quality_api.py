"""The read-only quality API's data: stored reports mapped to dashboard sections, paginated.

``GET /api/projects/<source>/<id>/quality/<section>`` (the Flask blueprint
:mod:`labelgate_webhook.read_api`) answers from the newest stored report of the project
``f"{source}:{id}"``. This module is the pure part: which report serves a project, how each
report kind becomes each section, and pagination. It touches the store only through
``list_reports``/``get_report`` and imports no web framework or SDK.

Report kinds read, in order of preference (the newest report of the first tier that has one):

1. ``bundle``: every quality run (``labelgate report``, ``labelgate ls score``, the webhook
   worker) — the full reports; a source's own sections (Label Studio's per-task ``tasks`` and
   per-control ``annotators``) serve the items and benchmark where present. Rows of the old
   ``ls_project`` kind are read as bundles (:func:`_ls_project_as_bundle`);
2. ``scorecards`` (``labelgate scorecards``, and the trend record every bundle run also writes)
   — no per-item data, so ``items`` is empty with a note.

A full report always wins over a scorecards record, because a bundle run stores its small
trend record under the same project and the trend record must not hide the bundle.

Every section answer carries ``notes``: ``{field: why it is null}`` for each field the stored
report does not record, so a dashboard can tell "not recorded" from a real zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from math import ceil
from typing import Any

from labelgate.adapters import PREDICTION_PREFIX
from labelgate.errors import NotFound, ValidationError
from labelgate.ports import ReportReader
from labelgate.store import StoredReport

#: ``<source>`` path values: the systems whose adapters store project reports.
SOURCES = ("cvat", "labelstudio")
#: Section names, in the order the docs list them.
SECTIONS = ("overview", "agreement", "annotators", "items", "benchmark", "alerts")
#: Report kinds the API reads, best tier first (see the module docstring).
KIND_TIERS: tuple[tuple[str, ...], ...] = (("bundle", "ls_project"), ("scorecards",))
READABLE_KINDS = tuple(k for tier in KIND_TIERS for k in tier)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
#: Items whose agreement is below this are flagged; the same default as ``labelgate ls score``.
LOW_AGREEMENT = 0.8

#: Fields of a benchmark row, from a comparison summary / scorecard / LS annotator entry.
BENCHMARK_FIELDS = (
    "accuracy",
    "accuracy_ci95",
    "precision",
    "precision_ci95",
    "recall",
    "recall_ci95",
    "mean_iou",
    "valid_count",
    "gt_count",
    "ds_count",
    "missing_count",
    "extra_count",
    "error_count",
    "warning_count",
)


def project_key(source: str, project_id: str) -> str:
    """The store's project name for a path's source and id (``"cvat:12"``).

    Args:
        source: ``cvat`` or ``labelstudio``.
        project_id: the project id as it appears in the URL.

    Returns:
        ``f"{source}:{project_id}"``.

    Raises:
        NotFound: an unknown source.
    """
    if source not in SOURCES:
        raise NotFound(f"unknown source {source!r}; known sources: {', '.join(SOURCES)}")
    return f"{source}:{project_id}"


def latest_report(store: ReportReader, source: str, project_id: str) -> StoredReport:
    """The stored report that serves a project: the newest one of the best tier.

    Args:
        store: a :class:`~labelgate.store.Store`.
        source, project_id: as in :func:`project_key`.

    Returns:
        The report (kind ``bundle``, ``ls_project`` or ``scorecards``).

    Raises:
        NotFound: unknown source, or no readable report stored for the project.
    """
    key = project_key(source, project_id)
    for tier in KIND_TIERS:
        found = [r for kind in tier for r in store.list_reports(project=key, kind=kind, limit=1)]
        if found:
            return max(found, key=lambda r: (r.created_at, r.seq))
    raise NotFound(
        f"no stored quality report for project {key!r} "
        f"(looked for kinds {', '.join(READABLE_KINDS)})"
    )


def pinned_report(
    store: ReportReader, source: str, project_id: str, report_id: str
) -> StoredReport:
    """A given report of the project (``?report=<id>``, so that paging survives a new run).

    Raises:
        NotFound: unknown source, no such report, or it belongs to another project or is of a
            kind the API does not read.
    """
    key = project_key(source, project_id)
    r = store.get_report(report_id)
    if r.project != key or r.kind not in READABLE_KINDS:
        raise NotFound(f"report {report_id} is not a quality report of project {key!r}")
    return r


def parse_paging(args: Mapping[str, Any]) -> tuple[int, int]:
    """``page`` and ``page_size`` from query arguments; sizes above the maximum are capped.

    Args:
        args: the query arguments (strings).

    Returns:
        ``(page, page_size)``, both ≥ 1, ``page_size`` ≤ :data:`MAX_PAGE_SIZE`.

    Raises:
        ValidationError: a value that is not a positive integer.
    """
    out = []
    for name, default in (("page", 1), ("page_size", DEFAULT_PAGE_SIZE)):
        raw = args.get(name)
        try:
            value = default if raw in (None, "") else int(raw)
        except (TypeError, ValueError):
            raise ValidationError(f"{name} must be a positive integer, got {raw!r}") from None
        if value < 1:
            raise ValidationError(f"{name} must be a positive integer, got {raw!r}")
        out.append(value)
    return out[0], min(out[1], MAX_PAGE_SIZE)


def paginate(rows: Sequence[Any] | None, page: int, page_size: int) -> dict[str, Any]:
    """One page of ``rows``.

    Args:
        rows: all rows, or None when the report does not record the list.
        page: 1-based page number (past the end gives an empty page, not an error).
        page_size: rows per page.

    Returns:
        ``{count, page, page_size, pages, next_page, previous_page, results}``; ``count`` and
        ``results`` are None when ``rows`` is None. ``next_page``/``previous_page`` are page
        numbers or None (the web layer turns them into links).
    """
    if rows is None:
        return {
            "count": None,
            "page": page,
            "page_size": page_size,
            "pages": 0,
            "next_page": None,
            "previous_page": None,
            "results": None,
        }
    pages = ceil(len(rows) / page_size)
    start = (page - 1) * page_size
    return {
        "count": len(rows),
        "page": page,
        "page_size": page_size,
        "pages": pages,
        "next_page": page + 1 if page < pages else None,
        "previous_page": min(page - 1, pages) if page > 1 and pages else None,
        "results": list(rows[start : start + page_size]),
    }


def build_section(
    stored: StoredReport,
    section: str,
    *,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
    flagged_only: bool = False,
) -> dict[str, Any]:
    """A section's JSON answer from one stored report.

    Args:
        stored: the report (see :func:`latest_report`).
        section: one of :data:`SECTIONS`.
        page, page_size: pagination of the list sections (ignored by ``overview``).
        flagged_only: ``items`` only: keep the flagged items.

    Returns:
        ``{project, section, report: {id, kind, created_at, generated_at}, notes, ...}`` plus
        ``overview`` for the overview, or the :func:`paginate` fields (and ``summary`` for
        ``agreement``) for the list sections.

    Raises:
        NotFound: an unknown section.
    """
    if section not in SECTIONS:
        raise NotFound(f"unknown section {section!r}; sections: {', '.join(SECTIONS)}")
    if stored.kind not in READABLE_KINDS:
        raise NotFound(f"report {stored.id} is a {stored.kind} report, not a quality report")
    notes: dict[str, str] = {}
    view = _VIEWS[stored.kind](stored.report, notes)
    out: dict[str, Any] = {
        "project": stored.project,
        "section": section,
        "report": {
            "id": stored.id,
            "kind": stored.kind,
            "created_at": stored.created_at.isoformat(),
            "generated_at": stored.report.get("generated_at"),
        },
        "notes": notes,
    }
    if section == "overview":
        out["overview"] = view.overview()
        return out
    if section == "agreement":
        out["summary"] = view.agreement_summary()
        rows = view.agreement_items()
    elif section == "items":
        rows = view.items()
        if rows is not None and flagged_only:
            rows = [r for r in rows if r["flagged"]]
    else:
        rows = {"annotators": view.annotators, "benchmark": view.benchmark, "alerts": view.alerts}[
            section
        ]()
    out.update(paginate(rows, page, page_size))
    return out


def item_rows(stored: StoredReport) -> list[dict[str, Any]] | None:
    """Every item row of a report, worst first (the ``items`` section unpaginated), or None
    when the kind keeps no per-item data."""
    if stored.kind not in READABLE_KINDS:
        return None
    return _VIEWS[stored.kind](stored.report, {}).items()


# --- per kind ---------------------------------------------------------------------------------


def _is_model(name: str) -> bool:
    return name.startswith(PREDICTION_PREFIX)


def _mean(values: Iterable[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


class _View:
    """Sections of one report kind; fields the kind lacks become None plus a note."""

    kind = ""

    def __init__(self, report: Mapping[str, Any], notes: dict[str, str]) -> None:
        self.r = report
        self.notes = notes

    def missing(self, field: str, why: str) -> None:
        self.notes.setdefault(field, why)

    def cards(self) -> list[dict[str, Any]] | None:
        return None

    def agreement(self) -> dict[str, Any] | None:
        agreement = self.r.get("agreement")
        return agreement if isinstance(agreement, dict) else None

    def overview(self) -> dict[str, Any]:
        cards = self.cards()
        out: dict[str, Any] = {
            "items": None,
            "labelled_items": None,
            "unlabelled_items": None,
            "annotators": len(cards) if cards is not None else None,
            "approval_rate": None,
            "rejection_rate": None,
            "ai_assisted_share": None,
            "mean_accuracy": None,
            "mean_agreement": self.mean_agreement(),
            "alerts": None,
            "flagged_items": None,
        }
        if cards is not None:
            out.update(_card_rates(cards, self.missing))
        else:
            for field in ("approval_rate", "rejection_rate", "ai_assisted_share", "mean_accuracy"):
                self.missing(field, f"a {self.kind} report has no annotator scorecards")
        # The list sections' notes speak of "results"; the overview names its own fields.
        scratch = type(self)(self.r, {})
        alerts, items = scratch.alerts(), scratch.items()
        out["alerts"] = len(alerts) if alerts is not None else None
        if alerts is None:
            self.missing("alerts", f"this {self.kind} report records no alerts")
        out["flagged_items"] = sum(r["flagged"] for r in items) if items is not None else None
        if items is None:
            self.missing("flagged_items", f"a {self.kind} report has no per-item data")
        return out

    def mean_agreement(self) -> float | None:
        agreement = self.agreement()
        if agreement is None:
            self.missing("mean_agreement", "no agreement (it needs two annotators sharing items)")
            return None
        from labelgate.agreement.report import agreement_headline

        return agreement_headline(agreement)

    def agreement_summary(self) -> dict[str, Any] | None:
        agreement = self.agreement()
        if agreement is None:
            self.missing("summary", "no agreement (it needs two annotators sharing items)")
            return None
        return {
            **agreement.get("summary", {}),
            "annotators": agreement.get("annotators"),
            "pairs": agreement.get("pairs"),
            "per_annotator": agreement.get("per_annotator"),
            "per_label": agreement.get("per_label"),
        }

    def agreement_items(self) -> list[dict[str, Any]] | None:
        agreement = self.agreement()
        if agreement is None or "per_item" not in agreement:
            self.missing("results", "no per-item agreement in this report")
            return None
        return list(agreement["per_item"])

    def annotators(self) -> list[dict[str, Any]] | None:
        cards = self.cards()
        if cards is None:
            self.missing("results", f"a {self.kind} report has no annotator scorecards")
        return cards

    def benchmark(self) -> list[dict[str, Any]] | None:
        raise NotImplementedError

    def items(self) -> list[dict[str, Any]] | None:
        return None

    def alerts(self) -> list[dict[str, Any]] | None:
        alerts = self.r.get("alerts")
        if alerts is None:
            self.missing("results", f"this {self.kind} report records no alerts")
            return None
        return list(alerts)

    def benchmark_rows(
        self, entries: Iterable[tuple[str, Mapping[str, Any]]], gold_key: str
    ) -> list[dict[str, Any]]:
        """Rows of accuracy against GT; fields an entry lacks are None and noted once."""
        rows = []
        for name, entry in entries:
            row: dict[str, Any] = {
                "annotator": name,
                "model": _is_model(name),
                "gold_items": entry.get(gold_key),
            }
            for field in BENCHMARK_FIELDS:
                row[field] = entry.get(field)
                if field not in entry:
                    self.missing(field, f"not recorded in a {self.kind} report")
            rows.append(row)
        return rows


def _card_rates(
    cards: Sequence[Mapping[str, Any]], missing: Callable[[str, str], None]
) -> dict[str, Any]:
    """Project rates from scorecards.

    The AI-assisted share is pooled exactly (each card's share weighted by its annotation
    count). Approval/rejection rates are the mean over annotators with reviews: the cards keep
    rates, not review counts, so a pooled rate cannot be rebuilt.
    """
    out: dict[str, Any] = {"mean_accuracy": _mean(c.get("accuracy") for c in cards)}
    if out["mean_accuracy"] is None:
        missing("mean_accuracy", "no ground truth to score against")
    for field in ("approval_rate", "rejection_rate"):
        out[field] = _mean(c.get(field) for c in cards)
        if out[field] is None:
            missing(field, "no review verdicts (accepted/rejected) recorded")
    weighted = [
        (c["ai_assisted_share"], c.get("annotations") or 0)
        for c in cards
        if c.get("ai_assisted_share") is not None
    ]
    total = sum(n for _, n in weighted)
    out["ai_assisted_share"] = sum(s * n for s, n in weighted) / total if total else None
    if out["ai_assisted_share"] is None:
        missing("ai_assisted_share", "no annotations with a recorded origin")
    return out


class _BundleView(_View):
    kind = "bundle"

    def cards(self) -> list[dict[str, Any]] | None:
        cards = self.r.get("scorecards")
        return list(cards) if cards is not None else None

    def overview(self) -> dict[str, Any]:
        out = super().overview()
        total = (self.r.get("source") or {}).get("items")
        out["items"] = total if isinstance(total, int) else None
        if out["items"] is None:
            self.missing("items", "the report does not count the project's items")
        if self.r.get("tasks") is not None:  # a source that scores each task (Label Studio)
            out["scored_items"] = len(self.r["tasks"])
        cards = self.cards() or []
        worked = [c.get("items") for c in cards]
        # A card counts the items its annotator worked on; the bundle keeps no union of them,
        # so the labelled count is exact only when some annotator worked on every item.
        if out["items"] is not None and out["items"] in worked:
            out["labelled_items"], out["unlabelled_items"] = out["items"], 0
        elif out["items"] == 0:
            out["labelled_items"] = out["unlabelled_items"] = 0
        else:
            why = "the bundle counts items per annotator, not the items nobody worked on"
            self.missing("labelled_items", why)
            self.missing("unlabelled_items", why)
        gate = self.r.get("gate")
        out["gate_passed"] = gate.get("passed") if isinstance(gate, dict) else None
        if out["gate_passed"] is None:
            self.missing("gate_passed", "the run had no release gate policy")
        return out

    def benchmark(self) -> list[dict[str, Any]] | None:
        people = self.r.get("annotators")
        if isinstance(people, dict) and people:
            # A source's own accuracy table (Label Studio's, over each labelling control)
            # is the one its pages show; the whole-set comparisons would disagree with it.
            return self.benchmark_rows(people.items(), "frame_count")
        comparisons = self.r.get("comparisons") or {}
        if not comparisons:
            self.missing("results", "no ground truth in this run")
            return []
        entries = [(name, c.get("summary") or {}) for name, c in comparisons.items()]
        return self.benchmark_rows(entries, "frame_count")

    def items(self) -> list[dict[str, Any]] | None:
        if self.r.get("tasks") is not None:
            return self.task_items()
        rows: dict[int, dict[str, Any]] = {}

        def row(item: int, name: Any = None) -> dict[str, Any]:
            entry = rows.get(item)
            if entry is None:  # not setdefault: building the default per conflict costs 2x
                entry = rows[item] = {
                    "item": item,
                    "name": None,
                    "score": None,
                    "basis": None,
                    "agreement": None,
                    "per_annotator": None,
                    "conflicts": {"error": 0, "warning": 0},
                    "flagged": False,
                    "flags": [],
                }
            if entry["name"] is None and name is not None:
                entry["name"] = name
            return entry

        for a in (self.agreement() or {}).get("per_item", []):
            entry = row(int(a["item"]), a.get("name"))
            entry.update(score=a["agreement"], basis="agreement", agreement=a["agreement"])
            if a["agreement"] < LOW_AGREEMENT:
                entry["flags"].append(
                    {"reason": "low_agreement", "value": a["agreement"], "threshold": LOW_AGREEMENT}
                )
        conflict_flags: dict[tuple[int, str, str], dict[str, Any]] = {}
        # 100k conflict rows are common: the loop keeps lookups local (the dashboard's bench).
        for c in self.r.get("conflicts") or []:
            annotator = c.get("annotator", "")
            if annotator.startswith(PREDICTION_PREFIX):
                continue  # a model's errors against GT say nothing about the annotation work
            frame = int(c["frame"])
            found = rows.get(frame)
            entry = (
                found
                if found is not None and found["name"] is not None
                else row(frame, c.get("item_name"))
            )
            counts = entry["conflicts"]
            severity = c.get("severity", "error")
            counts[severity] = counts.get(severity, 0) + 1
            if severity == "error":
                key = (frame, annotator, c["type"])
                flag = conflict_flags.get(key)
                if flag is None:
                    flag = conflict_flags[key] = {
                        "reason": "conflict",
                        "annotator": annotator,
                        "type": c["type"],
                        "count": 0,
                    }
                    entry["flags"].append(flag)
                flag["count"] += 1
        for alert in self.r.get("alerts") or []:
            if alert.get("type") == "outlier_item" and alert.get("item") is not None:
                row(int(alert["item"]))["flags"].append(
                    {
                        "reason": "outlier",
                        "annotator": alert.get("annotator"),
                        "message": alert.get("message"),
                    }
                )
        if self.r.get("conflicts_truncated"):
            self.missing(
                "conflicts",
                f"{self.r['conflicts_truncated']} conflict rows were left out of the stored "
                "bundle; counts may be low",
            )
        for entry in rows.values():
            entry["flagged"] = bool(entry["flags"])
        return _worst_first(rows.values())

    def annotators(self) -> list[dict[str, Any]] | None:
        cards = self.cards()
        if cards is None:
            self.missing("results", "no scorecards: no ground truth annotator to score against")
        return cards

    def task_items(self) -> list[dict[str, Any]]:
        """Items of a report scored per task: the task's score and flags, conflicts counted
        from the stored conflict rows (None when the report keeps none)."""
        tasks = self.r["tasks"]
        flagged = {int(t) for t in self.r.get("flagged") or []}
        names = {
            int(a["item"]): a.get("name") for a in (self.agreement() or {}).get("per_item", [])
        }
        counted: dict[int, dict[str, int]] | None = None
        if self.r.get("conflicts") is not None:
            counted = {}
            for c in self.r["conflicts"]:
                if not str(c.get("annotator", "")).startswith(PREDICTION_PREFIX):
                    per = counted.setdefault(int(c["frame"]), {"error": 0, "warning": 0})
                    severity = c.get("severity", "error")
                    per[severity] = per.get(severity, 0) + 1
        rows = []
        for task, entry in tasks.items():
            item = int(task)
            conflicting = list(entry.get("conflicting_annotators") or [])
            flags: list[dict[str, Any]] = []
            if conflicting:
                flags.append({"reason": "conflicting_annotators", "annotators": conflicting})
            elif item in flagged:
                # The run's threshold is not stored; with no conflict, a low score flagged it.
                flags.append({"reason": "low_score", "value": entry.get("score")})
            rows.append(
                {
                    "item": item,
                    "name": names.get(item),
                    "score": entry.get("score"),
                    "basis": entry.get("basis"),
                    "agreement": entry.get("agreement"),
                    "per_annotator": entry.get("per_annotator"),
                    "conflicts": (
                        None if counted is None else counted.get(item, {"error": 0, "warning": 0})
                    ),
                    "flagged": item in flagged,
                    "flags": flags,
                }
            )
        return _worst_first(rows)


class _ScorecardsView(_View):
    kind = "scorecards"

    def cards(self) -> list[dict[str, Any]] | None:
        cards = self.r.get("annotators")
        return list(cards) if cards is not None else None

    def mean_agreement(self) -> float | None:
        value = (self.r.get("summary") or {}).get("mean_agreement")
        if value is None:
            self.missing("mean_agreement", "no agreement (it needs two annotators sharing items)")
        return value

    def agreement_summary(self) -> dict[str, Any] | None:
        self.missing("summary", "a scorecards report keeps the mean agreement only")
        return {"mean_pairwise_f1": self.mean_agreement()}

    def agreement_items(self) -> list[dict[str, Any]] | None:
        self.missing("results", "a scorecards report has no per-item agreement")
        return None

    def overview(self) -> dict[str, Any]:
        for field in ("items", "labelled_items", "unlabelled_items"):
            self.missing(field, "a scorecards report does not count the project's items")
        return super().overview()

    def benchmark(self) -> list[dict[str, Any]] | None:
        entries = [(c["annotator"], c) for c in self.cards() or [] if "accuracy" in c]
        if not entries:
            self.missing("results", "no ground truth in this run")
        return self.benchmark_rows(entries, "gold_items")

    def items(self) -> list[dict[str, Any]] | None:
        self.missing("results", "a scorecards report has no per-item data")
        return None


def page_bundle(stored: StoredReport) -> dict[str, Any] | None:
    """The bundle a stored report's page renders: a bundle as stored, an old ``ls_project``
    row converted (:func:`_ls_project_as_bundle`); None for kinds that are no run (trend
    records)."""
    if stored.kind == "bundle":
        return dict(stored.report)
    if stored.kind != "ls_project":
        return None
    source = dict(stored.report.get("source") or {})
    return {
        "title": f"labelgate quality report: {source.get('name') or stored.target}",
        "generated_at": stored.created_at.isoformat(),
        "source": source,
        "settings": stored.settings,
        "comparisons": {},
        "labels": [],
        "gate": None,
        "history": {},
        "data_errors": [],
        **_ls_project_as_bundle(stored.report),
    }


def _ls_project_as_bundle(report: Mapping[str, Any]) -> dict[str, Any]:
    """An ``ls_project`` row (stored by labelgate before one report kind) read as a bundle:
    its annotator table becomes the scorecards, its tasks stay the per-item data."""
    people = dict(report.get("annotators") or {})
    # A scorecard's ``items`` are the items its annotator worked on: the GT tasks here.
    cards = [
        {"annotator": n, "items": v.get("frame_count"), **v}
        for n, v in people.items()
        if not _is_model(n)
    ]
    return {**report, "scorecards": cards or None, "alerts": None}


def _worst_first(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flagged items first, then by ascending score (unscored last), then by item id."""
    return sorted(
        rows,
        key=lambda r: (
            not r["flagged"],
            r["score"] is None,
            r["score"] if r["score"] is not None else 0.0,
            r["item"],
        ),
    )


_VIEWS: dict[str, Callable[[Mapping[str, Any], dict[str, str]], _View]] = {
    "bundle": _BundleView,
    "scorecards": _ScorecardsView,
    # Old rows of the Label Studio pipeline, read through the one view.
    "ls_project": lambda r, notes: _BundleView(_ls_project_as_bundle(r), notes),
}

__all__ = [
    "MAX_PAGE_SIZE",
    "SECTIONS",
    "SOURCES",
    "build_section",
    "item_rows",
    "latest_report",
    "page_bundle",
    "paginate",
    "parse_paging",
    "pinned_report",
    "project_key",
]
