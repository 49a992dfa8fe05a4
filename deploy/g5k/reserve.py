"""All-or-nothing reservation of a plan's jobs, and their release.

``reserve`` submits one ``oarsub`` per site (in parallel, each over ssh to the site's
frontend); if any site refuses, the jobs other sites accepted are deleted and the error
names the refusing site with OAR's own message (execo's ``oarsub`` keeps the others
running and drops the message). It then waits for every job to start (deadline
``start_timeout_s``, progress lines), and collects the nodes, the KaVLAN id, the subnets and
the IP/MAC pool through execo_g5k's OAR calls. Any failure after a submission deletes the
jobs. ``release`` deletes whatever the state says may exist, and is a no-op the second time.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from deploy.g5k import session
from deploy.g5k.config import Experiment, paris_date
from deploy.g5k.oarspec import OarRequest
from deploy.g5k.plan import START_MARGIN_S, Plan
from deploy.g5k.platform import Platform
from deploy.g5k.state import ExperimentState, HostRecord, JobRecord
from dvms.errors import DvmsError, InputError

__all__ = ["Progress", "Resources", "kavlan_pool", "release", "reserve", "submitted_requests"]

Progress = Callable[[str], None]
_JOB_ID = re.compile(r"^OAR_JOB_ID=(\d+)\s*$", re.MULTILINE)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Resources:
    """What the jobs hold once running."""

    jobs: dict[str, int]
    """Site → OAR job id."""
    nodes: dict[str, list[str]]
    """Site → node FQDNs."""
    vlan: int | None = None
    kavlan_site: str | None = None
    subnets: list[str] = field(default_factory=list)
    pool: list[tuple[str, str]] = field(default_factory=list)
    """(IP, MAC) pairs for VMs: the KaVLAN's, else the subnets'."""

    def all_nodes(self) -> list[str]:
        return [n for site in self.nodes for n in self.nodes[site]]

    @classmethod
    def from_state(cls, state: ExperimentState) -> Resources:
        """The resources a previous ``reserve`` recorded (``DvmsError`` if none)."""
        jobs = {j.site: j.id for j in state.live_jobs() if j.id is not None}
        if not state.done("reserve") or not jobs:
            raise InputError(f"{state.workdir}: nothing reserved (run reserve first)")
        nodes: dict[str, list[str]] = {}
        for h in state.hosts.values():
            nodes.setdefault(h.site, []).append(h.name)
        path = state.workdir / "pool.json"
        pool = [(ip, mac) for ip, mac in json.loads(path.read_text())] if path.exists() else []
        return cls(jobs=jobs, nodes=nodes, vlan=state.vlan, kavlan_site=state.kavlan_site,
                   subnets=list(state.subnets), pool=pool)


def kavlan_pool(vlan: int, network: str) -> list[tuple[str, str]]:
    """The VM addresses of KaVLAN ``vlan`` (Grid'5000's rule, as execo_g5k applies it):
    last octet not 0/254/255, third octet from (V−4)·64+2 (V < 8), (V−8)·64+2 (V < 10),
    216 (global). MACs ``00:20:4e`` + the IP's last three bytes: unique and reproducible
    (execo draws them from the global random generator)."""
    third = (vlan - 4) * 64 + 2 if vlan < 8 else (vlan - 8) * 64 + 2 if vlan < 10 else 216
    out = []
    for ip in ipaddress.IPv4Network(network, strict=False):
        b = ip.packed
        if b[3] not in (0, 254, 255) and b[2] >= third:
            out.append((str(ip), f"00:20:4e:{b[1]:02x}:{b[2]:02x}:{b[3]:02x}"))
    return out


def _one_line(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.search(r"error|refused|denied|not allowed", ln, re.I)
              and not ln.startswith("[ADMISSION RULE] Modify")]
    picked = errors or lines[-1:] or ["no output"]
    return " / ".join(picked)[:400]


def submitted_requests(exp: Experiment, plan: Plan, now: float) -> dict[str, OarRequest]:
    """The requests to send: the plan's, as soon as possible (no ``-r``) when the experiment
    asks no start date and the slot is the planning window's first one — execo's planning
    starts a minute ahead only so that a reservation date is still in the future."""
    asap = not exp.reservation.start.strip() and plan.start <= now + START_MARGIN_S + 5
    if not asap:
        return dict(plan.requests)
    return {site: dataclasses.replace(req, reservation=None)
            for site, req in plan.requests.items()}


def _submit(exp: Experiment, plan: Plan, state: ExperimentState) -> None:
    requests = submitted_requests(exp, plan, time.time())
    records = {}
    for site, request in requests.items():
        rec = JobRecord(site=site, request=request.line())
        state.jobs.append(rec)
        records[site] = rec
    state.save()  # recorded before oarsub runs: release finds them by name if we crash
    timeout = exp.platform.frontend_timeout_s

    def submit(site: str) -> session.RunResult:
        return session.run([site], requests[site].line(), frontend=True,
                           timeout_s=timeout)[0]

    with ThreadPoolExecutor(max_workers=max(1, len(records))) as pool:
        results = dict(zip(records, pool.map(submit, list(records)), strict=True))
    refused: list[str] = []
    for site, res in results.items():
        rec = records[site]
        mo = _JOB_ID.search(res.output)
        if res.status == 0 and mo:
            rec.id, rec.state = int(mo.group(1)), "submitted"
        elif res.status == session.SSH_FAILURE:  # the job may exist: stays "submitting"
            rec.message = _one_line(res.output)
            refused.append(f"frontend {session.frontend_host(site)} unreachable: {rec.message}")
        else:
            rec.state, rec.message = "refused", _one_line(res.output)
            refused.append(f"site {site}: oarsub refused (exit {res.status}): {rec.message}")
    state.save()
    if refused:
        raise DvmsError(f"{refused[0]} ({_cleanup(exp, state)})")


def _wait(exp: Experiment, state: ExperimentState, progress: Progress) -> None:
    from execo_g5k.oar import get_oar_job_info, wait_oar_job_start

    deadline = time.monotonic() + exp.reservation.start_timeout_s
    for rec in state.live_jobs():
        assert rec.id is not None

        def predicted(ts: float, rec: JobRecord = rec) -> None:
            progress(f"job {rec.id} on {rec.site}: start predicted {paris_date(ts)} "
                     f"(Europe/Paris)")

        progress(f"waiting for job {rec.id} on {rec.site} to start "
                 f"(deadline {exp.reservation.start_timeout_s:g} s)")
        remaining = max(0.0, deadline - time.monotonic())
        if wait_oar_job_start(rec.id, rec.site, timeout=remaining,
                              prediction_callback=predicted):
            progress(f"job {rec.id} on {rec.site}: running")
            continue
        info = get_oar_job_info(rec.id, rec.site, nolog_exit_code=True, nolog_error=True,
                                timeout=exp.platform.frontend_timeout_s)
        job_state = info.get("state", "unknown")
        note = _cleanup(exp, state)
        if job_state in ("Error", "Terminated"):
            raise DvmsError(f"site {rec.site}: job {rec.id} went to {job_state} instead of "
                            f"running ({note})")
        raise DvmsError(f"site {rec.site}: job {rec.id} still {job_state} after "
                        f"start_timeout_s = {exp.reservation.start_timeout_s:g} s ({note})")


def _collect(exp: Experiment, plan: Plan, state: ExperimentState,
             platform: Platform | None) -> Resources:
    from execo.exception import ProcessesFailed
    from execo_g5k.oar import get_oar_job_kavlan, get_oar_job_nodes, get_oar_job_subnets

    timeout = exp.platform.frontend_timeout_s
    jobs = {r.site: int(r.id) for r in state.live_jobs() if r.id is not None}
    nodes: dict[str, list[str]] = {}
    pool: list[tuple[str, str]] = []

    def of_site(site: str, job_id: int) -> tuple[list[str], list[tuple[str, str]], str]:
        hosts = [h.address for h in get_oar_job_nodes(job_id, site, timeout=timeout)]
        if not hosts:
            raise DvmsError(f"site {site}: job {job_id} runs but oarprint lists no node")
        if not exp.reservation.subnets:
            return hosts, [], ""
        pairs, params = get_oar_job_subnets(job_id, site, timeout=timeout)
        if not pairs:
            raise DvmsError(f"site {site}: subnets asked but g5k-subnets returned none for "
                            f"job {job_id}")
        return hosts, [(ip, mac) for ip, mac in pairs], params.get("ip_prefix", "")

    try:
        with ThreadPoolExecutor(max_workers=len(jobs)) as workers:  # one thread per site
            futures = {site: workers.submit(of_site, site, job_id)
                       for site, job_id in jobs.items()}
            found = {site: f.result() for site, f in futures.items()}
        for site, (hosts, pairs, network) in found.items():
            nodes[site] = hosts
            for name in hosts:
                state.hosts[name] = HostRecord(name=name, site=site,
                                               cluster=name.split(".", 1)[0].rsplit("-", 1)[0])
            if exp.reservation.subnets:
                state.subnets.append(network or f"{site}: {len(pairs)} addresses")
                pool += pairs
        vlan = None
        if exp.reservation.kavlan:
            site = plan.kavlan_site or next(iter(jobs))
            vlans = get_oar_job_kavlan(jobs[site], site, timeout=timeout)
            if not vlans:
                raise DvmsError(f"site {site}: KaVLAN asked but kavlan -V returned none for "
                                f"job {jobs[site]}")
            vlan = vlans[0]
            state.vlan, state.kavlan_site = vlan, site
            pool = kavlan_pool(vlan, _kavlan_network(vlan, site, platform))
    except ProcessesFailed as exc:
        raise DvmsError(f"collecting the jobs' resources failed: {_first_failure(exc)} "
                        f"({_cleanup(exp, state)})") from None
    except DvmsError as exc:
        raise DvmsError(f"{exc} ({_cleanup(exp, state)})") from None
    state.pool_size = len(pool)
    (state.workdir / "pool.json").write_text(json.dumps(pool))
    state.save()
    return Resources(jobs=jobs, nodes=nodes, vlan=vlan, kavlan_site=state.kavlan_site,
                     subnets=list(state.subnets), pool=pool)


def _first_failure(exc: Exception) -> str:
    procs = getattr(exc, "processes", []) or []
    for p in procs:
        host = getattr(getattr(p, "host", None), "address", "?")
        out = (getattr(p, "stdout", "") or "").replace("\r", "").strip()
        return f"{host}: exit {session.decode_status(getattr(p, 'exit_code', None))} {out}"
    return str(exc)


def _kavlan_network(vlan: int, site: str, platform: Platform | None) -> str:
    if platform is not None and site in platform.sites:
        for k in platform.sites[site].kavlans:
            if k.vlan == vlan and k.network:
                return k.network
    from execo_g5k.utils import get_kavlan_network

    network, size = get_kavlan_network(vlan, site)
    if not network:
        raise DvmsError(f"site {site}: the API describes no network for kavlan-{vlan}")
    return f"{network}/{size}"


def reserve(exp: Experiment, plan: Plan, state: ExperimentState, *,
            platform: Platform | None = None, progress: Progress = _stderr) -> Resources:
    """Submit ``plan``'s jobs all-or-nothing, wait for them, collect their resources."""
    if state.live_jobs():
        raise InputError(f"{state.workdir}: jobs already reserved "
                         f"({', '.join(f'{j.site}:{j.id}' for j in state.live_jobs())}); "
                         "run release first")
    state.new_reservation()
    state.start, state.end = plan.start, plan.end
    with state.step("reserve"):
        _submit(exp, plan, state)
        progress("submitted: " + ", ".join(f"{j.site} job {j.id}" for j in state.live_jobs()))
        _wait(exp, state, progress)
        return _collect(exp, plan, state, platform)


