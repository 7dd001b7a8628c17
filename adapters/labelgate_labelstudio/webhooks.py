"""Label Studio webhooks: the actions labelgate subscribes to (one list, also the ones the
receiver accepts), their parsing into a re-score target, and the (idempotent) registration.

Label Studio sends no event for predictions, views or task meta, which is all labelgate writes
there, so a push-back never triggers a re-score.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from labelgate.errors import FormatError
from labelgate.run_sources import Target
from labelgate.webhook_events import Event, id_value, object_field, text_field
from labelgate_labelstudio.client import LabelStudioSource

ACTIONS = [
    "ANNOTATION_CREATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
    "TASKS_CREATED",
    "TASKS_DELETED",
    "PROJECT_UPDATED",
]


def parse_event(data: Mapping[str, Any]) -> Event:
    """A Label Studio webhook body (a JSON object).

    Raises:
        FormatError: a field of the wrong type, or a missing or out-of-range project id.
    """
    action = text_field(data, "action", "Label Studio payload")
    where = f"Label Studio {action or 'payload'}"
    if action not in ACTIONS:
        return Event("ignored", action, reason="unknown action")
    project = object_field(data, "project", where)
    if project.get("id") is None:
        raise FormatError(f"{where}: payload has no project.id")
    target = Target("labelstudio", "project", str(id_value(project["id"], "project.id", where)))
    ann = object_field(data, "annotation", where)
    delivery = None
    if ann:
        for key in ("id", "updated_at"):
            value = ann.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, str, type(None))):
                raise FormatError(f"{where}: annotation.{key} must be a number or string")
        delivery = f"ls:{action}:{ann.get('id')}:{ann.get('updated_at')}"
    return Event("rescore", action, target, delivery)


@dataclass(frozen=True)
class Installed:
    """The project's webhook after ``install_webhook``."""

    hook_id: int
    secret: str
    reused: bool


def install_webhook(
    source: LabelStudioSource,
    project_id: int,
    url: str,
    header_name: str,
    secret: str | None = None,
    *,
    rotate: bool = False,
) -> Installed:
    """Create, or update in place, the project's webhook to ``url`` with its secret header.

    Label Studio signs nothing, so the shared secret travels in ``header_name``. The project's
    existing secret (the header of its webhook to ``url``) is kept unless ``rotate`` is set or
    ``secret`` is given; otherwise a new random one is made.
    """
    client: Any = source.client
    existing = [
        w
        for w in source._call(
            "list webhooks", lambda: list(client.webhooks.list(project=project_id))
        )
        if w.url == url
    ]
    old = str((existing[0].headers or {}).get(header_name) or "") if existing else ""
    reused = bool(old) and secret is None and not rotate
    secret = old if reused else (secret or secrets.token_urlsafe(32))
    fields = {
        "url": url,
        "actions": ACTIONS,
        "headers": {header_name: secret},
        "is_active": True,
        "send_payload": True,
        "send_for_all_actions": False,
    }
    if existing:
        hook = existing[0]
        source._call(
            "update the webhook",
            lambda: client.webhooks.update(id=hook.id, **fields),
        )
        return Installed(int(hook.id), secret, reused)
    created = source._call(
        "create the webhook", lambda: client.webhooks.create(project=project_id, **fields)
    )
    return Installed(int(created.id), secret, reused)
