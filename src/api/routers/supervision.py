"""Read endpoints of the supervision read model (督办): open and overdue items, who answers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query

from closedloop.api.deps import PrincipalDep, RuntimeDep
from closedloop.api.problems import ApiProblem
from closedloop.api.reads import wait_for
from closedloop.projections.supervision import MAX_LIMIT, Supervision, supervision_items

router = APIRouter(tags=["supervision"])

Kind = Literal["measure", "problem", "rectification", "missing_effect"]


def parse_as_of(value: str | None) -> tuple[str, date]:
    """``as_of`` as given (a date or a datetime with or without offset) and the day it names.

    Default: now, in the server's time zone.
    """
    if value is None:
        now = datetime.now().astimezone()
        return now.isoformat(), now.date()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return day.isoformat(), day
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiProblem(
            422,
            "invalid-field",
            "Invalid field",
            "as_of must be a date (YYYY-MM-DD) or an ISO 8601 datetime",
            errors=[
                {
                    "field": "query.as_of",
                    "rule": "date or datetime",
                    "message": f"not a date or datetime: {value[:40]!r}",
                }
            ],
        ) from None
    return moment.isoformat(), moment.date()


@router.get("/supervision", summary="Open and overdue items to supervise")
def supervision(
    runtime: RuntimeDep,
    _: PrincipalDep,
    cycle: Annotated[UUID | None, Query(description="only this cycle")] = None,
    unit: Annotated[UUID | None, Query(description="only this unit and the units under it")] = None,
    person: Annotated[UUID | None, Query(description="only items this person answers for")] = None,
    kind: Annotated[Kind | None, Query(description="only this kind of item")] = None,
    overdue: Annotated[
        bool | None, Query(description="only overdue items (true) or only the others (false)")
    ] = None,
    due_before: Annotated[date | None, Query(description="deadline on or before")] = None,
    due_after: Annotated[date | None, Query(description="deadline on or after")] = None,
    as_of: Annotated[
        str | None,
        Query(
            max_length=40,
            description="judge overdue (and ended stages) as of this date or datetime; default now",
        ),
    ] = None,
    include_finished: Annotated[
        bool, Query(description="also list finished items (completed, resolved, verified)")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
    min_position: Annotated[
        int | None, Query(ge=0, description="wait until the read model has reached this position")
    ] = None,
) -> dict[str, Any]:
    """Open measures, dispatched and escalated problems, rectifications not yet verified, and
    stages that ended without a confirmed effect (per target and unit), earliest deadline first.

    An item is overdue when its deadline lies before the `as_of` day and it is not finished;
    `counts` and `total` count every item that matches, `items` holds the first `limit`."""
    shown, day = parse_as_of(as_of)
    position = wait_for(runtime, min_position, Supervision.name)
    found = supervision_items(
        runtime.db,
        as_of=day,
        cycle_id=cycle,
        unit_id=unit,
        person_id=person,
        kind=kind,
        overdue=overdue,
        due_before=due_before,
        due_after=due_after,
        include_finished=include_finished,
        limit=limit,
    )
    return {"as_of": shown, "position": position, **found}
