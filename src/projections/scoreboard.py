"""The scoreboard read model: per cycle, stage and unit the result, process and meeting
components and the total — provisional until settlement — computed by
:mod:`closedloop.domain.scoring` (the rules settlement will reuse). Ranks are derived from the
totals when the board is read (competition ranking, see :func:`read_scoreboard`).

**Inputs**, each kept in a table of its own:

* ``scoreboard_targets`` / ``scoreboard_target_units``: each target's cycle, indicator, points,
  milestones, whether it is withdrawn, and the units it applies to. The **units of a cycle** are
  the units some non-withdrawn target of the cycle applies to; each has a row for every stage.
* ``scoreboard_target_results``: per target, stage and unit, the confirmed self-assessment and
  inspection values (a later confirmation of the same method replaces the earlier one) and the
  target result they give.
* ``scoreboard_meetings`` and ``scoreboard_meeting_units``: per meeting and unit, each rater's
  score (a re-cast replaces the earlier one) and the unit's aggregated score at that meeting.
* ``scoreboard_items``: measures (carried by their lead unit), rectifications (their unit) and
  problems (the unit they were dispatched to, else the unit they were found in), with deadline,
  whether they are finished, and for problems the day they were resolved and their severity.

**Process rule.** The provisional board judges as if the stage were settled now: an item counts
as overdue for stage S when its deadline falls on or before S's last day and it is not finished
in the log the board reflects — a measure is finished when completed or cancelled, a
rectification when completed (and not rejected since), a dispatched problem when resolved (and
not reopened since). Measures and rectifications record no completion time of their own, so the
lateness of a finished item is not judged here (supervision judges overdue against an "as of"
time). A prominent problem resolved on a day inside S (its resolution's effective time, in its
own offset) earns the bonus in S. A unit has a process component for S when something of it was
due by S's end or earned a bonus in S.

**Rows** (``scoreboard_rows``, one per cycle, stage and unit) keep the sums each component is
computed from — target count, points and points-weighted results of the scored targets, the sum
and count of per-meeting scores, the process counts — besides the components, total, weights and
notes. A batch works out, for every input it touched, what that input contributed to its rows
before and after the batch, and adds the difference. The sums are exact (integers, and
``Decimal`` sums that never round), so the rows are a pure function of the events whatever the
batch boundaries, and a batch costs work in proportion to the events in it. A row whose unit is
not (or no longer) in the cycle and holds nothing is deleted; one that holds process counts of a
unit outside the cycle stays, unlisted.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any, ClassVar
from uuid import UUID

from closedloop.domain.base import LoopEvent
from closedloop.domain.cycles import Cycle
from closedloop.domain.errors import InvalidValue, NotFound
from closedloop.domain.measures import Measure
from closedloop.domain.meetings import Meeting
from closedloop.domain.problems import Problem, Severity
from closedloop.domain.rectifications import Rectification
from closedloop.domain.scoring import (
    DEFAULT_POLICY,
    EXACT,
    MEETING,
    PROCESS,
    RESULT,
    ProcessFacts,
    ScoringPolicy,
    mean_of,
    meeting_score,
    normalise,
    process_score,
    rank,
    target_result,
    unit_total,
    weighted_mean,
)
from closedloop.domain.settlement import Settlement
from closedloop.domain.targets import Direction, EffectMethod, Indicator, IndicatorKind, Target
from closedloop.domain.units import Unit
from closedloop.projections.base import Positioned, Projection, ProjectionFailed
from closedloop.store.sql import Cursor, Row

UNITS = "scoreboard_units"
CYCLES = "scoreboard_cycles"
STAGES = "scoreboard_stages"
TARGETS = "scoreboard_targets"
TARGET_UNITS = "scoreboard_target_units"
RESULTS = "scoreboard_target_results"
MEETINGS = "scoreboard_meetings"
MEETING_UNITS = "scoreboard_meeting_units"
ITEMS = "scoreboard_items"
ROWS = "scoreboard_rows"
POLICIES = "scoreboard_policies"
SETTLEMENTS = "scoreboard_settlements"
SETTLED = "scoreboard_settled_rows"

CHUNK = 500
ZERO = Decimal(0)
MEASURE, RECTIFICATION, PROBLEM = "measure", "rectification", "problem"

CellKey = tuple[str, str, str]  # cycle, stage, unit
ResultShare = tuple[int, int, Decimal, Decimal]  # scored, self only, points, points * result
ProcessShare = tuple[int, int, int, int, int]  # due, overdue, missed, unresolved, prominent
NO_RESULT: ResultShare = (0, 0, ZERO, ZERO)
NO_PROCESS: ProcessShare = (0, 0, 0, 0, 0)


@dataclass
class _Sums:
    """What one row's components are computed from; inputs add and subtract their share."""

    n_targets: int = 0
    n_scored: int = 0
    n_self_only: int = 0
    points_scored: Decimal = ZERO
    weighted: Decimal = ZERO
    n_meetings: int = 0
    meeting_sum: Decimal = ZERO
    n_scores: int = 0
    items_due: int = 0
    overdue_measures: int = 0
    missed_rectifications: int = 0
    unresolved_problems: int = 0
    prominent_resolved: int = 0

    def add_result(self, share: ResultShare, sign: int) -> None:
        scored, self_only, points, weighted = share
        self.n_scored += sign * scored
        self.n_self_only += sign * self_only
        combine = EXACT.add if sign > 0 else EXACT.subtract
        self.points_scored = combine(self.points_scored, points)
        self.weighted = combine(self.weighted, weighted)

    def add_process(self, share: ProcessShare, sign: int) -> None:
        due, overdue, missed, unresolved, prominent = share
        self.items_due += sign * due
        self.overdue_measures += sign * overdue
        self.missed_rectifications += sign * missed
        self.unresolved_problems += sign * unresolved
        self.prominent_resolved += sign * prominent

    def add(self, other: _Sums) -> None:
        self.n_targets += other.n_targets
        self.add_result((other.n_scored, other.n_self_only, other.points_scored, other.weighted), 1)
        self.n_meetings += other.n_meetings
        self.meeting_sum = EXACT.add(self.meeting_sum, other.meeting_sum)
        self.n_scores += other.n_scores
        self.add_process(
            (
                other.items_due,
                other.overdue_measures,
                other.missed_rectifications,
                other.unresolved_problems,
                other.prominent_resolved,
            ),
            1,
        )

    def is_empty(self) -> bool:
        return not (
            self.n_targets
            or self.n_scored
            or self.points_scored
            or self.weighted
            or self.n_meetings
            or self.meeting_sum
            or self.n_scores
            or self.items_due
            or self.prominent_resolved
        )


SUM_FIELDS = tuple(f.name for f in fields(_Sums))
DECIMAL_SUMS = frozenset({"points_scored", "weighted", "meeting_sum"})
INTEGER_COLUMNS = frozenset(
    {
        *(name for name in SUM_FIELDS if name not in DECIMAL_SUMS),
        "ordinal",
        "closed",
        "withdrawn",
        "scores",
        "finished",
        "prominent",
        "provisional",
        "stage_closed",
        "rank",
        "round_number",
        "through_position",
    }
)
DERIVED = ("result", "process", "meeting", "total", "weights", "notes")
ROW_COLUMNS = ("ordinal", *SUM_FIELDS, *DERIVED, "provisional", "stage_closed")


