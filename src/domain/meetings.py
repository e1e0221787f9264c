"""Quarterly meetings (季度例会): reports (述职), on-the-spot scores (当场打分), reviews (点评)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from uuid import UUID

from closedloop.domain.base import LoopAggregate, require_reason, require_text
from closedloop.domain.cycles import Cycle
from closedloop.domain.errors import InvalidValue, RuleViolation
from closedloop.domain.people import Person
from closedloop.domain.units import Unit


class ReporterIsFirstResponsible(RuleViolation):
    """A unit's report is delivered by its active first responsible person."""


class UnitReportsOncePerMeeting(RuleViolation):
    """A unit delivers one report per meeting."""


class ScoreNeedsDeliveredReport(RuleViolation):
    """Scores and review comments are given only on a report delivered at this meeting."""


class RaterAttendsMeeting(RuleViolation):
    """Only attendees of the meeting cast scores."""


class RaterMayNotScoreOwnUnit(RuleViolation):
    """A rater cannot score the report of their own unit (回避)."""


class ScoreWithinScale(RuleViolation):
    """A score lies within the meeting's scale."""


class Meeting(LoopAggregate):
    class MeetingConvened(LoopAggregate.Created):
        cycle_id: UUID
        stage: str
        title: str
        held_on: date
        attendee_ids: list[UUID]
        scale_min: Decimal
        scale_max: Decimal

    class ReportDelivered(LoopAggregate.Event):
        unit_id: UUID
        reporter_id: UUID
        summary: str

        def apply(self, meeting: Meeting) -> None:
            meeting.reports[self.unit_id] = self.reporter_id

    class ScoreCast(LoopAggregate.Event):
        rater_id: UUID
        unit_id: UUID
        score: Decimal

        def apply(self, meeting: Meeting) -> None:
            meeting.scores[(self.unit_id, self.rater_id)] = self.score

    class ReviewCommented(LoopAggregate.Event):
        reviewer_id: UUID
        unit_id: UUID
        comment: str

        def apply(self, meeting: Meeting) -> None:
            meeting.reviews = (*meeting.reviews, (self.unit_id, self.reviewer_id, self.comment))

    def __init__(
        self,
        cycle_id: UUID,
        stage: str,
        title: str,
        held_on: date,
        attendee_ids: list[UUID],
        scale_min: Decimal,
        scale_max: Decimal,
    ) -> None:
        self.cycle_id = cycle_id
        self.stage = stage
        self.title = title
        self.held_on = held_on
        self.attendee_ids = tuple(attendee_ids)
        self.scale_min = scale_min
        self.scale_max = scale_max
        self.reports: dict[UUID, UUID] = {}
        self.scores: dict[tuple[UUID, UUID], Decimal] = {}
        self.reviews: tuple[tuple[UUID, UUID, str], ...] = ()

    @classmethod
    def convene(
        cls,
        *,
        cycle: Cycle,
        stage: str,
        title: str,
        held_on: date,
        attendees: Sequence[Person],
        scale_min: Decimal = Decimal(0),
        scale_max: Decimal = Decimal(100),
    ) -> Meeting:
        cycle.stage(stage)
        cycle.require_within(held_on, field_name="held_on")
        if not attendees:
            raise InvalidValue(field="attendees", rule="at least one attendee")
        if not (scale_min.is_finite() and scale_max.is_finite() and scale_min < scale_max):
            raise InvalidValue(
                field="scale",
                rule="scale_min < scale_max",
                scale_min=scale_min,
                scale_max=scale_max,
            )
        return cls(
            cycle_id=cycle.id,
            stage=stage,
            title=require_text(title, field_name="title", max_length=300),
            held_on=held_on,
            attendee_ids=list(dict.fromkeys(p.id for p in attendees)),
            scale_min=scale_min,
            scale_max=scale_max,
        )

    def deliver_report(self, *, unit: Unit, reporter: Person, summary: str) -> None:
        if unit.first_responsible is None or unit.first_responsible[1] != reporter.id:
            raise ReporterIsFirstResponsible(
                unit=unit.id,
                reporter=reporter.id,
                first_responsible=unit.first_responsible[1] if unit.first_responsible else None,
            )
        if unit.id in self.reports:
            raise UnitReportsOncePerMeeting(meeting=self.id, unit=unit.id)
        self.trigger_event(
            self.ReportDelivered,
            unit_id=unit.id,
            reporter_id=reporter.id,
            summary=require_text(summary, field_name="summary", max_length=10000),
        )

    def cast_score(
        self, *, rater: Person, unit_id: UUID, score: Decimal, reason: str | None = None
    ) -> None:
        """An attendee scores a delivered report; scoring the same report again corrects it."""
        self._require_report(unit_id)
        if rater.id not in self.attendee_ids:
            raise RaterAttendsMeeting(meeting=self.id, rater=rater.id)
        if rater.unit_id == unit_id:
            raise RaterMayNotScoreOwnUnit(rater=rater.id, unit=unit_id)
        if not (score.is_finite() and self.scale_min <= score <= self.scale_max):
            raise ScoreWithinScale(score=score, scale_min=self.scale_min, scale_max=self.scale_max)
        if (unit_id, rater.id) in self.scores:
            reason = require_reason(reason, action="correct a cast score")
        self.trigger_event(
            self.ScoreCast, rater_id=rater.id, unit_id=unit_id, score=score, reason=reason
        )

    def comment_review(self, *, reviewer: Person, unit_id: UUID, comment: str) -> None:
        self._require_report(unit_id)
        self.trigger_event(
            self.ReviewCommented,
            reviewer_id=reviewer.id,
            unit_id=unit_id,
            comment=require_text(comment, field_name="comment", max_length=10000),
        )

    def scores_for(self, unit_id: UUID) -> list[Decimal]:
        return [score for (unit, _), score in self.scores.items() if unit == unit_id]

    def _require_report(self, unit_id: UUID) -> None:
        if unit_id not in self.reports:
            raise ScoreNeedsDeliveredReport(meeting=self.id, unit=unit_id)
