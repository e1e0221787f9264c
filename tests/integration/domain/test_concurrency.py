"""Concurrent writers on one aggregate: exactly one wins each version, nothing is lost or doubled.

Two command services on the same store stand for two API processes. Every test runs on SQLite
and on PostgreSQL (``store_settings``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest

from closedloop.domain.context import acting_as
from closedloop.domain.errors import ConcurrencyConflict
from closedloop.domain.measures import Measure
from closedloop.domain.problems import Problem, ProblemSource, Severity
from closedloop.domain.service import ClosedLoop, CommandResult
from closedloop.domain.units import UnitKind
from closedloop.settings import Settings
from closedloop.store import application_env

BEIJING = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class World:
    first: ClosedLoop
    second: ClosedLoop
    problem: UUID
    measure: UUID


@pytest.fixture
def world(store_settings: Settings) -> Iterator[World]:
    env = application_env(store_settings)
    first, second = ClosedLoop(env=env), ClosedLoop(env=env)
    try:
        with acting_as("tester"):
            root = first.register_unit(name="党委", kind=UnitKind.COMMITTEE)
            farm = first.register_unit(name="林场", kind=UnitKind.GRASSROOTS, parent_id=root.id)
            cycle = first.open_cycle(year=2026, name="2026年度")
            chief = first.register_person(name="王林", unit_id=farm.id)
            problem = first.find_problem(
                cycle_id=cycle.id,
                unit_id=farm.id,
                title="火险隐患",
                source=ProblemSource.INSPECTION,
                severity=Severity.PROMINENT,
                found_at=datetime(2026, 3, 1, 9, tzinfo=BEIJING),
            )
            measure = first.adopt_measure(
                cycle_id=cycle.id,
                title="清理林下可燃物",
                deadline=date(2026, 6, 30),
                lead_unit_id=farm.id,
                responsible_unit_ids=[farm.id],
                responsible_leader_id=chief.id,
                problem_ids=[problem.id],
            )
        yield World(first, second, problem.id, measure.id)
    finally:
        first.close()
        second.close()


# A command as each writer issues it: (app, aggregate id, writer's tag, expected_version).
Command = Callable[[ClosedLoop, UUID, str, "int | None"], CommandResult]


def resolve(app: ClosedLoop, problem_id: UUID, tag: str, expected: int | None) -> CommandResult:
    return app.resolve_problem(problem_id, evidence=tag, expected_version=expected)


def report(app: ClosedLoop, measure_id: UUID, tag: str, expected: int | None) -> CommandResult:
    return app.report_measure_progress(measure_id, percent=50, note=tag, expected_version=expected)


COMMANDS = [
    pytest.param(resolve, "problem", "evidence", id="resolve_problem"),
    pytest.param(report, "measure", "note", id="report_measure_progress"),
]


def tags_in_history(app: ClosedLoop, aggregate_id: UUID, field: str) -> list[str]:
    return [e.data[field] for e in app.history(aggregate_id) if field in e.data]


def assert_history_is_intact(app: ClosedLoop, aggregate_id: UUID, version: int) -> None:
    """Versions 1..version, each once, in the aggregate and in the notification log."""
    assert [e.version for e in app.history(aggregate_id)] == list(range(1, version + 1))
    logged = Counter(
        n.originator_version
        for n in app.recorder.select_notifications(None, 10_000)
        if n.originator_id == aggregate_id
    )
    assert logged == Counter(range(1, version + 1))


@pytest.mark.parametrize(("command", "kind", "field"), COMMANDS)
def test_stale_writer_is_refused_before_anything_is_written(
    world: World, command: Command, kind: str, field: str
) -> None:
    aggregate_id: UUID = getattr(world, kind)
    with acting_as("tester"):
        seen_by_first = world.first.get_aggregate(aggregate_id).version
        seen_by_second = world.second.get_aggregate(aggregate_id).version
        assert seen_by_first == seen_by_second == 1

        won = command(world.first, aggregate_id, "first", seen_by_first)
        head = world.second.head_position()
        with pytest.raises(ConcurrencyConflict) as conflict:
            command(world.second, aggregate_id, "second", seen_by_second)

    assert won.version == 2
    assert (conflict.value.aggregate_id, conflict.value.expected_version) == (aggregate_id, 1)
    assert conflict.value.actual_version == 2
    assert world.first.head_position() == head
    assert tags_in_history(world.second, aggregate_id, field) == ["first"]
    assert_history_is_intact(world.first, aggregate_id, 2)


@pytest.mark.parametrize("with_expected_version", [True, False], ids=["expected", "blind"])
@pytest.mark.parametrize(("command", "kind", "field"), COMMANDS)
def test_race_between_load_and_save_is_caught_by_the_store(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    command: Command,
    kind: str,
    field: str,
    with_expected_version: bool,
) -> None:
    """Both writers load version 1; the first commits while the second is about to save.

    The second's own check passed (it loaded version 1), so only the store's uniqueness of
    (aggregate, version) can stop it. It must, even when the caller gave no expected version.
    """
    aggregate_id: UUID = getattr(world, kind)
    expected = 1 if with_expected_version else None
    first_results: list[CommandResult] = []
    second_save = world.second.save

    def save_after_the_first_writer(*aggregates: Any, **kwargs: Any) -> Any:
        if not first_results:
            first_results.append(command(world.first, aggregate_id, "first", expected))
        return second_save(*aggregates, **kwargs)

    monkeypatch.setattr(world.second, "save", save_after_the_first_writer)
    with acting_as("tester"):
        head = world.first.head_position()
        with pytest.raises(ConcurrencyConflict) as conflict:
            command(world.second, aggregate_id, "second", expected)

    [won] = first_results
    assert won.version == 2
    assert (conflict.value.expected_version, conflict.value.actual_version) == (1, 2)
    assert world.first.head_position() == won.position > head
    assert tags_in_history(world.first, aggregate_id, field) == ["first"]
    assert_history_is_intact(world.second, aggregate_id, 2)


THREADS = 8
ATTEMPTS_PER_THREAD = 12


def test_many_threads_hammering_one_aggregate_lose_and_double_nothing(world: World) -> None:
    """Threads on two service instances report progress on one measure as fast as they can.

    Two of every three attempts pass the version they read (conflicts are refused up front or
    by the store), every third passes none (only the store can refuse it). Afterwards every
    success is in the history exactly once, and nothing else is.
    """
    start = threading.Barrier(THREADS)

    def hammer(thread: int) -> tuple[list[str], int]:
        app = (world.first, world.second)[thread % 2]
        succeeded: list[str] = []
        conflicts = 0
        start.wait(timeout=10)
        with acting_as(f"tester-{thread}"):
            for attempt in range(ATTEMPTS_PER_THREAD):
                tag = f"{thread}-{attempt}"
                blind = attempt % 3 == 2
                expected = None if blind else app.get(Measure, world.measure).version
                try:
                    result = report(app, world.measure, tag, expected)
                except ConcurrencyConflict:
                    conflicts += 1
                else:
                    assert result.id == world.measure
                    succeeded.append(tag)
        return succeeded, conflicts

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        outcomes = list(pool.map(hammer, range(THREADS), timeout=60))

    successes = [tag for succeeded, _ in outcomes for tag in succeeded]
    conflicts = sum(c for _, c in outcomes)
    assert len(successes) + conflicts == THREADS * ATTEMPTS_PER_THREAD
    assert successes, "no writer ever succeeded"

    with acting_as("tester"):
        final = world.first.get(Measure, world.measure)
    assert final.version == 1 + len(successes)
    recorded = tags_in_history(world.first, world.measure, "note")
    assert Counter(recorded) == Counter(successes)
    assert_history_is_intact(world.second, world.measure, final.version)
    # The other aggregate was not touched by any of it.
    assert world.second.get(Problem, world.problem).version == 1
