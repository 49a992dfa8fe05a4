"""The local real cluster: N libvirt "hosts" on this machine, each in a network namespace.

``up`` creates, in order, and records each step in ``WORKDIR/state.json`` *before* doing it
(so ``down`` can undo a half-finished ``up``): a bridge namespace, one namespace per host
plugged into it (optional netem delay), one private libvirtd per host, and K TCG guests
per host whose load is set through libvirt's CPU quota (which follows live migrations).
``down`` destroys guests, stops daemons, kills whatever is left in the hosts' cgroup
subtrees, removes those subtrees and deletes the namespaces; it is safe to repeat.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import libvirt

from deploy import cluster_net as net
from deploy.cluster_guests import MIN_MEMORY_MIB, domain_xml, last_tick, start_guest, wait_booted
from deploy.cluster_libvirtd import LibvirtdHost, kill_cgroup, remove_cgroup
from deploy.guest_image import DEFAULT_CACHE, WORKLOADS, build_guest_image
from deploy.libvirt_hv import set_cpu_cap
from dvms.errors import DvmsError, InputError

__all__ = [
    "DEFAULT_WORKDIR",
    "ClusterSpec",
    "ClusterState",
    "down",
    "require_root",
    "set_load",
    "status",
    "stop_agents",
    "up",
]

DEFAULT_WORKDIR = Path("/var/tmp/dvms-cluster")
STATE = "state.json"
LOADS = "loads.jsonl"
"""Load changes made with ``set_load`` (wall time, vm, host, percent), one JSON per line."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise InputError("the local cluster needs root (network namespaces, libvirtd, cgroups); "
                         "run it as root")


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """What ``up`` builds. Validated on construction (``InputError`` naming the field)."""

    hosts: int
    vms_per_host: int
    delay_ms: float = 0.0
    """One-way delay added between any two hosts (netem on each host's eth0)."""
    memory_mib: int = 96
    workload: str = "spin"
    load: float = 20.0
    """Initial CPU cap of every guest, percent of a core."""
    subnet: str = "10.213.0.0/24"
    prefix: str = "dvms"
    """Names of namespaces (``<prefix>-h0``), cgroups and links; ≤ 8 characters."""

    def __post_init__(self) -> None:
        if not 1 <= self.hosts <= 64:
            raise InputError(f"--hosts {self.hosts}: expected 1..64")
        if not 0 <= self.vms_per_host <= 64:
            raise InputError(f"--vms-per-host {self.vms_per_host}: expected 0..64")
        if not 0 <= self.delay_ms <= 10_000:
            raise InputError(f"--delay-ms {self.delay_ms}: expected 0..10000")
        if self.memory_mib < MIN_MEMORY_MIB:
            raise InputError(f"--memory-mib {self.memory_mib}: expected >= {MIN_MEMORY_MIB}")
        if self.workload not in WORKLOADS:
            raise InputError(f"--workload {self.workload!r}: expected one of "
                             f"{', '.join(WORKLOADS)}")
        if not 0 <= self.load <= 100:
            raise InputError(f"--load {self.load}: expected 0..100 (percent of a core)")
        if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", self.prefix):
            raise InputError(f"prefix {self.prefix!r}: expected 1-8 lowercase letters/digits")
        try:
            net_ = ipaddress.ip_network(self.subnet)
        except ValueError as exc:
            raise InputError(f"--subnet {self.subnet!r}: {exc}") from exc
        if net_.num_addresses < self.hosts + 2:
            raise InputError(f"--subnet {self.subnet}: too small for {self.hosts} hosts")