class Scoreboard(Projection):
    name: ClassVar[str] = "scoreboard"
    tables: ClassVar[tuple[str, ...]] = (
        UNITS,
        CYCLES,
        STAGES,
        TARGETS,
        TARGET_UNITS,
        RESULTS,
        MEETINGS,
        MEETING_UNITS,
        ITEMS,
        ROWS,
        POLICIES,
        SETTLEMENTS,
        SETTLED,
    )

    def __init__(self, policy: ScoringPolicy = DEFAULT_POLICY) -> None:
        self.policy = policy

    def create_tables(self, cursor: Cursor, dialect: str) -> None:
        sums = ", ".join(
            f"{name} TEXT NOT NULL" if name in DECIMAL_SUMS else f"{name} INTEGER NOT NULL"
            for name in SUM_FIELDS
        )
        statements = (
            f"CREATE TABLE IF NOT EXISTS {UNITS} (unit_id TEXT PRIMARY KEY, name TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {CYCLES} (cycle_id TEXT PRIMARY KEY, name TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {STAGES} (cycle_id TEXT NOT NULL, stage TEXT NOT NULL, "
            "ordinal INTEGER NOT NULL, starts_on TEXT NOT NULL, ends_on TEXT NOT NULL, "
            "closed INTEGER NOT NULL, PRIMARY KEY (cycle_id, stage))",
            f"CREATE TABLE IF NOT EXISTS {TARGETS} (target_id TEXT PRIMARY KEY, "
            "cycle_id TEXT NOT NULL, indicator TEXT NOT NULL, points TEXT NOT NULL, "
            "milestones TEXT NOT NULL, withdrawn INTEGER NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {TARGET_UNITS} (target_id TEXT NOT NULL, "
            "unit_id TEXT NOT NULL, PRIMARY KEY (target_id, unit_id))",
            f"CREATE TABLE IF NOT EXISTS {RESULTS} (result_key TEXT PRIMARY KEY, "
            "target_id TEXT NOT NULL, cycle_id TEXT NOT NULL, stage TEXT NOT NULL, "
            "unit_id TEXT NOT NULL, self_value TEXT, inspection_value TEXT, result TEXT)",
            f"CREATE TABLE IF NOT EXISTS {MEETINGS} (meeting_id TEXT PRIMARY KEY, "
            "cycle_id TEXT NOT NULL, stage TEXT NOT NULL, scale_min TEXT NOT NULL, "
            "scale_max TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {MEETING_UNITS} (pair_key TEXT PRIMARY KEY, "
            "meeting_id TEXT NOT NULL, unit_id TEXT NOT NULL, raters TEXT NOT NULL, "
            "scores INTEGER NOT NULL, score TEXT)",
            f"CREATE TABLE IF NOT EXISTS {ITEMS} (item_id TEXT PRIMARY KEY, kind TEXT NOT NULL, "
            "cycle_id TEXT NOT NULL, unit_id TEXT NOT NULL, deadline TEXT, "
            "finished INTEGER NOT NULL, resolved_on TEXT, prominent INTEGER NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {ROWS} (cycle_id TEXT NOT NULL, stage TEXT NOT NULL, "
            f"unit_id TEXT NOT NULL, ordinal INTEGER NOT NULL, {sums}, result TEXT, "
            "process TEXT, meeting TEXT, total TEXT, weights TEXT NOT NULL, "
            "notes TEXT NOT NULL, provisional INTEGER NOT NULL, stage_closed INTEGER NOT NULL, "
            "PRIMARY KEY (cycle_id, stage, unit_id))",
            f"CREATE TABLE IF NOT EXISTS {POLICIES} (cycle_id TEXT NOT NULL, stage TEXT NOT NULL, "
            "policy TEXT NOT NULL, PRIMARY KEY (cycle_id, stage))",
            f"CREATE TABLE IF NOT EXISTS {SETTLEMENTS} (cycle_id TEXT NOT NULL, "
            "stage TEXT NOT NULL, settlement_id TEXT NOT NULL, round_number INTEGER NOT NULL, "
            "through_position BIGINT NOT NULL, settled_at TEXT NOT NULL, "
            "results_digest TEXT NOT NULL, policy_digest TEXT NOT NULL, "
            "PRIMARY KEY (cycle_id, stage))",
            f"CREATE TABLE IF NOT EXISTS {SETTLED} (cycle_id TEXT NOT NULL, stage TEXT NOT NULL, "
            "unit_id TEXT NOT NULL, rank INTEGER, result TEXT, process TEXT, meeting TEXT, "
            "total TEXT, weights TEXT NOT NULL, notes TEXT NOT NULL, "
            "PRIMARY KEY (cycle_id, stage, unit_id))",
            f"CREATE INDEX IF NOT EXISTS {RESULTS}_target_idx ON {RESULTS} (target_id)",
            f"CREATE INDEX IF NOT EXISTS {RESULTS}_stage_idx ON {RESULTS} (cycle_id, stage)",
            f"CREATE INDEX IF NOT EXISTS {ROWS}_cycle_unit_idx ON {ROWS} (cycle_id, unit_id)",
        )
        for statement in statements:
            cursor.execute(statement)

    def apply_batch(self, cursor: Cursor, events: Sequence[Positioned]) -> None:
        batch = _Batch(cursor, self.policy)
        batch.preload([event for _, event in events])
        for position, event in events:
            try:
                batch.apply(event)
            except Exception as error:
                raise ProjectionFailed(self.name, position, error) from error
        batch.finish()


# --- in-memory state of one batch ------------------------------------------------------------


@dataclass
class _StageInfo:
    key: str
    ordinal: int
    starts_on: date
    ends_on: date
    closed: bool
    first_day: str = ""  # ISO dates, compared as text with the items' ISO dates
    last_day: str = ""

    def __post_init__(self) -> None:
        self.first_day, self.last_day = self.starts_on.isoformat(), self.ends_on.isoformat()


@dataclass
class _Target:
    cycle_id: str
    indicator: Indicator
    points: Decimal
    milestones: dict[str, Decimal | str]
    withdrawn: bool
    units: list[str] | None = None  # loaded when the batch needs them
    new: bool = False
    changed: bool = False
    # As the batch found it (what its rows were computed with): None for a new target.
    initial: tuple[Decimal, bool] | None = None

    def share(self, result: Decimal | None, self_only: bool, *, initial: bool) -> ResultShare:
        """What one of its results adds to a row."""
        if initial:
            if self.initial is None:
                return NO_RESULT
            points, withdrawn = self.initial
        else:
            points, withdrawn = self.points, self.withdrawn
        if withdrawn or result is None:
            return NO_RESULT
        return (1, int(self_only), points, EXACT.multiply(points, result))


@dataclass
class _Result:
    target_id: str
    cycle_id: str
    stage: str
    unit_id: str
    self_value: Decimal | str | None = None
    inspection_value: Decimal | str | None = None
    result: Decimal | None = None
    initial: tuple[Decimal | None, bool] | None = None  # (result, self only) as found

    @property
    def self_only(self) -> bool:
        return (
            self.result is not None
            and self.self_value is not None
            and self.inspection_value is None
        )


