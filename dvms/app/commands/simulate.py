"""``dvms simulate [SCENARIO.toml] [flags]``: run a simulation, write its results.

Writes ``DIR/summary.json``, ``DIR/events.jsonl.gz`` and ``DIR/scenario.toml`` (the
completed scenario, seed included), as a whole (``sim.run.simulate``): an existing DIR is
refused unless ``--force``; Ctrl-C (or SIGTERM) leaves DIR with ``"status":
"interrupted"`` and exits 130. Without a scenario file, the embedded default runs
(Grid'5000-like sites, 256 hosts, one simulated hour). Flags override the scenario's
fields. A progress bar (virtual time, events per wall second, violations so far) goes to
stderr, the summary table to stdout.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dvms.app.live import LiveStop, serve_live, start_live
from dvms.dashboard.feed import LiveSource
from dvms.errors import InputError, Interrupted
from dvms.geo import SITE_PRESETS
from dvms.rundir import RunDirectory
from dvms.summary import summary_table
from sim.run import simulate
from sim.scenario import load_scenario

__all__ = [
    "LIVE_ONLY",
    "add_arguments",
    "check_live_flags",
    "parse_simulate_args",
    "register",
    "run",
    "scenario_from_args",
    "start_live_simulation",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulate flags (shared with ``dvms dashboard --simulate``)."""
    parser.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO.toml",
        help="scenario file (default: the embedded default)",
    )
    parser.add_argument("--hosts", type=int, metavar="N", help="number of hosts")
    parser.add_argument("--vms-per-host", type=int, metavar="K", help="VMs per host")
    parser.add_argument(
        "--sites",
        metavar="SITES",
        help="a preset (grid5000, wide-area) or a comma-separated list of site names",
    )
    parser.add_argument("--duration", type=float, metavar="S", help="simulated seconds")
    parser.add_argument("--scheduler", metavar="NAME", help="none, centralized, dvms, ...")
    parser.add_argument("--overlay", metavar="NAME", help="lbo, ring or random")
    parser.add_argument(
        "--planner",
        metavar="NAME",
        help="repair, cpsat, or your own by import path: package.module:Class",
    )
    parser.add_argument("--seed", type=int, metavar="N", help="random seed")
    parser.add_argument("--out", metavar="DIR", help="output directory (default runs/<name>)")
    parser.add_argument(
        "--force", action="store_true", help="replace --out if it holds a previous run"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    parser.add_argument(
        "--live",
        action="store_true",
        help="run in real time and watch it in the dashboard (http://127.0.0.1:9000)",
    )
    parser.add_argument(
        "--speed", type=float, metavar="X", help="with --live: simulated s per wall s (1)"
    )
    parser.add_argument(
        "--host", metavar="ADDR", help="with --live: dashboard bind address (127.0.0.1)"
    )
    parser.add_argument("--port", type=int, metavar="P", help="with --live: dashboard port (9000)")


LIVE_ONLY = ("speed", "host", "port")
"""Flags that only mean something with ``--live``."""


def check_live_flags(args: argparse.Namespace) -> None:
    """``InputError`` for a live-only flag given without ``--live`` (``--host 16`` is
    probably ``--hosts 16``)."""
    if args.live:
        return
    given = [f"--{name}" for name in LIVE_ONLY if getattr(args, name, None) is not None]
    if given:

        hint = " (did you mean --hosts?)" if "--host" in given else ""
        raise InputError(f"{', '.join(given)} only with --live{hint}")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="run a simulation (default: the embedded Grid'5000-like scenario)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


FLAG_FIELDS = {
    "hosts": "infrastructure.hosts",
    "vms_per_host": "infrastructure.vms_per_host",
    "duration": "run.duration_s",
    "scheduler": "scheduler.name",
    "overlay": "overlay.name",
    "planner": "scheduler.planner",
    "seed": "run.seed",
}
"""Scenario field set by each flag (``dvms simulate``'s, and those of them ``demo`` has)."""


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The scenario fields the given flags set (flags a command lacks are skipped)."""
    out: dict[str, Any] = {
        field: getattr(args, flag)
        for flag, field in FLAG_FIELDS.items()
        if getattr(args, flag, None) is not None
    }
    sites_flag = getattr(args, "sites", None)
    if sites_flag is not None:
        sites = [s.strip() for s in sites_flag.split(",") if s.strip()]
        one_preset = len(sites) == 1 and "," not in sites_flag and sites[0] in SITE_PRESETS
        out["infrastructure.sites"] = sites[0] if one_preset else sites
    return out


def scenario_from_args(args: argparse.Namespace) -> Any:
    """The validated scenario the flags describe (``InputError`` on a bad field)."""

    return load_scenario(args.scenario, flag_overrides(args))


def _out_dir(args: argparse.Namespace, name: str) -> Path:
    if args.out:
        return Path(args.out)
    base = Path("runs") / (name or time.strftime("%Y%m%d-%H%M%S"))
    candidate, n = base, 1
    while candidate.exists() and not args.out and not name:
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def run(args: argparse.Namespace) -> int:
    import sys

    from rich.console import Console


    check_live_flags(args)
    scenario = scenario_from_args(args)
    out = _out_dir(args, scenario.run.name)
    RunDirectory(out, force=args.force)  # refuse a bad --out before anything runs
    if args.live:
        speed = 1.0 if args.speed is None else args.speed
        if not speed > 0:
            raise InputError(f"--speed {speed}: must be > 0")

        port = 9000 if args.port is None else args.port
        return serve_live(scenario, out, speed=speed, host=args.host, port=port,
                          force=args.force)
    try:
        summary = _simulate(args, scenario, out)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; partial run in {out}/ (summary.json status "
                          "\"interrupted\")") from None
    if not args.quiet:
        Console().print(summary_table(summary))
    print(
        f"results in {out}/ (summary.json, {_trace_name(scenario)}, scenario.toml)",
        file=sys.stdout if not args.quiet else sys.stderr,
    )
    return 0


def _simulate(args: argparse.Namespace, scenario: Any, out: Path) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


    started = time.perf_counter()
    if args.quiet:
        return simulate(scenario, out, force=args.force)
    err = Console(stderr=True)
    columns = (
        TextColumn("[bold]simulate"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("run", total=scenario.run.duration_s, info="starting")

        def progress(now: float, duration: float, events: int, violations: int) -> None:
            wall = max(time.perf_counter() - started, 1e-9)
            info = (
                f"t={now:,.0f}/{duration:,.0f} s  {events / wall:,.0f} events/s  "
                f"{violations:,} violations"
            )
            bar.update(task, completed=now, info=info)

        return simulate(scenario, out, force=args.force, progress=progress)


def _trace_name(scenario: Any) -> str:
    return "events.jsonl.gz" if scenario.trace.compress else "events.jsonl"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dvms simulate`` with ``argv`` (for scripts and tests)."""
    from dvms.app.cli import main as cli_main

    return cli_main(["simulate", *(argv or [])])


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2 (InputError), not usage text
        raise InputError(f"--simulate: {message}")


def parse_simulate_args(argv: Sequence[str]) -> argparse.Namespace:
    """``dvms simulate``'s flags, parsed the same way (InputError on a bad one)."""
    parser = _Parser(prog="dvms dashboard --simulate", add_help=False)
    add_arguments(parser)
    return parser.parse_args(list(argv))


def start_live_simulation(
    argv: Sequence[str],
    *,
    speed: float = 1.0,
    aggregate_above: int = 1000,
    stop: LiveStop | None = None,
) -> tuple[LiveSource, str]:
    """Validate ``dvms simulate ARGV`` and start it on a daemon thread, in real time.

    Returns the dashboard source and a description. The run's directory is ``--out``
    (default ``runs/live-<time>``; ``--force`` replaces an existing one).
    """
    args = parse_simulate_args(argv)
    scenario = scenario_from_args(args)
    out = Path(args.out) if args.out else Path("runs") / time.strftime("live-%Y%m%d-%H%M%S")
    return start_live(scenario, out, speed=speed, aggregate_above=aggregate_above,
                      force=args.force, stop=stop)
