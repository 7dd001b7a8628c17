"""CVAT webhook events → what to re-score (the CVAT source's ``parse_event``).

Loop prevention: CVAT reports an annotation save as ``update:job`` whose ``before_update`` holds
only ``updated_date``; stage/state/assignee changes (which labelgate's own push-back makes) are
acknowledged and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labelgate.errors import FormatError
from labelgate.run_sources import Target
from labelgate.webhook_events import Event, id_value, object_field, text_field
from labelgate_cvat.webhooks import EVENTS as WEBHOOK_EVENTS

#: The events labelgate subscribes CVAT webhooks to are the ones it accepts.
EVENTS = frozenset(WEBHOOK_EVENTS)
SYSTEM = "cvat"


def parse_event(data: Mapping[str, Any]) -> Event:
    """A CVAT webhook body (a JSON object).

    Raises:
        FormatError: a field of the wrong type, or a missing or out-of-range id.
    """
    event = text_field(data, "event", "CVAT payload")
    where = f"CVAT {event or 'payload'}"
    if event == "ping":
        return Event("pong", event)
    if event not in EVENTS:
        return Event("ignored", event, reason="unknown event")
    job = object_field(data, "job", where)
    task = object_field(data, "task", where)
    before = object_field(data, "before_update", where)
    if event == "update:job" and set(before) - {"updated_date"}:
        # A stage/state/assignee change (labelgate's own push-back included).
        return Event("ignored", event, reason="not an annotation save")
    if event == "update:task" and set(before) <= {"updated_date"}:
        # An annotation save touches the task too; its update:job already re-scores.
        return Event("ignored", event, reason="covered by update:job")
    if event == "update:job":
        if "id" not in job:
            raise FormatError(f"{where}: payload has no job.id")
        target = Target(SYSTEM, "job", str(id_value(job["id"], "job.id", where)))
        updated = job.get("updated_date")
    else:  # task changes and job creation/deletion re-score the whole task
        if task.get("id") is not None:
            task_id = id_value(task["id"], "task.id", where)
        elif job.get("task_id") is not None:
            task_id = id_value(job["task_id"], "job.task_id", where)
        else:
            raise FormatError(f"{where}: payload has no task.id or job.task_id")
        target = Target(SYSTEM, "task", str(task_id))
        updated = job.get("updated_date") or task.get("updated_date")
    if not isinstance(updated, (str, type(None))):
        raise FormatError(f"{where}: updated_date must be a string")
    webhook = data.get("webhook_id")
    if webhook is not None:
        id_value(webhook, "webhook_id", where)
    key = f"{target.kind}:{target.id}"
    return Event("rescore", event, target, f"{webhook}:{event}:{key}:{updated}")


def event_target(data: Mapping[str, Any]) -> Target | None:
    """The target a CVAT webhook asks to re-score; None when it asks for none (for
    ``CvatSource.parse_event``).

    Raises:
        FormatError: see :func:`parse_event`.
    """
    parsed = parse_event(data)
    return parsed.target if parsed.status == "rescore" else None
