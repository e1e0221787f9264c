"""When the jobs run, and which stages are due: pure functions of the clock and the zone."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]  # no stubs (3.x)

from closedloop.domain.cycles import Cycle, Stage

# The default stages are quarters, so their cut-offs (midnight after each last day) fall on the
# first of January, April, July and October. Stages of other shapes are settled by the daily
# deadline job's safety net, at most a day after their cut-off.
STAGE_END_MONTHS = "1,4,7,10"


def settlement_trigger(zone: tzinfo, grace_days: int = 0) -> CronTrigger:
    """00:00 on the day after each quarter ends, in ``zone``, plus ``grace_days`` (< 28)."""
    return CronTrigger(month=STAGE_END_MONTHS, day=1 + grace_days, hour=0, minute=0, timezone=zone)


def deadline_trigger(at: str, zone: tzinfo) -> CronTrigger:
    """Every day at ``at`` (``HH:MM``) in ``zone``."""
    hour, minute = (int(part) for part in at.split(":"))
    return CronTrigger(hour=hour, minute=minute, timezone=zone)


def due_stages(cycle: Cycle, now: datetime, zone: tzinfo, grace_days: int = 0) -> list[Stage]:
    """The cycle's stages whose cut-off in ``zone`` plus ``grace_days`` has passed at ``now``
    and that were never settled (the rule of ``ClosedLoop.settle_due``, per cycle so one cycle's
    failure stays its own)."""
    grace = timedelta(days=grace_days)
    return [
        stage
        for stage in cycle.stages
        if stage.cutoff(zone) + grace <= now and never_settled(cycle, stage.key)
    ]


def never_settled(cycle: Cycle, stage: str) -> bool:
    """Unsettled and never reopened: a reopened stage waits for its corrections and is settled
    again by an admin, not by the next scheduled run."""
    return not cycle.is_settled(stage) and cycle.settlement_round(stage) == 1
