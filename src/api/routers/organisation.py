"""/units and /people: the organisation tree and its members."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from closedloop.api.deps import ADMIN_ONLY, LEADERS, ServiceDep, WriteDep
from closedloop.api.reads import add_read_routes
from closedloop.api.schemas import PersonCreate, PersonTransfer, UnitCreate, UnitMove, WriteResult
from closedloop.domain.people import Person
from closedloop.domain.units import Unit

units = APIRouter(prefix="/units", tags=["units"])
people = APIRouter(prefix="/people", tags=["people"])
WRITTEN = {"model": WriteResult}


@units.post("", status_code=201, responses={201: WRITTEN})
def register_unit(body: UnitCreate, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Register a unit under its parent (leaders may add units inside their own subtree)."""
    ctx.authorize(unit_id=body.parent_id, roles=LEADERS)
    return ctx.execute(
        lambda _: service.register_unit(name=body.name, kind=body.kind, parent_id=body.parent_id),
        status=201,
        location="/units/{id}",
    )


@units.post("/{unit_id}/move", responses={200: WRITTEN})
def move_unit(unit_id: UUID, body: UnitMove, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Move a unit under another parent; the tree never gets a cycle (admin)."""
    ctx.authorize(unit_id=unit_id, roles=ADMIN_ONLY)
    return ctx.execute(
        lambda v: service.move_unit(
            unit_id, parent_id=body.parent_id, reason=body.reason, expected_version=v
        )
    )


@people.post("", status_code=201, responses={201: WRITTEN})
def register_person(body: PersonCreate, ctx: WriteDep, service: ServiceDep) -> JSONResponse:
    """Register a Party member or cadre in a unit."""
    ctx.authorize(unit_id=body.unit_id, roles=LEADERS)
    return ctx.execute(
        lambda _: service.register_person(name=body.name, unit_id=body.unit_id, title=body.title),
        status=201,
        location="/people/{id}",
    )


@people.post("/{person_id}/transfer", responses={200: WRITTEN})
def transfer_person(
    person_id: UUID, body: PersonTransfer, ctx: WriteDep, service: ServiceDep
) -> JSONResponse:
    """Transfer a person to another unit, with a reason (admin)."""
    ctx.authorize(unit_id=body.unit_id, roles=ADMIN_ONLY)
    return ctx.execute(
        lambda v: service.transfer_person(
            person_id, unit_id=body.unit_id, reason=body.reason, expected_version=v
        )
    )


add_read_routes(units, kind="unit", aggregate=Unit)
add_read_routes(people, kind="person", aggregate=Person)
