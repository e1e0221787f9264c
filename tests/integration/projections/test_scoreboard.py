"""The scoreboard read model: what the aggregates say, scored by the domain's rules; equal to a
rebuild from zero however it was batched; exact numbers for a small scenario."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from closedloop.bootstrap import Runtime, build_runtime
from closedloop.demo import load_demo
from closedloop.domain.base import LoopAggregate
from closedloop.domain.context import acting_as
from closedloop.domain.cycles import Cycle
from closedloop.domain.duties import DutyTier
from closedloop.domain.errors import DomainError
from closedloop.domain.measures import Measure
from closedloop.domain.meetings import Meeting
from closedloop.domain.problems import Problem, ProblemSource, Severity
from closedloop.domain.rectifications import Rectification, RectificationStatus
from closedloop.domain.scoring import (
    MEETING,
    PROCESS,
    RESULT,
    ScoringPolicy,
    meeting_component,
    normalise,
    process_score,
    rank,
    result_component,
    target_result,
    unit_total,
)
from closedloop.domain.settlement import process_facts
from closedloop.domain.targets import Direction, EffectMethod, Indicator, Target
from closedloop.domain.units import UnitKind
from closedloop.projections.base import ProjectionRunner
from closedloop.projections.scoreboard import ROWS, Scoreboard, read_scoreboard
from closedloop.settings import Settings

D = Decimal
CST = timezone(timedelta(hours=8))
LEVELS = ("好", "较好", "一般", "差")


@pytest.fixture
def runtime(store_settings: Settings) -> Iterator[Runtime]:
    built = build_runtime(store_settings)
    try:
        yield built
    finally:
        built.close()


def board(runtime: Runtime) -> dict[tuple[str, str], dict[str, Any]]:
    """Every stored row of a unit in its cycle, by (stage, unit id)."""
    rows = runtime.db.query(f"SELECT * FROM {ROWS} WHERE n_targets > 0")
    return {(row["stage"], row["unit_id"]): row for row in rows}


def shown(runtime: Runtime, cycle: UUID, stage: str) -> dict[str, dict[str, Any]]:
    """The rows as read (with their ranks), by unit id."""
    return {row["unit_id"]: row for row in read_scoreboard(runtime.db, cycle, stage)["rows"]}


def snapshot(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    """Every table of the scoreboard, in a stable order."""
    return {
        table: sorted(runtime.db.query(f"SELECT * FROM {table}"), key=repr)
        for table in Scoreboard.tables
    }


# --- the demo year, against the aggregates -----------------------------------------------------


def all_aggregates(runtime: Runtime) -> list[LoopAggregate]:
    notifications = runtime.service.recorder.select_notifications(1, 10**6)
    ids = sorted({n.originator_id for n in notifications}, key=str)
    return [runtime.service.get_aggregate(i) for i in ids]


def expected_from_aggregates(
    runtime: Runtime, cycle_id: UUID, stage_key: str
) -> dict[str, dict[str, Any]]:
    """The stage's scoreboard computed straight from the aggregates with the scoring rules."""
    aggregates = all_aggregates(runtime)
    cycle = runtime.service.get(Cycle, cycle_id)
    stage = cycle.stage(stage_key)

    def of(kind: type[Any]) -> list[Any]:
        return [a for a in aggregates if isinstance(a, kind) and a.cycle_id == cycle.id]

    policy = cycle.policy_for(stage_key)
    targets = [t for t in of(Target) if not t.withdrawn]
    meetings = [m for m in of(Meeting) if m.stage == stage_key]
    units = {unit for target in targets for unit in target.applies_to}
    expected: dict[str, dict[str, Any]] = {}
    for unit in units:
        results = []
        for target in targets:
            if unit not in target.applies_to:
                continue
            own = target.effects.get((stage_key, EffectMethod.SELF_ASSESSMENT, unit))
            inspected = target.effects.get((stage_key, EffectMethod.INSPECTION, unit))
            results.append(
                (
                    target.points,
                    target_result(
                        target.indicator,
                        target.milestones.get(stage_key),
                        own.result if own else None,
                        inspected.result if inspected else None,
                        policy,
                    ),
                )
            )
        meeting = meeting_component(
            [
                [normalise(s, m.scale_min, m.scale_max) for s in m.scores_for(unit)]
                for m in meetings
            ],
            policy,
        )
        facts = process_facts(of(Measure), of(Rectification), of(Problem), unit, stage)
        score = unit_total(
            {
                RESULT: result_component(results, policy),
                PROCESS: process_score(facts, policy),
                MEETING: meeting,
            },
            policy,
        )
        expected[str(unit)] = {
            "components": score.components,
            "weights": score.weights,
            "total": score.total,
        }
    for ranked in rank({unit: e["total"] for unit, e in expected.items()}):
        expected[ranked.unit_id]["rank"] = ranked.rank
    return expected


