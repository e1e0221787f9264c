"""The audit index read model: every event by position, aggregate, type, actor, units
concerned, times and reason — the discipline inspector's query surface.

One row per event (``audit_index_events``), one row per unit it concerns
(``audit_index_units``), and the units each aggregate concerns (``audit_index_aggregates``), so
that an event whose payload names no unit (a problem resolved, a measure completed) is indexed
under the units of its aggregate: the problem's unit and the units it was dispatched to, a
measure's lead and responsible units, a duty's unit, and so on. (For a unit the table keeps the
unit and its parent, so a move names the old parent as well as the new one; for a person, their
current unit, so an award to a person concerns the unit they belong to when it is issued.)

Times are stored as UTC ISO strings of fixed width, so text order is time order on both stores.
The payload is kept as compact JSON for display (never the token digest of an access token).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar, Literal
from uuid import UUID

from eventsourcing.domain import Aggregate

from closedloop.domain.awards import Award
from closedloop.domain.base import LoopEvent
from closedloop.domain.catalogue import event_classes
from closedloop.domain.people import Person
from closedloop.domain.problems import Problem
from closedloop.domain.service import METADATA_FIELDS
from closedloop.domain.targets import Target
from closedloop.domain.units import Unit
from closedloop.projections.base import Positioned, Projection
from closedloop.projections.rows import insert_rows, select_in
from closedloop.store.sql import Cursor, Database

EVENTS = "audit_index_events"
UNITS = "audit_index_units"
AGGREGATES = "audit_index_aggregates"

# Payload fields that name the units an event is about, in the order they are listed.
UNIT_FIELDS = (
    "unit_id",
    "owner_unit_id",
    "applies_to",
    "lead_unit_id",
    "responsible_unit_ids",
    "to_unit_id",
)
EVENT_COLUMNS = (
    "position",
    "aggregate_id",
    "aggregate_type",
    "event_type",
    "version",
    "actor",
    "correlation_id",
    "reason",
    "recorded_at",
    "effective_at",
    "data",
)
# Events that add units to their aggregate: later events concern these units too.
ACCUMULATING: tuple[type[Any], ...] = (Problem.ProblemDispatched, Target.TargetContracted)
# Never stored, not even in the index: a token's digest is as good as a password hash.
PRIVATE_FIELDS = frozenset({"token_digest"})
UNIT_EVENTS = tuple(event_classes(Unit))

TimeAxis = Literal["recorded", "effective"]


def utc_text(moment: datetime) -> str:
    """Fixed-width UTC ISO text: sorts as time sorts."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


_AS_IS = frozenset({str, int, bool, float, type(None)})
_AS_TEXT = frozenset({UUID, Decimal})


def jsonable(value: Any) -> Any:
    """JSON-ready: Decimals as strings (never floats), enums as values, tuples as lists."""
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind in _AS_TEXT or isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    return value


def payload_of(event: LoopEvent) -> dict[str, Any]:
    """The event's own fields (no metadata, no secrets such as a token's digest), JSON-ready."""
    return {
        name: jsonable(value)
        for name, value in vars(event).items()
        if name not in METADATA_FIELDS and name not in PRIVATE_FIELDS
    }


def aggregate_type_of(event: LoopEvent) -> str:
    """``Problem`` for ``Problem.ProblemResolved``: events are nested in their aggregate."""
    qualname = type(event).__qualname__
    return qualname.split(".")[0] if "." in qualname else type(event).__name__


def payload_units(event: LoopEvent) -> list[str]:
    found: list[str] = []
    for name in _unit_fields(type(event)):
        value = getattr(event, name, None)
        values = value if isinstance(value, list | tuple) else [value]
        found.extend(str(item) for item in values if isinstance(item, UUID))
    return list(dict.fromkeys(found))


@functools.cache
def _unit_fields(event_class: type[LoopEvent]) -> tuple[str, ...]:
    declared = {f.name for f in dataclasses.fields(event_class)}
    return tuple(name for name in UNIT_FIELDS if name in declared)


def _distinct(*groups: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(unit for group in groups for unit in group if unit))


class AuditIndex(Projection):
    name: ClassVar[str] = "audit_index"
    tables: ClassVar[tuple[str, ...]] = (EVENTS, UNITS, AGGREGATES)

    def create_tables(self, cursor: Cursor, dialect: str) -> None:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {EVENTS} ("
            "position BIGINT PRIMARY KEY, aggregate_id TEXT NOT NULL, "
            "aggregate_type TEXT NOT NULL, event_type TEXT NOT NULL, version INTEGER NOT NULL, "
            "actor TEXT NOT NULL, correlation_id TEXT NOT NULL, reason TEXT, "
            "recorded_at TEXT NOT NULL, effective_at TEXT NOT NULL, data TEXT NOT NULL)"
        )
        for columns in (
            "actor, position",
            "event_type, position",
            "aggregate_id, position",
            "recorded_at",
            "effective_at",
        ):
            index = f"{EVENTS}_{columns.replace(', ', '_')}_idx"
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {EVENTS} ({columns})")
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {UNITS} (position BIGINT NOT NULL, "
            "unit_id TEXT NOT NULL, ordinal INTEGER NOT NULL, PRIMARY KEY (position, unit_id))"
        )
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {UNITS}_unit_position_idx ON {UNITS} (unit_id, position)"
        )
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {AGGREGATES} "
            "(aggregate_id TEXT PRIMARY KEY, units TEXT NOT NULL)"
        )

    def apply_batch(self, cursor: Cursor, events: Sequence[Positioned]) -> None:
        known = self._load_units(cursor, self.dialect, _ids_needed(events))
        changed: dict[str, list[str]] = {}
        event_rows: list[list[Any]] = []
        unit_rows: list[list[Any]] = []
        for position, event in events:
            aggregate_id = str(event.originator_id)
            units, stored = _units_for(event, known.get(aggregate_id), known)
            if stored is not None:
                known[aggregate_id] = changed[aggregate_id] = stored
            event_rows.append(
                [
                    position,
                    aggregate_id,
                    aggregate_type_of(event),
                    type(event).__name__,
                    event.originator_version,
                    event.actor,
                    event.correlation_id,
                    event.reason,
                    utc_text(event.timestamp),
                    utc_text(event.effective_time),
                    json.dumps(
                        payload_of(event), ensure_ascii=False, sort_keys=True, separators=(",", ":")
                    ),
                ]
            )
            unit_rows.extend([position, unit, ordinal] for ordinal, unit in enumerate(units))
        dialect = self.dialect
        insert_rows(cursor, dialect, EVENTS, EVENT_COLUMNS, event_rows)
        insert_rows(cursor, dialect, UNITS, ("position", "unit_id", "ordinal"), unit_rows)
        insert_rows(
            cursor,
            dialect,
            AGGREGATES,
            ("aggregate_id", "units"),
            [[key, " ".join(units)] for key, units in changed.items()],
            "ON CONFLICT (aggregate_id) DO UPDATE SET units = excluded.units",
        )

    @staticmethod
    def _load_units(cursor: Cursor, dialect: str, ids: list[str]) -> dict[str, list[str]]:
        statement = f"SELECT aggregate_id, units FROM {AGGREGATES}"
        rows = select_in(cursor, dialect, statement, "aggregate_id", ids)
        return {row["aggregate_id"]: row["units"].split() for row in rows}


