"""Candidates for ``DeadlineMissed``, read from the supervision read model (read only).

The read model lists every measure, dispatched problem and rectification with its deadline and
whether it is finished, indexed by (listed, finished, deadline), so "unfinished with a deadline
before today" is one indexed query per kind instead of a replay of the log. It does not know
which breaches are already on record; the aggregates do, and refuse a second one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from uuid import UUID

from closedloop.projections.supervision import supervision_items
from closedloop.store.sql import Database

KINDS = ("measure", "problem", "rectification")
PAGE = 5000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OverdueItem:
    kind: str
    id: UUID
    deadline: date

    @property
    def key(self) -> tuple[UUID, date]:
        return (self.id, self.deadline)


def overdue_items(db: Database, *, as_of: date) -> list[OverdueItem]:
    """Unfinished items whose deadline lies before ``as_of`` (so it passed at the midnight that
    began ``as_of``), earliest deadline first."""
    found: dict[tuple[UUID, date], OverdueItem] = {}
    for kind in KINDS:
        due_after: date | None = None
        while True:
            page = supervision_items(
                db, as_of=as_of, kind=kind, overdue=True, due_after=due_after, limit=PAGE
            )
            items = [
                OverdueItem(kind, UUID(row["id"]), date.fromisoformat(row["deadline"]))
                for row in page["items"]
            ]
            fresh = [item for item in items if item.key not in found]
            found.update((item.key, item) for item in fresh)
            # Pages continue from the last deadline seen (inclusive, hence the de-duplication);
            # a page adding nothing new means one deadline holds more than a page: stop there.
            if not page["truncated"]:
                break
            if not fresh:
                log.warning(
                    "more than %d overdue %ss share one deadline: the rest wait for a later run",
                    PAGE,
                    kind,
                )
                break
            due_after = max(item.deadline for item in items)
    return sorted(found.values(), key=lambda item: (item.deadline, item.kind, str(item.id)))
