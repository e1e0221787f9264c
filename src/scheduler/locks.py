"""One replica at a time per job: a PostgreSQL advisory lock, or a lock in this process.

The locks only save work. Correctness never rests on them: a settlement's id is derived from
its cycle, stage and round and the cycle records it in the same transaction, and an item records
a missed deadline once by rule, so two replicas running a job at once still write each fact once.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import ClassVar, Protocol

import psycopg

from closedloop.settings import Settings
from closedloop.store.environment import libpq_url

log = logging.getLogger(__name__)


class JobLock(Protocol):
    def hold(self, name: str) -> AbstractContextManager[bool]:
        """Try to take the lock for job ``name``; yields whether this caller holds it."""
        ...


class LocalJobLock:
    """For SQLite, whose database lives on one machine: a lock per job in this process, shared
    by every scheduler on the same database file."""

    _locks: ClassVar[dict[str, threading.Lock]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, scope: str) -> None:
        self.scope = scope

    @contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        lock = self._lock_for(f"{self.scope}|{name}")
        acquired = lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()

    @classmethod
    def _lock_for(cls, key: str) -> threading.Lock:
        with cls._guard:
            return cls._locks.setdefault(key, threading.Lock())


class PostgresJobLock:
    """A session-level ``pg_try_advisory_lock`` on a connection of its own, held for the job.

    The connection is opened per job (jobs run daily at most) and is not the pool's: a session
    lock must stay on one session, and if that session dies the lock goes with it, so a crashed
    replica never blocks the others.
    """

    def __init__(self, url: str, schema: str) -> None:
        self.url = libpq_url(url)
        self.schema = schema

    @contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        key = advisory_key(self.schema, name)
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as connection:
            row = connection.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
            acquired = bool(row and row[0])
            try:
                yield acquired
            finally:
                if acquired:
                    _unlock(connection, key)


def _unlock(connection: psycopg.Connection[tuple[object, ...]], key: int) -> None:
    # Closing the connection releases the lock too; failing to unlock must not hide the job's
    # own outcome or error.
    try:
        connection.execute("SELECT pg_advisory_unlock(%s)", [key])
    except psycopg.Error as error:
        log.warning("could not release advisory lock %s (closing its connection): %s", key, error)


def advisory_key(schema: str, name: str) -> int:
    """A signed 64-bit key per schema and job, so deployments sharing a database don't meet."""
    digest = hashlib.sha256(f"closedloop:{schema}:scheduler:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def job_lock_for(settings: Settings) -> JobLock:
    if settings.store_kind == "postgres":
        assert settings.database_url is not None  # store_kind == "postgres" implies a URL
        return PostgresJobLock(settings.database_url, settings.database_schema)
    return LocalJobLock(str(settings.sqlite_path.resolve()))
