from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closedloop.domain.context import acting_as
from closedloop.domain.cycles import DeadlineWithinCycle, StageMustBelongToCycle
from closedloop.domain.errors import InvalidValue, ReasonRequired
from closedloop.domain.meetings import (
    Meeting,
    RaterAttendsMeeting,
    RaterMayNotScoreOwnUnit,
    ReporterIsFirstResponsible,
    ScoreNeedsDeliveredReport,
    ScoreWithinScale,
    UnitReportsOncePerMeeting,
)
from closedloop.domain.people import Person
from closedloop.domain.units import Unit, UnitKind

from .factories import (
    committee,
    cycle,
    first_responsible,
    last_event,
    last_event_name,
    meeting,
    person,
    rejected,
    unit,
)


@dataclass
class Hall:
    meeting: Meeting
    reporting_unit: Unit
    reporter: Person
    rater: Person
    colleague: Person


def hall(*, reported: bool = True) -> Hall:
    """A Q1 meeting where a grassroots unit's head reports and a committee member scores."""
    root = committee()
    grassroots = unit(UnitKind.GRASSROOTS, root, name="第一基层单位")
    head = first_responsible(grassroots)
    rater, colleague = person(root, "党委委员"), person(grassroots, "同单位党员")
    held = meeting(cycle(), [head, rater, colleague])
    if reported:
        held.deliver_report(unit=grassroots, reporter=head, summary="一季度述职")
    return Hall(held, grassroots, head, rater, colleague)


def test_meeting_convened_in_a_stage_of_its_cycle() -> None:
    year, root = cycle(), committee()
    first, second = person(root, "甲"), person(root, "乙")

    held = meeting(year, [first, second, first], stage="Q1")

    assert last_event_name(held) == "MeetingConvened"
    assert (held.cycle_id, held.stage, held.held_on) == (year.id, "Q1", date(2026, 3, 28))
    assert held.attendee_ids == (first.id, second.id)
    assert (held.scale_min, held.scale_max) == (Decimal(0), Decimal(100))
    assert last_event(held).title == "一季度党建例会"


def test_meeting_stage_must_belong_to_cycle() -> None:
    with rejected(StageMustBelongToCycle, "stage=Q7"):
        meeting(cycle(), [person(committee())], stage="Q7")


@pytest.mark.parametrize("held_on", [date(2025, 12, 30), date(2027, 1, 5)])
def test_meeting_held_within_cycle(held_on: date) -> None:
    with rejected(DeadlineWithinCycle, "field=held_on", f"value={held_on}"):
        Meeting.convene(
            cycle=cycle(),
            stage="Q1",
            title="例会",
            held_on=held_on,
            attendees=[person(committee())],
        )


def test_meeting_needs_attendees() -> None:
    with rejected(InvalidValue, "field=attendees"):
        meeting(cycle(), [])


@pytest.mark.parametrize(
    ("scale_min", "scale_max"),
    [("100", "100"), ("100", "0"), ("NaN", "100"), ("0", "Infinity")],
)
def test_meeting_scale_min_below_max(scale_min: str, scale_max: str) -> None:
    with rejected(InvalidValue, "field=scale", f"scale_min={scale_min}", f"scale_max={scale_max}"):
        Meeting.convene(
            cycle=cycle(),
            stage="Q1",
            title="例会",
            held_on=date(2026, 3, 28),
            attendees=[person(committee())],
            scale_min=Decimal(scale_min),
            scale_max=Decimal(scale_max),
        )


# --- reports --------------------------------------------------------------------------------


def test_report_delivered_by_first_responsible() -> None:
    h = hall(reported=False)

    h.meeting.deliver_report(
        unit=h.reporting_unit, reporter=h.reporter, summary="  落实“第一议题”制度情况 "
    )

    assert last_event_name(h.meeting) == "ReportDelivered"
    assert h.meeting.reports == {h.reporting_unit.id: h.reporter.id}
    assert last_event(h.meeting).summary == "落实“第一议题”制度情况"


def test_reporter_is_first_responsible() -> None:
    h = hall(reported=False)

    with rejected(
        ReporterIsFirstResponsible,
        f"reporter={h.colleague.id}",
        f"first_responsible={h.reporter.id}",
        untouched=[h.meeting],
    ):
        h.meeting.deliver_report(unit=h.reporting_unit, reporter=h.colleague, summary="代为述职")


def test_reporter_is_first_responsible_so_a_unit_without_one_cannot_report() -> None:
    h = hall(reported=False)
    headless = unit(UnitKind.DEPARTMENT)
    member = person(headless)

    with rejected(ReporterIsFirstResponsible, "first_responsible=None", untouched=[h.meeting]):
        h.meeting.deliver_report(unit=headless, reporter=member, summary="述职")


def test_unit_reports_once_per_meeting() -> None:
    h = hall()

    with rejected(UnitReportsOncePerMeeting, f"unit={h.reporting_unit.id}", untouched=[h.meeting]):
        h.meeting.deliver_report(unit=h.reporting_unit, reporter=h.reporter, summary="再次述职")


def test_report_needs_a_summary() -> None:
    h = hall(reported=False)

    with rejected(InvalidValue, "field=summary", untouched=[h.meeting]):
        h.meeting.deliver_report(unit=h.reporting_unit, reporter=h.reporter, summary=" ")


# --- scores and reviews ---------------------------------------------------------------------


