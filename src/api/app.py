"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi

from closedloop import __version__
from closedloop.api.deps import RuntimeDep, correlation_id_for
from closedloop.api.problems import install_problem_handlers
from closedloop.api.routers import (
    audit,
    awards,
    cycles,
    duties,
    measures,
    meetings,
    organisation,
    problems,
    rectifications,
    responsibility,
    scoreboard,
    settlement,
    supervision,
    targets,
    trace,
)
from closedloop.api.schemas import Health, Problem
from closedloop.bootstrap import Runtime, build_runtime
from closedloop.projections.catalogue import Catalogue
from closedloop.settings import Settings

DESCRIPTION = """
Record the six confirmations of the closed loop — targets, problems, measures,
responsibilities, effects, rewards and penalties — as immutable events.

* Authenticate with `Authorization: Bearer <token>` (`closedloop token create`).
* Writes return `id`, `version` (also the `ETag`) and `position`. Send `If-Match: "<version>"`
  to write only if nobody changed the resource since you read it: a mismatch answers **412**.
  Without `If-Match`, a concurrent write to the same resource answers **409**.
* `Idempotency-Key` on a POST makes a retry return the first result without writing again.
* Lists are served from a read model: pass `min_position=<position>` to read your own writes.
* Errors are RFC 9457 `application/problem+json`; rule violations carry the rule's name in `rule`.
"""


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the API. The runtime (store, projections) is created in the lifespan, not here."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = runtime or build_runtime(settings or Settings())
        app.state.runtime.start_background()
        try:
            yield
        finally:
            if owned:
                app.state.runtime.close()
            else:
                app.state.runtime.stop_background()

    app = FastAPI(
        title="closedloop", version=__version__, description=DESCRIPTION, lifespan=lifespan
    )
    install_problem_handlers(app)

    @app.middleware("http")
    async def correlation(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.correlation_id = correlation_id_for(request)
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.correlation_id
        return response

    @app.get("/health", response_model=Health, tags=["operations"])
    def health(runtime: RuntimeDep) -> Health:
        """Liveness and readiness: the store answers; how far the catalogue has read."""
        return Health(
            status="ok",
            store=runtime.settings.store_kind,
            head_position=runtime.service.head_position(),
            catalogue_position=runtime.projections.position(Catalogue.name),
        )

    for router in (
        organisation.units,
        organisation.people,
        cycles.router,
        targets.router,
        problems.router,
        measures.router,
        duties.router,
        meetings.router,
        rectifications.router,
        awards.router,
        scoreboard.router,
        settlement.router,
        responsibility.router,
        supervision.router,
        audit.router,
        trace.router,
    ):
        app.include_router(router)
    app.openapi = lambda: _openapi_with_problems(app)  # type: ignore[method-assign]
    return app


ERROR_STATUSES = {
    "401": "No or invalid bearer token",
    "403": "The token's role may not do this",
    "404": "No such resource",
    "409": "A rule of the loop, or a concurrent write, refused the command",
    "412": "If-Match named another version",
    "422": "Invalid field (which field, which rule)",
    "503": "The read model has not reached min_position yet",
}


def _openapi_with_problems(app: FastAPI) -> dict[str, Any]:
    """Document errors as they are sent: ``application/problem+json`` with the Problem schema."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(
        Problem.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs", {})
    )
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, item in document["paths"].items():
        if path == "/health":
            continue
        for method, operation in item.items():
            writes = method == "post"
            for status, description in ERROR_STATUSES.items():
                if status in ("409", "412") and not writes:
                    continue
                operation["responses"][status] = {"description": description, "content": problem}
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = document
    return document
