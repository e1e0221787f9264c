"""Assessment years (cycles) and their stages, quarters by default."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise

from closedloop.domain.base import LoopAggregate, require_text
from closedloop.domain.errors import InvalidValue, RuleViolation


@dataclass(frozen=True)
class Stage:
    key: str
    starts_on: date
    ends_on: date

    def contains(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on


def quarters(year: int) -> list[Stage]:
    """The default stages: Q1..Q4 of the calendar year."""
    starts = [date(year, month, 1) for month in (1, 4, 7, 10)]
    ends = [date(year, 3, 31), date(year, 6, 30), date(year, 9, 30), date(year, 12, 31)]
    return [Stage(f"Q{i + 1}", s, e) for i, (s, e) in enumerate(zip(starts, ends, strict=True))]


class StagesMustTileTheCycle(RuleViolation):
    """Stages have unique keys, lie in the cycle's year, and follow each other without gaps."""


class StageMustBelongToCycle(RuleViolation):
    """The stage named is not one of the cycle's stages."""


class DeadlineWithinCycle(RuleViolation):
    """Deadlines lie inside the assessment cycle."""


class ClosedStageAcceptsNoEffects(RuleViolation):
    """A closed or settled stage accepts no new effect confirmations."""


class StageClosedOnlyOnce(RuleViolation):
    """A stage that is already closed cannot be closed again."""


class Cycle(LoopAggregate):
    class CycleOpened(LoopAggregate.Created):
        year: int
        name: str
        stages: list[Stage]

    class StageClosed(LoopAggregate.Event):
        stage: str

        def apply(self, cycle: Cycle) -> None:
            cycle.closed_stages = (*cycle.closed_stages, self.stage)

    def __init__(self, year: int, name: str, stages: list[Stage]) -> None:
        self.year = year
        self.name = name
        self.stages = tuple(stages)
        self.closed_stages: tuple[str, ...] = ()

    @classmethod
    def open(cls, *, year: int, name: str, stages: Sequence[Stage] | None = None) -> Cycle:
        if not 2000 <= year <= 2100:
            raise InvalidValue(field="year", rule="between 2000 and 2100", value=year)
        chosen = quarters(year) if stages is None else list(stages)
        _check_stages(year, chosen)
        return cls(
            year=year, name=require_text(name, field_name="name", max_length=200), stages=chosen
        )

    @property
    def starts_on(self) -> date:
        return self.stages[0].starts_on

    @property
    def ends_on(self) -> date:
        return self.stages[-1].ends_on

    def stage(self, key: str) -> Stage:
        for stage in self.stages:
            if stage.key == key:
                return stage
        raise StageMustBelongToCycle(stage=key, cycle=self.id, stages=self.stage_keys)

    @property
    def stage_keys(self) -> list[str]:
        return [stage.key for stage in self.stages]

    def stage_on(self, day: date) -> Stage | None:
        return next((stage for stage in self.stages if stage.contains(day)), None)

    def require_within(self, deadline: date, *, field_name: str = "deadline") -> date:
        if not self.starts_on <= deadline <= self.ends_on:
            raise DeadlineWithinCycle(
                field=field_name,
                value=deadline,
                cycle_start=self.starts_on,
                cycle_end=self.ends_on,
            )
        return deadline

    def is_closed(self, stage_key: str) -> bool:
        return stage_key in self.closed_stages

    def require_open_for_effects(self, stage_key: str) -> Stage:
        stage = self.stage(stage_key)
        if self.is_closed(stage_key):
            raise ClosedStageAcceptsNoEffects(cycle=self.id, stage=stage_key)
        return stage

    def close_stage(self, stage_key: str, *, reason: str | None = None) -> None:
        self.stage(stage_key)
        if self.is_closed(stage_key):
            raise StageClosedOnlyOnce(cycle=self.id, stage=stage_key)
        self.trigger_event(self.StageClosed, stage=stage_key, reason=reason)


def _check_stages(year: int, stages: Sequence[Stage]) -> None:
    keys = [stage.key for stage in stages]
    if not stages or len(set(keys)) != len(keys):
        raise StagesMustTileTheCycle(stages=keys)
    for stage in stages:
        if not stage.key.strip() or stage.starts_on > stage.ends_on:
            raise StagesMustTileTheCycle(
                stage=stage.key, starts_on=stage.starts_on, ends_on=stage.ends_on
            )
        if stage.starts_on.year != year or stage.ends_on.year != year:
            raise StagesMustTileTheCycle(stage=stage.key, year=year)
    for earlier, later in pairwise(stages):
        if later.starts_on != earlier.ends_on + timedelta(days=1):
            raise StagesMustTileTheCycle(
                earlier=earlier.key,
                ends_on=earlier.ends_on,
                later=later.key,
                starts_on=later.starts_on,
            )
