"""Read endpoints of the responsibility matrix read model: who carries each target, who holds
which duty — as of a date."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from closedloop.api.deps import PrincipalDep, RuntimeDep
from closedloop.api.reads import wait_for
from closedloop.domain.errors import NotFound
from closedloop.projections.responsibility import (
    ResponsibilityMatrix,
    person_duties,
    responsibility_matrix,
    today,
)

router = APIRouter(tags=["responsibility-matrix"])

AsOf = Annotated[
    date | None,
    Query(description="the day to answer for (YYYY-MM-DD); default today"),
]
MinPosition = Annotated[
    int | None, Query(ge=0, description="wait until the read model has reached this position")
]


@router.get("/responsibility-matrix", summary="Targets, contracts and duty holders, as of a date")
def matrix(
    runtime: RuntimeDep,
    _: PrincipalDep,
    cycle: Annotated[UUID, Query(description="the assessment cycle")],
    as_of: AsOf = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """Each target of the cycle in force on `as_of`, with the contract (包抓) in force then —
    lead unit, responsible units, responsible leader — and the duty holders by tier: the first
    responsible persons of the lead and responsible units, and the overall, direct and specific
    responsible persons of those units and of their committee, general branch and branch."""
    position = wait_for(runtime, min_position, ResponsibilityMatrix.name)
    day = as_of or today()
    return {
        "cycle_id": str(cycle),
        "as_of": day.isoformat(),
        "position": position,
        "targets": responsibility_matrix(runtime.db, cycle_id=cycle, as_of=day),
    }


@router.get("/people/{person_id}/duties", tags=["people"], summary="A person's duties")
def duties_of(
    person_id: UUID,
    runtime: RuntimeDep,
    _: PrincipalDep,
    as_of: AsOf = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """Every duty the person had begun to hold by `as_of`, with its interval and whether it was
    active on that day."""
    position = wait_for(runtime, min_position, ResponsibilityMatrix.name)
    day = as_of or today()
    found = person_duties(runtime.db, person_id=person_id, as_of=day)
    if found is None:
        raise NotFound("person", person_id)
    return {**found, "as_of": day.isoformat(), "position": position}
