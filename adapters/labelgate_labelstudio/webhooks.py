"""Register labelgate's receiver as a Label Studio webhook (idempotent)."""

from __future__ import annotations

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


def install_webhook(
    source: LabelStudioSource, project_id: int, url: str, header_name: str, secret: str
) -> int:
    """Create, or update in place, the project's webhook to ``url`` with the secret header.

    Label Studio signs nothing, so the shared secret travels in ``header_name``.

    Returns:
        The webhook id.
    """
    client: Any = source.client
    existing = [
        w
        for w in source._call(
            "list webhooks", lambda: list(client.webhooks.list(project=project_id))
        )
        if w.url == url
    ]
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
        return int(hook.id)
    created = source._call(
        "create the webhook", lambda: client.webhooks.create(project=project_id, **fields)
    )
    return int(created.id)
