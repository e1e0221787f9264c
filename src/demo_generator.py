"""A generated assessment year at scale: ``closedloop demo --units N --seed S``.

Where :mod:`closedloop.demo` scripts one bureau by hand, this generates a year for an
organisation of any size (hundreds of units) from a seed, through the command service only, for
tests and benchmarks. The same seed gives the same commands in the same order, with the same
actors, correlation ids, names, values and dates; only generated ids and recorded timestamps
differ between two runs.

The year, quarter by quarter: problems found (sweeps, inspections, self-checks, meetings),
escalated when prominent or shared, dispatched with deadlines, measures adopted against them or
for targets, progress reported twice a month, most completed, some cancelled, some overdue;
problems resolved, a few reopened; quarterly meetings where each first responsible person
reports and every other attendee scores on the spot (never their own unit), with corrections and
reviews; rectifications ordered, completed, rejected and verified; effects confirmed by
self-assessment and by inspection for most (unit, target, stage), a few left missing; Q1 to Q3
closed, rewards and penalties issued, one revoked; Q4 left open, its effects still coming in.
Along the way: a target revised, unit targets withdrawn, branches re-attached, first
responsible persons rotated.

Speed: a command loads what it touches and commits one transaction. While generating, the
service's repository keeps the aggregates it has loaded or saved in memory (nothing else writes
the new organisation's aggregates, so nothing goes stale), and the store is asked not to wait
for each commit to reach the disk (SQLite ``synchronous=NORMAL`` in WAL mode, PostgreSQL
``synchronous_commit=off``): every transaction stays atomic and the store consistent, a crash
during generation can only lose its last few commits. Both are restored at the end, and SQLite
checkpoints its log to disk.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import NamedTuple
from uuid import UUID

from eventsourcing.application import Cache
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from closedloop.demo import DemoSummary, StoreNotEmpty, events_per_type
from closedloop.domain.access import Role
from closedloop.domain.awards import AwardKind
from closedloop.domain.context import acting_as
from closedloop.domain.cycles import Stage, quarters
from closedloop.domain.duties import DutyTier
from closedloop.domain.problems import DISPATCHABLE_KINDS, ProblemSource, Severity
from closedloop.domain.scoring import AwardRule, ScoringPolicy
from closedloop.domain.service import ClosedLoop
from closedloop.domain.targets import Direction, EffectMethod, Indicator, IndicatorKind
from closedloop.domain.units import UnitKind

__all__ = ["DEFAULT_DENSITY", "MIN_UNITS", "Density", "generate_year"]

CST = timezone(timedelta(hours=8), "CST")  # Asia/Shanghai
SCHEDULER = "scheduler"
# Rules settlement applies to each quarter's ranking; from Q4 overdue measures cost more.
GENERATED_POLICY = ScoringPolicy(
    award_rules=(
        AwardRule("季度排名前三表扬", "reward", "rank", Decimal(3), Decimal(2)),
        AwardRule("季度后5%约谈", "penalty", "bottom_share", Decimal("0.05")),
    )
)
LATER_POLICY = ScoringPolicy(
    overdue_measure_deduction=Decimal(8), award_rules=GENERATED_POLICY.award_rules
)
ADMIN = "admin"
ORGANISATION = "staff:organisation-dept"  # 党委组织部: duties, targets, meetings, awards
INSPECTOR = "inspector:discipline-office"  # 纪委办公室: inspections and rectifications
MIN_UNITS = 8

Value = Decimal | str


@dataclass(frozen=True)
class Density:
    """How busy the year is. The defaults give about 420 events per unit (≥ 200,000 for 500)."""

    people_min: int = 2
    people_max: int = 4
    problems_per_unit: float = 7.0  # per quarter
    prominent_share: float = 0.12
    shared_share: float = 0.08
    dispatch_share: float = 0.7
    measure_share: float = 0.85  # of problems
    target_measures_per_unit: float = 0.8  # per quarter, for a target without a problem
    progress_share: float = 0.85  # at each mid-month and month-end checkpoint
    complete_share: float = 0.82  # at the deadline; cancelled or left overdue otherwise
    cancel_share: float = 0.04
    late_completion_share: float = 0.5  # per quarter, of overdue measures
    unmeasured_resolution_share: float = 0.45
    reopen_share: float = 0.04
    meeting_group_size: int = 25
    score_correction_share: float = 0.004
    review_share: float = 0.2
    meeting_problem_share: float = 0.05
    self_assessment_share: float = 0.95
    inspection_share: float = 0.9
    last_stage_effect_share: float = 0.7  # the last stage is still being confirmed
    effect_correction_share: float = 0.01
    rectifications_per_unit: float = 0.4  # per quarter
    rotation_share: float = 0.02  # of units with a first responsible person, per mid-year quarter


DEFAULT_DENSITY = Density()


def generate_year(
    app: ClosedLoop,
    *,
    units: int,
    seed: int,
    year: int = 2026,
    force: bool = False,
    density: Density = DEFAULT_DENSITY,
    relaxed_commits: bool = True,
) -> DemoSummary:
    """Record a generated assessment year for ``units`` units through the command service.

    Refuses a store that holds events unless ``force``. ``relaxed_commits=False`` keeps the
    store's usual commit durability (much slower on a disk that syncs each commit).
    """
    if units < MIN_UNITS:
        raise ValueError(f"a generated organisation has at least {MIN_UNITS} units, not {units}")
    start = app.head_position()
    if start > 0 and not force:
        raise StoreNotEmpty(start)
    with (
        _aggregate_cache(app),
        _commit_durability(app, relaxed=relaxed_commits),
    ):
        generator = _Year(app, random.Random(seed), units=units, seed=seed, year=year, d=density)
        generator.run()
    return DemoSummary(
        cycle_id=generator.ids["cycle"],
        root_unit_id=generator.ids[ROOT],
        admin_actor=ADMIN,
        events_per_type=events_per_type(app, after=start, page=5000),
        head_position=app.head_position(),
    )


# --- speed: an in-memory aggregate cache and relaxed commit durability ------------------------


@contextmanager
def _aggregate_cache(app: ClosedLoop) -> Iterator[None]:
    """Keep loaded and saved aggregates in memory, as they are, while generating."""
    repository = app.repository
    saved = (repository.cache, repository.fastforward, repository.deepcopy_from_cache)
    repository.cache = Cache()
    repository.fastforward = False  # the saved aggregate is put back in the cache on save
    repository.deepcopy_from_cache = False
    try:
        yield
    finally:
        repository.cache, repository.fastforward, repository.deepcopy_from_cache = saved


@contextmanager
def _commit_durability(app: ClosedLoop, *, relaxed: bool) -> Iterator[None]:
    datastore = getattr(app.recorder, "datastore", None)
    if relaxed and isinstance(datastore, SQLiteDatastore):
        with _sqlite_normal_sync(datastore):
            yield
    elif relaxed and isinstance(datastore, PostgresDatastore):
        with _postgres_async_commit(datastore):
            yield
    else:
        yield


@contextmanager
def _sqlite_normal_sync(datastore: SQLiteDatastore) -> Iterator[None]:
    pool = datastore.pool
    connections = [pool.get_connection() for _ in range(max(1, pool.num_in_pool))]
    try:
        cursor = connections[0].cursor()
        cursor.execute("PRAGMA synchronous")
        before = int(cursor.fetchone()[0])
        for connection in connections:
            connection.cursor().execute("PRAGMA synchronous=NORMAL")
    finally:
        for connection in connections:
            pool.put_connection(connection)
    try:
        yield
    finally:
        connections = [pool.get_connection() for _ in range(max(1, pool.num_in_pool))]
        try:
            for connection in connections:
                connection.cursor().execute(f"PRAGMA synchronous={before}")
            connections[0].cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            for connection in connections:
                pool.put_connection(connection)


@contextmanager
def _postgres_async_commit(datastore: PostgresDatastore) -> Iterator[None]:
    with datastore.get_connection():
        pass  # opens the pool
    _set_on_pooled(datastore, "SET synchronous_commit = off")
    try:
        yield
    finally:
        _set_on_pooled(datastore, "RESET synchronous_commit")


def _set_on_pooled(datastore: PostgresDatastore, statement: str) -> None:
    pool = datastore.pool
    available = max(1, int(pool.get_stats().get("pool_available", 1)))
    connections = [pool.getconn(timeout=10) for _ in range(available)]
    try:
        for connection in connections:
            connection.execute(statement)
    finally:
        for connection in connections:
            pool.putconn(connection)


# --- names ------------------------------------------------------------------------------------

ROOT = "committee"
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许"
    "韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚桂英"
    "华建国志红文斌海波鹏飞宇浩凯晨欣怡佳雪梅兰松柏林峰岩"
)
PLACES = (
    "东城", "西山", "南湖", "北岭", "青龙", "白云", "金沙", "石桥", "清河", "松山",
    "梅岭", "龙泉", "凤凰", "翠屏", "云溪", "桃源", "长岗", "玉泉", "黄土岭", "柳湾",
    "红星", "新华", "胜利", "前进", "光明", "和平", "东风", "朝阳", "向阳", "团结",
    "双河", "三江", "五里", "七星", "九龙", "十里铺", "马头", "牛角", "象山", "鹤岗",
)  # fmt: skip
BUSINESSES = (
    "分公司", "项目部", "电厂", "水厂", "物流中心", "检修公司",
    "供电所", "工程处", "运营中心", "维保站", "建材厂", "服务区",
)  # fmt: skip
DEPARTMENTS = (
    "办公室", "党委组织部", "党委宣传部", "纪委办公室", "人力资源部", "财务部", "审计部",
    "安全环保部", "工程管理部", "投资发展部", "法律事务部", "科技信息部", "经营管理部",
    "工会", "团委", "物资采购部",
)  # fmt: skip
REGIONS = ("东部", "西部", "南部", "北部", "中部", "沿江", "山区", "城区", "新区", "港区")
TITLES = {
    UnitKind.GENERAL_BRANCH: ("党总支书记", "党总支副书记", "组织委员", "宣传委员"),
    UnitKind.BRANCH: ("支部书记", "组织委员", "宣传委员", "纪检委员"),
    UnitKind.DEPARTMENT: ("部门负责人", "副部长", "主管", "科员"),
    UnitKind.GRASSROOTS: ("单位负责人", "副经理", "安全员", "技术员"),
}
COMMITTEE_TITLES = ("党委书记、董事长", "党委副书记、总经理", "党委委员、纪委书记")
HEAD_TIERS = {
    UnitKind.COMMITTEE: DutyTier.OVERALL_LEADERSHIP,
    UnitKind.DEPARTMENT: DutyTier.FIRST_RESPONSIBLE,
    UnitKind.GRASSROOTS: DutyTier.FIRST_RESPONSIBLE,
    UnitKind.GENERAL_BRANCH: DutyTier.DIRECT_RESPONSIBLE,
    UnitKind.BRANCH: DutyTier.SPECIFIC_RESPONSIBLE,
}
REPORTING_KINDS = (UnitKind.DEPARTMENT, UnitKind.GRASSROOTS)


def staff_of(unit: str) -> str:
    return f"staff:{unit}"


def person_actor(key: str) -> str:
    return f"person:{key}"


def _numbered(name: str, index: int, pool_size: int) -> str:
    return name if index < pool_size else f"{name}（{index // pool_size + 1}）"


# --- targets ----------------------------------------------------------------------------------

LEVELS_WORK = ("好", "较好", "一般", "差")
LEVELS_RATING = ("优秀", "良好", "合格", "不合格")
LEVELS_SITE = ("示范", "达标", "未达标")
LEVELS_COVERAGE = ("全覆盖", "基本覆盖", "未覆盖")


class CommonTemplate(NamedTuple):
    key: str
    title: str
    kinds: tuple[UnitKind, ...]
    share: float  # of the units of those kinds it applies to
    points: int
    indicator: Indicator
    milestones: tuple[Value, ...]  # Q1..Q4
    actor: str = ORGANISATION


def _quantitative(
    metric: str, unit: str, baseline: int, target: int, direction: Direction
) -> Indicator:
    return Indicator.quantitative(
        metric=metric,
        unit_of_measure=unit,
        baseline=Decimal(baseline),
        target_value=Decimal(target),
        direction=direction,
    )


_UP, _DOWN = Direction.HIGHER_IS_BETTER, Direction.LOWER_IS_BETTER
_B, _GB, _D, _G = UnitKind.BRANCH, UnitKind.GENERAL_BRANCH, UnitKind.DEPARTMENT, UnitKind.GRASSROOTS


def _steps(*values: int) -> tuple[Value, ...]:
    return tuple(Decimal(v) for v in values)


COMMON_TARGETS: tuple[CommonTemplate, ...] = (
    CommonTemplate(
        "t-study", "党员教育培训学时达标", (_B,), 1.0, 10,
        _quantitative("党员年度集中学习培训学时", "学时", 24, 32, _UP), _steps(8, 16, 24, 32),
    ),
    CommonTemplate(
        "t-meetings", "“三会一课”制度规范落实", (_GB, _B), 1.0, 15,
        Indicator.qualitative(metric="组织生活规范化程度", levels=LEVELS_WORK),
        ("较好", "较好", "好", "好"),
    ),
    CommonTemplate(
        "t-integrity", "党风廉政建设主体责任落实", (_D,), 1.0, 10,
        Indicator.qualitative(metric="主体责任落实评定", levels=LEVELS_RATING),
        ("良好", "良好", "良好", "优秀"), INSPECTOR,
    ),
    CommonTemplate(
        "t-safety", "安全生产责任事故控制", (_G,), 1.0, 15,
        _quantitative("一般及以上生产安全事故起数", "起", 2, 0, _DOWN), _steps(0, 0, 0, 0),
    ),
    CommonTemplate(
        "t-business", "年度经营目标完成率", (_G,), 1.0, 20,
        _quantitative("经营目标完成进度", "%", 92, 100, _UP), _steps(25, 50, 75, 100),
    ),
    CommonTemplate(
        "t-brand", "党建品牌示范点创建", (_B,), 0.6, 10,
        Indicator.qualitative(metric="示范点创建评定", levels=LEVELS_SITE),
        ("达标", "达标", "示范", "示范"),
    ),
    CommonTemplate(
        "t-ideology", "意识形态工作责任制落实", (_D, _GB), 1.0, 10,
        Indicator.qualitative(metric="责任制落实评定", levels=LEVELS_RATING),
        ("良好", "良好", "优秀", "优秀"),
    ),
    CommonTemplate(
        "t-grid", "基层治理网格化全覆盖", (_G,), 0.8, 10,
        Indicator.qualitative(metric="网格化覆盖情况", levels=LEVELS_COVERAGE),
        ("基本覆盖", "基本覆盖", "全覆盖", "全覆盖"),
    ),
    CommonTemplate(
        "t-satisfaction", "服务群众满意度", (_D, _G), 0.9, 10,
        _quantitative("服务对象满意率", "%", 90, 95, _UP), _steps(93, 94, 95, 95),
    ),
    CommonTemplate(
        "t-recruit", "发展党员计划完成率", (_GB, _B), 0.8, 5,
        _quantitative("年度发展党员计划完成率", "%", 80, 100, _UP), _steps(20, 45, 70, 100),
    ),
)  # fmt: skip
LINKS = (("t-business", "t-brand"), ("t-brand", "t-business"), ("t-safety", "t-meetings"))
REVISED_TARGET = "t-study"
REVISION = (
    _quantitative("党员年度集中学习培训学时", "学时", 24, 40, _UP),
    _steps(10, 20, 30, 40),
    "落实上级《党员教育培训工作要点》：党员年度集中学习培训不少于40学时",
    "目标值上调为40学时，季度分解同步调整",
)


class UnitTemplate(NamedTuple):
    title: str
    contributes_to: str
    metric: str
    unit_of_measure: str  # "" for a qualitative indicator with LEVELS_SITE
    low: int  # target value range, cumulative over the year
    high: int


UNIT_TARGETS: tuple[UnitTemplate, ...] = (
    UnitTemplate("党员先锋岗创建", "t-brand", "先锋岗创建评定", "", 0, 0),
    UnitTemplate("党员“双培养”工程", "t-study", "培养业务骨干人数", "人", 4, 12),
    UnitTemplate("隐患排查党员先锋队", "t-safety", "排查整改隐患数", "项", 40, 120),
    UnitTemplate("“党建+”降本增效", "t-business", "降本增效金额", "万元", 50, 500),
    UnitTemplate("主题党日特色活动", "t-meetings", "开展特色活动场次", "场", 8, 16),
)


# --- the generator's own record of what it has created ------------------------------------------


@dataclass(slots=True)
class _Unit:
    key: str
    name: str
    kind: UnitKind
    parent: str | None
    performance: float  # -1 (weak) .. 1 (strong): drives results and scores
    leader: str = ""  # the committee member in charge (分管领导)
    people: list[str] = field(default_factory=list)
    head: str = ""
    head_duty: str = ""
    targets: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Target:
    key: str
    title: str
    indicator: Indicator
    points: Decimal
    units: list[str]
    milestones: dict[str, Value]
    actor: str
    contributes_to: str | None = None
    withdrawn: bool = False


@dataclass(slots=True)
class _Problem:
    key: str
    unit: str
    target: str | None
    found_at: datetime
    prominent: bool
    shared: bool
    handler: str  # the unit that resolves it
    measures: list[str] = field(default_factory=list)
    resolved_at: datetime | None = None
    resolutions: int = 0


@dataclass(slots=True)
class _Measure:
    key: str
    lead: str
    adopted_on: date
    deadline: date
    problems: list[str]
    progress: int = 0
    status: str = "open"  # open / completed / cancelled
    completed_on: date | None = None


@dataclass(slots=True)
class _Rectification:
    key: str
    unit: str
    ordered_on: date
    deadline: date
    fate: str  # verified / rejected-verified / rejected-open / completed / open


@dataclass
class _Counters:
    problems: int = 0
    measures: int = 0
    rectifications: int = 0
    meetings: int = 0
    awards: int = 0


# --- the year -----------------------------------------------------------------------------------


class _Year:
    """One generated year: plans with the random generator, records through the service."""

    def __init__(
        self, app: ClosedLoop, rng: random.Random, *, units: int, seed: int, year: int, d: Density
    ) -> None:
        self.app = app
        self.rng = rng
        self.size = units
        self.year = year
        self.d = d
        self.prefix = f"gen-{year}-s{seed}"
        self.stages: list[Stage] = quarters(year)
        self.ids: dict[str, UUID] = {}
        self.units: dict[str, _Unit] = {}
        self.people: dict[str, str] = {}  # person key -> current unit key
        self.names: dict[str, str] = {}
        self.targets: dict[str, _Target] = {}
        self.problems: dict[str, _Problem] = {}
        self.measures: dict[str, _Measure] = {}
        self.rectifications: dict[str, _Rectification] = {}
        self.scores: dict[str, dict[str, list[Decimal]]] = {}  # stage -> unit -> scores
        self.rejected: dict[str, list[str]] = {}  # stage -> units whose rectification bounced
        self.awards: list[tuple[str, AwardKind]] = []
        self.missed: set[str] = set()  # measures whose missed deadline is on record
        self.count = _Counters()
        self.once: set[str] = set()  # rare events that must happen at least once
        self.siblings: dict[tuple[str, UnitKind], list[str]] = {}

    # plumbing

    @contextmanager
    def acting(self, actor: str, step: str) -> Iterator[None]:
        with acting_as(actor, correlation_id=f"{self.prefix}/{step}"):
            yield

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def first_time(self, what: str) -> bool:
        """True the first time ``what`` is asked for: makes rare events happen at least once."""
        if what in self.once:
            return False
        self.once.add(what)
        return True

    def moment(self, day: date, hour: int | None = None) -> datetime:
        hour = self.rng.randint(9, 17) if hour is None else hour
        return datetime(
            day.year, day.month, day.day, hour, self.rng.randrange(0, 60, 5), tzinfo=CST
        )

    def day_in(self, first: date, last: date) -> date:
        return first + timedelta(days=self.rng.randint(0, max(0, (last - first).days)))

    def within_year(self, day: date) -> date:
        return min(day, self.stages[-1].ends_on)

    def of_kind(self, *kinds: UnitKind) -> list[_Unit]:
        return [u for u in self.units.values() if u.kind in kinds]

    @property
    def committee(self) -> list[str]:
        return self.units[ROOT].people

    @property
    def cycle(self) -> UUID:
        return self.ids["cycle"]

    def run(self) -> None:
        self.register_organisation()
        self.grant_access()
        self.open_cycle()
        self.assign_duties()
        self.set_targets()
        for number, stage in enumerate(self.stages, start=1):
            self.run_stage(number, stage)

    def run_stage(self, number: int, stage: Stage) -> None:
        self.reorganise(number, stage)
        found = self.find_problems(stage)
        self.escalate_and_dispatch(found, stage)
        self.adopt_measures(found, stage)
        self.advance_measures(stage)
        self.resolve_problems(stage)
        self.hold_meetings(number, stage)
        self.rectify(stage)
        self.confirm_effects(number, stage)
        self.record_missed_deadlines(stage)
        if number == 3:
            self.revise_policy(self.stages[number])
        if number < len(self.stages):
            self.close_stage(stage)
            self.reward_and_penalise(stage)
            self.settle(stage)
        if number == 2:
            self.reopen_and_settle_again(stage)
        if number == 3:
            self.revoke_an_award()

    # --- the organisation ---------------------------------------------------------------------

    def register_organisation(self) -> None:
        self.plan_units()
        with self.acting(ADMIN, "01-organisation/units"):
            for unit in self.units.values():
                parent = self.ids[unit.parent] if unit.parent else None
                self.ids[unit.key] = self.app.register_unit(
                    name=unit.name, kind=unit.kind, parent_id=parent
                ).id
        with self.acting(ADMIN, "01-organisation/people"):
            for unit in self.units.values():
                self.register_people(unit)

    def plan_units(self) -> None:
        n = self.size
        general, departments = max(1, n // 10), max(1, n // 10)
        rest = n - 1 - general - departments
        branches, grassroots = rest // 2, rest - rest // 2
        self.add_unit(ROOT, "中共某省建设投资集团有限公司委员会", UnitKind.COMMITTEE, None)
        for i in range(general):
            region = _numbered(REGIONS[i % len(REGIONS)], i, len(REGIONS))
            self.add_unit(f"gb-{i + 1:03}", f"{region}片区党总支", _GB, ROOT)
        for i in range(departments):
            name = _numbered(DEPARTMENTS[i % len(DEPARTMENTS)], i, len(DEPARTMENTS))
            self.add_unit(f"dept-{i + 1:03}", name, _D, ROOT)
        names = [self.grassroots_name(i) for i in range(grassroots)]
        for i, name in enumerate(names):
            self.add_unit(f"gr-{i + 1:03}", name, _G, ROOT)
        for i in range(branches):
            name = f"{names[i]}党支部" if i < len(names) else f"机关第{i - len(names) + 1}党支部"
            self.add_unit(f"br-{i + 1:03}", name, _B, f"gb-{i % general + 1:03}")

    def grassroots_name(self, i: int) -> str:
        places, kinds = len(PLACES), len(BUSINESSES)
        name = PLACES[i % places] + BUSINESSES[(i // places + i) % kinds]
        return _numbered(name, i, places * kinds)

    def add_unit(self, key: str, name: str, kind: UnitKind, parent: str | None) -> None:
        performance = max(-1.0, min(1.0, self.rng.gauss(0.0, 0.45)))
        self.units[key] = _Unit(key, name, kind, parent, performance)

    def register_people(self, unit: _Unit) -> None:
        if unit.kind is UnitKind.COMMITTEE:
            count = 4 + self.size // 100
            titles = [*COMMITTEE_TITLES, *(["党委委员、副总经理"] * count)][:count]
        else:
            count = self.rng.randint(self.d.people_min, self.d.people_max)
            titles = list(TITLES[unit.kind][:count])
        for n, title in enumerate(titles, start=1):
            key = f"p-{unit.key}-{n}"
            name = self.rng.choice(SURNAMES) + "".join(
                self.rng.choice(GIVEN) for _ in range(self.rng.randint(1, 2))
            )
            self.ids[key] = self.app.register_person(
                name=name, unit_id=self.ids[unit.key], title=title
            ).id
            self.people[key] = unit.key
            self.names[key] = name
            unit.people.append(key)
        unit.head = unit.people[0]

    def grant_access(self) -> None:
        with self.acting(ADMIN, "01-access"):
            self.app.issue_token(
                name=f"{self.prefix}-organisation", role=Role.LEADER, unit_id=self.ids[ROOT]
            )
            auditor, _ = self.app.issue_token(name=f"{self.prefix}-audit", role=Role.AUDITOR)
            self.app.revoke_token(auditor.id, reason="年度外部审计进场结束")

    def open_cycle(self) -> None:
        with self.acting(ADMIN, "02-cycle"):
            self.ids["cycle"] = self.app.open_cycle(
                year=self.year,
                name=f"{self.year}年度党建工作“六个确认”闭环考核",
                policy=GENERATED_POLICY,
            ).id

    def assign_duties(self) -> None:
        leaders = self.committee[1:] or self.committee
        for n, unit in enumerate(self.units.values()):
            unit.leader = leaders[n % len(leaders)]
            self.assign_duty(unit, unit.head, date(self.year, 1, 1), HEAD_TIERS[unit.kind])
            if unit.kind is UnitKind.BRANCH and len(unit.people) > 2 and self.chance(0.3):
                self.assign_duty(unit, unit.people[1], date(self.year, 1, 1), HEAD_TIERS[unit.kind])

    def assign_duty(self, unit: _Unit, person: str, start: date, tier: DutyTier) -> str:
        key = f"duty-{unit.key}-{person}"
        with self.acting(ORGANISATION, f"03-duties/{key}"):
            self.ids[key] = self.app.assign_duty(
                person_id=self.ids[person],
                unit_id=self.ids[unit.key],
                tier=tier,
                effective_from=start,
            ).id
        if person == unit.head:
            unit.head_duty = key
        return key

    # --- targets --------------------------------------------------------------------------------

    def set_targets(self) -> None:
        for template in COMMON_TARGETS:
            self.set_common_target(template)
        for unit in self.of_kind(_B, _G):
            if self.chance(0.9):
                self.set_unit_target(unit, self.rng.choice(UNIT_TARGETS))
        self.contract_targets()
        for target, linked in LINKS:
            with self.acting(ORGANISATION, f"05-links/{target}-{linked}"):
                self.app.link_targets(self.ids[target], linked_target_id=self.ids[linked])

    def set_common_target(self, template: CommonTemplate) -> None:
        candidates = self.of_kind(*template.kinds)
        chosen = [u.key for u in candidates if self.chance(template.share)] or [candidates[0].key]
        milestones = dict(zip(self.stage_keys, template.milestones, strict=True))
        target = _Target(
            template.key,
            template.title,
            template.indicator,
            Decimal(template.points),
            chosen,
            milestones,
            template.actor,
        )
        with self.acting(template.actor, f"04-targets/{template.key}"):
            self.ids[target.key] = self.app.set_common_target(
                cycle_id=self.cycle,
                title=target.title,
                indicator=target.indicator,
                points=target.points,
                applies_to=[self.ids[u] for u in chosen],
            ).id
            self.app.set_milestones(self.ids[target.key], milestones=milestones)
        self.add_target(target)

    @property
    def stage_keys(self) -> list[str]:
        return [stage.key for stage in self.stages]

    def set_unit_target(self, unit: _Unit, template: UnitTemplate) -> None:
        indicator, milestones = self.unit_indicator(template)
        target = _Target(
            f"u-{unit.key}",
            f"{unit.name}：{template.title}",
            indicator,
            Decimal(self.rng.choice((3, 5))),
            [unit.key],
            milestones,
            staff_of(unit.key),
            template.contributes_to,
        )
        with self.acting(target.actor, f"04-targets/{target.key}"):
            self.ids[target.key] = self.app.set_unit_target(
                cycle_id=self.cycle,
                unit_id=self.ids[unit.key],
                title=target.title,
                indicator=indicator,
                points=target.points,
                contributes_to=self.ids[template.contributes_to],
            ).id
            self.app.set_milestones(self.ids[target.key], milestones=milestones)
        self.add_target(target)

    def unit_indicator(self, template: UnitTemplate) -> tuple[Indicator, dict[str, Value]]:
        if not template.unit_of_measure:
            indicator = Indicator.qualitative(metric=template.metric, levels=LEVELS_SITE)
            return indicator, dict(
                zip(self.stage_keys, ("达标", "达标", "示范", "示范"), strict=True)
            )
        goal = self.rng.randint(template.low, template.high)
        indicator = _quantitative(template.metric, template.unit_of_measure, 0, goal, _UP)
        steps = [Decimal(goal * (i + 1) // 4) for i in range(4)]
        return indicator, dict(zip(self.stage_keys, steps, strict=True))

    def add_target(self, target: _Target) -> None:
        self.targets[target.key] = target
        for unit in target.units:
            self.units[unit].targets.append(target.key)

    def contract_targets(self) -> None:
        departments = [u.key for u in self.of_kind(_D)]
        carriers = departments + [u.key for u in self.of_kind(_GB)]
        for n, target in enumerate(self.targets.values()):
            if target.contributes_to is None:
                lead = departments[n % len(departments)]
                others = self.rng.sample(carriers, min(len(carriers), self.rng.randint(2, 5)))
                leader = self.committee[n % len(self.committee)]
            elif self.chance(0.25):
                unit = self.units[target.units[0]]
                lead, others, leader = unit.key, [unit.key], unit.leader
            else:
                continue
            with self.acting(ORGANISATION, f"05-contracts/{target.key}"):
                self.app.contract_target(
                    self.ids[target.key],
                    lead_unit_id=self.ids[lead],
                    responsible_unit_ids=[self.ids[u] for u in others],
                    responsible_leader_id=self.ids[leader],
                )

    def live_targets(self, unit: _Unit) -> list[str]:
        return [t for t in unit.targets if not self.targets[t].withdrawn]

    # --- changes during the year ----------------------------------------------------------------

    def reorganise(self, number: int, stage: Stage) -> None:
        if number == 1:
            self.revise_target(stage)
        if number == 2:
            self.move_branches(stage)
            self.withdraw_unit_targets()
        if number in (2, 3):
            self.rotate_heads(stage)

    def revise_target(self, stage: Stage) -> None:
        target = self.targets[REVISED_TARGET]
        indicator, steps, reason, milestone_reason = REVISION
        milestones = dict(zip(self.stage_keys, steps, strict=True))
        with self.acting(ORGANISATION, f"06-revision/{target.key}"):
            self.app.revise_target(self.ids[target.key], indicator=indicator, reason=reason)
            self.app.set_milestones(
                self.ids[target.key], milestones=milestones, reason=milestone_reason
            )
        target.indicator, target.milestones = indicator, milestones

    def move_branches(self, stage: Stage) -> None:
        general = [u.key for u in self.of_kind(_GB)]
        if len(general) < 2:
            return
        branches = self.of_kind(_B)
        for unit in self.rng.sample(branches, min(len(branches), 1 + self.size // 250)):
            new_parent = self.rng.choice([g for g in general if g != unit.parent])
            with self.acting(ADMIN, f"07-reorganisation/move/{unit.key}"):
                self.app.move_unit(
                    self.ids[unit.key],
                    parent_id=self.ids[new_parent],
                    reason=f"业务调整，经党委会研究，{unit.name}改隶{self.units[new_parent].name}",
                )
            unit.parent = new_parent
            self.siblings.clear()

    def withdraw_unit_targets(self) -> None:
        unit_targets = [t for t in self.targets.values() if t.contributes_to is not None]
        for target in self.rng.sample(unit_targets, min(len(unit_targets), 1 + self.size // 200)):
            with self.acting(ORGANISATION, f"07-reorganisation/withdraw/{target.key}"):
                self.app.withdraw_target(
                    self.ids[target.key], reason="单位职能调整，原特色目标不再适用，撤回后另行确定"
                )
            target.withdrawn = True

    def rotate_heads(self, stage: Stage) -> None:
        reporting = [u for u in self.of_kind(*REPORTING_KINDS) if len(u.people) > 1]
        count = max(1, round(len(reporting) * self.d.rotation_share))
        departments = [u.key for u in self.of_kind(_D)]
        for unit in self.rng.sample(reporting, min(count, len(reporting))):
            day = self.day_in(stage.starts_on + timedelta(days=10), stage.ends_on - timedelta(40))
            destination = self.rng.choice([d for d in departments if d != unit.key] or [ROOT])
            self.rotate(unit, day, destination)

    def rotate(self, unit: _Unit, day: date, destination: str) -> None:
        old, new = unit.head, next(p for p in unit.people if p != unit.head)
        step = f"08-rotation/{unit.key}/{day.isoformat()}"
        with self.acting(ORGANISATION, f"{step}/relieve"):
            self.app.relieve_duty(
                self.ids[unit.head_duty],
                effective_to=day,
                reason=f"交流任职：免去{self.names[old]}{unit.name}负责人职务",
            )
        with self.acting(ADMIN, f"{step}/transfer"):
            self.app.transfer_person(
                self.ids[old],
                unit_id=self.ids[destination],
                reason=f"交流任职：调任{self.units[destination].name}",
            )
        unit.people.remove(old)
        self.units[destination].people.append(old)
        self.people[old] = destination
        unit.head = new
        self.assign_duty(unit, new, day + timedelta(days=1), HEAD_TIERS[unit.kind])

    # --- problems and measures ------------------------------------------------------------------

    def find_problems(self, stage: Stage) -> list[_Problem]:
        found: list[_Problem] = []
        last_day = stage.ends_on - timedelta(days=25)
        for unit in self.units.values():
            if unit.kind is UnitKind.COMMITTEE:
                continue
            for _ in range(self.poisson(self.d.problems_per_unit)):
                day = self.day_in(stage.starts_on + timedelta(days=5), last_day)
                found.append(self.find_problem(unit, self.pick_source(stage), self.moment(day)))
        return found

    def poisson(self, mean: float) -> int:
        """A small count with the given mean (a binomial stand-in for Poisson)."""
        trials = max(1, round(mean * 3))
        return sum(self.rng.random() < mean / trials for _ in range(trials))

    def pick_source(self, stage: Stage) -> ProblemSource:
        sources = (ProblemSource.SWEEP, ProblemSource.INSPECTION, ProblemSource.SELF_CHECK)
        weights = (5, 2, 3) if stage.key == self.stages[0].key else (2, 3, 5)
        return self.rng.choices(sources, weights)[0]

    def find_problem(
        self, unit: _Unit, source: ProblemSource, found_at: datetime, target: str | None = None
    ) -> _Problem:
        self.count.problems += 1
        live = self.live_targets(unit)
        if target is None and live and self.chance(0.85):
            target = self.rng.choice(live)
        prominent = self.chance(self.d.prominent_share)
        problem = _Problem(
            f"prob-{self.count.problems:06}",
            unit.key,
            target,
            found_at,
            prominent,
            self.chance(self.d.shared_share),
            unit.key,
        )
        actor = self.problem_finder(unit, source)
        title = self.problem_title(unit, target, source)
        with self.acting(actor, f"09-problems/{problem.key}"):
            self.ids[problem.key] = self.app.find_problem(
                cycle_id=self.cycle,
                unit_id=self.ids[unit.key],
                title=title,
                source=source,
                severity=Severity.PROMINENT if prominent else Severity.ORDINARY,
                shared=problem.shared,
                description=f"{found_at:%m月%d日}{source_label(source)}发现：{title}",
                target_id=self.ids[target] if target else None,
                found_at=found_at,
            ).id
        self.problems[problem.key] = problem
        return problem

    def problem_finder(self, unit: _Unit, source: ProblemSource) -> str:
        if source is ProblemSource.INSPECTION:
            return INSPECTOR
        if source is ProblemSource.SELF_CHECK:
            return staff_of(unit.key)
        return ORGANISATION

    def problem_title(self, unit: _Unit, target: str | None, source: ProblemSource) -> str:
        subject = self.targets[target].title if target else "基础管理"
        flaw = self.rng.choice(PROBLEM_FLAWS)
        return f"{unit.name}{subject}{flaw}"

    def escalate_and_dispatch(self, found: Sequence[_Problem], stage: Stage) -> None:
        for problem in found:
            unit = self.units[problem.unit]
            if problem.prominent or problem.shared:
                reason = (
                    "属突出问题，报分管领导督办"
                    if problem.prominent
                    else "属共性问题，报分管领导统筹"
                )
                with self.acting(ORGANISATION, f"10-escalations/{problem.key}"):
                    self.app.escalate_problem(
                        self.ids[problem.key], leader_id=self.ids[unit.leader], reason=reason
                    )
            to_unit = self.dispatch_unit(unit)
            if to_unit is not None and self.chance(self.d.dispatch_share):
                self.dispatch(problem, to_unit)

    def dispatch_unit(self, unit: _Unit) -> str | None:
        if unit.kind in DISPATCHABLE_KINDS:
            return unit.key
        if unit.kind is UnitKind.GENERAL_BRANCH:
            branches = self.siblings_under(unit.key, _B)
            return self.rng.choice(branches) if branches else None
        return None

    def dispatch(self, problem: _Problem, to_unit: str) -> None:
        found_on = problem.found_at.date()
        deadline = self.within_year(found_on + timedelta(days=self.rng.randint(20, 60)))
        with self.acting(ORGANISATION, f"11-dispatches/{problem.key}"):
            self.app.dispatch_problem(
                self.ids[problem.key],
                to_unit_id=self.ids[to_unit],
                requirement=f"{deadline:%m月%d日}前完成整改并报送整改台账",
                deadline=deadline,
            )
        problem.handler = to_unit

    def adopt_measures(self, found: Sequence[_Problem], stage: Stage) -> None:
        for problem in found:
            if self.chance(self.d.measure_share):
                adopted_on = problem.found_at.date() + timedelta(days=self.rng.randint(1, 7))
                self.adopt_measure(
                    self.units[problem.handler], adopted_on, [problem], problem.target
                )
        for unit in self.units.values():
            live = self.live_targets(unit)
            if live and self.chance(self.d.target_measures_per_unit):
                adopted_on = self.day_in(stage.starts_on, stage.ends_on - timedelta(days=30))
                self.adopt_measure(unit, adopted_on, [], self.rng.choice(live))

    def adopt_measure(
        self, lead: _Unit, adopted_on: date, problems: list[_Problem], target: str | None
    ) -> None:
        self.count.measures += 1
        deadline = self.within_year(adopted_on + timedelta(days=self.rng.randint(25, 110)))
        measure = _Measure(
            f"meas-{self.count.measures:06}",
            lead.key,
            adopted_on,
            deadline,
            [p.key for p in problems],
        )
        others = [u for u in self.sibling_units(lead) if u != lead.key]
        responsible = self.rng.sample(others, min(len(others), self.rng.randint(0, 2)))
        title = self.rng.choice(MEASURE_TITLES).format(unit=lead.name)
        with self.acting(staff_of(lead.key), f"12-measures/{measure.key}"):
            self.ids[measure.key] = self.app.adopt_measure(
                cycle_id=self.cycle,
                title=title,
                deadline=deadline,
                lead_unit_id=self.ids[lead.key],
                responsible_unit_ids=[self.ids[u] for u in responsible],
                responsible_leader_id=self.ids[lead.leader],
                problem_ids=[self.ids[p.key] for p in problems],
                target_id=self.ids[target] if target else None,
            ).id
        self.measures[measure.key] = measure
        for problem in problems:
            problem.measures.append(measure.key)

    def siblings_under(self, parent: str, kind: UnitKind) -> list[str]:
        if (parent, kind) not in self.siblings:
            self.siblings[(parent, kind)] = [
                u.key for u in self.units.values() if (u.parent or ROOT, u.kind) == (parent, kind)
            ]
        return self.siblings[(parent, kind)]

    def sibling_units(self, unit: _Unit) -> list[str]:
        """Units of the same kind under the same parent (cached; moves clear the cache)."""
        return self.siblings_under(unit.parent or ROOT, unit.kind)

    def advance_measures(self, stage: Stage) -> None:
        for measure in list(self.measures.values()):
            if measure.status == "open" and measure.adopted_on <= stage.ends_on:
                self.advance_measure(measure, stage)

    def advance_measure(self, measure: _Measure, stage: Stage) -> None:
        for checkpoint in checkpoints(stage):
            if measure.adopted_on < checkpoint < measure.deadline and self.chance(
                self.d.progress_share
            ):
                self.report_progress(measure, checkpoint)
        if measure.deadline < stage.starts_on:  # overdue from an earlier stage
            if self.chance(self.d.late_completion_share):
                self.complete_measure(measure, self.day_in(stage.starts_on, stage.ends_on))
        elif measure.deadline <= stage.ends_on:
            self.finish_at_deadline(measure)

    def report_progress(self, measure: _Measure, day: date) -> None:
        measure.progress = min(95, measure.progress + self.rng.randint(10, 35))
        step = f"13-measure-progress/{measure.key}/{day.isoformat()}"
        with self.acting(staff_of(measure.lead), step):
            self.app.report_measure_progress(
                self.ids[measure.key],
                percent=measure.progress,
                note=f"截至{day:%m月%d日}完成{measure.progress}%，按计划推进",
            )

    def finish_at_deadline(self, measure: _Measure) -> None:
        roll = self.rng.random()
        if roll < self.d.cancel_share or self.first_time("cancel"):
            with self.acting(staff_of(measure.lead), f"14-measure-cancel/{measure.key}"):
                self.app.cancel_measure(
                    self.ids[measure.key], reason="情况变化，经分管领导同意，该措施并入上级统一部署"
                )
            measure.status = "cancelled"
        elif roll < self.d.cancel_share + self.d.complete_share:
            done = measure.deadline - timedelta(days=self.rng.randint(0, 10))
            self.complete_measure(measure, max(done, measure.adopted_on))

    def complete_measure(self, measure: _Measure, day: date) -> None:
        with self.acting(staff_of(measure.lead), f"14-measure-complete/{measure.key}"):
            self.app.complete_measure(
                self.ids[measure.key], evidence=f"{day:%m月%d日}完成，佐证材料已归档"
            )
        measure.status, measure.completed_on, measure.progress = "completed", day, 100

    def resolve_problems(self, stage: Stage) -> None:
        for problem in list(self.problems.values()):
            if problem.found_at.date() > stage.ends_on:
                continue
            if problem.resolved_at is None:
                self.maybe_resolve(problem, stage)
            elif problem.resolved_at.date() < stage.starts_on and (
                self.chance(self.d.reopen_share) or self.first_time("reopen")
            ):
                self.reopen(problem)

    def maybe_resolve(self, problem: _Problem, stage: Stage) -> None:
        measures = [self.measures[m] for m in problem.measures]
        done = [m.completed_on for m in measures if m.completed_on is not None]
        if measures and done and self.chance(0.92):
            day = max(done) + timedelta(days=self.rng.randint(0, 3))
        elif not measures and self.chance(self.d.unmeasured_resolution_share):
            day = self.day_in(problem.found_at.date(), stage.ends_on)
        else:
            return
        resolved_at = max(self.moment(min(day, stage.ends_on), 16), problem.found_at)
        problem.resolutions += 1
        step = f"15-problem-resolved/{problem.key}/{problem.resolutions}"
        with self.acting(staff_of(problem.handler), step):
            self.app.resolve_problem(
                self.ids[problem.key], evidence="整改完成，经验收销号", resolved_at=resolved_at
            )
        problem.resolved_at = resolved_at

    def reopen(self, problem: _Problem) -> None:
        with self.acting(INSPECTOR, f"16-problem-reopened/{problem.key}/{problem.resolutions}"):
            self.app.reopen_problem(
                self.ids[problem.key], reason="回头看发现问题反弹，整改未到位，重新督办"
            )
        problem.resolved_at = None
        problem.measures = []  # resolved again on its own, without the finished measures

    # --- quarterly meetings ---------------------------------------------------------------------

    def hold_meetings(self, number: int, stage: Stage) -> None:
        held_on = stage.ends_on - timedelta(days=self.rng.randint(3, 8))
        reporting = [u for kind in REPORTING_KINDS for u in self.of_kind(kind)]
        size = self.d.meeting_group_size
        groups = [reporting[i : i + size] for i in range(0, len(reporting), size)]
        self.scores[stage.key] = {}
        for n, group in enumerate(groups, start=1):
            self.hold_meeting(stage, held_on, n, group)

    def hold_meeting(self, stage: Stage, held_on: date, n: int, group: list[_Unit]) -> None:
        self.count.meetings += 1
        key = f"meet-{stage.key}-{n:02}"
        departments = [u.head for u in self.of_kind(_D)]  # 职能部门负责人 attend and score
        attendees = list(dict.fromkeys([*self.committee, *departments, *(u.head for u in group)]))
        title = f"{self.year}年第{stage.key[1:]}季度党建工作例会暨“六个确认”推进会（第{n}组）"
        with self.acting(ORGANISATION, f"17-meetings/{key}/convene"):
            self.ids[key] = self.app.convene_meeting(
                cycle_id=self.cycle,
                stage=stage.key,
                title=title,
                held_on=held_on,
                attendee_ids=[self.ids[p] for p in attendees],
            ).id
        biases = {p: self.rng.uniform(-2.0, 2.0) for p in attendees}
        for unit in group:
            self.report_and_score(key, stage, unit, biases)
        for unit in group:
            if self.chance(self.d.meeting_problem_share) or self.first_time(f"meeting-{stage.key}"):
                self.follow_up(key, unit, held_on)

    def report_and_score(
        self, meeting: str, stage: Stage, unit: _Unit, biases: dict[str, float]
    ) -> None:
        with self.acting(person_actor(unit.head), f"17-meetings/{meeting}/report/{unit.key}"):
            self.app.deliver_report(
                self.ids[meeting],
                unit_id=self.ids[unit.key],
                reporter_id=self.ids[unit.head],
                summary=f"{unit.name}{stage.key}工作述职：目标推进、问题整改和措施落实情况。",
            )
        scores = self.scores[stage.key].setdefault(unit.key, [])
        for rater, bias in biases.items():
            if self.people[rater] == unit.key:
                continue  # 回避: nobody scores their own unit's report
            score = self.score(unit, bias)
            self.cast_score(meeting, rater, unit, score)
            scores.append(score)
            if self.chance(self.d.score_correction_share) or self.first_time("score-correction"):
                corrected = min(Decimal(100), score + Decimal(1))
                self.cast_score(meeting, rater, unit, corrected, "录入时误按上一行分值填写，更正")
                scores[-1] = corrected
        if self.chance(self.d.review_share) or self.first_time("review"):
            self.review(meeting, unit)

    def score(self, unit: _Unit, bias: float) -> Decimal:
        raw = 82 + 10 * unit.performance + bias + self.rng.gauss(0, 2)
        return Decimal(round(max(60.0, min(100.0, raw)) * 2)) / 2

    def cast_score(
        self, meeting: str, rater: str, unit: _Unit, score: Decimal, reason: str | None = None
    ) -> None:
        step = f"17-meetings/{meeting}/score/{unit.key}/{rater}" + ("/correction" if reason else "")
        with self.acting(person_actor(rater), step):
            self.app.cast_score(
                self.ids[meeting],
                rater_id=self.ids[rater],
                unit_id=self.ids[unit.key],
                score=score,
                reason=reason,
            )

    def review(self, meeting: str, unit: _Unit) -> None:
        reviewer = self.committee[0]
        comment = self.rng.choice(REVIEW_COMMENTS)
        with self.acting(person_actor(reviewer), f"17-meetings/{meeting}/review/{unit.key}"):
            self.app.comment_review(
                self.ids[meeting],
                reviewer_id=self.ids[reviewer],
                unit_id=self.ids[unit.key],
                comment=f"{unit.name}：{comment}",
            )

    def follow_up(self, meeting: str, unit: _Unit, held_on: date) -> None:
        problem = self.find_problem(unit, ProblemSource.MEETING, self.moment(held_on, 16))
        deadline = self.within_year(held_on + timedelta(days=self.rng.randint(20, 40)))
        self.order_rectification(unit, held_on, deadline, problem=problem.key, meeting=meeting)

    # --- rectifications -------------------------------------------------------------------------

    def rectify(self, stage: Stage) -> None:
        candidates = [
            p
            for p in self.problems.values()
            if p.prominent and stage.contains(p.found_at.date()) and p.resolved_at is None
        ]
        wanted = round(self.size * self.d.rectifications_per_unit)
        for problem in candidates[:wanted]:
            ordered_on = problem.found_at.date() + timedelta(days=self.rng.randint(3, 15))
            deadline = self.within_year(ordered_on + timedelta(days=self.rng.randint(20, 45)))
            self.order_rectification(self.units[problem.unit], ordered_on, deadline, problem.key)
        for unit in self.rng.sample(
            list(self.units.values())[1:], max(0, wanted - len(candidates))
        ):
            live = self.live_targets(unit)
            if live:
                ordered_on = self.day_in(stage.starts_on, stage.ends_on - timedelta(days=20))
                deadline = self.within_year(ordered_on + timedelta(days=30))
                self.order_rectification(unit, ordered_on, deadline, target=self.rng.choice(live))
        self.advance_rectifications(stage)

    def order_rectification(
        self,
        unit: _Unit,
        ordered_on: date,
        deadline: date,
        problem: str | None = None,
        target: str | None = None,
        meeting: str | None = None,
    ) -> None:
        self.count.rectifications += 1
        key = f"rect-{self.count.rectifications:05}"
        fates = ("verified", "rejected-verified", "rejected-open", "completed", "open")
        fate = self.rng.choices(fates, (75, 12, 3, 5, 5))[0]
        with self.acting(INSPECTOR, f"18-rectifications/{key}/order"):
            self.ids[key] = self.app.order_rectification(
                cycle_id=self.cycle,
                unit_id=self.ids[unit.key],
                requirement=f"{deadline:%m月%d日}前完成整改，书面报告整改情况并建立长效机制",
                deadline=deadline,
                problem_id=self.ids[problem] if problem else None,
                target_id=self.ids[target] if target else None,
                meeting_id=self.ids[meeting] if meeting else None,
            ).id
        self.rectifications[key] = _Rectification(key, unit.key, ordered_on, deadline, fate)

    def advance_rectifications(self, stage: Stage) -> None:
        pending = [r for r in self.rectifications.values() if r.fate != "done"]
        for rectification in pending:
            fate = "rejected-verified" if self.first_time("reject") else rectification.fate
            self.rectification_steps(rectification, fate, stage)
            rectification.fate = "done"

    def rectification_steps(self, rectification: _Rectification, fate: str, stage: Stage) -> None:
        steps = {
            "verified": ("complete", "verify"),
            "rejected-verified": ("complete", "reject", "complete", "verify"),
            "rejected-open": ("complete", "reject"),
            "completed": ("complete",),
            "open": (),
        }[fate]
        for n, action in enumerate(steps, start=1):
            self.rectification_step(rectification, action, n)
        if "reject" in steps:
            self.rejected.setdefault(stage.key, []).append(rectification.unit)

    def rectification_step(self, rectification: _Rectification, action: str, n: int) -> None:
        actor = staff_of(rectification.unit) if action == "complete" else INSPECTOR
        rid = self.ids[rectification.key]
        with self.acting(actor, f"18-rectifications/{rectification.key}/{n}-{action}"):
            if action == "complete":
                self.app.complete_rectification(rid, evidence="整改报告、制度文本和台账已提交")
            elif action == "reject":
                self.app.reject_rectification(
                    rid, reason="整改材料不完整，问题未根治，退回重新整改"
                )
            else:
                self.app.verify_rectification(rid, comment="经核查，整改到位")

    # --- effects, closing, awards ---------------------------------------------------------------

    def confirm_effects(self, number: int, stage: Stage) -> None:
        last = number == len(self.stages)
        share = self.d.last_stage_effect_share if last else 1.0
        for target in self.targets.values():
            if target.withdrawn:
                continue
            for unit in target.units:
                if self.chance(share):
                    self.confirm_unit_effects(target, self.units[unit], stage)

    def confirm_unit_effects(self, target: _Target, unit: _Unit, stage: Stage) -> None:
        own = self.result(target, unit, stage)
        checked = self.inspected(target, own)
        after = stage.ends_on + timedelta(days=1)
        if self.chance(self.d.self_assessment_share):
            self.confirm_effect(target, unit, stage, EffectMethod.SELF_ASSESSMENT, own, after)
        if self.chance(self.d.inspection_share):
            later = after + timedelta(days=7)
            self.confirm_effect(target, unit, stage, EffectMethod.INSPECTION, checked, later)
            if self.chance(self.d.effect_correction_share) or self.first_time("effect-correction"):
                reason = "复核发现统计口径有误，组织检查结果更正"
                self.confirm_effect(
                    target, unit, stage, EffectMethod.INSPECTION, own, later, reason
                )

    def result(self, target: _Target, unit: _Unit, stage: Stage) -> Value:
        milestone = target.milestones[stage.key]
        quality = unit.performance + self.rng.gauss(0, 0.3)
        indicator = target.indicator
        if indicator.kind is IndicatorKind.QUALITATIVE:
            return level_for(indicator.levels, str(milestone), quality)
        assert isinstance(milestone, Decimal)
        if indicator.direction is Direction.LOWER_IS_BETTER:  # accidents: weak units have some
            return milestone + Decimal(max(0, round(-quality - 0.3)))
        return (milestone * Decimal(1 + 0.12 * quality)).quantize(Decimal("0.1"))

    def inspected(self, target: _Target, own: Value) -> Value:
        """Inspection finds the same, or a little less than the unit claims."""
        if isinstance(own, str):
            levels = target.indicator.levels
            worse = min(levels.index(own) + 1, len(levels) - 1)
            return levels[worse] if self.chance(0.2) else own
        if target.indicator.direction is Direction.LOWER_IS_BETTER:
            return own + (1 if self.chance(0.1) else 0)
        return (own * Decimal(str(self.rng.choice((1, 1, 0.98, 0.95))))).quantize(Decimal("0.1"))

    def confirm_effect(
        self,
        target: _Target,
        unit: _Unit,
        stage: Stage,
        method: EffectMethod,
        value: Value,
        after: date,
        reason: str | None = None,
    ) -> None:
        if method is EffectMethod.SELF_ASSESSMENT:
            actor, evidence = staff_of(unit.key), "自查自评报告、工作台账和佐证材料"
        else:
            actor, evidence = target.actor, "组织检查：查阅台账、现场抽查和座谈了解"
        step = f"19-effects/{stage.key}/{target.key}/{unit.key}/{method.value}"
        with self.acting(actor, step + ("/correction" if reason else "")):
            self.app.confirm_effect(
                self.ids[target.key],
                stage=stage.key,
                method=method,
                unit_id=self.ids[unit.key],
                result=value,
                evidence=evidence,
                confirmed_at=self.moment(self.day_in(after, after + timedelta(days=6))),
                reason=reason,
            )

    def close_stage(self, stage: Stage) -> None:
        with self.acting(ORGANISATION, f"20-close/{stage.key}"):
            self.app.close_stage(
                self.cycle, stage=stage.key, reason=f"{stage.key}效果确认完成，按期关闭"
            )

    def record_missed_deadlines(self, stage: Stage) -> None:
        """The daily job's findings: measures still open the morning after their deadline."""
        for measure in self.measures.values():
            if (
                measure.status == "open"
                and measure.deadline < stage.ends_on
                and measure.key not in self.missed
            ):
                self.missed.add(measure.key)
                noticed = datetime.combine(
                    measure.deadline + timedelta(days=1), time(0, 15), tzinfo=CST
                )
                with self.acting(SCHEDULER, f"22-deadlines/{measure.key}"):
                    self.app.record_deadline_missed(self.ids[measure.key], now=noticed, zone=CST)

    def revise_policy(self, from_stage: Stage) -> None:
        with self.acting(ADMIN, f"23-policy/{from_stage.key}"):
            self.app.revise_policy(
                self.cycle,
                policy=LATER_POLICY,
                from_stage=from_stage.key,
                reason=f"自{from_stage.key}起逾期措施每项扣8分（党委会决定）",
            )

    def settle(self, stage: Stage) -> None:
        with self.acting(ADMIN, f"24-settle/{stage.key}"):
            self.app.settle_stage(
                self.cycle, stage=stage.key, now=self.after_cutoff(stage), zone=CST
            )

    def reopen_and_settle_again(self, stage: Stage) -> None:
        with self.acting(ADMIN, f"24-settle/{stage.key}/reopen"):
            self.app.reopen_stage(
                self.cycle, stage=stage.key, reason="复核发现结算所依据的检查结果有误，重新结算"
            )
        self.close_stage(stage)
        self.settle(stage)

    @staticmethod
    def after_cutoff(stage: Stage) -> datetime:
        return datetime.combine(stage.ends_on + timedelta(days=5), time(10), tzinfo=CST)

    def reward_and_penalise(self, stage: Stage) -> None:
        averages = {
            unit: sum(scores) / len(scores)
            for unit, scores in self.scores[stage.key].items()
            if scores
        }
        ranked = sorted(averages, key=lambda u: (-averages[u], u))
        for place, unit in enumerate(ranked[:3], start=1):
            basis = f"{stage.key}季度例会现场评分第{place}名"
            self.issue_award(stage, AwardKind.REWARD, basis, unit=unit, points=Decimal(4 - place))
        if ranked:
            head = self.units[ranked[0]].head
            basis = f"带领{self.units[ranked[0]].name}{stage.key}考核排名第一，党委通报表扬"
            self.issue_award(stage, AwardKind.REWARD, basis, person=head)
        for unit in list(dict.fromkeys(self.rejected.get(stage.key, [])))[:3]:
            basis = "整改验收未通过被退回"
            self.issue_award(stage, AwardKind.PENALTY, basis, unit=unit, points=Decimal(1))

    def issue_award(
        self,
        stage: Stage,
        kind: AwardKind,
        basis: str,
        *,
        unit: str | None = None,
        person: str | None = None,
        points: Decimal | None = None,
    ) -> None:
        self.count.awards += 1
        key = f"award-{self.count.awards:04}"
        rule = None if points is None else f"{basis}：{points}分"
        with self.acting(ORGANISATION, f"21-awards/{key}"):
            self.ids[key] = self.app.issue_award(
                cycle_id=self.cycle,
                kind=kind,
                basis=basis,
                stage=stage.key,
                unit_id=self.ids[unit] if unit else None,
                person_id=self.ids[person] if person else None,
                points=points,
                rule=rule,
            ).id
        self.awards.append((key, kind))

    def revoke_an_award(self) -> None:
        penalties = [key for key, kind in self.awards if kind is AwardKind.PENALTY]
        key = (penalties or [key for key, _ in self.awards])[0]
        with self.acting(ORGANISATION, f"21-awards/{key}/revoke"):
            self.app.revoke_award(
                self.ids[key], reason="经党委会复核：退回系材料报送遗漏所致，已按期整改到位，撤销"
            )


