"""/rectifications: ordered fixes (整改) tracked to verified completion."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from closedloop.api.deps import (
    INSPECTORS,
    LEADERS_AND_MEMBERS,
    ServiceDep,
    WriteDep,
)
from closedloop.api.reads import add_read_routes
from closedloop.api.schemas import (
    EvidenceIn,
    ReasonIn,
    RectificationCreate,
    VerifyIn,
    WriteResult,
)
from closedloop.domain.rectifications import Rectification

router = APIRouter(prefix="/rectifications", tags=["rectifications"])
WRITTEN = {"model": WriteResult}


@router.post("", status_code=201, responses={201: WRITTEN})
def order(body: RectificationCreate, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Order a rectification with a deadline (admin, or a discipline inspector for any unit)."""
    ctx.authorize(unit_id=None, roles=INSPECTORS)
    return ctx.execute(
        lambda _: service.order_rectification(
            cycle_id=body.cycle_id,
            unit_id=body.unit_id,
            requirement=body.requirement,
            deadline=body.deadline,
            problem_id=body.problem_id,
            target_id=body.target_id,
            meeting_id=body.meeting_id,
        ),
        status=201,
        location="/rectifications/{id}",
    )


@router.post("/{rectification_id}/complete", responses={200: WRITTEN})
def complete(
    rectification_id: UUID, body: EvidenceIn, ctx: WriteDep, service: ServiceDep
) -> JSONResponse:
    """The ordered unit reports the rectification complete, with evidence."""
    unit_id = service.get(Rectification, rectification_id).unit_id
    ctx.authorize(unit_id=unit_id, roles=LEADERS_AND_MEMBERS)
    return ctx.execute(
        lambda v: service.complete_rectification(
            rectification_id, evidence=body.evidence, expected_version=v
        )
    )


@router.post("/{rectification_id}/verify", responses={200: WRITTEN})
def verify(
    rectification_id: UUID, body: VerifyIn, ctx: WriteDep, service: ServiceDep
) -> JSONResponse:
    """Verify a completed rectification (admin or discipline inspector)."""
    ctx.authorize(unit_id=None, roles=INSPECTORS)
    return ctx.execute(
        lambda v: service.verify_rectification(
            rectification_id, comment=body.comment, expected_version=v
        )
    )


@router.post("/{rectification_id}/reject", responses={200: WRITTEN})
def reject(
    rectification_id: UUID, body: ReasonIn, ctx: WriteDep, service: ServiceDep
) -> JSONResponse:
    """Reject a completed rectification with a reason; it must be completed again (admin or
    discipline inspector)."""
    ctx.authorize(unit_id=None, roles=INSPECTORS)
    return ctx.execute(
        lambda v: service.reject_rectification(
            rectification_id, reason=body.reason, expected_version=v
        )
    )


add_read_routes(router, kind="rectification", aggregate=Rectification)