@dataclass(slots=True)
class ClusterState:
    """What exists (or may exist) of a cluster; persisted as ``state.json``."""

    workdir: Path
    spec: dict[str, Any]
    bridge_ns: str
    hosts: list[LibvirtdHost] = field(default_factory=list)
    vms: dict[str, str] = field(default_factory=dict)
    """Guest name → host it was started on (``status`` asks the daemons where it is now)."""
    agents: dict[str, int] = field(default_factory=dict)
    """Host name → agent pid (when agents run)."""

    def serial(self, vm: str) -> Path:
        return self.workdir / "serial" / f"{vm}.log"

    def host(self, name: str) -> LibvirtdHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise InputError(f"host {name!r}: not in this cluster ({', '.join(self.host_names())})")

    def host_names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def peer_uris(self) -> dict[str, str]:
        """Host → URI its peers' daemons use to migrate to it."""
        return {h.name: h.tcp_uri for h in self.hosts}

    def save(self) -> None:
        data = {
            "spec": self.spec,
            "bridge_ns": self.bridge_ns,
            "hosts": [{**asdict(h), "base": str(h.base)} for h in self.hosts],
            "vms": self.vms,
            "agents": self.agents,
        }
        tmp = self.workdir / (STATE + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(self.workdir / STATE)

    @classmethod
    def load(cls, workdir: Path) -> ClusterState | None:
        path = workdir / STATE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            hosts = [LibvirtdHost(name=h["name"], netns=h["netns"], ip=h["ip"],
                                  base=Path(h["base"]), cgroup=h["cgroup"])
                     for h in data["hosts"]]
            return cls(workdir=workdir, spec=data["spec"], bridge_ns=data["bridge_ns"],
                       hosts=hosts, vms=dict(data["vms"]),
                       agents={k: int(v) for k, v in data.get("agents", {}).items()})
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not a dvms cluster state file ({exc})") from exc


def _open(host: LibvirtdHost) -> libvirt.virConnect:
    try:
        return libvirt.open(host.uri)
    except libvirt.libvirtError as exc:
        raise DvmsError(f"cannot reach libvirtd of {host.name}: {exc}") from exc


def up(spec: ClusterSpec, workdir: Path = DEFAULT_WORKDIR, *,
       image_cache: Path = DEFAULT_CACHE, boot_timeout_s: float = 180.0) -> ClusterState:
    """Build the cluster; on failure, undo what was done and re-raise."""
    require_root()
    workdir = workdir.resolve()
    if (workdir / STATE).exists():
        raise InputError(f"a cluster is already up in {workdir} (run: dvms cluster down "
                         f"--workdir {workdir})")
    clash = [ns for ns in net.list_netns() if ns.startswith(f"{spec.prefix}-")]
    if clash:
        raise InputError(f"namespaces {', '.join(clash)} exist: another cluster with prefix "
                         f"{spec.prefix!r} is up")
    image = build_guest_image(image_cache)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "serial").mkdir(exist_ok=True)
    state = ClusterState(workdir=workdir, spec=asdict(spec), bridge_ns=f"{spec.prefix}-net")
    state.save()
    try:
        _build(state, spec, image, boot_timeout_s)
    except BaseException:
        down(workdir)
        raise
    return state


def _build(state: ClusterState, spec: ClusterSpec, image: Any, boot_timeout_s: float) -> None:
    prefixlen = ipaddress.ip_network(spec.subnet).prefixlen
    net.create_bridge_ns(state.bridge_ns)
    for i in range(spec.hosts):
        host = LibvirtdHost(name=f"h{i}", netns=f"{spec.prefix}-h{i}",
                            ip=net.host_ip(spec.subnet, i),
                            base=state.workdir / "hosts" / f"h{i}",
                            cgroup=f"libvirt-{spec.prefix}-h{i}")
        state.hosts.append(host)
        state.save()
        net.add_host_link(state.bridge_ns, host.netns, f"{spec.prefix}v{i}", host.ip, prefixlen)
        if spec.delay_ms > 0:
            net.set_delay(host.netns, spec.delay_ms)
    for host in state.hosts:
        host.start()
    _warm_up(state.hosts)
    state.hosts[0].save_capabilities()
    conns = {h.name: _open(h) for h in state.hosts}
    try:
        for host in state.hosts:
            for j in range(spec.vms_per_host):
                vm = f"{host.name}-vm{j}"
                state.vms[vm] = host.name
                state.save()
                xml = domain_xml(vm, image, state.serial(vm), memory_mib=spec.memory_mib,
                                 workload=spec.workload)
                start_guest(conns[host.name], xml)
        wait_booted([state.serial(vm) for vm in state.vms], boot_timeout_s)
        for vm, host_name in state.vms.items():
            set_cpu_cap(conns[host_name].lookupByName(vm), spec.load)
    finally:
        for conn in conns.values():
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()


