"""``simulate(scenario, out_dir)``: run a world and write its run directory as a whole.

The directory holds ``scenario.toml`` (the completed scenario), ``events.jsonl[.gz]`` (the
trace, its header with the run's provenance) and ``summary.json`` (``dvms.summary``'s one
writer). It is written into a temporary sibling and renamed onto ``out_dir`` at the end
(``dvms.rundir.RunDirectory``: an existing, non-empty ``out_dir`` is refused unless
``force``). However the run ends, the trace is closed and a summary written:

- it ran to its end: ``"status": "complete"``;
- SIGINT/SIGTERM (or ``KeyboardInterrupt``): the trace up to that point, open violations
  and migrations closed, ``"status": "interrupted"``; ``KeyboardInterrupt`` is re-raised;
- an exception: ``"status": "failed"`` with the exception, which is re-raised. A bad
  input found before the run starts (``InputError``) leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import simpy

from dvms.errors import InputError
from dvms.metrics import MetricsCollector
from dvms.provenance import trace_header
from dvms.rundir import RunDirectory, interruptible
from dvms.summary import build_summary, write_summary
from dvms.trace import TraceWriter
from sim.heap import long_lived_heap, paused_collector, settle
from sim.scenario import Scenario, scenario_to_dict, scenario_to_toml
from sim.world import Progress, World

__all__ = ["simulate", "trace_name"]

Sink = Callable[[dict[str, Any]], None]

TRACE_GZIP_LEVEL = 1
"""zlib level of a compressed trace: 3x faster than 6 on JSON lines, files ~25 % larger
(deflate at 6 cost 3-6 % of a large run's CPU)."""


def trace_name(scenario: Scenario) -> str:
    """The trace's file name in a run directory (``events.jsonl.gz`` when compressed)."""
    return "events.jsonl.gz" if scenario.trace.compress else "events.jsonl"


def _peak_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _header(sc: Scenario) -> dict[str, Any]:
    return trace_header({
        "seed": sc.run.seed,
        "hosts": sc.infrastructure.hosts,
        "vms": sc.infrastructure.hosts * sc.infrastructure.vms_per_host,
        "duration_s": sc.run.duration_s,
        "scheduler": sc.scheduler.name,
    })


def _fields(
    sc: Scenario, world: World | None, metrics: MetricsCollector, wall: float,
    vivaldi_error: float | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "seed": sc.run.seed,
        "scenario": scenario_to_dict(sc),
        "duration_s": sc.run.duration_s,
        "scheduler": sc.scheduler.name,
        **metrics.metrics(),
        "wall_s": wall,
        "peak_rss_mib": _peak_rss_mib(),
    }
    if world is None:
        return fields
    # events processed: trace events plus messages handed to behaviours
    processed = metrics.events + world.runtime.stats.delivered
    fields.update(
        hosts=len(world.infra.hosts),
        vms=len(world.infra.vms),
        sites=len(world.sites),
        overlay=sc.overlay.name if world.plan.spec.uses_overlay else None,
        energy_kwh=world.power.energy_kwh,
        messages=world.messages(),
        vivaldi_median_error=vivaldi_error,
        vms_lost=world.infra.lost_vms(),
        events_per_wall_s=processed / wall if wall > 0 else 0.0,
        messages_dropped=dict(sorted(world.runtime.stats.dropped.items())),
        simulated_s=float(world.env.now),
    )
    return fields


def simulate(
    scenario: Scenario,
    out_dir: str | Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
    on_event: Sink | None = None,
    env: simpy.Environment | None = None,
) -> dict[str, Any]:
    """Run ``scenario`` into ``out_dir`` (see module doc); return the summary.

    ``force`` replaces an existing run directory. ``on_event`` also receives every event
    (e.g. a live dashboard feed); ``env`` lets the caller supply the clock
    (``simpy.rt.RealtimeEnvironment`` for a live run).
    """
    started = time.perf_counter()
    sc = scenario
    directory = RunDirectory(out_dir, force=force)
    tmp = directory.open()
    metrics = MetricsCollector()
    world: World | None = None
    status, vivaldi_error = "complete", None
    error: BaseException | None = None
    running = False
    with interruptible() as guard:
        try:
            (tmp / "scenario.toml").write_text(scenario_to_toml(sc))
            with TraceWriter(
                tmp / trace_name(sc), header=_header(sc), compresslevel=TRACE_GZIP_LEVEL
            ) as writer:
                write = writer.write
                live = on_event

                def sink(event: dict[str, Any]) -> None:
                    metrics(event)
                    write(event)
                    if live is not None:
                        live(event)

                with paused_collector():
                    world = World(sc, sink, env)
                    world.start()
                running = True

                def report(now: float, duration: float, _events: int, violations: int) -> None:
                    settle()
                    if progress is not None:
                        progress(now, duration, metrics.events, violations)

                try:
                    with long_lived_heap():
                        world.run(report)
                except KeyboardInterrupt:
                    status = "interrupted"
                guard.disarm()
                if status == "interrupted":
                    with contextlib.suppress(Exception):  # stopped mid-step: best effort
                        world.finish()
                else:
                    world.finish()
                vivaldi_error = world.vivaldi_error()
        except InputError as exc:
            guard.disarm()
            if not running:  # bad input found before the run: nothing to keep
                directory.discard()
                raise
            status, error = "failed", exc
        except BaseException as exc:
            guard.disarm()
            if isinstance(exc, KeyboardInterrupt):
                status = "interrupted"
            else:
                status, error = "failed", exc
        wall = time.perf_counter() - started
        summary = build_summary(
            _fields(sc, world, metrics, wall, vivaldi_error), status=status, exception=error
        )
        write_summary(tmp / "summary.json", summary)
        directory.commit()
    if error is not None:
        raise error
    if status == "interrupted":
        raise KeyboardInterrupt(f"run interrupted; partial results in {directory.final}")
    return summary
