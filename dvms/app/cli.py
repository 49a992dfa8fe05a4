"""The ``dvms`` command. Each subcommand lives in ``dvms/app/commands/<name>.py`` and
provides ``register(subparsers)`` (adding its parser, with ``func`` set to its runner
``(args) -> int``). Errors derived from ``DvmsError`` become one line on stderr and
the error's exit status; usage errors (an unknown flag, a bad value) are one line too,
exit 2 (:class:`Parser`, inherited by every subcommand's parser).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from dvms import __version__
from dvms.errors import DvmsError

__all__ = ["Parser", "build_parser", "main"]

SUBCOMMANDS = (
    "demo", "simulate", "report", "dashboard", "agent", "cluster", "g5k", "campaign", "reproduce"
)


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit status 2.

    ``add_subparsers`` creates subcommand parsers of the parent's class, so every
    ``dvms`` subcommand (and theirs) inherits this.
    """

    subcommands: dict[str, argparse.ArgumentParser]
    """The subcommands' parsers, by name (set by ``build_parser``)."""

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {line} (see {self.prog} --help)\n")


def build_parser() -> Parser:
    parser = Parser(
        prog="dvms",
        description="Locality-aware decentralised VM scheduling: simulate, deploy, watch, report.",
    )
    parser.add_argument("--version", action="version", version=f"dvms {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"dvms.app.commands.{name}").register(sub)
    parser.subcommands = dict(sub.choices)
    return parser


def _parse(parser: Parser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse; an unknown flag is reported by the subcommand it was given to."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        owner = parser.subcommands.get(getattr(args, "command", None) or "", parser)
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = _parse(parser, argv)
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