def expected_board(runtime: Runtime, cycle_id: UUID, stage: str) -> dict[str, dict[str, Any]]:
    """What the board must show: a settled stage's figures as the settlement fixed them, else
    the scores computed from the aggregates now."""
    settlement = runtime.service.settlement(cycle_id, stage)
    if settlement is None:
        return expected_from_aggregates(runtime, cycle_id, stage)
    return {
        u["unit_id"]: {"components": u["components"], "total": u["total"], "rank": u["rank"]}
        for u in settlement.units
    }


def text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def test_the_demo_years_scoreboard_agrees_with_the_aggregates(runtime: Runtime) -> None:
    demo = load_demo(runtime.service)
    runtime.projections.catch_up()
    assert runtime.projections.position(Scoreboard.name) == runtime.service.head_position()
    rows = board(runtime)
    for stage in ("Q1", "Q2", "Q4"):
        expected = expected_from_aggregates(runtime, demo.cycle_id, stage)
        actual = shown(runtime, demo.cycle_id, stage)
        assert actual.keys() == expected.keys()
        for unit, want in expected.items():
            row = actual[unit]
            assert row["result"] == text(want["components"][RESULT]), (stage, unit)
            assert row["process"] == text(want["components"][PROCESS]), (stage, unit)
            assert row["meeting"] == text(want["components"][MEETING]), (stage, unit)
            assert row["total"] == text(want["total"]), (stage, unit)
            assert row["rank"] == want["rank"], (stage, unit)
            assert row["weights"] == {k: str(v) for k, v in want["weights"].items()}
            stored = rows[(stage, unit)]
            assert stored["provisional"] == 1
            assert stored["stage_closed"] == (1 if stage == "Q1" else 0)
    q1 = {unit: row for (s, unit), row in rows.items() if s == "Q1"}
    # Every unit the demo's targets apply to is on the board, for every stage.
    assert len(q1) == 29 and len(rows) == 4 * 29
    assert all(row["total"] is not None for row in q1.values())
    # The read function shows the latest assessed stage by default, in rank order.
    first = read_scoreboard(runtime.db, demo.cycle_id)
    assert first["stage"] == "Q1" and first["stage_closed"] is True
    ranks = [row["rank"] for row in first["rows"]]
    assert ranks == sorted(ranks) and ranks[0] == 1
    by_name = {row["unit_name"]: row for row in first["rows"]}
    # 城郊森林保护站: nine raters, 赵志刚's corrected 78 counts; highest and lowest dropped.
    assert by_name["城郊森林保护站"]["meeting"] == "79.50"
    assert by_name["城郊森林保护站"]["details"]["scores"] == 9
    # 西坡苗圃党支部: its withdrawn own target no longer counts.
    assert by_name["西坡苗圃党支部"]["details"]["targets"] == 2


