"""Every error class as RFC 9457 problem+json, and proof that a refused request wrote nothing.

Each refused write is bracketed by ``GET /health``: the event store's head position must not
move. Bodies never carry a stack trace (checked by ``Api.problem``), and the correlation id in a
problem body is the ``X-Request-ID`` the response echoes.
"""

# Chinese prose keeps its full-width punctuation on purpose.

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from closedloop.api.app import create_app
from closedloop.bootstrap import Runtime
from closedloop.domain.access import Role
from closedloop.domain.context import acting_as
from closedloop.settings import Settings

from .conftest import Api, Org, Token, Tokens


@contextmanager
def nothing_written(api: Api) -> Iterator[None]:
    before = api.head()
    yield
    assert api.head() == before, "a refused request wrote events"


def new_problem(org: Org, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cycle_id": str(org.cycle),
        "unit_id": str(org.br_office),
        "title": "支部台账不规范",
        "source": "self_check",
    }
    return {**body, **overrides}


# --- 401 --------------------------------------------------------------------------------------


def check_401_without_a_token(api: Api, org: Org) -> None:
    with nothing_written(api):
        response = api.post("/problems", None, new_problem(org))
    body = api.problem(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Bearer" in body["detail"]
    api.problem(api.get("/problems", None), 401, "unauthenticated")
    api.problem(api.get(f"/problems/{org.problem}/history", None), 401, "unauthenticated")


def check_401_with_a_bad_token(api: Api, org: Org, subtests: pytest.Subtests) -> None:
    for authorization in (
        "Bearer clt_not-a-real-token",
        "Bearer ",
        "Basic ZTJlOmUyZQ==",
        "clt_no-scheme",
    ):
        with subtests.test(authorization=authorization), nothing_written(api):
            response = api.client.post(
                "/problems", json=new_problem(org), headers={"Authorization": authorization}
            )
            api.problem(response, 401, "unauthenticated")
            assert "WWW-Authenticate" in response.headers


def check_401_with_a_revoked_token(
    api: Api, runtime: Runtime, org: Org, issue_token: Callable[..., Token]
) -> None:
    member = issue_token("e2e-revoked-member", Role.MEMBER, org.br_office)
    assert api.get(f"/problems/{org.problem}", member).status_code == 200
    with acting_as("test-setup"):
        runtime.service.revoke_token(member.id, reason="调离岗位，收回令牌")
    with nothing_written(api):
        response = api.post("/problems", member, new_problem(org))
    body = api.problem(response, 401, "unauthenticated")
    assert "revoked" in body["detail"]
    api.problem(api.get(f"/problems/{org.problem}", member), 401, "unauthenticated")


def test_401_unauthenticated(
    api: Api,
    runtime: Runtime,
    org: Org,
    issue_token: Callable[..., Token],
    subtests: pytest.Subtests,
) -> None:
    with subtests.test("401 without a token"):
        check_401_without_a_token(api, org)
    with subtests.test("401 with a bad token"):
        check_401_with_a_bad_token(api, org, subtests)
    with subtests.test("401 with a revoked token"):
        check_401_with_a_revoked_token(api, runtime, org, issue_token)


# --- 403 --------------------------------------------------------------------------------------


def check_403_readers_do_not_write(api: Api, org: Org, tokens: Tokens) -> None:
    for token in (tokens.auditor, tokens.inspector):
        assert api.get(f"/measures/{org.measure}/history", token).status_code == 200
        with nothing_written(api):
            created = api.post("/problems", token, new_problem(org))
            acted = api.post(f"/measures/{org.measure}/progress", token, {"percent": 20})
        for response in (created, acted):
            body = api.problem(response, 403, "forbidden")
            assert body["role"] == token.role.value


def check_403_member_outside_its_unit(api: Api, org: Org, tokens: Tokens) -> None:
    with nothing_written(api):
        response = api.post("/problems", tokens.member, new_problem(org, unit_id=str(org.farm)))
    body = api.problem(response, 403, "forbidden")
    assert body["role"] == "member"
    assert str(org.farm) in body["detail"]
    # The same member inside its own unit is allowed: the refusal was about scope.
    assert api.post("/problems", tokens.member, new_problem(org)).status_code == 201


def check_403_member_doing_a_leaders_action(api: Api, org: Org, tokens: Tokens) -> None:
    with nothing_written(api):
        response = api.post(
            f"/problems/{org.problem}/dispatch",
            tokens.member,
            {"to_unit_id": str(org.br_office), "requirement": "限期整改", "deadline": "2026-05-01"},
        )
    api.problem(response, 403, "forbidden")


def check_403_leader_outside_its_subtree(api: Api, org: Org, tokens: Tokens) -> None:
    with nothing_written(api):
        outside = api.post("/people", tokens.leader, {"name": "郭鹏", "unit_id": str(org.br_fire)})
        above = api.post(
            "/units",
            tokens.leader,
            {"name": "新设党总支", "kind": "general_branch", "parent_id": str(org.committee)},
        )
    for response in (outside, above):
        body = api.problem(response, 403, "forbidden")
        assert body["role"] == "leader"
    # Inside the subtree (a branch under its general branch) the leader may act.
    inside = api.post("/people", tokens.leader, {"name": "方晴", "unit_id": str(org.br_office)})
    assert inside.status_code == 201, inside.text


def test_403_forbidden(api: Api, org: Org, tokens: Tokens, subtests: pytest.Subtests) -> None:
    with subtests.test("403 readers do not write"):
        check_403_readers_do_not_write(api, org, tokens)
    with subtests.test("403 member outside its unit"):
        check_403_member_outside_its_unit(api, org, tokens)
    with subtests.test("403 member doing a leaders action"):
        check_403_member_doing_a_leaders_action(api, org, tokens)
    with subtests.test("403 leader outside its subtree"):
        check_403_leader_outside_its_subtree(api, org, tokens)


def test_inspector_orders_a_rectification(api: Api, org: Org, tokens: Tokens) -> None:
    response = api.post(
        "/rectifications",
        tokens.inspector,
        {
            "cycle_id": str(org.cycle),
            "unit_id": str(org.br_office),
            "requirement": "限期规范公文流转",
            "deadline": "2026-05-31",
            "problem_id": str(org.problem),
        },
    )
    assert response.status_code == 201, response.text
    ordered = response.json()
    history = api.history(f"/rectifications/{ordered['id']}", tokens.auditor)
    assert history[0]["actor"] == f"e2e-inspector#{tokens.inspector.id}"
    # Inspectors order, verify and reject rectifications; nothing else (see the 403 checks).
    api.problem(
        api.post("/units", tokens.inspector, {"name": "x", "kind": "branch"}), 403, "forbidden"
    )


# --- 404 --------------------------------------------------------------------------------------


def check_404_unknown_id_on_reads(api: Api, org: Org, tokens: Tokens) -> None:
    unknown = uuid.uuid4()
    for path in (f"/problems/{unknown}", f"/problems/{unknown}/history", f"/awards/{unknown}"):
        body = api.problem(api.get(path, tokens.auditor), 404, "not-found", rule="MustExist")
        assert str(unknown) in body["detail"]
    # An id of another kind is not found in this collection either.
    api.problem(api.get(f"/problems/{org.measure}", tokens.auditor), 404, "not-found")
    api.problem(api.get(f"/units/{org.problem}/history", tokens.auditor), 404, "not-found")
    # Tokens are aggregates too, but no collection answers for them (their digests stay hidden).
    for path in (f"/units/{tokens.admin.id}", f"/people/{tokens.admin.id}/history"):
        api.problem(api.get(path, tokens.admin), 404, "not-found")
    # A version the aggregate never had.
    api.problem(
        api.get(f"/problems/{org.problem}", tokens.auditor, params={"version": 9}),
        404,
        "not-found",
        rule="MustExist",
    )


def check_404_unknown_id_on_actions(api: Api, org: Org, tokens: Tokens) -> None:
    unknown = uuid.uuid4()
    with nothing_written(api):
        responses = [
            api.post(f"/problems/{unknown}/resolve", tokens.admin, {"evidence": "整改报告"}),
            api.post(f"/measures/{unknown}/progress", tokens.member, {"percent": 10}),
            api.post(f"/awards/{unknown}/revoke", tokens.admin, {"reason": "撤销"}),
            api.post(
                f"/duties/{unknown}/relieve",
                tokens.leader,
                {
                    "effective_to": "2026-06-30",
                    "reason": "调离",
                },
            ),
            api.post(f"/targets/{org.problem}/withdraw", tokens.admin, {"reason": "撤回"}),
        ]
    for response in responses:
        api.problem(response, 404, "not-found", rule="MustExist")


def check_unknown_route_and_method_are_problems_too(api: Api, org: Org, tokens: Tokens) -> None:
    api.problem(api.get("/no-such-collection", tokens.admin), 404, "http")
    api.problem(api.get(f"/problems/{org.problem}/resolve", tokens.admin), 405, "http")


def test_404_not_found(api: Api, org: Org, tokens: Tokens, subtests: pytest.Subtests) -> None:
    with subtests.test("404 unknown id on reads"):
        check_404_unknown_id_on_reads(api, org, tokens)
    with subtests.test("404 unknown id on actions"):
        check_404_unknown_id_on_actions(api, org, tokens)
    with subtests.test("unknown route and method are problems too"):
        check_unknown_route_and_method_are_problems_too(api, org, tokens)


# --- 409 rule violations ------------------------------------------------------------------------


def check_409_resolving_twice(api: Api, org: Org, tokens: Tokens) -> None:
    path = f"/problems/{org.problem}/resolve"
    assert api.post(path, tokens.member, {"evidence": "整改报告"}).status_code == 200
    with nothing_written(api):
        response = api.post(path, tokens.member, {"evidence": "再次整改报告"})
    body = api.problem(response, 409, "rule-violation", rule="ProblemResolvedOnlyOnce")
    assert body["values"]["problem"] == str(org.problem)
    assert "ProblemResolvedOnlyOnce" in body["detail"]
    history = api.history(f"/problems/{org.problem}", tokens.auditor)
    assert [entry["type"] for entry in history] == ["ProblemFound", "ProblemResolved"]


def test_409_rater_scoring_own_unit(api: Api, org: Org, tokens: Tokens) -> None:
    meeting = api.write(
        "/meetings",
        tokens.admin,
        {
            "cycle_id": str(org.cycle),
            "stage": "Q1",
            "title": "一季度党建工作例会",
            "held_on": "2026-03-30",
            "attendee_ids": [str(org.officer), str(org.ranger), str(org.farm_head)],
        },
    )["id"]
    api.write(
        f"/meetings/{meeting}/reports",
        tokens.admin,
        {"unit_id": str(org.farm), "reporter_id": str(org.farm_head), "summary": "一季度述职"},
    )
    with nothing_written(api):
        response = api.post(
            f"/meetings/{meeting}/scores",
            tokens.admin,
            {"rater_id": str(org.ranger), "unit_id": str(org.farm), "score": "95"},
        )
    body = api.problem(response, 409, "rule-violation", rule="RaterMayNotScoreOwnUnit")
    assert body["values"] == {"rater": str(org.ranger), "unit": str(org.farm)}
    # A rater from another unit may score the same report.
    scored = api.post(
        f"/meetings/{meeting}/scores",
        tokens.admin,
        {"rater_id": str(org.officer), "unit_id": str(org.farm), "score": "90.5"},
    )
    assert scored.status_code == 200, scored.text


def check_409_other_rules_name_themselves(api: Api, org: Org, tokens: Tokens) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        (
            f"/problems/{org.problem}/dispatch",
            {"to_unit_id": str(org.dept), "requirement": "限期整改", "deadline": "2026-05-01"},
            "DispatchGoesToGrassroots",
        ),
        (
            f"/problems/{org.problem}/dispatch",
            {"to_unit_id": str(org.br_office), "requirement": "限期整改", "deadline": "2027-01-05"},
            "DeadlineWithinCycle",
        ),
        (
            f"/units/{org.gb_organs}/move",
            {"parent_id": str(org.br_office), "reason": "调整隶属关系"},
            "UnitTreeHasNoCycles",
        ),
        (
            "/duties",
            {
                "person_id": str(org.ranger),
                "unit_id": str(org.farm),
                "tier": "first_responsible",
                "effective_from": "2026-02-01",
            },
            "OneActiveFirstResponsiblePerUnit",
        ),
        (
            "/duties",
            {
                "person_id": str(org.officer),
                "unit_id": str(org.dept),
                "tier": "specific_responsible",
                "effective_from": "2026-02-01",
            },
            "DutyTierMatchesUnitKind",
        ),
    ]
    with nothing_written(api):
        for path, body, rule in cases:
            api.problem(api.post(path, tokens.admin, body), 409, "rule-violation", rule=rule)
        # A blank reason never reaches the rule: validation refuses it first.
        blank = api.post(f"/measures/{org.measure}/cancel", tokens.admin, {"reason": "   "})
        api.problem(blank, 422, "invalid-field", field="body.reason")


