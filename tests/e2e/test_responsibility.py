"""GET /responsibility-matrix and GET /people/{id}/duties over HTTP, on both stores."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from closedloop.projections.responsibility import today

from .conftest import Api, Org, Token

INDICATOR = {
    "kind": "quantitative",
    "metric": "覆盖率",
    "target_value": "95",
    "direction": "higher_is_better",
}


def contract_a_target(api: Api, org: Org, admin: Token) -> tuple[str, int]:
    """Duties of every tier, then a common target contracted to the farm and the office branch;
    returns the target id and the position of the last write."""
    for person, unit, tier in (
        (org.secretary, org.committee, "overall_leadership"),
        (org.gb_secretary, org.gb_organs, "direct_responsible"),
        (org.clerk, org.br_office, "specific_responsible"),
        (org.fire_clerk, org.br_fire, "specific_responsible"),  # not concerned
    ):
        api.write(
            "/duties",
            admin,
            {
                "person_id": str(person),
                "unit_id": str(unit),
                "tier": tier,
                "effective_from": "2026-01-01",
            },
        )
    target = api.write(
        "/targets",
        admin,
        {
            "cycle_id": str(org.cycle),
            "scope": "common",
            "title": "党员教育覆盖率",
            "indicator": INDICATOR,
            "points": "10",
            "applies_to": [str(org.farm), str(org.br_office)],
        },
    )["id"]
    written = api.write(
        f"/targets/{target}/contract",
        admin,
        {
            "lead_unit_id": str(org.farm),
            "responsible_unit_ids": [str(org.br_office)],
            "responsible_leader_id": str(org.secretary),
        },
    )
    return target, written["position"]


def names(entry: dict[str, Any]) -> dict[str, list[str]]:
    return {tier: [h["name"] for h in held] for tier, held in entry["duty_holders"].items()}


def test_matrix_reads_its_own_writes(api: Api, org: Org, admin: Token) -> None:
    target, position = contract_a_target(api, org, admin)
    body = api.state("/responsibility-matrix", admin, cycle=str(org.cycle), min_position=position)
    assert body["position"] >= position
    assert body["cycle_id"] == str(org.cycle)
    assert body["as_of"] == today().isoformat()
    (entry,) = body["targets"]
    assert entry["target_id"] == target
    assert entry["title"] == "党员教育覆盖率"
    assert entry["lead_unit"] == {"id": str(org.farm), "name": "北山国有林场"}
    assert entry["responsible_units"] == [{"id": str(org.br_office), "name": "办公室党支部"}]
    assert entry["responsible_leader"] == {"id": str(org.secretary), "name": "张建国"}
    assert names(entry) == {
        "overall_leadership": ["张建国"],
        "first_responsible": ["邓志强"],
        "direct_responsible": ["刘洋"],
        "specific_responsible": ["吴静"],
    }
    holder = entry["duty_holders"]["first_responsible"][0]
    assert holder["person_id"] == str(org.farm_head) and holder["unit_id"] == str(org.farm)


def test_matrix_and_duties_as_of_before_and_after_a_relief(
    api: Api, org: Org, admin: Token
) -> None:
    contract_a_target(api, org, admin)
    duties = api.state(f"/people/{org.farm_head}/duties", admin, min_position=api.head())
    assert duties["person_id"] == str(org.farm_head)
    assert duties["name"] == "邓志强"
    (duty,) = duties["duties"]
    assert duty["unit_name"] == "北山国有林场"
    assert (duty["tier"], duty["effective_from"], duty["effective_to"], duty["active"]) == (
        "first_responsible",
        "2026-01-01",
        None,
        True,
    )
    relieved_on = today() + timedelta(days=5)
    written = api.write(
        f"/duties/{duty['duty_id']}/relieve",
        admin,
        {"effective_to": relieved_on.isoformat(), "reason": "退休"},
    )
    later = (relieved_on + timedelta(days=1)).isoformat()
    before = api.state(
        "/responsibility-matrix", admin, cycle=str(org.cycle), min_position=written["position"]
    )
    after = api.state("/responsibility-matrix", admin, cycle=str(org.cycle), as_of=later)
    assert after["as_of"] == later
    assert names(before["targets"][0])["first_responsible"] == ["邓志强"]
    assert names(after["targets"][0])["first_responsible"] == []
    assert names(after["targets"][0])["overall_leadership"] == ["张建国"]

    relieved = api.state(f"/people/{org.farm_head}/duties", admin, as_of=later)
    assert [(d["effective_to"], d["active"]) for d in relieved["duties"]] == [
        (relieved_on.isoformat(), False)
    ]
    early = api.state(f"/people/{org.farm_head}/duties", admin, as_of="2025-12-31")
    assert early["duties"] == [] and early["as_of"] == "2025-12-31"


def test_unknown_people_bad_dates_missing_cycle_and_no_token(
    api: Api, org: Org, admin: Token
) -> None:
    api.problem(api.get(f"/people/{org.committee}/duties", admin), 404, "not-found")
    api.problem(
        api.get(f"/people/{org.farm_head}/duties", admin, params={"as_of": "2026-13-01"}),
        422,
        "invalid-field",
        field="query.as_of",
    )
    api.problem(api.get("/responsibility-matrix", admin), 422, "invalid-field", field="query.cycle")
    empty = api.state("/responsibility-matrix", admin, cycle=str(org.committee))
    assert empty["targets"] == []
    api.problem(
        api.get("/responsibility-matrix", None, params={"cycle": str(org.cycle)}),
        401,
        "unauthenticated",
    )
    api.problem(api.get(f"/people/{org.farm_head}/duties", None), 401, "unauthenticated")


def test_a_position_not_reached_answers_503(
    api: Api, org: Org, admin: Token, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("closedloop.api.reads.READ_WAIT_SECONDS", 0.2)
    response = api.get(
        f"/people/{org.farm_head}/duties", admin, params={"min_position": api.head() + 1000}
    )
    api.problem(response, 503, "stale-read-model")
    assert response.headers["Retry-After"] == "1"
