"""Write findings back into CVAT: issues on the frame, and job stage/state changes.

Idempotent by construction: every issue labelgate opens carries a stable marker
``[labelgate:<key>]`` in its first comment (the key names the conflict type, the source object
and the frame, or just the frame in per-frame mode). A re-run lists the job's comments, finds its
own issues by marker, reopens or leaves the ones still present, resolves the ones that are gone
(with a comment) and only creates the missing ones. A run that failed halfway therefore resumes
without duplicates.

Stage policy: a job that passes moves to acceptance/completed; one that fails goes back to
annotation/rejected with a summary issue; after ``max_validations_per_job`` labelgate rejections
(0 = no limit) it is left alone and flagged for manual review. A job already in
annotation/rejected is not rejected again until its annotator changes its state. CVAT 2.42 mode:
a job passes when its target metric meets ``target_metric_threshold``. Requirement mode (CVAT
2.74+): CVAT's completion rule decides (validation frames, at least one enabled requirement, every
enabled requirement completed, a not_computed one counting as completed), and every conflict is
an error whose issue names the requirements that found it and the attributes in conflict.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labelgate.engine.report import Report
from labelgate.engine.req_report import RequirementReport
from labelgate.engine.settings import QualitySettings
from labelgate.model import AnnotationSet

if TYPE_CHECKING:
    from labelgate_cvat.pipeline import TaskResult

MARKER = re.compile(r"\[labelgate:([A-Za-z0-9:_\-]+)\]")
REJECTION = "rejection"
AUDIT = "audit"
_OWN_SCOPES = (REJECTION, AUDIT)


def marker(key: str) -> str:
    return f"[labelgate:{key}]"


def conflict_key(conflict: Mapping[str, Any]) -> str:
    """A key that stays the same while the same conflict persists between runs."""
    ids = ",".join(
        f"{a.get('type')}{a.get('obj_id')}@{a.get('job_id')}" for a in conflict["annotation_ids"]
    )
    digest = hashlib.sha1(f"{conflict['type']}|{conflict['frame_id']}|{ids}".encode()).hexdigest()
    return f"{conflict['type']}:{digest[:12]}"


def _job_frame(ds: AnnotationSet | None, frame: int) -> int:
    """Conflicts name GT frames; a honeypot's issue belongs on the job's placeholder frame."""
    if ds is None:
        return frame
    hits = [int(i) for i, rf in zip(ds.items.id, ds.items.real_frame, strict=True) if rf == frame]
    return hits[0] if hits else frame


def _message(conflicts: list[Mapping[str, Any]], key: str) -> str:
    parts = []
    for c in conflicts:
        labels = " vs ".join(dict.fromkeys(c.get("label_names") or ())) or "?"
        sim = c.get("similarity")
        extra = f", similarity {sim:.2f}" if isinstance(sim, float) and sim > 0 else ""
        if c.get("attribute_names"):
            extra += f", attributes {', '.join(c['attribute_names'])}"
        if c.get("requirements"):
            extra += f"; requirement {', '.join(repr(n) for n in c['requirements'])}"
        parts.append(f"{c['type'].replace('_', ' ')} ({labels}{extra})")
    return f"labelgate quality check: {'; '.join(parts)}. {marker(key)}"


def requirement_conflicts(report: RequirementReport) -> list[dict[str, Any]]:
    """A requirement-mode job report's conflicts, each once, with ``requirements`` naming every
    requirement that found it (a child's conflict is its parent's too); all are errors."""
    out: dict[str, dict[str, Any]] = {}
    for result in report.results:
        for c in result.conflicts:
            entry = out.setdefault(conflict_key(c), {**c, "requirements": []})
            entry["requirements"].append(result.requirement.name)
    return list(out.values())


def desired_issues(
    report: Report | RequirementReport,
    ds: AnnotationSet | None = None,
    *,
    per_frame: bool = False,
) -> dict[str, dict[str, Any]]:
    """The issues a job report calls for: marker key → ``{frame, position, message}``.

    Only error-severity conflicts become issues (2.42 warnings stay in the report); in
    requirement mode every conflict is an error (:func:`requirement_conflicts`).
    """
    errors: Sequence[Mapping[str, Any]]
    if isinstance(report, RequirementReport):
        errors = requirement_conflicts(report)
    else:
        errors = [c for c in report.conflicts if c.get("severity") == "error"]
    out: dict[str, dict[str, Any]] = {}
    if per_frame:
        by_frame: dict[int, list[Mapping[str, Any]]] = {}
        for c in errors:
            by_frame.setdefault(int(c["frame_id"]), []).append(c)
        for frame, group in sorted(by_frame.items()):
            key = f"frame:{frame}"
            xs = [c["position"] for c in group]
            box = [min(p[0] for p in xs), min(p[1] for p in xs)]
            box += [max(p[2] for p in xs), max(p[3] for p in xs)]
            out[key] = {
                "frame": _job_frame(ds, frame),
                "position": [float(v) for v in box],
                "message": _message(group, key),
            }
        return out
    for c in errors:
        key = conflict_key(c)
        out[key] = {
            "frame": _job_frame(ds, int(c["frame_id"])),
            "position": [float(v) for v in c["position"]],
            "message": _message([c], key),
        }
    return out


def _existing(source: Any, job_id: int) -> dict[str, dict[str, Any]]:
    """labelgate's own issues on a job, by marker key."""
    issues = {i["id"]: i for i in source.issues(job_id)}
    found: dict[str, dict[str, Any]] = {}
    # One request for all comments of the job; an issue's first marker names it.
    for c in sorted(source.job_comments(job_id), key=lambda c: c["id"]):
        m = MARKER.search(c.get("message") or "")
        issue = issues.get(c.get("issue"))
        if m and issue is not None and issue["id"] not in {i["id"] for i in found.values()}:
            found.setdefault(m.group(1), issue)
    return found


