"""Stage settlement (季度结算): the scores of a stage fixed once, ranked, posted and rewarded.

A settlement is a deterministic function of two things, both recorded in its ``StageSettled``
event so anyone can recompute it:

* the **inputs**: every event at notification positions ``1..through_position`` of the
  aggregates of the cycle (the cycle, its targets, meetings, measures, rectifications and
  problems). ``inputs_digest`` is the SHA-256 over those stored records in position order, so a
  changed record is detected by verification.
* the **policy** in force for the stage (:meth:`Cycle.policy_for`), stored whole with its digest.

The figures are computed with :mod:`closedloop.domain.scoring`, exactly as the scoreboard
computes them: the units of the cycle are those some non-withdrawn target applies to; a target's
result combines its latest self-assessment and inspection for the stage; the process component
counts items due by the stage's last day and unfinished at the cut-off position; the meeting
component aggregates the stage's meetings.

One settlement per cycle, stage and round: the settlement's id is derived from the three, and
the cycle records it in the same transaction (``Cycle.SettlementRecorded``), so a second attempt
from another replica or a retry conflicts instead of doubling. Each award rule hit becomes one
``AwardIssued`` with an id derived from the settlement, the rule and the unit.

Late effects: before reading its inputs a settlement closes the stage (``StageClosed``, if it is
not closed yet), and every target it read is sealed for the stage in the settlement's own
transaction (``Target.StageSealed``). An effect confirmation racing the settlement either is
stored first — then the sealed target's version has moved, the settlement's save conflicts, and
it reads its inputs again, this time with the effect — or comes after and is refused by the
sealed target. A target created after the inputs were read is created after the stage was
closed, so every effect command on it loads the closed cycle and is refused. No effect is ever
stored for a settled stage, and none is lost silently.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from closedloop.domain.awards import Award, AwardKind
from closedloop.domain.base import LoopAggregate, require_reason
from closedloop.domain.cycles import Cycle, Stage
from closedloop.domain.errors import RuleViolation
from closedloop.domain.measures import Measure, MeasureStatus
from closedloop.domain.meetings import Meeting
from closedloop.domain.problems import Problem, ProblemStatus, Severity
from closedloop.domain.rectifications import Rectification, RectificationStatus
from closedloop.domain.scoring import (
    MEETING,
    PROCESS,
    RESULT,
    AwardRule,
    ProcessFacts,
    Ranked,
    ScoringPolicy,
    UnitScore,
    meeting_component,
    normalise,
    process_score,
    rank,
    result_component,
    target_result,
    unit_total,
)
from closedloop.domain.targets import EffectMethod, Target

_SETTLEMENT_NAMESPACE = uuid.UUID("0b6f3c1e-5d2a-4e8f-9a7b-3c4d5e6f7a8b")
# Aggregate kinds a stage's figures are computed from (besides the cycle itself).
INPUT_KINDS: tuple[type[LoopAggregate], ...] = (Target, Meeting, Measure, Rectification, Problem)


class StageNotEnded(RuleViolation):
    """A stage is settled only after its cut-off (midnight after its last day, in the
    settlement time zone)."""


class SettlementReopenedOnlyOnce(RuleViolation):
    """A settlement already set aside by reopening its stage cannot be set aside again."""


def require_ended(stage: str, *, cutoff: datetime, now: datetime) -> None:
    if now < cutoff:
        raise StageNotEnded(stage=stage, cutoff=cutoff.isoformat(), now=now.isoformat())


def settlement_id(cycle_id: UUID, stage: str, round_number: int) -> UUID:
    return uuid.uuid5(_SETTLEMENT_NAMESPACE, f"{cycle_id}/{stage}/{round_number}")


def award_id(settlement: UUID, rule: str, unit_id: UUID) -> UUID:
    return uuid.uuid5(_SETTLEMENT_NAMESPACE, f"{settlement}/{rule}/{unit_id}")


@dataclass(frozen=True)
class SettledUnit:
    """One unit's settled figures, as stored (Decimals as strings, None for absent)."""

    unit_id: UUID
    components: dict[str, Decimal | None]
    weights: dict[str, Decimal]
    total: Decimal | None
    rank: int | None
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit_id": str(self.unit_id),
            "components": {k: _text(v) for k, v in self.components.items()},
            "weights": {k: str(v) for k, v in self.weights.items()},
            "total": _text(self.total),
            "rank": self.rank,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class SettlementInputs:
    """What a stage is settled from: the cycle and its aggregates as of ``through_position``."""

    cycle: Cycle
    aggregates: Sequence[LoopAggregate]
    through_position: int
    events_read: int
    digest: str


