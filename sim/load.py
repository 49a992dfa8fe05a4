"""Load: VMPlaceS's workload — Poisson load events with normally distributed loads.

- ``LoadDistribution.draw(rng)``: ``max(N(mean, sd), 0)`` (or a uniform with the same mean
  and sd), rounded to the nearest multiple of ``slot`` (halves up), capped at ``cap``
  (``max_per_vcpu × vcpus``; VMPlaceS: 100 for its 1-vCPU VMs).
- ``PoissonLoad``: a Poisson process of total rate ``vms / period_s``; each event sets one VM
  drawn uniformly to a new drawn load (chained callbacks on simpy's queue, no process).
  Initial loads (at t=0) are drawn from the same distribution (``initial = "draw"``) or
  are zero.
- ``read_load_trace(path)``: a replayable trace of load events, CSV with a header
  ``t,vm,load`` or JSON lines ``{"t": .., "vm": .., "load": ..}``, sorted by time (stable).

All randomness comes from the ``random.Random`` passed in.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import simpy

from dvms.errors import InputError

__all__ = [
    "LoadDistribution",
    "LoadEvent",
    "PoissonLoad",
    "poisson_arrivals",
    "read_load_trace",
    "replay_process",
]

V = TypeVar("V")
Process = Generator[simpy.Event, Any, None]

SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True, slots=True)
class LoadDistribution:
    """How a new load is drawn (percent of a core)."""

    mean: float = 60.0
    sd: float = 20.0
    slot: float = 10.0
    """Rounding step; 0 = no rounding."""
    cap: float = 100.0
    distribution: str = "normal"
    """``"normal"`` or ``"uniform"`` (on ``[mean − sd√3, mean + sd√3]``, same moments)."""

    def __post_init__(self) -> None:
        if self.distribution not in ("normal", "uniform"):
            raise ValueError(f"load distribution {self.distribution!r}: normal or uniform")
        if self.sd < 0 or self.slot < 0 or not self.cap > 0:
            raise ValueError(f"bad load distribution {self!r}")

    def draw(self, rng: random.Random) -> float:
        if self.distribution == "normal":
            x = rng.gauss(self.mean, self.sd)
        else:
            x = rng.uniform(self.mean - self.sd * SQRT3, self.mean + self.sd * SQRT3)
        return self.shape(x)

    def shape(self, x: float) -> float:
        """Clamp at 0, round to the slot (halves up), cap."""
        x = max(x, 0.0)
        if self.slot > 0:
            x = math.floor(x / self.slot + 0.5) * self.slot
        return min(x, self.cap)


def poisson_arrivals(rng: random.Random, rate_per_s: float) -> Iterator[float]:
    """Inter-arrival times (s) of a Poisson process of the given rate (endless)."""
    if not rate_per_s > 0:
        raise ValueError(f"poisson rate {rate_per_s!r} must be > 0")
    expo = rng.expovariate
    while True:
        yield expo(rate_per_s)


@dataclass(frozen=True, slots=True)
class LoadEvent:
    t: float
    vm: str
    load: float


def _row(path: Path, number: int, t: object, vm: object, load: object) -> LoadEvent:
    try:
        tf, lf = float(t), float(load)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{path}: line {number}: t and load must be numbers") from None
    if not (math.isfinite(tf) and tf >= 0 and math.isfinite(lf) and lf >= 0):
        raise InputError(f"{path}: line {number}: t and load must be finite and >= 0")
    if not isinstance(vm, str) or not vm:
        raise InputError(f"{path}: line {number}: vm must be a VM name")
    return LoadEvent(tf, vm, lf)


def read_load_trace(path: str | Path) -> list[LoadEvent]:
    """Load events from a CSV (``t,vm,load`` header) or JSONL file, sorted by ``t``."""
    p = Path(path)
    events: list[LoadEvent] = []
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"load trace {str(p)!r}: cannot read ({exc})") from None
    if p.suffix in (".jsonl", ".json") or text.lstrip().startswith("{"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                raise InputError(f"{p}: line {number} is not JSON") from None
            if not isinstance(obj, dict):
                raise InputError(f"{p}: line {number} is not a JSON object")
            events.append(_row(p, number, obj.get("t"), obj.get("vm"), obj.get("load")))
    else:
        reader = csv.DictReader(text.splitlines())
        if reader.fieldnames is None or not {"t", "vm", "load"} <= set(reader.fieldnames):
            raise InputError(f"{p}: CSV load trace needs a header with t,vm,load")
        for number, rec in enumerate(reader, start=2):
            events.append(_row(p, number, rec.get("t"), rec.get("vm"), rec.get("load")))
    events.sort(key=lambda e: e.t)
    return events


class PoissonLoad:
    """The Poisson load on simpy's clock without a simpy process: one reused event object,
    re-armed by its own callback, so an arrival costs a heap entry and a call (no
    ``Timeout``, no generator resumption).

    At Poisson times of ``rate_per_s``, a uniform VM of ``vms`` gets a drawn load. Draws,
    times and scheduling order are those of the generator it replaces (``start()`` draws
    the first gap; each arrival sets a load, then draws and schedules the next one).
    """

    __slots__ = ("_draw", "_env", "_expo", "_n", "_rand", "_rate", "_rng", "_set_load", "_vms",
                 "callbacks")
    _ok = True  # read by simpy after the callbacks ran: an event that succeeded

    def __init__(
        self,
        env: simpy.Environment,
        vms: Sequence[V],
        rate_per_s: float,
        rng: random.Random,
        distribution: LoadDistribution,
        set_load: Callable[[V, float], None],
    ) -> None:
        self._env = env
        self._vms: Sequence[Any] = vms
        self._n = len(vms)
        self._rate = rate_per_s
        self._rng = rng
        self._expo, self._rand, self._draw = rng.expovariate, rng.random, distribution.draw
        self._set_load: Callable[[Any, float], None] = set_load
        self.callbacks: tuple[Callable[[PoissonLoad], None], ...] | None = None

    def start(self) -> None:
        """Schedule the first arrival (nothing when there are no VMs)."""
        if self._n:
            self._arm()

    def _arm(self) -> None:
        self.callbacks = _ARRIVAL
        self._env.schedule(self, simpy.events.NORMAL, self._expo(self._rate))  # type: ignore[arg-type]

    def _arrive(self) -> None:
        self._set_load(self._vms[int(self._rand() * self._n)], self._draw(self._rng))
        self._arm()


def _on_arrival(load: PoissonLoad) -> None:
    load._arrive()


_ARRIVAL = (_on_arrival,)


def replay_process(
    env: simpy.Environment,
    events: Sequence[LoadEvent],
    by_id: Mapping[str, V],
    set_load: Callable[[V, float], None],
    cap: float = math.inf,
) -> Process:
    """A simpy process replaying ``events`` (sorted by time) at their times, loads capped."""
    for ev in events:
        delay = ev.t - env.now
        if delay > 0:
            yield env.timeout(delay)
        set_load(by_id[ev.vm], min(ev.load, cap))
