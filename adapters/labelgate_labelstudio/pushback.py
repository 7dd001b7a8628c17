"""Push-back at scale: what labelgate wants on each task, compared with what the server holds,
then written in as few requests as the Label Studio API allows.

What is written per task:

- Task data fields (``--scores``): ``labelgate_score`` (the task score, 4 decimals; a Number
  column of the Data Manager that sorts and filters without touching the project's model
  version) and ``labelgate_conflicts`` (the annotators below 1.0, comma-separated). Written with
  the Data Manager action "Add Or Modify Data Field", one request per distinct value for all
  tasks that take it; a server without that action gets one PATCH per task.
- ``meta["labelgate"]`` (``--meta``, opt-in): the full per-task entry, one PATCH per task.
- The consensus (``--predictions``) as ``labelgate-consensus`` predictions: new ones in bulk
  imports (one request per :data:`IMPORT_CHUNK`), changed ones PATCHed, ones whose task lost its
  consensus deleted; above :data:`REPLACE_AT` changes all are replaced (one delete by model
  version, then bulk imports).

Only changes are written: the fingerprint (SHA-256 of the canonical JSON) of each part labelgate
wants is compared with the fingerprint of what the server holds, read in the same pull. A re-run
on an unchanged project sends no request; a re-score after one save rewrites the tasks whose
values moved. Per-object requests run on a bounded thread pool (``workers``).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from labelgate_labelstudio.client import (
    CONSENSUS_MODEL,
    QUALITY_MODEL,
    SCORE_FIELD,
    LabelStudioSource,
    Snapshot,
)

CONFLICTS_FIELD = "labelgate_conflicts"
DATA_FIELDS = (SCORE_FIELD, CONFLICTS_FIELD)
META_KEY = "labelgate"
IMPORT_CHUNK = 1000
REPLACE_AT = 200
DEFAULT_WORKERS = 8
_MISSING = object()

#: ``on_progress(description, done, total)``: the shape of ``labelgate.cli.progress.Steps``.
Progress = Callable[[str, int, int], None]


def fingerprint(value: Any) -> str:
    """SHA-256 of the canonical JSON of ``value`` (key order and float spelling fixed)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (the API refuses NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def data_fields(entry: Mapping[str, Any]) -> dict[str, float | str]:
    """The task data fields for one score entry (``task_scores`` of the pipeline)."""
    out: dict[str, float | str] = {}
    score = entry.get("score")
    if isinstance(score, (int, float)) and math.isfinite(score):
        # 4 decimals: enough to rank, and the column never shows exponent notation.
        out[SCORE_FIELD] = round(float(score), 4)
    out[CONFLICTS_FIELD] = ", ".join(entry.get("conflicting_annotators") or [])
    return out


@dataclass
class PushPlan:
    """The requests one push needs; empty when the server already holds everything."""

    field_groups: dict[tuple[str, float | str], list[int]] = field(default_factory=dict)
    task_patches: dict[int, dict[str, Any]] = field(default_factory=dict)
    creates: list[dict[str, Any]] = field(default_factory=list)
    updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    deletes: list[int] = field(default_factory=list)
    delete_versions: list[str] = field(default_factory=list)
    changed_tasks: set[int] = field(default_factory=set)
    tasks: int = 0


@dataclass(frozen=True)
class PushStats:
    """What one push did."""

    tasks: int
    tasks_changed: int
    requests: int
    fields_set: int
    tasks_patched: int
    predictions_created: int
    predictions_updated: int
    predictions_deleted: int
    bulk_fields: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _predictions(task: Mapping[str, Any], version: str) -> list[Mapping[str, Any]]:
    return [
        p
        for p in task.get("predictions") or []
        if isinstance(p, Mapping) and p.get("model_version") == version
    ]


def plan_push(
    snapshot: Snapshot,
    scores: Mapping[int, Mapping[str, Any]] | None,
    consensus: Mapping[int, tuple[float, list[dict[str, Any]]]] | None,
    *,
    meta: bool = False,
) -> PushPlan:
    """Compare what labelgate wants with the snapshot; ``None`` parts are left alone.

    Args:
        snapshot: the pull the scores were computed from (current data, meta, predictions).
        scores: task id → score entry (``--scores``), or None.
        consensus: task id → (confidence, Label Studio result regions) (``--predictions``).
        meta: also keep ``meta["labelgate"]`` equal to the score entry.
    """
    plan = PushPlan(tasks=len(snapshot.tasks))
    legacy = False
    for task in snapshot.tasks:
        tid = int(task["id"])
        data = dict(task.get("data") or {})
        patch: dict[str, Any] = {}
        legacy = legacy or bool(_predictions(task, QUALITY_MODEL))
        if scores is not None:
            entry = scores.get(tid)
            want = data_fields(entry) if entry is not None else {}
            stale = [n for n in DATA_FIELDS if n not in want and n in data]
            if stale:  # a value went away: one PATCH of the whole data, wanted values included
                patch["data"] = {k: v for k, v in data.items() if k not in stale} | want
            else:
                for name, value in want.items():
                    if data.get(name, _MISSING) != value:
                        plan.field_groups.setdefault((name, value), []).append(tid)
                        plan.changed_tasks.add(tid)
            if meta:
                old = dict(task.get("meta") or {})
                wanted = _clean(dict(entry)) if entry is not None else None
                if fingerprint(old.get(META_KEY)) != fingerprint(wanted):
                    new = {k: v for k, v in old.items() if k != META_KEY}
                    if wanted is not None:
                        new[META_KEY] = wanted
                    patch["meta"] = new
        if patch:
            plan.task_patches[tid] = patch
            plan.changed_tasks.add(tid)
        if consensus is not None:
            ours = _predictions(task, CONSENSUS_MODEL)
            target = consensus.get(tid)
            extra = ours if target is None else ours[1:]
            plan.deletes += [int(p["id"]) for p in extra]
            if extra:
                plan.changed_tasks.add(tid)
            if target is None:
                continue
            score, result = _clean(target[0]), _clean(target[1])
            if not ours:
                plan.creates.append(
                    {
                        "task": tid,
                        "model_version": CONSENSUS_MODEL,
                        "score": score,
                        "result": result,
                    }
                )
                plan.changed_tasks.add(tid)
            elif fingerprint([ours[0].get("score"), ours[0].get("result")]) != fingerprint(
                [score, result]
            ):
                plan.updates[int(ours[0]["id"])] = {"task": tid, "score": score, "result": result}
                plan.changed_tasks.add(tid)
    if legacy:
        plan.delete_versions.append(QUALITY_MODEL)
    if consensus is not None and len(plan.updates) > REPLACE_AT:
        # Many changed: replacing them all costs a few requests instead of one per task.
        plan.delete_versions.append(CONSENSUS_MODEL)
        plan.deletes = []
        plan.updates = {}
        plan.creates = [
            {
                "task": tid,
                "model_version": CONSENSUS_MODEL,
                "score": _clean(s),
                "result": _clean(r),
            }
            for tid, (s, r) in sorted(consensus.items())
        ]
    return plan


def run_push(
    source: LabelStudioSource,
    snapshot: Snapshot,
    plan: PushPlan,
    *,
    workers: int = DEFAULT_WORKERS,
    on_progress: Progress | None = None,
) -> PushStats:
    """Send the plan: version deletions first, then everything else on ``workers`` threads.

    Raises:
        ValidationError: ``workers`` below 1.
        AuthenticationFailed, NotFound, ConnectionFailed: the first failed request (the rest
            are cancelled).
    """
    from labelgate.errors import ValidationError

    if workers < 1:
        raise ValidationError(f"--workers must be at least 1, got {workers}")
    t0 = time.perf_counter()
    project = snapshot.project_id
    patches = {tid: dict(p) for tid, p in plan.task_patches.items()}
    groups = dict(plan.field_groups)
    bulk = True
    if groups:
        (name, value), ids = next(iter(groups.items()))
        bulk = source.set_data_field(project, ids, name, value)
        if bulk:
            del groups[(name, value)]
        else:  # no bulk action on this server: one PATCH per task, each with its full data
            by_id = {int(t["id"]): t for t in snapshot.tasks}
            for (name, value), ids in groups.items():
                for tid in ids:
                    patch = patches.setdefault(tid, {})
                    data = patch.setdefault("data", dict(by_id[tid].get("data") or {}))
                    data[name] = value
            groups = {}
    # The field action rewrites each task's whole data on SQLite servers: two actions on one
    # task at once lose a write, so each field name gets its own wave (its groups are disjoint).
    waves: list[list[tuple[str, Callable[[], Any]]]] = [
        [("old predictions", _bind(source.delete_model_version, project, v))]
        for v in plan.delete_versions
    ]
    first: list[tuple[str, Callable[[], Any]]] = []
    for tid, patch in patches.items():
        first.append(("tasks", _bind(source.patch_task, tid, patch)))
    for start in range(0, len(plan.creates), IMPORT_CHUNK):
        chunk = plan.creates[start : start + IMPORT_CHUNK]
        first.append(("consensus predictions", _bind(source.import_predictions, project, chunk)))
    for pid, fields in plan.updates.items():
        first.append(("consensus predictions", _bind(source.update_prediction, pid, fields)))
    for pid in plan.deletes:
        first.append(("stale predictions", _bind(source.delete_prediction, pid)))
    waves.append(first)
    for name in DATA_FIELDS:
        waves.append(
            [
                ("task data fields", _bind(source.set_data_field, project, ids, n, value))
                for (n, value), ids in groups.items()
                if n == name
            ]
        )
    total = sum(len(w) for w in waves) + (1 if plan.field_groups else 0)
    done = total - sum(len(w) for w in waves)
    if on_progress is not None:
        on_progress("pushing to Label Studio", done, total)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for wave in waves:
            pending = {pool.submit(fn): what for what, fn in wave}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in finished:
                    what = pending.pop(fut)
                    error = fut.exception()
                    if error is not None:
                        for other in pending:
                            other.cancel()
                        raise error
                    done += 1
                    if on_progress is not None:
                        on_progress(f"pushing {what}", done, total)
    return PushStats(
        tasks=plan.tasks,
        tasks_changed=len(plan.changed_tasks),
        requests=total,
        fields_set=sum(len(ids) for ids in plan.field_groups.values()),
        tasks_patched=len(patches),
        predictions_created=len(plan.creates),
        predictions_updated=len(plan.updates),
        predictions_deleted=len(plan.deletes),
        bulk_fields=bulk,
        seconds=time.perf_counter() - t0,
    )


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)
