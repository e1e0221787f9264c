"""Targets (确认目标): common and unit targets, indicators, milestones, contracts and effects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from uuid import UUID

from closedloop.domain.base import (
    LoopAggregate,
    require_aware,
    require_positive,
    require_reason,
    require_text,
)
from closedloop.domain.cycles import Cycle, SettledStageAcceptsNoEffects
from closedloop.domain.errors import InvalidValue, RuleViolation
from closedloop.domain.people import Person
from closedloop.domain.units import Unit


class TargetScope(Enum):
    COMMON = "common"
    UNIT = "unit"


class IndicatorKind(Enum):
    QUANTITATIVE = "quantitative"
    QUALITATIVE = "qualitative"


class Direction(Enum):
    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"


class EffectMethod(Enum):
    SELF_ASSESSMENT = "self_assessment"
    INSPECTION = "inspection"


@dataclass(frozen=True)
class Indicator:
    """Quantitative (metric, baseline, target value, direction) or qualitative (rubric levels)."""

    kind: IndicatorKind
    metric: str = ""
    unit_of_measure: str = ""
    baseline: Decimal | None = None
    target_value: Decimal | None = None
    direction: Direction | None = None
    levels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(self.levels))

    @classmethod
    def quantitative(
        cls,
        *,
        metric: str,
        target_value: Decimal,
        direction: Direction,
        baseline: Decimal | None = None,
        unit_of_measure: str = "",
    ) -> Indicator:
        return cls(
            IndicatorKind.QUANTITATIVE, metric, unit_of_measure, baseline, target_value, direction
        )

    @classmethod
    def qualitative(cls, *, levels: Sequence[str], metric: str = "") -> Indicator:
        return cls(IndicatorKind.QUALITATIVE, metric=metric, levels=tuple(levels))

    def validate(self) -> Indicator:
        if self.kind is IndicatorKind.QUANTITATIVE:
            if not self.metric.strip() or self.target_value is None or self.direction is None:
                raise IndicatorIsWellFormed(
                    kind=self.kind.value, rule="needs metric, target_value and direction"
                )
        elif len(self.levels) < 2 or len(set(self.levels)) != len(self.levels):
            raise IndicatorIsWellFormed(
                kind=self.kind.value, rule="needs at least two distinct rubric levels"
            )
        return self

    def check_value(self, value: Decimal | str, *, field_name: str) -> Decimal | str:
        """A milestone or result must fit the indicator: a number, or one of the levels.

        Returns the value as stored: a numeric string for a quantitative indicator (as JSON
        clients often send decimals) becomes a Decimal.
        """
        if self.kind is IndicatorKind.QUANTITATIVE:
            number = _as_decimal(value)
            if number is None or not number.is_finite():
                raise ValueFitsIndicator(field=field_name, value=value, expected="a number")
            return number
        if value not in self.levels:
            raise ValueFitsIndicator(field=field_name, value=value, expected=list(self.levels))
        return value


def _as_decimal(value: Decimal | str) -> Decimal | None:
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(value.strip())
    except (InvalidOperation, AttributeError):
        return None


class IndicatorIsWellFormed(RuleViolation):
    """An indicator is quantitative with metric, target and direction, or has rubric levels."""


class ValueFitsIndicator(RuleViolation):
    """A milestone or result is a number for a quantitative indicator, a rubric level otherwise."""


class TargetScopeNamesItsUnits(RuleViolation):
    """A common target names the units it applies to; a unit target names its own unit only."""


class ContributionGoesToCommonTarget(RuleViolation):
    """A unit target may contribute only to a common target of the same cycle."""


class MilestoneStageInCycle(RuleViolation):
    """Milestones are set only for stages of the target's cycle."""


class WithdrawnTargetTakesNoActions(RuleViolation):
    """A withdrawn target takes no more actions."""


class TargetLinkedOnce(RuleViolation):
    """A target is linked to another target at most once, and never to itself."""


class RevisionChangesSomething(RuleViolation):
    """A revision must change at least one of title, indicator or points."""


