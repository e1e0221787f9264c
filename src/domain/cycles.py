"""Assessment years (cycles), their stages (quarters by default) and their scoring policy.

The policy in force for a stage is the last one set from that stage or an earlier one; a cycle
that never set one scores by :data:`~closedloop.domain.scoring.DEFAULT_POLICY`. A policy may be
revised, with a reason, from any stage onwards as long as no stage it would affect is settled.
A settled stage accepts no effect confirmations; an admin may reopen it, with a reason: the
stage then takes corrections (effect confirmations) again and is settled anew (the next
settlement round).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from itertools import pairwise
from typing import TYPE_CHECKING, Any
from uuid import UUID

from closedloop.domain.base import LoopAggregate, require_reason, require_text
from closedloop.domain.errors import InvalidValue, RuleViolation

if TYPE_CHECKING:  # scoring needs targets, which need cycles: imported where used instead
    from closedloop.domain.scoring import ScoringPolicy


@dataclass(frozen=True)
class Stage:
    key: str
    starts_on: date
    ends_on: date

    def contains(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on

    def cutoff(self, zone: tzinfo) -> datetime:
        """The instant the stage ends: midnight after its last day, in ``zone``."""
        return datetime.combine(self.ends_on + timedelta(days=1), time(0), tzinfo=zone)


def quarters(year: int) -> list[Stage]:
    """The default stages: Q1..Q4 of the calendar year."""
    starts = [date(year, month, 1) for month in (1, 4, 7, 10)]
    ends = [date(year, 3, 31), date(year, 6, 30), date(year, 9, 30), date(year, 12, 31)]
    return [Stage(f"Q{i + 1}", s, e) for i, (s, e) in enumerate(zip(starts, ends, strict=True))]


class StagesMustTileTheCycle(RuleViolation):
    """Stages have unique keys, lie in the cycle's year, and follow each other without gaps."""


class StageMustBelongToCycle(RuleViolation):
    """The stage named is not one of the cycle's stages."""


class DeadlineWithinCycle(RuleViolation):
    """Deadlines lie inside the assessment cycle."""


class ClosedStageAcceptsNoEffects(RuleViolation):
    """A closed or settled stage accepts no new effect confirmations."""


class StageClosedOnlyOnce(RuleViolation):
    """A stage that is already closed cannot be closed again."""


class SettledStageAcceptsNoEffects(ClosedStageAcceptsNoEffects):
    """A settled stage accepts no new effect confirmations; an admin may reopen it with a
    reason, after which it is settled again."""


class PolicyFrozenOnceSettled(RuleViolation):
    """A scoring policy cannot be changed for a stage that is already settled."""


class StageSettledOnlyOnce(RuleViolation):
    """A stage is settled once per round; reopen it (with a reason) to settle it again."""


class OnlySettledStagesReopen(RuleViolation):
    """Only a settled stage can be reopened."""


