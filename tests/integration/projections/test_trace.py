"""The trace read model: each target's chain agrees with the aggregates, whichever comes first,
and is the same applied in batches of any size as rebuilt from zero."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from closedloop.bootstrap import Runtime, build_runtime
from closedloop.demo import load_demo
from closedloop.domain.awards import Award, AwardKind
from closedloop.domain.context import acting_as
from closedloop.domain.duties import Duty, DutyTier
from closedloop.domain.measures import Measure
from closedloop.domain.meetings import Meeting
from closedloop.domain.problems import Problem, ProblemSource, Severity
from closedloop.domain.rectifications import Rectification
from closedloop.domain.targets import Direction, EffectMethod, Indicator, Target
from closedloop.domain.units import UnitKind
from closedloop.projections.base import ProjectionRunner
from closedloop.projections.trace import Trace, target_trace
from closedloop.settings import Settings
from closedloop.store.positions import event_positions

CST = timezone(timedelta(hours=8))
SECTIONS = ("problems", "measures", "duties", "meetings", "rectifications", "effects", "awards")


@pytest.fixture
def runtime(store_settings: Settings) -> Iterator[Runtime]:
    built = build_runtime(store_settings)
    try:
        yield built
    finally:
        built.close()


def table_rows(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, in a total order (whatever the store's order)."""
    return {
        table: sorted(runtime.db.query(f"SELECT * FROM {table}"), key=lambda row: repr(row))
        for table in Trace.tables
    }


@dataclass(frozen=True)
class Loop:
    target: UUID
    other_target: UUID
    farm: UUID
    branch: UUID
    dept: UUID
    gb: UUID
    early_duty: UUID  # farm, before the target was set
    dept_duty: UUID  # dept, before the target was contracted to it
    late_duty: UUID  # branch, after the target was set
    other_duty: UUID  # a unit the target does not concern
    meeting: UUID  # Q1, the farm reported before the target was set
    next_year_meeting: UUID
    p1: UUID  # for the target, dispatched and resolved
    p2: UUID  # no target
    p3: UUID  # for the other target
    m1: UUID  # against p1
    m2: UUID  # for the target
    m3: UUID  # against p2 only
    r1: UUID  # for p1
    r2: UUID  # for the target
    r3: UUID  # neither
    early_award: UUID  # farm, before the target was set
    late_award: UUID  # branch
    person_award: UUID
    dept_award: UUID
    next_year_award: UUID


