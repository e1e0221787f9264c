"""Translate closedloop settings into the environment `eventsourcing` reads."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from closedloop.settings import Settings

SINGLE_TRIP_RECORDER_TOPIC = "closedloop.store.postgres:SingleTripApplicationRecorder"


def application_env(settings: Settings) -> dict[str, str]:
    """The `eventsourcing` environment for the configured store."""
    if settings.store_kind == "sqlite":
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(settings.sqlite_path),
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    return _postgres_env(settings)


def _postgres_env(settings: Settings) -> dict[str, str]:
    assert settings.database_url is not None  # store_kind == "postgres" implies a URL
    params = conninfo_to_dict(libpq_url(settings.database_url))
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": SINGLE_TRIP_RECORDER_TOPIC,
        "POSTGRES_DBNAME": str(params.get("dbname", "postgres")),
        "POSTGRES_HOST": str(params.get("host", "localhost")),
        "POSTGRES_PORT": str(params.get("port", "5432")),
        "POSTGRES_USER": str(params.get("user", "postgres")),
        "POSTGRES_PASSWORD": str(params.get("password", "")),
        "POSTGRES_SCHEMA": settings.database_schema,
        "POSTGRES_POOL_SIZE": str(settings.postgres_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.postgres_max_overflow),
        "POSTGRES_LOCK_TIMEOUT": str(settings.postgres_lock_timeout_seconds),
        "POSTGRES_CONNECT_TIMEOUT": "10",
    }


def libpq_url(url: str) -> str:
    # libpq takes postgresql:// and postgres:// alike, but not SQLAlchemy-style driver suffixes.
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def ensure_database_ready(settings: Settings) -> None:
    """Create the PostgreSQL schema if it is missing; SQLite needs nothing."""
    if settings.store_kind != "postgres":
        return
    assert settings.database_url is not None
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                sql.Identifier(settings.database_schema)
            )
        )
