"""The trace read model: one target's chain — problems, measures, duties, meeting scores,
rectifications, effects, awards — each with the events behind it.

Tables:

- ``trace_targets``: one row per target (cycle, title, status, contract).
- ``trace_target_units``: the units a target concerns, by role (``applies_to``, ``lead``,
  ``responsible``), so new duties, meeting reports and awards find their targets.
- ``trace_meetings``: each meeting's cycle and stage.
- ``trace_items``: the things a chain is made of (a problem, a measure, a duty, a unit's report at
  one meeting, a rectification, an effect, an award), with title, status and details.
- ``trace_links``: which items belong to which target's chain.
- ``trace_events``: the events behind each item (and each target's own events).

Links and events are kept apart, so an event is stored once however many targets it serves (a
score for a unit counts for every target that applies to it). What links to what:

- problems found for the target; measures adopted for it or against one of its problems;
  rectifications ordered for it or for one of its problems;
- duties held for a unit the target applies to or is contracted to (lead or responsible), linked
  whenever the duty or the target comes second (duties belong to no cycle; a re-contract adds
  its units, links once made stay: they record who carried the target at some time);
- a unit's report, scores and reviews at a meeting of the target's cycle, and awards to a unit in
  the target's cycle, for units the target applies to (awards to a person are not linked);
- effects confirmed on the target, one item per stage, method and unit (a correction is a
  second event on the same item, status ``corrected``); the target's own ``events`` are its
  other events (set, milestones, contract, revision, link, withdrawal).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from closedloop.domain.access import AccessToken
from closedloop.domain.awards import Award
from closedloop.domain.base import LoopEvent
from closedloop.domain.catalogue import event_classes
from closedloop.domain.cycles import Cycle
from closedloop.domain.duties import Duty
from closedloop.domain.measures import Measure
from closedloop.domain.meetings import Meeting
from closedloop.domain.people import Person
from closedloop.domain.problems import Problem
from closedloop.domain.rectifications import Rectification
from closedloop.domain.targets import Target
from closedloop.domain.units import Unit
from closedloop.projections.audit import compact_json, jsonable, utc_text
from closedloop.projections.base import Positioned, Projection
from closedloop.projections.rows import id_text, insert_rows, select_in
from closedloop.store.sql import Cursor, Database

TARGETS = "trace_targets"
TARGET_UNITS = "trace_target_units"
MEETINGS = "trace_meetings"
ITEMS = "trace_items"
LINKS = "trace_links"
EVENTS = "trace_events"

SECTIONS = {
    "problem": "problems",
    "measure": "measures",
    "duty": "duties",
    "meeting": "meetings",
    "rectification": "rectifications",
    "effect": "effects",
    "award": "awards",
}
APPLIES_TO, LEAD, RESPONSIBLE = "applies_to", "lead", "responsible"
# Items found through their unit, so a target set after them still links them.
UNIT_KINDS = ("duty", "meeting", "award")
SUMMARY_LENGTH = 300

# Aggregates no chain is made of: their events are not traced.
UNTRACED = tuple(
    cls for aggregate in (Unit, Person, Cycle, AccessToken) for cls in event_classes(aggregate)
)
TARGET_EVENTS = tuple(event_classes(Target))
MEETING_EVENTS = (Meeting.ReportDelivered, Meeting.ScoreCast, Meeting.ReviewCommented)

STATUS_CHANGES: dict[type[Any], str] = {
    Target.TargetWithdrawn: "withdrawn",
    Problem.ProblemDispatched: "dispatched",
    Problem.ProblemResolved: "resolved",
    Problem.ProblemReopened: "reopened",
    Measure.MeasureCompleted: "completed",
    Measure.MeasureCancelled: "cancelled",
    Duty.DutyRelieved: "relieved",
    Rectification.RectificationCompleted: "completed",
    Rectification.RectificationVerified: "verified",
    Rectification.RectificationRejected: "ordered",
    Award.AwardRevoked: "revoked",
}

SUMMARIES: dict[type[Any], Callable[[Any], str]] = {
    Target.TargetSet: lambda e: e.title,
    Target.TargetRevised: lambda e: e.reason or "",
    Target.MilestonesSet: lambda e: ", ".join(f"{k}: {v}" for k, v in e.milestones.items()),
    Target.TargetContracted: lambda e: f"lead {e.lead_unit_id}, leader {e.responsible_leader_id}",
    Target.TargetLinked: lambda e: f"linked to {e.linked_target_id}",
    Target.EffectConfirmed: lambda e: f"{e.stage} {e.method.value} {e.unit_id}: {e.result}",
    Problem.ProblemFound: lambda e: e.title,
    Problem.ProblemDispatched: lambda e: f"to {e.to_unit_id} by {e.deadline}: {e.requirement}",
    Problem.ProblemEscalated: lambda e: f"to leader {e.leader_id}",
    Problem.ProblemResolved: lambda e: e.evidence,
    Measure.MeasureAdopted: lambda e: f"{e.title} (by {e.deadline})",
    Measure.MeasureProgressReported: lambda e: f"{e.percent}% {e.note}".strip(),
    Measure.MeasureCompleted: lambda e: e.evidence,
    Duty.DutyAssigned: lambda e: f"{e.tier.value} for {e.unit_id} from {e.effective_from}",
    Duty.DutyRelieved: lambda e: f"until {e.effective_to}: {e.reason or ''}",
    Meeting.ReportDelivered: lambda e: e.summary,
    Meeting.ScoreCast: lambda e: f"{e.score} by {e.rater_id}",
    Meeting.ReviewCommented: lambda e: e.comment,
    Rectification.RectificationOrdered: lambda e: f"{e.requirement} (by {e.deadline})",
    Rectification.RectificationCompleted: lambda e: e.evidence,
    Rectification.RectificationVerified: lambda e: e.comment,
    Award.AwardIssued: lambda e: f"{e.kind.value} {e.points or ''}: {e.basis}",
}


@functools.cache
def _route(event_class: type[LoopEvent]) -> str | None:
    """The :class:`_Batch` method that applies events of this class (None: not traced).

    Decided once per class: an isinstance chain per event cost more than the work it chose.
    """
    for bases, method in (
        (UNTRACED, None),
        (TARGET_EVENTS, "apply_target"),
        ((Meeting.MeetingConvened,), "meeting_convened"),
        (MEETING_EVENTS, "apply_meeting"),
        ((Problem.ProblemFound,), "problem_found"),
        ((Measure.MeasureAdopted,), "measure_adopted"),
        ((Rectification.RectificationOrdered,), "rectification_ordered"),
        ((Duty.DutyAssigned,), "duty_assigned"),
        ((Award.AwardIssued,), "award_issued"),
        ((Aggregate.Created,), None),
    ):
        if issubclass(event_class, bases):
            return method
    return "item_changed"


@functools.cache
def _created(event_class: type[LoopEvent]) -> bool:
    return issubclass(event_class, Aggregate.Created)


def summary_of(event: LoopEvent) -> str:
    describe = SUMMARIES.get(type(event))
    text = describe(event) if describe is not None else (event.reason or "")
    return " ".join(str(text).split())[:SUMMARY_LENGTH]


def meeting_item_id(meeting_id: UUID, unit_id: UUID) -> str:
    """A unit's report at one meeting: the report, its scores and its reviews."""
    return f"{id_text(meeting_id)}/{id_text(unit_id)}"


