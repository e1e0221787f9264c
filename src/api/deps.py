"""Request-scoped dependencies: the runtime, the principal, and the write context."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from closedloop.api.problems import ApiProblem
from closedloop.bootstrap import Runtime
from closedloop.domain.access import Role
from closedloop.domain.context import acting_as
from closedloop.domain.service import ClosedLoop, CommandResult
from closedloop.domain.units import Unit
from closedloop.store.idempotency import StoredResponse

_bearer = HTTPBearer(auto_error=False, description="A token from `closedloop token create`.")
_ETAG = re.compile(r'^(?:W/)?"?(\d+)"?$')

LEADERS = frozenset({Role.LEADER})
LEADERS_AND_MEMBERS = frozenset({Role.LEADER, Role.MEMBER})
ADMIN_ONLY: frozenset[Role] = frozenset()
# Discipline inspectors (纪检) order rectifications anywhere in the organisation (DESIGN §7).
INSPECTORS = frozenset({Role.INSPECTOR})


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_service(runtime: RuntimeDep) -> ClosedLoop:
    return runtime.service


ServiceDep = Annotated[ClosedLoop, Depends(get_service)]


@dataclass(frozen=True)
class Principal:
    token_id: UUID
    name: str
    role: Role
    unit_id: UUID | None

    @property
    def actor(self) -> str:
        """Recorded on every event this principal causes: readable name, unique token id."""
        return f"{self.name}#{self.token_id}"


def get_principal(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise ApiProblem(
            401,
            "unauthenticated",
            "Authentication required",
            "send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = runtime.service.authenticate(credentials.credentials)
    if token is None:
        raise ApiProblem(
            401,
            "unauthenticated",
            "Invalid token",
            "the bearer token is unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return Principal(token.id, token.name, token.role, token.unit_id)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


@dataclass
class WriteContext:
    """Everything a write needs: who, which request, which version, which idempotency key."""

    runtime: Runtime
    principal: Principal
    correlation_id: str
    expected_version: int | None
    idempotency_key: str | None
    request_hash: str

    def authorize(self, *, unit_id: UUID | None, roles: Collection[Role]) -> None:
        """Admins may do anything; ``roles`` may act for ``unit_id`` within their scope."""
        role = self.principal.role
        if role is Role.ADMIN or (role is Role.INSPECTOR and role in roles):
            return
        if role not in roles or unit_id is None or self.principal.unit_id is None:
            raise self._forbidden(unit_id)
        if role is Role.MEMBER and unit_id != self.principal.unit_id:
            raise self._forbidden(unit_id)
        if role is Role.LEADER and self.principal.unit_id not in self._lineage(unit_id):
            raise self._forbidden(unit_id)

    def _lineage(self, unit_id: UUID) -> list[UUID]:
        service = self.runtime.service
        lineage: list[UUID] = []
        current: UUID | None = unit_id
        while current is not None and current not in lineage:
            lineage.append(current)
            current = service.get(Unit, current).parent_id
        return lineage

    def _forbidden(self, unit_id: UUID | None) -> ApiProblem:
        scope = f"unit {unit_id}" if unit_id else "this resource"
        return ApiProblem(
            403,
            "forbidden",
            "Not permitted",
            f"role {self.principal.role.value} may not do this for {scope}",
            role=self.principal.role.value,
        )

    def execute(
        self,
        command: Callable[[int | None], CommandResult],
        *,
        status: int = 200,
        location: str | None = None,
    ) -> JSONResponse:
        """Run ``command`` once per idempotency key, as the principal; answer with its result."""

        def answer(expected_version: int | None) -> StoredResponse:
            result = command(expected_version)
            body = {"id": str(result.id), "version": result.version, "position": result.position}
            headers = {"ETag": f'"{result.version}"'}
            if location:
                headers["Location"] = location.format(id=result.id)
            return StoredResponse(status, body, headers)

        return self.respond(answer)

    def respond(self, command: Callable[[int | None], StoredResponse]) -> JSONResponse:
        """Like :meth:`execute`, for writes that answer with more than id, version and position:
        ``command`` returns the whole answer, which an Idempotency-Key replay repeats."""
        key = self.idempotency_key
        records = self.runtime.idempotency
        if key is not None:
            claim = records.claim(str(self.principal.token_id), key, self.request_hash)
            if claim.outcome == "replay" and claim.response is not None:
                return JSONResponse(
                    claim.response.body,
                    status_code=claim.response.status,
                    headers={**claim.response.headers, "Idempotency-Replayed": "true"},
                )
            if claim.outcome == "mismatch":
                raise ApiProblem(
                    422,
                    "idempotency-key-reused",
                    "Idempotency key reused",
                    "this Idempotency-Key was used with a different request body",
                    errors=[
                        {
                            "field": "header.Idempotency-Key",
                            "rule": "same key, same body",
                            "message": "key reused with a different body",
                        }
                    ],
                )
            if claim.outcome == "in_progress":
                raise ApiProblem(
                    409,
                    "idempotency-in-progress",
                    "Request in progress",
                    "a request with this Idempotency-Key has not finished",
                    headers={"Retry-After": "1"},
                )
        try:
            with acting_as(self.principal.actor, self.correlation_id):
                answer = command(self.expected_version)
        except BaseException:
            if key is not None:
                records.release(str(self.principal.token_id), key)
            raise
        if key is not None:
            records.complete(str(self.principal.token_id), key, answer)
        return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


async def get_write_context(
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    if_match: Annotated[str | None, Header(description='Expected version, e.g. "3"')] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            description="Retrying with the same key returns the first result",
        ),
    ] = None,
) -> WriteContext:
    # Auditors only read. Inspectors only read too, except where a route names them
    # (``authorize(roles=INSPECTORS)``: ordering rectifications).
    if principal.role is Role.AUDITOR:
        raise ApiProblem(
            403,
            "forbidden",
            "Not permitted",
            f"role {principal.role.value} reads but does not write",
            role=principal.role.value,
        )
    body = await request.body()
    return WriteContext(
        runtime=runtime,
        principal=principal,
        correlation_id=request.state.correlation_id,
        expected_version=_parse_if_match(if_match),
        idempotency_key=idempotency_key,
        request_hash=hashlib.sha256(request.url.path.encode() + b"\n" + body).hexdigest(),
    )


def _parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    match = _ETAG.match(value.strip())
    if match is None:
        raise ApiProblem(
            422,
            "invalid-field",
            "Invalid field",
            'If-Match must be a version ETag such as "3"',
            errors=[
                {
                    "field": "header.If-Match",
                    "rule": "version etag",
                    "message": 'expected "<version>"',
                }
            ],
        )
    return int(match.group(1))


WriteDep = Annotated[WriteContext, Depends(get_write_context)]


def correlation_id_for(request: Request) -> str:
    supplied = request.headers.get("x-request-id", "").strip()
    return supplied[:200] if supplied else uuid.uuid4().hex
