"""``closedloop``: the one command-line entry point."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from closedloop.domain.access import Role
from closedloop.domain.context import acting_as
from closedloop.domain.errors import DomainError
from closedloop.domain.service import ClosedLoop, SettlementOutcome
from closedloop.domain.settlement import Settlement
from closedloop.domain.units import Unit
from closedloop.settings import Settings
from closedloop.store import application_env, ensure_database_ready


def open_service(settings: Settings) -> ClosedLoop:
    """The composition root for command-line use: the store the settings name."""
    ensure_database_ready(settings)
    return ClosedLoop(env=application_env(settings))


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from closedloop.demo import StoreNotEmpty, format_summary, load_demo

    app = open_service(settings)
    try:
        if args.units is None:
            summary = load_demo(app, force=args.force)
        else:
            from closedloop.demo_generator import generate_year

            summary = generate_year(app, units=args.units, seed=args.seed, force=args.force)
    except StoreNotEmpty as refused:
        print(f"closedloop demo: {refused}", file=sys.stderr)
        return 1
    finally:
        app.close()
    print(format_summary(summary))
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from closedloop.api import create_app
    from closedloop.bootstrap import build_runtime

    _log_to_stderr()
    if args.no_scheduler:
        settings = settings.model_copy(update={"run_scheduler": False})
    runtime = build_runtime(settings)
    if args.demo:
        _prepare_demo(runtime.service)
    app = create_app(settings, runtime=runtime)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    finally:
        runtime.close()
    return 0


def _log_to_stderr() -> None:
    """closedloop's own INFO lines (stages settled, deadlines recorded, read models) beside
    uvicorn's; APScheduler's per-run chatter only from warnings up (misfires)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _prepare_demo(service: ClosedLoop) -> None:
    """Load the demo year into an empty store and print a token to try it with."""
    from closedloop.demo import format_summary, load_demo

    if service.head_position() == 0:
        print(format_summary(load_demo(service)))
    else:
        print("store has events already: demo not loaded again")
    with acting_as(f"cli:{getpass.getuser()}"):
        _, secret = service.issue_token(name="demo-admin", role=Role.ADMIN)
    print(f"\nadmin token (shown once): {secret}")
    print("open /docs, press Authorize and paste the token")


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    app = open_service(settings)
    try:
        with acting_as(f"cli:{getpass.getuser()}"):
            result, secret = app.issue_token(
                name=args.name, role=Role(args.role), unit_id=args.unit
            )
    finally:
        app.close()
    print(f"token id {result.id}")
    print(secret)
    return 0


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    app = open_service(settings)
    try:
        with acting_as(f"cli:{getpass.getuser()}"):
            app.revoke_token(args.id, reason=args.reason)
    finally:
        app.close()
    print(f"revoked {args.id}")
    return 0