def test_409_rule_violations(api: Api, org: Org, tokens: Tokens, subtests: pytest.Subtests) -> None:
    with subtests.test("409 other rules name themselves"):
        check_409_other_rules_name_themselves(api, org, tokens)
    with subtests.test("409 resolving twice"):
        check_409_resolving_twice(api, org, tokens)


# --- 412 --------------------------------------------------------------------------------------


def test_412_if_match_mismatch(api: Api, org: Org, tokens: Tokens) -> None:
    path = f"/measures/{org.measure}/progress"
    current = api.client.get(f"/measures/{org.measure}", headers=api.headers(tokens.member))
    etag = current.headers["ETag"]
    assert etag == '"1"'
    moved = api.post(path, tokens.member, {"percent": 30}, If_Match=etag)
    assert moved.status_code == 200 and moved.headers["ETag"] == '"2"', moved.text
    with nothing_written(api):
        stale = api.post(path, tokens.member, {"percent": 50}, If_Match=etag)
    body = api.problem(stale, 412, "precondition-failed", rule="OneWriterWinsPerVersion")
    assert (body["expected_version"], body["current_version"]) == (1, 2)
    # Relieving a duty loads the duty itself (another code path): If-Match holds there too.
    duty_id = api.state(f"/units/{org.farm}", tokens.admin)["first_responsible"][0]
    with nothing_written(api):
        response = api.post(
            f"/duties/{duty_id}/relieve",
            tokens.admin,
            {"effective_to": "2026-06-30", "reason": "调离"},
            If_Match='"7"',
        )
    body = api.problem(response, 412, "precondition-failed")
    assert (body["expected_version"], body["current_version"]) == (7, 1)
    assert api.state(f"/duties/{duty_id}", tokens.admin)["effective_to"] is None


