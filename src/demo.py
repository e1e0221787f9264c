"""A scripted assessment year: 2026 at 某市林业局, a fictional municipal forestry bureau.

Everything is loaded through the command service, as the people of the bureau would record it:
the organisation and its cadres, the 2026 cycle, targets, problems, measures, duties, the Q1
quarterly meeting, rectifications, confirmed effects, the closing of Q1, rewards and penalties,
and the changes a real year brings (a branch re-attached, a cadre rotated). Names, dates and
numbers are fixed, so two loads differ only in generated ids and recorded timestamps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import NamedTuple
from uuid import UUID

from closedloop.domain.access import Role
from closedloop.domain.awards import AwardKind
from closedloop.domain.context import acting_as
from closedloop.domain.duties import DutyTier
from closedloop.domain.errors import DomainError
from closedloop.domain.problems import ProblemSource, Severity
from closedloop.domain.scoring import AwardRule, ScoringPolicy
from closedloop.domain.service import ClosedLoop
from closedloop.domain.targets import Direction, EffectMethod, Indicator
from closedloop.domain.units import UnitKind

YEAR = 2026
CST = timezone(timedelta(hours=8), "CST")  # Asia/Shanghai, which keeps no daylight saving
CORRELATION_PREFIX = f"demo-{YEAR}"

ADMIN = "admin"
ORGANISATION = "staff:organisation-dept"  # 组织人事科: duties, meetings, inspections, awards
INSPECTOR = "inspector:discipline-office"  # 纪检监察室: inspections and rectifications
SCHEDULER = "scheduler"  # the quarterly settlement and the daily deadline check

Value = Decimal | str


def on(month: int, day: int) -> date:
    return date(YEAR, month, day)


def at(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(YEAR, month, day, hour, minute, tzinfo=CST)


def staff_of(unit: str) -> str:
    return f"staff:{unit}"


def person(key: str) -> str:
    return f"person:{key}"


# --- the organisation ------------------------------------------------------------------------


class UnitSpec(NamedTuple):
    key: str
    name: str
    kind: UnitKind
    parent: str | None


ROOT = "committee"
_C, _GB, _B = UnitKind.COMMITTEE, UnitKind.GENERAL_BRANCH, UnitKind.BRANCH
_D, _G = UnitKind.DEPARTMENT, UnitKind.GRASSROOTS

UNITS: tuple[UnitSpec, ...] = (
    UnitSpec(ROOT, "中共某市林业局委员会", _C, None),
    UnitSpec("gb-organs", "机关党总支", _GB, ROOT),
    UnitSpec("gb-farms", "国有林场党总支", _GB, ROOT),
    UnitSpec("gb-protection", "森林资源保护党总支", _GB, ROOT),
    UnitSpec("br-office", "办公室党支部", _B, "gb-organs"),
    UnitSpec("br-personnel", "组织人事党支部", _B, "gb-organs"),
    UnitSpec("br-finance", "计划财务党支部", _B, "gb-organs"),
    UnitSpec("br-ecology", "生态修复党支部", _B, "gb-organs"),
    UnitSpec("br-law", "政策法规党支部", _B, "gb-organs"),
    UnitSpec("br-beishan", "北山林场党支部", _B, "gb-farms"),
    UnitSpec("br-nanling", "南岭林场党支部", _B, "gb-farms"),
    UnitSpec("br-donghu", "东湖林场党支部", _B, "gb-farms"),
    UnitSpec("br-xipo", "西坡苗圃党支部", _B, "gb-farms"),
    UnitSpec("br-fire", "森林防火党支部", _B, "gb-protection"),
    UnitSpec("br-pest", "林业有害生物防治党支部", _B, "gb-protection"),
    UnitSpec("br-wildlife", "野生动植物保护党支部", _B, "gb-protection"),
    UnitSpec("br-reserve", "自然保护地管理党支部", _B, "gb-protection"),
    UnitSpec("dept-office", "局办公室", _D, ROOT),
    UnitSpec("dept-organisation", "组织人事科", _D, ROOT),
    UnitSpec("dept-publicity", "宣传教育科", _D, ROOT),
    UnitSpec("dept-discipline", "纪检监察室", _D, ROOT),
    UnitSpec("dept-finance", "计划财务科", _D, ROOT),
    UnitSpec("dept-ecology", "生态修复科", _D, ROOT),
    UnitSpec("dept-fire", "森林防火科", _D, ROOT),
    UnitSpec("farm-beishan", "北山国有林场", _G, ROOT),
    UnitSpec("farm-nanling", "南岭国有林场", _G, ROOT),
    UnitSpec("farm-donghu", "东湖国有林场", _G, ROOT),
    UnitSpec("nursery-xipo", "西坡国有苗圃", _G, ROOT),
    UnitSpec("station-chengjiao", "城郊森林保护站", _G, ROOT),
    UnitSpec("station-qinglongshan", "青龙山森林保护站", _G, ROOT),
)


def units_of(kind: UnitKind) -> tuple[str, ...]:
    return tuple(spec.key for spec in UNITS if spec.kind is kind)


BRANCHES = units_of(UnitKind.BRANCH)
GENERAL_BRANCHES = units_of(UnitKind.GENERAL_BRANCH)
DEPARTMENTS = units_of(UnitKind.DEPARTMENT)
FARMS = ("farm-beishan", "farm-nanling", "farm-donghu", "nursery-xipo")
STATIONS = ("station-chengjiao", "station-qinglongshan")


class PersonSpec(NamedTuple):
    key: str
    name: str
    unit: str
    title: str


PEOPLE: tuple[PersonSpec, ...] = (
    PersonSpec("zhang-jianguo", "张建国", ROOT, "党委书记、局长"),
    PersonSpec("li-weidong", "李卫东", ROOT, "党委副书记"),
    PersonSpec("wang-xiulan", "王秀兰", ROOT, "党委委员、副局长（分管生态修复）"),
    PersonSpec("zhao-zhigang", "赵志刚", ROOT, "党委委员、副局长（分管森林防火）"),
    PersonSpec("chen-hongmei", "陈红梅", ROOT, "党委委员、纪委书记"),
    PersonSpec("liu-yang", "刘洋", "gb-organs", "机关党总支书记"),
    PersonSpec("sun-lijuan", "孙丽娟", "gb-farms", "国有林场党总支书记"),
    PersonSpec("zhou-haitao", "周海涛", "gb-protection", "森林资源保护党总支书记"),
    PersonSpec("wu-jing", "吴静", "br-office", "支部书记"),
    PersonSpec("zheng-xiaoyan", "郑晓燕", "br-personnel", "支部书记"),
    PersonSpec("feng-qiang", "冯强", "br-finance", "支部书记"),
    PersonSpec("he-mingliang", "何明亮", "br-ecology", "支部书记"),
    PersonSpec("lyu-jie", "吕杰", "br-law", "支部书记"),
    PersonSpec("shi-guoqing", "石国庆", "br-beishan", "支部书记"),
    PersonSpec("luo-jun", "罗军", "br-nanling", "支部书记"),
    PersonSpec("gao-yan", "高燕", "br-donghu", "支部书记"),
    PersonSpec("lin-feng", "林峰", "br-xipo", "支部书记"),
    PersonSpec("guo-peng", "郭鹏", "br-fire", "支部书记"),
    PersonSpec("ma-lili", "马丽丽", "br-pest", "支部书记"),
    PersonSpec("tang-wen", "唐文", "br-wildlife", "支部书记"),
    PersonSpec("han-dong", "韩冬", "br-reserve", "支部书记"),
    PersonSpec("yang-fan", "杨帆", "dept-office", "办公室主任"),
    PersonSpec("zhu-hui", "朱慧", "dept-organisation", "组织人事科科长"),
    PersonSpec("xu-min", "徐敏", "dept-publicity", "宣传教育科科长"),
    PersonSpec("song-tao", "宋涛", "dept-discipline", "纪检监察室主任"),
    PersonSpec("huang-lei", "黄磊", "dept-finance", "计划财务科科长"),
    PersonSpec("hu-zhiyuan", "胡志远", "dept-ecology", "生态修复科科长"),
    PersonSpec("cao-jianjun", "曹建军", "dept-fire", "森林防火科科长"),
    PersonSpec("deng-zhiqiang", "邓志强", "farm-beishan", "场长"),
    PersonSpec("xie-chunhua", "谢春华", "farm-nanling", "场长"),
    PersonSpec("pan-hongbo", "潘洪波", "farm-donghu", "场长"),
    PersonSpec("du-xiaomei", "杜晓梅", "nursery-xipo", "主任"),
    PersonSpec("jiang-wei", "蒋伟", "station-chengjiao", "站长"),
    PersonSpec("yuan-shan", "袁山", "station-qinglongshan", "站长"),
    PersonSpec("peng-yu", "彭宇", "dept-fire", "森林防火科副科长"),
    PersonSpec("fang-qing", "方晴", "dept-organisation", "组织人事科干事"),
    PersonSpec("ye-xin", "叶欣", "dept-office", "办公室科员"),
    PersonSpec("lu-yuan", "陆远", "dept-ecology", "生态修复科工程师"),
    PersonSpec("jin-yue", "金玥", "dept-finance", "计划财务科会计"),
    PersonSpec("wei-dahai", "魏大海", "farm-beishan", "护林员"),
    PersonSpec("tian-xiaoling", "田晓玲", "farm-nanling", "造林技术员"),
    PersonSpec("dong-liang", "董亮", "farm-donghu", "护林员"),
    PersonSpec("qin-hao", "秦浩", "nursery-xipo", "育苗技术员"),
    PersonSpec("xiao-gang", "肖刚", "station-chengjiao", "巡护队长"),
    PersonSpec("cheng-li", "程莉", "station-qinglongshan", "监测员"),
)


class DutySpec(NamedTuple):
    key: str
    person: str
    unit: str
    tier: DutyTier
    effective_from: date


def _initial_duties() -> tuple[DutySpec, ...]:
    """Every tier: overall leadership, first / direct / specific responsibility for each unit."""
    holders = {spec.unit: spec.key for spec in reversed(PEOPLE)}  # the first person listed
    tiers = {
        UnitKind.COMMITTEE: DutyTier.OVERALL_LEADERSHIP,
        UnitKind.DEPARTMENT: DutyTier.FIRST_RESPONSIBLE,
        UnitKind.GRASSROOTS: DutyTier.FIRST_RESPONSIBLE,
        UnitKind.GENERAL_BRANCH: DutyTier.DIRECT_RESPONSIBLE,
        UnitKind.BRANCH: DutyTier.SPECIFIC_RESPONSIBLE,
    }
    return tuple(
        DutySpec(f"duty-{spec.key}", holders[spec.key], spec.key, tiers[spec.kind], on(1, 1))
        for spec in UNITS
    )


DUTIES = _initial_duties()

# --- targets (确认目标) -----------------------------------------------------------------------

LEVELS_BRANCH_WORK = ("好", "较好", "一般", "差")
LEVELS_INTEGRITY = ("优秀", "良好", "合格", "不合格")
LEVELS_MODEL_SITE = ("示范", "达标", "未达标")
LEVELS_COVERAGE = ("全覆盖", "基本覆盖", "未覆盖")


class TargetSpec(NamedTuple):
    key: str
    title: str
    indicator: Indicator
    points: Decimal
    units: tuple[str, ...]  # a common target: the units it applies to; a unit target: its unit
    milestones: dict[str, Value]
    contributes_to: str | None = None
    actor: str = ORGANISATION


COMMON_TARGETS: tuple[TargetSpec, ...] = (
    TargetSpec(
        "t-study",
        "党员教育培训学时达标",
        Indicator.quantitative(
            metric="党员年度集中学习培训学时",
            unit_of_measure="学时",
            baseline=Decimal(24),
            target_value=Decimal(32),
            direction=Direction.HIGHER_IS_BETTER,
        ),
        Decimal(10),
        BRANCHES,
        {"Q1": Decimal(8), "Q2": Decimal(16), "Q3": Decimal(24), "Q4": Decimal(32)},
    ),
    TargetSpec(
        "t-meetings",
        "“三会一课”制度规范落实",
        Indicator.qualitative(metric="组织生活规范化程度", levels=LEVELS_BRANCH_WORK),
        Decimal(15),
        GENERAL_BRANCHES + BRANCHES,
        {"Q1": "较好", "Q2": "较好", "Q3": "好", "Q4": "好"},
    ),
    TargetSpec(
        "t-integrity",
        "党风廉政建设主体责任落实",
        Indicator.qualitative(metric="主体责任落实评定", levels=LEVELS_INTEGRITY),
        Decimal(10),
        DEPARTMENTS,
        {"Q1": "良好", "Q2": "良好", "Q3": "良好", "Q4": "优秀"},
        actor=INSPECTOR,
    ),
    TargetSpec(
        "t-afforestation",
        "国土绿化：人工造林和退化林修复",
        Indicator.quantitative(
            metric="人工造林和退化林修复面积",
            unit_of_measure="亩",
            baseline=Decimal(0),
            target_value=Decimal(1500),
            direction=Direction.HIGHER_IS_BETTER,
        ),
        Decimal(20),
        FARMS,
        {"Q1": Decimal(600), "Q2": Decimal(1200), "Q3": Decimal(1300), "Q4": Decimal(1500)},
        actor=staff_of("dept-ecology"),
    ),
    TargetSpec(
        "t-fire",
        "森林火灾受害率控制",
        Indicator.quantitative(
            metric="森林火灾受害率",
            unit_of_measure="‰",
            baseline=Decimal("0.8"),
            target_value=Decimal("0.5"),
            direction=Direction.LOWER_IS_BETTER,
        ),
        Decimal(15),
        FARMS[:3] + STATIONS,
        {"Q1": Decimal("0.5"), "Q2": Decimal("0.5"), "Q3": Decimal("0.5"), "Q4": Decimal("0.5")},
        actor=staff_of("dept-fire"),
    ),
    TargetSpec(
        "t-model-site",
        "党建引领生态修复示范点创建",
        Indicator.qualitative(metric="示范点创建评定", levels=LEVELS_MODEL_SITE),
        Decimal(10),
        ("br-beishan", "br-nanling", "br-donghu", "br-ecology"),
        {"Q1": "达标", "Q2": "达标", "Q3": "示范", "Q4": "示范"},
    ),
)

# 一支部一特色: each branch's own target, contributing to a common one.
UNIT_TARGETS: tuple[TargetSpec, ...] = (
    TargetSpec(
        "u-beishan",
        "党员先锋护林岗",
        Indicator.qualitative(metric="先锋岗创建评定", levels=LEVELS_MODEL_SITE),
        Decimal(5),
        ("br-beishan",),
        {"Q1": "达标", "Q2": "达标", "Q3": "示范", "Q4": "示范"},
        contributes_to="t-model-site",
        actor=staff_of("br-beishan"),
    ),
    TargetSpec(
        "u-nanling",
        "党员责任区造林",
        Indicator.quantitative(
            metric="党员责任区造林面积",
            unit_of_measure="亩",
            baseline=Decimal(0),
            target_value=Decimal(300),
            direction=Direction.HIGHER_IS_BETTER,
        ),
        Decimal(5),
        ("br-nanling",),
        {"Q1": Decimal(100), "Q2": Decimal(200), "Q3": Decimal(250), "Q4": Decimal(300)},
        contributes_to="t-afforestation",
        actor=staff_of("br-nanling"),
    ),
    TargetSpec(
        "u-fire",
        "防火宣传进村入户",
        Indicator.quantitative(
            metric="进村入户宣传场次",
            unit_of_measure="场",
            baseline=Decimal(30),
            target_value=Decimal(48),
            direction=Direction.HIGHER_IS_BETTER,
        ),
        Decimal(5),
        ("br-fire",),
        {"Q1": Decimal(12), "Q2": Decimal(24), "Q3": Decimal(36), "Q4": Decimal(48)},
        contributes_to="t-fire",
        actor=staff_of("br-fire"),
    ),
    TargetSpec(
        "u-pest",
        "松材线虫病疫木除治攻坚",
        Indicator.quantitative(
            metric="疫木除治株数",
            unit_of_measure="株",
            baseline=Decimal(3200),
            target_value=Decimal(5000),
            direction=Direction.HIGHER_IS_BETTER,
        ),
        Decimal(5),
        ("br-pest",),
        {"Q1": Decimal(1200), "Q2": Decimal(2500), "Q3": Decimal(3800), "Q4": Decimal(5000)},
        contributes_to="t-afforestation",
        actor=staff_of("br-pest"),
    ),
    TargetSpec(
        "u-personnel",
        "党员积分制管理全覆盖",
        Indicator.qualitative(metric="积分制管理覆盖情况", levels=LEVELS_COVERAGE),
        Decimal(5),
        ("br-personnel",),
        {"Q1": "基本覆盖", "Q2": "全覆盖", "Q3": "全覆盖", "Q4": "全覆盖"},
        contributes_to="t-meetings",
        actor=staff_of("br-personnel"),
    ),
    TargetSpec(
        "u-xipo",
        "良种苗木扩繁",
        Indicator.quantitative(
            metric="良种苗木出圃量",
            unit_of_measure="万株",
            baseline=Decimal(80),
            target_value=Decimal(120),
            direction=Direction.HIGHER_IS_BETTER,
        ),
        Decimal(5),
        ("br-xipo",),
        {"Q1": Decimal(30), "Q2": Decimal(60), "Q3": Decimal(90), "Q4": Decimal(120)},
        contributes_to="t-afforestation",
        actor=staff_of("br-xipo"),
    ),
)


class ContractSpec(NamedTuple):
    target: str
    lead: str
    responsible: tuple[str, ...]
    leader: str


CONTRACTS: tuple[ContractSpec, ...] = (
    ContractSpec(
        "t-study", "dept-organisation", ("dept-publicity", *GENERAL_BRANCHES), "li-weidong"
    ),
    ContractSpec("t-meetings", "dept-organisation", GENERAL_BRANCHES, "li-weidong"),
    ContractSpec("t-integrity", "dept-discipline", DEPARTMENTS, "chen-hongmei"),
    ContractSpec("t-afforestation", "dept-ecology", FARMS, "wang-xiulan"),
    ContractSpec("t-fire", "dept-fire", FARMS[:3] + STATIONS, "zhao-zhigang"),
    ContractSpec(
        "t-model-site",
        "gb-farms",
        ("br-beishan", "br-nanling", "br-donghu", "dept-ecology"),
        "wang-xiulan",
    ),
    ContractSpec("u-nanling", "br-nanling", ("farm-nanling",), "sun-lijuan"),
    ContractSpec("u-fire", "br-fire", ("dept-fire", *STATIONS), "zhao-zhigang"),
)

# 联动: the administrative afforestation goal and the party goal of model sites know each other.
LINKS: tuple[tuple[str, str], ...] = (
    ("t-afforestation", "t-model-site"),
    ("t-model-site", "t-afforestation"),
)

STUDY_REVISION_REASON = (
    "落实省委组织部《2026年度党员教育培训工作要点》：党员年度集中学习培训不少于40学时"
)
STUDY_REVISED = Indicator.quantitative(
    metric="党员年度集中学习培训学时",
    unit_of_measure="学时",
    baseline=Decimal(24),
    target_value=Decimal(40),
    direction=Direction.HIGHER_IS_BETTER,
)
STUDY_REVISED_MILESTONES: dict[str, Value] = {
    "Q1": Decimal(10),
    "Q2": Decimal(20),
    "Q3": Decimal(30),
    "Q4": Decimal(40),
}

# --- problems (确认问题) ----------------------------------------------------------------------


class ProblemSpec(NamedTuple):
    key: str
    unit: str
    target: str | None
    source: ProblemSource
    title: str
    description: str
    found_at: datetime
    actor: str
    severity: Severity = Severity.ORDINARY
    shared: bool = False


class DispatchSpec(NamedTuple):
    problem: str
    to_unit: str
    requirement: str
    deadline: date
    actor: str


class EscalationSpec(NamedTuple):
    problem: str
    leader: str
    reason: str
    actor: str


SWEEP_PROBLEMS: tuple[ProblemSpec, ...] = (
    ProblemSpec(
        "p-firebreak",
        "farm-beishan",
        "t-fire",
        ProblemSource.SWEEP,
        "北山林场防火隔离带12公里未按期清理",
        "地毯式查找发现：北山林场东片区防火隔离带杂草、枯枝堆积，春季防火期临近。",
        at(2, 10),
        staff_of("dept-fire"),
        Severity.PROMINENT,
    ),
    ProblemSpec(
        "p-remote-study",
        "br-nanling",
        "t-study",
        ProblemSource.SWEEP,
        "偏远工区党员集中学习参学率不足60%",
        "南岭林场三个偏远工区党员分散驻守，集中学习难以组织。",
        at(2, 12),
        staff_of("dept-organisation"),
    ),
    ProblemSpec(
        "p-pest-monitoring",
        "farm-donghu",
        "t-afforestation",
        ProblemSource.SWEEP,
        "松材线虫病疫情监测点覆盖不全",
        "北山、南岭、东湖三个林场均存在监测点间距过大、部分小班无监测的情况。",
        at(2, 14),
        staff_of("dept-ecology"),
        shared=True,
    ),
)

SWEEP_ESCALATIONS: tuple[EscalationSpec, ...] = (
    EscalationSpec(
        "p-firebreak",
        "zhao-zhigang",
        "涉及春季森林防火安全，属突出问题，报分管领导督办",
        staff_of("dept-fire"),
    ),
    EscalationSpec(
        "p-pest-monitoring",
        "wang-xiulan",
        "三个国有林场普遍存在，属共性问题，报分管领导统筹",
        staff_of("dept-ecology"),
    ),
)

SWEEP_DISPATCHES: tuple[DispatchSpec, ...] = (
    DispatchSpec(
        "p-firebreak",
        "farm-beishan",
        "3月15日前完成防火隔离带清理，报森林防火科验收",
        on(3, 15),
        staff_of("dept-fire"),
    ),
    DispatchSpec(
        "p-remote-study",
        "br-nanling",
        "采取送学上山、线上补学等方式，5月底前参学率提高到90%以上",
        on(5, 31),
        ORGANISATION,
    ),
    DispatchSpec(
        "p-pest-monitoring",
        "farm-donghu",
        "东湖林场牵头制定监测点加密方案，6月底前完成布设",
        on(6, 30),
        staff_of("dept-ecology"),
    ),
)

MARCH_PROBLEMS: tuple[ProblemSpec, ...] = (
    ProblemSpec(
        "p-app-usage",
        "farm-donghu",
        "t-fire",
        ProblemSource.SELF_CHECK,
        "护林员巡护APP使用率偏低",
        "东湖林场自查：2月份护林员巡护APP打卡率仅71%。",
        at(3, 3),
        staff_of("farm-donghu"),
    ),
    ProblemSpec(
        "p-meeting-records",
        "br-finance",
        "t-meetings",
        ProblemSource.INSPECTION,
        "“三会一课”记录不规范，存在事后补记",
        "纪检监察室专项检查发现：计划财务党支部2025年第四季度3次支部委员会记录为事后补记。",
        at(3, 5),
        INSPECTOR,
        Severity.PROMINENT,
    ),
    ProblemSpec(
        "p-online-courses",
        "dept-publicity",
        "t-study",
        ProblemSource.SELF_CHECK,
        "党员教育线上课程更新不及时",
        "宣传教育科自查：线上学习平台林业专题课程1月以来未更新。",
        at(3, 6),
        staff_of("dept-publicity"),
    ),
    ProblemSpec(
        "p-seedling-ledger",
        "nursery-xipo",
        None,
        ProblemSource.INSPECTION,
        "苗木出圃台账与财务入账不一致",
        "纪检监察室检查发现：西坡苗圃1至2月出圃苗木4.2万株，财务入账3.9万株。",
        at(3, 12),
        INSPECTOR,
    ),
)

MARCH_ESCALATIONS: tuple[EscalationSpec, ...] = (
    EscalationSpec(
        "p-meeting-records",
        "li-weidong",
        "组织生活不规范属突出问题，报分管党建的副书记督办",
        INSPECTOR,
    ),
)

MARCH_DISPATCHES: tuple[DispatchSpec, ...] = (
    DispatchSpec(
        "p-meeting-records",
        "br-finance",
        "4月底前逐次核对记录，说明补记原因并规范整改",
        on(4, 30),
        INSPECTOR,
    ),
)

MEETING_PROBLEM = ProblemSpec(
    "p-patrol-records",
    "station-chengjiao",
    "t-fire",
    ProblemSource.MEETING,
    "巡护记录与巡护APP轨迹不符",
    "一季度例会点评指出：城郊森林保护站3月有9条巡护记录在APP中无对应轨迹。",
    at(3, 30, 16),
    ORGANISATION,
)

MEETING_DISPATCH = DispatchSpec(
    "p-patrol-records",
    "station-chengjiao",
    "4月20日前逐条核对3月以来巡护记录与轨迹，建立每周比对制度",
    on(4, 20),
    staff_of("dept-fire"),
)


class ProblemUpdate(NamedTuple):
    problem: str
    actor: str
    text: str  # evidence of a resolution, reason of a reopening
    at: datetime | None = None
    reopen: bool = False


MARCH_RESOLUTIONS: tuple[ProblemUpdate, ...] = (
    ProblemUpdate(
        "p-firebreak",
        staff_of("farm-beishan"),
        "森林防火科3月14日现场验收：12公里隔离带全部清理完毕",
        at(3, 14, 17),
    ),
    ProblemUpdate(
        "p-app-usage",
        staff_of("farm-donghu"),
        "3月份护林员巡护APP打卡率达98%，培训签到表已归档",
        at(3, 28, 10),
    ),
)

SPRING_PROBLEM_UPDATES: tuple[ProblemUpdate, ...] = (
    ProblemUpdate(
        "p-seedling-ledger",
        staff_of("nursery-xipo"),
        "差额0.3万株为调拨试验林用苗，已补办调拨手续并入账",
        at(4, 20, 15),
    ),
    ProblemUpdate(
        "p-patrol-records",
        staff_of("station-chengjiao"),
        "已逐条核对并建立每周轨迹比对制度，整改事项经纪检监察室验收",
        at(4, 19, 16),
    ),
    ProblemUpdate(
        "p-meeting-records",
        staff_of("br-finance"),
        "记录核查说明和整改台账经纪检监察室验收通过",
        at(4, 25, 11),
    ),
    ProblemUpdate(
        "p-patrol-records",
        staff_of("dept-fire"),
        "复查发现4月下旬仍有3条巡护记录无轨迹对应，问题未根治，重新督办",
        reopen=True,
    ),
    ProblemUpdate(
        "p-remote-study",
        staff_of("br-nanling"),
        "5月偏远工区党员参学率达93%，学习台账已归档",
        at(5, 28, 10),
    ),
)

# --- measures (确认措施) ----------------------------------------------------------------------


class MeasureSpec(NamedTuple):
    key: str
    title: str
    problems: tuple[str, ...]
    target: str | None
    deadline: date
    lead: str
    responsible: tuple[str, ...]
    leader: str


class MeasureUpdate(NamedTuple):
    measure: str
    percent: int | None  # a progress report; None: completion, or cancellation with reason
    text: str
    cancel: bool = False


SWEEP_MEASURES: tuple[MeasureSpec, ...] = (
    MeasureSpec(
        "m-firebreak",
        "组织突击队清理北山林场防火隔离带",
        ("p-firebreak",),
        "t-fire",
        on(3, 15),
        "farm-beishan",
        ("dept-fire",),
        "zhao-zhigang",
    ),
    MeasureSpec(
        "m-mobile-classes",
        "送学上山：流动党课进工区",
        ("p-remote-study",),
        "t-study",
        on(5, 31),
        "dept-organisation",
        ("br-nanling", "dept-publicity"),
        "li-weidong",
    ),
    MeasureSpec(
        "m-monitoring-points",
        "新增松材线虫病监测点20个",
        ("p-pest-monitoring",),
        "t-afforestation",
        on(6, 30),
        "dept-ecology",
        FARMS[:3],
        "wang-xiulan",
    ),
    MeasureSpec(
        "m-spring-planting",
        "春季造林绿化攻坚行动",
        (),
        "t-afforestation",
        on(4, 30),
        "dept-ecology",
        FARMS,
        "wang-xiulan",
    ),
    MeasureSpec(
        "m-drones",
        "采购无人机开展森林防火巡护",
        (),
        "t-fire",
        on(6, 30),
        "dept-fire",
        STATIONS,
        "zhao-zhigang",
    ),
)

MARCH_MEASURES: tuple[MeasureSpec, ...] = (
    MeasureSpec(
        "m-app-training",
        "护林员巡护APP使用培训",
        ("p-app-usage",),
        "t-fire",
        on(3, 31),
        "farm-donghu",
        (),
        "zhao-zhigang",
    ),
    MeasureSpec(
        "m-meeting-records",
        "规范“三会一课”记录，开展支部书记专题培训",
        ("p-meeting-records",),
        "t-meetings",
        on(4, 30),
        "dept-organisation",
        ("br-finance", "gb-organs"),
        "li-weidong",
    ),
    MeasureSpec(
        "m-course-updates",
        "线上课程按月更新林业专题内容",
        ("p-online-courses",),
        "t-study",
        on(6, 30),
        "dept-publicity",
        (),
        "li-weidong",
    ),
)

MEETING_MEASURE = MeasureSpec(
    "m-weekly-comparison",
    "巡护记录与APP轨迹每周比对",
    ("p-patrol-records",),
    "t-fire",
    on(6, 30),
    "station-chengjiao",
    ("dept-fire",),
    "zhao-zhigang",
)

MARCH_MEASURE_UPDATES: tuple[MeasureUpdate, ...] = (
    MeasureUpdate("m-firebreak", 50, "已清理6公里，调集两支突击队加快进度"),
    MeasureUpdate("m-firebreak", None, "12公里隔离带清理完毕，森林防火科3月14日验收合格"),
    MeasureUpdate("m-mobile-classes", 40, "3月在南岭林场偏远工区开展流动党课2场"),
    MeasureUpdate("m-monitoring-points", 30, "已在三个林场新增监测点6个"),
    MeasureUpdate("m-spring-planting", 60, "截至3月底完成春季造林约2900亩"),
    MeasureUpdate("m-drones", 10, "完成采购需求论证"),
    MeasureUpdate(
        "m-drones",
        None,
        "省林业局统一配发防火巡护无人机4架，本级采购取消，资金调整用于防火隔离带建设",
        cancel=True,
    ),
    MeasureUpdate("m-app-training", None, "分两批培训护林员46人，3月打卡率达98%"),
    MeasureUpdate("m-course-updates", 20, "已上线林业专题课程3门"),
)

SPRING_MEASURE_UPDATES: tuple[MeasureUpdate, ...] = (
    MeasureUpdate("m-meeting-records", None, "举办支部书记专题培训1期，记录模板统一下发"),
    MeasureUpdate("m-spring-planting", None, "完成人工造林和退化林修复3400亩，验收台账已归档"),
    MeasureUpdate("m-weekly-comparison", 50, "已建立每周比对台账，完成4月前三周比对"),
    MeasureUpdate("m-mobile-classes", 80, "4月开展线上补学，参学率82%"),
    MeasureUpdate("m-mobile-classes", None, "5月参学率达93%，学习台账已归档"),
)

# --- the Q1 quarterly meeting (季度例会) ----------------------------------------------------

MEETING_TITLE = "2026年第一季度党建工作例会暨“六个确认”推进会"
MEETING_DAY = on(3, 30)
RATERS: tuple[tuple[str, Decimal], ...] = (  # who scores, and how strictly (offset to the base)
    ("zhang-jianguo", Decimal(0)),
    ("li-weidong", Decimal(-1)),
    ("wang-xiulan", Decimal("0.5")),
    ("zhao-zhigang", Decimal(1)),
    ("chen-hongmei", Decimal("-1.5")),
    ("liu-yang", Decimal("1.5")),
    ("sun-lijuan", Decimal("-0.5")),
    ("zhou-haitao", Decimal(0)),
    ("song-tao", Decimal("-1")),
)


class ReportSpec(NamedTuple):
    unit: str
    summary: str
    base_score: Decimal


REPORTS: tuple[ReportSpec, ...] = (
    ReportSpec("dept-office", "一季度完成公文运转、督查督办，机关效能建设稳步推进。", Decimal(88)),
    ReportSpec("dept-organisation", "一季度组织党员集中学习，完成党员积分制试点。", Decimal(90)),
    ReportSpec("dept-publicity", "一季度开展林业政策宣讲12场，线上课程更新滞后。", Decimal(84)),
    ReportSpec("dept-discipline", "一季度开展“三会一课”专项检查，查实问题2个。", Decimal(89)),
    ReportSpec("dept-finance", "一季度完成预算执行分析，支部组织生活存在补记问题。", Decimal(82)),
    ReportSpec("dept-ecology", "一季度推进春季造林，新增松材线虫病监测点6个。", Decimal(91)),
    ReportSpec("dept-fire", "一季度未发生森林火灾，防火隔离带突出问题按期清零。", Decimal(92)),
    ReportSpec("farm-beishan", "一季度完成防火隔离带清理12公里、造林980亩。", Decimal(94)),
    ReportSpec("farm-nanling", "一季度完成造林760亩，偏远工区党员学习仍需加强。", Decimal(86)),
    ReportSpec("farm-donghu", "一季度巡护APP打卡率由71%提升到98%。", Decimal(89)),
    ReportSpec("nursery-xipo", "一季度出圃苗木4.2万株，台账与入账差异正在核对。", Decimal(81)),
    ReportSpec("station-chengjiao", "一季度巡护面积3.1万亩，巡护记录管理存在漏洞。", Decimal(80)),
    ReportSpec("station-qinglongshan", "一季度巡护无死角，野生动物监测数据上报及时。", Decimal(90)),
)

SCORE_CORRECTION = (
    "zhao-zhigang",
    "station-chengjiao",
    Decimal(78),
    "录入时误按现场评分表上一行分值填写，更正为评分表所记78分",
)

REVIEWS: tuple[tuple[str, str, str], ...] = (
    ("zhang-jianguo", "farm-beishan", "突出问题整改快、成效实，要总结“党员突击队”做法。"),
    ("zhang-jianguo", "dept-finance", "组织生活不规范问题要深挖根源，举一反三。"),
    ("zhang-jianguo", "station-chengjiao", "巡护记录与轨迹不符，要立行立改，纳入整改督办。"),
    ("zhang-jianguo", "nursery-xipo", "台账问题关系资产安全，要会同计划财务科尽快查清。"),
    ("li-weidong", "farm-nanling", "偏远工区学习要创新方式，送学上山要常态化。"),
    ("li-weidong", "dept-publicity", "线上课程要贴近林业一线，按月更新。"),
)

# --- effects (确认效果) -----------------------------------------------------------------------

# Per target, per unit: (self-assessment result, inspection result) for Q1.
Q1_RESULTS: dict[str, dict[str, tuple[Value, Value]]] = {
    "t-study": {
        "br-office": (Decimal(12), Decimal(12)),
        "br-personnel": (Decimal(14), Decimal("13.5")),
        "br-finance": (Decimal(10), Decimal(9)),
        "br-ecology": (Decimal(11), Decimal(11)),
        "br-law": (Decimal("10.5"), Decimal(10)),
        "br-beishan": (Decimal(12), Decimal("11.5")),
        "br-nanling": (Decimal(6), Decimal("5.5")),
        "br-donghu": (Decimal(10), Decimal(10)),
        "br-xipo": (Decimal(9), Decimal("8.5")),
        "br-fire": (Decimal(11), Decimal("10.5")),
        "br-pest": (Decimal(10), Decimal(10)),
        "br-wildlife": (Decimal("9.5"), Decimal(9)),
        "br-reserve": (Decimal(10), Decimal("9.5")),
    },
    "t-meetings": {
        "gb-organs": ("好", "较好"),
        "gb-farms": ("好", "好"),
        "gb-protection": ("较好", "较好"),
        "br-office": ("好", "好"),
        "br-personnel": ("好", "好"),
        "br-finance": ("较好", "较好"),
        "br-ecology": ("较好", "较好"),
        "br-law": ("较好", "一般"),
        "br-beishan": ("好", "好"),
        "br-nanling": ("较好", "一般"),
        "br-donghu": ("好", "较好"),
        "br-xipo": ("较好", "较好"),
        "br-fire": ("好", "较好"),
        "br-pest": ("较好", "较好"),
        "br-wildlife": ("一般", "一般"),
        "br-reserve": ("较好", "较好"),
    },
    "t-integrity": {
        "dept-office": ("良好", "良好"),
        "dept-organisation": ("优秀", "优秀"),
        "dept-publicity": ("良好", "合格"),
        "dept-discipline": ("优秀", "优秀"),
        "dept-finance": ("良好", "良好"),
        "dept-ecology": ("良好", "良好"),
        "dept-fire": ("良好", "合格"),
    },
    "t-afforestation": {
        "farm-beishan": (Decimal(980), Decimal(960)),
        "farm-nanling": (Decimal(760), Decimal(740)),
        "farm-donghu": (Decimal(850), Decimal(850)),
        "nursery-xipo": (Decimal(320), Decimal(300)),
    },
    "t-fire": {
        "farm-beishan": (Decimal(0), Decimal(0)),
        "farm-nanling": (Decimal("0.12"), Decimal("0.15")),
        "farm-donghu": (Decimal(0), Decimal(0)),
        "station-chengjiao": (Decimal("0.31"), Decimal("0.42")),
        "station-qinglongshan": (Decimal(0), Decimal(0)),
    },
    "t-model-site": {
        "br-beishan": ("示范", "示范"),
        "br-nanling": ("达标", "达标"),
        "br-donghu": ("达标", "达标"),
        "br-ecology": ("达标", "未达标"),
    },
    "u-beishan": {"br-beishan": ("示范", "示范")},
    "u-nanling": {"br-nanling": (Decimal(120), Decimal(110))},
    "u-fire": {"br-fire": (Decimal(14), Decimal(12))},
    "u-pest": {"br-pest": (Decimal(1350), Decimal(1280))},
    "u-personnel": {"br-personnel": ("全覆盖", "基本覆盖")},
}

EVIDENCE: dict[str, tuple[str, str]] = {  # (self-assessment, inspection)
    "t-study": ("支部学习台账、签到表、线上学习记录", "组织人事科抽查学习台账并比对线上学时"),
    "t-meetings": ("“三会一课”会议记录、支部活动影像资料", "组织人事科逐支部查阅会议记录"),
    "t-integrity": ("主体责任清单落实情况自查报告", "纪检监察室对照责任清单逐项检查"),
    "t-afforestation": ("造林小班作业设计、验收单", "生态修复科现场抽样核查造林面积"),
    "t-fire": ("火情统计台账、巡护记录", "森林防火科核对火情统计和卫星热点"),
    "t-model-site": ("示范点创建台账、现场照片", "国有林场党总支实地查看示范点"),
    "u-beishan": ("先锋岗值守记录", "国有林场党总支实地查看护林岗"),
    "u-nanling": ("党员责任区造林台账", "生态修复科核查责任区造林面积"),
    "u-fire": ("宣传活动记录、村民签名册", "森林防火科电话回访抽查"),
    "u-pest": ("疫木除治作业单、除治影像", "林业有害生物防治站现场核查伐桩"),
    "u-personnel": ("党员积分台账", "组织人事科抽查积分记录"),
}

EFFECT_CORRECTION = (
    "t-meetings",
    "br-finance",
    "一般",
    "纪检监察室查实该支部存在事后补记记录，组织检查评定由“较好”更正为“一般”",
)
SELF_ASSESSED_AT = at(4, 2, 10)
INSPECTED_AT = at(4, 8, 15)

# --- rectifications (整改) ------------------------------------------------------------------


class RectificationSpec(NamedTuple):
    key: str
    unit: str
    requirement: str
    deadline: date
    problem: str | None = None
    target: str | None = None
    from_meeting: bool = False


RECTIFICATIONS: tuple[RectificationSpec, ...] = (
    RectificationSpec(
        "r-meeting-records",
        "br-finance",
        "逐次核对2025年以来“三会一课”记录，书面说明补记原因并建立记录审核制度",
        on(4, 30),
        problem="p-meeting-records",
    ),
    RectificationSpec(
        "r-patrol-records",
        "station-chengjiao",
        "逐条核对3月以来巡护记录与APP轨迹，建立每周比对制度",
        on(4, 20),
        problem="p-patrol-records",
        from_meeting=True,
    ),
    RectificationSpec(
        "r-seedling-ledger",
        "nursery-xipo",
        "查清出圃苗木台账与财务入账差异，补办手续并完善出圃登记",
        on(4, 30),
        problem="p-seedling-ledger",
    ),
    RectificationSpec(
        "r-fire-reserve",
        "farm-nanling",
        "补齐防火物资储备库扑火机具，建立出入库登记",
        on(6, 30),
        target="t-fire",
    ),
)


class RectificationStep(NamedTuple):
    rectification: str
    action: str  # complete / reject / verify
    text: str


RECTIFICATION_STEPS: tuple[RectificationStep, ...] = (
    RectificationStep("r-patrol-records", "complete", "修订《巡护管理制度》，明确每周比对要求"),
    RectificationStep(
        "r-patrol-records",
        "reject",
        "仅提交制度文本，缺少3月以来巡护轨迹逐日比对记录，退回重新整改",
    ),
    RectificationStep(
        "r-patrol-records", "complete", "补交3月1日至4月15日巡护轨迹逐日比对记录及9条异常记录说明"
    ),
    RectificationStep("r-patrol-records", "verify", "比对记录完整，异常记录已说明，整改到位"),
    RectificationStep("r-seedling-ledger", "complete", "补办试验林用苗调拨手续，差额已入账"),
    RectificationStep("r-seedling-ledger", "verify", "台账与入账一致，整改到位"),
    RectificationStep("r-meeting-records", "complete", "提交记录核查说明、整改台账和记录审核制度"),
    RectificationStep("r-meeting-records", "verify", "核查说明属实，审核制度已执行，整改到位"),
)

# --- rewards and penalties (兑现奖惩) -------------------------------------------------------


class AwardSpec(NamedTuple):
    key: str
    kind: AwardKind
    basis: str
    unit: str | None = None
    person: str | None = None
    points: Decimal | None = None
    rule: str | None = None


AWARDS: tuple[AwardSpec, ...] = (
    AwardSpec(
        "a-beishan",
        AwardKind.REWARD,
        "2026年第一季度例会现场评分第一名；防火隔离带突出问题提前一天清零",
        unit="farm-beishan",
        points=Decimal(3),
        rule="季度例会评分第一名加3分",
    ),
    AwardSpec(
        "a-deng-zhiqiang",
        AwardKind.REWARD,
        "带领党员突击队5天完成12公里防火隔离带清理，党委通报表扬",
        person="deng-zhiqiang",
    ),
    AwardSpec(
        "a-chengjiao",
        AwardKind.PENALTY,
        "例会交办的巡护记录整改首次验收未通过，被纪检监察室退回",
        unit="station-chengjiao",
        points=Decimal(1),
        rule="整改被退回一次扣1分",
    ),
    AwardSpec(
        "a-finance",
        AwardKind.PENALTY,
        "纪检监察室专项检查查实“三会一课”记录事后补记（突出问题）",
        unit="br-finance",
        points=Decimal(2),
        rule="查实突出问题扣2分",
    ),
)

AWARD_REVOCATION = (
    "a-finance",
    "经党委会复核：补记系记录员岗位交接遗漏所致，会议均如期召开，且支部已在期限内整改到位，"
    "撤销该项扣分",
)

# --- changes during the year -----------------------------------------------------------------

MOVE = (
    "br-xipo",
    "gb-protection",
    "西坡苗圃承担全市林业有害生物防治苗木检疫任务，经党委会研究，西坡苗圃党支部改隶森林资源保护党总支",
)
WITHDRAWAL = (
    "u-xipo",
    "支部改隶后转为承担苗木检疫任务，原“良种苗木扩繁”特色目标不再适用，撤回后另行确定",
)
ROTATION_DUTY = "duty-dept-fire"
ROTATION_RELIEVED_ON = on(4, 15)
ROTATION_RELIEF_REASON = "交流任职：免去曹建军森林防火科科长职务（党委会2026年第8次会议决定）"
ROTATION_PERSON = "cao-jianjun"
ROTATION_TO = "station-qinglongshan"
ROTATION_TRANSFER_REASON = "交流任职：任青龙山森林保护站副站长（党委会2026年第8次会议决定）"
SUCCESSOR = DutySpec(
    "duty-dept-fire-2", "peng-yu", "dept-fire", DutyTier.FIRST_RESPONSIBLE, on(4, 16)
)

Q1_CLOSING_REASON = "一季度效果确认（自查自评、组织检查）全部完成，按期关闭第一季度"

# The cycle's scoring policy: the standing weights, with the bureau's rules for rewards and
# penalties, which settlement applies to the ranking each quarter.
DEMO_POLICY = ScoringPolicy(
    award_rules=(
        AwardRule("季度综合排名第一名表扬", "reward", "rank", Decimal(1), Decimal(3)),
        AwardRule("季度综合得分后10%约谈", "penalty", "bottom_share", Decimal("0.1")),
        AwardRule("季度综合得分低于60分通报", "penalty", "below", Decimal(60), Decimal(2)),
    )
)
# Q1 is settled once the quarter has ended, then reopened for a correction and settled again.
Q1_SETTLED_AT = at(4, 10, 10)
Q1_REOPEN_REASON = (
    "青龙山林场反映一季度组织检查复核结果漏录，经党委会2026年第7次会议同意，重新开启一季度结算"
)
Q1_CORRECTION = (
    "u-nanling",
    "br-nanling",
    Decimal(118),
    "复核：南岭林场党支部责任区补植8亩漏录，组织检查结果更正为118亩（党委会2026年第7次会议同意）",
)
Q1_RESETTLED_AT = at(4, 12, 10)
# From Q3 the bureau weighs process harder (党委会2026年第12次会议).
H2_POLICY = ScoringPolicy(
    overdue_measure_deduction=Decimal(8),
    award_rules=DEMO_POLICY.award_rules,
)
H2_POLICY_REASON = "下半年起加大过程考核力度：逾期措施每项扣8分（党委会2026年第12次会议决定）"
# The daily deadline check as it ran on the morning of 1 June.
DEADLINE_CHECK_AT = at(6, 1, 0, 15)

# --- loading ---------------------------------------------------------------------------------


class StoreNotEmpty(Exception):
    """The demo loads into an empty store only, unless asked to load beside what is there."""

    def __init__(self, head_position: int) -> None:
        self.head_position = head_position
        events = "1 event" if head_position == 1 else f"{head_position} events"
        super().__init__(
            f"the event store already holds {events}; loading the demo would add a second "
            "organisation beside them. Pass force=True (closedloop demo --force) to load it anyway"
        )


@dataclass(frozen=True)
class DemoSummary:
    cycle_id: UUID
    root_unit_id: UUID
    admin_actor: str
    events_per_type: dict[str, int]
    head_position: int

    @property
    def total_events(self) -> int:
        return sum(self.events_per_type.values())


def load_demo(app: ClosedLoop, *, force: bool = False) -> DemoSummary:
    """Record the 2026 assessment year of 某市林业局 through the command service."""
    start = app.head_position()
    if start > 0 and not force:
        raise StoreNotEmpty(start)
    year = _DemoYear(app)
    year.run()
    return DemoSummary(
        cycle_id=year.cycle,
        root_unit_id=year.units[ROOT],
        admin_actor=ADMIN,
        events_per_type=events_per_type(app, after=start),
        head_position=app.head_position(),
    )


def events_per_type(app: ClosedLoop, *, after: int, page: int = 500) -> dict[str, int]:
    """Count the stored events after position ``after`` by type name, read back from the log."""
    counts: Counter[str] = Counter()
    start = after + 1
    while notifications := app.recorder.select_notifications(start=start, limit=page):
        counts.update(n.topic.rpartition(".")[2] for n in notifications)
        start = notifications[-1].id + 1
    return dict(sorted(counts.items()))


def format_summary(summary: DemoSummary) -> str:
    width = max(len(name) for name in (*summary.events_per_type, "total"))
    lines = [f"Demo loaded: 某市林业局, assessment year {YEAR}", "", "events written, by type:"]
    lines += [f"  {name:<{width}}  {count:>5}" for name, count in summary.events_per_type.items()]
    lines += [
        f"  {'total':<{width}}  {summary.total_events:>5}",
        "",
        f"head position {summary.head_position}",
        f"cycle {summary.cycle_id}",
        f"root unit {summary.root_unit_id}",
        f"setup actor {summary.admin_actor}",
        "",
        "next:",
        f"  closedloop history {summary.cycle_id}    # the year, who opened and closed what",
        f"  closedloop show {summary.root_unit_id}    # the committee at the root of the tree",
    ]
    return "\n".join(lines)


class _DemoYear:
    """The year, part by part, in the order the bureau would record it."""

    def __init__(self, app: ClosedLoop) -> None:
        self.app = app
        self.units: dict[str, UUID] = {}
        self.people: dict[str, UUID] = {}
        self.targets: dict[str, UUID] = {}
        self.problems: dict[str, UUID] = {}
        self.measures: dict[str, UUID] = {}
        self.duties: dict[str, UUID] = {}
        self.rectifications: dict[str, UUID] = {}
        self.awards: dict[str, UUID] = {}
        self.cycle_id: UUID | None = None
        self.meeting_id: UUID | None = None

    def run(self) -> None:
        self.register_organisation()  # January
        self.grant_access()
        self.open_cycle()
        self.assign_duties(DUTIES)
        self.set_targets()
        self.sweep_problems()  # February: 地毯式查找
        self.adopt_measures(SWEEP_MEASURES, "sweep")
        self.revise_study_target()
        self.reorganise_nursery()  # March
        self.record_march_problems()
        self.adopt_measures(MARCH_MEASURES, "march")
        self.update_measures(MARCH_MEASURE_UPDATES, "march")
        self.update_problems(MARCH_RESOLUTIONS, "march")
        self.hold_q1_meeting()
        self.follow_up_meeting()
        self.confirm_q1_effects()  # April
        self.close_q1()
        self.settle_q1()
        self.correct_q1()
        self.rectify()
        self.reward_and_penalise()
        self.rotate_fire_department_head()
        self.update_measures(SPRING_MEASURE_UPDATES, "spring")  # April and May
        self.update_problems(SPRING_PROBLEM_UPDATES, "spring")
        self.revoke_award()
        self.check_deadlines()  # 1 June
        self.revise_policy_for_h2()

    @contextmanager
    def acting(self, actor: str, step: str) -> Iterator[None]:
        with acting_as(actor, correlation_id=f"{CORRELATION_PREFIX}/{step}"):
            yield

    @property
    def cycle(self) -> UUID:
        if self.cycle_id is None:
            raise RuntimeError("the cycle is opened before anything refers to it")
        return self.cycle_id

    # organisation and cycle

    def register_organisation(self) -> None:
        with self.acting(ADMIN, "01-organisation"):
            for unit in UNITS:
                parent = self.units[unit.parent] if unit.parent else None
                self.units[unit.key] = self.app.register_unit(
                    name=unit.name, kind=unit.kind, parent_id=parent
                ).id
            for p in PEOPLE:
                self.people[p.key] = self.app.register_person(
                    name=p.name, unit_id=self.units[p.unit], title=p.title
                ).id

    def grant_access(self) -> None:
        """Tokens for the organisation department and a visiting auditor, whose access ends."""
        with self.acting(ADMIN, "01-access"):
            self.app.issue_token(
                name="organisation-dept", role=Role.LEADER, unit_id=self.units[ROOT]
            )
            auditor, _ = self.app.issue_token(name="audit-visit-2026", role=Role.AUDITOR)
            self.app.revoke_token(auditor.id, reason="外部审计进场结束")

    def open_cycle(self) -> None:
        with self.acting(ADMIN, "02-cycle"):
            self.cycle_id = self.app.open_cycle(
                year=YEAR,
                name=f"某市林业局{YEAR}年度党建工作“六个确认”闭环考核",
                policy=DEMO_POLICY,
            ).id

    def assign_duties(self, duties: tuple[DutySpec, ...]) -> None:
        for duty in duties:
            with self.acting(ORGANISATION, f"03-duties/{duty.key}"):
                self.duties[duty.key] = self.app.assign_duty(
                    person_id=self.people[duty.person],
                    unit_id=self.units[duty.unit],
                    tier=duty.tier,
                    effective_from=duty.effective_from,
                ).id

    # targets

    def set_targets(self) -> None:
        for spec in COMMON_TARGETS:
            with self.acting(spec.actor, f"04-targets/{spec.key}"):
                self.targets[spec.key] = self.app.set_common_target(
                    cycle_id=self.cycle,
                    title=spec.title,
                    indicator=spec.indicator,
                    points=spec.points,
                    applies_to=[self.units[u] for u in spec.units],
                ).id
                self.app.set_milestones(self.targets[spec.key], milestones=spec.milestones)
        for spec in UNIT_TARGETS:
            with self.acting(spec.actor, f"04-targets/{spec.key}"):
                self.targets[spec.key] = self.app.set_unit_target(
                    cycle_id=self.cycle,
                    unit_id=self.units[spec.units[0]],
                    title=spec.title,
                    indicator=spec.indicator,
                    points=spec.points,
                    contributes_to=self.targets[spec.contributes_to]
                    if spec.contributes_to
                    else None,
                ).id
                self.app.set_milestones(self.targets[spec.key], milestones=spec.milestones)
        self.contract_and_link_targets()

    def contract_and_link_targets(self) -> None:
        for contract in CONTRACTS:
            with self.acting(ORGANISATION, f"05-contracts/{contract.target}"):
                self.app.contract_target(
                    self.targets[contract.target],
                    lead_unit_id=self.units[contract.lead],
                    responsible_unit_ids=[self.units[u] for u in contract.responsible],
                    responsible_leader_id=self.people[contract.leader],
                )
        for target, linked in LINKS:
            with self.acting(ORGANISATION, f"05-links/{target}"):
                self.app.link_targets(self.targets[target], linked_target_id=self.targets[linked])

    def revise_study_target(self) -> None:
        study = self.targets["t-study"]
        with self.acting(ORGANISATION, "06-revision/t-study"):
            self.app.revise_target(study, indicator=STUDY_REVISED, reason=STUDY_REVISION_REASON)
            self.app.set_milestones(
                study,
                milestones=STUDY_REVISED_MILESTONES,
                reason="目标值上调为40学时，季度分解同步调整",
            )

    def reorganise_nursery(self) -> None:
        branch, new_parent, move_reason = MOVE
        with self.acting(ADMIN, "07-reorganisation/move"):
            self.app.move_unit(
                self.units[branch], parent_id=self.units[new_parent], reason=move_reason
            )
        target, withdraw_reason = WITHDRAWAL
        with self.acting(ORGANISATION, "07-reorganisation/withdraw"):
            self.app.withdraw_target(self.targets[target], reason=withdraw_reason)

    # problems and measures

    def sweep_problems(self) -> None:
        self.find_problems(SWEEP_PROBLEMS)
        self.escalate(SWEEP_ESCALATIONS)
        self.dispatch(SWEEP_DISPATCHES)

    def record_march_problems(self) -> None:
        self.find_problems(MARCH_PROBLEMS)
        self.escalate(MARCH_ESCALATIONS)
        self.dispatch(MARCH_DISPATCHES)

    def find_problems(self, problems: tuple[ProblemSpec, ...]) -> None:
        for p in problems:
            with self.acting(p.actor, f"08-problems/{p.key}"):
                self.problems[p.key] = self.app.find_problem(
                    cycle_id=self.cycle,
                    unit_id=self.units[p.unit],
                    title=p.title,
                    source=p.source,
                    severity=p.severity,
                    shared=p.shared,
                    description=p.description,
                    target_id=self.targets[p.target] if p.target else None,
                    found_at=p.found_at,
                ).id

    def escalate(self, escalations: tuple[EscalationSpec, ...]) -> None:
        for e in escalations:
            with self.acting(e.actor, f"09-escalations/{e.problem}"):
                self.app.escalate_problem(
                    self.problems[e.problem], leader_id=self.people[e.leader], reason=e.reason
                )

    def dispatch(self, dispatches: tuple[DispatchSpec, ...]) -> None:
        for d in dispatches:
            with self.acting(d.actor, f"10-dispatches/{d.problem}"):
                self.app.dispatch_problem(
                    self.problems[d.problem],
                    to_unit_id=self.units[d.to_unit],
                    requirement=d.requirement,
                    deadline=d.deadline,
                )

    def update_problems(self, updates: tuple[ProblemUpdate, ...], phase: str) -> None:
        for n, u in enumerate(updates, start=1):
            with self.acting(u.actor, f"11-problem-updates/{phase}-{n}"):
                if u.reopen:
                    self.app.reopen_problem(self.problems[u.problem], reason=u.text)
                else:
                    self.app.resolve_problem(
                        self.problems[u.problem], evidence=u.text, resolved_at=u.at
                    )

    def adopt_measures(self, measures: tuple[MeasureSpec, ...], phase: str) -> None:
        for m in measures:
            with self.acting(staff_of(m.lead), f"12-measures/{phase}/{m.key}"):
                self.measures[m.key] = self.app.adopt_measure(
                    cycle_id=self.cycle,
                    title=m.title,
                    deadline=m.deadline,
                    lead_unit_id=self.units[m.lead],
                    responsible_unit_ids=[self.units[u] for u in m.responsible],
                    responsible_leader_id=self.people[m.leader],
                    problem_ids=[self.problems[p] for p in m.problems],
                    target_id=self.targets[m.target] if m.target else None,
                ).id

    def update_measures(self, updates: tuple[MeasureUpdate, ...], phase: str) -> None:
        leads = {m.key: m.lead for m in (*SWEEP_MEASURES, *MARCH_MEASURES, MEETING_MEASURE)}
        for n, u in enumerate(updates, start=1):
            measure = self.measures[u.measure]
            with self.acting(staff_of(leads[u.measure]), f"13-measure-updates/{phase}-{n}"):
                if u.cancel:
                    self.app.cancel_measure(measure, reason=u.text)
                elif u.percent is None:
                    self.app.complete_measure(measure, evidence=u.text)
                else:
                    self.app.report_measure_progress(measure, percent=u.percent, note=u.text)

    # the quarterly meeting

    def hold_q1_meeting(self) -> None:
        attendees = [*(rater for rater, _ in RATERS), *(_reporter(r.unit) for r in REPORTS)]
        with self.acting(ORGANISATION, "14-meeting/convene"):
            self.meeting_id = self.app.convene_meeting(
                cycle_id=self.cycle,
                stage="Q1",
                title=MEETING_TITLE,
                held_on=MEETING_DAY,
                attendee_ids=[self.people[key] for key in dict.fromkeys(attendees)],
            ).id
        for report in REPORTS:
            self.deliver_and_score(report)
        self.correct_score()
        for reviewer, unit, comment in REVIEWS:
            with self.acting(person(reviewer), f"14-meeting/review/{unit}"):
                self.app.comment_review(
                    self.meeting,
                    reviewer_id=self.people[reviewer],
                    unit_id=self.units[unit],
                    comment=comment,
                )

    @property
    def meeting(self) -> UUID:
        if self.meeting_id is None:
            raise RuntimeError("the meeting is convened before anything refers to it")
        return self.meeting_id

    def deliver_and_score(self, report: ReportSpec) -> None:
        unit = self.units[report.unit]
        reporter = _reporter(report.unit)
        with self.acting(person(reporter), f"14-meeting/report/{report.unit}"):
            self.app.deliver_report(
                self.meeting,
                unit_id=unit,
                reporter_id=self.people[reporter],
                summary=report.summary,
            )
        for rater, offset in RATERS:
            if _unit_of(rater) == report.unit:
                continue  # 回避: nobody scores their own unit's report
            with self.acting(person(rater), f"14-meeting/score/{report.unit}/{rater}"):
                self.app.cast_score(
                    self.meeting,
                    rater_id=self.people[rater],
                    unit_id=unit,
                    score=report.base_score + offset,
                )

    def correct_score(self) -> None:
        rater, unit, score, reason = SCORE_CORRECTION
        with self.acting(person(rater), f"14-meeting/score-correction/{unit}/{rater}"):
            self.app.cast_score(
                self.meeting,
                rater_id=self.people[rater],
                unit_id=self.units[unit],
                score=score,
                reason=reason,
            )

    def follow_up_meeting(self) -> None:
        self.find_problems((MEETING_PROBLEM,))
        self.dispatch((MEETING_DISPATCH,))
        self.adopt_measures((MEETING_MEASURE,), "meeting")

    # effects, closing, rectifications, awards

    def confirm_q1_effects(self) -> None:
        methods = (
            (EffectMethod.SELF_ASSESSMENT, SELF_ASSESSED_AT),
            (EffectMethod.INSPECTION, INSPECTED_AT),
        )
        for target, results in Q1_RESULTS.items():
            for unit, values in results.items():
                for (method, when), value, evidence in zip(
                    methods, values, EVIDENCE[target], strict=True
                ):
                    self.confirm_effect(target, unit, method, value, evidence, when)
        target, unit, value, reason = EFFECT_CORRECTION
        with self.acting(INSPECTOR, f"15-effects/correction/{target}/{unit}"):
            self.app.confirm_effect(
                self.targets[target],
                stage="Q1",
                method=EffectMethod.INSPECTION,
                unit_id=self.units[unit],
                result=value,
                evidence=EVIDENCE[target][1],
                confirmed_at=at(4, 9, 11),
                reason=reason,
            )

    def confirm_effect(
        self,
        target: str,
        unit: str,
        method: EffectMethod,
        value: Value,
        evidence: str,
        when: datetime,
    ) -> None:
        actor = staff_of(unit) if method is EffectMethod.SELF_ASSESSMENT else ORGANISATION
        with self.acting(actor, f"15-effects/{method.value}/{target}/{unit}"):
            self.app.confirm_effect(
                self.targets[target],
                stage="Q1",
                method=method,
                unit_id=self.units[unit],
                result=value,
                evidence=evidence,
                confirmed_at=when,
            )

    def close_q1(self) -> None:
        with self.acting(ORGANISATION, "16-close/Q1"):
            self.app.close_stage(self.cycle, stage="Q1", reason=Q1_CLOSING_REASON)

    def settle_q1(self) -> None:
        with self.acting(SCHEDULER, "16-settle/Q1"):
            self.app.settle_stage(self.cycle, stage="Q1", now=Q1_SETTLED_AT, zone=CST)

    def correct_q1(self) -> None:
        """Reopen the settled Q1 for a correction with its reason, correct, settle again."""
        with self.acting(ADMIN, "16-settle/Q1/reopen"):
            self.app.reopen_stage(self.cycle, stage="Q1", reason=Q1_REOPEN_REASON)
        target, unit, value, reason = Q1_CORRECTION
        with self.acting(ORGANISATION, "16-settle/Q1/correction"):
            self.app.confirm_effect(
                self.targets[target],
                stage="Q1",
                method=EffectMethod.INSPECTION,
                unit_id=self.units[unit],
                result=value,
                evidence=EVIDENCE[target][1],
                confirmed_at=Q1_RESETTLED_AT,
                reason=reason,
            )
        with self.acting(ORGANISATION, "16-settle/Q1/close-again"):
            self.app.close_stage(self.cycle, stage="Q1", reason=Q1_CLOSING_REASON)
        with self.acting(SCHEDULER, "16-settle/Q1/round-2"):
            self.app.settle_stage(self.cycle, stage="Q1", now=Q1_RESETTLED_AT, zone=CST)

    def check_deadlines(self) -> None:
        """The daily job's run on 1 June: every item past its deadline and unfinished."""
        items = [*self.measures.values(), *self.rectifications.values(), *self.problems.values()]
        with self.acting(SCHEDULER, "21-deadlines/2026-06-01"):
            for item in items:
                with suppress(DomainError):
                    self.app.record_deadline_missed(item, now=DEADLINE_CHECK_AT, zone=CST)

    def revise_policy_for_h2(self) -> None:
        with self.acting(ADMIN, "22-policy/H2"):
            self.app.revise_policy(
                self.cycle, policy=H2_POLICY, from_stage="Q3", reason=H2_POLICY_REASON
            )

    def rectify(self) -> None:
        for r in RECTIFICATIONS:
            with self.acting(INSPECTOR, f"17-rectifications/{r.key}"):
                self.rectifications[r.key] = self.app.order_rectification(
                    cycle_id=self.cycle,
                    unit_id=self.units[r.unit],
                    requirement=r.requirement,
                    deadline=r.deadline,
                    problem_id=self.problems[r.problem] if r.problem else None,
                    target_id=self.targets[r.target] if r.target else None,
                    meeting_id=self.meeting if r.from_meeting else None,
                ).id
        units = {r.key: r.unit for r in RECTIFICATIONS}
        for n, step in enumerate(RECTIFICATION_STEPS, start=1):
            self.rectification_step(step, units[step.rectification], n)

    def rectification_step(self, step: RectificationStep, unit: str, n: int) -> None:
        rectification = self.rectifications[step.rectification]
        actor = staff_of(unit) if step.action == "complete" else INSPECTOR
        with self.acting(actor, f"18-rectification-steps/{n}-{step.action}"):
            if step.action == "complete":
                self.app.complete_rectification(rectification, evidence=step.text)
            elif step.action == "reject":
                self.app.reject_rectification(rectification, reason=step.text)
            else:
                self.app.verify_rectification(rectification, comment=step.text)

    def reward_and_penalise(self) -> None:
        for a in AWARDS:
            with self.acting(ORGANISATION, f"19-awards/{a.key}"):
                self.awards[a.key] = self.app.issue_award(
                    cycle_id=self.cycle,
                    kind=a.kind,
                    basis=a.basis,
                    stage="Q1",
                    unit_id=self.units[a.unit] if a.unit else None,
                    person_id=self.people[a.person] if a.person else None,
                    points=a.points,
                    rule=a.rule,
                ).id

    def revoke_award(self) -> None:
        award, reason = AWARD_REVOCATION
        with self.acting(ORGANISATION, f"19-awards/{award}/revoke"):
            self.app.revoke_award(self.awards[award], reason=reason)

    def rotate_fire_department_head(self) -> None:
        with self.acting(ORGANISATION, "20-rotation/relieve"):
            self.app.relieve_duty(
                self.duties[ROTATION_DUTY],
                effective_to=ROTATION_RELIEVED_ON,
                reason=ROTATION_RELIEF_REASON,
            )
        with self.acting(ADMIN, "20-rotation/transfer"):
            self.app.transfer_person(
                self.people[ROTATION_PERSON],
                unit_id=self.units[ROTATION_TO],
                reason=ROTATION_TRANSFER_REASON,
            )
        self.assign_duties((SUCCESSOR,))


def _unit_of(person_key: str) -> str:
    return next(p.unit for p in PEOPLE if p.key == person_key)


def _reporter(unit: str) -> str:
    """A unit's first responsible person at the Q1 meeting, who delivers its report."""
    (duty,) = (d for d in DUTIES if d.unit == unit and d.tier is DutyTier.FIRST_RESPONSIBLE)
    return duty.person
