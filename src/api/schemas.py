"""Request and response bodies. Constraints here give 422s that name the field and the rule."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from closedloop.domain.awards import AwardKind
from closedloop.domain.duties import DutyTier
from closedloop.domain.errors import InvalidValue
from closedloop.domain.problems import ProblemSource, Severity
from closedloop.domain.scoring import DEFAULT_POLICY, AwardBasis, AwardRule, ScoringPolicy
from closedloop.domain.targets import Direction, EffectMethod, Indicator, IndicatorKind, TargetScope
from closedloop.domain.units import UnitKind

# Printable text: control characters (other than tab and newlines) are refused, NUL above all,
# which PostgreSQL text cannot hold.
PRINTABLE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


def _text(min_length: int, max_length: int) -> StringConstraints:
    return StringConstraints(
        strip_whitespace=True, min_length=min_length, max_length=max_length, pattern=PRINTABLE
    )


Name = Annotated[str, _text(1, 200)]
Title = Annotated[str, _text(1, 300)]
Text = Annotated[str, _text(1, 10000)]
Reason = Annotated[str, _text(1, 2000)]
OptionalText = Annotated[str, _text(0, 10000)]
StageKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
Points = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=4, examples=["10"])]
Score = Annotated[Decimal, Field(max_digits=12, decimal_places=4, examples=["88.5"])]
Result = Annotated[
    Decimal | str, Field(description="a number, or a rubric level", examples=["58.6", "优"])
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Placeholder ids for the examples shown in /docs.
UNIT = "3f6c1a2e-5b7d-4c8e-9a0b-1c2d3e4f5a6b"
PERSON = "8d2e4f6a-1b3c-4d5e-8f7a-9b0c1d2e3f4a"
CYCLE = "5a7b9c1d-2e4f-4a6b-8c0d-1e2f3a4b5c6d"
TARGET = "7c9e1a3b-5d7f-4b9c-8e1a-2b3c4d5e6f7a"
PROBLEM = "9e1a3c5e-7b9d-4f1a-8c3e-4d5e6f7a8b9c"


def example(body: dict[str, Any]) -> ConfigDict:
    """A whole-body example for /docs; the tests check it validates against the schema."""
    return ConfigDict(extra="forbid", json_schema_extra={"examples": [body]})


class WriteResult(BaseModel):
    id: UUID
    version: int = Field(description="the aggregate's version after this write; also the ETag")
    position: int = Field(
        description="notification position of the last event written; "
        "pass it as min_position to read your own write"
    )


class UnitCreate(Body):
    model_config = example({"name": "红旗林场", "kind": "grassroots", "parent_id": UNIT})

    name: Name = Field(examples=["红旗林场"])
    kind: UnitKind
    parent_id: UUID | None = Field(None, description="required for every kind but committee")


class UnitMove(Body):
    model_config = example({"parent_id": UNIT, "reason": "机构改革调整隶属关系"})

    parent_id: UUID
    reason: Reason = Field(examples=["机构改革调整隶属关系"])


class PersonCreate(Body):
    model_config = example({"name": "王林", "unit_id": UNIT, "title": "场长"})

    name: Name = Field(examples=["王林"])
    unit_id: UUID
    title: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""


class PersonTransfer(Body):
    model_config = example({"unit_id": UNIT, "reason": "干部轮岗"})

    unit_id: UUID
    reason: Reason


class StageIn(Body):
    model_config = example({"key": "Q1", "starts_on": "2026-01-01", "ends_on": "2026-03-31"})

    key: StageKey = Field(examples=["Q1"])
    starts_on: date
    ends_on: date


Weight = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=4)]
Share = Annotated[Decimal, Field(ge=0, le=1, max_digits=5, decimal_places=4)]
Deduction = Annotated[Decimal, Field(ge=0, le=100, max_digits=7, decimal_places=4)]

AWARD_RULES_EXAMPLE = [
    {"name": "季度先进", "kind": "reward", "basis": "rank", "value": "1", "points": "2"},
    {"name": "末位约谈", "kind": "penalty", "basis": "bottom_share", "value": "0.1"},
]


class AwardRuleIn(Body):
    model_config = example(AWARD_RULES_EXAMPLE[0])

    name: Annotated[str, _text(1, 100)] = Field(examples=["季度先进"])
    kind: AwardKind
    basis: AwardBasis = Field(
        description="rank: rank at most value; top_share / bottom_share: the best / worst "
        "share (0-1) of ranked units, ties at the boundary included; at_least / below: total "
        "at least / below value"
    )
    value: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=4, examples=["1"])]
    points: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=4)] | None = None

    def to_domain(self) -> AwardRule:
        return AwardRule(self.name, self.kind.value, self.basis, self.value, self.points)


class PolicyIn(Body):
    """A cycle's scoring policy; settings left out take the defaults shown."""

    model_config = example(
        {
            "result_weight": "0.5",
            "process_weight": "0.3",
            "meeting_weight": "0.2",
            "meeting_aggregation": "trimmed",
            "award_rules": AWARD_RULES_EXAMPLE,
        }
    )

    result_weight: Weight = DEFAULT_POLICY.result_weight
    process_weight: Weight = DEFAULT_POLICY.process_weight
    meeting_weight: Weight = DEFAULT_POLICY.meeting_weight
    self_assessment_share: Share = DEFAULT_POLICY.self_assessment_share
    inspection_share: Share = DEFAULT_POLICY.inspection_share
    overdue_measure_deduction: Deduction = DEFAULT_POLICY.overdue_measure_deduction
    missed_rectification_deduction: Deduction = DEFAULT_POLICY.missed_rectification_deduction
    unresolved_problem_deduction: Deduction = DEFAULT_POLICY.unresolved_problem_deduction
    prominent_resolved_bonus: Deduction = DEFAULT_POLICY.prominent_resolved_bonus
    meeting_aggregation: Literal["mean", "trimmed"] = DEFAULT_POLICY.meeting_aggregation
    trim_min_raters: int = Field(DEFAULT_POLICY.trim_min_raters, ge=3, le=1000)
    places: int = Field(DEFAULT_POLICY.places, ge=0, le=6)
    award_rules: list[AwardRuleIn] = Field(default_factory=list, max_length=50)

    def to_domain(self) -> ScoringPolicy:
        """The domain's policy; a rule it breaks names its field as ``body.policy.<field>``."""
        rules = []
        for index, rule in enumerate(self.award_rules):
            try:
                rules.append(rule.to_domain())
            except InvalidValue as error:
                name = str(error.values.get("field", "")).rsplit(".", 1)[-1]
                raise _rebased(error, f"policy.award_rules.{index}.{name}") from None
        try:
            return ScoringPolicy(
                **self.model_dump(exclude={"award_rules"}), award_rules=tuple(rules)
            )
        except InvalidValue as error:
            raise _rebased(error, f"policy.{error.values.get('field', '')}") from None


