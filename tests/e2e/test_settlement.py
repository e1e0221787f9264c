"""Scoring policy and stage settlement over HTTP: settle once, read, verify, reopen, and refuse.

The scenario is a 2025 cycle, so every stage has ended by the real clock; a 2027 cycle has not.
The in-process scheduler is off here: it would settle the 2025 stages by itself.
"""

# Chinese prose keeps its full-width punctuation on purpose.

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from closedloop.settings import Settings

from .conftest import Api, Org, Token, Tokens

REWARD = {"name": "季度先进", "kind": "reward", "basis": "rank", "value": "1", "points": "2"}
PENALTY = {"name": "末位约谈", "kind": "penalty", "basis": "below", "value": "60"}
POLICY = {"meeting_aggregation": "mean", "award_rules": [REWARD, PENALTY]}
RACERS = 8


@pytest.fixture
def store_settings(store_settings: Settings) -> Settings:
    return store_settings.model_copy(update={"run_scheduler": False})


@dataclass(frozen=True)
class Scenario:
    cycle: str
    target: str
    first: str  # inspected 95 in Q1: rank 1, rewarded
    second: str  # 80: rank 2
    last: str  # 50: rank 3, below 60, penalised

    def settlement(self, stage: str = "Q1") -> str:
        return f"/cycles/{self.cycle}/stages/{stage}/settlement"


@pytest.fixture
def scenario(api: Api, org: Org, admin: Token) -> Scenario:
    cycle = api.write("/cycles", admin, {"year": 2025, "name": "2025年度考核", "policy": POLICY})
    units = [str(org.br_office), str(org.br_fire), str(org.farm)]
    target = api.write(
        "/targets",
        admin,
        {
            "cycle_id": cycle["id"],
            "scope": "common",
            "title": "党员教育培训完成率",
            "indicator": {
                "kind": "quantitative",
                "metric": "完成率",
                "unit_of_measure": "%",
                "target_value": "100",
                "direction": "higher_is_better",
            },
            "points": "10",
            "applies_to": units,
        },
    )
    for unit, result in zip(units, ("95", "80", "50"), strict=True):
        api.write(
            f"/targets/{target['id']}/effects",
            admin,
            {
                "stage": "Q1",
                "method": "inspection",
                "unit_id": unit,
                "result": result,
                "evidence": "一季度检查记录",
                "confirmed_at": "2025-04-03T09:30:00+08:00",
            },
        )
    return Scenario(cycle["id"], target["id"], *units)


