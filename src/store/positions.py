"""Which notification position each event of an aggregate was recorded at."""

from __future__ import annotations

from uuid import UUID

from closedloop.store.sql import Database


def event_positions(db: Database, events_table: str, aggregate_id: UUID) -> dict[int, int]:
    """``{version: position}`` for one aggregate, read from the event table itself."""
    if db.dialect == "sqlite":
        position, key = "rowid", aggregate_id.hex
    else:
        position, key = "notification_id", str(aggregate_id)
    rows = db.query(
        f"SELECT originator_version AS version, {position} AS position "
        f"FROM {events_table} WHERE originator_id = %s",
        [key],
    )
    return {int(row["version"]): int(row["position"]) for row in rows}
