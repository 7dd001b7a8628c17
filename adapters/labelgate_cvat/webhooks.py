"""Register labelgate's receiver as a CVAT project webhook (idempotent)."""

from __future__ import annotations

from typing import Any

#: Annotation saves arrive as update:job (CVAT has no annotation events); the rest keep the
#: job list of a task current.
EVENTS = ("update:job", "create:job", "delete:job", "update:task")


def install_webhook(source: Any, project_id: int, url: str, secret: str) -> int:
    """Create, or update in place, the project's webhook that posts to ``url``.

    An existing webhook of the project with the same ``target_url`` is updated (events, secret,
    active), so running this twice leaves one webhook.

    Args:
        source: a :class:`~labelgate_cvat.client.CvatSource`.
        project_id: the CVAT project.
        url: the public URL of ``/webhooks/cvat``.
        secret: the HMAC secret CVAT signs each delivery with (``X-Signature-256``).

    Returns:
        The webhook id.
    """
    from cvat_sdk import models

    api = source.api.webhooks_api
    existing = [
        w
        for w in source._list(
            f"webhooks of project {project_id}", api.list_endpoint, project_id=project_id
        )
        if w.get("target_url") == url
    ]
    events = [models.EventsEnum(e) for e in EVENTS]
    if existing:
        hook_id = int(existing[0]["id"])
        patch = models.PatchedWebhookWriteRequest(
            events=events,
            secret=secret,
            is_active=True,
            content_type=models.WebhookContentType("application/json"),
        )
        source._write(
            f"update webhook {hook_id}",
            api.partial_update_endpoint,
            id=hook_id,
            patched_webhook_write_request=patch,
        )
        return hook_id
    request = models.WebhookWriteRequest(
        target_url=url,
        type=models.WebhookType("project"),
        events=events,
        content_type=models.WebhookContentType("application/json"),
        secret=secret,
        is_active=True,
        enable_ssl=url.startswith("https://"),
        project_id=project_id,
        description="labelgate: re-score on annotation saves",
    )
    created = source._write(
        f"create webhook for project {project_id}",
        api.create_endpoint,
        webhook_write_request=request,
    )
    return int(created["id"])
