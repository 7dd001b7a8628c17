"""Webhook authenticity checks, in constant time.

CVAT signs the raw body: ``X-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``. Label
Studio sends no signature, so ``labelgate webhooks install`` gives each project's webhook a
secret header (stored per project, see :mod:`labelgate.webhook_secrets`) which is compared here.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from labelgate.errors import SignatureError


def cvat_signature(body: bytes, secret: str) -> str:
    """The header value CVAT sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_cvat(body: bytes, header: str | None, secret: str | None) -> None:
    """Raises: SignatureError: no secret configured, header missing, wrong prefix or digest."""
    if not secret:
        raise SignatureError("LABELGATE_CVAT_WEBHOOK_SECRET is not set: CVAT webhooks are refused")
    if not header:
        raise SignatureError("missing X-Signature-256 header")
    if not header.startswith("sha256="):
        raise SignatureError("X-Signature-256 must start with 'sha256='")
    if not hmac.compare_digest(header.encode(), cvat_signature(body, secret).encode()):
        raise SignatureError("X-Signature-256 does not match the body")


def verify_shared_secret(value: str | None, secret: str | None, header: str) -> None:
    """Raises: SignatureError: no secret configured, header missing or different."""
    if not secret:
        raise SignatureError(
            "LABELGATE_LS_WEBHOOK_SECRET is not set: Label Studio webhooks are refused"
        )
    if not value or not hmac.compare_digest(value.encode(), secret.encode()):
        raise SignatureError(f"missing or wrong {header} header")


def labelstudio_project(body: bytes) -> int | None:
    """The project id of a Label Studio delivery (None when the body does not say)."""
    import json

    try:
        data = json.loads(body or b"")
    except (ValueError, RecursionError):
        return None
    project = data.get("project") if isinstance(data, dict) else None
    pid = project.get("id") if isinstance(project, dict) else None
    return pid if isinstance(pid, int) and not isinstance(pid, bool) else None


def verify_labelstudio(
    body: bytes, value: str | None, header: str, secret: str | None, engine: Any
) -> None:
    """A Label Studio delivery carries its project's own secret (stored by ``webhooks
    install``), or, for a project without one, the global ``LS_WEBHOOK_SECRET``.

    Raises:
        SignatureError: naming the project, when neither matches.
    """
    from labelgate.webhook_secrets import secret_matches

    project = labelstudio_project(body)
    where = f"Label Studio project {project}" if project is not None else "Label Studio"
    own = secret_matches(engine, "labelstudio", project, value or "") if project else None
    if own is True:
        return
    if own is False:
        raise SignatureError(f"{where}: missing or wrong {header} header")
    try:
        verify_shared_secret(value, secret, header)
    except SignatureError as exc:
        raise SignatureError(f"{where}: {exc}") from None
