"""GET /audit/events: the discipline inspector's query surface, over HTTP on both stores."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .conftest import SETUP_ACTOR, Api, Org, Tokens


def audit(api: Api, tokens: Tokens, **params: Any) -> dict[str, Any]:
    """An audit query as the auditor, having waited for everything written so far."""
    params.setdefault("min_position", api.head())
    return api.state("/audit/events", tokens.auditor, **params)


def test_only_admins_auditors_and_inspectors_may_query(api: Api, tokens: Tokens) -> None:
    head = api.head()
    for token in (tokens.leader, tokens.member):
        body = api.problem(api.get("/audit/events", token), 403, "forbidden")
        assert body["role"] == token.role.value
    for token in (tokens.admin, tokens.auditor, tokens.inspector):
        body = api.state("/audit/events", token, min_position=head)
        assert body["position"] >= head
        assert [item["position"] for item in body["items"]] == list(range(1, head + 1))
    api.problem(api.get("/audit/events", None), 401, "unauthenticated")


def test_items_say_who_did_what_to_which_units_and_when(api: Api, tokens: Tokens, org: Org) -> None:
    items = audit(api, tokens, aggregate=str(org.problem))["items"]
    assert len(items) == 1
    found = items[0]
    assert found["type"] == "ProblemFound"
    assert found["aggregate_type"] == "Problem"
    assert found["aggregate_id"] == str(org.problem)
    assert found["version"] == 1
    assert found["actor"] == SETUP_ACTOR
    assert found["units"] == [str(org.br_office)]
    assert found["data"]["title"] == "公文流转记录不全"
    assert found["data"]["severity"] == "prominent"
    assert datetime.fromisoformat(found["effective_at"]) == datetime(2026, 2, 10, 1, tzinfo=UTC)
    assert datetime.fromisoformat(found["recorded_at"]) > datetime(2026, 1, 1, tzinfo=UTC)
    assert set(found) == {
        "position",
        "aggregate_id",
        "aggregate_type",
        "type",
        "version",
        "actor",
        "correlation_id",
        "reason",
        "recorded_at",
        "effective_at",
        "units",
        "data",
    }
    tokens_issued = audit(api, tokens, type="TokenIssued")["items"]
    assert {item["data"]["name"] for item in tokens_issued} >= {"e2e-leader", "e2e-auditor"}
    assert all("token_digest" not in item["data"] for item in tokens_issued)


def test_a_write_is_read_back_with_its_principal_and_request(
    api: Api, tokens: Tokens, org: Org
) -> None:
    response = api.post(
        f"/problems/{org.problem}/resolve",
        tokens.member,
        {"evidence": "台账补齐", "resolved_at": "2026-03-01T10:00:00+08:00"},
        X_Request_ID="audit-e2e-resolve",
    )
    assert response.status_code == 200, response.text
    written = response.json()
    body = api.state(
        "/audit/events",
        tokens.inspector,
        aggregate=str(org.problem),
        type="ProblemResolved",
        min_position=written["position"],
    )
    assert body["position"] >= written["position"]
    [item] = body["items"]
    assert item["position"] == written["position"]
    assert item["actor"] == f"{tokens.member.name}#{tokens.member.id}"
    assert item["correlation_id"] == "audit-e2e-resolve"
    assert item["units"] == [str(org.br_office)]
    assert item["data"] == {"evidence": "台账补齐"}


def test_filters_by_actor_unit_type_and_time(api: Api, tokens: Tokens, org: Org) -> None:
    everything = audit(api, tokens, limit=500)["items"]
    by_setup = audit(api, tokens, actor=SETUP_ACTOR, limit=500)["items"]
    assert by_setup == [item for item in everything if item["actor"] == SETUP_ACTOR]
    assert audit(api, tokens, actor="nobody")["items"] == []

    about_office = audit(api, tokens, unit=str(org.br_office), limit=500)["items"]
    assert about_office == [item for item in everything if str(org.br_office) in item["units"]]
    assert {item["type"] for item in about_office} >= {
        "UnitRegistered",
        "PersonRegistered",
        "ProblemFound",
        "MeasureAdopted",
        "TokenIssued",
    }

    found = audit(api, tokens, type="ProblemFound")["items"]
    assert [item["aggregate_id"] for item in found] == [str(org.problem)]

    # [from, to) on the effective time: the problem was found on 10 February 2026.
    february = audit(
        api,
        tokens,
        time="effective",
        **{"from": "2026-02-01T00:00:00+08:00"},
        to="2026-03-01T00:00:00+08:00",
    )["items"]
    assert [item["type"] for item in february] == ["ProblemFound"]
    cut = everything[len(everything) // 2]["recorded_at"]
    before = audit(api, tokens, to=cut, limit=500)["items"]
    after = audit(api, tokens, limit=500, **{"from": cut})["items"]
    assert before + after == everything
    later = (datetime.fromisoformat(everything[-1]["recorded_at"]) + timedelta(days=1)).isoformat()
    assert audit(api, tokens, **{"from": later})["items"] == []


def test_refuses_bad_filters(api: Api, tokens: Tokens) -> None:
    for params in (
        {"from": "2026-02-01T00:00:00"},  # no offset: ambiguous
        {"to": "yesterday"},
        {"unit": "not-a-uuid"},
        {"limit": 0},
        {"limit": 501},
        {"after": -1},
        {"after": 2**63},
        {"min_position": 2**63},
        {"actor": "tester\x00"},
        {"type": "Problem\x07Found"},
        {"time": "wall"},
    ):
        response = api.get("/audit/events", tokens.auditor, params=params)
        api.problem(response, 422, "invalid-field")


def test_cursor_paging(api: Api, tokens: Tokens) -> None:
    everything = audit(api, tokens, limit=500)["items"]
    assert audit(api, tokens, limit=500)["next_after"] is None
    seen: list[dict[str, Any]] = []
    after = 0
    while True:
        page = audit(api, tokens, limit=7, after=after)
        assert len(page["items"]) <= 7
        seen.extend(page["items"])
        if page["next_after"] is None:
            break
        assert page["next_after"] == page["items"][-1]["position"]
        after = page["next_after"]
    assert seen == everything
    # next_after is exact: a page that ends the log says so, even when it is full.
    last = audit(api, tokens, limit=2, after=everything[-3]["position"])
    assert [i["position"] for i in last["items"]] == [i["position"] for i in everything[-2:]]
    assert last["next_after"] is None


def test_audit_queries_are_logged_with_the_principal(
    api: Api, tokens: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="closedloop.audit"):
        body = audit(api, tokens, type="ProblemFound")
    records = [r for r in caplog.records if r.name == "closedloop.audit"]
    assert len(records) == 1
    message = records[0].getMessage()
    assert f"{tokens.auditor.name}#{tokens.auditor.id}" in message
    assert "ProblemFound" in message
    assert f"results={len(body['items'])}" in message
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="closedloop.audit"):
        api.get("/audit/events", tokens.member)
    assert [r for r in caplog.records if r.name == "closedloop.audit"] == []


def test_min_position_beyond_the_log_answers_503(api: Api, tokens: Tokens) -> None:
    response = api.get("/audit/events", tokens.auditor, params={"min_position": api.head() + 1000})
    body = api.problem(response, 503, "stale-read-model")
    assert response.headers["Retry-After"]
    assert body["projection"] == "audit_index"
