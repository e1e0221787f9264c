"""The supervision read model: items after a scenario, overdue judged against as_of, subtree,
person and due-window filters, incremental equal to a rebuild, the demo year equal to what the
aggregates say."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from closedloop.bootstrap import Runtime, build_runtime
from closedloop.demo import load_demo
from closedloop.domain.context import acting_as
from closedloop.domain.cycles import Cycle
from closedloop.domain.duties import DutyTier
from closedloop.domain.measures import Measure, MeasureStatus
from closedloop.domain.problems import Problem, ProblemSource, ProblemStatus, Severity
from closedloop.domain.rectifications import Rectification, RectificationStatus
from closedloop.domain.targets import Direction, EffectMethod, Indicator, Target
from closedloop.domain.units import Unit, UnitKind
from closedloop.projections.base import ProjectionRunner
from closedloop.projections.supervision import Supervision, supervision_items
from closedloop.settings import Settings

INDICATOR = Indicator.quantitative(
    metric="覆盖率", target_value=Decimal("95"), direction=Direction.HIGHER_IS_BETTER
)
APRIL_FIRST = date(2026, 4, 1)


@pytest.fixture
def runtime(store_settings: Settings) -> Iterator[Runtime]:
    built = build_runtime(store_settings)
    try:
        yield built
    finally:
        built.close()


@dataclass(frozen=True)
class Scenario:
    committee: UUID
    gb: UUID
    branch: UUID
    gb2: UUID
    branch2: UUID
    dept: UUID
    farm: UUID
    secretary: UUID
    deputy: UUID
    farm_head: UUID
    farm_duty: UUID
    cycle: UUID
    common: UUID
    dept_target: UUID
    ids: dict[str, UUID]


def record_scenario(runtime: Runtime) -> Scenario:
    """committee ─┬─ gb ── branch; ├─ gb2 ── branch2; ├─ dept; └─ farm (first responsible)."""
    service = runtime.service
    ids: dict[str, UUID] = {}
    with acting_as("tester"):
        committee = service.register_unit(name="党委", kind=UnitKind.COMMITTEE).id

        def unit(name: str, kind: UnitKind, parent: UUID) -> UUID:
            return service.register_unit(name=name, kind=kind, parent_id=parent).id

        gb = unit("机关党总支", UnitKind.GENERAL_BRANCH, committee)
        branch = unit("办公室党支部", UnitKind.BRANCH, gb)
        gb2 = unit("林场党总支", UnitKind.GENERAL_BRANCH, committee)
        branch2 = unit("北山林场党支部", UnitKind.BRANCH, gb2)
        dept = unit("组织人事科", UnitKind.DEPARTMENT, committee)
        farm = unit("北山林场", UnitKind.GRASSROOTS, committee)
        secretary = service.register_person(name="张建国", unit_id=committee).id
        deputy = service.register_person(name="李卫东", unit_id=committee).id
        farm_head = service.register_person(name="邓志强", unit_id=farm).id
        farm_duty = service.assign_duty(
            person_id=farm_head,
            unit_id=farm,
            tier=DutyTier.FIRST_RESPONSIBLE,
            effective_from=date(2026, 1, 1),
        ).id
        cycle = service.open_cycle(year=2026, name="2026年度").id

        common = service.set_common_target(
            cycle_id=cycle,
            title="党员教育覆盖率",
            indicator=INDICATOR,
            points=Decimal(10),
            applies_to=[farm, branch],
        ).id
        dept_target = service.set_unit_target(
            cycle_id=cycle,
            unit_id=dept,
            title="组织生活规范",
            indicator=INDICATOR,
            points=Decimal(5),
        ).id
        gone = service.set_unit_target(
            cycle_id=cycle, unit_id=farm, title="撤回的目标", indicator=INDICATOR, points=Decimal(5)
        ).id
        service.withdraw_target(gone, reason="合并")
        for stage in ("Q1", "Q1"):  # the second is a correction: still one confirmation
            service.confirm_effect(
                common,
                stage=stage,
                method=EffectMethod.SELF_ASSESSMENT,
                unit_id=farm,
                result=Decimal("96"),
                evidence="台账",
                reason="更正",
            )

        def measure(name: str, lead: UUID, leader: UUID, deadline: date) -> UUID:
            ids[name] = service.adopt_measure(
                cycle_id=cycle,
                title=name,
                deadline=deadline,
                lead_unit_id=lead,
                responsible_unit_ids=[lead],
                responsible_leader_id=leader,
                target_id=common,
            ).id
            return ids[name]

        measure("M1", branch, deputy, date(2026, 3, 31))
        service.complete_measure(measure("M2", farm, secretary, date(2026, 6, 30)), evidence="完成")
        service.cancel_measure(measure("M3", farm, secretary, date(2026, 6, 30)), reason="取消")

        def problem(name: str, at: UUID, severity: Severity = Severity.ORDINARY) -> UUID:
            ids[name] = service.find_problem(
                cycle_id=cycle,
                unit_id=at,
                title=name,
                source=ProblemSource.SWEEP,
                severity=severity,
            ).id
            return ids[name]

        def dispatch(problem_id: UUID, to: UUID, deadline: date) -> None:
            service.dispatch_problem(
                problem_id, to_unit_id=to, requirement="整改", deadline=deadline
            )

        dispatch(problem("P1", branch), branch, date(2026, 4, 30))
        service.escalate_problem(problem("P2", farm, Severity.PROMINENT), leader_id=deputy)
        dispatch(problem("P3", farm), farm, date(2026, 2, 28))
        service.resolve_problem(ids["P3"], evidence="已整改")
        service.reopen_problem(ids["P3"], reason="复查不合格")
        dispatch(problem("P4", farm), farm, date(2026, 5, 31))
        service.resolve_problem(ids["P4"], evidence="已整改")
        problem("P5", farm)  # found, never dispatched nor escalated: not supervised

        def rectification(name: str, at: UUID, deadline: date) -> UUID:
            ids[name] = service.order_rectification(
                cycle_id=cycle, unit_id=at, requirement=name, deadline=deadline
            ).id
            return ids[name]

        rectification("R1", farm, date(2026, 4, 15))
        service.complete_rectification(
            rectification("R2", branch2, date(2026, 6, 30)), evidence="e"
        )
        service.reject_rectification(ids["R2"], reason="不彻底")
        service.complete_rectification(rectification("R3", farm, date(2026, 6, 30)), evidence="e")
        service.verify_rectification(ids["R3"])
        service.complete_rectification(rectification("R4", farm, date(2026, 3, 15)), evidence="e")
    return Scenario(
        committee=committee,
        gb=gb,
        branch=branch,
        gb2=gb2,
        branch2=branch2,
        dept=dept,
        farm=farm,
        secretary=secretary,
        deputy=deputy,
        farm_head=farm_head,
        farm_duty=farm_duty,
        cycle=cycle,
        common=common,
        dept_target=dept_target,
        ids=ids,
    )


def names(s: Scenario, found: dict[str, Any]) -> list[str]:
    """Items by scenario name; missing effects as target:stage:unit."""
    by_id = {str(v): k for k, v in s.ids.items()}
    units = {str(s.farm): "farm", str(s.branch): "branch", str(s.dept): "dept"}
    targets = {str(s.common): "common", str(s.dept_target): "dept_target"}
    return [
        f"{targets[i['id']]}:{i['stage']}:{units[i['unit_id']]}"
        if i["kind"] == "missing_effect"
        else by_id[i["id"]]
        for i in found["items"]
    ]


def test_items_after_a_scenario(runtime: Runtime) -> None:
    s = record_scenario(runtime)
    runtime.projections.catch_up()
    found = supervision_items(runtime.db, as_of=APRIL_FIRST)
    # Earliest deadline first, then by kind; no deadline last.
    listed = names(s, found)
    assert listed[:3] == ["P3", "R4", "M1"]
    assert sorted(listed[3:5]) == ["common:Q1:branch", "dept_target:Q1:dept"]
    assert listed[5:] == ["R1", "P1", "R2", "P2"]
    assert found["counts"] == {"measure": 1, "problem": 3, "rectification": 3, "missing_effect": 2}
    assert found["total"] == 9 and found["truncated"] is False
    items = {i["id"] + (i["stage"] or "") + i["unit_id"]: i for i in found["items"]}
    m1 = items[str(s.ids["M1"]) + str(s.branch)]
    assert m1 == {
        "kind": "measure",
        "id": str(s.ids["M1"]),
        "title": "M1",
        "cycle_id": str(s.cycle),
        "unit_id": str(s.branch),
        "stage": None,
        "responsible_person_id": str(s.deputy),
        "status": "adopted",
        "deadline": "2026-03-31",
        "finished": False,
        "overdue": True,
    }
    p2 = items[str(s.ids["P2"]) + str(s.farm)]
    assert (p2["status"], p2["deadline"], p2["overdue"]) == ("escalated", None, False)
    assert p2["responsible_person_id"] == str(s.deputy)
    p3 = items[str(s.ids["P3"]) + str(s.farm)]
    assert (p3["status"], p3["responsible_person_id"]) == ("reopened", str(s.farm_head))
    r1 = items[str(s.ids["R1"]) + str(s.farm)]
    assert (r1["status"], r1["responsible_person_id"]) == ("ordered", str(s.farm_head))
    r2 = items[str(s.ids["R2"]) + str(s.branch2)]
    assert (r2["status"], r2["responsible_person_id"]) == ("ordered", None)
    missing = items[str(s.common) + "Q1" + str(s.branch)]
    assert missing["title"] == "党员教育覆盖率"
    assert (missing["status"], missing["deadline"], missing["overdue"]) == (
        "missing",
        "2026-03-31",
        True,
    )

    finished = supervision_items(runtime.db, as_of=APRIL_FIRST, include_finished=True)
    assert set(names(s, finished)) - set(names(s, found)) == {"M2", "M3", "P4", "R3"}
    statuses = {i["title"]: (i["status"], i["finished"]) for i in finished["items"]}
    assert statuses["M3"] == ("cancelled", True)
    assert statuses["P4"] == ("resolved", True)
    assert statuses["R3"] == ("verified", True)


def test_overdue_is_judged_against_as_of(runtime: Runtime) -> None:
    s = record_scenario(runtime)
    runtime.projections.catch_up()

    def overdue(day: date) -> list[str]:
        return sorted(names(s, supervision_items(runtime.db, as_of=day, overdue=True)))

    assert overdue(date(2026, 1, 15)) == []
    assert overdue(date(2026, 3, 31)) == ["P3", "R4"]  # M1 is due that day; Q1 ends that day
    assert overdue(APRIL_FIRST) == sorted(
        ["P3", "R4", "M1", "common:Q1:branch", "dept_target:Q1:dept"]
    )
    assert overdue(date(2026, 7, 1)) == sorted(
        [
            "P3",
            "R4",
            "M1",
            "P1",
            "R1",
            "R2",
            "common:Q1:branch",
            "dept_target:Q1:dept",
            "common:Q2:farm",
            "common:Q2:branch",
            "dept_target:Q2:dept",
        ]
    )
    not_overdue = supervision_items(runtime.db, as_of=APRIL_FIRST, overdue=False)
    assert sorted(names(s, not_overdue)) == ["P1", "P2", "R1", "R2"]
    assert not_overdue["counts"]["missing_effect"] == 0


def test_filters_unit_subtree_person_kind_cycle_and_due_window(runtime: Runtime) -> None:
    s = record_scenario(runtime)
    runtime.projections.catch_up()

    def query(**filters: Any) -> list[str]:
        return sorted(names(s, supervision_items(runtime.db, as_of=APRIL_FIRST, **filters)))

    assert query(unit_id=s.gb) == ["M1", "P1", "common:Q1:branch"]
    assert query(unit_id=s.branch) == ["M1", "P1", "common:Q1:branch"]
    assert query(unit_id=s.gb2) == ["R2"]
    assert query(unit_id=s.farm) == ["P2", "P3", "R1", "R4"]
    assert len(query(unit_id=s.committee)) == 9
    assert query(person_id=s.deputy) == ["M1", "P2"]
    assert query(person_id=s.farm_head) == ["P3", "R1", "R4"]
    assert query(kind="rectification") == ["R1", "R2", "R4"]
    assert query(kind="missing_effect") == ["common:Q1:branch", "dept_target:Q1:dept"]
    assert query(due_after=APRIL_FIRST, due_before=date(2026, 4, 30)) == ["P1", "R1"]
    assert query(due_before=date(2026, 3, 31), kind="problem") == ["P3"]
    assert query(cycle_id=s.cycle) == query()
    assert query(cycle_id=s.committee) == []
    limited = supervision_items(runtime.db, as_of=APRIL_FIRST, limit=2)
    assert names(s, limited) == ["P3", "R4"]
    assert limited["total"] == 9 and limited["truncated"] is True

    # A general branch moves under another: its branch's items follow it into that subtree.
    # The farm's head is relieved: nobody answers for the farm's rectifications any more.
    with acting_as("tester"):
        runtime.service.move_unit(s.gb, parent_id=s.gb2, reason="机构调整")
        runtime.service.relieve_duty(s.farm_duty, effective_to=date(2026, 4, 1), reason="退休")
    runtime.projections.catch_up()
    assert query(unit_id=s.gb2) == ["M1", "P1", "R2", "common:Q1:branch"]
    assert query(unit_id=s.gb) == ["M1", "P1", "common:Q1:branch"]
    assert query(person_id=s.farm_head) == []


def table_rows(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    return {
        table: sorted(runtime.db.query(f"SELECT * FROM {table}"), key=repr)
        for table in Supervision.tables
    }


def test_incremental_small_batches_equal_a_rebuild_from_zero(runtime: Runtime) -> None:
    small = ProjectionRunner(runtime.service, runtime.db, [Supervision()], batch_size=3)
    small.setup()
    s = record_scenario(runtime)
    small.catch_up()
    load_demo(runtime.service, force=True)
    with acting_as("tester"):
        runtime.service.move_unit(s.gb, parent_id=s.gb2, reason="机构调整")
        runtime.service.register_unit(name="新支部", kind=UnitKind.BRANCH, parent_id=s.branch)
    small.catch_up()
    incremental = table_rows(runtime)
    assert len(incremental["supervision_items"]) > 30
    runtime.projections.rebuild(Supervision())
    assert table_rows(runtime) == incremental
    assert runtime.projections.position(Supervision.name) == runtime.service.head_position()
    # A batch holding a whole year at once gives the same rows too.
    big = ProjectionRunner(runtime.service, runtime.db, [Supervision()], batch_size=100_000)
    big.rebuild(Supervision())
    assert table_rows(runtime) == incremental


# --- the demo year, checked against the aggregates ------------------------------------------


def expected_items(runtime: Runtime, day: date) -> set[tuple[Any, ...]]:
    """Open items on ``day`` computed straight from the aggregates' current state."""
    ids = {n.originator_id for n in runtime.service.recorder.select_notifications(1, 10**6)}
    loaded = [runtime.service.get_aggregate(i) for i in ids]
    units = {a.id: a for a in loaded if isinstance(a, Unit)}
    cycles = {a.id: a for a in loaded if isinstance(a, Cycle)}

    def head(unit_id: UUID) -> str | None:
        first = units[unit_id].first_responsible
        return str(first[1]) if first else None

    def row(kind: str, item_id: UUID, unit_id: UUID, who: Any, status: str, deadline: Any) -> Any:
        due = deadline.isoformat() if deadline else None
        overdue = due is not None and due < day.isoformat()
        return (kind, str(item_id), None, str(unit_id), who, status, due, overdue)

    result: set[tuple[Any, ...]] = set()
    for a in loaded:
        if isinstance(a, Measure) and a.status is MeasureStatus.ADOPTED:
            result.add(
                row(
                    "measure",
                    a.id,
                    a.lead_unit_id,
                    str(a.responsible_leader_id),
                    "adopted",
                    a.deadline,
                )
            )
        elif isinstance(a, Problem) and (a.dispatched_to or a.escalated_to):
            if a.status is ProblemStatus.RESOLVED:
                continue
            unit_id = a.dispatched_to or a.unit_id
            who = str(a.escalated_to) if a.escalated_to else head(unit_id)
            status = a.status.value
            if a.status is ProblemStatus.OPEN and a.escalated_to:
                status = "escalated"
            result.add(row("problem", a.id, unit_id, who, status, a.deadline))
        elif isinstance(a, Rectification) and a.status is not RectificationStatus.VERIFIED:
            result.add(
                row("rectification", a.id, a.unit_id, head(a.unit_id), a.status.value, a.deadline)
            )
        elif isinstance(a, Target) and not a.withdrawn:
            confirmed = {(stage, unit) for (stage, _, unit) in a.effects}
            for stage in cycles[a.cycle_id].stages:
                if stage.ends_on >= day:
                    continue
                for unit_id in a.applies_to:
                    if (stage.key, unit_id) not in confirmed:
                        result.add(
                            (
                                "missing_effect",
                                str(a.id),
                                stage.key,
                                str(unit_id),
                                head(unit_id),
                                "missing",
                                stage.ends_on.isoformat(),
                                True,
                            )
                        )
    return result


