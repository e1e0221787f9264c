from __future__ import annotations

import pytest

from closedloop.domain.errors import InvalidValue, ReasonRequired
from closedloop.domain.people import Person
from closedloop.domain.units import UnitKind

from .factories import committee, last_event, last_event_name, person, rejected, unit


def test_person_registered_in_a_unit() -> None:
    grassroots = unit()

    member = Person.register(name=" 欧阳·娜娜 ", unit=grassroots, title=" 支部书记 ")

    assert last_event_name(member) == "PersonRegistered"
    assert (member.name, member.unit_id, member.title) == ("欧阳·娜娜", grassroots.id, "支部书记")
    assert last_event(member).name == "欧阳·娜娜"


@pytest.mark.parametrize("name", ["", " \t "])
def test_person_name_must_not_be_blank(name: str) -> None:
    with rejected(InvalidValue, "field=name", "must not be blank"):
        Person.register(name=name, unit=committee())


def test_person_name_at_most_100_characters() -> None:
    with rejected(InvalidValue, "field=name", "at most 100 characters"):
        Person.register(name="张" * 101, unit=committee())


def test_transfer_records_the_new_unit_and_reason() -> None:
    root = committee()
    member = person(unit(UnitKind.BRANCH, root))
    target = unit(UnitKind.DEPARTMENT, root)

    member.transfer_to(target, reason="岗位调整")

    assert last_event_name(member) == "PersonTransferred"
    assert member.unit_id == target.id
    assert last_event(member).reason == "岗位调整"


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_transfer_needs_a_reason(reason: str | None) -> None:
    root = committee()
    member = person(unit(UnitKind.BRANCH, root))
    old_unit = member.unit_id

    with rejected(ReasonRequired, "action=transfer a person", untouched=[member]):
        member.transfer_to(unit(UnitKind.DEPARTMENT, root), reason=reason)
    assert member.unit_id == old_unit
