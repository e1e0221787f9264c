"""Problems (确认问题): found by sweep or inspection, dispatched, escalated, resolved, reopened."""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from enum import Enum
from uuid import UUID

from closedloop.domain.base import (
    LoopAggregate,
    require_aware,
    require_reason,
    require_text,
    utc_now,
)
from closedloop.domain.cycles import Cycle
from closedloop.domain.deadlines import require_missed
from closedloop.domain.errors import InvalidValue, RuleViolation
from closedloop.domain.people import Person
from closedloop.domain.targets import Target
from closedloop.domain.units import Unit, UnitKind


class ProblemSource(Enum):
    SWEEP = "sweep"
    INSPECTION = "inspection"
    MEETING = "meeting"
    SELF_CHECK = "self_check"


class Severity(Enum):
    ORDINARY = "ordinary"
    PROMINENT = "prominent"


class ProblemStatus(Enum):
    OPEN = "open"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"
    REOPENED = "reopened"


DISPATCHABLE_KINDS = frozenset({UnitKind.GRASSROOTS, UnitKind.BRANCH})


class ProblemResolvedOnlyOnce(RuleViolation):
    """A problem that is resolved cannot be resolved again (reopen it first)."""


class ResolvedNotBeforeFound(RuleViolation):
    """A problem cannot be resolved before the time it was found."""


class ResolvedProblemTakesNoActions(RuleViolation):
    """A resolved problem is not dispatched or escalated; reopen it first."""


class OnlyResolvedProblemsReopen(RuleViolation):
    """Only a resolved problem can be reopened."""


class OnlyProminentOrSharedProblemsEscalate(RuleViolation):
    """Only prominent (突出) or shared (共性) problems are escalated to the leader in charge."""


class ProblemEscalatedOnce(RuleViolation):
    """A problem is escalated to the leader in charge at most once."""


class DispatchGoesToGrassroots(RuleViolation):
    """Requirements are dispatched (下达) to a grassroots unit or a branch."""


class ProblemConcernsItsTarget(RuleViolation):
    """A problem blocks a target of its own cycle."""