# --- 422 --------------------------------------------------------------------------------------


INVALID_FIELDS: list[Any] = [
    pytest.param(
        lambda o: "/units",
        lambda o: {"name": "   ", "kind": "branch", "parent_id": str(o.gb_organs)},
        "body.name",
        "string_too_short",
        id="blank-name",
    ),
    pytest.param(
        lambda o: f"/measures/{o.measure}/progress",
        lambda o: {"percent": 101},
        "body.percent",
        "less_than_equal",
        id="percent-over-100",
    ),
    pytest.param(
        lambda o: f"/measures/{o.measure}/progress",
        lambda o: {"percent": -1},
        "body.percent",
        "greater_than_equal",
        id="percent-negative",
    ),
    pytest.param(
        lambda o: "/units",
        lambda o: {"name": "新支部", "kind": "village", "parent_id": str(o.gb_organs)},
        "body.kind",
        "enum",
        id="unknown-enum",
    ),
    pytest.param(
        lambda o: f"/measures/{o.measure}/progress",
        lambda o: {"percent": 10, "colour": "red"},
        "body.colour",
        "extra_forbidden",
        id="extra-field",
    ),
    pytest.param(
        lambda o: "/problems",
        lambda o: new_problem(o, found_at="2026-03-01T09:00:00"),
        "body.found_at",
        "timezone_aware",
        id="naive-time",
    ),
    pytest.param(
        lambda o: "/problems",
        lambda o: new_problem(o, unit_id="not-a-uuid"),
        "body.unit_id",
        "uuid_parsing",
        id="bad-uuid",
    ),
    pytest.param(
        lambda o: "/cycles",
        lambda o: {"year": 1999, "name": "1999年度"},
        "body.year",
        "greater_than_equal",
        id="year-out-of-range",
    ),
    pytest.param(
        lambda o: "/targets",
        lambda o: {
            "cycle_id": str(o.cycle),
            "scope": "unit",
            "title": "支部特色目标",
            "indicator": {"kind": "qualitative", "levels": ["优", "良"]},
            "points": "5",
        },
        "body.unit_id",
        "required for scope=unit",
        id="unit-target-without-unit",
    ),
    pytest.param(
        lambda o: "/awards",
        lambda o: {
            "cycle_id": str(o.cycle),
            "kind": "reward",
            "basis": "排名第一",
            "unit_id": str(o.farm),
            "points": "1.23456",
        },
        "body.points",
        "decimal_max_places",
        id="too-many-decimals",
    ),
    pytest.param(
        lambda o: "/problems",
        lambda o: {"unit_id": str(o.br_office), "title": "缺少周期", "source": "sweep"},
        "body.cycle_id",
        "missing",
        id="missing-field",
    ),
]


