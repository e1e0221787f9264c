from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import pytest

from closedloop.domain.cycles import ClosedStageAcceptsNoEffects, Cycle, StageMustBelongToCycle
from closedloop.domain.errors import InvalidValue, ReasonRequired
from closedloop.domain.people import Person
from closedloop.domain.targets import (
    ContributionGoesToCommonTarget,
    Direction,
    EffectMethod,
    Indicator,
    IndicatorIsWellFormed,
    IndicatorKind,
    MilestoneStageInCycle,
    RevisionChangesSomething,
    Target,
    TargetLinkedOnce,
    TargetScope,
    TargetScopeNamesItsUnits,
    ValueFitsIndicator,
    WithdrawnTargetTakesNoActions,
)
from closedloop.domain.units import Unit, UnitKind

from .factories import (
    LEVELS,
    at,
    committee,
    common_target,
    cycle,
    last_event,
    last_event_name,
    person,
    qualitative,
    quantitative,
    rejected,
    unit,
    unit_target,
)


@dataclass
class World:
    year: Cycle
    root: Unit
    branch: Unit
    grassroots: Unit
    leader: Person
    target: Target


def world(indicator: Indicator | None = None) -> World:
    root = committee()
    branch, grassroots = unit(UnitKind.BRANCH, root), unit(UnitKind.GRASSROOTS, root)
    year = cycle()
    target = common_target(year, [branch, grassroots], indicator=indicator)
    return World(year, root, branch, grassroots, person(root, "分管领导"), target)


def confirm(w: World, *, result: Decimal | str = Decimal("96"), **changes: object) -> None:
    arguments: dict[str, object] = {
        "stage": "Q1",
        "method": EffectMethod.SELF_ASSESSMENT,
        "unit": w.branch,
        "result": result,
        "evidence": "学习台账及签到表",
    }
    arguments.update(changes)
    w.target.confirm_effect(w.year, **arguments)  # type: ignore[arg-type]


# --- setting targets --------------------------------------------------------------------------


def test_common_target_set_for_the_units_it_names() -> None:
    root = committee()
    branch, grassroots = unit(UnitKind.BRANCH, root), unit(UnitKind.GRASSROOTS, root)
    year = cycle()

    target = common_target(year, [branch, grassroots, branch])

    assert last_event_name(target) == "TargetSet"
    assert target.scope is TargetScope.COMMON
    assert target.applies_to == (branch.id, grassroots.id)
    assert (target.owner_unit_id, target.contributes_to, target.cycle_id) == (None, None, year.id)
    assert target.points == Decimal("10")
    assert target.concerns(branch.id)
    assert not target.concerns(root.id)
    assert target.status == "active"


def test_common_target_names_its_units() -> None:
    with rejected(TargetScopeNamesItsUnits, "scope=common", "applies_to=[]"):
        Target.set_common(
            cycle=cycle(),
            title="共性目标",
            indicator=quantitative(),
            points=Decimal("10"),
            applies_to=[],
        )


def test_unit_target_contributes_to_a_common_target() -> None:
    w = world()

    own = unit_target(w.year, w.branch, contributes_to=w.target)

    assert last_event_name(own) == "TargetSet"
    assert own.scope is TargetScope.UNIT
    assert (own.owner_unit_id, own.applies_to, own.contributes_to) == (
        w.branch.id,
        (w.branch.id,),
        w.target.id,
    )


def test_contribution_goes_to_common_target_not_a_unit_target() -> None:
    w = world()
    other = unit_target(w.year, w.grassroots)

    with rejected(
        ContributionGoesToCommonTarget,
        f"contributes_to={other.id}",
        "scope=unit",
        untouched=[other],
    ):
        unit_target(w.year, w.branch, contributes_to=other)


def test_contribution_goes_to_common_target_of_the_same_cycle() -> None:
    w = world()
    next_year = cycle(2027)

    with rejected(
        ContributionGoesToCommonTarget, f"contributes_to={w.target.id}", untouched=[w.target]
    ):
        unit_target(next_year, w.branch, contributes_to=w.target)


def test_chinese_title_round_trips_unchanged() -> None:
    title = "“两学一做”常态化制度化（含主题党日）"

    target = Target.set_common(
        cycle=cycle(),
        title=title,
        indicator=qualitative(),
        points=Decimal("8"),
        applies_to=[unit()],
    )

    assert target.title == title
    assert last_event(target).title == title
    assert last_event(target).indicator.levels == LEVELS


