"""Rectifications (整改): ordered fixes with a deadline, tracked to verified completion."""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from enum import Enum
from uuid import UUID

from closedloop.domain.base import LoopAggregate, require_reason, require_text
from closedloop.domain.cycles import Cycle
from closedloop.domain.deadlines import require_missed
from closedloop.domain.errors import RuleViolation
from closedloop.domain.units import Unit


class RectificationStatus(Enum):
    ORDERED = "ordered"
    COMPLETED = "completed"
    VERIFIED = "verified"


class RectificationFollowsItsSteps(RuleViolation):
    """A rectification is completed when ordered (or rejected), then verified or rejected."""


class Rectification(LoopAggregate):
    class RectificationOrdered(LoopAggregate.Created):
        cycle_id: UUID
        unit_id: UUID
        requirement: str
        deadline: date
        problem_id: UUID | None
        target_id: UUID | None
        meeting_id: UUID | None

    class RectificationCompleted(LoopAggregate.Event):
        evidence: str

        def apply(self, rectification: Rectification) -> None:
            rectification.status = RectificationStatus.COMPLETED

    class RectificationVerified(LoopAggregate.Event):
        comment: str

        def apply(self, rectification: Rectification) -> None:
            rectification.status = RectificationStatus.VERIFIED

    class RectificationRejected(LoopAggregate.Event):
        def apply(self, rectification: Rectification) -> None:
            rectification.status = RectificationStatus.ORDERED
            rectification.rejections += 1

    class DeadlineMissed(LoopAggregate.Event):
        """The deadline passed with the rectification unfinished (see domain.deadlines)."""

        deadline: date

        def apply(self, rectification: Rectification) -> None:
            rectification.missed_deadlines = (*rectification.missed_deadlines, self.deadline)

    def __init__(
        self,
        cycle_id: UUID,
        unit_id: UUID,
        requirement: str,
        deadline: date,
        problem_id: UUID | None,
        target_id: UUID | None,
        meeting_id: UUID | None,
    ) -> None:
        self.cycle_id = cycle_id
        self.unit_id = unit_id
        self.requirement = requirement
        self.deadline = deadline
        self.problem_id = problem_id
        self.target_id = target_id
        self.meeting_id = meeting_id
        self.status = RectificationStatus.ORDERED
        self.missed_deadlines: tuple[date, ...] = ()
        self.rejections = 0

    @classmethod
    def order(
        cls,
        *,
        cycle: Cycle,
        unit: Unit,
        requirement: str,
        deadline: date,
        problem_id: UUID | None = None,
        target_id: UUID | None = None,
        meeting_id: UUID | None = None,
    ) -> Rectification:
        return cls(
            cycle_id=cycle.id,
            unit_id=unit.id,
            requirement=require_text(requirement, field_name="requirement"),
            deadline=cycle.require_within(deadline),
            problem_id=problem_id,
            target_id=target_id,
            meeting_id=meeting_id,
        )

    def complete(self, *, evidence: str) -> None:
        self._require(RectificationStatus.ORDERED, action="complete")
        self.trigger_event(
            self.RectificationCompleted, evidence=require_text(evidence, field_name="evidence")
        )

    def verify(self, *, comment: str = "") -> None:
        self._require(RectificationStatus.COMPLETED, action="verify")
        self.trigger_event(self.RectificationVerified, comment=comment.strip())

    def reject(self, *, reason: str | None) -> None:
        self._require(RectificationStatus.COMPLETED, action="reject")
        self.trigger_event(
            self.RectificationRejected,
            reason=require_reason(reason, action="reject a rectification"),
        )

    def _require(self, status: RectificationStatus, *, action: str) -> None:
        if self.status is not status:
            raise RectificationFollowsItsSteps(
                rectification=self.id,
                action=action,
                status=self.status.value,
                required=status.value,
            )

    def miss_deadline(self, *, now: datetime, zone: tzinfo) -> None:
        """Record that the deadline passed with the rectification unfinished (once per deadline)."""
        missed = require_missed(
            item=self.id,
            deadline=self.deadline,
            finished=self.status is not RectificationStatus.ORDERED,
            already_missed=self.missed_deadlines,
            now=now,
            zone=zone,
        )
        self.trigger_event(self.DeadlineMissed, deadline=missed)
