"""Duties (责任主体): a person holds a tier of accountability for a unit, from a date to a date."""

from __future__ import annotations

from datetime import date
from enum import Enum
from uuid import UUID

from closedloop.domain.base import LoopAggregate, require_reason
from closedloop.domain.errors import RuleViolation
from closedloop.domain.people import Person
from closedloop.domain.units import Unit, UnitKind


class DutyTier(Enum):
    OVERALL_LEADERSHIP = "overall_leadership"
    FIRST_RESPONSIBLE = "first_responsible"
    DIRECT_RESPONSIBLE = "direct_responsible"
    SPECIFIC_RESPONSIBLE = "specific_responsible"


# Which unit a tier is held for (DESIGN.md §2): the committee leads overall; the head of each
# Party-mass department and grassroots unit is its first responsible person; the organs' general
# branch secretary is directly responsible; each branch is specifically responsible.
TIER_UNIT_KINDS: dict[DutyTier, frozenset[UnitKind]] = {
    DutyTier.OVERALL_LEADERSHIP: frozenset({UnitKind.COMMITTEE}),
    DutyTier.FIRST_RESPONSIBLE: frozenset({UnitKind.DEPARTMENT, UnitKind.GRASSROOTS}),
    DutyTier.DIRECT_RESPONSIBLE: frozenset({UnitKind.GENERAL_BRANCH}),
    DutyTier.SPECIFIC_RESPONSIBLE: frozenset({UnitKind.BRANCH}),
}


class DutyTierMatchesUnitKind(RuleViolation):
    """A duty's tier matches its unit: committee, department/grassroots, general branch, branch."""


class DutyHolderBelongsToUnit(RuleViolation):
    """A duty is held by a person who belongs to the unit it is held for."""


class DutyRelievedOnlyOnce(RuleViolation):
    """A duty that has been relieved cannot be relieved again."""


class ReliefNotBeforeStart(RuleViolation):
    """A duty cannot end before it began."""


class Duty(LoopAggregate):
    class DutyAssigned(LoopAggregate.Created):
        person_id: UUID
        unit_id: UUID
        tier: DutyTier
        effective_from: date

    class DutyRelieved(LoopAggregate.Event):
        effective_to: date

        def apply(self, duty: Duty) -> None:
            duty.effective_to = self.effective_to

    def __init__(self, person_id: UUID, unit_id: UUID, tier: DutyTier, effective_from: date):
        self.person_id = person_id
        self.unit_id = unit_id
        self.tier = tier
        self.effective_from = effective_from
        self.effective_to: date | None = None

    @classmethod
    def assign(cls, *, person: Person, unit: Unit, tier: DutyTier, effective_from: date) -> Duty:
        if unit.kind not in TIER_UNIT_KINDS[tier]:
            raise DutyTierMatchesUnitKind(
                tier=tier.value,
                unit=unit.id,
                unit_kind=unit.kind.value,
                allowed=sorted(k.value for k in TIER_UNIT_KINDS[tier]),
            )
        if person.unit_id != unit.id:
            raise DutyHolderBelongsToUnit(
                person=person.id, person_unit=person.unit_id, duty_unit=unit.id
            )
        return cls(person_id=person.id, unit_id=unit.id, tier=tier, effective_from=effective_from)

    @property
    def is_active(self) -> bool:
        return self.effective_to is None

    def active_on(self, day: date) -> bool:
        return self.effective_from <= day and (
            self.effective_to is None or day <= self.effective_to
        )

    def relieve(self, *, effective_to: date, reason: str | None) -> None:
        if self.effective_to is not None:
            raise DutyRelievedOnlyOnce(duty=self.id, effective_to=self.effective_to)
        if effective_to < self.effective_from:
            raise ReliefNotBeforeStart(
                duty=self.id, effective_from=self.effective_from, effective_to=effective_to
            )
        self.trigger_event(
            self.DutyRelieved,
            effective_to=effective_to,
            reason=require_reason(reason, action="relieve a duty"),
        )
