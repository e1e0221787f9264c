from __future__ import annotations

import itertools
from datetime import date

import pytest

from closedloop.domain.cycles import (
    ClosedStageAcceptsNoEffects,
    Cycle,
    DeadlineWithinCycle,
    Stage,
    StageClosedOnlyOnce,
    StageMustBelongToCycle,
    StagesMustTileTheCycle,
    quarters,
)
from closedloop.domain.errors import InvalidValue

from .factories import cycle, last_event, last_event_name, rejected

HALVES = [
    Stage("H1", date(2026, 1, 1), date(2026, 6, 30)),
    Stage("H2", date(2026, 7, 1), date(2026, 12, 31)),
]


def test_cycle_opens_with_quarters_by_default() -> None:
    year = cycle(2026)

    assert last_event_name(year) == "CycleOpened"
    assert year.stage_keys == ["Q1", "Q2", "Q3", "Q4"]
    assert (year.starts_on, year.ends_on) == (date(2026, 1, 1), date(2026, 12, 31))
    assert year.stage("Q2") == Stage("Q2", date(2026, 4, 1), date(2026, 6, 30))
    assert year.closed_stages == ()


def test_default_quarters_tile_the_year_without_gaps() -> None:
    stages = quarters(2028)

    for earlier, later in itertools.pairwise(stages):
        assert (later.starts_on - earlier.ends_on).days == 1


def test_cycle_opens_with_its_own_stages() -> None:
    year = Cycle.open(year=2026, name="2026年度半年制考核", stages=HALVES)

    assert year.stage_keys == ["H1", "H2"]
    assert year.name == "2026年度半年制考核"
    assert last_event(year).stages == HALVES


@pytest.mark.parametrize("year", [1999, 2101])
def test_cycle_year_between_2000_and_2100(year: int) -> None:
    with rejected(InvalidValue, "field=year", f"value={year}"):
        Cycle.open(year=year, name="越界年度")


def test_cycle_name_must_not_be_blank() -> None:
    with rejected(InvalidValue, "field=name"):
        Cycle.open(year=2026, name="  ")


@pytest.mark.parametrize(
    ("stages", "mention"),
    [
        pytest.param(
            [
                Stage("Q1", date(2026, 1, 1), date(2026, 3, 31)),
                Stage("Q1", date(2026, 4, 1), date(2026, 6, 30)),
            ],
            "['Q1', 'Q1']",
            id="duplicate-keys",
        ),
        pytest.param(
            [Stage("Q1", date(2026, 3, 31), date(2026, 1, 1))],
            "starts_on=2026-03-31",
            id="starts-after-it-ends",
        ),
        pytest.param(
            [Stage(" ", date(2026, 1, 1), date(2026, 3, 31))], "ends_on=2026-03-31", id="blank-key"
        ),
        pytest.param(
            [
                Stage("Q1", date(2026, 1, 1), date(2026, 4, 15)),
                Stage("Q2", date(2026, 4, 1), date(2026, 6, 30)),
            ],
            "later=Q2",
            id="overlapping",
        ),
        pytest.param(
            [
                Stage("Q2", date(2026, 4, 1), date(2026, 6, 30)),
                Stage("Q1", date(2026, 1, 1), date(2026, 3, 31)),
            ],
            "later=Q1",
            id="out-of-order",
        ),
    ],
)
def test_stages_must_tile_the_cycle(stages: list[Stage], mention: str) -> None:
    with rejected(StagesMustTileTheCycle, mention):
        Cycle.open(year=2026, name="2026", stages=stages)


def test_stages_must_tile_the_cycle_without_gaps() -> None:
    gap = [
        Stage("H1", date(2026, 1, 1), date(2026, 5, 31)),
        Stage("H2", date(2026, 7, 1), date(2026, 12, 31)),
    ]

    with rejected(StagesMustTileTheCycle, "H1", "H2"):
        Cycle.open(year=2026, name="2026", stages=gap)


def test_stage_must_belong_to_cycle() -> None:
    year = cycle()

    with rejected(StageMustBelongToCycle, "stage=Q5", "['Q1', 'Q2', 'Q3', 'Q4']", untouched=[year]):
        year.stage("Q5")


def test_stage_on_finds_the_stage_of_a_day() -> None:
    year = cycle()

    stage = year.stage_on(date(2026, 7, 1))

    assert stage is not None
    assert stage.key == "Q3"
    assert year.stage_on(date(2027, 1, 1)) is None


@pytest.mark.parametrize("deadline", [date(2026, 1, 1), date(2026, 8, 8), date(2026, 12, 31)])
def test_deadline_inside_the_cycle_is_accepted(deadline: date) -> None:
    assert cycle().require_within(deadline) == deadline


@pytest.mark.parametrize("deadline", [date(2025, 12, 31), date(2027, 1, 1)])
def test_deadline_within_cycle(deadline: date) -> None:
    year = cycle()

    with rejected(
        DeadlineWithinCycle,
        f"value={deadline}",
        "cycle_start=2026-01-01",
        "cycle_end=2026-12-31",
        untouched=[year],
    ):
        year.require_within(deadline)


def test_closing_a_stage_records_stage_closed() -> None:
    year = cycle()

    year.close_stage("Q1", reason="一季度结算")

    assert last_event_name(year) == "StageClosed"
    assert year.is_closed("Q1")
    assert not year.is_closed("Q2")
    assert last_event(year).reason == "一季度结算"


def test_stage_closed_only_once() -> None:
    year = cycle()
    year.close_stage("Q1")

    with rejected(StageClosedOnlyOnce, "stage=Q1", year.id, untouched=[year]):
        year.close_stage("Q1")


def test_closing_a_stage_must_belong_to_cycle() -> None:
    year = cycle()

    with rejected(StageMustBelongToCycle, "stage=Q9", untouched=[year]):
        year.close_stage("Q9")


def test_closed_stage_accepts_no_effects() -> None:
    year = cycle()
    year.close_stage("Q1")

    with rejected(ClosedStageAcceptsNoEffects, "stage=Q1", untouched=[year]):
        year.require_open_for_effects("Q1")


def test_open_stage_accepts_effects() -> None:
    year = cycle()
    year.close_stage("Q1")

    assert year.require_open_for_effects("Q2").key == "Q2"