def test_score_cast_by_an_attendee_from_another_unit() -> None:
    h = hall()

    h.meeting.cast_score(rater=h.rater, unit_id=h.reporting_unit.id, score=Decimal("92.5"))

    assert last_event_name(h.meeting) == "ScoreCast"
    assert h.meeting.scores_for(h.reporting_unit.id) == [Decimal("92.5")]


def test_score_needs_delivered_report() -> None:
    h = hall(reported=False)

    with rejected(ScoreNeedsDeliveredReport, f"unit={h.reporting_unit.id}", untouched=[h.meeting]):
        h.meeting.cast_score(rater=h.rater, unit_id=h.reporting_unit.id, score=Decimal(90))


def test_rater_attends_meeting() -> None:
    h = hall()
    absent = person(committee(), "缺席委员")

    with rejected(RaterAttendsMeeting, f"rater={absent.id}", untouched=[h.meeting]):
        h.meeting.cast_score(rater=absent, unit_id=h.reporting_unit.id, score=Decimal(90))


@pytest.mark.parametrize("who", ["reporter", "colleague"])
def test_rater_may_not_score_own_unit(who: str) -> None:
    h = hall()
    rater = h.reporter if who == "reporter" else h.colleague

    with rejected(
        RaterMayNotScoreOwnUnit,
        f"rater={rater.id}",
        f"unit={h.reporting_unit.id}",
        untouched=[h.meeting],
    ):
        h.meeting.cast_score(rater=rater, unit_id=h.reporting_unit.id, score=Decimal(100))


@pytest.mark.parametrize("score", ["0", "100", "59.5"])
def test_score_on_the_scale_is_accepted(score: str) -> None:
    h = hall()

    h.meeting.cast_score(rater=h.rater, unit_id=h.reporting_unit.id, score=Decimal(score))

    assert h.meeting.scores[(h.reporting_unit.id, h.rater.id)] == Decimal(score)


@pytest.mark.parametrize("score", ["-0.01", "100.01", "NaN", "Infinity"])
def test_score_within_scale(score: str) -> None:
    h = hall()

    with rejected(
        ScoreWithinScale, f"score={score}", "scale_min=0", "scale_max=100", untouched=[h.meeting]
    ):
        h.meeting.cast_score(rater=h.rater, unit_id=h.reporting_unit.id, score=Decimal(score))


scales = st.tuples(
    st.decimals(min_value=-1000, max_value=1000, places=2),
    st.decimals(min_value=Decimal("0.01"), max_value=1000, places=2),
)


@settings(max_examples=50, deadline=None, database=None)
@given(scale=scales, score=st.decimals(min_value=-3000, max_value=3000, places=2))
def test_score_within_scale_property(scale: tuple[Decimal, Decimal], score: Decimal) -> None:
    scale_min, width = scale
    scale_max = scale_min + width
    with acting_as("hypothesis"):
        root = committee()
        grassroots = unit(parent=root)
        head, rater = first_responsible(grassroots), person(root)
        held = Meeting.convene(
            cycle=cycle(),
            stage="Q1",
            title="例会",
            held_on=date(2026, 3, 28),
            attendees=[head, rater],
            scale_min=scale_min,
            scale_max=scale_max,
        )
        held.deliver_report(unit=grassroots, reporter=head, summary="述职")
        version = held.version

        if scale_min <= score <= scale_max:
            held.cast_score(rater=rater, unit_id=grassroots.id, score=score)
            assert held.scores_for(grassroots.id) == [score]
        else:
            with pytest.raises(ScoreWithinScale):
                held.cast_score(rater=rater, unit_id=grassroots.id, score=score)
            assert held.version == version


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_correcting_a_cast_score_needs_a_reason(reason: str | None) -> None:
    h = hall()
    h.meeting.cast_score(rater=h.rater, unit_id=h.reporting_unit.id, score=Decimal(80))

    with rejected(ReasonRequired, "action=correct a cast score", untouched=[h.meeting]):
        h.meeting.cast_score(
            rater=h.rater, unit_id=h.reporting_unit.id, score=Decimal(85), reason=reason
        )


def test_correcting_a_cast_score_with_a_reason() -> None:
    h = hall()
    h.meeting.cast_score(rater=h.rater, unit_id=h.reporting_unit.id, score=Decimal(80))

    h.meeting.cast_score(
        rater=h.rater, unit_id=h.reporting_unit.id, score=Decimal(85), reason="笔误更正"
    )

    assert h.meeting.scores_for(h.reporting_unit.id) == [Decimal(85)]
    assert last_event(h.meeting).reason == "笔误更正"


def test_review_commented_on_a_delivered_report() -> None:
    h = hall()

    h.meeting.comment_review(
        reviewer=h.rater, unit_id=h.reporting_unit.id, comment="  亮点突出 短板明显 "
    )

    assert last_event_name(h.meeting) == "ReviewCommented"
    assert h.meeting.reviews == ((h.reporting_unit.id, h.rater.id, "亮点突出 短板明显"),)


def test_review_needs_delivered_report() -> None:
    h = hall(reported=False)

    with rejected(ScoreNeedsDeliveredReport, f"unit={h.reporting_unit.id}", untouched=[h.meeting]):
        h.meeting.comment_review(reviewer=h.rater, unit_id=h.reporting_unit.id, comment="点评")
