"""The main job: one quality run of a batch gathered into one JSON-ready bundle.

:func:`report_batch` scores a pulled batch once (:func:`labelgate.run.run_quality`) and
:func:`bundle_for` builds the bundle from that run alone: scorecards, per-label figures,
alerts and the gate are :mod:`labelgate.decisions`' pure functions of the run, the store only
adds the drift lines; :func:`render_html <labelgate.reporting.html.render_html>` turns the
bundle into the page. :func:`build_bundle` and :func:`bundle_for_set` are the same for callers
holding sets rather than a batch.

Bundle keys: ``title, generated_at, version, source, settings, comparisons{annotator: {summary,
confusion_matrix}}, conflicts[...], conflicts_truncated, agreement, scorecards, labels, alerts,
gate, history{time, agreement, accuracy}, data_errors`` and, when stored, ``report_id``. In
requirement mode each comparison adds ``requirements`` (CVAT 2.74+'s report shape) and the bundle
``semantics``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from labelgate import __version__
from labelgate.agreement.report import agreement_headline
from labelgate.arrays import IntArray
from labelgate.engine import QualitySettings
from labelgate.errors import ValidationError
from labelgate.model import AnnotationSet
from labelgate.reporting.links import conflict_link
from labelgate.run import Progress, QualityRun, RunOptions, StepCallback, run_quality
from labelgate.run_sources import (  # noqa: F401  (re-exported: the batch helpers' old home)
    Batch,
    as_ground_truth,
    as_predictions,
    combine_batch,
    file_project,
    run_project,
)

if TYPE_CHECKING:
    from labelgate.decisions.gate import GatePolicy

#: Conflict rows kept in the bundle (the page stays usable); the rest are counted.
MAX_CONFLICT_ROWS = 5000
#: Store kinds written by a run: the small trend record and the full bundle.
HISTORY_KIND = "scorecards"
BUNDLE_KIND = "bundle"


def build_bundle(
    gt: AnnotationSet,
    sources: Sequence[AnnotationSet],
    settings: QualitySettings | None = None,
    *,
    policy: GatePolicy | None = None,
    store: Any = None,
    predictions: Sequence[AnnotationSet] | AnnotationSet | None = None,
    project: str | None = None,
    on_step: StepCallback | None = None,
) -> dict[str, Any]:
    """Everything the report shows, for a GT set and the annotators' sets.

    Args:
        gt: the ground truth (all of its annotations count as annotator "ground_truth").
        sources: one set per annotator (each may hold several annotators).
        settings: quality settings (CVAT defaults when None).
        policy: the release gate policy for the gate section, or None.
        store: a :class:`~labelgate.store.Store`: the history is read from it and this run is
            saved to it (``bundle["report_id"]``); None for neither.
        predictions: model prediction sets, compared with GT like annotators but left out of
            agreement and scorecards.
        project: the history's project name (default: :func:`run_project` of the GT set).
        on_step: progress callback ``(description, done, total)``.

    Returns:
        The bundle (JSON-ready dict) described in the module docstring.

    Raises:
        ValidationError: see :func:`combine_batch`.
    """
    batch = Batch.of_parts(gt, sources, settings, predictions=predictions, project=project)
    return report_batch(batch, policy=policy, store=store, on_step=on_step)


def bundle_for_set(
    aset: AnnotationSet,
    settings: QualitySettings | None = None,
    *,
    policy: GatePolicy | None = None,
    store: Any = None,
    project: str | None = None,
    on_step: StepCallback | None = None,
    metas: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """:func:`build_bundle` for one multi-annotator set (GT = annotator "ground_truth").

    Args:
        aset: the batch, e.g. a Label Studio export with a GT annotator.
        metas: source meta per annotator for the conflict links (default: ``aset.meta``).
        settings, policy, store, project, on_step: as in :func:`build_bundle`.
    """
    batch = Batch.of_set(aset, settings, project=project, metas=metas)
    return report_batch(batch, policy=policy, store=store, on_step=on_step)


def report_batch(
    batch: Batch,
    *,
    policy: GatePolicy | None = None,
    store: Any = None,
    on_step: StepCallback | None = None,
    options: RunOptions | None = None,
    semantics: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Score a pulled batch once (:func:`~labelgate.run.run_quality`) and build its bundle.

    Args:
        options: what the run computes (``requirements``: requirement mode).
        semantics: the ``semantics`` key to record (``SemanticsChoice.record()``).
    """
    progress = Progress(on_step, later=2 + (policy is not None))
    run = run_quality(batch, progress=progress, options=options)
    return bundle_for(run, policy=policy, store=store, progress=progress, semantics=semantics)


