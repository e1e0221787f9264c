"""Plain builders for aggregates, plus the assertion every rule test shares.

Call them inside ``acting_as`` (the package conftest does that for every test).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from closedloop.domain.awards import Award, AwardKind
from closedloop.domain.base import LoopAggregate, LoopEvent
from closedloop.domain.cycles import Cycle, Stage
from closedloop.domain.duties import Duty, DutyTier
from closedloop.domain.errors import RuleViolation
from closedloop.domain.measures import Measure
from closedloop.domain.meetings import Meeting
from closedloop.domain.people import Person
from closedloop.domain.problems import Problem, ProblemSource, Severity
from closedloop.domain.rectifications import Rectification
from closedloop.domain.targets import Direction, Indicator, Target
from closedloop.domain.units import Unit, UnitKind

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
LEVELS = ("优秀", "良好", "一般", "较差")


def at(year: int, month: int, day: int, hour: int = 9, *, tz: timezone = BEIJING) -> datetime:
    return datetime(year, month, day, hour, tzinfo=tz)


# --- organisation ---------------------------------------------------------------------------


def committee(name: str = "公司党委") -> Unit:
    return Unit.register(name=name, kind=UnitKind.COMMITTEE, parent=None)


def unit(
    kind: UnitKind = UnitKind.GRASSROOTS, parent: Unit | None = None, name: str | None = None
) -> Unit:
    if kind is UnitKind.COMMITTEE:
        return committee(name or "公司党委")
    return Unit.register(name=name or f"{kind.value}单位", kind=kind, parent=parent or committee())


def person(in_unit: Unit, name: str = "张三", title: str = "") -> Person:
    return Person.register(name=name, unit=in_unit, title=title)


def first_responsible(of_unit: Unit, name: str = "李书记") -> Person:
    """A person of the unit appointed its first responsible, as the service does it."""
    head = person(of_unit, name=name)
    held = Duty.assign(
        person=head, unit=of_unit, tier=DutyTier.FIRST_RESPONSIBLE, effective_from=date(2026, 1, 1)
    )
    of_unit.designate_first_responsible(duty_id=held.id, person_id=head.id)
    return head


def duty(holder: Person, for_unit: Unit, tier: DutyTier = DutyTier.FIRST_RESPONSIBLE) -> Duty:
    return Duty.assign(person=holder, unit=for_unit, tier=tier, effective_from=date(2026, 3, 1))


# --- cycles and targets ---------------------------------------------------------------------


def cycle(year: int = 2026, stages: Sequence[Stage] | None = None) -> Cycle:
    return Cycle.open(year=year, name=f"{year}年度考核", stages=stages)


def quantitative(target_value: Decimal = Decimal("95")) -> Indicator:
    return Indicator.quantitative(
        metric="党员学习覆盖率",
        target_value=target_value,
        direction=Direction.HIGHER_IS_BETTER,
        baseline=Decimal("80"),
        unit_of_measure="%",
    )


def qualitative(levels: Sequence[str] = LEVELS) -> Indicator:
    return Indicator.qualitative(levels=levels, metric="支部标准化建设")


def common_target(
    in_cycle: Cycle,
    applies_to: Sequence[Unit],
    *,
    indicator: Indicator | None = None,
    points: Decimal = Decimal("10"),
) -> Target:
    return Target.set_common(
        cycle=in_cycle,
        title="党建工作责任制落实",
        indicator=indicator or quantitative(),
        points=points,
        applies_to=applies_to,
    )


def unit_target(
    in_cycle: Cycle,
    of_unit: Unit,
    *,
    indicator: Indicator | None = None,
    contributes_to: Target | None = None,
) -> Target:
    return Target.set_for_unit(
        cycle=in_cycle,
        unit=of_unit,
        title="一支部一特色",
        indicator=indicator or qualitative(),
        points=Decimal("5"),
        contributes_to=contributes_to,
    )


# --- problems, measures, meetings, rectifications, awards -----------------------------------


def problem(
    in_cycle: Cycle,
    of_unit: Unit,
    *,
    severity: Severity = Severity.ORDINARY,
    shared: bool = False,
    target: Target | None = None,
    found_at: datetime | None = None,
) -> Problem:
    return Problem.find(
        cycle=in_cycle,
        unit=of_unit,
        title="三会一课落实不到位",
        source=ProblemSource.SWEEP,
        severity=severity,
        shared=shared,
        target=target,
        found_at=found_at or at(in_cycle.year, 2, 1),
    )


def measure(
    in_cycle: Cycle,
    lead: Unit,
    leader: Person,
    *,
    problems: Sequence[Problem] = (),
    target: Target | None = None,
    deadline: date | None = None,
) -> Measure:
    return Measure.adopt(
        cycle=in_cycle,
        title="建立学习台账",
        deadline=deadline or date(in_cycle.year, 6, 30),
        lead_unit=lead,
        responsible_units=[lead],
        responsible_leader=leader,
        problems=problems,
        target=target,
    )


def meeting(in_cycle: Cycle, attendees: Sequence[Person], stage: str = "Q1") -> Meeting:
    return Meeting.convene(
        cycle=in_cycle,
        stage=stage,
        title="一季度党建例会",
        held_on=date(in_cycle.year, 3, 28),
        attendees=attendees,
    )


def rectification(in_cycle: Cycle, of_unit: Unit) -> Rectification:
    return Rectification.order(
        cycle=in_cycle,
        unit=of_unit,
        requirement="补齐会议记录",
        deadline=date(in_cycle.year, 5, 31),
    )


def award(
    in_cycle: Cycle,
    *,
    to_unit: Unit | None = None,
    to_person: Person | None = None,
    kind: AwardKind = AwardKind.REWARD,
) -> Award:
    return Award.issue(
        cycle=in_cycle,
        kind=kind,
        basis="一季度排名第一",
        unit=to_unit,
        person=to_person,
        stage="Q1",
        points=Decimal("2"),
    )


# --- assertions -----------------------------------------------------------------------------


def last_event(aggregate: LoopAggregate) -> LoopEvent:
    event = aggregate.pending_events[-1]
    assert isinstance(event, LoopEvent)
    return event


def last_event_name(aggregate: LoopAggregate) -> str:
    return type(last_event(aggregate)).__name__


@contextmanager
def rejected(
    rule: type[RuleViolation], *mentions: object, untouched: Sequence[LoopAggregate] = ()
) -> Iterator[pytest.ExceptionInfo[RuleViolation]]:
    """The block raises exactly ``rule``, its message names each of ``mentions``, and none of
    the ``untouched`` aggregates recorded anything."""
    before = [(len(a.pending_events), a.version) for a in untouched]
    with pytest.raises(rule) as info:
        yield info
    error = info.value
    assert type(error) is rule, f"expected {rule.__name__}, got {type(error).__name__}"
    assert error.rule == rule.__name__
    message = str(error)
    assert message.startswith(f"{rule.__name__}: "), message
    for mention in mentions:
        assert str(mention) in message, f"{mention!s} not in {message!r}"
    after = [(len(a.pending_events), a.version) for a in untouched]
    assert after == before, f"recorded events despite {rule.__name__}: {before} -> {after}"