def test_422_invalid_field(api: Api, org: Org, tokens: Tokens, subtests: pytest.Subtests) -> None:
    for case in INVALID_FIELDS:
        path_of, body_of, field, rule = case.values
        with subtests.test(case.id), nothing_written(api):
            response = api.post(path_of(org), tokens.admin, body_of(org))
            body = api.problem(response, 422, "invalid-field", field=field)
            assert body["errors"][0]["field"] == field
            assert body["errors"][0]["rule"] == rule
            assert field.removeprefix("body.") in body["detail"]


def check_422_malformed_json_and_query(api: Api, org: Org, tokens: Tokens) -> None:
    with nothing_written(api):
        response = api.client.post(
            "/problems",
            content=b'{"title": ',
            headers=api.headers(tokens.admin, content_type="application/json"),
        )
    body = api.problem(response, 422, "invalid-field")
    assert body["errors"][0]["rule"] == "json_invalid"
    for params, field in (
        ({"limit": 0}, "query.limit"),
        ({"limit": 501}, "query.limit"),
        ({"after": -1}, "query.after"),
        ({"cycle": "2026"}, "query.cycle"),
    ):
        api.problem(
            api.get("/problems", tokens.auditor, params=params), 422, "invalid-field", field=field
        )
    api.problem(
        api.get(f"/problems/{org.problem}", tokens.auditor, params={"version": 0}),
        422,
        "invalid-field",
        field="query.version",
    )
    api.problem(api.get("/problems/not-a-uuid", tokens.auditor), 422, "invalid-field")


