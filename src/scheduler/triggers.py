"""When the jobs run: pure functions of the zone (which stages are due is `Cycle.stages_due`)."""

from __future__ import annotations

from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]  # no stubs (3.x)

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
