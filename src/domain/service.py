"""The command service: every loop action goes through here and becomes stored events.

Commands take plain values, load what they touch, let the aggregates enforce the rules, and
save all changed aggregates atomically. They return the aggregate's id, new version and the
notification position of the last event written, so a reader can wait for its own write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder

from closedloop.domain.access import AccessToken, Role, new_token_secret, token_id_for
from closedloop.domain.awards import Award, AwardKind
from closedloop.domain.base import LoopAggregate, LoopEvent
from closedloop.domain.cycles import Cycle, Stage
from closedloop.domain.duties import Duty, DutyTier
from closedloop.domain.errors import ConcurrencyConflict, NotFound
from closedloop.domain.measures import Measure
from closedloop.domain.meetings import Meeting
from closedloop.domain.people import Person
from closedloop.domain.problems import Problem, ProblemSource, Severity
from closedloop.domain.rectifications import Rectification
from closedloop.domain.scoring import ScoringPolicy
from closedloop.domain.settlement import (
    INPUT_KINDS,
    InputsDigest,
    Settlement,
    SettlementInputs,
    compute_stage,
    expected_awards,
    ranking_of,
    require_ended,
    results_digest,
)
from closedloop.domain.targets import (
    Direction,
    EffectMethod,
    Indicator,
    IndicatorKind,
    Target,
    TargetScope,
)
from closedloop.domain.transcodings import DataclassAsDict, DateAsISO, EnumAsValue
from closedloop.domain.units import Unit, UnitKind

A = TypeVar("A", bound=LoopAggregate)

STORED_ENUMS = (
    UnitKind,
    TargetScope,
    IndicatorKind,
    Direction,
    EffectMethod,
    ProblemSource,
    Severity,
    DutyTier,
    AwardKind,
    Role,
)
STORED_VALUE_OBJECTS = (Stage, Indicator)
METADATA_FIELDS = frozenset(
    {
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
        "actor",
        "correlation_id",
        "reason",
        "effective_at",
    }
)
# Lineage walks stop here: a deeper tree means the stored tree is already broken.
MAX_TREE_DEPTH = 64

# Aggregates read together for the command in progress (see ClosedLoop._prefetching).
_prefetched: ContextVar[dict[UUID, LoopAggregate] | None] = ContextVar(
    "closedloop_prefetched", default=None
)


def _replay(aggregate: Any, events: Iterable[Any]) -> Any:
    """Fold events into an aggregate (the library's projector, minus a per-event check)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


@dataclass(frozen=True)
class CommandResult:
    id: UUID
    version: int
    position: int


@dataclass(frozen=True)
class SettlementOutcome:
    """What a settlement request did: settled now (``created``) or found the stage settled."""

    settlement_id: UUID
    created: bool
    position: int | None
    awards: int


@dataclass(frozen=True)
class SettlementCheck:
    """A settlement recomputed from history: ``differences`` is empty when everything matches."""

    settlement_id: UUID
    through_position: int
    differences: list[str]

    @property
    def matches(self) -> bool:
        return not self.differences


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded fact about an aggregate, as an auditor reads it."""

    version: int
    type: str
    data: dict[str, Any]
    actor: str
    reason: str | None
    correlation_id: str
    recorded_at: datetime
    effective_at: datetime


class ClosedLoop(Application[UUID]):
    """Records the six-confirmation loop; one instance per process, closed on shutdown."""

    name = "closedloop"

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())
        for enum_cls in STORED_ENUMS:
            transcoder.register(EnumAsValue(enum_cls))
        for value_cls in STORED_VALUE_OBJECTS:
            transcoder.register(DataclassAsDict(value_cls))

    # --- organisation ----------------------------------------------------------------------

    def register_unit(
        self, *, name: str, kind: UnitKind, parent_id: UUID | None = None
    ) -> CommandResult:
        parent = self._load(Unit, parent_id) if parent_id is not None else None
        return self._save(Unit.register(name=name, kind=kind, parent=parent))

    def move_unit(
        self,
        unit_id: UUID,
        *,
        parent_id: UUID,
        reason: str | None,
        expected_version: int | None = None,
    ) -> CommandResult:
        with self._prefetching(unit_id, parent_id):
            parent = self._load(Unit, parent_id)
            lineage = self._lineage(parent)
            return self._update(
                Unit,
                unit_id,
                expected_version,
                lambda u: u.move_under(parent, parent_lineage=lineage, reason=reason),
            )

    def register_person(self, *, name: str, unit_id: UUID, title: str = "") -> CommandResult:
        return self._save(Person.register(name=name, unit=self._load(Unit, unit_id), title=title))

    def transfer_person(
        self,
        person_id: UUID,
        *,
        unit_id: UUID,
        reason: str | None,
        expected_version: int | None = None,
    ) -> CommandResult:
        with self._prefetching(person_id, unit_id):
            unit = self._load(Unit, unit_id)
            return self._update(
                Person, person_id, expected_version, lambda p: p.transfer_to(unit, reason=reason)
            )

    # --- cycles ----------------------------------------------------------------------------

    def open_cycle(
        self,
        *,
        year: int,
        name: str,
        stages: Sequence[Stage] | None = None,
        policy: ScoringPolicy | None = None,
    ) -> CommandResult:
        return self._save(Cycle.open(year=year, name=name, stages=stages, policy=policy))

    def revise_policy(
        self,
        cycle_id: UUID,
        *,
        policy: ScoringPolicy,
        from_stage: str,
        reason: str | None,
        expected_version: int | None = None,
    ) -> CommandResult:
        return self._update(
            Cycle,
            cycle_id,
            expected_version,
            lambda c: c.revise_policy(policy, from_stage=from_stage, reason=reason),
        )

    def close_stage(
        self,
        cycle_id: UUID,
        *,
        stage: str,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> CommandResult:
        return self._update(
            Cycle, cycle_id, expected_version, lambda c: c.close_stage(stage, reason=reason)
        )

    # --- targets (确认目标) and effects (确认效果) ------------------------------------------

    def set_common_target(
        self,
        *,
        cycle_id: UUID,
        title: str,
        indicator: Indicator,
        points: Decimal,
        applies_to: Sequence[UUID],
    ) -> CommandResult:
        with self._prefetching(cycle_id, applies_to):
            return self._save(
                Target.set_common(
                    cycle=self._load(Cycle, cycle_id),
                    title=title,
                    indicator=indicator,
                    points=points,
                    applies_to=self._load_all(Unit, applies_to),
                )
            )

    def set_unit_target(
        self,
        *,
        cycle_id: UUID,
        unit_id: UUID,
        title: str,
        indicator: Indicator,
        points: Decimal,
        contributes_to: UUID | None = None,
    ) -> CommandResult:
        with self._prefetching(cycle_id, unit_id, contributes_to):
            common = self._load(Target, contributes_to) if contributes_to else None
            return self._save(
                Target.set_for_unit(
                    cycle=self._load(Cycle, cycle_id),
                    unit=self._load(Unit, unit_id),
                    title=title,
                    indicator=indicator,
                    points=points,
                    contributes_to=common,
                )
            )

    def revise_target(
        self,
        target_id: UUID,
        *,
        reason: str | None,
        title: str | None = None,
        indicator: Indicator | None = None,
        points: Decimal | None = None,
        expected_version: int | None = None,
    ) -> CommandResult:
        return self._update(
            Target,
            target_id,
            expected_version,
            lambda t: t.revise(reason=reason, title=title, indicator=indicator, points=points),
        )

    def set_milestones(
        self,
        target_id: UUID,
        *,
        milestones: Mapping[str, Decimal | str],
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> CommandResult:
        def change(target: Target) -> None:
            target.set_milestones(self._load(Cycle, target.cycle_id), milestones, reason=reason)

        return self._update(Target, target_id, expected_version, change)

    def contract_target(
        self,
        target_id: UUID,
        *,
        lead_unit_id: UUID,
        responsible_unit_ids: Sequence[UUID],
        responsible_leader_id: UUID,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> CommandResult:
        with self._prefetching(
            target_id, lead_unit_id, responsible_unit_ids, responsible_leader_id
        ):
            lead = self._load(Unit, lead_unit_id)
            responsible = self._load_all(Unit, responsible_unit_ids)
            leader = self._load(Person, responsible_leader_id)
            return self._update(
                Target,
                target_id,
                expected_version,
                lambda t: t.contract_to(
                    lead_unit=lead,
                    responsible_units=responsible,
                    responsible_leader=leader,
                    reason=reason,
                ),
            )

    def link_targets(
        self, target_id: UUID, *, linked_target_id: UUID, expected_version: int | None = None
    ) -> CommandResult:
        with self._prefetching(target_id, linked_target_id):
            other = self._load(Target, linked_target_id)
            return self._update(Target, target_id, expected_version, lambda t: t.link_to(other))

    def withdraw_target(
        self, target_id: UUID, *, reason: str | None, expected_version: int | None = None
    ) -> CommandResult:
        return self._update(
            Target, target_id, expected_version, lambda t: t.withdraw(reason=reason)
        )

    def confirm_effect(
        self,
        target_id: UUID,
        *,
        stage: str,
        method: EffectMethod,
        unit_id: UUID,
        result: Decimal | str,
        evidence: str,
        confirmed_at: datetime | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> CommandResult:
        with self._prefetching(target_id, unit_id):
            unit = self._load(Unit, unit_id)

            def change(target: Target) -> None:
                target.confirm_effect(
                    self._load(Cycle, target.cycle_id),
                    stage=stage,
                    method=method,
                    unit=unit,
                    result=result,
                    evidence=evidence,
                    confirmed_at=confirmed_at,
                    reason=reason,
                )

            return self._update(Target, target_id, expected_version, change)

    # --- problems (确认问题) ------------------------------------------------------------------

    def find_problem(
        self,
        *,
        cycle_id: UUID,
        unit_id: UUID,
        title: str,
        source: ProblemSource,
        severity: Severity = Severity.ORDINARY,
        shared: bool = False,
        description: str = "",
        target_id: UUID | None = None,
        found_at: datetime | None = None,
    ) -> CommandResult:
        with self._prefetching(cycle_id, unit_id, target_id):
            return self._save(
                Problem.find(
                    cycle=self._load(Cycle, cycle_id),
                    unit=self._load(Unit, unit_id),
                    title=title,
                    source=source,
                    severity=severity,
                    shared=shared,
                    description=description,
                    target=self._load(Target, target_id) if target_id else None,
                    found_at=found_at,
                )
            )

    def dispatch_problem(
        self,
        problem_id: UUID,
        *,
        to_unit_id: UUID,
        requirement: str,
        deadline: date,
        expected_version: int | None = None,
    ) -> CommandResult:
        with self._prefetching(problem_id, to_unit_id):
            to_unit = self._load(Unit, to_unit_id)

            def change(problem: Problem) -> None:
                problem.dispatch(
                    self._load(Cycle, problem.cycle_id),
                    to_unit=to_unit,
                    requirement=requirement,
                    deadline=deadline,
                )

            return self._update(Problem, problem_id, expected_version, change)

    def escalate_problem(
        self,
        problem_id: UUID,
        *,
        leader_id: UUID,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> CommandResult:
        with self._prefetching(problem_id, leader_id):
            leader = self._load(Person, leader_id)
            return self._update(
                Problem,
                problem_id,
                expected_version,
                lambda p: p.escalate(leader=leader, reason=reason),
            )

    def resolve_problem(
        self,
        problem_id: UUID,
        *,
        evidence: str,
        resolved_at: datetime | None = None,
        expected_version: int | None = None,
    ) -> CommandResult:
        return self._update(
            Problem,
            problem_id,
            expected_version,
            lambda p: p.resolve(evidence=evidence, resolved_at=resolved_at),
        )

    def reopen_problem(
        self, problem_id: UUID, *, reason: str | None, expected_version: int | None = None
    ) -> CommandResult:
        return self._update(
            Problem, problem_id, expected_version, lambda p: p.reopen(reason=reason)
        )

    # --- measures (确认措施) ------------------------------------------------------------------

    def adopt_measure(
        self,
        *,
        cycle_id: UUID,
        title: str,
        deadline: date,
        lead_unit_id: UUID,
        responsible_unit_ids: Sequence[UUID],
        responsible_leader_id: UUID,
        problem_ids: Sequence[UUID] = (),
        target_id: UUID | None = None,
    ) -> CommandResult:
        with self._prefetching(
            cycle_id,
            lead_unit_id,
            responsible_unit_ids,
            responsible_leader_id,
            problem_ids,
            target_id,
        ):
            return self._save(
                Measure.adopt(
                    cycle=self._load(Cycle, cycle_id),
                    title=title,
                    deadline=deadline,
                    lead_unit=self._load(Unit, lead_unit_id),
                    responsible_units=self._load_all(Unit, responsible_unit_ids),
                    responsible_leader=self._load(Person, responsible_leader_id),
                    problems=self._load_all(Problem, problem_ids),
                    target=self._load(Target, target_id) if target_id else None,
                )
            )

    def report_measure_progress(
        self,
        measure_id: UUID,
        *,
        percent: int,
        note: str = "",
        expected_version: int | None = None,
    ) -> CommandResult:
        return self._update(
            Measure,
            measure_id,
            expected_version,
            lambda m: m.report_progress(percent=percent, note=note),
        )

    def complete_measure(
        self, measure_id: UUID, *, evidence: str, expected_version: int | None = None
    ) -> CommandResult:
        return self._update(
            Measure, measure_id, expected_version, lambda m: m.complete(evidence=evidence)
        )

    def cancel_measure(
        self, measure_id: UUID, *, reason: str | None, expected_version: int | None = None
    ) -> CommandResult:
        return self._update(
            Measure, measure_id, expected_version, lambda m: m.cancel(reason=reason)
        )

    # --- responsibilities (确认责任) ----------------------------------------------------------

    def assign_duty(
        self, *, person_id: UUID, unit_id: UUID, tier: DutyTier, effective_from: date
    ) -> CommandResult:
        with self._prefetching(person_id, unit_id):
            unit = self._load(Unit, unit_id)
            duty = Duty.assign(
                person=self._load(Person, person_id),
                unit=unit,
                tier=tier,
                effective_from=effective_from,
            )
            if tier is not DutyTier.FIRST_RESPONSIBLE:
                return self._save(duty)
            # Saved together with the duty, so two concurrent appointments conflict on the unit.
            unit.designate_first_responsible(duty_id=duty.id, person_id=person_id)
            return self._save(duty, unit)

    def relieve_duty(
        self,
        duty_id: UUID,
        *,
        effective_to: date,
        reason: str | None,
        expected_version: int | None = None,
    ) -> CommandResult:
        duty = self._load(Duty, duty_id, expected_version)
        duty.relieve(effective_to=effective_to, reason=reason)
        if duty.tier is not DutyTier.FIRST_RESPONSIBLE:
            return self._save(duty)
        unit = self._load(Unit, duty.unit_id)
        unit.release_first_responsible(duty_id=duty.id)
        return self._save(duty, unit)

    # --- quarterly meetings -------------------------------------------------------------------

    def convene_meeting(
        self,
        *,
        cycle_id: UUID,
        stage: str,
        title: str,
        held_on: date,
        attendee_ids: Sequence[UUID],
        scale_min: Decimal = Decimal(0),
        scale_max: Decimal = Decimal(100),
    ) -> CommandResult:
        with self._prefetching(cycle_id, attendee_ids):
            return self._save(
                Meeting.convene(
                    cycle=self._load(Cycle, cycle_id),
                    stage=stage,
                    title=title,
                    held_on=held_on,
                    attendees=self._load_all(Person, attendee_ids),
                    scale_min=scale_min,
                    scale_max=scale_max,
                )
            )

    def deliver_report(
        self,
        meeting_id: UUID,
        *,
        unit_id: UUID,
        reporter_id: UUID,
        summary: str,
        expected_version: int | None = None,
    ) -> CommandResult:
        with self._prefetching(meeting_id, unit_id, reporter_id):
            unit = self._load(Unit, unit_id)
            reporter = self._load(Person, reporter_id)
            return self._update(
                Meeting,
                meeting_id,
                expected_version,
                lambda m: m.deliver_report(unit=unit, reporter=reporter, summary=summary),
            )

    def cast_score(
        self,
        meeting_id: UUID,
        *,
        rater_id: UUID,
        unit_id: UUID,
        score: Decimal,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> CommandResult:
        with self._prefetching(meeting_id, rater_id):
            rater = self._load(Person, rater_id)
            return self._update(
                Meeting,
                meeting_id,
                expected_version,
                lambda m: m.cast_score(rater=rater, unit_id=unit_id, score=score, reason=reason),
            )

    def comment_review(
        self,
        meeting_id: UUID,
        *,
        reviewer_id: UUID,
        unit_id: UUID,
        comment: str,
        expected_version: int | None = None,
    ) -> CommandResult:
        with self._prefetching(meeting_id, reviewer_id):
            reviewer = self._load(Person, reviewer_id)
            return self._update(
                Meeting,
                meeting_id,
                expected_version,
                lambda m: m.comment_review(reviewer=reviewer, unit_id=unit_id, comment=comment),
            )

    # --- rectifications (整改) ----------------------------------------------------------------

    def order_rectification(
        self,
        *,
        cycle_id: UUID,
        unit_id: UUID,
        requirement: str,
        deadline: date,
        problem_id: UUID | None = None,
        target_id: UUID | None = None,
        meeting_id: UUID | None = None,
    ) -> CommandResult:
        with self._prefetching(cycle_id, unit_id, problem_id, target_id, meeting_id):
            for kind, ref in ((Problem, problem_id), (Target, target_id), (Meeting, meeting_id)):
                if ref is not None:
                    self._load(kind, ref)
            return self._save(
                Rectification.order(
                    cycle=self._load(Cycle, cycle_id),
                    unit=self._load(Unit, unit_id),
                    requirement=requirement,
                    deadline=deadline,
                    problem_id=problem_id,
                    target_id=target_id,
                    meeting_id=meeting_id,
                )
            )

    def complete_rectification(
        self, rectification_id: UUID, *, evidence: str, expected_version: int | None = None
    ) -> CommandResult:
        return self._update(
            Rectification,
            rectification_id,
            expected_version,
            lambda r: r.complete(evidence=evidence),
        )

    def verify_rectification(
        self, rectification_id: UUID, *, comment: str = "", expected_version: int | None = None
    ) -> CommandResult:
        return self._update(
            Rectification, rectification_id, expected_version, lambda r: r.verify(comment=comment)
        )

    def reject_rectification(
        self,
        rectification_id: UUID,
        *,
        reason: str | None,
        expected_version: int | None = None,
    ) -> CommandResult:
        return self._update(
            Rectification, rectification_id, expected_version, lambda r: r.reject(reason=reason)
        )

    # --- rewards and penalties (兑现奖惩) -----------------------------------------------------

    def issue_award(
        self,
        *,
        cycle_id: UUID,
        kind: AwardKind,
        basis: str,
        unit_id: UUID | None = None,
        person_id: UUID | None = None,
        stage: str | None = None,
        points: Decimal | None = None,
        rule: str | None = None,
    ) -> CommandResult:
        with self._prefetching(cycle_id, unit_id, person_id):
            return self._save(
                Award.issue(
                    cycle=self._load(Cycle, cycle_id),
                    kind=kind,
                    basis=basis,
                    unit=self._load(Unit, unit_id) if unit_id else None,
                    person=self._load(Person, person_id) if person_id else None,
                    stage=stage,
                    points=points,
                    rule=rule,
                )
            )

    def revoke_award(
        self, award_id: UUID, *, reason: str | None, expected_version: int | None = None
    ) -> CommandResult:
        return self._update(Award, award_id, expected_version, lambda a: a.revoke(reason=reason))

    # --- settlement (季度结算) and deadlines ---------------------------------------------------

    def settle_stage(
        self, cycle_id: UUID, *, stage: str, now: datetime, zone: tzinfo, attempts: int = 5
    ) -> SettlementOutcome:
        """Settle the stage from everything recorded so far, once.

        Another settlement of the same round (a replica, a retry) either finds the stage settled
        or loses the race on the cycle and then finds it settled: it reports the existing one.
        A cycle changed while the inputs were read is simply read again.
        """
        for _ in range(attempts):
            cycle = self._load(Cycle, cycle_id)
            cutoff = cycle.stage(stage).cutoff(zone)
            if cycle.is_settled(stage):
                return SettlementOutcome(cycle.settlements[stage], False, None, 0)
            require_ended(stage, cutoff=cutoff, now=now)
            if not cycle.is_closed(stage):
                # Closed first, so an effect command on a target created while the inputs are
                # read finds the stage closed (targets read are sealed with the settlement).
                cycle.close_stage(stage, reason="closed for settlement")
                try:
                    self.save(cycle)
                except IntegrityError:
                    continue
            inputs = self._settlement_inputs(cycle_id, through=self.head_position())
            if inputs.cycle.is_settled(stage):  # settled by another while the log was read
                return SettlementOutcome(inputs.cycle.settlements[stage], False, None, 0)
            settlement, changed = Settlement.settle(
                inputs=inputs, stage_key=stage, cutoff=cutoff, now=now
            )
            try:
                recordings = self.save(settlement, *changed)
            except IntegrityError:
                continue  # a target or the cycle moved since the inputs were read: read again
            position = recordings[-1].notification.id
            awards = sum(isinstance(a, Award) for a in changed)
            return SettlementOutcome(settlement.id, True, position, awards)
        cycle = self._load(Cycle, cycle_id)
        if cycle.is_settled(stage):
            return SettlementOutcome(cycle.settlements[stage], False, None, 0)
        raise ConcurrencyConflict(cycle.id, None, cycle.version)

    def settlement(self, cycle_id: UUID, stage: str) -> Settlement | None:
        """The stage's settlement in force, or None while it is unsettled."""
        cycle = self._load(Cycle, cycle_id)
        cycle.stage(stage)
        settlement_id = cycle.settlements.get(stage)
        return None if settlement_id is None else self.get(Settlement, settlement_id)

    def verify_settlement(self, settlement_id: UUID) -> SettlementCheck:
        """Recompute a settlement from the history it read and compare every recorded figure."""
        recorded = self.get(Settlement, settlement_id)
        inputs = self._settlement_inputs(recorded.cycle_id, through=recorded.through_position)
        policy = ScoringPolicy.from_dict(recorded.policy)
        differences: list[str] = []
        if policy.digest != recorded.policy_digest:
            differences.append(
                f"policy digest: recorded {recorded.policy_digest}, stored policy "
                f"hashes to {policy.digest}"
            )
        in_force = inputs.cycle.policy_for(recorded.stage)
        if in_force.digest != recorded.policy_digest:
            differences.append(
                f"policy: the history sets {in_force.digest}, the settlement "
                f"used {recorded.policy_digest}"
            )
        if inputs.digest != recorded.inputs_digest:
            differences.append(
                f"inputs digest: recorded {recorded.inputs_digest}, history now "
                f"hashes to {inputs.digest} ({inputs.events_read} events)"
            )
        units = compute_stage(inputs.cycle, recorded.stage, inputs.aggregates, policy)
        now = {str(u.unit_id): u.to_dict() for u in units}
        then = {u["unit_id"]: u for u in recorded.units}
        for unit_id in sorted(set(now) | set(then)):
            if now.get(unit_id) != then.get(unit_id):
                differences.append(
                    f"unit {unit_id}: recorded {then.get(unit_id)}, recomputed {now.get(unit_id)}"
                )
        if [u.to_dict() for u in units] != recorded.units and not differences:
            differences.append("units: recorded in another order or with duplicates")
        digest = results_digest(units)
        if digest != recorded.results_digest:
            differences.append(
                f"results digest: recorded {recorded.results_digest}, recomputed {digest}"
            )
        if recorded.ranking != ranking_of(units):
            differences.append("published ranking: differs from the recomputed ranking")
        differences.extend(self._award_differences(recorded))
        return SettlementCheck(settlement_id, recorded.through_position, differences)

    def _award_differences(self, settlement: Settlement) -> list[str]:
        """Every award the rules grant was issued as granted. (A later revocation is a
        correction with its own reason, not a difference.)"""
        differences = []
        for expected_id, rule, hit in expected_awards(settlement):
            try:
                award = self.get(Award, expected_id)
            except NotFound:
                differences.append(f"award {rule.name} for unit {hit.unit_id}: not issued")
                continue
            issued = (award.rule, award.kind.value, award.unit_id, award.points, award.stage)
            granted = (rule.name, rule.kind, hit.unit_id, rule.points, settlement.stage)
            if issued != granted:
                differences.append(f"award {expected_id}: issued {issued}, rule says {granted}")
        return differences

    def reopen_stage(
        self,
        cycle_id: UUID,
        *,
        stage: str,
        reason: str | None,
        expected_version: int | None = None,
    ) -> CommandResult:
        """Set a stage's settlement aside (admin, with a reason): the settlement is marked
        reopened, its awards are revoked, and the stage can be settled again (next round)."""
        cycle = self._load(Cycle, cycle_id, expected_version)
        settlement = self._load(Settlement, cycle.reopen_stage(stage, reason=reason))
        settlement.reopen(reason=reason)
        why = f"stage {stage} reopened: {reason}"
        revoked = []
        for award in self._awards_of(settlement):
            if not award.revoked:
                award.revoke(reason=why)
                revoked.append(award)
        inputs = self._settlement_inputs(cycle_id, through=self.head_position())
        unsealed = [a for a in inputs.aggregates if isinstance(a, Target) and stage in a.sealed]
        for target in unsealed:
            target.unseal(stage, reason=why)
        return self._save(cycle, settlement, *revoked, *unsealed)

    def settle_due(self, *, now: datetime, zone: tzinfo) -> list[SettlementOutcome]:
        """Settle every stage of every cycle that is due (:meth:`Cycle.stages_due`)."""
        outcomes = []
        for cycle_id in self.cycle_ids():
            for stage in self._load(Cycle, cycle_id).stages_due(now, zone):
                outcomes.append(self.settle_stage(cycle_id, stage=stage.key, now=now, zone=zone))
        return outcomes

    def cycle_ids(self) -> list[UUID]:
        """Every cycle ever opened, oldest first."""
        topic = f"{Cycle.CycleOpened.__module__}:{Cycle.CycleOpened.__qualname__}"
        ids: list[UUID] = []
        start = 1
        while True:
            page = self.recorder.select_notifications(start, 1000, topics=[topic])
            ids.extend(UUID(str(n.originator_id)) for n in page)
            if len(page) < 1000:
                return ids
            start = page[-1].id + 1

    def record_deadline_missed(
        self, item_id: UUID, *, now: datetime, zone: tzinfo
    ) -> CommandResult:
        """Record that a measure, rectification or dispatched problem missed its deadline."""
        item = self.get_aggregate(item_id)
        if not isinstance(item, Measure | Rectification | Problem):
            raise NotFound("measure, rectification or problem", item_id)
        item.miss_deadline(now=now, zone=zone)
        return self._save(item)

    def settlement_awards(self, settlement_id: UUID) -> list[Award]:
        """The awards a settlement issued (revoked ones too, if its stage was reopened)."""
        return self._awards_of(self.get(Settlement, settlement_id))

    def _awards_of(self, settlement: Settlement) -> list[Award]:
        """One per award rule and unit the rule hit, in rule then ranking order."""
        awards = []
        for candidate, _, _ in expected_awards(settlement):
            try:
                awards.append(self.get(Award, candidate))
            except NotFound:  # not issued: verification reports it
                continue
        return awards

    def _settlement_inputs(self, cycle_id: UUID, *, through: int) -> SettlementInputs:
        """The cycle and its aggregates as of position ``through``, and the digest of the stored
        records they were replayed from."""
        kinds: tuple[type[LoopAggregate], ...] = (Cycle, *INPUT_KINDS)
        prefixes = tuple(f"{kind.__module__}:{kind.__qualname__}." for kind in kinds)
        records: dict[UUID | str, list[Any]] = {}
        start = 1
        while start <= through:
            page = self.recorder.select_notifications(start, 5000, stop=through)
            for notification in page:
                if notification.topic.startswith(prefixes):
                    records.setdefault(notification.originator_id, []).append(notification)
            if not page:
                break
            start = page[-1].id + 1
        aggregates: list[LoopAggregate] = []
        for stored in records.values():
            aggregate = _replay(None, (self.mapper.to_domain_event(n) for n in stored))
            if aggregate.id == cycle_id or getattr(aggregate, "cycle_id", None) == cycle_id:
                aggregates.append(aggregate)
        mine: set[UUID | str] = {a.id for a in aggregates}
        read = sorted(
            (n for originator, stored in records.items() if originator in mine for n in stored),
            key=lambda n: n.id,
        )
        digest = InputsDigest()
        for n in read:
            digest.add(n.id, n.originator_id, n.originator_version, n.topic, n.state)
        cycle = next((a for a in aggregates if a.id == cycle_id), None)
        if not isinstance(cycle, Cycle):
            raise NotFound("cycle", cycle_id)
        return SettlementInputs(
            cycle=cycle,
            aggregates=[a for a in aggregates if a is not cycle],
            through_position=through,
            events_read=len(read),
            digest=digest.hexdigest(),
        )

    # --- access tokens ---------------------------------------------------------------------

    def issue_token(
        self, *, name: str, role: Role, unit_id: UUID | None = None
    ) -> tuple[CommandResult, str]:
        """Issue a bearer token; the secret is returned once and only its digest is stored."""
        secret = new_token_secret()
        unit = self._load(Unit, unit_id) if unit_id is not None else None
        token = AccessToken.issue(secret=secret, name=name, role=role, unit=unit)
        return self._save(token), secret

    def revoke_token(
        self, token_id: UUID, *, reason: str | None, expected_version: int | None = None
    ) -> CommandResult:
        return self._update(
            AccessToken, token_id, expected_version, lambda t: t.revoke(reason=reason)
        )

    def authenticate(self, secret: str) -> AccessToken | None:
        """The active token matching ``secret``, or None."""
        try:
            token = self.get(AccessToken, token_id_for(secret))
        except NotFound:
            return None
        return None if token.revoked else token

    # --- reading ------------------------------------------------------------------------------

    def get_aggregate(self, aggregate_id: UUID, *, version: int | None = None) -> LoopAggregate:
        """Current state, or the state at ``version``, of any aggregate."""
        prefetched = _prefetched.get()
        if version is None and prefetched is not None and aggregate_id in prefetched:
            return prefetched[aggregate_id]
        try:
            aggregate: object = self.repository.get(
                aggregate_id, version=version, projector_func=_replay
            )
        except AggregateNotFoundError:
            raise NotFound("aggregate", aggregate_id) from None
        if not isinstance(aggregate, LoopAggregate):
            raise NotFound("aggregate", aggregate_id)
        if version is not None and aggregate.version != version:
            raise NotFound(f"version {version} of aggregate", aggregate_id)
        return aggregate

    def get(self, kind: type[A], aggregate_id: UUID, *, version: int | None = None) -> A:
        """Like :meth:`get_aggregate`, but only for an aggregate of ``kind``."""
        aggregate = self.get_aggregate(aggregate_id, version=version)
        if not isinstance(aggregate, kind):
            raise NotFound(kind.__name__.lower(), aggregate_id)
        return aggregate

    def history(self, aggregate_id: UUID) -> list[HistoryEntry]:
        """Every recorded event of one aggregate, oldest first, with who, why and when."""
        entries = [_history_entry(event) for event in self.events.get(aggregate_id)]
        if not entries:
            raise NotFound("aggregate", aggregate_id)
        return entries

    def head_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    # --- plumbing -----------------------------------------------------------------------------

    def _load(self, kind: type[A], aggregate_id: UUID, expected_version: int | None = None) -> A:
        aggregate = self.get(kind, aggregate_id)
        if expected_version is not None and aggregate.version != expected_version:
            raise ConcurrencyConflict(aggregate_id, expected_version, aggregate.version)
        return aggregate

    @contextmanager
    def _prefetching(self, *ids: UUID | Iterable[UUID] | None) -> Iterator[None]:
        """Read every aggregate a command will load in one round trip, where the store can.

        Commands then load them as usual; each is read once, from one consistent snapshot.
        """
        read_many = getattr(self.recorder, "select_events_of_many", None)
        wanted = list(dict.fromkeys(_flatten(ids)))
        # With an aggregate cache (the demo generator's), the cache is the cheaper read.
        if read_many is None or len(wanted) < 2 or self.repository.cache is not None:
            yield
            return
        loaded: dict[UUID, LoopAggregate] = {}
        for events in read_many(wanted).values():
            aggregate = _replay(None, (self.mapper.to_domain_event(e) for e in events))
            if isinstance(aggregate, LoopAggregate):
                loaded[aggregate.id] = aggregate
        token = _prefetched.set(loaded)
        try:
            yield
        finally:
            _prefetched.reset(token)

    def _load_all(self, kind: type[A], aggregate_ids: Sequence[UUID]) -> list[A]:
        return [self._load(kind, aggregate_id) for aggregate_id in dict.fromkeys(aggregate_ids)]

    def _update(
        self,
        kind: type[A],
        aggregate_id: UUID,
        expected_version: int | None,
        change: Callable[[A], None],
    ) -> CommandResult:
        aggregate = self._load(kind, aggregate_id, expected_version)
        change(aggregate)
        return self._save(aggregate)

    def _save(self, primary: LoopAggregate, *others: LoopAggregate) -> CommandResult:
        loaded = {a.id: a.version - len(a.pending_events) for a in (primary, *others)}
        try:
            recordings = self.save(primary, *others)
        except IntegrityError:
            raise self._conflict(loaded) from None
        return CommandResult(primary.id, primary.version, recordings[-1].notification.id)

    def _conflict(self, loaded: dict[UUID, int]) -> ConcurrencyConflict:
        """Name the aggregate someone else changed first (a new one counts from version 0)."""
        for aggregate_id, version in loaded.items():
            current = self._current_version(aggregate_id) or 0
            if current != version:
                return ConcurrencyConflict(aggregate_id, version, current)
        first = next(iter(loaded))
        return ConcurrencyConflict(first, loaded[first], self._current_version(first))

    def _current_version(self, aggregate_id: UUID) -> int | None:
        try:
            return self.repository.get(aggregate_id).version
        except AggregateNotFoundError:
            return None

    def _lineage(self, unit: Unit) -> list[UUID]:
        lineage = [unit.id]
        while unit.parent_id is not None and len(lineage) < MAX_TREE_DEPTH:
            unit = self._load(Unit, unit.parent_id)
            lineage.append(unit.id)
        return lineage


def _flatten(ids: Iterable[UUID | Iterable[UUID] | None]) -> Iterator[UUID]:
    for item in ids:
        if isinstance(item, UUID):
            yield item
        elif item is not None:
            yield from item


def _history_entry(event: Any) -> HistoryEntry:
    if not isinstance(event, LoopEvent):
        raise TypeError(f"not a closedloop event: {event!r}")
    return HistoryEntry(
        version=event.originator_version,
        type=type(event).__name__,
        data={k: v for k, v in vars(event).items() if k not in METADATA_FIELDS},
        actor=event.actor,
        reason=event.reason,
        correlation_id=event.correlation_id,
        recorded_at=event.timestamp,
        effective_at=event.effective_time,
    )
