"""Read endpoints of the trace read model: one target's closed loop, event by event."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from closedloop.api.deps import PrincipalDep, RuntimeDep
from closedloop.api.problems import ApiProblem
from closedloop.api.reads import MAX_BIGINT, wait_for
from closedloop.domain.targets import Target
from closedloop.projections.trace import Trace, target_trace

router = APIRouter(tags=["trace"])


@router.get(
    "/targets/{target_id}/trace",
    summary="One target's chain: problems, measures, duties, meetings, rectifications, "
    "effects, awards",
)
def trace_target(
    target_id: UUID,
    runtime: RuntimeDep,
    _: PrincipalDep,
    min_position: Annotated[int | None, Query(ge=0, le=MAX_BIGINT)] = None,
) -> dict[str, Any]:
    """The target and every item of its chain, each with the events behind it.

    Problems found for the target; measures adopted for it or against its problems; duties held
    for the units it applies to or is contracted to; each unit's report, scores and reviews at
    the meetings of its cycle; rectifications ordered for it or its problems; its confirmed
    effects; awards to its units in its cycle. 404 if there is no such target.
    """
    position = wait_for(runtime, min_position, Trace.name)
    trace = target_trace(runtime.db, target_id)
    if trace is None:
        runtime.service.get(Target, target_id)  # no such target: 404
        raise ApiProblem(
            503,
            "stale-read-model",
            "Read model behind",
            f"the {Trace.name} read model has not reached target {target_id} yet",
            headers={"Retry-After": "1"},
            projection=Trace.name,
        )
    return {
        "target_id": trace.pop("target_id"),
        "title": trace.pop("title"),
        "position": position,
        **trace,
    }
