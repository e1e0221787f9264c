from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest

from closedloop.domain.cycles import Cycle, DeadlineWithinCycle
from closedloop.domain.errors import InvalidValue, ReasonRequired
from closedloop.domain.problems import (
    DispatchGoesToGrassroots,
    OnlyProminentOrSharedProblemsEscalate,
    OnlyResolvedProblemsReopen,
    Problem,
    ProblemConcernsItsTarget,
    ProblemEscalatedOnce,
    ProblemResolvedOnlyOnce,
    ProblemSource,
    ProblemStatus,
    ResolvedNotBeforeFound,
    ResolvedProblemTakesNoActions,
    Severity,
)
from closedloop.domain.units import UnitKind

from .factories import (
    at,
    committee,
    common_target,
    cycle,
    last_event,
    last_event_name,
    person,
    problem,
    rejected,
    unit,
)

FOUND = at(2026, 2, 1)


def test_problem_found_records_what_and_when() -> None:
    year, grassroots = cycle(), unit()
    target = common_target(year, [grassroots])

    found = Problem.find(
        cycle=year,
        unit=grassroots,
        title="  发展党员程序不规范 ",
        source=ProblemSource.INSPECTION,
        description="  个别支部未按期公示 ",
        target=target,
        found_at=FOUND,
    )

    assert last_event_name(found) == "ProblemFound"
    assert (found.title, found.description) == ("发展党员程序不规范", "个别支部未按期公示")
    assert (found.status, found.target_id, found.found_at) == (ProblemStatus.OPEN, target.id, FOUND)
    assert last_event(found).effective_at == FOUND


def test_problem_found_now_when_no_time_is_given() -> None:
    found = Problem.find(cycle=cycle(), unit=unit(), title="台账缺失", source=ProblemSource.SWEEP)

    assert found.found_at == found.created_on
    assert last_event(found).effective_at is None


def test_problem_concerns_a_target_of_its_cycle() -> None:
    grassroots = unit()
    other_year_target = common_target(cycle(2025), [grassroots])
    year = cycle(2026)

    with rejected(
        ProblemConcernsItsTarget, other_year_target.id, year.id, untouched=[other_year_target]
    ):
        problem(year, grassroots, target=other_year_target)


def test_found_time_must_be_timezone_aware() -> None:
    with rejected(InvalidValue, "field=found_at", "time zone", "2026-02-01 09:00:00"):
        problem(cycle(), unit(), found_at=datetime(2026, 2, 1, 9))


# --- dispatch -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [UnitKind.GRASSROOTS, UnitKind.BRANCH], ids=lambda k: k.value)
def test_dispatch_to_grassroots_or_branch(kind: UnitKind) -> None:
    root = committee()
    year, to_unit = cycle(), unit(kind, root)
    found = problem(year, root)

    found.dispatch(year, to_unit=to_unit, requirement="限期整改", deadline=date(2026, 4, 30))

    assert last_event_name(found) == "ProblemDispatched"
    assert (found.status, found.dispatched_to, found.deadline) == (
        ProblemStatus.DISPATCHED,
        to_unit.id,
        date(2026, 4, 30),
    )


@pytest.mark.parametrize(
    "kind",
    [UnitKind.COMMITTEE, UnitKind.GENERAL_BRANCH, UnitKind.DEPARTMENT],
    ids=lambda k: k.value,
)
def test_dispatch_goes_to_grassroots(kind: UnitKind) -> None:
    year, to_unit = cycle(), unit(kind)
    found = problem(year, unit())

    with rejected(DispatchGoesToGrassroots, f"kind={kind.value}", to_unit.id, untouched=[found]):
        found.dispatch(year, to_unit=to_unit, requirement="限期整改", deadline=date(2026, 4, 30))