def _ids_by_name(exp: Experiment, site: str) -> list[int] | None:
    """Jobs of ours named like the experiment on ``site`` (for ``submitting`` records);
    None when the frontend cannot say."""
    res = session.run([site], "oarstat -u", frontend=True,
                      timeout_s=exp.platform.frontend_timeout_s)[0]
    if res.status != 0:
        return None
    return [int(m.group(1)) for m in re.finditer(r"^(\d+)\s+(\S+)", res.output, re.MULTILINE)
            if m.group(2) == exp.name[:14]]


def _delete(exp: Experiment, state: ExperimentState) -> tuple[list[str], list[str]]:
    """``oardel`` every job that may exist: (``site:id`` deleted, failures). A job whose
    frontend does not answer stays recorded, for the next ``release``."""
    deleted: list[str] = []
    failures: list[str] = []
    for rec in state.live_jobs():
        ids = [rec.id] if rec.id is not None else _ids_by_name(exp, rec.site)
        if ids is None:
            failures.append(f"frontend {session.frontend_host(rec.site)} unreachable: cannot "
                            "list its jobs")
            continue
        ok = True
        for job_id in ids:
            res = session.run([rec.site], f"oardel {job_id}", frontend=True,
                              timeout_s=exp.platform.frontend_timeout_s)[0]
            if res.status == session.SSH_FAILURE:
                ok = False
                failures.append(f"frontend {session.frontend_host(rec.site)} unreachable: "
                                f"job {job_id} not deleted")
            else:
                deleted.append(f"{rec.site}:{job_id}")
        if ok:
            rec.state = "deleted"
        state.save()
    return deleted, failures


def _cleanup(exp: Experiment, state: ExperimentState) -> str:
    """Delete the jobs after a failed reservation; the note that ends the error line."""
    deleted, failures = _delete(exp, state)
    note = f"deleted jobs: {', '.join(deleted) or 'none'}"
    if failures:
        note += f"; {failures[0]}: run release again when it answers"
    return note


def release(exp: Experiment, state: ExperimentState) -> list[str]:
    """Delete every job the state holds; returns ``site:id`` deleted (empty: nothing to do)."""
    if not state.live_jobs():
        return []
    with state.step("release"):
        deleted, failures = _delete(exp, state)
        if failures:
            done = f" (deleted: {', '.join(deleted)})" if deleted else ""
            raise DvmsError(f"{failures[0]}; run release again{done}")
    return deleted
