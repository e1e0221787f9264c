from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from closedloop.domain.cycles import DeadlineWithinCycle
from closedloop.domain.errors import InvalidValue, ReasonRequired
from closedloop.domain.measures import (
    FinishedMeasureTakesNoActions,
    Measure,
    MeasureAddressesSomething,
    MeasureStatus,
)

from .factories import (
    common_target,
    cycle,
    last_event,
    last_event_name,
    measure,
    person,
    problem,
    rejected,
    unit,
)


def adopted_measure() -> Measure:
    year, lead = cycle(), unit()
    return measure(year, lead, person(lead), problems=[problem(year, lead)])


def test_measure_adopted_against_problems() -> None:
    year, lead = cycle(), unit()
    leader = person(lead)
    first, second = problem(year, lead), problem(year, lead)

    adopted = measure(year, lead, leader, problems=[first, second, first])

    assert last_event_name(adopted) == "MeasureAdopted"
    assert adopted.problem_ids == (first.id, second.id)
    assert (adopted.status, adopted.progress, adopted.deadline) == (
        MeasureStatus.ADOPTED,
        0,
        date(2026, 6, 30),
    )
    assert (adopted.lead_unit_id, adopted.responsible_leader_id) == (lead.id, leader.id)
    assert last_event(adopted).title == "建立学习台账"


def test_measure_adopted_for_a_target() -> None:
    year, lead = cycle(), unit()
    target = common_target(year, [lead])

    adopted = measure(year, lead, person(lead), target=target)

    assert (adopted.target_id, adopted.problem_ids) == (target.id, ())


def test_measure_addresses_something() -> None:
    year, lead = cycle(), unit()

    with rejected(MeasureAddressesSomething, "problems=[]", "target=None"):
        measure(year, lead, person(lead))


def test_measure_addresses_problems_of_its_cycle() -> None:
    lead = unit()
    old = problem(cycle(2025), lead)

    with rejected(MeasureAddressesSomething, old.id, untouched=[old]):
        measure(cycle(2026), lead, person(lead), problems=[old])


def test_measure_addresses_a_target_of_its_cycle() -> None:
    lead = unit()
    old = common_target(cycle(2025), [lead])
    year = cycle(2026)

    with rejected(MeasureAddressesSomething, f"cycle={year.id}", untouched=[old]):
        measure(year, lead, person(lead), target=old)


@pytest.mark.parametrize("deadline", [date(2025, 12, 31), date(2027, 1, 1)])
def test_measure_deadline_within_cycle(deadline: date) -> None:
    year, lead = cycle(), unit()

    with rejected(DeadlineWithinCycle, f"value={deadline}"):
        measure(year, lead, person(lead), problems=[problem(year, lead)], deadline=deadline)


@pytest.mark.parametrize("percent", [0, 55, 100])
def test_progress_reported_between_0_and_100(percent: int) -> None:
    action = adopted_measure()

    action.report_progress(percent=percent, note="  已完成台账模板 ")

    assert last_event_name(action) == "MeasureProgressReported"
    assert action.progress == percent
    assert last_event(action).note == "已完成台账模板"


@pytest.mark.parametrize("percent", [-1, 101, 1000])
def test_progress_outside_0_to_100_is_rejected(percent: int) -> None:
    action = adopted_measure()

    with rejected(InvalidValue, "field=percent", f"value={percent}", untouched=[action]):
        action.report_progress(percent=percent)


def test_measure_completed_with_evidence() -> None:
    action = adopted_measure()

    action.complete(evidence="台账照片")

    assert last_event_name(action) == "MeasureCompleted"
    assert (action.status, action.progress) == (MeasureStatus.COMPLETED, 100)


def test_completion_needs_evidence() -> None:
    action = adopted_measure()

    with rejected(InvalidValue, "field=evidence", untouched=[action]):
        action.complete(evidence="  ")


def test_measure_cancelled_with_a_reason() -> None:
    action = adopted_measure()

    action.cancel(reason="问题已由上级统一解决")

    assert last_event_name(action) == "MeasureCancelled"
    assert action.status is MeasureStatus.CANCELLED
    assert last_event(action).reason == "问题已由上级统一解决"


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_cancelling_needs_a_reason(reason: str | None) -> None:
    action = adopted_measure()

    with rejected(ReasonRequired, "action=cancel a measure", untouched=[action]):
        action.cancel(reason=reason)


FINISH: dict[str, Callable[[Measure], None]] = {
    "completed": lambda m: m.complete(evidence="完成"),
    "cancelled": lambda m: m.cancel(reason="取消"),
}
ACTIONS: dict[str, Callable[[Measure], None]] = {
    "report_progress": lambda m: m.report_progress(percent=50),
    "complete": lambda m: m.complete(evidence="再次完成"),
    "cancel": lambda m: m.cancel(reason="再次取消"),
}


@pytest.mark.parametrize("status", FINISH)
@pytest.mark.parametrize("action", ACTIONS)
def test_finished_measure_takes_no_actions(status: str, action: str) -> None:
    finished = adopted_measure()
    FINISH[status](finished)

    with rejected(
        FinishedMeasureTakesNoActions, f"status={status}", finished.id, untouched=[finished]
    ):
        ACTIONS[action](finished)
