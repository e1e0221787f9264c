"""The single-trip PostgreSQL recorder keeps every guarantee of the library's default recorder.

Each test works on a fresh schema (``postgres_settings``) and talks to the recorder directly:
commit order equals position order under concurrent writers, a batch is atomic, each
application has its own table and insert function, ids come back in batch order, and writes
NOTIFY the application's channel.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import InfrastructureFactory, IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import Environment
from psycopg import sql

from closedloop.settings import Settings
from closedloop.store import application_env, ensure_database_ready
from closedloop.store.postgres import SingleTripApplicationRecorder, _channel_name

pytestmark = pytest.mark.postgres

TOPIC = "tests.store:Happened"

RecorderFactory = Callable[[str], SingleTripApplicationRecorder]


@pytest.fixture
def recorder_for(postgres_settings: Settings) -> Iterator[RecorderFactory]:
    """Builds the recorder an application named ``name`` gets from closedloop's environment."""
    factories: list[InfrastructureFactory] = []  # type: ignore[type-arg]

    def build(name: str) -> SingleTripApplicationRecorder:
        factory = InfrastructureFactory.construct(
            Environment(name, application_env(postgres_settings))
        )
        factories.append(factory)
        recorder = factory.application_recorder()
        assert isinstance(recorder, SingleTripApplicationRecorder)
        return recorder

    try:
        yield build
    finally:
        for factory in factories:
            factory.close()


@pytest.fixture
def recorder(recorder_for: RecorderFactory) -> SingleTripApplicationRecorder:
    return recorder_for("closedloop")


def stored(originator_id: UUID, version: int, payload: str = "") -> StoredEvent:
    return StoredEvent(
        originator_id=originator_id,
        originator_version=version,
        topic=TOPIC,
        state=(payload or f"{originator_id}:{version}").encode(),
    )


def connect(settings: Settings) -> psycopg.Connection[tuple[object, ...]]:
    assert settings.database_url is not None
    return psycopg.connect(settings.database_url, autocommit=True)


def all_positions(recorder: SingleTripApplicationRecorder) -> list[int]:
    positions: list[int] = []
    while True:
        page = recorder.select_notifications(
            start=positions[-1] if positions else None, limit=1000, inclusive_of_start=False
        )
        if not page:
            return positions
        positions.extend(n.id for n in page)


# --- (a) commit order equals position order -------------------------------------------------


WRITERS = 8
BATCHES_PER_WRITER = 40


