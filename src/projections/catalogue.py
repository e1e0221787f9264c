"""The catalogue: one row per aggregate, for the API's paged, filtered lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from closedloop.domain.settlement import Settlement
from closedloop.domain.targets import Target
from closedloop.domain.units import Unit
from closedloop.projections.base import Positioned, Projection
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
    Settlement.StageSettled: lambda e: (
        "settlement",
        f"{e.stage} settlement, round {e.round_number}",
        e.cycle_id,
        None,
        "settled",
    ),
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
    Settlement.RankingPublished: "published",
    Settlement.SettlementReopened: "reopened",
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

    def apply_batch(self, cursor: Cursor, events: Sequence[Positioned]) -> None:
        """Fold the batch into rows in memory, then write each changed row once."""
        rows: dict[str, dict[str, Any]] = {}
        existing = self._existing_rows(cursor, events)
        for position, event in events:
            if isinstance(event, PRIVATE_EVENTS):
                continue
            key = str(event.originator_id)
            creation = CREATIONS.get(type(event))
            if creation is not None:
                rows[key] = _new_row(event, position, *creation(event))
                continue
            row = rows.get(key) or existing.get(key)
            if row is None:
                raise LookupError(f"{type(event).__name__} for uncatalogued aggregate {key}")
            rows[key] = _changed(row, event, position)
        if rows:
            cursor.executemany(UPSERT, [[row[c] for c in COLUMNS] for row in rows.values()])

    @staticmethod
    def _existing_rows(cursor: Cursor, events: Sequence[Positioned]) -> dict[str, dict[str, Any]]:
        wanted = sorted({str(e.originator_id) for _, e in events if type(e) not in CREATIONS})
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"SELECT * FROM {TABLE} WHERE id IN ({marks})", chunk)
            found.update((row["id"], row) for row in cursor.fetchall())
        return found


COLUMNS = (
    "id",
    "kind",
    "title",
    "cycle_id",
    "unit_id",
    "status",
    "version",
    "created_position",
    "position",
    "created_at",
    "updated_at",
)
UPSERT = (
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "id")
)


def _new_row(
    event: LoopEvent,
    position: int,
    kind: str,
    title: str,
    cycle_id: UUID | None,
    unit_id: UUID | None,
    status: str,
) -> dict[str, Any]:
    recorded = event.timestamp.isoformat()
    return {
        "id": str(event.originator_id),
        "kind": kind,
        "title": title,
        "cycle_id": _text(cycle_id),
        "unit_id": _text(unit_id),
        "status": status,
        "version": event.originator_version,
        "created_position": position,
        "position": position,
        "created_at": recorded,
        "updated_at": recorded,
    }


def _changed(row: dict[str, Any], event: LoopEvent, position: int) -> dict[str, Any]:
    changed = {
        **row,
        "version": event.originator_version,
        "position": position,
        "updated_at": event.timestamp.isoformat(),
    }
    if type(event) in STATUS_CHANGES:
        changed["status"] = STATUS_CHANGES[type(event)]
    if type(event) in UNIT_CHANGES:
        changed["unit_id"] = str(UNIT_CHANGES[type(event)](event))
    if isinstance(event, Target.TargetRevised) and event.title:
        changed["title"] = event.title
    return changed


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
