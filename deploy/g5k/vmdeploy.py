"""The ``vms`` step over ssh: disks, domains, liveness, host drops and redistribution.

``deploy_vms`` takes the hosts the ``deploy`` step left OK and, in this order:

1. builds the specs and assigns every VM its address — a pool too small is an
   ``InputError`` here, before anything exists on a host;
2. distributes the VMs (``[vms].distribution``, the experiment's seed) and records the
   plan in ``WORKDIR/vms.json`` before acting (``destroy_vms`` can always undo);
3. on each host with VMs (one ssh session per host and step, in parallel): copies the
   backing files to ``stage_dir`` (if set), checks them, creates the copy-on-write disks,
   defines and starts the domains. A host that fails a step as a whole (ssh fails, a
   backing file is missing, ``disk_dir`` cannot be made, libvirt refuses every domain) is
   marked KO in the experiment state (step ``vms-stage`` / ``vms-backing`` / ``vms-disk``
   / ``vms-libvirt``) and its VMs are redistributed over the other hosts, where they go
   through the steps again; a VM failing alone is KO;
4. waits for each running VM to accept a TCP connection on port 22 *from its host*;
   a VM silent after ``boot_timeout_s`` is restarted once, and KO if silent again;
5. writes ``vms.list`` and ``final_topo.xml`` and fails (``DvmsError``) below
   ``min_vms_ratio``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deploy.g5k import session
from deploy.g5k.domains import (
    GuestBoot,
    backing_command,
    define_start_command,
    destroy_command,
    disk_path,
    disks_command,
    domain_xml,
    liveness_command,
    parse_report,
    restart_command,
    stage_command,
    staged_path,
)
from deploy.g5k.platform import Node
from deploy.g5k.state import ExperimentState
from deploy.g5k.topology import write_outputs
from deploy.g5k.vms import (
    Placement,
    VmsConfig,
    VmSpec,
    assign_addresses,
    distribute,
    redistribute,
    rooms_of,
    specs_of,
)
from dvms.errors import DvmsError, InputError

__all__ = ["VMS_STATE", "Hypervisor", "VmRecord", "VmsRun", "deploy_vms", "destroy_vms",
           "hypervisor_of"]

VMS_STATE = "vms.json"
CHUNK = 32
"""VMs per host script (a domain's XML and its commands are ~1.5 KB)."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Hypervisor:
    """How the hosts' libvirt is reached and what kind of domain it runs."""

    uri: str = ""
    """``virsh -c`` (empty: the host's default, e.g. ``LIBVIRT_DEFAULT_URI``)."""
    domain_type: str = "kvm"
    bridge: str = "br0"
    virsh: str = "virsh"
    boot: GuestBoot | None = None
    port: int = 22
    """The port the liveness probe connects to."""
    poll_s: float = 2.0


def hypervisor_of(cfg: VmsConfig, **overrides: Any) -> Hypervisor:
    """The ``Hypervisor`` an experiment's ``[vms]`` table describes (domain type, direct
    kernel boot when ``kernel``/``initrd`` are set); ``overrides`` replace fields."""
    boot = GuestBoot(cfg.kernel, cfg.initrd, cfg.cmdline) if cfg.kernel else None
    return dataclasses.replace(Hypervisor(domain_type=cfg.domain_type, boot=boot), **overrides)


@dataclass
class VmRecord:
    host: str
    ip: str
    mac: str
    state: str = "planned"
    """planned → disk → running → OK, or KO."""
    step: str = ""
    reason: str = ""


@dataclass
class VmsRun:
    vms: dict[str, VmRecord]
    dropped: list[str] = field(default_factory=list)

    def save(self, workdir: Path) -> None:
        tmp = workdir / (VMS_STATE + ".tmp")
        tmp.write_text(json.dumps({"vms": {k: asdict(v) for k, v in self.vms.items()},
                                   "dropped": self.dropped}, indent=1))
        tmp.replace(workdir / VMS_STATE)

    @classmethod
    def load(cls, workdir: Path) -> VmsRun | None:
        path = workdir / VMS_STATE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls({k: VmRecord(**v) for k, v in data["vms"].items()}, list(data["dropped"]))

    def on(self, host: str, *states: str) -> list[str]:
        return [k for k, v in self.vms.items() if v.host == host and (not states
                                                                       or v.state in states)]

    def ko(self, vm: str, step: str, reason: str) -> None:
        rec = self.vms[vm]
        rec.state, rec.step, rec.reason = "KO", step, reason

    def states(self) -> dict[str, str]:
        return {k: v.state for k, v in self.vms.items()}


Run = Callable[[Sequence[str], str], list[session.RunResult]]


def _runner(timeout_s: float) -> Run:
    def run(hosts: Sequence[str], command: str) -> list[session.RunResult]:
        return session.run(hosts, command, timeout_s=timeout_s)
    return run


def deploy_vms(exp_seed: int, state: ExperimentState, cfg: VmsConfig, nodes: Sequence[Node],
               pool: Sequence[tuple[str, str]], *, hv: Hypervisor = Hypervisor(),
               base: Path | None = None, timeout_s: float = 600.0,
               progress: Callable[[str], None] = _stderr) -> VmsRun:
    """Create and start the VMs on the OK hosts of ``state``; see the module's docstring."""
    specs = specs_of(cfg, base)
    addresses = assign_addresses(specs, pool)  # InputError before anything exists
    if cfg.stage_dir:
        _check_stage_names(specs)
    ok = set(state.ok_hosts())
    hosts = [n for n in nodes if n.name in ok]
    if not hosts:
        raise DvmsError(f"{state.workdir}: no host is OK (run deploy first)")
    placement = distribute(specs, rooms_of(hosts, cfg.vcpus_per_core), cfg.distribution,
                           exp_seed)
    placement.require_all()
    if placement.dropped:
        more = ", ..." if len(placement.dropped) > 3 else ""
        progress(f"{len(placement.dropped)} VMs dropped by n_by_hosts "
                 f"({', '.join(placement.dropped[:3])}{more})")
    where = placement.host_of()
    run_state = VmsRun({v.id: VmRecord(where[v.id], *addresses[v.id]) for v in specs
                        if v.id in where}, list(placement.dropped))
    run_state.save(state.workdir)
    run = _runner(timeout_s)
    with state.step("vms"):
        placement = _build_all(state, cfg, specs, hosts, placement, run_state, hv, run,
                               exp_seed, progress)
        _wait_alive(cfg, run_state, hv, run, progress)
        run_state.save(state.workdir)
        write_outputs(state.workdir, nodes, {h.name: h.state for h in state.hosts.values()},
                      placement, specs, addresses, run_state.states())
        _check_ratio(cfg, run_state)
    return run_state


def _check_stage_names(specs: Sequence[VmSpec]) -> None:
    seen: dict[str, str] = {}
    for v in specs:
        name = v.backing_file.rsplit("/", 1)[-1]
        other = seen.setdefault(name, v.backing_file)
        if other != v.backing_file:
            raise InputError(f"vms.stage_dir: backing files {other} and {v.backing_file} "
                             "would be staged under the same name")


def _build_all(state: ExperimentState, cfg: VmsConfig, specs: Sequence[VmSpec],
               hosts: Sequence[Node], placement: Placement, rs: VmsRun, hv: Hypervisor,
               run: Run, seed: int, progress: Callable[[str], None]) -> Placement:
    spec = {v.id: v for v in specs}
    originals = {v.id: v.backing_file for v in specs}
    if cfg.stage_dir:  # the disks are made over the hosts' local copies
        spec = {k: dataclasses.replace(v, backing_file=staged_path(cfg.stage_dir,
                                                                   v.backing_file))
                for k, v in spec.items()}
    pending = {h: list(ids) for h, ids in placement.hosts.items() if ids}
    while pending:
        failed = _build(cfg, spec, pending, rs, hv, run, originals)
        rs.save(state.workdir)
        if not failed:
            return placement
        for host, (step, reason) in failed.items():
            state.mark_ko(host, f"vms-{step}", reason)
            progress(f"KO {host}: vms-{step}: {reason}")
        state.save()
        # best effort: what was started on a dropped host must not keep the moved VMs' IPs
        _parallel(run, {h: destroy_command(rs.on(h), cfg.disk_dir, hv.uri, hv.virsh)
                        for h in failed if rs.on(h, "running")})
        left = [n for n in hosts if n.name in set(state.ok_hosts())]
        before = placement.host_of()
        placement = redistribute(placement, list(failed), specs,
                                 rooms_of(left, cfg.vcpus_per_core), cfg.distribution, seed)
        for vm in placement.unplaced:
            rs.ko(vm, "redistribute", f"no room left after {', '.join(failed)} dropped")
        rs.save(state.workdir)
        placement.require_all()
        pending = {}
        for vm, host in placement.host_of().items():
            if before.get(vm) != host:
                rec = rs.vms[vm]
                rec.host, rec.state, rec.step, rec.reason = host, "planned", "", ""
                pending.setdefault(host, []).append(vm)
        progress(f"{sum(len(v) for v in pending.values())} VMs redistributed over "
                 f"{len(left)} hosts")
    return placement


def _build(cfg: VmsConfig, spec: Mapping[str, VmSpec], pending: Mapping[str, list[str]],
           rs: VmsRun, hv: Hypervisor, run: Run,
           originals: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Backing check, disks, define + start on every pending host; host → failed step."""
    failed: dict[str, tuple[str, str]] = {}

    def each(step: str, build: Callable[[str, list[str]], str]) -> dict[str, str]:
        """Run the step on the hosts still in; host → its output."""
        hosts = [h for h in pending if h not in failed and rs.on(h, "planned", "disk")]
        outputs: dict[str, str] = {}
        # the hosts' scripts (each host has its own VMs) started together; a host's VMs in
        # chunks of CHUNK, so a script stays far below the kernel's 128 KiB per argument
        scripts: dict[str, list[str]] = {}
        for h in hosts:
            ids = [v for v in pending[h] if rs.vms[v].state != "KO"]
            scripts[h] = [build(h, ids[i:i + CHUNK]) for i in range(0, len(ids), CHUNK)]
        for r in _parallel(run, scripts):
            # the whole host fails: ssh, a missing backing file, a directory not made (4);
            # any other exit is the last VM's own failure, reported on its line
            if r.status in (session.SSH_FAILURE, 4) or (step in ("stage", "backing")
                                                         and r.status):
                failed[r.host] = (step, _last(r.output) or f"exit {r.status}")
            outputs[r.host] = r.output
        return outputs

    if cfg.stage_dir:
        each("stage", lambda h, ids: stage_command([originals[v] for v in ids], cfg.stage_dir))
    each("backing", lambda h, ids: backing_command([spec[v].backing_file for v in ids]))
    for host, out in each("disk", lambda h, ids: disks_command([spec[v] for v in ids],
                                                               cfg.disk_dir)).items():
        if host in failed:
            continue
        for vm, rep in parse_report(out, "disk", _live(rs, pending[host])).items():
            if rep.ok:
                rs.vms[vm].state = "disk"
            else:
                rs.ko(vm, "disk", rep.reason)

    def domains(host: str, ids: list[str]) -> str:
        xml = {v: domain_xml(spec[v], rs.vms[v].mac, disk_path(cfg.disk_dir, v),
                             domain_type=hv.domain_type, bridge=hv.bridge, boot=hv.boot,
                             ip=rs.vms[v].ip if hv.boot is not None else "")
               for v in ids if rs.vms[v].state == "disk"}
        return define_start_command(xml, cfg.disk_dir, hv.uri, hv.virsh)

    for host, out in each("libvirt", domains).items():
        if host in failed:
            continue
        ids = [v for v in pending[host] if rs.vms[v].state == "disk"]
        defined = parse_report(out, "define", ids)
        started = parse_report(out, "start", ids)
        if ids and not any(r.ok for r in defined.values()):
            failed[host] = ("libvirt", next(iter(defined.values())).reason)
            continue
        for vm in ids:
            if not defined[vm].ok:
                rs.ko(vm, "define", defined[vm].reason)
            elif not started[vm].ok:
                rs.ko(vm, "start", started[vm].reason)
            else:
                rs.vms[vm].state = "running"
    return failed


def _live(rs: VmsRun, ids: Sequence[str]) -> list[str]:
    return [v for v in ids if rs.vms[v].state != "KO"]


def _parallel(run: Run, scripts: Mapping[str, str | list[str]]) -> list[session.RunResult]:
    """Per-host scripts started together, a host's list one after the other (its result:
    the outputs joined; the first host-level failure, else the first non-zero status)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(host: str) -> session.RunResult:
        todo = scripts[host]
        results = [run([host], cmd)[0] for cmd in ([todo] if isinstance(todo, str) else todo)]
        status = next((r.status for r in results if r.status in (session.SSH_FAILURE, 4)),
                      next((r.status for r in results if r.status), 0))
        return session.RunResult(host, status, "".join(r.output for r in results))

    if not scripts:
        return []
    with ThreadPoolExecutor(max_workers=min(32, len(scripts))) as pool:
        return list(pool.map(one, list(scripts)))


def _last(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _wait_alive(cfg: VmsConfig, rs: VmsRun, hv: Hypervisor, run: Run,
                progress: Callable[[str], None]) -> None:
    """Port 22 from each VM's host until it answers; silent at the deadline: one restart,
    then KO after a second ``boot_timeout_s``."""
    waiting = {v for v, r in rs.vms.items() if r.state == "running"}
    restarted: set[str] = set()
    deadline = time.monotonic() + cfg.boot_timeout_s
    while waiting:
        by_host: dict[str, dict[str, str]] = {}
        for vm in sorted(waiting):
            by_host.setdefault(rs.vms[vm].host, {})[vm] = rs.vms[vm].ip
        scripts = {h: liveness_command(a, port=hv.port) for h, a in by_host.items()}
        for r in _parallel(run, scripts):
            for vm, rep in parse_report(r.output, "live", list(by_host[r.host])).items():
                if rep.ok:
                    rs.vms[vm].state = "OK"
                    waiting.discard(vm)
        if not waiting:
            return
        if time.monotonic() < deadline:
            time.sleep(hv.poll_s)
            continue
        again = waiting - restarted
        for vm in waiting & restarted:
            rs.ko(vm, "live", f"no answer on port {hv.port} after one restart")
        waiting -= restarted
        if not again:
            return
        progress(f"restarting {len(again)} VMs silent on port {hv.port}: "
                 f"{', '.join(sorted(again)[:5])}")
        hosts: dict[str, list[str]] = {}
        for vm in sorted(again):
            hosts.setdefault(rs.vms[vm].host, []).append(vm)
        for r in _parallel(run, {h: restart_command(ids, hv.uri, hv.virsh)
                                 for h, ids in hosts.items()}):
            for vm, rep in parse_report(r.output, "restart", hosts[r.host]).items():
                if not rep.ok:
                    rs.ko(vm, "restart", rep.reason)
                    waiting.discard(vm)
        restarted |= again
        deadline = time.monotonic() + cfg.boot_timeout_s


def _check_ratio(cfg: VmsConfig, rs: VmsRun) -> None:
    total = len(rs.vms)
    ok = sum(1 for r in rs.vms.values() if r.state == "OK")
    if total and ok / total + 1e-9 >= cfg.min_vms_ratio:
        return
    first = next((f"; first KO: {k} ({r.step}: {r.reason})" for k, r in rs.vms.items()
                  if r.state == "KO"), "")
    raise DvmsError(f"only {ok} of {total} VMs OK, below vms.min_vms_ratio = "
                    f"{cfg.min_vms_ratio:g}{first}")


def destroy_vms(state: ExperimentState, cfg: VmsConfig, hv: Hypervisor = Hypervisor(), *,
                timeout_s: float = 300.0) -> list[str]:
    """Destroy every recorded VM and its disk (hosts that do not answer are listed), on
    its recorded host *and* on every other OK host: a VM the agents live-migrated runs
    (and keeps a disk) where ``vms.json`` does not say."""
    rs = VmsRun.load(state.workdir)
    if rs is None:
        return []
    vms = list(rs.vms)
    hosts = list(dict.fromkeys([*(r.host for r in rs.vms.values()), *state.ok_hosts()]))
    run = _runner(timeout_s)
    unreachable = [r.host for r in _parallel(run, {
        h: destroy_command(vms, cfg.disk_dir, hv.uri, hv.virsh) for h in hosts})
        if r.status != 0]
    if not unreachable:
        (state.workdir / VMS_STATE).unlink()
    return unreachable
