"""Read endpoints of the scoreboard read model."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from closedloop.api.deps import PrincipalDep, RuntimeDep
from closedloop.api.problems import ApiProblem
from closedloop.api.reads import wait_for
from closedloop.domain.errors import InvalidValue
from closedloop.projections.scoreboard import Scoreboard, read_scoreboard

router = APIRouter(tags=["scoreboard"])
MAX_POSITION = 2**63 - 1  # positions are BIGINT


@router.get(
    "/cycles/{cycle_id}/scoreboard",
    summary="A cycle's scoreboard for one stage: components, totals and ranks, provisional "
    "until the stage is settled",
)
def get_scoreboard(
    cycle_id: UUID,
    runtime: RuntimeDep,
    _: PrincipalDep,
    stage: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=20,
            description="stage key, e.g. Q1; default: the latest stage with confirmed effects "
            "or meeting scores, else the cycle's first stage",
        ),
    ] = None,
    min_position: Annotated[int | None, Query(ge=0, le=MAX_POSITION)] = None,
) -> dict[str, Any]:
    """Per unit of the cycle (the units its targets apply to): the result, process and meeting
    components (0-100, two decimals, null when the unit has no data for one), the total with the
    weights actually used (re-normalised when a component is missing, as the row's notes say),
    and the rank (competition ranking "1224"; equal totals share a rank and are listed by unit
    id; units without a total are unranked and listed last).

    Without ``stage`` the board shows the latest stage in which some unit has confirmed effects
    or meeting scores, else the cycle's first stage. Every row is provisional until the stage is
    settled: then ``provisional`` is false, ``settlement`` names it (id, round, the position
    range read, digests) and the rows show the settled figures and ranks (the ``details``
    counts are today's, for context). ``stage_closed`` says whether the stage accepts no more
    effect confirmations. ``policy`` is the scoring policy in force for the stage.
    An unknown cycle answers 404, a stage the cycle does not have 422.
    """
    position = wait_for(runtime, min_position, Scoreboard.name)
    try:
        board = read_scoreboard(runtime.db, cycle_id, stage)
    except InvalidValue as error:  # a stage the cycle does not have: a bad query parameter
        rule = str(error.values.get("rule", error.rule))
        raise ApiProblem(
            422,
            "invalid-field",
            "Invalid field",
            f"stage {stage!r} is not a stage of cycle {cycle_id}",
            rule=error.rule,
            errors=[{"field": "query.stage", "rule": rule, "message": str(error)}],
        ) from None
    return {
        "cycle_id": board["cycle_id"],
        "cycle_name": board["cycle_name"],
        "stage": board["stage"],
        "position": position,
        "provisional": board["provisional"],
        "settlement": board["settlement"],
        "stage_closed": board["stage_closed"],
        "stages": board["stages"],
        "policy": board["policy"].describe(),
        "rows": board["rows"],
    }
