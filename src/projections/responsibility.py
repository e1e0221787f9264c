"""The responsibility matrix read model: per target: lead, responsible units and leader, duty
holders by tier; per person: duties; as of a date."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from closedloop.projections.base import Positioned, Projection
from closedloop.store.sql import Cursor


class ResponsibilityMatrix(Projection):
    name: ClassVar[str] = "responsibility_matrix"
    tables: ClassVar[tuple[str, ...]] = ()

    def create_tables(self, cursor: Cursor, dialect: str) -> None:
        return None

    def apply_batch(self, cursor: Cursor, events: Sequence[Positioned]) -> None:
        return None
