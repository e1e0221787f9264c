"""How fast does the command service write, compared with the database on its own?

Run: ``python bench/commands.py [--seconds S] [--rounds N] [--threads T] [--postgres-url URL]``

In one run, on PostgreSQL (a fresh schema, dropped afterwards; the database is created if
missing and then dropped too) and on SQLite (temporary files), it measures writes per second of:

* ``commands``: the command service, a realistic loop per problem (find a problem, adopt a
  measure, report progress twice, complete the measure, resolve the problem: six commands,
  each loading what it touches and saving one event); on one thread, and on ``T`` threads
  sharing one service instance; on PostgreSQL also with the library's stock recorder instead
  of closedloop's single-trip recorder, for comparison;
* ``bare app``: a bare ``eventsourcing`` Application saving a new trivial aggregate, with the
  library's default recorder (on PostgreSQL the stock ``PostgresApplicationRecorder``) and, on
  PostgreSQL, again with closedloop's single-trip recorder;
* ``raw``: the driver alone, one row per transaction (``BEGIN; INSERT; COMMIT``) into a table
  shaped like the event table, through psycopg or sqlite3; on one and on ``T`` threads.

Every write is one transaction holding one event, so the rates compare directly. The machine
is noisy, so each store's measurements run in rounds (order rotated each round); the table shows
median rates, and each ratio is the median of ratios taken within a round, so a slow round
slows both sides of it. The target: commands at least 0.5x raw on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from closedloop.domain.context import acting_as
from closedloop.domain.problems import ProblemSource, Severity
from closedloop.domain.service import ClosedLoop
from closedloop.domain.units import UnitKind
from closedloop.settings import Settings
from closedloop.store import application_env, ensure_database_ready
from closedloop.store.environment import SINGLE_TRIP_RECORDER_TOPIC

BEIJING = timezone(timedelta(hours=8))
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/closedloop_bench"
WARM_UP_SECONDS = 0.3
# About the size of a stored closedloop event (JSON with metadata), so raw rows weigh the same.
PAYLOAD = (
    b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-03-01T01:00:00.000000+00:00"},'
    b'"originator_topic":"closedloop.domain.measures:Measure","actor":"bench",'
    b'"correlation_id":"0123456789abcdef0123456789abcdef","reason":null,"effective_at":null,'
    b'"percent":50,"note":"progress on the measure, as reported by the responsible unit"}'
)
TOPIC = "closedloop.domain.measures:Measure.MeasureProgressReported"

Writer = Callable[[threading.Event], int]
"""Writes until the event is set; returns how many writes (transactions) it committed."""


class Thing(Aggregate):
    """The trivial aggregate a bare application saves."""


# --- what is measured -----------------------------------------------------------------------


@dataclass
class Organisation:
    cycle: UUID
    farm: UUID
    chief: UUID


def set_up_organisation(app: ClosedLoop) -> Organisation:
    with acting_as("bench"):
        root = app.register_unit(name="党委", kind=UnitKind.COMMITTEE)
        farm = app.register_unit(name="林场", kind=UnitKind.GRASSROOTS, parent_id=root.id)
        cycle = app.open_cycle(year=2026, name="2026年度")
        chief = app.register_person(name="王林", unit_id=farm.id)
    return Organisation(cycle=cycle.id, farm=farm.id, chief=chief.id)


def command_writer(app: ClosedLoop, org: Organisation) -> Writer:
    def run(stop: threading.Event) -> int:
        done = 0
        with acting_as("bench"):
            while not stop.is_set():
                problem = app.find_problem(
                    cycle_id=org.cycle,
                    unit_id=org.farm,
                    title=f"隐患 {done}",
                    source=ProblemSource.INSPECTION,
                    severity=Severity.PROMINENT,
                    found_at=datetime(2026, 3, 1, 9, tzinfo=BEIJING),
                )
                measure = app.adopt_measure(
                    cycle_id=org.cycle,
                    title="清理林下可燃物",
                    deadline=date(2026, 6, 30),
                    lead_unit_id=org.farm,
                    responsible_unit_ids=[org.farm],
                    responsible_leader_id=org.chief,
                    problem_ids=[problem.id],
                )
                app.report_measure_progress(measure.id, percent=30, expected_version=1)
                app.report_measure_progress(measure.id, percent=70, note="过半", expected_version=2)
                app.complete_measure(measure.id, evidence="验收记录", expected_version=3)
                app.resolve_problem(problem.id, evidence="整改报告", expected_version=1)
                done += 6
        return done

    return run


def bare_writer(app: Application[UUID]) -> Writer:
    def run(stop: threading.Event) -> int:
        done = 0
        while not stop.is_set():
            app.save(Thing())
            done += 1
        return done

    return run


def postgres_raw_writer(conninfo: str, table: sql.Composable) -> Writer:
    insert = sql.SQL(
        "INSERT INTO {} (originator_id, originator_version, topic, state) "
        "VALUES (%s, %s, %s, %s) RETURNING notification_id"
    ).format(table)

    def run(stop: threading.Event) -> int:
        done = 0
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while not stop.is_set():
                with conn.transaction():  # BEGIN ... COMMIT
                    conn.execute(insert, (uuid.uuid4(), 1, TOPIC, PAYLOAD)).fetchone()
                done += 1
        return done

    return run


def sqlite_raw_writer(path: Path) -> Writer:
    def run(stop: threading.Event) -> int:
        done = 0
        conn = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
        try:
            while not stop.is_set():
                conn.execute("BEGIN")
                conn.execute(
                    "INSERT INTO raw_events (originator_id, originator_version, topic, state) "
                    "VALUES (?, ?, ?, ?)",
                    (uuid.uuid4().hex, 1, TOPIC, PAYLOAD),
                )
                conn.execute("COMMIT")
                done += 1
        finally:
            conn.close()
        return done

    return run


def create_sqlite_raw_table(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")  # as eventsourcing.sqlite sets it
        conn.execute(
            "CREATE TABLE raw_events (originator_id TEXT, originator_version INTEGER, "
            "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
        )
    finally:
        conn.close()


def create_postgres_raw_table(conninfo: str, table: sql.Identifier) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (originator_id uuid NOT NULL, originator_version bigint NOT NULL,"
                " topic text, state bytea, notification_id bigserial,"
                " PRIMARY KEY (originator_id, originator_version))"
            ).format(table)
        )
        conn.execute(sql.SQL("CREATE UNIQUE INDEX ON {} (notification_id)").format(table))


# --- measuring --------------------------------------------------------------------------------


def rate(writer: Writer, seconds: float, threads: int = 1) -> float:
    """Writes per second of ``threads`` copies of ``writer`` over ``seconds`` (after a warm-up)."""
    stop_warm_up = threading.Event()
    timer = threading.Timer(WARM_UP_SECONDS, stop_warm_up.set)
    timer.start()
    writer(stop_warm_up)
    timer.join()

    stop = threading.Event()
    counts: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            counts.append(writer(stop))
        except BaseException as error:
            errors.append(error)
            stop.set()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return sum(counts) / elapsed


@dataclass
class Store:
    name: str
    measurements: dict[str, Writer]
    thread_measurements: dict[str, Writer]


@contextmanager
def postgres_store(url: str) -> Iterator[Store]:
    params = conninfo_to_dict(url)
    dbname = str(params.get("dbname", "postgres"))
    maintenance = make_conninfo(url, dbname="postgres")
    created_database = False
    with psycopg.connect(maintenance, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            created_database = True
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    settings = Settings(database_url=url, database_schema=schema)
    ensure_database_ready(settings)
    env = application_env(settings)
    stock_env = {k: v for k, v in env.items() if k != "APPLICATION_RECORDER_TOPIC"}
    single_trip_env = {**stock_env, "APPLICATION_RECORDER_TOPIC": SINGLE_TRIP_RECORDER_TOPIC}
    raw_table = sql.Identifier(schema, "raw_events")
    create_postgres_raw_table(url, raw_table)

    closedloop = ClosedLoop(env=env)
    # The same service on the library's stock recorder, in its own table, for comparison.
    closedloop_stock = type("ClosedLoopStock", (ClosedLoop,), {"name": "ClosedLoopStock"})(
        env=stock_env
    )
    stock_app = _named_app("BareStock", stock_env)
    single_trip = _named_app("BareSingleTrip", single_trip_env)
    org = set_up_organisation(closedloop)
    org_stock = set_up_organisation(closedloop_stock)

    try:
        yield Store(
            name="postgres",
            measurements={
                "commands": command_writer(closedloop, org),
                "commands (stock recorder)": command_writer(closedloop_stock, org_stock),
                "bare app (stock recorder)": bare_writer(stock_app),
                "bare app (single-trip recorder)": bare_writer(single_trip),
                "raw": postgres_raw_writer(url, raw_table),
            },
            thread_measurements={
                "commands": command_writer(closedloop, org),
                "raw": postgres_raw_writer(url, raw_table),
            },
        )
    finally:
        for app in (closedloop, closedloop_stock, stock_app, single_trip):
            app.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        if created_database:
            with psycopg.connect(maintenance, autocommit=True) as conn:
                try:
                    conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname))
                    )
                except psycopg.errors.ObjectInUse:
                    print(f"database {dbname} is in use by another run: left in place")


def _named_app(name: str, env: dict[str, str]) -> Application[UUID]:
    cls = type(name, (Application,), {"name": name})
    app: Application[UUID] = cls(env=env)
    return app


@contextmanager
def sqlite_store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory(prefix="closedloop-bench-") as tmp:
        directory = Path(tmp)
        settings = Settings(database_url=f"sqlite:///{directory / 'commands.db'}")
        closedloop = ClosedLoop(env=application_env(settings))
        bare = _named_app(
            "BareSQLite",
            {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(directory / "bare.db"),
                "SQLITE_LOCK_TIMEOUT": "10",
            },
        )
        create_sqlite_raw_table(directory / "raw.db")
        org = set_up_organisation(closedloop)
        try:
            yield Store(
                name="sqlite",
                measurements={
                    "commands": command_writer(closedloop, org),
                    "bare app (stock recorder)": bare_writer(bare),
                    "raw": sqlite_raw_writer(directory / "raw.db"),
                },
                thread_measurements={
                    "commands": command_writer(closedloop, org),
                    "raw": sqlite_raw_writer(directory / "raw.db"),
                },
            )
        finally:
            closedloop.close()
            bare.close()


def measure(store: Store, args: argparse.Namespace) -> dict[str, list[float]]:
    plan: list[tuple[str, Writer, int]] = [(k, w, 1) for k, w in store.measurements.items()]
    if args.threads > 1:
        plan += [
            (f"{k} x{args.threads} threads", w, args.threads)
            for k, w in store.thread_measurements.items()
        ]
    results: dict[str, list[float]] = {label: [] for label, _, _ in plan}
    for round_no in range(args.rounds):
        shift = round_no % len(plan)
        for label, writer, threads in plan[shift:] + plan[:shift]:
            value = rate(writer, args.seconds, threads)
            results[label].append(value)
            print(f"  {store.name:8} round {round_no + 1}: {label:34} {value:8.0f}/s", flush=True)
    return results


def paired_ratio(results: dict[str, list[float]], label: str, baseline: str) -> float:
    """Median over rounds of label/baseline measured in the same round: steadier than the
    ratio of medians when the machine's speed drifts between rounds."""
    return statistics.median(a / b for a, b in zip(results[label], results[baseline], strict=True))


