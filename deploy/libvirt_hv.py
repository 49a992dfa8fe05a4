"""``LibvirtHypervisor``: the node-side ``Hypervisor`` interface over libvirt-python.

- **Capacity**: declared at construction, else from libvirt's node info: ``cores × 100``
  minus ``reserved_cores × 100`` (one core kept for the host, as VMPlaceS), and the node's
  memory minus ``reserved_memory_mib``.
- **VMs**: every active domain, with its current memory and vCPU count. CPU **usage** is
  measured from CPU-time deltas between two samples at least ``MIN_SAMPLE_S`` apart
  (percent of a core, wall clock of this process). CPU **demand** is the quota-derived
  target when the domain has a libvirt CPU cap (``vcpu_quota``/``global_quota``, which is
  how the local cluster injects load: its guests spin and the cap sets how much they
  get), else the measured usage. A capped guest on an overloaded host gets less than its
  cap; its demand is still the cap, which is what makes the overload visible.
- **migrate**: a live migration (``migrateToURI3`` with LIVE | PEER2PEER | PERSIST_DEST |
  UNDEFINE_SOURCE, plus NON_SHARED_INC with ``migration_storage="copy-inc"``: the disk
  overlay is copied, the backing file being on both hosts, as on Grid'5000 where each
  host keeps its VMs' disks locally; the destination's empty overlay is made first
  through its daemon, ``deploy.migration_disks``, and a failure there is the migration's)
  to the destination's URI from a node → URI map, run
  on a worker thread, aborted (``abortJob``) after ``migration_timeout_s``. The ``MigrationResult``
  goes to ``reply_to`` through the ``deliver`` callable (a ``ThreadRuntime``'s
  ``inject``). A failed or timed-out migration leaves the VM at its source; it is traced
  as ``migration.fail`` with its cause.
- Libvirt errors never propagate out of this class: they are logged and counted in
  ``errors`` (by operation); reads then return the last good snapshot.
- ``watch()`` returns False: callers poll.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import libvirt

from deploy.migration_disks import precreate_overlays
from dvms import events
from dvms.events import Event
from dvms.hypervisor import HostCapacity, MigrationResult, VMSample, demand_of
from peeractor import Address, NodeId

__all__ = [
    "MIGRATION_FLAGS",
    "MIGRATION_STORAGE",
    "CpuCap",
    "LibvirtHypervisor",
    "cap_from_scheduler_params",
    "cpu_percent",
    "quota_for_percent",
    "set_cpu_cap",
]

log = logging.getLogger(__name__)

MIGRATION_FLAGS = (
    libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_PEER2PEER
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
)
"""Flags of every live migration started here."""

MIGRATION_STORAGE = {"shared": 0, "copy-inc": libvirt.VIR_MIGRATE_NON_SHARED_INC}
"""Storage modes: disks on shared storage, or copied incrementally over the backing file."""

DEFAULT_PERIOD_US = 100_000
MIN_SAMPLE_S = 0.2
"""Shortest window a CPU usage is measured over: two reads a few ms apart (a monitor tick,
then a partition's snapshot) would see 0 or several cores, as the CPU time advances by
scheduler ticks; within the window the last usage stands."""
MIN_QUOTA_US = 1_000

Trace = Callable[[dict[str, Any]], None]
Deliver = Callable[[Address, object], None]


def _quiet_libvirt() -> None:
    """Stop libvirt printing every error to stderr; we log and count them ourselves."""

    def ignore(_ctx: object, _err: object) -> None:
        return None

    libvirt.registerErrorHandler(ignore, None)


def cpu_percent(cpu_ns_before: int, cpu_ns_after: int, wall_s: float) -> float:
    """CPU usage between two samples, percent of one core (100 = one busy core)."""
    if wall_s <= 0 or cpu_ns_after < cpu_ns_before:
        return 0.0
    return (cpu_ns_after - cpu_ns_before) / 1e9 / wall_s * 100.0


@dataclass(frozen=True, slots=True)
class CpuCap:
    """A domain's CPU cap, percent of a core for the whole VM."""

    percent: float


def cap_from_scheduler_params(params: Mapping[str, Any], vcpus: int) -> CpuCap | None:
    """The cap implied by libvirt scheduler parameters, or None when uncapped.

    ``vcpu_quota`` applies to each vCPU (``vcpus × quota / period``); ``global_quota`` to
    the whole VM; when both are set, the smaller cap wins. Quotas ≤ 0 mean "no limit".
    """
    caps: list[float] = []
    vq = int(params.get("vcpu_quota", 0) or 0)
    vp = int(params.get("vcpu_period", 0) or DEFAULT_PERIOD_US)
    if vq > 0 and vp > 0:
        caps.append(vcpus * vq / vp * 100.0)
    gq = int(params.get("global_quota", 0) or 0)
    gp = int(params.get("global_period", 0) or DEFAULT_PERIOD_US)
    if gq > 0 and gp > 0:
        caps.append(gq / gp * 100.0)
    return CpuCap(min(caps)) if caps else None


def quota_for_percent(percent: float, vcpus: int, period_us: int = DEFAULT_PERIOD_US) -> int:
    """The per-vCPU quota (µs per period) capping a VM at ``percent`` of a core; -1 = none."""
    if percent < 0:
        raise ValueError(f"negative CPU percent {percent}")
    if vcpus < 1:
        raise ValueError(f"vcpus must be >= 1, got {vcpus}")
    if percent >= 100.0 * vcpus:
        return -1
    return max(MIN_QUOTA_US, round(period_us * percent / 100.0 / vcpus))


def set_cpu_cap(dom: libvirt.virDomain, percent: float) -> None:
    """Cap a running domain at ``percent`` of a core (LIVE; the cap follows live migration)."""
    vcpus = int(dom.info()[3])
    quota = quota_for_percent(percent, vcpus)
    dom.setSchedulerParametersFlags(
        {"vcpu_period": DEFAULT_PERIOD_US, "vcpu_quota": quota}, libvirt.VIR_DOMAIN_AFFECT_LIVE
    )


@dataclass(slots=True)
class _CpuMark:
    cpu_ns: int
    at: float
    usage: float


class LibvirtHypervisor:
    """A real host's hypervisor, reached through one libvirt connection."""

    def __init__(
        self,
        node: NodeId,
        uri: str,
        *,
        deliver: Deliver,
        peer_uris: Mapping[NodeId, str] | None = None,
        capacity: HostCapacity | None = None,
        reserved_cores: float = 1.0,
        reserved_memory_mib: int = 0,
        migration_timeout_s: float = 120.0,
        trace: Trace | None = None,
        clock: Callable[[], float] = time.monotonic,
        sites: Mapping[NodeId, str] | None = None,
        migration_storage: str = "shared",
    ) -> None:
        """``sites`` maps nodes to site names for the trace (missing: ``""``).
        ``peer_uris`` maps each destination node to its libvirt URI *as the source daemon
        reaches it* (peer-to-peer, e.g. ``qemu+tcp://10.0.0.2/system``). ``clock`` stamps
        trace events and migration results (the runtime's ``now``); CPU sampling always
        uses ``time.monotonic``.
        """
        if migration_timeout_s <= 0:
            raise ValueError(f"migration_timeout_s must be > 0, got {migration_timeout_s}")
        if migration_storage not in MIGRATION_STORAGE:
            raise ValueError(f"migration_storage {migration_storage!r}: shared or copy-inc")
        self.migration_flags = MIGRATION_FLAGS | MIGRATION_STORAGE[migration_storage]
        """The flags ``migrate`` passes to ``migrateToURI3``."""
        _quiet_libvirt()
        self.node = node
        self.uri = uri
        self._deliver = deliver
        self._peer_uris = dict(peer_uris or {})
        self._declared = capacity
        self._reserved_cores = reserved_cores
        self._reserved_memory_mib = reserved_memory_mib
        self.migration_timeout_s = migration_timeout_s
        self._trace = trace
        self._clock = clock
        self._sites = dict(sites or {})
        self._lock = threading.Lock()
        self._conn: libvirt.virConnect | None = None
        self._marks: dict[str, _CpuMark] = {}
        self._outgoing: set[str] = set()
        self._workers: list[threading.Thread] = []
        self._last: list[VMSample] = []
        self._capacity: HostCapacity | None = capacity
        self.errors: Counter[str] = Counter()
        """Libvirt errors seen, by operation (``connect``, ``list``, ``migrate``, ...)."""
        self._connect()
        self.vms()  # prime the CPU marks, so the next call has a delta

    # -- connection ---------------------------------------------------------------------

    def _connect(self) -> libvirt.virConnect | None:
        if self._conn is not None:
            try:
                if self._conn.isAlive():
                    return self._conn
            except libvirt.libvirtError:
                pass
            self._conn = None
        try:
            self._conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            self._fail("connect", exc)
            return None
        return self._conn

    def _fail(self, op: str, exc: BaseException) -> None:
        self.errors[op] += 1
        log.warning("libvirt %s on %s (%s): %s", op, self.node, self.uri, exc)

    def close(self) -> None:
        """Wait for running migrations, then close the connection."""
        for worker in list(self._workers):
            worker.join()
        if self._conn is not None:
            try:
                self._conn.close()
            except libvirt.libvirtError as exc:
                self._fail("close", exc)
            self._conn = None

    # -- Hypervisor ---------------------------------------------------------------------

    def capacity(self) -> HostCapacity:
        if self._capacity is not None:
            return self._capacity
        conn = self._connect()
        if conn is None:
            return HostCapacity(cpu=0.0, memory_mib=0)
        try:
            info = conn.getInfo()
        except libvirt.libvirtError as exc:
            self._fail("capacity", exc)
            return HostCapacity(cpu=0.0, memory_mib=0)
        cores = int(info[2])
        self._capacity = HostCapacity(
            cpu=max(0.0, (cores - self._reserved_cores) * 100.0),
            memory_mib=max(0, int(info[1]) - self._reserved_memory_mib),
        )
        return self._capacity

    def vms(self) -> Sequence[VMSample]:
        conn = self._connect()
        if conn is None:
            return list(self._last)
        try:
            domains = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        except libvirt.libvirtError as exc:
            self._fail("list", exc)
            return list(self._last)
        samples: list[VMSample] = []
        seen: set[str] = set()
        for dom in domains:
            sample = self._sample(dom)
            if sample is not None:
                samples.append(sample)
                seen.add(sample.vm)
        with self._lock:
            for gone in [name for name in self._marks if name not in seen]:
                del self._marks[gone]
        samples.sort(key=lambda s: s.vm)
        self._last = samples
        return list(samples)

    def _sample(self, dom: libvirt.virDomain) -> VMSample | None:
        try:
            name = dom.name()
            state, _max_kib, mem_kib, vcpus, cpu_ns = dom.info()
            reason = dom.state()[1] if state == libvirt.VIR_DOMAIN_PAUSED else 0
        except libvirt.libvirtError as exc:
            self._fail("sample", exc)  # e.g. the domain left between list and info
            return None
        now = time.monotonic()
        with self._lock:
            mark = self._marks.get(name)
            if mark is not None and now - mark.at < MIN_SAMPLE_S:
                usage = mark.usage  # too short a window: keep the mark, reuse its usage
            else:
                usage = 0.0 if mark is None else cpu_percent(mark.cpu_ns, cpu_ns, now - mark.at)
                self._marks[name] = _CpuMark(cpu_ns=int(cpu_ns), at=now, usage=usage)
            outgoing = name in self._outgoing
        incoming = (state == libvirt.VIR_DOMAIN_PAUSED
                    and reason == libvirt.VIR_DOMAIN_PAUSED_MIGRATION)
        demand = usage
        cap = self._cap(dom, int(vcpus))
        if cap is not None:
            demand = cap.percent
        return VMSample(
            vm=name,
            vcpus=int(vcpus),
            memory_mib=int(mem_kib) // 1024,
            cpu_demand=min(demand, 100.0 * int(vcpus)),
            migrating=outgoing or incoming,
        )

    def _cap(self, dom: libvirt.virDomain, vcpus: int) -> CpuCap | None:
        try:
            params = dom.schedulerParametersFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError:
            try:  # drivers without the flags variant (the test driver)
                params = dom.schedulerParameters()
            except libvirt.libvirtError as exc:
                self._fail("sched", exc)
                return None
        return cap_from_scheduler_params(params, vcpus)

    def demand_totals(self) -> tuple[float, int]:
        return demand_of(self.vms())

    def usage(self, vm: str) -> float | None:
        """The CPU usage of ``vm`` measured at the last sample (percent of a core)."""
        with self._lock:
            mark = self._marks.get(vm)
        return None if mark is None else mark.usage

    def migrating(self) -> bool:
        with self._lock:
            if self._outgoing:
                return True
        return any(s.migrating for s in self._last)

    def watch(self, address: Address) -> bool:
        return False

    def set_cpu_cap(self, vm: str, percent: float) -> bool:
        """Cap ``vm`` at ``percent`` of a core; False (counted) on a libvirt error."""
        conn = self._connect()
        if conn is None:
            return False
        try:
            set_cpu_cap(conn.lookupByName(vm), percent)
        except libvirt.libvirtError as exc:
            self._fail("cap", exc)
            return False
        return True

    # -- migration ----------------------------------------------------------------------

    def migrate(self, vm: str, destination: NodeId, reply_to: Address) -> None:
        started = self._clock()
        memory_mib = next((s.memory_mib for s in self._last if s.vm == vm), 0)
        dest_uri = self._peer_uris.get(destination)
        if dest_uri is None:
            self._finish(vm, destination, reply_to, started, memory_mib,
                         f"no libvirt URI for destination {destination}")
            return
        with self._lock:
            if vm in self._outgoing:
                busy = True
            else:
                busy = False
                self._outgoing.add(vm)
        if busy:
            self._finish(vm, destination, reply_to, started, memory_mib,
                         "already migrating", release=False)
            return
        self._record(events.migration_start(
            self._clock(), self.node, vm=vm, src=self.node, dst=destination,
            src_site=self._site(self.node), dst_site=self._site(destination),
            memory_mib=memory_mib))
        worker = threading.Thread(
            target=self._migrate_worker,
            args=(vm, destination, dest_uri, reply_to, started, memory_mib),
            name=f"migrate-{vm}",
            daemon=True,
        )
        self._workers = [w for w in self._workers if w.is_alive()]
        self._workers.append(worker)
        worker.start()

    def _migrate_worker(self, vm: str, destination: NodeId, dest_uri: str, reply_to: Address,
                        started: float, memory_mib: int) -> None:
        reason = ""
        timed_out = threading.Event()
        timer: threading.Timer | None = None
        try:
            conn = libvirt.open(self.uri)  # own connection: the RPC blocks for the whole job
        except libvirt.libvirtError as exc:
            self._fail("migrate", exc)
            self._finish(vm, destination, reply_to, started, memory_mib, f"connect: {exc}")
            return
        try:
            dom = conn.lookupByName(vm)
            if self.migration_flags & libvirt.VIR_MIGRATE_NON_SHARED_INC:
                try:  # libvirt does not pre-create the target of an incremental copy
                    precreate_overlays(dom, dest_uri)
                except libvirt.libvirtError as exc:
                    self._fail("precreate", exc)
                    self._finish(vm, destination, reply_to, started, memory_mib,
                                 f"destination disk: {str(exc).strip() or 'libvirt error'}")
                    return

            def abort() -> None:
                timed_out.set()
                try:
                    dom.abortJob()
                except libvirt.libvirtError as exc:
                    self._fail("abort", exc)

            timer = threading.Timer(self.migration_timeout_s, abort)
            timer.daemon = True
            timer.start()
            dom.migrateToURI3(dest_uri, {}, self.migration_flags)
        except libvirt.libvirtError as exc:
            self._fail("migrate", exc)
            reason = (f"timeout after {self.migration_timeout_s:g}s" if timed_out.is_set()
                      else str(exc).strip() or "libvirt error")
            self._resume_at_source(conn, vm)
        finally:
            if timer is not None:
                timer.cancel()
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
        self._finish(vm, destination, reply_to, started, memory_mib, reason)

    def _resume_at_source(self, conn: libvirt.virConnect, vm: str) -> None:
        """After a failed migration, make sure the VM runs at its source.

        libvirt leaves the source paused (reason ``migration``) when the migration failed
        after the switch-over started, e.g. the destination daemon died before confirming:
        the destination's copy was never started, so resuming the source is safe. A VM
        paused for another reason (by a user) is left alone.
        """
        try:
            dom = conn.lookupByName(vm)
            state, reason = dom.state()
            if state == libvirt.VIR_DOMAIN_PAUSED and reason == libvirt.VIR_DOMAIN_PAUSED_MIGRATION:
                dom.resume()
                log.warning("resumed %s at %s after a failed migration", vm, self.node)
        except libvirt.libvirtError as exc:
            self._fail("resume", exc)

    def _finish(self, vm: str, destination: NodeId, reply_to: Address, started: float,
                memory_mib: int, reason: str, *, release: bool = True) -> None:
        ended = self._clock()
        if release:
            with self._lock:
                self._outgoing.discard(vm)
        duration = max(0.0, ended - started)
        if reason:
            self._record(events.migration_fail(ended, self.node, vm=vm, src=self.node,
                                               dst=destination, reason=reason))
        else:
            self._record(events.migration_end(
                ended, self.node, vm=vm, src=self.node, dst=destination,
                src_site=self._site(self.node), dst_site=self._site(destination),
                duration_s=duration, memory_mib=memory_mib))
        result = MigrationResult(vm=vm, source=self.node, destination=destination,
                                 ok=not reason, reason=reason, started_at=started,
                                 duration_s=duration)
        try:
            self._deliver(reply_to, result)
        except Exception:  # a stopped runtime must not kill the worker silently
            log.exception("delivering the result of migrating %s", vm)

    def _site(self, node: NodeId) -> str:
        return self._sites.get(node, "")

    def _record(self, event: Event) -> None:
        if self._trace is not None:
            self._trace(event)