def test_incremental_small_batches_equal_a_rebuild_from_zero(runtime: Runtime) -> None:
    small = ProjectionRunner(runtime.service, runtime.db, [Scoreboard()], batch_size=3)
    small.setup()
    demo = load_demo(runtime.service)
    small.catch_up()
    service = runtime.service
    cycle = service.get(Cycle, demo.cycle_id)
    aggregates = all_aggregates(runtime)
    targets = [a for a in aggregates if isinstance(a, Target) and a.cycle_id == cycle.id]
    meeting = next(a for a in aggregates if isinstance(a, Meeting))
    problems = [a for a in aggregates if isinstance(a, Problem)]
    rectifications = [a for a in aggregates if isinstance(a, Rectification)]
    fire = next(t for t in targets if t.title == "森林火灾受害率控制")
    model_site = next(t for t in targets if t.title == "党建引领生态修复示范点创建")
    firebreak = next(p for p in problems if p.title.startswith("北山林场防火隔离带"))
    open_one = next(r for r in rectifications if r.status is RectificationStatus.ORDERED)
    (unit, rater), _ = next(iter(meeting.scores.items()))
    with acting_as("tester"):
        service.cast_score(meeting.id, rater_id=rater, unit_id=unit, score=D(60), reason="复核更正")
        station = fire.applies_to[-1]
        for result, reason in ((D("0.9"), None), (D("0.3"), "复核更正")):
            service.confirm_effect(
                fire.id,
                stage="Q2",
                method=EffectMethod.INSPECTION,
                unit_id=station,
                result=result,
                evidence="火情统计",
                reason=reason,
            )
        small.catch_up()
        service.withdraw_target(model_site.id, reason="目标调整")
        service.reopen_problem(firebreak.id, reason="复查发现隔离带又有堆积")
        service.dispatch_problem(
            firebreak.id,
            to_unit_id=fire.applies_to[1],
            requirement="协助清理",
            deadline=date(2026, 5, 31),
        )
        service.complete_rectification(open_one.id, evidence="已整改")
        service.reject_rectification(open_one.id, reason="材料不全")
        service.close_stage(cycle.id, stage="Q2")
    small.catch_up()
    incremental = snapshot(runtime)
    assert small.position(Scoreboard.name) == service.head_position()
    replayed = runtime.projections.rebuild(Scoreboard())
    assert replayed == service.head_position()
    assert snapshot(runtime) == incremental
    # And both still agree with the aggregates.
    for stage in ("Q1", "Q2"):
        expected = expected_board(runtime, cycle.id, stage)
        rows = shown(runtime, cycle.id, stage)
        assert {u: (r["total"], r["rank"]) for u, r in rows.items()} == {
            u: (text(e["total"]), e["rank"]) for u, e in expected.items()
        }


# --- a small scenario with exact numbers -------------------------------------------------------


@dataclass
class Scenario:
    cycle: UUID
    a: UUID
    b: UUID
    c: UUID
    raters: list[UUID]
    t1: UUID
    t3: UUID
    meeting: UUID
    measure: UUID


