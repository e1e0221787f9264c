"""Scheduled jobs (APScheduler): quarterly settlement and deadline checks."""

from closedloop.scheduler.jobs import DeadlineRun, Scheduler, SettlementRun, StageResult

__all__ = ["DeadlineRun", "Scheduler", "SettlementRun", "StageResult"]
