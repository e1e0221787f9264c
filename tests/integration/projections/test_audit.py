"""The audit index: every event exactly once, with who, what, when and which units; filtered and
paged queries; the same applied in batches of any size as rebuilt from zero."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from closedloop.bootstrap import Runtime, build_runtime
from closedloop.demo import load_demo
from closedloop.domain.access import AccessToken, Role
from closedloop.domain.awards import AwardKind
from closedloop.domain.base import LoopEvent
from closedloop.domain.context import acting_as
from closedloop.domain.duties import DutyTier
from closedloop.domain.problems import ProblemSource, Severity
from closedloop.domain.targets import Direction, Indicator
from closedloop.domain.units import UnitKind
from closedloop.projections.audit import AuditIndex, query_events
from closedloop.projections.base import ProjectionRunner
from closedloop.settings import Settings

CST = timezone(timedelta(hours=8))


@pytest.fixture
def runtime(store_settings: Settings) -> Iterator[Runtime]:
    built = build_runtime(store_settings)
    try:
        yield built
    finally:
        built.close()


def recorded_events(runtime: Runtime) -> list[tuple[int, LoopEvent]]:
    decode = runtime.service.mapper.to_domain_event
    return [(n.id, decode(n)) for n in runtime.service.recorder.select_notifications(1, 10**6)]


def everything(runtime: Runtime, **filters: Any) -> list[dict[str, Any]]:
    return query_events(runtime.db, limit=10**6, **filters)


def table_rows(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, in a total order (whatever the store's order)."""
    return {
        table: sorted(runtime.db.query(f"SELECT * FROM {table}"), key=lambda row: repr(row))
        for table in AuditIndex.tables
    }


def test_every_event_of_the_demo_year_is_indexed_exactly_once(runtime: Runtime) -> None:
    load_demo(runtime.service)
    runtime.projections.catch_up()
    indexed = everything(runtime)
    events = recorded_events(runtime)
    assert [item["position"] for item in indexed] == [position for position, _ in events]
    for item, (position, event) in zip(indexed, events, strict=True):
        assert item["position"] == position
        assert item["aggregate_id"] == str(event.originator_id)
        assert item["aggregate_type"] == type(event).__qualname__.split(".")[0]
        assert item["type"] == type(event).__name__
        assert item["version"] == event.originator_version
        assert item["actor"] == event.actor
        assert item["correlation_id"] == event.correlation_id
        assert item["reason"] == event.reason
        assert datetime.fromisoformat(item["recorded_at"]) == event.timestamp
        assert datetime.fromisoformat(item["effective_at"]) == event.effective_time
        assert isinstance(item["data"], dict)
    types = {item["aggregate_type"] for item in indexed}
    assert {"Unit", "Person", "Target", "Problem", "Meeting", "AccessToken"} <= types
    resolved = [item for item in indexed if item["type"] == "ProblemResolved"]
    assert resolved and all(item["data"]["evidence"] for item in resolved)
    points = [item["data"]["points"] for item in indexed if item["type"] == "TargetSet"]
    assert points and all(isinstance(p, str) for p in points)  # Decimals as strings
    assert runtime.projections.position(AuditIndex.name) == runtime.service.head_position()


def test_a_tokens_digest_is_never_stored(runtime: Runtime) -> None:
    with acting_as("tester"):
        unit = runtime.service.register_unit(name="党委", kind=UnitKind.COMMITTEE).id
        leader, _ = runtime.service.issue_token(name="leader", role=Role.LEADER, unit_id=unit)
        admin, _ = runtime.service.issue_token(name="admin", role=Role.ADMIN)
        runtime.service.revoke_token(admin.id, reason="离岗")
    runtime.projections.catch_up()
    digests = [
        runtime.service.get(AccessToken, token).token_digest for token in (leader.id, admin.id)
    ]
    tokens = everything(runtime, aggregate_id=leader.id) + everything(
        runtime, aggregate_id=admin.id
    )
    assert [item["type"] for item in tokens] == ["TokenIssued", "TokenIssued", "TokenRevoked"]
    assert tokens[0]["data"] == {"name": "leader", "role": "leader", "unit_id": str(unit)}
    assert tokens[0]["units"] == [str(unit)]
    assert tokens[2]["reason"] == "离岗"
    for rows in table_rows(runtime).values():
        text = repr(rows)
        assert "token_digest" not in text
        assert not any(digest in text for digest in digests)