def build_scenario(runtime: Runtime) -> Scenario:
    """Units A, B (common targets, meeting reports, process items) and C (own target only)."""
    service = runtime.service
    with acting_as("tester"):
        root = service.register_unit(name="党委", kind=UnitKind.COMMITTEE).id
        a, b, c = (
            service.register_unit(name=name, kind=UnitKind.GRASSROOTS, parent_id=root).id
            for name in ("甲林场", "乙林场", "丙林场")
        )
        heads = {}
        for unit, name in ((a, "甲场长"), (b, "乙场长")):
            heads[unit] = service.register_person(name=name, unit_id=unit).id
            service.assign_duty(
                person_id=heads[unit],
                unit_id=unit,
                tier=DutyTier.FIRST_RESPONSIBLE,
                effective_from=date(2026, 1, 1),
            )
        raters = [service.register_person(name=f"评委{i}", unit_id=root).id for i in range(5)]
        cycle = service.open_cycle(year=2026, name="2026年度").id
        quantity = Indicator.quantitative(
            metric="面积", target_value=D(100), direction=Direction.HIGHER_IS_BETTER
        )
        t1 = service.set_common_target(
            cycle_id=cycle, title="造林", indicator=quantity, points=D(10), applies_to=[a, b]
        ).id
        service.set_milestones(t1, milestones={"Q1": D(50)})
        t2 = service.set_common_target(
            cycle_id=cycle,
            title="组织生活",
            indicator=Indicator.qualitative(levels=LEVELS),
            points=D(30),
            applies_to=[a],
        ).id
        service.set_milestones(t2, milestones={"Q1": "较好"})
        t3 = service.set_unit_target(
            cycle_id=cycle, unit_id=c, title="特色", indicator=quantity, points=D(5)
        ).id

        def effect(target: UUID, unit: UUID, method: EffectMethod, result: Any) -> None:
            service.confirm_effect(
                target, stage="Q1", method=method, unit_id=unit, result=result, evidence="台账"
            )

        effect(t1, a, EffectMethod.SELF_ASSESSMENT, D(50))  # 100
        effect(t1, a, EffectMethod.INSPECTION, D(40))  # 80 → 0.3*100 + 0.7*80 = 86
        effect(t2, a, EffectMethod.INSPECTION, "一般")  # 50
        effect(t1, b, EffectMethod.SELF_ASSESSMENT, D(60))  # 100, self-assessment only
        meeting = service.convene_meeting(
            cycle_id=cycle,
            stage="Q1",
            title="一季度例会",
            held_on=date(2026, 3, 30),
            attendee_ids=[*raters, *heads.values()],
        ).id
        for unit in (a, b):
            service.deliver_report(meeting, unit_id=unit, reporter_id=heads[unit], summary="述职")
        for rater, score in zip(raters, (70, 80, 85, 90, 100), strict=True):
            service.cast_score(meeting, rater_id=rater, unit_id=a, score=D(score))  # trimmed 85
        for rater, score in zip(raters, (60, 70, 80), strict=False):
            service.cast_score(meeting, rater_id=rater, unit_id=b, score=D(score))
        service.cast_score(meeting, rater_id=raters[0], unit_id=b, score=D(90), reason="更正")
        measure = service.adopt_measure(
            cycle_id=cycle,
            title="补植",
            deadline=date(2026, 3, 20),
            lead_unit_id=a,
            responsible_unit_ids=[a],
            responsible_leader_id=heads[a],
            target_id=t1,
        ).id
        rectification = service.order_rectification(
            cycle_id=cycle, unit_id=a, requirement="台账整改", deadline=date(2026, 3, 31)
        ).id
        service.complete_rectification(rectification, evidence="已整改")
        problem = service.find_problem(
            cycle_id=cycle,
            unit_id=b,
            title="隔离带未清理",
            source=ProblemSource.SWEEP,
            severity=Severity.PROMINENT,
            found_at=datetime(2026, 2, 10, 9, tzinfo=CST),
        ).id
        service.dispatch_problem(
            problem, to_unit_id=b, requirement="清理", deadline=date(2026, 3, 25)
        )
        service.resolve_problem(
            problem, evidence="已清理", resolved_at=datetime(2026, 3, 20, 17, tzinfo=CST)
        )
    return Scenario(cycle, a, b, c, raters, t1, t3, meeting, measure)


def q1(runtime: Runtime, scenario: Scenario) -> dict[UUID, dict[str, Any]]:
    shown = read_scoreboard(runtime.db, scenario.cycle, "Q1")
    return {UUID(row["unit_id"]): row for row in shown["rows"]}


def test_a_small_scenario_scores_exactly(runtime: Runtime) -> None:
    s = build_scenario(runtime)
    runtime.projections.catch_up()
    rows = q1(runtime, s)
    a, b, c = rows[s.a], rows[s.b], rows[s.c]
    # A: result (10*86 + 30*50)/40 = 59; process 100 - 5 (measure overdue); meeting 85.
    assert (a["result"], a["process"], a["meeting"], a["total"]) == (
        "59.00",
        "95.00",
        "85.00",
        "75.00",
    )
    assert a["details"]["overdue_measures"] == 1 and a["details"]["items_due"] == 2
    # B: result 100 (self-assessment only, noted); process 100 (+2 bonus, capped); the re-cast
    # score replaced the first one: (90 + 70 + 80) / 3 = 80. 50 + 30 + 16 = 96.
    assert (b["result"], b["process"], b["meeting"], b["total"]) == (
        "100.00",
        "100.00",
        "80.00",
        "96.00",
    )
    assert b["details"]["prominent_resolved"] == 1 and b["details"]["scores"] == 3
    assert any("self-assessment only" in note for note in b["notes"])
    # C: its target has no result yet; nothing else: no total, no rank, listed last.
    assert (c["result"], c["total"], c["rank"]) == (None, None, None)
    assert c["notes"][0] == "no component has data for this stage"
    assert [UUID(row["unit_id"]) for row in read_scoreboard(runtime.db, s.cycle, "Q1")["rows"]] == [
        s.b,
        s.a,
        s.c,
    ]
    assert (b["rank"], a["rank"]) == (1, 2)
    assert a["weights"] == {"result": "0.5", "process": "0.3", "meeting": "0.2"}


