"""Settle in a process of its own, for test_settlement.py: prints what it did as JSON lines.

    python settle_in_process.py --database-url URL [--schema S] --now ISO --zone ZONE
        (stage CYCLE_ID STAGE | due) [--rendezvous DIR --parties N]
        [--hang-at-save K | --hang-inside-save K] [--flag F]

``--rendezvous``: before its first save, the process announces itself in DIR and waits until N
processes have, so all of them computed their settlement before any of them writes.
``--hang-at-save K``: at its K-th save the process creates F and sleeps, to be killed there.
``--hang-inside-save K`` (SQLite): the same, but inside the K-th save's transaction, once its
rows are written and before they are committed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from closedloop.domain.context import acting_as
from closedloop.domain.service import ClosedLoop, SettlementOutcome
from closedloop.settings import Settings
from closedloop.store import application_env

WAIT_SECONDS = 30


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--schema", default="public")
    parser.add_argument("--now", required=True, type=datetime.fromisoformat)
    parser.add_argument("--zone", default="Asia/Shanghai", type=ZoneInfo)
    parser.add_argument("--rendezvous", type=Path)
    parser.add_argument("--parties", type=int, default=2)
    parser.add_argument("--hang-at-save", type=int)
    parser.add_argument("--hang-inside-save", type=int)
    parser.add_argument("--flag", type=Path)
    parser.add_argument("what", choices=("stage", "due"))
    parser.add_argument("args", nargs="*")
    args = parser.parse_args()
    settings = Settings(database_url=args.database_url, database_schema=args.schema)
    app = ClosedLoop(env=application_env(settings))
    try:
        gate(app, args)
        with acting_as("scheduler:test"):
            if args.what == "stage":
                cycle_id, stage = args.args
                report(
                    [app.settle_stage(UUID(cycle_id), stage=stage, now=args.now, zone=args.zone)]
                )
            else:
                report(app.settle_due(now=args.now, zone=args.zone))
    finally:
        app.close()
    return 0


def gate(app: ClosedLoop, args: argparse.Namespace) -> None:
    """Wrap ``app.save`` to meet the other processes, or to hang where the test kills us."""
    save = app.save
    calls = 0

    def gated(*aggregates: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if args.rendezvous is not None and calls == 1:
            meet(args.rendezvous, args.parties)
        if args.hang_at_save == calls:
            hang(args.flag)
        print(json.dumps({"saving": calls}), flush=True)
        return save(*aggregates, **kwargs)

    app.save = gated  # type: ignore[method-assign]
    if args.hang_inside_save is not None:
        hang_inside_transaction(app, lambda: calls == args.hang_inside_save, args.flag)


def hang_inside_transaction(app: ClosedLoop, now: Callable[[], bool], flag: Path) -> None:
    """SQLite's recorder writes a save's rows with ``_insert_events`` inside its transaction."""
    recorder: Any = app.recorder
    insert = recorder._insert_events

    def insert_then_hang(*args: Any, **kwargs: Any) -> Any:
        written = insert(*args, **kwargs)
        if now():
            hang(flag)
        return written

    recorder._insert_events = insert_then_hang


def hang(flag: Path) -> None:
    flag.touch()
    time.sleep(600)


def meet(directory: Path, parties: int) -> None:
    (directory / str(os.getpid())).touch()
    deadline = time.monotonic() + WAIT_SECONDS
    while len(list(directory.iterdir())) < parties:
        if time.monotonic() > deadline:
            sys.exit(f"only {len(list(directory.iterdir()))} of {parties} processes came")
        time.sleep(0.01)


def report(outcomes: list[SettlementOutcome]) -> None:
    for outcome in outcomes:
        print(
            json.dumps(
                {
                    "settlement_id": str(outcome.settlement_id),
                    "created": outcome.created,
                    "awards": outcome.awards,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
