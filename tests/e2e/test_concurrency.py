"""Racing writers over HTTP: one wins each version, nothing is lost or doubled; idempotency keys
write once, replay the first answer, and survive a restart.

The threads share one ``TestClient``; the app runs its sync endpoints in a thread pool, so the
requests really overlap inside the service. A barrier releases them together.
"""

# Chinese prose keeps its full-width punctuation on purpose.

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from closedloop.bootstrap import Runtime, build_runtime
from closedloop.domain.access import Role
from closedloop.settings import Settings

from .conftest import Api, Org, Token, Tokens, open_client

WRITERS = 8


def race(count: int, request: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    """Run ``request(i)`` for i in range(count) in threads released together."""
    barrier = threading.Barrier(count)

    def run(i: int) -> httpx.Response:
        barrier.wait(timeout=10)
        return request(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def statuses(responses: list[httpx.Response]) -> list[int]:
    return sorted(response.status_code for response in responses)


def test_same_if_match_one_writer_wins(api: Api, org: Org, tokens: Tokens) -> None:
    path = f"/measures/{org.measure}/progress"
    before, head = api.history(f"/measures/{org.measure}", tokens.auditor), api.head()
    assert before[-1]["version"] == 1

    responses = race(
        WRITERS,
        lambda i: api.post(path, tokens.member, {"percent": 10 + i}, If_Match='"1"'),
    )

    assert statuses(responses) == [200] + [412] * (WRITERS - 1), [r.text for r in responses]
    (winner,) = [r for r in responses if r.status_code == 200]
    assert winner.json()["version"] == 2 and winner.headers["ETag"] == '"2"'
    for loser in (r for r in responses if r.status_code == 412):
        body = api.problem(loser, 412, "precondition-failed", rule="OneWriterWinsPerVersion")
        assert body["expected_version"] == 1
    after = api.history(f"/measures/{org.measure}", tokens.auditor)
    assert len(after) == len(before) + 1
    assert api.head() == head + 1
    assert after[-1]["position"] == winner.json()["position"]
    winner_percent = next(10 + i for i, r in enumerate(responses) if r.status_code == 200)
    assert after[-1]["data"]["percent"] == winner_percent


def test_racing_resolutions_without_if_match_resolve_once(
    api: Api, org: Org, tokens: Tokens
) -> None:
    path = f"/problems/{org.problem}/resolve"
    head = api.head()

    responses = race(
        WRITERS, lambda i: api.post(path, tokens.member, {"evidence": f"整改报告第{i}版"})
    )

    assert statuses(responses) == [200] + [409] * (WRITERS - 1), [r.text for r in responses]
    for loser in (r for r in responses if r.status_code == 409):
        body = api.problem(loser, 409, loser.json()["type"].rsplit(":", 1)[-1])
        # Lost the race to save, or saw the winner's resolution: both name their rule.
        assert body["rule"] in ("OneWriterWinsPerVersion", "ProblemResolvedOnlyOnce"), body
    history = api.history(f"/problems/{org.problem}", tokens.auditor)
    assert [entry["type"] for entry in history] == ["ProblemFound", "ProblemResolved"]
    assert api.head() == head + 1


def test_racing_writes_without_if_match_lose_nothing(api: Api, org: Org, tokens: Tokens) -> None:
    """Without If-Match each version has exactly one writer; the others get 409, never a 500.

    Writers that happen to load after an earlier winner saved may win the next version, so the
    count of winners varies; what may not vary: winners == new events, one winner per version,
    and every loser a 409 concurrency conflict. Rounds repeat until a conflict was seen.
    """
    path = f"/measures/{org.measure}/progress"
    conflicts: list[dict[str, Any]] = []
    for round_ in range(5):
        before = api.history(f"/measures/{org.measure}", tokens.auditor)
        head = api.head()
        responses = race(
            WRITERS,
            lambda i, r=round_: api.post(
                path, tokens.member, {"percent": i, "note": f"round {r} writer {i}"}
            ),
        )
        assert set(statuses(responses)) <= {200, 409}, [r.text for r in responses]
        winners = [r.json() for r in responses if r.status_code == 200]
        after = api.history(f"/measures/{org.measure}", tokens.auditor)
        new = after[len(before) :]
        assert winners, "somebody must win"
        assert len(new) == len(winners)
        # PostgreSQL may skip the positions a losing insert drew; none is ever reused.
        assert api.head() == max(w["position"] for w in winners) >= head + len(winners)
        assert sorted(w["version"] for w in winners) == [e["version"] for e in new]
        assert sorted(w["position"] for w in winners) == [e["position"] for e in new]
        won_notes = {json.loads(r.request.content)["note"] for r in responses if r.is_success}
        assert {e["data"]["note"] for e in new} == won_notes
        for loser in (r for r in responses if r.status_code == 409):
            conflicts.append(
                api.problem(loser, 409, "concurrency-conflict", rule="OneWriterWinsPerVersion")
            )
        if conflicts:
            break
    assert conflicts, "no write ever raced another"
    assert all(c["current_version"] is not None for c in conflicts)


def test_racing_first_responsible_appointments_for_one_unit(
    api: Api, org: Org, tokens: Tokens
) -> None:
    """A first-responsible duty is saved together with its unit: two appointees cannot both win,
    and the loser leaves no duty behind."""
    candidates = [str(org.officer)]
    for name in ("黄磊", "方晴", "叶欣"):
        person = api.write("/people", tokens.admin, {"name": name, "unit_id": str(org.dept)})
        candidates.append(person["id"])
    head = api.head()

    responses = race(
        len(candidates),
        lambda i: api.post(
            "/duties",
            tokens.admin,
            {
                "person_id": candidates[i],
                "unit_id": str(org.dept),
                "tier": "first_responsible",
                "effective_from": "2026-01-01",
            },
        ),
    )

    assert statuses(responses) == [201] + [409] * (len(candidates) - 1), [r.text for r in responses]
    (winner,) = [r.json() for r in responses if r.status_code == 201]
    for loser in (r for r in responses if r.status_code == 409):
        body = loser.json()
        assert body["rule"] in ("OneWriterWinsPerVersion", "OneActiveFirstResponsiblePerUnit")
    assert api.head() == head + 2  # DutyAssigned + FirstResponsibleDesignated
    duties = api.get(
        "/duties", tokens.auditor, params={"unit": str(org.dept), "min_position": head + 2}
    ).json()["items"]
    assert [d["id"] for d in duties] == [winner["id"]]
    unit = api.state(f"/units/{org.dept}", tokens.auditor)
    assert unit["first_responsible"][0] == winner["id"]


def test_a_conflict_on_the_second_aggregate_names_that_aggregate(
    api: Api, org: Org, tokens: Tokens
) -> None:
    conflicts: list[tuple[str, dict[str, Any]]] = []
    for round_ in range(3):
        unit = api.write(
            "/units",
            tokens.admin,
            {"name": f"宣传教育科{round_}", "kind": "department", "parent_id": str(org.committee)},
        )["id"]
        people = [
            api.write("/people", tokens.admin, {"name": f"干部{round_}-{i}", "unit_id": unit})["id"]
            for i in range(WRITERS)
        ]
        responses = race(
            WRITERS,
            lambda i, unit=unit, people=people: api.post(
                "/duties",
                tokens.admin,
                {
                    "person_id": people[i],
                    "unit_id": unit,
                    "tier": "first_responsible",
                    "effective_from": "2026-01-01",
                },
            ),
        )
        conflicts += [
            (unit, r.json())
            for r in responses
            if r.status_code == 409 and r.json()["rule"] == "OneWriterWinsPerVersion"
        ]
        if conflicts:
            break
    assert conflicts, "no appointment ever raced another on the unit"
    for unit, body in conflicts:
        assert body["current_version"] is not None, body
        assert unit in body["detail"], body


# --- idempotency ------------------------------------------------------------------------------


def problem_body(org: Org, title: str = "林区界桩缺失") -> dict[str, Any]:
    return {
        "cycle_id": str(org.cycle),
        "unit_id": str(org.br_office),
        "title": title,
        "source": "sweep",
    }


def test_idempotency_key_retried_sequentially_writes_once(
    api: Api, org: Org, tokens: Tokens
) -> None:
    first = api.post("/problems", tokens.member, problem_body(org), Idempotency_Key="e2e-seq-1")
    assert first.status_code == 201, first.text
    assert "Idempotency-Replayed" not in first.headers
    head = api.head()

    for _ in range(3):
        retry = api.post("/problems", tokens.member, problem_body(org), Idempotency_Key="e2e-seq-1")
        assert retry.status_code == 201
        assert retry.headers["Idempotency-Replayed"] == "true"
        assert retry.json() == first.json()
        assert retry.headers["ETag"] == first.headers["ETag"]
        assert (
            retry.headers["Location"]
            == first.headers["Location"]
            == (f"/problems/{first.json()['id']}")
        )
    assert api.head() == head

    listed = api.get(
        "/problems",
        tokens.auditor,
        params={"unit": str(org.br_office), "min_position": head},
    ).json()["items"]
    assert [item["title"] for item in listed].count("林区界桩缺失") == 1

    # Keys belong to their token: another member using the same key makes its own write.
    colleague = api.post("/problems", tokens.leader, problem_body(org), Idempotency_Key="e2e-seq-1")
    assert colleague.status_code == 201 and "Idempotency-Replayed" not in colleague.headers
    assert colleague.json()["id"] != first.json()["id"]


def test_idempotency_key_of_a_refused_request_is_released(
    api: Api, org: Org, tokens: Tokens
) -> None:
    path = f"/problems/{org.problem}/resolve"
    assert api.post(path, tokens.member, {"evidence": "整改报告"}).status_code == 200
    head = api.head()
    for _ in range(2):
        refused = api.post(path, tokens.member, {"evidence": "再报"}, Idempotency_Key="e2e-rel")
        # Re-run and refused by the rule again: not replayed, not stuck "in progress".
        api.problem(refused, 409, "rule-violation", rule="ProblemResolvedOnlyOnce")
        assert "Idempotency-Replayed" not in refused.headers
    assert api.head() == head


def test_idempotency_key_raced_concurrently_writes_once(api: Api, org: Org, tokens: Tokens) -> None:
    path = f"/measures/{org.measure}/progress"
    head = api.head()

    responses = race(
        WRITERS,
        lambda i: api.post(
            path, tokens.member, {"percent": 55, "note": "同一请求"}, Idempotency_Key="e2e-race"
        ),
    )

    originals = [
        r for r in responses if r.status_code == 200 and "Idempotency-Replayed" not in r.headers
    ]
    replays = [r for r in responses if r.headers.get("Idempotency-Replayed") == "true"]
    in_progress = [r for r in responses if r.status_code == 409]
    assert len(originals) == 1, [(r.status_code, r.text) for r in responses]
    assert len(originals) + len(replays) + len(in_progress) == WRITERS
    for replay in replays:
        assert replay.status_code == 200 and replay.json() == originals[0].json()
    for busy in in_progress:
        api.problem(busy, 409, "idempotency-in-progress")
        assert busy.headers["Retry-After"] == "1"
    assert api.head() == head + 1
    history = api.history(f"/measures/{org.measure}", tokens.auditor)
    assert [e["data"].get("note") for e in history].count("同一请求") == 1

    settled = api.post(
        path, tokens.member, {"percent": 55, "note": "同一请求"}, Idempotency_Key="e2e-race"
    )
    assert settled.headers["Idempotency-Replayed"] == "true"
    assert settled.json() == originals[0].json()


def test_idempotency_survives_a_restart(
    store_settings: Settings, api: Api, org: Org, tokens: Tokens
) -> None:
    body = problem_body(org, "重启前记录的问题")
    first = api.post("/problems", tokens.member, body, Idempotency_Key="e2e-restart")
    assert first.status_code == 201, first.text
    head = api.head()
    api.client.__exit__(None, None, None)  # the first process shuts down

    restarted = build_runtime(store_settings)
    try:
        with open_client(store_settings, restarted) as client:
            again = Api(client)
            retry = again.post("/problems", tokens.member, body, Idempotency_Key="e2e-restart")
            assert retry.status_code == 201
            assert retry.headers["Idempotency-Replayed"] == "true"
            assert retry.json() == first.json()
            assert again.head() == head
            mismatch = again.post(
                "/problems",
                tokens.member,
                problem_body(org, "另一问题"),
                Idempotency_Key="e2e-restart",
            )
            again.problem(mismatch, 422, "idempotency-key-reused")
            assert again.head() == head
    finally:
        restarted.close()


def test_a_runtime_serves_a_second_app_after_the_first_stops(
    store_settings: Settings,
    api: Api,
    org: Org,
    tokens: Tokens,
    runtime: Runtime,
) -> None:
    """create_app(runtime=...) stops the runner on shutdown; the next app must restart it."""
    api.client.__exit__(None, None, None)
    with open_client(store_settings, runtime) as client:
        again = Api(client)
        written = again.write("/problems", tokens.member, problem_body(org, "二次启动后的问题"))
        listed = again.get(
            "/problems", tokens.auditor, params={"min_position": written["position"]}
        )
        assert listed.status_code == 200, listed.text
        assert written["id"] in [item["id"] for item in listed.json()["items"]]


def test_tokens_of_one_role_race_for_separate_aggregates(
    api: Api, org: Org, issue_token: Callable[..., Token]
) -> None:
    """Writes to different aggregates never conflict, however many run at once."""
    members = [issue_token(f"e2e-member-{i}", Role.MEMBER, org.br_office) for i in range(WRITERS)]
    head = api.head()
    responses = race(
        WRITERS,
        lambda i: api.post("/problems", members[i], problem_body(org, f"并发登记的问题{i}")),
    )
    assert statuses(responses) == [201] * WRITERS, [r.text for r in responses]
    positions = sorted(r.json()["position"] for r in responses)
    assert positions == list(range(head + 1, head + WRITERS + 1))
    listed = api.get(
        "/problems", members[0], params={"min_position": positions[-1], "limit": 500}
    ).json()
    assert len({item["id"] for item in listed["items"]} & {r.json()["id"] for r in responses}) == (
        WRITERS
    )
