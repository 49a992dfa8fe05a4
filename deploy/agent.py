"""``dvms agent``: one process per real host running the node services on ``ThreadRuntime``.

The agent binds the node's ``LibvirtHypervisor`` to the same behaviours the simulator
runs (monitor, Vivaldi, overlay, DVMS protocol with a planner), talks to the other agents
over ZeroMQ with the run's CURVE keys, and writes ``events.jsonl.gz`` (``dvms/trace.py``)
and ``summary.json`` into its output directory when it stops (SIGTERM, SIGINT, or after
``duration_s``).

The node is put together by ``dvms.node`` (through ``deploy.agent_node.start_node``),
as every simulated host is; on a real host the monitor traces the violations itself.

Time: the runtime's clock (seconds since the agent started). The trace header records
``t0_unix``, the wall-clock time of ``t = 0``, so the traces of several agents can be
merged onto one time line (``deploy.cluster_agents.merge_traces``).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from deploy.agent_config import AgentConfig
from deploy.agent_node import start_node
from dvms.summary import write_summary

__all__ = ["run_agent"]

log = logging.getLogger(__name__)

TRACE_FLUSH_S = 1.0
"""The trace reaches the disk at least this often (live views tail it), however few
events were written."""


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Make SIGTERM/SIGINT set ``stop``; returns a function restoring the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore


def run_agent(cfg: AgentConfig, stop: threading.Event | None = None) -> dict[str, Any]:
    """Run until ``stop`` is set (or a signal, or ``duration_s``); returns the summary.

    A failure nobody handled in a service stops the agent: its summary says ``failed``
    (with the exception), then the failure is raised.
    """
    stop = stop or threading.Event()
    restore = _stop_on_signals(stop)
    cfg.output_dir.mkdir(parents=True, exist_ok=True)
    started_wall = time.time()
    node = start_node(cfg)
    deadline = cfg.duration_s if cfg.duration_s > 0 else float("inf")
    error: BaseException | None = None
    flushed = time.monotonic()
    try:
        while not stop.is_set() and node.runtime.now() < deadline:
            node.runtime.run(until=min(deadline, node.runtime.now() + 0.2))
            if time.monotonic() - flushed >= TRACE_FLUSH_S:
                node.trace.flush()
                flushed = time.monotonic()
    except Exception as exc:
        log.exception("agent %s: a service failed; stopping", cfg.node)
        error = exc
        raise
    finally:
        summary = node.stop(error)
        restore()
        summary["wall_s"] = time.time() - started_wall
        tmp = cfg.output_dir / "summary.json.tmp"
        write_summary(tmp, summary)
        tmp.replace(cfg.output_dir / "summary.json")
    return summary