class InputsDigest:
    """SHA-256 over stored records in position order (position, id, version, topic, state)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(
        self, position: int, originator_id: UUID, version: int, topic: str, state: bytes
    ) -> None:
        self._hash.update(f"{position}|{originator_id}|{version}|{topic}|{len(state)}|".encode())
        self._hash.update(state)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def compute_stage(
    cycle: Cycle, stage_key: str, aggregates: Iterable[LoopAggregate], policy: ScoringPolicy
) -> list[SettledUnit]:
    """Every unit's settled figures for the stage, in ranking order.

    The inputs are grouped by unit once, so the work grows with the inputs, not with units
    times inputs.
    """
    stage = cycle.stage(stage_key)
    targets_of: dict[UUID, list[Target]] = defaultdict(list)
    scores_of: dict[UUID, list[list[Decimal]]] = defaultdict(list)
    items_of: dict[UUID, _Items] = defaultdict(_Items)
    for aggregate in aggregates:
        if getattr(aggregate, "cycle_id", None) != cycle.id:
            continue
        if isinstance(aggregate, Target) and not aggregate.withdrawn:
            for unit in dict.fromkeys(aggregate.applies_to):
                targets_of[unit].append(aggregate)
        elif isinstance(aggregate, Meeting) and aggregate.stage == stage_key:
            for unit, given in _scores_by_unit(aggregate).items():
                scores_of[unit].append(given)
        elif isinstance(aggregate, Measure):
            items_of[aggregate.lead_unit_id].measures.append(aggregate)
        elif isinstance(aggregate, Rectification):
            items_of[aggregate.unit_id].rectifications.append(aggregate)
        elif isinstance(aggregate, Problem):
            items_of[aggregate.dispatched_to or aggregate.unit_id].problems.append(aggregate)
    scores: dict[UUID, UnitScore] = {}
    for unit, targets in targets_of.items():
        results = [(t.points, _target_result(t, stage_key, unit, policy)) for t in targets]
        items = items_of.get(unit, _Items())
        facts = process_facts(items.measures, items.rectifications, items.problems, unit, stage)
        scores[unit] = unit_total(
            {
                RESULT: result_component(results, policy),
                PROCESS: process_score(facts, policy),
                MEETING: meeting_component(scores_of.get(unit, []), policy),
            },
            policy,
        )
    return [
        SettledUnit(
            unit_id=ranked.unit_id,
            components=scores[ranked.unit_id].components,
            weights=scores[ranked.unit_id].weights,
            total=ranked.total,
            rank=ranked.rank,
            notes=scores[ranked.unit_id].notes,
        )
        for ranked in rank({unit: score.total for unit, score in scores.items()})
    ]


@dataclass
class _Items:
    measures: list[Measure] = field(default_factory=list)
    rectifications: list[Rectification] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _scores_by_unit(meeting: Meeting) -> dict[UUID, list[Decimal]]:
    """Each unit's scores at the meeting, normalised to 0-100."""
    by_unit: dict[UUID, list[Decimal]] = defaultdict(list)
    for (unit, _), score in meeting.scores.items():
        by_unit[unit].append(normalise(score, meeting.scale_min, meeting.scale_max))
    return by_unit


