"""The projection runner: events decoded as the application decodes them; one transaction per
batch in which a failing projection rolls back alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from closedloop.bootstrap import Runtime, build_runtime
from closedloop.demo import load_demo
from closedloop.projections.base import Positioned, Projection, ProjectionFailed, ProjectionRunner
from closedloop.settings import Settings


@pytest.fixture
def runtime(store_settings: Settings) -> Iterator[Runtime]:
    built = build_runtime(store_settings)
    try:
        yield built
    finally:
        built.close()


def test_the_runner_decodes_every_event_as_the_application_does(runtime: Runtime) -> None:
    load_demo(runtime.service)
    runner = ProjectionRunner(runtime.service, runtime.db, [], batch_size=500)
    decoded = {}
    after = 0
    while batch := runner._read(after):
        decoded.update((item.position, item.event) for item in batch)
        after = batch[-1].position
    notifications = runtime.service.recorder.select_notifications(1, 10**6)
    assert sorted(decoded) == [n.id for n in notifications]
    for notification in notifications:
        expected = runtime.service.mapper.to_domain_event(notification)
        event = decoded[notification.id]
        assert type(event) is type(expected)
        assert vars(event) == vars(expected)
        assert {k: type(v) for k, v in vars(event).items()} == {
            k: type(v) for k, v in vars(expected).items()
        }


class Recording(Projection):
    """Writes one row per event; fails on the ``fail_at``-th event, in Python or in SQL."""

    def __init__(self, name: str, fail_at: int | None = None, *, in_sql: bool = False) -> None:
        self.name = name  # type: ignore[misc]
        self.tables = (f"{name}_rows",)  # type: ignore[misc]
        self.fail_at = fail_at
        self.in_sql = in_sql

    def create_tables(self, cursor: Any, dialect: str) -> None:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {self.tables[0]} (position BIGINT PRIMARY KEY)")

    def apply_batch(self, cursor: Any, events: Any) -> None:
        for item in events:
            assert isinstance(item, Positioned)
            if self.fail_at is not None and item.position >= self.fail_at:
                if self.in_sql:
                    cursor.execute("SELECT * FROM no_such_table_here")
                raise ValueError("cannot project this event")
            cursor.execute(f"INSERT INTO {self.tables[0]} VALUES (%s)", [item.position])


@pytest.mark.parametrize("in_sql", [False, True], ids=["python", "sql"])
def test_a_failing_projection_rolls_back_alone_in_the_shared_transaction(
    runtime: Runtime, in_sql: bool
) -> None:
    load_demo(runtime.service)
    head = runtime.service.head_position()
    fail_at = head // 2
    before, failing, after = (
        Recording("runner_before"),
        Recording("runner_failing", fail_at, in_sql=in_sql),
        Recording("runner_after"),
    )
    runner = ProjectionRunner(runtime.service, runtime.db, [before, failing, after], batch_size=50)
    runner.setup()
    with pytest.raises(ProjectionFailed) as failed:
        runner.catch_up()
    assert failed.value.projection == "runner_failing"
    for healthy in (before, after):
        assert runner.position(healthy.name) == head
        stored = runtime.db.query(f"SELECT position FROM {healthy.tables[0]}")
        assert len(stored) == len({row["position"] for row in stored}) == head
    stuck = runner.position("runner_failing")
    assert stuck < fail_at
    stored = runtime.db.query("SELECT position FROM runner_failing_rows")
    assert stored and max(row["position"] for row in stored) <= stuck
