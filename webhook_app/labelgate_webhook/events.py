"""Webhook payloads → what to re-score, with every field checked before anything is queued.

A validly signed body can still be malformed (a sender bug, a proxy, a hostile holder of the
secret): each field the receiver uses is checked for its type and id range here, and a bad one
is a :class:`~labelgate.errors.FormatError` (400) naming the field, so nothing malformed reaches
the queue or a worker.

Loop prevention: CVAT reports an annotation save as ``update:job`` whose ``before_update`` holds
only ``updated_date``; stage/state/assignee changes (which labelgate's own push-back makes) are
acknowledged and ignored. Label Studio sends no event for predictions, views or task meta,
which is all labelgate writes there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labelgate.errors import FormatError
from labelgate_cvat.webhooks import EVENTS as CVAT_WEBHOOK_EVENTS
from labelgate_labelstudio.webhooks import ACTIONS as LS_WEBHOOK_ACTIONS

# The events each adapter subscribes its webhooks to are the ones the receiver accepts: one list,
# owned by the adapter that installs the webhook.
CVAT_EVENTS = frozenset(CVAT_WEBHOOK_EVENTS)
LS_EVENTS = frozenset(LS_WEBHOOK_ACTIONS)
#: Largest id accepted: CVAT and Label Studio ids are positive 32-bit database integers.
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class Event:
    """A parsed webhook: ``target`` to re-score, or ``ignored`` with its reason.

    ``status`` is ``"rescore"``, ``"ignored"`` or ``"pong"`` (CVAT's ping).
    """

    status: str
    name: str
    target: str | None = None
    delivery: str | None = None
    reason: str | None = None


def _object(data: dict[str, Any], field: str, where: str) -> dict[str, Any]:
    value = data.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FormatError(
            f"{where}: field {field!r} must be a JSON object, got {type(value).__name__}"
        )
    return value


def _text(data: dict[str, Any], field: str, where: str) -> str:
    value = data.get(field, "")
    if not isinstance(value, str):
        raise FormatError(f"{where}: field {field!r} must be a string, got {type(value).__name__}")
    return value


def _id(value: Any, field: str, where: str) -> int:
    # bool is an int in Python; JSON true is no id.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise FormatError(
            f"{where}: {field} must be an integer from 1 to {MAX_ID}, got {value!r}"[:300]
        )
    return value


def parse_cvat(data: dict[str, Any]) -> Event:
    """A CVAT webhook body (a JSON object).

    Raises:
        FormatError: a field of the wrong type, or a missing or out-of-range id.
    """
    event = _text(data, "event", "CVAT payload")
    where = f"CVAT {event or 'payload'}"
    if event == "ping":
        return Event("pong", event)
    if event not in CVAT_EVENTS:
        return Event("ignored", event, reason="unknown event")
    job = _object(data, "job", where)
    task = _object(data, "task", where)
    before = _object(data, "before_update", where)
    if event == "update:job" and set(before) - {"updated_date"}:
        # A stage/state/assignee change (labelgate's own push-back included).
        return Event("ignored", event, reason="not an annotation save")
    if event == "update:task" and set(before) <= {"updated_date"}:
        # An annotation save touches the task too; its update:job already re-scores.
        return Event("ignored", event, reason="covered by update:job")
    if event == "update:job":
        if "id" not in job:
            raise FormatError(f"{where}: payload has no job.id")
        target = f"job:{_id(job['id'], 'job.id', where)}"
        updated = job.get("updated_date")
    else:  # task changes and job creation/deletion re-score the whole task
        if task.get("id") is not None:
            target = f"task:{_id(task['id'], 'task.id', where)}"
        elif job.get("task_id") is not None:
            target = f"task:{_id(job['task_id'], 'job.task_id', where)}"
        else:
            raise FormatError(f"{where}: payload has no task.id or job.task_id")
        updated = job.get("updated_date") or task.get("updated_date")
    if not isinstance(updated, (str, type(None))):
        raise FormatError(f"{where}: updated_date must be a string")
    webhook = data.get("webhook_id")
    if webhook is not None:
        _id(webhook, "webhook_id", where)
    return Event("rescore", event, target, f"{webhook}:{event}:{target}:{updated}")


def parse_labelstudio(data: dict[str, Any]) -> Event:
    """A Label Studio webhook body (a JSON object).

    Raises:
        FormatError: a field of the wrong type, or a missing or out-of-range project id.
    """
    action = _text(data, "action", "Label Studio payload")
    where = f"Label Studio {action or 'payload'}"
    if action not in LS_EVENTS:
        return Event("ignored", action, reason="unknown action")
    project = _object(data, "project", where)
    if project.get("id") is None:
        raise FormatError(f"{where}: payload has no project.id")
    target = f"project:{_id(project['id'], 'project.id', where)}"
    ann = _object(data, "annotation", where)
    delivery = None
    if ann:
        for key in ("id", "updated_at"):
            if not isinstance(ann.get(key), (int, str, type(None))) or isinstance(
                ann.get(key), bool
            ):
                raise FormatError(f"{where}: annotation.{key} must be a number or string")
        delivery = f"ls:{action}:{ann.get('id')}:{ann.get('updated_at')}"
    return Event("rescore", action, target, delivery)
