"""What the dashboard shows, extracted from stored reports (pure: no web framework, no SDK).

Every stored report kind gets one extraction function (:data:`DIGESTERS`) that turns the
report into a small :class:`Digest`: headline scores with Wilson intervals, gate verdict,
alerts, per-label CVAT summary metrics, per-annotator accuracy, agreement matrix. Digests are
what the pages read, so a report is parsed once per id (:class:`DigestCache`) and a project
with 100k conflicts costs one JSON load, not one per request. Per-item rows reuse
:func:`labelgate.reporting.quality_api.item_rows`.

Sources group the store's reports: a report with a project ``"cvat:12"`` belongs to source
``cvat``, id ``12``; ``"labelstudio:7"`` to ``labelstudio``/``7``; a report without a project
(a file run) to source ``file``, id = a short hash of its target (targets may be file paths,
which must not appear in URLs).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from labelgate.adapters import PREDICTION_PREFIX
from labelgate.engine.report import label_metrics
from labelgate.errors import NotFound
from labelgate.ports import ReportReader
from labelgate.reporting.links import conflict_link
from labelgate.reporting.quality_api import item_rows
from labelgate.stats import wilson_interval
from labelgate.store import ReportHead, StoredReport

#: Kinds that represent a source, best first: a source's headline comes from the newest
#: report of the first kind it has (a bundle run also stores a scorecards trend record).
SOURCE_KINDS = ("bundle", "ls_project", "cvat_project", "cvat_task", "cvat_job", "scorecards")
#: Sources with a project namespace in the store (``"<system>:<id>"``).
SYSTEMS = ("cvat", "labelstudio")
SCORE_NAMES = ("accuracy", "precision", "recall")
#: Scorecard fields the project page shows.
CARD_FIELDS = (
    "annotator",
    "items",
    "annotations",
    "accuracy",
    "accuracy_ci95",
    "precision",
    "recall",
    "peer_agreement",
    "approval_rate",
    "rejection_rate",
    "ai_assisted_share",
)


@dataclass(frozen=True)
class Score:
    """A rate with its 95% Wilson interval (None when the report keeps no counts)."""

    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass
class Digest:
    """What the dashboard reads from one stored report."""

    kind: str
    id: str = ""
    created_at: str = ""
    scores: dict[str, Score] = field(default_factory=dict)
    gate_passed: bool | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    conflicts: int | None = None
    agreement: float | None = None
    #: label -> CVAT per-label metrics (precision, recall, accuracy, jaccard_index).
    per_label: dict[str, dict[str, float]] = field(default_factory=dict)
    #: annotator -> accuracy against GT (models left out).
    per_annotator: dict[str, float | None] = field(default_factory=dict)
    cards: list[dict[str, Any]] = field(default_factory=list)
    matrix_annotators: list[str] = field(default_factory=list)
    matrix: list[list[float | None]] = field(default_factory=list)
    has_page: bool = False

    def to_json(self) -> dict[str, Any]:
        """The stored form (without id and time, which the report row holds)."""
        out = asdict(self)
        for k in ("id", "created_at"):
            del out[k]
        return out

    @classmethod
    def from_json(cls, head: ReportHead, data: Mapping[str, Any]) -> Digest:
        """A digest stored with its report (:meth:`to_json`), for the report ``head``."""
        fields = {k: v for k, v in data.items() if k in _FIELDS}
        fields["scores"] = {k: Score(**v) for k, v in (data.get("scores") or {}).items()}
        return cls(
            **{
                **fields,
                "kind": head.kind,
                "id": head.id,
                "created_at": head.created_at.isoformat(),
            }
        )


@dataclass(frozen=True)
class SourceKey:
    """A source's URL parts: ``/sources/<source>/<id>``."""

    source: str
    id: str


def source_key(head: ReportHead) -> SourceKey:
    """The source a stored report belongs to (see the module docstring)."""
    if head.project:
        system, sep, rest = head.project.partition(":")
        if sep and system in SYSTEMS and rest:
            return SourceKey(system, rest)
        if "/" not in head.project and "\\" not in head.project:
            return SourceKey("file", head.project)
    # File runs are keyed by their full path (``file:/srv/data/gt.xml``), and a run without a
    # project by its target: the URL carries a hash, never a server path.
    return SourceKey("file", _short_hash(head.project or head.target))


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def pooled(valid: float, total: float) -> Score:
    """``valid / total`` with its Wilson interval; None when nothing was counted."""
    if total <= 0:
        return Score(None)
    low, high = wilson_interval(valid, total)
    return Score(valid / total, low, high)


def _human(name: str) -> bool:
    return not name.startswith(PREDICTION_PREFIX)


