"""Request and response bodies. Constraints here give 422s that name the field and the rule."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from closedloop.domain.awards import AwardKind
from closedloop.domain.duties import DutyTier
from closedloop.domain.problems import ProblemSource, Severity
from closedloop.domain.targets import Direction, EffectMethod, Indicator, IndicatorKind, TargetScope
from closedloop.domain.units import UnitKind

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
OptionalText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=10000)]
StageKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
Points = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=4, examples=["10"])]
Score = Annotated[Decimal, Field(max_digits=12, decimal_places=4, examples=["88.5"])]
Result = Annotated[
    Decimal | str, Field(description="a number, or a rubric level", examples=["58.6", "优"])
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WriteResult(BaseModel):
    id: UUID
    version: int = Field(description="the aggregate's version after this write; also the ETag")
    position: int = Field(
        description="notification position of the last event written; "
        "pass it as min_position to read your own write"
    )


class UnitCreate(Body):
    name: Name = Field(examples=["红旗林场"])
    kind: UnitKind
    parent_id: UUID | None = Field(None, description="required for every kind but committee")


class UnitMove(Body):
    parent_id: UUID
    reason: Reason = Field(examples=["机构改革调整隶属关系"])


class PersonCreate(Body):
    name: Name = Field(examples=["王林"])
    unit_id: UUID
    title: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""


class PersonTransfer(Body):
    unit_id: UUID
    reason: Reason


class StageIn(Body):
    key: StageKey = Field(examples=["Q1"])
    starts_on: date
    ends_on: date


class CycleCreate(Body):
    year: int = Field(ge=2000, le=2100, examples=[2026])
    name: Title = Field(examples=["2026年度党建工作考核"])
    stages: list[StageIn] | None = Field(None, description="default: the four quarters")


class StageClose(Body):
    stage: StageKey
    reason: Reason | None = None


class IndicatorIn(Body):
    kind: IndicatorKind
    metric: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    unit_of_measure: Annotated[str, StringConstraints(max_length=50)] = ""
    baseline: Score | None = None
    target_value: Score | None = None
    direction: Direction | None = None
    levels: list[Annotated[str, StringConstraints(min_length=1, max_length=50)]] = Field(
        default_factory=list, max_length=20
    )

    def to_domain(self) -> Indicator:
        return Indicator(
            self.kind,
            self.metric,
            self.unit_of_measure,
            self.baseline,
            self.target_value,
            self.direction,
            tuple(self.levels),
        )


class TargetCreate(Body):
    cycle_id: UUID
    scope: TargetScope
    title: Title = Field(examples=["森林覆盖率达到 60.5%"])
    indicator: IndicatorIn
    points: Points
    applies_to: list[UUID] = Field(
        default_factory=list, max_length=2000, description="units a common target applies to"
    )
    unit_id: UUID | None = Field(None, description="the unit owning a unit target")
    contributes_to: UUID | None = Field(None, description="a common target this one serves")


class TargetRevise(Body):
    reason: Reason
    title: Title | None = None
    indicator: IndicatorIn | None = None
    points: Points | None = None


class MilestonesIn(Body):
    milestones: dict[StageKey, Result] = Field(examples=[{"Q1": "58.5", "Q4": "60.5"}])
    reason: Reason | None = Field(None, description="required when replacing milestones")


class ContractIn(Body):
    lead_unit_id: UUID
    responsible_unit_ids: list[UUID] = Field(min_length=1, max_length=200)
    responsible_leader_id: UUID
    reason: Reason | None = Field(None, description="required when re-contracting")


class LinkIn(Body):
    linked_target_id: UUID


class ReasonIn(Body):
    reason: Reason = Field(examples=["上级统一调整"])


class EffectIn(Body):
    stage: StageKey
    method: EffectMethod
    unit_id: UUID
    result: Result
    evidence: Text = Field(examples=["一季度自查表及佐证材料"])
    confirmed_at: AwareDatetime | None = None
    reason: Reason | None = Field(None, description="required when correcting a confirmation")


class ProblemCreate(Body):
    cycle_id: UUID
    unit_id: UUID
    title: Title = Field(examples=["防火巡护记录不全"])
    source: ProblemSource
    severity: Severity = Severity.ORDINARY
    shared: bool = False
    description: OptionalText = ""
    target_id: UUID | None = None
    found_at: AwareDatetime | None = None


class DispatchIn(Body):
    to_unit_id: UUID
    requirement: Text = Field(examples=["两周内完成整改并上报"])
    deadline: date


class EscalateIn(Body):
    leader_id: UUID
    reason: Reason | None = None


class ResolveIn(Body):
    evidence: Text
    resolved_at: AwareDatetime | None = None


class MeasureCreate(Body):
    cycle_id: UUID
    title: Title = Field(examples=["增设巡护点"])
    deadline: date
    lead_unit_id: UUID
    responsible_unit_ids: list[UUID] = Field(min_length=1, max_length=200)
    responsible_leader_id: UUID
    problem_ids: list[UUID] = Field(default_factory=list, max_length=200)
    target_id: UUID | None = None


class ProgressIn(Body):
    percent: int = Field(ge=0, le=100)
    note: OptionalText = ""


class EvidenceIn(Body):
    evidence: Text


class DutyCreate(Body):
    person_id: UUID
    unit_id: UUID
    tier: DutyTier
    effective_from: date


class RelieveIn(Body):
    effective_to: date
    reason: Reason


class MeetingCreate(Body):
    cycle_id: UUID
    stage: StageKey
    title: Title = Field(examples=["一季度党建工作例会"])
    held_on: date
    attendee_ids: list[UUID] = Field(min_length=1, max_length=500)
    scale_min: Score = Decimal(0)
    scale_max: Score = Decimal(100)


class ReportIn(Body):
    unit_id: UUID
    reporter_id: UUID
    summary: Text


class ScoreIn(Body):
    rater_id: UUID
    unit_id: UUID
    score: Score
    reason: Reason | None = Field(None, description="required when correcting a score")


class ReviewIn(Body):
    reviewer_id: UUID
    unit_id: UUID
    comment: Text


class RectificationCreate(Body):
    cycle_id: UUID
    unit_id: UUID
    requirement: Text
    deadline: date
    problem_id: UUID | None = None
    target_id: UUID | None = None
    meeting_id: UUID | None = None


class VerifyIn(Body):
    comment: OptionalText = ""


class AwardCreate(Body):
    cycle_id: UUID
    kind: AwardKind
    basis: Text = Field(examples=["一季度考核排名第一"])
    unit_id: UUID | None = None
    person_id: UUID | None = None
    stage: StageKey | None = None
    points: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=4)] | None = None
    rule: Annotated[str, StringConstraints(max_length=200)] | None = None


class CatalogueItem(BaseModel):
    id: UUID
    kind: str
    title: str
    cycle_id: UUID | None
    unit_id: UUID | None
    status: str
    version: int
    created_at: datetime
    updated_at: datetime


class Page(BaseModel):
    items: list[CatalogueItem]
    next_after: int | None = Field(description="pass as ?after= for the next page; null at end")
    position: int = Field(description="the catalogue reflects events up to this position")


class HistoryItem(BaseModel):
    version: int
    position: int | None
    type: str
    data: dict[str, Any]
    actor: str
    reason: str | None
    correlation_id: str
    recorded_at: datetime
    effective_at: datetime


class Health(BaseModel):
    status: str
    store: str
    head_position: int
    catalogue_position: int