def _rebased(error: InvalidValue, field: str) -> InvalidValue:
    return InvalidValue(**{**error.values, "field": field})


class CycleCreate(Body):
    model_config = example(
        {
            "year": 2026,
            "name": "2026年度党建工作考核",
            "policy": {"result_weight": "0.6", "process_weight": "0.2", "meeting_weight": "0.2"},
        }
    )

    year: int = Field(ge=2000, le=2100, examples=[2026])
    name: Title = Field(examples=["2026年度党建工作考核"])
    stages: list[StageIn] | None = Field(None, description="default: the four quarters")
    policy: PolicyIn | None = Field(
        None, description="the scoring policy from the first stage; default: the standing policy"
    )


class PolicyRevise(Body):
    model_config = example(
        {
            "from_stage": "Q3",
            "policy": {"result_weight": "0.6", "process_weight": "0.2", "meeting_weight": "0.2"},
            "reason": "党委会研究调整下半年考核权重",
        }
    )

    from_stage: StageKey = Field(examples=["Q3"])
    policy: PolicyIn
    reason: Reason = Field(examples=["党委会研究调整下半年考核权重"])


class StageClose(Body):
    model_config = example({"stage": "Q1", "reason": "一季度考核结束"})

    stage: StageKey
    reason: Reason | None = None


class IndicatorIn(Body):
    model_config = example(
        {
            "kind": "quantitative",
            "metric": "森林覆盖率",
            "unit_of_measure": "%",
            "baseline": "58.2",
            "target_value": "60.5",
            "direction": "higher_is_better",
        }
    )

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
    model_config = example(
        {
            "cycle_id": CYCLE,
            "scope": "common",
            "title": "森林覆盖率达到 60.5%",
            "indicator": {
                "kind": "quantitative",
                "metric": "森林覆盖率",
                "target_value": "60.5",
                "direction": "higher_is_better",
            },
            "points": "10",
            "applies_to": [UNIT],
        }
    )

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
    model_config = example({"reason": "上级调整考核权重", "points": "12"})

    reason: Reason
    title: Title | None = None
    indicator: IndicatorIn | None = None
    points: Points | None = None


