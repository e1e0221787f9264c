"""The responsibility matrix read model (确认责任): who carries each target, and who holds which
duty, as of a date.

Per target: its cycle, title, the contract (包抓: lead unit, responsible units, responsible
leader) in force on the date, and the duty holders by tier for the units concerned. Per person:
their duties with the interval each was held. Everything needed to answer "as of a date" is kept
as intervals or dated history: duties with ``effective_from``/``effective_to``, every contract and
every move of a unit with the day it took effect (``event.effective_time``, in the event's own
offset), the day each target was set and withdrawn. The query picks what was true on the day.

Dates are ISO strings (``YYYY-MM-DD``), so ``<=`` compares them on both stores.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any, ClassVar
from uuid import UUID

from closedloop.domain.base import LoopEvent
from closedloop.domain.duties import Duty, DutyTier
from closedloop.domain.people import Person
from closedloop.domain.targets import Target
from closedloop.domain.units import Unit
from closedloop.projections.base import Positioned, Projection
from closedloop.projections.rows import id_text, insert_rows, select_in
from closedloop.store.sql import Cursor, Database

PREFIX = "responsibility_matrix"
UNITS = f"{PREFIX}_units"
UNIT_PARENTS = f"{PREFIX}_unit_parents"
PEOPLE = f"{PREFIX}_people"
TARGETS = f"{PREFIX}_targets"
CONTRACTS = f"{PREFIX}_contracts"
DUTIES = f"{PREFIX}_duties"

# Walks up the unit tree stop here: a deeper tree means the stored tree is already broken.
MAX_TREE_DEPTH = 64

TIERS = tuple(tier.value for tier in DutyTier)


# --- batch writing, shared with the supervision read model ------------------------------------


class TableChanges:
    """Creations and column patches of one table, coalesced over a batch, written in bulk.

    Patches to a row created in the same batch fold into the creation; later patches of a column
    overwrite earlier ones, so applying events in order and flushing once gives the same rows as
    writing event by event. Rows patched but created in an earlier batch are read once
    (``key IN (...)``) and written back with one multi-row upsert; ``key`` is then the table's
    one-column primary key. With ``on_conflict_ignore`` a creation of an existing row (``key``
    names the primary key columns) is a no-op: the first one stays.
    """

    def __init__(self, table: str, key: str, *, on_conflict_ignore: bool = False) -> None:
        self.table = table
        self.key = key
        self.on_conflict_ignore = on_conflict_ignore
        self.created: dict[Any, dict[str, Any]] = {}
        self.patched: dict[Any, dict[str, Any]] = {}

    def create(self, key: Any, row: dict[str, Any]) -> None:
        if self.on_conflict_ignore and key in self.created:
            return
        self.created[key] = row

    def patch(self, key: Any, **columns: Any) -> None:
        if key in self.created:
            self.created[key].update(columns)
        else:
            self.patched.setdefault(key, {}).update(columns)

    def flush(self, cursor: Cursor, dialect: str) -> None:
        conflict = f"ON CONFLICT ({self.key}) DO NOTHING" if self.on_conflict_ignore else ""
        insert_dicts(cursor, dialect, self.table, list(self.created.values()), conflict)
        if self.patched:
            statement = f"SELECT * FROM {self.table}"
            stored = select_in(cursor, dialect, statement, self.key, sorted(self.patched))
            merged = [{**row, **self.patched[row[self.key]]} for row in stored]
            if merged:
                setters = ", ".join(f"{c} = excluded.{c}" for c in merged[0] if c != self.key)
                upsert = f"ON CONFLICT ({self.key}) DO UPDATE SET {setters}"
                insert_dicts(cursor, dialect, self.table, merged, upsert)
        self.created.clear()
        self.patched.clear()


def insert_dicts(
    cursor: Cursor, dialect: str, table: str, rows: Sequence[dict[str, Any]], tail: str = ""
) -> None:
    """Insert ``rows`` (column -> value) in one statement per set of columns."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_columns[tuple(row)].append(row)
    for columns, group in by_columns.items():
        values = [[row[column] for column in columns] for row in group]
        insert_rows(cursor, dialect, table, columns, values, tail)


def text(value: UUID | None) -> str | None:
    return id_text(value) if value is not None else None


def effective_day(event: LoopEvent) -> str:
    """The day a fact took effect, in the offset it was given in (UTC for recorded times)."""
    return event.effective_time.date().isoformat()


def today() -> date:
    """Today where the server is, but never behind UTC, so a fact just recorded is in force."""
    return max(date.today(), datetime.now(UTC).date())


# --- the projection ----------------------------------------------------------------------------

