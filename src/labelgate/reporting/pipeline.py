"""The main job: score a batch with every engine and gather one JSON-ready bundle.

Runs the public pipeline functions only — :func:`labelgate.engine.compare`,
:func:`labelgate.agreement.agreement_report`, :mod:`labelgate.decisions` (scorecards, per-label
figures, alerts, gate) and the report store for the drift lines; :func:`render_html
<labelgate.reporting.html.render_html>` turns the bundle into the page.

Bundle keys: ``title, generated_at, version, source, settings, comparisons{annotator: {summary,
confusion_matrix}}, conflicts[...], conflicts_truncated, agreement, scorecards, labels, alerts,
gate, history{time, agreement, accuracy}, data_errors`` and, when stored, ``report_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from labelgate import __version__
from labelgate.adapters import GT_ANNOTATOR, PREDICTION_PREFIX
from labelgate.agreement.report import agreement_headline
from labelgate.engine import QualitySettings, compare
from labelgate.errors import ValidationError
from labelgate.model import Annotations, AnnotationSet, Submission
from labelgate.reporting.links import conflict_link

#: Conflict rows kept in the bundle (the page stays usable); the rest are counted.
MAX_CONFLICT_ROWS = 5000
#: Store kinds written by a run: the small trend record and the full bundle.
HISTORY_KIND = "scorecards"
BUNDLE_KIND = "bundle"

#: ``on_step(description, done, total)``: progress callback for long runs (CLI progress bars).
StepCallback = Callable[[str, int, int], None]


def _renamed(aset: AnnotationSet, names: Sequence[str]) -> AnnotationSet:
    """The same set with its annotator tuple replaced (same length, same order)."""
    ann = Annotations(**{**aset.annotations.__dict__, "annotators": tuple(names)})
    return aset.replace(annotations=ann)


def as_ground_truth(gt: AnnotationSet) -> AnnotationSet:
    """``gt`` with every annotation credited to the annotator ``"ground_truth"``."""
    # Column and names change together: a reader may have named no annotator (COCO).
    ann = gt.annotations.with_columns(
        annotator=np.zeros(len(gt.annotations), dtype=np.int32), annotators=(GT_ANNOTATOR,)
    )
    return gt.replace(annotations=ann)


def as_predictions(pred: AnnotationSet) -> AnnotationSet:
    """``pred`` with annotators named ``"prediction:<model_version>"``.

    The model version is ``meta["model_version"]`` when the reader found one, else the
    annotator's own name (a CVAT export's file name); names already prefixed are kept.
    """
    version = pred.meta.get("model_version")
    names = [
        a if a.startswith(PREDICTION_PREFIX) else f"{PREDICTION_PREFIX}{version or a}"
        for a in pred.annotations.annotators
    ] or [f"{PREDICTION_PREFIX}{version or pred.name}"]
    return _renamed(pred, names)


def _with_coverage(part: AnnotationSet) -> AnnotationSet:
    """Record that a one-annotator file covers all of its items.

    A per-annotator file (a CVAT job export) lists every frame of the job, annotated or not;
    without submission records the combined set would forget the empty frames, and the
    comparison would skip GT objects on frames the annotator left empty.
    """
    names = part.annotations.annotators
    if len(names) != 1 or part.submissions:
        return part
    live = part.items.id[~part.items.deleted]
    return part.replace(submissions=tuple(Submission(int(i), names[0]) for i in live.tolist()))


def combine_batch(
    gt: AnnotationSet,
    sources: Sequence[AnnotationSet],
    predictions: Sequence[AnnotationSet] | AnnotationSet | None = None,
) -> tuple[AnnotationSet, dict[str, dict[str, Any]]]:
    """One multi-annotator set from a GT set, annotator sets and prediction sets.

    Returns:
        The combined set (named after ``gt``, with its meta) and each annotator's source meta,
        used to link conflicts back to the job or task they came from.

    Raises:
        ValidationError: no sources, label schemas differ, or two sources share an annotator.
    """
    if not sources:
        raise ValidationError(f"{gt.name}: give at least one annotator set to compare with")
    if isinstance(predictions, AnnotationSet):
        predictions = [predictions]
    parts = [
        _with_coverage(p)
        for p in [as_ground_truth(gt), *sources, *(as_predictions(p) for p in predictions or ())]
    ]
    metas: dict[str, dict[str, Any]] = {}
    for part in parts:
        if part.schema.names != gt.schema.names:
            raise ValidationError(
                f"{part.source_name}: labels {list(part.schema.names)} differ from the ground "
                "truth's "
                f"{list(gt.schema.names)}"
            )
        for a in part.annotations.annotators:
            if a in metas:
                raise ValidationError(
                    f"{part.source_name}: annotator {a!r} also appears in another source; "
                    "give each annotator's work once"
                )
            metas[a] = dict(part.meta)
    items = parts[0].items
    for part in parts[1:]:
        items = items.merged(part.items)
    combined = AnnotationSet(
        name=gt.name,
        schema=gt.schema,
        items=items,
        annotations=Annotations.concat([p.annotations for p in parts]),
        submissions=tuple(s for p in parts for s in p.submissions),
        meta=dict(gt.meta),
        data_errors=tuple(e for p in parts for e in p.data_errors),
    )
    return combined, metas


def build_bundle(
    gt: AnnotationSet,
    sources: Sequence[AnnotationSet],
    settings: QualitySettings | None = None,
    *,
    policy: Any = None,
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
        policy: a :class:`~labelgate.decisions.gate.GatePolicy` for the gate section, or None.
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
    aset, metas = combine_batch(gt, sources, predictions)
    return bundle_for_set(
        aset, settings, policy=policy, store=store, project=project, on_step=on_step, metas=metas
    )


def bundle_for_set(
    aset: AnnotationSet,
    settings: QualitySettings | None = None,
    *,
    policy: Any = None,
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
    from labelgate.agreement.report import agreement_report
    from labelgate.decisions.gate import evaluate_gate
    from labelgate.decisions.scorecards import alerts, per_label, scorecards

    s = settings or QualitySettings()
    project = project or run_project(aset)
    parts = aset.split_by_annotator()
    gt = parts.get(GT_ANNOTATOR)
    people = [n for n in parts if n and n != GT_ANNOTATOR]
    humans = [n for n in people if not n.startswith(PREDICTION_PREFIX)]
    total = (len(people) if gt is not None else 0) + 3 + (policy is not None)
    done = 0

    def step(description: str) -> None:
        nonlocal done
        if on_step is not None:
            on_step(description, done, total)
        done += 1

    comparisons: dict[str, Any] = {}
    conflicts: list[dict[str, Any]] = []
    if metas is not None:  # each part's own job/task ids go into the conflicts' object ids
        parts = {n: p.replace(meta=dict(metas.get(n, p.meta))) for n, p in parts.items()}
    gt = parts.get(GT_ANNOTATOR)
    if gt is not None:
        for name in people:
            step(f"comparing {name} with the ground truth")
            rep = compare(gt, parts[name], s).to_dict()
            comparisons[name] = {
                "summary": rep["summary"],
                "confusion_matrix": rep["annotations"]["confusion_matrix"],
            }
            conflicts.extend(conflict_rows(aset, name, parts[name].meta, rep["conflicts"]))
    step("agreement between annotators")
    agreement = None
    if len(humans) >= 2:
        try:
            agreement = agreement_report(aset, s, n_boot=100)
        except ValidationError:  # no shared items: the section says "not available"
            agreement = None
    step("scorecards and per-label figures")
    cards = scorecards(aset, s) if humans else []
    labels = per_label(aset, s)
    step("history and alerts")
    history = read_history(store, project) if store is not None else {}
    current = agreement_headline(agreement)
    past = [v for v in history.get("agreement", []) if v is not None]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    accuracy = _mean([c.get("accuracy") for c in cards])
    if store is not None:  # this run is the newest point of the trend
        for key, value in (("time", now), ("agreement", current), ("accuracy", accuracy)):
            history.setdefault(key, []).append(value)
        history["drift"] = find_drift(history)
    gate = None
    if policy is not None:
        step("release gate")
        gate = evaluate_gate(aset, policy, s)
    bundle: dict[str, Any] = {
        "title": f"labelgate quality report: {aset.name}",
        "generated_at": now,
        "version": __version__,
        "source": {"name": aset.name, "items": len(aset.items), "meta": dict(aset.meta)},
        "settings": s.to_dict(),
        "comparisons": comparisons,
        "conflicts": conflicts[:MAX_CONFLICT_ROWS],
        "conflicts_truncated": max(0, len(conflicts) - MAX_CONFLICT_ROWS),
        "agreement": agreement,
        "scorecards": cards,
        "labels": labels,
        "alerts": alerts(
            aset, cards, agreement_history=past, current_agreement=current, settings=s
        ),
        "gate": gate,
        "history": history,
        "data_errors": [dict(e) for e in aset.data_errors],
    }
    if store is not None:
        save_run(store, bundle, project=project, target=aset.name)
    return bundle


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


def run_project(aset: AnnotationSet) -> str:
    """The history key of a run: ``labelstudio:<id>`` for a pulled project, ``file:<absolute
    path>`` for a file (two projects' ``export.json`` never share a history), else its name."""
    meta = aset.meta
    if meta.get("system") == "labelstudio" and meta.get("project_id") is not None:
        return f"labelstudio:{meta['project_id']}"
    if meta.get("file"):
        return file_project(str(meta["file"]))
    return aset.name


def file_project(path: str) -> str:
    """History key of a file run (``history --project FILE`` finds it too)."""
    return f"file:{Path(path).resolve()}"


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


def save_run(store: Any, bundle: dict[str, Any], *, project: str, target: str) -> str:
    """Store this run: a small trend record (read by :func:`read_history`) and the bundle.

    Sets ``bundle["report_id"]`` (the public id; the page is served at ``/reports/<id>.html``)
    and returns it.
    """
    save_trend(
        store,
        source="file",
        target=target,
        project=project,
        agreement=agreement_headline(bundle["agreement"]),
        annotators=bundle["scorecards"],
        labels=bundle["labels"],
        alerts=bundle["alerts"],
        settings=bundle["settings"],
    )
    bundle["report_id"] = store.save_report(
        BUNDLE_KIND, "file", target, bundle, project=project, settings=bundle["settings"]
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


def _item_names(aset: AnnotationSet, frames: np.ndarray) -> list[str]:
    """Item names for frame ids (the id itself when the item is unknown)."""
    ids = aset.items.id
    pos = np.clip(np.searchsorted(ids, frames), 0, max(len(ids) - 1, 0))
    known = (pos < len(ids)) & (ids[pos] == frames) if len(ids) else np.zeros(len(frames), bool)
    return [
        str(aset.items.name[p]) if k else str(f)
        for p, k, f in zip(pos.tolist(), known.tolist(), frames.tolist(), strict=True)
    ]
