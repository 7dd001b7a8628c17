"""Report store: every report with its time, source, target and settings (SQLAlchemy Core).

SQLite file by default (``$LABELGATE_HOME/labelgate.db``), PostgreSQL by URL
(``postgresql+psycopg://user@host/db``). Saving with a ``key`` is idempotent: the same key
updates its row instead of adding a second one, so retries never write twice.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from labelgate.errors import ConnectionFailed, NotFound

_META = sa.MetaData()
REPORTS = sa.Table(
    "labelgate_reports",
    _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("project", sa.String(255)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("key", sa.String(255), unique=True),
    sa.Column("report", sa.Text, nullable=False),
    sa.Column("settings", sa.Text),
    sa.Index("ix_reports_lookup", "source", "project", "kind", "created_at"),
)


def home() -> Path:
    """labelgate's data folder: ``LABELGATE_HOME`` or a per-user data folder."""
    env = os.environ.get("LABELGATE_HOME")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("labelgate"))


@dataclass(frozen=True)
class StoredReport:
    id: int
    kind: str
    source: str
    target: str
    project: str | None
    created_at: datetime
    report: dict[str, Any]
    settings: dict[str, Any] | None


class Store:
    """Reports in a SQL database. Use :func:`open_store`."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        for attempt in range(5):
            try:
                _META.create_all(engine)
                break
            except sa.exc.OperationalError as exc:
                # Processes starting together (serve + workers) race to create the tables:
                # the loser sees "already exists" or a lock, and a second look finds them.
                text = str(exc.orig).lower()
                if attempt < 4 and ("already exists" in text or "locked" in text):
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise ConnectionFailed(f"cannot open the report store: {exc.orig}") from None

    def ping(self) -> None:
        """Raises: ConnectionFailed: the database does not answer."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            raise ConnectionFailed(f"the report store does not answer: {exc}") from None

    def close(self) -> None:
        """Release pooled database connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save_report(
        self,
        kind: str,
        source: str,
        target: str,
        report: dict[str, Any],
        *,
        project: str | None = None,
        settings: dict[str, Any] | None = None,
        key: str | None = None,
        created_at: datetime | None = None,
    ) -> int:
        """Store a report and return its id; an existing ``key`` is updated in place."""
        row = {
            "kind": kind,
            "source": source,
            "target": target,
            "project": project,
            "created_at": created_at or datetime.now(timezone.utc),
            "report": json.dumps(report),
            "settings": json.dumps(settings) if settings else None,
            "key": key,
        }
        with self.engine.begin() as conn:
            if key is not None:
                found = conn.execute(sa.select(REPORTS.c.id).where(REPORTS.c.key == key)).first()
                if found is not None:
                    conn.execute(REPORTS.update().where(REPORTS.c.id == found.id).values(**row))
                    return int(found.id)
            result = conn.execute(REPORTS.insert().values(**row))
            new_id = result.inserted_primary_key
            if new_id is None:  # pragma: no cover - every supported backend returns it
                raise ConnectionFailed("the store did not return the new report's id")
            return int(new_id[0])

    @staticmethod
    def _row(r: Any) -> StoredReport:
        created = r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=timezone.utc)
        return StoredReport(
            int(r.id),
            r.kind,
            r.source,
            r.target,
            r.project,
            created,
            json.loads(r.report),
            json.loads(r.settings) if r.settings else None,
        )

    def get_report(self, report_id: int) -> StoredReport:
        """Raises: NotFound: no report with that id."""
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(REPORTS).where(REPORTS.c.id == report_id)).first()
        if r is None:
            raise NotFound(f"no stored report with id {report_id}")
        return self._row(r)

    def find_key(self, key: str) -> StoredReport | None:
        """The report saved under ``key``, or None."""
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(REPORTS).where(REPORTS.c.key == key)).first()
        return None if r is None else self._row(r)

    def list_reports(
        self,
        source: str | None = None,
        project: str | None = None,
        kind: str | None = None,
        target: str | None = None,
        limit: int | None = None,
    ) -> list[StoredReport]:
        """Matching reports, newest first."""
        q = sa.select(REPORTS)
        for col, value in (
            ("source", source),
            ("project", project),
            ("kind", kind),
            ("target", target),
        ):
            if value is not None:
                q = q.where(REPORTS.c[col] == value)
        q = q.order_by(REPORTS.c.created_at.desc(), REPORTS.c.id.desc())
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [self._row(r) for r in conn.execute(q)]


def open_store(url: str | None = None) -> Store:
    """Open (and create if needed) the store at ``url`` / ``LABELGATE_STORE_URL`` / default.

    Raises:
        ConnectionFailed: the database cannot be reached.
    """
    url = url or os.environ.get("LABELGATE_STORE_URL")
    if not url:
        folder = home()
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{folder / 'labelgate.db'}"
    return Store(sa.create_engine(url, future=True))
