"""The `closedloop` command line on both stores: demo, history, show, token create/revoke."""

from __future__ import annotations

import re

import pytest

from closedloop.cli import main
from closedloop.domain.access import token_id_for
from closedloop.domain.service import ClosedLoop
from closedloop.settings import Settings
from closedloop.store import application_env


@pytest.fixture
def env(store_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    assert store_settings.database_url is not None
    monkeypatch.setenv("CLOSEDLOOP_DATABASE_URL", store_settings.database_url)
    monkeypatch.setenv("CLOSEDLOOP_DATABASE_SCHEMA", store_settings.database_schema)
    return store_settings


def test_demo_then_history_shows_who_did_what(env: Settings, capsys) -> None:
    assert main(["demo"]) == 0
    summary = capsys.readouterr().out
    cycle_id = re.search(r"^cycle (\S+)$", summary, re.MULTILINE).group(1)
    assert main(["history", cycle_id]) == 0
    history = capsys.readouterr().out
    assert "CycleOpened by admin" in history
    assert "StageClosed by" in history

    assert main(["demo"]) == 1
    assert "--force" in capsys.readouterr().err


def test_show_prints_state_at_a_version(env: Settings, capsys) -> None:
    main(["demo"])
    root = re.search(r"^root unit (\S+)$", capsys.readouterr().out, re.MULTILINE).group(1)
    assert main(["show", root, "--version", "1"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("Unit")
    assert '"kind": "committee"' in shown


def test_unknown_ids_fail_with_a_clear_message(env: Settings, capsys) -> None:
    assert main(["history", "00000000-0000-0000-0000-000000000000"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_token_create_prints_a_secret_once_and_stores_only_its_digest(
    env: Settings, capsys
) -> None:
    assert main(["token", "create", "--name", "ops", "--role", "admin"]) == 0
    out = capsys.readouterr().out.splitlines()
    secret = out[-1]
    assert secret.startswith("clt_")
    app = ClosedLoop(env=application_env(env))
    try:
        token = app.authenticate(secret)
        assert token is not None and token.id == token_id_for(secret)
        (issued,) = app.history(token.id)
        assert secret not in repr(issued.data)
        assert issued.actor.startswith("cli:")
    finally:
        app.close()
    assert main(["token", "revoke", str(token.id), "--reason", "轮岗"]) == 0
    app = ClosedLoop(env=application_env(env))
    try:
        assert app.authenticate(secret) is None
        assert app.history(token.id)[-1].reason == "轮岗"
    finally:
        app.close()


def test_leader_tokens_must_name_a_unit(env: Settings, capsys) -> None:
    assert main(["token", "create", "--name", "x", "--role", "leader"]) == 2
    assert "UnitScopedRolesNameAUnit" in capsys.readouterr().err
