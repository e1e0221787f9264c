"""A whole assessment year recorded over HTTP only, then read back every way the API offers.

After the admin token is bootstrapped (tokens are not issued over HTTP), everything goes through
the API: the unit tree, people, the cycle, common and unit targets with milestones and a contract,
problems found, dispatched, escalated and resolved, a measure progressed and completed, duties of
every tier, a quarterly meeting with report, scores and review, a rectification ordered, completed
and verified, effects by self-assessment and inspection, and an award issued and revoked.
"""

# Chinese prose keeps its full-width punctuation on purpose.

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from .conftest import Api, Org, Token

YEAR = 2026

# Names that must come back byte for byte: CJK, full-width punctuation, a character outside the
# Basic Multilingual Plane (𠮷), and a decomposed "é" (e + U+0301) that must not be normalised.
COMMITTEE_NAME = "中共某市林业局委员会"
FARM_NAME = "北山国有林场（𠮷）"
PERSON_NAME = "邓志强"
PERSON_TITLE = "场长、党支部书记"
TRICKY_TITLE = "“两学一做”：森林防火巡护记录不全；Cafe\u0301 标识缺失……"
COVERAGE_TITLE = "森林覆盖率达到 60.5%"


def ids(*results: dict[str, Any]) -> list[str]:
    return [result["id"] for result in results]


