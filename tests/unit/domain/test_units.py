from __future__ import annotations

import pytest

from closedloop.domain.errors import InvalidValue, ReasonRequired
from closedloop.domain.units import (
    OneActiveFirstResponsiblePerUnit,
    OnlyCommitteeStandsAlone,
    Unit,
    UnitKind,
    UnitTreeHasNoCycles,
)

from .factories import committee, last_event, last_event_name, person, rejected, unit

NON_COMMITTEE_KINDS = [kind for kind in UnitKind if kind is not UnitKind.COMMITTEE]


def test_committee_stands_without_parent() -> None:
    root = committee()

    assert last_event_name(root) == "UnitRegistered"
    assert (root.kind, root.parent_id, root.version) == (UnitKind.COMMITTEE, None, 1)
    assert root.first_responsible is None


@pytest.mark.parametrize("kind", NON_COMMITTEE_KINDS, ids=lambda kind: kind.value)
def test_other_units_register_under_a_parent(kind: UnitKind) -> None:
    root = committee()

    child = Unit.register(name="机关党总支", kind=kind, parent=root)

    assert last_event_name(child) == "UnitRegistered"
    assert (child.kind, child.parent_id) == (kind, root.id)


@pytest.mark.parametrize("kind", NON_COMMITTEE_KINDS, ids=lambda kind: kind.value)
def test_only_committee_stands_alone(kind: UnitKind) -> None:
    with rejected(OnlyCommitteeStandsAlone, f"kind={kind.value}", "parent=None"):
        Unit.register(name="无上级单位", kind=kind, parent=None)


def test_only_committee_stands_alone_so_a_committee_takes_no_parent() -> None:
    root = committee()

    with rejected(OnlyCommitteeStandsAlone, "kind=committee", root.id, untouched=[root]):
        Unit.register(name="第二党委", kind=UnitKind.COMMITTEE, parent=root)


@pytest.mark.parametrize("name", ["", "   "])
def test_unit_name_must_not_be_blank(name: str) -> None:
    with rejected(InvalidValue, "field=name", "must not be blank"):
        Unit.register(name=name, kind=UnitKind.COMMITTEE, parent=None)


def test_unit_name_at_most_200_characters() -> None:
    with rejected(InvalidValue, "field=name", "at most 200 characters"):
        Unit.register(name="党" * 201, kind=UnitKind.COMMITTEE, parent=None)


def test_chinese_unit_name_round_trips_unchanged() -> None:
    name = "中国石化（集团）第一党支部·机关"

    branch = unit(UnitKind.BRANCH, name=f"  {name}\n")

    assert branch.name == name
    assert last_event(branch).name == name


def test_move_under_records_unit_moved() -> None:
    root = committee()
    general = unit(UnitKind.GENERAL_BRANCH, root)
    branch = unit(UnitKind.BRANCH, root)

    branch.move_under(general, parent_lineage=[general.id, root.id], reason="  机构调整  ")

    assert last_event_name(branch) == "UnitMoved"
    assert branch.parent_id == general.id
    assert last_event(branch).reason == "机构调整"
    assert branch.version == 2


def test_unit_tree_has_no_cycles_unit_under_itself() -> None:
    root = committee()
    branch = unit(UnitKind.BRANCH, root)

    with rejected(
        UnitTreeHasNoCycles, f"unit={branch.id}", f"new_parent={branch.id}", untouched=[branch]
    ):
        branch.move_under(branch, parent_lineage=[branch.id, root.id], reason="误操作")


def test_unit_tree_has_no_cycles_unit_under_its_descendant() -> None:
    root = committee()
    general = unit(UnitKind.GENERAL_BRANCH, root)
    branch = unit(UnitKind.BRANCH, general)

    with rejected(
        UnitTreeHasNoCycles,
        f"unit={general.id}",
        f"new_parent={branch.id}",
        untouched=[general, branch],
    ):
        general.move_under(branch, parent_lineage=[branch.id, general.id, root.id], reason="x")


def test_only_committee_stands_alone_so_a_committee_is_not_moved() -> None:
    root = committee()
    other = unit(UnitKind.GRASSROOTS, root)

    with rejected(OnlyCommitteeStandsAlone, root.id, "kind=committee", untouched=[root]):
        root.move_under(other, parent_lineage=[other.id, root.id], reason="调整")


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_moving_a_unit_needs_a_reason(reason: str | None) -> None:
    root = committee()
    general = unit(UnitKind.GENERAL_BRANCH, root)
    branch = unit(UnitKind.BRANCH, root)

    with rejected(ReasonRequired, "action=move a unit", untouched=[branch]):
        branch.move_under(general, parent_lineage=[general.id, root.id], reason=reason)


def test_designating_a_first_responsible_records_it() -> None:
    grassroots = unit()
    head = person(grassroots)
    duty_id = head.id  # any id stands for the duty here

    grassroots.designate_first_responsible(duty_id=duty_id, person_id=head.id)

    assert last_event_name(grassroots) == "FirstResponsibleDesignated"
    assert grassroots.first_responsible == (duty_id, head.id)


def test_one_active_first_responsible_per_unit() -> None:
    grassroots = unit()
    first, second = person(grassroots, "王一"), person(grassroots, "赵二")
    grassroots.designate_first_responsible(duty_id=first.id, person_id=first.id)

    with rejected(
        OneActiveFirstResponsiblePerUnit,
        f"active_person={first.id}",
        f"new_person={second.id}",
        untouched=[grassroots],
    ):
        grassroots.designate_first_responsible(duty_id=second.id, person_id=second.id)


def test_first_responsible_can_follow_once_the_previous_is_released() -> None:
    grassroots = unit()
    first, second = person(grassroots, "王一"), person(grassroots, "赵二")
    grassroots.designate_first_responsible(duty_id=first.id, person_id=first.id)

    grassroots.release_first_responsible(duty_id=first.id)
    assert last_event_name(grassroots) == "FirstResponsibleReleased"
    grassroots.designate_first_responsible(duty_id=second.id, person_id=second.id)

    assert grassroots.first_responsible == (second.id, second.id)


def test_releasing_a_duty_that_is_not_the_active_one_records_nothing() -> None:
    grassroots = unit()
    head, other = person(grassroots, "王一"), person(grassroots, "赵二")
    grassroots.designate_first_responsible(duty_id=head.id, person_id=head.id)
    version = grassroots.version

    grassroots.release_first_responsible(duty_id=other.id)

    assert grassroots.version == version
    assert grassroots.first_responsible == (head.id, head.id)