def settle(api: Api, scenario: Scenario, admin: Token, stage: str = "Q1") -> dict[str, Any]:
    response = api.post(scenario.settlement(stage), admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["created"] is True
    return body


def race(count: int, request: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    barrier = threading.Barrier(count)

    def run(i: int) -> httpx.Response:
        barrier.wait(timeout=10)
        return request(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_admin_settles_an_ended_stage_once(api: Api, scenario: Scenario, admin: Token) -> None:
    head = api.head()
    first = api.post(scenario.settlement(), admin)
    assert first.status_code == 201, first.text
    assert first.headers["Location"] == scenario.settlement()
    body = first.json()
    assert (body["created"], body["stage"], body["round"]) == (True, "Q1", 1)
    assert body["cutoff"] == "2025-04-01T00:00:00+08:00"
    assert body["inputs"]["from_position"] == 1
    # The stage is closed first (one event), then read through that position.
    assert body["inputs"]["through_position"] == head + 1
    assert body["position"] > head
    assert [(u["unit_id"], u["total"], u["rank"]) for u in body["units"]] == [
        (scenario.first, "95.00", 1),
        (scenario.second, "80.00", 2),
        (scenario.last, "50.00", 3),
    ]
    after = api.head()

    again = api.post(scenario.settlement(), admin)
    assert again.status_code == 200, again.text
    assert again.json()["created"] is False
    assert again.json()["id"] == body["id"]
    assert again.json()["position"] == after
    assert api.head() == after  # nothing written the second time

    read = api.state(scenario.settlement(), admin)
    assert {k: v for k, v in body.items() if k not in ("created", "position")} == read


def test_an_idempotency_key_replays_the_first_answer(
    api: Api, scenario: Scenario, admin: Token
) -> None:
    first = api.post(scenario.settlement(), admin, Idempotency_Key="settle-q1")
    replay = api.post(scenario.settlement(), admin, Idempotency_Key="settle-q1")
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.headers["Idempotency-Replayed"] == "true"
    assert replay.json() == first.json()


def test_only_an_admin_settles(api: Api, scenario: Scenario, tokens: Tokens, admin: Token) -> None:
    head = api.head()
    for token in (tokens.leader, tokens.member, tokens.auditor, tokens.inspector):
        api.problem(api.post(scenario.settlement(), token), 403, "forbidden")
    api.problem(api.post(scenario.settlement(), None), 401, "unauthenticated")
    assert api.head() == head
    api.problem(api.get(scenario.settlement(), admin), 404, "not-found", rule="MustExist")


def test_unknown_cycles_and_stages_are_not_found(
    api: Api, scenario: Scenario, org: Org, admin: Token
) -> None:
    for path in (
        scenario.settlement("Q9"),
        f"/cycles/{org.farm}/stages/Q1/settlement",  # a unit, not a cycle
    ):
        api.problem(api.post(path, admin), 404, "not-found")
        api.problem(api.get(path, admin), 404, "not-found")
    body = api.problem(
        api.post(f"/cycles/{scenario.cycle}/stages/Q9/reopen", admin, {}),
        422,
        "invalid-field",
        field="body.reason",
    )
    assert body["errors"][0]["rule"] == "missing"
    api.problem(
        api.post(f"/cycles/{scenario.cycle}/stages/Q9/reopen", admin, {"reason": "复核"}),
        404,
        "not-found",
        rule="StageMustBelongToCycle",
    )
    api.problem(
        api.get(scenario.settlement(), admin, params={"round": 0}),
        422,
        "invalid-field",
        field="query.round",
    )


def test_a_stage_not_ended_is_refused_and_nothing_is_written(api: Api, admin: Token) -> None:
    cycle = api.write("/cycles", admin, {"year": 2027, "name": "2027年度考核"})
    head = api.head()
    response = api.post(f"/cycles/{cycle['id']}/stages/Q1/settlement", admin)
    body = api.problem(response, 409, "rule-violation", rule="StageNotEnded")
    assert body["values"]["cutoff"] == "2027-04-01T00:00:00+08:00"
    assert body["values"]["stage"] == "Q1"
    assert api.head() == head
    api.problem(api.get(f"/cycles/{cycle['id']}/stages/Q1/settlement", admin), 404, "not-found")


def test_a_settled_stage_refuses_late_effects(api: Api, scenario: Scenario, admin: Token) -> None:
    settled = settle(api, scenario, admin)
    late = {
        "stage": "Q1",
        "method": "self_assessment",
        "unit_id": scenario.last,
        "result": "99",
        "evidence": "补报的自查表",
    }
    head = api.head()
    body = api.problem(
        api.post(f"/targets/{scenario.target}/effects", admin, late),
        409,
        "rule-violation",
        rule="SettledStageAcceptsNoEffects",
    )
    assert body["values"]["settlement"] == settled["id"]
    assert api.head() == head
    api.write(f"/targets/{scenario.target}/effects", admin, {**late, "stage": "Q2"})


def test_the_settlement_shows_ranks_and_the_awards_of_the_policy(
    api: Api, scenario: Scenario, admin: Token, tokens: Tokens
) -> None:
    settle(api, scenario, admin)
    body = api.state(scenario.settlement(), tokens.member)
    for token in (tokens.leader, tokens.auditor, tokens.inspector):
        assert api.state(scenario.settlement(), token) == body
    assert body["published"] is True and body["reopened"] is False
    assert body["policy"]["award_rules"] == [REWARD, {**PENALTY, "points": None}]
    policy = api.state(f"/cycles/{scenario.cycle}/policy", admin, stage="Q1")
    assert body["policy_digest"] == policy["digest"]
    assert len(body["results_digest"]) == len(body["inputs"]["digest"]) == 64
    top = body["units"][0]
    assert top["components"] == {"result": "95.00", "process": None, "meeting": None}
    assert top["weights"] == {"result": "1"}
    assert top["notes"]  # says the weights were re-normalised
    awards = {(a["rule"], a["kind"], a["unit_id"], a["points"]) for a in body["awards"]}
    assert awards == {
        ("季度先进", "reward", scenario.first, "2"),
        ("末位约谈", "penalty", scenario.last, None),
    }
    for award in body["awards"]:
        assert award["revoked"] is False and body["id"] in award["basis"]
        stored = api.state(f"/awards/{award['id']}", admin)
        assert (stored["rule"], stored["stage"], stored["cycle_id"]) == (
            award["rule"],
            "Q1",
            scenario.cycle,
        )


def test_verification_matches_and_is_for_audit_roles(
    api: Api, scenario: Scenario, admin: Token, tokens: Tokens
) -> None:
    settled = settle(api, scenario, admin)
    path = f"{scenario.settlement()}/verification"
    for token in (admin, tokens.auditor, tokens.inspector):
        check = api.state(path, token)
        assert check["matches"] is True and check["differences"] == []
        assert check["settlement_id"] == settled["id"]
        assert check["through_position"] == settled["inputs"]["through_position"]
    for token in (tokens.leader, tokens.member):
        api.problem(api.get(path, token), 403, "forbidden")


def test_reopening_needs_a_reason_then_the_stage_settles_again(
    api: Api, scenario: Scenario, admin: Token, tokens: Tokens
) -> None:
    reopen = f"/cycles/{scenario.cycle}/stages/Q1/reopen"
    head = api.head()
    api.problem(
        api.post(reopen, admin, {"reason": "复核"}),
        409,
        "rule-violation",
        rule="OnlySettledStagesReopen",
    )
    first = settle(api, scenario, admin)
    api.problem(api.post(reopen, admin, {}), 422, "invalid-field", field="body.reason")
    api.problem(
        api.post(reopen, admin, {"reason": "  "}), 422, "invalid-field", field="body.reason"
    )
    api.problem(api.post(reopen, tokens.leader, {"reason": "复核"}), 403, "forbidden")
    assert api.head() == first["position"] > head

    written = api.write(reopen, admin, {"reason": "检查组复核发现数据录入错误"})
    assert written["id"] == scenario.cycle and written["position"] > first["position"]
    api.problem(api.get(scenario.settlement(), admin), 404, "not-found")
    set_aside = api.state(scenario.settlement(), admin, round=1)
    assert set_aside["reopened"] is True and set_aside["id"] == first["id"]
    assert all(award["revoked"] for award in set_aside["awards"])
    assert len(set_aside["awards"]) == 2

    again = settle(api, scenario, admin)
    assert again["round"] == 2 and again["id"] != first["id"]
    assert again["units"] == first["units"]
    assert {a["id"] for a in again["awards"]}.isdisjoint(a["id"] for a in first["awards"])
    assert not any(award["revoked"] for award in again["awards"])
    assert api.state(f"{scenario.settlement()}/verification", tokens.inspector)["round"] == 2


def test_policy_revision_before_and_after_settlement(
    api: Api, scenario: Scenario, admin: Token, tokens: Tokens
) -> None:
    path = f"/cycles/{scenario.cycle}/policy"
    response = api.get(path, tokens.member, params={"stage": "Q2"})
    assert response.status_code == 200, response.text
    before = response.json()
    assert (before["from_stage"], before["settled"]) == ("Q1", False)
    assert before["policy"]["meeting_aggregation"] == "mean"
    assert before["policy"]["result_weight"] == "0.5"  # left out: the default
    assert before["description"]["weights"]["result"] == "0.5"
    etag = response.headers["ETag"]

    revision = {
        "from_stage": "Q2",
        "policy": {"result_weight": "0.6", "process_weight": "0.2", "meeting_weight": "0.2"},
        "reason": "党委会研究调整权重",
    }
    api.problem(
        api.post(path, admin, {**revision, "reason": ""}),
        422,
        "invalid-field",
        field="body.reason",
    )
    api.problem(api.post(path, tokens.leader, revision), 403, "forbidden")
    written = api.write(path, admin, revision, If_Match=etag)
    api.problem(api.post(path, admin, revision, If_Match=etag), 412, "precondition-failed")

    q2 = api.state(path, admin, stage="Q2")
    assert (q2["from_stage"], q2["policy"]["result_weight"]) == ("Q2", "0.6")
    assert q2["policy"]["award_rules"] == []  # a revision replaces the whole policy
    assert q2["digest"] != before["digest"]
    assert api.state(path, admin, stage="Q1")["digest"] == before["digest"]
    history = api.history(f"/cycles/{scenario.cycle}", tokens.auditor)
    assert history[-1]["type"] == "ScoringPolicySet"
    assert history[-1]["reason"] == revision["reason"]
    assert history[-1]["position"] == written["position"]

    settle(api, scenario, admin)
    assert api.state(path, admin, stage="Q1")["settled"] is True
    head = api.head()
    api.problem(
        api.post(path, admin, {**revision, "from_stage": "Q1"}),
        409,
        "rule-violation",
        rule="PolicyFrozenOnceSettled",
    )
    assert api.head() == head
    api.write(path, admin, {**revision, "from_stage": "Q3"})


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"result_weight": "-0.1"}, "body.policy.result_weight"),
        ({"result_weight": "abc"}, "body.policy.result_weight"),
        ({"result_weight": None}, "body.policy.result_weight"),
        (
            {"result_weight": "0", "process_weight": "0", "meeting_weight": "0"},
            "body.policy.weights",
        ),
        ({"self_assessment_share": "0.5"}, "body.policy.self_assessment_share"),
        ({"meeting_aggregation": "median"}, "body.policy.meeting_aggregation"),
        ({"trim_min_raters": 2}, "body.policy.trim_min_raters"),
        ({"colour": "red"}, "body.policy.colour"),
        ({"award_rules": [{**REWARD, "value": "1.5"}]}, "body.policy.award_rules.0.value"),
        (
            {"award_rules": [REWARD, {**PENALTY, "basis": "top_share", "value": "2"}]},
            "body.policy.award_rules.1.value",
        ),
        (
            {"award_rules": [REWARD, {**PENALTY, "name": REWARD["name"]}]},
            "body.policy.award_rules.name",
        ),
        ({"award_rules": [{**REWARD, "basis": "median"}]}, "body.policy.award_rules.0.basis"),
    ],
)
def test_invalid_policy_values_name_the_field(
    api: Api, admin: Token, policy: dict[str, Any], field: str
) -> None:
    head = api.head()
    body = {"year": 2025, "name": "2025年度考核", "policy": policy}
    api.problem(api.post("/cycles", admin, body), 422, "invalid-field", field=field)
    assert api.head() == head
    cycle = api.write("/cycles", admin, {"year": 2025, "name": "2025年度考核"})
    revision = {"from_stage": "Q1", "policy": policy, "reason": "调整"}
    api.problem(
        api.post(f"/cycles/{cycle['id']}/policy", admin, revision),
        422,
        "invalid-field",
        field=field,
    )
    assert api.head() == cycle["position"]


