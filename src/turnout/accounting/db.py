"""The database behind the request log and gateway keys: SQLite (WAL) by default, PostgreSQL
when ``database_url`` says so. Every method is synchronous and runs in a worker thread
(``asyncio.to_thread``), never on the event loop; SQLAlchemy and the drivers are imported on
first use.

SQLAlchemy Core (not the ORM) because Alembic needs it and because it gives one dialect-neutral
query layer over both databases; psycopg 3 is the PostgreSQL driver (the ``postgres`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ConfigError, DatabaseUnavailableError, MissingDependencyError

__all__ = ["MIGRATION_WAIT", "Database", "DatabaseUnavailable", "database_url", "until_migrated"]

log = logging.getLogger("turnout.db")


DatabaseUnavailable = DatabaseUnavailableError
"""The database could not be reached or refused a statement (wraps the driver's error)."""


def database_url(config: Config) -> str | None:
    """The SQLAlchemy URL for ``config``, or None when the database is turned off."""
    url = config.database_url
    if url is None:
        beside = Path(config.source).parent if config.source != "<defaults>" else Path.cwd()
        return f"sqlite:///{(beside / 'turnout.db').resolve()}"
    if url.strip().lower() in ("none", "off", "false", ""):
        return None
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(
            f"{config.source}: database_url: expected postgresql://... or sqlite:///path "
            f"(got a value without a scheme)"
        )
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    if scheme in ("postgresql+psycopg", "sqlite"):
        return url
    raise ConfigError(
        f"{config.source}: database_url: scheme '{scheme}' is not supported "
        "(use postgresql:// or sqlite:///)"
    )


MIGRATION_WAIT = 5.0
"""Seconds a request that needs the tables waits for the start-up migration to finish."""


async def until_migrated(migrated: asyncio.Event, timeout: float = MIGRATION_WAIT) -> bool:
    """Wait, at most ``timeout`` seconds, for this process's start-up migration (``migrated``
    is set once it is done); whether it is. A caller that gets False tries the database
    anyway (another process may have migrated it) and, when that fails, answers 503."""
    if migrated.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(migrated.wait(), timeout)
    return migrated.is_set()


def _safe(url: str) -> str:
    """The URL with any password replaced, for logs and errors."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


# Alembic keeps its ``context`` in module globals, one per process: two upgrades in threads of
# one process (several servers in one test process, a server and the CLI) would remove each
# other's (``KeyError('config')``). So migrations in one process run one at a time.
_MIGRATING = threading.Lock()
MIGRATION_LOCK_ID = 7_331_001
"""PostgreSQL advisory lock id held while migrating (arbitrary, constant)."""

_REVISION = re.compile(r"""^(down_)?revision\s*(?::[^=]*)?=\s*['"]?([\w-]+|None)['"]?""", re.M)


@functools.cache
def shipped_head() -> str | None:
    """The newest shipped migration, read from the version files' ``revision`` and
    ``down_revision`` lines (the one no other file revises), without importing Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (Path(__file__).parent / "migrations" / "versions").glob("*.py"):
        for down, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            (parents if down else revisions).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
        self._engine: Any = None

    def __repr__(self) -> str:
        return f"Database({_safe(self.url)!r})"

    @property
    def display_url(self) -> str:
        """The URL as it may be shown (any password replaced)."""
        return _safe(self.url)

    def engine(self) -> Any:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Any:
        try:
            from sqlalchemy import create_engine, event, make_url
        except ImportError:  # pragma: no cover - sqlalchemy is a core dependency
            raise MissingDependencyError("the database needs SQLAlchemy") from None
        if self.dialect == "postgresql":
            try:
                import psycopg  # noqa: F401
            except ImportError:
                raise MissingDependencyError(
                    "database_url is PostgreSQL: install the extra with "
                    "pip install 'turnout[postgres]'"
                ) from None
            # Fail fast when the server is gone or stuck: the request log retries on its own.
            # Options in the URL (e.g. a search_path) are kept: connect_args would replace them.
            options = f"{make_url(self.url).query.get('options', '')} -c statement_timeout=10000"
            return create_engine(
                self.url,
                pool_pre_ping=True,
                pool_size=2,
                max_overflow=2,
                connect_args={"connect_timeout": 3, "options": options.strip()},
            )
        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(self.url, connect_args={"timeout": 10})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            import sqlite3
            import time

            cur = dbapi_conn.cursor()
            # Switching a file to WAL answers "database is locked" at once, busy timeout or
            # not, while another connection holds the file's write (RESERVED) lock: as a
            # process switching a new file to WAL itself does. Two processes opening one new
            # file hit it in about 2 % of openings (tests/test_migration_lock.py holds the
            # lock to show it). Retry for up to the connect timeout.
            deadline, retrying = time.monotonic() + 10, False
            while True:
                try:
                    cur.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    if not retrying:
                        log.debug("switching to WAL: the file is locked; retrying for 10 s")
                        retrying = True
                    time.sleep(0.05)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine

    def _guard(self, fn: Any, *args: Any) -> Any:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return fn(*args)
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise DatabaseUnavailable(
                f"{_safe(self.url)}: {detail[0] if detail else type(exc).__name__}"
            ) from exc

    def ping(self) -> None:
        """One trivial query; ``DatabaseUnavailable`` when the database does not answer."""

        def run() -> None:
            from sqlalchemy import text

            with self.engine().connect() as conn:
                conn.execute(text("SELECT 1"))

        self._guard(run)

    # --- schema ------------------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        """Run the shipped Alembic migrations up to ``revision``. A database already at the
        shipped head is recognised with one query, without importing Alembic (about 11 MB
        of resident memory and a tenth of a second at every start of every worker)."""
        head = shipped_head()
        if revision == "head" and head is not None and self._guard(self._stamped) == head:
            return
        with self._migration_lock():
            # Another process may have migrated while this one waited for the lock.
            if revision == "head" and head is not None and self._guard(self._stamped) == head:
                return
            self._guard(self._upgrade, revision)

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Held while migrating: this process's lock, and for a SQLite file an exclusive
        ``flock`` on ``<file>.migrate.lock`` beside it, so that two processes starting on one
        new file do not both create the tables (SQLite commits each ``CREATE TABLE`` at once:
        the loser would leave a database with tables and no ``alembic_version``); on
        PostgreSQL an advisory lock, held by a transaction of its own without a statement
        timeout (another replica's migration may take long)."""
        with _MIGRATING:
            if self.dialect == "postgresql":
                from sqlalchemy import text

                with self.engine().begin() as conn:
                    conn.execute(text("SET LOCAL statement_timeout = 0"))
                    conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
                    yield
                return
            path = self.url.removeprefix("sqlite:///").split("?")[0]
            if not path or path == self.url or path.startswith(":memory:"):
                yield
                return
            import fcntl

            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with open(f"{path}.migrate.lock", "a+b") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
                yield

    def _stamped(self) -> str | None:
        """The revision in ``alembic_version``; None when there is none (a new database)."""
        from sqlalchemy import inspect, text

        with self.engine().connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        return str(rows[0][0]) if len(rows) == 1 else None

    def _upgrade(self, revision: str) -> None:
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", "turnout.accounting:migrations")
        with self.engine().begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def current_revision(self) -> str | None:
        def read() -> str | None:
            from alembic.runtime.migration import MigrationContext

            with self.engine().connect() as conn:
                rev = MigrationContext.configure(conn).get_current_revision()
                return str(rev) if rev is not None else None

        result: str | None = self._guard(read)
        return result

    # --- request log -------------------------------------------------------------------

    def write_records(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert request-log rows (tuples in ``records.COLUMNS`` order), add their cost to
        each key's spend and their figures to the five-minute roll-ups, in one transaction
        (so spend, roll-ups and log never disagree)."""
        self._guard(self._write_records, rows)

    def _write_records(self, rows: Sequence[tuple[Any, ...]]) -> None:
        from .periods import periods_of
        from .records import COLUMNS
        from .rollup import (
            coarse_rows,
            histogram_rows,
            rollup_rows,
            stats_rows,
            stats_upsert_sql,
            upsert_sql,
        )

        ts, key_id, cost = COLUMNS.index("ts"), COLUMNS.index("key_id"), COLUMNS.index("cost")
        spend: dict[tuple[str, str], float] = {}
        for row in rows:
            if row[key_id] and row[cost]:
                for period in periods_of(row[ts]):
                    k = (row[key_id], period)
                    spend[k] = spend.get(k, 0.0) + row[cost]
        engine = self.engine()
        # The driver's own executemany: SQLAlchemy's per-row parameter processing costs
        # more than the insert itself at these batch sizes.
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        insert = (
            f"INSERT INTO request_log ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join([mark] * len(COLUMNS))})"
        )
        upsert = (
            f"INSERT INTO key_spend (key_id, period, spend) VALUES ({mark}, {mark}, {mark}) "
            "ON CONFLICT (key_id, period) DO UPDATE SET spend = key_spend.spend + excluded.spend"
        )
        with engine.begin() as conn:
            conn.exec_driver_sql(insert, list(rows))
            if spend:
                conn.exec_driver_sql(upsert, [(k, p, s) for (k, p), s in spend.items()])
            sums = rollup_rows(rows)
            if sums:
                conn.exec_driver_sql(upsert_sql(mark), sums)
            add_stats, add_histogram = stats_upsert_sql(mark)
            add_coarse_stats, add_coarse_histogram = stats_upsert_sql(mark, coarse=True)
            stats, histogram = stats_rows(rows), histogram_rows(rows)
            for sql, values in (
                (add_stats, stats),
                (add_histogram, histogram),
                (add_coarse_stats, coarse_rows(stats, 4)),
                (add_coarse_histogram, coarse_rows(histogram, 5)),
            ):
                if values:
                    conn.exec_driver_sql(sql, values)

    def prune(self, before_ts: float) -> int:
        """Delete request-log records, roll-ups and stored responses older than
        ``before_ts``; the number of request-log records deleted."""

        def run() -> int:
            from .rollup import SLOT, WIDTHS

            t = self.tables()["request_log"]
            kept = self.tables()["responses"]
            with self.engine().begin() as conn:
                for name in ("request_rollup", "request_stats", "request_histogram"):
                    r = self.tables()[name]
                    conn.execute(r.delete().where(r.c.slot < before_ts // SLOT))
                # An hour or a day goes once all of it is older than ``before_ts``.
                for name in ("request_stats_coarse", "request_histogram_coarse"):
                    r = self.tables()[name]
                    for width in WIDTHS:
                        conn.execute(
                            r.delete().where(r.c.width == width, r.c.slot < before_ts // width)
                        )
                # Stored responses (``/v1/responses``) follow the request log's retention.
                conn.execute(kept.delete().where(kept.c.created_at < before_ts))
                return int(conn.execute(t.delete().where(t.c.ts < before_ts)).rowcount or 0)

        deleted: int = self._guard(run)
        return deleted

    def records_since(self, since: float, columns: Iterable[str]) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            from sqlalchemy import select

            t = self.tables()["request_log"]
            query = select(*(t.c[name] for name in columns)).where(t.c.ts >= since)
            with self.engine().connect() as conn:
                return [tuple(r) for r in conn.execute(query)]

        rows: list[tuple[Any, ...]] = self._guard(run)
        return rows

    # --- feedback ----------------------------------------------------------------------

    def find_request(self, request_id: str, key_id: str | None) -> dict[str, Any] | None:
        """The latest record of ``request_id`` (of gateway key ``key_id`` when given: a
        key sees only its own requests)."""

        def run() -> dict[str, Any] | None:
            from sqlalchemy import select

            t = self.tables()["request_log"]
            query = (
                select(t.c.route, t.c.deployment, t.c.key_id, t.c.status)
                .where(t.c.request_id == request_id, t.c.attempt.is_(None))
                .order_by(t.c.ts.desc())
                .limit(1)
            )
            if key_id is not None:
                query = query.where(t.c.key_id == key_id)
            with self.engine().connect() as conn:
                row = conn.execute(query).first()
            return dict(row._mapping) if row is not None else None

        found: dict[str, Any] | None = self._guard(run)
        return found

    def save_feedback(self, row: dict[str, Any]) -> None:
        """Store a request's feedback, replacing what the same key said of it before."""

        def run() -> None:
            t = self.tables()["request_feedback"]
            same = (t.c.request_id == row["request_id"]) & (
                t.c.key_id.is_(None) if row["key_id"] is None else t.c.key_id == row["key_id"]
            )
            with self.engine().begin() as conn:
                conn.execute(t.delete().where(same))
                conn.execute(t.insert(), [row])

        self._guard(run)

    def feedback_outcomes(self, limit: int = 100_000) -> list[tuple[Any, str, float, Any]]:
        """(embedding or None, deployment, score, route) of the latest feedback."""

        def run() -> list[tuple[Any, str, float, Any]]:
            from sqlalchemy import select

            t = self.tables()["request_feedback"]
            query = (
                select(t.c.embedding, t.c.deployment, t.c.score, t.c.route)
                .where(t.c.deployment.is_not(None))
                .order_by(t.c.ts.desc())
                .limit(limit)
            )
            with self.engine().connect() as conn:
                return [(r[0], r[1], float(r[2]), r[3]) for r in conn.execute(query)]

        rows: list[tuple[Any, str, float, Any]] = self._guard(run)
        return rows

    # --- gateway keys ------------------------------------------------------------------

    def insert_key(self, row: dict[str, Any]) -> None:
        def run() -> None:
            with self.engine().begin() as conn:
                conn.execute(self.tables()["gateway_keys"].insert(), [row])

        self._guard(run)

    def update_key(self, key_id: str, values: dict[str, Any]) -> bool:
        def run() -> bool:
            t = self.tables()["gateway_keys"]
            with self.engine().begin() as conn:
                done = conn.execute(t.update().where(t.c.id == key_id).values(**values))
                return bool(done.rowcount)

        found: bool = self._guard(run)
        return found

    def keys(self, *, secret_hash: str | None = None, key_id: str | None = None) -> list[dict]:
        """Every key, or the one with this hash or id."""

        def run() -> list[dict[str, Any]]:
            from sqlalchemy import select

            t = self.tables()["gateway_keys"]
            query = select(t).order_by(t.c.created_at)
            if secret_hash is not None:
                query = query.where(t.c.secret_hash == secret_hash)
            if key_id is not None:
                query = query.where(t.c.id == key_id)
            with self.engine().connect() as conn:
                return [dict(r._mapping) for r in conn.execute(query)]

        rows: list[dict[str, Any]] = self._guard(run)
        return rows

    def keys_version(self) -> float:
        """The latest ``updated_at`` over all keys: a cheap change detector."""

        def run() -> float:
            from sqlalchemy import func, select

            t = self.tables()["gateway_keys"]
            with self.engine().connect() as conn:
                return float(conn.execute(select(func.max(t.c.updated_at))).scalar() or 0.0)

        version: float = self._guard(run)
        return version

    def spend(self, periods: Sequence[str]) -> dict[tuple[str, str], float]:
        """Recorded spend per (key id, period) for the given periods."""

        def run() -> dict[tuple[str, str], float]:
            from sqlalchemy import select

            t = self.tables()["key_spend"]
            query = select(t.c.key_id, t.c.period, t.c.spend).where(t.c.period.in_(periods))
            with self.engine().connect() as conn:
                return {(r[0], r[1]): float(r[2]) for r in conn.execute(query)}

        rows: dict[tuple[str, str], float] = self._guard(run)
        return rows

    @staticmethod
    def tables() -> dict[str, Any]:
        from .schema import tables

        return tables()

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
