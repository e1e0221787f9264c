"""The scheduler: quarterly settlement, the daily deadline check, and catching up on start.

Every job is a method taking the instant it runs at (``run_settlement_job(now)``,
``run_deadline_job(now)``), so tests drive them on a simulated clock; the APScheduler jobs call
them with ``Scheduler.now()``, the real clock unless a test passes another. The event store, not
APScheduler's job store (kept in memory), is the truth about what has run: a settlement already
recorded is reported, not repeated, and a breach already on record is skipped.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from uuid import UUID

from apscheduler.schedulers.background import (  # type: ignore[import-untyped]  # no stubs (3.x)
    BackgroundScheduler,
)

from closedloop.domain.context import acting_as
from closedloop.domain.cycles import Cycle
from closedloop.domain.deadlines import DeadlineMissedOnlyOnce
from closedloop.domain.errors import ConcurrencyConflict, DomainError
from closedloop.domain.service import ClosedLoop
from closedloop.projections.base import projection_position
from closedloop.projections.supervision import Supervision
from closedloop.scheduler.locks import JobLock, job_lock_for
from closedloop.scheduler.overdue import OverdueItem, overdue_items
from closedloop.scheduler.triggers import deadline_trigger, settlement_trigger
from closedloop.settings import Settings
from closedloop.store.sql import Database

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SETTLEMENT = "settlement"
DEADLINES = "deadlines"
CATCH_UP = "catch-up"
# A job that could not start on time (the process was suspended, the pool busy) still runs if
# it is at most this late; catching up on start covers anything later.
MISFIRE_GRACE_SECONDS = 6 * 3600
LOCK_HELD = "another replica holds its lock (or a run of this one is still going)"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StageResult:
    """What the settlement job did for one due stage."""

    cycle_id: UUID
    stage: str
    settlement_id: UUID | None = None
    created: bool = False
    awards: int = 0
    error: str | None = None


@dataclass(frozen=True)
class SettlementRun:
    """``ran`` is False when another replica held the job's lock."""

    ran: bool
    results: list[StageResult] = field(default_factory=list)

    @property
    def created(self) -> list[StageResult]:
        return [r for r in self.results if r.created]

    @property
    def existing(self) -> list[StageResult]:
        return [r for r in self.results if not r.created and r.error is None]

    @property
    def failed(self) -> list[StageResult]:
        return [r for r in self.results if r.error is not None]


@dataclass(frozen=True)
class DeadlineRun:
    """``recorded``: breaches written now; ``already``: on record before; ``not_due``: candidates
    the aggregate refused for another rule (finished meanwhile, say); ``failed``: errors."""

    ran: bool
    recorded: list[OverdueItem] = field(default_factory=list)
    already: int = 0
    not_due: int = 0
    failed: list[tuple[OverdueItem, str]] = field(default_factory=list)
    settlement: SettlementRun | None = None