@pytest.mark.parametrize("deadline", [date(2025, 12, 31), date(2027, 1, 1)])
def test_dispatch_deadline_within_cycle(deadline: date) -> None:
    year = cycle()
    found = problem(year, unit())

    with rejected(DeadlineWithinCycle, f"value={deadline}", untouched=[found]):
        found.dispatch(year, to_unit=unit(), requirement="限期整改", deadline=deadline)


def test_dispatch_needs_a_requirement() -> None:
    year = cycle()
    found = problem(year, unit())

    with rejected(InvalidValue, "field=requirement", untouched=[found]):
        found.dispatch(year, to_unit=unit(), requirement=" ", deadline=date(2026, 4, 30))


# --- escalation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "shared"),
    [(Severity.PROMINENT, False), (Severity.ORDINARY, True), (Severity.PROMINENT, True)],
)
def test_prominent_or_shared_problem_escalates(severity: Severity, shared: bool) -> None:
    root = committee()
    found = problem(cycle(), unit(parent=root), severity=severity, shared=shared)
    leader = person(root, "分管领导")

    found.escalate(leader=leader, reason="涉及多个支部")

    assert last_event_name(found) == "ProblemEscalated"
    assert found.escalated_to == leader.id


def test_only_prominent_or_shared_problems_escalate() -> None:
    root = committee()
    found = problem(cycle(), unit(parent=root))

    with rejected(
        OnlyProminentOrSharedProblemsEscalate,
        "severity=ordinary",
        "shared=False",
        untouched=[found],
    ):
        found.escalate(leader=person(root))


def test_problem_escalated_once() -> None:
    root = committee()
    found = problem(cycle(), unit(parent=root), severity=Severity.PROMINENT)
    first = person(root, "分管领导")
    found.escalate(leader=first)

    with rejected(ProblemEscalatedOnce, f"escalated_to={first.id}", untouched=[found]):
        found.escalate(leader=person(root, "另一位领导"))


# --- resolution and reopening ---------------------------------------------------------------


def test_problem_resolved_with_evidence() -> None:
    found = problem(cycle(), unit())
    resolved_at = at(2026, 3, 15)

    found.resolve(evidence="整改报告已归档", resolved_at=resolved_at)

    assert last_event_name(found) == "ProblemResolved"
    assert (found.status, found.resolved_at) == (ProblemStatus.RESOLVED, resolved_at)
    assert last_event(found).evidence == "整改报告已归档"


def test_problem_resolved_only_once() -> None:
    found = problem(cycle(), unit())
    found.resolve(evidence="已整改", resolved_at=at(2026, 3, 15))

    with rejected(
        ProblemResolvedOnlyOnce,
        found.id,
        "resolved_at=2026-03-15 09:00:00+08:00",
        untouched=[found],
    ):
        found.resolve(evidence="再次整改", resolved_at=at(2026, 3, 16))


def test_resolved_not_before_found() -> None:
    found = problem(cycle(), unit(), found_at=at(2026, 2, 1))

    with rejected(
        ResolvedNotBeforeFound,
        "found_at=2026-02-01 09:00:00+08:00",
        "resolved_at=2026-01-31 09:00:00+08:00",
        untouched=[found],
    ):
        found.resolve(evidence="已整改", resolved_at=at(2026, 1, 31))


def test_resolved_at_the_moment_it_was_found() -> None:
    found = problem(cycle(), unit(), found_at=FOUND)

    found.resolve(evidence="当场整改", resolved_at=FOUND)

    assert found.resolved_at == FOUND


def test_resolution_compares_instants_not_wall_clocks() -> None:
    found = problem(cycle(), unit(), found_at=at(2026, 2, 1, 9))  # 01:00 UTC

    found.resolve(evidence="已整改", resolved_at=datetime(2026, 2, 1, 2, tzinfo=UTC))

    assert last_event_name(found) == "ProblemResolved"


