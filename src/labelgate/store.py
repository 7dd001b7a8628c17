"""Report store: every report with its time, source, target and settings (SQLAlchemy Core).

SQLite file by default (``$LABELGATE_HOME/labelgate.db``), PostgreSQL by URL
(``postgresql+psycopg://user@host/db``). Saving with a ``key`` is idempotent: the same key
updates its row instead of adding a second one, so retries never write twice.

A report's id is a random URL-safe string (:data:`PUBLIC_ID`), so ids in ``/reports/<id>``
links cannot be guessed; the integer primary key stays inside the database (it orders runs).
Every database or file-system failure leaves this module as :class:`StoreUnavailable` with a
redacted message, never as a SQLAlchemy traceback. New SQLite files (and the default home
folder) are created private (0600 / 0700).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from labelgate.errors import MissingDependency, NotFound, StoreUnavailable, ValidationError
from labelgate.security import private_dir, private_file, redact

#: A report id: ``secrets.token_urlsafe(16)`` (128 random bits, 22 characters).
PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{22}")

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
    sa.Column("public_id", sa.String(32)),
    # The dashboard's summary of the report (labelgate.reporting.dashboard.digest_report),
    # computed once on save so listing runs never parses report bodies; NULL on older rows.
    sa.Column("digest", sa.Text),
    sa.Index("ix_reports_lookup", "source", "project", "kind", "created_at"),
    # Unique, also on stores created before the column existed (see Store._migrate).
    sa.Index("ix_reports_public_id", "public_id", unique=True),
)
#: One row, rewritten by :meth:`Store.check_writable` (``/healthz``) to prove writes land.
HEALTH = sa.Table(
    "labelgate_health",
    _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
)


def new_public_id() -> str:
    """A fresh report id (:data:`PUBLIC_ID`)."""
    return secrets.token_urlsafe(16)


@contextmanager
def _guard(action: str) -> Iterator[None]:
    """Turn database and file-system failures into :class:`StoreUnavailable`."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        raise StoreUnavailable(redact(f"the report store cannot {action}: {detail}")) from None
    except OSError as exc:
        raise StoreUnavailable(redact(f"the report store cannot {action}: {exc}")) from None


def home() -> Path:
    """labelgate's data folder: ``LABELGATE_HOME`` or a per-user data folder."""
    env = os.environ.get("LABELGATE_HOME")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("labelgate"))


@dataclass(frozen=True)
class StoredReport:
    """A stored report. ``id`` is its public id; ``seq`` the internal insertion order."""

    id: str
    kind: str
    source: str
    target: str
    project: str | None
    created_at: datetime
    report: dict[str, Any]
    settings: dict[str, Any] | None
    seq: int = 0


@dataclass(frozen=True)
class ReportHead:
    """A stored report without its body (listing thousands of runs loads no report JSON)."""

    id: str
    kind: str
    source: str
    target: str
    project: str | None
    created_at: datetime
    seq: int = 0
    digest: dict[str, Any] | None = None


def _racing(exc: sa.exc.SQLAlchemyError) -> bool:
    """A failure another process starting at the same time explains (a retry succeeds)."""
    text = str(getattr(exc, "orig", exc)).lower()
    return any(k in text for k in ("already exists", "locked", "duplicate column"))


