"""Stage settlement (季度结算) on both stores: figures, once only, races, kills, time zones, policy,
verification, reopening and missed deadlines.

The small bureau below is computed by hand (see ``EXPECTED``): four grassroots units, one common
target, one Q1 meeting and a few measures, under a policy with a rank reward and a bottom-share
penalty. Races run on two service instances in threads, and in separate OS processes through
``settle_in_process.py`` beside this file.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from closedloop.domain.awards import Award, AwardKind
from closedloop.domain.context import acting_as
from closedloop.domain.cycles import (
    ClosedStageAcceptsNoEffects,
    Cycle,
    OnlySettledStagesReopen,
    PolicyFrozenOnceSettled,
    SettledStageAcceptsNoEffects,
)
from closedloop.domain.deadlines import (
    DeadlineMissedOnlyOnce,
    DeadlineNotPassed,
    FinishedItemMissesNoDeadline,
    NoDeadlineToMiss,
)
from closedloop.domain.duties import DutyTier
from closedloop.domain.errors import ConcurrencyConflict, NotFound, ReasonRequired
from closedloop.domain.problems import ProblemSource
from closedloop.domain.scoring import AwardRule, ScoringPolicy
from closedloop.domain.service import ClosedLoop, SettlementOutcome
from closedloop.domain.settlement import (
    INPUT_KINDS,
    Settlement,
    StageNotEnded,
    compute_stage,
    results_digest,
    settlement_id,
)
from closedloop.domain.targets import Direction, EffectMethod, Indicator, Target
from closedloop.domain.units import UnitKind
from closedloop.settings import Settings
from closedloop.store import application_env
from closedloop.store.sql import open_database

SHANGHAI = ZoneInfo("Asia/Shanghai")
AFTER_Q1 = datetime(2026, 4, 1, 9, tzinfo=SHANGHAI)
AFTER_Q3 = datetime(2026, 10, 2, 9, tzinfo=SHANGHAI)
HELPER = Path(__file__).with_name("settle_in_process.py")

TOP_TWO = AwardRule("top-two", "reward", "rank", Decimal(2), Decimal(5))
BOTTOM_QUARTER = AwardRule("bottom-quarter", "penalty", "bottom_share", Decimal("0.25"), Decimal(3))
POLICY = ScoringPolicy(award_rules=(TOP_TWO, BOTTOM_QUARTER))

# Hand-computed Q1 figures under POLICY (weights 0.5 / 0.3 / 0.2, self 30 % / inspection 70 %,
# trimmed meeting mean from 5 raters, 5 points per unfinished item due):
#   A  result 100*.3 + 90*.7 = 93; process 100 - 5 (one of two measures open) = 95;
#      meeting 50 80 80 90 100 from 5 raters, trimmed: (80+80+90)/3 = 83.33;
#      total .5*93 + .3*95 + .2*83.33 = 91.666 -> 91.67                                   rank 1
#   B  result 80; process 100; meeting 50 80 90 100 from 4 raters, plain: 80 (trimmed: 85);
#      total 40 + 30 + 16 = 86.00                                                         rank 2
#   C  result 80; process 100; meeting 20 75 80 85 100 from 5 raters, trimmed: 80 (plain: 72);
#      total 86.00: tied with B, so both rank 2 and the next rank is 4                  rank 2
#   D  result 50 (inspection alone); nothing due, so no process component: weights
#      re-normalised to .5/.7 = 0.7143 and 1 - 0.7143 = 0.2857; meeting 60 from 4 raters;
#      total .7143*50 + .2857*60 = 52.857 -> 52.86                                        rank 4
# Awards: top-two (rank <= 2, ties included) to A, B and C; bottom-quarter (round(.25*4) = 1
# unit from the bottom) to D.
FULL = {"result": "0.5", "process": "0.3", "meeting": "0.2"}
EXPECTED: dict[str, dict[str, Any]] = {
    "A": {
        "components": {"result": "93.00", "process": "95.00", "meeting": "83.33"},
        "weights": FULL,
        "total": "91.67",
        "rank": 1,
        "notes": [],
    },
    "B": {
        "components": {"result": "80.00", "process": "100.00", "meeting": "80.00"},
        "weights": FULL,
        "total": "86.00",
        "rank": 2,
        "notes": [],
    },
    "C": {
        "components": {"result": "80.00", "process": "100.00", "meeting": "80.00"},
        "weights": FULL,
        "total": "86.00",
        "rank": 2,
        "notes": [],
    },
    "D": {
        "components": {"result": "50.00", "process": None, "meeting": "60.00"},
        "weights": {"result": "0.7143", "meeting": "0.2857"},
        "total": "52.86",
        "rank": 4,
        "notes": ["no process data: weights re-normalised to result 0.7143, meeting 0.2857"],
    },
}
# (self-assessment, inspection) per unit for Q1, against a milestone of 100.
EFFECTS = {"A": (100, 90), "B": (80, 80), "C": (80, 80), "D": (None, 50)}
# Q1 meeting scores by raters r1..r5 (None: that rater did not score the unit).
SCORES = {
    "A": (50, 80, 80, 90, 100),
    "B": (50, 80, 90, 100, None),
    "C": (20, 75, 80, 85, 100),
    "D": (60, 60, 60, 60, None),
}


# --- the hand-computed bureau ------------------------------------------------------------------


@dataclass(frozen=True)
class Bureau:
    cycle: UUID
    units: dict[str, UUID]  # "A".."D"
    target: UUID
    leader: UUID


def open_bureau(app: ClosedLoop) -> Bureau:
    root = app.register_unit(name="党委", kind=UnitKind.COMMITTEE).id
    cycle = app.open_cycle(year=2026, name="2026年度", policy=POLICY).id
    units = {
        key: app.register_unit(name=f"林场{key}", kind=UnitKind.GRASSROOTS, parent_id=root).id
        for key in EXPECTED
    }
    raters = [app.register_person(name=f"评委{n}", unit_id=root).id for n in range(1, 6)]
    heads = {
        key: app.register_person(name=f"场长{key}", unit_id=unit).id for key, unit in units.items()
    }
    for key, head in heads.items():
        app.assign_duty(
            person_id=head,
            unit_id=units[key],
            tier=DutyTier.FIRST_RESPONSIBLE,
            effective_from=date(2026, 1, 1),
        )
    target = app.set_common_target(
        cycle_id=cycle,
        title="森林防火责任落实",
        indicator=Indicator.quantitative(
            metric="巡护完成率", target_value=Decimal(100), direction=Direction.HIGHER_IS_BETTER
        ),
        points=Decimal(10),
        applies_to=list(units.values()),
    ).id
    app.set_milestones(target, milestones={s: Decimal(100) for s in ("Q1", "Q2", "Q3", "Q4")})
    bureau = Bureau(cycle, units, target, raters[0])
    confirm_q1_effects(app, bureau)
    hold_q1_meeting(app, bureau, raters, heads)
    adopt_q1_measures(app, bureau)
    return bureau


def confirm_q1_effects(app: ClosedLoop, bureau: Bureau) -> None:
    for key, values in EFFECTS.items():
        for method, value in zip(
            (EffectMethod.SELF_ASSESSMENT, EffectMethod.INSPECTION), values, strict=True
        ):
            if value is not None:
                app.confirm_effect(
                    bureau.target,
                    stage="Q1",
                    method=method,
                    unit_id=bureau.units[key],
                    result=Decimal(value),
                    evidence="巡护记录",
                )


def hold_q1_meeting(
    app: ClosedLoop, bureau: Bureau, raters: list[UUID], heads: dict[str, UUID]
) -> None:
    meeting = app.convene_meeting(
        cycle_id=bureau.cycle,
        stage="Q1",
        title="一季度述职评议会",
        held_on=date(2026, 3, 25),
        attendee_ids=[*raters, *heads.values()],
    ).id
    for key, scores in SCORES.items():
        unit = bureau.units[key]
        app.deliver_report(meeting, unit_id=unit, reporter_id=heads[key], summary="一季度述职")
        for rater, score in zip(raters, scores, strict=True):
            if score is not None:
                app.cast_score(meeting, rater_id=rater, unit_id=unit, score=Decimal(score))


def adopt_q1_measures(app: ClosedLoop, bureau: Bureau) -> None:
    for key, finished in (("A", True), ("A", False), ("B", True), ("C", True)):
        measure = adopt_measure(app, bureau, key, date(2026, 3, 20))
        if finished:
            app.complete_measure(measure, evidence="完成报告")


def adopt_measure(app: ClosedLoop, bureau: Bureau, key: str, deadline: date) -> UUID:
    return app.adopt_measure(
        cycle_id=bureau.cycle,
        title=f"{key}防火隔离带",
        deadline=deadline,
        lead_unit_id=bureau.units[key],
        responsible_unit_ids=[bureau.units[key]],
        responsible_leader_id=bureau.leader,
        target_id=bureau.target,
    ).id


@pytest.fixture
def bureau(app: ClosedLoop) -> Bureau:
    return open_bureau(app)


# --- reading the log ---------------------------------------------------------------------------


def events_by_type(app: ClosedLoop) -> Counter[str]:
    """Every stored event, counted by ``Aggregate.Event`` name."""
    counts: Counter[str] = Counter()
    start = 1
    while page := app.recorder.select_notifications(start, 1000):
        counts.update(n.topic.split(":", 1)[1] for n in page)
        start = page[-1].id + 1
    return counts


# What one settlement of the bureau's Q1 writes.
ONE_SETTLEMENT = {
    "Settlement.StageSettled": 1,
    "Settlement.RankingPublished": 1,
    "Cycle.SettlementRecorded": 1,
    "Award.AwardIssued": 4,
}


def settlement_counts(app: ClosedLoop) -> dict[str, int]:
    counts = events_by_type(app)
    return {name: counts[name] for name in ONE_SETTLEMENT}


def settled_stages(app: ClosedLoop) -> Counter[str]:
    """How many StageSettled events each stage has in the log."""
    topic = f"{Settlement.StageSettled.__module__}:{Settlement.StageSettled.__qualname__}"
    stages: Counter[str] = Counter()
    for notification in app.recorder.select_notifications(1, 10_000, topics=[topic]):
        event = app.mapper.to_domain_event(notification)
        assert isinstance(event, Settlement.StageSettled)
        stages[event.stage] += 1
    return stages


def by_key(bureau: Bureau, units: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    names = {str(unit_id): key for key, unit_id in bureau.units.items()}
    return {names[u["unit_id"]]: {k: v for k, v in u.items() if k != "unit_id"} for u in units}


def awards_of(app: ClosedLoop, cycle: UUID) -> list[Award]:
    topic = f"{Award.AwardIssued.__module__}:{Award.AwardIssued.__qualname__}"
    issued = app.recorder.select_notifications(1, 10_000, topics=[topic])
    awards = [app.get(Award, UUID(str(n.originator_id))) for n in issued]
    return [a for a in awards if a.cycle_id == cycle]


def independently_loaded(app: ClosedLoop, cycle_id: UUID) -> tuple[Cycle, list[Any]]:
    """The cycle, and every aggregate of an input kind loaded on its own from the repository."""
    prefixes = tuple(f"{kind.__module__}:{kind.__qualname__}." for kind in INPUT_KINDS)
    logged = app.recorder.select_notifications(1, 10_000)
    ids = dict.fromkeys(UUID(str(n.originator_id)) for n in logged if n.topic.startswith(prefixes))
    return app.get(Cycle, cycle_id), [app.get_aggregate(i) for i in ids]


# --- figures -----------------------------------------------------------------------------------


def test_settling_matches_the_hand_computed_figures(app: ClosedLoop, bureau: Bureau) -> None:
    outcome = app.settle_stage(bureau.cycle, stage="Q1", now=AFTER_Q1, zone=SHANGHAI)

    settlement = app.settlement(bureau.cycle, "Q1")
    assert settlement is not None and outcome.created
    assert settlement.id == outcome.settlement_id == settlement_id(bureau.cycle, "Q1", 1)
    assert by_key(bureau, settlement.units) == EXPECTED
    ranked = [(u["rank"], u["total"]) for u in settlement.units]
    assert ranked == [(1, "91.67"), (2, "86.00"), (2, "86.00"), (4, "52.86")]  # "1224"
    assert settlement.policy == POLICY.to_dict()
    assert settlement.policy_digest == POLICY.digest
    assert settlement.cutoff == datetime(2026, 4, 1, tzinfo=SHANGHAI)
    assert settlement.published


def test_settling_equals_compute_stage_over_aggregates_loaded_independently(
    app: ClosedLoop, bureau: Bureau
) -> None:
    outcome = app.settle_stage(bureau.cycle, stage="Q1", now=AFTER_Q1, zone=SHANGHAI)

    cycle, aggregates = independently_loaded(app, bureau.cycle)
    units = compute_stage(cycle, "Q1", aggregates, cycle.policy_for("Q1"))
    settlement = app.get(Settlement, outcome.settlement_id)
    assert settlement.units == [u.to_dict() for u in units]
    assert settlement.results_digest == results_digest(units)
    assert settlement.through_position < app.head_position()


def test_each_award_rule_hit_is_one_award_issued_naming_its_rule(
    app: ClosedLoop, bureau: Bureau
) -> None:
    outcome = app.settle_stage(bureau.cycle, stage="Q1", now=AFTER_Q1, zone=SHANGHAI)

    awards = awards_of(app, bureau.cycle)
    names = {unit_id: key for key, unit_id in bureau.units.items()}
    issued = sorted((a.rule, a.kind, names[a.unit_id], a.points) for a in awards if a.unit_id)
    assert issued == [
        ("bottom-quarter", AwardKind.PENALTY, "D", Decimal(3)),
        ("top-two", AwardKind.REWARD, "A", Decimal(5)),
        ("top-two", AwardKind.REWARD, "B", Decimal(5)),
        ("top-two", AwardKind.REWARD, "C", Decimal(5)),
    ]
    assert outcome.awards == len(awards) == events_by_type(app)["Award.AwardIssued"]
    for award in awards:
        assert award.stage == "Q1" and not award.revoked
        assert str(outcome.settlement_id) in award.basis
        assert f"rule {award.rule}" in award.basis


def test_a_second_settlement_finds_the_first_and_writes_nothing(
    app: ClosedLoop, bureau: Bureau
) -> None:
    first = app.settle_stage(bureau.cycle, stage="Q1", now=AFTER_Q1, zone=SHANGHAI)
    head = app.head_position()
    again = app.settle_stage(bureau.cycle, stage="Q1", now=AFTER_Q3, zone=SHANGHAI)

    assert first.created and first.position == head
    assert again == SettlementOutcome(first.settlement_id, False, None, 0)
    assert app.head_position() == head
    assert settlement_counts(app) == ONE_SETTLEMENT


# --- races -------------------------------------------------------------------------------------

THREADS = 6


@pytest.fixture
def second_app(store_settings: Settings) -> Iterator[ClosedLoop]:
    """Another command service on the same store: another API replica."""
    other = ClosedLoop(env=application_env(store_settings))
    try:
        yield other
    finally:
        other.close()


def test_threads_settling_at_once_make_one_settlement_and_one_set_of_awards(
    app: ClosedLoop, second_app: ClosedLoop, bureau: Bureau, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every thread has computed its settlement before any of them saves: one wins the cycle,
    the others lose on the store and then find the stage settled."""
    computed = threading.Barrier(THREADS, timeout=30)
    services = (app, second_app)
    for service in services:

        def save_when_all_computed(*aggregates: Any, _save: Any = service.save, **kw: Any) -> Any:
            computed.wait()
            return _save(*aggregates, **kw)

        monkeypatch.setattr(service, "save", save_when_all_computed)

    def settle(thread: int) -> SettlementOutcome:
        with acting_as(f"scheduler-{thread}"):
            return services[thread % 2].settle_stage(
                bureau.cycle, stage="Q1", now=AFTER_Q1, zone=SHANGHAI
            )

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        outcomes = list(pool.map(settle, range(THREADS), timeout=120))

    assert sorted(o.created for o in outcomes) == [False] * (THREADS - 1) + [True]
    assert {o.settlement_id for o in outcomes} == {settlement_id(bureau.cycle, "Q1", 1)}
    assert settlement_counts(app) == ONE_SETTLEMENT


