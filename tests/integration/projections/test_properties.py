"""For any valid history: following the log in batches == rebuilding from zero == the aggregates.

Hypothesis draws a sequence of loop actions over a small organisation; actions that break a rule
are refused by the domain and simply leave no event, so every stored history is a valid one.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from closedloop.bootstrap import Runtime, all_projections, build_runtime
from closedloop.domain.access import AccessToken
from closedloop.domain.context import acting_as
from closedloop.domain.duties import DutyTier
from closedloop.domain.errors import DomainError
from closedloop.domain.problems import ProblemSource, Severity
from closedloop.domain.targets import Direction, EffectMethod, Indicator
from closedloop.domain.units import UnitKind
from closedloop.projections.base import ProjectionRunner
from closedloop.projections.catalogue import TABLE
from closedloop.settings import Settings

from ...conftest import STORES, postgres_url  # noqa: TID252 - the shared store fixtures


@contextmanager
def fresh_runtime(store: str) -> Iterator[Runtime]:
    if store == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            runtime = build_runtime(Settings(database_url=f"sqlite:///{Path(folder) / 'p.db'}"))
            try:
                yield runtime
            finally:
                runtime.close()
        return
    url = postgres_url()
    schema = f"prop_{uuid.uuid4().hex[:12]}"
    runtime = build_runtime(
        Settings(database_url=url, database_schema=schema, postgres_pool_size=2)
    )
    try:
        yield runtime
    finally:
        runtime.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


class World:
    """A small organisation, and the loop actions hypothesis may take in it."""

    def __init__(self, runtime: Runtime) -> None:
        service = self.service = runtime.service
        root = service.register_unit(name="党委", kind=UnitKind.COMMITTEE).id
        self.units = [
            service.register_unit(name=f"林场{i}", kind=UnitKind.GRASSROOTS, parent_id=root).id
            for i in range(3)
        ]
        self.people = [
            service.register_person(name=f"人员{i}", unit_id=u).id for i, u in enumerate(self.units)
        ]
        self.cycle = service.open_cycle(year=2026, name="2026").id
        indicator = Indicator.quantitative(
            metric="覆盖率", target_value=Decimal("60"), direction=Direction.HIGHER_IS_BETTER
        )
        self.target = service.set_common_target(
            cycle_id=self.cycle,
            title="覆盖率",
            indicator=indicator,
            points=Decimal(10),
            applies_to=self.units,
        ).id
        self.problems: list[uuid.UUID] = []
        self.measures: list[uuid.UUID] = []
        self.duties: list[uuid.UUID] = []

    def act(self, action: str, pick: int, number: int) -> None:
        getattr(self, action)(pick, number)

    def find(self, pick: int, number: int) -> None:
        self.problems.append(
            self.service.find_problem(
                cycle_id=self.cycle,
                unit_id=self.units[pick % 3],
                title=f"问题{number}",
                source=ProblemSource.SWEEP,
                severity=Severity.PROMINENT if number % 2 else Severity.ORDINARY,
            ).id
        )

    def dispatch(self, pick: int, number: int) -> None:
        self.service.dispatch_problem(
            self._one(self.problems, pick),
            to_unit_id=self.units[number % 3],
            requirement="整改",
            deadline=date(2026, 1 + number % 12, 1),
        )

    def escalate(self, pick: int, number: int) -> None:
        self.service.escalate_problem(
            self._one(self.problems, pick), leader_id=self.people[number % 3]
        )

    def resolve(self, pick: int, number: int) -> None:
        self.service.resolve_problem(self._one(self.problems, pick), evidence="报告")

    def reopen(self, pick: int, number: int) -> None:
        self.service.reopen_problem(self._one(self.problems, pick), reason="复查")

    def adopt(self, pick: int, number: int) -> None:
        unit = self.units[pick % 3]
        self.measures.append(
            self.service.adopt_measure(
                cycle_id=self.cycle,
                title=f"措施{number}",
                deadline=date(2026, 6, 30),
                lead_unit_id=unit,
                responsible_unit_ids=[unit],
                responsible_leader_id=self.people[pick % 3],
                target_id=self.target,
            ).id
        )

    def progress(self, pick: int, number: int) -> None:
        self.service.report_measure_progress(self._one(self.measures, pick), percent=number % 101)

    def complete(self, pick: int, number: int) -> None:
        self.service.complete_measure(self._one(self.measures, pick), evidence="验收")

    def cancel(self, pick: int, number: int) -> None:
        self.service.cancel_measure(self._one(self.measures, pick), reason="调整")

    def assign(self, pick: int, number: int) -> None:
        self.duties.append(
            self.service.assign_duty(
                person_id=self.people[pick % 3],
                unit_id=self.units[pick % 3],
                tier=DutyTier.FIRST_RESPONSIBLE,
                effective_from=date(2026, 1, 1),
            ).id
        )

    def relieve(self, pick: int, number: int) -> None:
        self.service.relieve_duty(
            self._one(self.duties, pick), effective_to=date(2026, 6, 30), reason="调任"
        )

    def effect(self, pick: int, number: int) -> None:
        self.service.confirm_effect(
            self.target,
            stage=f"Q{1 + number % 4}",
            method=list(EffectMethod)[pick % 2],
            unit_id=self.units[pick % 3],
            result=Decimal(number % 100),
            evidence="自评",
            reason="更正",
        )

    @staticmethod
    def _one(items: list[uuid.UUID], pick: int) -> uuid.UUID:
        if not items:
            raise LookupError("nothing to act on yet")
        return items[pick % len(items)]


ACTIONS = [
    "find",
    "dispatch",
    "escalate",
    "resolve",
    "reopen",
    "adopt",
    "progress",
    "complete",
    "cancel",
    "assign",
    "relieve",
    "effect",
]
histories = st.lists(
    st.tuples(st.sampled_from(ACTIONS), st.integers(0, 20), st.integers(0, 400)),
    min_size=1,
    max_size=40,
)


def tables(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    return {
        table: sorted(runtime.db.query(f"SELECT * FROM {table}"), key=repr)
        for projection in runtime.projections.projections
        for table in projection.tables
    }


def follow_in_batches(runtime: Runtime, sizes: list[int], act: Callable[[int], None]) -> None:
    """Interleave writing with catching up in batches of the drawn sizes."""
    for step, size in enumerate(sizes):
        act(step)
        runner = ProjectionRunner(runtime.service, runtime.db, all_projections(), batch_size=size)
        runner.catch_up()


@pytest.mark.parametrize("store", STORES)
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(history=histories, sizes=st.lists(st.integers(1, 9), min_size=1, max_size=4))
def test_incremental_equals_rebuild_equals_aggregates(
    store: str, history: list[tuple[str, int, int]], sizes: list[int]
) -> None:
    with fresh_runtime(store) as runtime, acting_as("hypothesis"):
        world = World(runtime)
        chunks = [history[i :: len(sizes)] for i in range(len(sizes))]

        def act(step: int) -> None:
            for action, pick, number in chunks[step]:
                # A refused action leaves no event: the history stays a valid one.
                with contextlib.suppress(DomainError, LookupError):
                    world.act(action, pick, number)

        follow_in_batches(runtime, sizes, act)
        followed = tables(runtime)
        for projection in runtime.projections.projections:
            runtime.projections.rebuild(projection)
        assert tables(runtime) == followed

        for row in runtime.db.query(f"SELECT * FROM {TABLE}"):
            aggregate = runtime.service.get_aggregate(uuid.UUID(row["id"]))
            assert not isinstance(aggregate, AccessToken)
            assert row["version"] == aggregate.version
            status = getattr(aggregate, "status", None)
            if hasattr(status, "value"):
                assert row["status"] == status.value
