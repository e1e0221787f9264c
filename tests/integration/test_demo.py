"""The demo year loads through the command service, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from closedloop.demo import DemoSummary, StoreNotEmpty, format_summary, load_demo
from closedloop.domain.base import LoopEvent
from closedloop.domain.catalogue import event_type_names
from closedloop.domain.service import ClosedLoop
from closedloop.domain.units import Unit, UnitKind
from closedloop.settings import Settings
from closedloop.store import application_env, ensure_database_ready


@pytest.fixture
def second_app(store_settings: Settings, tmp_path: Path) -> Iterator[ClosedLoop]:
    """Another fresh, empty store of the same kind as ``open_app``'s."""
    if store_settings.store_kind == "sqlite":
        settings = Settings(database_url=f"sqlite:///{tmp_path / 'second.db'}")
    else:
        schema = f"test_{uuid.uuid4().hex[:12]}"
        settings = store_settings.model_copy(update={"database_schema": schema})
        ensure_database_ready(settings)
    app = ClosedLoop(env=application_env(settings))
    try:
        yield app
    finally:
        app.close()
        if settings.store_kind == "postgres":
            _drop_schema(settings)


def _drop_schema(settings: Settings) -> None:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(settings.database_schema)
            )
        )


def recorded_events(app: ClosedLoop) -> list[LoopEvent]:
    events: list[LoopEvent] = []
    start = 1
    while notifications := app.recorder.select_notifications(start=start, limit=500):
        for notification in notifications:
            event = app.mapper.to_domain_event(notification)
            assert isinstance(event, LoopEvent)
            events.append(event)
        start = notifications[-1].id + 1
    return events


def story(app: ClosedLoop) -> list[tuple[Any, ...]]:
    """What was recorded, by whom, in which step and why: everything but ids and clock times."""
    return [
        (type(e).__name__, e.actor, e.correlation_id, e.reason, e.effective_at)
        for e in recorded_events(app)
    ]


def test_demo_writes_every_event_type_and_says_so(open_app: ClosedLoop) -> None:
    summary = load_demo(open_app)

    assert set(event_type_names()) <= set(summary.events_per_type)
    assert summary.total_events == len(recorded_events(open_app))
    assert summary.head_position == open_app.head_position()
    lines = format_summary(summary).splitlines()
    for name, count in summary.events_per_type.items():
        assert [name, str(count)] in [line.split() for line in lines]
    assert ["total", str(summary.total_events)] in [line.split() for line in lines]
    assert f"cycle {summary.cycle_id}" in lines
    assert f"root unit {summary.root_unit_id}" in lines


def test_demo_organisation_is_big_enough(open_app: ClosedLoop) -> None:
    summary = load_demo(open_app)

    kinds = Counter(e.kind for e in recorded_events(open_app) if isinstance(e, Unit.UnitRegistered))
    assert kinds[UnitKind.COMMITTEE] == 1
    assert kinds[UnitKind.GENERAL_BRANCH] >= 3
    assert kinds[UnitKind.BRANCH] >= 12
    assert kinds[UnitKind.DEPARTMENT] >= 6
    assert kinds[UnitKind.GRASSROOTS] >= 3
    assert summary.events_per_type["PersonRegistered"] >= 40
    root = open_app.get(Unit, summary.root_unit_id)
    assert (root.kind, root.parent_id) == (UnitKind.COMMITTEE, None)


def test_demo_refuses_a_store_with_events(app: ClosedLoop) -> None:
    app.register_unit(name="中共某县林业局委员会", kind=UnitKind.COMMITTEE)

    with pytest.raises(StoreNotEmpty, match=r"holds 1 event;.*force=True") as refused:
        load_demo(app)
    assert refused.value.head_position == 1
    assert app.head_position() == 1


def test_second_load_is_refused_unless_forced(open_app: ClosedLoop) -> None:
    first = load_demo(open_app)
    head = open_app.head_position()

    with pytest.raises(StoreNotEmpty, match=rf"holds {head} events"):
        load_demo(open_app)
    assert open_app.head_position() == head

    second = load_demo(open_app, force=True)
    assert second.events_per_type == first.events_per_type
    assert second.head_position == head + second.total_events
    assert second.cycle_id != first.cycle_id


def test_two_fresh_stores_record_the_same_year(
    open_app: ClosedLoop, second_app: ClosedLoop
) -> None:
    first = load_demo(open_app)
    second = load_demo(second_app)

    assert first.events_per_type == second.events_per_type
    assert story(open_app) == story(second_app)
    assert first.cycle_id != second.cycle_id


def test_history_names_who_acted(open_app: ClosedLoop) -> None:
    summary = load_demo(open_app)

    history = open_app.history(summary.cycle_id)
    assert [(entry.type, entry.actor) for entry in history] == [
        ("CycleOpened", "admin"),
        ("ScoringPolicySet", "admin"),
        ("StageClosed", "staff:organisation-dept"),
        ("SettlementRecorded", "scheduler"),
        ("StageReopened", "admin"),
        ("StageClosed", "staff:organisation-dept"),
        ("SettlementRecorded", "scheduler"),
        ("ScoringPolicySet", "admin"),
    ]
    closed = history[2]
    assert closed.data == {"stage": "Q1"} and closed.reason
    # Corrections after settlement are events with a reason; the policy revision too.
    assert history[4].reason and history[-1].reason
    assert history[-1].data["from_stage"] == "Q3"
    assert all(entry.correlation_id.startswith("demo-2026/") for entry in history)
    actors = Counter(e.actor for e in recorded_events(open_app))
    assert actors["admin"] < summary.total_events / 4
    assert {actor.partition(":")[0] for actor in actors} >= {"person", "staff", "inspector"}


def test_summary_is_a_value() -> None:
    summary = DemoSummary(
        cycle_id=uuid.UUID(int=1),
        root_unit_id=uuid.UUID(int=2),
        admin_actor="admin",
        events_per_type={"CycleOpened": 1, "UnitRegistered": 2},
        head_position=3,
    )
    assert summary.total_events == 3
    with pytest.raises(AttributeError):
        summary.head_position = 4  # type: ignore[misc]