class Target(LoopAggregate):
    class TargetSet(LoopAggregate.Created):
        cycle_id: UUID
        scope: TargetScope
        title: str
        indicator: Indicator
        points: Decimal
        owner_unit_id: UUID | None
        applies_to: list[UUID]
        contributes_to: UUID | None

    class TargetRevised(LoopAggregate.Event):
        title: str | None
        indicator: Indicator | None
        points: Decimal | None

        def apply(self, target: Target) -> None:
            target.title = self.title or target.title
            target.indicator = self.indicator or target.indicator
            target.points = self.points if self.points is not None else target.points

    class MilestonesSet(LoopAggregate.Event):
        milestones: dict[str, Decimal | str]

        def apply(self, target: Target) -> None:
            target.milestones = dict(self.milestones)

    class TargetContracted(LoopAggregate.Event):
        lead_unit_id: UUID
        responsible_unit_ids: list[UUID]
        responsible_leader_id: UUID

        def apply(self, target: Target) -> None:
            target.contract = Contract(
                self.lead_unit_id, tuple(self.responsible_unit_ids), self.responsible_leader_id
            )

    class TargetLinked(LoopAggregate.Event):
        linked_target_id: UUID

        def apply(self, target: Target) -> None:
            target.linked_goals = (*target.linked_goals, self.linked_target_id)

    class TargetWithdrawn(LoopAggregate.Event):
        def apply(self, target: Target) -> None:
            target.withdrawn = True

    class EffectConfirmed(LoopAggregate.Event):
        stage: str
        method: EffectMethod
        unit_id: UUID
        result: Decimal | str
        evidence: str

        def apply(self, target: Target) -> None:
            target.effects[(self.stage, self.method, self.unit_id)] = Effect(
                self.stage,
                self.method,
                self.unit_id,
                self.result,
                self.evidence,
                self.effective_time,
            )

    class StageSealed(LoopAggregate.Event):
        """The stage's settlement read this target: no effect for the stage may follow it.

        Recorded in the settlement's own transaction, so an effect racing the settlement either
        lands before it (and the settlement, finding the target moved, reads again) or after it
        (and is refused here)."""

        stage: str
        settlement_id: UUID

        def apply(self, target: Target) -> None:
            target.sealed = {**target.sealed, self.stage: self.settlement_id}

    class StageUnsealed(LoopAggregate.Event):
        """The stage was reopened (with the reason given there): effects may be corrected."""

        stage: str

        def apply(self, target: Target) -> None:
            target.sealed = {k: v for k, v in target.sealed.items() if k != self.stage}

    def __init__(
        self,
        cycle_id: UUID,
        scope: TargetScope,
        title: str,
        indicator: Indicator,
        points: Decimal,
        owner_unit_id: UUID | None,
        applies_to: list[UUID],
        contributes_to: UUID | None,
    ) -> None:
        self.cycle_id = cycle_id
        self.scope = scope
        self.title = title
        self.indicator = indicator
        self.points = points
        self.owner_unit_id = owner_unit_id
        self.applies_to = tuple(applies_to)
        self.contributes_to = contributes_to
        self.milestones: dict[str, Decimal | str] = {}
        self.contract: Contract | None = None
        self.linked_goals: tuple[UUID, ...] = ()
        self.withdrawn = False
        self.effects: dict[tuple[str, EffectMethod, UUID], Effect] = {}
        self.sealed: dict[str, UUID] = {}  # stage -> the settlement that sealed it

    @classmethod
    def set_common(
        cls,
        *,
        cycle: Cycle,
        title: str,
        indicator: Indicator,
        points: Decimal,
        applies_to: Sequence[Unit],
    ) -> Target:
        if not applies_to:
            raise TargetScopeNamesItsUnits(scope="common", applies_to=[])
        return cls(
            cycle_id=cycle.id,
            scope=TargetScope.COMMON,
            title=require_text(title, field_name="title", max_length=300),
            indicator=indicator.validate(),
            points=require_positive(points, field_name="points"),
            owner_unit_id=None,
            applies_to=_distinct_ids(applies_to),
            contributes_to=None,
        )

    @classmethod
    def set_for_unit(
        cls,
        *,
        cycle: Cycle,
        unit: Unit,
        title: str,
        indicator: Indicator,
        points: Decimal,
        contributes_to: Target | None = None,
    ) -> Target:
        if contributes_to is not None and (
            contributes_to.scope is not TargetScope.COMMON or contributes_to.cycle_id != cycle.id
        ):
            raise ContributionGoesToCommonTarget(
                contributes_to=contributes_to.id, scope=contributes_to.scope.value
            )
        return cls(
            cycle_id=cycle.id,
            scope=TargetScope.UNIT,
            title=require_text(title, field_name="title", max_length=300),
            indicator=indicator.validate(),
            points=require_positive(points, field_name="points"),
            owner_unit_id=unit.id,
            applies_to=[unit.id],
            contributes_to=contributes_to.id if contributes_to else None,
        )

    @property
    def status(self) -> str:
        return "withdrawn" if self.withdrawn else "active"

    def concerns(self, unit_id: UUID) -> bool:
        return unit_id in self.applies_to

    def revise(
        self,
        *,
        reason: str | None,
        title: str | None = None,
        indicator: Indicator | None = None,
        points: Decimal | None = None,
    ) -> None:
        self._require_active()
        if title is None and indicator is None and points is None:
            raise RevisionChangesSomething(target=self.id)
        if indicator is not None:
            for stage_key, value in self.milestones.items():
                indicator.check_value(value, field_name=f"milestones.{stage_key}")
        self.trigger_event(
            self.TargetRevised,
            title=require_text(title, field_name="title", max_length=300)
            if title is not None
            else None,
            indicator=indicator.validate() if indicator else None,
            points=require_positive(points, field_name="points") if points is not None else None,
            reason=require_reason(reason, action="revise a target"),
        )

    def set_milestones(
        self, cycle: Cycle, milestones: Mapping[str, Decimal | str], *, reason: str | None = None
    ) -> None:
        self._require_active()
        self._require_own(cycle)
        if not milestones:
            raise InvalidValue(field="milestones", rule="at least one stage")
        for stage_key in milestones:
            if stage_key not in cycle.stage_keys:
                raise MilestoneStageInCycle(stage=stage_key, cycle_stages=cycle.stage_keys)
        checked = {
            stage_key: self.indicator.check_value(value, field_name=f"milestones.{stage_key}")
            for stage_key, value in milestones.items()
        }
        if self.milestones:
            reason = require_reason(reason, action="replace milestones")
        self.trigger_event(self.MilestonesSet, milestones=checked, reason=reason)

    def contract_to(
        self,
        *,
        lead_unit: Unit,
        responsible_units: Sequence[Unit],
        responsible_leader: Person,
        reason: str | None = None,
    ) -> None:
        self._require_active()
        if self.contract is not None:
            reason = require_reason(reason, action="re-contract a target")
        self.trigger_event(
            self.TargetContracted,
            lead_unit_id=lead_unit.id,
            responsible_unit_ids=_distinct_ids(responsible_units),
            responsible_leader_id=responsible_leader.id,
            reason=reason,
        )

    def link_to(self, other: Target) -> None:
        self._require_active()
        if other.id == self.id or other.id in self.linked_goals:
            raise TargetLinkedOnce(target=self.id, linked=other.id)
        self.trigger_event(self.TargetLinked, linked_target_id=other.id)

    def withdraw(self, *, reason: str | None) -> None:
        self._require_active()
        self.trigger_event(
            self.TargetWithdrawn, reason=require_reason(reason, action="withdraw a target")
        )

    def confirm_effect(
        self,
        cycle: Cycle,
        *,
        stage: str,
        method: EffectMethod,
        unit: Unit,
        result: Decimal | str,
        evidence: str,
        confirmed_at: datetime | None = None,
        reason: str | None = None,
    ) -> None:
        """Record a stage result for one unit; confirming the same thing again is a correction."""
        self._require_active()
        self._require_own(cycle)
        cycle.require_open_for_effects(stage)
        if stage in self.sealed:
            raise SettledStageAcceptsNoEffects(
                cycle=cycle.id, stage=stage, settlement=self.sealed[stage]
            )
        if not self.concerns(unit.id):
            raise TargetScopeNamesItsUnits(
                target=self.id, unit=unit.id, rule="effects only for units the target applies to"
            )
        result = self.indicator.check_value(result, field_name="result")
        if (stage, method, unit.id) in self.effects:
            reason = require_reason(reason, action="correct a confirmed effect")
        self.trigger_event(
            self.EffectConfirmed,
            stage=stage,
            method=method,
            unit_id=unit.id,
            result=result,
            evidence=require_text(evidence, field_name="evidence"),
            effective_at=require_aware(confirmed_at, field_name="confirmed_at"),
            reason=reason,
        )

    def seal(self, stage: str, *, settlement_id: UUID) -> None:
        self.trigger_event(self.StageSealed, stage=stage, settlement_id=settlement_id)

    def unseal(self, stage: str, *, reason: str) -> None:
        if stage in self.sealed:
            self.trigger_event(self.StageUnsealed, stage=stage, reason=reason)

    def _require_own(self, cycle: Cycle) -> None:
        if cycle.id != self.cycle_id:
            raise InvalidValue(
                field="cycle",
                rule="must be the target's own cycle",
                given=cycle.id,
                target_cycle=self.cycle_id,
            )

    def _require_active(self) -> None:
        if self.withdrawn:
            raise WithdrawnTargetTakesNoActions(target=self.id)


@dataclass(frozen=True)
class Contract:
    """包抓: who carries a target."""

    lead_unit_id: UUID
    responsible_unit_ids: tuple[UUID, ...]
    responsible_leader_id: UUID


@dataclass(frozen=True)
class Effect:
    stage: str
    method: EffectMethod
    unit_id: UUID
    result: Decimal | str
    evidence: str
    confirmed_at: datetime


def _distinct_ids(items: Sequence[Unit]) -> list[UUID]:
    return list(dict.fromkeys(item.id for item in items))