class Cycle(LoopAggregate):
    class CycleOpened(LoopAggregate.Created):
        year: int
        name: str
        stages: list[Stage]

    class StageClosed(LoopAggregate.Event):
        stage: str

        def apply(self, cycle: Cycle) -> None:
            cycle.closed_stages = (*cycle.closed_stages, self.stage)

    class ScoringPolicySet(LoopAggregate.Event):
        """The policy (:meth:`ScoringPolicy.to_dict`) in force from ``from_stage`` onwards."""

        from_stage: str
        policy: dict[str, Any]

        def apply(self, cycle: Cycle) -> None:
            cycle.policies = (*cycle.policies, (self.from_stage, self.policy))

    class SettlementRecorded(LoopAggregate.Event):
        """The stage was settled by ``settlement_id`` (its :class:`Settlement` holds the
        figures); recorded atomically with it, so a cycle settles a stage once per round."""

        stage: str
        settlement_id: UUID

        def apply(self, cycle: Cycle) -> None:
            cycle.settlements = {**cycle.settlements, self.stage: self.settlement_id}

    class StageReopened(LoopAggregate.Event):
        stage: str
        settlement_id: UUID

        def apply(self, cycle: Cycle) -> None:
            # Reopened for corrections: the stage takes effect confirmations again until it is
            # closed or settled anew.
            cycle.settlements = {k: v for k, v in cycle.settlements.items() if k != self.stage}
            cycle.closed_stages = tuple(s for s in cycle.closed_stages if s != self.stage)
            cycle.settlement_rounds = {
                **cycle.settlement_rounds,
                self.stage: cycle.settlement_round(self.stage) + 1,
            }

    def __init__(self, year: int, name: str, stages: list[Stage]) -> None:
        self.year = year
        self.name = name
        self.stages = tuple(stages)
        self.closed_stages: tuple[str, ...] = ()
        self.policies: tuple[tuple[str, dict[str, Any]], ...] = ()
        self.settlements: dict[str, UUID] = {}
        self.settlement_rounds: dict[str, int] = {}

    @classmethod
    def open(
        cls,
        *,
        year: int,
        name: str,
        stages: Sequence[Stage] | None = None,
        policy: ScoringPolicy | None = None,
    ) -> Cycle:
        if not 2000 <= year <= 2100:
            raise InvalidValue(field="year", rule="between 2000 and 2100", value=year)
        chosen = quarters(year) if stages is None else list(stages)
        _check_stages(year, chosen)
        cycle = cls(
            year=year, name=require_text(name, field_name="name", max_length=200), stages=chosen
        )
        if policy is not None:
            cycle.trigger_event(
                cls.ScoringPolicySet, from_stage=chosen[0].key, policy=policy.to_dict()
            )
        return cycle

    # --- scoring policy ----------------------------------------------------------------------

    def policy_for(self, stage_key: str) -> ScoringPolicy:
        """The policy in force for the stage: the last one set from it or an earlier stage."""
        index = self.stage_index(stage_key)
        chosen: Mapping[str, Any] | None = None
        for from_stage, policy in self.policies:
            if self.stage_index(from_stage) <= index:
                chosen = policy
        if chosen is None:
            from closedloop.domain.scoring import DEFAULT_POLICY

            return DEFAULT_POLICY
        return _policy_from(chosen)

    def revise_policy(self, policy: ScoringPolicy, *, from_stage: str, reason: str | None) -> None:
        index = self.stage_index(from_stage)
        settled = [key for key in self.settlements if self.stage_index(key) >= index]
        if settled:
            raise PolicyFrozenOnceSettled(cycle=self.id, from_stage=from_stage, settled=settled)
        self.trigger_event(
            self.ScoringPolicySet,
            from_stage=from_stage,
            policy=policy.to_dict(),
            reason=require_reason(reason, action="revise a scoring policy"),
        )

    # --- settlement --------------------------------------------------------------------------

    def is_settled(self, stage_key: str) -> bool:
        return stage_key in self.settlements

    def settlement_round(self, stage_key: str) -> int:
        """1 for a stage never reopened; each reopening starts the next round."""
        return self.settlement_rounds.get(stage_key, 1)

    def stages_due(self, now: datetime, zone: tzinfo, grace_days: int = 0) -> list[Stage]:
        """Stages to settle automatically at ``now``: cut-off (plus ``grace_days``) passed, and
        never settled. A reopened stage waits for its corrections and is settled again by an
        admin, not by the next scheduled run."""
        grace = timedelta(days=grace_days)
        return [
            stage
            for stage in self.stages
            if stage.cutoff(zone) + grace <= now
            and not self.is_settled(stage.key)
            and self.settlement_round(stage.key) == 1
        ]

    def record_settlement(self, stage_key: str, settlement_id: UUID) -> None:
        self.stage(stage_key)
        if self.is_settled(stage_key):
            raise StageSettledOnlyOnce(
                cycle=self.id, stage=stage_key, settlement=self.settlements[stage_key]
            )
        self.trigger_event(self.SettlementRecorded, stage=stage_key, settlement_id=settlement_id)

    def reopen_stage(self, stage_key: str, *, reason: str | None) -> UUID:
        """Reopen a settled stage; returns the settlement it sets aside."""
        self.stage(stage_key)
        if not self.is_settled(stage_key):
            raise OnlySettledStagesReopen(cycle=self.id, stage=stage_key)
        settlement_id = self.settlements[stage_key]
        self.trigger_event(
            self.StageReopened,
            stage=stage_key,
            settlement_id=settlement_id,
            reason=require_reason(reason, action="reopen a settled stage"),
        )
        return settlement_id

    @property
    def starts_on(self) -> date:
        return self.stages[0].starts_on

    @property
    def ends_on(self) -> date:
        return self.stages[-1].ends_on

    def stage(self, key: str) -> Stage:
        for stage in self.stages:
            if stage.key == key:
                return stage
        raise StageMustBelongToCycle(stage=key, cycle=self.id, stages=self.stage_keys)

    def stage_index(self, key: str) -> int:
        return self.stage_keys.index(self.stage(key).key)

    @property
    def stage_keys(self) -> list[str]:
        return [stage.key for stage in self.stages]

    def stage_on(self, day: date) -> Stage | None:
        return next((stage for stage in self.stages if stage.contains(day)), None)

    def require_within(self, deadline: date, *, field_name: str = "deadline") -> date:
        if not self.starts_on <= deadline <= self.ends_on:
            raise DeadlineWithinCycle(
                field=field_name,
                value=deadline,
                cycle_start=self.starts_on,
                cycle_end=self.ends_on,
            )
        return deadline

    def is_closed(self, stage_key: str) -> bool:
        return stage_key in self.closed_stages

    def require_open_for_effects(self, stage_key: str) -> Stage:
        stage = self.stage(stage_key)
        if self.is_settled(stage_key):
            raise SettledStageAcceptsNoEffects(
                cycle=self.id, stage=stage_key, settlement=self.settlements[stage_key]
            )
        if self.is_closed(stage_key):
            raise ClosedStageAcceptsNoEffects(cycle=self.id, stage=stage_key)
        return stage

    def close_stage(self, stage_key: str, *, reason: str | None = None) -> None:
        self.stage(stage_key)
        if self.is_closed(stage_key):
            raise StageClosedOnlyOnce(cycle=self.id, stage=stage_key)
        self.trigger_event(self.StageClosed, stage=stage_key, reason=reason)


