"""The main job: score a batch with every engine and gather one JSON-ready bundle.

Runs the public pipeline functions only (compare, agreement, scorecards, alerts, gate, history);
``render_html`` turns the bundle into the page.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from labelgate import __version__
from labelgate.adapters import GT_ANNOTATOR, PREDICTION_PREFIX
from labelgate.engine import QualitySettings, compare
from labelgate.errors import ValidationError
from labelgate.model import AnnotationSet

MAX_CONFLICT_ROWS = 5000


def conflict_link(
    meta: dict[str, Any], frame: int, annotation: dict[str, Any] | None
) -> str | None:
    """Link back to the CVAT frame or Label Studio task, when the source says where it lives."""
    if meta.get("system") == "cvat" and meta.get("host") and meta.get("task_id"):
        url = f"{meta['host'].rstrip('/')}/tasks/{meta['task_id']}/jobs/{meta.get('job_id')}?frame={frame}"
        if annotation:
            url += f"&type={annotation['type']}&serverID={annotation['obj_id']}"
        return url
    if meta.get("system") == "labelstudio" and meta.get("url") and meta.get("project_id"):
        return f"{meta['url'].rstrip('/')}/projects/{meta['project_id']}/data?task={frame}"
    return None


def build_bundle(
    aset: AnnotationSet,
    settings: QualitySettings | None = None,
    *,
    policy: Any = None,
    store: Any = None,
    project: str | None = None,
) -> dict[str, Any]:
    """Everything the report shows, for a multi-annotator set (GT = annotator "ground_truth").

    Args:
        aset: the batch.
        settings: quality settings.
        policy: a :class:`~labelgate.decisions.gate.GatePolicy` (gate section) or None.
        store: a :class:`~labelgate.store.Store` for the history lines, or None.
        project: project name in the history (default: the set's name).
    """
    from labelgate.agreement.report import agreement_report
    from labelgate.decisions.gate import evaluate_gate
    from labelgate.decisions.scorecards import alerts, per_label, scorecards

    s = settings or QualitySettings()
    parts = aset.split_by_annotator()
    gt = parts.get(GT_ANNOTATOR)
    people = [n for n in parts if n and n != GT_ANNOTATOR]
    comparisons: dict[str, Any] = {}
    conflicts: list[dict[str, Any]] = []
    if gt is not None:
        for name in people:
            rep = compare(gt, parts[name], s).to_dict()
            comparisons[name] = {
                "summary": rep["summary"],
                "confusion_matrix": rep["annotations"]["confusion_matrix"],
            }
            for c in rep["conflicts"]:
                ids = c["annotation_ids"]
                conflicts.append(
                    {
                        "annotator": name,
                        "type": c["type"],
                        "severity": c["severity"],
                        "frame": c["frame_id"],
                        "item_name": _item_name(aset, c["frame_id"]),
                        "labels": " vs ".join(x or "—" for x in c["label_names"]),
                        "similarity": c["similarity"],
                        "link": conflict_link(
                            dict(aset.meta), c["frame_id"], ids[0] if ids else None
                        ),
                    }
                )
    humans = [n for n in people if not n.startswith(PREDICTION_PREFIX)]
    agreement = None
    if len(humans) >= 2:
        try:
            agreement = agreement_report(aset, s, n_boot=100)
        except ValidationError:
            agreement = None
    cards = scorecards(aset, s) if humans else []
    history: dict[str, list[Any]] = {}
    if store is not None:
        for r in reversed(store.list_reports(project=project or aset.name, kind="scorecards")):
            history.setdefault("time", []).append(r.created_at.isoformat())
            summary = r.report.get("summary", {})
            history.setdefault("agreement", []).append(summary.get("mean_agreement"))
            history.setdefault("accuracy", []).append(summary.get("mean_accuracy"))
    current = agreement["summary"]["mean_pairwise_f1"] if agreement else None
    past = [v for v in history.get("agreement", []) if v is not None]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if store is not None:  # this run is the newest point of the trend
        accs = [c["accuracy"] for c in cards if c.get("accuracy") is not None]
        history.setdefault("time", []).append(now)
        history.setdefault("agreement", []).append(current)
        history.setdefault("accuracy", []).append(sum(accs) / len(accs) if accs else None)
    return {
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
        "labels": per_label(aset, s),
        "alerts": alerts(
            aset, cards, agreement_history=past, current_agreement=current, settings=s
        ),
        "gate": evaluate_gate(aset, policy, s) if policy is not None else None,
        "history": history,
        "data_errors": [dict(e) for e in aset.data_errors],
    }


def _item_name(aset: AnnotationSet, item: int) -> str:
    import numpy as np

    i = int(np.searchsorted(aset.items.id, item))
    if i < len(aset.items) and aset.items.id[i] == item:
        return str(aset.items.name[i])
    return str(item)
