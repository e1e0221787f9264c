"""/duties: confirm responsibilities (确认责任) — tiers of accountability held by people."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from closedloop.api.deps import LEADERS, ServiceDep, WriteDep
from closedloop.api.reads import add_read_routes
from closedloop.api.schemas import DutyCreate, RelieveIn, WriteResult
from closedloop.domain.duties import Duty

router = APIRouter(prefix="/duties", tags=["duties"])
WRITTEN = {"model": WriteResult}


@router.post("", status_code=201, responses={201: WRITTEN})
def assign(body: DutyCreate, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Assign a person a tier of responsibility for their unit, from a date."""
    ctx.authorize(unit_id=body.unit_id, roles=LEADERS)
    return ctx.execute(
        lambda _: service.assign_duty(
            person_id=body.person_id,
            unit_id=body.unit_id,
            tier=body.tier,
            effective_from=body.effective_from,
        ),
        status=201,
        location="/duties/{id}",
    )


@router.post("/{duty_id}/relieve", responses={200: WRITTEN})
def relieve(duty_id: UUID, body: RelieveIn, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """End a duty on a date, with a reason."""
    ctx.authorize(unit_id=service.get(Duty, duty_id).unit_id, roles=LEADERS)
    return ctx.execute(
        lambda v: service.relieve_duty(
            duty_id, effective_to=body.effective_to, reason=body.reason, expected_version=v
        )
    )


add_read_routes(router, kind="duty", aggregate=Duty)