def test_concurrent_writers_never_let_a_reader_pass_a_gap_that_fills_later(
    recorder: SingleTripApplicationRecorder,
) -> None:
    """8 writers race; a reader tailing the log must see every position, in order, once.

    The reader asks only for positions after the last one it has seen. If a writer could
    commit position p+1 before another commits p, the reader would sometimes step over p and
    never see it: its final list would have a hole. Batches of 1-3 events also check that a
    batch receives consecutive positions (nobody interleaves inside it).
    """
    start = threading.Barrier(WRITERS + 1)
    writers_done = threading.Event()
    returned: list[list[int]] = []
    returned_lock = threading.Lock()

    def write(writer: int) -> int:
        start.wait(timeout=10)
        written = 0
        for batch_no in range(BATCHES_PER_WRITER):
            size = 1 + (writer + batch_no) % 3
            originator = uuid.uuid4()
            batch = [stored(originator, v) for v in range(1, size + 1)]
            ids = list(recorder.insert_events(batch) or [])
            assert ids == list(range(ids[0], ids[0] + size)), ids
            with returned_lock:
                returned.append(ids)
            written += size
        return written

    def tail() -> list[int]:
        seen: list[int] = []
        start.wait(timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            finished = writers_done.is_set()  # read before selecting: a final sweep follows
            page = recorder.select_notifications(
                start=seen[-1] if seen else None, limit=50, inclusive_of_start=False
            )
            for notification in page:
                assert not seen or notification.id > seen[-1], (seen[-1], notification.id)
                seen.append(notification.id)
            if finished and not page:
                return seen
        raise AssertionError("the reader did not catch up within 30 s")

    with ThreadPoolExecutor(max_workers=WRITERS + 1) as pool:
        reader = pool.submit(tail)
        writers = [pool.submit(write, n) for n in range(WRITERS)]
        total = sum(w.result(timeout=60) for w in writers)
        writers_done.set()
        seen = reader.result(timeout=60)

    expected = list(range(1, total + 1))
    assert seen == expected, f"reader stepped over {sorted(set(expected) - set(seen))[:10]}"
    assert sorted(i for ids in returned for i in ids) == expected
    assert all_positions(recorder) == expected
    assert recorder.max_notification_id() == total


def test_insert_waits_for_an_exclusive_lock_on_its_table(
    postgres_settings: Settings, recorder: SingleTripApplicationRecorder
) -> None:
    """A plain INSERT would proceed beside another inserter's ROW EXCLUSIVE lock; ours waits.

    This pins the serialisation itself rather than relying on a race to show up.
    """
    table = sql.Identifier(postgres_settings.database_schema, recorder.events_table_name)
    with connect(postgres_settings) as holder, ThreadPoolExecutor(max_workers=1) as pool:
        holder.execute("BEGIN")
        holder.execute(sql.SQL("LOCK TABLE {} IN ROW EXCLUSIVE MODE").format(table))
        pending = pool.submit(recorder.insert_events, [stored(uuid.uuid4(), 1)])
        time.sleep(0.5)
        assert not pending.done(), "the insert did not wait for the table lock"
        holder.execute("COMMIT")
        assert pending.result(timeout=10) == [1]


# --- (b) conflicts and atomicity ------------------------------------------------------------


def test_duplicate_version_raises_integrity_error_and_writes_nothing_of_the_batch(
    recorder: SingleTripApplicationRecorder,
) -> None:
    taken = uuid.uuid4()
    assert recorder.insert_events([stored(taken, 1)]) == [1]

    innocent = uuid.uuid4()
    batch = [stored(innocent, 1), stored(innocent, 2), stored(taken, 1, "again"), stored(taken, 2)]
    with pytest.raises(IntegrityError):
        recorder.insert_events(batch)

    assert recorder.select_events(innocent) == []
    assert [e.state for e in recorder.select_events(taken)] == [stored(taken, 1).state]
    assert all_positions(recorder) == [1]

    # The failed statement released the lock and left the pooled connections usable.
    later = recorder.insert_events([stored(innocent, 1)])
    assert later is not None and later[0] > 1
    assert [e.originator_version for e in recorder.select_events(innocent)] == [1]


def test_duplicate_inside_one_batch_is_rejected_whole(
    recorder: SingleTripApplicationRecorder,
) -> None:
    originator = uuid.uuid4()
    with pytest.raises(IntegrityError):
        recorder.insert_events(
            [stored(originator, 1), stored(originator, 2, "x"), stored(originator, 2)]
        )
    assert recorder.select_events(originator) == []
    assert recorder.max_notification_id() is None


def test_concurrent_writers_of_one_version_exactly_one_wins(
    recorder: SingleTripApplicationRecorder,
) -> None:
    originator = uuid.uuid4()
    contenders = 8
    start = threading.Barrier(contenders)

    def attempt(n: int) -> bool:
        start.wait(timeout=10)
        try:
            recorder.insert_events([stored(originator, 1, f"writer {n}")])
        except IntegrityError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=contenders) as pool:
        outcomes = list(pool.map(attempt, range(contenders), timeout=30))

    assert outcomes.count(True) == 1
    [event] = recorder.select_events(originator)
    assert event.state == f"writer {outcomes.index(True)}".encode()


# --- (c) one table and one function per application ---------------------------------------