@dataclass
class _Item:
    kind: str
    cycle_id: str
    unit_id: str
    deadline: str | None = None
    finished: bool = False
    resolved_on: str | None = None
    prominent: bool = False

    def state(self) -> tuple[Any, ...]:
        return (self.unit_id, self.deadline, self.finished, self.resolved_on)

    def share(self, stage: _StageInfo) -> ProcessShare:
        """What the item adds to its unit's row for ``stage`` (the process rule above)."""
        prominent = int(
            self.prominent
            and self.finished
            and self.resolved_on is not None
            and stage.first_day <= self.resolved_on <= stage.last_day
        )
        if self.deadline is None or self.deadline > stage.last_day:
            return (0, 0, 0, 0, prominent)
        late = not self.finished
        kind = self.kind
        return (
            1,
            int(late and kind == MEASURE),
            int(late and kind == RECTIFICATION),
            int(late and kind == PROBLEM),
            prominent,
        )


@dataclass
class _Pair:
    """A unit's scores at one meeting."""

    cycle_id: str
    stage: str
    scale: tuple[Decimal, Decimal]
    scores: dict[str, Decimal] = field(default_factory=dict)
    changed: bool = False
    initial: tuple[int, Decimal | None] = (0, None)

    def aggregate(self, policy: ScoringPolicy) -> tuple[int, Decimal | None]:
        normalised = [normalise(s, *self.scale) for _, s in sorted(self.scores.items())]
        return len(normalised), meeting_score(normalised, policy)


@dataclass
class _Meeting:
    cycle_id: str
    stage: str
    scale_min: Decimal
    scale_max: Decimal
    new: bool = False


TARGET_EVENTS = (
    Target.TargetRevised,
    Target.MilestonesSet,
    Target.TargetWithdrawn,
    Target.EffectConfirmed,
)
RESCORED: tuple[type[LoopEvent], ...] = (
    Target.TargetRevised,
    Target.MilestonesSet,
    Target.TargetWithdrawn,
)
ITEM_EVENTS: tuple[type[LoopEvent], ...] = (
    Measure.MeasureCompleted,
    Measure.MeasureCancelled,
    Rectification.RectificationCompleted,
    Rectification.RectificationRejected,
    Problem.ProblemDispatched,
    Problem.ProblemResolved,
    Problem.ProblemReopened,
)


class _Ids(dict[UUID, str]):
    """UUIDs as text, each converted once per batch."""

    def __missing__(self, key: UUID) -> str:
        text = self[key] = str(key)
        return text