def check_422_malformed_if_match(
    api: Api, org: Org, tokens: Tokens, subtests: pytest.Subtests
) -> None:
    for if_match in ("abc", '"1.5"', '"-1"', "1, 2", ""):
        with subtests.test(if_match=if_match), nothing_written(api):
            response = api.post(
                f"/measures/{org.measure}/progress",
                tokens.member,
                {"percent": 10},
                If_Match=if_match,
            )
            body = api.problem(response, 422, "invalid-field", field="header.If-Match")
            assert body["errors"][0]["field"] == "header.If-Match"


def test_422_malformed_requests(
    api: Api, org: Org, tokens: Tokens, subtests: pytest.Subtests
) -> None:
    with subtests.test("422 malformed json and query"):
        check_422_malformed_json_and_query(api, org, tokens)
    with subtests.test("422 malformed if match"):
        check_422_malformed_if_match(api, org, tokens, subtests)


def test_422_idempotency_key_reused_with_another_body(api: Api, org: Org, tokens: Tokens) -> None:
    path = f"/measures/{org.measure}/progress"
    first = api.post(path, tokens.member, {"percent": 10}, Idempotency_Key="e2e-key-1")
    assert first.status_code == 200, first.text
    with nothing_written(api):
        response = api.post(path, tokens.member, {"percent": 90}, Idempotency_Key="e2e-key-1")
    body = api.problem(response, 422, "idempotency-key-reused", field="header.Idempotency-Key")
    assert body["errors"][0]["field"] == "header.Idempotency-Key"
    # The same key on another path is another request, not a replay.
    with nothing_written(api):
        other = api.post(
            f"/problems/{org.problem}/resolve",
            tokens.member,
            {"evidence": "整改报告"},
            Idempotency_Key="e2e-key-1",
        )
    api.problem(other, 422, "idempotency-key-reused")
    # A too long key is an invalid header.
    with nothing_written(api):
        long_key = api.post(path, tokens.member, {"percent": 20}, Idempotency_Key="k" * 201)
    api.problem(long_key, 422, "invalid-field", field="header.idempotency-key")