RELEVANT: frozenset[type[LoopEvent]] = frozenset(
    {
        Unit.UnitRegistered,
        Unit.UnitMoved,
        Person.PersonRegistered,
        Person.PersonTransferred,
        Target.TargetSet,
        Target.TargetRevised,
        Target.TargetWithdrawn,
        Target.TargetContracted,
        Duty.DutyAssigned,
        Duty.DutyRelieved,
    }
)


class ResponsibilityMatrix(Projection):
    name: ClassVar[str] = PREFIX
    tables: ClassVar[tuple[str, ...]] = (UNITS, UNIT_PARENTS, PEOPLE, TARGETS, CONTRACTS, DUTIES)

    def create_tables(self, cursor: Cursor, dialect: str) -> None:
        statements = (
            f"CREATE TABLE IF NOT EXISTS {UNITS} (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
            "kind TEXT NOT NULL, parent_id TEXT, position BIGINT NOT NULL)",
            # One row per placement: the registration (version 1) and every move.
            f"CREATE TABLE IF NOT EXISTS {UNIT_PARENTS} (unit_id TEXT NOT NULL, "
            "version INTEGER NOT NULL, parent_id TEXT, effective_on TEXT NOT NULL, "
            "position BIGINT NOT NULL, PRIMARY KEY (unit_id, version))",
            f"CREATE TABLE IF NOT EXISTS {PEOPLE} (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
            "unit_id TEXT NOT NULL, title TEXT NOT NULL, position BIGINT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {TARGETS} (id TEXT PRIMARY KEY, cycle_id TEXT NOT NULL, "
            "scope TEXT NOT NULL, title TEXT NOT NULL, owner_unit_id TEXT, "
            "set_on TEXT NOT NULL, withdrawn_on TEXT, position BIGINT NOT NULL)",
            # Every contract, with the day it took effect: the one in force on a day is the
            # latest that took effect by then.
            f"CREATE TABLE IF NOT EXISTS {CONTRACTS} (target_id TEXT NOT NULL, "
            "version INTEGER NOT NULL, effective_at TEXT NOT NULL, effective_on TEXT NOT NULL, "
            "lead_unit_id TEXT NOT NULL, responsible_unit_ids TEXT NOT NULL, "
            "responsible_leader_id TEXT NOT NULL, reason TEXT, position BIGINT NOT NULL, "
            "PRIMARY KEY (target_id, version))",
            f"CREATE TABLE IF NOT EXISTS {DUTIES} (id TEXT PRIMARY KEY, person_id TEXT NOT NULL, "
            "unit_id TEXT NOT NULL, tier TEXT NOT NULL, effective_from TEXT NOT NULL, "
            "effective_to TEXT, position BIGINT NOT NULL, relieved_position BIGINT)",
            f"CREATE INDEX IF NOT EXISTS {TARGETS}_cycle_idx ON {TARGETS} (cycle_id, position)",
            f"CREATE INDEX IF NOT EXISTS {DUTIES}_person_idx ON {DUTIES} (person_id)",
            f"CREATE INDEX IF NOT EXISTS {DUTIES}_from_idx ON {DUTIES} (effective_from)",
        )
        for statement in statements:
            cursor.execute(statement)

    def apply_batch(self, cursor: Cursor, events: Sequence[Positioned]) -> None:
        units = TableChanges(UNITS, "id")
        parents = TableChanges(UNIT_PARENTS, "unit_id")
        people = TableChanges(PEOPLE, "id")
        targets = TableChanges(TARGETS, "id")
        contracts = TableChanges(CONTRACTS, "target_id")
        duties = TableChanges(DUTIES, "id")
        for position, event in events:
            if type(event) not in RELEVANT:
                continue
            key = id_text(event.originator_id)
            if isinstance(event, Unit.UnitRegistered | Unit.UnitMoved):
                if isinstance(event, Unit.UnitRegistered):
                    row = {"id": key, "name": event.name, "kind": event.kind.value}
                    units.create(key, {**row, "parent_id": None, "position": position})
                units.patch(key, parent_id=text(event.parent_id))
                parents.create(
                    (key, event.originator_version),
                    {
                        "unit_id": key,
                        "version": event.originator_version,
                        "parent_id": text(event.parent_id),
                        "effective_on": effective_day(event),
                        "position": position,
                    },
                )
            elif isinstance(event, Person.PersonRegistered):
                people.create(
                    key,
                    {
                        "id": key,
                        "name": event.name,
                        "unit_id": id_text(event.unit_id),
                        "title": event.title,
                        "position": position,
                    },
                )
            elif isinstance(event, Person.PersonTransferred):
                people.patch(key, unit_id=id_text(event.unit_id))
            elif isinstance(event, Target.TargetSet):
                targets.create(
                    key,
                    {
                        "id": key,
                        "cycle_id": id_text(event.cycle_id),
                        "scope": event.scope.value,
                        "title": event.title,
                        "owner_unit_id": text(event.owner_unit_id),
                        "set_on": effective_day(event),
                        "withdrawn_on": None,
                        "position": position,
                    },
                )
            elif isinstance(event, Target.TargetRevised):
                if event.title:
                    targets.patch(key, title=event.title)
            elif isinstance(event, Target.TargetWithdrawn):
                targets.patch(key, withdrawn_on=effective_day(event))
            elif isinstance(event, Target.TargetContracted):
                contracts.create(
                    (key, event.originator_version),
                    {
                        "target_id": key,
                        "version": event.originator_version,
                        "effective_at": event.effective_time.isoformat(),
                        "effective_on": effective_day(event),
                        "lead_unit_id": id_text(event.lead_unit_id),
                        "responsible_unit_ids": json.dumps(
                            [str(unit) for unit in event.responsible_unit_ids]
                        ),
                        "responsible_leader_id": id_text(event.responsible_leader_id),
                        "reason": event.reason,
                        "position": position,
                    },
                )
            elif isinstance(event, Duty.DutyAssigned):
                duties.create(
                    key,
                    {
                        "id": key,
                        "person_id": id_text(event.person_id),
                        "unit_id": id_text(event.unit_id),
                        "tier": event.tier.value,
                        "effective_from": event.effective_from.isoformat(),
                        "effective_to": None,
                        "position": position,
                        "relieved_position": None,
                    },
                )
            elif isinstance(event, Duty.DutyRelieved):
                duties.patch(
                    key,
                    effective_to=event.effective_to.isoformat(),
                    relieved_position=position,
                )
        for changes in (units, parents, people, targets, contracts, duties):
            changes.flush(cursor, self.dialect)