class _Batch:
    """Applies one batch in memory over rows read once, then writes the differences in bulk."""

    def __init__(self, cursor: Cursor, policy: ScoringPolicy) -> None:
        self.cursor = cursor
        self.policy = policy
        self.units: dict[str, str] = {}
        self.cycles: dict[str, str] = {}
        self.stage_rows: list[tuple[str, str, int, str, str]] = []
        self.stages: dict[str, list[_StageInfo]] = {}
        self.closed: list[tuple[str, str]] = []
        self.reopened: list[tuple[str, str]] = []
        self.targets: dict[str, _Target] = {}
        self.results: dict[str, _Result] = {}
        self.touched_results: set[str] = set()
        self.meetings: dict[str, _Meeting] = {}
        self.pairs: dict[str, _Pair] = {}
        self.items: dict[str, _Item] = {}
        self.item_initial: dict[str, _Item | None] = {}
        self.deltas: dict[CellKey, _Sums] = defaultdict(_Sums)
        self.ids = _Ids()
        # Policies in force per (cycle, stage), as read or set in this batch; stages whose
        # policy changed have every result, meeting score and row recomputed.
        self.policies: dict[tuple[str, str], ScoringPolicy] = {}
        self.policy_rows: dict[tuple[str, str], str] = {}
        self.repolicied: set[tuple[str, str]] = set()
        # Settled and reopened stages, in log order (a stage may be reopened and settled again
        # within one batch).
        self.settlement_ops: list[tuple[str, Any]] = []
        self.handlers: dict[type[Any], Callable[[Any], None]] = {
            Unit.UnitRegistered: self._unit_registered,
            Cycle.CycleOpened: self._cycle_opened,
            Cycle.StageClosed: self._stage_closed,
            Cycle.ScoringPolicySet: self._policy_set,
            Cycle.StageReopened: self._stage_reopened,
            Settlement.StageSettled: self._stage_settled,
            Target.TargetSet: self._target_set,
            Target.TargetRevised: self._target_revised,
            Target.MilestonesSet: self._milestones_set,
            Target.TargetWithdrawn: self._target_withdrawn,
            Target.EffectConfirmed: self._effect_confirmed,
            Meeting.MeetingConvened: self._meeting_convened,
            Meeting.ScoreCast: self._score_cast,
            Measure.MeasureAdopted: self._measure_adopted,
            Measure.MeasureCompleted: self._item_finished,
            Measure.MeasureCancelled: self._item_finished,
            Rectification.RectificationOrdered: self._rectification_ordered,
            Rectification.RectificationCompleted: self._item_finished,
            Rectification.RectificationRejected: self._item_reopened,
            Problem.ProblemFound: self._problem_found,
            Problem.ProblemDispatched: self._problem_dispatched,
            Problem.ProblemResolved: self._problem_resolved,
            Problem.ProblemReopened: self._item_reopened,
        }

    # --- reading what the batch needs, once ----------------------------------------------------

    def preload(self, events: Sequence[LoopEvent]) -> None:
        ids = self.ids
        target_ids: set[str] = set()
        rescored: set[str] = set()
        withdrawn: set[str] = set()
        result_keys: set[str] = set()
        meeting_ids: set[str] = set()
        pair_keys: set[str] = set()
        item_ids: set[str] = set()
        untyped: Sequence[Any] = events  # narrowed by the exact type checks below
        for e in untyped:
            kind = type(e)
            if kind is Meeting.ScoreCast:
                meeting_ids.add(ids[e.originator_id])
                pair_keys.add(_pair_key(ids[e.originator_id], ids[e.unit_id]))
            elif kind is Target.EffectConfirmed:
                target_ids.add(ids[e.originator_id])
                result_keys.add(_result_key(ids[e.originator_id], e.stage, ids[e.unit_id]))
            elif kind in ITEM_EVENTS:
                item_ids.add(ids[e.originator_id])
            elif kind in RESCORED:
                target_ids.add(ids[e.originator_id])
                rescored.add(ids[e.originator_id])
                if kind is Target.TargetWithdrawn:
                    withdrawn.add(ids[e.originator_id])
        select = self._select
        for row in select(f"SELECT * FROM {TARGETS} WHERE {{in}}", "target_id", target_ids):
            self.targets[row["target_id"]] = _target_from(row)
        members: dict[str, list[str]] = defaultdict(list)
        for row in select(
            f"SELECT target_id, unit_id FROM {TARGET_UNITS} WHERE {{in}}",
            "target_id",
            withdrawn & self.targets.keys(),
        ):
            members[row["target_id"]].append(row["unit_id"])
        for target_id in withdrawn & self.targets.keys():
            self.targets[target_id].units = sorted(members[target_id])
        for column, wanted in (("result_key", result_keys), ("target_id", rescored)):
            for row in select(f"SELECT * FROM {RESULTS} WHERE {{in}}", column, wanted):
                self.results.setdefault(row["result_key"], _result_from(row))
        for row in select(f"SELECT * FROM {MEETINGS} WHERE {{in}}", "meeting_id", meeting_ids):
            self.meetings[row["meeting_id"]] = _Meeting(
                row["cycle_id"], row["stage"], Decimal(row["scale_min"]), Decimal(row["scale_max"])
            )
        for row in select(f"SELECT * FROM {MEETING_UNITS} WHERE {{in}}", "pair_key", pair_keys):
            pair = self._pair(row["meeting_id"], row["unit_id"])
            pair.initial = (int(row["scores"]), _decimal(row["score"]))
            pair.scores = {rater: Decimal(score) for rater, score in json.loads(row["raters"])}
        for row in select(f"SELECT * FROM {ITEMS} WHERE {{in}}", "item_id", item_ids):
            item = _Item(
                row["kind"],
                row["cycle_id"],
                row["unit_id"],
                row["deadline"],
                bool(row["finished"]),
                row["resolved_on"],
                bool(row["prominent"]),
            )
            self.items[row["item_id"]] = item
            self.item_initial[row["item_id"]] = _Item(**vars(item))

    def policy_for(self, cycle_id: str, stage: str) -> ScoringPolicy:
        key = (cycle_id, stage)
        policy = self.policies.get(key)
        if policy is None:
            self.cursor.execute(
                f"SELECT policy FROM {POLICIES} WHERE cycle_id = %s AND stage = %s", [*key]
            )
            row = self.cursor.fetchone()
            policy = self.policy if row is None else _policy(row["policy"])
            self.policies[key] = policy
        return policy

    def _select(self, statement: str, column: str, values: Iterable[str]) -> Iterator[Row]:
        return _select_in(self.cursor, statement, (), column, values)

    def _stages(self, cycle_id: str) -> list[_StageInfo]:
        stages = self.stages.get(cycle_id)
        if stages is None:
            self.cursor.execute(
                f"SELECT * FROM {STAGES} WHERE cycle_id = %s ORDER BY ordinal", [cycle_id]
            )
            stages = self.stages[cycle_id] = [
                _StageInfo(
                    row["stage"],
                    int(row["ordinal"]),
                    date.fromisoformat(row["starts_on"]),
                    date.fromisoformat(row["ends_on"]),
                    bool(row["closed"]),
                )
                for row in self.cursor.fetchall()
            ]
        return stages

    def _pair(self, meeting_id: str, unit_id: str) -> _Pair:
        key = _pair_key(meeting_id, unit_id)
        pair = self.pairs.get(key)
        if pair is None:
            meeting = self.meetings[meeting_id]
            pair = self.pairs[key] = _Pair(
                meeting.cycle_id, meeting.stage, (meeting.scale_min, meeting.scale_max)
            )
        return pair

    # --- applying events in order ----------------------------------------------------------

    def apply(self, event: LoopEvent) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _unit_registered(self, event: Unit.UnitRegistered) -> None:
        self.units[self.ids[event.originator_id]] = event.name

    def _cycle_opened(self, event: Cycle.CycleOpened) -> None:
        cycle_id = self.ids[event.originator_id]
        self.cycles[cycle_id] = event.name
        self.stages[cycle_id] = []
        for ordinal, stage in enumerate(event.stages):
            self.stages[cycle_id].append(
                _StageInfo(stage.key, ordinal, stage.starts_on, stage.ends_on, False)
            )
            self.stage_rows.append(
                (
                    cycle_id,
                    stage.key,
                    ordinal,
                    stage.starts_on.isoformat(),
                    stage.ends_on.isoformat(),
                )
            )

    def _stage_closed(self, event: Cycle.StageClosed) -> None:
        cycle_id = self.ids[event.originator_id]
        for stage in self._stages(cycle_id):
            if stage.key == event.stage:
                stage.closed = True
        self.closed.append((cycle_id, event.stage))
        self.reopened = [key for key in self.reopened if key != (cycle_id, event.stage)]

    def _policy_set(self, event: Cycle.ScoringPolicySet) -> None:
        cycle_id = self.ids[event.originator_id]
        stages = self._stages(cycle_id)
        start = next(s.ordinal for s in stages if s.key == event.from_stage)
        text = _dumps(event.policy)
        policy = _policy(text)
        for stage in stages:
            if stage.ordinal >= start:
                key = (cycle_id, stage.key)
                self.policies[key] = policy
                self.policy_rows[key] = text
                self._rescore_stage(cycle_id, stage.key)

    def _rescore_stage(self, cycle_id: str, stage: str) -> None:
        """Under a new policy every result, meeting score and row of the stage is recomputed."""
        if (cycle_id, stage) in self.repolicied:
            return
        self.repolicied.add((cycle_id, stage))
        cursor = self.cursor
        cursor.execute(
            f"SELECT * FROM {RESULTS} WHERE cycle_id = %s AND stage = %s", [cycle_id, stage]
        )
        for row in cursor.fetchall():
            self.results.setdefault(row["result_key"], _result_from(row))
            self.touched_results.add(row["result_key"])
        missing = {r.target_id for r in self.results.values()} - self.targets.keys()
        for row in self._select(f"SELECT * FROM {TARGETS} WHERE {{in}}", "target_id", missing):
            self.targets[row["target_id"]] = _target_from(row)
        cursor.execute(
            f"SELECT * FROM {MEETINGS} WHERE cycle_id = %s AND stage = %s", [cycle_id, stage]
        )
        for row in cursor.fetchall():
            self.meetings.setdefault(
                row["meeting_id"],
                _Meeting(
                    row["cycle_id"],
                    row["stage"],
                    Decimal(row["scale_min"]),
                    Decimal(row["scale_max"]),
                ),
            )
        cursor.execute(
            f"SELECT mu.* FROM {MEETING_UNITS} mu JOIN {MEETINGS} m "
            "ON m.meeting_id = mu.meeting_id WHERE m.cycle_id = %s AND m.stage = %s",
            [cycle_id, stage],
        )
        for row in cursor.fetchall():
            key = _pair_key(row["meeting_id"], row["unit_id"])
            if key not in self.pairs:
                pair = self._pair(row["meeting_id"], row["unit_id"])
                pair.initial = (int(row["scores"]), _decimal(row["score"]))
                pair.scores = {r: Decimal(score) for r, score in json.loads(row["raters"])}
            self.pairs[key].changed = True

    def _stage_settled(self, event: Settlement.StageSettled) -> None:
        self.settlement_ops.append(("settled", event))

    def _stage_reopened(self, event: Cycle.StageReopened) -> None:
        cycle_id = self.ids[event.originator_id]
        self.settlement_ops.append(("reopened", (cycle_id, event.stage)))
        # A reopened stage takes effect confirmations again: it is no longer closed.
        for stage in self._stages(cycle_id):
            if stage.key == event.stage:
                stage.closed = False
        self.closed = [key for key in self.closed if key != (cycle_id, event.stage)]
        self.reopened.append((cycle_id, event.stage))

    # targets and effects

    def _target(self, event: LoopEvent) -> _Target:
        target = self.targets.get(self.ids[event.originator_id])
        if target is None:
            raise LookupError(f"scoreboard: target {event.originator_id} was never set")
        target.changed = True
        return target

    def _target_set(self, event: Target.TargetSet) -> None:
        cycle_id = self.ids[event.cycle_id]
        units = sorted({str(unit) for unit in event.applies_to})
        self.targets[self.ids[event.originator_id]] = _Target(
            cycle_id, event.indicator, event.points, {}, False, units, new=True, changed=True
        )
        for unit in units:
            for stage in self._stages(cycle_id):
                self.deltas[(cycle_id, stage.key, unit)].n_targets += 1

    def _rescore(self, target_id: str) -> None:
        for key, result in self.results.items():
            if result.target_id == target_id:
                self.touched_results.add(key)

    def _target_revised(self, event: Target.TargetRevised) -> None:
        target = self._target(event)
        if event.indicator is not None:
            target.indicator = event.indicator
        if event.points is not None:
            target.points = event.points
        self._rescore(self.ids[event.originator_id])

    def _milestones_set(self, event: Target.MilestonesSet) -> None:
        self._target(event).milestones = dict(event.milestones)
        self._rescore(self.ids[event.originator_id])

    def _target_withdrawn(self, event: Target.TargetWithdrawn) -> None:
        target = self._target(event)
        target.withdrawn = True
        for unit in target.units or []:
            for stage in self._stages(target.cycle_id):
                self.deltas[(target.cycle_id, stage.key, unit)].n_targets -= 1
        self._rescore(self.ids[event.originator_id])

    def _effect_confirmed(self, event: Target.EffectConfirmed) -> None:
        target_id, unit_id = self.ids[event.originator_id], self.ids[event.unit_id]
        target = self.targets.get(target_id)
        if target is None:
            raise LookupError(f"scoreboard: target {target_id} was never set")
        key = _result_key(target_id, event.stage, unit_id)
        result = self.results.get(key)
        if result is None:
            result = self.results[key] = _Result(target_id, target.cycle_id, event.stage, unit_id)
        if event.method is EffectMethod.SELF_ASSESSMENT:
            result.self_value = event.result
        else:
            result.inspection_value = event.result
        self.touched_results.add(key)

    # meetings

    def _meeting_convened(self, event: Meeting.MeetingConvened) -> None:
        self.meetings[self.ids[event.originator_id]] = _Meeting(
            self.ids[event.cycle_id], event.stage, event.scale_min, event.scale_max, new=True
        )

    def _score_cast(self, event: Meeting.ScoreCast) -> None:
        meeting_id = self.ids[event.originator_id]
        if meeting_id not in self.meetings:
            raise LookupError(f"scoreboard: meeting {meeting_id} was never convened")
        pair = self._pair(meeting_id, self.ids[event.unit_id])
        pair.scores[self.ids[event.rater_id]] = event.score
        pair.changed = True

    # process items

    def _new_item(self, event: LoopEvent, item: _Item) -> None:
        self.items[self.ids[event.originator_id]] = item
        self.item_initial.setdefault(self.ids[event.originator_id], None)

    def _item(self, event: LoopEvent) -> _Item:
        item = self.items.get(self.ids[event.originator_id])
        if item is None:
            raise LookupError(
                f"scoreboard: {type(event).__name__} of unknown {event.originator_id}"
            )
        return item

    def _measure_adopted(self, event: Measure.MeasureAdopted) -> None:
        deadline = event.deadline.isoformat()
        self._new_item(
            event, _Item(MEASURE, self.ids[event.cycle_id], self.ids[event.lead_unit_id], deadline)
        )

    def _rectification_ordered(self, event: Rectification.RectificationOrdered) -> None:
        deadline = event.deadline.isoformat()
        self._new_item(
            event, _Item(RECTIFICATION, self.ids[event.cycle_id], self.ids[event.unit_id], deadline)
        )

    def _problem_found(self, event: Problem.ProblemFound) -> None:
        prominent = event.severity is Severity.PROMINENT
        self._new_item(
            event,
            _Item(PROBLEM, self.ids[event.cycle_id], self.ids[event.unit_id], prominent=prominent),
        )

    def _problem_dispatched(self, event: Problem.ProblemDispatched) -> None:
        item = self._item(event)
        item.unit_id = self.ids[event.to_unit_id]
        item.deadline = event.deadline.isoformat()

    def _problem_resolved(self, event: Problem.ProblemResolved) -> None:
        item = self._item(event)
        item.finished = True
        item.resolved_on = event.effective_time.date().isoformat()

    def _item_finished(self, event: LoopEvent) -> None:
        self._item(event).finished = True

    def _item_reopened(self, event: LoopEvent) -> None:
        item = self._item(event)
        item.finished = False
        item.resolved_on = None

    # --- working out the differences, then writing ------------------------------------------

    def finish(self) -> None:
        self._result_shares()
        self._meeting_shares()
        self._item_shares()
        self._write_inputs()
        self._write_rows()
        self._write_settlements()

    def _result_shares(self) -> None:
        for key in sorted(self.touched_results):
            entry = self.results[key]
            target = self.targets[entry.target_id]
            entry.result = target_result(
                target.indicator,
                target.milestones.get(entry.stage),
                entry.self_value,
                entry.inspection_value,
                self.policy_for(entry.cycle_id, entry.stage),
            )
            before = target.share(*entry.initial, initial=True) if entry.initial else NO_RESULT
            after = target.share(entry.result, entry.self_only, initial=False)
            if before != after:
                cell = self.deltas[(entry.cycle_id, entry.stage, entry.unit_id)]
                cell.add_result(before, -1)
                cell.add_result(after, 1)

    def _meeting_shares(self) -> None:
        for key in sorted(self.pairs):
            pair = self.pairs[key]
            if not pair.changed:
                continue
            unit_id = key.rsplit("|", 1)[1]
            count, score = pair.aggregate(self.policy_for(pair.cycle_id, pair.stage))
            old_count, old_score = pair.initial
            # Compared as stored text: a policy with other places gives 75.0 for 75.00, equal
            # as numbers but a different row.
            if (count, _text(score)) == (old_count, _text(old_score)):
                continue
            cell = self.deltas[(pair.cycle_id, pair.stage, unit_id)]
            cell.n_scores += count - old_count
            if old_score is not None:
                cell.n_meetings -= 1
                cell.meeting_sum = EXACT.subtract(cell.meeting_sum, old_score)
            if score is not None:
                cell.n_meetings += 1
                cell.meeting_sum = EXACT.add(cell.meeting_sum, score)
            pair.initial = (count, score)

    def _item_shares(self) -> None:
        for item_id in sorted(self.item_initial):
            before, after = self.item_initial[item_id], self.items[item_id]
            if before is not None and before.state() == after.state():
                continue
            for stage in self._stages(after.cycle_id):
                old = before.share(stage) if before is not None else NO_PROCESS
                new = after.share(stage)
                if old == new and (before is None or before.unit_id == after.unit_id):
                    continue
                if old != NO_PROCESS:
                    assert before is not None
                    self.deltas[(before.cycle_id, stage.key, before.unit_id)].add_process(old, -1)
                if new != NO_PROCESS:
                    self.deltas[(after.cycle_id, stage.key, after.unit_id)].add_process(new, 1)

    def _write_inputs(self) -> None:
        cursor = self.cursor
        _upsert(cursor, UNITS, ("unit_id", "name"), sorted(self.units.items()), "unit_id")
        _upsert(cursor, CYCLES, ("cycle_id", "name"), sorted(self.cycles.items()), "cycle_id")
        _upsert(
            cursor,
            STAGES,
            ("cycle_id", "stage", "ordinal", "starts_on", "ends_on", "closed"),
            [(*row, 0) for row in self.stage_rows],
            "cycle_id, stage",
            (),
        )
        for flag, stages in ((0, self.reopened), (1, self.closed)):
            if stages:
                cursor.executemany(
                    f"UPDATE {STAGES} SET closed = {flag} WHERE cycle_id = %s AND stage = %s",
                    stages,
                )
        changed = sorted((k, t) for k, t in self.targets.items() if t.changed)
        _upsert(
            cursor,
            TARGETS,
            ("target_id", "cycle_id", "indicator", "points", "milestones", "withdrawn"),
            [
                (
                    k,
                    t.cycle_id,
                    _indicator_json(t.indicator),
                    str(t.points),
                    _dumps({s: _value_text(v) for s, v in t.milestones.items()}),
                    int(t.withdrawn),
                )
                for k, t in changed
            ],
            "target_id",
        )
        _upsert(
            cursor,
            TARGET_UNITS,
            ("target_id", "unit_id"),
            [(k, unit) for k, t in changed if t.new for unit in t.units or []],
            "target_id, unit_id",
            (),
        )
        _upsert(
            cursor,
            RESULTS,
            (
                "result_key",
                "target_id",
                "cycle_id",
                "stage",
                "unit_id",
                "self_value",
                "inspection_value",
                "result",
            ),
            [
                (
                    key,
                    r.target_id,
                    r.cycle_id,
                    r.stage,
                    r.unit_id,
                    _value_text(r.self_value),
                    _value_text(r.inspection_value),
                    _text(r.result),
                )
                for key in sorted(self.touched_results)
                for r in (self.results[key],)
            ],
            "result_key",
            ("self_value", "inspection_value", "result"),
        )
        self._write_meetings()
        touched = sorted(
            item_id
            for item_id, before in self.item_initial.items()
            if before is None or before.state() != self.items[item_id].state()
        )
        _upsert(
            cursor,
            ITEMS,
            (
                "item_id",
                "kind",
                "cycle_id",
                "unit_id",
                "deadline",
                "finished",
                "resolved_on",
                "prominent",
            ),
            [
                (
                    item_id,
                    i.kind,
                    i.cycle_id,
                    i.unit_id,
                    i.deadline,
                    int(i.finished),
                    i.resolved_on,
                    int(i.prominent),
                )
                for item_id in touched
                for i in (self.items[item_id],)
            ],
            "item_id",
            ("unit_id", "deadline", "finished", "resolved_on"),
        )

    def _write_meetings(self) -> None:
        new = sorted((k, m) for k, m in self.meetings.items() if m.new)
        _upsert(
            self.cursor,
            MEETINGS,
            ("meeting_id", "cycle_id", "stage", "scale_min", "scale_max"),
            [(k, m.cycle_id, m.stage, str(m.scale_min), str(m.scale_max)) for k, m in new],
            "meeting_id",
            (),
        )
        changed = sorted((k, p) for k, p in self.pairs.items() if p.changed)
        _upsert(
            self.cursor,
            MEETING_UNITS,
            ("pair_key", "meeting_id", "unit_id", "raters", "scores", "score"),
            [
                (key, *key.split("|"), _raters_text(p.scores), p.initial[0], _text(p.initial[1]))
                for key, p in changed
            ],
            "pair_key",
            ("raters", "scores", "score"),
        )

    def _write_rows(self) -> None:
        by_stage: dict[tuple[str, str], list[str]] = defaultdict(list)
        for cycle_id, stage_key in sorted(self.repolicied):
            self.cursor.execute(
                f"SELECT unit_id FROM {ROWS} WHERE cycle_id = %s AND stage = %s",
                [cycle_id, stage_key],
            )
            for row in self.cursor.fetchall():
                self.deltas[(cycle_id, stage_key, row["unit_id"])].add(_Sums())
        for cycle_id, stage_key, unit_id in self.deltas:
            by_stage[(cycle_id, stage_key)].append(unit_id)
        upserts: list[tuple[Any, ...]] = []
        deletes: list[CellKey] = []
        for (cycle_id, stage_key), units in sorted(by_stage.items()):
            stage = next(s for s in self._stages(cycle_id) if s.key == stage_key)
            existing = {
                row["unit_id"]: row
                for row in _select_in(
                    self.cursor,
                    f"SELECT * FROM {ROWS} WHERE cycle_id = %s AND stage = %s AND {{in}}",
                    (cycle_id, stage_key),
                    "unit_id",
                    units,
                )
            }
            for unit_id in sorted(units):
                key = (cycle_id, stage_key, unit_id)
                old = existing.get(unit_id)
                sums = _sums_from(old) if old is not None else _Sums()
                sums.add(self.deltas[key])
                if sums.is_empty():
                    if old is not None:
                        deletes.append(key)
                    continue
                values = (
                    stage.ordinal,
                    *_sums_values(sums),
                    *derive(sums, self.policy_for(cycle_id, stage_key)),
                    1,
                    int(stage.closed),
                )
                if old is None or values != tuple(old[c] for c in ROW_COLUMNS):
                    upserts.append((*key, *values))
        _upsert(
            self.cursor,
            ROWS,
            ("cycle_id", "stage", "unit_id", *ROW_COLUMNS),
            upserts,
            "cycle_id, stage, unit_id",
            ROW_COLUMNS,
        )
        if deletes:
            self.cursor.executemany(
                f"DELETE FROM {ROWS} WHERE cycle_id = %s AND stage = %s AND unit_id = %s", deletes
            )
        for flag, stages in ((0, self.reopened), (1, self.closed)):
            for cycle_id, stage_key in stages:
                self.cursor.execute(
                    f"UPDATE {ROWS} SET stage_closed = {flag} WHERE cycle_id = %s AND stage = %s",
                    [cycle_id, stage_key],
                )

    def _write_settlements(self) -> None:
        cursor = self.cursor
        _upsert(
            cursor,
            POLICIES,
            ("cycle_id", "stage", "policy"),
            [(*key, text) for key, text in sorted(self.policy_rows.items())],
            "cycle_id, stage",
        )
        for kind, payload in self.settlement_ops:
            if kind == "reopened":
                for table in (SETTLEMENTS, SETTLED):
                    cursor.execute(
                        f"DELETE FROM {table} WHERE cycle_id = %s AND stage = %s", [*payload]
                    )
                continue
            event: Settlement.StageSettled = payload
            cycle_id = self.ids[event.cycle_id]
            _upsert(
                cursor,
                SETTLEMENTS,
                (
                    "cycle_id",
                    "stage",
                    "settlement_id",
                    "round_number",
                    "through_position",
                    "settled_at",
                    "results_digest",
                    "policy_digest",
                ),
                [
                    (
                        cycle_id,
                        event.stage,
                        self.ids[event.originator_id],
                        event.round_number,
                        event.through_position,
                        event.timestamp.isoformat(),
                        event.results_digest,
                        event.policy_digest,
                    )
                ],
                "cycle_id, stage",
            )
            _upsert(
                cursor,
                SETTLED,
                (
                    "cycle_id",
                    "stage",
                    "unit_id",
                    "rank",
                    "result",
                    "process",
                    "meeting",
                    "total",
                    "weights",
                    "notes",
                ),
                [
                    (
                        cycle_id,
                        event.stage,
                        unit["unit_id"],
                        unit["rank"],
                        unit["components"][RESULT],
                        unit["components"][PROCESS],
                        unit["components"][MEETING],
                        unit["total"],
                        json.dumps(unit["weights"], separators=(",", ":")),
                        _notes_text(tuple(unit["notes"])),
                    )
                    for unit in event.units
                ],
                "cycle_id, stage, unit_id",
            )


