"""How fast does the HTTP API write and read, and what does HTTP cost over the command service?

Run: ``python bench/api.py [--seconds S] [--clients N] [--store sqlite|postgres|both]``

For each store (a fresh SQLite file in a temporary folder; on PostgreSQL a fresh schema, dropped
afterwards, in a database created if missing and then dropped too) it:

1. bootstraps through the command service, in this process: an admin token
   (``service.issue_token``), a committee with grassroots units, a leader, a 2026 cycle, and
   problems that readers look at;
2. starts the real server, ``uvicorn closedloop.api.app:create_app --factory``, in a subprocess
   on 127.0.0.1 and a free port, configured only by ``CLOSEDLOOP_*`` variables;
3. runs ``N`` client threads, each with its own keep-alive ``http.client`` connection, for ``S``
   seconds (or until ``--max-requests``), for
   * HTTP writes, a mix in equal parts: ``POST /problems``, ``POST /problems/{id}/dispatch``
     (the problem the client just found) and ``POST /measures/{id}/progress`` (round robin over
     the client's own measures, so clients never conflict and histories stay a few events long,
     as a real measure's do: without snapshots, a command loads every event of its aggregate);
   * HTTP reads, in equal parts: ``GET /problems/{id}``, ``GET /problems?cycle=...`` and
     ``GET /problems/{id}/history``;
   * direct writes: the same mix on ``N`` threads calling one in-process ``ClosedLoop``, no HTTP;
4. prints requests (or commands) per second, p50 and p99 latency, and the ratio HTTP writes/s
   divided by direct commands/s.

Phases are interleaved in ``--rounds`` rounds (order rotated); rates are medians over rounds,
latencies are percentiles over every sample. Before each phase the server's catalogue catches up
with the event log, so no phase pays for the previous one's projection backlog; during a phase
the server's projection thread follows the writes as it would in production (also the direct
writes, which go to the same database).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from closedloop.domain.access import Role
from closedloop.domain.context import acting_as
from closedloop.domain.problems import ProblemSource
from closedloop.domain.service import ClosedLoop
from closedloop.domain.units import UnitKind
from closedloop.settings import Settings
from closedloop.store import application_env, ensure_database_ready

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/closedloop_bench"
WARM_UP_SECONDS = 0.5
SERVER_START_SECONDS = 60.0
CATCH_UP_SECONDS = 120.0
FARMS = 4
READ_PROBLEMS = 30
MEASURES_PER_CLIENT = 16
DEADLINE = date(2026, 6, 30)
ACTOR = "bench:direct"

WRITES = ("POST /problems", "POST /problems/{id}/dispatch", "POST /measures/{id}/progress")
COMMANDS = ("find_problem", "dispatch_problem", "report_measure_progress")
READS = ("GET /problems/{id}", "GET /problems?cycle=", "GET /problems/{id}/history")


class BenchError(Exception):
    """Something other than a timing went wrong: the numbers would mean nothing."""


# --- the data the clients work on -------------------------------------------------------------


@dataclass
class Fixture:
    token: str
    cycle: UUID
    farms: list[UUID]
    leader: UUID
    read_problems: list[UUID]


def bootstrap(service: ClosedLoop) -> Fixture:
    """Through the command service: a token, a small organisation, a cycle, problems to read."""
    with acting_as("bench:setup"):
        _, token = service.issue_token(name="bench-admin", role=Role.ADMIN)
        root = service.register_unit(name="林业局党委", kind=UnitKind.COMMITTEE)
        farms = [
            service.register_unit(name=f"国有林场 {n}", kind=UnitKind.GRASSROOTS, parent_id=root.id)
            for n in range(1, FARMS + 1)
        ]
        leader = service.register_person(name="王林", unit_id=root.id, title="副局长")
        cycle = service.open_cycle(year=2026, name="2026年度闭环考核 压测")
        read_problems = []
        for n in range(READ_PROBLEMS):
            farm = farms[n % FARMS].id
            problem = service.find_problem(
                cycle_id=cycle.id,
                unit_id=farm,
                title=f"防火巡护记录不全 {n}",
                source=ProblemSource.INSPECTION,
                description="巡护日志缺页 部分巡护点未签到",
            )
            service.dispatch_problem(
                problem.id, to_unit_id=farm, requirement="两周内补齐并上报", deadline=DEADLINE
            )
            read_problems.append(problem.id)
    return Fixture(token, cycle.id, [f.id for f in farms], leader.id, read_problems)


def adopt_measures(service: ClosedLoop, fixture: Fixture, clients: int) -> list[list[UUID]]:
    """Fresh measures for each client, so each phase starts from the same short histories."""
    measures: list[list[UUID]] = [[] for _ in range(clients)]
    with acting_as("bench:setup"):
        for n in range(clients * MEASURES_PER_CLIENT):
            measures[n % clients].append(
                service.adopt_measure(
                    cycle_id=fixture.cycle,
                    title=f"增设巡护点 {n}",
                    deadline=DEADLINE,
                    lead_unit_id=fixture.farms[n % FARMS],
                    responsible_unit_ids=[fixture.farms[n % FARMS]],
                    responsible_leader_id=fixture.leader,
                    problem_ids=[fixture.read_problems[n % READ_PROBLEMS]],
                ).id
            )
    return measures


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Samples:
    """Latencies (seconds) per operation, and what went wrong."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None

    def add(self, label: str, seconds: float) -> None:
        self.latencies.setdefault(label, []).append(seconds)

    def fail(self, label: str, message: str) -> None:
        self.errors[label] = self.errors.get(label, 0) + 1
        if self.first_error is None:
            self.first_error = f"{label}: {message}"

    def merge(self, other: Samples) -> None:
        for label, values in other.latencies.items():
            self.latencies.setdefault(label, []).extend(values)
        for label, count in other.errors.items():
            self.errors[label] = self.errors.get(label, 0) + count
        self.first_error = self.first_error or other.first_error

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.latencies.values()) + sum(self.errors.values())