def test_the_units_an_event_concerns(runtime: Runtime) -> None:
    s = runtime.service
    with acting_as("tester"):
        committee = s.register_unit(name="党委", kind=UnitKind.COMMITTEE).id
        gb = s.register_unit(name="总支", kind=UnitKind.GENERAL_BRANCH, parent_id=committee).id
        gb2 = s.register_unit(name="总支二", kind=UnitKind.GENERAL_BRANCH, parent_id=committee).id
        branch = s.register_unit(name="支部", kind=UnitKind.BRANCH, parent_id=gb).id
        farm = s.register_unit(name="林场", kind=UnitKind.GRASSROOTS, parent_id=committee).id
        dept = s.register_unit(name="科室", kind=UnitKind.DEPARTMENT, parent_id=committee).id
        leader = s.register_person(name="书记", unit_id=committee).id
        clerk = s.register_person(name="干事", unit_id=branch).id
        cycle = s.open_cycle(year=2026, name="2026").id
        target = s.set_common_target(
            cycle_id=cycle,
            title="目标",
            indicator=Indicator.quantitative(
                metric="m", target_value=Decimal(1), direction=Direction.HIGHER_IS_BETTER
            ),
            points=Decimal(5),
            applies_to=[farm, branch],
        ).id
        s.contract_target(
            target, lead_unit_id=dept, responsible_unit_ids=[gb], responsible_leader_id=leader
        )
        s.withdraw_target(target, reason="撤销")
        problem = s.find_problem(
            cycle_id=cycle,
            unit_id=branch,
            title="问题",
            source=ProblemSource.SWEEP,
            severity=Severity.PROMINENT,
        ).id
        s.dispatch_problem(problem, to_unit_id=farm, requirement="整改", deadline=date(2026, 5, 1))
        s.resolve_problem(problem, evidence="已改")
        measure = s.adopt_measure(
            cycle_id=cycle,
            title="措施",
            deadline=date(2026, 6, 30),
            lead_unit_id=dept,
            responsible_unit_ids=[farm, branch],
            responsible_leader_id=leader,
            problem_ids=[problem],
        ).id
        s.complete_measure(measure, evidence="完成")
        duty = s.assign_duty(
            person_id=clerk,
            unit_id=branch,
            tier=DutyTier.SPECIFIC_RESPONSIBLE,
            effective_from=date(2026, 1, 1),
        ).id
        s.relieve_duty(duty, effective_to=date(2026, 3, 1), reason="调整")
        award = s.issue_award(cycle_id=cycle, kind=AwardKind.REWARD, basis="先进", person_id=clerk)
        s.transfer_person(clerk, unit_id=dept, reason="交流")
        s.revoke_award(award.id, reason="复核")
        s.move_unit(branch, parent_id=gb2, reason="改隶")
    runtime.projections.catch_up()

    def units(aggregate: UUID) -> list[tuple[str, list[str]]]:
        return [(i["type"], i["units"]) for i in everything(runtime, aggregate_id=aggregate)]

    u = str
    assert units(target) == [
        ("TargetSet", [u(farm), u(branch)]),
        ("TargetContracted", [u(farm), u(branch), u(dept), u(gb)]),
        ("TargetWithdrawn", [u(farm), u(branch), u(dept), u(gb)]),
    ]
    assert units(problem) == [
        ("ProblemFound", [u(branch)]),
        ("ProblemDispatched", [u(branch), u(farm)]),
        ("ProblemResolved", [u(branch), u(farm)]),
    ]
    both = [u(dept), u(farm), u(branch)]
    assert units(measure) == [("MeasureAdopted", both), ("MeasureCompleted", both)]
    assert units(duty) == [("DutyAssigned", [u(branch)]), ("DutyRelieved", [u(branch)])]
    # An award to a person concerns the person's unit at the time; it stays with the award.
    assert units(award.id) == [("AwardIssued", [u(branch)]), ("AwardRevoked", [u(branch)])]
    assert units(clerk) == [
        ("PersonRegistered", [u(branch)]),
        ("PersonTransferred", [u(branch), u(dept)]),
    ]
    assert units(branch) == [
        ("UnitRegistered", [u(branch), u(gb)]),
        ("UnitMoved", [u(branch), u(gb), u(gb2)]),
    ]
    assert units(cycle) == [("CycleOpened", [])]

    about_farm = everything(runtime, unit_id=farm)
    assert [i["type"] for i in about_farm] == [
        "UnitRegistered",
        "TargetSet",
        "TargetContracted",
        "TargetWithdrawn",
        "ProblemDispatched",
        "ProblemResolved",
        "MeasureAdopted",
        "MeasureCompleted",
    ]
    assert all(u(farm) in i["units"] for i in about_farm)


