"""The catalogue read model: exactly once, in order, equal to a rebuild and to the aggregates."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from closedloop.bootstrap import Runtime, build_runtime
from closedloop.demo import load_demo
from closedloop.domain.access import AccessToken
from closedloop.domain.base import LoopAggregate
from closedloop.domain.catalogue import AGGREGATES
from closedloop.domain.context import acting_as
from closedloop.domain.problems import ProblemSource
from closedloop.domain.units import UnitKind
from closedloop.projections.base import Projection, ProjectionFailed, ProjectionRunner
from closedloop.projections.catalogue import TABLE, Catalogue
from closedloop.settings import Settings


@pytest.fixture
def runtime(store_settings: Settings) -> Iterator[Runtime]:
    built = build_runtime(store_settings)
    try:
        yield built
    finally:
        built.close()


def rows(runtime: Runtime) -> list[dict[str, Any]]:
    return runtime.db.query(f"SELECT * FROM {TABLE} ORDER BY created_position")


def aggregates_by_id(runtime: Runtime) -> dict[str, LoopAggregate]:
    ids = {n.originator_id for n in runtime.service.recorder.select_notifications(1, 10**6)}
    loaded = (runtime.service.get_aggregate(i) for i in ids)
    # Tokens are deliberately not catalogued.
    return {str(a.id): a for a in loaded if type(a) in AGGREGATES and type(a) is not AccessToken}


def test_catalogue_rows_agree_with_the_aggregates(runtime: Runtime) -> None:
    load_demo(runtime.service)
    runtime.projections.catch_up()
    aggregates = aggregates_by_id(runtime)
    catalogued = {row["id"]: row for row in rows(runtime)}
    assert catalogued.keys() == aggregates.keys()
    for item_id, aggregate in aggregates.items():
        row = catalogued[item_id]
        assert row["version"] == aggregate.version
        status = getattr(aggregate, "status", None)
        if status is not None and hasattr(status, "value"):
            assert row["status"] == status.value, type(aggregate).__name__
    assert runtime.projections.position(Catalogue.name) == runtime.service.head_position()


def test_incremental_small_batches_equal_a_rebuild_from_zero(runtime: Runtime) -> None:
    small = ProjectionRunner(runtime.service, runtime.db, [Catalogue()], batch_size=7)
    with acting_as("tester"):
        root = runtime.service.register_unit(name="党委", kind=UnitKind.COMMITTEE)
        small.catch_up()
        load_demo(runtime.service, force=True)
        small.catch_up()
    incremental = rows(runtime)
    replayed = runtime.projections.rebuild(Catalogue())
    assert replayed == runtime.service.head_position()
    assert rows(runtime) == incremental
    assert runtime.projections.position(Catalogue.name) == runtime.service.head_position()
    assert any(row["id"] == str(root.id) for row in incremental)


def test_two_runners_racing_never_double_or_drop_a_row(runtime: Runtime) -> None:
    load_demo(runtime.service)
    runners = [
        ProjectionRunner(runtime.service, runtime.db, [Catalogue()], batch_size=25)
        for _ in range(3)
    ]
    errors: list[BaseException] = []

    def run(runner: ProjectionRunner) -> None:
        try:
            runner.catch_up()
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    catalogued = rows(runtime)
    assert (
        len(catalogued) == len({row["id"] for row in catalogued}) == len(aggregates_by_id(runtime))
    )
    assert runtime.projections.position(Catalogue.name) == runtime.service.head_position()


class Exploding(Projection):
    name = "exploding"
    tables = ("exploding_rows",)

    def __init__(self, fail_at_title: str) -> None:
        self.fail_at_title = fail_at_title

    def create_tables(self, cursor: Any, dialect: str) -> None:
        cursor.execute("CREATE TABLE IF NOT EXISTS exploding_rows (position BIGINT PRIMARY KEY)")

    def apply(self, cursor: Any, event: Any, position: int) -> None:
        if getattr(event, "title", None) == self.fail_at_title:
            raise ValueError("cannot project this event")
        cursor.execute("INSERT INTO exploding_rows (position) VALUES (%s)", [position])


def test_a_failing_event_stops_the_projection_and_is_never_skipped(runtime: Runtime) -> None:
    runner = ProjectionRunner(runtime.service, runtime.db, [Exploding("坏事件")], batch_size=2)
    runner.setup()
    with acting_as("tester"):
        root = runtime.service.register_unit(name="党委", kind=UnitKind.COMMITTEE)
        farm = runtime.service.register_unit(
            name="林场", kind=UnitKind.GRASSROOTS, parent_id=root.id
        )
        cycle = runtime.service.open_cycle(year=2026, name="2026")
        bad = runtime.service.find_problem(
            cycle_id=cycle.id, unit_id=farm.id, title="坏事件", source=ProblemSource.SWEEP
        )
        runtime.service.find_problem(
            cycle_id=cycle.id, unit_id=farm.id, title="好事件", source=ProblemSource.SWEEP
        )
    with pytest.raises(ProjectionFailed) as failed:
        runner.catch_up()
    assert failed.value.position == bad.position
    # The batch holding the bad event rolled back whole; nothing after it was applied.
    assert runner.position("exploding") < bad.position
    applied = [r["position"] for r in runtime.db.query("SELECT position FROM exploding_rows")]
    assert applied and max(applied) < bad.position
    with pytest.raises(ProjectionFailed):
        runner.catch_up()