def _target_result(
    target: Target, stage_key: str, unit: UUID, policy: ScoringPolicy
) -> Decimal | None:
    own = target.effects.get((stage_key, EffectMethod.SELF_ASSESSMENT, unit))
    inspected = target.effects.get((stage_key, EffectMethod.INSPECTION, unit))
    return target_result(
        target.indicator,
        target.milestones.get(stage_key),
        own.result if own else None,
        inspected.result if inspected else None,
        policy,
    )


def process_facts(
    measures: Iterable[Measure],
    rectifications: Iterable[Rectification],
    problems: Iterable[Problem],
    unit: UUID,
    stage: Stage,
) -> ProcessFacts:
    """Items of the unit due by the stage's last day, those unfinished, and prominent problems
    resolved within the stage (the scoreboard's process rule)."""
    due = overdue = missed = unresolved = prominent = 0
    for measure in measures:
        if measure.lead_unit_id == unit and measure.deadline <= stage.ends_on:
            due += 1
            overdue += measure.status is MeasureStatus.ADOPTED
    for rectification in rectifications:
        if rectification.unit_id == unit and rectification.deadline <= stage.ends_on:
            due += 1
            missed += rectification.status is RectificationStatus.ORDERED
    for problem in problems:
        if (problem.dispatched_to or problem.unit_id) != unit:
            continue
        resolved = problem.status is ProblemStatus.RESOLVED
        if problem.deadline is not None and problem.deadline <= stage.ends_on:
            due += 1
            unresolved += not resolved
        if (
            resolved
            and problem.severity is Severity.PROMINENT
            and problem.resolved_at is not None
            and stage.contains(problem.resolved_at.date())
        ):
            prominent += 1
    return ProcessFacts(due, overdue, missed, unresolved, prominent)


def ranking_of(units: Sequence[SettledUnit]) -> list[dict[str, Any]]:
    """The ranking as posted (公示): unit, rank and total, in ranking order."""
    return [{"unit_id": str(u.unit_id), "rank": u.rank, "total": _text(u.total)} for u in units]


def expected_awards(settlement: Settlement) -> list[tuple[UUID, AwardRule, Ranked[UUID]]]:
    """Every award the settlement's rules grant: (derived award id, rule, ranked unit)."""
    ranked = [Ranked(u.unit_id, u.total, u.rank) for u in settlement.settled_units]
    return [
        (award_id(settlement.id, rule.name, hit.unit_id), rule, hit)
        for rule in ScoringPolicy.from_dict(settlement.policy).award_rules
        for hit in rule.hits(ranked)
    ]