class MilestonesIn(Body):
    model_config = example({"milestones": {"Q1": "58.5", "Q2": "59", "Q3": "60", "Q4": "60.5"}})

    milestones: dict[StageKey, Result] = Field(examples=[{"Q1": "58.5", "Q4": "60.5"}])
    reason: Reason | None = Field(None, description="required when replacing milestones")


class ContractIn(Body):
    model_config = example(
        {"lead_unit_id": UNIT, "responsible_unit_ids": [UNIT], "responsible_leader_id": PERSON}
    )

    lead_unit_id: UUID
    responsible_unit_ids: list[UUID] = Field(min_length=1, max_length=200)
    responsible_leader_id: UUID
    reason: Reason | None = Field(None, description="required when re-contracting")


class LinkIn(Body):
    model_config = example({"linked_target_id": TARGET})

    linked_target_id: UUID


class ReasonIn(Body):
    model_config = example({"reason": "上级统一调整"})

    reason: Reason = Field(examples=["上级统一调整"])


class EffectIn(Body):
    model_config = example(
        {
            "stage": "Q1",
            "method": "inspection",
            "unit_id": UNIT,
            "result": "58.6",
            "evidence": "一季度检查报告",
            "confirmed_at": "2026-04-03T09:30:00+08:00",
        }
    )

    stage: StageKey
    method: EffectMethod
    unit_id: UUID
    result: Result
    evidence: Text = Field(examples=["一季度自查表及佐证材料"])
    confirmed_at: AwareDatetime | None = None
    reason: Reason | None = Field(None, description="required when correcting a confirmation")


class ProblemCreate(Body):
    model_config = example(
        {
            "cycle_id": CYCLE,
            "unit_id": UNIT,
            "title": "防火巡护记录不全",
            "source": "sweep",
            "severity": "prominent",
            "shared": False,
            "found_at": "2026-02-10T09:00:00+08:00",
        }
    )

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
    model_config = example(
        {"to_unit_id": UNIT, "requirement": "两周内完成整改并上报", "deadline": "2026-03-31"}
    )

    to_unit_id: UUID
    requirement: Text = Field(examples=["两周内完成整改并上报"])
    deadline: date


class EscalateIn(Body):
    model_config = example({"leader_id": PERSON, "reason": "涉及多个林场的共性问题"})

    leader_id: UUID
    reason: Reason | None = None


class ResolveIn(Body):
    model_config = example(
        {"evidence": "巡护记录补齐，经复查合格", "resolved_at": "2026-03-20T16:00:00+08:00"}
    )

    evidence: Text
    resolved_at: AwareDatetime | None = None


class MeasureCreate(Body):
    model_config = example(
        {
            "cycle_id": CYCLE,
            "title": "增设巡护点",
            "deadline": "2026-06-30",
            "lead_unit_id": UNIT,
            "responsible_unit_ids": [UNIT],
            "responsible_leader_id": PERSON,
            "problem_ids": [PROBLEM],
        }
    )

    cycle_id: UUID
    title: Title = Field(examples=["增设巡护点"])
    deadline: date
    lead_unit_id: UUID
    responsible_unit_ids: list[UUID] = Field(min_length=1, max_length=200)
    responsible_leader_id: UUID
    problem_ids: list[UUID] = Field(default_factory=list, max_length=200)
    target_id: UUID | None = None


class ProgressIn(Body):
    model_config = example({"percent": 40, "note": "已完成选址"})

    percent: int = Field(ge=0, le=100)
    note: OptionalText = ""


class EvidenceIn(Body):
    model_config = example({"evidence": "验收单及现场照片"})

    evidence: Text


class DutyCreate(Body):
    model_config = example(
        {
            "person_id": PERSON,
            "unit_id": UNIT,
            "tier": "first_responsible",
            "effective_from": "2026-01-01",
        }
    )

    person_id: UUID
    unit_id: UUID
    tier: DutyTier
    effective_from: date


class RelieveIn(Body):
    model_config = example({"effective_to": "2026-06-30", "reason": "工作调动"})

    effective_to: date
    reason: Reason


class MeetingCreate(Body):
    model_config = example(
        {
            "cycle_id": CYCLE,
            "stage": "Q1",
            "title": "一季度党建工作例会",
            "held_on": "2026-04-10",
            "attendee_ids": [PERSON],
            "scale_min": "0",
            "scale_max": "100",
        }
    )

    cycle_id: UUID
    stage: StageKey
    title: Title = Field(examples=["一季度党建工作例会"])
    held_on: date
    attendee_ids: list[UUID] = Field(min_length=1, max_length=500)
    scale_min: Score = Decimal(0)
    scale_max: Score = Decimal(100)