class Scheduler:
    """Runs the jobs in a BackgroundScheduler (``start``/``stop``) or on demand (``run_*``)."""

    def __init__(
        self,
        service: ClosedLoop,
        db: Database,
        settings: Settings,
        *,
        now: Clock = utc_now,
        lock: JobLock | None = None,
        actor: str = "scheduler",
        read_model_wait: float = 30.0,
    ) -> None:
        self.service = service
        self.db = db
        self.zone = settings.zone
        self.grace_days = settings.settlement_grace_days
        self.deadline_check_at = settings.deadline_check_at
        self.now = now
        self.lock = lock or job_lock_for(settings)
        self.actor = actor
        self.read_model_wait = read_model_wait
        # Breaches known to be on record, (item, deadline): permanent facts, so later runs of
        # this process skip loading those items again. Pruned to the current candidates.
        self._on_record: set[tuple[UUID, date]] = set()
        self._background: BackgroundScheduler | None = None
        self._stopping = threading.Event()

    # --- running in the background ----------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._background is not None

    def start(self) -> None:
        """Schedule the jobs and catch up at once (in the scheduler's thread, not the caller's)."""
        if self._background is not None:
            return
        self._stopping.clear()
        background = BackgroundScheduler(
            timezone=self.zone,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": MISFIRE_GRACE_SECONDS,
            },
        )
        background.add_job(
            self._tick,
            settlement_trigger(self.zone, self.grace_days),
            args=[SETTLEMENT, self.run_settlement_job],
            id=SETTLEMENT,
            name="settle every stage whose cut-off passed",
        )
        background.add_job(
            self._tick,
            deadline_trigger(self.deadline_check_at, self.zone),
            args=[DEADLINES, self.run_deadline_job],
            id=DEADLINES,
            name="record missed deadlines, then settle what is due",
        )
        background.add_job(
            self._tick, args=[CATCH_UP, self.catch_up], id=CATCH_UP, name="catch up on start"
        )
        background.start()
        self._background = background
        log.info(
            "scheduler started (zone %s): settlement next at %s, deadline check next at %s",
            self.zone,
            background.get_job(SETTLEMENT).next_run_time,
            background.get_job(DEADLINES).next_run_time,
        )

    def stop(self) -> None:
        """Stop scheduling; a job already running is allowed to finish."""
        background, self._background = self._background, None
        if background is not None:
            self._stopping.set()  # cuts a wait for the read model short
            background.shutdown(wait=True)
            log.info("scheduler stopped")

    def next_run_times(self) -> dict[str, datetime]:
        if self._background is None:
            return {}
        return {
            job.id: job.next_run_time
            for job in self._background.get_jobs()
            if job.next_run_time is not None
        }

    def _tick(self, name: str, job: Callable[[datetime], object]) -> None:
        # A job's own failures are logged per stage or item; this catches what stops a whole run
        # (the database unreachable), so the next run still happens.
        try:
            job(self.now())
        except Exception:
            log.exception("scheduler job %s failed; it runs again at its next time", name)

    # --- the jobs ---------------------------------------------------------------------------

    def catch_up(self, now: datetime) -> DeadlineRun:
        """On start: record the deadlines missed while nobody was running, then settle every
        stage whose cut-off passed meanwhile (the deadline job ends by settling what is due)."""
        return self.run_deadline_job(now)

    def run_settlement_job(self, now: datetime) -> SettlementRun:
        """Settle every stage of every cycle whose cut-off passed at ``now`` and is unsettled."""
        _require_aware(now)
        with self.lock.hold(SETTLEMENT) as held:
            if not held:
                log.info("settlement job skipped at %s: %s", now, LOCK_HELD)
                return SettlementRun(ran=False)
            with acting_as(self.actor, correlation_id=_correlation(SETTLEMENT, now)):
                results = self._settle_due(now)
        run = SettlementRun(ran=True, results=results)
        log.info(
            "settlement job at %s: %d settled, %d already settled, %d failed",
            now.isoformat(),
            len(run.created),
            len(run.existing),
            len(run.failed),
        )
        return run

    def run_deadline_job(self, now: datetime, *, settle: bool = True) -> DeadlineRun:
        """Record ``DeadlineMissed`` for every unfinished item whose deadline passed by ``now``,
        then (``settle``) settle what is due: a safety net for a missed quarterly run and for
        stages that do not end with a quarter."""
        _require_aware(now)
        with self.lock.hold(DEADLINES) as held:
            if held:
                with acting_as(self.actor, correlation_id=_correlation(DEADLINES, now)):
                    run = self._record_missed(now)
            else:
                log.info("deadline job skipped at %s: %s", now, LOCK_HELD)
                run = DeadlineRun(ran=False)
        return replace(run, settlement=self.run_settlement_job(now)) if settle else run

    # --- settlement -------------------------------------------------------------------------

    def _settle_due(self, now: datetime) -> list[StageResult]:
        results: list[StageResult] = []
        for cycle_id in self.service.cycle_ids():
            try:
                cycle = self.service.get(Cycle, cycle_id)
            except Exception as error:
                log.exception("cycle %s could not be read; its stages wait", cycle_id)
                results.append(StageResult(cycle_id, "*", error=_describe(error)))
                continue
            for stage in cycle.stages_due(now, self.zone, self.grace_days):
                results.append(self._settle(cycle_id, stage.key, now))
        return results

    def _settle(self, cycle_id: UUID, stage: str, now: datetime) -> StageResult:
        try:
            outcome = self.service.settle_stage(cycle_id, stage=stage, now=now, zone=self.zone)
        except Exception as error:
            # One stage failing leaves the other stages and cycles to be settled.
            log.error(
                "cycle %s stage %s: settlement failed: %s",
                cycle_id,
                stage,
                _describe(error),
                exc_info=not isinstance(error, DomainError),
            )
            return StageResult(cycle_id, stage, error=_describe(error))
        if outcome.created:
            log.info(
                "cycle %s stage %s settled: settlement %s at position %s, %d awards",
                cycle_id,
                stage,
                outcome.settlement_id,
                outcome.position,
                outcome.awards,
            )
        else:
            log.info(
                "cycle %s stage %s already settled by settlement %s (another replica or a retry)",
                cycle_id,
                stage,
                outcome.settlement_id,
            )
        return StageResult(cycle_id, stage, outcome.settlement_id, outcome.created, outcome.awards)

    # --- deadlines --------------------------------------------------------------------------

    def _record_missed(self, now: datetime) -> DeadlineRun:
        self._wait_for_read_model()
        candidates = overdue_items(self.db, as_of=now.astimezone(self.zone).date())
        recorded: list[OverdueItem] = []
        failed: list[tuple[OverdueItem, str]] = []
        already = not_due = 0
        for item in candidates:
            if item.key in self._on_record:
                already += 1
                continue
            try:
                self.service.record_deadline_missed(item.id, now=now, zone=self.zone)
            except DeadlineMissedOnlyOnce:
                self._on_record.add(item.key)
                already += 1
            except ConcurrencyConflict as error:
                # The item changed while we wrote: the next run looks at it again.
                failed.append((item, _describe(error)))
                log.warning("%s %s: deadline not recorded this run: %s", item.kind, item.id, error)
            except DomainError as error:
                not_due += 1
                log.debug("%s %s misses no deadline now: %s", item.kind, item.id, error)
            except Exception as error:
                failed.append((item, _describe(error)))
                log.exception("%s %s: recording its missed deadline failed", item.kind, item.id)
            else:
                self._on_record.add(item.key)
                recorded.append(item)
                log.info("%s %s missed deadline %s: recorded", item.kind, item.id, item.deadline)
        self._on_record &= {item.key for item in candidates}
        log.info(
            "deadline job at %s: %d recorded, %d already on record, %d no longer due, %d failed",
            now.isoformat(),
            len(recorded),
            already,
            not_due,
            len(failed),
        )
        return DeadlineRun(True, recorded, already, not_due, failed)

    def _wait_for_read_model(self) -> None:
        """Give the supervision read model a moment to reach the log's head as of now (it is fed
        by a projection runner, in this process or a worker); then go on with what it has, since
        anything it has not seen yet is found by a later run."""
        head = self.service.head_position()
        deadline = time.monotonic() + self.read_model_wait
        while (position := projection_position(self.db, Supervision.name)) < head:
            if time.monotonic() >= deadline:
                log.warning(
                    "supervision read model at position %d, the log at %d: items changed since "
                    "are checked on a later run (is a projection runner following the log?)",
                    position,
                    head,
                )
                return
            if self._stopping.wait(0.2):
                return


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"the scheduler's clock must give aware datetimes, got {now!r}")


def _correlation(job: str, now: datetime) -> str:
    return f"scheduler/{job}/{now.astimezone(UTC):%Y%m%dT%H%M%SZ}/{uuid.uuid4().hex[:8]}"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
