"""/problems: confirm problems (确认问题) — found, dispatched, escalated, resolved, reopened."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from closedloop.api.deps import LEADERS, LEADERS_AND_MEMBERS, ServiceDep, WriteDep
from closedloop.api.reads import add_read_routes
from closedloop.api.schemas import (
    DispatchIn,
    EscalateIn,
    ProblemCreate,
    ReasonIn,
    ResolveIn,
    WriteResult,
)
from closedloop.domain.problems import Problem

router = APIRouter(prefix="/problems", tags=["problems"])
WRITTEN = {"model": WriteResult}


@router.post("", status_code=201, responses={201: WRITTEN})
def find_problem(body: ProblemCreate, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Record a problem found by sweep (地毯式查找), inspection, meeting or self-check."""
    ctx.authorize(unit_id=body.unit_id, roles=LEADERS_AND_MEMBERS)
    return ctx.execute(
        lambda _: service.find_problem(
            cycle_id=body.cycle_id,
            unit_id=body.unit_id,
            title=body.title,
            source=body.source,
            severity=body.severity,
            shared=body.shared,
            description=body.description,
            target_id=body.target_id,
            found_at=body.found_at,
        ),
        status=201,
        location="/problems/{id}",
    )


@router.post("/{problem_id}/dispatch", responses={200: WRITTEN})
def dispatch(
    problem_id: UUID, body: DispatchIn, ctx: WriteDep, service: ServiceDep
) -> JSONResponse:
    """Dispatch a requirement (下达要求) to a grassroots unit or branch, with a deadline."""
    ctx.authorize(unit_id=service.get(Problem, problem_id).unit_id, roles=LEADERS)
    return ctx.execute(
        lambda v: service.dispatch_problem(
            problem_id,
            to_unit_id=body.to_unit_id,
            requirement=body.requirement,
            deadline=body.deadline,
            expected_version=v,
        )
    )


@router.post("/{problem_id}/escalate", responses={200: WRITTEN})
def escalate(
    problem_id: UUID, body: EscalateIn, ctx: WriteDep, service: ServiceDep
) -> JSONResponse:
    """Escalate a prominent or shared problem to the leader in charge (分管领导)."""
    ctx.authorize(unit_id=service.get(Problem, problem_id).unit_id, roles=LEADERS)
    return ctx.execute(
        lambda v: service.escalate_problem(
            problem_id, leader_id=body.leader_id, reason=body.reason, expected_version=v
        )
    )


@router.post("/{problem_id}/resolve", responses={200: WRITTEN})
def resolve(problem_id: UUID, body: ResolveIn, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Resolve the problem with evidence (by its unit, or the unit it was dispatched to)."""
    problem = service.get(Problem, problem_id)
    ctx.authorize(unit_id=problem.dispatched_to or problem.unit_id, roles=LEADERS_AND_MEMBERS)
    return ctx.execute(
        lambda v: service.resolve_problem(
            problem_id, evidence=body.evidence, resolved_at=body.resolved_at, expected_version=v
        )
    )


@router.post("/{problem_id}/reopen", responses={200: WRITTEN})
def reopen(problem_id: UUID, body: ReasonIn, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Reopen a resolved problem, with a reason."""
    ctx.authorize(unit_id=service.get(Problem, problem_id).unit_id, roles=LEADERS)
    return ctx.execute(
        lambda v: service.reopen_problem(problem_id, reason=body.reason, expected_version=v)
    )


add_read_routes(router, kind="problem", aggregate=Problem)