def cmd_projections_run(args: argparse.Namespace, settings: Settings) -> int:
    from closedloop.bootstrap import build_runtime

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    runtime = build_runtime(settings, projections_named=args.names or None)
    names = ", ".join(p.name for p in runtime.projections.projections)
    print(f"following the event log for: {names} (Ctrl+C to stop)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: runtime.projections.stop())
    try:
        runtime.projections.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.close()
    return 0


def cmd_projections_status(args: argparse.Namespace, settings: Settings) -> int:
    from closedloop.bootstrap import build_runtime

    runtime = build_runtime(settings, projections_named=args.names or None)
    try:
        head = runtime.service.head_position()
        print(f"{'projection':<24} {'position':>10} {'head':>10} {'lag':>8}")
        for name, position in runtime.projections.positions().items():
            print(f"{name:<24} {position:>10} {head:>10} {head - position:>8}")
    finally:
        runtime.close()
    return 0


def cmd_projections_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from closedloop.bootstrap import build_runtime

    runtime = build_runtime(settings, projections_named=args.names or None)
    try:
        for projection in runtime.projections.projections:
            started = time.perf_counter()
            replayed = runtime.projections.rebuild(projection)
            print(
                f"rebuilt {projection.name}: {replayed} events in "
                f"{time.perf_counter() - started:.1f} s"
            )
    finally:
        runtime.close()
    return 0


def cmd_settle(args: argparse.Namespace, settings: Settings) -> int:
    app = open_service(settings)
    try:
        if args.verify:
            return _verify(app, args.cycle, args.stage)
        with acting_as(f"cli:{getpass.getuser()}"):
            outcome = app.settle_stage(
                args.cycle, stage=args.stage, now=datetime.now(UTC), zone=settings.zone
            )
        _print_settlement(app, outcome)
        return 0
    except DomainError as error:
        # StageNotEnded and the like: a refusal, not a crash (exit 1 like a failed --verify).
        print(f"closedloop settle: {error}", file=sys.stderr)
        return 1
    finally:
        app.close()


def _print_settlement(app: ClosedLoop, outcome: SettlementOutcome) -> None:
    settlement = app.get(Settlement, outcome.settlement_id)
    done = (
        f"created at position {outcome.position}"
        if outcome.created
        else "already existed: nothing written"
    )
    print(f"settlement {settlement.id}: {done}")
    print(
        f"cycle {settlement.cycle_id} stage {settlement.stage} round {settlement.round_number}, "
        f"cut-off {settlement.cutoff.isoformat()}, read through position "
        f"{settlement.through_position}"
    )
    units = settlement.settled_units
    print(f"units ({len(units)}):")
    for unit in units:
        rank = "-" if unit.rank is None else str(unit.rank)
        total = "no total" if unit.total is None else str(unit.total)
        print(f"  {rank:>3}  {total:>8}  {_unit_name(app, unit.unit_id)}  ({unit.unit_id})")
    awards = app.settlement_awards(settlement.id)
    print(f"awards ({len(awards)}):")
    for award in awards:
        points = "" if award.points is None else f" {award.points} points"
        revoked = " (revoked)" if award.revoked else ""
        recipient = _unit_name(app, award.unit_id) if award.unit_id else str(award.person_id)
        print(f"  {award.kind.value}{points} to {recipient} by rule {award.rule}{revoked}")


def _unit_name(app: ClosedLoop, unit_id: UUID) -> str:
    return app.get(Unit, unit_id).name


def _verify(app: ClosedLoop, cycle_id: UUID, stage: str) -> int:
    settlement = app.settlement(cycle_id, stage)
    if settlement is None:
        print(
            f"closedloop settle: stage {stage} of cycle {cycle_id} is not settled", file=sys.stderr
        )
        return 1
    check = app.verify_settlement(settlement.id)
    print(
        f"settlement {settlement.id} of cycle {cycle_id} stage {stage} round "
        f"{settlement.round_number}, recomputed from positions 1..{check.through_position}:"
    )
    if check.matches:
        print("matches: the same inputs, policy and figures")
        return 0
    print(f"differs ({len(check.differences)}):")
    for difference in check.differences:
        print(f"  - {difference}")
    return 1


def cmd_scheduler_run(args: argparse.Namespace, settings: Settings) -> int:
    from closedloop.bootstrap import build_runtime
    from closedloop.scheduler import Scheduler

    _log_to_stderr()
    # Only the supervision read model is read (for missed deadlines); projection workers or the
    # API keep it current, so this process only makes sure its tables exist.
    runtime = build_runtime(settings, projections_named=["supervision"])
    scheduler = Scheduler(runtime.service, runtime.db, settings)
    stopping = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stopping.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        scheduler.start()
        print(
            f"scheduler running in {settings.time_zone}: settlement after each quarter, deadline "
            f"check daily at {settings.deadline_check_at} (Ctrl+C to stop)",
            flush=True,
        )
        stopping.wait()
    finally:
        scheduler.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        runtime.close()
    return 0


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    app = open_service(settings)
    try:
        entries = app.history(args.id)
    finally:
        app.close()
    for entry in entries:
        effective = (
            ""
            if entry.effective_at == entry.recorded_at
            else (f" effective {entry.effective_at.isoformat()}")
        )
        reason = f" because {entry.reason!r}" if entry.reason else ""
        print(
            f"v{entry.version} {entry.recorded_at.isoformat()} {entry.type} "
            f"by {entry.actor}{reason}{effective}"
        )
        print(f"    {json.dumps(entry.data, default=_plain, ensure_ascii=False)}")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    app = open_service(settings)
    try:
        aggregate = app.get_aggregate(args.id, version=args.version)
    finally:
        app.close()
    state = {k.lstrip("_"): v for k, v in vars(aggregate).items() if k != "_pending_events"}
    print(type(aggregate).__name__)
    print(json.dumps(state, default=_plain, ensure_ascii=False, indent=2))
    return 0


def _plain(value: Any) -> Any:
    if hasattr(value, "value") and hasattr(value, "name"):  # Enum
        return value.value
    if hasattr(value, "__dataclass_fields__"):
        return vars(value)
    return str(value)


def _projection_name(known: Sequence[str]) -> Callable[[str], str]:
    def parse(name: str) -> str:
        if name not in known:
            raise argparse.ArgumentTypeError(
                f"unknown read model {name!r}; one of {', '.join(known)}"
            )
        return name

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="closedloop",
        description="Event-sourced closed-loop management. The store is chosen by "
        "CLOSEDLOOP_DATABASE_URL (unset: ./closedloop.db).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="load a scripted assessment year of a forestry bureau")
    demo.add_argument("--force", action="store_true", help="load even if the store has events")
    demo.add_argument(
        "--units",
        type=int,
        default=None,
        help="generate a deterministic year for this many units instead (a few hundred "
        "events per unit), for tests and benchmarks",
    )
    demo.add_argument("--seed", type=int, default=1, help="seed of the generated year")
    demo.set_defaults(handler=cmd_demo)

    serve = commands.add_parser("serve", help="serve the HTTP API (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--demo",
        action="store_true",
        help="load the demo year into an empty store and print an admin token",
    )
    serve.add_argument(
        "--no-scheduler",
        action="store_true",
        help="do not run the settlement and deadline jobs in this process (as "
        "CLOSEDLOOP_RUN_SCHEDULER=false); `closedloop scheduler run` or a replica runs them",
    )
    serve.set_defaults(handler=cmd_serve)

    settle = commands.add_parser(
        "settle", help="settle a stage now (once: a settled stage is reported, not redone)"
    )
    settle.add_argument("--cycle", required=True, type=UUID)
    settle.add_argument("--stage", required=True, help="stage key, e.g. Q1")
    settle.add_argument(
        "--verify",
        action="store_true",
        help="recompute the stage's settlement from the history it read and compare; "
        "exit 0 when everything matches, 1 when not",
    )
    settle.set_defaults(handler=cmd_settle)

    scheduler = commands.add_parser("scheduler", help="the settlement and deadline jobs")
    scheduler_commands = scheduler.add_subparsers(dest="scheduler_command", required=True)
    run = scheduler_commands.add_parser(
        "run", help="run the jobs in the foreground until SIGINT or SIGTERM"
    )
    run.set_defaults(handler=cmd_scheduler_run)

    token = commands.add_parser("token", help="issue or revoke API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="issue a token; it is printed once")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument(
        "--unit", type=UUID, default=None, help="the unit a leader or member acts for"
    )
    create.set_defaults(handler=cmd_token_create)
    revoke = token_commands.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("id", type=UUID)
    revoke.add_argument("--reason", required=True)
    revoke.set_defaults(handler=cmd_token_revoke)

    from closedloop.bootstrap import all_projections

    projection_names = [projection.name for projection in all_projections()]
    projections = commands.add_parser("projections", help="run, inspect or rebuild read models")
    projection_commands = projections.add_subparsers(dest="projections_command", required=True)
    for name, handler, text in (
        ("run", cmd_projections_run, "follow the event log (a worker process)"),
        ("status", cmd_projections_status, "position, head and lag of each read model"),
        (
            "rebuild",
            cmd_projections_rebuild,
            "replay read models from zero; readers see the old rows until each commits",
        ),
    ):
        sub = projection_commands.add_parser(name, help=text)
        sub.add_argument(
            "names",
            nargs="*",
            metavar="NAME",
            type=_projection_name(projection_names),
            help="read models (default: all): " + ", ".join(projection_names),
        )
        sub.set_defaults(handler=handler)

    history = commands.add_parser("history", help="print every event of one aggregate")
    history.add_argument("id", type=UUID)
    history.set_defaults(handler=cmd_history)

    show = commands.add_parser("show", help="print the state of one aggregate")
    show.add_argument("id", type=UUID)
    show.add_argument("--version", type=int, default=None, help="state at this version")
    show.set_defaults(handler=cmd_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        return handler(args, Settings())
    except DomainError as error:
        print(f"closedloop {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
