"""The audit index read model: every event by position, aggregate, type, actor, units
concerned, times and reason."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from closedloop.projections.base import Positioned, Projection
from closedloop.store.sql import Cursor


class AuditIndex(Projection):
    name: ClassVar[str] = "audit_index"
    tables: ClassVar[tuple[str, ...]] = ()

    def create_tables(self, cursor: Cursor, dialect: str) -> None:
        return None

    def apply_batch(self, cursor: Cursor, events: Sequence[Positioned]) -> None:
        return None
