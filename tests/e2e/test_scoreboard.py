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
    assert body["provisional"] is True and body["stage_closed"] is True
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
    meetings = api.state("/meetings", admin, cycle=str(demo.cycle_id))["items"]
    meeting = api.state(f"/meetings/{meetings[0]['id']}", admin)
    scored = meeting["scores"][0]
    before = scoreboard(api, admin, demo.cycle_id, min_position=demo.head_position)
    unit_before = next(r for r in before["rows"] if r["unit_id"] == scored["unit_id"])
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
    assert after["position"] >= written["position"]
    unit_after = next(r for r in after["rows"] if r["unit_id"] == scored["unit_id"])
    # Nine raters: the new 0 is the lowest score and is dropped; the old lowest now counts.
    assert Decimal(unit_after["meeting"]) < Decimal(unit_before["meeting"])
    assert unit_after["details"]["scores"] == unit_before["details"]["scores"]


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