def test_filters_combine_and_match_the_log(runtime: Runtime) -> None:
    load_demo(runtime.service)
    runtime.projections.catch_up()
    events = recorded_events(runtime)
    indexed = everything(runtime)

    def positions(items: list[dict[str, Any]]) -> list[int]:
        return [item["position"] for item in items]

    actor = "staff:organisation-dept"
    by_actor = everything(runtime, actor=actor)
    assert by_actor and positions(by_actor) == [p for p, e in events if e.actor == actor]
    scores = everything(runtime, event_type="ScoreCast")
    assert positions(scores) == [p for p, e in events if type(e).__name__ == "ScoreCast"]
    assert everything(runtime, event_type="NoSuchEvent") == []
    both = everything(runtime, actor=actor, event_type="DutyAssigned")
    assert both and all(i["actor"] == actor and i["type"] == "DutyAssigned" for i in both)

    unit = UUID(next(i for i in indexed if i["type"] == "ScoreCast")["units"][0])
    about_unit = everything(runtime, unit_id=unit)
    assert positions(about_unit) == [i["position"] for i in indexed if str(unit) in i["units"]]
    assert {"UnitRegistered", "ReportDelivered", "ScoreCast"} <= {i["type"] for i in about_unit}

    # Effective time: the demo's facts are dated in 2026; [from, to) on either time axis.
    since, until = datetime(2026, 3, 1, tzinfo=CST), datetime(2026, 4, 1, tzinfo=CST)
    march = everything(runtime, since=since, until=until, time="effective")
    assert march and positions(march) == [p for p, e in events if since <= e.effective_time < until]
    middle = events[len(events) // 2][1].timestamp
    recorded_before = everything(runtime, until=middle)
    assert positions(recorded_before) == [p for p, e in events if e.timestamp < middle]
    recorded_after = everything(runtime, since=middle.astimezone(CST))
    assert positions(recorded_before) + positions(recorded_after) == positions(indexed)

    aggregate = UUID(scores[0]["aggregate_id"])
    assert positions(everything(runtime, aggregate_id=aggregate)) == [
        p for p, e in events if e.originator_id == aggregate
    ]


def test_cursor_paging_visits_every_event_once(runtime: Runtime) -> None:
    load_demo(runtime.service)
    runtime.projections.catch_up()
    seen: list[int] = []
    after = 0
    while page := query_events(runtime.db, after=after, limit=37):
        seen.extend(item["position"] for item in page)
        after = page[-1]["position"]
    assert seen == [item["position"] for item in everything(runtime)]
    assert len(seen) == runtime.service.head_position()
    first = query_events(runtime.db, actor="admin", limit=5)
    rest = query_events(runtime.db, actor="admin", after=first[-1]["position"], limit=10**6)
    assert [i["position"] for i in first + rest] == [
        i["position"] for i in everything(runtime, actor="admin")
    ]


@pytest.mark.parametrize("batch_size", [1, 3, 50])
def test_incremental_batches_equal_a_rebuild_from_zero(runtime: Runtime, batch_size: int) -> None:
    small = ProjectionRunner(runtime.service, runtime.db, [AuditIndex()], batch_size=batch_size)
    small.setup()
    with acting_as("tester"):
        runtime.service.register_unit(name="党委", kind=UnitKind.COMMITTEE)
    small.catch_up()
    load_demo(runtime.service, force=True)
    small.catch_up()
    incremental = table_rows(runtime)
    assert runtime.projections.rebuild(AuditIndex()) == runtime.service.head_position()
    assert table_rows(runtime) == incremental
    assert len(incremental["audit_index_events"]) == runtime.service.head_position()
    assert runtime.projections.position(AuditIndex.name) == runtime.service.head_position()


def test_stored_times_sort_as_times(runtime: Runtime) -> None:
    load_demo(runtime.service)
    runtime.projections.catch_up()
    rows = runtime.db.query("SELECT effective_at FROM audit_index_events ORDER BY effective_at")
    texts = [row["effective_at"] for row in rows]
    moments = [datetime.fromisoformat(text) for text in texts]
    assert moments == sorted(moments)
    assert all(m.utcoffset() == UTC.utcoffset(None) for m in moments)
    assert len({len(text) for text in texts}) == 1
