"""The read side every collection shares: list (catalogue), state (event store), history."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response

from closedloop.api.deps import PrincipalDep, RuntimeDep
from closedloop.api.problems import ApiProblem
from closedloop.api.schemas import HistoryItem, Page
from closedloop.domain.base import LoopAggregate
from closedloop.domain.meetings import Meeting
from closedloop.domain.targets import Target
from closedloop.projections.catalogue import Catalogue, list_items
from closedloop.store.positions import event_positions

READ_WAIT_SECONDS = 5.0
MAX_BIGINT = 2**63 - 1


def plain(value: Any) -> Any:
    """JSON-ready: Decimals as strings (never floats), enums as values, tuples as lists."""
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def state_of(aggregate: LoopAggregate) -> dict[str, Any]:
    state = {
        "id": str(aggregate.id),
        "type": type(aggregate).__name__,
        "version": aggregate.version,
        "created_on": aggregate.created_on.isoformat(),
        "modified_on": aggregate.modified_on.isoformat(),
    }
    for name, value in vars(aggregate).items():
        if not name.startswith("_"):
            state[name] = plain(value)
    if isinstance(aggregate, Target):
        state["effects"] = [plain(effect) for effect in aggregate.effects.values()]
    if isinstance(aggregate, Meeting):
        state["scores"] = [
            {"unit_id": str(unit), "rater_id": str(rater), "score": str(score)}
            for (unit, rater), score in aggregate.scores.items()
        ]
    return state


def wait_for(runtime: Any, min_position: int | None, projection: str = Catalogue.name) -> int:
    """Read-your-writes: wait (bounded) until ``projection`` reached ``min_position``.

    Returns the position the read model reflects; answers 503 with Retry-After if it is behind.
    """
    if min_position is not None and not runtime.projections.wait(
        projection, min_position, READ_WAIT_SECONDS
    ):
        raise ApiProblem(
            503,
            "stale-read-model",
            "Read model behind",
            f"the {projection} read model has not reached position {min_position} yet",
            headers={"Retry-After": "1"},
            projection=projection,
        )
    position: int = runtime.projections.position(projection)
    return position


def add_read_routes(router: APIRouter, *, kind: str, aggregate: type[LoopAggregate]) -> None:
    """GET list, GET one (optionally at a version) and GET history for one collection."""

    @router.get("", response_model=Page, summary=f"List {kind}s (paged, filtered)")
    def list_collection(
        runtime: RuntimeDep,
        _: PrincipalDep,
        cycle: Annotated[UUID | None, Query(description="only this cycle")] = None,
        unit: Annotated[UUID | None, Query(description="only this unit")] = None,
        status: Annotated[str | None, Query(max_length=40)] = None,
        after: Annotated[int, Query(ge=0, le=MAX_BIGINT, description="cursor from next_after")] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        min_position: Annotated[int | None, Query(ge=0, le=MAX_BIGINT)] = None,
    ) -> dict[str, Any]:
        position = wait_for(runtime, min_position)
        rows = list_items(
            runtime.db,
            kind=kind,
            cycle_id=cycle,
            unit_id=unit,
            status=status,
            after=after,
            limit=limit + 1,  # one more than asked: is there a next page?
        )
        page = rows[:limit]
        next_after = page[-1]["created_position"] if len(rows) > limit else None
        return {"items": page, "next_after": next_after, "position": position}

    @router.get("/{item_id}", summary=f"One {kind}: current state, or at ?version=N")
    def get_one(
        item_id: UUID,
        runtime: RuntimeDep,
        _: PrincipalDep,
        response: Response,
        version: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
    ) -> dict[str, Any]:
        found = runtime.service.get(aggregate, item_id, version=version)
        response.headers["ETag"] = f'"{found.version}"'
        return state_of(found)

    @router.get(
        "/{item_id}/history",
        response_model=list[HistoryItem],
        summary=f"Every event of one {kind}: who, why, when, at which position",
    )
    def history(item_id: UUID, runtime: RuntimeDep, _: PrincipalDep) -> list[dict[str, Any]]:
        runtime.service.get(aggregate, item_id)
        positions = event_positions(runtime.db, runtime.events_table, item_id)
        return [
            {
                **dataclasses.asdict(entry),
                "data": plain(entry.data),
                "position": positions.get(entry.version),
            }
            for entry in runtime.service.history(item_id)
        ]