def derive(sums: _Sums, policy: ScoringPolicy = DEFAULT_POLICY) -> tuple[str | None, ...]:
    """A row's result, process, meeting, total, weights and notes (as stored), from its sums,
    by the scoring rules."""
    result = weighted_mean(sums.weighted, sums.points_scored, policy) if sums.n_scored else None
    process = process_score(
        ProcessFacts(
            sums.items_due,
            sums.overdue_measures,
            sums.missed_rectifications,
            sums.unresolved_problems,
            sums.prominent_resolved,
        ),
        policy,
    )
    meeting = mean_of(sums.meeting_sum, sums.n_meetings, policy)
    score = unit_total({RESULT: result, PROCESS: process, MEETING: meeting}, policy)
    notes = list(score.notes)
    unscored = sums.n_targets - sums.n_scored
    if unscored > 0:
        notes.append(
            f"{unscored} of {sums.n_targets} targets have no confirmed result for this stage"
        )
    if sums.n_self_only:
        notes.append(
            f"{sums.n_self_only} target result(s) from self-assessment only, pending inspection"
        )
    return (
        _text(result),
        _text(process),
        _text(meeting),
        _text(score.total),
        _weights_text(tuple(score.weights.items())),
        _notes_text(tuple(notes)),
    )


# --- reading -----------------------------------------------------------------------------------


