"""The lab's fake Kwapi: plausible watts from each lab node's measured CPU.

A ``PowerSampler`` thread of the fake API reads, every ``period_s``, the CPU time of each
node's cgroup (``LabNode.cgroup``: a cgroup v2 directory's ``cpu.stat`` ``usage_usec``, or
a v1 ``cpuacct.usage`` in ns; a relative path is looked up under ``/sys/fs/cgroup/unified``
then ``/sys/fs/cgroup``) and turns the cores used since the last sample into watts:
``idle_w + core_w × min(cores used, node cores)``. A node without a cgroup (or whose cgroup
is gone) draws ``idle_w``. ``timeseries`` answers in Kwapi's shape (``uid``,
``timestamps``, ``values``, ``from``, ``to``, ``resolution``, ``type``), the one execo's
``get_hosts_metric`` reads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from deploy.g5k.lab.spec import LabNode, LabSpec

__all__ = ["CORE_W", "IDLE_W", "PowerSampler", "cgroup_usage_s"]

IDLE_W = 95.0
"""A Grid'5000 node of the 2010s idles around 90-110 W."""
CORE_W = 25.0
"""Watts per busy core."""
KEEP = 4 * 3600
"""Samples kept per node (one a second: four hours)."""


def _cgroup_dir(path: str) -> Path | None:
    p = Path(path)
    if p.is_absolute():
        return p if p.is_dir() else None
    for root in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        if (root / p).is_dir():
            return root / p
    return None


def cgroup_usage_s(path: str) -> float | None:
    """CPU seconds used by the cgroup ``path`` so far (None: no such cgroup)."""
    d = _cgroup_dir(path) if path else None
    if d is None:
        return None
    try:
        for line in (d / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    except (OSError, ValueError):
        pass
    try:
        return int((d / "cpuacct.usage").read_text()) / 1e9
    except (OSError, ValueError):
        return None


class PowerSampler:
    """Samples every node of ``spec`` each ``period_s`` on a daemon thread."""

    def __init__(self, spec: LabSpec, period_s: float = 1.0) -> None:
        self.period_s = period_s
        self.nodes: dict[str, LabNode] = {n.short: n for _, _, n in spec.all_nodes()}
        self.samples: dict[str, deque[tuple[int, float]]] = {
            k: deque(maxlen=KEEP) for k in self.nodes}
        self._last: dict[str, tuple[float, float | None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lab-power", daemon=True)

    def start(self) -> PowerSampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.sample()

    def watts(self, node: LabNode, now: float) -> float:
        used = cgroup_usage_s(node.cgroup)
        before = self._last.get(node.short)
        self._last[node.short] = (now, used)
        if used is None or before is None or before[1] is None or now <= before[0]:
            return IDLE_W
        cores = max(0.0, (used - before[1]) / (now - before[0]))
        return IDLE_W + CORE_W * min(cores, float(node.cores))

    def sample(self) -> None:
        now = time.time()
        with self._lock:
            for short, node in self.nodes.items():
                self.samples[short].append((int(now), round(self.watts(node, now), 3)))

    def timeseries(self, nodes: list[str], t0: int | None, t1: int | None) -> dict[str, Any]:
        """Kwapi's answer for ``nodes`` (short names) over [t0, t1] (None: unbounded)."""
        items = []
        with self._lock:
            for short in nodes:
                if short not in self.samples:
                    continue
                got = [(ts, w) for ts, w in self.samples[short]
                       if (t0 is None or ts >= t0) and (t1 is None or ts <= t1)]
                items.append({
                    "uid": short, "type": "timeseries",
                    "from": t0 if t0 is not None else (got[0][0] if got else 0),
                    "to": t1 if t1 is not None else (got[-1][0] if got else 0),
                    "resolution": int(self.period_s) or 1,
                    "timestamps": [ts for ts, _ in got], "values": [w for _, w in got]})
        return {"items": items, "total": len(items)}
