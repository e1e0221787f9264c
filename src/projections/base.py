"""Projection machinery: read models that follow the notification log exactly once.

A projection writes its rows and its new position in the same transaction, and claims the batch
first by moving its position from where it started. If two runners process the same batch (two
workers, a restart racing an old thread), the second one finds the position moved and rolls
back: rows are never doubled or lost. A failing event stops that projection where it is (it is
never skipped); the others go on.

Events are read and decoded once per batch and handed to every projection that needs them;
projections apply a whole batch at a time, so they can read and write their rows in bulk. All
the projections' shares of a batch commit together, each in a savepoint of its own.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, NamedTuple
from uuid import UUID

from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, Mapper

from closedloop.domain.base import LoopEvent
from closedloop.domain.service import ClosedLoop
from closedloop.store.sql import Cursor, Database

log = logging.getLogger(__name__)

POSITIONS_TABLE = "closedloop_projection_positions"


class Positioned(NamedTuple):
    position: int
    event: LoopEvent


class Projection(ABC):
    """One read model: its tables, how a batch of events changes them."""

    name: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]
    # The SQL dialect of the database the rows go to ("sqlite" or "postgres"): the runner
    # sets it, so bulk statements are chosen without looking at the cursor.
    dialect: str = "sqlite"

    @abstractmethod
    def create_tables(self, cursor: Cursor, dialect: str) -> None: ...

    def apply_batch(self, cursor: Cursor, events: Sequence[Positioned]) -> None:
        """Apply events in order. Override to read and write rows in bulk."""
        for position, event in events:
            try:
                self.apply(cursor, event, position)
            except Exception as error:
                raise ProjectionFailed(self.name, position, error) from error

    def apply(self, cursor: Cursor, event: LoopEvent, position: int) -> None:
        raise NotImplementedError(f"{type(self).__name__} implements neither apply nor apply_batch")


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


def _claim(cursor: Cursor, name: str, start: int, end: int) -> None:
    # Locks the position row: a racing runner waits here, then finds the position moved.
    cursor.execute(
        f"UPDATE {POSITIONS_TABLE} SET position = %s WHERE projection = %s AND position = %s",
        [end, name, start],
    )
    if cursor.rowcount != 1:
        raise PositionGuardFailed(name)


class ProjectionRunner:
    """Feeds projections from the notification log in batches, once, in order."""

    def __init__(
        self,
        app: ClosedLoop,
        db: Database,
        projections: Sequence[Projection],
        *,
        batch_size: int = 1000,
        poll_interval: float = 0.2,
    ) -> None:
        self.app = app
        self.db = db
        self.projections = list(projections)
        for projection in self.projections:
            projection.dialect = db.dialect
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.failures: dict[str, ProjectionFailed] = {}
        self.mapper = _sharing_mapper(app.mapper)
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

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

    def projection(self, name: str) -> Projection:
        for projection in self.projections:
            if projection.name == name:
                return projection
        raise KeyError(name)

    def position(self, name: str) -> int:
        return projection_position(self.db, name)

    def positions(self) -> dict[str, int]:
        rows = self.db.query(f"SELECT projection, position FROM {POSITIONS_TABLE}")
        known = {row["projection"]: int(row["position"]) for row in rows}
        return {p.name: known.get(p.name, 0) for p in self.projections}

    # --- catching up ------------------------------------------------------------------------

    def catch_up(self, names: Iterable[str] | None = None) -> int:
        """Process everything recorded so far; returns how many events were read.

        Raises the first ProjectionFailed after the healthy projections have caught up.
        """
        wanted = [p for p in self.projections if names is None or p.name in set(names)]
        failed: dict[str, ProjectionFailed] = {}
        read = 0
        while True:
            healthy = [p for p in wanted if p.name not in failed]
            positions = {
                name: pos
                for name, pos in self.positions().items()
                if name in {p.name for p in healthy}
            }
            if not positions:
                break
            batch = self._read(min(positions.values()))
            if not batch:
                break
            read += len(batch)
            # One transaction (one commit, one fsync on SQLite) for every projection's share of
            # the batch; each share in its own savepoint, so a failing or overtaken projection
            # rolls back alone and the others still commit.
            with self.db.transaction() as cursor:
                for projection in healthy:
                    try:
                        self._apply(cursor, projection, positions[projection.name], batch)
                    except PositionGuardFailed:
                        continue
                    except ProjectionFailed as failure:
                        failed[projection.name] = failure
        self.failures.update(failed)
        for name in {p.name for p in wanted} - failed.keys():
            self.failures.pop(name, None)
        if failed:
            raise next(iter(failed.values()))
        return read

    def _read(self, after: int) -> list[Positioned]:
        notifications = self.app.recorder.select_notifications(
            start=after + 1, limit=self.batch_size
        )
        decode = self.mapper.to_domain_event
        batch = []
        for notification in notifications:
            event = decode(notification)
            if isinstance(event, LoopEvent):
                batch.append(Positioned(notification.id, event))
        if notifications and (not batch or batch[-1].position != notifications[-1].id):
            # Keep the batch's end even when its last notification is not a loop event.
            batch.append(Positioned(notifications[-1].id, _Skip()))  # type: ignore[arg-type]
        return batch

    def _apply(
        self, cursor: Cursor, projection: Projection, start: int, batch: Sequence[Positioned]
    ) -> None:
        events = [item for item in batch if item.position > start]
        if not events:
            return
        cursor.execute("SAVEPOINT projection")
        try:
            _claim(cursor, projection.name, start, events[-1].position)
            real = [item for item in events if not isinstance(item.event, _Skip)]
            try:
                projection.apply_batch(cursor, real)
            except ProjectionFailed:
                raise
            except Exception as error:
                raise ProjectionFailed(projection.name, real[0].position, error) from error
        except BaseException:
            cursor.execute("ROLLBACK TO SAVEPOINT projection")
            cursor.execute("RELEASE SAVEPOINT projection")
            raise
        cursor.execute("RELEASE SAVEPOINT projection")

    def rebuild(self, projection: Projection) -> int:
        """Replay ``projection`` from zero in one transaction: readers keep the old rows until
        it commits. On SQLite the transaction holds the database's write lock meanwhile."""
        with self.db.transaction() as cursor:
            cursor.execute(
                f"UPDATE {POSITIONS_TABLE} SET position = 0 WHERE projection = %s",
                [projection.name],
            )
            for table in projection.tables:
                cursor.execute(f"DELETE FROM {table}")
            after = replayed = 0
            while batch := self._read(after):
                real = [item for item in batch if not isinstance(item.event, _Skip)]
                if real:
                    projection.apply_batch(cursor, real)
                after = batch[-1].position
                replayed += len(real)
            cursor.execute(
                f"UPDATE {POSITIONS_TABLE} SET position = %s WHERE projection = %s",
                [after, projection.name],
            )
        return replayed

    def wait(self, name: str, min_position: int, timeout: float) -> bool:
        """Whether projection ``name`` reached ``min_position`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        self._wake.set()
        while self.position(name) < min_position:
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        return True

    # --- background threads ------------------------------------------------------------------

    def start(self) -> None:
        """Follow the log in a background thread; on PostgreSQL, NOTIFY wakes it early."""
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._run, name="closedloop-projections", daemon=True)
        ]
        channel = getattr(self.app.recorder, "channel_name", None)
        if self.db.dialect == "postgres" and channel:
            self._threads.append(
                threading.Thread(
                    target=self._listen, args=(channel,), name="closedloop-listen", daemon=True
                )
            )
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def run_forever(self) -> None:
        """Follow the log in the calling thread until :meth:`stop` (the worker process)."""
        self.start()
        while not self._stopping.is_set():
            self._stopping.wait(1.0)

    def _run(self) -> None:
        while not self._stopping.is_set():
            healthy = [p.name for p in self.projections if p.name not in self.failures]
            try:
                self.catch_up(healthy)
            except ProjectionFailed as failure:
                log.error("%s; restart after fixing it", failure)
            except Exception:
                log.exception("projection runner: transient error, retrying")
            # A lost NOTIFY costs at most one poll interval, never a stall.
            self._wake.wait(self.poll_interval if self.db.dialect == "sqlite" else 1.0)
            self._wake.clear()

    def _listen(self, channel: str) -> None:
        from closedloop.store.sql import PostgresDatabase

        assert isinstance(self.db, PostgresDatabase)
        while not self._stopping.is_set():
            try:
                self.db.listen(channel, self._wake, self._stopping)
            except Exception:
                log.warning("LISTEN %s failed; polling until it reconnects", channel, exc_info=True)
                self._stopping.wait(1.0)


def _sharing_mapper(mapper: Mapper[Any]) -> Mapper[Any]:
    """The application's mapper, decoding through a :class:`_SharingTranscoder` when it can."""
    if type(mapper) is not Mapper or type(mapper.transcoder) is not JSONTranscoder:
        return mapper
    return Mapper(_SharingTranscoder(mapper.transcoder), mapper.compressor, mapper.cipher)


