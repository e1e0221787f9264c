"""docker-compose.yml and the Dockerfile agree with the code they deploy.

No Docker engine is needed: the files are parsed and checked against the settings object, the
console script and the command-line parser they name.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from closedloop.cli import build_parser
from closedloop.settings import Settings
from closedloop.store import application_env

ROOT = Path(__file__).resolve().parents[2]
PREFIX = str(Settings.model_config.get("env_prefix", ""))


def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict) and found
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, from either compose form (mapping, or list of KEY=VALUE)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    else:
        pairs = dict(raw)
    for key, value in pairs.items():
        assert isinstance(value, str), f"{key}: quote compose values, {value!r} is not a string"
    return pairs


def closedloop_environment(service: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in environment(service).items() if k.upper().startswith(PREFIX)}


def services_with_settings() -> list[str]:
    return [name for name, svc in services().items() if closedloop_environment(svc)]


def dockerfile_instruction(name: str) -> list[str]:
    """The argument lines of every ``name`` instruction, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        line[len(name) :].strip()
        for line in lines
        if line.upper().startswith(name + " ") and not line.startswith("#")
    ]


def dockerfile_cmd() -> list[str]:
    (cmd,) = dockerfile_instruction("CMD")
    argv = json.loads(cmd)  # the exec form: no shell between the signal and the server
    assert isinstance(argv, list) and all(isinstance(arg, str) for arg in argv)
    return argv


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No CLOSEDLOOP_* variable and no .env file but the ones a test sets."""
    for key in list(os.environ):
        if key.upper().startswith(PREFIX):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_the_api_service_sets_closedloop_variables() -> None:
    assert "api" in services_with_settings()


@pytest.mark.parametrize("service", services_with_settings())
def test_every_closedloop_variable_is_a_settings_field(service: str) -> None:
    fields = set(Settings.model_fields)
    for key in closedloop_environment(services()[service]):
        field = key[len(PREFIX) :].lower()
        assert field in fields, f"{service}: {key} is read by nothing (Settings has {fields})"


@pytest.mark.parametrize("service", services_with_settings())
def test_settings_accept_the_compose_environment(
    service: str, clean_environment: pytest.MonkeyPatch
) -> None:
    variables = closedloop_environment(services()[service])
    for key, value in variables.items():
        clean_environment.setenv(key, value)

    settings = Settings()  # raises ValidationError on any value it does not accept

    for key, value in variables.items():
        assert str(getattr(settings, key[len(PREFIX) :].lower())) == value, key
    assert settings.store_kind == "postgres"


@pytest.mark.parametrize("service", services_with_settings())
def test_the_database_url_names_the_postgres_service_and_its_credentials(
    service: str, clean_environment: pytest.MonkeyPatch
) -> None:
    for key, value in closedloop_environment(services()[service]).items():
        clean_environment.setenv(key, value)
    env = application_env(Settings())
    postgres = environment(services()["postgres"])

    assert env["POSTGRES_HOST"] == "postgres"
    assert env["POSTGRES_PORT"] == "5432"
    assert env["POSTGRES_USER"] == postgres.get("POSTGRES_USER", "postgres")
    assert env["POSTGRES_PASSWORD"] == postgres["POSTGRES_PASSWORD"]
    assert env["POSTGRES_DBNAME"] == postgres.get("POSTGRES_DB", env["POSTGRES_USER"])


def test_every_service_has_an_image_or_a_build() -> None:
    for name, service in services().items():
        assert "build" in service or "image" in service, name


def test_postgres_is_version_16_with_a_volume() -> None:
    postgres = services()["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "POSTGRES_PASSWORD" in environment(postgres)
    volumes = [str(v).split(":", 1)[0] for v in postgres.get("volumes", [])]
    assert any(volume in (compose().get("volumes") or {}) for volume in volumes)


def test_the_api_is_built_here_and_waits_for_a_healthy_postgres() -> None:
    api = services()["api"]
    assert api["build"] in (".", {"context": "."})
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "8000:8000" in [str(port) for port in api["ports"]]


def test_every_service_has_a_healthcheck() -> None:
    for name, service in services().items():
        check = service.get("healthcheck")
        assert isinstance(check, dict), f"{name} has no healthcheck"
        if "profiles" in service and check.get("disable") is True:
            continue  # a not-yet-runnable slot may opt out, explicitly
        assert check.get("test"), f"{name}: healthcheck without a test"
    assert "pg_isready" in str(services()["postgres"]["healthcheck"]["test"])
    assert "/health" in str(services()["api"]["healthcheck"]["test"])


def test_only_profiled_services_stay_out_of_a_plain_up() -> None:
    assert "profiles" not in services()["postgres"]
    assert "profiles" not in services()["api"]
    assert services()["projections"]["profiles"] == ["worker"]


def test_the_dockerfile_runs_the_console_script_as_a_non_root_user() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    argv = dockerfile_cmd()
    assert argv[0] in scripts
    assert argv == ["closedloop", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert dockerfile_instruction("FROM") == ["python:3.11-slim"]
    assert dockerfile_instruction("EXPOSE") == ["8000"]
    (user,) = dockerfile_instruction("USER")
    assert user.split(":")[0] not in ("root", "0")
    (healthcheck,) = dockerfile_instruction("HEALTHCHECK")
    assert "/health" in healthcheck and "urllib" in healthcheck


def test_the_dockerfile_command_parses() -> None:
    args = build_parser().parse_args(dockerfile_cmd()[1:])
    assert (args.command, args.host, args.port, args.demo) == ("serve", "0.0.0.0", 8000, False)


@pytest.mark.parametrize("service", [n for n, s in services().items() if "command" in s])
def test_compose_commands_use_the_console_script(service: str) -> None:
    command = services()[service]["command"]
    assert isinstance(command, list), "exec form, so the server gets the stop signal"
    assert command[0] == dockerfile_cmd()[0]


def test_the_api_command_parses() -> None:
    args = build_parser().parse_args(services()["api"]["command"][1:])
    assert (args.command, args.port) == ("serve", 8000)


def test_the_projection_worker_command_parses() -> None:
    args = build_parser().parse_args(services()["projections"]["command"][1:])
    assert (args.command, args.projections_command) == ("projections", "run")
