"""Register labelgate's receiver as a Label Studio webhook (idempotent)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

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