def report(all_results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.rounds} rounds of {args.seconds:g} s per measurement; writes/s (one event each); "
        "x raw = median of per-round ratios to raw on as many threads"
    )
    print(f"{'store':9} {'measurement':36} {'median/s':>9} {'min':>7} {'max':>7} {'x raw':>6}")
    threaded_raw = f"raw x{args.threads} threads"
    for store, results in all_results.items():
        for label, values in results.items():
            baseline = threaded_raw if label.endswith(" threads") else "raw"
            print(
                f"{store:9} {label:36} {statistics.median(values):9.0f} {min(values):7.0f} "
                f"{max(values):7.0f} {paired_ratio(results, label, baseline):6.2f}"
            )
    print()
    for store, results in all_results.items():
        line = (
            f"{store}: commands/raw = {paired_ratio(results, 'commands', 'raw'):.2f}   "
            f"bare/raw = {paired_ratio(results, 'bare app (stock recorder)', 'raw'):.2f}"
        )
        if "bare app (single-trip recorder)" in results:
            single = paired_ratio(results, "bare app (single-trip recorder)", "raw")
            line += f"   bare single-trip/raw = {single:.2f}"
        print(line)
    postgres = all_results.get("postgres")
    if postgres:
        ratio = paired_ratio(postgres, "commands", "raw")
        verdict = "meets" if ratio >= 0.5 else "MISSES"
        print(f"target (PostgreSQL commands >= 0.5x raw): {verdict} ({ratio:.2f}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4, help="also measure on N threads (<2: no)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CLOSEDLOOP_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL,
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)

    all_results: dict[str, dict[str, list[float]]] = {}
    if not args.skip_postgres:
        with postgres_store(args.postgres_url) as store:
            all_results["postgres"] = measure(store, args)
    if not args.skip_sqlite:
        with sqlite_store() as store:
            all_results["sqlite"] = measure(store, args)
    report(all_results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