def effect_item_id(event: Target.EffectConfirmed) -> str:
    """One confirmed effect: a correction confirms the same stage, method and unit again."""
    target, unit = id_text(event.originator_id), id_text(event.unit_id)
    return f"{target}/{event.stage}/{event.method.value}/{unit}"


TARGET_COLUMNS = ("target_id", "cycle_id", "title", "status", "detail", "position")
ITEM_COLUMNS = ("item_id", "kind", "cycle_id", "unit_id", "title", "status", "detail", "position")


def _text(value: UUID | str) -> str:
    return id_text(value) if isinstance(value, UUID) else value


def _row(values: dict[str, Any], columns: Sequence[str]) -> list[Any]:
    return [_dump(values[c]) if c == "detail" else values[c] for c in columns]


def _dump(value: dict[str, Any]) -> str:
    """Details are JSON-ready already (made so by :func:`jsonable` when set)."""
    return compact_json(value)


class Trace(Projection):
    name: ClassVar[str] = "trace"
    tables: ClassVar[tuple[str, ...]] = (TARGETS, TARGET_UNITS, MEETINGS, ITEMS, LINKS, EVENTS)

    def create_tables(self, cursor: Cursor, dialect: str) -> None:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TARGETS} (target_id TEXT PRIMARY KEY, "
            "cycle_id TEXT NOT NULL, title TEXT NOT NULL, status TEXT NOT NULL, "
            "detail TEXT NOT NULL, position BIGINT NOT NULL)"
        )
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TARGET_UNITS} (target_id TEXT NOT NULL, "
            "unit_id TEXT NOT NULL, role TEXT NOT NULL, cycle_id TEXT NOT NULL, "
            "PRIMARY KEY (target_id, unit_id, role))"
        )
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {TARGET_UNITS}_unit_idx ON {TARGET_UNITS} (unit_id)"
        )
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {MEETINGS} (meeting_id TEXT PRIMARY KEY, "
            "cycle_id TEXT NOT NULL, stage TEXT NOT NULL, title TEXT NOT NULL, "
            "held_on TEXT NOT NULL)"
        )
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {ITEMS} (item_id TEXT PRIMARY KEY, kind TEXT NOT NULL, "
            "cycle_id TEXT, unit_id TEXT, title TEXT NOT NULL, status TEXT NOT NULL, "
            "detail TEXT NOT NULL, position BIGINT NOT NULL)"
        )
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {ITEMS}_unit_kind_idx ON {ITEMS} (unit_id, kind)"
        )
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {LINKS} (target_id TEXT NOT NULL, "
            "item_id TEXT NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (target_id, item_id))"
        )
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {LINKS}_item_idx ON {LINKS} (item_id)")
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {EVENTS} (item_id TEXT NOT NULL, "
            "position BIGINT NOT NULL, event_type TEXT NOT NULL, actor TEXT NOT NULL, "
            "recorded_at TEXT NOT NULL, summary TEXT NOT NULL, PRIMARY KEY (item_id, position))"
        )

    def apply_batch(self, cursor: Cursor, events: Sequence[Positioned]) -> None:
        batch = _Batch(cursor, self.dialect)
        batch.prefetch(events)
        for position, event in events:
            batch.apply(event, position)
        batch.flush()


