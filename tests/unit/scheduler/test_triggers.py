"""When the jobs fire and which stages are due, by the zone's midnight (no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from closedloop.domain.context import acting_as
from closedloop.domain.cycles import Cycle, Stage
from closedloop.scheduler.triggers import deadline_trigger, settlement_trigger

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
# 00:30 on 1 April in Shanghai, still 31 March in UTC: Q1 has ended in Shanghai only.
SHANGHAI_APRIL_UTC_MARCH = datetime(2026, 3, 31, 16, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def actor() -> Iterator[None]:
    with acting_as("tester", correlation_id="unit-test"):
        yield


def fire_times(trigger: object, after: datetime, count: int) -> list[datetime]:
    times: list[datetime] = []
    previous = None
    now = after
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)  # type: ignore[attr-defined]
        times.append(fire)
        previous, now = fire, fire + timedelta(microseconds=1)
    return times


@pytest.mark.parametrize("zone", [SHANGHAI, UTC, NEW_YORK], ids=str)
def test_settlement_fires_at_local_midnight_after_each_quarter(zone: ZoneInfo) -> None:
    fires = fire_times(settlement_trigger(zone), datetime(2026, 1, 15, tzinfo=zone), 4)
    assert [f.astimezone(zone).replace(tzinfo=None) for f in fires] == [
        datetime(2026, 4, 1),
        datetime(2026, 7, 1),
        datetime(2026, 10, 1),
        datetime(2027, 1, 1),
    ]
    quarters = Cycle.open(year=2026, name="2026").stages
    assert [f.astimezone(UTC) for f in fires] == [s.cutoff(zone).astimezone(UTC) for s in quarters]


def test_the_shanghai_quarter_ends_eight_hours_before_the_utc_one() -> None:
    shanghai = settlement_trigger(SHANGHAI).get_next_fire_time(
        None, datetime(2026, 3, 1, tzinfo=UTC)
    )
    utc = settlement_trigger(UTC).get_next_fire_time(None, datetime(2026, 3, 1, tzinfo=UTC))
    assert shanghai == datetime(2026, 3, 31, 16, tzinfo=UTC)
    assert utc == datetime(2026, 4, 1, tzinfo=UTC)
    # At 16:30 UTC on 31 March the Shanghai trigger has fired, the UTC one is still ahead.
    assert shanghai < SHANGHAI_APRIL_UTC_MARCH < utc


def test_q1_is_due_in_shanghai_but_not_yet_in_utc() -> None:
    cycle = Cycle.open(year=2026, name="2026")
    assert [s.key for s in cycle.stages_due(SHANGHAI_APRIL_UTC_MARCH, SHANGHAI)] == ["Q1"]
    assert cycle.stages_due(SHANGHAI_APRIL_UTC_MARCH, UTC) == []


def test_a_stage_is_due_from_its_cut_off_on() -> None:
    cycle = Cycle.open(year=2026, name="2026")
    cutoff = datetime(2026, 7, 1, tzinfo=SHANGHAI)
    before = [s.key for s in cycle.stages_due(cutoff - timedelta(microseconds=1), SHANGHAI)]
    assert before == ["Q1"]
    assert [s.key for s in cycle.stages_due(cutoff, SHANGHAI)] == ["Q1", "Q2"]
    year_later = datetime(2027, 6, 1, tzinfo=SHANGHAI)
    assert [s.key for s in cycle.stages_due(year_later, SHANGHAI)] == ["Q1", "Q2", "Q3", "Q4"]


def test_settled_stages_are_not_due() -> None:
    cycle = Cycle.open(year=2026, name="2026")
    cycle.record_settlement("Q1", uuid.uuid4())
    due = cycle.stages_due(datetime(2026, 10, 2, tzinfo=SHANGHAI), SHANGHAI)
    assert [s.key for s in due] == ["Q2", "Q3"]


def test_stages_that_are_not_quarters_are_due_at_their_own_cut_off() -> None:
    halves = [
        Stage("H1", date(2026, 1, 1), date(2026, 6, 15)),
        Stage("H2", date(2026, 6, 16), date(2026, 12, 31)),
    ]
    cycle = Cycle.open(year=2026, name="2026", stages=halves)
    assert cycle.stages_due(datetime(2026, 6, 15, 23, 59, tzinfo=SHANGHAI), SHANGHAI) == []
    due = cycle.stages_due(datetime(2026, 6, 16, tzinfo=SHANGHAI), SHANGHAI)
    assert [s.key for s in due] == ["H1"]


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        # 00:15 on 1 April in Shanghai was 16:15 UTC, before 16:30: next is 2 April.
        (SHANGHAI, datetime(2026, 4, 1, 16, 15, tzinfo=UTC)),
        (UTC, datetime(2026, 4, 1, 0, 15, tzinfo=UTC)),
    ],
    ids=str,
)
def test_deadline_check_fires_daily_at_its_local_time(zone: ZoneInfo, expected: datetime) -> None:
    trigger = deadline_trigger("00:15", zone)
    first, second = fire_times(trigger, SHANGHAI_APRIL_UTC_MARCH, 2)
    assert first == expected
    assert second - first == timedelta(days=1)
    assert first.astimezone(zone).strftime("%H:%M") == "00:15"


def test_a_grace_period_delays_automatic_settlement_for_late_confirmations() -> None:
    cycle = Cycle.open(year=2026, name="2026")
    q1_ends = datetime(2026, 4, 1, tzinfo=SHANGHAI)
    assert [s.key for s in cycle.stages_due(q1_ends, SHANGHAI, grace_days=10)] == []
    assert [s.key for s in cycle.stages_due(q1_ends + timedelta(days=10), SHANGHAI, 10)] == ["Q1"]
    fires = fire_times(settlement_trigger(SHANGHAI, 10), datetime(2026, 1, 15, tzinfo=SHANGHAI), 2)
    assert fires == [datetime(2026, 4, 11, tzinfo=SHANGHAI), datetime(2026, 7, 11, tzinfo=SHANGHAI)]


def test_a_reopened_stage_is_left_for_an_admin_to_settle_again() -> None:
    cycle = Cycle.open(year=2026, name="2026")
    cycle.record_settlement("Q1", uuid.uuid4())
    cycle.reopen_stage("Q1", reason="复核更正")
    after_q1 = datetime(2026, 4, 2, tzinfo=SHANGHAI)
    assert not cycle.is_settled("Q1")
    assert cycle.stages_due(after_q1, SHANGHAI) == []