@pytest.mark.parametrize("day", [date(2026, 3, 1), date(2026, 5, 1), date(2026, 11, 25)])
def test_demo_year_items_equal_the_aggregates(runtime: Runtime, day: date) -> None:
    load_demo(runtime.service)
    runtime.projections.catch_up()
    found = supervision_items(runtime.db, as_of=day, limit=10_000)
    got = {
        (
            i["kind"],
            i["id"],
            i["stage"],
            i["unit_id"],
            i["responsible_person_id"],
            i["status"],
            i["deadline"],
            i["overdue"],
        )
        for i in found["items"]
    }
    assert len(got) == len(found["items"]) == found["total"]
    expected = expected_items(runtime, day)
    assert got == expected
    assert {kind for kind, *_ in got} >= {"measure", "problem", "rectification"}
    if day.month == 11:
        assert found["counts"]["missing_effect"] > 0

    # The subtree of 国有林场党总支, from the aggregates' tree.
    ids = {n.originator_id for n in runtime.service.recorder.select_notifications(1, 10**6)}
    units = {
        a.id: a for a in (runtime.service.get_aggregate(i) for i in ids) if isinstance(a, Unit)
    }
    (farms,) = (u for u in units.values() if u.name == "国有林场党总支")

    def under(unit_id: UUID) -> bool:
        current: UUID | None = unit_id
        while current is not None:
            if current == farms.id:
                return True
            current = units[current].parent_id
        return False

    subtree = supervision_items(runtime.db, as_of=day, unit_id=farms.id, limit=10_000)
    assert {(i["kind"], i["id"], i["stage"], i["unit_id"]) for i in subtree["items"]} == {
        item[:4] for item in expected if under(UUID(item[3]))
    }