class _Batch:
    """The rows one batch touches: read once up front, changed in memory, written at the end.

    Every cache mirrors the database plus the writes still pending. A key not read up front is
    read on demand after writing what is pending, so the read sees every earlier event.
    """

    def __init__(self, cursor: Cursor, dialect: str) -> None:
        self.cursor = cursor
        self.dialect = dialect
        self.targets: dict[str, dict[str, Any] | None] = {}
        self.items: dict[str, dict[str, Any] | None] = {}
        self.meetings: dict[str, dict[str, Any] | None] = {}
        self.links: dict[str, set[str]] = {}  # item -> targets
        self.target_units: dict[str, set[tuple[str, str]]] = {}  # target -> (unit, role)
        self.unit_items: dict[str, list[tuple[str, str, str | None]]] = {}  # (item, kind, cycle)
        self.unit_targets: dict[
            str, list[tuple[str, str, str]]
        ] = {}  # unit -> (target, role, cycle)
        self.dirty_targets: dict[str, dict[str, Any]] = {}
        self.dirty_items: dict[str, dict[str, Any]] = {}
        self.new_meetings: list[list[Any]] = []
        self.new_target_units: list[list[Any]] = []
        self.new_links: list[list[Any]] = []
        self.new_events: list[list[Any]] = []

    # --- reading -----------------------------------------------------------------------------

    def prefetch(self, events: Sequence[Positioned]) -> None:
        targets: dict[str, None] = {}
        items: dict[str, None] = {}
        meetings: dict[str, None] = {}
        problems: dict[str, None] = {}
        contracted: dict[str, None] = {}
        units: dict[str, None] = {}
        target_units: dict[str, None] = {}
        for _, event in events:
            route = _route(type(event))
            if route is None:
                continue
            origin = id_text(event.originator_id)
            if route == "apply_target":
                if isinstance(event, Target.TargetSet):
                    target_units.update((id_text(u), None) for u in event.applies_to)
                else:
                    targets[origin] = None
                if isinstance(event, Target.TargetContracted):
                    contracted[origin] = None
                    target_units[id_text(event.lead_unit_id)] = None
                    target_units.update((id_text(u), None) for u in event.responsible_unit_ids)
                if isinstance(event, Target.EffectConfirmed):
                    items[effect_item_id(event)] = None
            elif route == "apply_meeting":
                meetings[origin] = None
                items[meeting_item_id(event.originator_id, event.unit_id)] = None  # type: ignore[attr-defined]
                units[id_text(event.unit_id)] = None  # type: ignore[attr-defined]
            elif not _created(type(event)):
                items[origin] = None
            if isinstance(event, Measure.MeasureAdopted):
                problems.update((id_text(p), None) for p in event.problem_ids)
            elif isinstance(event, Rectification.RectificationOrdered) and event.problem_id:
                problems[id_text(event.problem_id)] = None
            elif isinstance(event, Duty.DutyAssigned | Award.AwardIssued) and event.unit_id:
                units[id_text(event.unit_id)] = None
        self.target_rows(list(targets))
        self.item_rows(list(items))
        self.meeting_rows(list(meetings))
        self.links_of(list(problems))
        self.units_of_targets(list(contracted))
        self.targets_of_units(list(units))
        self.items_of_units(list(target_units))

    def _missing(self, cache: dict[str, Any], keys: Sequence[str]) -> list[str]:
        missing = [key for key in keys if key not in cache]
        if missing:
            missing = list(dict.fromkeys(missing))
            self.flush()
        return missing

    def target_rows(self, ids: Sequence[str]) -> None:
        missing = self._missing(self.targets, ids)
        self.targets.update(dict.fromkeys(missing))
        for row in select_in(
            self.cursor, self.dialect, f"SELECT * FROM {TARGETS}", "target_id", missing
        ):
            self.targets[row["target_id"]] = {**row, "detail": json.loads(row["detail"])}

    def item_rows(self, ids: Sequence[str]) -> None:
        missing = self._missing(self.items, ids)
        self.items.update(dict.fromkeys(missing))
        for row in select_in(
            self.cursor, self.dialect, f"SELECT * FROM {ITEMS}", "item_id", missing
        ):
            self.items[row["item_id"]] = {**row, "detail": json.loads(row["detail"])}

    def meeting_rows(self, ids: Sequence[str]) -> None:
        missing = self._missing(self.meetings, ids)
        self.meetings.update(dict.fromkeys(missing))
        for row in select_in(
            self.cursor, self.dialect, f"SELECT * FROM {MEETINGS}", "meeting_id", missing
        ):
            self.meetings[row["meeting_id"]] = row

    def links_of(self, item_ids: Sequence[str]) -> None:
        missing = self._missing(self.links, item_ids)
        for key in missing:
            self.links[key] = set()
        for row in select_in(
            self.cursor, self.dialect, f"SELECT item_id, target_id FROM {LINKS}", "item_id", missing
        ):
            self.links[row["item_id"]].add(row["target_id"])

    def units_of_targets(self, target_ids: Sequence[str]) -> None:
        missing = self._missing(self.target_units, target_ids)
        for key in missing:
            self.target_units[key] = set()
        for row in select_in(
            self.cursor,
            self.dialect,
            f"SELECT target_id, unit_id, role FROM {TARGET_UNITS}",
            "target_id",
            missing,
        ):
            self.target_units[row["target_id"]].add((row["unit_id"], row["role"]))

    def items_of_units(self, unit_ids: Sequence[str]) -> None:
        """The duties, meeting reports and awards of each unit, for targets that come later."""
        missing = self._missing(self.unit_items, unit_ids)
        for key in missing:
            self.unit_items[key] = []
        kinds = ", ".join(f"'{kind}'" for kind in UNIT_KINDS)
        rows = select_in(
            self.cursor,
            self.dialect,
            f"SELECT item_id, kind, cycle_id, unit_id, position FROM {ITEMS}",
            "unit_id",
            missing,
            f"kind IN ({kinds})",
        )
        for row in sorted(rows, key=lambda row: int(row["position"])):
            self.unit_items[row["unit_id"]].append((row["item_id"], row["kind"], row["cycle_id"]))

    def targets_of_units(self, unit_ids: Sequence[str]) -> None:
        missing = self._missing(self.unit_targets, unit_ids)
        for key in missing:
            self.unit_targets[key] = []
        rows = select_in(
            self.cursor,
            self.dialect,
            f"SELECT target_id, unit_id, role, cycle_id FROM {TARGET_UNITS}",
            "unit_id",
            missing,
        )
        for row in sorted(rows, key=lambda row: (row["target_id"], row["role"])):
            self.unit_targets[row["unit_id"]].append(
                (row["target_id"], row["role"], row["cycle_id"])
            )

    # --- changing ----------------------------------------------------------------------------

    def record(self, item_id: str, event: LoopEvent, position: int) -> None:
        self.new_events.append(
            [
                item_id,
                position,
                type(event).__name__,
                event.actor,
                utc_text(event.timestamp),
                summary_of(event),
            ]
        )

    def new_item(
        self,
        item_id: str,
        kind: str,
        position: int,
        *,
        title: str,
        status: str,
        cycle_id: Any,
        unit_id: Any,
        detail: dict[str, Any],
    ) -> dict[str, Any]:
        item = {
            "item_id": item_id,
            "kind": kind,
            "cycle_id": _text(cycle_id) if cycle_id else None,
            "unit_id": _text(unit_id) if unit_id else None,
            "title": title,
            "status": status,
            "detail": jsonable(detail),
            "position": position,
        }
        self.items[item_id] = self.dirty_items[item_id] = item
        self.links[item_id] = set()
        if kind in UNIT_KINDS and item["unit_id"] in self.unit_items:
            self.unit_items[item["unit_id"]].append((item_id, kind, item["cycle_id"]))
        return item

    def link(self, target_ids: Iterable[str], item_id: str, kind: str) -> None:
        """Link an item to targets. Its links need not be read first: a link is a set member,
        written with ON CONFLICT DO NOTHING; the cache learns it only if it holds the item."""
        linked = self.links.get(item_id)
        for target_id in sorted(set(target_ids) - (linked or set())):
            if linked is not None:
                linked.add(target_id)
            self.new_links.append([target_id, item_id, kind])

    def add_target_unit(self, target_id: str, unit_id: str, role: str, cycle_id: str) -> bool:
        """Whether the unit is new to the target in any role."""
        known = self.target_units.setdefault(target_id, set())
        if (unit_id, role) in known:
            return False
        is_new = all(unit != unit_id for unit, _ in known)
        known.add((unit_id, role))
        self.new_target_units.append([target_id, unit_id, role, cycle_id])
        if unit_id in self.unit_targets:
            self.unit_targets[unit_id].append((target_id, role, cycle_id))
        return is_new

    def touch(self, item: dict[str, Any]) -> None:
        self.dirty_items[item["item_id"]] = item

    # --- events ------------------------------------------------------------------------------

    def apply(self, event: LoopEvent, position: int) -> None:
        route = _route(type(event))
        if route is not None:
            getattr(self, route)(event, position)

    def meeting_convened(self, event: Meeting.MeetingConvened, position: int) -> None:
        meeting = {
            "meeting_id": id_text(event.originator_id),
            "cycle_id": id_text(event.cycle_id),
            "stage": event.stage,
            "title": event.title,
            "held_on": event.held_on.isoformat(),
        }
        self.meetings[meeting["meeting_id"]] = meeting
        self.new_meetings.append(list(meeting.values()))

    def apply_target(self, event: LoopEvent, position: int) -> None:
        target_id = id_text(event.originator_id)
        if isinstance(event, Target.TargetSet):
            target = {
                "target_id": target_id,
                "cycle_id": id_text(event.cycle_id),
                "title": event.title,
                "status": "active",
                "detail": jsonable(
                    {
                        "scope": event.scope,
                        "owner_unit_id": event.owner_unit_id,
                        "applies_to": event.applies_to,
                        "contract": None,
                    }
                ),
                "position": position,
            }
            self.targets[target_id] = self.dirty_targets[target_id] = target
            self.target_units[target_id] = set()
            for unit in dict.fromkeys(id_text(u) for u in event.applies_to):
                self.add_target_unit(target_id, unit, APPLIES_TO, target["cycle_id"])
            self.link_existing(target, [id_text(u) for u in event.applies_to], same_cycle=True)
            self.record(target_id, event, position)
            return
        self.target_rows([target_id])
        known = self.targets.get(target_id)
        if known is None:
            return
        target = known
        if not isinstance(event, Target.EffectConfirmed):  # recorded under the effect instead
            self.record(target_id, event, position)
        if isinstance(event, Target.TargetRevised) and event.title:
            target["title"] = event.title
            self.dirty_targets[target_id] = target
        elif isinstance(event, Target.TargetWithdrawn):
            target["status"] = STATUS_CHANGES[type(event)]
            self.dirty_targets[target_id] = target
        elif isinstance(event, Target.TargetContracted):
            self.dirty_targets[target_id] = target
            target["detail"]["contract"] = jsonable(
                {
                    "lead_unit_id": event.lead_unit_id,
                    "responsible_unit_ids": event.responsible_unit_ids,
                    "responsible_leader_id": event.responsible_leader_id,
                }
            )
            self.units_of_targets([target_id])
            roles = [(id_text(event.lead_unit_id), LEAD)]
            roles += [(id_text(unit), RESPONSIBLE) for unit in event.responsible_unit_ids]
            fresh = [
                unit
                for unit, role in roles
                if self.add_target_unit(target_id, unit, role, target["cycle_id"])
            ]
            self.link_existing(target, fresh, same_cycle=False)
        elif isinstance(event, Target.EffectConfirmed):
            self.effect_confirmed(event, target, position)

    def link_existing(self, target: dict[str, Any], units: list[str], *, same_cycle: bool) -> None:
        """A target set or contracted after some items of its units: link those items too.

        Duties for any of ``units``; with ``same_cycle``, also meeting reports and awards of
        those units in the target's cycle.
        """
        units = list(dict.fromkeys(units))
        self.items_of_units(units)
        for unit in units:
            for item_id, kind, cycle_id in self.unit_items[unit]:
                if kind == "duty" or (same_cycle and cycle_id == target["cycle_id"]):
                    self.link([target["target_id"]], item_id, kind)

    def effect_confirmed(
        self, event: Target.EffectConfirmed, target: dict[str, Any], position: int
    ) -> None:
        item_id = effect_item_id(event)
        self.item_rows([item_id])
        item = self.items.get(item_id)
        detail = {
            "stage": event.stage,
            "method": event.method,
            "unit_id": event.unit_id,
            "result": event.result,
            "evidence": event.evidence,
            "confirmed_at": utc_text(event.effective_time),
        }
        if item is None:
            item = self.new_item(
                item_id,
                "effect",
                position,
                title=f"{event.stage} {event.method.value}",
                status="confirmed",
                cycle_id=target["cycle_id"],
                unit_id=event.unit_id,
                detail=detail,
            )
            self.link([target["target_id"]], item_id, "effect")
        else:
            item["detail"] = jsonable(detail)
            item["status"] = "corrected"
            self.touch(item)
        self.record(item_id, event, position)

    def apply_meeting(
        self,
        event: Meeting.ReportDelivered | Meeting.ScoreCast | Meeting.ReviewCommented,
        position: int,
    ) -> None:
        unit_id = event.unit_id
        meeting_id = id_text(event.originator_id)
        self.meeting_rows([meeting_id])
        meeting = self.meetings.get(meeting_id)
        if meeting is None:
            return
        item_id = meeting_item_id(event.originator_id, unit_id)
        self.item_rows([item_id])
        item = self.items.get(item_id)
        if item is None:
            item = self.new_item(
                item_id,
                "meeting",
                position,
                title=meeting["title"],
                status="reported",
                cycle_id=meeting["cycle_id"],
                unit_id=unit_id,
                detail={
                    "meeting_id": meeting_id,
                    "stage": meeting["stage"],
                    "held_on": meeting["held_on"],
                    "unit_id": unit_id,
                    "reporter_id": None,
                    "scores": {},
                },
            )
            targets = self.targets_applying_to(id_text(unit_id), meeting["cycle_id"])
            self.link(targets, item_id, "meeting")
        if isinstance(event, Meeting.ReportDelivered):
            item["detail"]["reporter_id"] = id_text(event.reporter_id)
        elif isinstance(event, Meeting.ScoreCast):
            item["detail"]["scores"][id_text(event.rater_id)] = str(event.score)
        self.touch(item)
        self.record(item_id, event, position)

    def targets_applying_to(self, unit_id: str, cycle_id: str) -> list[str]:
        self.targets_of_units([unit_id])
        return [
            target
            for target, role, cycle in self.unit_targets[unit_id]
            if role == APPLIES_TO and cycle == cycle_id
        ]

    def problem_found(self, event: Problem.ProblemFound, position: int) -> None:
        if event.target_id is None:
            return
        item = self.new_item(
            id_text(event.originator_id),
            "problem",
            position,
            title=event.title,
            status="open",
            cycle_id=event.cycle_id,
            unit_id=event.unit_id,
            detail={
                "unit_id": event.unit_id,
                "source": event.source,
                "severity": event.severity,
                "shared": event.shared,
                "dispatched_to": None,
                "deadline": None,
                "escalated_to": None,
            },
        )
        self.link([id_text(event.target_id)], item["item_id"], "problem")
        self.record(item["item_id"], event, position)

    def targets_via_problems(self, problem_ids: Iterable[UUID | None]) -> set[str]:
        ids = [id_text(p) for p in problem_ids if p is not None]
        self.links_of(ids)
        return {target for problem in ids for target in self.links[problem]}

    def measure_adopted(self, event: Measure.MeasureAdopted, position: int) -> None:
        targets = self.targets_via_problems(event.problem_ids)
        if event.target_id is not None:
            targets.add(id_text(event.target_id))
        if not targets:
            return
        item = self.new_item(
            id_text(event.originator_id),
            "measure",
            position,
            title=event.title,
            status="adopted",
            cycle_id=event.cycle_id,
            unit_id=event.lead_unit_id,
            detail={
                "deadline": event.deadline,
                "lead_unit_id": event.lead_unit_id,
                "responsible_unit_ids": event.responsible_unit_ids,
                "responsible_leader_id": event.responsible_leader_id,
                "problem_ids": event.problem_ids,
                "target_id": event.target_id,
                "progress": 0,
            },
        )
        self.link(targets, item["item_id"], "measure")
        self.record(item["item_id"], event, position)

    def rectification_ordered(self, event: Rectification.RectificationOrdered, pos: int) -> None:
        targets = self.targets_via_problems([event.problem_id])
        if event.target_id is not None:
            targets.add(id_text(event.target_id))
        if not targets:
            return
        item = self.new_item(
            id_text(event.originator_id),
            "rectification",
            pos,
            title=event.requirement,
            status="ordered",
            cycle_id=event.cycle_id,
            unit_id=event.unit_id,
            detail={
                "unit_id": event.unit_id,
                "deadline": event.deadline,
                "problem_id": event.problem_id,
                "target_id": event.target_id,
                "meeting_id": event.meeting_id,
                "rejections": 0,
            },
        )
        self.link(targets, item["item_id"], "rectification")
        self.record(item["item_id"], event, pos)

    def duty_assigned(self, event: Duty.DutyAssigned, position: int) -> None:
        unit_id = id_text(event.unit_id)
        item = self.new_item(
            id_text(event.originator_id),
            "duty",
            position,
            title=event.tier.value,
            status="active",
            cycle_id=None,
            unit_id=unit_id,
            detail={
                "person_id": event.person_id,
                "unit_id": unit_id,
                "tier": event.tier,
                "effective_from": event.effective_from,
                "effective_to": None,
            },
        )
        self.targets_of_units([unit_id])
        self.link((target for target, _, _ in self.unit_targets[unit_id]), item["item_id"], "duty")
        self.record(item["item_id"], event, position)

    def award_issued(self, event: Award.AwardIssued, position: int) -> None:
        if event.unit_id is None:
            return
        unit_id = id_text(event.unit_id)
        item = self.new_item(
            id_text(event.originator_id),
            "award",
            position,
            title=event.basis,
            status="issued",
            cycle_id=event.cycle_id,
            unit_id=unit_id,
            detail={
                "kind": event.kind,
                "stage": event.stage,
                "unit_id": unit_id,
                "points": event.points,
                "rule": event.rule,
            },
        )
        self.link(
            self.targets_applying_to(unit_id, id_text(event.cycle_id)), item["item_id"], "award"
        )
        self.record(item["item_id"], event, position)

    def item_changed(self, event: LoopEvent, position: int) -> None:
        item_id = id_text(event.originator_id)
        self.item_rows([item_id])
        item = self.items.get(item_id)
        if item is None:
            return
        status = STATUS_CHANGES.get(type(event))
        if status is not None:
            item["status"] = status
        detail = item["detail"]
        if isinstance(event, Problem.ProblemDispatched):
            detail["dispatched_to"] = id_text(event.to_unit_id)
            detail["deadline"] = event.deadline.isoformat()
        elif isinstance(event, Problem.ProblemEscalated):
            detail["escalated_to"] = id_text(event.leader_id)
        elif isinstance(event, Measure.MeasureProgressReported):
            detail["progress"] = event.percent
        elif isinstance(event, Measure.MeasureCompleted):
            detail["progress"] = 100
        elif isinstance(event, Duty.DutyRelieved):
            detail["effective_to"] = event.effective_to.isoformat()
        elif isinstance(event, Rectification.RectificationRejected):
            detail["rejections"] = int(detail.get("rejections", 0)) + 1
        self.touch(item)
        self.record(item_id, event, position)

    # --- writing -----------------------------------------------------------------------------

    def flush(self) -> None:
        cursor = self.cursor
        insert_rows(
            cursor,
            self.dialect,
            TARGETS,
            TARGET_COLUMNS,
            [_row(t, TARGET_COLUMNS) for t in self.dirty_targets.values()],
            "ON CONFLICT (target_id) DO UPDATE SET title = excluded.title, "
            "status = excluded.status, detail = excluded.detail",
        )
        insert_rows(
            cursor,
            self.dialect,
            TARGET_UNITS,
            ("target_id", "unit_id", "role", "cycle_id"),
            self.new_target_units,
            "ON CONFLICT (target_id, unit_id, role) DO NOTHING",
        )
        insert_rows(
            cursor,
            self.dialect,
            MEETINGS,
            ("meeting_id", "cycle_id", "stage", "title", "held_on"),
            self.new_meetings,
            "ON CONFLICT (meeting_id) DO NOTHING",
        )
        insert_rows(
            cursor,
            self.dialect,
            ITEMS,
            ITEM_COLUMNS,
            [_row(i, ITEM_COLUMNS) for i in self.dirty_items.values()],
            "ON CONFLICT (item_id) DO UPDATE SET title = excluded.title, "
            "status = excluded.status, detail = excluded.detail",
        )
        insert_rows(
            cursor,
            self.dialect,
            LINKS,
            ("target_id", "item_id", "kind"),
            self.new_links,
            "ON CONFLICT (target_id, item_id) DO NOTHING",
        )
        insert_rows(
            cursor,
            self.dialect,
            EVENTS,
            ("item_id", "position", "event_type", "actor", "recorded_at", "summary"),
            self.new_events,
        )
        self.dirty_targets.clear()
        self.dirty_items.clear()
        self.new_target_units = []
        self.new_meetings = []
        self.new_links = []
        self.new_events = []


