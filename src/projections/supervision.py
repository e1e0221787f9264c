"""The supervision read model: open and overdue measures, dispatched and escalated problems,
rectifications, stages without effects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from closedloop.projections.base import Positioned, Projection
from closedloop.store.sql import Cursor


class Supervision(Projection):
    name: ClassVar[str] = "supervision"
    tables: ClassVar[tuple[str, ...]] = ()

    def create_tables(self, cursor: Cursor, dialect: str) -> None:
        return None

    def apply_batch(self, cursor: Cursor, events: Sequence[Positioned]) -> None:
        return None
