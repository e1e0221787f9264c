"""Read endpoints of the audit index read model: the discipline inspector's query surface.

Only admins, auditors and inspectors may query it (DESIGN §7: auditor and inspector "read all,
audit"); leaders and members get 403.

Reads of the audit surface are themselves logged (DESIGN §7): each query is written to the
``closedloop.audit`` logger at INFO with the principal, the filters and the number of results.
It is deliberately not recorded as an event: every page an inspector turns would then become a
new fact in the log being inspected, flooding it and moving the very positions being paged.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from closedloop.api.deps import PrincipalDep, RuntimeDep
from closedloop.api.problems import ApiProblem
from closedloop.api.reads import MAX_BIGINT, wait_for
from closedloop.api.schemas import PRINTABLE
from closedloop.domain.access import Role
from closedloop.projections.audit import AuditIndex, TimeAxis, query_events

router = APIRouter(tags=["audit-index"])
log = logging.getLogger("closedloop.audit")

AUDIT_ROLES = frozenset({Role.ADMIN, Role.AUDITOR, Role.INSPECTOR})


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        raise ApiProblem(
            422,
            "invalid-field",
            "Invalid field",
            f"{field} must include a time zone offset",
            errors=[
                {
                    "field": f"query.{field}",
                    "rule": "must include a time zone offset",
                    "message": "e.g. 2026-03-01T00:00:00+08:00",
                }
            ],
        )
    return value


@router.get("/audit/events", summary="Every event by position, actor, unit, type and time")
def audit_events(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    actor: Annotated[
        str | None, Query(max_length=300, pattern=PRINTABLE, description="exactly this actor")
    ] = None,
    unit: Annotated[UUID | None, Query(description="events concerning this unit")] = None,
    type: Annotated[
        str | None,
        Query(max_length=100, pattern=PRINTABLE, description="event type, e.g. ProblemResolved"),
    ] = None,
    aggregate: Annotated[UUID | None, Query(description="events of this aggregate")] = None,
    from_: Annotated[
        datetime | None, Query(alias="from", description="at or after (with offset)")
    ] = None,
    to: Annotated[datetime | None, Query(description="before (with offset)")] = None,
    time: Annotated[
        TimeAxis, Query(description="which time from/to compare: recorded or effective")
    ] = "recorded",
    after: Annotated[int, Query(ge=0, le=MAX_BIGINT, description="cursor from next_after")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    min_position: Annotated[int | None, Query(ge=0, le=MAX_BIGINT)] = None,
) -> dict[str, Any]:
    """Indexed events in position order, filtered; page on with ``after=next_after``.

    ``from`` is inclusive and ``to`` exclusive, compared with the recorded time (default) or
    the effective time (``time=effective``). Each item names the units it concerns and carries
    its payload as ``data``.
    """
    if principal.role not in AUDIT_ROLES:
        raise ApiProblem(
            403,
            "forbidden",
            "Not permitted",
            f"role {principal.role.value} may not query the audit index",
            role=principal.role.value,
        )
    position = wait_for(runtime, min_position, AuditIndex.name)
    rows = query_events(
        runtime.db,
        actor=actor,
        unit_id=unit,
        event_type=type,
        aggregate_id=aggregate,
        since=_aware(from_, "from"),
        until=_aware(to, "to"),
        time=time,
        after=after,
        limit=limit + 1,  # one more than asked: is there a next page?
    )
    items = rows[:limit]
    next_after = items[-1]["position"] if len(rows) > limit else None
    filters = {
        "actor": actor,
        "unit": unit,
        "type": type,
        "aggregate": aggregate,
        "from": from_,
        "to": to,
        "time": time,
        "after": after,
        "limit": limit,
    }
    log.info(
        "audit query by %s (role %s): filters=%s results=%d position=%d",
        principal.actor,
        principal.role.value,
        {k: str(v) for k, v in filters.items() if v is not None},
        len(items),
        position,
    )
    return {"position": position, "items": items, "next_after": next_after}
