"""GET /supervision over HTTP, on both stores: read your writes, overdue against as_of, filters."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Api, Org, Token

INDICATOR = {
    "kind": "quantitative",
    "metric": "覆盖率",
    "target_value": "95",
    "direction": "higher_is_better",
}
ITEM_KEYS = {
    "kind",
    "id",
    "title",
    "cycle_id",
    "unit_id",
    "stage",
    "responsible_person_id",
    "status",
    "deadline",
    "finished",
    "overdue",
}


def by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{i['id']}{i['stage'] or ''}{i['unit_id']}": i for i in body["items"]}


def test_supervision_reads_its_own_writes(api: Api, org: Org, admin: Token) -> None:
    escalated = api.write(
        f"/problems/{org.problem}/escalate", admin, {"leader_id": str(org.secretary)}
    )
    body = api.state("/supervision", admin, as_of="2026-07-01", min_position=escalated["position"])
    assert body["position"] >= escalated["position"]
    assert body["as_of"] == "2026-07-01"
    items = by_id(body)
    measure = items[f"{org.measure}{org.br_office}"]
    assert set(measure) == ITEM_KEYS
    assert measure == {
        "kind": "measure",
        "id": str(org.measure),
        "title": "建立公文流转台账",
        "cycle_id": str(org.cycle),
        "unit_id": str(org.br_office),
        "stage": None,
        "responsible_person_id": str(org.clerk),
        "status": "adopted",
        "deadline": "2026-06-30",
        "finished": False,
        "overdue": True,
    }
    problem = items[f"{org.problem}{org.br_office}"]
    assert (problem["status"], problem["responsible_person_id"], problem["deadline"]) == (
        "escalated",
        str(org.secretary),
        None,
    )
    assert body["counts"] == {"measure": 1, "problem": 1, "rectification": 0, "missing_effect": 0}
    assert body["total"] == 2

    dispatched = api.write(
        f"/problems/{org.problem}/dispatch",
        admin,
        {"to_unit_id": str(org.br_office), "requirement": "补齐记录", "deadline": "2026-05-31"},
    )
    body = api.state("/supervision", admin, as_of="2026-06-01", min_position=dispatched["position"])
    problem = by_id(body)[f"{org.problem}{org.br_office}"]
    assert (problem["status"], problem["deadline"], problem["overdue"]) == (
        "dispatched",
        "2026-05-31",
        True,
    )
    resolved = api.write(f"/problems/{org.problem}/resolve", admin, {"evidence": "已补齐"})
    body = api.state("/supervision", admin, min_position=resolved["position"])
    assert [i["kind"] for i in body["items"]] == ["measure"]
    body = api.state("/supervision", admin, include_finished="true")
    assert {i["status"] for i in body["items"]} == {"adopted", "resolved"}


def test_overdue_as_of_filters_and_missing_effects(api: Api, org: Org, admin: Token) -> None:
    target = api.write(
        "/targets",
        admin,
        {
            "cycle_id": str(org.cycle),
            "scope": "common",
            "title": "党员教育覆盖率",
            "indicator": INDICATOR,
            "points": "10",
            "applies_to": [str(org.farm), str(org.br_fire)],
        },
    )["id"]
    api.write(
        f"/targets/{target}/effects",
        admin,
        {
            "stage": "Q1",
            "method": "self_assessment",
            "unit_id": str(org.br_fire),
            "result": 96,
            "evidence": "台账",
        },
    )
    rectification = api.write(
        "/rectifications",
        admin,
        {
            "cycle_id": str(org.cycle),
            "unit_id": str(org.farm),
            "requirement": "补齐防火物资",
            "deadline": "2026-04-15",
        },
    )
    last = rectification["position"]

    def get(**params: Any) -> dict[str, Any]:
        return api.state("/supervision", admin, min_position=last, **params)

    # On 31 March nothing is overdue yet and Q1 has not ended.
    march = get(as_of="2026-03-31")
    assert march["counts"] == {"measure": 1, "problem": 0, "rectification": 1, "missing_effect": 0}
    assert not any(i["overdue"] for i in march["items"])
    # A datetime as_of with its offset: the day is the day in that offset.
    april = get(as_of="2026-04-16T08:00:00+08:00")
    assert april["as_of"] == "2026-04-16T08:00:00+08:00"
    overdue = {i["kind"]: i for i in april["items"] if i["overdue"]}
    assert set(overdue) == {"rectification", "missing_effect"}
    assert overdue["rectification"]["responsible_person_id"] == str(org.farm_head)
    missing = overdue["missing_effect"]
    assert (missing["id"], missing["stage"], missing["unit_id"], missing["deadline"]) == (
        target,
        "Q1",
        str(org.farm),
        "2026-03-31",
    )
    assert missing["responsible_person_id"] == str(org.farm_head)
    assert missing["status"] == "missing" and missing["title"] == "党员教育覆盖率"

    def kinds(**params: Any) -> list[str]:
        return sorted(i["kind"] for i in get(as_of="2026-04-16", **params)["items"])

    assert kinds(overdue="true") == ["missing_effect", "rectification"]
    assert kinds(overdue="false") == ["measure"]
    assert kinds(unit=str(org.gb_organs)) == ["measure"]
    assert kinds(unit=str(org.gb_protection)) == []  # br_fire confirmed its Q1 effect
    assert kinds(unit=str(org.committee)) == ["measure", "missing_effect", "rectification"]
    assert kinds(person=str(org.farm_head)) == ["missing_effect", "rectification"]
    assert kinds(person=str(org.clerk)) == ["measure"]
    assert kinds(kind="rectification") == ["rectification"]
    assert kinds(due_after="2026-04-01", due_before="2026-04-30") == ["rectification"]
    assert kinds(cycle=str(org.cycle), due_before="2026-03-31") == ["missing_effect"]
    limited = get(as_of="2026-04-16", limit=1)
    assert len(limited["items"]) == 1 and limited["total"] == 3 and limited["truncated"]


def test_bad_parameters_and_no_token(api: Api, org: Org, admin: Token) -> None:
    for params, field in (
        ({"as_of": "yesterday"}, "query.as_of"),
        ({"kind": "award"}, "query.kind"),
        ({"unit": "not-a-uuid"}, "query.unit"),
        ({"overdue": "maybe"}, "query.overdue"),
        ({"limit": "0"}, "query.limit"),
    ):
        api.problem(
            api.get("/supervision", admin, params=params), 422, "invalid-field", field=field
        )
    api.problem(api.get("/supervision", None), 401, "unauthenticated")


def test_a_position_not_reached_answers_503(
    api: Api, org: Org, admin: Token, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("closedloop.api.reads.READ_WAIT_SECONDS", 0.2)
    response = api.get("/supervision", admin, params={"min_position": api.head() + 1000})
    api.problem(response, 503, "stale-read-model")
    assert response.headers["Retry-After"] == "1"
