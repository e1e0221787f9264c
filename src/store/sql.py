"""A small SQL gateway for closedloop's own tables (read models, idempotency records).

The event store belongs to `eventsourcing`; read models and request records live beside it in the
same database, written with plain SQL through this gateway. Statements use ``%s`` placeholders
and portable SQL (``INSERT ... ON CONFLICT``), so one statement serves SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from closedloop.settings import Settings
from closedloop.store.environment import libpq_url

Row = dict[str, Any]


class Cursor(Protocol):
    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, statement: str, params: Sequence[Sequence[Any]]) -> Any: ...
    def fetchall(self) -> list[Row]: ...
    def fetchone(self) -> Row | None: ...
    @property
    def rowcount(self) -> int: ...


class Database(ABC):
    """Transactions and queries against closedloop's own tables."""

    dialect: str

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A write transaction: commits on normal exit, rolls back on an exception."""

    @abstractmethod
    @contextmanager
    def reading(self) -> Iterator[Cursor]:
        """A cursor for reads only; it does not block writers."""

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        with self.reading() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall()

    def query_one(self, statement: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.query(statement, params)
        return rows[0] if rows else None

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release connections."""


class _SQLiteCursor:
    """Adapts sqlite3 to ``%s`` placeholders and dict rows."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(statement.replace("%s", "?"), tuple(params))

    def executemany(self, statement: str, params: Sequence[Sequence[Any]]) -> Any:
        return self._cursor.executemany(statement.replace("%s", "?"), [tuple(p) for p in params])

    def fetchall(self) -> list[Row]:
        return [dict(row) for row in self._cursor.fetchall()]

    def fetchone(self) -> Row | None:
        row = self._cursor.fetchone()
        return dict(row) if row is not None else None

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


class SQLiteDatabase(Database):
    """One connection per thread; writes take the database lock up front (BEGIN IMMEDIATE)."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield _SQLiteCursor(connection.cursor())
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[Cursor]:
        yield _SQLiteCursor(self._connection().cursor())

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()


class PostgresDatabase(Database):
    dialect = "postgres"

    def __init__(self, url: str, schema: str, *, pool_size: int = 4) -> None:
        self.pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            libpq_url(url),
            min_size=1,
            max_size=pool_size,
            open=True,
            kwargs={"row_factory": dict_row, "options": f"-c search_path={schema}"},
        )

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self.pool.connection() as connection, connection.transaction():
            yield connection.cursor()

    @contextmanager
    def reading(self) -> Iterator[Cursor]:
        with self.pool.connection() as connection:
            yield connection.cursor()

    def listen(self, channel: str, wake: threading.Event, stop: threading.Event) -> None:
        """Set ``wake`` on every NOTIFY on ``channel`` until ``stop`` is set."""
        with self.pool.connection() as connection:
            connection.autocommit = True
            connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            try:
                while not stop.is_set():
                    for _ in connection.notifies(timeout=0.5, stop_after=1):
                        wake.set()
            finally:
                connection.execute("UNLISTEN *")

    def close(self) -> None:
        self.pool.close()


def open_database(settings: Settings) -> Database:
    if settings.store_kind == "sqlite":
        return SQLiteDatabase(settings.sqlite_path)
    assert settings.database_url is not None
    return PostgresDatabase(
        settings.database_url, settings.database_schema, pool_size=settings.postgres_pool_size
    )