def record_loop(runtime: Runtime) -> Loop:
    """A loop recorded in an order that makes the trace link items in both directions."""
    s = runtime.service
    with acting_as("tester"):
        committee = s.register_unit(name="党委", kind=UnitKind.COMMITTEE).id
        gb = s.register_unit(
            name="机关党总支", kind=UnitKind.GENERAL_BRANCH, parent_id=committee
        ).id
        branch = s.register_unit(name="办公室党支部", kind=UnitKind.BRANCH, parent_id=gb).id
        farm = s.register_unit(name="北山林场", kind=UnitKind.GRASSROOTS, parent_id=committee).id
        dept = s.register_unit(name="组织人事科", kind=UnitKind.DEPARTMENT, parent_id=committee).id
        secretary = s.register_person(name="张建国", unit_id=committee).id
        gb_secretary = s.register_person(name="刘洋", unit_id=gb).id
        clerk = s.register_person(name="吴静", unit_id=branch).id
        farm_head = s.register_person(name="邓志强", unit_id=farm).id
        officer = s.register_person(name="朱慧", unit_id=dept).id
        cycle = s.open_cycle(year=2026, name="2026").id
        next_cycle = s.open_cycle(year=2027, name="2027").id
        early_duty = s.assign_duty(
            person_id=farm_head,
            unit_id=farm,
            tier=DutyTier.FIRST_RESPONSIBLE,
            effective_from=date(2026, 1, 1),
        ).id
        dept_duty = s.assign_duty(
            person_id=officer,
            unit_id=dept,
            tier=DutyTier.FIRST_RESPONSIBLE,
            effective_from=date(2026, 1, 1),
        ).id
        other_duty = s.assign_duty(
            person_id=secretary,
            unit_id=committee,
            tier=DutyTier.OVERALL_LEADERSHIP,
            effective_from=date(2026, 1, 1),
        ).id
        meeting = s.convene_meeting(
            cycle_id=cycle,
            stage="Q1",
            title="一季度例会",
            held_on=date(2026, 3, 30),
            attendee_ids=[secretary, officer],
        ).id
        s.deliver_report(meeting, unit_id=farm, reporter_id=farm_head, summary="一季度述职")
        s.cast_score(meeting, rater_id=secretary, unit_id=farm, score=Decimal("90"))
        s.deliver_report(meeting, unit_id=dept, reporter_id=officer, summary="科室述职")
        s.cast_score(meeting, rater_id=secretary, unit_id=dept, score=Decimal("85"))
        early_award = s.issue_award(
            cycle_id=cycle, kind=AwardKind.REWARD, basis="例会第一", unit_id=farm, stage="Q1"
        ).id
        indicator = Indicator.quantitative(
            metric="学时", target_value=Decimal("40"), direction=Direction.HIGHER_IS_BETTER
        )
        target = s.set_common_target(
            cycle_id=cycle,
            title="学习学时达标",
            indicator=indicator,
            points=Decimal("10"),
            applies_to=[farm, branch],
        ).id
        other_target = s.set_common_target(
            cycle_id=cycle,
            title="作风建设",
            indicator=indicator,
            points=Decimal("5"),
            applies_to=[dept],
        ).id
        s.set_milestones(target, milestones={"Q1": Decimal("10"), "Q4": Decimal("40")})
        late_duty = s.assign_duty(
            person_id=clerk,
            unit_id=branch,
            tier=DutyTier.SPECIFIC_RESPONSIBLE,
            effective_from=date(2026, 2, 1),
        ).id
        s.contract_target(
            target, lead_unit_id=dept, responsible_unit_ids=[gb], responsible_leader_id=secretary
        )
        s.assign_duty(
            person_id=gb_secretary,
            unit_id=gb,
            tier=DutyTier.DIRECT_RESPONSIBLE,
            effective_from=date(2026, 2, 1),
        )
        p1 = s.find_problem(
            cycle_id=cycle,
            unit_id=branch,
            title="学习记录不全",
            source=ProblemSource.SWEEP,
            severity=Severity.PROMINENT,
            target_id=target,
            found_at=datetime(2026, 2, 10, 9, tzinfo=CST),
        ).id
        p2 = s.find_problem(
            cycle_id=cycle, unit_id=branch, title="与目标无关", source=ProblemSource.SELF_CHECK
        ).id
        p3 = s.find_problem(
            cycle_id=cycle,
            unit_id=dept,
            title="作风问题",
            source=ProblemSource.INSPECTION,
            target_id=other_target,
        ).id
        s.dispatch_problem(p1, to_unit_id=farm, requirement="补齐记录", deadline=date(2026, 3, 1))
        s.escalate_problem(p1, leader_id=secretary, reason="突出问题")
        m1 = s.adopt_measure(
            cycle_id=cycle,
            title="建立台账",
            deadline=date(2026, 6, 30),
            lead_unit_id=branch,
            responsible_unit_ids=[branch],
            responsible_leader_id=clerk,
            problem_ids=[p1, p2],
        ).id
        m2 = s.adopt_measure(
            cycle_id=cycle,
            title="集中培训",
            deadline=date(2026, 9, 30),
            lead_unit_id=dept,
            responsible_unit_ids=[farm, branch],
            responsible_leader_id=secretary,
            target_id=target,
        ).id
        m3 = s.adopt_measure(
            cycle_id=cycle,
            title="自查整改",
            deadline=date(2026, 6, 30),
            lead_unit_id=branch,
            responsible_unit_ids=[branch],
            responsible_leader_id=clerk,
            problem_ids=[p2],
        ).id
        s.report_measure_progress(m1, percent=50, note="过半")
        s.complete_measure(m1, evidence="台账已建")
        s.cancel_measure(m3, reason="并入其他措施")
        s.resolve_problem(p1, evidence="已补齐", resolved_at=datetime(2026, 2, 28, tzinfo=CST))
        r1 = s.order_rectification(
            cycle_id=cycle,
            unit_id=branch,
            requirement="规范学习记录",
            deadline=date(2026, 5, 31),
            problem_id=p1,
        ).id
        r2 = s.order_rectification(
            cycle_id=cycle,
            unit_id=farm,
            requirement="补学",
            deadline=date(2026, 5, 31),
            target_id=target,
        ).id
        r3 = s.order_rectification(
            cycle_id=cycle,
            unit_id=dept,
            requirement="例会点评整改",
            deadline=date(2026, 5, 31),
            meeting_id=meeting,
        ).id
        s.complete_rectification(r1, evidence="已规范")
        s.reject_rectification(r1, reason="不完整")
        s.complete_rectification(r1, evidence="已完善")
        s.verify_rectification(r1, comment="合格")
        for unit, result in ((farm, "12"), (branch, "9")):
            s.confirm_effect(
                target,
                stage="Q1",
                method=EffectMethod.SELF_ASSESSMENT,
                unit_id=unit,
                result=Decimal(result),
                evidence="自查表",
            )
        s.confirm_effect(
            target,
            stage="Q1",
            method=EffectMethod.SELF_ASSESSMENT,
            unit_id=branch,
            result=Decimal("10"),
            evidence="更正",
            reason="漏计一次",
        )
        late_award = s.issue_award(
            cycle_id=cycle, kind=AwardKind.PENALTY, basis="整改不力", unit_id=branch
        ).id
        s.revoke_award(late_award, reason="复核撤销")
        person_award = s.issue_award(
            cycle_id=cycle, kind=AwardKind.REWARD, basis="个人先进", person_id=clerk
        ).id
        dept_award = s.issue_award(
            cycle_id=cycle, kind=AwardKind.REWARD, basis="科室先进", unit_id=dept
        ).id
        next_year_meeting = s.convene_meeting(
            cycle_id=next_cycle,
            stage="Q1",
            title="2027一季度例会",
            held_on=date(2027, 3, 30),
            attendee_ids=[secretary],
        ).id
        s.deliver_report(next_year_meeting, unit_id=farm, reporter_id=farm_head, summary="次年述职")
        next_year_award = s.issue_award(
            cycle_id=next_cycle, kind=AwardKind.REWARD, basis="次年", unit_id=farm
        ).id
        s.relieve_duty(late_duty, effective_to=date(2026, 6, 30), reason="调整分工")
        s.revise_target(target, reason="口径调整", title="党员学习学时达标")
    return Loop(
        target=target,
        other_target=other_target,
        farm=farm,
        branch=branch,
        dept=dept,
        gb=gb,
        early_duty=early_duty,
        dept_duty=dept_duty,
        late_duty=late_duty,
        other_duty=other_duty,
        meeting=meeting,
        next_year_meeting=next_year_meeting,
        p1=p1,
        p2=p2,
        p3=p3,
        m1=m1,
        m2=m2,
        m3=m3,
        r1=r1,
        r2=r2,
        r3=r3,
        early_award=early_award,
        late_award=late_award,
        person_award=person_award,
        dept_award=dept_award,
        next_year_award=next_year_award,
    )


