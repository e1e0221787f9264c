"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

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
    supervision,
    targets,
    trace,
)
from closedloop.api.schemas import Health
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
        if app.state.runtime.settings.run_projections:
            app.state.runtime.projections.start()
        try:
            yield
        finally:
            if owned:
                app.state.runtime.close()
            else:
                app.state.runtime.projections.stop()

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
        responsibility.router,
        supervision.router,
        audit.router,
        trace.router,
    ):
        app.include_router(router)
    return app