class _SharingTranscoder(JSONTranscoder):
    """Decodes as the application's transcoder does, but builds each id once and shares it.

    The same few thousand ids (units, targets, cycles, people) recur through the whole log, and
    parsing a UUID from hex costs more than the rest of its event's JSON; UUIDs are immutable,
    so events may share them.
    """

    LIMIT = 1 << 17

    def __init__(self, source: JSONTranscoder) -> None:
        super().__init__()
        for transcoding in source.names.values():
            self.register(transcoding)
        self._uuids: dict[str, UUID] = {}
        # The library's own transcodings of times and decimals, called without their wrapper.
        self._direct: dict[str, Callable[[str], Any]] = {
            name: direct
            for name, cls, direct in (
                ("datetime_iso", DatetimeAsISO, datetime.fromisoformat),
                ("decimal_str", DecimalAsStr, Decimal),
            )
            if type(self.names.get(name)) is cls
        }
        self.decoder = json.JSONDecoder(object_hook=self._decode_shared)

    def _decode_shared(self, d: dict[str, Any]) -> Any:
        if len(d) != 2 or "_data_" not in d:
            return d
        name = d.get("_type_")
        if name == "uuid_hex":
            text = d["_data_"]
            found = self._uuids.get(text)
            if found is None:
                if len(self._uuids) >= self.LIMIT:
                    self._uuids.clear()
                found = self._uuids[text] = self._decode_obj(d)
            return found
        direct = self._direct.get(name) if isinstance(name, str) else None
        return direct(d["_data_"]) if direct is not None else self._decode_obj(d)


class _Skip:
    """Stands for a notification that is not a closedloop event (it only moves the position)."""