def read_scoreboard(db: Any, cycle_id: UUID, stage: str | None = None) -> dict[str, Any]:
    """One stage of a cycle's scoreboard, rows in rank order.

    Rows: the units of the cycle. Ranks: competition ranking ("1224") by total, highest first;
    equal totals share a rank and are listed by unit id; units without a total are unranked and
    listed last (see :func:`closedloop.domain.scoring.rank`).

    Without ``stage``: the latest stage in which some unit has a result or meeting component
    (confirmed effects or meeting scores), else the cycle's first stage. Raises NotFound for a
    cycle the read model does not know, InvalidValue for a stage the cycle does not have.
    """
    with db.reading() as cursor:
        cursor.execute(f"SELECT cycle_id, name FROM {CYCLES} WHERE cycle_id = %s", [str(cycle_id)])
        cycle = cursor.fetchone()
        if cycle is None:
            raise NotFound("cycle", cycle_id)
        cursor.execute(
            f"SELECT * FROM {STAGES} WHERE cycle_id = %s ORDER BY ordinal", [str(cycle_id)]
        )
        stages = cursor.fetchall()
        cursor.execute(
            f"SELECT DISTINCT stage FROM {ROWS} WHERE cycle_id = %s AND n_targets > 0 "
            "AND (n_scored > 0 OR n_meetings > 0)",
            [str(cycle_id)],
        )
        assessed = {row["stage"] for row in cursor.fetchall()}
        keys = [row["stage"] for row in stages]
        if stage is None:
            chosen = next((k for k in reversed(keys) if k in assessed), keys[0])
        elif stage in keys:
            chosen = stage
        else:
            raise InvalidValue(field="stage", rule=f"one of {', '.join(keys)}", value=stage)
        columns = ", ".join(f"r.{c}" for c in PUBLIC_COLUMNS)
        cursor.execute(
            f"SELECT {columns}, u.name AS unit_name FROM {ROWS} r "
            f"LEFT JOIN {UNITS} u ON u.unit_id = r.unit_id "
            "WHERE r.cycle_id = %s AND r.stage = %s AND r.n_targets > 0",
            [str(cycle_id), chosen],
        )
        rows = {row["unit_id"]: row for row in cursor.fetchall()}
        cursor.execute(f"SELECT * FROM {SETTLEMENTS} WHERE cycle_id = %s", [str(cycle_id)])
        settlements = {row["stage"]: row for row in cursor.fetchall()}
        cursor.execute(
            f"SELECT policy FROM {POLICIES} WHERE cycle_id = %s AND stage = %s",
            [str(cycle_id), chosen],
        )
        policy_row = cursor.fetchone()
        settled_rows: list[Row] = []
        if chosen in settlements:
            cursor.execute(
                f"SELECT s.*, u.name AS unit_name FROM {SETTLED} s "
                f"LEFT JOIN {UNITS} u ON u.unit_id = s.unit_id "
                "WHERE s.cycle_id = %s AND s.stage = %s",
                [str(cycle_id), chosen],
            )
            settled_rows = cursor.fetchall()
    stage_row = stages[keys.index(chosen)]
    settlement = settlements.get(chosen)
    if settlement is None:
        ranked = rank({unit: _decimal(row["total"]) for unit, row in rows.items()})
        shown = [_public(rows[r.unit_id], r.rank) for r in ranked]
    else:
        shown = [_settled(row, rows.get(row["unit_id"])) for row in _in_rank_order(settled_rows)]
    return {
        "cycle_id": str(cycle_id),
        "cycle_name": cycle["name"],
        "stage": chosen,
        "stage_closed": bool(stage_row["closed"]) or settlement is not None,
        "provisional": settlement is None,
        "settlement": None if settlement is None else _settlement_public(settlement),
        "policy": (DEFAULT_POLICY if policy_row is None else _policy(policy_row["policy"])),
        "stages": [
            {
                "key": row["stage"],
                "starts_on": row["starts_on"],
                "ends_on": row["ends_on"],
                "closed": bool(row["closed"]) or row["stage"] in settlements,
                "settled": row["stage"] in settlements,
                "assessed": row["stage"] in assessed,
            }
            for row in stages
        ],
        "rows": shown,
    }