class Store:
    """Reports in a SQL database. Use :func:`open_store`.

    Raises (every method): StoreUnavailable: the database cannot be reached, read or written.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        for attempt in range(5):
            try:
                _META.create_all(engine)
                self._migrate()
                break
            except sa.exc.SQLAlchemyError as exc:
                # Processes starting together (serve + workers) race to create the tables:
                # the loser sees "already exists" or a lock, and a second look finds them.
                if attempt < 4 and _racing(exc):
                    time.sleep(0.05 * (attempt + 1))
                    continue
                detail = getattr(exc, "orig", None) or exc
                raise StoreUnavailable(redact(f"cannot open the report store: {detail}")) from None
            except OSError as exc:
                raise StoreUnavailable(redact(f"cannot open the report store: {exc}")) from None

    def _migrate(self) -> None:
        """Give stores created before public ids their column, ids and unique index."""
        columns = {c["name"] for c in sa.inspect(self.engine).get_columns(REPORTS.name)}
        if "digest" not in columns:
            with self.engine.begin() as conn:
                conn.execute(sa.text(f"ALTER TABLE {REPORTS.name} ADD COLUMN digest TEXT"))
        if "public_id" not in columns:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.text(f"ALTER TABLE {REPORTS.name} ADD COLUMN public_id VARCHAR(32)")
                )
                conn.execute(
                    sa.text(
                        f"CREATE UNIQUE INDEX IF NOT EXISTS ix_reports_public_id "
                        f"ON {REPORTS.name} (public_id)"
                    )
                )
        with self.engine.connect() as conn:
            missing = conn.execute(
                sa.select(REPORTS.c.id).where(REPORTS.c.public_id.is_(None))
            ).all()
        if missing:
            with self.engine.begin() as conn:
                for row in missing:
                    conn.execute(
                        REPORTS.update()
                        .where(REPORTS.c.id == row.id, REPORTS.c.public_id.is_(None))
                        .values(public_id=new_public_id())
                    )

    def ping(self) -> None:
        """Raises: StoreUnavailable: the database does not answer."""
        with _guard("answer"), self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def check_writable(self) -> None:
        """Commit a one-row write, so a read-only or full disk shows (``/healthz``).

        Raises:
            StoreUnavailable: the write did not commit.
        """
        now = datetime.now(timezone.utc)
        with _guard("write"):
            try:
                with self.engine.begin() as conn:
                    done = conn.execute(
                        HEALTH.update().where(HEALTH.c.id == 1).values(checked_at=now)
                    )
                    if not done.rowcount:
                        conn.execute(HEALTH.insert().values(id=1, checked_at=now))
            except sa.exc.IntegrityError:
                pass  # a concurrent check inserted the row: that write committed

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
    ) -> str:
        """Store a report and return its public id; an existing ``key`` is updated in place
        (and keeps its id)."""
        from labelgate.reporting.dashboard import digest_report

        digest = digest_report(kind, report)
        row = {
            "kind": kind,
            "source": source,
            "target": target,
            "project": project,
            "created_at": created_at or datetime.now(timezone.utc),
            "report": json.dumps(report),
            "settings": json.dumps(settings) if settings else None,
            "key": key,
            "digest": json.dumps(digest) if digest is not None else None,
        }
        with _guard("save the report"), self.engine.begin() as conn:
            if key is not None:
                found = conn.execute(
                    sa.select(REPORTS.c.id, REPORTS.c.public_id).where(REPORTS.c.key == key)
                ).first()
                if found is not None:
                    conn.execute(REPORTS.update().where(REPORTS.c.id == found.id).values(**row))
                    return str(found.public_id)
            public_id = new_public_id()
            conn.execute(REPORTS.insert().values(**row, public_id=public_id))
            return public_id

    @staticmethod
    def _row(r: Any) -> StoredReport:
        created = r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=timezone.utc)
        return StoredReport(
            str(r.public_id),
            r.kind,
            r.source,
            r.target,
            r.project,
            created,
            json.loads(r.report),
            json.loads(r.settings) if r.settings else None,
            int(r.id),
        )

    def get_report(self, report_id: str) -> StoredReport:
        """The report with public id ``report_id``.

        Raises:
            NotFound: no report with that id (anything that is not a :data:`PUBLIC_ID` included).
        """
        if not isinstance(report_id, str) or not PUBLIC_ID.fullmatch(report_id):
            raise NotFound(f"no stored report with id {str(report_id)[:40]}")
        with _guard("read the report"), self.engine.connect() as conn:
            r = conn.execute(sa.select(REPORTS).where(REPORTS.c.public_id == report_id)).first()
        if r is None:
            raise NotFound(f"no stored report with id {report_id}")
        return self._row(r)

    def find_key(self, key: str) -> StoredReport | None:
        """The report saved under ``key``, or None."""
        with _guard("read the report"), self.engine.connect() as conn:
            r = conn.execute(sa.select(REPORTS).where(REPORTS.c.key == key)).first()
        return None if r is None else self._row(r)

    def list_heads(
        self,
        source: str | None = None,
        project: str | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[ReportHead]:
        """Matching reports without their bodies, newest first (see :meth:`list_reports`)."""
        names = ("id", "public_id", "kind", "source", "target", "project", "created_at", "digest")
        q = sa.select(*[REPORTS.c[c] for c in names])
        for col, value in (("source", source), ("project", project), ("kind", kind)):
            if value is not None:
                q = q.where(REPORTS.c[col] == value)
        q = q.order_by(REPORTS.c.created_at.desc(), REPORTS.c.id.desc())
        if limit:
            q = q.limit(limit)
        with _guard("list reports"), self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [
            ReportHead(
                str(r.public_id),
                r.kind,
                r.source,
                r.target,
                r.project,
                r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=timezone.utc),
                int(r.id),
                json.loads(r.digest) if r.digest else None,
            )
            for r in rows
        ]

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
        with _guard("list reports"), self.engine.connect() as conn:
            return [self._row(r) for r in conn.execute(q)]


def open_store(url: str | None = None) -> Store:
    """Open (and create if needed) the store at ``url`` / ``LABELGATE_STORE_URL`` / default.

    Raises:
        ValidationError: ``url`` is not a database URL.
        MissingDependency: the URL's database driver is not installed.
        StoreUnavailable: the database cannot be reached or the file cannot be created.
    """
    url = url or os.environ.get("LABELGATE_STORE_URL")
    try:
        if not url:
            url = f"sqlite:///{private_dir(home()) / 'labelgate.db'}"
        parsed = sa.engine.make_url(url)
        database = parsed.database or ""
        is_uri = str(parsed.query.get("uri", "")).lower() == "true" or database.startswith("file:")
        if (
            parsed.get_backend_name() == "sqlite"
            and database not in ("", ":memory:")
            and not is_uri
        ):
            private_file(database)
        engine = sa.create_engine(url, future=True)
    except sa.exc.NoSuchModuleError as exc:
        raise MissingDependency(redact(f"store URL {url!r}: {exc}")) from None
    except sa.exc.ArgumentError:
        raise ValidationError(
            redact(f"store URL {url!r} (LABELGATE_STORE_URL / --store) is not a database URL")
        ) from None
    except ImportError as exc:
        raise MissingDependency(redact(f"store URL {url!r} needs a driver: {exc}")) from None
    except OSError as exc:
        raise StoreUnavailable(redact(f"cannot create the report store: {exc}")) from None
    return Store(engine)
