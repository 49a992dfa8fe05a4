"""Protocol invariants: check a DVMS run (yours, or a change of ours) from its trace.

Two entry points:

- ``check_protocol_trace(events, bound_s=...)``: checks a list of trace events (as written
  to ``events.jsonl``) and returns an ``InvariantReport``, or raises ``ProtocolViolation``
  (an ``AssertionError``) listing every violation found;
- ``run_invariants(scenario=None, ...)``: runs a small simulation with fault injection
  (host crashes, 1 % message loss by default) through ``sim.run.simulate``, then checks
  its trace and its summary.

The invariants:

1. **one partition at a time** — from each node's own ``partition.join``/``partition.leave``
   events: a node never joins a partition while it is in one, and leaves only the one it
   is in;
2. **bounded partitions** — every ISP (``isp.start``) is ended by exactly one
   ``partition.dissolve`` from its initiator within ``bound_s`` (unless the initiator
   crashed first, or the run ended less than ``bound_s`` after it started), no membership
   lasts longer than ``bound_s``, and nothing is left behind at the end;
3. **no VM lost or duplicated** — per VM, migrations never overlap and each starts where
   the previous one ended (``migration.start``/``end``/``fail``); ``vms_lost`` is 0;
4. optionally (``require_merge``) — at least one ``partition.merge`` happened;
5. with ``planner`` (a user's planner by import path) — **valid plans**: before the run, the
   planner plans ``PLAN_PROBLEMS`` seeded VMPlaceS-like problems and every plan it returns
   must pass ``check_plan`` (VMs only from where they are, destinations with room when each
   migration starts, every host within capacity after the plan), the violation naming the
   problem and what broke; then the run uses that planner on every node.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "InvariantReport",
    "ProtocolViolation",
    "check_planner",
    "check_protocol_trace",
    "run_invariants",
]

PLAN_PROBLEMS = 20
"""Seeded problems a user's planner is checked on before the run (invariant 5)."""
DEFAULT_BOUND_S = 120.0
"""Default longest acceptable ISP lifetime / membership (seconds of virtual time)."""


class ProtocolViolation(AssertionError):
    """One or more protocol invariants do not hold; ``violations`` lists them all."""

    def __init__(self, violations: list[str], report: InvariantReport | None = None) -> None:
        shown = "\n  ".join(violations[:20])
        more = f"\n  ... and {len(violations) - 20} more" if len(violations) > 20 else ""
        super().__init__(f"{len(violations)} protocol invariant violation(s):\n  {shown}{more}")
        self.violations = violations
        self.report = report


@dataclass(frozen=True)
class InvariantReport:
    """What was checked, and the figures behind it."""

    events: int
    isp_started: int
    isp_dissolved: int
    isp_open_at_end: int
    """ISPs started less than ``bound_s`` before the end and not dissolved yet (allowed)."""
    merges: int
    blocks: int
    memberships: int
    max_isp_lifetime_s: float
    max_membership_s: float
    migrations: int
    crashed: tuple[str, ...]
    vms_lost: int
    summary: Mapping[str, Any] | None = None
    violations: tuple[str, ...] = field(default=())