def _in_scope(key: str, scope: str | None) -> bool:
    head = key.split(":", 1)[0]
    return head == scope if scope is not None else head not in _OWN_SCOPES


def push_issues(
    source: Any, job_id: int, wanted: Mapping[str, Mapping[str, Any]], scope: str | None = None
) -> dict[str, int]:
    """Make the job's labelgate issues match ``wanted`` (see :func:`desired_issues`).

    Args:
        source: the CVAT source.
        job_id: the job.
        wanted: marker key → ``{frame, position, message}``.
        scope: which of labelgate's issues this call manages: conflict issues (None), or one
            kind of its own (``"audit"``); others are left alone.

    Returns:
        Counts: created, kept, reopened, resolved.
    """
    have = {k: v for k, v in _existing(source, job_id).items() if _in_scope(k, scope)}
    counts = {"created": 0, "kept": 0, "reopened": 0, "resolved": 0}
    for key, spec in wanted.items():
        issue = have.get(key)
        if issue is None:
            source.create_issue(job_id, int(spec["frame"]), list(spec["position"]), spec["message"])
            counts["created"] += 1
        elif issue.get("resolved"):
            source.update_issue(issue["id"], resolved=False)
            source.comment(issue["id"], f"labelgate: the problem is back. {marker(key)}")
            counts["reopened"] += 1
        else:
            counts["kept"] += 1
    for key, issue in have.items():
        if key not in wanted and not issue.get("resolved"):
            source.comment(issue["id"], f"labelgate: no longer found; resolving. {marker(key)}")
            source.update_issue(issue["id"], resolved=True)
            counts["resolved"] += 1
    return counts


def apply_stage_policy(
    source: Any, job: Mapping[str, Any], report: Report, settings: QualitySettings
) -> dict[str, Any]:
    """Accept or reject a job on its target metric (CVAT 2.42 mode; module docstring).

    Returns:
        ``{"job", "metric", "value", "threshold", "action"}`` with action one of ``accepted``,
        ``rejected``, ``unchanged``, ``manual_review``.
    """
    metric = settings.target_metric
    value = report.summary.get(metric)
    threshold = settings.target_metric_threshold
    out: dict[str, Any] = {
        "job": job["id"],
        "metric": metric,
        "value": value,
        "threshold": threshold,
    }
    if value is None:
        return {**out, "action": "unchanged", "reason": "no compared annotations"}
    summary = report.summary
    why = (
        f"{metric} {value:.3f} < {threshold:.2f} ({summary.get('error_count', 0)} errors, "
        f"{summary.get('warning_count', 0)} warnings)"
    )
    return _decide(source, job, out, value >= threshold, why, settings.max_validations_per_job)