def _policy_from(stored: Mapping[str, Any]) -> ScoringPolicy:
    # Cached by canonical text: every command on a cycle would otherwise re-validate its policy.
    return _cached_policy(json.dumps(stored, sort_keys=True))


@lru_cache(maxsize=64)
def _cached_policy(canonical: str) -> ScoringPolicy:
    from closedloop.domain.scoring import ScoringPolicy

    return ScoringPolicy.from_dict(json.loads(canonical))


def _check_stages(year: int, stages: Sequence[Stage]) -> None:
    keys = [stage.key for stage in stages]
    if not stages or len(set(keys)) != len(keys):
        raise StagesMustTileTheCycle(stages=keys)
    for stage in stages:
        if not stage.key.strip() or stage.starts_on > stage.ends_on:
            raise StagesMustTileTheCycle(
                stage=stage.key, starts_on=stage.starts_on, ends_on=stage.ends_on
            )
        if stage.starts_on.year != year or stage.ends_on.year != year:
            raise StagesMustTileTheCycle(stage=stage.key, year=year)
    for earlier, later in pairwise(stages):
        if later.starts_on != earlier.ends_on + timedelta(days=1):
            raise StagesMustTileTheCycle(
                earlier=earlier.key,
                ends_on=earlier.ends_on,
                later=later.key,
                starts_on=later.starts_on,
            )
