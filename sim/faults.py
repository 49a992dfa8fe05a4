"""Faults: host crashes, link cuts and message loss, scheduled or random.

``plan_faults`` turns the scenario's ``[faults]`` section into a time-ordered list of
actions the world executes on its clock:

- crashes: the scheduled ones, plus random ones: each host draws an exponential time of
  rate ``crash_rate_per_host_h / 3600`` and crashes then if it falls within the run;
- link cuts: the scheduled ones (between two hosts, or every pair of hosts of two sites,
  or a host and every host of a site), plus random ones: a Poisson process of rate
  ``link_cut_rate_h / 3600`` cutting the link between two distinct random hosts for
  ``link_cut_duration_s``; a cut with a positive duration is healed after it;
- message loss is a property of the network model (``loss_rate``), not an action.

Order among simultaneous actions: scheduled before random, then as listed (stable sort).

``check_faults`` runs when the scenario is validated, before anything is written: every
host a crash names and every link-cut endpoint must be a host (``h0000``… exactly as the
run names them) or a site of this run; a scheduled cut may not cut more than
``MAX_CUT_PAIRS`` host pairs, and the random cuts expected over the run are bounded by
``MAX_RANDOM_CUTS``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dvms.errors import InputError
from sim.scenario_schema import FaultsConfig, InfrastructureConfig

__all__ = [
    "MAX_CUT_PAIRS",
    "MAX_RANDOM_CUTS",
    "FaultAction",
    "check_faults",
    "link_pairs",
    "plan_faults",
    "resolve_endpoints",
]

MAX_CUT_PAIRS = 10_000_000
"""Host pairs one scheduled link cut may cut (two sites of 3,000 hosts each: 9M)."""
MAX_RANDOM_CUTS = 1_000_000
"""Random link cuts a run may expect (``link_cut_rate_h`` × duration in hours)."""


@dataclass(frozen=True, slots=True)
class FaultAction:
    t: float
    kind: str
    """``"crash"``, ``"link_cut"`` or ``"link_heal"``."""
    a: str
    b: str = ""


def resolve_endpoints(name: str, hosts: Sequence[str], site_of: Mapping[str, str]) -> list[str]:
    """A host name → [it]; a site name → its hosts (in order)."""
    if name in site_of:
        return [name]
    members = [h for h in hosts if site_of[h] == name]
    if not members:
        raise InputError(f"faults.link_cuts: {name!r} is neither a host nor a site of this run")
    return members


def check_faults(config: FaultsConfig, infra: InfrastructureConfig, duration_s: float) -> None:
    """Resolve every name the faults refer to against the run's hosts and sites (see the
    module doc); ``InputError`` naming the first field that does not resolve."""
    from dvms.geo import resolve_sites
    from sim.infrastructure import host_index, host_name

    n = infra.hosts
    sites = [site.name for site in resolve_sites(infra.sites)]
    last = host_name(n - 1)

    def is_host(name: str) -> bool:
        index = host_index(name)
        return index is not None and index < n and host_name(index) == name

    def size(name: str) -> int:
        if is_host(name):
            return 1
        k = sites.index(name)  # hosts i with i * len(sites) // n == k, as the run places them
        return -(-(k + 1) * n // len(sites)) - -(-k * n // len(sites))

    for i, crash in enumerate(config.crashes):
        if not is_host(crash.host):
            raise InputError(
                f"faults.crashes[{i}].host = {crash.host!r}: not a host of this run (h0000..{last})"
            )
    for i, cut in enumerate(config.link_cuts):
        for end, name in (("a", cut.a), ("b", cut.b)):
            if not (is_host(name) or name in sites):
                raise InputError(
                    f"faults.link_cuts[{i}].{end} = {name!r}: neither a host (h0000..{last}) "
                    f"nor a site of this run ({', '.join(sites)})"
                )
        pairs = size(cut.a) * size(cut.b)
        if pairs > MAX_CUT_PAIRS:
            raise InputError(
                f"faults.link_cuts[{i}]: {cut.a!r} × {cut.b!r} is {pairs:,} host pairs; "
                f"at most {MAX_CUT_PAIRS:,}"
            )
    expected = config.link_cut_rate_h * duration_s / 3600.0
    if expected > MAX_RANDOM_CUTS:
        raise InputError(
            f"faults.link_cut_rate_h = {config.link_cut_rate_h!r}: {expected:.3g} random cuts "
            f"expected over run.duration_s; at most {MAX_RANDOM_CUTS:,}"
        )


def plan_faults(
    config: FaultsConfig,
    hosts: Sequence[str],
    site_of: Mapping[str, str],
    duration_s: float,
    rng: random.Random,
) -> list[FaultAction]:
    """The fault actions of a run, sorted by time (see module doc)."""
    actions: list[FaultAction] = []
    for crash in config.crashes:
        if crash.host not in site_of:
            raise InputError(f"faults.crashes: {crash.host!r} is not a host of this run")
        actions.append(FaultAction(crash.t, "crash", crash.host))
    for cut in config.link_cuts:
        resolve_endpoints(cut.a, hosts, site_of)
        resolve_endpoints(cut.b, hosts, site_of)
        actions.append(FaultAction(cut.t, "link_cut", cut.a, cut.b))
        if cut.duration_s > 0:
            actions.append(FaultAction(cut.t + cut.duration_s, "link_heal", cut.a, cut.b))
    if config.crash_rate_per_host_h > 0:
        rate = config.crash_rate_per_host_h / 3600.0
        for host in hosts:
            t = rng.expovariate(rate)
            if t < duration_s:
                actions.append(FaultAction(t, "crash", host))
    if config.link_cut_rate_h > 0 and len(hosts) >= 2:
        rate = config.link_cut_rate_h / 3600.0
        t = rng.expovariate(rate)
        while t < duration_s:
            a, b = rng.sample(range(len(hosts)), 2)
            actions.append(FaultAction(t, "link_cut", hosts[a], hosts[b]))
            if config.link_cut_duration_s > 0:
                heal = t + config.link_cut_duration_s
                actions.append(FaultAction(heal, "link_heal", hosts[a], hosts[b]))
            t += rng.expovariate(rate)
    actions.sort(key=lambda a: a.t)
    return actions


def link_pairs(action: FaultAction, site_of: Mapping[str, str]) -> list[tuple[str, str]]:
    """The host pairs a link action cuts or heals (every host of ``a`` with every one of ``b``)."""
    hosts = list(site_of)
    return [
        (a, b)
        for a in resolve_endpoints(action.a, hosts, site_of)
        for b in resolve_endpoints(action.b, hosts, site_of)
        if a != b
    ]