@pytest.mark.parametrize(
    "indicator",
    [
        pytest.param(
            Indicator(
                IndicatorKind.QUANTITATIVE,
                target_value=Decimal(1),
                direction=Direction.HIGHER_IS_BETTER,
            ),
            id="no-metric",
        ),
        pytest.param(
            Indicator(
                IndicatorKind.QUANTITATIVE,
                metric="  ",
                target_value=Decimal(1),
                direction=Direction.HIGHER_IS_BETTER,
            ),
            id="blank-metric",
        ),
        pytest.param(
            Indicator(
                IndicatorKind.QUANTITATIVE, metric="覆盖率", direction=Direction.LOWER_IS_BETTER
            ),
            id="no-target-value",
        ),
        pytest.param(
            Indicator(IndicatorKind.QUANTITATIVE, metric="覆盖率", target_value=Decimal(1)),
            id="no-direction",
        ),
    ],
)
def test_indicator_is_well_formed_quantitative(indicator: Indicator) -> None:
    with rejected(IndicatorIsWellFormed, "kind=quantitative", "metric, target_value and direction"):
        common_target(cycle(), [unit()], indicator=indicator)


@pytest.mark.parametrize("levels", [(), ("合格",), ("合格", "合格")], ids=["none", "one", "dup"])
def test_indicator_is_well_formed_qualitative(levels: tuple[str, ...]) -> None:
    with rejected(IndicatorIsWellFormed, "kind=qualitative", "two distinct rubric levels"):
        unit_target(cycle(), unit(), indicator=qualitative(levels))


def test_indicator_is_well_formed_on_revision() -> None:
    w = world()

    with rejected(IndicatorIsWellFormed, "kind=qualitative", untouched=[w.target]):
        w.target.revise(reason="改为定性", indicator=qualitative(["达标"]))


@pytest.mark.parametrize("points", ["0", "-1", "NaN", "Infinity", "-Infinity"])
def test_points_positive(points: str) -> None:
    with rejected(InvalidValue, "field=points", "must be a positive number", f"value={points}"):
        common_target(cycle(), [unit()], points=Decimal(points))


@pytest.mark.parametrize("points", ["0", "-0.5"])
def test_points_positive_on_revision(points: str) -> None:
    w = world()

    with rejected(InvalidValue, "field=points", f"value={points}", untouched=[w.target]):
        w.target.revise(reason="调整分值", points=Decimal(points))


def test_target_title_must_not_be_blank() -> None:
    with rejected(InvalidValue, "field=title"):
        Target.set_common(
            cycle=cycle(),
            title=" ",
            indicator=quantitative(),
            points=Decimal(1),
            applies_to=[unit()],
        )


# --- revisions ------------------------------------------------------------------------------


def test_revision_records_the_changes_and_reason() -> None:
    w = world()

    w.target.revise(
        reason="年中调整",
        title="党建责任制全面落实",
        points=Decimal("12.5"),
        indicator=quantitative(Decimal("98")),
    )

    assert last_event_name(w.target) == "TargetRevised"
    assert (w.target.title, w.target.points) == ("党建责任制全面落实", Decimal("12.5"))
    assert w.target.indicator.target_value == Decimal("98")
    assert last_event(w.target).reason == "年中调整"


def test_revision_keeps_what_it_does_not_change() -> None:
    w = world()
    title, indicator = w.target.title, w.target.indicator

    w.target.revise(reason="调整分值", points=Decimal("15"))

    assert (w.target.title, w.target.indicator, w.target.points) == (title, indicator, 15)


@pytest.mark.parametrize("reason", [None, "", "  \n "])
def test_revision_needs_a_reason(reason: str | None) -> None:
    w = world()

    with rejected(ReasonRequired, "action=revise a target", untouched=[w.target]):
        w.target.revise(reason=reason, title="新标题")


def test_revision_changes_something() -> None:
    w = world()

    with rejected(RevisionChangesSomething, w.target.id, untouched=[w.target]):
        w.target.revise(reason="无变化")


def test_revision_to_an_empty_title_is_rejected() -> None:
    w = world()

    with rejected(InvalidValue, "field=title", untouched=[w.target]):
        w.target.revise(reason="清空标题", title="")


# --- milestones -----------------------------------------------------------------------------


def test_milestones_set_per_stage() -> None:
    w = world()

    w.target.set_milestones(w.year, {"Q1": Decimal("85"), "Q2": Decimal("90")})

    assert last_event_name(w.target) == "MilestonesSet"
    assert w.target.milestones == {"Q1": Decimal("85"), "Q2": Decimal("90")}


def test_qualitative_milestones_are_rubric_levels() -> None:
    w = world(qualitative())

    w.target.set_milestones(w.year, {"Q2": "良好", "Q4": "优秀"})

    assert w.target.milestones == {"Q2": "良好", "Q4": "优秀"}


