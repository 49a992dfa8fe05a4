"""``dvms dashboard [RUN_DIR] [--host H] [--port P] [--simulate ...]``: the web dashboard.

Replays a recorded run (play/pause/seek/speed), or with ``--simulate`` runs a simulation
in real time inside this process and shows it live. Binds 127.0.0.1 unless ``--host``
names another address explicitly.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["HOST_ENV", "register", "run"]

HOST_ENV = "DVMS_DASHBOARD_HOST"
"""A default bind address from the environment; non-loopback ones still need --host."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="web dashboard: replay a run directory, or watch a live simulation",
        description="Serve the dashboard (default http://127.0.0.1:9000/) for a recorded run "
        "(RUN_DIR) or a simulation run live in this process (--simulate [simulate options]).",
    )
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="run directory to replay")
    parser.add_argument(
        "--host", default=None,
        help="bind address (default 127.0.0.1); a non-loopback address is only used when "
        "given here explicitly",
    )
    parser.add_argument("--port", type=int, default=9000, help="port (default 9000; 0 = any)")
    parser.add_argument("--speed", type=float, default=None,
                        help="replay: trace seconds per wall second (default 10); "
                        "--simulate: real-time factor (default 1)")
    parser.add_argument("--paused", action="store_true", help="replay: start paused")
    parser.add_argument("--rate", type=float, default=5.0, help="frames per second (<= 5)")
    parser.add_argument("--aggregate-above", type=int, default=1000, metavar="N",
                        help="show per-site aggregates instead of hosts above N hosts")
    parser.add_argument(
        "--simulate", nargs=argparse.REMAINDER, default=None, metavar="SIMULATE_ARGS",
        help="run `dvms simulate SIMULATE_ARGS` live in real time (must come last)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dvms.dashboard.app import Source, announce_and_serve, bind_socket, create_app
    from dvms.errors import InputError

    if (args.run_dir is None) == (args.simulate is None):
        raise InputError("give either RUN_DIR (replay) or --simulate [options] (live run)")
    if not 0 < args.rate <= 5:
        raise InputError(f"--rate {args.rate}: must be in (0, 5] frames per second")
    if args.aggregate_above < 0:
        raise InputError(f"--aggregate-above {args.aggregate_above}: must be >= 0")
    explicit = args.host is not None
    host = args.host or os.environ.get(HOST_ENV) or "127.0.0.1"
    sock = bind_socket(host, args.port, explicit=explicit)
    source: Source
    stop = None
    try:
        if args.simulate is not None:
            from dvms.app.commands.simulate import start_live_simulation
            from dvms.app.live import LiveStop

            stop = LiveStop()
            source, what = start_live_simulation(
                args.simulate, speed=args.speed or 1.0, aggregate_above=args.aggregate_above,
                stop=stop,
            )
        else:
            from dvms.dashboard.replay import load_replay

            try:
                source = load_replay(args.run_dir, speed=args.speed or 10.0,
                                     aggregate_above=args.aggregate_above)
            except ValueError as exc:
                raise InputError(f"--speed: {exc}") from None
            source.playing = not args.paused
            what = f"replay of {args.run_dir}"
            if source.warning:
                print(f"dvms dashboard: warning: {source.warning}", file=sys.stderr)
        app = create_app(source, rate_hz=args.rate)
    except BaseException:
        sock.close()
        raise
    try:
        announce_and_serve(app, sock, host, what, "dvms dashboard")
    finally:
        if stop is not None and not stop.finished.is_set():
            stop.request()
    return 0

