"""The environment built from Settings opens a working store where the settings say."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from closedloop.domain.context import acting_as
from closedloop.domain.service import ClosedLoop
from closedloop.domain.units import UnitKind
from closedloop.settings import Settings
from closedloop.store import application_env, ensure_database_ready
from closedloop.store.postgres import SingleTripApplicationRecorder


def test_default_settings_store_events_in_closedloop_db_in_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CLOSEDLOOP_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    ensure_database_ready(settings)

    app = ClosedLoop(env=application_env(settings))
    try:
        with acting_as("tester"):
            unit = app.register_unit(name="Committee", kind=UnitKind.COMMITTEE)
    finally:
        app.close()

    assert (tmp_path / "closedloop.db").is_file()
    reopened = ClosedLoop(env=application_env(settings))
    try:
        assert reopened.repository.get(unit.id).version == 1
    finally:
        reopened.close()


@pytest.mark.postgres
def test_postgres_settings_store_events_in_the_configured_schema(
    postgres_settings: Settings,
) -> None:
    app = ClosedLoop(env=application_env(postgres_settings))
    try:
        assert isinstance(app.recorder, SingleTripApplicationRecorder)
        with acting_as("tester"):
            app.register_unit(name="Committee", kind=UnitKind.COMMITTEE)
    finally:
        app.close()

    assert postgres_settings.database_url is not None
    with psycopg.connect(postgres_settings.database_url) as conn:
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(postgres_settings.database_schema, "closedloop_events")
            )
        ).fetchone()
    assert count == (1,)


@pytest.mark.postgres
def test_ensure_database_ready_creates_the_schema_and_is_idempotent(
    postgres_settings: Settings,
) -> None:
    assert postgres_settings.database_url is not None
    schema = postgres_settings.database_schema + "_x"
    settings = postgres_settings.model_copy(update={"database_schema": schema})
    try:
        ensure_database_ready(settings)
        ensure_database_ready(settings)
        with psycopg.connect(postgres_settings.database_url) as conn:
            found = conn.execute(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
            ).fetchall()
        assert found == [(1,)]
    finally:
        with psycopg.connect(postgres_settings.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_an_unreachable_server_fails_loudly() -> None:
    settings = Settings(database_url="postgresql://postgres@127.0.0.1:1/closedloop")
    with pytest.raises(psycopg.OperationalError):
        ensure_database_ready(settings)


@pytest.mark.postgres
def test_processes_starting_together_on_a_new_schema_all_start(
    postgres_settings: Settings,
) -> None:
    """API replicas and workers start at once: creating the tables, types and the insert
    function must not fail one of them ("tuple concurrently updated")."""
    assert postgres_settings.database_url is not None
    starters = 6
    for attempt in range(3):  # each attempt on a schema nobody created yet
        schema = f"{postgres_settings.database_schema}_start{attempt}"
        settings = postgres_settings.model_copy(update={"database_schema": schema})
        ensure_database_ready(settings)
        barrier = threading.Barrier(starters)

        def start(settings: Settings = settings, barrier: threading.Barrier = barrier) -> None:
            env = application_env(settings)
            barrier.wait(timeout=30)
            ClosedLoop(env=env).close()

        try:
            with ThreadPoolExecutor(starters) as pool:
                for started in [pool.submit(start) for _ in range(starters)]:
                    started.result(timeout=60)
        finally:
            with psycopg.connect(postgres_settings.database_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
