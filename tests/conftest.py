"""Store fixtures: the same test runs on a temporary SQLite file and on a fresh PostgreSQL schema.

PostgreSQL tests read ``CLOSEDLOOP_TEST_POSTGRES_URL``. Without it they skip locally; under
``CI=true`` its absence fails the run, because a skipped PostgreSQL leg in CI proves nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from closedloop.domain.context import acting_as
from closedloop.domain.service import ClosedLoop
from closedloop.settings import Settings
from closedloop.store import application_env, ensure_database_ready

STORES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def postgres_url() -> str:
    url = os.environ.get("CLOSEDLOOP_TEST_POSTGRES_URL", "").strip()
    if url:
        return url
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            "CLOSEDLOOP_TEST_POSTGRES_URL is not set: the PostgreSQL leg is mandatory in CI"
        )
    pytest.skip("CLOSEDLOOP_TEST_POSTGRES_URL is not set")


@pytest.fixture
def postgres_settings() -> Iterator[Settings]:
    """A fresh schema in the test database, dropped afterwards."""
    url = postgres_url()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    # No scheduler: it would settle whatever stage has ended by the real clock (tests that
    # want it build their own, on a clock of their choosing).
    settings = Settings(
        database_url=url, database_schema=schema, postgres_pool_size=4, run_scheduler=False
    )
    ensure_database_ready(settings)
    try:
        yield settings
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'closedloop.db'}", run_scheduler=False)


@pytest.fixture(params=STORES)
def store_settings(request: pytest.FixtureRequest) -> Settings:
    """Settings for one store; tests using it run once per store."""
    name = "sqlite_settings" if request.param == "sqlite" else "postgres_settings"
    settings: Settings = request.getfixturevalue(name)
    return settings


@pytest.fixture
def open_app(store_settings: Settings) -> Iterator[ClosedLoop]:
    app = ClosedLoop(env=application_env(store_settings))
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def app(open_app: ClosedLoop) -> Iterator[ClosedLoop]:
    """The command service on one store, with commands recorded as done by ``tester``."""
    with acting_as("tester", correlation_id="test-run"):
        yield open_app