# --- queries -------------------------------------------------------------------------------


class UnitTree:
    """Names, kinds and parents of every unit, placed as they stood on one day."""

    def __init__(self, cursor: Cursor, day: str) -> None:
        cursor.execute(f"SELECT id, name, kind FROM {UNITS}")
        self.units = {row["id"]: row for row in cursor.fetchall()}
        cursor.execute(
            f"SELECT unit_id, parent_id, effective_on FROM {UNIT_PARENTS} ORDER BY unit_id, version"
        )
        self.parents: dict[str, str | None] = {}
        for row in cursor.fetchall():
            # The registration places a unit even before its recorded day; a move counts from
            # the day it took effect.
            if row["unit_id"] not in self.parents or row["effective_on"] <= day:
                self.parents[row["unit_id"]] = row["parent_id"]

    def name(self, unit_id: str | None) -> str | None:
        unit = self.units.get(unit_id) if unit_id else None
        return unit["name"] if unit else None

    def ref(self, unit_id: str | None) -> dict[str, Any] | None:
        return {"id": unit_id, "name": self.name(unit_id)} if unit_id else None

    def ancestors(self, unit_id: str) -> list[str]:
        """The unit's parent, grandparent, … up to the root, nearest first."""
        found: list[str] = []
        current = self.parents.get(unit_id)
        while current is not None and current not in found and len(found) < MAX_TREE_DEPTH:
            found.append(current)
            current = self.parents.get(current)
        return found


def _names(cursor: Cursor, dialect: str, person_ids: Iterable[str]) -> dict[str, str]:
    rows = select_in(cursor, dialect, f"SELECT id, name FROM {PEOPLE}", "id", sorted(person_ids))
    return {row["id"]: row["name"] for row in rows}


def _active_duties(cursor: Cursor, day: str) -> dict[str, list[dict[str, Any]]]:
    cursor.execute(
        f"SELECT id, person_id, unit_id, tier, effective_from FROM {DUTIES} "
        "WHERE effective_from <= %s AND (effective_to IS NULL OR effective_to >= %s)",
        [day, day],
    )
    by_unit: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(cursor.fetchall(), key=lambda r: (r["effective_from"], r["id"])):
        by_unit[row["unit_id"]].append(row)
    return by_unit


