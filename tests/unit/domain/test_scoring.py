"""Scoring rules: target results, components, re-normalised totals, rounding and ranking."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closedloop.domain.errors import InvalidValue
from closedloop.domain.scoring import (
    COMPONENTS,
    DEFAULT_POLICY,
    MEETING,
    PROCESS,
    RESULT,
    ProcessFacts,
    Ranked,
    ScoringPolicy,
    meeting_component,
    meeting_score,
    normalise,
    process_score,
    rank,
    renormalised_weights,
    result_component,
    target_result,
    unit_total,
    value_score,
)
from closedloop.domain.targets import Direction, Indicator

D = Decimal
HIGHER = Indicator.quantitative(
    metric="造林面积", target_value=D(1500), direction=Direction.HIGHER_IS_BETTER
)
LOWER = Indicator.quantitative(
    metric="森林火灾受害率", target_value=D("0.5"), direction=Direction.LOWER_IS_BETTER
)
LEVELS = Indicator.qualitative(levels=["好", "较好", "一般", "差"])


# --- target results ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("milestone", "value", "expected"),
    [
        (D(600), D(600), D(100)),
        (D(600), D(980), D(100)),  # better than the milestone: capped
        (D(600), D(300), D(50)),
        (D(600), D(0), D(0)),
        (D(600), D(-5), D(0)),  # never below zero
        (None, D(750), D(50)),  # no milestone: the annual target value
    ],
)
def test_higher_is_better_scores_the_achievement_ratio(
    milestone: Decimal | None, value: Decimal, expected: Decimal
) -> None:
    assert value_score(HIGHER, milestone, value) == expected


@pytest.mark.parametrize(
    ("milestone", "value", "expected"),
    [
        (D("0.5"), D(0), D(100)),  # nothing burned: best possible
        (D("0.5"), D("0.42"), D(100)),  # under the limit
        (D("0.5"), D("0.5"), D(100)),
        (D("0.5"), D(1), D(50)),  # twice the limit
        (D("0.4"), D("0.8"), D(50)),
        (D(0), D(1), D(0)),  # a zero limit exceeded
    ],
)
def test_lower_is_better_scores_the_inverse_ratio(
    milestone: Decimal, value: Decimal, expected: Decimal
) -> None:
    assert value_score(LOWER, milestone, value) == expected


def test_qualitative_levels_score_against_the_milestone_level() -> None:
    # Milestone 较好 (index 1 of 4): at or above it 100, the worst level 0, in between linear.
    assert value_score(LEVELS, "较好", "好") == D(100)
    assert value_score(LEVELS, "较好", "较好") == D(100)
    assert value_score(LEVELS, "较好", "一般") == D(50)
    assert value_score(LEVELS, "较好", "差") == D(0)
    # Without a milestone the reference is the best level: the plain rubric position.
    assert target_result(LEVELS, None, None, "较好") == D("66.67")
    assert value_score(LEVELS, None, "差") == D(0)
    # The worst level as milestone: reaching it is full marks.
    assert value_score(LEVELS, "差", "差") == D(100)


def test_values_that_do_not_fit_the_indicator_are_ignored() -> None:
    assert value_score(LEVELS, "较好", "优秀") is None
    assert value_score(LEVELS, "较好", D(3)) is None
    assert value_score(HIGHER, D(600), "好") is None
    assert target_result(HIGHER, D(600), "好", D(300)) == D(50)
    assert target_result(HIGHER, D(600), None, None) is None


def test_self_assessment_and_inspection_combine_30_70() -> None:
    assert target_result(HIGHER, D(600), D(600), D(300)) == D(65)  # 0.3*100 + 0.7*50
    assert target_result(LEVELS, "较好", "好", "一般") == D(65)
    # Only one confirmed: it counts alone.
    assert target_result(HIGHER, D(600), D(300), None) == D(50)
    assert target_result(HIGHER, D(600), None, D(450)) == D(75)
    shares = ScoringPolicy(self_assessment_share=D(0), inspection_share=D(1))
    assert target_result(HIGHER, D(600), D(600), D(300), shares) == D(50)


def test_results_round_half_up_to_two_places() -> None:
    # 100 * 1/3 = 33.333… → 33.33; 200/3 → 66.67
    assert target_result(HIGHER, D(3), None, D(1)) == D("33.33")
    assert target_result(HIGHER, D(3), None, D(2)) == D("66.67")
    # 65.025 is exactly halfway: half-up gives 65.03 (banker's rounding would give 65.02).
    assert meeting_score([D("65.02"), D("65.03")]) == D("65.03")
    assert str(meeting_score([D(80), D(90)])) == "85.00"
    assert ScoringPolicy(places=0).round(D("84.5")) == D(85)


def test_result_component_is_points_weighted() -> None:
    results = [(D(10), D(100)), (D(30), D(60)), (D(15), None)]
    assert result_component(results) == D(70)  # (1000 + 1800) / 40; the unscored one left out
    assert result_component([(D(5), None)]) is None
    assert result_component([]) is None


# --- meeting -------------------------------------------------------------------------------


def test_trimmed_meeting_score_drops_highest_and_lowest_from_five_raters() -> None:
    scores = [D(70), D(80), D(85), D(90), D(100)]
    assert meeting_score(scores) == D(85)  # (80 + 85 + 90) / 3
    assert meeting_score(scores, ScoringPolicy(meeting_aggregation="mean")) == D(85)
    skewed = [D(10), D(80), D(80), D(80), D(80)]
    assert meeting_score(skewed) == D(80)
    assert meeting_score(skewed, ScoringPolicy(meeting_aggregation="mean")) == D(66)


def test_fewer_than_five_raters_take_the_plain_mean() -> None:
    four = [D(10), D(80), D(80), D(90)]
    assert meeting_score(four) == D(65)
    assert meeting_score([D(77)]) == D(77)
    assert meeting_score([]) is None
    assert meeting_score(four, ScoringPolicy(trim_min_raters=4)) == D(80)


def test_meeting_scores_normalise_from_the_meeting_scale() -> None:
    assert normalise(D(8), D(0), D(10)) == D(80)
    assert normalise(D(3), D(1), D(5)) == D(50)
    with pytest.raises(InvalidValue):
        normalise(D(3), D(5), D(5))


def test_several_meetings_of_a_stage_average() -> None:
    assert meeting_component([[D(80)], [D(90), D(100)]]) == D("87.50")
    assert meeting_component([[], []]) is None
    assert meeting_component([]) is None


# --- process -------------------------------------------------------------------------------


def test_process_deducts_per_overdue_item_and_adds_a_bonus() -> None:
    facts = ProcessFacts(
        items_due=6,
        overdue_measures=2,
        missed_rectifications=1,
        unresolved_problems=1,
        prominent_resolved=1,
    )
    assert process_score(facts) == D(82)  # 100 - 4*5 + 2
    assert process_score(ProcessFacts(items_due=3)) == D(100)
    assert process_score(ProcessFacts(items_due=1, prominent_resolved=3)) == D(100)  # capped
    assert process_score(ProcessFacts(items_due=30, overdue_measures=30)) == D(0)  # floored


def test_process_without_anything_due_has_no_data() -> None:
    assert process_score(ProcessFacts()) is None
    assert process_score(ProcessFacts(prominent_resolved=1)) == D(100)


# --- totals --------------------------------------------------------------------------------


def test_total_weighs_result_process_meeting_50_30_20() -> None:
    score = unit_total({RESULT: D(80), PROCESS: D(90), MEETING: D(70)})
    assert score.total == D(81)  # 40 + 27 + 14
    assert score.weights == {RESULT: D("0.5"), PROCESS: D("0.3"), MEETING: D("0.2")}
    assert score.notes == ()


def test_a_missing_component_re_normalises_the_others_and_says_so() -> None:
    score = unit_total({RESULT: D(80), PROCESS: D(90), MEETING: None})
    assert score.weights == {RESULT: D("0.625"), PROCESS: D("0.375")}
    assert score.total == D("83.75")
    assert score.components[MEETING] is None
    assert score.notes == ("no meeting data: weights re-normalised to result 0.625, process 0.375",)
    only = unit_total({MEETING: D(77)})
    assert only.weights == {MEETING: D(1)} and only.total == D(77)
    assert "no result or process data" in only.notes[0]


def test_re_normalised_weights_that_do_not_divide_evenly_still_sum_to_one() -> None:
    weights = renormalised_weights([RESULT, MEETING], DEFAULT_POLICY)
    assert weights == {RESULT: D("0.7143"), MEETING: D("0.2857")}
    assert sum(weights.values()) == 1
    score = unit_total({RESULT: D(100), MEETING: D("89.86")})
    assert score.total == D("97.10")  # 71.43 + 25.673… = 97.103…


def test_no_component_means_no_total() -> None:
    score = unit_total({})
    assert score.total is None and score.weights == {}
    assert score.notes == ("no component has data for this stage",)


def test_policy_rejects_nonsense_and_describes_itself() -> None:
    with pytest.raises(InvalidValue):
        ScoringPolicy(self_assessment_share=D("0.5"), inspection_share=D("0.6"))
    with pytest.raises(InvalidValue):
        ScoringPolicy(result_weight=D(-1))
    with pytest.raises(InvalidValue):
        ScoringPolicy(result_weight=D(0), process_weight=D(0), meeting_weight=D(0))
    with pytest.raises(InvalidValue):
        ScoringPolicy(meeting_aggregation="median")  # type: ignore[arg-type]
    described = DEFAULT_POLICY.describe()
    assert json.loads(json.dumps(described)) == described
    assert described["weights"] == {"result": "0.5", "process": "0.3", "meeting": "0.2"}
    assert described["meeting"]["aggregation"] == "trimmed"


# --- ranking -------------------------------------------------------------------------------


def test_equal_totals_share_a_rank_and_the_next_rank_skips() -> None:
    ranked = rank({"d": D(90), "b": D(95), "c": D(90), "a": D(90), "e": D(80)})
    assert ranked == [
        Ranked("b", D(95), 1),
        Ranked("a", D(90), 2),
        Ranked("c", D(90), 2),
        Ranked("d", D(90), 2),
        Ranked("e", D(80), 5),
    ]


def test_units_without_a_total_are_unranked_and_listed_last() -> None:
    ranked = rank({"z": D(50), "y": None, "x": None, "w": D("50.00")})
    assert [(r.unit_id, r.rank) for r in ranked] == [("w", 1), ("z", 1), ("x", None), ("y", None)]
    assert rank({}) == []


def test_ranking_does_not_depend_on_the_order_of_its_input() -> None:
    totals = {f"u{i}": D(i % 3) for i in range(9)}
    assert rank(totals) == rank(dict(reversed(list(totals.items()))))


# --- properties ----------------------------------------------------------------------------

scores = st.decimals(min_value=0, max_value=100, places=2)
weights = st.decimals(min_value=0, max_value=10, places=3)


@given(
    components=st.fixed_dictionaries({name: st.none() | scores for name in COMPONENTS}),
    chosen=st.tuples(weights, weights, weights).filter(lambda w: sum(w) > 0),
)
def test_totals_stay_within_0_and_100_and_used_weights_sum_to_one(
    components: dict[str, Decimal | None], chosen: tuple[Decimal, Decimal, Decimal]
) -> None:
    policy = ScoringPolicy(
        result_weight=chosen[0], process_weight=chosen[1], meeting_weight=chosen[2]
    )
    score = unit_total(components, policy)
    present = [name for name in COMPONENTS if components[name] is not None]
    present_weight = sum((policy.weights[name] for name in present), D(0))
    if present_weight == 0:
        assert score.total is None and score.weights == {}
        return
    assert score.total is not None
    assert D(0) <= score.total <= D(100)
    assert score.total == score.total.quantize(D("0.01"))
    assert sum(score.weights.values()) == 1
    assert all(w >= 0 for w in score.weights.values())
    assert set(score.weights) == set(present)
    assert bool(score.notes) == (len(present) < len(COMPONENTS))


@given(st.lists(scores, min_size=0, max_size=12))
def test_meeting_scores_stay_between_the_lowest_and_highest_score(
    given_scores: list[Decimal],
) -> None:
    score = meeting_score(given_scores)
    if not given_scores:
        assert score is None
        return
    assert score is not None
    assert min(given_scores) <= score <= max(given_scores)


@given(
    milestone=st.decimals(min_value=-100, max_value=10_000, places=2),
    own=st.none() | st.decimals(min_value=-100, max_value=10_000, places=2),
    inspected=st.none() | st.decimals(min_value=-100, max_value=10_000, places=2),
)
def test_target_results_stay_within_0_and_100(
    milestone: Decimal, own: Decimal | None, inspected: Decimal | None
) -> None:
    for indicator in (HIGHER, LOWER):
        result = target_result(indicator, milestone, own, inspected)
        assert (result is None) == (own is None and inspected is None)
        assert result is None or D(0) <= result <= D(100)
