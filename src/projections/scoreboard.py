"""The scoreboard read model: per cycle, stage and unit: result, process and meeting
components, total and rank."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from closedloop.projections.base import Positioned, Projection
from closedloop.store.sql import Cursor


class Scoreboard(Projection):
    name: ClassVar[str] = "scoreboard"
    tables: ClassVar[tuple[str, ...]] = ()

    def create_tables(self, cursor: Cursor, dialect: str) -> None:
        return None

    def apply_batch(self, cursor: Cursor, events: Sequence[Positioned]) -> None:
        return None
