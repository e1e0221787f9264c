"""/cycles: assessment years and their stages."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from closedloop.api.deps import ADMIN_ONLY, ServiceDep, WriteDep
from closedloop.api.reads import add_read_routes
from closedloop.api.schemas import CycleCreate, StageClose, WriteResult
from closedloop.domain.cycles import Cycle, Stage

router = APIRouter(prefix="/cycles", tags=["cycles"])
WRITTEN = {"model": WriteResult}


@router.post("", status_code=201, responses={201: WRITTEN})
def open_cycle(body: CycleCreate, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Open an assessment year; stages default to the four quarters (admin)."""
    ctx.authorize(unit_id=None, roles=ADMIN_ONLY)
    stages = [Stage(s.key, s.starts_on, s.ends_on) for s in body.stages] if body.stages else None
    return ctx.execute(
        lambda _: service.open_cycle(year=body.year, name=body.name, stages=stages),
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


add_read_routes(router, kind="cycle", aggregate=Cycle)
