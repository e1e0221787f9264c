"""The organisation tree: committee, general branches, branches, departments, grassroots units."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from uuid import UUID

from closedloop.domain.base import LoopAggregate, require_reason, require_text
from closedloop.domain.errors import RuleViolation


class UnitKind(Enum):
    COMMITTEE = "committee"
    GENERAL_BRANCH = "general_branch"
    BRANCH = "branch"
    DEPARTMENT = "department"
    GRASSROOTS = "grassroots"


class OnlyCommitteeStandsAlone(RuleViolation):
    """Only a committee may be registered without a parent unit; every other unit needs one."""


class UnitTreeHasNoCycles(RuleViolation):
    """A unit cannot be placed under itself or under one of its own descendants."""


class OneActiveFirstResponsiblePerUnit(RuleViolation):
    """A unit has at most one active first responsible person."""


class Unit(LoopAggregate):
    class UnitRegistered(LoopAggregate.Created):
        name: str
        kind: UnitKind
        parent_id: UUID | None

    class UnitMoved(LoopAggregate.Event):
        parent_id: UUID

        def apply(self, unit: Unit) -> None:
            unit.parent_id = self.parent_id

    class FirstResponsibleDesignated(LoopAggregate.Event):
        duty_id: UUID
        person_id: UUID

        def apply(self, unit: Unit) -> None:
            unit.first_responsible = (self.duty_id, self.person_id)

    class FirstResponsibleReleased(LoopAggregate.Event):
        duty_id: UUID

        def apply(self, unit: Unit) -> None:
            unit.first_responsible = None

    def __init__(self, name: str, kind: UnitKind, parent_id: UUID | None) -> None:
        self.name = name
        self.kind = kind
        self.parent_id = parent_id
        self.first_responsible: tuple[UUID, UUID] | None = None

    @classmethod
    def register(cls, *, name: str, kind: UnitKind, parent: Unit | None) -> Unit:
        if (parent is None) != (kind is UnitKind.COMMITTEE):
            raise OnlyCommitteeStandsAlone(kind=kind.value, parent=parent.id if parent else None)
        return cls(
            name=require_text(name, field_name="name", max_length=200),
            kind=kind,
            parent_id=parent.id if parent else None,
        )

    def move_under(
        self, parent: Unit, *, parent_lineage: Sequence[UUID], reason: str | None
    ) -> None:
        """``parent_lineage``: the new parent's id followed by each of its ancestors' ids."""
        if self.parent_id is None:
            raise OnlyCommitteeStandsAlone(unit=self.id, kind=self.kind.value)
        if self.id in parent_lineage:
            raise UnitTreeHasNoCycles(unit=self.id, new_parent=parent.id)
        self.trigger_event(
            self.UnitMoved,
            parent_id=parent.id,
            reason=require_reason(reason, action="move a unit"),
        )

    def designate_first_responsible(self, *, duty_id: UUID, person_id: UUID) -> None:
        if self.first_responsible is not None:
            raise OneActiveFirstResponsiblePerUnit(
                unit=self.id, active_person=self.first_responsible[1], new_person=person_id
            )
        self.trigger_event(self.FirstResponsibleDesignated, duty_id=duty_id, person_id=person_id)

    def release_first_responsible(self, *, duty_id: UUID) -> None:
        if self.first_responsible is not None and self.first_responsible[0] == duty_id:
            self.trigger_event(self.FirstResponsibleReleased, duty_id=duty_id)
