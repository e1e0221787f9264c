"""The responsibility matrix read model: rows after a scenario, as-of answers before and after a
relief, incremental equal to a rebuild, and the demo year equal to what the aggregates say."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from closedloop.bootstrap import Runtime, build_runtime
from closedloop.demo import load_demo
from closedloop.domain.context import acting_as
from closedloop.domain.duties import Duty, DutyTier
from closedloop.domain.people import Person
from closedloop.domain.targets import Direction, Indicator, Target
from closedloop.domain.units import Unit, UnitKind
from closedloop.projections.base import ProjectionRunner
from closedloop.projections.responsibility import (
    DUTIES,
    ResponsibilityMatrix,
    person_duties,
    responsibility_matrix,
    today,
)
from closedloop.settings import Settings

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


@dataclass(frozen=True)
class Scenario:
    committee: UUID
    gb: UUID
    branch: UUID
    dept: UUID
    farm: UUID
    secretary: UUID
    deputy: UUID
    gb_secretary: UUID
    clerk: UUID
    head: UUID
    successor: UUID
    farm_head: UUID
    head_duty: UUID
    successor_duty: UUID
    cycle: UUID
    common: UUID
    own: UUID
    withdrawn: UUID
    relieved_on: date


def record_scenario(runtime: Runtime) -> Scenario:
    """committee ─┬─ gb ─── branch; ├─ dept (head relieved, successor); └─ farm.

    Duty dates are around today, so "before" and "after" the relief hold on any test day.
    """
    service = runtime.service
    start = today() - timedelta(days=60)
    relieved_on = today() + timedelta(days=10)
    with acting_as("tester"):
        committee = service.register_unit(name="党委", kind=UnitKind.COMMITTEE).id
        gb = service.register_unit(
            name="机关党总支", kind=UnitKind.GENERAL_BRANCH, parent_id=committee
        ).id
        branch = service.register_unit(name="办公室党支部", kind=UnitKind.BRANCH, parent_id=gb).id
        dept = service.register_unit(
            name="组织人事科", kind=UnitKind.DEPARTMENT, parent_id=committee
        ).id
        farm = service.register_unit(
            name="北山林场", kind=UnitKind.GRASSROOTS, parent_id=committee
        ).id

        def person(name: str, unit: UUID) -> UUID:
            return service.register_person(name=name, unit_id=unit).id

        secretary = person("张建国", committee)
        deputy = person("李卫东", committee)
        gb_secretary = person("刘洋", gb)
        clerk = person("吴静", branch)
        head = person("朱慧", dept)
        successor = person("方晴", dept)
        farm_head = person("邓志强", farm)

        def duty(who: UUID, unit: UUID, tier: DutyTier, since: date) -> UUID:
            return service.assign_duty(
                person_id=who, unit_id=unit, tier=tier, effective_from=since
            ).id

        duty(secretary, committee, DutyTier.OVERALL_LEADERSHIP, start)
        duty(gb_secretary, gb, DutyTier.DIRECT_RESPONSIBLE, start)
        duty(clerk, branch, DutyTier.SPECIFIC_RESPONSIBLE, start)
        duty(farm_head, farm, DutyTier.FIRST_RESPONSIBLE, start)
        head_duty = duty(head, dept, DutyTier.FIRST_RESPONSIBLE, start)
        service.relieve_duty(head_duty, effective_to=relieved_on, reason="交流任职")
        successor_duty = duty(
            successor, dept, DutyTier.FIRST_RESPONSIBLE, relieved_on + timedelta(days=1)
        )
        cycle = service.open_cycle(year=2026, name="2026年度").id
        common = service.set_common_target(
            cycle_id=cycle,
            title="党员教育覆盖率",
            indicator=INDICATOR,
            points=Decimal(10),
            applies_to=[dept, farm, branch],
        ).id
        service.contract_target(
            common,
            lead_unit_id=farm,
            responsible_unit_ids=[farm],
            responsible_leader_id=secretary,
        )
        # Re-contracted: the latest contract in force wins.
        service.contract_target(
            common,
            lead_unit_id=dept,
            responsible_unit_ids=[branch, farm],
            responsible_leader_id=deputy,
            reason="调整包抓",
        )
        own = service.set_unit_target(
            cycle_id=cycle, unit_id=farm, title="林场特色", indicator=INDICATOR, points=Decimal(5)
        ).id
        withdrawn = service.set_unit_target(
            cycle_id=cycle, unit_id=farm, title="撤回的目标", indicator=INDICATOR, points=Decimal(5)
        ).id
        service.withdraw_target(withdrawn, reason="合并到共性目标")
        service.revise_target(own, title="林场特色品牌", reason="名称调整")
    return Scenario(
        committee=committee,
        gb=gb,
        branch=branch,
        dept=dept,
        farm=farm,
        secretary=secretary,
        deputy=deputy,
        gb_secretary=gb_secretary,
        clerk=clerk,
        head=head,
        successor=successor,
        farm_head=farm_head,
        head_duty=head_duty,
        successor_duty=successor_duty,
        cycle=cycle,
        common=common,
        own=own,
        withdrawn=withdrawn,
        relieved_on=relieved_on,
    )


def holders(entry: dict[str, Any]) -> dict[str, list[str]]:
    return {
        tier: [holder["name"] for holder in held] for tier, held in entry["duty_holders"].items()
    }


def test_matrix_after_a_scenario_before_and_after_a_relief(runtime: Runtime) -> None:
    s = record_scenario(runtime)
    runtime.projections.catch_up()
    matrix = responsibility_matrix(runtime.db, cycle_id=s.cycle, as_of=today())
    assert [entry["target_id"] for entry in matrix] == [str(s.common), str(s.own)]
    common, own = matrix
    assert common["title"] == "党员教育覆盖率"
    assert common["cycle_id"] == str(s.cycle)
    assert common["lead_unit"] == {"id": str(s.dept), "name": "组织人事科"}
    assert common["responsible_units"] == [
        {"id": str(s.branch), "name": "办公室党支部"},
        {"id": str(s.farm), "name": "北山林场"},
    ]
    assert common["responsible_leader"] == {"id": str(s.deputy), "name": "李卫东"}
    assert holders(common) == {
        "overall_leadership": ["张建国"],
        "first_responsible": ["朱慧", "邓志强"],
        "direct_responsible": ["刘洋"],
        "specific_responsible": ["吴静"],
    }
    # Not contracted: listed, with nobody carrying it yet; the revised title shows.
    assert own["title"] == "林场特色品牌"
    assert own["contracted"] is False
    assert own["lead_unit"] is None and own["responsible_leader"] is None
    assert all(not held for held in own["duty_holders"].values())

    after = responsibility_matrix(
        runtime.db, cycle_id=s.cycle, as_of=s.relieved_on + timedelta(days=1)
    )
    assert holders(after[0])["first_responsible"] == ["方晴", "邓志强"]
    on_the_day = responsibility_matrix(runtime.db, cycle_id=s.cycle, as_of=s.relieved_on)
    assert holders(on_the_day[0])["first_responsible"] == ["朱慧", "邓志强"]

    # Before the targets were set (recorded today, effective today): nothing was in force.
    recorded_on = datetime.now(UTC).date()
    assert (
        responsibility_matrix(runtime.db, cycle_id=s.cycle, as_of=recorded_on - timedelta(days=1))
        == []
    )


def test_person_duties_as_of_a_date(runtime: Runtime) -> None:
    s = record_scenario(runtime)
    runtime.projections.catch_up()
    before = person_duties(runtime.db, person_id=s.head, as_of=today())
    assert before is not None
    assert before["name"] == "朱慧"
    assert before["duties"] == [
        {
            "duty_id": str(s.head_duty),
            "unit_id": str(s.dept),
            "unit_name": "组织人事科",
            "tier": "first_responsible",
            "effective_from": (today() - timedelta(days=60)).isoformat(),
            "effective_to": s.relieved_on.isoformat(),
            "active": True,
        }
    ]
    later = s.relieved_on + timedelta(days=1)
    after = person_duties(runtime.db, person_id=s.head, as_of=later)
    assert after is not None and [d["active"] for d in after["duties"]] == [False]
    successor = person_duties(runtime.db, person_id=s.successor, as_of=today())
    assert successor is not None and successor["duties"] == []
    successor = person_duties(runtime.db, person_id=s.successor, as_of=later)
    assert successor is not None
    assert [(d["duty_id"], d["active"]) for d in successor["duties"]] == [
        (str(s.successor_duty), True)
    ]
    assert person_duties(runtime.db, person_id=s.committee, as_of=today()) is None


def test_the_tree_as_of_a_date_places_moved_units(runtime: Runtime) -> None:
    s = record_scenario(runtime)
    with acting_as("tester"):
        other_gb = runtime.service.register_unit(
            name="林场党总支", kind=UnitKind.GENERAL_BRANCH, parent_id=s.committee
        ).id
        other_secretary = runtime.service.register_person(name="孙丽娟", unit_id=other_gb).id
        runtime.service.assign_duty(
            person_id=other_secretary,
            unit_id=other_gb,
            tier=DutyTier.DIRECT_RESPONSIBLE,
            effective_from=today() - timedelta(days=1),
        )
        runtime.service.move_unit(s.branch, parent_id=other_gb, reason="机构调整")
    runtime.projections.catch_up()
    (common, _) = responsibility_matrix(runtime.db, cycle_id=s.cycle, as_of=today())
    assert holders(common)["direct_responsible"] == ["孙丽娟"]


def table_rows(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    return {
        table: sorted(runtime.db.query(f"SELECT * FROM {table}"), key=repr)
        for table in ResponsibilityMatrix.tables
    }


def test_incremental_small_batches_equal_a_rebuild_from_zero(runtime: Runtime) -> None:
    small = ProjectionRunner(runtime.service, runtime.db, [ResponsibilityMatrix()], batch_size=3)
    small.setup()
    s = record_scenario(runtime)
    small.catch_up()
    load_demo(runtime.service, force=True)
    with acting_as("tester"):
        runtime.service.move_unit(s.branch, parent_id=s.committee, reason="直属党委")
        runtime.service.transfer_person(s.clerk, unit_id=s.gb, reason="调任")
    small.catch_up()
    incremental = table_rows(runtime)
    assert len(incremental[DUTIES]) > 30
    runtime.projections.rebuild(ResponsibilityMatrix())
    assert table_rows(runtime) == incremental
    assert runtime.projections.position(ResponsibilityMatrix.name) == (
        runtime.service.head_position()
    )


# --- the demo year, checked against the aggregates ------------------------------------------


def aggregates(runtime: Runtime) -> list[Any]:
    ids = {n.originator_id for n in runtime.service.recorder.select_notifications(1, 10**6)}
    return [runtime.service.get_aggregate(i) for i in ids]


def expected_matrix(runtime: Runtime, cycle_id: UUID, day: date) -> dict[str, dict[str, Any]]:
    """The matrix computed straight from the aggregates' current state."""
    loaded = aggregates(runtime)
    units = {a.id: a for a in loaded if isinstance(a, Unit)}
    people = {a.id: a for a in loaded if isinstance(a, Person)}
    duties = [a for a in loaded if isinstance(a, Duty) and a.active_on(day)]
    result = {}
    for target in loaded:
        if not isinstance(target, Target) or target.cycle_id != cycle_id or target.withdrawn:
            continue
        contract = target.contract
        if contract is None:
            result[str(target.id)] = {"title": target.title, "lead": None}
            continue
        concerned = {contract.lead_unit_id, *contract.responsible_unit_ids}
        lineage = set(concerned)
        for unit_id in concerned:
            parent = units[unit_id].parent_id
            while parent is not None:
                lineage.add(parent)
                parent = units[parent].parent_id
        by_tier: dict[str, set[tuple[str, str]]] = {tier.value: set() for tier in DutyTier}
        for duty in duties:
            where = concerned if duty.tier is DutyTier.FIRST_RESPONSIBLE else lineage
            if duty.unit_id in where:
                by_tier[duty.tier.value].add((str(duty.person_id), people[duty.person_id].name))
        result[str(target.id)] = {
            "title": target.title,
            "lead": str(contract.lead_unit_id),
            "responsible": [str(u) for u in contract.responsible_unit_ids],
            "leader": (
                str(contract.responsible_leader_id),
                people[contract.responsible_leader_id].name,
            ),
            "holders": by_tier,
        }
    return result


