"""The `closedloop` command line on both stores: demo, history, show, token create/revoke,
settle (and --verify), serve --no-scheduler, scheduler run."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from closedloop.bootstrap import build_runtime
from closedloop.cli import build_parser, cmd_serve, main
from closedloop.domain.access import token_id_for
from closedloop.domain.context import acting_as
from closedloop.domain.cycles import Cycle
from closedloop.domain.service import ClosedLoop
from closedloop.domain.settlement import Settlement
from closedloop.settings import Settings
from closedloop.store import application_env
from closedloop.store.sql import open_database


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


# --- settle ----------------------------------------------------------------------------------

SETTLEMENT_LINE = re.compile(
    r"^settlement (\S+): (created at position \d+|already existed: nothing written)$", re.MULTILINE
)
EFFECT_CONFIRMED = "closedloop.domain.targets:Target.EffectConfirmed"


def demo_cycle(capsys) -> str:
    assert main(["demo"]) == 0
    return re.search(r"^cycle (\S+)$", capsys.readouterr().out, re.MULTILINE).group(1)


def test_settle_settles_a_stage_once_and_prints_its_figures(env: Settings, capsys) -> None:
    cycle = demo_cycle(capsys)
    # Q3 ended on 30 September 2026 (the demo may have settled it itself: then it is reported).
    assert main(["settle", "--cycle", cycle, "--stage", "Q3"]) == 0
    out = capsys.readouterr().out
    settlement_id, done = SETTLEMENT_LINE.search(out).groups()
    assert re.search(
        rf"^cycle {cycle} stage Q3 round \d+, cut-off 2026-10-01T00:00:00\+08:00", out, re.M
    )
    assert re.search(r"^units \(\d+\):$", out, re.MULTILINE)
    assert re.search(r"^awards \(\d+\):$", out, re.MULTILINE)
    assert "北山国有林场" in out  # units by name

    assert main(["settle", "--cycle", cycle, "--stage", "Q3"]) == 0
    again = capsys.readouterr().out
    assert SETTLEMENT_LINE.search(again).groups() == (
        settlement_id,
        "already existed: nothing written",
    )
    app = ClosedLoop(env=application_env(env))
    try:
        (first, *_) = app.history(UUID(settlement_id))
        assert first.type == "StageSettled"
        if done.startswith("created"):
            assert first.actor.startswith("cli:")
    finally:
        app.close()


def test_settle_refuses_a_stage_that_has_not_ended(env: Settings, capsys) -> None:
    app = ClosedLoop(env=application_env(env))
    try:
        with acting_as("test-setup"):
            cycle = str(app.open_cycle(year=2100, name="2100年度").id)
    finally:
        app.close()
    assert main(["settle", "--cycle", cycle, "--stage", "Q1"]) == 1
    captured = capsys.readouterr()
    assert "StageNotEnded" in captured.err and "cutoff=2100-04-01T00:00:00+08:00" in captured.err
    assert captured.out == ""
    assert main(["settle", "--cycle", cycle, "--stage", "Q5"]) == 1
    assert "StageMustBelongToCycle" in capsys.readouterr().err
    assert main(["settle", "--verify", "--cycle", cycle, "--stage", "Q1"]) == 1
    assert f"stage Q1 of cycle {cycle} is not settled" in capsys.readouterr().err


def test_settle_verify_matches_then_names_a_changed_input(env: Settings, capsys) -> None:
    cycle = demo_cycle(capsys)
    assert main(["settle", "--cycle", cycle, "--stage", "Q1"]) == 0
    settlement_id = SETTLEMENT_LINE.search(capsys.readouterr().out).group(1)
    assert main(["settle", "--verify", "--cycle", cycle, "--stage", "Q1"]) == 0
    verified = capsys.readouterr().out
    # The demo may have reopened Q1 and settled it again: the round is not always the first.
    assert re.search(rf"^settlement {settlement_id} of cycle {cycle} stage Q1 round \d+", verified)
    assert "matches" in verified

    unit = tamper_with_a_q1_inspection(env, UUID(settlement_id))
    assert main(["settle", "--verify", "--cycle", cycle, "--stage", "Q1"]) == 1
    report = capsys.readouterr().out
    assert "differs (" in report
    assert "  - inputs digest: recorded " in report
    assert f"  - unit {unit}: recorded " in report
    assert "  - results digest: recorded " in report


def tamper_with_a_q1_inspection(settings: Settings, settlement_id: UUID) -> str:
    """Rewrite the result of one Q1 inspection the settlement read, in the events table itself
    (as someone with database access could); returns the unit it was about."""
    app = ClosedLoop(env=application_env(settings))
    db = open_database(settings)
    try:
        through = app.get(Settlement, settlement_id).through_position
        effects = app.recorder.select_notifications(
            1, through, stop=through, topics=[EFFECT_CONFIRMED]
        )
        stored = next(n for n in effects if b'"Q1"' in n.state and b'"inspection"' in n.state)
        state = json.loads(stored.state)
        state["result"]["_data_"] = str(Decimal(state["result"]["_data_"]) / 2)
        with db.transaction() as cursor:
            cursor.execute(
                f"UPDATE {app.recorder.events_table_name} SET state = %s "
                "WHERE originator_id = %s AND originator_version = %s",
                [
                    json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode(),
                    stored.originator_id.hex,
                    stored.originator_version,
                ],
            )
            assert cursor.rowcount == 1
        return str(UUID(state["unit_id"]["_data_"]))
    finally:
        db.close()
        app.close()


# --- serve and scheduler ---------------------------------------------------------------------


def test_serve_without_the_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(["serve", "--no-scheduler"])
    assert args.no_scheduler and args.handler is cmd_serve
    assert not build_parser().parse_args(["serve"]).no_scheduler
    monkeypatch.setenv("CLOSEDLOOP_RUN_SCHEDULER", "false")
    assert Settings().run_scheduler is False


def test_scheduler_run_stops_on_sigterm(env: Settings, tmp_path: Path) -> None:
    """The foreground scheduler in a process of its own: it catches up at once (settling the
    stages of a past year) and exits cleanly on SIGTERM."""
    runtime = build_runtime(env)
    try:
        with acting_as("test-setup"):
            cycle = runtime.service.open_cycle(year=2025, name="2025年度").id
        # What a projection worker would do: the deadline check reads the supervision model.
        runtime.projections.catch_up(["supervision"])
    finally:
        runtime.close()
    process = subprocess.Popen(
        [sys.executable, "-m", "closedloop.cli", "scheduler", "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while settled_stages(env, cycle) != {"Q1", "Q2", "Q3", "Q4"}:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the scheduler did not catch up"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "scheduler running in Asia/Shanghai" in output
    assert f"cycle {cycle} stage Q4 settled" in output
    assert "scheduler stopped" in output


def settled_stages(settings: Settings, cycle: UUID) -> set[str]:
    app = ClosedLoop(env=application_env(settings))
    try:
        return set(app.get(Cycle, cycle).settlements)
    finally:
        app.close()
