"""Stage settlement (季度结算): settle a stage now, read it, verify it, reopen it.

The scheduler settles every stage after its cut-off; these endpoints let an admin do it at once
(the same idempotent command) and let anyone who reads scoreboards read what was settled.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from closedloop.api.deps import ADMIN_ONLY, PrincipalDep, RuntimeDep, ServiceDep, WriteDep
from closedloop.api.problems import ApiProblem
from closedloop.api.reads import plain
from closedloop.api.routers.audit import AUDIT_ROLES
from closedloop.api.schemas import (
    ReasonIn,
    SettlementCheckOut,
    SettlementOut,
    SettlementWritten,
    WriteResult,
)
from closedloop.domain.awards import Award
from closedloop.domain.cycles import Cycle, StageMustBelongToCycle
from closedloop.domain.errors import ConcurrencyConflict
from closedloop.domain.service import ClosedLoop
from closedloop.domain.settlement import Settlement, settlement_id
from closedloop.store.idempotency import StoredResponse

router = APIRouter(prefix="/cycles/{cycle_id}/stages/{stage}", tags=["settlement"])
log = logging.getLogger("closedloop.audit")

StageKey = Annotated[str, Path(min_length=1, max_length=20, description="e.g. Q1")]
Round = Annotated[
    int | None,
    Query(
        alias="round",
        ge=1,
        le=10_000,
        description="a round set aside by a reopening; default: the settlement in force",
    ),
]


@router.post(
    "/settlement",
    status_code=201,
    responses={
        201: {"model": SettlementWritten, "description": "Settled by this request"},
        200: {"model": SettlementWritten, "description": "Already settled: that settlement"},
    },
)
def settle(
    cycle_id: UUID, stage: StageKey, ctx: WriteDep, runtime: RuntimeDep, service: ServiceDep
) -> JSONResponse:
    """Settle the stage now (admin): fix every unit's scores and ranks from the history up to
    this moment, publish the ranking and issue the awards the policy's rules grant.

    Answers **201** with the settlement, or **200** with the settlement already in force
    (`created` says which): settling is idempotent, and of concurrent requests exactly one
    settles. A stage whose cut-off (midnight after its last day, in the server's time zone) has
    not passed answers **409** with rule `StageNotEnded` and the cut-off in `values`; nothing is
    written. `If-Match` names the cycle's version.
    """
    ctx.authorize(unit_id=None, roles=ADMIN_ONLY)

    def command(expected_version: int | None) -> StoredResponse:
        cycle = _cycle_with_stage(service, cycle_id, stage)
        if expected_version is not None and expected_version != cycle.version:
            raise ConcurrencyConflict(cycle.id, expected_version, cycle.version)
        zone = runtime.settings.zone
        outcome = service.settle_stage(cycle_id, stage=stage, now=datetime.now(zone), zone=zone)
        view = _settlement_view(service, service.get(Settlement, outcome.settlement_id))
        position = outcome.position or service.head_position()
        written = SettlementWritten(**view, created=outcome.created, position=position)
        body = written.model_dump(mode="json")
        location = f"/cycles/{cycle_id}/stages/{stage}/settlement"
        return StoredResponse(201 if outcome.created else 200, body, {"Location": location})

    return ctx.respond(command)


@router.get("/settlement", response_model=SettlementOut)
def get_settlement(
    cycle_id: UUID,
    stage: StageKey,
    service: ServiceDep,
    _: PrincipalDep,
    round_number: Round = None,
) -> dict[str, Any]:
    """The stage's settlement in force: every unit's components, weights, total, rank and notes,
    the positions it read and their digest, the policy it applied and its digest, the round, and
    the awards it issued. **404** while the stage is unsettled; `?round=N` reads a round that
    a reopening set aside."""
    return _settlement_view(service, _settlement(service, cycle_id, stage, round_number))


@router.get("/settlement/verification", response_model=SettlementCheckOut)
def verify(
    cycle_id: UUID,
    stage: StageKey,
    service: ServiceDep,
    principal: PrincipalDep,
    round_number: Round = None,
) -> dict[str, Any]:
    """Recompute the settlement from the history it read and the policy it recorded (admin,
    auditor, inspector): `matches` is true when every digest and figure is the same, else
    `differences` names each one that is not."""
    if principal.role not in AUDIT_ROLES:
        raise ApiProblem(
            403,
            "forbidden",
            "Not permitted",
            f"role {principal.role.value} may not verify settlements",
            role=principal.role.value,
        )
    settlement = _settlement(service, cycle_id, stage, round_number)
    check = service.verify_settlement(settlement.id)
    log.info(
        "settlement %s verified by %s (role %s): matches=%s",
        settlement.id,
        principal.actor,
        principal.role.value,
        check.matches,
    )
    return {
        "settlement_id": settlement.id,
        "cycle_id": cycle_id,
        "stage": settlement.stage,
        "round": settlement.round_number,
        "through_position": check.through_position,
        "matches": check.matches,
        "differences": check.differences,
    }


@router.post("/reopen", responses={200: {"model": WriteResult}})
def reopen(
    cycle_id: UUID, stage: StageKey, body: ReasonIn, ctx: WriteDep, service: ServiceDep
) -> JSONResponse:
    """Set the stage's settlement aside, with a reason (admin): its awards are revoked and the
    stage can be settled again as the next round. Answers the cycle's new version; a stage not
    settled answers **409** with rule `OnlySettledStagesReopen`."""
    ctx.authorize(unit_id=None, roles=ADMIN_ONLY)
    _cycle_with_stage(service, cycle_id, stage)
    return ctx.execute(
        lambda v: service.reopen_stage(
            cycle_id, stage=stage, reason=body.reason, expected_version=v
        )
    )


def _cycle_with_stage(service: ClosedLoop, cycle_id: UUID, stage: str) -> Cycle:
    """The cycle; 404 when it does not exist or has no such stage."""
    cycle = service.get(Cycle, cycle_id)
    try:
        cycle.stage(stage)
    except StageMustBelongToCycle as error:
        raise ApiProblem(
            404,
            "not-found",
            "Not found",
            f"cycle {cycle_id} has no stage {stage!r} (its stages: {', '.join(cycle.stage_keys)})",
            rule=error.rule,
        ) from None
    return cycle


def _settlement(
    service: ClosedLoop, cycle_id: UUID, stage: str, round_number: int | None
) -> Settlement:
    cycle = _cycle_with_stage(service, cycle_id, stage)
    if round_number is not None:
        return service.get(Settlement, settlement_id(cycle_id, stage, round_number))
    if not cycle.is_settled(stage):
        raise ApiProblem(
            404,
            "not-found",
            "Not settled",
            f"stage {stage} of cycle {cycle_id} is not settled "
            f"(round {cycle.settlement_round(stage)} is next)",
            rule="MustExist",
        )
    return service.get(Settlement, cycle.settlements[stage])


def _settlement_view(service: ClosedLoop, settlement: Settlement) -> dict[str, Any]:
    return {
        "id": str(settlement.id),
        "cycle_id": str(settlement.cycle_id),
        "stage": settlement.stage,
        "round": settlement.round_number,
        "version": settlement.version,
        "settled_at": settlement.created_on.isoformat(),
        "cutoff": settlement.cutoff.isoformat(),
        "inputs": {
            "from_position": 1,
            "through_position": settlement.through_position,
            "events_read": settlement.events_read,
            "digest": settlement.inputs_digest,
        },
        "policy": settlement.policy,
        "policy_digest": settlement.policy_digest,
        "results_digest": settlement.results_digest,
        "published": settlement.published,
        "reopened": settlement.reopened,
        "units": settlement.units,
        "awards": [_award_view(award) for award in service.settlement_awards(settlement.id)],
    }


def _award_view(award: Award) -> dict[str, Any]:
    return {
        "id": str(award.id),
        "rule": award.rule,
        "kind": award.kind.value,
        "unit_id": plain(award.unit_id),
        "points": plain(award.points),
        "basis": award.basis,
        "revoked": award.revoked,
    }
