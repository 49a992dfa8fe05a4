"""Live mode: run ``dvms simulate`` in real time in this process and feed the dashboard.

The simulation runs on a thread over ``simpy.rt.RealtimeEnvironment`` (``factor = 1 /
speed`` wall seconds per simulated second, not strict: a slow step delays, never fails)
and hands every trace event to a :class:`LiveFeed` through ``sim.run.simulate``'s
``on_event`` hook, while still writing its run directory as usual. When the dashboard
stops (Ctrl-C), the simulation is stopped too and its directory is left with ``"status":
"interrupted"`` (:class:`LiveStop`).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import simpy

from dvms.dashboard.feed import LiveFeed, LiveSource
from dvms.dashboard.replay import power_model_of_scenario
from dvms.dashboard.state import InfraState
from dvms.errors import DvmsError, InputError, Interrupted

__all__ = ["LiveStop", "serve_live", "start_live"]


class LiveStop:
    """Asks a live simulation to stop (``request``) and waits until its directory is written."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.finished = threading.Event()

    def request(self, timeout_s: float = 30.0) -> bool:
        """Stop the run; True when it wrote its (interrupted) run directory in time."""
        self.requested.set()
        return self.finished.wait(timeout_s)


def start_live(
    scenario: Any,
    out: str | Path,
    *,
    speed: float = 1.0,
    aggregate_above: int = 1000,
    force: bool = False,
    stop: LiveStop | None = None,
) -> tuple[LiveSource, str]:
    """Start ``sim.run.simulate(scenario, out)`` in real time on a daemon thread.

    ``speed``: simulated seconds per wall second; ``force`` replaces an existing run
    directory; ``stop`` lets the caller end the run early. The simulation's failure is
    reported on the feed (and the page), never silently.
    """
    import simpy.rt

    from dvms.rundir import RunDirectory
    from sim.run import simulate

    if not (math.isfinite(speed) and 0 < speed <= 1000):
        raise InputError(f"--speed {speed}: must be in (0, 1000] for a live simulation")
    out = Path(out)
    RunDirectory(out, force=force)  # a bad --out is refused now, not on the thread
    control = stop or LiveStop()
    feed = LiveFeed()
    state = InfraState(power=power_model_of_scenario(scenario), aggregate_above=aggregate_above)
    feed.publish({"t": 0.0, "type": "header", "node": "world",
                  "host_cpu_capacity": scenario.infrastructure.host_cpu_capacity})

    def run() -> None:
        try:
            env = simpy.rt.RealtimeEnvironment(factor=1.0 / speed, strict=False)
            env.process(_report_clock(env, feed, 0.2 * speed, control))
            simulate(scenario, out, on_event=feed.publish, env=env, force=force)
        except KeyboardInterrupt:
            feed.close(f"interrupted; partial run in {out}")
        except DvmsError as exc:
            feed.close(str(exc))
        except Exception as exc:  # reported on the page, never a silent death
            feed.close(f"{type(exc).__name__}: {exc}")
        else:
            feed.close()
        finally:
            control.finished.set()

    threading.Thread(target=run, name="dvms-live-simulation", daemon=True).start()
    hosts, duration = scenario.infrastructure.hosts, scenario.run.duration_s
    what = (f"live simulation ({hosts} hosts, {duration:g} s at {speed:g}x real time, "
            f"results in {out})")
    return LiveSource(feed, state, speed=speed, t_end=duration), what


def _report_clock(
    env: simpy.Environment, feed: LiveFeed, period: float, stop: LiveStop
) -> Generator[simpy.Event, Any, None]:
    """A world-side process telling the feed the simulated time (≈ 5 times a wall second),
    and stopping the run (``KeyboardInterrupt`` out of the clock) when asked.

    Its events only interleave with the world's: their relative order is unchanged.
    """
    while True:
        if stop.requested.is_set():
            raise KeyboardInterrupt("live simulation stopped")
        feed.set_clock(env.now)
        yield env.timeout(period)


def serve_live(
    scenario: Any,
    out: str | Path,
    *,
    speed: float = 1.0,
    host: str | None = None,
    port: int = 9000,
    force: bool = False,
) -> int:
    """Run ``scenario`` live and serve the dashboard until Ctrl-C (for ``dvms simulate --live``).

    ``host``: None binds 127.0.0.1; an explicit address may be non-loopback (with a warning).
    """
    from dvms.dashboard.app import announce_and_serve, bind_socket, create_app

    address = host or "127.0.0.1"
    sock = bind_socket(address, port, explicit=host is not None)
    try:
        stop = LiveStop()
        source, what = start_live(scenario, out, speed=speed, force=force, stop=stop)
        app = create_app(source)
    except BaseException:
        sock.close()
        raise
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the server stops
        announce_and_serve(app, sock, address, what, "dvms simulate --live")
    if not stop.finished.is_set():
        stop.request()
        raise Interrupted(f"stopped; partial run in {out}/ (summary.json status "
                          '"interrupted")')
    return 0
