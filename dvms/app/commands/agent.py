"""``dvms agent CONFIG.toml``: run this host's dvms node on real libvirt (see docs/deploy.md).

Stops cleanly on SIGTERM/SIGINT (or after ``duration_s``), writing ``events.jsonl.gz`` and
``summary.json`` into the configured output directory.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "agent", help="run this host's dvms node on real libvirt",
        description="Run one real host's node over libvirt, built by the same node assembly "
                    "as a simulated host (Vivaldi, monitor, and the scheduler's services: "
                    "dvms, centralized or none, from the config's [scheduler] [overlay] "
                    "[dvms] [vivaldi] [monitor] tables, a scenario's schema), talking to the "
                    "other agents over ZeroMQ/CURVE. See docs/deploy.md.")
    parser.add_argument("config", type=Path, help="the agent's TOML configuration")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deploy.agent import run_agent
    from deploy.agent_config import load_agent_config

    cfg = load_agent_config(args.config)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format=f"%(asctime)s {cfg.node} %(name)s %(levelname)s %(message)s")
    summary = run_agent(cfg)
    print(f"agent {cfg.node}: stopped after {summary.get('wall_s', 0.0):.1f} s; "
          f"trace and summary in {cfg.output_dir}")
    return 0
