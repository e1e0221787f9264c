"""Party members and cadres: the people who act and who are held responsible."""

from __future__ import annotations

from uuid import UUID

from closedloop.domain.base import LoopAggregate, require_reason, require_text
from closedloop.domain.units import Unit


class Person(LoopAggregate):
    class PersonRegistered(LoopAggregate.Created):
        name: str
        unit_id: UUID
        title: str

    class PersonTransferred(LoopAggregate.Event):
        unit_id: UUID

        def apply(self, person: Person) -> None:
            person.unit_id = self.unit_id

    def __init__(self, name: str, unit_id: UUID, title: str) -> None:
        self.name = name
        self.unit_id = unit_id
        self.title = title

    @classmethod
    def register(cls, *, name: str, unit: Unit, title: str = "") -> Person:
        return cls(
            name=require_text(name, field_name="name", max_length=100),
            unit_id=unit.id,
            title=title.strip(),
        )

    def transfer_to(self, unit: Unit, *, reason: str | None) -> None:
        self.trigger_event(
            self.PersonTransferred,
            unit_id=unit.id,
            reason=require_reason(reason, action="transfer a person"),
        )
