"""/cycles: assessment years, their stages and their scoring policy."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from closedloop.api.deps import ADMIN_ONLY, PrincipalDep, RuntimeDep, ServiceDep, WriteDep
from closedloop.api.problems import ApiProblem
from closedloop.api.reads import add_read_routes
from closedloop.api.schemas import CycleCreate, PolicyOut, PolicyRevise, StageClose, WriteResult
from closedloop.domain.cycles import Cycle, Stage, StageMustBelongToCycle

router = APIRouter(prefix="/cycles", tags=["cycles"])
WRITTEN = {"model": WriteResult}


@router.post("", status_code=201, responses={201: WRITTEN})
def open_cycle(body: CycleCreate, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Open an assessment year; stages default to the four quarters, the scoring policy to the
    standing one (admin)."""
    ctx.authorize(unit_id=None, roles=ADMIN_ONLY)
    stages = [Stage(s.key, s.starts_on, s.ends_on) for s in body.stages] if body.stages else None
    policy = body.policy.to_domain() if body.policy else None
    return ctx.execute(
        lambda _: service.open_cycle(year=body.year, name=body.name, stages=stages, policy=policy),
        status=201,
        location="/cycles/{id}",
    )


@router.post("/{cycle_id}/close-stage", responses={200: WRITTEN})
def close_stage(
    cycle_id: UUID, body: StageClose, ctx: WriteDep, service: ServiceDep
) -> JSONResponse:
    """Close a stage: it accepts no more effect confirmations (admin)."""
    ctx.authorize(unit_id=None, roles=ADMIN_ONLY)
    return ctx.execute(
        lambda v: service.close_stage(
            cycle_id, stage=body.stage, reason=body.reason, expected_version=v
        )
    )


@router.get("/{cycle_id}/policy", response_model=PolicyOut)
def get_policy(
    cycle_id: UUID,
    runtime: RuntimeDep,
    _: PrincipalDep,
    response: Response,
    stage: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=20,
            description="stage key, e.g. Q1; default: the stage of today's date (the first "
            "stage before the cycle, the last after it)",
        ),
    ] = None,
) -> dict[str, Any]:
    """The scoring policy in force for one stage: every setting, its digest (as a settlement
    records it) and a description. The ETag is the cycle's version, for `If-Match` on a
    revision."""
    cycle = runtime.service.get(Cycle, cycle_id)
    key = stage or _current_stage(cycle, datetime.now(runtime.settings.zone).date())
    try:
        policy = cycle.policy_for(key)
    except StageMustBelongToCycle as error:
        raise ApiProblem(
            422,
            "invalid-field",
            "Invalid field",
            f"stage {key!r} is not a stage of cycle {cycle_id}",
            rule=error.rule,
            errors=[{"field": "query.stage", "rule": error.rule, "message": str(error)}],
        ) from None
    response.headers["ETag"] = f'"{cycle.version}"'
    return {
        "cycle_id": cycle.id,
        "stage": key,
        "from_stage": _set_from(cycle, key),
        "settled": cycle.is_settled(key),
        "policy": policy.to_dict(),
        "digest": policy.digest,
        "description": policy.describe(),
    }


@router.post("/{cycle_id}/policy", responses={200: WRITTEN})
def revise_policy(
    cycle_id: UUID, body: PolicyRevise, ctx: WriteDep, service: ServiceDep
) -> JSONResponse:
    """Set a new scoring policy from a stage onwards, with a reason (admin). Refused with rule
    `PolicyFrozenOnceSettled` when that stage or a later one is already settled."""
    ctx.authorize(unit_id=None, roles=ADMIN_ONLY)
    policy = body.policy.to_domain()
    return ctx.execute(
        lambda v: service.revise_policy(
            cycle_id,
            policy=policy,
            from_stage=body.from_stage,
            reason=body.reason,
            expected_version=v,
        )
    )


def _current_stage(cycle: Cycle, today: date) -> str:
    found = cycle.stage_on(today)
    if found is not None:
        return found.key
    return cycle.stages[0].key if today < cycle.starts_on else cycle.stages[-1].key


def _set_from(cycle: Cycle, key: str) -> str | None:
    """The stage from which the policy in force for ``key`` was set; None for the default."""
    index = cycle.stage_index(key)
    chosen = None
    for from_stage, _ in cycle.policies:
        if cycle.stage_index(from_stage) <= index:
            chosen = from_stage
    return chosen


add_read_routes(router, kind="cycle", aggregate=Cycle)
