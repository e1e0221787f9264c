"""The supervision read model (督办): what is open, what is overdue, who answers for it.

Items to supervise, one row each:

- **measure** — adopted until completed or cancelled; its lead unit; its responsible leader.
- **problem** — listed once dispatched (下达, with a deadline) or escalated to the leader in
  charge, until resolved (reopening lists it again); its unit is the unit it was dispatched to
  (else where it was found); its responsible person is the leader it was escalated to.
- **rectification** — ordered until verified (a rejection reopens it).
- **missing_effect** — not stored: for each active target, each unit it applies to and each
  stage that ended before the as-of date, with no confirmed effect. The model keeps the
  (target, unit, stage) confirmations and the stages of each cycle; the query finds the gaps.

Where an item names no responsible person (a rectification, a problem not escalated, a missing
effect), the unit's current first responsible person answers for it, if it has one.

Whether an item is overdue is not stored: it depends on the request's as-of date (a deadline
before that day, item not finished). A unit ancestry table (each unit with itself and every
ancestor) makes "this unit's subtree" one indexed lookup.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Any, ClassVar
from uuid import UUID

from closedloop.domain.cycles import Cycle
from closedloop.domain.measures import Measure
from closedloop.domain.problems import Problem
from closedloop.domain.rectifications import Rectification
from closedloop.domain.targets import Target
from closedloop.domain.units import Unit
from closedloop.projections.base import Positioned, Projection
from closedloop.projections.responsibility import (
    MAX_TREE_DEPTH,
    TableChanges,
    insert_dicts,
    text,
)
from closedloop.projections.rows import delete_in, id_text
from closedloop.store.sql import Cursor, Database

PREFIX = "supervision"
UNITS = f"{PREFIX}_units"
ANCESTRY = f"{PREFIX}_unit_ancestry"
STAGES = f"{PREFIX}_stages"
TARGETS = f"{PREFIX}_targets"
TARGET_UNITS = f"{PREFIX}_target_units"
EFFECTS = f"{PREFIX}_effects"
ITEMS = f"{PREFIX}_items"

KINDS = ("measure", "problem", "rectification", "missing_effect")
MAX_LIMIT = 10_000

# Status changes of stored items: (status, finished).
STATUS_CHANGES: dict[type[Any], tuple[str, int]] = {
    Measure.MeasureCompleted: ("completed", 1),
    Measure.MeasureCancelled: ("cancelled", 1),
    Problem.ProblemResolved: ("resolved", 1),
    Problem.ProblemReopened: ("reopened", 0),
    Rectification.RectificationCompleted: ("completed", 0),
    Rectification.RectificationVerified: ("verified", 1),
    Rectification.RectificationRejected: ("ordered", 0),
}

RELEVANT: frozenset[type[Any]] = frozenset(
    {
        Unit.UnitRegistered,
        Unit.UnitMoved,
        Unit.FirstResponsibleDesignated,
        Unit.FirstResponsibleReleased,
        Cycle.CycleOpened,
        Target.TargetSet,
        Target.TargetRevised,
        Target.TargetWithdrawn,
        Target.EffectConfirmed,
        Measure.MeasureAdopted,
        Problem.ProblemFound,
        Problem.ProblemDispatched,
        Problem.ProblemEscalated,
        Rectification.RectificationOrdered,
        *STATUS_CHANGES,
    }
)


class Supervision(Projection):
    name: ClassVar[str] = PREFIX
    tables: ClassVar[tuple[str, ...]] = (
        UNITS,
        ANCESTRY,
        STAGES,
        TARGETS,
        TARGET_UNITS,
        EFFECTS,
        ITEMS,
    )

    def create_tables(self, cursor: Cursor, dialect: str) -> None:
        statements = (
            f"CREATE TABLE IF NOT EXISTS {UNITS} (id TEXT PRIMARY KEY, parent_id TEXT, "
            "kind TEXT NOT NULL, first_responsible_id TEXT, position BIGINT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {ANCESTRY} (unit_id TEXT NOT NULL, "
            "ancestor_id TEXT NOT NULL, depth INTEGER NOT NULL, "
            "PRIMARY KEY (unit_id, ancestor_id))",
            f"CREATE INDEX IF NOT EXISTS {ANCESTRY}_ancestor_idx ON {ANCESTRY} (ancestor_id)",
            f"CREATE TABLE IF NOT EXISTS {STAGES} (cycle_id TEXT NOT NULL, stage TEXT NOT NULL, "
            "starts_on TEXT NOT NULL, ends_on TEXT NOT NULL, PRIMARY KEY (cycle_id, stage))",
            f"CREATE TABLE IF NOT EXISTS {TARGETS} (id TEXT PRIMARY KEY, cycle_id TEXT NOT NULL, "
            "title TEXT NOT NULL, withdrawn INTEGER NOT NULL, position BIGINT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {TARGET_UNITS} (target_id TEXT NOT NULL, "
            "unit_id TEXT NOT NULL, PRIMARY KEY (target_id, unit_id))",
            f"CREATE INDEX IF NOT EXISTS {TARGET_UNITS}_unit_idx ON {TARGET_UNITS} (unit_id)",
            f"CREATE TABLE IF NOT EXISTS {EFFECTS} (target_id TEXT NOT NULL, "
            "unit_id TEXT NOT NULL, stage TEXT NOT NULL, position BIGINT NOT NULL, "
            "PRIMARY KEY (target_id, unit_id, stage))",
            f"CREATE TABLE IF NOT EXISTS {ITEMS} (id TEXT PRIMARY KEY, kind TEXT NOT NULL, "
            "cycle_id TEXT NOT NULL, unit_id TEXT NOT NULL, title TEXT NOT NULL, "
            "responsible_person_id TEXT, status TEXT NOT NULL, deadline TEXT, "
            "finished INTEGER NOT NULL, listed INTEGER NOT NULL, position BIGINT NOT NULL)",
            # Open items by deadline serve every query; a unit's subtree goes through unit_id.
            f"CREATE INDEX IF NOT EXISTS {ITEMS}_open_idx ON {ITEMS} (listed, finished, deadline)",
            f"CREATE INDEX IF NOT EXISTS {ITEMS}_unit_idx ON {ITEMS} (unit_id)",
        )
        for statement in statements:
            cursor.execute(statement)

    def apply_batch(self, cursor: Cursor, events: Sequence[Positioned]) -> None:
        units = TableChanges(UNITS, "id")
        stages = TableChanges(STAGES, "cycle_id")
        targets = TableChanges(TARGETS, "id")
        target_units = TableChanges(TARGET_UNITS, "target_id")
        effects = TableChanges(EFFECTS, "target_id, unit_id, stage", on_conflict_ignore=True)
        items = TableChanges(ITEMS, "id")
        tree = _TreeChanges()
        for position, event in events:
            if type(event) not in RELEVANT:
                continue
            key = id_text(event.originator_id)
            change = STATUS_CHANGES.get(type(event))
            if change is not None:  # the commonest relevant events: first, not last, in line
                status, finished = change
                items.patch(key, status=status, finished=finished)
            elif isinstance(event, Unit.UnitRegistered):
                units.create(
                    key,
                    {
                        "id": key,
                        "parent_id": text(event.parent_id),
                        "kind": event.kind.value,
                        "first_responsible_id": None,
                        "position": position,
                    },
                )
                tree.place(cursor, key, text(event.parent_id), moved=False)
            elif isinstance(event, Unit.UnitMoved):
                units.patch(key, parent_id=id_text(event.parent_id))
                tree.place(cursor, key, id_text(event.parent_id), moved=True)
            elif isinstance(event, Unit.FirstResponsibleDesignated):
                units.patch(key, first_responsible_id=id_text(event.person_id))
            elif isinstance(event, Unit.FirstResponsibleReleased):
                units.patch(key, first_responsible_id=None)
            elif isinstance(event, Cycle.CycleOpened):
                for stage in event.stages:
                    stages.create(
                        (key, stage.key),
                        {
                            "cycle_id": key,
                            "stage": stage.key,
                            "starts_on": stage.starts_on.isoformat(),
                            "ends_on": stage.ends_on.isoformat(),
                        },
                    )
            elif isinstance(event, Target.TargetSet):
                targets.create(
                    key,
                    {
                        "id": key,
                        "cycle_id": id_text(event.cycle_id),
                        "title": event.title,
                        "withdrawn": 0,
                        "position": position,
                    },
                )
                for unit in dict.fromkeys(event.applies_to):
                    target_units.create(
                        (key, id_text(unit)), {"target_id": key, "unit_id": id_text(unit)}
                    )
            elif isinstance(event, Target.TargetRevised):
                if event.title:
                    targets.patch(key, title=event.title)
            elif isinstance(event, Target.TargetWithdrawn):
                targets.patch(key, withdrawn=1)
            elif isinstance(event, Target.EffectConfirmed):
                effects.create(
                    (key, id_text(event.unit_id), event.stage),
                    {
                        "target_id": key,
                        "unit_id": id_text(event.unit_id),
                        "stage": event.stage,
                        "position": position,
                    },
                )
            elif isinstance(event, Measure.MeasureAdopted):
                items.create(
                    key,
                    _item(
                        key,
                        "measure",
                        event.cycle_id,
                        event.lead_unit_id,
                        event.title,
                        "adopted",
                        position,
                        deadline=event.deadline,
                        responsible=event.responsible_leader_id,
                        listed=1,
                    ),
                )
            elif isinstance(event, Problem.ProblemFound):
                items.create(
                    key,
                    _item(
                        key,
                        "problem",
                        event.cycle_id,
                        event.unit_id,
                        event.title,
                        "open",
                        position,
                        listed=0,
                    ),
                )
            elif isinstance(event, Problem.ProblemDispatched):
                items.patch(
                    key,
                    listed=1,
                    status="dispatched",
                    unit_id=id_text(event.to_unit_id),
                    deadline=event.deadline.isoformat(),
                )
            elif isinstance(event, Problem.ProblemEscalated):
                items.patch(key, listed=1, responsible_person_id=id_text(event.leader_id))
            elif isinstance(event, Rectification.RectificationOrdered):
                items.create(
                    key,
                    _item(
                        key,
                        "rectification",
                        event.cycle_id,
                        event.unit_id,
                        event.requirement,
                        "ordered",
                        position,
                        deadline=event.deadline,
                        listed=1,
                    ),
                )
        for changes in (units, stages, targets, target_units, effects, items):
            changes.flush(cursor, self.dialect)
        tree.flush(cursor, self.dialect)


def _item(
    item_id: str,
    kind: str,
    cycle_id: UUID,
    unit_id: UUID,
    title: str,
    status: str,
    position: int,
    *,
    listed: int,
    deadline: date | None = None,
    responsible: UUID | None = None,
) -> dict[str, Any]:
    return {
        "id": item_id,
        "kind": kind,
        "cycle_id": id_text(cycle_id),
        "unit_id": id_text(unit_id),
        "title": title,
        "responsible_person_id": text(responsible),
        "status": status,
        "deadline": deadline.isoformat() if deadline else None,
        "finished": 0,
        "listed": listed,
        "position": position,
    }


class _TreeChanges:
    """The unit tree during one batch: loaded on the first placement, ancestry rewritten once for
    every unit registered in the batch and every unit under one that moved."""

    def __init__(self) -> None:
        self.parents: dict[str, str | None] | None = None
        self.registered: list[str] = []
        self.moved: list[str] = []

    def place(self, cursor: Cursor, unit_id: str, parent_id: str | None, *, moved: bool) -> None:
        if self.parents is None:
            cursor.execute(f"SELECT id, parent_id FROM {UNITS}")
            self.parents = {row["id"]: row["parent_id"] for row in cursor.fetchall()}
        self.parents[unit_id] = parent_id
        (self.moved if moved else self.registered).append(unit_id)

    def flush(self, cursor: Cursor, dialect: str) -> None:
        if self.parents is None:
            return
        parents = self.parents
        children: dict[str, list[str]] = defaultdict(list)
        for unit, parent in parents.items():
            if parent is not None:
                children[parent].append(unit)
        dirty = dict.fromkeys(self.registered)
        stack = list(self.moved)
        while stack:
            unit = stack.pop()
            if unit not in dirty:
                dirty[unit] = None
                stack.extend(children.get(unit, ()))
        units = sorted(dirty)
        delete_in(cursor, dialect, ANCESTRY, "unit_id", units)
        rows: list[dict[str, Any]] = []
        for unit in units:
            lineage = [unit]
            while (parent := parents.get(lineage[-1])) is not None:
                if parent in lineage or len(lineage) > MAX_TREE_DEPTH:
                    break
                lineage.append(parent)
            rows.extend(
                {"unit_id": unit, "ancestor_id": ancestor, "depth": depth}
                for depth, ancestor in enumerate(lineage)
            )
        insert_dicts(cursor, dialect, ANCESTRY, rows)


# --- queries -------------------------------------------------------------------------------


def supervision_items(
    db: Database,
    *,
    as_of: date,
    cycle_id: UUID | None = None,
    unit_id: UUID | None = None,
    person_id: UUID | None = None,
    kind: str | None = None,
    overdue: bool | None = None,
    due_before: date | None = None,
    due_after: date | None = None,
    include_finished: bool = False,
    limit: int = 1000,
) -> dict[str, Any]:
    """Items to supervise on ``as_of``, earliest deadline first (no deadline last).

    ``unit_id`` selects the unit's subtree; ``person_id`` the items that person answers for;
    ``due_after``/``due_before`` bound the deadline (both inclusive); ``overdue`` selects items
    whose deadline lies before ``as_of`` and that are not finished (or the others). Missing
    effects count the stages that ended before ``as_of``; their deadline is the stage's end.
    Returns ``items`` (at most ``limit``), ``counts`` by kind and ``total`` of all that match.
    """
    day = as_of.isoformat()
    responsible = "COALESCE(i.responsible_person_id, u.first_responsible_id)"
    clauses = ["i.listed = 1"]
    params: list[Any] = []
    if not include_finished:
        clauses.append("i.finished = 0")
    if kind is not None:
        clauses.append("i.kind = %s")
        params.append(kind)
    shared, shared_params = _shared_filters(
        ("i.cycle_id", "i.unit_id", "i.deadline"), cycle_id, unit_id, due_before, due_after
    )
    clauses += shared
    params += shared_params
    if person_id is not None:
        clauses.append(f"{responsible} = %s")
        params.append(str(person_id))
    if overdue is True:
        clauses.append("i.finished = 0 AND i.deadline IS NOT NULL AND i.deadline < %s")
        params.append(day)
    elif overdue is False:
        clauses.append("(i.finished = 1 OR i.deadline IS NULL OR i.deadline >= %s)")
        params.append(day)
    stored_from = (
        f"FROM {ITEMS} i LEFT JOIN {UNITS} u ON u.id = i.unit_id WHERE {' AND '.join(clauses)}"
    )

    missing_wanted = kind in (None, "missing_effect") and overdue is not False
    m_clauses = ["t.withdrawn = 0", "s.ends_on < %s", "e.target_id IS NULL"]
    m_params: list[Any] = [day]
    shared, shared_params = _shared_filters(
        ("t.cycle_id", "tu.unit_id", "s.ends_on"), cycle_id, unit_id, due_before, due_after
    )
    m_clauses += shared
    m_params += shared_params
    if person_id is not None:
        m_clauses.append("u.first_responsible_id = %s")
        m_params.append(str(person_id))
    missing_from = (
        f"FROM {TARGETS} t JOIN {TARGET_UNITS} tu ON tu.target_id = t.id "
        f"JOIN {STAGES} s ON s.cycle_id = t.cycle_id "
        f"LEFT JOIN {EFFECTS} e ON e.target_id = t.id AND e.unit_id = tu.unit_id "
        "AND e.stage = s.stage "
        f"LEFT JOIN {UNITS} u ON u.id = tu.unit_id WHERE {' AND '.join(m_clauses)}"
    )

    counts = dict.fromkeys(KINDS, 0)
    found: list[dict[str, Any]] = []
    with db.reading() as cursor:
        if kind != "missing_effect":
            cursor.execute(f"SELECT i.kind, COUNT(*) AS n {stored_from} GROUP BY i.kind", params)
            for row in cursor.fetchall():
                counts[row["kind"]] = int(row["n"])
            cursor.execute(
                f"SELECT i.*, {responsible} AS responsible {stored_from} "
                "ORDER BY (i.deadline IS NULL), i.deadline, i.kind, i.id LIMIT %s",
                [*params, limit],
            )
            found += [_stored(row, day) for row in cursor.fetchall()]
        if missing_wanted:
            cursor.execute(f"SELECT COUNT(*) AS n {missing_from}", m_params)
            counted = cursor.fetchone()
            counts["missing_effect"] = int(counted["n"]) if counted else 0
            cursor.execute(
                "SELECT t.id, t.title, t.cycle_id, tu.unit_id, s.stage, s.ends_on, "
                f"u.first_responsible_id {missing_from} "
                "ORDER BY s.ends_on, t.id, s.stage, tu.unit_id LIMIT %s",
                [*m_params, limit],
            )
            found += [_missing(row) for row in cursor.fetchall()]
    found.sort(key=_order)
    total = sum(counts.values())
    return {"items": found[:limit], "counts": counts, "total": total, "truncated": total > limit}


def _shared_filters(
    columns: tuple[str, str, str],
    cycle_id: UUID | None,
    unit_id: UUID | None,
    due_before: date | None,
    due_after: date | None,
) -> tuple[list[str], list[Any]]:
    """Filters on (cycle, unit, deadline) ``columns``: cycle, unit subtree, due window."""
    cycle_column, unit_column, deadline_column = columns
    clauses: list[str] = []
    params: list[Any] = []
    if cycle_id is not None:
        clauses.append(f"{cycle_column} = %s")
        params.append(str(cycle_id))
    if unit_id is not None:
        clauses.append(
            f"{unit_column} IN (SELECT a.unit_id FROM {ANCESTRY} a WHERE a.ancestor_id = %s)"
        )
        params.append(str(unit_id))
    if due_after is not None:
        clauses.append(f"{deadline_column} >= %s")
        params.append(due_after.isoformat())
    if due_before is not None:
        clauses.append(f"{deadline_column} <= %s")
        params.append(due_before.isoformat())
    return clauses, params


def _stored(row: dict[str, Any], day: str) -> dict[str, Any]:
    status = row["status"]
    if row["kind"] == "problem" and status == "open" and row["responsible_person_id"]:
        status = "escalated"
    finished = bool(row["finished"])
    deadline = row["deadline"]
    return {
        "kind": row["kind"],
        "id": row["id"],
        "title": row["title"],
        "cycle_id": row["cycle_id"],
        "unit_id": row["unit_id"],
        "stage": None,
        "responsible_person_id": row["responsible"],
        "status": status,
        "deadline": deadline,
        "finished": finished,
        "overdue": not finished and deadline is not None and deadline < day,
    }


def _missing(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "missing_effect",
        "id": row["id"],
        "title": row["title"],
        "cycle_id": row["cycle_id"],
        "unit_id": row["unit_id"],
        "stage": row["stage"],
        "responsible_person_id": row["first_responsible_id"],
        "status": "missing",
        "deadline": row["ends_on"],
        "finished": False,
        "overdue": True,
    }


def _order(item: dict[str, Any]) -> tuple[Any, ...]:
    deadline = item["deadline"]
    return (
        deadline is None,
        deadline or "",
        item["kind"],
        item["id"],
        item["stage"] or "",
        item["unit_id"],
    )
