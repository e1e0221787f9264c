"""GET /cycles/{id}/scoreboard: the demo year's board, read-your-writes, and clear refusals."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from closedloop.api import reads
from closedloop.bootstrap import Runtime
from closedloop.demo import DemoSummary, load_demo

from .conftest import Api, Token

ROW_KEYS = {
    "unit_id",
    "unit_name",
    "result",
    "process",
    "meeting",
    "total",
    "rank",
    "notes",
    "weights",
    "details",
}


@pytest.fixture
def demo(runtime: Runtime, admin: Token) -> DemoSummary:
    # After the admin token: the store is not empty, hence force.
    return load_demo(runtime.service, force=True)


def scoreboard(api: Api, token: Token, cycle: Any, **params: Any) -> dict[str, Any]:
    return api.state(f"/cycles/{cycle}/scoreboard", token, **params)


def test_the_demo_years_scoreboard(api: Api, admin: Token, demo: DemoSummary) -> None:
    body = scoreboard(api, admin, demo.cycle_id, min_position=demo.head_position)
    assert body["cycle_id"] == str(demo.cycle_id)
    assert body["stage"] == "Q1"  # the latest stage with confirmed effects or meeting scores
    # The demo settled Q1 (and settled it again after a correction): its figures are fixed.
    assert body["provisional"] is False and body["stage_closed"] is True
    assert body["settlement"]["round"] == 2
    assert [s["settled"] for s in body["stages"]] == [True, False, False, False]
    assert body["position"] >= demo.head_position
    assert body["policy"]["weights"] == {"result": "0.5", "process": "0.3", "meeting": "0.2"}
    assert [s["key"] for s in body["stages"]] == ["Q1", "Q2", "Q3", "Q4"]
    rows = body["rows"]
    assert len(rows) == 29 and all(set(row) == ROW_KEYS for row in rows)
    ranks = [row["rank"] for row in rows]
    assert ranks[0] == 1 and ranks == sorted(ranks)
    for row in rows:
        assert isinstance(row["total"], str)  # Decimals travel as strings, never floats
        assert Decimal(0) <= Decimal(row["total"]) <= Decimal(100)
        assert row["unit_name"]
    tied = [row for row in rows if row["rank"] == 1]
    assert [row["unit_id"] for row in tied] == sorted(row["unit_id"] for row in tied)
    station = next(row for row in rows if row["unit_name"] == "城郊森林保护站")
    assert station["meeting"] == "79.50"
    q2 = scoreboard(api, admin, demo.cycle_id, stage="Q2")
    assert q2["stage"] == "Q2" and q2["stage_closed"] is False
    assert {row["unit_id"] for row in q2["rows"]} == {row["unit_id"] for row in rows}


def test_a_write_is_read_back_with_min_position(api: Api, admin: Token, demo: DemoSummary) -> None:
    targets = api.state("/targets", admin, cycle=str(demo.cycle_id))["items"]
    quantified = [api.state(f"/targets/{t['id']}", admin) for t in targets]
    target = next(t for t in quantified if t["indicator"]["kind"] == "quantitative")
    unit = target["applies_to"][0]
    before = scoreboard(api, admin, demo.cycle_id, stage="Q2", min_position=demo.head_position)
    scored_before = next(r for r in before["rows"] if r["unit_id"] == unit)["details"]
    written = api.write(
        f"/targets/{target['id']}/effects",
        admin,
        {
            "stage": "Q2",
            "method": "inspection",
            "unit_id": unit,
            "result": target["indicator"]["target_value"],
            "evidence": "二季度组织检查",
        },
    )
    after = scoreboard(api, admin, demo.cycle_id, stage="Q2", min_position=written["position"])
    assert after["position"] >= written["position"] and after["provisional"] is True
    row = next(r for r in after["rows"] if r["unit_id"] == unit)
    assert row["details"]["targets_scored"] == scored_before["targets_scored"] + 1
    assert row["result"] is not None


def test_a_settled_stage_keeps_its_figures_and_refuses_late_effects(
    api: Api, admin: Token, demo: DemoSummary
) -> None:
    meetings = api.state("/meetings", admin, cycle=str(demo.cycle_id))["items"]
    meeting = api.state(f"/meetings/{meetings[0]['id']}", admin)
    scored = meeting["scores"][0]
    before = scoreboard(api, admin, demo.cycle_id, stage="Q1", min_position=demo.head_position)
    written = api.write(
        f"/meetings/{meeting['id']}/scores",
        admin,
        {
            "rater_id": scored["rater_id"],
            "unit_id": scored["unit_id"],
            "score": "0",
            "reason": "复核发现录入错误",
        },
    )
    after = scoreboard(api, admin, demo.cycle_id, stage="Q1", min_position=written["position"])
    fixed = ("unit_id", "result", "process", "meeting", "total", "rank")
    assert [[r[k] for k in fixed] for r in after["rows"]] == [
        [r[k] for k in fixed] for r in before["rows"]
    ]
    targets = api.state("/targets", admin, cycle=str(demo.cycle_id))["items"]
    target = api.state(f"/targets/{targets[0]['id']}", admin)
    late = api.post(
        f"/targets/{target['id']}/effects",
        admin,
        {
            "stage": "Q1",
            "method": "self_assessment",
            "unit_id": target["applies_to"][0],
            "result": target["indicator"]["target_value"] or target["indicator"]["levels"][0],
            "evidence": "迟到的自评",
            "reason": "补报",
        },
    )
    body = api.problem(late, 409, "rule-violation", rule="SettledStageAcceptsNoEffects")
    assert "Q1" in body["detail"]


def test_a_new_cycle_has_an_empty_board(api: Api, admin: Token) -> None:
    cycle = api.write("/cycles", admin, {"year": 2027, "name": "2027年度"})
    body = scoreboard(api, admin, cycle["id"], min_position=cycle["position"])
    assert (body["stage"], body["rows"], body["provisional"]) == ("Q1", [], True)


def test_refusals(
    api: Api, admin: Token, demo: DemoSummary, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"/cycles/{demo.cycle_id}/scoreboard"
    api.problem(api.get(path, None), 401, "unauthenticated")
    api.problem(api.get(f"/cycles/{uuid.uuid4()}/scoreboard", admin), 404, "not-found")
    api.problem(api.get(f"/cycles/{demo.root_unit_id}/scoreboard", admin), 404, "not-found")
    api.problem(
        api.get(path, admin, params={"stage": "Q9"}), 422, "invalid-field", field="query.stage"
    )
    api.problem(
        api.get(path, admin, params={"min_position": -1}),
        422,
        "invalid-field",
        field="query.min_position",
    )
    api.problem(
        api.get(path, admin, params={"min_position": 10**20}),
        422,
        "invalid-field",
        field="query.min_position",
    )
    monkeypatch.setattr(reads, "READ_WAIT_SECONDS", 0.2)
    stale = api.get(path, admin, params={"min_position": demo.head_position + 1000})
    body = api.problem(stale, 503, "stale-read-model")
    assert stale.headers["Retry-After"] == "1"
    assert body["projection"] == "scoreboard"
