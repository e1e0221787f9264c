"""Settings → the environment `eventsourcing` reads. No database is touched here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from closedloop.settings import DEFAULT_SQLITE_PATH, Settings
from closedloop.store import application_env, ensure_database_ready
from closedloop.store.environment import SINGLE_TRIP_RECORDER_TOPIC


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CLOSEDLOOP_* variable from the caller's shell, and no .env file, leaks in."""
    for key in list(os.environ):
        if key.startswith("CLOSEDLOOP_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


# --- SQLite -----------------------------------------------------------------------------------


def test_unset_url_means_the_embedded_sqlite_file_closedloop_db() -> None:
    settings = Settings()

    assert settings.database_url is None
    assert settings.store_kind == "sqlite"
    assert settings.sqlite_path == DEFAULT_SQLITE_PATH == Path("closedloop.db")
    assert application_env(settings) == {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": "closedloop.db",
        "SQLITE_LOCK_TIMEOUT": "10",
    }


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_url_counts_as_unset(monkeypatch: pytest.MonkeyPatch, blank: str) -> None:
    monkeypatch.setenv("CLOSEDLOOP_DATABASE_URL", blank)

    settings = Settings()

    assert settings.database_url is None
    assert application_env(settings)["SQLITE_DBNAME"] == "closedloop.db"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/loop.db", "data/loop.db"),
        ("sqlite:////var/lib/closedloop/loop.db", "/var/lib/closedloop/loop.db"),
    ],
)
def test_sqlite_url_names_the_file(url: str, path: str) -> None:
    settings = Settings(database_url=url)

    assert settings.store_kind == "sqlite"
    assert settings.sqlite_path == Path(path)
    env = application_env(settings)
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert env["SQLITE_DBNAME"] == path


def test_url_is_read_from_the_closedloop_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSEDLOOP_DATABASE_URL", "sqlite:///from-env.db")

    assert Settings().sqlite_path == Path("from-env.db")


def test_url_is_read_from_a_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CLOSEDLOOP_DATABASE_URL=sqlite:///from-dotenv.db\n")

    assert Settings().sqlite_path == Path("from-dotenv.db")


def test_ensure_database_ready_does_nothing_for_sqlite(tmp_path: Path) -> None:
    ensure_database_ready(Settings())

    assert list(tmp_path.iterdir()) == []


# --- PostgreSQL -------------------------------------------------------------------------------


def test_postgres_url_is_split_into_the_library_variables() -> None:
    settings = Settings(
        database_url="postgresql://loop_user:s3cret@db.example.org:6543/loopdb",
        database_schema="loop",
        postgres_pool_size=12,
        postgres_max_overflow=3,
        postgres_lock_timeout_seconds=7,
    )

    assert settings.store_kind == "postgres"
    assert application_env(settings) == {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": SINGLE_TRIP_RECORDER_TOPIC,
        "POSTGRES_DBNAME": "loopdb",
        "POSTGRES_HOST": "db.example.org",
        "POSTGRES_PORT": "6543",
        "POSTGRES_USER": "loop_user",
        "POSTGRES_PASSWORD": "s3cret",
        "POSTGRES_SCHEMA": "loop",
        "POSTGRES_POOL_SIZE": "12",
        "POSTGRES_MAX_OVERFLOW": "3",
        "POSTGRES_LOCK_TIMEOUT": "7",
        "POSTGRES_CONNECT_TIMEOUT": "10",
    }


def test_postgres_defaults_fill_what_the_url_leaves_out() -> None:
    env = application_env(Settings(database_url="postgresql://db.example.org/loopdb"))

    assert env["POSTGRES_HOST"] == "db.example.org"
    assert env["POSTGRES_DBNAME"] == "loopdb"
    assert env["POSTGRES_PORT"] == "5432"
    assert env["POSTGRES_USER"] == "postgres"
    assert env["POSTGRES_PASSWORD"] == ""
    assert env["POSTGRES_SCHEMA"] == "public"
    assert env["POSTGRES_POOL_SIZE"] == "8"
    assert env["POSTGRES_MAX_OVERFLOW"] == "8"
    assert env["POSTGRES_LOCK_TIMEOUT"] == "5"


def test_postgres_scheme_alias_is_accepted() -> None:
    env = application_env(Settings(database_url="postgres://u:p@h:5433/d"))

    assert env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == ("u", "p")
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_DBNAME"]) == (
        "h",
        "5433",
        "d",
    )


def test_percent_encoded_password_is_decoded() -> None:
    env = application_env(Settings(database_url="postgresql://u:p%40ss%3Aw%2Fd@h/d"))

    assert env["POSTGRES_PASSWORD"] == "p@ss:w/d"


def test_unix_socket_host_in_query_string() -> None:
    env = application_env(Settings(database_url="postgresql:///loopdb?host=/run/postgresql"))

    assert env["POSTGRES_HOST"] == "/run/postgresql"
    assert env["POSTGRES_DBNAME"] == "loopdb"


def test_postgres_knobs_are_read_from_closedloop_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLOSEDLOOP_DATABASE_URL", "postgresql://u@h/d")
    monkeypatch.setenv("CLOSEDLOOP_DATABASE_SCHEMA", "tenant_a")
    monkeypatch.setenv("CLOSEDLOOP_POSTGRES_POOL_SIZE", "20")
    monkeypatch.setenv("CLOSEDLOOP_POSTGRES_MAX_OVERFLOW", "0")
    monkeypatch.setenv("CLOSEDLOOP_POSTGRES_LOCK_TIMEOUT_SECONDS", "2")

    env = application_env(Settings())

    assert env["POSTGRES_SCHEMA"] == "tenant_a"
    assert env["POSTGRES_POOL_SIZE"] == "20"
    assert env["POSTGRES_MAX_OVERFLOW"] == "0"
    assert env["POSTGRES_LOCK_TIMEOUT"] == "2"


def test_the_recorder_topic_names_the_single_trip_recorder() -> None:
    from eventsourcing.utils import resolve_topic

    from closedloop.store.postgres import SingleTripApplicationRecorder

    assert resolve_topic(SINGLE_TRIP_RECORDER_TOPIC) is SingleTripApplicationRecorder


# --- rejected values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u:p@h/d",
        "http://example.org/db",
        "sqlite://relative.db",  # two slashes: ambiguous, so refused
        "closedloop.db",
        "postgresql:/h/d",
    ],
)
def test_unknown_scheme_is_rejected_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("CLOSEDLOOP_DATABASE_URL", url)

    with pytest.raises(ValidationError) as raised:
        Settings()

    message = str(raised.value)
    assert "CLOSEDLOOP_DATABASE_URL" in message
    assert "postgresql://" in message and "sqlite:///" in message


def test_unknown_scheme_is_rejected_when_passed_directly() -> None:
    with pytest.raises(ValidationError, match="CLOSEDLOOP_DATABASE_URL"):
        Settings(database_url="oracle://h/d")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CLOSEDLOOP_POSTGRES_POOL_SIZE", "0"),
        ("CLOSEDLOOP_POSTGRES_MAX_OVERFLOW", "-1"),
        ("CLOSEDLOOP_POSTGRES_LOCK_TIMEOUT_SECONDS", "-1"),
        ("CLOSEDLOOP_POSTGRES_POOL_SIZE", "many"),
    ],
)
def test_out_of_range_knobs_are_rejected(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError):
        Settings()


def test_settings_are_frozen() -> None:
    settings = Settings()

    with pytest.raises(ValidationError):
        settings.database_schema = "other"  # type: ignore[misc]
