"""Deadlines as facts: ``DeadlineMissed`` is recorded once when an item's deadline passes while
it is unfinished, so the record shows when the breach was noticed, not a status recomputed later.

A deadline passes at midnight after its day in the settlement time zone. Measures, rectifications
and dispatched problems each record it on themselves (``Measure.DeadlineMissed`` and so on), once
per deadline: a problem dispatched again with a new deadline can miss that one too.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from uuid import UUID

from closedloop.domain.errors import RuleViolation


class DeadlineNotPassed(RuleViolation):
    """A deadline is missed only once it has passed (midnight after its day)."""


class DeadlineMissedOnlyOnce(RuleViolation):
    """An item misses a given deadline once; the breach is already on record."""


class FinishedItemMissesNoDeadline(RuleViolation):
    """A finished (completed, cancelled, resolved) item misses no deadline."""


class NoDeadlineToMiss(RuleViolation):
    """The item has no deadline (a problem not yet dispatched)."""


def deadline_passes_at(deadline: date, zone: tzinfo) -> datetime:
    return datetime.combine(deadline + timedelta(days=1), time(0), tzinfo=zone)


def require_missed(
    *,
    item: UUID,
    deadline: date | None,
    finished: bool,
    already_missed: tuple[date, ...],
    now: datetime,
    zone: tzinfo,
) -> date:
    """The deadline the item has just missed, or the rule it would break."""
    if deadline is None:
        raise NoDeadlineToMiss(item=item)
    if finished:
        raise FinishedItemMissesNoDeadline(item=item, deadline=deadline)
    if deadline in already_missed:
        raise DeadlineMissedOnlyOnce(item=item, deadline=deadline)
    passes_at = deadline_passes_at(deadline, zone)
    if now < passes_at:
        raise DeadlineNotPassed(item=item, deadline=deadline, passes_at=passes_at.isoformat())
    return deadline