class Year:
    """Ids and write results of the recorded year, by name."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.last: dict[str, Any] = {}

    def __getitem__(self, name: str) -> str:
        return self.ids[name]


@pytest.fixture
def year(api: Api, admin: Token) -> Year:
    recorded = Year()

    def write(name: str | None, path: str, body: dict[str, Any], **headers: str) -> str:
        result: dict[str, Any] = api.write(path, admin, body, **headers)
        if name is not None:
            recorded.ids[name] = result["id"]
            recorded.results[name] = result
        recorded.last = result
        return str(result["id"])

    # --- the unit tree -------------------------------------------------------------------
    committee = write("committee", "/units", {"name": COMMITTEE_NAME, "kind": "committee"})
    gb = write(
        "gb",
        "/units",
        {"name": "机关党总支", "kind": "general_branch", "parent_id": committee},
    )
    branch = write("branch", "/units", {"name": "办公室党支部", "kind": "branch", "parent_id": gb})
    dept = write(
        "dept", "/units", {"name": "组织人事科", "kind": "department", "parent_id": committee}
    )
    farm = write(
        "farm", "/units", {"name": FARM_NAME, "kind": "grassroots", "parent_id": committee}
    )
    farm2 = write(
        "farm2",
        "/units",
        {"name": "南岭国有林场", "kind": "grassroots", "parent_id": committee},
    )

    # --- people --------------------------------------------------------------------------
    def person(name: str, display: str, unit: str, title: str) -> str:
        return write(name, "/people", {"name": display, "unit_id": unit, "title": title})

    secretary = person("secretary", "张建国", committee, "党委书记、局长")
    gb_secretary = person("gb_secretary", "刘洋", gb, "机关党总支书记")
    branch_secretary = person("branch_secretary", "吴静", branch, "支部书记")
    dept_head = person("dept_head", "朱慧", dept, "组织人事科科长")
    farm_head = person("farm_head", PERSON_NAME, farm, PERSON_TITLE)
    person("ranger", "魏大海", farm, "护林员")

    # --- the cycle -----------------------------------------------------------------------
    cycle = write("cycle", "/cycles", {"year": YEAR, "name": "2026年度党建工作考核"})

    # --- targets, milestones, contract ---------------------------------------------------
    common = write(
        "common",
        "/targets",
        {
            "cycle_id": cycle,
            "scope": "common",
            "title": COVERAGE_TITLE,
            "indicator": {
                "kind": "quantitative",
                "metric": "森林覆盖率",
                "unit_of_measure": "%",
                "baseline": "58.6",
                "target_value": "60.5",
                "direction": "higher_is_better",
            },
            "points": "12.5",
            "applies_to": [farm, farm2],
        },
    )
    own = write(
        "own",
        "/targets",
        {
            "cycle_id": cycle,
            "scope": "unit",
            "unit_id": farm,
            "title": "一支部一特色：护林先锋岗",
            "indicator": {"kind": "qualitative", "levels": ["优", "良", "中", "差"]},
            "points": "7.25",
            "contributes_to": common,
        },
    )
    write(
        None,
        f"/targets/{common}/milestones",
        {"milestones": {"Q1": 58.9, "Q2": 59.5, "Q3": 60.0, "Q4": 60.5}},
    )
    write(None, f"/targets/{own}/milestones", {"milestones": {"Q2": "良", "Q4": "优"}})
    write(
        None,
        f"/targets/{common}/contract",
        {
            "lead_unit_id": farm,
            "responsible_unit_ids": [farm, farm2],
            "responsible_leader_id": secretary,
        },
    )

    # --- problems: found, dispatched, escalated, resolved --------------------------------
    fire = write(
        "fire",
        "/problems",
        {
            "cycle_id": cycle,
            "unit_id": farm,
            "title": TRICKY_TITLE,
            "source": "sweep",
            "severity": "prominent",
            "shared": True,
            "description": "地毯式查找发现：三月巡护日志缺页。",
            "target_id": common,
            "found_at": "2026-03-02T09:00:00+08:00",
        },
    )
    seedlings = write(
        "seedlings",
        "/problems",
        {
            "cycle_id": cycle,
            "unit_id": farm,
            "title": "苗木台账与实物不符",
            "source": "inspection",
            "found_at": "2026-03-05T10:30:00+08:00",
        },
    )
    write(
        None,
        f"/problems/{fire}/dispatch",
        {"to_unit_id": farm, "requirement": "两周内补齐巡护日志并上报", "deadline": "2026-04-15"},
    )
    write(
        None,
        f"/problems/{fire}/escalate",
        {"leader_id": secretary, "reason": "涉及两个林场的共性问题"},
    )
    write(
        "fire_resolved",
        f"/problems/{fire}/resolve",
        {"evidence": "补齐后的巡护日志", "resolved_at": "2026-04-10T17:00:00+08:00"},
    )
    write(
        None,
        f"/problems/{seedlings}/resolve",
        {"evidence": "重新盘点后的苗木台账", "resolved_at": "2026-04-12T16:00:00+08:00"},
    )

    # --- a measure: adopted, progressed, completed ---------------------------------------
    measure = write(
        "measure",
        "/measures",
        {
            "cycle_id": cycle,
            "title": "增设巡护打卡点",
            "deadline": "2026-06-30",
            "lead_unit_id": farm,
            "responsible_unit_ids": [farm],
            "responsible_leader_id": farm_head,
            "problem_ids": [fire],
            "target_id": common,
        },
    )
    write(None, f"/measures/{measure}/progress", {"percent": 40, "note": "已完成选址"})
    write(None, f"/measures/{measure}/progress", {"percent": 80, "note": "打卡点安装过半"})
    write(None, f"/measures/{measure}/complete", {"evidence": "验收单及照片"})

    # --- duties of every tier (first responsible for the reporting unit) -----------------
    def duty(name: str, holder: str, unit: str, tier: str) -> str:
        body = {"person_id": holder, "unit_id": unit, "tier": tier, "effective_from": "2026-01-01"}
        return write(name, "/duties", body)

    duty("duty_overall", secretary, committee, "overall_leadership")
    duty("duty_first", farm_head, farm, "first_responsible")
    duty("duty_direct", gb_secretary, gb, "direct_responsible")
    duty("duty_specific", branch_secretary, branch, "specific_responsible")

    # --- the Q1 meeting: report, scores (never by the reported unit), review -------------
    meeting = write(
        "meeting",
        "/meetings",
        {
            "cycle_id": cycle,
            "stage": "Q1",
            "title": "一季度党建工作例会",
            "held_on": "2026-03-30",
            "attendee_ids": [secretary, dept_head, farm_head],
        },
    )
    write(
        None,
        f"/meetings/{meeting}/reports",
        {"unit_id": farm, "reporter_id": farm_head, "summary": "一季度护林防火工作述职"},
    )
    write(
        None,
        f"/meetings/{meeting}/scores",
        {"rater_id": dept_head, "unit_id": farm, "score": "88.5"},
    )
    write(
        None,
        f"/meetings/{meeting}/scores",
        {"rater_id": secretary, "unit_id": farm, "score": "92.25"},
    )
    write(
        None,
        f"/meetings/{meeting}/reviews",
        {"reviewer_id": secretary, "unit_id": farm, "comment": "巡护到位，台账仍需规范。"},
    )

    # --- a rectification: ordered, completed, verified -----------------------------------
    rectification = write(
        "rectification",
        "/rectifications",
        {
            "cycle_id": cycle,
            "unit_id": farm,
            "requirement": "规范苗木台账管理",
            "deadline": "2026-05-31",
            "problem_id": seedlings,
            "meeting_id": meeting,
        },
    )
    write(None, f"/rectifications/{rectification}/complete", {"evidence": "新台账制度"})
    write(None, f"/rectifications/{rectification}/verify", {"comment": "核查属实"})

    # --- effects: self-assessment and inspection -----------------------------------------
    for method, result, evidence in (
        ("self_assessment", 58.9, "一季度自查表及佐证材料"),
        ("inspection", 58.75, "组织检查记录"),
    ):
        write(
            None,
            f"/targets/{common}/effects",
            {
                "stage": "Q1",
                "method": method,
                "unit_id": farm,
                "result": result,
                "evidence": evidence,
                "confirmed_at": "2026-04-03T10:00:00+08:00",
            },
        )
    write(
        None,
        f"/targets/{own}/effects",
        {
            "stage": "Q1",
            "method": "self_assessment",
            "unit_id": farm,
            "result": "良",
            "evidence": "护林先锋岗台账",
        },
    )

    # --- an award: issued, revoked -------------------------------------------------------
    award = write(
        "award",
        "/awards",
        {
            "cycle_id": cycle,
            "kind": "reward",
            "unit_id": farm,
            "stage": "Q1",
            "points": "3.5",
            "basis": "一季度考核排名第一",
            "rule": "rank<=1",
        },
    )
    write(None, f"/awards/{award}/revoke", {"reason": "复核发现巡护日志补记，撤销奖励"})
    return recorded


def test_the_year_reads_back_every_way(
    api: Api, admin: Token, year: Year, subtests: pytest.Subtests
) -> None:
    """One recorded year, read back as state, versions, history, lists, text and decimals."""
    with subtests.test("states now and at a version"):
        check_states_now_and_at_a_version(api, admin, year)
    with subtests.test("history: actor, reason, times, rising positions"):
        check_history(api, admin, year)
    with subtests.test("lists: read-your-writes, filters, paging"):
        check_lists_and_paging(api, admin, year)
    with subtests.test("Chinese text and decimals round-trip exactly"):
        check_text_and_decimals(api, admin, year)


def check_states_now_and_at_a_version(api: Api, admin: Token, year: Year) -> None:
    farm, cycle = year["farm"], year["cycle"]

    unit = api.state(f"/units/{farm}", admin)
    assert unit["type"] == "Unit" and unit["kind"] == "grassroots"
    assert unit["parent_id"] == year["committee"]
    assert unit["first_responsible"] == [year["duty_first"], year["farm_head"]]

    person = api.state(f"/people/{year['farm_head']}", admin)
    assert (person["name"], person["unit_id"], person["title"]) == (
        PERSON_NAME,
        farm,
        PERSON_TITLE,
    )

    opened = api.state(f"/cycles/{cycle}", admin)
    assert opened["year"] == YEAR
    assert [stage["key"] for stage in opened["stages"]] == ["Q1", "Q2", "Q3", "Q4"]
    assert opened["stages"][0] == {"key": "Q1", "starts_on": "2026-01-01", "ends_on": "2026-03-31"}

    common = api.state(f"/targets/{year['common']}", admin)
    assert common["scope"] == "common" and common["withdrawn"] is False
    assert common["applies_to"] == [farm, year["farm2"]]
    assert common["milestones"] == {"Q1": "58.9", "Q2": "59.5", "Q3": "60.0", "Q4": "60.5"}
    assert common["contract"] == {
        "lead_unit_id": farm,
        "responsible_unit_ids": [farm, year["farm2"]],
        "responsible_leader_id": year["secretary"],
    }
    assert sorted((e["method"], e["result"]) for e in common["effects"]) == [
        ("inspection", "58.75"),
        ("self_assessment", "58.9"),
    ]
    own = api.state(f"/targets/{year['own']}", admin)
    assert own["contributes_to"] == year["common"]
    assert own["owner_unit_id"] == farm
    assert own["milestones"] == {"Q2": "良", "Q4": "优"}
    assert [e["result"] for e in own["effects"]] == ["良"]

    fire = api.state(f"/problems/{year['fire']}", admin)
    assert fire["status"] == "resolved"
    assert fire["dispatched_to"] == farm and fire["deadline"] == "2026-04-15"
    assert fire["escalated_to"] == year["secretary"]
    assert datetime.fromisoformat(fire["resolved_at"]) == datetime.fromisoformat(
        "2026-04-10T17:00:00+08:00"
    )
    assert datetime.fromisoformat(fire["found_at"]) == datetime.fromisoformat(
        "2026-03-02T09:00:00+08:00"
    )

    measure = api.state(f"/measures/{year['measure']}", admin)
    assert (measure["status"], measure["progress"]) == ("completed", 100)
    assert measure["problem_ids"] == [year["fire"]]

    tiers = {
        name: api.state(f"/duties/{year[name]}", admin)["tier"]
        for name in ("duty_overall", "duty_first", "duty_direct", "duty_specific")
    }
    assert tiers == {
        "duty_overall": "overall_leadership",
        "duty_first": "first_responsible",
        "duty_direct": "direct_responsible",
        "duty_specific": "specific_responsible",
    }

    meeting = api.state(f"/meetings/{year['meeting']}", admin)
    assert meeting["reports"] == {farm: year["farm_head"]}
    assert sorted((s["rater_id"], s["score"]) for s in meeting["scores"]) == sorted(
        [(year["dept_head"], "88.5"), (year["secretary"], "92.25")]
    )
    assert meeting["reviews"] == [[farm, year["secretary"], "巡护到位，台账仍需规范。"]]

    rectification = api.state(f"/rectifications/{year['rectification']}", admin)
    assert rectification["status"] == "verified"
    assert rectification["problem_id"] == year["seedlings"]
    assert rectification["meeting_id"] == year["meeting"]

    award = api.state(f"/awards/{year['award']}", admin)
    assert (award["kind"], award["revoked"], award["unit_id"]) == ("reward", True, farm)

    # ?version=N answers the state as it was at that version.
    fire_path = f"/problems/{year['fire']}"
    found = api.state(fire_path, admin, version=1)
    assert (found["version"], found["status"], found["dispatched_to"]) == (1, "open", None)
    assert found["title"] == TRICKY_TITLE
    dispatched = api.state(fire_path, admin, version=2)
    assert (dispatched["status"], dispatched["escalated_to"]) == ("dispatched", None)
    latest = api.client.get(fire_path, headers=api.headers(admin))
    assert latest.json()["version"] == 4 and latest.headers["ETag"] == '"4"'
    assert (
        api.client.get(fire_path, params={"version": 1}, headers=api.headers(admin)).headers["ETag"]
        == '"1"'
    )

    issued = api.state(f"/awards/{year['award']}", admin, version=1)
    assert (issued["version"], issued["revoked"], issued["points"]) == (1, False, "3.5")
    progressed = api.state(f"/measures/{year['measure']}", admin, version=2)
    assert (progressed["progress"], progressed["status"]) == (40, "adopted")
    api.problem(api.get(fire_path, admin, params={"version": 5}), 404, "not-found")


def check_history(api: Api, admin: Token, year: Year) -> None:
    for path in (
        f"/units/{year['farm']}",
        f"/people/{year['farm_head']}",
        f"/cycles/{year['cycle']}",
        f"/targets/{year['common']}",
        f"/problems/{year['fire']}",
        f"/measures/{year['measure']}",
        f"/duties/{year['duty_first']}",
        f"/meetings/{year['meeting']}",
        f"/rectifications/{year['rectification']}",
        f"/awards/{year['award']}",
    ):
        history = api.history(path, admin)
        assert [entry["version"] for entry in history] == list(range(1, len(history) + 1))
        positions = [entry["position"] for entry in history]
        assert all(isinstance(p, int) for p in positions), (path, positions)
        assert positions == sorted(positions) and len(set(positions)) == len(positions), path
        for entry in history:
            assert admin.name in entry["actor"], (path, entry)
            assert entry["correlation_id"], (path, entry)
            datetime.fromisoformat(entry["recorded_at"])
            datetime.fromisoformat(entry["effective_at"])
            assert "reason" in entry

    fire = api.history(f"/problems/{year['fire']}", admin)
    assert [e["type"] for e in fire] == [
        "ProblemFound",
        "ProblemDispatched",
        "ProblemEscalated",
        "ProblemResolved",
    ]
    assert fire[2]["reason"] == "涉及两个林场的共性问题"
    assert fire[0]["reason"] is None
    # effective_at is when it is true in the world, recorded_at when it was written down.
    assert datetime.fromisoformat(fire[0]["effective_at"]) == datetime.fromisoformat(
        "2026-03-02T09:00:00+08:00"
    )
    assert datetime.fromisoformat(fire[3]["effective_at"]) == datetime.fromisoformat(
        "2026-04-10T17:00:00+08:00"
    )
    assert fire[3]["data"]["evidence"] == "补齐后的巡护日志"
    assert fire[0]["position"] == year.results["fire"]["position"]
    assert fire[3]["position"] == year.results["fire_resolved"]["position"]
    recorded = [datetime.fromisoformat(e["recorded_at"]) for e in fire]
    assert recorded == sorted(recorded)

    award = api.history(f"/awards/{year['award']}", admin)
    assert [e["type"] for e in award] == ["AwardIssued", "AwardRevoked"]
    assert award[1]["reason"] == "复核发现巡护日志补记，撤销奖励"
    assert award[0]["data"]["points"] == "3.5"
    assert award[-1]["position"] == year.last["position"]


def check_lists_and_paging(api: Api, admin: Token, year: Year) -> None:
    last = year.last["position"]
    response = api.get(
        "/problems",
        admin,
        params={"cycle": year["cycle"], "status": "resolved", "min_position": last},
    )
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["position"] >= last
    assert [item["id"] for item in page["items"]] == [year["fire"], year["seedlings"]]
    assert {item["status"] for item in page["items"]} == {"resolved"}
    assert page["items"][0]["title"] == TRICKY_TITLE
    assert page["items"][0]["unit_id"] == year["farm"]
    assert page["items"][0]["version"] == 4
    assert page["next_after"] is None

    def listed(path: str, **params: Any) -> list[dict[str, Any]]:
        got = api.get(path, admin, params={"min_position": last, **params})
        assert got.status_code == 200, got.text
        items: list[dict[str, Any]] = got.json()["items"]
        return items

    assert listed("/problems", status="open") == []
    assert [i["status"] for i in listed("/measures", cycle=year["cycle"])] == ["completed"]
    assert [i["status"] for i in listed("/rectifications", unit=year["farm"])] == ["verified"]
    assert [i["status"] for i in listed("/awards")] == ["revoked"]
    assert [i["id"] for i in listed("/targets", cycle=year["cycle"])] == [
        year["common"],
        year["own"],
    ]
    assert len(listed("/duties")) == 4
    assert [i["id"] for i in listed("/people", unit=year["farm"])] == [
        year["farm_head"],
        year["ranger"],
    ]
    assert [i["title"] for i in listed("/meetings")] == ["一季度党建工作例会"]
    assert [i["id"] for i in listed("/cycles")] == [year["cycle"]]

    # Paging: limit, next_after, after.
    all_units = ids(
        *(year.results[n] for n in ("committee", "gb", "branch", "dept", "farm", "farm2"))
    )
    seen: list[str] = []
    after = 0
    pages = 0
    while True:
        response = api.get(
            "/units",
            admin,
            params={"limit": 4, "after": after, "min_position": year.last["position"]},
        )
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["items"]) <= 4
        seen += [item["id"] for item in page["items"]]
        if page["next_after"] is None:
            break
        assert page["next_after"] > after
        after = page["next_after"]
    assert seen == all_units
    assert pages == 2

    first = api.get("/people", admin, params={"limit": 2, "min_position": last}).json()
    second = api.get("/people", admin, params={"limit": 2, "after": first["next_after"]}).json()
    assert len(first["items"]) == len(second["items"]) == 2
    assert {i["id"] for i in first["items"]}.isdisjoint({i["id"] for i in second["items"]})
    assert [i["title"] for i in first["items"] + second["items"]] == [
        "张建国",
        "刘洋",
        "吴静",
        "朱慧",
    ]


def check_text_and_decimals(api: Api, admin: Token, year: Year) -> None:
    unit = api.client.get(f"/units/{year['farm']}", headers=api.headers(admin))
    assert unit.json()["name"] == FARM_NAME
    assert unit.headers["content-type"].startswith("application/json")
    assert FARM_NAME.encode("utf-8") in unit.content  # sent as UTF-8, not \u-escaped

    problem = api.client.get(f"/problems/{year['fire']}", headers=api.headers(admin))
    title = problem.json()["title"]
    assert title == TRICKY_TITLE
    assert title.encode("utf-8") == TRICKY_TITLE.encode("utf-8")
    assert TRICKY_TITLE.encode("utf-8") in problem.content
    assert "e\u0301" in title and "\u00e9" not in title  # not NFC-normalised

    history = api.history(f"/problems/{year['fire']}", admin)
    assert history[0]["data"]["title"] == TRICKY_TITLE
    assert history[0]["data"]["description"] == "地毯式查找发现：三月巡护日志缺页。"
    listed = api.get(
        "/units", admin, params={"min_position": year.last["position"], "limit": 500}
    ).json()
    assert FARM_NAME in [item["title"] for item in listed["items"]]
    assert COMMITTEE_NAME in [item["title"] for item in listed["items"]]

    # Decimals come back as the exact strings sent, never as floats.
    common = api.state(f"/targets/{year['common']}", admin)
    assert common["points"] == "12.5"
    assert common["indicator"]["baseline"] == "58.6"
    assert common["indicator"]["target_value"] == "60.5"
    assert common["milestones"]["Q3"] == "60.0"  # the trailing zero is kept, not a float
    own = api.state(f"/targets/{year['own']}", admin)
    assert own["points"] == "7.25"
    meeting = api.state(f"/meetings/{year['meeting']}", admin)
    assert {s["score"] for s in meeting["scores"]} == {"88.5", "92.25"}
    assert meeting["scale_min"] == "0" and meeting["scale_max"] == "100"
    award = api.state(f"/awards/{year['award']}", admin)
    assert award["points"] == "3.5"
    history = api.history(f"/targets/{year['common']}", admin)
    assert history[0]["data"]["points"] == "12.5"
    effects = [e for e in history if e["type"] == "EffectConfirmed"]
    assert [e["data"]["result"] for e in effects] == ["58.9", "58.75"]

    # Nowhere in a state or history body is a number of points a JSON float.
    for path in (
        f"/targets/{year['common']}",
        f"/meetings/{year['meeting']}",
        f"/awards/{year['award']}",
    ):
        body = api.state(path, admin)
        assert not any(isinstance(v, float) for v in _leaves(body)), (path, body)
        assert not any(isinstance(v, float) for v in _leaves(api.history(path, admin)))


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def test_numeric_strings_are_quantitative_values(api: Api, admin: Token, org: Org) -> None:
    """The API answers decimals as strings; it must take them back the same way."""
    common = api.write(
        "/targets",
        admin,
        {
            "cycle_id": str(org.cycle),
            "scope": "common",
            "title": COVERAGE_TITLE,
            "indicator": {
                "kind": "quantitative",
                "metric": "森林覆盖率",
                "target_value": "60.5",
                "direction": "higher_is_better",
            },
            "points": "10",
            "applies_to": [str(org.farm)],
        },
    )["id"]
    milestones = api.post(
        f"/targets/{common}/milestones", admin, {"milestones": {"Q1": "58.5", "Q4": "60.5"}}
    )
    effect = api.post(
        f"/targets/{common}/effects",
        admin,
        {
            "stage": "Q1",
            "method": "self_assessment",
            "unit_id": str(org.farm),
            "result": "58.6",
            "evidence": "一季度自查表",
        },
    )
    assert (milestones.status_code, effect.status_code) == (200, 200), (
        milestones.text,
        effect.text,
    )
    state = api.state(f"/targets/{common}", admin)
    assert state["milestones"] == {"Q1": "58.5", "Q4": "60.5"}
    assert state["effects"][0]["result"] == "58.6"
