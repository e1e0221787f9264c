"""End-to-end fixtures: the real app, on each store, driven through ``TestClient``.

Every test here takes ``store_settings`` (through ``runtime``), so it runs once on a temporary
SQLite file and once on a fresh PostgreSQL schema. The runtime is built and closed by the test,
not by the app: the app's lifespan only starts and stops the projection runner, which lets a test
open a second app (a restart) on the same store.

Tokens cannot be issued over HTTP, so they are issued through the command service, as the
``closedloop token create`` command does, inside ``acting_as("test-setup")``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient

from closedloop.api.app import create_app
from closedloop.bootstrap import Runtime, build_runtime
from closedloop.domain.access import Role
from closedloop.domain.context import acting_as
from closedloop.domain.duties import DutyTier
from closedloop.domain.problems import ProblemSource, Severity
from closedloop.domain.units import UnitKind
from closedloop.settings import Settings

BEIJING = timezone(timedelta(hours=8))
SETUP_ACTOR = "test-setup"
PROBLEM_JSON = "application/problem+json"
# What a leaked traceback or exception repr would look like in a response body.
STACK_TRACE_MARKERS = ("Traceback", 'File "', "site-packages", '.py", line', "Error(")


@dataclass(frozen=True)
class Token:
    id: UUID
    name: str
    role: Role
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


@dataclass(frozen=True)
class Org:
    """A small organisation recorded through the service, for the error and race tests.

    committee ─┬─ gb_organs (leader token's unit) ─── br_office (member token's unit)
               ├─ gb_protection ─── br_fire          (outside the leader's subtree)
               ├─ dept                                (组织人事科)
               └─ farm                                (grassroots, 邓志强 first responsible)
    """

    committee: UUID
    gb_organs: UUID
    br_office: UUID
    gb_protection: UUID
    br_fire: UUID
    dept: UUID
    farm: UUID
    secretary: UUID  # committee
    gb_secretary: UUID  # gb_organs
    clerk: UUID  # br_office
    fire_clerk: UUID  # br_fire
    officer: UUID  # dept
    farm_head: UUID  # farm, first responsible
    ranger: UUID  # farm
    cycle: UUID
    problem: UUID  # br_office, open
    measure: UUID  # led by br_office


@pytest.fixture
def runtime(store_settings: Settings) -> Iterator[Runtime]:
    built = build_runtime(store_settings)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def issue_token(runtime: Runtime) -> Callable[..., Token]:
    """Issue a bearer token the way ``closedloop token create`` does; returns its secret."""

    def issue(name: str, role: Role, unit_id: UUID | None = None) -> Token:
        with acting_as(SETUP_ACTOR):
            result, secret = runtime.service.issue_token(name=name, role=role, unit_id=unit_id)
        return Token(result.id, name, role, secret)

    return issue


@pytest.fixture
def admin(issue_token: Callable[..., Token]) -> Token:
    return issue_token("e2e-admin", Role.ADMIN)


@pytest.fixture
def org(runtime: Runtime) -> Org:
    service = runtime.service
    with acting_as(SETUP_ACTOR):
        committee = service.register_unit(name="中共某市林业局委员会", kind=UnitKind.COMMITTEE).id
        gb_organs = service.register_unit(
            name="机关党总支", kind=UnitKind.GENERAL_BRANCH, parent_id=committee
        ).id
        br_office = service.register_unit(
            name="办公室党支部", kind=UnitKind.BRANCH, parent_id=gb_organs
        ).id
        gb_protection = service.register_unit(
            name="森林资源保护党总支", kind=UnitKind.GENERAL_BRANCH, parent_id=committee
        ).id
        br_fire = service.register_unit(
            name="森林防火党支部", kind=UnitKind.BRANCH, parent_id=gb_protection
        ).id
        dept = service.register_unit(
            name="组织人事科", kind=UnitKind.DEPARTMENT, parent_id=committee
        ).id
        farm = service.register_unit(
            name="北山国有林场", kind=UnitKind.GRASSROOTS, parent_id=committee
        ).id

        def person(name: str, unit: UUID, title: str) -> UUID:
            return service.register_person(name=name, unit_id=unit, title=title).id

        secretary = person("张建国", committee, "党委书记、局长")
        gb_secretary = person("刘洋", gb_organs, "机关党总支书记")
        clerk = person("吴静", br_office, "支部书记")
        fire_clerk = person("郭鹏", br_fire, "支部书记")
        officer = person("朱慧", dept, "组织人事科科长")
        farm_head = person("邓志强", farm, "场长")
        ranger = person("魏大海", farm, "护林员")
        service.assign_duty(
            person_id=farm_head,
            unit_id=farm,
            tier=DutyTier.FIRST_RESPONSIBLE,
            effective_from=date(2026, 1, 1),
        )
        cycle = service.open_cycle(year=2026, name="2026年度党建工作考核").id
        problem = service.find_problem(
            cycle_id=cycle,
            unit_id=br_office,
            title="公文流转记录不全",
            source=ProblemSource.SWEEP,
            severity=Severity.PROMINENT,
            found_at=datetime(2026, 2, 10, 9, tzinfo=BEIJING),
        ).id
        measure = service.adopt_measure(
            cycle_id=cycle,
            title="建立公文流转台账",
            deadline=date(2026, 6, 30),
            lead_unit_id=br_office,
            responsible_unit_ids=[br_office],
            responsible_leader_id=clerk,
            problem_ids=[problem],
        ).id
    return Org(
        committee=committee,
        gb_organs=gb_organs,
        br_office=br_office,
        gb_protection=gb_protection,
        br_fire=br_fire,
        dept=dept,
        farm=farm,
        secretary=secretary,
        gb_secretary=gb_secretary,
        clerk=clerk,
        fire_clerk=fire_clerk,
        officer=officer,
        farm_head=farm_head,
        ranger=ranger,
        cycle=cycle,
        problem=problem,
        measure=measure,
    )


@dataclass(frozen=True)
class Tokens:
    admin: Token
    leader: Token  # leader of gb_organs (and so of br_office)
    member: Token  # member of br_office
    auditor: Token
    inspector: Token


@pytest.fixture
def tokens(org: Org, admin: Token, issue_token: Callable[..., Token]) -> Tokens:
    return Tokens(
        admin=admin,
        leader=issue_token("e2e-leader", Role.LEADER, org.gb_organs),
        member=issue_token("e2e-member", Role.MEMBER, org.br_office),
        auditor=issue_token("e2e-auditor", Role.AUDITOR),
        inspector=issue_token("e2e-inspector", Role.INSPECTOR),
    )


def open_client(settings: Settings, runtime: Runtime) -> TestClient:
    """A client on a new app over ``runtime``; 500s come back as responses, not exceptions."""
    return TestClient(create_app(settings, runtime=runtime), raise_server_exceptions=False)


@pytest.fixture
def client(store_settings: Settings, runtime: Runtime) -> Iterator[TestClient]:
    with open_client(store_settings, runtime) as opened:
        yield opened


class Api:
    """Small helpers over the client: auth headers, the head position, problem checks."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    @staticmethod
    def headers(token: Token | None = None, **extra: str) -> dict[str, str]:
        """Authorization for ``token`` plus extra headers (``If_Match`` → ``If-Match``)."""
        result = dict(token.headers) if token else {}
        result.update({name.replace("_", "-"): value for name, value in extra.items()})
        return result

    def get(self, path: str, token: Token | None, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, headers=self.headers(token), **kwargs)

    def post(
        self, path: str, token: Token | None, body: Any = None, **headers: str
    ) -> httpx.Response:
        return self.client.post(path, json=body, headers=self.headers(token, **headers))

    def write(self, path: str, token: Token, body: Any, **headers: str) -> dict[str, Any]:
        """POST that must succeed; returns the write result (id, version, position)."""
        response = self.post(path, token, body, **headers)
        assert response.status_code in (200, 201), (path, response.status_code, response.text)
        result: dict[str, Any] = response.json()
        assert set(result) == {"id", "version", "position"}
        assert response.headers["ETag"] == f'"{result["version"]}"'
        return result

    def state(self, path: str, token: Token, **params: Any) -> dict[str, Any]:
        response = self.client.get(path, headers=self.headers(token), params=params)
        assert response.status_code == 200, (path, response.status_code, response.text)
        body: dict[str, Any] = response.json()
        return body

    def history(self, path: str, token: Token) -> list[dict[str, Any]]:
        response = self.get(f"{path}/history", token)
        assert response.status_code == 200, (path, response.status_code, response.text)
        entries: list[dict[str, Any]] = response.json()
        return entries

    def head(self) -> int:
        """The event store's head position, from the unauthenticated health check."""
        response = self.client.get("/health")
        assert response.status_code == 200, response.text
        head: int = response.json()["head_position"]
        return head

    @staticmethod
    def problem(
        response: httpx.Response,
        status: int,
        type_: str,
        *,
        rule: str | None = None,
        field: str | None = None,
    ) -> dict[str, Any]:
        """Assert an RFC 9457 problem body of ``status`` and ``type_``; return the body."""
        assert response.status_code == status, (response.status_code, response.text)
        assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
        body: dict[str, Any] = response.json()
        assert body["type"] == f"urn:closedloop:problem:{type_}", body
        assert body["status"] == status
        assert isinstance(body["title"], str) and body["title"].strip()
        assert isinstance(body["detail"], str) and body["detail"].strip()
        assert body["instance"] == response.request.url.path
        assert body["correlation_id"] == response.headers["X-Request-ID"]
        if rule is not None:
            assert body["rule"] == rule, body
        if field is not None:
            fields = [error["field"] for error in body["errors"]]
            assert field in fields, body
            assert all(error["rule"] and error["message"] for error in body["errors"]), body
        text = json.dumps(body, ensure_ascii=False)
        for marker in STACK_TRACE_MARKERS:
            assert marker not in text, (marker, body)
        return body


@pytest.fixture
def api(client: TestClient) -> Api:
    return Api(client)
