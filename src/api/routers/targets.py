"""/targets: confirm targets (确认目标), contracts (包抓) and effects (确认效果)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from closedloop.api.deps import ADMIN_ONLY, LEADERS, LEADERS_AND_MEMBERS, ServiceDep, WriteDep
from closedloop.api.problems import ApiProblem
from closedloop.api.reads import add_read_routes
from closedloop.api.schemas import (
    ContractIn,
    EffectIn,
    LinkIn,
    MilestonesIn,
    ReasonIn,
    TargetCreate,
    TargetRevise,
    WriteResult,
)
from closedloop.domain.targets import Target, TargetScope

router = APIRouter(prefix="/targets", tags=["targets"])
WRITTEN = {"model": WriteResult}


def _owner(service: ServiceDep, target_id: UUID) -> UUID | None:
    """A unit target is its unit's to change; a common target is the committee's (admin)."""
    return service.get(Target, target_id).owner_unit_id


@router.post("", status_code=201, responses={201: WRITTEN})
def set_target(body: TargetCreate, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Set a common target (admin; `applies_to`) or a unit target (`unit_id`)."""
    indicator = body.indicator.to_domain()
    if body.scope is TargetScope.COMMON:
        ctx.authorize(unit_id=None, roles=ADMIN_ONLY)
        return ctx.execute(
            lambda _: service.set_common_target(
                cycle_id=body.cycle_id,
                title=body.title,
                indicator=indicator,
                points=body.points,
                applies_to=body.applies_to,
            ),
            status=201,
            location="/targets/{id}",
        )
    if body.unit_id is None:
        raise ApiProblem(
            422,
            "invalid-field",
            "Invalid field",
            "a unit target needs unit_id",
            errors=[
                {
                    "field": "body.unit_id",
                    "rule": "required for scope=unit",
                    "message": "a unit target needs unit_id",
                }
            ],
        )
    unit_id = body.unit_id
    ctx.authorize(unit_id=unit_id, roles=LEADERS)
    return ctx.execute(
        lambda _: service.set_unit_target(
            cycle_id=body.cycle_id,
            unit_id=unit_id,
            title=body.title,
            indicator=indicator,
            points=body.points,
            contributes_to=body.contributes_to,
        ),
        status=201,
        location="/targets/{id}",
    )


@router.post("/{target_id}/revise", responses={200: WRITTEN})
def revise(target_id: UUID, body: TargetRevise, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Revise title, indicator or points, with a reason."""
    ctx.authorize(unit_id=_owner(service, target_id), roles=LEADERS)
    indicator = body.indicator.to_domain() if body.indicator else None
    return ctx.execute(
        lambda v: service.revise_target(
            target_id,
            reason=body.reason,
            title=body.title,
            indicator=indicator,
            points=body.points,
            expected_version=v,
        )
    )


@router.post("/{target_id}/milestones", responses={200: WRITTEN})
def set_milestones(
    target_id: UUID, body: MilestonesIn, ctx: WriteDep, service: ServiceDep
) -> JSONResponse:
    """Set per-stage milestones (阶段性目标); replacing them needs a reason."""
    ctx.authorize(unit_id=_owner(service, target_id), roles=LEADERS)
    return ctx.execute(
        lambda v: service.set_milestones(
            target_id, milestones=body.milestones, reason=body.reason, expected_version=v
        )
    )


@router.post("/{target_id}/contract", responses={200: WRITTEN})
def contract(target_id: UUID, body: ContractIn, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Record who carries the target: lead unit, responsible units, responsible leader."""
    ctx.authorize(unit_id=_owner(service, target_id), roles=LEADERS)
    return ctx.execute(
        lambda v: service.contract_target(
            target_id,
            lead_unit_id=body.lead_unit_id,
            responsible_unit_ids=body.responsible_unit_ids,
            responsible_leader_id=body.responsible_leader_id,
            reason=body.reason,
            expected_version=v,
        )
    )


@router.post("/{target_id}/links", responses={200: WRITTEN})
def link(target_id: UUID, body: LinkIn, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Link an administrative goal and a Party goal (联动)."""
    ctx.authorize(unit_id=_owner(service, target_id), roles=LEADERS)
    return ctx.execute(
        lambda v: service.link_targets(
            target_id, linked_target_id=body.linked_target_id, expected_version=v
        )
    )


@router.post("/{target_id}/withdraw", responses={200: WRITTEN})
def withdraw(target_id: UUID, body: ReasonIn, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Withdraw the target, with a reason; it takes no more actions."""
    ctx.authorize(unit_id=_owner(service, target_id), roles=LEADERS)
    return ctx.execute(
        lambda v: service.withdraw_target(target_id, reason=body.reason, expected_version=v)
    )


@router.post("/{target_id}/effects", responses={200: WRITTEN})
def confirm_effect(
    target_id: UUID, body: EffectIn, ctx: WriteDep, service: ServiceDep
) -> JSONResponse:
    """Confirm a stage result for one unit, by self-assessment or inspection, with evidence."""
    ctx.authorize(unit_id=body.unit_id, roles=LEADERS_AND_MEMBERS)
    return ctx.execute(
        lambda v: service.confirm_effect(
            target_id,
            stage=body.stage,
            method=body.method,
            unit_id=body.unit_id,
            result=body.result,
            evidence=body.evidence,
            confirmed_at=body.confirmed_at,
            reason=body.reason,
            expected_version=v,
        )
    )


add_read_routes(router, kind="target", aggregate=Target)
