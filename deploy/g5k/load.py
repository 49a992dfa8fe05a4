"""Load events for the VMs: VMPlaceS's generator, and readers for event files.

- **Generator** (``generate``, seeded): VMPlaceS's load injector — a Poisson process of
  total rate ``vms / period_s`` over ``duration_s``; each event sets one VM, drawn
  uniformly, to ``max(N(mean, sd), 0)`` rounded to a multiple of ``100 / slots`` (halves
  up; VMPlaceS's ``nbcpuconsumptionslots = 10`` gives 0, 10, ..., 100) and capped at
  ``100 × vcpus``. The same distribution as the simulator's ``sim.load`` (re-expressed:
  ``deploy`` never imports ``sim``).
- **Files** (``read_events``): JSON lines ``{"t": s, "vm": name, "load": percent}``, or the
  original experiment's XML (``<event type="update_cpu_load" time="0.63" target="vm-103"
  location="10.27.216.103" value="30"/>`` under one root); sorted by time (stable). A
  malformed line is an ``InputError`` naming the file and the line number.
- ``check_targets``: an event for a VM the experiment does not have is an ``InputError``
  (file and line), raised before any event is applied.
- ``replay``: applies each event at its time from the start (``apply`` is, on Grid'5000,
  ``stress.set_load`` over ssh); an event that fails is reported and the replay goes on
  (a VM whose cpulimit or stress died gets its load back at its next event).
"""

from __future__ import annotations

import json
import math
import random
import time
import xml.parsers.expat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvms.config import Section, option
from dvms.errors import InputError

__all__ = [
    "LoadConfig",
    "LoadEvent",
    "Replay",
    "check_targets",
    "draw_load",
    "events_jsonl",
    "events_xml",
    "generate",
    "read_events",
    "replay",
]


@dataclass(frozen=True)
class LoadConfig(Section):
    """The ``[load]`` table."""

    duration_s: float = option(3600.0, "How long events are generated (s).", lo=0,
                               lo_open=True)
    period_s: float = option(300.0, "Mean interval between two events of one VM (s).", lo=0,
                             lo_open=True)
    mean: float = option(70.0, "Mean load (percent of a core).", lo=0)
    sd: float = option(30.0, "Standard deviation of the load.", lo=0)
    slots: int = option(10, "Load levels: loads are multiples of 100 / slots.", lo=1, hi=100)
    events: str = option("", "An event file (JSONL or the talk's XML) instead of generating.")


@dataclass(frozen=True, slots=True)
class LoadEvent:
    t: float
    """Seconds from the start of the load step."""
    vm: str
    load: float
    """Percent of one core."""
    line: int = 0
    """Line in the event file (0: generated)."""


def draw_load(rng: random.Random, mean: float, sd: float, slots: int, cap: float) -> float:
    """``max(N(mean, sd), 0)`` rounded to a multiple of ``100 / slots``, at most ``cap``."""
    step = 100.0 / slots
    x = max(rng.gauss(mean, sd), 0.0)
    return min(math.floor(x / step + 0.5) * step, cap)


def generate(vms: Sequence[str], cfg: LoadConfig, seed: int,
             vcpus: Mapping[str, int] | None = None) -> list[LoadEvent]:
    """VMPlaceS's Poisson load events for ``vms`` (time-ordered, reproducible by seed)."""
    if not vms:
        return []
    rng = random.Random(seed)
    rate = len(vms) / cfg.period_s
    out: list[LoadEvent] = []
    t = rng.expovariate(rate)
    while t <= cfg.duration_s:
        vm = vms[rng.randrange(len(vms))]
        cap = 100.0 * (vcpus or {}).get(vm, 1)
        out.append(LoadEvent(round(t, 3), vm, draw_load(rng, cfg.mean, cfg.sd, cfg.slots, cap)))
        t += rng.expovariate(rate)
    return out


def _event(path: Path, line: int, t: Any, vm: Any, load: Any) -> LoadEvent:
    where = f"{path}: line {line}"
    if isinstance(t, bool) or isinstance(load, bool):
        raise InputError(f"{where}: time and load must be numbers")
    try:
        tf = float(t)
        lf = float(load)
    except (TypeError, ValueError):
        raise InputError(f"{where}: time and load must be numbers (got {t!r}, {load!r})") \
            from None
    if not (math.isfinite(tf) and tf >= 0 and math.isfinite(lf) and lf >= 0):
        raise InputError(f"{where}: time and load must be finite and >= 0")
    if not isinstance(vm, str) or not vm.strip():
        raise InputError(f"{where}: the VM must be a name (got {vm!r})")
    return LoadEvent(tf, vm.strip(), lf, line)


