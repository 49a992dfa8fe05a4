"""The live dashboard of a Grid'5000 run, fed by the agents' traces while they run.

``serve_agents`` serves the dashboard (``dvms.dashboard``, the same page as ``dvms
simulate --live``) on ``127.0.0.1:PORT`` from a daemon thread, and polls every agent's
trace over ssh (its ``events.jsonl.gz`` inflated on the node by the agent's Python: what
the agent has flushed so far, up to the stream's last flushed block), shifting each agent's
events onto the earliest agent's clock as ``merge_traces`` does, plus the load events
``load`` applies (``WORKDIR/loads.jsonl``). It returns the function that stops both.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Callable
from typing import Any

from deploy.g5k.agents import AgentRecord, load_agents, run_each
from deploy.g5k.state import ExperimentState

__all__ = ["AgentTail", "serve_agents"]


class AgentTail:
    """The agents' traces read so far; ``poll`` returns the new events on one time line."""

    def __init__(self, state: ExperimentState) -> None:
        self.state = state
        self.records: dict[str, AgentRecord] = load_agents(state.workdir)
        self.seen: dict[str, int] = dict.fromkeys(self.records, 0)
        self.t0: dict[str, float] = {}
        self.loads_seen = 0
        self.vm_host: dict[str, str] = {}
        """Where the agents' migrations put each VM (``migration.end`` seen so far)."""

    def origin(self) -> float | None:
        return min(self.t0.values()) if self.t0 else None

    def poll(self, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        names = list(self.records)
        results = run_each([self.records[n].host for n in names],
                           [_read_command(self.records[n]) for n in names], timeout_s)
        fresh: list[tuple[str, dict[str, Any]]] = []
        for name, r in zip(names, results, strict=True):
            lines = [ln for ln in r.output.splitlines() if ln.startswith("{")]
            for ln in lines[self.seen[name]:]:
                try:
                    rec = json.loads(ln)
                except ValueError:
                    break  # a line cut by the stream's end: read again next time
                self.seen[name] += 1
                if rec.get("type") == "header":  # t0_unix: where its t = 0 is
                    self.t0[name] = float(rec.get("t0_unix", time.time()))
                    continue
                fresh.append((name, rec))
        origin = self.origin()
        if origin is None:
            return []
        out = [{**e, "t": round(float(e.get("t", 0.0)) + self.t0.get(n, origin) - origin, 6)}
               for n, e in fresh]
        out += self._loads(origin)
        out.sort(key=lambda e: e["t"])
        for e in out:  # a load event is logged with the VM's first host: follow migrations
            if e.get("type") == "migration.end":
                self.vm_host[str(e["vm"])] = str(e["dst"])
            elif e.get("type") == "load" and str(e.get("vm")) in self.vm_host:
                e["host"] = e["node"] = self.vm_host[str(e["vm"])]
        return out

    def _loads(self, origin: float) -> list[dict[str, Any]]:
        from deploy.cluster_agents import load_events
        from deploy.g5k.collect import LOADS

        events = load_events(self.state.workdir / LOADS, origin)
        new, self.loads_seen = events[self.loads_seen:], len(events)
        return new


_INFLATE = ("import sys, zlib; d = zlib.decompressobj(31); "
            "sys.stdout.write(d.decompress(open(sys.argv[1], 'rb').read())"
            ".decode('utf-8', 'replace'))")
"""Decompress what a gzip stream being written holds so far (``zcat`` prints nothing of a
stream without its end)."""


def _read_command(rec: AgentRecord) -> str:
    python = rec.command.rsplit(" -m dvms agent ", 1)[0] or "python3"
    return (f"{shlex.quote(python)} -c {shlex.quote(_INFLATE)} "
            f"{shlex.quote(rec.dir + '/events.jsonl.gz')} 2>/dev/null")


def serve_agents(state: ExperimentState, port: int, *, period_s: float = 2.0,
                 progress: Callable[[str], None] = print) -> Callable[[], None]:
    """Start the dashboard on ``127.0.0.1:port`` fed by the agents; returns ``stop``."""
    import uvicorn

    from dvms.dashboard.app import bind_socket, create_app
    from dvms.dashboard.feed import LiveFeed, LiveSource
    from dvms.dashboard.state import InfraState

    sock = bind_socket("127.0.0.1", port, explicit=False)
    feed = LiveFeed()
    tail = AgentTail(state)
    capacity = _capacity(state)
    feed.publish({"t": 0.0, "type": "header", "node": "world",
                  **({"host_cpu_capacity": capacity} if capacity else {})})
    app = create_app(LiveSource(feed, InfraState()), title="dvms g5k")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="websockets-sansio",
                                           lifespan="on"))
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(period_s):
            try:
                for event in tail.poll():
                    feed.publish(event)
            except Exception as exc:  # shown on the page, never a silent death
                feed.close(f"{type(exc).__name__}: {exc}")
                return
            origin = tail.origin()
            if origin is not None:
                feed.set_clock(time.time() - origin)
        feed.close()

    threads = [threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                name="dvms-g5k-dashboard", daemon=True),
               threading.Thread(target=poll, name="dvms-g5k-tail", daemon=True)]
    for t in threads:
        t.start()
    progress(f"dashboard: http://127.0.0.1:{sock.getsockname()[1]}/ (live, from the agents' "
             "traces)")

    def shutdown() -> None:
        stop.set()
        server.should_exit = True
        for t in threads:
            t.join(timeout=10)
        sock.close()

    return shutdown


def _capacity(state: ExperimentState) -> float | None:
    """The CPU capacity the agents declare (the first agent's config copy)."""
    import tomllib

    for path in sorted((state.workdir / "agents").glob("*.toml")):
        try:
            cap = tomllib.loads(path.read_text()).get("capacity", {}).get("cpu")
        except (OSError, ValueError):
            continue
        if isinstance(cap, int | float):
            return float(cap)
    return None
