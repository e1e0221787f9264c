"""What every closedloop event and aggregate shares."""

from __future__ import annotations

from dataclasses import field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate

from closedloop.domain.context import current_actor, current_correlation_id
from closedloop.domain.errors import InvalidValue, ReasonRequired


class LoopEvent(Aggregate.Event):
    """Base of every event: the payload plus who, why, in which request, and since when.

    ``actor`` and ``correlation_id`` come from the command context (never from the payload, so
    domain code cannot record a fact in someone else's name). ``reason`` and ``effective_at``
    are given by the command where they apply; ``timestamp`` is the recorded time.
    """

    class_version: ClassVar[int] = 1

    actor: str = field(init=False, default_factory=current_actor)
    correlation_id: str = field(init=False, default_factory=current_correlation_id)
    reason: str | None = field(default=None, kw_only=True)
    effective_at: datetime | None = field(default=None, kw_only=True)

    @property
    def effective_time(self) -> datetime:
        """When the fact is true in the world: its own time, else when it was recorded."""
        return self.effective_at or self.timestamp


class LoopAggregate(Aggregate):
    """Base of every closedloop aggregate."""

    class Event(LoopEvent):
        pass

    class Created(Event, Aggregate.Created):
        pass


def require_reason(reason: str | None, *, action: str) -> str:
    if reason is None or not reason.strip():
        raise ReasonRequired(action=action)
    return reason.strip()


def require_text(value: str, *, field_name: str, max_length: int = 2000) -> str:
    text = value.strip()
    if not text:
        raise InvalidValue(field=field_name, rule="must not be blank")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        raise InvalidValue(field=field_name, rule="no control characters")
    if len(text) > max_length:
        raise InvalidValue(field=field_name, rule=f"at most {max_length} characters")
    return text


def require_positive(value: Decimal, *, field_name: str) -> Decimal:
    if not value.is_finite() or value <= 0:
        raise InvalidValue(field=field_name, rule="must be a positive number", value=value)
    return value


def require_aware(moment: datetime | None, *, field_name: str) -> datetime | None:
    """Times must carry a time zone, so "before" and "after" mean the same everywhere."""
    if moment is not None and moment.utcoffset() is None:
        raise InvalidValue(field=field_name, rule="must include a time zone offset", value=moment)
    return moment


def utc_now() -> datetime:
    return datetime.now(UTC)


def day_of(moment: datetime | date) -> date:
    return moment.date() if isinstance(moment, datetime) else moment


def enum_values(enum_cls: type[Enum]) -> list[Any]:
    return [member.value for member in enum_cls]