def apply_requirement_policy(
    source: Any, job: Mapping[str, Any], report: RequirementReport, settings: QualitySettings
) -> dict[str, Any]:
    """Accept or reject a job with CVAT's completion rule (requirement mode; module docstring).

    Returns:
        ``{"job", "completed", "requirements": [{name, metric, score, threshold, completed}],
        "action"}``; action as :func:`apply_stage_policy`'s.
    """
    items = [
        {
            "name": r.requirement.name,
            "metric": r.requirement.metric,
            "score": None if r.score is None else r.score.value,
            "threshold": r.requirement.required_score,
            "completed": r.completed,
        }
        for r in report.results
    ]
    out: dict[str, Any] = {"job": job["id"], "completed": report.completed, "requirements": items}
    failed = [i for i in items if not i["completed"]]
    if failed:
        why = "; ".join(
            f"{i['name']!r}: {i['metric']} {i['score']:.3f} < {i['threshold']:.2f}" for i in failed
        )
    elif not report.validation_frames:
        why = "no validation frames compared"
    else:
        why = "no enabled quality requirement"
    return _decide(source, job, out, report.completed, why, settings.max_validations_per_job)


def _decide(
    source: Any,
    job: Mapping[str, Any],
    out: dict[str, Any],
    passed: bool,
    why: str,
    limit: int,
) -> dict[str, Any]:
    """Move the job to acceptance/completed, or reject it with a summary issue (see the module
    docstring for the limit and the already-rejected case)."""
    stage, state = job.get("stage"), job.get("state")
    if passed:
        if (stage, state) == ("acceptance", "completed"):
            return {**out, "action": "unchanged"}
        source.update_job(job["id"], stage="acceptance", state="completed")
        return {**out, "action": "accepted"}
    if (stage, state) == ("annotation", "rejected"):
        return {**out, "action": "unchanged", "reason": "already rejected, awaiting rework"}
    rejections = sorted(
        int(k.split(":")[1])
        for k in _existing(source, job["id"])
        if k.startswith(REJECTION + ":") and k.split(":")[1].isdigit()
    )
    n = rejections[-1] if rejections else 0
    if limit and n >= limit:
        return {**out, "action": "manual_review", "rejections": n}
    key = f"{REJECTION}:{n + 1}"
    message = (
        f"labelgate: job rejected, {why}; rejection {n + 1}{f' of {limit}' if limit else ''}. "
        f"{marker(key)}"
    )
    # The summary issue goes first: if the PATCH fails, the next run sees the marker and the
    # count stays right.
    source.create_issue(job["id"], int(job.get("start_frame", 0)), [0.0, 0.0, 1.0, 1.0], message)
    source.update_job(job["id"], stage="annotation", state="rejected")
    return {**out, "action": "rejected", "rejections": n + 1}


def push_task(
    source: Any,
    result: TaskResult,
    *,
    issues: bool = False,
    per_frame: bool = False,
    stage_policy: bool = False,
) -> list[dict[str, Any]]:
    """Push issues and/or stage changes for every job of a scored task.

    In requirement mode the job's requirement report decides both (every conflict an issue,
    CVAT's completion rule for the stage); in 2.42 mode its 2.42 report.
    """
    out = []
    for jid, report in result.job_reports.items():
        entry: dict[str, Any] = {"job": jid}
        req = result.job_requirements.get(jid)
        if issues:
            wanted = desired_issues(
                req if req is not None else report, result.sets.get(jid), per_frame=per_frame
            )
            entry["issues"] = push_issues(source, jid, wanted)
        if stage_policy:
            job = result.jobs[jid]
            entry["stage"] = (
                apply_requirement_policy(source, job, req, result.settings)
                if req is not None
                else apply_stage_policy(source, job, report, result.settings)
            )
        out.append(entry)
    return out


def flagged(entries: Iterable[Mapping[str, Any]]) -> list[int]:
    """Jobs the stage policy left for manual review."""
    return [e["job"] for e in entries if e.get("stage", {}).get("action") == "manual_review"]