def ids(trace: dict[str, Any], section: str) -> set[str]:
    return {item["id"] for item in trace[section]}


def test_a_targets_chain_links_items_whichever_comes_first(runtime: Runtime) -> None:
    loop = record_loop(runtime)
    runtime.projections.catch_up()
    trace = target_trace(runtime.db, loop.target)
    assert trace is not None
    assert trace["title"] == "党员学习学时达标"
    assert ids(trace, "problems") == {str(loop.p1)}
    assert ids(trace, "measures") == {str(loop.m1), str(loop.m2)}
    duties = ids(trace, "duties")
    # Before and after the target was set; the lead unit's duty, linked when it was contracted.
    assert {str(loop.early_duty), str(loop.late_duty), str(loop.dept_duty)} <= duties
    assert str(loop.other_duty) not in duties
    assert len(duties) == 4  # and the responsible general branch's, assigned after the contract
    assert ids(trace, "meetings") == {f"{loop.meeting}/{loop.farm}"}  # not dept, not 2027
    assert ids(trace, "rectifications") == {str(loop.r1), str(loop.r2)}
    assert ids(trace, "awards") == {str(loop.early_award), str(loop.late_award)}
    effects = {(e["unit_id"], e["result"], e["status"]) for e in trace["effects"]}
    assert effects == {(str(loop.farm), "12", "confirmed"), (str(loop.branch), "10", "corrected")}
    assert [e["type"] for e in trace["events"]] == [
        "TargetSet",
        "MilestonesSet",
        "TargetContracted",
        "TargetRevised",
    ]

    problem = trace["problems"][0]
    assert problem["status"] == "resolved"
    assert problem["dispatched_to"] == str(loop.farm)
    assert [e["type"] for e in problem["events"]] == [
        "ProblemFound",
        "ProblemDispatched",
        "ProblemEscalated",
        "ProblemResolved",
    ]
    assert all(e["actor"] == "tester" for e in problem["events"])
    measures = {m["id"]: m for m in trace["measures"]}
    assert measures[str(loop.m1)]["status"] == "completed"
    assert measures[str(loop.m1)]["progress"] == 100
    rectification = next(r for r in trace["rectifications"] if r["id"] == str(loop.r1))
    assert rectification["status"] == "verified"
    assert rectification["rejections"] == 1
    meeting = trace["meetings"][0]
    assert meeting["scores"] == {
        str(runtime.service.get(Meeting, loop.meeting).attendee_ids[0]): "90"
    }
    assert [e["type"] for e in meeting["events"]] == ["ReportDelivered", "ScoreCast"]
    awards = {a["id"]: a["status"] for a in trace["awards"]}
    assert awards[str(loop.late_award)] == "revoked"
    late = next(d for d in trace["duties"] if d["id"] == str(loop.late_duty))
    assert (late["status"], late["effective_to"]) == ("relieved", "2026-06-30")

    other = target_trace(runtime.db, loop.other_target)
    assert other is not None
    assert ids(other, "problems") == {str(loop.p3)}
    assert ids(other, "duties") == {str(loop.dept_duty)}
    assert ids(other, "meetings") == {f"{loop.meeting}/{loop.dept}"}
    assert ids(other, "awards") == {str(loop.dept_award)}
    assert target_trace(runtime.db, loop.p1) is None


