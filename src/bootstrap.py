"""The composition root: builds the service, read models and records for one process."""

from __future__ import annotations

from dataclasses import dataclass

from closedloop.domain.service import ClosedLoop
from closedloop.projections.base import ProjectionRunner
from closedloop.projections.catalogue import Catalogue
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

    @property
    def events_table(self) -> str:
        return str(self.service.recorder.events_table_name)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.projections.stop()
        self.db.close()
        self.service.close()


def build_runtime(settings: Settings) -> Runtime:
    ensure_database_ready(settings)
    service = ClosedLoop(env=application_env(settings))
    db = open_database(settings)
    projections = ProjectionRunner(service, db, [Catalogue()])
    projections.setup()
    idempotency = IdempotencyRecords(db)
    idempotency.setup()
    return Runtime(settings, service, db, projections, idempotency)
