"""Rewards and penalties (兑现奖惩): issued with a basis, revoked only by an event with a reason."""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from uuid import UUID

from closedloop.domain.base import LoopAggregate, require_reason, require_text
from closedloop.domain.cycles import Cycle
from closedloop.domain.errors import InvalidValue, RuleViolation
from closedloop.domain.people import Person
from closedloop.domain.units import Unit


class AwardKind(Enum):
    REWARD = "reward"
    PENALTY = "penalty"


class AwardNeedsBasis(RuleViolation):
    """An award states its basis (依据): the rule, ranking or finding it rests on."""


class AwardHasOneRecipient(RuleViolation):
    """An award goes to exactly one unit or one person."""


class AwardRevokedOnlyOnce(RuleViolation):
    """A revoked award cannot be revoked again."""


class Award(LoopAggregate):
    class AwardIssued(LoopAggregate.Created):
        cycle_id: UUID
        stage: str | None
        kind: AwardKind
        unit_id: UUID | None
        person_id: UUID | None
        basis: str
        points: Decimal | None
        rule: str | None

    class AwardRevoked(LoopAggregate.Event):
        def apply(self, award: Award) -> None:
            award.revoked = True

    def __init__(
        self,
        cycle_id: UUID,
        stage: str | None,
        kind: AwardKind,
        unit_id: UUID | None,
        person_id: UUID | None,
        basis: str,
        points: Decimal | None,
        rule: str | None,
    ) -> None:
        self.cycle_id = cycle_id
        self.stage = stage
        self.kind = kind
        self.unit_id = unit_id
        self.person_id = person_id
        self.basis = basis
        self.points = points
        self.rule = rule
        self.revoked = False

    @classmethod
    def issue(
        cls,
        *,
        cycle: Cycle,
        kind: AwardKind,
        basis: str,
        unit: Unit | None = None,
        person: Person | None = None,
        stage: str | None = None,
        points: Decimal | None = None,
        rule: str | None = None,
    ) -> Award:
        if (unit is None) == (person is None):
            raise AwardHasOneRecipient(
                unit=unit.id if unit else None, person=person.id if person else None
            )
        if not basis or not basis.strip():
            raise AwardNeedsBasis(kind=kind.value)
        if stage is not None:
            cycle.stage(stage)
        if points is not None and (not points.is_finite() or points < 0):
            raise InvalidValue(field="points", rule="a non-negative number", value=points)
        return cls(
            cycle_id=cycle.id,
            stage=stage,
            kind=kind,
            unit_id=unit.id if unit else None,
            person_id=person.id if person else None,
            basis=require_text(basis, field_name="basis"),
            points=points,
            rule=rule,
        )

    @classmethod
    def from_settlement(
        cls,
        *,
        award_id: UUID,
        cycle_id: UUID,
        stage: str,
        kind: AwardKind,
        unit_id: UUID,
        basis: str,
        points: Decimal | None,
        rule: str,
    ) -> Award:
        """An award a settlement issues by one of the cycle's rules; its id is derived from the
        settlement, the rule and the unit, so settling again can never issue it twice."""
        return cls._create(
            cls.AwardIssued,
            id=award_id,
            cycle_id=cycle_id,
            stage=stage,
            kind=kind,
            unit_id=unit_id,
            person_id=None,
            basis=basis,
            points=points,
            rule=rule,
        )

    def revoke(self, *, reason: str | None) -> None:
        if self.revoked:
            raise AwardRevokedOnlyOnce(award=self.id)
        self.trigger_event(
            self.AwardRevoked, reason=require_reason(reason, action="revoke an award")
        )
