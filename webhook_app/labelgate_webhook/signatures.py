"""Webhook authenticity checks, in constant time.

CVAT signs the raw body: ``X-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``. Label
Studio sends no signature, so ``labelgate webhooks install`` gives its webhook a secret header
which is compared here.
"""

from __future__ import annotations

import hashlib
import hmac

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