def _in_rank_order(rows: Sequence[Row]) -> list[Row]:
    """As :func:`rank` lists them: by rank, ties and unranked units by unit id."""
    return sorted(rows, key=lambda r: (r["rank"] is None, r["rank"] or 0, str(r["unit_id"])))


def _settled(row: Row, provisional: Row | None) -> dict[str, Any]:
    """A settled row: the figures fixed by the settlement; the counts behind them are today's
    (from the provisional row), shown for context."""
    shown = _public({**(provisional or dict.fromkeys(PUBLIC_COLUMNS, 0)), **row}, row["rank"])
    if provisional is None:
        shown["details"] = None
    return shown


def _settlement_public(row: Row) -> dict[str, Any]:
    return {
        "settlement_id": row["settlement_id"],
        "round": int(row["round_number"]),
        "through_position": int(row["through_position"]),
        "settled_at": row["settled_at"],
        "results_digest": row["results_digest"],
        "policy_digest": row["policy_digest"],
    }


PUBLIC_COLUMNS = (
    "unit_id",
    "result",
    "process",
    "meeting",
    "total",
    "weights",
    "notes",
    "n_targets",
    "n_scored",
    "n_self_only",
    "n_meetings",
    "n_scores",
    "items_due",
    "overdue_measures",
    "missed_rectifications",
    "unresolved_problems",
    "prominent_resolved",
)