def test_milestone_stage_in_cycle() -> None:
    w = world()

    with rejected(MilestoneStageInCycle, "stage=Q5", untouched=[w.target]):
        w.target.set_milestones(w.year, {"Q1": Decimal("85"), "Q5": Decimal("99")})


@pytest.mark.parametrize(
    ("indicator", "value"),
    [
        pytest.param(quantitative(), "良好", id="quantitative-given-a-level"),
        pytest.param(quantitative(), Decimal("NaN"), id="quantitative-given-nan"),
        pytest.param(quantitative(), 90, id="quantitative-given-an-int"),
        pytest.param(qualitative(), "卓越", id="qualitative-given-an-unknown-level"),
        pytest.param(qualitative(), Decimal("90"), id="qualitative-given-a-number"),
    ],
)
def test_milestone_value_fits_indicator(indicator: Indicator, value: Decimal | str) -> None:
    w = world(indicator)

    with rejected(
        ValueFitsIndicator, "field=milestones.Q1", f"value={value}", untouched=[w.target]
    ):
        w.target.set_milestones(w.year, {"Q1": value})


def test_milestones_name_at_least_one_stage() -> None:
    w = world()

    with rejected(InvalidValue, "field=milestones", untouched=[w.target]):
        w.target.set_milestones(w.year, {})


@pytest.mark.parametrize("reason", [None, "", " "])
def test_replacing_milestones_needs_a_reason(reason: str | None) -> None:
    w = world()
    w.target.set_milestones(w.year, {"Q1": Decimal("85")})

    with rejected(ReasonRequired, "action=replace milestones", untouched=[w.target]):
        w.target.set_milestones(w.year, {"Q1": Decimal("80")}, reason=reason)


def test_replacing_milestones_with_a_reason() -> None:
    w = world()
    w.target.set_milestones(w.year, {"Q1": Decimal("85")})

    w.target.set_milestones(w.year, {"Q1": Decimal("80")}, reason="疫情影响下调")

    assert w.target.milestones == {"Q1": Decimal("80")}
    assert last_event(w.target).reason == "疫情影响下调"


# --- contract and links ---------------------------------------------------------------------


def test_contract_records_who_carries_the_target() -> None:
    w = world()

    w.target.contract_to(
        lead_unit=w.root,
        responsible_units=[w.branch, w.grassroots, w.branch],
        responsible_leader=w.leader,
    )

    assert last_event_name(w.target) == "TargetContracted"
    assert w.target.contract is not None
    assert w.target.contract.lead_unit_id == w.root.id
    assert w.target.contract.responsible_unit_ids == (w.branch.id, w.grassroots.id)
    assert w.target.contract.responsible_leader_id == w.leader.id


@pytest.mark.parametrize("reason", [None, "", "  "])
def test_recontracting_needs_a_reason(reason: str | None) -> None:
    w = world()
    w.target.contract_to(
        lead_unit=w.root, responsible_units=[w.branch], responsible_leader=w.leader
    )

    with rejected(ReasonRequired, "action=re-contract a target", untouched=[w.target]):
        w.target.contract_to(
            lead_unit=w.branch,
            responsible_units=[w.branch],
            responsible_leader=w.leader,
            reason=reason,
        )


def test_recontracting_with_a_reason() -> None:
    w = world()
    w.target.contract_to(
        lead_unit=w.root, responsible_units=[w.branch], responsible_leader=w.leader
    )

    w.target.contract_to(
        lead_unit=w.branch,
        responsible_units=[w.grassroots],
        responsible_leader=w.leader,
        reason="牵头单位调整",
    )

    assert w.target.contract is not None
    assert w.target.contract.lead_unit_id == w.branch.id


def test_link_records_the_linked_goal() -> None:
    w = world()
    party_goal = unit_target(w.year, w.branch)

    w.target.link_to(party_goal)

    assert last_event_name(w.target) == "TargetLinked"
    assert w.target.linked_goals == (party_goal.id,)


def test_target_linked_once() -> None:
    w = world()
    party_goal = unit_target(w.year, w.branch)
    w.target.link_to(party_goal)

    with rejected(TargetLinkedOnce, f"linked={party_goal.id}", untouched=[w.target]):
        w.target.link_to(party_goal)


def test_target_never_linked_to_itself() -> None:
    w = world()

    with rejected(TargetLinkedOnce, f"target={w.target.id}", untouched=[w.target]):
        w.target.link_to(w.target)


# --- withdrawal -----------------------------------------------------------------------------