def _read_jsonl(path: Path, text: str) -> list[LoadEvent]:
    events = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {number}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not {"t", "vm", "load"} <= obj.keys():
            raise InputError(f"{path}: line {number}: expected an object with t, vm and load")
        extra = sorted(set(obj) - {"t", "vm", "load"})
        if extra:
            raise InputError(f"{path}: line {number}: unknown field {extra[0]!r}")
        events.append(_event(path, number, obj["t"], obj["vm"], obj["load"]))
    return events


def _read_xml(path: Path, text: str) -> list[LoadEvent]:
    events: list[LoadEvent] = []
    depth = 0
    parser = xml.parsers.expat.ParserCreate()

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        line = parser.CurrentLineNumber
        if depth == 1:
            return
        if name != "event" or depth != 2:
            raise InputError(f"{path}: line {line}: unexpected <{name}> (expected <event> "
                             "under the root)")
        kind = attrs.get("type", "")
        if kind != "update_cpu_load":
            raise InputError(f"{path}: line {line}: event type {kind!r}: only "
                             "'update_cpu_load' is known")
        missing = [a for a in ("time", "target", "value") if a not in attrs]
        if missing:
            raise InputError(f"{path}: line {line}: event without {missing[0]!r}")
        events.append(_event(path, line, attrs["time"], attrs["target"], attrs["value"]))

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError as exc:
        raise InputError(f"{path}: line {exc.lineno}: not XML "
                         f"({xml.parsers.expat.ErrorString(exc.code)})") from None
    return events


def read_events(path: str | Path) -> list[LoadEvent]:
    """Events of a JSONL or XML file, sorted by time (stable: file order within a time)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"load.events = {str(p)!r}: cannot read ({exc})") from None
    events = _read_xml(p, text) if text.lstrip().startswith("<") else _read_jsonl(p, text)
    return sorted(events, key=lambda e: e.t)


def check_targets(events: Iterable[LoadEvent], vms: Iterable[str], source: str = "") -> None:
    """``InputError`` for the first event whose VM is not one of ``vms``."""
    known = set(vms)
    for e in events:
        if e.vm not in known:
            where = f"{source}: line {e.line}: " if source and e.line else ""
            raise InputError(f"{where}load event for unknown VM {e.vm!r} (the experiment has "
                             f"{len(known)} VMs)")


def events_jsonl(events: Iterable[LoadEvent]) -> str:
    """The events as JSON lines (what ``read_events`` reads back)."""
    return "".join(json.dumps({"t": e.t, "vm": e.vm, "load": e.load}) + "\n" for e in events)


def events_xml(events: Iterable[LoadEvent],
               addresses: Mapping[str, tuple[str, str]] | None = None) -> str:
    """The events in the original experiment's XML (``location`` = the VM's IP if known)."""
    from xml.sax.saxutils import quoteattr

    lines = ['<?xml version="1.0"?>', "<data>"]
    for e in events:
        loc = (addresses or {}).get(e.vm, ("", ""))[0]
        lines.append(f'    <event type="update_cpu_load" time="{e.t:g}" target={quoteattr(e.vm)}'
                     + (f' location="{loc}"' if loc else "") + f' value="{e.load:g}"/>')
    lines.append("</data>")
    return "\n".join(lines) + "\n"


@dataclass
class Replay:
    applied: int = 0
    failures: list[tuple[LoadEvent, str]] = field(default_factory=list)
    max_late_s: float = 0.0
    """The latest an event was applied after its time (ssh round trips add up)."""


def replay(events: Sequence[LoadEvent], apply: Callable[[LoadEvent], str], *,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep,
           progress: Callable[[str], None] | None = None) -> Replay:
    """Apply ``events`` (time-ordered) at their times from now; ``apply`` returns an error
    ("" when applied)."""
    out = Replay()
    t0 = clock()
    for e in events:
        delay = t0 + e.t - clock()
        if delay > 0:
            sleep(delay)
        out.max_late_s = max(out.max_late_s, clock() - t0 - e.t)
        error = apply(e)
        if error:
            out.failures.append((e, error))
            if progress is not None:
                progress(f"t={e.t:g}s {e.vm} -> {e.load:g} %: {error}")
        else:
            out.applied += 1
    return out
