"""``closedloop``: the one command-line entry point."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from closedloop.domain.errors import DomainError
from closedloop.domain.service import ClosedLoop
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
        summary = load_demo(app, force=args.force)
    except StoreNotEmpty as refused:
        print(f"closedloop demo: {refused}", file=sys.stderr)
        return 1
    finally:
        app.close()
    print(format_summary(summary))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="closedloop",
        description="Event-sourced closed-loop management. The store is chosen by "
        "CLOSEDLOOP_DATABASE_URL (unset: ./closedloop.db).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="load a scripted assessment year of a forestry bureau")
    demo.add_argument("--force", action="store_true", help="load even if the store has events")
    demo.set_defaults(handler=cmd_demo)

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