def test_applications_sharing_a_schema_write_to_their_own_tables(
    postgres_settings: Settings, recorder_for: RecorderFactory
) -> None:
    alpha, beta = recorder_for("alpha"), recorder_for("beta")
    assert (alpha.events_table_name, beta.events_table_name) == ("alpha_events", "beta_events")
    assert alpha.insert_function_name != beta.insert_function_name

    a, b = uuid.uuid4(), uuid.uuid4()
    assert alpha.insert_events([stored(a, 1), stored(a, 2)]) == [1, 2]
    assert beta.insert_events([stored(b, 1)]) == [1]
    assert alpha.insert_events([stored(a, 3)]) == [3]

    assert [(n.originator_id, n.id) for n in alpha.select_notifications(None, 10)] == [
        (a, 1),
        (a, 2),
        (a, 3),
    ]
    assert [(n.originator_id, n.id) for n in beta.select_notifications(None, 10)] == [(b, 1)]

    with connect(postgres_settings) as conn:
        functions = conn.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s ORDER BY p.proname",
            (postgres_settings.database_schema,),
        ).fetchall()
    assert ("alpha_events_insert",) in functions
    assert ("beta_events_insert",) in functions


def test_two_applications_in_one_schema_keep_their_events_apart(
    postgres_settings: Settings,
) -> None:
    """The same through whole applications, as a second service in the schema would run."""

    class Other(Application[UUID]):
        name = "other"

    class Thing(Aggregate):
        pass

    env = application_env(postgres_settings)
    first, second = Other(env=env), Application[UUID](env={**env})
    try:
        assert isinstance(first.recorder, SingleTripApplicationRecorder)
        assert isinstance(second.recorder, SingleTripApplicationRecorder)
        assert first.recorder.events_table_name == "other_events"
        assert second.recorder.events_table_name == "application_events"
        thing, other_thing = Thing(), Thing()
        assert first.save(thing)[-1].notification.id == 1
        assert second.save(other_thing)[-1].notification.id == 1
        assert first.repository.get(thing.id).id == thing.id
        assert [n.originator_id for n in first.notification_log.select(1, 10)] == [thing.id]
        assert [n.originator_id for n in second.notification_log.select(1, 10)] == [other_thing.id]
    finally:
        first.close()
        second.close()


# --- (d) ids in order ---------------------------------------------------------------------


def test_insert_returns_notification_ids_in_batch_order(
    recorder: SingleTripApplicationRecorder,
) -> None:
    recorder.insert_events([stored(uuid.uuid4(), 1)])
    originators = sorted((uuid.uuid4() for _ in range(6)), reverse=True)  # not in key order
    batch = [stored(o, 1, f"event {i}") for i, o in enumerate(originators)]

    ids = recorder.insert_events(batch)

    assert ids == [2, 3, 4, 5, 6, 7]
    by_id = {n.id: n for n in recorder.select_notifications(2, 10)}
    assert [(by_id[i].originator_id, by_id[i].state) for i in ids] == [
        (e.originator_id, e.state) for e in batch
    ]


def test_empty_batch_writes_nothing(recorder: SingleTripApplicationRecorder) -> None:
    assert recorder.insert_events([]) == []
    assert recorder.max_notification_id() is None


# --- reads -------------------------------------------------------------------------------


@pytest.mark.parametrize("desc", [False, True])
@pytest.mark.parametrize("limit", [None, 2])
@pytest.mark.parametrize("lte", [None, 4])
@pytest.mark.parametrize("gt", [None, 1])
def test_select_events_answers_as_the_library_does(
    recorder: SingleTripApplicationRecorder,
    gt: int | None,
    lte: int | None,
    limit: int | None,
    desc: bool,
) -> None:
    """The pre-rendered reads return exactly what the library's composed queries return."""
    originator, other = uuid.uuid4(), uuid.uuid4()
    recorder.insert_events([stored(originator, v) for v in range(1, 6)])
    recorder.insert_events([stored(other, 1)])

    ours = recorder.select_events(originator, gt=gt, lte=lte, desc=desc, limit=limit)
    library = PostgresApplicationRecorder.select_events(
        recorder, originator, gt=gt, lte=lte, desc=desc, limit=limit
    )

    assert ours == library
    assert ours, "every combination here selects something"
    assert all(isinstance(e.state, bytes) for e in ours)
    assert all(e.originator_id == originator for e in ours)


def test_select_events_of_an_unknown_aggregate_is_empty(
    recorder: SingleTripApplicationRecorder,
) -> None:
    assert recorder.select_events(uuid.uuid4()) == []


