"""The ``dvms`` command. Each subcommand lives in ``dvms/app/commands/<name>.py`` and
provides ``register(subparsers)`` (adding its parser, with ``func`` set to its runner
``(args) -> int``). Errors derived from ``DvmsError`` become one line on stderr and
the error's exit status; argparse usage errors exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dvms import __version__
from dvms.errors import DvmsError

__all__ = ["main"]

SUBCOMMANDS = (
    "demo", "simulate", "report", "dashboard", "agent", "cluster", "campaign", "reproduce"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dvms",
        description="Locality-aware decentralised VM scheduling: simulate, deploy, watch, report.",
    )
    parser.add_argument("--version", action="version", version=f"dvms {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"dvms.app.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        status: int = args.func(args)
    except DvmsError as exc:
        print(f"dvms {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print(f"dvms {args.command}: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