def expected_chain(runtime: Runtime, target_id: UUID) -> dict[str, dict[str, list[int]]]:
    """Each section's items and their event positions, computed from the aggregates."""
    service = runtime.service
    target = service.get(Target, target_id)
    aggregates = [
        service.get_aggregate(i)
        for i in dict.fromkeys(
            n.originator_id for n in service.recorder.select_notifications(1, 10**6)
        )
    ]

    def positions(aggregate_id: UUID) -> list[int]:
        return sorted(event_positions(runtime.db, runtime.events_table, aggregate_id).values())

    def of(kind: type[Any]) -> list[Any]:
        return [a for a in aggregates if isinstance(a, kind)]

    contracted: set[UUID] = set()
    for entry in service.history(target_id):
        if entry.type == "TargetContracted":
            contracted |= {entry.data["lead_unit_id"], *entry.data["responsible_unit_ids"]}
    units = set(target.applies_to)
    problems = {p.id for p in of(Problem) if p.target_id == target_id}
    chain: dict[str, dict[str, list[int]]] = {
        "problems": {str(p): positions(p) for p in problems},
        "measures": {
            str(m.id): positions(m.id)
            for m in of(Measure)
            if m.target_id == target_id or problems & set(m.problem_ids)
        },
        "duties": {str(d.id): positions(d.id) for d in of(Duty) if d.unit_id in units | contracted},
        "rectifications": {
            str(r.id): positions(r.id)
            for r in of(Rectification)
            if r.target_id == target_id or r.problem_id in problems
        },
        "awards": {
            str(a.id): positions(a.id)
            for a in of(Award)
            if a.unit_id in units and a.cycle_id == target.cycle_id
        },
        "meetings": {},
        "effects": {},
    }
    for meeting in of(Meeting):
        if meeting.cycle_id != target.cycle_id:
            continue
        meeting_positions = positions(meeting.id)
        for entry in service.history(meeting.id):
            unit = entry.data.get("unit_id")
            if unit in units:
                chain["meetings"].setdefault(f"{meeting.id}/{unit}", []).append(
                    meeting_positions[entry.version - 1]
                )
    target_positions = positions(target_id)
    for entry in service.history(target_id):
        if entry.type == "EffectConfirmed":
            method = entry.data["method"].value
            key = f"{target_id}/{entry.data['stage']}/{method}/{entry.data['unit_id']}"
            chain["effects"].setdefault(key, []).append(target_positions[entry.version - 1])
    return chain


def actual_chain(runtime: Runtime, target_id: UUID) -> dict[str, dict[str, list[int]]]:
    trace = target_trace(runtime.db, target_id)
    assert trace is not None
    return {
        section: {item["id"]: [e["position"] for e in item["events"]] for item in trace[section]}
        for section in SECTIONS
    }


def test_every_chain_of_the_demo_year_agrees_with_the_aggregates(runtime: Runtime) -> None:
    load_demo(runtime.service)
    runtime.projections.catch_up()
    targets = runtime.db.query("SELECT target_id FROM trace_targets")
    assert len(targets) == len(
        [
            n
            for n in runtime.service.recorder.select_notifications(1, 10**6)
            if n.topic.endswith("Target.TargetSet")
        ]
    )
    linked = 0
    for row in targets:
        target_id = UUID(row["target_id"])
        expected = expected_chain(runtime, target_id)
        assert actual_chain(runtime, target_id) == expected, row["target_id"]
        linked += sum(len(items) for items in expected.values())
    assert linked > 100
    assert runtime.projections.position(Trace.name) == runtime.service.head_position()


def test_the_scenario_agrees_with_the_aggregates(runtime: Runtime) -> None:
    loop = record_loop(runtime)
    runtime.projections.catch_up()
    for target_id in (loop.target, loop.other_target):
        assert actual_chain(runtime, target_id) == expected_chain(runtime, target_id)


@pytest.mark.parametrize("batch_size", [1, 3, 17])
def test_incremental_batches_equal_a_rebuild_from_zero(runtime: Runtime, batch_size: int) -> None:
    small = ProjectionRunner(runtime.service, runtime.db, [Trace()], batch_size=batch_size)
    small.setup()
    record_loop(runtime)
    small.catch_up()
    load_demo(runtime.service, force=True)
    small.catch_up()
    incremental = table_rows(runtime)
    assert runtime.projections.rebuild(Trace()) == runtime.service.head_position()
    assert table_rows(runtime) == incremental
    assert all(incremental.values())