def test_422_domain_invalid_value_names_the_body_field(api: Api, org: Org, tokens: Tokens) -> None:
    target = api.write(
        "/targets",
        tokens.admin,
        {
            "cycle_id": str(org.cycle),
            "scope": "unit",
            "unit_id": str(org.farm),
            "title": "护林先锋岗",
            "indicator": {"kind": "qualitative", "levels": ["优", "良"]},
            "points": "5",
        },
    )["id"]
    with nothing_written(api):
        response = api.post(f"/targets/{target}/milestones", tokens.admin, {"milestones": {}})
    body = api.problem(response, 422, "invalid-field")
    assert body["errors"][0]["field"] == "body.milestones"


def test_422_nul_character_in_text(api: Api, org: Org, tokens: Tokens) -> None:
    with nothing_written(api):
        response = api.post("/problems", tokens.admin, new_problem(org, title="巡护\x00记录"))
    api.problem(response, 422, "invalid-field", field="body.title")


def test_huge_cursor_or_version_is_never_a_500(
    api: Api, org: Org, tokens: Tokens, runtime: Runtime, request: pytest.FixtureRequest
) -> None:
    huge = 10**20
    listed = api.get("/problems", tokens.auditor, params={"after": huge})
    one = api.get(f"/problems/{org.problem}", tokens.auditor, params={"version": huge})
    assert listed.status_code in (200, 422), listed.text
    assert one.status_code in (404, 422), one.text


# --- 500 ------------------------------------------------------------------------------------


def failing_app(settings: Settings, runtime: Runtime) -> TestClient:
    """The real app plus one route that fails the way a bug in a handler would."""
    app = create_app(settings, runtime=runtime)

    @app.get("/e2e-failure")
    def fail() -> None:
        raise RuntimeError("internal detail: password=hunter2 at /srv/closedloop/secret.py")

    return TestClient(app, raise_server_exceptions=False)