def test_withdrawal_records_target_withdrawn() -> None:
    w = world()

    w.target.withdraw(reason="上级文件取消该项考核")

    assert last_event_name(w.target) == "TargetWithdrawn"
    assert w.target.withdrawn
    assert w.target.status == "withdrawn"


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_withdrawal_needs_a_reason(reason: str | None) -> None:
    w = world()

    with rejected(ReasonRequired, "action=withdraw a target", untouched=[w.target]):
        w.target.withdraw(reason=reason)


WITHDRAWN_ACTIONS: dict[str, Callable[[World], None]] = {
    "revise": lambda w: w.target.revise(reason="r", title="新标题"),
    "set_milestones": lambda w: w.target.set_milestones(w.year, {"Q1": Decimal("1")}),
    "contract_to": lambda w: w.target.contract_to(
        lead_unit=w.root, responsible_units=[w.branch], responsible_leader=w.leader
    ),
    "link_to": lambda w: w.target.link_to(unit_target(w.year, w.branch)),
    "withdraw": lambda w: w.target.withdraw(reason="再次撤回"),
    "confirm_effect": lambda w: confirm(w),
}


@pytest.mark.parametrize("action", WITHDRAWN_ACTIONS.values(), ids=WITHDRAWN_ACTIONS.keys())
def test_withdrawn_target_takes_no_actions(action: Callable[[World], None]) -> None:
    w = world()
    w.target.withdraw(reason="取消")

    with rejected(WithdrawnTargetTakesNoActions, w.target.id, untouched=[w.target]):
        action(w)


# --- effects --------------------------------------------------------------------------------


def test_effect_confirmed_for_a_stage_and_unit() -> None:
    w = world()
    confirmed_at = at(2026, 4, 3)

    confirm(w, method=EffectMethod.INSPECTION, confirmed_at=confirmed_at)

    assert last_event_name(w.target) == "EffectConfirmed"
    effect = w.target.effects[("Q1", EffectMethod.INSPECTION, w.branch.id)]
    assert (effect.result, effect.evidence, effect.confirmed_at) == (
        Decimal("96"),
        "学习台账及签到表",
        confirmed_at,
    )
    assert last_event(w.target).effective_at == confirmed_at


def test_qualitative_effect_is_a_rubric_level() -> None:
    w = world(qualitative())

    confirm(w, result="良好")

    assert w.target.effects[("Q1", EffectMethod.SELF_ASSESSMENT, w.branch.id)].result == "良好"


def test_closed_stage_accepts_no_effects() -> None:
    w = world()
    w.year.close_stage("Q1")

    with rejected(ClosedStageAcceptsNoEffects, "stage=Q1", untouched=[w.target, w.year]):
        confirm(w)


def test_effect_stage_must_belong_to_cycle() -> None:
    w = world()

    with rejected(StageMustBelongToCycle, "stage=Q0", untouched=[w.target]):
        confirm(w, stage="Q0")


def test_effect_only_for_units_the_target_names() -> None:
    w = world()

    with rejected(TargetScopeNamesItsUnits, f"unit={w.root.id}", untouched=[w.target]):
        confirm(w, unit=w.root)


@pytest.mark.parametrize(
    ("indicator", "result"),
    [(quantitative(), "优秀"), (qualitative(), Decimal("96")), (qualitative(), "很好")],
)
def test_effect_result_fits_indicator(indicator: Indicator, result: Decimal | str) -> None:
    w = world(indicator)

    with rejected(ValueFitsIndicator, "field=result", f"value={result}", untouched=[w.target]):
        confirm(w, result=result)


def test_effect_needs_evidence() -> None:
    w = world()

    with rejected(InvalidValue, "field=evidence", untouched=[w.target]):
        confirm(w, evidence="  ")


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_correcting_a_confirmed_effect_needs_a_reason(reason: str | None) -> None:
    w = world()
    confirm(w)

    with rejected(ReasonRequired, "action=correct a confirmed effect", untouched=[w.target]):
        confirm(w, result=Decimal("90"), reason=reason)


def test_correcting_a_confirmed_effect_with_a_reason() -> None:
    w = world()
    confirm(w)

    confirm(w, result=Decimal("90"), reason="复核发现统计口径错误")

    assert w.target.effects[("Q1", EffectMethod.SELF_ASSESSMENT, w.branch.id)].result == 90
    assert last_event(w.target).reason == "复核发现统计口径错误"


def test_another_method_or_unit_is_not_a_correction() -> None:
    w = world()
    confirm(w)

    confirm(w, method=EffectMethod.INSPECTION)
    confirm(w, unit=w.grassroots)

    assert len(w.target.effects) == 3


def test_effect_confirmation_time_must_be_timezone_aware() -> None:
    w = world()

    with rejected(InvalidValue, "field=confirmed_at", untouched=[w.target]):
        confirm(w, confirmed_at=datetime(2026, 4, 3, 9, 0))