def bundle_for(
    run: QualityRun,
    *,
    policy: GatePolicy | None = None,
    store: Any = None,
    progress: Progress | None = None,
    semantics: Mapping[str, str] | None = None,
    sections: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The bundle of a quality run: a pure function of the run, plus the store's history.

    Args:
        run: the scored batch.
        policy: the release gate policy for the gate section, or None.
        store: the history is read from it and this run saved to it; None for neither.
        progress: step reporting (scorecards, history, gate).
        semantics: ``{"semantics": ...}`` to record; a requirement-mode run records
            ``cvat-requirements`` anyway.
        sections: a source's own sections (Label Studio's task scores), added to the bundle
            before it is stored; they replace a bundle section of the same name.
    """
    from labelgate.decisions.gate import gate_for
    from labelgate.decisions.scorecards import alerts_for, per_label_for, scorecards_for

    progress = progress or Progress(None)
    aset = run.aset
    project = run.batch.project
    # Only the rows the bundle keeps are built (item names, links); the rest are counted.
    conflicts: list[dict[str, Any]] = []
    total_conflicts = 0
    for name, comparison in run.comparisons.items():
        head = comparison.report.conflict_head(MAX_CONFLICT_ROWS - len(conflicts))
        conflicts.extend(conflict_rows(aset, name, comparison.meta, head))
        total_conflicts += comparison.report.conflict_tally().count
    progress.step("scorecards and per-label figures")
    cards = scorecards_for(run) if run.humans else []
    labels = per_label_for(run)
    progress.step("history and alerts")
    history = read_history(store, project) if store is not None else {}
    current = run.agreement.headline
    past = [v for v in history.get("agreement", []) if v is not None]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    accuracy = _mean([c.get("accuracy") for c in cards])
    if store is not None:  # this run is the newest point of the trend
        for key, value in (("time", now), ("agreement", current), ("accuracy", accuracy)):
            history.setdefault(key, []).append(value)
        history["drift"] = find_drift(history)
    gate = None
    if policy is not None:
        progress.step("release gate")
        gate = gate_for(run, policy)
    bundle: dict[str, Any] = {
        "title": f"labelgate quality report: {aset.name}",
        "generated_at": now,
        "version": __version__,
        "source": {"name": aset.name, "items": len(aset.items), "meta": dict(aset.meta)},
        "settings": run.settings.to_dict(),
        "comparisons": {n: c.to_dict() for n, c in run.comparisons.items()},
        "conflicts": conflicts,
        "conflicts_truncated": total_conflicts - len(conflicts),
        "agreement": run.agreement.to_dict(),
        "scorecards": cards,
        "labels": labels,
        "alerts": alerts_for(run, cards, agreement_history=past, current_agreement=current),
        "gate": gate,
        "history": history,
        "data_errors": run.data_errors,
    }
    if any(c.requirements is not None for c in run.comparisons.values()):
        bundle["semantics"] = "cvat-requirements"
    bundle.update(semantics or {})
    bundle.update(sections or {})
    if store is not None:
        save_run(store, bundle, project=project, **stored_identity(run))
    return bundle


def stored_identity(run: QualityRun) -> dict[str, str]:
    """The store's ``source`` and ``target`` of a run: ``file`` and the set's name for files,
    else the pulled system and ``<kind>:<id>`` (``labelstudio``, ``project:7``)."""
    target = run.batch.target
    if target.kind == "set":
        return {"source": "file", "target": run.aset.name}
    return {"source": target.system, "target": f"{target.kind}:{target.id}"}


def bundle_from_report(
    report: Mapping[str, Any],
    *,
    annotator: str = "annotations",
    meta: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """A page bundle from one CVAT-shaped comparison report (``compare(...).to_dict()``).

    Lets stored job/task reports (from the adapters' pipelines or ``labelgate compare --json``)
    render with :func:`~labelgate.reporting.html.render_html`; the sections that need several
    annotators, a policy or history say "not available".

    Args:
        report: the CVAT-shaped report (``summary``, ``annotations.confusion_matrix``,
            ``conflicts``).
        annotator: the name shown for the compared annotations.
        meta: source meta for the conflict links (host, task/job or project ids).
        title: page title.

    Raises:
        ValidationError: ``report`` lacks the CVAT fields.
    """
    try:
        summary = report["summary"]
        matrix = report["annotations"]["confusion_matrix"]
        raw = report["conflicts"]
    except (KeyError, TypeError):
        raise ValidationError(
            "report: expected a CVAT-shaped comparison report with 'summary', "
            "'annotations.confusion_matrix' and 'conflicts'"
        ) from None
    meta = dict(meta or {})
    rows = [
        {
            "annotator": annotator,
            "type": c["type"],
            "severity": c["severity"],
            "frame": c["frame_id"],
            "item_name": str(c["frame_id"]),
            "labels": " vs ".join(x or "—" for x in c.get("label_names", [])),
            "similarity": c.get("similarity"),
            "link": conflict_link(meta, c["frame_id"], (c.get("annotation_ids") or [None])[0]),
            "label_names": c.get("label_names", []),
            "geometry": c.get("geometry"),
        }
        for c in raw
    ]
    return {
        "title": title or f"labelgate quality report: {annotator}",
        "generated_at": report.get("created_date", "—"),
        "version": __version__,
        "source": {"name": annotator, "items": summary.get("frame_count", "—"), "meta": meta},
        "settings": report.get("parameters"),
        "comparisons": {annotator: {"summary": summary, "confusion_matrix": matrix}},
        "conflicts": rows[:MAX_CONFLICT_ROWS],
        "conflicts_truncated": max(0, len(rows) - MAX_CONFLICT_ROWS),
        "agreement": None,
        "scorecards": [],
        "labels": [],
        "alerts": None,
        "gate": None,
        "history": {},
        "data_errors": list(report.get("data_errors", [])),
    }


def bundle_from_requirement_report(
    report: Mapping[str, Any],
    *,
    annotator: str = "annotations",
    meta: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """A page bundle from one requirement-mode report (CVAT 2.74+'s shape, a stored CVAT job,
    task or project report or ``labelgate compare --json`` in requirement mode).

    The requirements section shows every requirement; the conflict table lists each conflict
    once although several requirements may report it (CVAT deduplicates them the same way).

    Raises:
        ValidationError: ``report`` lacks ``summary.requirements`` or ``groups``.
    """
    try:
        summary = dict(report["summary"])
        _ = summary["requirements"]["items"]  # the shape check
        groups = dict(report["groups"])
    except (KeyError, TypeError):
        raise ValidationError(
            "report: expected a requirement-mode report with 'summary.requirements' and 'groups'"
        ) from None
    meta = dict(meta or {})
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    for group in groups.values():
        for result in (group.get("frame_results") or {}).values():
            for c in result.get("conflicts") or ():
                key = json.dumps([c["type"], c["frame_id"], c.get("annotation_ids")], default=str)
                if key in seen:
                    continue
                seen.add(key)
                rows.append(
                    {
                        "annotator": annotator,
                        "type": c["type"],
                        "severity": c["severity"],
                        "frame": c["frame_id"],
                        "item_name": str(c["frame_id"]),
                        "labels": " vs ".join(x or "—" for x in c.get("label_names", [])),
                        "similarity": c.get("similarity"),
                        "link": conflict_link(
                            meta, c["frame_id"], (c.get("annotation_ids") or [None])[0]
                        ),
                        "label_names": c.get("label_names", []),
                        "geometry": c.get("geometry"),
                    }
                )
    rows.sort(key=lambda r: r["frame"])
    return {
        "title": title or f"labelgate quality report: {annotator}",
        "generated_at": report.get("created_date", "—"),
        "version": __version__,
        "semantics": "cvat-requirements",
        "source": {"name": annotator, "items": summary.get("validation_frames", "—"), "meta": meta},
        "settings": report.get("parameters"),
        "comparisons": {annotator: {"summary": summary, "requirements": dict(report)}},
        "conflicts": rows[:MAX_CONFLICT_ROWS],
        "conflicts_truncated": max(0, len(rows) - MAX_CONFLICT_ROWS),
        "agreement": None,
        "scorecards": [],
        "labels": [],
        "alerts": None,
        "gate": None,
        "history": {},
        "data_errors": list(report.get("data_errors", [])),
    }


def find_drift(history: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Runs whose agreement or accuracy fell below the rolling average of the runs before them.

    Uses :func:`labelgate.decisions.scorecards.drift` (default window and drop) on each metric's
    defined values; returns ``[{metric, time, value, rolling_average, drop}]``.
    """
    from labelgate.decisions.scorecards import drift

    out: list[dict[str, Any]] = []
    for metric in ("agreement", "accuracy"):
        points = [
            (t, v)
            for t, v in zip(history.get("time", []), history.get(metric, []), strict=False)
            if v is not None
        ]
        for d in drift([v for _, v in points]):
            out.append({"metric": metric, "time": points[d["index"]][0], **d})
    for d in out:
        del d["index"]
    return out


def save_trend(
    store: Any,
    *,
    source: str,
    target: str,
    project: str,
    agreement: float | None,
    annotators: Sequence[Mapping[str, Any]],
    labels: Sequence[Any] = (),
    alerts: Sequence[Any] = (),
    settings: Any = None,
) -> str:
    """One run's trend record (``labelgate history`` reads these): mean agreement and accuracy
    of the human annotators, and their cards."""
    return str(
        store.save_report(
            HISTORY_KIND,
            source,
            target,
            {
                "summary": {
                    "mean_agreement": agreement,
                    "mean_accuracy": _mean([c.get("accuracy") for c in annotators]),
                },
                "annotators": list(annotators),
                "labels": list(labels),
                "alerts": list(alerts),
            },
            project=project,
            settings=settings,
        )
    )


def read_history(store: Any, project: str) -> dict[str, list[Any]]:
    """Earlier runs' mean agreement and accuracy, oldest first: ``{time, agreement, accuracy}``."""
    history: dict[str, list[Any]] = {"time": [], "agreement": [], "accuracy": []}
    for r in reversed(store.list_reports(project=project, kind=HISTORY_KIND)):
        summary = r.report.get("summary", {})
        history["time"].append(r.created_at.isoformat())
        history["agreement"].append(summary.get("mean_agreement"))
        history["accuracy"].append(summary.get("mean_accuracy"))
    return history


def save_run(
    store: Any, bundle: dict[str, Any], *, project: str, target: str, source: str = "file"
) -> str:
    """Store this run: a small trend record (read by :func:`read_history`) and the bundle.

    Every run is stored as this one kind, whatever its ``source`` system. Sets
    ``bundle["report_id"]`` (the public id; the page is served at ``/reports/<id>.html``) and
    returns it.
    """
    save_trend(
        store,
        source=source,
        target=target,
        project=project,
        agreement=agreement_headline(bundle["agreement"]),
        annotators=bundle["scorecards"],
        labels=bundle["labels"],
        alerts=bundle["alerts"],
        settings=bundle["settings"],
    )
    bundle["report_id"] = store.save_report(
        BUNDLE_KIND, source, target, bundle, project=project, settings=bundle["settings"]
    )
    return str(bundle["report_id"])


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def conflict_rows(
    aset: AnnotationSet,
    annotator: str,
    meta: Mapping[str, Any],
    conflicts: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Bundle rows of one annotator's comparison conflicts (item name, tool link, geometry)."""
    if not conflicts:
        return []
    frames = np.array([c["frame_id"] for c in conflicts])
    names = _item_names(aset, frames)
    return [
        {
            "annotator": annotator,
            "type": c["type"],
            "severity": c["severity"],
            "frame": c["frame_id"],
            "item_name": name,
            "labels": " vs ".join(x or "—" for x in c["label_names"]),
            "similarity": c["similarity"],
            "link": conflict_link(meta, c["frame_id"], (c["annotation_ids"] or [None])[0]),
            "label_names": c["label_names"],
            "geometry": c.get("geometry"),
        }
        for c, name in zip(conflicts, names, strict=True)
    ]


def _item_names(aset: AnnotationSet, frames: IntArray) -> list[str]:
    """Item names for frame ids (the id itself when the item is unknown)."""
    ids = aset.items.id
    pos = np.clip(np.searchsorted(ids, frames), 0, max(len(ids) - 1, 0))
    known = (pos < len(ids)) & (ids[pos] == frames) if len(ids) else np.zeros(len(frames), bool)
    return [
        str(aset.items.name[p]) if k else str(f)
        for p, k, f in zip(pos.tolist(), known.tolist(), frames.tolist(), strict=True)
    ]
