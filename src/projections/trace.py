"""The trace read model: one target's chain: problems, measures, duties, meeting scores,
rectifications, effects, awards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from closedloop.projections.base import Positioned, Projection
from closedloop.store.sql import Cursor


class Trace(Projection):
    name: ClassVar[str] = "trace"
    tables: ClassVar[tuple[str, ...]] = ()

    def create_tables(self, cursor: Cursor, dialect: str) -> None:
        return None

    def apply_batch(self, cursor: Cursor, events: Sequence[Positioned]) -> None:
        return None