def test_corrections_withdrawals_and_closing_update_the_board(runtime: Runtime) -> None:
    s = build_scenario(runtime)
    runtime.projections.catch_up()
    service = runtime.service
    with acting_as("tester"):
        # B's inspection arrives: 40 of 50 → 80; 0.3*100 + 0.7*80 = 86... then corrected to 20.
        for result, reason in ((D(40), None), (D(20), "复核更正")):
            service.confirm_effect(
                s.t1,
                stage="Q1",
                method=EffectMethod.INSPECTION,
                unit_id=s.b,
                result=result,
                evidence="检查",
                reason=reason,
            )
    runtime.projections.catch_up()
    rows = q1(runtime, s)
    # B: 0.3*100 + 0.7*40 = 58; 29 + 30 + 16 = 75, equal to A: both rank 1, listed by unit id.
    assert rows[s.b]["result"] == "58.00" and rows[s.b]["total"] == "75.00"
    assert rows[s.a]["total"] == "75.00"
    assert rows[s.a]["rank"] == rows[s.b]["rank"] == 1
    listed = [UUID(r["unit_id"]) for r in read_scoreboard(runtime.db, s.cycle, "Q1")["rows"]]
    assert listed[:2] == sorted([s.a, s.b], key=str)
    with acting_as("tester"):
        service.complete_measure(s.measure, evidence="已补植")
        service.withdraw_target(s.t3, reason="不再适用")
        service.close_stage(s.cycle, stage="Q1")
    runtime.projections.catch_up()
    shown = read_scoreboard(runtime.db, s.cycle, "Q1")
    rows = {UUID(row["unit_id"]): row for row in shown["rows"]}
    # A's measure is finished: process 100, total 29.5 + 30 + 17 = 76.5; C left the cycle.
    assert rows[s.a]["process"] == "100.00" and rows[s.a]["total"] == "76.50"
    assert [rows[s.a]["rank"], rows[s.b]["rank"]] == [1, 2]
    assert s.c not in rows
    assert shown["stage_closed"] is True
    assert all(r["stage_closed"] == 1 for (stage, _), r in board(runtime).items() if stage == "Q1")
    # Q2: only process data (both items were due by the end of Q2 and are finished).
    q2 = {UUID(r["unit_id"]): r for r in read_scoreboard(runtime.db, s.cycle, "Q2")["rows"]}
    assert (q2[s.a]["total"], q2[s.a]["weights"]) == ("100.00", {"process": "1"})
    assert "no result or meeting data" in q2[s.a]["notes"][0]


def test_the_policy_in_force_scores_each_stage_and_a_settled_stage_shows_its_settlement(
    runtime: Runtime,
) -> None:
    s = build_scenario(runtime)
    service = runtime.service
    revised = POLICIES[1]
    with acting_as("tester"):
        service.revise_policy(s.cycle, policy=revised, from_stage="Q1", reason="党委会调整")
    runtime.projections.catch_up()
    rows = q1(runtime, s)
    # A: t1 0.5*100 + 0.5*80 = 90; result (10*90 + 30*50)/40 = 60; 12 + 0.2*88 + 51 = 80.60
    # (the overdue measure now costs 12: process 88). B: 20 + 20 + 0.6*80 = 88.
    assert (rows[s.a]["result"], rows[s.a]["process"], rows[s.a]["total"]) == (
        "60.00",
        "88.00",
        "80.60",
    )
    assert rows[s.b]["total"] == "88.00"
    board_q1 = read_scoreboard(runtime.db, s.cycle, "Q1")
    assert board_q1["policy"] == revised and board_q1["provisional"] is True

    with acting_as("tester"):
        settled = service.settle_stage(s.cycle, stage="Q1", now=AFTER_THE_YEAR, zone=CST)
        # Q2 onwards may still change; the settled Q1 may not.
        with pytest.raises(DomainError, match="PolicyFrozenOnceSettled"):
            service.revise_policy(s.cycle, policy=POLICIES[2], from_stage="Q1", reason="再调")
        service.revise_policy(s.cycle, policy=POLICIES[2], from_stage="Q2", reason="再调")
        service.complete_measure(s.measure, evidence="已补植")  # after the settlement
    runtime.projections.catch_up()
    board_q1 = read_scoreboard(runtime.db, s.cycle, "Q1")
    assert board_q1["provisional"] is False and board_q1["stage_closed"] is True
    assert board_q1["settlement"]["settlement_id"] == str(settled.settlement_id)
    fixed = {UUID(row["unit_id"]): row for row in board_q1["rows"]}
    # The settled figures stay as settled although A's measure was completed since.
    assert (fixed[s.a]["process"], fixed[s.a]["total"], fixed[s.a]["rank"]) == ("88.00", "80.60", 2)
    assert (fixed[s.b]["total"], fixed[s.b]["rank"]) == ("88.00", 1)
    assert fixed[s.a]["details"]["overdue_measures"] == 0  # today's counts, for context
    assert read_scoreboard(runtime.db, s.cycle, "Q2")["policy"] == POLICIES[2]
    snapshot_before = snapshot(runtime)
    runtime.projections.rebuild(Scoreboard())
    assert snapshot(runtime) == snapshot_before

    with acting_as("tester"):
        service.reopen_stage(s.cycle, stage="Q1", reason="复核更正")
    runtime.projections.catch_up()
    board_q1 = read_scoreboard(runtime.db, s.cycle, "Q1")
    assert board_q1["provisional"] is True and board_q1["settlement"] is None
    assert q1(runtime, s)[s.a]["process"] == "100.00"