@lru_cache(maxsize=1024)
def _parsed(text: str) -> Any:
    """Stored JSON (weights, notes), parsed once: the same few texts recur on every row."""
    return json.loads(text)


def _public(row: Row, position: int | None) -> dict[str, Any]:
    return {
        "unit_id": row["unit_id"],
        "unit_name": row["unit_name"],
        "result": row["result"],
        "process": row["process"],
        "meeting": row["meeting"],
        "total": row["total"],
        "rank": position,
        "weights": dict(_parsed(row["weights"])),
        "notes": list(_parsed(row["notes"])),
        "details": {
            "targets": row["n_targets"],
            "targets_scored": row["n_scored"],
            "self_assessment_only": row["n_self_only"],
            "meetings": row["n_meetings"],
            "scores": row["n_scores"],
            "items_due": row["items_due"],
            "overdue_measures": row["overdue_measures"],
            "missed_rectifications": row["missed_rectifications"],
            "unresolved_problems": row["unresolved_problems"],
            "prominent_resolved": row["prominent_resolved"],
        },
    }


# --- helpers -----------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _policy(text: str) -> ScoringPolicy:
    return ScoringPolicy.from_dict(json.loads(text))


def _on_postgres(cursor: Cursor) -> bool:
    return type(cursor).__module__.startswith("psycopg")


def _upsert(
    cursor: Cursor,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    conflict: str,
    update: Sequence[str] | None = None,
) -> None:
    """Insert ``rows`` (distinct keys), updating ``update`` columns (default: all but the key
    columns of ``conflict``; empty: DO NOTHING) where the key exists.

    On PostgreSQL one ``INSERT ... SELECT * FROM unnest(<one array per column>)``: one short
    statement and one round trip for any number of rows. On SQLite ``executemany``: one
    prepared statement, in process.
    """
    if not rows:
        return
    keys = {name.strip() for name in conflict.split(",")}
    chosen = [c for c in columns if c not in keys] if update is None else list(update)
    action = (
        "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in chosen)
        if chosen
        else "DO NOTHING"
    )
    names = ", ".join(columns)
    tail = f"ON CONFLICT ({conflict}) {action}"
    if _on_postgres(cursor):
        arrays = ", ".join(f"%b::{'bigint' if c in INTEGER_COLUMNS else 'text'}[]" for c in columns)
        cursor.execute(
            f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {tail}",
            [[row[index] for row in rows] for index in range(len(columns))],
        )
    else:
        marks = ", ".join(["%s"] * len(columns))
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks}) {tail}", rows)


def _select_in(
    cursor: Cursor, statement: str, params: Sequence[Any], column: str, values: Iterable[str]
) -> Iterator[Row]:
    """Run ``statement`` with ``{in}`` replaced by ``column IN (...)`` (in chunks; on
    PostgreSQL ``column = ANY(%s)`` with one array)."""
    ordered = sorted(set(values))
    if not ordered:
        return
    if _on_postgres(cursor):
        cursor.execute(statement.replace("{in}", f"{column} = ANY(%s)"), [*params, ordered])
        yield from cursor.fetchall()
        return
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        condition = f"{column} IN ({', '.join(['%s'] * len(chunk))})"
        cursor.execute(statement.replace("{in}", condition), [*params, *chunk])
        yield from cursor.fetchall()


def _result_key(target_id: str, stage: str, unit_id: str) -> str:
    return f"{target_id}|{stage}|{unit_id}"


def _raters_text(scores: dict[str, Decimal]) -> str:
    """Each rater's score, as ``[[rater, score], ...]`` in rater order."""
    return _dumps([[rater, str(score)] for rater, score in sorted(scores.items())])


def _pair_key(meeting_id: str, unit_id: str) -> str:
    return f"{meeting_id}|{unit_id}"


@lru_cache(maxsize=1024)
def _notes_text(notes: tuple[str, ...]) -> str:
    return _dumps(list(notes))


@lru_cache(maxsize=64)
def _weights_text(weights: tuple[tuple[str, Decimal], ...]) -> str:
    """In component order (result, process, meeting), as :func:`unit_total` gives them."""
    return json.dumps({name: str(weight) for name, weight in weights}, separators=(",", ":"))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _text(value: Decimal | None) -> str | None:
    return str(value) if value is not None else None


def _decimal(text: str | None) -> Decimal | None:
    return Decimal(text) if text is not None else None


def _value_text(value: Decimal | str | None) -> str | None:
    """A confirmed value or milestone: ``n:<number>`` or ``s:<rubric level>``."""
    if value is None:
        return None
    return f"n:{value}" if isinstance(value, Decimal) else f"s:{value}"


def _value_from(text: str | None) -> Decimal | str | None:
    if text is None:
        return None
    kind, _, value = text.partition(":")
    return Decimal(value) if kind == "n" else value


def _indicator_json(indicator: Indicator) -> str:
    return _dumps(
        {
            "kind": indicator.kind.value,
            "target_value": _text(indicator.target_value),
            "direction": indicator.direction.value if indicator.direction else None,
            "levels": list(indicator.levels),
        }
    )


def _target_from(row: Row) -> _Target:
    data = json.loads(row["indicator"])
    indicator = Indicator(
        kind=IndicatorKind(data["kind"]),
        target_value=_decimal(data["target_value"]),
        direction=Direction(data["direction"]) if data["direction"] else None,
        levels=tuple(data["levels"]),
    )
    milestones = {
        stage: value
        for stage, text in json.loads(row["milestones"]).items()
        if (value := _value_from(text)) is not None
    }
    points, withdrawn = Decimal(row["points"]), bool(row["withdrawn"])
    return _Target(
        row["cycle_id"], indicator, points, milestones, withdrawn, initial=(points, withdrawn)
    )


def _result_from(row: Row) -> _Result:
    entry = _Result(
        row["target_id"],
        row["cycle_id"],
        row["stage"],
        row["unit_id"],
        _value_from(row["self_value"]),
        _value_from(row["inspection_value"]),
        _decimal(row["result"]),
    )
    entry.initial = (entry.result, entry.self_only)
    return entry


def _sums_from(row: Row) -> _Sums:
    return _Sums(
        row["n_targets"],
        row["n_scored"],
        row["n_self_only"],
        Decimal(row["points_scored"]),
        Decimal(row["weighted"]),
        row["n_meetings"],
        Decimal(row["meeting_sum"]),
        row["n_scores"],
        row["items_due"],
        row["overdue_measures"],
        row["missed_rectifications"],
        row["unresolved_problems"],
        row["prominent_resolved"],
    )


def _sums_values(sums: _Sums) -> tuple[Any, ...]:
    """The sums as stored, in SUM_FIELDS order (Decimals as canonical text)."""
    return (
        sums.n_targets,
        sums.n_scored,
        sums.n_self_only,
        _canonical(sums.points_scored),
        _canonical(sums.weighted),
        sums.n_meetings,
        _canonical(sums.meeting_sum),
        sums.n_scores,
        sums.items_due,
        sums.overdue_measures,
        sums.missed_rectifications,
        sums.unresolved_problems,
        sums.prominent_resolved,
    )


def _canonical(value: Decimal) -> str:
    """One text per number (``10`` for 10, 10.0 and 1E+1), so that sums reached in a different
    order, or through a row deleted and made again, are stored the same."""
    return f"{value.normalize():f}"