def test_policy_reads_refuse_unknown_stages_and_cycles(
    api: Api, scenario: Scenario, org: Org, admin: Token
) -> None:
    path = f"/cycles/{scenario.cycle}/policy"
    api.problem(
        api.get(path, admin, params={"stage": "Q9"}), 422, "invalid-field", field="query.stage"
    )
    api.problem(api.get(f"/cycles/{org.farm}/policy", admin), 404, "not-found")
    assert api.state(path, admin)["stage"] == "Q4"  # after the cycle: its last stage
    head = api.head()
    api.problem(
        api.post(path, admin, {"from_stage": "Q9", "policy": {}, "reason": "调整"}),
        409,
        "rule-violation",
        rule="StageMustBelongToCycle",
    )
    assert api.head() == head


def test_concurrent_settlements_create_exactly_one(
    api: Api, scenario: Scenario, admin: Token
) -> None:
    responses = race(RACERS, lambda _: api.post(scenario.settlement(), admin))

    assert sorted(r.status_code for r in responses) == [200] * (RACERS - 1) + [201], [
        r.text for r in responses
    ]
    assert sum(r.json()["created"] for r in responses) == 1
    assert len({r.json()["id"] for r in responses}) == 1
    history = api.history(f"/cycles/{scenario.cycle}", admin)
    assert [e["type"] for e in history].count("SettlementRecorded") == 1
    body = api.state(scenario.settlement(), admin)
    assert len(body["awards"]) == 2
