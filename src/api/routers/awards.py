"""/awards: rewards and penalties (兑现奖惩), revocable only with a reason."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from closedloop.api.deps import ADMIN_ONLY, ServiceDep, WriteDep
from closedloop.api.reads import add_read_routes
from closedloop.api.schemas import AwardCreate, ReasonIn, WriteResult
from closedloop.domain.awards import Award

router = APIRouter(prefix="/awards", tags=["awards"])
WRITTEN = {"model": WriteResult}


@router.post("", status_code=201, responses={201: WRITTEN})
def issue(body: AwardCreate, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Issue a reward or penalty to one unit or person, with its basis (admin)."""
    ctx.authorize(unit_id=None, roles=ADMIN_ONLY)
    return ctx.execute(
        lambda _: service.issue_award(
            cycle_id=body.cycle_id,
            kind=body.kind,
            basis=body.basis,
            unit_id=body.unit_id,
            person_id=body.person_id,
            stage=body.stage,
            points=body.points,
            rule=body.rule,
        ),
        status=201,
        location="/awards/{id}",
    )


@router.post("/{award_id}/revoke", responses={200: WRITTEN})
def revoke(award_id: UUID, body: ReasonIn, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Revoke an award; the reason is recorded and the award stays in history (admin)."""
    ctx.authorize(unit_id=None, roles=ADMIN_ONLY)
    return ctx.execute(
        lambda v: service.revoke_award(award_id, reason=body.reason, expected_version=v)
    )


add_read_routes(router, kind="award", aggregate=Award)
