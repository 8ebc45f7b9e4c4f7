"""Engine, sessions and migrations. SQLite under IMAGINE_HOME by default; PostgreSQL by URL."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


def database_url(url: str | None, home: Path) -> str:
    return url or f"sqlite:///{(home / 'imagine.db').resolve()}"


BUSY_TIMEOUT_S = 30.0
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")
# SQLite's durability in WAL mode (IMAGINE_SQLITE_SYNCHRONOUS). Either way a commit survives
# the process being killed. "normal" does not fsync each commit, only the WAL at each
# checkpoint, so an OS crash or power loss may roll back the last commits; "full" fsyncs
# every commit, which here costs about 90 us of CPU each (three per job).
SQLITE_SYNCHRONOUS = ("normal", "full")


def make_engine(url: str, sqlite_synchronous: str = "normal") -> Engine:
    if url.startswith("sqlite"):
        assert sqlite_synchronous in SQLITE_SYNCHRONOUS
        # One connection per request thread stays open: reconnecting repeats the pragmas.
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": BUSY_TIMEOUT_S,
                "factory": writers_take_turns(threading.Lock()),
            },
            pool_size=16,
            max_overflow=48,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the worker's writes
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous.upper()}")
            cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            # Deleted rows are overwritten with zeros, not left in free space (some builds do
            # this by default, others not): an erased embedding leaves no bytes (issue 16).
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def writers_take_turns(lock: threading.Lock) -> type[sqlite3.Connection]:
    """A sqlite3 connection class whose transactions take turns on ``lock`` to write, from
    their first write until they commit or roll back (or the connection closes).

    SQLite lets one connection write at a time; the others retry after sleeps that grow
    to 100 ms. With a few requests writing at once those sleeps, not the writes, made
    job creation slow (p99 over 500 ms in ``benchmarks/api.py``). A thread waiting here
    is woken the moment the writer is done. Other processes (the CLI) still meet
    SQLite's busy timeout. This sits under SQLAlchemy rather than in its
    ``before_cursor_execute`` event, which cost 13 us on every statement.
    """

    class TurnTakingCursor(sqlite3.Cursor):
        connection: TurnTakingConnection

        def execute(self, sql: str, parameters: Any = (), /) -> TurnTakingCursor:
            self.connection.wait_to_write(sql)
            return super().execute(sql, parameters)

        def executemany(self, sql: str, parameters: Any, /) -> TurnTakingCursor:
            self.connection.wait_to_write(sql)
            return super().executemany(sql, parameters)

    class TurnTakingConnection(sqlite3.Connection):
        writing = False

        def cursor(self, factory: Any = TurnTakingCursor) -> Any:
            return super().cursor(factory)

        def wait_to_write(self, sql: str) -> None:
            if self.writing or not sql.lstrip()[:7].upper().startswith(WRITES):
                return
            # A thread that already writes on another connection would wait for itself;
            # after the busy timeout it goes on, and SQLite decides as it would without us.
            self.writing = lock.acquire(timeout=BUSY_TIMEOUT_S)

        def done_writing(self) -> None:
            if self.writing:
                self.writing = False
                lock.release()

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self.done_writing()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self.done_writing()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self.done_writing()

    return TurnTakingConnection


MIGRATION_LOCK = 0x696D6167  # any constant; "imag"


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # API and worker processes that start together migrate one at a time; the
            # others then find the schema at head. Held until this transaction ends.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


class Database:
    def __init__(self, url: str, sqlite_synchronous: str = "normal"):
        self.url = url
        self.engine = make_engine(url, sqlite_synchronous)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A unit of work for statements on table columns (SQLAlchemy Core), committed like
        ``session``. Without the ORM's bookkeeping it costs about half as much."""
        with self.engine.begin() as conn:
            yield conn

    def checkpoint(self) -> bool:
        """SQLite: copy the WAL into the database file and truncate it, so that no older copy
        of an erased row's page stays in the WAL (issue 16); False when readers kept it from
        finishing within the busy timeout. Other databases: nothing to do, True."""
        if self.engine.dialect.name != "sqlite":
            return True
        with self.engine.connect() as conn:
            busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        return busy == 0

    def ping(self) -> bool:
        from sqlalchemy import text

        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False