def helper(settings: Settings, now: datetime, *args: str) -> list[str]:
    return [
        sys.executable,
        str(HELPER),
        "--database-url",
        settings.database_url or "",
        "--schema",
        settings.database_schema,
        "--now",
        now.isoformat(),
        *args,
    ]


def printed(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_two_processes_settling_at_once_make_one_settlement(
    app: ClosedLoop, bureau: Bureau, store_settings: Settings, tmp_path: Path
) -> None:
    meeting_point = tmp_path / "rendezvous"
    meeting_point.mkdir()
    command = helper(
        store_settings,
        AFTER_Q1,
        *("--rendezvous", str(meeting_point), "--parties", "2"),
        *("stage", str(bureau.cycle), "Q1"),
    )
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    finished = [process.communicate(timeout=120) for process in processes]

    for process, (_, stderr) in zip(processes, finished, strict=True):
        assert process.returncode == 0, stderr
    lines = [printed(stdout) for stdout, _ in finished]
    assert all({"saving": 1} in printed_lines for printed_lines in lines)  # both tried to write
    outcomes = [line for printed_lines in lines for line in printed_lines if "created" in line]
    assert sorted(o["created"] for o in outcomes) == [False, True]
    assert {o["settlement_id"] for o in outcomes} == {str(settlement_id(bureau.cycle, "Q1", 1))}
    assert settlement_counts(app) == ONE_SETTLEMENT


# A PostgreSQL save is one autocommitted statement: there is no moment inside it to kill, so
# that case runs on SQLite only (not skipped on PostgreSQL: it does not exist there).
@pytest.mark.parametrize(
    ("where", "store_settings"),
    [
        ("between-saves", "sqlite"),
        pytest.param("between-saves", "postgres", marks=pytest.mark.postgres),
        ("inside-a-save", "sqlite"),
    ],
    indirect=["store_settings"],
)
def test_settle_due_killed_midway_and_run_again_settles_each_stage_once(
    app: ClosedLoop, bureau: Bureau, store_settings: Settings, tmp_path: Path, where: str
) -> None:
    """``settle_due`` over Q1..Q3 is killed (SIGKILL) at its fourth save — Q2's settlement,
    after Q1 was closed and settled and Q2 closed: before it starts, or on SQLite inside its
    transaction with the rows written and not committed. Run again, and again, it settles what
    is left, once."""
    flag = tmp_path / "hanging"
    hang = "--hang-at-save" if where == "between-saves" else "--hang-inside-save"
    killed = subprocess.Popen(
        helper(store_settings, AFTER_Q3, hang, "4", "--flag", str(flag), "due"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not flag.exists():
        assert killed.poll() is None, killed.communicate()
        assert time.monotonic() < deadline, "the process never reached its fourth save"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=10)
    assert killed.returncode == -signal.SIGKILL
    assert settled_stages(app) == {"Q1": 1}

    again = subprocess.run(
        helper(store_settings, AFTER_Q3, "due"), capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    outcomes = [line for line in printed(again.stdout) if "created" in line]
    assert [(o["settlement_id"], o["created"]) for o in outcomes] == [
        (str(settlement_id(bureau.cycle, stage, 1)), True) for stage in ("Q2", "Q3")
    ]
    third = subprocess.run(
        helper(store_settings, AFTER_Q3, "due"), capture_output=True, text=True, timeout=120
    )
    assert third.returncode == 0, third.stderr
    assert not [line for line in printed(third.stdout) if "created" in line]

    assert settled_stages(app) == {"Q1": 1, "Q2": 1, "Q3": 1}
    counts = events_by_type(app)
    assert counts["Cycle.SettlementRecorded"] == counts["Settlement.RankingPublished"] == 3
    cycle = app.get(Cycle, bureau.cycle)
    assert cycle.settlements == {s: settlement_id(bureau.cycle, s, 1) for s in ("Q1", "Q2", "Q3")}
    for stage in cycle.settlements.values():
        assert app.verify_settlement(stage).matches


def late_inspection(service: ClosedLoop, bureau: Bureau) -> object:
    """B's Q1 inspection corrected from 80 to 20 (B's result 24 + 14 = 38)."""
    return service.confirm_effect(
        bureau.target,
        stage="Q1",
        method=EffectMethod.INSPECTION,
        unit_id=bureau.units["B"],
        result=Decimal(20),
        evidence="迟到的检查结论",
        reason="检查组复核",
    )


def q1_effects_after(app: ClosedLoop, position: int) -> list[Any]:
    return [
        event
        for event in map(
            app.mapper.to_domain_event, app.recorder.select_notifications(position + 1, 1000)
        )
        if isinstance(event, Target.EffectConfirmed) and event.stage == "Q1"
    ]


def test_an_effect_that_checked_the_stage_open_and_saves_after_its_settlement_is_refused(
    app: ClosedLoop, second_app: ClosedLoop, bureau: Bureau, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The effect's command has found Q1 open; Q1 is settled before the effect is saved."""
    settled: list[SettlementOutcome] = []
    save = second_app.save

    def settle_first(*aggregates: Any, **kw: Any) -> Any:
        if not settled:
            settled.append(app.settle_stage(bureau.cycle, stage="Q1", now=AFTER_Q1, zone=SHANGHAI))
        return save(*aggregates, **kw)

    monkeypatch.setattr(second_app, "save", settle_first)
    with pytest.raises((SettledStageAcceptsNoEffects, ConcurrencyConflict)):
        late_inspection(second_app, bureau)

    [outcome] = settled
    settlement = app.get(Settlement, outcome.settlement_id)
    assert outcome.created
    assert q1_effects_after(app, settlement.through_position) == []
    assert by_key(bureau, settlement.units)["B"] == EXPECTED["B"]
    with pytest.raises(SettledStageAcceptsNoEffects):
        late_inspection(second_app, bureau)


def test_an_effect_saved_while_the_settlement_computes_is_in_its_figures(
    app: ClosedLoop, second_app: ClosedLoop, bureau: Bureau, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settlement has read its inputs; an effect for the stage is saved before the
    settlement is: the settlement reads again, and settles with the effect."""
    confirmed: list[object] = []
    save = app.save

    def confirm_first(*aggregates: Any, **kw: Any) -> Any:
        if not confirmed:
            confirmed.append(late_inspection(second_app, bureau))
        return save(*aggregates, **kw)

    monkeypatch.setattr(app, "save", confirm_first)
    outcome = app.settle_stage(bureau.cycle, stage="Q1", now=AFTER_Q1, zone=SHANGHAI)

    settlement = app.get(Settlement, outcome.settlement_id)
    assert outcome.created and len(confirmed) == 1
    assert q1_effects_after(app, settlement.through_position) == []
    b = by_key(bureau, settlement.units)["B"]
    assert (b["components"]["result"], b["total"]) == ("38.00", "65.00")  # 19 + 30 + 16
    assert app.verify_settlement(outcome.settlement_id).matches


def test_a_target_created_while_the_settlement_reads_takes_no_effect_for_the_stage(
    app: ClosedLoop, second_app: ClosedLoop, bureau: Bureau, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another replica sets a new target while the settlement reads its inputs (so it is not
    sealed with them) and confirms a Q1 effect on it: the stage was closed before the reading,
    so the effect is refused rather than stored after the settlement and left out."""
    read = app._settlement_inputs
    refused: list[BaseException] = []

    def reading(cycle_id: UUID, *, through: int) -> Any:
        inputs = read(cycle_id, through=through)
        if not refused:
            late = second_app.set_unit_target(
                cycle_id=bureau.cycle,
                unit_id=bureau.units["D"],
                title="迟设目标",
                indicator=Indicator.quantitative(
                    metric="m", target_value=Decimal(100), direction=Direction.HIGHER_IS_BETTER
                ),
                points=Decimal(90),
            ).id
            with pytest.raises(ClosedStageAcceptsNoEffects) as error:  # closed, not yet settled
                second_app.confirm_effect(
                    late,
                    stage="Q1",
                    method=EffectMethod.INSPECTION,
                    unit_id=bureau.units["D"],
                    result=Decimal(100),
                    evidence="迟到",
                )
            refused.append(error.value)
        return inputs

    monkeypatch.setattr(app, "_settlement_inputs", reading)
    outcome = app.settle_stage(bureau.cycle, stage="Q1", now=AFTER_Q1, zone=SHANGHAI)
    assert outcome.created and refused
    settlement = app.get(Settlement, outcome.settlement_id)
    assert q1_effects_after(app, settlement.through_position) == []
    monkeypatch.undo()
    assert app.verify_settlement(outcome.settlement_id).matches


# --- time zones, late effects, policy ----------------------------------------------------------

# Q1's cut-off is 2026-04-01 00:00 local time: 2026-03-31T16:00Z in Shanghai, 2026-04-01T00:00Z
# in UTC. Half an hour after the first, Q1 has ended in Shanghai and not in UTC.
BOUNDARY = datetime(2026, 3, 31, 16, 30, tzinfo=UTC)


def test_a_stage_is_settled_only_after_its_cutoff_in_the_settlement_time_zone(
    app: ClosedLoop, bureau: Bureau
) -> None:
    head = app.head_position()
    with pytest.raises(StageNotEnded):
        app.settle_stage(bureau.cycle, stage="Q1", now=BOUNDARY, zone=UTC)
    with pytest.raises(StageNotEnded):
        app.settle_stage(
            bureau.cycle,
            stage="Q1",
            now=datetime(2026, 3, 31, 15, 59, 59, tzinfo=UTC),
            zone=SHANGHAI,
        )
    with pytest.raises(StageNotEnded):
        app.settle_stage(bureau.cycle, stage="Q2", now=BOUNDARY, zone=SHANGHAI)
    assert app.settle_due(now=BOUNDARY, zone=UTC) == []
    assert app.head_position() == head

    [outcome] = app.settle_due(now=BOUNDARY, zone=SHANGHAI)

    settlement = app.get(Settlement, outcome.settlement_id)
    assert (settlement.stage, outcome.created) == ("Q1", True)
    assert settlement.cutoff == datetime(2026, 3, 31, 16, tzinfo=UTC)


def test_a_settled_stage_refuses_late_effects_and_later_stages_take_them(
    app: ClosedLoop, bureau: Bureau
) -> None:
    app.settle_stage(bureau.cycle, stage="Q1", now=AFTER_Q1, zone=SHANGHAI)
    head = app.head_position()

    def confirm(stage: str) -> object:
        return app.confirm_effect(
            bureau.target,
            stage=stage,
            method=EffectMethod.INSPECTION,
            unit_id=bureau.units["B"],
            result=Decimal(95),
            evidence="补充检查",
            reason="检查组复核",
        )

    with pytest.raises(SettledStageAcceptsNoEffects):
        confirm("Q1")
    assert app.head_position() == head
    confirm("Q2")
    assert app.head_position() == head + 1


REVISED = ScoringPolicy(
    result_weight=Decimal("0.6"),
    process_weight=Decimal("0.2"),
    meeting_weight=Decimal("0.2"),
    award_rules=(AwardRule("first", "reward", "rank", Decimal(1), Decimal(8)),),
)
# Q2 under REVISED: inspections only, no Q2 meeting (weights .6/.8 = 0.75 and 0.25), and A's
# open measure (due 20 March) still costs 5: A .75*100 + .25*95 = 98.75; B .75*60 + .25*100 =
# 70.00; C .75*90 + .25*100 = 92.50; D nothing due, result alone: 70.00. Under POLICY A would
# have .625*100 + .375*95 = 98.125 -> 98.13.
Q2_INSPECTIONS = {"A": 100, "B": 60, "C": 90, "D": 70}
AFTER_Q2 = datetime(2026, 7, 1, 9, tzinfo=SHANGHAI)


def test_a_policy_is_frozen_for_settled_stages_and_revised_from_a_later_one(
    app: ClosedLoop, bureau: Bureau
) -> None:
    first = app.settle_stage(bureau.cycle, stage="Q1", now=AFTER_Q1, zone=SHANGHAI)
    head = app.head_position()
    with pytest.raises(PolicyFrozenOnceSettled):
        app.revise_policy(bureau.cycle, policy=REVISED, from_stage="Q1", reason="年中调整")
    with pytest.raises(ReasonRequired):
        app.revise_policy(bureau.cycle, policy=REVISED, from_stage="Q2", reason="  ")
    assert app.head_position() == head

    app.revise_policy(bureau.cycle, policy=REVISED, from_stage="Q2", reason="党委会决定调整权重")
    for key, value in Q2_INSPECTIONS.items():
        app.confirm_effect(
            bureau.target,
            stage="Q2",
            method=EffectMethod.INSPECTION,
            unit_id=bureau.units[key],
            result=Decimal(value),
            evidence="二季度检查",
        )
    second = app.settle_stage(bureau.cycle, stage="Q2", now=AFTER_Q2, zone=SHANGHAI)

    q1, q2 = app.get(Settlement, first.settlement_id), app.get(Settlement, second.settlement_id)
    assert (q1.policy_digest, q2.policy_digest) == (POLICY.digest, REVISED.digest)
    assert q2.policy == REVISED.to_dict()
    figures = {
        k: (u["total"], u["rank"], u["weights"]) for k, u in by_key(bureau, q2.units).items()
    }
    assert figures == {
        "A": ("98.75", 1, {"result": "0.75", "process": "0.25"}),
        "C": ("92.50", 2, {"result": "0.75", "process": "0.25"}),
        "B": ("70.00", 3, {"result": "0.75", "process": "0.25"}),
        "D": ("70.00", 3, {"result": "1"}),
    }
    cycle, aggregates = independently_loaded(app, bureau.cycle)
    assert q2.units == [u.to_dict() for u in compute_stage(cycle, "Q2", aggregates, REVISED)]
    unrevised = compute_stage(cycle, "Q2", aggregates, POLICY)
    assert unrevised[0].total == Decimal("98.13")
    q2_awards = [a for a in awards_of(app, bureau.cycle) if a.stage == "Q2"]
    assert [(a.rule, a.unit_id) for a in q2_awards] == [("first", bureau.units["A"])]
    with pytest.raises(PolicyFrozenOnceSettled):
        app.revise_policy(bureau.cycle, policy=POLICY, from_stage="Q2", reason="恢复原办法")
    app.revise_policy(bureau.cycle, policy=POLICY, from_stage="Q3", reason="恢复原办法")
    assert app.get(Cycle, bureau.cycle).policy_for("Q3") == POLICY


# --- verification and reopening ----------------------------------------------------------------


def stored_effect(app: ClosedLoop, target: UUID, unit: UUID, stage: str) -> tuple[int, bytes]:
    """(version, stored state) of the inspection confirmed for ``unit`` in ``stage``."""
    for stored in app.recorder.select_events(target):
        event = app.mapper.to_domain_event(stored)
        if isinstance(event, Target.EffectConfirmed) and (
            event.unit_id,
            event.stage,
            event.method,
        ) == (unit, stage, EffectMethod.INSPECTION):
            return stored.originator_version, stored.state
    raise LookupError("no such effect")


def tamper(settings: Settings, table: str, originator: UUID, version: int, state: bytes) -> None:
    """Overwrite one stored event's state, behind the application's back."""
    db = open_database(settings)
    try:
        key = originator if db.dialect == "postgres" else originator.hex
        with db.transaction() as cursor:
            cursor.execute(
                f"UPDATE {table} SET state = %s WHERE originator_id = %s "
                "AND originator_version = %s",
                [state, key, version],
            )
            assert cursor.rowcount == 1
    finally:
        db.close()


def test_verification_matches_and_detects_a_stored_input_changed_afterwards(
    app: ClosedLoop, bureau: Bureau, store_settings: Settings
) -> None:
    outcome = app.settle_stage(bureau.cycle, stage="Q1", now=AFTER_Q1, zone=SHANGHAI)
    check = app.verify_settlement(outcome.settlement_id)
    assert check.matches, check.differences
    assert check.through_position == app.get(Settlement, outcome.settlement_id).through_position

    unit_b = bureau.units["B"]
    version, state = stored_effect(app, bureau.target, unit_b, "Q1")
    data = json.loads(state)
    assert data["result"]["_data_"] == "80"
    data["result"]["_data_"] = "20"
    table = str(app.recorder.events_table_name)  # type: ignore[attr-defined]
    tamper(store_settings, table, bureau.target, version, json.dumps(data).encode())

    with ClosedLoop(env=application_env(store_settings)) as fresh:
        check = fresh.verify_settlement(outcome.settlement_id)
    assert not check.matches
    assert check.differences[0].startswith("inputs digest: recorded ")
    assert any(d.startswith(f"unit {unit_b}: recorded ") for d in check.differences)
    assert any(d.startswith("results digest: recorded ") for d in check.differences)
    assert "published ranking: differs from the recomputed ranking" in check.differences


def test_reopening_revokes_the_awards_and_the_next_round_settles_with_a_new_id(
    app: ClosedLoop, bureau: Bureau
) -> None:
    first = app.settle_stage(bureau.cycle, stage="Q1", now=AFTER_Q1, zone=SHANGHAI)
    head = app.head_position()
    with pytest.raises(ReasonRequired):
        app.reopen_stage(bureau.cycle, stage="Q1", reason=" ")
    assert app.head_position() == head

    app.reopen_stage(bureau.cycle, stage="Q1", reason="B单位申诉：检查结论录入有误")

    assert app.settlement(bureau.cycle, "Q1") is None
    assert app.get(Settlement, first.settlement_id).reopened
    revoked = awards_of(app, bureau.cycle)
    assert len(revoked) == 4 and all(a.revoked for a in revoked)
    assert events_by_type(app)["Award.AwardRevoked"] == 4
    with pytest.raises(OnlySettledStagesReopen):
        app.reopen_stage(bureau.cycle, stage="Q1", reason="再次申诉")

    # Reopened, the stage takes the correction (B's inspection 80 -> 90: result 87, total 89.50).
    app.confirm_effect(
        bureau.target,
        stage="Q1",
        method=EffectMethod.INSPECTION,
        unit_id=bureau.units["B"],
        result=Decimal(90),
        evidence="复核检查记录",
        reason="申诉复核更正",
    )
    second = app.settle_stage(bureau.cycle, stage="Q1", now=AFTER_Q1, zone=SHANGHAI)

    assert second.created
    assert second.settlement_id == settlement_id(bureau.cycle, "Q1", 2) != first.settlement_id
    assert app.settlement(bureau.cycle, "Q1") == app.get(Settlement, second.settlement_id)
    rerun = app.get(Settlement, second.settlement_id)
    ranks = {k: (u["total"], u["rank"]) for k, u in by_key(bureau, rerun.units).items()}
    assert ranks == {"A": ("91.67", 1), "B": ("89.50", 2), "C": ("86.00", 3), "D": ("52.86", 4)}
    names = {unit_id: key for key, unit_id in bureau.units.items()}
    current = sorted(
        (a.rule, names[a.unit_id])
        for a in awards_of(app, bureau.cycle)
        if not a.revoked and a.unit_id
    )
    assert current == [("bottom-quarter", "D"), ("top-two", "A"), ("top-two", "B")]
    assert app.verify_settlement(first.settlement_id).matches
    assert app.verify_settlement(second.settlement_id).matches


# --- missed deadlines --------------------------------------------------------------------------

DEADLINE = date(2026, 5, 15)
# Passes at 2026-05-16 00:00 in Shanghai, i.e. 2026-05-15T16:00Z.
JUST_BEFORE = datetime(2026, 5, 15, 15, 59, 59, tzinfo=UTC)
JUST_AFTER_IN_SHANGHAI = datetime(2026, 5, 15, 16, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Item:
    """A measure, rectification or dispatched problem of unit A, due ``DEADLINE``."""

    id: UUID
    finish: Callable[[ClosedLoop], object]  # completes or resolves it


def new_item(app: ClosedLoop, bureau: Bureau, kind: str) -> Item:
    unit = bureau.units["A"]
    if kind == "measure":
        measure = adopt_measure(app, bureau, "A", DEADLINE)
        return Item(measure, lambda a: a.complete_measure(measure, evidence="完成报告"))
    if kind == "rectification":
        rectification = app.order_rectification(
            cycle_id=bureau.cycle, unit_id=unit, requirement="限期整改台账", deadline=DEADLINE
        ).id
        return Item(
            rectification, lambda a: a.complete_rectification(rectification, evidence="整改报告")
        )
    problem = found(app, bureau)
    app.dispatch_problem(problem, to_unit_id=unit, requirement="限期消除", deadline=DEADLINE)
    return Item(problem, lambda a: a.resolve_problem(problem, evidence="整改完毕"))


def found(app: ClosedLoop, bureau: Bureau) -> UUID:
    return app.find_problem(
        cycle_id=bureau.cycle,
        unit_id=bureau.units["A"],
        title="防火通道堵塞",
        source=ProblemSource.INSPECTION,
        found_at=datetime(2026, 5, 1, 9, tzinfo=SHANGHAI),
    ).id


ITEM_KINDS = ["measure", "rectification", "problem"]


def missed(app: ClosedLoop, item: UUID) -> list[Any]:
    return [e.data["deadline"] for e in app.history(item) if e.type == "DeadlineMissed"]


@pytest.mark.parametrize("kind", ITEM_KINDS)
def test_a_deadline_is_missed_once_and_only_after_it_passes(
    app: ClosedLoop, bureau: Bureau, kind: str
) -> None:
    item = new_item(app, bureau, kind)
    head = app.head_position()
    with pytest.raises(DeadlineNotPassed):
        app.record_deadline_missed(item.id, now=JUST_BEFORE, zone=SHANGHAI)
    with pytest.raises(DeadlineNotPassed):
        app.record_deadline_missed(item.id, now=JUST_AFTER_IN_SHANGHAI, zone=UTC)
    assert app.head_position() == head

    app.record_deadline_missed(item.id, now=JUST_AFTER_IN_SHANGHAI, zone=SHANGHAI)
    with pytest.raises(DeadlineMissedOnlyOnce):
        app.record_deadline_missed(item.id, now=AFTER_Q3, zone=SHANGHAI)

    assert app.head_position() == head + 1
    assert missed(app, item.id) == [DEADLINE]


@pytest.mark.parametrize("kind", ITEM_KINDS)
def test_a_finished_item_misses_no_deadline(app: ClosedLoop, bureau: Bureau, kind: str) -> None:
    item = new_item(app, bureau, kind)
    item.finish(app)
    head = app.head_position()
    with pytest.raises(FinishedItemMissesNoDeadline):
        app.record_deadline_missed(item.id, now=AFTER_Q3, zone=SHANGHAI)
    assert app.head_position() == head


def test_an_undispatched_problem_has_no_deadline_and_a_new_one_can_be_missed_again(
    app: ClosedLoop, bureau: Bureau
) -> None:
    problem = found(app, bureau)
    with pytest.raises(NoDeadlineToMiss):
        app.record_deadline_missed(problem, now=AFTER_Q3, zone=SHANGHAI)
    app.dispatch_problem(
        problem, to_unit_id=bureau.units["A"], requirement="限期消除", deadline=DEADLINE
    )
    app.record_deadline_missed(problem, now=JUST_AFTER_IN_SHANGHAI, zone=SHANGHAI)
    app.dispatch_problem(
        problem, to_unit_id=bureau.units["B"], requirement="改派B场", deadline=date(2026, 6, 15)
    )
    app.record_deadline_missed(problem, now=AFTER_Q3, zone=SHANGHAI)
    assert missed(app, problem) == [DEADLINE, date(2026, 6, 15)]


def test_only_measures_rectifications_and_problems_miss_deadlines(
    app: ClosedLoop, bureau: Bureau
) -> None:
    with pytest.raises(NotFound):
        app.record_deadline_missed(bureau.target, now=AFTER_Q3, zone=SHANGHAI)
