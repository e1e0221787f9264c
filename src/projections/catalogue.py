"""The catalogue: one row per aggregate, for the API's paged, filtered lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar
from uuid import UUID

from closedloop.domain.access import AccessToken
from closedloop.domain.awards import Award
from closedloop.domain.base import LoopEvent
from closedloop.domain.cycles import Cycle
from closedloop.domain.duties import Duty
from closedloop.domain.measures import Measure
from closedloop.domain.meetings import Meeting
from closedloop.domain.people import Person
from closedloop.domain.problems import Problem
from closedloop.domain.rectifications import Rectification
from closedloop.domain.targets import Target
from closedloop.domain.units import Unit
from closedloop.projections.base import Projection
from closedloop.store.sql import Cursor

TABLE = "catalogue_items"

# kind, title, cycle, unit, initial status, taken from a creation event.
Creation = tuple[str, str, UUID | None, UUID | None, str]

CREATIONS: dict[type[Any], Callable[[Any], Creation]] = {
    Unit.UnitRegistered: lambda e: ("unit", e.name, None, e.parent_id, e.kind.value),
    Person.PersonRegistered: lambda e: ("person", e.name, None, e.unit_id, "active"),
    Cycle.CycleOpened: lambda e: ("cycle", e.name, e.originator_id, None, "open"),
    Target.TargetSet: lambda e: ("target", e.title, e.cycle_id, e.owner_unit_id, "active"),
    Problem.ProblemFound: lambda e: ("problem", e.title, e.cycle_id, e.unit_id, "open"),
    Measure.MeasureAdopted: lambda e: ("measure", e.title, e.cycle_id, e.lead_unit_id, "adopted"),
    Duty.DutyAssigned: lambda e: ("duty", e.tier.value, None, e.unit_id, "active"),
    Meeting.MeetingConvened: lambda e: ("meeting", e.title, e.cycle_id, None, "convened"),
    Rectification.RectificationOrdered: lambda e: (
        "rectification",
        e.requirement,
        e.cycle_id,
        e.unit_id,
        "ordered",
    ),
    Award.AwardIssued: lambda e: ("award", e.basis, e.cycle_id, e.unit_id, "issued"),
}

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

UNIT_CHANGES: dict[type[Any], Callable[[Any], UUID]] = {
    Unit.UnitMoved: lambda e: e.parent_id,
    Person.PersonTransferred: lambda e: e.unit_id,
}

# Tokens are not listed: who holds which token is for admins, not for the catalogue.
PRIVATE_EVENTS = (AccessToken.Event,)


class Catalogue(Projection):
    name: ClassVar[str] = "catalogue"
    tables: ClassVar[tuple[str, ...]] = (TABLE,)

    def create_tables(self, cursor: Cursor, dialect: str) -> None:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            "id TEXT PRIMARY KEY, kind TEXT NOT NULL, title TEXT NOT NULL, cycle_id TEXT, "
            "unit_id TEXT, status TEXT NOT NULL, version INTEGER NOT NULL, "
            "created_position BIGINT NOT NULL, position BIGINT NOT NULL, "
            "created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
        )
        for columns in (
            "kind, created_position",
            "kind, cycle_id",
            "kind, unit_id",
            "kind, status",
        ):
            index = f"{TABLE}_{columns.replace(', ', '_')}_idx"
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {TABLE} ({columns})")

    def apply(self, cursor: Cursor, event: LoopEvent, position: int) -> None:
        if isinstance(event, PRIVATE_EVENTS):
            return
        creation = CREATIONS.get(type(event))
        if creation is not None:
            self._insert(cursor, event, position, *creation(event))
            return
        assignments = {
            "version": event.originator_version,
            "position": position,
            "updated_at": event.timestamp.isoformat(),
        }
        if type(event) in STATUS_CHANGES:
            assignments["status"] = STATUS_CHANGES[type(event)]
        if type(event) in UNIT_CHANGES:
            assignments["unit_id"] = str(UNIT_CHANGES[type(event)](event))
        title = getattr(event, "title", None) if isinstance(event, Target.TargetRevised) else None
        if title:
            assignments["title"] = title
        setters = ", ".join(f"{column} = %s" for column in assignments)
        cursor.execute(
            f"UPDATE {TABLE} SET {setters} WHERE id = %s",
            [*assignments.values(), str(event.originator_id)],
        )

    @staticmethod
    def _insert(
        cursor: Cursor,
        event: LoopEvent,
        position: int,
        kind: str,
        title: str,
        cycle_id: UUID | None,
        unit_id: UUID | None,
        status: str,
    ) -> None:
        cursor.execute(
            f"INSERT INTO {TABLE} (id, kind, title, cycle_id, unit_id, status, version, "
            "created_position, position, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                str(event.originator_id),
                kind,
                title,
                _text(cycle_id),
                _text(unit_id),
                status,
                event.originator_version,
                position,
                position,
                event.timestamp.isoformat(),
                event.timestamp.isoformat(),
            ],
        )


def _text(value: UUID | None) -> str | None:
    return str(value) if value is not None else None


def list_items(
    db: Any,
    *,
    kind: str,
    cycle_id: UUID | None = None,
    unit_id: UUID | None = None,
    status: str | None = None,
    after: int = 0,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """One page of ``kind`` rows in creation order, after the cursor ``after``."""
    clauses = ["kind = %s", "created_position > %s"]
    params: list[Any] = [kind, after]
    for column, value in (("cycle_id", cycle_id), ("unit_id", unit_id), ("status", status)):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(str(value))
    rows: list[dict[str, Any]] = db.query(
        f"SELECT * FROM {TABLE} WHERE {' AND '.join(clauses)} ORDER BY created_position LIMIT %s",
        [*params, limit],
    )
    return rows
