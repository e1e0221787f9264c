"""/measures: confirm measures (确认措施) — adopted, progressed, completed, cancelled."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from closedloop.api.deps import LEADERS, LEADERS_AND_MEMBERS, ServiceDep, WriteDep
from closedloop.api.reads import add_read_routes
from closedloop.api.schemas import EvidenceIn, MeasureCreate, ProgressIn, ReasonIn, WriteResult
from closedloop.domain.measures import Measure

router = APIRouter(prefix="/measures", tags=["measures"])
WRITTEN = {"model": WriteResult}


def _lead(service: ServiceDep, measure_id: UUID) -> UUID:
    return service.get(Measure, measure_id).lead_unit_id


@router.post("", status_code=201, responses={201: WRITTEN})
def adopt(body: MeasureCreate, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Adopt a measure against problems and/or for a target, with deadline and contract roles."""
    ctx.authorize(unit_id=body.lead_unit_id, roles=LEADERS)
    return ctx.execute(
        lambda _: service.adopt_measure(
            cycle_id=body.cycle_id,
            title=body.title,
            deadline=body.deadline,
            lead_unit_id=body.lead_unit_id,
            responsible_unit_ids=body.responsible_unit_ids,
            responsible_leader_id=body.responsible_leader_id,
            problem_ids=body.problem_ids,
            target_id=body.target_id,
        ),
        status=201,
        location="/measures/{id}",
    )


@router.post("/{measure_id}/progress", responses={200: WRITTEN})
def report_progress(
    measure_id: UUID, body: ProgressIn, ctx: WriteDep, service: ServiceDep
) -> JSONResponse:
    """Report progress in percent."""
    ctx.authorize(unit_id=_lead(service, measure_id), roles=LEADERS_AND_MEMBERS)
    return ctx.execute(
        lambda v: service.report_measure_progress(
            measure_id, percent=body.percent, note=body.note, expected_version=v
        )
    )


@router.post("/{measure_id}/complete", responses={200: WRITTEN})
def complete(
    measure_id: UUID, body: EvidenceIn, ctx: WriteDep, service: ServiceDep
) -> JSONResponse:
    """Complete the measure, with evidence."""
    ctx.authorize(unit_id=_lead(service, measure_id), roles=LEADERS_AND_MEMBERS)
    return ctx.execute(
        lambda v: service.complete_measure(measure_id, evidence=body.evidence, expected_version=v)
    )


@router.post("/{measure_id}/cancel", responses={200: WRITTEN})
def cancel(measure_id: UUID, body: ReasonIn, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Cancel the measure, with a reason."""
    ctx.authorize(unit_id=_lead(service, measure_id), roles=LEADERS)
    return ctx.execute(
        lambda v: service.cancel_measure(measure_id, reason=body.reason, expected_version=v)
    )


add_read_routes(router, kind="measure", aggregate=Measure)