Step = Callable[[int, Samples], None]
"""One operation, the ``n``-th of its client: times itself into the samples."""


def run_clients(
    make_client: Callable[[int], tuple[Step, Callable[[], None]]],
    clients: int,
    seconds: float,
    max_operations: int,
) -> tuple[Samples, float]:
    """``clients`` threads run their steps until time or the shared count runs out."""
    issued = itertools.count()
    samples = [Samples() for _ in range(clients)]
    crashed: list[BaseException] = []
    ready = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(index: int) -> None:
        close: Callable[[], None] = lambda: None  # noqa: E731
        try:
            step, close = make_client(index)
            ready.wait()
            n = 0
            while time.perf_counter() < deadline[0] and next(issued) < max_operations:
                step(n, samples[index])
                n += 1
        except BaseException as error:
            crashed.append(error)
            ready.abort()  # nobody waits for a client that will never be ready
        finally:
            close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    deadline[0] = started + seconds
    with contextlib.suppress(threading.BrokenBarrierError):  # a client failed: raised below
        ready.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if crashed:
        raise BenchError(f"a client crashed: {crashed[0]!r}") from crashed[0]
    total = Samples()
    for s in samples:
        total.merge(s)
    return total, elapsed


class HttpClient:
    """One keep-alive connection, as one client of the API would hold it."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, samples: Samples, label: str, method: str, path: str, body: Any = None) -> Any:
        payload = None if body is None else json.dumps(body).encode()
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=payload, headers=self.headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.conn.close()  # reconnects on the next request
            samples.fail(label, repr(error))
            return None
        elapsed = time.perf_counter() - started
        if response.status >= 300:
            samples.fail(label, f"HTTP {response.status} {data[:300]!r}")
            return None
        samples.add(label, elapsed)
        return json.loads(data)

    def close(self) -> None:
        self.conn.close()


def http_writer(port: int, fixture: Fixture, measures: list[list[UUID]]) -> Callable[[int], Any]:
    def make(index: int) -> tuple[Step, Callable[[], None]]:
        client = HttpClient(port, fixture.token)
        farm = str(fixture.farms[index % FARMS])
        mine = measures[index]
        last_problem: list[str | None] = [None]

        def step(n: int, samples: Samples) -> None:
            op = n % 3
            if op == 0 or last_problem[0] is None:
                created = client.call(
                    samples,
                    WRITES[0],
                    "POST",
                    "/problems",
                    {
                        "cycle_id": str(fixture.cycle),
                        "unit_id": farm,
                        "title": f"巡查发现隐患 {index}-{n}",
                        "source": "inspection",
                        "description": "林下可燃物堆积",
                    },
                )
                last_problem[0] = created["id"] if created else None
            elif op == 1:
                client.call(
                    samples,
                    WRITES[1],
                    "POST",
                    f"/problems/{last_problem[0]}/dispatch",
                    {
                        "to_unit_id": farm,
                        "requirement": "限期清理并上报",
                        "deadline": DEADLINE.isoformat(),
                    },
                )
            else:
                client.call(
                    samples,
                    WRITES[2],
                    "POST",
                    f"/measures/{mine[n // 3 % len(mine)]}/progress",
                    {"percent": n % 101, "note": "按计划推进"},
                )

        return step, client.close

    return make


def http_reader(port: int, fixture: Fixture) -> Callable[[int], Any]:
    def make(index: int) -> tuple[Step, Callable[[], None]]:
        client = HttpClient(port, fixture.token)
        problems = fixture.read_problems

        def step(n: int, samples: Samples) -> None:
            problem = problems[(index * 7 + n) % len(problems)]
            op = n % 3
            if op == 0:
                client.call(samples, READS[0], "GET", f"/problems/{problem}")
            elif op == 1:
                client.call(samples, READS[1], "GET", f"/problems?cycle={fixture.cycle}")
            else:
                client.call(samples, READS[2], "GET", f"/problems/{problem}/history")

        return step, client.close

    return make


def direct_writer(
    service: ClosedLoop, fixture: Fixture, measures: list[list[UUID]]
) -> Callable[[int], Any]:
    def make(index: int) -> tuple[Step, Callable[[], None]]:
        farm = fixture.farms[index % FARMS]
        mine = measures[index]
        last_problem: list[UUID | None] = [None]

        def timed(samples: Samples, label: str, command: Callable[[], Any]) -> Any:
            started = time.perf_counter()
            try:
                with acting_as(ACTOR, uuid.uuid4().hex):  # as each request gets its own
                    result = command()
            except Exception as error:
                samples.fail(label, repr(error))
                return None
            samples.add(label, time.perf_counter() - started)
            return result

        def step(n: int, samples: Samples) -> None:
            op = n % 3
            if op == 0 or last_problem[0] is None:
                found = timed(
                    samples,
                    COMMANDS[0],
                    lambda: service.find_problem(
                        cycle_id=fixture.cycle,
                        unit_id=farm,
                        title=f"巡查发现隐患 {index}-{n}",
                        source=ProblemSource.INSPECTION,
                        description="林下可燃物堆积",
                    ),
                )
                last_problem[0] = found.id if found else None
            elif op == 1:
                problem = last_problem[0]
                timed(
                    samples,
                    COMMANDS[1],
                    lambda: service.dispatch_problem(
                        problem, to_unit_id=farm, requirement="限期清理并上报", deadline=DEADLINE
                    ),
                )
            else:
                timed(
                    samples,
                    COMMANDS[2],
                    lambda: service.report_measure_progress(
                        mine[n // 3 % len(mine)], percent=n % 101, note="按计划推进"
                    ),
                )

        return step, lambda: None

    return make


# --- the stores and the server ----------------------------------------------------------------


@contextmanager
def sqlite_settings() -> Iterator[Settings]:
    with tempfile.TemporaryDirectory(prefix="closedloop-bench-api-") as tmp:
        yield Settings(database_url=f"sqlite:///{Path(tmp) / 'closedloop.db'}")


@contextmanager
def postgres_settings(url: str, pool_size: int) -> Iterator[Settings]:
    dbname = str(conninfo_to_dict(url).get("dbname", "postgres"))
    maintenance = make_conninfo(url, dbname="postgres")
    created_database = False
    with psycopg.connect(maintenance, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            created_database = True
    schema = f"bench_api_{uuid.uuid4().hex[:10]}"
    try:
        yield Settings(
            database_url=url,
            database_schema=schema,
            postgres_pool_size=pool_size,
            postgres_max_overflow=pool_size,
        )
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        if created_database:
            with psycopg.connect(maintenance, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(dbname)
                    )
                )


def settings_environment(settings: Settings) -> dict[str, str]:
    """The settings as the ``CLOSEDLOOP_*`` variables a deployment would set."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(prefix)}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"{prefix}{name.upper()}"] = str(value)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    command: list[str]

    def get(self, path: str) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise BenchError(f"GET {path}: HTTP {response.status} {body[:300]!r}")
            return json.loads(body)
        finally:
            conn.close()

    def catch_up(self) -> None:
        """Wait until the server's catalogue has applied every recorded event."""
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while True:
            health = self.get("/health")
            if health["catalogue_position"] >= health["head_position"]:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"the catalogue did not catch up: {health}")
            time.sleep(0.05)


