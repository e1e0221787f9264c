"""/meetings: quarterly meetings (季度例会) — reports, on-the-spot scores, review comments."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from closedloop.api.deps import ADMIN_ONLY, LEADERS, LEADERS_AND_MEMBERS, ServiceDep, WriteDep
from closedloop.api.reads import add_read_routes
from closedloop.api.schemas import MeetingCreate, ReportIn, ReviewIn, ScoreIn, WriteResult
from closedloop.domain.meetings import Meeting
from closedloop.domain.people import Person

router = APIRouter(prefix="/meetings", tags=["meetings"])
WRITTEN = {"model": WriteResult}


@router.post("", status_code=201, responses={201: WRITTEN})
def convene(body: MeetingCreate, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Convene a stage's meeting with its attendees and score scale (admin)."""
    ctx.authorize(unit_id=None, roles=ADMIN_ONLY)
    return ctx.execute(
        lambda _: service.convene_meeting(
            cycle_id=body.cycle_id,
            stage=body.stage,
            title=body.title,
            held_on=body.held_on,
            attendee_ids=body.attendee_ids,
            scale_min=body.scale_min,
            scale_max=body.scale_max,
        ),
        status=201,
        location="/meetings/{id}",
    )


@router.post("/{meeting_id}/reports", responses={200: WRITTEN})
def deliver_report(
    meeting_id: UUID, body: ReportIn, ctx: WriteDep, service: ServiceDep
) -> JSONResponse:
    """A unit's first responsible person delivers its report (述职)."""
    ctx.authorize(unit_id=body.unit_id, roles=LEADERS_AND_MEMBERS)
    return ctx.execute(
        lambda v: service.deliver_report(
            meeting_id,
            unit_id=body.unit_id,
            reporter_id=body.reporter_id,
            summary=body.summary,
            expected_version=v,
        )
    )


@router.post("/{meeting_id}/scores", responses={200: WRITTEN})
def cast_score(meeting_id: UUID, body: ScoreIn, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """An attendee scores a delivered report on the spot (当场打分); never their own unit."""
    ctx.authorize(unit_id=service.get(Person, body.rater_id).unit_id, roles=LEADERS_AND_MEMBERS)
    return ctx.execute(
        lambda v: service.cast_score(
            meeting_id,
            rater_id=body.rater_id,
            unit_id=body.unit_id,
            score=body.score,
            reason=body.reason,
            expected_version=v,
        )
    )


@router.post("/{meeting_id}/reviews", responses={200: WRITTEN})
def comment_review(
    meeting_id: UUID, body: ReviewIn, ctx: WriteDep, service: ServiceDep
) -> JSONResponse:
    """A reviewer comments on a delivered report (点评)."""
    ctx.authorize(unit_id=service.get(Person, body.reviewer_id).unit_id, roles=LEADERS)
    return ctx.execute(
        lambda v: service.comment_review(
            meeting_id,
            reviewer_id=body.reviewer_id,
            unit_id=body.unit_id,
            comment=body.comment,
            expected_version=v,
        )
    )


add_read_routes(router, kind="meeting", aggregate=Meeting)
