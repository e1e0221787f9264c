from __future__ import annotations

from datetime import date

import pytest

from closedloop.domain.duties import (
    TIER_UNIT_KINDS,
    Duty,
    DutyHolderBelongsToUnit,
    DutyRelievedOnlyOnce,
    DutyTier,
    DutyTierMatchesUnitKind,
    ReliefNotBeforeStart,
)
from closedloop.domain.errors import ReasonRequired
from closedloop.domain.units import UnitKind

from .factories import committee, duty, last_event, last_event_name, person, rejected, unit

ALLOWED = {
    (DutyTier.OVERALL_LEADERSHIP, UnitKind.COMMITTEE),
    (DutyTier.FIRST_RESPONSIBLE, UnitKind.DEPARTMENT),
    (DutyTier.FIRST_RESPONSIBLE, UnitKind.GRASSROOTS),
    (DutyTier.DIRECT_RESPONSIBLE, UnitKind.GENERAL_BRANCH),
    (DutyTier.SPECIFIC_RESPONSIBLE, UnitKind.BRANCH),
}
ALL_PAIRS = [(tier, kind) for tier in DutyTier for kind in UnitKind]


def pair_id(pair: tuple[DutyTier, UnitKind]) -> str:
    return f"{pair[0].value}-for-{pair[1].value}"


def test_tier_table_matches_the_design() -> None:
    table = {(tier, kind) for tier, kinds in TIER_UNIT_KINDS.items() for kind in kinds}

    assert table == ALLOWED
    assert set(TIER_UNIT_KINDS) == set(DutyTier)


@pytest.mark.parametrize("pair", sorted(ALLOWED, key=pair_id), ids=pair_id)
def test_duty_tier_held_for_its_unit_kind(pair: tuple[DutyTier, UnitKind]) -> None:
    tier, kind = pair
    held_for = unit(kind)
    holder = person(held_for, "周书记")

    assigned = Duty.assign(person=holder, unit=held_for, tier=tier, effective_from=date(2026, 3, 1))

    assert last_event_name(assigned) == "DutyAssigned"
    assert (assigned.person_id, assigned.unit_id, assigned.tier) == (holder.id, held_for.id, tier)
    assert (assigned.effective_from, assigned.effective_to) == (date(2026, 3, 1), None)
    assert assigned.is_active


@pytest.mark.parametrize("pair", sorted(set(ALL_PAIRS) - ALLOWED, key=pair_id), ids=pair_id)
def test_duty_tier_matches_unit_kind(pair: tuple[DutyTier, UnitKind]) -> None:
    tier, kind = pair
    held_for = unit(kind)
    holder = person(held_for)

    with rejected(
        DutyTierMatchesUnitKind,
        f"tier={tier.value}",
        f"unit_kind={kind.value}",
        untouched=[held_for, holder],
    ):
        Duty.assign(person=holder, unit=held_for, tier=tier, effective_from=date(2026, 3, 1))


def test_duty_holder_belongs_to_unit() -> None:
    root = committee()
    grassroots, department = unit(parent=root), unit(UnitKind.DEPARTMENT, root)
    outsider = person(department)

    with rejected(
        DutyHolderBelongsToUnit,
        f"person={outsider.id}",
        f"person_unit={department.id}",
        f"duty_unit={grassroots.id}",
        untouched=[grassroots, outsider],
    ):
        Duty.assign(
            person=outsider,
            unit=grassroots,
            tier=DutyTier.FIRST_RESPONSIBLE,
            effective_from=date(2026, 3, 1),
        )


def test_relieved_duty_records_its_end_and_reason() -> None:
    grassroots = unit()
    held = duty(person(grassroots), grassroots)

    held.relieve(effective_to=date(2026, 9, 30), reason="到龄退休")

    assert last_event_name(held) == "DutyRelieved"
    assert (held.effective_to, held.is_active) == (date(2026, 9, 30), False)
    assert last_event(held).reason == "到龄退休"


def test_duty_relieved_on_its_first_day() -> None:
    grassroots = unit()
    held = duty(person(grassroots), grassroots)

    held.relieve(effective_to=held.effective_from, reason="任命撤销")

    assert held.effective_to == date(2026, 3, 1)


def test_relief_not_before_start() -> None:
    grassroots = unit()
    held = duty(person(grassroots), grassroots)

    with rejected(
        ReliefNotBeforeStart,
        "effective_from=2026-03-01",
        "effective_to=2026-02-28",
        untouched=[held],
    ):
        held.relieve(effective_to=date(2026, 2, 28), reason="补录")


def test_duty_relieved_only_once() -> None:
    grassroots = unit()
    held = duty(person(grassroots), grassroots)
    held.relieve(effective_to=date(2026, 9, 30), reason="调任")

    with rejected(DutyRelievedOnlyOnce, held.id, "effective_to=2026-09-30", untouched=[held]):
        held.relieve(effective_to=date(2026, 10, 31), reason="再次免职")


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_relieving_a_duty_needs_a_reason(reason: str | None) -> None:
    grassroots = unit()
    held = duty(person(grassroots), grassroots)

    with rejected(ReasonRequired, "action=relieve a duty", untouched=[held]):
        held.relieve(effective_to=date(2026, 9, 30), reason=reason)


@pytest.mark.parametrize(
    ("day", "active"),
    [
        (date(2026, 2, 28), False),
        (date(2026, 3, 1), True),
        (date(2026, 9, 30), True),
        (date(2026, 10, 1), False),
    ],
)
def test_duty_active_from_start_to_relief_inclusive(day: date, active: bool) -> None:
    grassroots = unit()
    held = duty(person(grassroots), grassroots)
    held.relieve(effective_to=date(2026, 9, 30), reason="调任")

    assert held.active_on(day) is active
