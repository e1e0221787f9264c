from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from closedloop.domain.cycles import DeadlineWithinCycle
from closedloop.domain.errors import InvalidValue, ReasonRequired
from closedloop.domain.rectifications import (
    Rectification,
    RectificationFollowsItsSteps,
    RectificationStatus,
)

from .factories import cycle, last_event, last_event_name, rectification, rejected, unit

STEPS: dict[str, Callable[[Rectification], None]] = {
    "complete": lambda r: r.complete(evidence="整改材料"),
    "verify": lambda r: r.verify(comment="验收通过"),
    "reject": lambda r: r.reject(reason="材料不全"),
}


def test_rectification_ordered_with_a_deadline_in_the_cycle() -> None:
    year, grassroots = cycle(), unit()

    ordered = Rectification.order(
        cycle=year,
        unit=grassroots,
        requirement=" 补齐“三会一课”记录 ",
        deadline=date(2026, 5, 31),
        problem_id=grassroots.id,
    )

    assert last_event_name(ordered) == "RectificationOrdered"
    assert (ordered.status, ordered.rejections) == (RectificationStatus.ORDERED, 0)
    assert (ordered.unit_id, ordered.deadline) == (grassroots.id, date(2026, 5, 31))
    assert ordered.requirement == "补齐“三会一课”记录"
    assert last_event(ordered).problem_id == grassroots.id


@pytest.mark.parametrize("deadline", [date(2025, 12, 31), date(2027, 1, 1)])
def test_rectification_deadline_within_cycle(deadline: date) -> None:
    with rejected(DeadlineWithinCycle, f"value={deadline}"):
        Rectification.order(cycle=cycle(), unit=unit(), requirement="整改", deadline=deadline)


def test_rectification_needs_a_requirement() -> None:
    with rejected(InvalidValue, "field=requirement"):
        Rectification.order(cycle=cycle(), unit=unit(), requirement="", deadline=date(2026, 5, 1))


def test_rectification_completed_then_verified() -> None:
    fix = rectification(cycle(), unit())

    fix.complete(evidence="会议记录扫描件")
    assert last_event_name(fix) == "RectificationCompleted"
    assert fix.status is RectificationStatus.COMPLETED

    fix.verify(comment="  验收合格 ")
    assert last_event_name(fix) == "RectificationVerified"
    assert fix.status is RectificationStatus.VERIFIED
    assert last_event(fix).comment == "验收合格"


def test_rejected_rectification_is_completed_again() -> None:
    fix = rectification(cycle(), unit())
    fix.complete(evidence="初次材料")

    fix.reject(reason="记录与实际不符")
    assert last_event_name(fix) == "RectificationRejected"
    assert (fix.status, fix.rejections) == (RectificationStatus.ORDERED, 1)
    assert last_event(fix).reason == "记录与实际不符"

    fix.complete(evidence="补充材料")
    fix.verify()
    assert fix.status is RectificationStatus.VERIFIED


@pytest.mark.parametrize(
    ("done", "step", "required"),
    [
        pytest.param([], "verify", "completed", id="verify-while-ordered"),
        pytest.param([], "reject", "completed", id="reject-while-ordered"),
        pytest.param(["complete"], "complete", "ordered", id="complete-while-completed"),
        pytest.param(["complete", "verify"], "complete", "ordered", id="complete-while-verified"),
        pytest.param(["complete", "verify"], "verify", "completed", id="verify-while-verified"),
        pytest.param(["complete", "verify"], "reject", "completed", id="reject-while-verified"),
        pytest.param(["complete", "reject"], "verify", "completed", id="verify-after-rejection"),
    ],
)
def test_rectification_follows_its_steps(done: list[str], step: str, required: str) -> None:
    fix = rectification(cycle(), unit())
    for earlier in done:
        STEPS[earlier](fix)
    status = fix.status.value

    with rejected(
        RectificationFollowsItsSteps,
        f"action={step}",
        f"status={status}",
        f"required={required}",
        untouched=[fix],
    ):
        STEPS[step](fix)


def test_completion_needs_evidence() -> None:
    fix = rectification(cycle(), unit())

    with rejected(InvalidValue, "field=evidence", untouched=[fix]):
        fix.complete(evidence="  ")


@pytest.mark.parametrize("reason", [None, "", "  "])
def test_rejecting_a_rectification_needs_a_reason(reason: str | None) -> None:
    fix = rectification(cycle(), unit())
    fix.complete(evidence="材料")

    with rejected(ReasonRequired, "action=reject a rectification", untouched=[fix]):
        fix.reject(reason=reason)