def source_label(source: ProblemSource) -> str:
    return {
        ProblemSource.SWEEP: "地毯式查找",
        ProblemSource.INSPECTION: "专项检查",
        ProblemSource.SELF_CHECK: "自查",
        ProblemSource.MEETING: "季度例会点评",
    }[source]


def checkpoints(stage: Stage) -> list[date]:
    """The days progress is reported on: the 15th and the last day of each month."""
    days = []
    day = stage.starts_on
    while day <= stage.ends_on:
        following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        days += [day.replace(day=15), min(following - timedelta(days=1), stage.ends_on)]
        day = following
    return days


def level_for(levels: Sequence[str], milestone: str, quality: float) -> str:
    """A rubric level around the milestone: better for strong units, worse for weak ones."""
    index = levels.index(milestone) - round(quality)
    return levels[max(0, min(len(levels) - 1, index))]


PROBLEM_FLAWS = (
    "台账记录不规范",
    "责任分解不到位",
    "进度滞后于阶段目标",
    "制度执行不严格",
    "佐证材料不完整",
    "整改跟踪不及时",
    "宣传教育覆盖不全",
    "基础数据统计口径不一",
    "安全隐患排查有遗漏",
    "经费使用审批不规范",
)
MEASURE_TITLES = (
    "{unit}建立问题清单销号制度",
    "{unit}开展专项培训",
    "{unit}完善台账并逐月比对",
    "{unit}组织党员突击队集中攻坚",
    "{unit}修订管理制度并开展回头看",
    "{unit}落实周调度、月通报",
)
REVIEW_COMMENTS = (
    "目标推进扎实，问题整改要持续巩固。",
    "措施针对性不强，要对照问题清单逐项细化。",
    "整改进度滞后，要压实第一责任人责任。",
    "特色做法值得总结推广。",
    "台账管理要规范，佐证材料要完整。",
)