def test_reading_an_unknown_cycle_or_stage_fails_clearly(runtime: Runtime) -> None:
    from closedloop.domain.errors import InvalidValue, NotFound

    s = build_scenario(runtime)
    runtime.projections.catch_up()
    with pytest.raises(NotFound):
        read_scoreboard(runtime.db, s.a)
    with pytest.raises(InvalidValue):
        read_scoreboard(runtime.db, s.cycle, "Q9")
    # A cycle without targets yet: known, with no rows; the default stage is the first.
    with acting_as("tester"):
        empty = runtime.service.open_cycle(year=2027, name="2027年度").id
    runtime.projections.catch_up()
    shown = read_scoreboard(runtime.db, empty)
    assert (shown["stage"], shown["rows"]) == ("Q1", [])


# --- random histories ---------------------------------------------------------------------------

QUANTITY = Indicator.quantitative(
    metric="面积", target_value=D(100), direction=Direction.HIGHER_IS_BETTER
)
RATE = Indicator.quantitative(
    metric="受害率", target_value=D(1), direction=Direction.LOWER_IS_BETTER
)
RUBRIC = Indicator.qualitative(levels=LEVELS)
NUMBERS = [D(0), D("0.5"), D(1), D(3), D(40), D("50.5"), D(100), D(130), D(-2)]
STAGES = ["Q1", "Q2", "Q3", "Q4"]
OPERATIONS = (
    "target",
    "unit_target",
    "revise",
    "milestones",
    "withdraw",
    "effect",
    "effect",
    "effect",
    "meeting",
    "report",
    "score",
    "score",
    "measure",
    "finish_measure",
    "rectification",
    "rectification_step",
    "problem",
    "dispatch",
    "resolve",
    "reopen",
    "close",
    "policy",
    "settle",
    "reopen_stage",
)
POLICIES = (
    ScoringPolicy(),
    ScoringPolicy(
        result_weight=D("0.2"),
        process_weight=D("0.2"),
        meeting_weight=D("0.6"),
        self_assessment_share=D("0.5"),
        inspection_share=D("0.5"),
        meeting_aggregation="mean",
        overdue_measure_deduction=D(12),
    ),
    ScoringPolicy(result_weight=D(1), process_weight=D(0), meeting_weight=D(0), places=1),
)
AFTER_THE_YEAR = datetime(2027, 1, 2, tzinfo=CST)


