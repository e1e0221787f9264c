from __future__ import annotations

from decimal import Decimal

import pytest

from closedloop.domain.awards import (
    Award,
    AwardHasOneRecipient,
    AwardKind,
    AwardNeedsBasis,
    AwardRevokedOnlyOnce,
)
from closedloop.domain.cycles import StageMustBelongToCycle
from closedloop.domain.errors import InvalidValue, ReasonRequired

from .factories import award, cycle, last_event, last_event_name, person, rejected, unit


@pytest.mark.parametrize("kind", list(AwardKind), ids=lambda kind: kind.value)
def test_award_issued_to_a_unit(kind: AwardKind) -> None:
    year, grassroots = cycle(), unit()

    issued = award(year, to_unit=grassroots, kind=kind)

    assert last_event_name(issued) == "AwardIssued"
    assert (issued.kind, issued.unit_id, issued.person_id) == (kind, grassroots.id, None)
    assert (issued.stage, issued.points, issued.revoked) == ("Q1", Decimal("2"), False)
    assert last_event(issued).basis == "一季度排名第一"


def test_award_issued_to_a_person() -> None:
    member = person(unit())

    issued = award(cycle(), to_person=member)

    assert (issued.unit_id, issued.person_id) == (None, member.id)


def test_award_without_stage_or_points() -> None:
    issued = Award.issue(
        cycle=cycle(),
        kind=AwardKind.PENALTY,
        basis=" 巡察发现问题 ",
        unit=unit(),
        rule="inspection-finding",
    )

    assert (issued.stage, issued.points, issued.rule) == (None, None, "inspection-finding")
    assert issued.basis == "巡察发现问题"


def test_award_has_one_recipient_not_none() -> None:
    with rejected(AwardHasOneRecipient, "unit=None", "person=None"):
        award(cycle())


def test_award_has_one_recipient_not_two() -> None:
    grassroots = unit()
    member = person(grassroots)

    with rejected(AwardHasOneRecipient, f"unit={grassroots.id}", f"person={member.id}"):
        award(cycle(), to_unit=grassroots, to_person=member)


@pytest.mark.parametrize("basis", ["", "   "])
@pytest.mark.parametrize("kind", list(AwardKind), ids=lambda kind: kind.value)
def test_award_needs_basis(basis: str, kind: AwardKind) -> None:
    with rejected(AwardNeedsBasis, f"kind={kind.value}"):
        Award.issue(cycle=cycle(), kind=kind, basis=basis, unit=unit())


def test_award_stage_must_belong_to_cycle() -> None:
    with rejected(StageMustBelongToCycle, "stage=Q5"):
        Award.issue(cycle=cycle(), kind=AwardKind.REWARD, basis="排名", unit=unit(), stage="Q5")


@pytest.mark.parametrize("points", ["-1", "NaN", "Infinity"])
def test_award_points_non_negative(points: str) -> None:
    with rejected(InvalidValue, "field=points", f"value={points}"):
        Award.issue(
            cycle=cycle(), kind=AwardKind.REWARD, basis="排名", unit=unit(), points=Decimal(points)
        )


def test_award_of_zero_points_is_accepted() -> None:
    issued = Award.issue(
        cycle=cycle(), kind=AwardKind.REWARD, basis="通报表扬", unit=unit(), points=Decimal(0)
    )

    assert issued.points == 0


def test_award_revoked_with_a_reason() -> None:
    issued = award(cycle(), to_unit=unit())

    issued.revoke(reason="复核发现计分错误")

    assert last_event_name(issued) == "AwardRevoked"
    assert issued.revoked
    assert last_event(issued).reason == "复核发现计分错误"


@pytest.mark.parametrize("reason", [None, "", "  "])
def test_revoking_an_award_needs_a_reason(reason: str | None) -> None:
    issued = award(cycle(), to_unit=unit())

    with rejected(ReasonRequired, "action=revoke an award", untouched=[issued]):
        issued.revoke(reason=reason)


def test_award_revoked_only_once() -> None:
    issued = award(cycle(), to_unit=unit())
    issued.revoke(reason="计分错误")

    with rejected(AwardRevokedOnlyOnce, f"award={issued.id}", untouched=[issued]):
        issued.revoke(reason="再次撤销")