def test_500_is_a_problem_without_internals(store_settings: Settings, runtime: Runtime) -> None:
    with failing_app(store_settings, runtime) as client:
        response = client.get("/e2e-failure", headers={"X-Request-ID": "e2e-req-500"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == "urn:closedloop:problem:internal" and body["status"] == 500
    assert body["correlation_id"] == "e2e-req-500"
    for leaked in ("hunter2", "RuntimeError", "secret.py", "Traceback"):
        assert leaked not in response.text


def test_500_echoes_the_request_id(store_settings: Settings, runtime: Runtime) -> None:
    with failing_app(store_settings, runtime) as client:
        response = client.get("/e2e-failure", headers={"X-Request-ID": "e2e-req-500"})
    assert response.status_code == 500
    assert response.headers.get("X-Request-ID") == "e2e-req-500"


# --- correlation ids ----------------------------------------------------------------------------


def check_request_id_is_echoed_and_is_the_problems_correlation_id(
    api: Api, org: Org, tokens: Tokens
) -> None:
    response = api.client.post(
        f"/measures/{org.measure}/progress",
        json={"percent": 101},
        headers=api.headers(tokens.member, X_Request_ID="e2e-req-422"),
    )
    body = api.problem(response, 422, "invalid-field")
    assert response.headers["X-Request-ID"] == body["correlation_id"] == "e2e-req-422"

    unauthenticated = api.client.get("/problems", headers={"X-Request-ID": "e2e-req-401"})
    assert api.problem(unauthenticated, 401, "unauthenticated")["correlation_id"] == "e2e-req-401"

    generated = api.post("/problems", tokens.auditor, new_problem(org))
    body = api.problem(generated, 403, "forbidden")
    assert len(generated.headers["X-Request-ID"]) >= 16


def check_request_id_is_recorded_on_the_written_events(api: Api, org: Org, tokens: Tokens) -> None:
    response = api.client.post(
        f"/measures/{org.measure}/progress",
        json={"percent": 35, "note": "进度过三成"},
        headers=api.headers(tokens.member, X_Request_ID="e2e-req-write-1"),
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Request-ID"] == "e2e-req-write-1"
    history = api.history(f"/measures/{org.measure}", tokens.auditor)
    assert history[-1]["correlation_id"] == "e2e-req-write-1"
    assert history[-1]["position"] == response.json()["position"]
    assert history[-1]["actor"] == f"e2e-member#{tokens.member.id}"

    # Without X-Request-ID the server makes one, echoes it and records it.
    generated = api.post(f"/measures/{org.measure}/progress", tokens.member, {"percent": 45})
    assert generated.status_code == 200
    recorded = api.history(f"/measures/{org.measure}", tokens.auditor)[-1]["correlation_id"]
    assert recorded == generated.headers["X-Request-ID"]

    # A duty of the first tier writes two aggregates in one request: both carry the id.
    duty = api.client.post(
        "/duties",
        json={
            "person_id": str(org.officer),
            "unit_id": str(org.dept),
            "tier": "first_responsible",
            "effective_from": "2026-01-01",
        },
        headers=api.headers(tokens.admin, X_Request_ID="e2e-req-duty"),
    )
    assert duty.status_code == 201, duty.text
    assert api.history(f"/duties/{duty.json()['id']}", tokens.auditor)[-1]["correlation_id"] == (
        "e2e-req-duty"
    )
    assert api.history(f"/units/{org.dept}", tokens.auditor)[-1]["correlation_id"] == (
        "e2e-req-duty"
    )


def test_request_ids(api: Api, org: Org, tokens: Tokens, subtests: pytest.Subtests) -> None:
    with subtests.test("request id is echoed and is the problems correlation id"):
        check_request_id_is_echoed_and_is_the_problems_correlation_id(api, org, tokens)
    with subtests.test("request id is recorded on the written events"):
        check_request_id_is_recorded_on_the_written_events(api, org, tokens)