def _per_label(matrix: Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    """CVAT's per-label metrics from a serialised confusion matrix (``unmatched`` dropped)."""
    if not matrix or not matrix.get("labels"):
        return {}
    keys = ("precision", "recall", "accuracy", "jaccard_index")
    return {
        label: {k: float(matrix[k][i]) for k in keys}
        for i, label in enumerate(matrix["labels"])
        if label != "unmatched"
    }


def _summed_matrix(blocks: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Confusion matrices of several annotators (same labels) summed, metrics recomputed."""
    blocks = [b for b in blocks if b and b.get("labels")]
    if not blocks or any(b["labels"] != blocks[0]["labels"] for b in blocks):
        return None
    m = np.sum([np.asarray(b["rows"], dtype=np.float64) for b in blocks], axis=0)
    metrics = {k: v.tolist() for k, v in label_metrics(m).items()}
    return {"labels": blocks[0]["labels"], **metrics}


def _agreement(d: Digest, agreement: Mapping[str, Any] | None) -> None:
    if not isinstance(agreement, Mapping):
        return
    d.agreement = (agreement.get("summary") or {}).get("mean_pairwise_f1")
    d.matrix_annotators = list(agreement.get("annotators") or [])
    d.matrix = list((agreement.get("matrix") or {}).get("f1") or [])


def _card_fields(card: Mapping[str, Any]) -> dict[str, Any]:
    return {k: card.get(k) for k in CARD_FIELDS}


def digest_bundle(rep: Mapping[str, Any]) -> Digest:
    """``bundle`` (``labelgate report``, CVAT runs): counts pooled over the human annotators."""
    d = Digest("bundle", has_page=True)
    comparisons = {n: c for n, c in (rep.get("comparisons") or {}).items() if _human(n)}
    sums = {k: 0.0 for k in ("valid_count", "total_count", "ds_count", "gt_count")}
    for c in comparisons.values():
        for k in sums:
            sums[k] += float((c.get("summary") or {}).get(k) or 0)
    if comparisons:
        d.scores = {
            "accuracy": pooled(sums["valid_count"], sums["total_count"]),
            "precision": pooled(sums["valid_count"], sums["ds_count"]),
            "recall": pooled(sums["valid_count"], sums["gt_count"]),
        }
    d.per_label = _per_label(
        _summed_matrix([c.get("confusion_matrix") for c in comparisons.values()])
    )
    gate = rep.get("gate")
    d.gate_passed = gate.get("passed") if isinstance(gate, Mapping) else None
    d.alerts = list(rep.get("alerts") or [])
    d.conflicts = len(rep.get("conflicts") or []) + int(rep.get("conflicts_truncated") or 0)
    cards = list(rep.get("scorecards") or [])
    d.cards = [_card_fields(c) for c in cards]
    d.per_annotator = {c["annotator"]: c.get("accuracy") for c in cards if _human(c["annotator"])}
    _agreement(d, rep.get("agreement"))
    if isinstance(rep.get("annotators"), Mapping) and rep["annotators"]:
        # A source's own accuracy table (Label Studio's, over each labelling control) is the
        # headline its pages show; the whole-set comparisons would disagree with it.
        own = digest_ls_project(rep)
        d.scores, d.per_annotator = own.scores, own.per_annotator
    return d


def digest_cvat(rep: Mapping[str, Any]) -> Digest:
    """``cvat_job``/``cvat_task``/``cvat_project``: CVAT's own summary and per-label metrics."""
    d = Digest("cvat_task")
    s = rep.get("summary") or {}
    d.scores = {
        "accuracy": pooled(s.get("valid_count") or 0, s.get("total_count") or 0),
        "precision": pooled(s.get("valid_count") or 0, s.get("ds_count") or 0),
        "recall": pooled(s.get("valid_count") or 0, s.get("gt_count") or 0),
    }
    d.conflicts = s.get("conflict_count")
    d.per_label = _per_label((rep.get("annotations") or {}).get("confusion_matrix"))
    return d


def digest_ls_project(rep: Mapping[str, Any]) -> Digest:
    """``ls_project``: per-annotator rates against the GT annotator (no counts, so the headline
    accuracy is the annotators' mean without an interval)."""
    d = Digest("ls_project")
    people = {n: v for n, v in (rep.get("annotators") or {}).items() if _human(n)}
    d.per_annotator = {n: v.get("accuracy") for n, v in people.items()}
    d.cards = [_card_fields({"annotator": n, **v}) for n, v in people.items()]
    for name in SCORE_NAMES:
        values = [v[name] for v in people.values() if v.get(name) is not None]
        if values:
            d.scores[name] = Score(sum(values) / len(values))
    d.conflicts = sum(
        bool(t.get("conflicting_annotators")) for t in (rep.get("tasks") or {}).values()
    )
    _agreement(d, rep.get("agreement"))
    return d


def digest_scorecards(rep: Mapping[str, Any]) -> Digest:
    """``scorecards``: the trend record (means, cards, alerts)."""
    d = Digest("scorecards")
    summary = rep.get("summary") or {}
    d.agreement = summary.get("mean_agreement")
    if summary.get("mean_accuracy") is not None:
        d.scores["accuracy"] = Score(summary["mean_accuracy"])
    cards = list(rep.get("annotators") or [])
    d.cards = [_card_fields(c) for c in cards]
    d.per_annotator = {c["annotator"]: c.get("accuracy") for c in cards if _human(c["annotator"])}
    d.alerts = list(rep.get("alerts") or [])
    return d


def item_links(kind: str, rep: Mapping[str, Any]) -> dict[int, str]:
    """Item id -> URL in the annotation tool: a bundle's first human conflict link per frame
    (CVAT job/frame), or every task of a Label Studio project (its task URL)."""
    links: dict[int, str] = {}
    if kind == "bundle":
        for c in rep.get("conflicts") or []:
            if c.get("link") and _human(c.get("annotator", "")):
                links.setdefault(int(c["frame"]), c["link"])
    if kind == "ls_project" or (kind == "bundle" and rep.get("tasks") is not None):
        # A Label Studio run (an old ls_project row, or a bundle with its per-task scores).
        meta = {"system": "labelstudio", **((rep.get("source") or {}).get("meta") or {})}
        meta.setdefault("project_id", rep.get("project"))
        for task in rep.get("tasks") or {}:
            link = conflict_link(meta, int(task))
            if link:
                links.setdefault(int(task), link)
    return links


DIGESTERS: dict[str, Callable[[Mapping[str, Any]], Digest]] = {
    "bundle": digest_bundle,
    "ls_project": digest_ls_project,
    "cvat_project": digest_cvat,
    "cvat_task": digest_cvat,
    "cvat_job": digest_cvat,
    "scorecards": digest_scorecards,
}


_FIELDS = {f.name for f in fields(Digest)}


def digest_report(kind: str, report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The stored digest of a report (:meth:`Digest.to_json`), None for kinds the dashboard
    does not read. The store calls this when it saves a report, so listing runs never parses
    their bodies."""
    if kind not in DIGESTERS:
        return None
    d = DIGESTERS[kind](report)
    d.kind = kind
    return d.to_json()


@dataclass
class ItemTable:
    """A report's item rows, worst first (None: the kind keeps none), and their tool links."""

    rows: list[dict[str, Any]] | None
    links: dict[int, str]
    #: Flag reasons and conflict types present (the page's "problem" filter choices).
    reasons: list[str] = field(default_factory=list)


class DigestCache:
    """Digests and item rows per report, computed once (a keyed re-save changes
    ``created_at``, so it is part of the key). Bounded LRU, small because one item table of a
    100k-conflict report holds tens of MB; safe across server threads."""

    def __init__(self, store: ReportReader, size: int = 32) -> None:
        self.store = store
        self.size = size
        self._lock = threading.Lock()
        self._data: OrderedDict[tuple[str, str, str], Any] = OrderedDict()

    def _get(self, what: str, head: ReportHead, build: Callable[[StoredReport], Any]) -> Any:
        key = (what, head.id, head.created_at.isoformat())
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        value = build(self.store.get_report(head.id))
        with self._lock:
            self._data[key] = value
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value

    def digest(self, head: ReportHead) -> Digest:
        """The report's digest: the stored one, else computed from the body (older rows)."""
        if head.digest is not None:
            return Digest.from_json(head, head.digest)

        def build(r: StoredReport) -> Digest:
            return Digest.from_json(head, digest_report(r.kind, r.report) or {})

        return self._get("digest", head, build)  # type: ignore[no-any-return]

    def items(self, head: ReportHead) -> ItemTable:
        """The report's item rows and links (the body is parsed once per report)."""

        def build(r: StoredReport) -> ItemTable:
            rows = item_rows(r)
            reasons = {f.get("type") or f["reason"] for row in rows or [] for f in row["flags"]}
            return ItemTable(rows, item_links(r.kind, r.report), sorted(reasons))

        return self._get("items", head, build)  # type: ignore[no-any-return]


@dataclass
class SourceSummary:
    """One dashboard row: a source, its headline report and its trend."""

    key: SourceKey
    name: str
    heads: list[ReportHead]
    #: The runs the trend covers, oldest first, with their digests (the last is the latest).
    runs: list[ReportHead]
    digests: list[Digest]

    @property
    def latest(self) -> Digest:
        return self.digests[-1]

    @property
    def trend(self) -> list[float | None]:
        """Headline accuracy per run, oldest first."""
        return [d.scores.get("accuracy", Score(None)).value for d in self.digests]


def group_heads(heads: Iterable[ReportHead]) -> dict[SourceKey, list[ReportHead]]:
    """Stored reports by source, each list newest first (as the store lists them)."""
    out: dict[SourceKey, list[ReportHead]] = {}
    for h in heads:
        if h.kind in DIGESTERS:
            out.setdefault(source_key(h), []).append(h)
    return out


def headline_kind(heads: Sequence[ReportHead]) -> str:
    """The kind that represents the source: the first of :data:`SOURCE_KINDS` it has."""
    kinds = {h.kind for h in heads}
    return next(k for k in SOURCE_KINDS if k in kinds)


def summarize(
    cache: DigestCache, key: SourceKey, heads: Sequence[ReportHead], history: int = 30
) -> SourceSummary:
    """A source's row: the newest report of its headline kind and the earlier runs of the same
    kind and target (a CVAT project stores one bundle per task: a trend follows one task)."""
    kind = headline_kind(heads)
    newest = next(h for h in heads if h.kind == kind)
    runs = [h for h in heads if h.kind == kind and h.target == newest.target][:history]
    runs.reverse()
    if key.source == "file":
        name = newest.target
    else:
        name = f"project {key.id}" if key.id.isdigit() else key.id.replace(":", " ")
    return SourceSummary(key, name, list(heads), runs, [cache.digest(h) for h in runs])


def source_heads(store: ReportReader, key: SourceKey) -> list[ReportHead]:
    """A source's stored reports, newest first.

    Raises:
        NotFound: nothing stored for the source.
    """
    if key.source in SYSTEMS:
        heads = store.list_heads(project=f"{key.source}:{key.id}")
    else:
        heads = [h for h in store.list_heads() if source_key(h) == key]
    heads = [h for h in heads if h.kind in DIGESTERS]
    if not heads:
        raise NotFound(f"no stored quality report for source {key.source}/{key.id}")
    return heads


def series(
    digests: Sequence[Digest], pick: Callable[[Digest], Mapping[str, Any]]
) -> dict[str, list[float | None]]:
    """Per-name value series over runs (oldest first); a run without the name gives None."""
    names: list[str] = []
    for d in digests:
        names += [n for n in pick(d) if n not in names]
    return {n: [pick(d).get(n) for d in digests] for n in names}


def filter_items(
    rows: Sequence[dict[str, Any]],
    *,
    flagged: bool = False,
    annotator: str | None = None,
    reason: str | None = None,
) -> list[dict[str, Any]]:
    """Item rows kept by the page's filters: flagged only, flags naming an annotator
    (conflict, outlier or conflicting-annotators flags), flags of a reason or conflict type."""

    def names(flag: Mapping[str, Any]) -> list[str]:
        return [flag["annotator"]] if flag.get("annotator") else list(flag.get("annotators") or [])

    out = []
    for r in rows:
        if flagged and not r["flagged"]:
            continue
        if annotator and not any(annotator in names(f) for f in r["flags"]):
            continue
        if reason and not any(reason in (f.get("reason"), f.get("type")) for f in r["flags"]):
            continue
        out.append(r)
    return out


def sparkline(
    values: Sequence[float | None], width: int = 120, height: int = 28, label: str = ""
) -> str:
    """An inline SVG line chart of rates in [0, 1]: one ``<circle class="pt">`` per defined
    value, joined by a polyline; None values are gaps in x but draw nothing."""
    pts = [(i, v) for i, v in enumerate(values) if v is not None]
    step = (width - 8) / max(len(values) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return 4 + i * step, 4 + (1 - min(max(v, 0.0), 1.0)) * (height - 8)

    coords = [xy(i, v) for i, v in pts]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    circles = "".join(
        f'<circle class="pt" cx="{x:.1f}" cy="{y:.1f}" r="2"><title>{v:.3f}</title></circle>'
        for (x, y), (_, v) in zip(coords, pts, strict=True)
    )
    title = f"<title>{_esc(label)}</title>" if label else ""
    return (
        f'<svg class="chart" role="img" aria-label="{_esc(label)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">{title}'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{line}"/>'
        f"{circles}</svg>"
    )


def _esc(text: str) -> str:
    from html import escape

    return escape(text, quote=True)


__all__ = [
    "DIGESTERS",
    "Digest",
    "DigestCache",
    "ItemTable",
    "Score",
    "SourceKey",
    "SourceSummary",
    "digest_report",
    "filter_items",
    "group_heads",
    "headline_kind",
    "item_links",
    "pooled",
    "series",
    "source_heads",
    "source_key",
    "sparkline",
    "summarize",
]
