"""GET /targets/{id}/trace: one target's chain, each item with the events behind it."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from closedloop.bootstrap import build_runtime
from closedloop.domain.access import Role
from closedloop.domain.context import acting_as
from closedloop.domain.targets import Direction, Indicator
from closedloop.domain.units import UnitKind
from closedloop.settings import Settings

from .conftest import SETUP_ACTOR, Api, Org, Tokens, open_client

SECTIONS = ("problems", "measures", "duties", "meetings", "rectifications", "effects", "awards")


def write_loop(api: Api, tokens: Tokens, org: Org) -> tuple[str, dict[str, str], int]:
    """A common target for the office branch and the farm, and its loop, written over HTTP."""
    admin = tokens.admin
    target = api.write(
        "/targets",
        admin,
        {
            "cycle_id": str(org.cycle),
            "scope": "common",
            "title": "党员学习学时达标",
            "indicator": {
                "kind": "quantitative",
                "metric": "学时",
                "target_value": "40",
                "direction": "higher_is_better",
            },
            "points": "10",
            "applies_to": [str(org.br_office), str(org.farm)],
        },
    )["id"]
    api.write(
        f"/targets/{target}/contract",
        admin,
        {
            "lead_unit_id": str(org.gb_organs),
            "responsible_unit_ids": [str(org.br_office)],
            "responsible_leader_id": str(org.gb_secretary),
        },
    )
    problem = api.write(
        "/problems",
        tokens.member,
        {
            "cycle_id": str(org.cycle),
            "unit_id": str(org.br_office),
            "title": "学习记录不全",
            "source": "sweep",
            "target_id": target,
        },
    )["id"]
    measure = api.write(
        "/measures",
        tokens.leader,
        {
            "cycle_id": str(org.cycle),
            "title": "补齐学习记录",
            "deadline": "2026-06-30",
            "lead_unit_id": str(org.br_office),
            "responsible_unit_ids": [str(org.br_office)],
            "responsible_leader_id": str(org.clerk),
            "problem_ids": [problem],
        },
    )["id"]
    last = api.write(
        f"/targets/{target}/effects",
        tokens.member,
        {
            "stage": "Q1",
            "method": "self_assessment",
            "unit_id": str(org.br_office),
            "result": "12",
            "evidence": "一季度学习记录",
        },
    )
    return target, {"problem": problem, "measure": measure}, last["position"]


def test_the_trace_shows_a_loop_written_over_http(api: Api, tokens: Tokens, org: Org) -> None:
    target, ids, position = write_loop(api, tokens, org)
    trace = api.state(f"/targets/{target}/trace", tokens.member, min_position=position)
    assert trace["target_id"] == target
    assert trace["title"] == "党员学习学时达标"
    assert trace["position"] >= position
    assert set(SECTIONS) <= set(trace)
    assert [e["type"] for e in trace["events"]] == ["TargetSet", "TargetContracted"]

    [problem] = trace["problems"]
    assert (problem["id"], problem["title"], problem["status"]) == (
        ids["problem"],
        "学习记录不全",
        "open",
    )
    [found] = problem["events"]
    assert found["type"] == "ProblemFound"
    assert found["actor"] == f"{tokens.member.name}#{tokens.member.id}"
    assert found["position"] < position
    assert found["recorded_at"]
    assert [m["id"] for m in trace["measures"]] == [ids["measure"]]
    assert trace["measures"][0]["events"][0]["actor"].startswith(tokens.leader.name)
    # The farm head's duty was assigned before the target was set: linked all the same.
    [duty] = trace["duties"]
    assert duty["person_id"] == str(org.farm_head)
    assert duty["tier"] == "first_responsible"
    assert [e["type"] for e in duty["events"]] == ["DutyAssigned"]
    assert duty["events"][0]["actor"] == SETUP_ACTOR
    [effect] = trace["effects"]
    assert (effect["stage"], effect["unit_id"], effect["result"]) == (
        "Q1",
        str(org.br_office),
        "12",
    )
    assert effect["events"][0]["position"] == position
    assert trace["meetings"] == trace["rectifications"] == trace["awards"] == []
    # The org's own problem and measure concern no target: not in this chain.
    assert str(org.problem) not in {p["id"] for p in trace["problems"]}


def test_every_role_may_read_a_trace(api: Api, tokens: Tokens, org: Org) -> None:
    target, _, position = write_loop(api, tokens, org)
    for token in (tokens.admin, tokens.leader, tokens.member, tokens.auditor, tokens.inspector):
        body = api.state(f"/targets/{target}/trace", token, min_position=position)
        assert body["target_id"] == target
    api.problem(api.get(f"/targets/{target}/trace", None), 401, "unauthenticated")


def test_unknown_targets_are_404(api: Api, tokens: Tokens, org: Org) -> None:
    head = api.head()
    for unknown in (uuid.uuid4(), org.problem):
        response = api.get(
            f"/targets/{unknown}/trace", tokens.auditor, params={"min_position": head}
        )
        api.problem(response, 404, "not-found")
    api.problem(api.get("/targets/not-a-uuid/trace", tokens.auditor), 422, "invalid-field")


def test_the_trace_route_does_not_shadow_the_target_routes(
    api: Api, tokens: Tokens, org: Org
) -> None:
    target, _, _ = write_loop(api, tokens, org)
    assert api.state(f"/targets/{target}", tokens.auditor)["id"] == target
    assert [e["type"] for e in api.history(f"/targets/{target}", tokens.auditor)][:2] == [
        "TargetSet",
        "TargetContracted",
    ]


def test_min_position_beyond_the_log_answers_503(api: Api, tokens: Tokens, org: Org) -> None:
    target, _, position = write_loop(api, tokens, org)
    response = api.get(
        f"/targets/{target}/trace", tokens.auditor, params={"min_position": position + 1000}
    )
    body = api.problem(response, 503, "stale-read-model")
    assert response.headers["Retry-After"]
    assert body["projection"] == "trace"


def test_a_target_the_read_model_has_not_reached_is_503_not_404(
    store_settings: Settings,
) -> None:
    settings = store_settings.model_copy(update={"run_projections": False})
    runtime = build_runtime(settings)
    try:
        with acting_as(SETUP_ACTOR):
            cycle = runtime.service.open_cycle(year=2026, name="2026").id
            unit = runtime.service.register_unit(name="党委", kind=UnitKind.COMMITTEE).id
            target = runtime.service.set_common_target(
                cycle_id=cycle,
                title="目标",
                indicator=Indicator.quantitative(
                    metric="m", target_value=Decimal(1), direction=Direction.HIGHER_IS_BETTER
                ),
                points=Decimal(1),
                applies_to=[unit],
            ).id
            _, secret = runtime.service.issue_token(name="reader", role=Role.AUDITOR)
        headers: dict[str, Any] = {"Authorization": f"Bearer {secret}"}
        with open_client(settings, runtime) as client:
            stale = client.get(f"/targets/{target}/trace", headers=headers)
            assert stale.status_code == 503, stale.text
            assert stale.headers["Retry-After"]
            runtime.projections.catch_up()
            fresh = client.get(f"/targets/{target}/trace", headers=headers)
            assert fresh.status_code == 200, fresh.text
            assert fresh.json()["title"] == "目标"
    finally:
        runtime.close()
