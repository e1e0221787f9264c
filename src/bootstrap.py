"""The composition root: builds the service, read models and records for one process."""

from __future__ import annotations

from dataclasses import dataclass

from closedloop.domain.service import ClosedLoop
from closedloop.projections.audit import AuditIndex
from closedloop.projections.base import Projection, ProjectionRunner
from closedloop.projections.catalogue import Catalogue
from closedloop.projections.responsibility import ResponsibilityMatrix
from closedloop.projections.scoreboard import Scoreboard
from closedloop.projections.supervision import Supervision
from closedloop.projections.trace import Trace
from closedloop.scheduler import Scheduler
from closedloop.settings import Settings
from closedloop.store import application_env, ensure_database_ready
from closedloop.store.idempotency import IdempotencyRecords
from closedloop.store.sql import Database, open_database


@dataclass
class Runtime:
    settings: Settings
    service: ClosedLoop
    db: Database
    projections: ProjectionRunner
    idempotency: IdempotencyRecords
    # Built on the first start_background() that runs it, unless a caller (a test with its own
    # clock) sets one first.
    scheduler: Scheduler | None = None

    @property
    def events_table(self) -> str:
        return str(self.service.recorder.events_table_name)  # type: ignore[attr-defined]

    def start_background(self) -> None:
        """Start what the API process runs beside serving requests, as the settings ask."""
        if self.settings.run_projections:
            self.projections.start()
        if self.settings.run_scheduler:
            if self.scheduler is None:
                self.scheduler = Scheduler(self.service, self.db, self.settings)
            self.scheduler.start()

    def stop_background(self) -> None:
        # The scheduler first: a job in progress finishes while the read models still follow.
        if self.scheduler is not None:
            self.scheduler.stop()
        self.projections.stop()

    def close(self) -> None:
        self.stop_background()
        self.db.close()
        self.service.close()


def all_projections() -> list[Projection]:
    return [Catalogue(), Scoreboard(), ResponsibilityMatrix(), Supervision(), AuditIndex(), Trace()]


def build_runtime(settings: Settings, *, projections_named: list[str] | None = None) -> Runtime:
    """Everything one process needs; ``projections_named`` limits which read models it runs."""
    ensure_database_ready(settings)
    service = ClosedLoop(env=application_env(settings))
    db = open_database(settings)
    chosen = [p for p in all_projections() if not projections_named or p.name in projections_named]
    projections = ProjectionRunner(service, db, chosen, batch_size=settings.projection_batch_size)
    projections.setup()
    idempotency = IdempotencyRecords(db)
    idempotency.setup()
    return Runtime(settings, service, db, projections, idempotency)