@contextmanager
def server(settings: Settings, workdir: Path, access_log: bool) -> Iterator[Server]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "closedloop.api.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "info" if access_log else "warning",
        *([] if access_log else ["--no-access-log"]),
    ]
    log = workdir / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=workdir,  # no stray .env or ./closedloop.db from wherever the bench started
            env=settings_environment(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Server(port, process, log, command)
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if process.poll() is not None:
                raise BenchError(f"the server exited ({process.returncode}):\n{_tail(log)}")
            try:
                running.get("/health")
                break
            except (OSError, http.client.HTTPException, BenchError):
                if time.monotonic() > deadline:
                    raise BenchError(f"the server did not answer /health:\n{_tail(log)}") from None
                time.sleep(0.1)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- one store, several rounds ------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    operations: tuple[str, ...]
    rates: list[float] = field(default_factory=list)
    samples: Samples = field(default_factory=Samples)


def bench_store(store: str, settings: Settings, args: argparse.Namespace) -> list[Phase]:
    ensure_database_ready(settings)
    service = ClosedLoop(env=application_env(settings))
    try:
        fixture = bootstrap(service)
        with (
            tempfile.TemporaryDirectory(prefix="closedloop-bench-server-") as tmp,
            server(settings, Path(tmp), args.access_log) as api,
        ):
            print(f"[{store}] server: {' '.join(api.command[1:])}", flush=True)
            phases = {
                "HTTP writes": Phase("HTTP writes", WRITES),
                "direct writes": Phase("direct writes", COMMANDS),
                "HTTP reads": Phase("HTTP reads", READS),
            }

            def make(name: str) -> Callable[[int], Any]:
                if name == "HTTP reads":
                    return http_reader(api.port, fixture)
                measures = adopt_measures(service, fixture, args.clients)
                if name == "HTTP writes":
                    return http_writer(api.port, fixture, measures)
                return direct_writer(service, fixture, measures)

            order = list(phases)
            for round_no in range(args.rounds):
                shift = round_no % len(order)
                for name in order[shift:] + order[:shift]:
                    phase = phases[name]
                    api.catch_up()
                    run_clients(make(name), args.clients, WARM_UP_SECONDS, args.max_requests)
                    api.catch_up()
                    samples, elapsed = run_clients(
                        make(name), args.clients, args.seconds, args.max_requests
                    )
                    phase.samples.merge(samples)
                    phase.rates.append(len_ok(samples) / elapsed)
                    errors = sum(samples.errors.values())
                    print(
                        f"[{store}] round {round_no + 1}: {name:14} "
                        f"{phase.rates[-1]:8.0f}/s  ({len_ok(samples)} ok, {errors} errors)",
                        flush=True,
                    )
            api.catch_up()
            return list(phases.values())
    finally:
        service.close()


def len_ok(samples: Samples) -> int:
    return sum(len(v) for v in samples.latencies.values())


# --- report -----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1] * 1000


def report(results: dict[str, list[Phase]], args: argparse.Namespace) -> None:
    print()
    print(
        f"closedloop API benchmark: {args.clients} clients, {args.rounds} round(s) of "
        f"{args.seconds:g} s per phase; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; server and clients share this machine"
    )
    print("ops/s: median over rounds (a row per operation: its share of the mix);")
    print("p50/p99: over every sample of every round, in milliseconds")
    header = (
        f"{'store':9} {'phase':14} {'operation':31} {'count':>7} {'ops/s':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
    )
    print(header)
    print("-" * len(header))
    for store, phases in results.items():
        for phase in phases:
            total_rate = statistics.median(phase.rates)
            total_ok = len_ok(phase.samples)
            everything: list[float] = []
            for label in phase.operations:
                values = phase.samples.latencies.get(label, [])
                everything.extend(values)
                share = total_rate * len(values) / total_ok if total_ok else 0.0
                print(
                    f"{store:9} {phase.name:14} {label:31} {len(values):7} {share:8.0f} "
                    f"{percentile(values, 50):8.2f} {percentile(values, 99):8.2f} "
                    f"{phase.samples.errors.get(label, 0):6}"
                )
            print(
                f"{store:9} {phase.name:14} {'= all (mix)':31} {len(everything):7} "
                f"{total_rate:8.0f} {percentile(everything, 50):8.2f} "
                f"{percentile(everything, 99):8.2f} {sum(phase.samples.errors.values()):6}"
            )
        print("-" * len(header))
    for store, phases in results.items():
        by_name = {phase.name: phase for phase in phases}
        http_rate = statistics.median(by_name["HTTP writes"].rates)
        direct_rate = statistics.median(by_name["direct writes"].rates)
        ratios = [
            h / d
            for h, d in zip(
                by_name["HTTP writes"].rates, by_name["direct writes"].rates, strict=True
            )
        ]
        print(
            f"{store}: HTTP writes/s / direct commands/s = {http_rate:.0f} / {direct_rate:.0f} "
            f"= {http_rate / direct_rate:.2f}  (per round: "
            f"{', '.join(f'{r:.2f}' for r in ratios)})"
        )
    for store, phases in results.items():
        for phase in phases:
            if phase.samples.first_error:
                print(f"{store} {phase.name}: first error: {phase.samples.first_error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per phase per round")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (threads)")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=1, help="phases interleaved, rotated")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=1_000_000,
        help="stop a phase after this many operations even if time is left",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CLOSEDLOOP_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL,
    )
    parser.add_argument(
        "--access-log", action="store_true", help="let uvicorn log every request (as `serve`)"
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.rounds < 1 or args.seconds <= 0:
        parser.error("--clients and --rounds must be >= 1, --seconds > 0")

    results: dict[str, list[Phase]] = {}
    if args.store in ("postgres", "both"):
        with postgres_settings(args.postgres_url, pool_size=max(8, args.clients)) as settings:
            results["postgres"] = bench_store("postgres", settings, args)
    if args.store in ("sqlite", "both"):
        with sqlite_settings() as settings:
            results["sqlite"] = bench_store("sqlite", settings, args)
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
