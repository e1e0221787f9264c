"""Replaying any aggregate from the store gives exactly the state it had when saved."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from closedloop.domain.awards import Award, AwardKind
from closedloop.domain.base import LoopAggregate
from closedloop.domain.cycles import Cycle
from closedloop.domain.duties import Duty, DutyTier
from closedloop.domain.measures import Measure
from closedloop.domain.meetings import Meeting
from closedloop.domain.people import Person
from closedloop.domain.problems import Problem, ProblemSource, Severity
from closedloop.domain.rectifications import Rectification
from closedloop.domain.service import ClosedLoop
from closedloop.domain.targets import Direction, EffectMethod, Indicator, Target
from closedloop.domain.units import Unit, UnitKind

BEIJING = timezone(timedelta(hours=8))


def build_year(app: ClosedLoop) -> list[tuple[LoopAggregate, list[LoopAggregate]]]:
    """Every aggregate type through several events; returns (final, snapshot per version)."""
    recorded: dict[object, list[LoopAggregate]] = {}

    def save(*aggregates: LoopAggregate) -> None:
        app.save(*aggregates)
        for aggregate in aggregates:
            recorded.setdefault(aggregate.id, []).append(copy.deepcopy(aggregate))

    root = Unit.register(name="林业局党委", kind=UnitKind.COMMITTEE, parent=None)
    save(root)
    general = Unit.register(name="机关总支", kind=UnitKind.GENERAL_BRANCH, parent=root)
    farm = Unit.register(name="红旗林场", kind=UnitKind.GRASSROOTS, parent=root)
    save(general, farm)
    branch = Unit.register(name="第一支部", kind=UnitKind.BRANCH, parent=general)
    save(branch)
    branch.move_under(root, parent_lineage=[root.id], reason="机构调整")
    save(branch)
    chief = Person.register(name="王林", unit=farm, title="场长")
    clerk = Person.register(name="李森", unit=branch, title="书记")
    save(chief, clerk)
    cycle = Cycle.open(year=2026, name="2026年度考核")
    save(cycle)
    duty = Duty.assign(
        person=chief, unit=farm, tier=DutyTier.FIRST_RESPONSIBLE, effective_from=date(2026, 1, 1)
    )
    farm.designate_first_responsible(duty_id=duty.id, person_id=chief.id)
    save(duty, farm)
    target = Target.set_common(
        cycle=cycle,
        title="森林覆盖率达到 60.5%",
        points=Decimal("12.5"),
        applies_to=[farm, branch],
        indicator=Indicator.quantitative(
            metric="覆盖率",
            target_value=Decimal("60.5"),
            direction=Direction.HIGHER_IS_BETTER,
            baseline=Decimal("58.25"),
            unit_of_measure="%",
        ),
    )
    save(target)
    target.set_milestones(cycle, {"Q1": Decimal("58.5"), "Q2": Decimal("59")})
    target.contract_to(lead_unit=farm, responsible_units=[farm, branch], responsible_leader=chief)
    target.revise(reason="上级调整", points=Decimal("15"))
    save(target)
    target.confirm_effect(
        cycle,
        stage="Q1",
        method=EffectMethod.SELF_ASSESSMENT,
        unit=farm,
        result=Decimal("58.6"),
        evidence="自查表",
        confirmed_at=datetime(2026, 4, 2, 9, 30, tzinfo=BEIJING),
    )
    save(target)
    problem = Problem.find(
        cycle=cycle,
        unit=farm,
        title="防火巡护不到位",
        source=ProblemSource.SWEEP,
        severity=Severity.PROMINENT,
        target=target,
        found_at=datetime(2026, 2, 1, 8, tzinfo=BEIJING),
    )
    save(problem)
    problem.dispatch(cycle, to_unit=farm, requirement="两周内整改", deadline=date(2026, 3, 1))
    problem.escalate(leader=chief)
    problem.resolve(evidence="巡护记录", resolved_at=datetime(2026, 2, 20, tzinfo=BEIJING))
    save(problem)
    problem.reopen(reason="复查仍有漏洞")
    save(problem)
    measure = Measure.adopt(
        cycle=cycle,
        title="增设巡护点",
        deadline=date(2026, 6, 30),
        lead_unit=farm,
        responsible_units=[farm],
        responsible_leader=chief,
        problems=[problem],
        target=target,
    )
    save(measure)
    measure.report_progress(percent=40, note="已完成选址")
    measure.complete(evidence="验收单")
    save(measure)
    meeting = Meeting.convene(
        cycle=cycle,
        stage="Q1",
        title="一季度例会",
        held_on=date(2026, 4, 10),
        attendees=[chief, clerk],
    )
    save(meeting)
    meeting.deliver_report(unit=farm, reporter=chief, summary="一季度工作述职")
    meeting.cast_score(rater=clerk, unit_id=farm.id, score=Decimal("88.5"))
    meeting.comment_review(reviewer=clerk, unit_id=farm.id, comment="巡护有改进")
    save(meeting)
    rectification = Rectification.order(
        cycle=cycle,
        unit=farm,
        requirement="补齐台账",
        deadline=date(2026, 5, 31),
        meeting_id=meeting.id,
    )
    save(rectification)
    rectification.complete(evidence="台账")
    rectification.reject(reason="缺少签字")
    rectification.complete(evidence="补签台账")
    rectification.verify(comment="通过")
    save(rectification)
    award = Award.issue(
        cycle=cycle,
        kind=AwardKind.REWARD,
        basis="一季度排名第一",
        unit=farm,
        stage="Q1",
        points=Decimal("2"),
    )
    save(award)
    award.revoke(reason="数据复核有误")
    save(award)
    cycle.close_stage("Q1", reason="一季度结算")
    save(cycle)
    duty.relieve(effective_to=date(2026, 6, 30), reason="调任")
    farm.release_first_responsible(duty_id=duty.id)
    save(duty, farm)

    finals = {
        a.id: a
        for a in (
            root,
            general,
            farm,
            branch,
            chief,
            clerk,
            cycle,
            duty,
            target,
            problem,
            measure,
            meeting,
            rectification,
            award,
        )
    }
    return [(finals[key], snapshots) for key, snapshots in recorded.items()]


def test_every_aggregate_replays_to_the_state_it_was_saved_with(app: ClosedLoop) -> None:
    saved = build_year(app)
    assert len(saved) == 14
    for final, _ in saved:
        assert app.get_aggregate(final.id) == final, type(final).__name__


def test_state_at_each_saved_version_replays_exactly(app: ClosedLoop) -> None:
    for _, snapshots in build_year(app):
        for snapshot in snapshots:
            assert app.get_aggregate(snapshot.id, version=snapshot.version) == snapshot


def test_a_second_process_reads_the_same_states(app: ClosedLoop, store_settings) -> None:
    from closedloop.store import application_env

    saved = build_year(app)
    other = ClosedLoop(env=application_env(store_settings))
    try:
        for final, _ in saved:
            assert other.get_aggregate(final.id) == final
    finally:
        other.close()