def _warm_up(hosts: list[LibvirtdHost]) -> None:
    """First connections, in parallel (a daemon probes QEMU's capabilities on the first)."""
    errors: list[str] = []

    def hello(host: LibvirtdHost) -> None:
        try:
            conn = libvirt.open(host.uri)
            conn.getCapabilities()
            conn.close()
        except libvirt.libvirtError as exc:
            errors.append(f"{host.name}: {exc}")

    threads = [threading.Thread(target=hello, args=(h,)) for h in hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise DvmsError(f"libvirtd warm-up failed: {errors[0]}")


def down(workdir: Path = DEFAULT_WORKDIR) -> list[str]:
    """Undo everything ``up`` recorded; returns what was removed. Safe to repeat."""
    require_root()
    workdir = workdir.resolve()
    state = ClusterState.load(workdir)
    if state is None:
        return []
    removed: list[str] = []
    if state.agents:
        removed += [f"agent {name}" for name in stop_agents(state)]
    for host in state.hosts:
        if host.alive() and host.socket.exists():
            try:
                conn = libvirt.open(host.uri)
                for dom in conn.listAllDomains():
                    with contextlib.suppress(libvirt.libvirtError):
                        if dom.isActive():
                            dom.destroy()
                        removed.append(f"guest {dom.name()}")
                        dom.undefine()
                conn.close()
            except libvirt.libvirtError:
                pass
        if host.alive():
            removed.append(f"libvirtd {host.name}")
            host.terminate()
    for host in state.hosts:
        host.stop()
        if kill_cgroup(host.cgroup):
            removed.append(f"processes in {host.cgroup}")
    for host in state.hosts:
        remove_cgroup(host.cgroup)
        if host.netns in net.list_netns():
            removed.append(f"netns {host.netns}")
        net.delete_netns(host.netns)
    if state.bridge_ns in net.list_netns():
        removed.append(f"netns {state.bridge_ns}")
    net.delete_netns(state.bridge_ns)
    (workdir / STATE).unlink(missing_ok=True)
    return removed


def _require_state(workdir: Path) -> ClusterState:
    state = ClusterState.load(workdir.resolve())
    if state is None:
        raise InputError(f"no cluster in {workdir} (run: dvms cluster up)")
    return state


def locate(state: ClusterState) -> dict[str, tuple[str, libvirt.virDomain, libvirt.virConnect]]:
    """Where each running guest is now: vm → (host, domain, connection)."""
    found: dict[str, tuple[str, libvirt.virDomain, libvirt.virConnect]] = {}
    for host in state.hosts:
        if not host.alive():
            continue
        try:
            conn = libvirt.open(host.uri)
            for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                if dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING:
                    found[dom.name()] = (host.name, dom, conn)
        except libvirt.libvirtError:
            continue
    return found


def set_load(workdir: Path, vm: str, percent: float) -> str:
    """Cap ``vm`` at ``percent`` of a core wherever it runs; returns its host."""
    require_root()
    if not 0 <= percent <= 100:
        raise InputError(f"PERCENT {percent}: expected 0..100 (percent of a core)")
    state = _require_state(workdir)
    where = locate(state)
    if vm not in where:
        raise InputError(f"VM {vm!r}: not running in this cluster "
                         f"({', '.join(sorted(where)) or 'no guests'})")
    host, dom, _ = where[vm]
    try:
        set_cpu_cap(dom, percent)
    except libvirt.libvirtError as exc:
        raise DvmsError(f"setting the CPU cap of {vm}: {exc}") from exc
    with open(state.workdir / LOADS, "a") as f:  # "load" events of the run (see collect)
        f.write(json.dumps({"t_unix": time.time(), "vm": vm, "host": host,
                            "load": float(percent)}) + "\n")
    return host


def status(workdir: Path) -> dict[str, Any]:
    """Hosts (daemon up?, address) and guests (host, cap, last serial tick)."""
    require_root()
    state = _require_state(workdir)
    where = locate(state)
    vms: dict[str, Any] = {}
    for vm in sorted(state.vms):
        info: dict[str, Any] = {"host": None, "cap": None, "tick": last_tick(state.serial(vm))}
        if vm in where:
            host, dom, _ = where[vm]
            info["host"] = host
            with contextlib.suppress(libvirt.libvirtError):
                params = dom.schedulerParametersFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE)
                quota = int(params.get("vcpu_quota", -1))
                period = int(params.get("vcpu_period", 100_000)) or 100_000
                info["cap"] = None if quota <= 0 else round(quota / period * 100, 1)
        vms[vm] = info
    return {
        "workdir": str(state.workdir),
        "hosts": {h.name: {"ip": h.ip, "netns": h.netns, "libvirtd": h.alive(), "uri": h.uri}
                  for h in state.hosts},
        "vms": vms,
        "agents": state.agents,
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def stop_agents(state: ClusterState, timeout_s: float = 20.0,
                only: list[str] | None = None, sig: int = signal.SIGTERM) -> list[str]:
    """Signal the agents (SIGKILL after ``timeout_s``); returns the hosts stopped."""
    names = sorted(state.agents) if only is None else only
    for name in names:
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.agents[name], sig)
    deadline = time.monotonic() + timeout_s
    for name in names:
        pid = state.agents[name]
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        del state.agents[name]
    state.save()
    return names
