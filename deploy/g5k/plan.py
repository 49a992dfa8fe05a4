"""Funk's planning on execo_g5k: a slot (free / date / max), counts per site, OAR requests.

``make_plan`` asks execo_g5k for the planning of the wanted elements, computes the slots
for the walltime, picks one by mode (``free``: the first where every count fits;
``date``: the first with any wanted node; ``max``: the one with most), distributes the
counts over sites and writes one checked ``OarRequest`` per site. No side effect: nothing
is submitted. execo's functions mutate their inputs; they are given copies.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any

from deploy.g5k.config import PARIS, Experiment, paris_date
from deploy.g5k.oarspec import NodesGroup, OarRequest, build_resources, format_walltime
from deploy.g5k.platform import ApiRequestError, Platform, SiteUnavailable, api_get
from dvms.errors import DvmsError, InputError

__all__ = [
    "NoSlot",
    "Plan",
    "add_charter",
    "charter_periods",
    "fetch_planning",
    "make_plan",
    "plan_on",
    "window",
]

START_MARGIN_S = 60
"""Planning starts this long after "now" (execo's and Funk's default)."""

WINDOW_S = 4 * 7 * 86400
"""Planning window: four weeks (execo's default)."""


class NoSlot(DvmsError):
    """No slot of the planning window fits the request."""


@dataclass(frozen=True)
class Plan:
    mode: str
    start: int
    """Unix time the jobs start."""
    end: int
    counts: Mapping[str, int]
    """Nodes per site."""
    requests: Mapping[str, OarRequest]
    """One OAR request per site, in site order."""
    kavlan_site: str | None
    """The site whose request carries the KaVLAN (None: no KaVLAN)."""
    slots: tuple[tuple[int, int, Mapping[str, Any]], ...] = field(default=(), repr=False)
    """The first slots computed (Funk prints ten)."""
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        """Funk's ``--json`` document (``cmd``, ``options``, ``slots``) + dvms fields."""
        return {
            "cmd": [f"{site}: {r.line()}" for site, r in self.requests.items()],
            "options": dict(self.options),
            "slots": [[s, e, dict(free)] for s, e, free in self.slots[:10]],
            "mode": self.mode,
            "start": self.start,
            "end": self.end,
            "start_paris": paris_date(self.start),
            "counts": dict(self.counts),
            "kavlan_site": self.kavlan_site,
            "requests": {site: {"resources": r.resources, "walltime": r.walltime,
                                "args": r.oarsub_args()}
                         for site, r in self.requests.items()},
        }

    def lines(self) -> list[str]:
        """Human-readable: the slot, per-site counts, one oarsub line per site."""
        out = [f"slot ({self.mode}): {paris_date(self.start)} -> {paris_date(self.end)} "
               "Europe/Paris"]
        out += [f"  {site}: {n} node{'s' if n != 1 else ''}" for site, n in self.counts.items()]
        if self.kavlan_site:
            out.append(f"  KaVLAN on {self.kavlan_site}")
        out += [f"{site}: {r.line()}" for site, r in self.requests.items()]
        return out


def _check_names(exp: Experiment, platform: Platform) -> None:
    r = exp.reservation
    for i, spec in enumerate(r.resources):
        element = spec.partition(":")[0]
        if platform.kind(element) is None:
            raise InputError(f"reservation.resources[{i}] = {spec!r}: no site, cluster or "
                             f"host {element!r} on the platform")
    for i, name in enumerate(r.blacklist):
        if platform.kind(name) is None:
            raise InputError(f"reservation.blacklist[{i}] = {name!r}: no site, cluster or "
                             "host of that name on the platform")


def _excluded(exp: Experiment, platform: Platform) -> list[str]:
    """The blacklist as execo's planning names things (hosts by FQDN)."""
    return [platform.node(n).name if platform.kind(n) == "host" else n
            for n in exp.reservation.blacklist]


def _wanted(exp: Experiment, platform: Platform) -> dict[str, int]:
    out: dict[str, int] = {}
    for element, n in exp.reservation.wanted().items():
        name = platform.node(element).name if platform.kind(element) == "host" else element
        out[name] = 1 if platform.kind(element) == "host" else n
    return out


def window(exp: Experiment, now: int) -> tuple[int, int]:
    """The planning window: from the configured start (or now + 60 s), four weeks."""
    start = exp.reservation.start_ts()
    if start is None:
        start = now + START_MARGIN_S
    elif start < now:
        raise InputError(f"reservation.start = {exp.reservation.start!r}: in the past")
    return start, start + WINDOW_S


def _sites_of(elements: Sequence[str], platform: Platform) -> set[str]:
    sites: set[str] = set()
    for e in elements:
        kind = platform.kind(e)
        if kind == "grid5000":
            sites |= set(platform.sites)
        elif kind == "site":
            sites.add(e)
        elif kind == "cluster":
            sites.add(platform.cluster(e).site)
        elif kind == "host":
            sites.add(platform.node(e).site)
    return sites


def fetch_planning(exp: Experiment, platform: Platform, start: int, end: int) -> dict[str, Any]:
    """execo_g5k's ``get_planning`` for the wanted elements; a dropped site is an error.

    execo drops a site whose planning requests fail (a warning, no exception): that site
    is probed again here to name the failing request in ``SiteUnavailable``.
    """
    from execo_g5k.planning import get_planning

    _check_names(exp, platform)
    elements = list(_wanted(exp, platform))
    planning = get_planning(elements, vlan=exp.reservation.kavlan,
                            subnet=bool(exp.reservation.subnets), out_of_chart=False,
                            starttime=start, endtime=end) or {}
    for site in sorted(_sites_of(elements, platform) - set(planning)):
        detail = "execo's planning failed although the API answered"
        for path in (f"/sites/{site}/internal/oarapi/resources/details.json?limit=1073741824",
                     f"/sites/{site}/jobs?limit=1073741824&state=waiting,launching,running"):
            try:
                api_get(path)
            except ApiRequestError as exc:
                detail = exc.detail
                break
        raise SiteUnavailable(site, f"no planning ({detail})")
    return dict(planning)


def _busy_union(intervals: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for s, e in sorted((int(a), int(b)) for a, b in intervals):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def charter_periods(start: int, end: int) -> list[tuple[int, int]]:
    """The charter's hours in [start, end): weekdays 9:00-19:00 Europe/Paris, French
    public holidays excepted.

    Not execo's ``get_charter_el_planning``: it converts each period's end with the
    machine's time zone (19:00 UTC is 20:00 in Paris), see the tests.
    """
    from execo_g5k.charter import french_holidays

    out: list[tuple[int, int]] = []
    day = datetime.fromtimestamp(start, PARIS).date()
    while True:
        begin = int(datetime.combine(day, dtime(9), PARIS).timestamp())
        if begin >= end:
            return out
        if day.weekday() < 5 and day not in french_holidays(day.year):
            stop = int(datetime.combine(day, dtime(19), PARIS).timestamp())
            if max(begin, start) < min(stop, end):
                out.append((max(begin, start), min(stop, end)))
        day += timedelta(days=1)


def add_charter(planning: Mapping[str, Any], start: int, end: int) -> dict[str, Any]:
    """A copy of ``planning`` where the charter's hours are busy for every element."""
    charter = charter_periods(start, end)
    out = copy.deepcopy(dict(planning))
    for site_pl in out.values():
        for res_pl in site_pl.values():
            for el in res_pl.values():
                busy = _busy_union([*el["busy"], *charter])
                free, cursor = [], start
                for s, e in busy:
                    if s > cursor:
                        free.append((cursor, min(s, end)))
                    cursor = max(cursor, e)
                if cursor < end:
                    free.append((cursor, end))
                el["busy"], el["free"] = busy, free
    return out


def _choose(mode: str, slots: list[Any], wanted: dict[str, int]) -> Any:
    from execo_g5k.planning import find_first_slot, find_free_slot, find_max_slot

    finder = {"free": find_free_slot, "date": find_first_slot, "max": find_max_slot}[mode]
    return finder(copy.deepcopy(slots), dict(wanted))  # both are mutated by execo


def plan_on(exp: Experiment, platform: Platform, planning: Mapping[str, Any],
            start: int, end: int) -> Plan:
    """Choose a slot in ``planning`` (``get_planning``'s shape) and write the requests."""
    from execo_g5k.planning import compute_slots, distribute_hosts

    _check_names(exp, platform)
    r = exp.reservation
    walltime = r.walltime_s()
    excluded = _excluded(exp, platform)
    wanted = _wanted(exp, platform)
    hosts = [h for h in wanted if platform.kind(h) == "host"]
    if r.avoid_charter:
        planning = add_charter(planning, start, end)
    slots = compute_slots(copy.deepcopy(dict(planning)), walltime,
                          excluded_elements=list(excluded), include_hosts=bool(hosts))
    with_vlan = dict(wanted, kavlan=1) if r.kavlan else dict(wanted)
    slot_start, slot_end, free = _choose(r.mode, slots, with_vlan)
    if slot_start is None:
        raise NoSlot(f"no slot for {', '.join(r.resources)} (mode {r.mode}, walltime "
                     f"{r.walltime}) between {paris_date(start)} and {paris_date(end)} "
                     "Europe/Paris")
    free = dict(free)
    asked = {k: v for k, v in with_vlan.items() if k not in hosts}
    if r.mode != "free":  # take what the slot has, up to the count (0: everything)
        asked = {k: (free.get(k, 0) if v == 0 else min(v, free.get(k, 0)))
                 if k != "kavlan" else v for k, v in asked.items()}
    counts = distribute_hosts(copy.deepcopy(free), asked, [], None)
    return _build(exp, platform, counts, hosts, excluded, free, int(slot_start),
                  int(slot_end), slots, planning)


def _build(exp: Experiment, platform: Platform, counts: Mapping[str, Any],
           hosts: Sequence[str], excluded: Sequence[str], free: Mapping[str, Any],
           start: int, end: int, slots: Sequence[Any], planning: Mapping[str, Any]) -> Plan:
    r = exp.reservation
    groups: dict[str, list[NodesGroup]] = {s: [] for s in sorted(platform.sites)}
    for site in groups:
        site_excluded = tuple(
            e for e in excluded
            if (platform.kind(e) == "cluster" and platform.cluster(e).site == site)
            or (platform.kind(e) == "host" and platform.node(e).site == site))
        for cluster in sorted(c.name for c in platform.site(site).clusters):
            if counts.get(cluster, 0) > 0:
                own = tuple(e for e in site_excluded if "." in e)
                groups[site].append(NodesGroup(counts[cluster], site, cluster=cluster,
                                               blacklist=own))
        mine = tuple(h for h in hosts if platform.node(h).site == site)
        if mine:
            groups[site].append(NodesGroup(None, site, hosts=mine))
        if counts.get(site, 0) > 0:
            groups[site].append(NodesGroup(counts[site], site, blacklist=site_excluded))
    used = [s for s, g in groups.items() if g]
    kavlan_site, kavlan_type = None, None
    if r.kavlan:
        if len(planning) > 1:
            candidates = list(free.get("kavlan") or [])
            kavlan_site = next((s for s in used if s in candidates), candidates[0])
            kavlan_type = "kavlan-global"
        else:
            kavlan_site, kavlan_type = next(iter(planning)), "kavlan"
    requests: dict[str, OarRequest] = {}
    for site in groups:
        if not groups[site] and site != kavlan_site:
            continue
        text = build_resources(groups[site],
                               kavlan=kavlan_type if site == kavlan_site else None,
                               subnets=r.subnets or None)
        requests[site] = OarRequest(site, text, format_walltime(end - start),
                                    job_types=r.job_types, name=exp.name,
                                    reservation=paris_date(start))
    node_counts = {s: sum(g.nodes for g in groups[s]) for s in requests}
    options = {
        "mode": r.mode, "resources_wanted": exp.reservation.wanted(), "ratio": None,
        "walltime": format_walltime(end - start), "startdate": start, "enddate": end,
        "submission_options": " ".join(f"-t {t}" for t in r.job_types),
        "job_name": exp.name, "subnet": r.subnets or None, "kavlan": r.kavlan,
        "virtual": False, "green": False, "infiniband": False, "charter": r.avoid_charter,
        "blacklist": list(r.blacklist),
    }
    first = tuple((int(s), int(e), dict(f)) for s, e, f in slots[:10])
    return Plan(r.mode, start, end, node_counts, requests, kavlan_site, first, options)


def make_plan(exp: Experiment, platform: Platform, *, now: int | None = None) -> Plan:
    """Plan ``exp.reservation`` on ``platform``; ``now`` (Unix time) defaults to the clock.

    Raises ``InputError`` for names the platform does not know (resources, blacklist),
    ``SiteUnavailable`` when a site's planning cannot be read, ``NoSlot`` when nothing fits.
    """
    _check_names(exp, platform)
    start, end = window(exp, int(time.time()) if now is None else now)
    planning = fetch_planning(exp, platform, start, end)
    return plan_on(exp, platform, planning, start, end)
