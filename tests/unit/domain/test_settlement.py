"""Scoring policy as stored, award rules, the cycle's settlement rules, deadlines as facts, and
settling a stage from aggregates (no store)."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from closedloop.domain.awards import Award
from closedloop.domain.cycles import (
    OnlySettledStagesReopen,
    PolicyFrozenOnceSettled,
    SettledStageAcceptsNoEffects,
    StageSettledOnlyOnce,
)
from closedloop.domain.deadlines import (
    DeadlineMissedOnlyOnce,
    DeadlineNotPassed,
    FinishedItemMissesNoDeadline,
    NoDeadlineToMiss,
)
from closedloop.domain.errors import InvalidValue, ReasonRequired
from closedloop.domain.scoring import DEFAULT_POLICY, AwardRule, Ranked, ScoringPolicy
from closedloop.domain.settlement import (
    Settlement,
    SettlementInputs,
    StageNotEnded,
    award_id,
    compute_stage,
    settlement_id,
)
from closedloop.domain.targets import EffectMethod
from tests.unit.domain import factories as f

D = Decimal
SHANGHAI = ZoneInfo("Asia/Shanghai")


# --- policy as stored ----------------------------------------------------------------------------


def test_a_policy_survives_its_stored_form_and_its_digest_is_stable() -> None:
    policy = ScoringPolicy(
        result_weight=D("0.6"),
        meeting_aggregation="mean",
        award_rules=(AwardRule("前三", "reward", "rank", D(3), D(2)),),
    )
    stored = policy.to_dict()
    assert stored["result_weight"] == "0.6" and stored["award_rules"][0]["value"] == "3"
    assert ScoringPolicy.from_dict(stored) == policy
    assert ScoringPolicy.from_dict(stored).digest == policy.digest != DEFAULT_POLICY.digest
    assert ScoringPolicy.from_dict({}) == DEFAULT_POLICY  # left out: the defaults


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"result_weight": "heavy"}, "result_weight"),
        ({"result_weight": "-1"}, "weights"),
        ({"self_assessment_share": "0.5"}, "self_assessment_share"),
        ({"trim_min_raters": "5"}, "trim_min_raters"),
        ({"colour": "red"}, "colour"),
        ({"award_rules": [{"name": "x", "kind": "bonus", "basis": "rank", "value": 1}]}, "kind"),
        ({"award_rules": [{"name": "x", "kind": "reward", "basis": "rank"}]}, "value"),
        (
            {"award_rules": [{"name": "x", "kind": "reward", "basis": "top_share", "value": 2}]},
            "award_rules.value",
        ),
        (
            {
                "award_rules": [
                    {"name": "x", "kind": "reward", "basis": "rank", "value": 1},
                    {"name": "x", "kind": "penalty", "basis": "below", "value": 60},
                ]
            },
            "award_rules.name",
        ),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        ScoringPolicy.from_dict(data)
    assert field in str(refused.value.values["field"])


# --- award rules ---------------------------------------------------------------------------------


RANKED = [
    Ranked("a", D(95), 1),
    Ranked("b", D(95), 1),
    Ranked("c", D(80), 3),
    Ranked("d", D(59), 4),
    Ranked("e", D(59), 4),
    Ranked("f", None, None),
]


@pytest.mark.parametrize(
    ("rule", "units"),
    [
        (AwardRule("r", "reward", "rank", D(1)), ["a", "b"]),  # a tie at the boundary: both
        (AwardRule("r", "reward", "rank", D(3)), ["a", "b", "c"]),
        (AwardRule("r", "reward", "top_share", D("0.2")), ["a", "b"]),  # 0.2 * 5 = 1 → rank ≤ 1
        (AwardRule("r", "penalty", "bottom_share", D("0.2")), ["d", "e"]),  # both last
        (AwardRule("r", "penalty", "bottom_share", D("0.5")), ["c", "d", "e"]),  # 2.5 → 3
        (AwardRule("r", "penalty", "bottom_share", D("0.3")), ["d", "e"]),  # 1.5 → 2
        (AwardRule("r", "penalty", "below", D(60)), ["d", "e"]),
        (AwardRule("r", "reward", "at_least", D(95)), ["a", "b"]),
        (AwardRule("r", "reward", "at_least", D(0)), ["a", "b", "c", "d", "e"]),  # never unranked
    ],
)
def test_award_rules_pick_units_by_rank_share_or_threshold(
    rule: AwardRule, units: list[str]
) -> None:
    assert [hit.unit_id for hit in rule.hits(RANKED)] == units


# --- the cycle: policy per stage, settlement rules ------------------------------------------------


def test_the_policy_in_force_is_the_last_one_set_from_that_stage_or_earlier() -> None:
    first = ScoringPolicy(meeting_aggregation="mean")
    later = ScoringPolicy(overdue_measure_deduction=D(8))
    cycle = f.cycle()
    assert cycle.policy_for("Q3") == DEFAULT_POLICY
    cycle.revise_policy(first, from_stage="Q1", reason="年初确定")
    cycle.revise_policy(later, from_stage="Q3", reason="下半年加重")
    assert [cycle.policy_for(s) for s in ("Q1", "Q2", "Q3", "Q4")] == [first, first, later, later]
    with f.rejected(ReasonRequired, untouched=[cycle]):
        cycle.revise_policy(first, from_stage="Q2", reason=" ")


def test_a_settled_stage_freezes_its_policy_refuses_effects_and_settles_once_per_round() -> None:
    cycle = f.cycle()
    first = uuid4()
    cycle.record_settlement("Q2", first)
    with f.rejected(PolicyFrozenOnceSettled, "Q2", untouched=[cycle]):
        cycle.revise_policy(DEFAULT_POLICY, from_stage="Q1", reason="改")
    cycle.revise_policy(DEFAULT_POLICY, from_stage="Q3", reason="改")  # Q3 onwards is open
    with f.rejected(StageSettledOnlyOnce, first, untouched=[cycle]):
        cycle.record_settlement("Q2", uuid4())
    with f.rejected(SettledStageAcceptsNoEffects, "Q2", untouched=[cycle]):
        cycle.require_open_for_effects("Q2")
    with f.rejected(OnlySettledStagesReopen, "Q1", untouched=[cycle]):
        cycle.reopen_stage("Q1", reason="复核")
    with f.rejected(ReasonRequired, untouched=[cycle]):
        cycle.reopen_stage("Q2", reason="")
    cycle.close_stage("Q2")
    assert cycle.reopen_stage("Q2", reason="复核") == first
    # Reopened: the next round, and open for corrections again.
    assert (cycle.settlement_round("Q2"), cycle.is_settled("Q2")) == (2, False)
    cycle.require_open_for_effects("Q2")
    assert settlement_id(cycle.id, "Q2", 2) != settlement_id(cycle.id, "Q2", 1)


def test_a_stage_ends_at_midnight_after_its_last_day_in_the_zone() -> None:
    q1 = f.cycle().stage("Q1")
    assert q1.cutoff(SHANGHAI) == datetime(2026, 3, 31, 16, tzinfo=UTC)
    assert q1.cutoff(UTC) == datetime(2026, 4, 1, tzinfo=UTC)


# --- deadlines as facts ---------------------------------------------------------------------


def test_a_missed_deadline_is_recorded_once_after_it_passes_and_never_for_finished_items() -> None:
    cycle = f.cycle()
    lead = f.unit()
    leader = f.person(lead)
    target = f.common_target(cycle, [lead])
    measure = f.measure(cycle, lead, leader, target=target, deadline=date(2026, 6, 30))
    passes = datetime(2026, 6, 30, 16, tzinfo=UTC)  # midnight in Shanghai
    with f.rejected(DeadlineNotPassed, "2026-06-30", untouched=[measure]):
        measure.miss_deadline(now=passes.replace(minute=0, hour=15), zone=SHANGHAI)
    measure.miss_deadline(now=passes, zone=SHANGHAI)
    assert f.last_event_name(measure) == "DeadlineMissed"
    assert measure.missed_deadlines == (date(2026, 6, 30),)
    with f.rejected(DeadlineMissedOnlyOnce, untouched=[measure]):
        measure.miss_deadline(now=passes, zone=SHANGHAI)
    done = f.measure(cycle, lead, leader, target=target, deadline=date(2026, 6, 30))
    done.complete(evidence="完成")
    with f.rejected(FinishedItemMissesNoDeadline, untouched=[done]):
        done.miss_deadline(now=passes, zone=SHANGHAI)
    undispatched = f.problem(cycle, lead)
    with f.rejected(NoDeadlineToMiss, untouched=[undispatched]):
        undispatched.miss_deadline(now=passes, zone=SHANGHAI)


# --- settling from aggregates ---------------------------------------------------------------


def test_settling_computes_ranks_awards_and_the_cycles_record_from_the_inputs() -> None:
    policy = ScoringPolicy(
        award_rules=(
            AwardRule("第一名表扬", "reward", "rank", D(1), D(3)),
            AwardRule("低于60分通报", "penalty", "below", D(60)),
        )
    )
    cycle = f.cycle()
    cycle.revise_policy(policy, from_stage="Q1", reason="年初确定")
    root = f.committee()
    good, poor, idle = (f.unit(parent=root, name=n) for n in ("甲", "乙", "丙"))
    target = f.common_target(cycle, [good, poor, idle])
    for unit, value in ((good, D(95)), (poor, D(40))):
        target.confirm_effect(
            cycle,
            stage="Q1",
            method=EffectMethod.INSPECTION,
            unit=unit,
            result=value,
            evidence="检查",
        )
    inputs = SettlementInputs(cycle, [target], through_position=42, events_read=9, digest="d")
    units = compute_stage(cycle, "Q1", [target], policy)
    assert [(u.unit_id, u.total, u.rank) for u in units] == sorted(
        [(good.id, D("100.00"), 1), (poor.id, D("42.11"), 2), (idle.id, None, None)],
        key=lambda row: (row[2] is None, row[2] or 0),
    )
    with f.rejected(StageNotEnded, "Q1"):
        Settlement.settle(
            inputs=inputs,
            stage_key="Q1",
            cutoff=cycle.stage("Q1").cutoff(SHANGHAI),
            now=datetime(2026, 3, 31, 15, tzinfo=UTC),
        )
    stale = copy.deepcopy(cycle)  # as a command that loaded it before the settlement saw it
    settlement, changed = Settlement.settle(
        inputs=inputs,
        stage_key="Q1",
        cutoff=cycle.stage("Q1").cutoff(SHANGHAI),
        now=datetime(2026, 4, 1, tzinfo=UTC),
    )
    assert settlement.id == settlement_id(cycle.id, "Q1", 1)
    assert (settlement.through_position, settlement.policy_digest) == (42, policy.digest)
    assert [type(e).__name__ for e in settlement.pending_events] == [
        "StageSettled",
        "RankingPublished",
    ]
    assert cycle.settlements == {"Q1": settlement.id}
    awards = [a for a in changed if isinstance(a, Award)]
    assert changed[:2] == [cycle, target] and len(changed) == 2 + len(awards)
    # The target is sealed for Q1 in the same save: a late effect is refused by the target
    # itself, even by a command that loaded the cycle before the settlement.
    assert target.sealed == {"Q1": settlement.id}
    with f.rejected(SettledStageAcceptsNoEffects, "Q1", untouched=[target]):
        target.confirm_effect(
            stale,
            stage="Q1",
            method=EffectMethod.SELF_ASSESSMENT,
            unit=idle,
            result=D(90),
            evidence="迟到",
        )
    assert sorted((a.rule, a.unit_id) for a in awards) == sorted(
        [("第一名表扬", good.id), ("低于60分通报", poor.id)]
    )
    assert {a.id for a in awards} == {
        award_id(settlement.id, "第一名表扬", good.id),
        award_id(settlement.id, "低于60分通报", poor.id),
    }
    reward = next(a for a in awards if a.rule == "第一名表扬")
    assert "rank 1 of 2" in reward.basis and reward.points == D(3)
