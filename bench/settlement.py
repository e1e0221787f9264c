"""How long does settling one stage take, beside reading the same events raw?

Run: ``python bench/settlement.py [--units 500] [--targets 20] [--seed 1] [--rounds 5]
[--store sqlite|postgres|both] [--reuse] [--postgres-url URL]``

For each store it:

1. builds a cycle through the command service, deterministically from the seed: ``--units``
   grassroots units each carrying ``--targets`` targets (16 common targets set for every unit,
   the rest unit targets of its own, all with milestones); Q1 effects confirmed by
   self-assessment (95 %) and by inspection (90 %) for every unit and target; a Q1 meeting per
   25 units where five committee members score each report (four for every fifth unit); a
   measure per unit due in Q1 (most completed), a prominent problem dispatched to and resolved
   by every tenth unit, a rectification ordered for every tenth unit (half completed); and a
   policy with a rank reward and top- and bottom-share awards. 500 units x 20 targets give
   about 29,000 events. Generation uses the demo generator's speed-ups (its in-memory aggregate
   cache and relaxed commit durability). The store is kept for later runs: on SQLite the file
   ``/tmp/closedloop_bench_settlement.db``, on PostgreSQL the database
   ``closedloop_bench_settlement`` (created if missing). ``--reuse`` uses a store generated
   earlier for the same units, targets and seed as it is; without it the store is generated
   anew;
2. measures on a copy of that store (a copied SQLite file; on PostgreSQL a database created
   from it as a template), so every run starts from the same state, ``--rounds`` rounds of:

   * **raw**: reading notifications 1..head with ``recorder.select_notifications`` in pages of
     5,000 (the page ``settle_stage`` reads with) and nothing else;
   * **settle**: ``settle_stage(Q1)`` as the scheduler calls it: reading the same range,
     decoding and replaying the cycle's aggregates, digesting their records, computing every
     unit's figures and awards, and saving at once the settlement, the cycle, every target
     sealed for the stage and the awards;
   * on its own, for the breakdown: ``_settlement_inputs`` (read, decode, replay, digest) and
     ``compute_stage`` over those inputs; and ``verify_settlement`` of the new settlement;
   * ``reopen_stage`` (not timed), so the next round settles Q1 again (the next round number).
     Settling and reopening each add an event per target to the log, so every round reads a
     longer log than the one before (its head is printed with it).

   It prints the median of each over the rounds, and the median of the per-round ratios
   settle / raw (both measured in the same round, so a slow moment slows both).

The copy is dropped at the end; the generated store stays.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

# The demo generator's speed-ups: an in-memory aggregate cache and relaxed commit durability.
from closedloop.demo_generator import _aggregate_cache, _commit_durability
from closedloop.domain.context import acting_as
from closedloop.domain.cycles import Cycle
from closedloop.domain.duties import DutyTier
from closedloop.domain.problems import ProblemSource, Severity
from closedloop.domain.scoring import AwardRule, ScoringPolicy
from closedloop.domain.service import ClosedLoop
from closedloop.domain.settlement import Settlement, compute_stage
from closedloop.domain.targets import Direction, EffectMethod, Indicator
from closedloop.domain.units import UnitKind
from closedloop.settings import Settings
from closedloop.store import application_env, ensure_database_ready
from closedloop.store.sql import open_database

SQLITE_PATH = Path("/tmp/closedloop_bench_settlement.db")
SQLITE_COPY = Path("/tmp/closedloop_bench_settlement.copy.db")
POSTGRES_DATABASE = "closedloop_bench_settlement"
POSTGRES_COPY = "closedloop_bench_settlement_copy"
DEFAULT_POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
META_TABLE = "bench_settlement_meta"
PAGE = 5000  # settle_stage reads the log in pages of this size
SHANGHAI = ZoneInfo("Asia/Shanghai")
SETTLE_AT = datetime(2026, 4, 1, 9, tzinfo=SHANGHAI)
STAGE = "Q1"
COMMON_TARGETS = 16
MEETING_GROUP = 25
RATERS = 5
YEAR = 2026
POLICY = ScoringPolicy(
    award_rules=(
        AwardRule("季度排名前三表扬", "reward", "rank", Decimal(3), Decimal(2)),
        AwardRule("季度前10%奖励", "reward", "top_share", Decimal("0.1"), Decimal(1)),
        AwardRule("季度后10%约谈", "penalty", "bottom_share", Decimal("0.1")),
    )
)
LEVELS = ("好", "较好", "一般", "差")
T = TypeVar("T")


# --- the generated cycle ------------------------------------------------------------------------


class _Cycle:
    """One Q1 of ``units`` units x ``targets`` targets, recorded through the command service."""

    def __init__(self, app: ClosedLoop, *, units: int, targets: int, seed: int) -> None:
        self.app = app
        self.rng = random.Random(seed)
        self.size = units
        self.per_unit = targets
        self.prefix = f"bench-settlement-s{seed}"
        self.units: list[UUID] = []
        self.heads: list[UUID] = []
        self.raters: list[UUID] = []
        self.targets: list[tuple[UUID, Indicator, list[UUID]]] = []
        self.cycle = UUID(int=0)

    @contextmanager
    def acting(self, actor: str, step: str) -> Iterator[None]:
        with acting_as(actor, correlation_id=f"{self.prefix}/{step}"):
            yield

    def run(self) -> UUID:
        self.organise()
        self.set_targets()
        self.confirm_effects()
        self.hold_meetings()
        self.follow_up()
        return self.cycle

    def organise(self) -> None:
        with self.acting("admin", "organisation"):
            root = self.app.register_unit(name="党委", kind=UnitKind.COMMITTEE).id
            self.raters = [
                self.app.register_person(name=f"党委委员{n}", unit_id=root).id
                for n in range(1, RATERS + 1)
            ]
            self.cycle = self.app.open_cycle(year=YEAR, name=f"{YEAR}年度", policy=POLICY).id
            for n in range(self.size):
                unit = self.app.register_unit(
                    name=f"基层单位{n:04d}", kind=UnitKind.GRASSROOTS, parent_id=root
                ).id
                head = self.app.register_person(name=f"负责人{n:04d}", unit_id=unit).id
                self.app.assign_duty(
                    person_id=head,
                    unit_id=unit,
                    tier=DutyTier.FIRST_RESPONSIBLE,
                    effective_from=date(YEAR, 1, 1),
                )
                self.units.append(unit)
                self.heads.append(head)

    def set_targets(self) -> None:
        with self.acting("staff:organisation-dept", "targets"):
            for n in range(min(COMMON_TARGETS, self.per_unit)):
                indicator = self.indicator(n)
                target = self.app.set_common_target(
                    cycle_id=self.cycle,
                    title=f"共性目标{n + 1}",
                    indicator=indicator,
                    points=Decimal(self.rng.choice((5, 10, 15))),
                    applies_to=self.units,
                ).id
                self.app.set_milestones(target, milestones=self.milestones(indicator))
                self.targets.append((target, indicator, self.units))
            for n, unit in enumerate(self.units):
                for k in range(self.per_unit - COMMON_TARGETS):
                    indicator = self.indicator(n + k)
                    target = self.app.set_unit_target(
                        cycle_id=self.cycle,
                        unit_id=unit,
                        title=f"单位{n:04d}特色目标{k + 1}",
                        indicator=indicator,
                        points=Decimal(self.rng.choice((3, 5))),
                    ).id
                    self.app.set_milestones(target, milestones=self.milestones(indicator))
                    self.targets.append((target, indicator, [unit]))

    def indicator(self, n: int) -> Indicator:
        if n % 3 == 2:
            return Indicator.qualitative(metric="工作评定", levels=LEVELS)
        direction = Direction.LOWER_IS_BETTER if n % 5 == 4 else Direction.HIGHER_IS_BETTER
        return Indicator.quantitative(
            metric="完成量", target_value=Decimal(100), direction=direction
        )

    @staticmethod
    def milestones(indicator: Indicator) -> dict[str, Decimal | str]:
        if indicator.levels:
            return {"Q1": "较好", "Q2": "较好", "Q3": "好", "Q4": "好"}
        return {f"Q{q}": Decimal(25 * q) for q in range(1, 5)}

    def result(self, indicator: Indicator) -> Decimal | str:
        if indicator.levels:
            return self.rng.choice(LEVELS)
        return Decimal(self.rng.randint(5, 40))

    def confirm_effects(self) -> None:
        for target, indicator, units in self.targets:
            for unit in units:
                for method, share in (
                    (EffectMethod.SELF_ASSESSMENT, 0.95),
                    (EffectMethod.INSPECTION, 0.9),
                ):
                    if self.rng.random() >= share:
                        continue
                    with self.acting("inspector:discipline-office", f"effects/{target}"):
                        self.app.confirm_effect(
                            target,
                            stage=STAGE,
                            method=method,
                            unit_id=unit,
                            result=self.result(indicator),
                            evidence="季度考核材料",
                        )

    def hold_meetings(self) -> None:
        for start in range(0, self.size, MEETING_GROUP):
            group = range(start, min(start + MEETING_GROUP, self.size))
            with self.acting("staff:organisation-dept", f"meeting/{start}"):
                meeting = self.app.convene_meeting(
                    cycle_id=self.cycle,
                    stage=STAGE,
                    title=f"一季度述职评议会（第{start // MEETING_GROUP + 1}组）",
                    held_on=date(YEAR, 3, 25),
                    attendee_ids=[*self.raters, *(self.heads[n] for n in group)],
                ).id
                for n in group:
                    unit = self.units[n]
                    self.app.deliver_report(
                        meeting, unit_id=unit, reporter_id=self.heads[n], summary="一季度述职"
                    )
                    raters = self.raters if n % 5 else self.raters[:-1]
                    for rater in raters:
                        score = Decimal(self.rng.randint(60, 100))
                        self.app.cast_score(meeting, rater_id=rater, unit_id=unit, score=score)

    def follow_up(self) -> None:
        with self.acting("staff:organisation-dept", "follow-up"):
            for n, unit in enumerate(self.units):
                measure = self.app.adopt_measure(
                    cycle_id=self.cycle,
                    title=f"单位{n:04d}季度整改措施",
                    deadline=date(YEAR, 3, self.rng.randint(1, 31)),
                    lead_unit_id=unit,
                    responsible_unit_ids=[unit],
                    responsible_leader_id=self.raters[n % RATERS],
                    target_id=self.targets[n % len(self.targets)][0],
                ).id
                if self.rng.random() < 0.8:
                    self.app.complete_measure(measure, evidence="措施完成报告")
                if n % 10 == 0:
                    self.prominent_problem(unit)
                if n % 10 == 5:
                    self.rectification(unit, finished=n % 20 == 5)

    def prominent_problem(self, unit: UUID) -> None:
        found = datetime(YEAR, 2, 10, 10, tzinfo=SHANGHAI)
        problem = self.app.find_problem(
            cycle_id=self.cycle,
            unit_id=unit,
            title="安全隐患",
            source=ProblemSource.INSPECTION,
            severity=Severity.PROMINENT,
            found_at=found,
        ).id
        self.app.dispatch_problem(
            problem, to_unit_id=unit, requirement="限期消除", deadline=date(YEAR, 3, 20)
        )
        self.app.resolve_problem(
            problem, evidence="隐患已消除", resolved_at=found + timedelta(days=20)
        )

    def rectification(self, unit: UUID, *, finished: bool) -> None:
        ordered = self.app.order_rectification(
            cycle_id=self.cycle,
            unit_id=unit,
            requirement="巡察反馈问题整改",
            deadline=date(YEAR, 3, 25),
        ).id
        if finished:
            self.app.complete_rectification(ordered, evidence="整改报告")


# --- the stores ---------------------------------------------------------------------------------


@dataclass
class Store:
    kind: str
    settings: Settings
    server_url: str = ""
    events: int = 0
    generated_seconds: float = 0.0
    generated_now: bool = False
    cycle: UUID | None = None


def sqlite_settings(path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{path}", run_projections=False, run_scheduler=False)


def postgres_settings(server_url: str, database: str) -> Settings:
    params = conninfo_to_dict(server_url)
    user = params.get("user", "postgres")
    password = f":{params['password']}" if params.get("password") else ""
    host, port = params.get("host", "127.0.0.1"), params.get("port", "5432")
    url = f"postgresql://{user}{password}@{host}:{port}/{database}"
    return Settings(database_url=url, run_projections=False, run_scheduler=False)


def admin_connection(server_url: str) -> psycopg.Connection[Any]:
    params = conninfo_to_dict(server_url)
    return psycopg.connect(make_conninfo("", **{**params, "dbname": "postgres"}), autocommit=True)


def recreate_postgres(server_url: str, database: str, *, template: str | None = None) -> None:
    with admin_connection(server_url) as conn:
        name = sql.Identifier(database)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        if template is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
        else:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(name, sql.Identifier(template))
            )


def drop_postgres(server_url: str, database: str) -> None:
    with admin_connection(server_url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def postgres_exists(server_url: str, database: str) -> bool:
    with admin_connection(server_url) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
        return found.fetchone() is not None


def read_meta(settings: Settings) -> dict[str, Any] | None:
    db = open_database(settings)
    try:
        with db.transaction() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {META_TABLE} (units INTEGER NOT NULL, targets "
                "INTEGER NOT NULL, seed BIGINT NOT NULL, events BIGINT NOT NULL, "
                "generated_seconds TEXT NOT NULL, cycle_id TEXT NOT NULL)"
            )
        return db.query_one(f"SELECT * FROM {META_TABLE}")
    finally:
        db.close()


def write_meta(store: Store, *, units: int, targets: int, seed: int) -> None:
    read_meta(store.settings)
    db = open_database(store.settings)
    try:
        with db.transaction() as cursor:
            cursor.execute(f"DELETE FROM {META_TABLE}")
            cursor.execute(
                f"INSERT INTO {META_TABLE} VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    units,
                    targets,
                    seed,
                    store.events,
                    f"{store.generated_seconds:.3f}",
                    str(store.cycle),
                ],
            )
    finally:
        db.close()


def prepare(store: Store, *, units: int, targets: int, seed: int, reuse: bool) -> None:
    """Reuse the store generated earlier for this shape and seed, or generate it now."""
    exists = (
        SQLITE_PATH.exists()
        if store.kind == "sqlite"
        else postgres_exists(store.server_url, POSTGRES_DATABASE)
    )
    meta = read_meta(store.settings) if reuse and exists else None
    if meta and (meta["units"], meta["targets"], meta["seed"]) == (units, targets, seed):
        store.events, store.cycle = int(meta["events"]), UUID(str(meta["cycle_id"]))
        store.generated_seconds = float(meta["generated_seconds"])
        return
    generate(store, units=units, targets=targets, seed=seed)


def generate(store: Store, *, units: int, targets: int, seed: int) -> None:
    if store.kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)
    else:
        recreate_postgres(store.server_url, POSTGRES_DATABASE)
    ensure_database_ready(store.settings)
    app = ClosedLoop(env=application_env(store.settings))
    try:
        print(f"{store.kind}: generating {units} units x {targets} targets ...", flush=True)
        started = time.perf_counter()
        with _aggregate_cache(app), _commit_durability(app, relaxed=True):
            store.cycle = _Cycle(app, units=units, targets=targets, seed=seed).run()
        store.generated_seconds = time.perf_counter() - started
        store.events, store.generated_now = app.head_position(), True
    finally:
        app.close()
    print(f"{store.kind}: {store.events:,} events in {store.generated_seconds:.1f} s", flush=True)
    write_meta(store, units=units, targets=targets, seed=seed)


@contextmanager
def working_copy(store: Store) -> Iterator[Settings]:
    """A copy of the generated store to settle in, dropped afterwards."""
    if store.kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_COPY}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(SQLITE_PATH, SQLITE_COPY)
        try:
            yield sqlite_settings(SQLITE_COPY)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{SQLITE_COPY}{suffix}").unlink(missing_ok=True)
        return
    recreate_postgres(store.server_url, POSTGRES_COPY, template=POSTGRES_DATABASE)
    try:
        yield postgres_settings(store.server_url, POSTGRES_COPY)
    finally:
        drop_postgres(store.server_url, POSTGRES_COPY)


# --- measurements -------------------------------------------------------------------------------


@dataclass
class Round:
    head: int
    raw: float
    settle: float
    inputs: float
    compute: float
    verify: float
    events_read: int
    units: int
    awards: int

    @property
    def ratio(self) -> float:
        return self.settle / self.raw


@dataclass
class Result:
    store: Store
    rounds: list[Round] = field(default_factory=list)

    def median(self, measure: Callable[[Round], float]) -> float:
        return statistics.median(measure(r) for r in self.rounds)


def timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    value = call()
    return value, time.perf_counter() - started


def read_raw(app: ClosedLoop, head: int) -> int:
    """Notifications 1..head in pages, nothing else: the floor any settlement stands on."""
    count, start = 0, 1
    while start <= head:
        page = app.recorder.select_notifications(start, PAGE, stop=head)
        if not page:
            break
        count += len(page)
        start = page[-1].id + 1
    return count


def one_round(app: ClosedLoop, cycle: UUID) -> Round:
    head = app.head_position()
    read, raw = timed(lambda: read_raw(app, head))
    assert read == head, (read, head)
    with acting_as("scheduler:bench"):
        outcome, settle = timed(
            lambda: app.settle_stage(cycle, stage=STAGE, now=SETTLE_AT, zone=SHANGHAI)
        )
    assert outcome.created, outcome
    settled = app.get(Settlement, outcome.settlement_id)
    through = settled.through_position
    inputs, inputs_seconds = timed(lambda: app._settlement_inputs(cycle, through=through))
    policy = inputs.cycle.policy_for(STAGE)
    _, compute = timed(lambda: compute_stage(inputs.cycle, STAGE, inputs.aggregates, policy))
    check, verify = timed(lambda: app.verify_settlement(outcome.settlement_id))
    assert check.matches, check.differences[:3]
    with acting_as("admin:bench"):
        app.reopen_stage(cycle, stage=STAGE, reason="基准测试：重新结算")
    return Round(
        head=head,
        raw=raw,
        settle=settle,
        inputs=inputs_seconds,
        compute=compute,
        verify=verify,
        events_read=inputs.events_read,
        units=len(settled.units),
        awards=outcome.awards,
    )


def measure(store: Store, rounds: int) -> Result:
    result = Result(store)
    assert store.cycle is not None, "prepare() first"
    cycle = store.cycle
    with working_copy(store) as settings:
        app = ClosedLoop(env=application_env(settings))
        try:
            if app.get(Cycle, cycle).is_settled(STAGE):  # a store from an older bench
                with acting_as("admin:bench"):
                    app.reopen_stage(cycle, stage=STAGE, reason="基准测试：重新结算")
            for n in range(1, rounds + 1):
                result.rounds.append(one_round(app, cycle))
                r = result.rounds[-1]
                print(
                    f"  {store.kind} round {n}: head {r.head:,}, inputs {r.events_read:,}: "
                    f"raw {r.raw:.3f} s, settle {r.settle:.3f} s "
                    f"({r.ratio:.1f}x raw), verify {r.verify:.3f} s",
                    flush=True,
                )
        finally:
            app.close()
    return result


# --- the report ---------------------------------------------------------------------------------


def report(results: list[Result], command: str, args: argparse.Namespace) -> None:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    print()
    print(f"command: {command}")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    print(
        f"cycle: {args.units} units x {args.targets} targets, seed {args.seed}; settling {STAGE}; "
        f"medians of {args.rounds} rounds; page {PAGE}"
    )
    print()
    print(
        f"{'store':<9}{'events':>9}{'generated in':>16}{'inputs':>8}{'units':>7}{'awards':>8}"
        f"{'raw s':>8}{'settle s':>10}{'x raw':>7}{'inputs s':>10}{'compute s':>11}"
        f"{'save+ s':>9}{'verify s':>10}"
    )
    for r in results:
        s = r.store
        when = f"{s.generated_seconds:.1f} s" + ("" if s.generated_now else " (cached)")
        settle, inputs, compute = (
            r.median(lambda x: x.settle),
            r.median(lambda x: x.inputs),
            r.median(lambda x: x.compute),
        )
        first = r.rounds[0]
        print(
            f"{s.kind:<9}{first.head:>9,}{when:>16}{first.events_read:>8,}{first.units:>7}"
            f"{first.awards:>8}{r.median(lambda x: x.raw):>8.3f}{settle:>10.3f}"
            f"{r.median(lambda x: x.ratio):>7.1f}{inputs:>10.3f}{compute:>11.3f}"
            f"{max(0.0, settle - inputs - compute):>9.3f}{r.median(lambda x: x.verify):>10.3f}"
        )
    print()
    print(
        "events: the log's head before the first settlement; inputs: the stored events of the "
        "cycle's aggregates a settlement reads; raw: reading 1..head with nothing else; "
        "x raw: median of per-round settle/raw; inputs s / compute s: _settlement_inputs and "
        "compute_stage timed on their own; save+ s: settle minus both (awards, events, save)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=500)
    parser.add_argument("--targets", type=int, default=20, help="targets per unit")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--reuse", action="store_true", help="reuse a store generated earlier")
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_SERVER,
        help=f"the server (its databases {POSTGRES_DATABASE} and {POSTGRES_COPY} are replaced)",
    )
    args = parser.parse_args(argv)
    if args.targets < 1 or args.units < 1 or args.rounds < 1:
        parser.error("--units, --targets and --rounds must be positive")
    command = " ".join(["python", "bench/settlement.py", *(argv or sys.argv[1:])])
    kinds = ("sqlite", "postgres") if args.store == "both" else (args.store,)
    results = []
    for kind in kinds:
        if kind == "sqlite":
            store = Store(kind, sqlite_settings(SQLITE_PATH))
        else:
            store = Store(
                kind,
                postgres_settings(args.postgres_url, POSTGRES_DATABASE),
                server_url=args.postgres_url,
            )
        prepare(store, units=args.units, targets=args.targets, seed=args.seed, reuse=args.reuse)
        results.append(measure(store, args.rounds))
    report(results, command, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