# --- queries ---------------------------------------------------------------------------------


def _event(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "position": int(row["position"]),
        "type": row["event_type"],
        "actor": row["actor"],
        "recorded_at": row["recorded_at"],
        "summary": row["summary"],
    }


def target_trace(db: Database, target_id: UUID) -> dict[str, Any] | None:
    """One target's chain, or None if the read model does not know the target."""
    key = str(target_id)
    with db.reading() as cursor:
        cursor.execute(f"SELECT * FROM {TARGETS} WHERE target_id = %s", [key])
        target = cursor.fetchone()
        if target is None:
            return None
        cursor.execute(
            f"SELECT i.* FROM {LINKS} l JOIN {ITEMS} i ON i.item_id = l.item_id "
            "WHERE l.target_id = %s ORDER BY i.position, i.item_id",
            [key],
        )
        items = cursor.fetchall()
        cursor.execute(f"SELECT * FROM {EVENTS} WHERE item_id = %s ORDER BY position", [key])
        events = cursor.fetchall()
        cursor.execute(
            f"SELECT e.* FROM {LINKS} l JOIN {EVENTS} e ON e.item_id = l.item_id "
            "WHERE l.target_id = %s ORDER BY e.position, e.item_id",
            [key],
        )
        events += cursor.fetchall()
    by_item: dict[str, list[dict[str, Any]]] = {}
    for row in events:
        by_item.setdefault(row["item_id"], []).append(_event(row))
    detail = json.loads(target["detail"])
    trace: dict[str, Any] = {
        "target_id": key,
        "title": target["title"],
        "cycle_id": target["cycle_id"],
        "status": target["status"],
        **{name: detail.get(name) for name in ("scope", "owner_unit_id", "applies_to", "contract")},
        "events": by_item.get(key, []),
    }
    for section in SECTIONS.values():
        trace[section] = []
    for item in items:
        trace[SECTIONS[item["kind"]]].append(
            {
                "id": item["item_id"],
                "title": item["title"],
                "status": item["status"],
                **json.loads(item["detail"]),
                "events": by_item.get(item["item_id"], []),
            }
        )
    return trace
