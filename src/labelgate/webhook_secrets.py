"""Per-project webhook secrets, kept next to the reports in the store.

``labelgate webhooks install`` saves the secret a project's webhook sends; ``labelgate serve``
accepts each project's deliveries with that project's secret only. Only a SHA-256 digest is
stored: the secrets are random 256-bit tokens, so a digest is as good as the secret for the
check and useless to a reader of the database. The secret itself lives in the sender's webhook
settings (Label Studio shows it in the webhook's headers), which is where ``install`` finds it
again to reuse it.
"""

from __future__ import annotations

import hashlib
import hmac
import weakref
from datetime import datetime, timezone

import sqlalchemy as sa

from labelgate.errors import ConnectionFailed

_META = sa.MetaData()
SECRETS = sa.Table(
    "labelgate_webhook_secrets",
    _META,
    sa.Column("source", sa.String(32), primary_key=True),
    sa.Column("project", sa.String(64), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
_READY: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _ready(engine: sa.Engine) -> sa.Engine:
    if engine not in _READY:
        _META.create_all(engine)
        _READY.add(engine)
    return engine


def save_secret(engine: sa.Engine, source: str, project: int | str, secret: str) -> None:
    """Store (or replace) the secret of ``source`` project ``project``."""
    key = {"source": source, "project": str(project)}
    row = {**key, "digest": _digest(secret), "updated_at": datetime.now(timezone.utc)}
    with _ready(engine).begin() as conn:
        done = conn.execute(
            SECRETS.update()
            .where(SECRETS.c.source == source, SECRETS.c.project == str(project))
            .values(**row)
        )
        if not done.rowcount:
            conn.execute(SECRETS.insert().values(**row))


def secret_matches(engine: sa.Engine, source: str, project: int | str, value: str) -> bool | None:
    """Whether ``value`` is the project's stored secret; None when it has none stored.

    Raises:
        ConnectionFailed: the store does not answer.
    """
    try:
        with _ready(engine).connect() as conn:
            digest = conn.execute(
                sa.select(SECRETS.c.digest).where(
                    SECRETS.c.source == source, SECRETS.c.project == str(project)
                )
            ).scalar()
    except sa.exc.SQLAlchemyError as exc:
        raise ConnectionFailed(
            f"cannot read webhook secrets from the store: {type(exc).__name__}"
        ) from None
    if digest is None:
        return None
    return hmac.compare_digest(_digest(value).encode(), str(digest).encode())
