"""Projection machinery: read models that follow the notification log exactly once.

A projection writes its rows and its new position in the same transaction, guarded by the
position it started from. If two runners process the same batch (two workers, a restart racing
an old thread), the second one's guard fails and its transaction rolls back: rows are never
doubled or lost. A failing event stops the projection where it is; it is never skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from closedloop.domain.base import LoopEvent
from closedloop.domain.service import ClosedLoop
from closedloop.store.sql import Cursor, Database

log = logging.getLogger(__name__)

POSITIONS_TABLE = "closedloop_projection_positions"


class Projection(ABC):
    """One read model: its tables, how an event changes them, how to empty them for a rebuild."""

    name: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]

    @abstractmethod
    def create_tables(self, cursor: Cursor, dialect: str) -> None: ...

    @abstractmethod
    def apply(self, cursor: Cursor, event: LoopEvent, position: int) -> None: ...


class PositionGuardFailed(Exception):
    """Another runner advanced this projection first; this batch was rolled back."""


class ProjectionFailed(Exception):
    def __init__(self, projection: str, position: int, error: BaseException) -> None:
        self.projection = projection
        self.position = position
        super().__init__(f"projection {projection} stopped at position {position}: {error!r}")


def create_positions_table(db: Database) -> None:
    with db.transaction() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {POSITIONS_TABLE} "
            "(projection TEXT PRIMARY KEY, position BIGINT NOT NULL)"
        )


def projection_position(db: Database, name: str) -> int:
    row = db.query_one(f"SELECT position FROM {POSITIONS_TABLE} WHERE projection = %s", [name])
    return int(row["position"]) if row else 0


class ProjectionRunner:
    """Feeds projections from the notification log in batches, once, in order."""

    def __init__(
        self,
        app: ClosedLoop,
        db: Database,
        projections: Sequence[Projection],
        *,
        batch_size: int = 500,
        poll_interval: float = 0.2,
    ) -> None:
        self.app = app
        self.db = db
        self.projections = list(projections)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.failure: ProjectionFailed | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def setup(self) -> None:
        create_positions_table(self.db)
        with self.db.transaction() as cursor:
            for projection in self.projections:
                projection.create_tables(cursor, self.db.dialect)
                cursor.execute(
                    f"INSERT INTO {POSITIONS_TABLE} (projection, position) VALUES (%s, 0) "
                    "ON CONFLICT (projection) DO NOTHING",
                    [projection.name],
                )

    def position(self, name: str) -> int:
        return projection_position(self.db, name)

    def reset(self, projection: Projection) -> None:
        """Empty the projection's tables and rewind it to zero, in one transaction."""
        with self.db.transaction() as cursor:
            for table in projection.tables:
                cursor.execute(f"DELETE FROM {table}")
            cursor.execute(
                f"UPDATE {POSITIONS_TABLE} SET position = 0 WHERE projection = %s",
                [projection.name],
            )

    def catch_up(self) -> int:
        """Process everything recorded so far; returns the number of events applied."""
        return sum(self._catch_up_one(projection) for projection in self.projections)

    def _catch_up_one(self, projection: Projection) -> int:
        applied = 0
        while True:
            start = self.position(projection.name)
            notifications = self.app.recorder.select_notifications(
                start=start + 1, limit=self.batch_size
            )
            if not notifications:
                return applied
            try:
                self._apply_batch(projection, start, notifications)
            except PositionGuardFailed:
                continue
            applied += len(notifications)

    def _apply_batch(
        self, projection: Projection, start: int, notifications: Sequence[Any]
    ) -> None:
        end = notifications[-1].id
        with self.db.transaction() as cursor:
            # Claim the batch first: this locks the position row, so a racing runner waits
            # here and then finds the position moved, instead of colliding on our rows.
            cursor.execute(
                f"UPDATE {POSITIONS_TABLE} SET position = %s "
                "WHERE projection = %s AND position = %s",
                [end, projection.name, start],
            )
            if cursor.rowcount != 1:
                raise PositionGuardFailed(projection.name)
            for notification in notifications:
                event = self.app.mapper.to_domain_event(notification)
                try:
                    if isinstance(event, LoopEvent):
                        projection.apply(cursor, event, notification.id)
                except Exception as error:
                    raise ProjectionFailed(projection.name, notification.id, error) from error

    def wait(self, name: str, min_position: int, timeout: float) -> bool:
        """Whether projection ``name`` reached ``min_position`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        while self.position(name) < min_position:
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        return True

    # --- background thread ----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="closedloop-projections", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.catch_up()
            except ProjectionFailed as failure:
                self.failure = failure
                log.error("%s", failure)
                return
            except Exception:
                log.exception("projection runner: transient error, retrying")
            self._stopping.wait(self.poll_interval)