def responsibility_matrix(db: Database, *, cycle_id: UUID, as_of: date) -> list[dict[str, Any]]:
    """Each target of ``cycle_id`` in force on ``as_of``: its contract then, its duty holders.

    A target is listed from the day it was set until the day before it was withdrawn. Its
    contract is the latest one that had taken effect by ``as_of`` (none: lead unit, leader and
    duty holders are empty). Duty holders are the duties active on ``as_of``: first responsible
    persons of the lead and responsible units; overall, direct and specific responsible persons
    held for those units or for their committee, general branch and branch ancestors (the tree
    as it stood on ``as_of``).
    """
    day = as_of.isoformat()
    with db.reading() as cursor:
        cursor.execute(
            f"SELECT id, title, cycle_id FROM {TARGETS} WHERE cycle_id = %s AND set_on <= %s "
            "AND (withdrawn_on IS NULL OR withdrawn_on > %s) ORDER BY position",
            [str(cycle_id), day, day],
        )
        targets = cursor.fetchall()
        cursor.execute(
            f"SELECT c.target_id, c.lead_unit_id, c.responsible_unit_ids, "
            f"c.responsible_leader_id FROM {CONTRACTS} c JOIN {TARGETS} t ON t.id = c.target_id "
            "WHERE t.cycle_id = %s AND c.effective_on <= %s ORDER BY c.target_id, c.version",
            [str(cycle_id), day],
        )
        contracts = {row["target_id"]: row for row in cursor.fetchall()}  # the latest wins
        tree = UnitTree(cursor, day)
        duties = _active_duties(cursor, day)
        wanted = {c["responsible_leader_id"] for c in contracts.values()}
        wanted.update(d["person_id"] for held in duties.values() for d in held)
        names = _names(cursor, db.dialect, wanted)

    def holder(duty: dict[str, Any]) -> dict[str, Any]:
        return {
            "person_id": duty["person_id"],
            "name": names.get(duty["person_id"]),
            "unit_id": duty["unit_id"],
            "unit_name": tree.name(duty["unit_id"]),
            "duty_id": duty["id"],
        }

    result = []
    for target in targets:
        contract = contracts.get(target["id"])
        holders: dict[str, list[dict[str, Any]]] = {tier: [] for tier in TIERS}
        entry: dict[str, Any] = {
            "target_id": target["id"],
            "title": target["title"],
            "cycle_id": target["cycle_id"],
            "contracted": contract is not None,
            "lead_unit": None,
            "responsible_units": [],
            "responsible_leader": None,
            "duty_holders": holders,
        }
        result.append(entry)
        if contract is None:
            continue
        lead = contract["lead_unit_id"]
        responsible: list[str] = json.loads(contract["responsible_unit_ids"])
        leader = contract["responsible_leader_id"]
        entry["lead_unit"] = tree.ref(lead)
        entry["responsible_units"] = [tree.ref(unit) for unit in responsible]
        entry["responsible_leader"] = {"id": leader, "name": names.get(leader)}
        concerned = list(dict.fromkeys([lead, *responsible]))
        above = [a for unit in concerned for a in tree.ancestors(unit) if a not in concerned]
        seen: set[str] = set()
        for unit in concerned + list(dict.fromkeys(above)):
            for duty in duties.get(unit, ()):
                own = unit in concerned
                if duty["id"] in seen or (duty["tier"] == "first_responsible" and not own):
                    continue
                seen.add(duty["id"])
                holders[duty["tier"]].append(holder(duty))
    return result


def person_duties(db: Database, *, person_id: UUID, as_of: date) -> dict[str, Any] | None:
    """A person and every duty they had begun to hold by ``as_of`` (None: no such person).

    ``active`` says whether the duty was held on ``as_of``; ``effective_to`` is the day it
    ended, as recorded.
    """
    day = as_of.isoformat()
    with db.reading() as cursor:
        cursor.execute(
            f"SELECT id, name, unit_id, title FROM {PEOPLE} WHERE id = %s", [str(person_id)]
        )
        person = cursor.fetchone()
        if person is None:
            return None
        cursor.execute(
            f"SELECT d.id, d.unit_id, u.name AS unit_name, d.tier, d.effective_from, "
            f"d.effective_to FROM {DUTIES} d LEFT JOIN {UNITS} u ON u.id = d.unit_id "
            "WHERE d.person_id = %s AND d.effective_from <= %s "
            "ORDER BY d.effective_from, d.position",
            [str(person_id), day],
        )
        duties = cursor.fetchall()
    return {
        "person_id": person["id"],
        "name": person["name"],
        "unit_id": person["unit_id"],
        "title": person["title"],
        "duties": [
            {
                "duty_id": duty["id"],
                "unit_id": duty["unit_id"],
                "unit_name": duty["unit_name"],
                "tier": duty["tier"],
                "effective_from": duty["effective_from"],
                "effective_to": duty["effective_to"],
                "active": duty["effective_to"] is None or duty["effective_to"] >= day,
            }
            for duty in duties
        ],
    }