class Problem(LoopAggregate):
    class ProblemFound(LoopAggregate.Created):
        cycle_id: UUID
        unit_id: UUID
        target_id: UUID | None
        title: str
        description: str
        source: ProblemSource
        severity: Severity
        shared: bool

    class ProblemDispatched(LoopAggregate.Event):
        to_unit_id: UUID
        requirement: str
        deadline: date

        def apply(self, problem: Problem) -> None:
            problem.status = ProblemStatus.DISPATCHED
            problem.dispatched_to = self.to_unit_id
            problem.deadline = self.deadline

    class ProblemEscalated(LoopAggregate.Event):
        leader_id: UUID

        def apply(self, problem: Problem) -> None:
            problem.escalated_to = self.leader_id

    class ProblemResolved(LoopAggregate.Event):
        evidence: str

        def apply(self, problem: Problem) -> None:
            problem.status = ProblemStatus.RESOLVED
            problem.resolved_at = self.effective_time

    class ProblemReopened(LoopAggregate.Event):
        def apply(self, problem: Problem) -> None:
            problem.status = ProblemStatus.REOPENED
            problem.resolved_at = None

    class DeadlineMissed(LoopAggregate.Event):
        """The deadline passed with the problem unfinished (see closedloop.domain.deadlines)."""

        deadline: date

        def apply(self, problem: Problem) -> None:
            problem.missed_deadlines = (*problem.missed_deadlines, self.deadline)

    def __init__(
        self,
        cycle_id: UUID,
        unit_id: UUID,
        target_id: UUID | None,
        title: str,
        description: str,
        source: ProblemSource,
        severity: Severity,
        shared: bool,
        effective_at: datetime | None = None,
    ) -> None:
        self.cycle_id = cycle_id
        self.unit_id = unit_id
        self.target_id = target_id
        self.title = title
        self.description = description
        self.source = source
        self.severity = severity
        self.shared = shared
        self.status = ProblemStatus.OPEN
        self.missed_deadlines: tuple[date, ...] = ()
        self.dispatched_to: UUID | None = None
        self.deadline: date | None = None
        self.escalated_to: UUID | None = None
        self.resolved_at: datetime | None = None
        self.found_at: datetime = effective_at or self.created_on

    @classmethod
    def find(
        cls,
        *,
        cycle: Cycle,
        unit: Unit,
        title: str,
        source: ProblemSource,
        severity: Severity = Severity.ORDINARY,
        shared: bool = False,
        description: str = "",
        target: Target | None = None,
        found_at: datetime | None = None,
    ) -> Problem:
        if target is not None and target.cycle_id != cycle.id:
            raise ProblemConcernsItsTarget(target=target.id, cycle=cycle.id)
        return cls._create(
            cls.ProblemFound,
            cycle_id=cycle.id,
            unit_id=unit.id,
            target_id=target.id if target else None,
            title=require_text(title, field_name="title", max_length=300),
            description=description.strip(),
            source=source,
            severity=severity,
            shared=shared,
            effective_at=require_aware(found_at, field_name="found_at"),
        )

    def dispatch(self, cycle: Cycle, *, to_unit: Unit, requirement: str, deadline: date) -> None:
        self._require_unresolved()
        if cycle.id != self.cycle_id:
            raise InvalidValue(
                field="cycle",
                rule="must be the problem's own cycle",
                given=cycle.id,
                problem_cycle=self.cycle_id,
            )
        if to_unit.kind not in DISPATCHABLE_KINDS:
            raise DispatchGoesToGrassroots(unit=to_unit.id, kind=to_unit.kind.value)
        self.trigger_event(
            self.ProblemDispatched,
            to_unit_id=to_unit.id,
            requirement=require_text(requirement, field_name="requirement"),
            deadline=cycle.require_within(deadline),
        )

    def escalate(self, *, leader: Person, reason: str | None = None) -> None:
        self._require_unresolved()
        if self.severity is not Severity.PROMINENT and not self.shared:
            raise OnlyProminentOrSharedProblemsEscalate(
                problem=self.id, severity=self.severity.value, shared=self.shared
            )
        if self.escalated_to is not None:
            raise ProblemEscalatedOnce(problem=self.id, escalated_to=self.escalated_to)
        self.trigger_event(self.ProblemEscalated, leader_id=leader.id, reason=reason)

    def resolve(self, *, evidence: str, resolved_at: datetime | None = None) -> None:
        if self.status is ProblemStatus.RESOLVED:
            raise ProblemResolvedOnlyOnce(problem=self.id, resolved_at=self.resolved_at)
        when = require_aware(resolved_at, field_name="resolved_at") or utc_now()
        if when < self.found_at:
            raise ResolvedNotBeforeFound(problem=self.id, found_at=self.found_at, resolved_at=when)
        self.trigger_event(
            self.ProblemResolved,
            evidence=require_text(evidence, field_name="evidence"),
            effective_at=resolved_at,
        )

    def reopen(self, *, reason: str | None) -> None:
        if self.status is not ProblemStatus.RESOLVED:
            raise OnlyResolvedProblemsReopen(problem=self.id, status=self.status.value)
        self.trigger_event(
            self.ProblemReopened, reason=require_reason(reason, action="reopen a problem")
        )

    def _require_unresolved(self) -> None:
        if self.status is ProblemStatus.RESOLVED:
            raise ResolvedProblemTakesNoActions(problem=self.id)

    def miss_deadline(self, *, now: datetime, zone: tzinfo) -> None:
        """Record that the deadline passed with the problem unfinished (once per deadline)."""
        missed = require_missed(
            item=self.id,
            deadline=self.deadline,
            finished=self.status is ProblemStatus.RESOLVED,
            already_missed=self.missed_deadlines,
            now=now,
            zone=zone,
        )
        self.trigger_event(self.DeadlineMissed, deadline=missed)