def results_digest(units: Sequence[SettledUnit]) -> str:
    canonical = json.dumps([u.to_dict() for u in units], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class Settlement(LoopAggregate):
    """One stage's settlement: the figures (``StageSettled``), the posted ranking
    (``RankingPublished``) and, if the stage is reopened, that it was set aside."""

    class StageSettled(LoopAggregate.Created):
        cycle_id: UUID
        stage: str
        round_number: int
        cutoff: datetime
        through_position: int
        events_read: int
        inputs_digest: str
        policy: dict[str, Any]
        policy_digest: str
        units: list[dict[str, Any]]
        results_digest: str

    class RankingPublished(LoopAggregate.Event):
        ranking: list[dict[str, Any]]

        def apply(self, settlement: Settlement) -> None:
            settlement.published = True
            settlement.ranking = self.ranking

    class SettlementReopened(LoopAggregate.Event):
        def apply(self, settlement: Settlement) -> None:
            settlement.reopened = True

    @staticmethod
    def create_id(cycle_id: UUID, stage: str, round_number: int) -> UUID:
        return settlement_id(cycle_id, stage, round_number)

    def __init__(
        self,
        cycle_id: UUID,
        stage: str,
        round_number: int,
        cutoff: datetime,
        through_position: int,
        events_read: int,
        inputs_digest: str,
        policy: dict[str, Any],
        policy_digest: str,
        units: list[dict[str, Any]],
        results_digest: str,
    ) -> None:
        self.cycle_id = cycle_id
        self.stage = stage
        self.round_number = round_number
        self.cutoff = cutoff
        self.through_position = through_position
        self.events_read = events_read
        self.inputs_digest = inputs_digest
        self.policy = policy
        self.policy_digest = policy_digest
        self.units = units
        self.results_digest = results_digest
        self.published = False
        self.ranking: list[dict[str, Any]] = []
        self.reopened = False

    @classmethod
    def settle(
        cls,
        *,
        inputs: SettlementInputs,
        stage_key: str,
        cutoff: datetime,
        now: datetime,
    ) -> tuple[Settlement, list[LoopAggregate]]:
        """Settle the stage from ``inputs``: the settlement (figures and posted ranking), and
        the other aggregates it changes: the cycle's record of it, every target of the cycle
        sealed for the stage, and one award per rule hit. The caller saves all at once."""
        cycle = inputs.cycle
        stage = cycle.stage(stage_key)
        require_ended(stage.key, cutoff=cutoff, now=now)
        policy = cycle.policy_for(stage.key)
        units = compute_stage(cycle, stage.key, inputs.aggregates, policy)
        settlement = cls(
            cycle_id=cycle.id,
            stage=stage.key,
            round_number=cycle.settlement_round(stage.key),
            cutoff=cutoff,
            through_position=inputs.through_position,
            events_read=inputs.events_read,
            inputs_digest=inputs.digest,
            policy=policy.to_dict(),
            policy_digest=policy.digest,
            units=[unit.to_dict() for unit in units],
            results_digest=results_digest(units),
        )
        settlement.trigger_event(cls.RankingPublished, ranking=ranking_of(units))
        cycle.record_settlement(stage.key, settlement.id)
        targets = [a for a in inputs.aggregates if isinstance(a, Target)]
        for target in targets:
            target.seal(stage.key, settlement_id=settlement.id)
        return settlement, [cycle, *targets, *_awards(settlement, policy, units)]

    def reopen(self, *, reason: str | None) -> None:
        if self.reopened:
            raise SettlementReopenedOnlyOnce(settlement=self.id)
        self.trigger_event(
            self.SettlementReopened, reason=require_reason(reason, action="reopen a settlement")
        )

    @property
    def settled_units(self) -> list[SettledUnit]:
        return [_settled_unit(data) for data in self.units]


def _awards(
    settlement: Settlement, policy: ScoringPolicy, units: Sequence[SettledUnit]
) -> list[Award]:
    ranked = [Ranked(u.unit_id, u.total, u.rank) for u in units]
    scored = sum(1 for r in ranked if r.rank is not None)
    awards = []
    for rule in policy.award_rules:
        for hit in rule.hits(ranked):
            awards.append(
                Award.from_settlement(
                    award_id=award_id(settlement.id, rule.name, hit.unit_id),
                    cycle_id=settlement.cycle_id,
                    stage=settlement.stage,
                    kind=AwardKind(rule.kind),
                    unit_id=hit.unit_id,
                    points=rule.points,
                    rule=rule.name,
                    basis=(
                        f"settlement {settlement.id} of {settlement.stage} "
                        f"(round {settlement.round_number}): rank {hit.rank} of {scored}, "
                        f"total {hit.total}; rule {rule.name}: {rule.basis} {rule.value}"
                    ),
                )
            )
    return awards


def _settled_unit(data: Mapping[str, Any]) -> SettledUnit:
    return SettledUnit(
        unit_id=UUID(data["unit_id"]),
        components={k: _decimal(v) for k, v in data["components"].items()},
        weights={k: Decimal(v) for k, v in data["weights"].items()},
        total=_decimal(data["total"]),
        rank=data["rank"],
        notes=tuple(data["notes"]),
    )


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)