def check_protocol_trace(
    events: Iterable[Mapping[str, Any]],
    *,
    bound_s: float = DEFAULT_BOUND_S,
    end_t: float | None = None,
    vms_lost: int = 0,
    require_merge: bool = False,
    raise_on_violation: bool = True,
) -> InvariantReport:
    """Check the protocol invariants (module docstring) on ``events``, in trace order.

    ``end_t``: when the run ended (default: the last event's time); ``vms_lost``: the
    world's count of lost/duplicated VMs (from the summary or a model check).
    """
    violations: list[str] = []
    current: dict[str, tuple[str, float]] = {}  # node -> (partition, since)
    started: dict[str, tuple[str, float]] = {}  # isp -> (initiator, t)
    dissolved: dict[str, float] = {}
    crashed_at: dict[str, float] = {}
    moving: dict[str, tuple[str, str]] = {}  # vm -> (src, dst)
    location: dict[str, str] = {}
    counts = {"events": 0, "merges": 0, "blocks": 0, "memberships": 0, "migrations": 0}
    max_life = max_member = 0.0
    t = 0.0
    for event in events:
        counts["events"] += 1
        t = float(event["t"])
        kind = event["type"]
        node = event.get("node", "")
        if kind == "partition.join":
            if node in current:
                violations.append(
                    f"t={t:.3f} {node} joined {event['partition']} while in {current[node][0]}"
                )
            current[node] = (event["partition"], t)
            counts["memberships"] += 1
        elif kind == "partition.leave":
            held = current.pop(node, None)
            if held is None or held[0] != event["partition"]:
                violations.append(
                    f"t={t:.3f} {node} left {event['partition']} while in "
                    f"{held[0] if held else 'no partition'}"
                )
            elif t - held[1] > bound_s:
                violations.append(f"{node} stayed {t - held[1]:.1f} s in {held[0]} (> {bound_s})")
            if held is not None:
                max_member = max(max_member, t - held[1])
        elif kind == "isp.start":
            if event["partition"] in started:
                violations.append(f"t={t:.3f} ISP {event['partition']} started twice")
            started[event["partition"]] = (node, t)
        elif kind == "partition.dissolve":
            isp = event["partition"]
            if isp not in started:
                violations.append(f"t={t:.3f} {isp} dissolved but never started")
            elif isp in dissolved:
                violations.append(f"t={t:.3f} {isp} dissolved twice")
            else:
                life = t - started[isp][1]
                max_life = max(max_life, life)
                if life > bound_s:
                    violations.append(f"ISP {isp} lived {life:.1f} s (> {bound_s})")
            dissolved[isp] = t
        elif kind in ("partition.grow", "partition.merge", "partition.block"):
            if event["partition"] not in started:
                violations.append(f"t={t:.3f} {kind} of unknown partition {event['partition']}")
            counts["merges"] += kind == "partition.merge"
            counts["blocks"] += kind == "partition.block"
        elif kind == "fault.crash":
            host = event.get("host", node)
            crashed_at.setdefault(host, t)
            held = current.pop(host, None)
            if held is not None:
                max_member = max(max_member, t - held[1])
        elif kind == "migration.start":
            _migration_start(event, t, moving, location, violations)
        elif kind in ("migration.end", "migration.fail"):
            _migration_end(event, t, moving, location, violations)
            counts["migrations"] += kind == "migration.end"
    end = t if end_t is None else end_t
    for node, (partition, since) in sorted(current.items()):
        max_member = max(max_member, end - since)
        if end - since > bound_s:
            violations.append(f"{node} still in {partition} at the end, since t={since:.3f}")
    open_at_end = 0
    for isp, (initiator, since) in sorted(started.items()):
        if isp in dissolved:
            continue
        if initiator in crashed_at and crashed_at[initiator] <= since + bound_s:
            continue
        if end - since <= bound_s:
            open_at_end += 1
            continue
        violations.append(f"ISP {isp} (started t={since:.3f}) never dissolved")
    if vms_lost:
        violations.append(f"{vms_lost} VM(s) lost or duplicated")
    if require_merge and counts["merges"] == 0:
        violations.append("no partition.merge happened")
    report = InvariantReport(
        events=counts["events"],
        isp_started=len(started),
        isp_dissolved=len(dissolved),
        isp_open_at_end=open_at_end,
        merges=counts["merges"],
        blocks=counts["blocks"],
        memberships=counts["memberships"],
        max_isp_lifetime_s=max_life,
        max_membership_s=max_member,
        migrations=counts["migrations"],
        crashed=tuple(sorted(crashed_at)),
        vms_lost=vms_lost,
        violations=tuple(violations),
    )
    if violations and raise_on_violation:
        raise ProtocolViolation(violations, report)
    return report


def _migration_start(
    event: Mapping[str, Any],
    t: float,
    moving: dict[str, tuple[str, str]],
    location: dict[str, str],
    violations: list[str],
) -> None:
    vm, src, dst = event["vm"], event["src"], event["dst"]
    if vm in moving:
        violations.append(f"t={t:.3f} {vm} migrates {src}->{dst} while already migrating")
    if location.get(vm, src) != src:
        violations.append(f"t={t:.3f} {vm} migrates from {src} but is on {location[vm]}")
    moving[vm] = (src, dst)
    location.setdefault(vm, src)


def _migration_end(
    event: Mapping[str, Any],
    t: float,
    moving: dict[str, tuple[str, str]],
    location: dict[str, str],
    violations: list[str],
) -> None:
    vm, src, dst = event["vm"], event["src"], event["dst"]
    flight = moving.get(vm)
    if event["type"] == "migration.fail" and flight != (src, dst):
        return  # refused before it started
    if flight != (src, dst):
        violations.append(f"t={t:.3f} {vm} ended a migration {src}->{dst} it never started")
        return
    del moving[vm]
    if event["type"] == "migration.end":
        location[vm] = dst


