"""The command service on both stores: results, metadata, errors that write nothing."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from closedloop.domain.context import acting_as
from closedloop.domain.duties import DutyTier
from closedloop.domain.errors import ConcurrencyConflict, NotFound, ReasonRequired
from closedloop.domain.problems import ProblemResolvedOnlyOnce, ProblemSource, Severity
from closedloop.domain.service import ClosedLoop
from closedloop.domain.units import OneActiveFirstResponsiblePerUnit, Unit, UnitKind

BEIJING = timezone(timedelta(hours=8))


@pytest.fixture
def org(app: ClosedLoop) -> dict[str, object]:
    root = app.register_unit(name="党委", kind=UnitKind.COMMITTEE)
    farm = app.register_unit(name="林场", kind=UnitKind.GRASSROOTS, parent_id=root.id)
    cycle = app.open_cycle(year=2026, name="2026年度")
    chief = app.register_person(name="王林", unit_id=farm.id)
    deputy = app.register_person(name="赵杉", unit_id=farm.id)
    return {
        "root": root.id,
        "farm": farm.id,
        "cycle": cycle.id,
        "chief": chief.id,
        "deputy": deputy.id,
    }


def found_problem(app: ClosedLoop, org: dict[str, object]) -> object:
    return app.find_problem(
        cycle_id=org["cycle"],
        unit_id=org["farm"],
        title="火险隐患",
        source=ProblemSource.INSPECTION,
        severity=Severity.PROMINENT,
        found_at=datetime(2026, 3, 1, 9, tzinfo=BEIJING),
    ).id


def test_commands_return_id_version_and_a_rising_position(app: ClosedLoop, org) -> None:
    problem_id = found_problem(app, org)
    dispatched = app.dispatch_problem(
        problem_id, to_unit_id=org["farm"], requirement="限期整改", deadline=date(2026, 4, 1)
    )
    resolved = app.resolve_problem(problem_id, evidence="整改报告")
    assert (dispatched.id, dispatched.version) == (problem_id, 2)
    assert (resolved.id, resolved.version) == (problem_id, 3)
    assert resolved.position == dispatched.position + 1 == app.head_position()


def test_history_records_who_why_which_request_and_when(open_app: ClosedLoop) -> None:
    with acting_as("user:organisation-dept", correlation_id="req-1"):
        root = open_app.register_unit(name="党委", kind=UnitKind.COMMITTEE)
        farm = open_app.register_unit(name="林场", kind=UnitKind.GRASSROOTS, parent_id=root.id)
        chief = open_app.register_person(name="王林", unit_id=farm.id)
        duty = open_app.assign_duty(
            person_id=chief.id,
            unit_id=farm.id,
            tier=DutyTier.FIRST_RESPONSIBLE,
            effective_from=date(2026, 3, 1),
        )
    with acting_as("user:inspector", correlation_id="req-2"):
        open_app.relieve_duty(duty.id, effective_to=date(2026, 9, 30), reason="调任")

    assigned, relieved = open_app.history(duty.id)
    assert (assigned.type, assigned.actor, assigned.correlation_id) == (
        "DutyAssigned",
        "user:organisation-dept",
        "req-1",
    )
    assert assigned.data["tier"] is DutyTier.FIRST_RESPONSIBLE
    assert assigned.data["effective_from"] == date(2026, 3, 1)
    assert (relieved.type, relieved.actor, relieved.reason) == (
        "DutyRelieved",
        "user:inspector",
        "调任",
    )
    assert relieved.recorded_at >= assigned.recorded_at
    unit_events = [entry.type for entry in open_app.history(farm.id)]
    assert unit_events == [
        "UnitRegistered",
        "FirstResponsibleDesignated",
        "FirstResponsibleReleased",
    ]


def test_effective_time_is_kept_apart_from_recorded_time(app: ClosedLoop, org) -> None:
    problem_id = found_problem(app, org)
    (found,) = app.history(problem_id)
    assert found.effective_at == datetime(2026, 3, 1, 9, tzinfo=BEIJING)
    assert found.recorded_at > found.effective_at


def test_a_broken_rule_writes_nothing(app: ClosedLoop, org) -> None:
    problem_id = found_problem(app, org)
    app.resolve_problem(problem_id, evidence="报告")
    head = app.head_position()
    with pytest.raises(ProblemResolvedOnlyOnce):
        app.resolve_problem(problem_id, evidence="again")
    with pytest.raises(ReasonRequired):
        app.reopen_problem(problem_id, reason="  ")
    assert app.head_position() == head
    assert len(app.history(problem_id)) == 2


def test_a_stale_expected_version_conflicts_and_writes_nothing(app: ClosedLoop, org) -> None:
    problem_id = found_problem(app, org)
    app.escalate_problem(problem_id, leader_id=org["chief"], expected_version=1)
    head = app.head_position()
    with pytest.raises(ConcurrencyConflict) as conflict:
        app.resolve_problem(problem_id, evidence="报告", expected_version=1)
    assert (conflict.value.expected_version, conflict.value.actual_version) == (1, 2)
    assert app.head_position() == head


def test_unknown_ids_and_wrong_kinds_are_not_found(app: ClosedLoop, org) -> None:
    problem_id = found_problem(app, org)
    with pytest.raises(NotFound):
        app.resolve_problem(org["farm"], evidence="a unit is not a problem")
    with pytest.raises(NotFound):
        app.register_person(name="无名", unit_id=problem_id)
    with pytest.raises(NotFound):
        app.get_aggregate(problem_id, version=9)
    assert isinstance(app.get(Unit, org["farm"]), Unit)


def test_a_unit_gets_one_first_responsible_person_at_a_time(app: ClosedLoop, org) -> None:
    first = app.assign_duty(
        person_id=org["chief"],
        unit_id=org["farm"],
        tier=DutyTier.FIRST_RESPONSIBLE,
        effective_from=date(2026, 1, 1),
    )
    with pytest.raises(OneActiveFirstResponsiblePerUnit):
        app.assign_duty(
            person_id=org["deputy"],
            unit_id=org["farm"],
            tier=DutyTier.FIRST_RESPONSIBLE,
            effective_from=date(2026, 2, 1),
        )
    app.relieve_duty(first.id, effective_to=date(2026, 6, 30), reason="调任")
    second = app.assign_duty(
        person_id=org["deputy"],
        unit_id=org["farm"],
        tier=DutyTier.FIRST_RESPONSIBLE,
        effective_from=date(2026, 7, 1),
    )
    assert app.get(Unit, org["farm"]).first_responsible == (second.id, org["deputy"])


def test_the_unit_tree_refuses_a_cycle(app: ClosedLoop, org) -> None:
    general = app.register_unit(name="总支", kind=UnitKind.GENERAL_BRANCH, parent_id=org["root"])
    branch = app.register_unit(name="支部", kind=UnitKind.BRANCH, parent_id=general.id)
    from closedloop.domain.units import UnitTreeHasNoCycles

    with pytest.raises(UnitTreeHasNoCycles):
        app.move_unit(general.id, parent_id=branch.id, reason="误操作")
    assert app.get(Unit, general.id).parent_id == org["root"]


def test_decimal_points_survive_exactly(app: ClosedLoop, org) -> None:
    from closedloop.domain.targets import Indicator, Target

    target = app.set_unit_target(
        cycle_id=org["cycle"],
        unit_id=org["farm"],
        title="台账规范",
        indicator=Indicator.qualitative(levels=["优", "良", "差"]),
        points=Decimal("0.1") + Decimal("0.2"),
    )
    assert app.get(Target, target.id).points == Decimal("0.3")
