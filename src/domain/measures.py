"""Measures (确认措施): actions adopted against problems or for a target, tracked to completion."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, tzinfo
from enum import Enum
from uuid import UUID

from closedloop.domain.base import LoopAggregate, require_reason, require_text
from closedloop.domain.cycles import Cycle
from closedloop.domain.deadlines import require_missed
from closedloop.domain.errors import InvalidValue, RuleViolation
from closedloop.domain.people import Person
from closedloop.domain.problems import Problem
from closedloop.domain.targets import Target
from closedloop.domain.units import Unit


class MeasureStatus(Enum):
    ADOPTED = "adopted"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class MeasureAddressesSomething(RuleViolation):
    """A measure is adopted against at least one problem or for a target, all of its cycle."""


class FinishedMeasureTakesNoActions(RuleViolation):
    """A completed or cancelled measure takes no more progress, completion or cancellation."""


class Measure(LoopAggregate):
    class MeasureAdopted(LoopAggregate.Created):
        cycle_id: UUID
        title: str
        problem_ids: list[UUID]
        target_id: UUID | None
        deadline: date
        lead_unit_id: UUID
        responsible_unit_ids: list[UUID]
        responsible_leader_id: UUID

    class MeasureProgressReported(LoopAggregate.Event):
        percent: int
        note: str

        def apply(self, measure: Measure) -> None:
            measure.progress = self.percent

    class MeasureCompleted(LoopAggregate.Event):
        evidence: str

        def apply(self, measure: Measure) -> None:
            measure.status = MeasureStatus.COMPLETED
            measure.progress = 100

    class MeasureCancelled(LoopAggregate.Event):
        def apply(self, measure: Measure) -> None:
            measure.status = MeasureStatus.CANCELLED

    class DeadlineMissed(LoopAggregate.Event):
        """The deadline passed with the measure unfinished (see closedloop.domain.deadlines)."""

        deadline: date

        def apply(self, measure: Measure) -> None:
            measure.missed_deadlines = (*measure.missed_deadlines, self.deadline)

    def __init__(
        self,
        cycle_id: UUID,
        title: str,
        problem_ids: list[UUID],
        target_id: UUID | None,
        deadline: date,
        lead_unit_id: UUID,
        responsible_unit_ids: list[UUID],
        responsible_leader_id: UUID,
    ) -> None:
        self.cycle_id = cycle_id
        self.title = title
        self.problem_ids = tuple(problem_ids)
        self.target_id = target_id
        self.deadline = deadline
        self.lead_unit_id = lead_unit_id
        self.responsible_unit_ids = tuple(responsible_unit_ids)
        self.responsible_leader_id = responsible_leader_id
        self.status = MeasureStatus.ADOPTED
        self.missed_deadlines: tuple[date, ...] = ()
        self.progress = 0

    @classmethod
    def adopt(
        cls,
        *,
        cycle: Cycle,
        title: str,
        deadline: date,
        lead_unit: Unit,
        responsible_units: Sequence[Unit],
        responsible_leader: Person,
        problems: Sequence[Problem] = (),
        target: Target | None = None,
    ) -> Measure:
        if not problems and target is None:
            raise MeasureAddressesSomething(problems=[], target=None)
        foreign = [p.id for p in problems if p.cycle_id != cycle.id]
        if foreign or (target is not None and target.cycle_id != cycle.id):
            raise MeasureAddressesSomething(cycle=cycle.id, other_cycle_items=foreign or target)
        return cls(
            cycle_id=cycle.id,
            title=require_text(title, field_name="title", max_length=300),
            problem_ids=list(dict.fromkeys(p.id for p in problems)),
            target_id=target.id if target else None,
            deadline=cycle.require_within(deadline),
            lead_unit_id=lead_unit.id,
            responsible_unit_ids=list(dict.fromkeys(u.id for u in responsible_units)),
            responsible_leader_id=responsible_leader.id,
        )

    def report_progress(self, *, percent: int, note: str = "") -> None:
        self._require_unfinished()
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise InvalidValue(field="percent", rule="between 0 and 100", value=percent)
        self.trigger_event(self.MeasureProgressReported, percent=percent, note=note.strip())

    def complete(self, *, evidence: str) -> None:
        self._require_unfinished()
        self.trigger_event(
            self.MeasureCompleted, evidence=require_text(evidence, field_name="evidence")
        )

    def cancel(self, *, reason: str | None) -> None:
        self._require_unfinished()
        self.trigger_event(
            self.MeasureCancelled, reason=require_reason(reason, action="cancel a measure")
        )

    def _require_unfinished(self) -> None:
        if self.status is not MeasureStatus.ADOPTED:
            raise FinishedMeasureTakesNoActions(measure=self.id, status=self.status.value)

    def miss_deadline(self, *, now: datetime, zone: tzinfo) -> None:
        """Record that the deadline passed with the measure unfinished (once per deadline)."""
        missed = require_missed(
            item=self.id,
            deadline=self.deadline,
            finished=self.status is not MeasureStatus.ADOPTED,
            already_missed=self.missed_deadlines,
            now=now,
            zone=zone,
        )
        self.trigger_event(self.DeadlineMissed, deadline=missed)