def run_invariants(
    scenario: Any = None,
    *,
    hosts: int = 32,
    seed: int = 1,
    duration_s: float = 900.0,
    overlay: str = "lbo",
    loss: float = 0.01,
    crash_rate_per_host_h: float = 0.5,
    dvms: Mapping[str, Any] | None = None,
    bound_s: float = DEFAULT_BOUND_S,
    require_merge: bool = False,
    out_dir: str | Path | None = None,
    planner: str | None = None,
) -> InvariantReport:
    """Simulate a small DVMS run with faults and check the protocol invariants.

    ``scenario``: a ``sim.scenario.Scenario`` or the path of a scenario TOML to run as
    given (scheduler forced to ``dvms``); None builds one from the embedded default and the
    keyword arguments: ``hosts`` hosts with VMPlaceS's workload on Grid'5000-like sites for
    ``duration_s``, the ``overlay``, ``loss`` message loss, random host crashes at
    ``crash_rate_per_host_h`` per host and hour, and ``dvms`` settings (a ``[dvms]`` table).
    The run's files go to ``out_dir`` (default: a temporary directory, removed).
    ``planner``: a planner by name or import path (``package.module:Class``) to check
    (invariant 5) and to run on every node; None keeps the scenario's.
    Raises ``ProtocolViolation`` on any violation; returns the report (with the summary).
    """
    plan_violations = check_planner(planner) if planner is not None else []
    if plan_violations:
        raise ProtocolViolation(plan_violations)
    import dataclasses

    from dvms.trace import read_events
    from sim.run import simulate
    from sim.scenario import Scenario, load_scenario

    forced: dict[str, Any] = {"name": "dvms"}
    if planner is not None:
        forced["planner"] = planner
    if isinstance(scenario, Scenario):
        scenario = dataclasses.replace(
            scenario, scheduler=dataclasses.replace(scenario.scheduler, **forced)
        )
    elif scenario is not None:
        scenario = load_scenario(scenario, {f"scheduler.{k}": v for k, v in forced.items()})
    else:
        overrides: dict[str, Any] = {
            "run.seed": seed,
            "run.duration_s": duration_s,
            "infrastructure.hosts": hosts,
            "scheduler.name": "dvms",
            "scheduler.planner": planner or "repair",
            "overlay.name": overlay,
            "faults.loss_rate": loss,
            "faults.crash_rate_per_host_h": crash_rate_per_host_h,
        }
        for key, value in (dvms or {}).items():
            overrides[f"dvms.{key}"] = value
        scenario = load_scenario(None, overrides)
    with tempfile.TemporaryDirectory(prefix="dvms-invariants-") as tmp:
        run_dir = Path(out_dir) if out_dir is not None else Path(tmp)
        summary = simulate(scenario, run_dir)
        trace = next(p for p in sorted(run_dir.glob("events.jsonl*")))
        report = check_protocol_trace(
            read_events(trace),
            bound_s=bound_s,
            end_t=float(summary["duration_s"]),
            vms_lost=int(summary["vms_lost"]),
            require_merge=require_merge,
            raise_on_violation=False,
        )
    report = dataclasses.replace(report, summary=summary)
    if report.violations:
        raise ProtocolViolation(list(report.violations), report)
    return report


def check_planner(planner: str, problems: int = PLAN_PROBLEMS) -> list[str]:
    """Invariant 5: the plans of ``planner`` on seeded problems, checked with ``check_plan``.

    Returns the violations (one per problem whose plan is invalid), each naming the
    problem and the broken invariant.
    """
    from dvms.scheduler import make_planner
    from dvms.testing.plans import PlanViolation, check_plan, vmplaces_problem

    violations: list[str] = []
    for seed in range(problems):
        hosts, vms = vmplaces_problem(4 + seed % 5, seed)
        plan = make_planner(planner).plan(hosts, vms)
        if plan is None:
            continue  # allowed: no plan (the partition grows)
        try:
            check_plan(hosts, vms, plan)
        except PlanViolation as exc:
            where = f"{planner} on problem {seed} ({len(hosts)} hosts)"
            violations.append(f"valid plans: {where}: {exc}")
    return violations