class History:
    """A small organisation and a cycle, changed by random commands (refused ones are skipped)."""

    def __init__(self, runtime: Runtime, seed: int) -> None:
        service = self.service = runtime.service
        with acting_as("tester"):
            root = service.register_unit(name=f"党委{seed}", kind=UnitKind.COMMITTEE).id
            self.units = [
                service.register_unit(
                    name=f"林场{seed}-{n}", kind=UnitKind.GRASSROOTS, parent_id=root
                ).id
                for n in range(3)
            ]
            self.heads = {}
            for unit in self.units[:2]:
                self.heads[unit] = service.register_person(name="场长", unit_id=unit).id
                service.assign_duty(
                    person_id=self.heads[unit],
                    unit_id=unit,
                    tier=DutyTier.FIRST_RESPONSIBLE,
                    effective_from=date(2026, 1, 1),
                )
            self.raters = [
                service.register_person(name=f"评委{n}", unit_id=root).id for n in range(6)
            ]
            self.cycle = service.open_cycle(year=2026, name=f"随机{seed}").id
        self.targets: list[tuple[UUID, Indicator]] = []
        self.meetings: list[UUID] = []
        self.measures: list[UUID] = []
        self.rectifications: list[UUID] = []
        self.problems: list[UUID] = []

    def value(self, data: Any, indicator: Indicator) -> Decimal | str:
        if indicator.levels:
            return str(data.draw(st.sampled_from(LEVELS)))
        return D(data.draw(st.sampled_from(NUMBERS)))

    def run(self, data: Any, steps: int) -> None:
        for _ in range(steps):
            operation = data.draw(st.sampled_from(OPERATIONS))
            # A command a rule of the loop refuses records nothing: skip it.
            with acting_as("tester"), contextlib.suppress(DomainError):
                self.step(data, operation)
                event(f"recorded: {operation}")

    def step(self, data: Any, operation: str) -> None:
        service, draw = self.service, data.draw
        unit = draw(st.sampled_from(self.units))
        stage = draw(st.sampled_from(STAGES))
        day = date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 364)))
        if operation == "target":
            indicator = draw(st.sampled_from([QUANTITY, RATE, RUBRIC]))
            applies = draw(st.lists(st.sampled_from(self.units), min_size=1, unique=True))
            points = D(draw(st.sampled_from(["5", "10", "12.5"])))
            target = service.set_common_target(
                cycle_id=self.cycle,
                title="共性",
                indicator=indicator,
                points=points,
                applies_to=applies,
            ).id
            self.targets.append((target, indicator))
        elif operation == "unit_target":
            indicator = draw(st.sampled_from([QUANTITY, RUBRIC]))
            target = service.set_unit_target(
                cycle_id=self.cycle, unit_id=unit, title="特色", indicator=indicator, points=D(5)
            ).id
            self.targets.append((target, indicator))
        elif not self.targets and operation in ("revise", "milestones", "withdraw", "effect"):
            return
        elif operation == "revise":
            index = draw(st.integers(0, len(self.targets) - 1))
            target, indicator = self.targets[index]
            if draw(st.booleans()):
                service.revise_target(
                    target, reason="调整分值", points=D(draw(st.sampled_from(["3", "7.5", "20"])))
                )
            else:
                new = draw(st.sampled_from([QUANTITY, RATE, RUBRIC]))
                service.revise_target(target, reason="调整指标", indicator=new)
                self.targets[index] = (target, new)
        elif operation == "milestones":
            target, indicator = draw(st.sampled_from(self.targets))
            stages = draw(st.lists(st.sampled_from(STAGES), min_size=1, unique=True))
            service.set_milestones(
                target, milestones={s: self.value(data, indicator) for s in stages}, reason="分解"
            )
        elif operation == "withdraw":
            target, _ = draw(st.sampled_from(self.targets))
            service.withdraw_target(target, reason="撤回")
        elif operation == "effect":
            target, indicator = draw(st.sampled_from(self.targets))
            service.confirm_effect(
                target,
                stage=stage,
                method=draw(st.sampled_from(list(EffectMethod))),
                unit_id=unit,
                result=self.value(data, indicator),
                evidence="台账",
                reason="更正",
            )
        elif operation == "meeting":
            self.meetings.append(
                service.convene_meeting(
                    cycle_id=self.cycle,
                    stage=stage,
                    title="例会",
                    held_on=day,
                    attendee_ids=[*self.raters, *self.heads.values()],
                    scale_max=D(draw(st.sampled_from([10, 100]))),
                ).id
            )
        elif operation == "report" and self.meetings:
            head = draw(st.sampled_from(sorted(self.heads, key=str)))
            service.deliver_report(
                draw(st.sampled_from(self.meetings)),
                unit_id=head,
                reporter_id=self.heads[head],
                summary="述职",
            )
        elif operation == "score" and self.meetings:
            service.cast_score(
                draw(st.sampled_from(self.meetings)),
                rater_id=draw(st.sampled_from(self.raters)),
                unit_id=draw(st.sampled_from(sorted(self.heads, key=str))),
                score=D(draw(st.integers(0, 10))),
                reason="更正",
            )
        elif operation == "measure":
            self.measures.append(
                service.adopt_measure(
                    cycle_id=self.cycle,
                    title="措施",
                    deadline=day,
                    lead_unit_id=unit,
                    responsible_unit_ids=[unit],
                    responsible_leader_id=self.raters[0],
                    target_id=self.targets[0][0] if self.targets else None,
                ).id
            )
        elif operation == "finish_measure" and self.measures:
            measure = draw(st.sampled_from(self.measures))
            if draw(st.booleans()):
                service.complete_measure(measure, evidence="完成")
            else:
                service.cancel_measure(measure, reason="取消")
        elif operation == "rectification":
            self.rectifications.append(
                service.order_rectification(
                    cycle_id=self.cycle, unit_id=unit, requirement="整改", deadline=day
                ).id
            )
        elif operation == "rectification_step" and self.rectifications:
            rectification = draw(st.sampled_from(self.rectifications))
            action = draw(st.sampled_from(["complete", "reject", "verify"]))
            if action == "complete":
                service.complete_rectification(rectification, evidence="完成")
            elif action == "reject":
                service.reject_rectification(rectification, reason="退回")
            else:
                service.verify_rectification(rectification)
        elif operation == "problem":
            self.problems.append(
                service.find_problem(
                    cycle_id=self.cycle,
                    unit_id=unit,
                    title="问题",
                    source=ProblemSource.SWEEP,
                    severity=draw(st.sampled_from(list(Severity))),
                    found_at=datetime(2026, 1, 1, 9, tzinfo=CST),
                ).id
            )
        elif operation == "dispatch" and self.problems:
            service.dispatch_problem(
                draw(st.sampled_from(self.problems)),
                to_unit_id=unit,
                requirement="办理",
                deadline=day,
            )
        elif operation == "resolve" and self.problems:
            service.resolve_problem(
                draw(st.sampled_from(self.problems)),
                evidence="解决",
                resolved_at=datetime(day.year, day.month, day.day, 23, 30, tzinfo=CST),
            )
        elif operation == "reopen" and self.problems:
            service.reopen_problem(draw(st.sampled_from(self.problems)), reason="复发")
        elif operation == "close":
            service.close_stage(self.cycle, stage=stage)
        elif operation == "policy":
            service.revise_policy(
                self.cycle,
                policy=draw(st.sampled_from(POLICIES)),
                from_stage=stage,
                reason="党委会调整",
            )
        elif operation == "settle":
            service.settle_stage(self.cycle, stage=stage, now=AFTER_THE_YEAR, zone=CST)
        elif operation == "reopen_stage":
            service.reopen_stage(self.cycle, stage=stage, reason="复核")


@settings(
    max_examples=int(os.environ.get("SCOREBOARD_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_histories_incremental_equals_rebuild_equals_aggregates(
    runtime: Runtime, data: Any
) -> None:
    history = History(runtime, data.draw(st.integers(0, 10**6)))
    small = ProjectionRunner(
        runtime.service, runtime.db, [Scoreboard()], batch_size=data.draw(st.integers(1, 9))
    )
    small.setup()
    for _ in range(data.draw(st.integers(1, 3))):
        history.run(data, data.draw(st.integers(5, 40)))
        small.catch_up()  # catching up between parts: batches end anywhere
    incremental = snapshot(runtime)
    runtime.projections.rebuild(Scoreboard())
    assert snapshot(runtime) == incremental
    for stage in STAGES:
        expected = expected_board(runtime, history.cycle, stage)
        rows = shown(runtime, history.cycle, stage)
        assert rows.keys() == expected.keys()
        for unit, want in expected.items():
            row = rows[unit]
            got = (row["result"], row["process"], row["meeting"], row["total"], row["rank"])
            assert got == (
                text(want["components"][RESULT]),
                text(want["components"][PROCESS]),
                text(want["components"][MEETING]),
                text(want["total"]),
                want["rank"],
            ), (stage, unit)