def test_select_events_of_many_reads_several_aggregates_at_once(
    recorder: SingleTripApplicationRecorder,
) -> None:
    a, b, never_written = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    recorder.insert_events([stored(b, 1), stored(a, 1)])
    recorder.insert_events([stored(a, 2), stored(b, 2), stored(b, 3)])

    found = recorder.select_events_of_many([a, b, never_written, a])

    assert set(found) == {a, b}
    assert found[a] == list(recorder.select_events(a))
    assert found[b] == list(recorder.select_events(b))
    assert [e.originator_version for e in found[b]] == [1, 2, 3]
    assert recorder.select_events_of_many([]) == {}


# --- (e) NOTIFY ---------------------------------------------------------------------------


def listen(settings: Settings, channel: str) -> psycopg.Connection[tuple[object, ...]]:
    conn = connect(settings)
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    return conn


def notifications(conn: psycopg.Connection[tuple[object, ...]], timeout: float) -> list[str]:
    return [n.channel for n in conn.notifies(timeout=timeout, stop_after=1)]


def test_a_write_notifies_the_application_channel(
    postgres_settings: Settings, recorder: SingleTripApplicationRecorder
) -> None:
    with listen(postgres_settings, recorder.channel_name) as listener:
        recorder.insert_events([stored(uuid.uuid4(), 1)])
        assert notifications(listener, timeout=5) == [recorder.channel_name]


def test_a_rejected_write_does_not_notify(
    postgres_settings: Settings, recorder: SingleTripApplicationRecorder
) -> None:
    originator = uuid.uuid4()
    recorder.insert_events([stored(originator, 1)])
    with listen(postgres_settings, recorder.channel_name) as listener:
        with pytest.raises(IntegrityError):
            recorder.insert_events([stored(originator, 1)])
        assert notifications(listener, timeout=0.5) == []


def test_channels_are_per_schema(
    postgres_settings: Settings, recorder: SingleTripApplicationRecorder
) -> None:
    """Channels are database-wide; the same application in another schema must not wake us."""
    other_settings = postgres_settings.model_copy(
        update={"database_schema": postgres_settings.database_schema + "_other"}
    )
    ensure_database_ready(other_settings)
    factory = InfrastructureFactory.construct(
        Environment("closedloop", application_env(other_settings))
    )
    try:
        neighbour = factory.application_recorder()
        assert neighbour.events_table_name == recorder.events_table_name
        assert isinstance(neighbour, SingleTripApplicationRecorder)
        assert neighbour.channel_name != recorder.channel_name
        with listen(postgres_settings, recorder.channel_name) as listener:
            neighbour.insert_events([stored(uuid.uuid4(), 1)])
            assert notifications(listener, timeout=0.5) == []
            recorder.insert_events([stored(uuid.uuid4(), 1)])
            assert notifications(listener, timeout=5) == [recorder.channel_name]
    finally:
        factory.close()
        with connect(postgres_settings) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA {} CASCADE").format(
                    sql.Identifier(other_settings.database_schema)
                )
            )


def test_long_schema_and_table_names_give_a_valid_channel() -> None:
    schema, table = "s" * 60, "t" * 60 + "_events"
    channel = _channel_name(schema, table)
    assert len(channel.encode()) <= 63
    assert channel != _channel_name(schema + "x", table)
    assert _channel_name("public", "closedloop_events") == "public.closedloop_events"


def test_the_library_subscription_wakes_on_the_schema_qualified_channel(
    recorder: SingleTripApplicationRecorder,
) -> None:
    """The library's LISTEN/NOTIFY subscription follows the recorder's channel name."""
    received: list[int] = []
    first = recorder.insert_events([stored(uuid.uuid4(), 1)])
    assert first == [1]
    with recorder.subscribe(gt=None) as subscription:

        def consume() -> None:
            for notification in subscription:
                received.append(notification.id)

        with ThreadPoolExecutor(max_workers=1) as pool:
            consumer = pool.submit(consume)
            # LISTEN starts on the subscription's own thread: keep writing until one is seen.
            deadline = time.monotonic() + 10
            while len(received) < 2 and time.monotonic() < deadline:
                recorder.insert_events([stored(uuid.uuid4(), 1)])
                time.sleep(0.1)
            subscription.stop()
            consumer.result(timeout=10)
    assert received[:2] == [1, 2]