class ReportIn(Body):
    model_config = example({"unit_id": UNIT, "reporter_id": PERSON, "summary": "一季度工作述职"})

    unit_id: UUID
    reporter_id: UUID
    summary: Text


class ScoreIn(Body):
    model_config = example({"rater_id": PERSON, "unit_id": UNIT, "score": "88.5"})

    rater_id: UUID
    unit_id: UUID
    score: Score
    reason: Reason | None = Field(None, description="required when correcting a score")


class ReviewIn(Body):
    model_config = example(
        {"reviewer_id": PERSON, "unit_id": UNIT, "comment": "巡护工作有改进，台账仍需规范"}
    )

    reviewer_id: UUID
    unit_id: UUID
    comment: Text


class RectificationCreate(Body):
    model_config = example(
        {
            "cycle_id": CYCLE,
            "unit_id": UNIT,
            "requirement": "补齐巡护台账",
            "deadline": "2026-05-31",
            "problem_id": PROBLEM,
        }
    )

    cycle_id: UUID
    unit_id: UUID
    requirement: Text
    deadline: date
    problem_id: UUID | None = None
    target_id: UUID | None = None
    meeting_id: UUID | None = None


class VerifyIn(Body):
    model_config = example({"comment": "复查合格"})

    comment: OptionalText = ""


class AwardCreate(Body):
    model_config = example(
        {
            "cycle_id": CYCLE,
            "kind": "reward",
            "basis": "一季度考核排名第一",
            "unit_id": UNIT,
            "stage": "Q1",
            "points": "2",
        }
    )

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


class PolicyOut(BaseModel):
    cycle_id: UUID
    stage: str = Field(description="the stage whose policy this is")
    from_stage: str | None = Field(
        description="the stage from which this policy was set; null: the standing default"
    )
    settled: bool = Field(description="the stage is settled, so its policy is frozen")
    policy: dict[str, Any] = Field(description="every setting, Decimals as strings")
    digest: str = Field(description="SHA-256 of the policy's canonical JSON, as settled")
    description: dict[str, Any] = Field(description="the policy explained for readers")


class SettledUnitOut(BaseModel):
    unit_id: UUID
    components: dict[str, str | None] = Field(
        description="result, process and meeting (0-100; null when the unit had none)"
    )
    weights: dict[str, str] = Field(description="weights used (re-normalised when one is null)")
    total: str | None
    rank: int | None = Field(description="competition ranking (1224); null without a total")
    notes: list[str]


class SettlementAwardOut(BaseModel):
    id: UUID
    rule: str | None
    kind: AwardKind
    unit_id: UUID | None
    points: str | None
    basis: str
    revoked: bool


class SettlementInputsOut(BaseModel):
    from_position: int = Field(description="the first notification position read (always 1)")
    through_position: int = Field(description="the last notification position read")
    events_read: int = Field(description="events of the cycle's aggregates in that range")
    digest: str = Field(description="SHA-256 over those stored events, in position order")


class SettlementOut(BaseModel):
    id: UUID
    cycle_id: UUID
    stage: str
    round: int = Field(description="1, then one more after each reopening of the stage")
    version: int
    settled_at: datetime
    cutoff: datetime = Field(description="midnight after the stage's last day")
    inputs: SettlementInputsOut
    policy: dict[str, Any]
    policy_digest: str
    results_digest: str
    published: bool
    reopened: bool = Field(description="set aside by a reopening of the stage")
    units: list[SettledUnitOut] = Field(description="in ranking order")
    awards: list[SettlementAwardOut] = Field(description="issued by the policy's award rules")


class SettlementWritten(SettlementOut):
    created: bool = Field(description="true: settled by this request; false: already settled")
    position: int = Field(
        description="the position of the settlement's last event when created, else the "
        "head position; pass it as min_position to read your own write"
    )


class SettlementCheckOut(BaseModel):
    settlement_id: UUID
    cycle_id: UUID
    stage: str
    round: int
    through_position: int
    matches: bool = Field(description="recomputing from the history gives the same figures")
    differences: list[str] = Field(description="each recorded figure that no longer matches")


class FieldError(BaseModel):
    field: str = Field(examples=["body.percent"])
    rule: str = Field(examples=["less_than_equal"])
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error is sent (``application/problem+json``)."""

    type: str = Field(examples=["urn:closedloop:problem:rule-violation"])
    title: str
    status: int
    detail: str
    instance: str
    correlation_id: str | None = None
    rule: str | None = Field(
        None, description="the domain rule broken, e.g. ProblemResolvedOnlyOnce"
    )
    errors: list[FieldError] | None = Field(None, description="for 422: each invalid field")
    values: dict[str, Any] | None = Field(None, description="the offending values")
