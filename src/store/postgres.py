"""A PostgreSQL recorder that writes a batch of events in one round trip.

The library's default recorder sends BEGIN, SET LOCAL, LOCK TABLE, NOTIFY, the INSERT and COMMIT
as separate messages, about 14 round trips per save. Here one server-side function per event
table does the same work inside a single autocommit statement:

* ``LOCK TABLE ... IN EXCLUSIVE MODE`` still serialises writers, so commit order equals position
  (notification id) order and a reader tailing the log never passes over a gap that fills later;
* the function is named after its own table, so several applications in one schema never write
  into each other's tables (the library's ``POSTGRES_ENABLE_DB_FUNCTIONS`` path shares one
  function per schema and skips the lock);
* the NOTIFY channel names the schema as well as the table (the library's names only the table,
  and channels are shared by the whole database).

Reads take the hot path too: a command loads every aggregate it touches, so ``select_events``
runs about twice per command. The library composes its SQL anew on every call (and psycopg then
re-escapes every identifier); here each statement is rendered to text once, and rows come back
as tuples rather than dicts. ``select_events_of_many`` reads several aggregates in one round
trip, for a command service that loads everything a command needs at once.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg.errors import DuplicateObject
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier, Literal


def _channel_name(schema: str, table: str) -> str:
    """NOTIFY channels are per database, not per schema: qualify the table's channel with its
    schema, so applications of the same name in other schemas (tenants, test schemas) don't
    wake this one's subscribers. Kept within PostgreSQL's 63-byte identifier limit."""
    channel = f"{schema}.{table}"
    if len(channel.encode()) <= PostgresApplicationRecorder.MAX_IDENTIFIER_LEN:
        return channel
    digest = hashlib.sha256(channel.encode()).hexdigest()[:16]
    return f"{table.encode()[:46].decode(errors='ignore')}.{digest}"


class _SelectShape(NamedTuple):
    gt: bool
    lte: bool
    desc: bool
    limit: bool


class SingleTripApplicationRecorder(PostgresApplicationRecorder):
    """Insert, lock and notify in one statement; read with SQL rendered once."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.channel_name = _channel_name(self.datastore.schema, events_table_name)
        self.insert_function_name = f"{events_table_name}_insert"
        self.check_identifier_length(self.insert_function_name)
        schema = Identifier(self.datastore.schema)
        function = Identifier(self.insert_function_name)
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}(events {schema}.{event_type}[]) "
                "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ "
                "BEGIN "
                "SET LOCAL lock_timeout = '{lock_timeout}s'; "
                "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
                "NOTIFY {channel}; "
                "RETURN QUERY INSERT INTO {schema}.{table} "
                "(originator_id, originator_version, topic, state) "
                "SELECT originator_id, originator_version, topic, state FROM unnest(events) "
                "RETURNING notification_id; "
                "END; $BODY$"
            ).format(
                schema=schema,
                function=function,
                event_type=Identifier(self.stored_event_type_name),
                lock_timeout=self.datastore.lock_timeout,
                table=Identifier(self.events_table_name),
                channel=Identifier(self.channel_name),
            )
        )
        self.call_insert_function = SQL("SELECT * FROM {schema}.{function}(%s)").format(
            schema=schema, function=function
        )
        self._call_insert_function = self.call_insert_function.as_string()
        self._select_events_base = SQL(
            "SELECT originator_id, originator_version, topic, state "
            "FROM {schema}.{table} WHERE originator_id = %s"
        ).format(schema=schema, table=Identifier(self.events_table_name))
        self._select_events_queries: dict[_SelectShape, str] = {}
        self._select_events_of_many = (
            SQL(
                "SELECT originator_id, originator_version, topic, state "
                "FROM {schema}.{table} WHERE originator_id = ANY(%s) "
                "ORDER BY originator_id, originator_version"
            )
            .format(schema=schema, table=Identifier(self.events_table_name))
            .as_string()
        )

    def create_table(self) -> None:
        """The library's creation (types, then tables and functions), one process at a time.

        Processes starting together (API replicas, a worker) would otherwise race on
        ``CREATE TYPE`` and ``CREATE OR REPLACE FUNCTION`` ("tuple concurrently updated"). Each
        transaction first takes a transaction-level advisory lock keyed by schema and table.
        """
        lock = SQL("SELECT pg_advisory_xact_lock(hashtext({key}))").format(
            key=Literal(f"closedloop-ddl:{self.datastore.schema}.{self.events_table_name}")
        )
        for statement in self.sql_create_statements:
            if "CREATE TYPE" in statement.as_string():
                with (
                    self.datastore.transaction(commit=True) as curs,
                    contextlib.suppress(DuplicateObject),
                ):
                    curs.execute(lock, prepare=False)
                    curs.execute(statement, prepare=False)
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(lock, prepare=False)
            self._create_table(curs)
        self.datastore.register_type_adapters()

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        rows = [
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
            for e in stored_events
        ]
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            curs.execute(self._call_insert_function, (rows,), prepare=True)
            return [row[0] for row in curs.fetchall()]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        shape = _SelectShape(gt is not None, lte is not None, desc, limit is not None)
        query = self._select_events_queries.get(shape) or self._render_select_events(shape)
        params: list[Any] = [originator_id]
        if gt is not None:
            params.append(gt)
        if lte is not None:
            params.append(lte)
        if limit is not None:
            params.append(limit)
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            curs.execute(query, params, prepare=True)
            return [
                StoredEvent(
                    originator_id=row[0],
                    originator_version=row[1],
                    topic=row[2],
                    state=bytes(row[3]),
                )
                for row in curs.fetchall()
            ]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_events_of_many(
        self, originator_ids: Sequence[UUID | str]
    ) -> dict[UUID | str, list[StoredEvent]]:
        """All events of several aggregates, in one round trip and one consistent snapshot.

        For a command that loads several aggregates: each id maps to its events in version
        order; an id with no events is absent.
        """
        events: dict[UUID | str, list[StoredEvent]] = {}
        if not originator_ids:
            return events
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            curs.execute(self._select_events_of_many, (list(originator_ids),), prepare=True)
            for row in curs.fetchall():
                events.setdefault(row[0], []).append(
                    StoredEvent(
                        originator_id=row[0],
                        originator_version=row[1],
                        topic=row[2],
                        state=bytes(row[3]),
                    )
                )
        return events

    def _render_select_events(self, shape: _SelectShape) -> str:
        statement: Composed = self._select_events_base
        if shape.gt:
            statement += SQL(" AND originator_version > %s")
        if shape.lte:
            statement += SQL(" AND originator_version <= %s")
        statement += SQL(
            " ORDER BY originator_version DESC"
            if shape.desc
            else " ORDER BY originator_version ASC"
        )
        if shape.limit:
            statement += SQL(" LIMIT %s")
        query = statement.as_string()
        self._select_events_queries[shape] = query
        return query