def test_resolution_time_must_be_timezone_aware() -> None:
    found = problem(cycle(), unit())

    with rejected(InvalidValue, "field=resolved_at", "time zone", untouched=[found]):
        found.resolve(evidence="已整改", resolved_at=datetime(2026, 3, 15, 9))


def test_resolution_needs_evidence() -> None:
    found = problem(cycle(), unit())

    with rejected(InvalidValue, "field=evidence", untouched=[found]):
        found.resolve(evidence="", resolved_at=at(2026, 3, 15))


def test_resolved_problem_is_not_dispatched() -> None:
    year = cycle()
    found = problem(year, unit())
    found.resolve(evidence="已整改", resolved_at=at(2026, 3, 15))

    with rejected(ResolvedProblemTakesNoActions, found.id, untouched=[found]):
        found.dispatch(year, to_unit=unit(), requirement="整改", deadline=date(2026, 4, 30))


def test_resolved_problem_is_not_escalated() -> None:
    root = committee()
    found = problem(cycle(), unit(parent=root), severity=Severity.PROMINENT)
    found.resolve(evidence="已整改", resolved_at=at(2026, 3, 15))

    with rejected(ResolvedProblemTakesNoActions, found.id, untouched=[found]):
        found.escalate(leader=person(root))


def never_resolved(year: Cycle) -> Problem:
    return problem(year, unit())


def dispatched(year: Cycle) -> Problem:
    found = problem(year, unit())
    found.dispatch(year, to_unit=unit(), requirement="整改", deadline=date(2026, 4, 30))
    return found


def reopened(year: Cycle) -> Problem:
    found = problem(year, unit())
    found.resolve(evidence="已整改", resolved_at=at(2026, 3, 15))
    found.reopen(reason="反弹")
    return found


@pytest.mark.parametrize("make", [never_resolved, dispatched, reopened], ids=lambda f: f.__name__)
def test_only_resolved_problems_reopen(make: Callable[[Cycle], Problem]) -> None:
    found = make(cycle())

    with rejected(OnlyResolvedProblemsReopen, f"status={found.status.value}", untouched=[found]):
        found.reopen(reason="复查未通过")


@pytest.mark.parametrize("reason", [None, "", "  "])
def test_reopening_needs_a_reason(reason: str | None) -> None:
    found = problem(cycle(), unit())
    found.resolve(evidence="已整改", resolved_at=at(2026, 3, 15))

    with rejected(ReasonRequired, "action=reopen a problem", untouched=[found]):
        found.reopen(reason=reason)


def test_reopened_problem_is_no_longer_resolved() -> None:
    found = problem(cycle(), unit())
    found.resolve(evidence="已整改", resolved_at=at(2026, 3, 15))

    found.reopen(reason="复查发现反弹")

    assert last_event_name(found) == "ProblemReopened"
    assert (found.status, found.resolved_at) == (ProblemStatus.REOPENED, None)
    assert last_event(found).reason == "复查发现反弹"


def test_reopened_problem_takes_actions_again() -> None:
    root = committee()
    year = cycle()
    found = problem(year, unit(parent=root), severity=Severity.PROMINENT)
    found.resolve(evidence="已整改", resolved_at=at(2026, 3, 15))
    found.reopen(reason="反弹")

    found.dispatch(
        year, to_unit=unit(parent=root), requirement="再次整改", deadline=date(2026, 6, 30)
    )
    found.escalate(leader=person(root))

    assert [type(event).__name__ for event in found.pending_events[-2:]] == [
        "ProblemDispatched",
        "ProblemEscalated",
    ]


def test_reopened_problem_can_be_resolved_again() -> None:
    found = problem(cycle(), unit())
    found.resolve(evidence="已整改", resolved_at=at(2026, 3, 15))
    found.reopen(reason="反弹")

    found.resolve(evidence="彻底整改", resolved_at=at(2026, 5, 1))

    assert found.status is ProblemStatus.RESOLVED
    assert found.resolved_at == at(2026, 5, 1)
