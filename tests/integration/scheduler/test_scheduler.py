"""The scheduler's jobs on both stores, on a simulated clock: settling the demo year quarter by
quarter, once; two replicas at once; the lock; catching up on start through the API lifespan;
missed deadlines recorded once each; one failing stage leaving the others to settle.

The demo may settle stages itself (it records a year as the bureau lives it), so the tests note
which stages were settled before the scheduler ran and expect the scheduler to settle the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from closedloop.api.app import create_app
from closedloop.bootstrap import Runtime, build_runtime
from closedloop.demo import load_demo
from closedloop.domain.context import acting_as
from closedloop.domain.cycles import Cycle
from closedloop.domain.errors import DomainError
from closedloop.domain.measures import Measure
from closedloop.domain.problems import Problem, ProblemSource
from closedloop.domain.rectifications import Rectification
from closedloop.domain.service import ClosedLoop
from closedloop.domain.settlement import Settlement
from closedloop.domain.targets import Direction, Indicator
from closedloop.domain.units import UnitKind
from closedloop.scheduler import Scheduler
from closedloop.scheduler.locks import job_lock_for
from closedloop.scheduler.overdue import overdue_items
from closedloop.settings import Settings
from closedloop.store import application_env

SHANGHAI = ZoneInfo("Asia/Shanghai")
QUARTER_ENDS = {
    "Q1": datetime(2026, 4, 1, tzinfo=SHANGHAI),
    "Q2": datetime(2026, 7, 1, tzinfo=SHANGHAI),
    "Q3": datetime(2026, 10, 1, tzinfo=SHANGHAI),
    "Q4": datetime(2027, 1, 1, tzinfo=SHANGHAI),
}
AFTER_THE_YEAR = datetime(2027, 1, 2, 9, tzinfo=SHANGHAI)
STAGE_SETTLED = f"{Settlement.StageSettled.__module__}:{Settlement.StageSettled.__qualname__}"
INDICATOR = Indicator.quantitative(
    metric="覆盖率", target_value=Decimal("95"), direction=Direction.HIGHER_IS_BETTER
)


@pytest.fixture
def runtime(store_settings: Settings) -> Iterator[Runtime]:
    built = build_runtime(store_settings)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def demo_cycle(runtime: Runtime) -> UUID:
    return load_demo(runtime.service).cycle_id


def scheduler(runtime: Runtime, service: ClosedLoop | None = None, **options: Any) -> Scheduler:
    # No projection runner follows the log in these tests unless one says so: the deadline job
    # reads the supervision read model after an explicit catch-up, so it need not wait for it.
    options.setdefault("read_model_wait", 0.0)
    return Scheduler(service or runtime.service, runtime.db, runtime.settings, **options)


def settled(service: ClosedLoop, cycle_id: UUID) -> dict[str, UUID]:
    return dict(service.get(Cycle, cycle_id).settlements)


def settlements_written(service: ClosedLoop) -> Counter[tuple[UUID, str, int]]:
    """How many ``StageSettled`` the log holds per (cycle, stage, round) (a stage reopened is
    settled again in its next round)."""
    found: Counter[tuple[UUID, str, int]] = Counter()
    for notification in service.recorder.select_notifications(1, 100_000, topics=[STAGE_SETTLED]):
        event = service.mapper.to_domain_event(notification)
        found[(event.cycle_id, event.stage, event.round_number)] += 1
    return found


def open_empty_cycle(service: ClosedLoop, year: int = 2026) -> UUID:
    with acting_as("test-setup"):
        return service.open_cycle(year=year, name=f"{year}年度考核").id


# --- settlement ------------------------------------------------------------------------------


def test_the_demo_year_is_settled_quarter_by_quarter_once(
    runtime: Runtime, demo_cycle: UUID
) -> None:
    service = runtime.service
    before = settled(service, demo_cycle)
    jobs = scheduler(runtime)
    ended: set[str] = set()
    for stage, cutoff in QUARTER_ENDS.items():
        early = jobs.run_settlement_job(cutoff - timedelta(seconds=1))
        assert early.ran and not early.failed
        assert set(settled(service, demo_cycle)) == ended | set(before)

        run = jobs.run_settlement_job(cutoff)
        ended.add(stage)
        assert not run.failed
        now_settled = settled(service, demo_cycle)
        assert set(now_settled) == ended | set(before)
        created = {(r.cycle_id, r.stage) for r in run.created}
        expected = set() if stage in before else {(demo_cycle, stage)}
        assert created == expected
        assert {r.stage for r in run.results} == {stage} - set(before)

        again = jobs.run_settlement_job(cutoff)
        assert again.results == []  # nothing due: the stage is settled
        assert settled(service, demo_cycle) == now_settled

    written = settlements_written(service)
    assert {stage for (_, stage, _) in written} == set(QUARTER_ENDS)
    assert set(written.values()) == {1}  # each round of each stage settled once
    for stage in set(QUARTER_ENDS) - set(before):
        history = service.history(settled(service, demo_cycle)[stage])
        assert history[0].type == "StageSettled"
        assert history[0].actor == "scheduler"
        assert history[0].correlation_id.startswith("scheduler/settlement/")


def test_a_retry_reports_the_settlement_another_run_made(runtime: Runtime) -> None:
    cycle = open_empty_cycle(runtime.service)
    first, second = scheduler(runtime), scheduler(runtime)
    assert [r.stage for r in first.run_settlement_job(QUARTER_ENDS["Q1"]).created] == ["Q1"]
    # A replica that read the cycle before the settlement was recorded asks again: the stage is
    # reported settled by the same settlement, nothing is written.
    outcome = runtime.service.settle_stage(cycle, stage="Q1", now=QUARTER_ENDS["Q1"], zone=SHANGHAI)
    assert not outcome.created
    assert outcome.settlement_id == settled(runtime.service, cycle)["Q1"]
    assert second.run_settlement_job(QUARTER_ENDS["Q1"]).results == []
    assert settlements_written(runtime.service)[(cycle, "Q1", 1)] == 1


def test_stage_cut_offs_follow_the_configured_zone(runtime: Runtime) -> None:
    cycle = open_empty_cycle(runtime.service)
    half_past_midnight_in_shanghai = datetime(2026, 3, 31, 16, 30, tzinfo=UTC)
    utc_settings = runtime.settings.model_copy(update={"time_zone": "UTC"})
    in_utc = Scheduler(runtime.service, runtime.db, utc_settings, read_model_wait=0.0)
    assert in_utc.run_settlement_job(half_past_midnight_in_shanghai).results == []
    assert settled(runtime.service, cycle) == {}

    in_shanghai = scheduler(runtime)
    run = in_shanghai.run_settlement_job(half_past_midnight_in_shanghai)
    assert [(r.cycle_id, r.stage, r.created) for r in run.results] == [(cycle, "Q1", True)]
    recorded = runtime.service.get(Settlement, run.results[0].settlement_id)  # type: ignore[arg-type]
    assert recorded.cutoff == datetime(2026, 4, 1, tzinfo=SHANGHAI)


class NoLock:
    """Every caller holds it: what two replicas do when the lock is lost or misconfigured."""

    @contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        yield True


@pytest.mark.parametrize("locking", ["locked", "unlocked"])
def test_two_replicas_at_once_settle_each_stage_once(
    runtime: Runtime, store_settings: Settings, demo_cycle: UUID, locking: str
) -> None:
    other = ClosedLoop(env=application_env(store_settings))
    try:
        lock = NoLock() if locking == "unlocked" else None
        replicas = [scheduler(runtime, lock=lock), scheduler(runtime, other, lock=lock)]
        start = threading.Barrier(len(replicas))
        runs: list[Any] = []

        def run(replica: Scheduler) -> None:
            start.wait()
            runs.append(replica.run_settlement_job(AFTER_THE_YEAR))

        threads = [threading.Thread(target=run, args=(r,)) for r in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(runs) == 2
    finally:
        other.close()
    assert not any(r.failed for r in runs), [r.failed for r in runs]
    assert set(settled(runtime.service, demo_cycle)) == set(QUARTER_ENDS)
    written = settlements_written(runtime.service)
    assert set(written.values()) == {1}
    created = Counter(r.stage for run in runs for r in run.created)
    assert all(count == 1 for count in created.values())


def test_a_job_is_skipped_while_another_replica_holds_its_lock(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    cycle = open_empty_cycle(runtime.service)
    jobs = scheduler(runtime)
    with job_lock_for(runtime.settings).hold("settlement") as held:
        assert held
        with caplog.at_level(logging.INFO, logger="closedloop.scheduler"):
            run = jobs.run_settlement_job(AFTER_THE_YEAR)
    assert not run.ran and run.results == []
    assert "another replica holds its lock" in caplog.text
    assert settled(runtime.service, cycle) == {}
    assert len(jobs.run_settlement_job(AFTER_THE_YEAR).created) == 4


def test_one_failing_stage_leaves_the_others_to_settle(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken, healthy = open_empty_cycle(runtime.service), open_empty_cycle(runtime.service)
    settle_stage = runtime.service.settle_stage

    def failing_for_one_cycle(cycle_id: UUID, **kwargs: Any) -> Any:
        if cycle_id == broken and kwargs["stage"] == "Q2":
            raise RuntimeError("disk full")
        return settle_stage(cycle_id, **kwargs)

    monkeypatch.setattr(runtime.service, "settle_stage", failing_for_one_cycle)
    with caplog.at_level(logging.INFO, logger="closedloop.scheduler"):
        run = scheduler(runtime).run_settlement_job(AFTER_THE_YEAR)
    assert [(r.cycle_id, r.stage) for r in run.failed] == [(broken, "Q2")]
    assert "RuntimeError: disk full" in (run.failed[0].error or "")
    assert set(settled(runtime.service, broken)) == {"Q1", "Q3", "Q4"}
    assert set(settled(runtime.service, healthy)) == set(QUARTER_ENDS)
    assert f"cycle {broken} stage Q2: settlement failed: RuntimeError: disk full" in caplog.text

    monkeypatch.undo()
    again = scheduler(runtime).run_settlement_job(AFTER_THE_YEAR)
    assert [(r.cycle_id, r.stage) for r in again.created] == [(broken, "Q2")]


def test_the_clock_must_know_its_zone(runtime: Runtime) -> None:
    with pytest.raises(ValueError, match="aware"):
        scheduler(runtime).run_settlement_job(datetime(2027, 1, 2))


# --- catching up on start ------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_on_start_it_catches_up_every_past_stage_once(
    store_settings: Settings, demo_cycle: UUID, runtime: Runtime
) -> None:
    # The API lifespan starts the runtime's background work: the projection runner and, as
    # the settings ask, this scheduler on a clock set after the year.
    settings = store_settings.model_copy(update={"run_scheduler": True})
    live = build_runtime(settings)
    live.scheduler = Scheduler(
        live.service, live.db, settings, now=lambda: AFTER_THE_YEAR, read_model_wait=30.0
    )
    try:
        for _restart in range(2):
            with TestClient(create_app(settings, runtime=live)):
                wait_until(lambda: set(settled(live.service, demo_cycle)) == set(QUARTER_ENDS))
                assert live.scheduler.running
                assert set(live.scheduler.next_run_times()) >= {"settlement", "deadlines"}
            assert not live.scheduler.running  # the lifespan stopped it, after the catch-up
            written = settlements_written(live.service)
            assert set(written.values()) == {1}
            # The catch-up's deadline part ran too: nothing overdue is left without its record.
            live.projections.catch_up()
            assert_no_missed_deadline_unrecorded(live, AFTER_THE_YEAR)
    finally:
        live.close()


def assert_no_missed_deadline_unrecorded(runtime: Runtime, now: datetime) -> None:
    candidates = overdue_items(runtime.db, as_of=now.astimezone(SHANGHAI).date())
    assert candidates
    with acting_as("test-check"):
        for item in candidates:
            with pytest.raises(DomainError):
                runtime.service.record_deadline_missed(item.id, now=now, zone=SHANGHAI)


# --- missed deadlines ------------------------------------------------------------------------


@dataclass(frozen=True)
class Overdue:
    cycle: UUID
    farm: UUID
    ids: dict[str, UUID]


def record_items(service: ClosedLoop) -> Overdue:
    """Items due on 31 March 2026 (D) unless named otherwise, in every state that matters."""
    ids: dict[str, UUID] = {}
    march_end, june_end = date(2026, 3, 31), date(2026, 6, 30)
    with acting_as("test-setup"):
        committee = service.register_unit(name="党委", kind=UnitKind.COMMITTEE).id
        farm = service.register_unit(name="北山林场", kind=UnitKind.GRASSROOTS, parent_id=committee)
        head = service.register_person(name="邓志强", unit_id=farm.id).id
        cycle = service.open_cycle(year=2026, name="2026年度").id
        target = service.set_common_target(
            cycle_id=cycle,
            title="覆盖率",
            indicator=INDICATOR,
            points=Decimal(10),
            applies_to=[farm.id],
        ).id

        def measure(name: str, deadline: date) -> UUID:
            ids[name] = service.adopt_measure(
                cycle_id=cycle,
                title=name,
                deadline=deadline,
                lead_unit_id=farm.id,
                responsible_unit_ids=[farm.id],
                responsible_leader_id=head,
                target_id=target,
            ).id
            return ids[name]

        def rectification(name: str) -> UUID:
            ids[name] = service.order_rectification(
                cycle_id=cycle, unit_id=farm.id, requirement=name, deadline=march_end
            ).id
            return ids[name]

        def problem(name: str) -> UUID:
            ids[name] = service.find_problem(
                cycle_id=cycle, unit_id=farm.id, title=name, source=ProblemSource.SWEEP
            ).id
            return ids[name]

        def dispatch(problem_id: UUID, deadline: date) -> None:
            service.dispatch_problem(
                problem_id, to_unit_id=farm.id, requirement="整改", deadline=deadline
            )

        measure("measure open", march_end)
        service.complete_measure(measure("measure done", march_end), evidence="完成")
        measure("measure due in June", june_end)
        rectification("rectification open")
        # Completed, awaiting verification: still listed, but no longer able to miss anything.
        service.complete_rectification(rectification("rectification completed"), evidence="e")
        dispatch(problem("problem dispatched"), march_end)
        dispatch(problem("problem resolved"), march_end)
        service.resolve_problem(ids["problem resolved"], evidence="已整改")
        problem("problem found only")
        dispatch(problem("problem dispatched again"), date(2026, 3, 15))
    return Overdue(cycle, farm.id, ids)


def missed(service: ClosedLoop, item_id: UUID) -> list[Any]:
    return [e for e in service.history(item_id) if e.type == "DeadlineMissed"]


def test_each_missed_deadline_is_recorded_once(runtime: Runtime) -> None:
    service = runtime.service
    items = record_items(service)
    runtime.projections.catch_up()
    jobs = scheduler(runtime)
    names = {v: k for k, v in items.ids.items()}

    not_yet = jobs.run_deadline_job(datetime(2026, 3, 31, 23, 59, tzinfo=SHANGHAI))
    assert [names[i.id] for i in not_yet.recorded] == ["problem dispatched again"]

    after = datetime(2026, 4, 1, 0, 15, tzinfo=SHANGHAI)
    run = jobs.run_deadline_job(after)
    assert run.ran and not run.failed
    assert sorted(names[i.id] for i in run.recorded) == [
        "measure open",
        "problem dispatched",
        "rectification open",
    ]
    assert (run.already, run.not_due) == (1, 1)  # dispatched again: on record; completed: finished
    assert run.settlement is not None
    assert [(r.cycle_id, r.stage) for r in run.settlement.created] == [(items.cycle, "Q1")]

    for name in ("measure open", "problem dispatched", "rectification open"):
        (entry,) = missed(service, items.ids[name])
        assert entry.data["deadline"] in ("2026-03-31", date(2026, 3, 31))
        assert entry.actor == "scheduler"
    for name in ("measure done", "measure due in June", "rectification completed"):
        assert missed(service, items.ids[name]) == []

    head = service.head_position()
    assert jobs.run_deadline_job(after).recorded == []
    fresh_replica = scheduler(runtime).run_deadline_job(after + timedelta(days=1))
    assert fresh_replica.recorded == [] and fresh_replica.already == 4
    assert service.head_position() == head

    # Dispatched again with a new deadline: that one can be missed too, once.
    with acting_as("test-setup"):
        service.dispatch_problem(
            items.ids["problem dispatched again"],
            to_unit_id=items.farm,
            requirement="再次整改",
            deadline=date(2026, 4, 30),
        )
    runtime.projections.catch_up()
    may = jobs.run_deadline_job(datetime(2026, 5, 1, 0, 15, tzinfo=SHANGHAI))
    assert [names[i.id] for i in may.recorded] == ["problem dispatched again"]
    assert len(missed(service, items.ids["problem dispatched again"])) == 2


def test_the_deadline_job_on_the_demo_year(runtime: Runtime, demo_cycle: UUID) -> None:
    runtime.projections.catch_up()
    jobs = scheduler(runtime)
    first = jobs.run_deadline_job(AFTER_THE_YEAR, settle=False)
    assert first.ran and not first.failed and first.recorded
    assert first.settlement is None
    kinds = {Measure: "measure", Rectification: "rectification", Problem: "problem"}
    for item in first.recorded:
        aggregate = runtime.service.get_aggregate(item.id)
        assert kinds[type(aggregate)] == item.kind
        deadlines = [e.data["deadline"] for e in missed(runtime.service, item.id)]
        assert len(deadlines) == len(set(deadlines))
    runtime.projections.catch_up()
    assert_no_missed_deadline_unrecorded(runtime, AFTER_THE_YEAR)

    second = scheduler(runtime).run_deadline_job(AFTER_THE_YEAR, settle=False)
    assert second.recorded == [] and not second.failed
