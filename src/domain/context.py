"""Who is acting, and in which request: metadata every event picks up as it is created.

The caller (an HTTP request, the CLI, the demo loader) enters :func:`acting_as`; events created
inside it record that actor and correlation id. Outside it no event can be created at all, so no
fact is ever stored without someone answerable for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from closedloop.domain.errors import DomainError


@dataclass(frozen=True)
class CommandContext:
    actor: str
    correlation_id: str


_current: ContextVar[CommandContext | None] = ContextVar("closedloop_command", default=None)


class NoActor(DomainError):
    """An event was about to be recorded with nobody answerable for it."""

    rule = "EveryEventHasAnActor"


@contextmanager
def acting_as(actor: str, correlation_id: str | None = None) -> Iterator[CommandContext]:
    """Record events created inside this block as done by ``actor``."""
    if not actor.strip():
        raise NoActor("the actor must be a non-blank principal id")
    context = CommandContext(actor=actor, correlation_id=correlation_id or uuid.uuid4().hex)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def current_context() -> CommandContext:
    context = _current.get()
    if context is None:
        raise NoActor("no actor is set: wrap the command in closedloop.domain.context.acting_as()")
    return context


def current_actor() -> str:
    return current_context().actor


def current_correlation_id() -> str:
    return current_context().correlation_id