def _ids_needed(events: Sequence[Positioned]) -> list[str]:
    """Aggregates whose recorded units this batch may read: the events' own, awarded people."""
    ids: dict[str, None] = {}
    for _, event in events:
        ids[str(event.originator_id)] = None
        if isinstance(event, Award.AwardIssued) and event.person_id is not None:
            ids[str(event.person_id)] = None
    return list(ids)


def _units_for(
    event: LoopEvent, recorded: list[str] | None, known: dict[str, list[str]]
) -> tuple[list[str], list[str] | None]:
    """The units ``event`` concerns, and what its aggregate's units become (None: unchanged).

    ``recorded``: the units recorded for the event's aggregate so far. Units: the unit itself
    (and its old and new parent when registered or moved); a person's unit (both units when
    transferred); the units the payload names; else the units recorded for the aggregate.
    """
    recorded = recorded or []
    self_id = str(event.originator_id)
    named = payload_units(event)
    if isinstance(event, UNIT_EVENTS):
        parent = getattr(event, "parent_id", None)
        if isinstance(event, Unit.UnitRegistered):
            units = _distinct([self_id], [str(parent) if parent else None])
            return units, units
        if isinstance(event, Unit.UnitMoved):
            units = _distinct([self_id], recorded[1:], [str(parent)])
            return units, _distinct([self_id], [str(parent)])
        return [self_id], None
    if isinstance(event, Person.PersonTransferred):
        return _distinct(recorded, named), named
    if isinstance(event, Award.AwardIssued) and event.person_id is not None and not named:
        named = list(known.get(str(event.person_id), []))
        return named, named
    if isinstance(event, Aggregate.Created):
        return named, named
    if isinstance(event, ACCUMULATING):
        units = _distinct(recorded, named)
        return units, units
    return (named or list(recorded)), None


# --- queries ---------------------------------------------------------------------------------


def query_events(
    db: Database,
    *,
    actor: str | None = None,
    unit_id: UUID | None = None,
    event_type: str | None = None,
    aggregate_id: UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    time: TimeAxis = "recorded",
    after: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """One page of indexed events in position order, after the cursor ``after``.

    ``since`` is inclusive and ``until`` exclusive, on the recorded or the effective time.
    """
    clauses = ["e.position > %s"]
    params: list[Any] = [after]
    join = ""
    if unit_id is not None:
        join = f" JOIN {UNITS} u ON u.position = e.position AND u.unit_id = %s"
        params.insert(0, str(unit_id))
    for column, value in (
        ("e.actor", actor),
        ("e.event_type", event_type),
        ("e.aggregate_id", str(aggregate_id) if aggregate_id else None),
    ):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    column = "e.recorded_at" if time == "recorded" else "e.effective_at"
    if since is not None:
        clauses.append(f"{column} >= %s")
        params.append(utc_text(since))
    if until is not None:
        clauses.append(f"{column} < %s")
        params.append(utc_text(until))
    with db.reading() as cursor:
        cursor.execute(
            f"SELECT e.* FROM {EVENTS} e{join} WHERE {' AND '.join(clauses)} "
            "ORDER BY e.position LIMIT %s",
            [*params, limit],
        )
        rows = cursor.fetchall()
        units: dict[int, list[str]] = {}
        if rows:
            positions = [row["position"] for row in rows]
            marks = ", ".join(["%s"] * len(positions))
            cursor.execute(
                f"SELECT position, unit_id FROM {UNITS} WHERE position IN ({marks}) "
                "ORDER BY position, ordinal",
                positions,
            )
            for row in cursor.fetchall():
                units.setdefault(int(row["position"]), []).append(row["unit_id"])
    return [
        {
            "position": int(row["position"]),
            "aggregate_id": row["aggregate_id"],
            "aggregate_type": row["aggregate_type"],
            "type": row["event_type"],
            "version": int(row["version"]),
            "actor": row["actor"],
            "correlation_id": row["correlation_id"],
            "reason": row["reason"],
            "recorded_at": row["recorded_at"],
            "effective_at": row["effective_at"],
            "units": units.get(int(row["position"]), []),
            "data": json.loads(row["data"]),
        }
        for row in rows
    ]