def test_demo_year_matrix_equals_the_aggregates(runtime: Runtime) -> None:
    summary = load_demo(runtime.service)
    runtime.projections.catch_up()
    day = today()
    expected = expected_matrix(runtime, summary.cycle_id, day)
    matrix = responsibility_matrix(runtime.db, cycle_id=summary.cycle_id, as_of=day)
    assert len(matrix) == len(expected) > 5
    for entry in matrix:
        want = expected[entry["target_id"]]
        assert entry["title"] == want["title"]
        assert entry["contracted"] is (want["lead"] is not None)
        if want["lead"] is None:
            assert entry["lead_unit"] is None
            continue
        assert entry["lead_unit"]["id"] == want["lead"]
        assert [u["id"] for u in entry["responsible_units"]] == want["responsible"]
        leader = entry["responsible_leader"]
        assert (leader["id"], leader["name"]) == want["leader"]
        got = {
            tier: {(h["person_id"], h["name"]) for h in held}
            for tier, held in entry["duty_holders"].items()
        }
        assert got == want["holders"], entry["title"]
    # Every tier shows up somewhere in the demo year.
    assert all(any(e["duty_holders"][tier.value] for e in matrix) for tier in DutyTier)


def test_demo_rotation_before_and_after_the_relief(runtime: Runtime) -> None:
    load_demo(runtime.service)
    runtime.projections.catch_up()
    people = {
        row["name"]: UUID(row["id"])
        for row in runtime.db.query("SELECT id, name FROM responsibility_matrix_people")
    }
    relieved, successor = people["曹建军"], people["彭宇"]  # relieved 15 April, successor 16 April
    for day, relieved_active, successor_duties in (
        (date(2026, 4, 10), True, []),
        (date(2026, 4, 15), True, []),
        (date(2026, 4, 20), False, [True]),
    ):
        found = person_duties(runtime.db, person_id=relieved, as_of=day)
        assert found is not None
        assert [d["active"] for d in found["duties"]] == [relieved_active]
        assert found["duties"][0]["effective_to"] == "2026-04-15"
        after = person_duties(runtime.db, person_id=successor, as_of=day)
        assert after is not None
        assert [d["active"] for d in after["duties"]] == successor_duties
