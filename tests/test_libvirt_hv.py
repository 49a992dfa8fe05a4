"""LibvirtHypervisor against libvirt's in-process ``test:///default`` driver."""

from __future__ import annotations

import queue
import time
from typing import Any

import pytest

libvirt = pytest.importorskip("libvirt")

from deploy.libvirt_hv import (  # noqa: E402
    MIGRATION_FLAGS,
    LibvirtHypervisor,
    cap_from_scheduler_params,
    cpu_percent,
    quota_for_percent,
)
from dvms.hypervisor import HostCapacity, MigrationResult  # noqa: E402

URI = "test:///default"


class Inbox:
    """Collects what the hypervisor delivers and traces."""

    def __init__(self) -> None:
        self.messages: queue.Queue[tuple[Any, object]] = queue.Queue()
        self.events: list[dict[str, Any]] = []

    def deliver(self, address: Any, message: object) -> None:
        self.messages.put((address, message))

    def trace(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def make(inbox: Inbox, **kwargs: Any) -> LibvirtHypervisor:
    return LibvirtHypervisor("n1", URI, deliver=inbox.deliver, trace=inbox.trace,
                             clock=lambda: 42.0, **kwargs)


def test_cpu_percent_from_cpu_time_deltas() -> None:
    assert cpu_percent(0, 500_000_000, 1.0) == 50.0
    assert cpu_percent(1_000_000_000, 3_000_000_000, 1.0) == 200.0
    assert cpu_percent(5, 4, 1.0) == 0.0  # counter reset: no negative usage
    assert cpu_percent(0, 10, 0.0) == 0.0


def test_quota_and_cap_round_trip() -> None:
    assert quota_for_percent(50, 1) == 50_000
    assert quota_for_percent(50, 2) == 25_000
    assert quota_for_percent(100, 1) == -1
    assert quota_for_percent(0, 1) == 1_000  # libvirt's minimum quota
    with pytest.raises(ValueError, match="negative CPU percent -1"):
        quota_for_percent(-1, 1)
    cap = cap_from_scheduler_params({"vcpu_period": 100_000, "vcpu_quota": 25_000}, 2)
    assert cap is not None and cap.percent == 50.0
    both = {"vcpu_period": 100_000, "vcpu_quota": 80_000,
            "global_period": 100_000, "global_quota": 30_000}
    cap = cap_from_scheduler_params(both, 1)
    assert cap is not None and cap.percent == 30.0
    assert cap_from_scheduler_params({"vcpu_quota": -1}, 1) is None
    assert cap_from_scheduler_params({"weight": 50}, 1) is None


def test_lists_vms_and_capacity_from_node_info() -> None:
    hv = make(Inbox())
    try:
        # test driver: node 16 cpus / 3072 MiB; domain "test": 2 vCPUs, 2 GiB
        assert hv.capacity() == HostCapacity(cpu=1500.0, memory_mib=3072)
        [vm] = hv.vms()
        assert (vm.vm, vm.vcpus, vm.memory_mib, vm.migrating) == ("test", 2, 2048, False)
        assert not hv.migrating()
        assert hv.watch(("n1", "monitor")) is False
    finally:
        hv.close()


def test_declared_capacity_wins() -> None:
    hv = make(Inbox(), capacity=HostCapacity(cpu=100.0, memory_mib=512))
    try:
        assert hv.capacity() == HostCapacity(cpu=100.0, memory_mib=512)
    finally:
        hv.close()


def test_usage_is_sampled_from_cpu_time() -> None:
    # the test driver reports the wall clock as the domain's CPU time: one busy core
    hv = make(Inbox())
    try:
        time.sleep(0.3)
        [vm] = hv.vms()
        assert 90.0 <= vm.cpu_demand <= 110.0
        usage = hv.usage("test")
        assert usage is not None and usage == vm.cpu_demand
        assert hv.usage("nope") is None
    finally:
        hv.close()


def test_libvirt_errors_are_counted_not_raised() -> None:
    inbox = Inbox()
    hv = make(inbox)
    try:
        assert hv.set_cpu_cap("test", 50.0) is False  # the test driver has no quotas
        assert hv.errors["cap"] == 1
        assert hv.set_cpu_cap("no-such-vm", 50.0) is False
        assert hv.errors["cap"] == 2
    finally:
        hv.close()
    bad = LibvirtHypervisor("n9", "qemu+unix:///system?socket=/nonexistent/sock",
                            deliver=inbox.deliver)
    assert bad.errors["connect"] == 2  # construction: connect, then a first sample
    assert bad.vms() == []
    assert bad.capacity() == HostCapacity(cpu=0.0, memory_mib=0)
    assert bad.errors["connect"] == 4
    assert bad.migrating() is False


def wait_result(inbox: Inbox) -> tuple[Any, MigrationResult]:
    address, message = inbox.messages.get(timeout=10)
    assert isinstance(message, MigrationResult)
    return address, message


def test_failing_migration_leaves_vm_at_source_and_is_traced() -> None:
    inbox = Inbox()
    hv = make(inbox, peer_uris={"n2": URI}, sites={"n1": "a", "n2": "b"})
    try:
        hv.migrate("test", "n2", ("n1", "dvms"))
        address, result = wait_result(inbox)
        assert address == ("n1", "dvms")
        assert (result.vm, result.source, result.destination, result.ok) == (
            "test", "n1", "n2", False)
        assert "p2p migration is not supported" in result.reason
        assert (result.started_at, result.duration_s) == (42.0, 0.0)
        assert [v.vm for v in hv.vms()] == ["test"]  # still running at its source
        assert not hv.migrating()
        assert hv.errors["migrate"] == 1
        assert [e["type"] for e in inbox.events] == ["migration.start", "migration.fail"]
        start, fail = inbox.events
        assert start == {"t": 42.0, "type": "migration.start", "node": "n1", "vm": "test",
                         "src": "n1", "dst": "n2", "src_site": "a", "dst_site": "b",
                         "memory_mib": 2048}
        assert fail == {"t": 42.0, "type": "migration.fail", "node": "n1", "vm": "test",
                        "src": "n1", "dst": "n2", "reason": result.reason}
    finally:
        hv.close()


def test_migration_to_unknown_node_or_vm_fails_cleanly() -> None:
    inbox = Inbox()
    hv = make(inbox, peer_uris={"n2": URI})
    try:
        hv.migrate("test", "n7", ("n1", "dvms"))
        _, result = wait_result(inbox)
        assert (result.ok, result.reason) == (False, "no libvirt URI for destination n7")
        hv.migrate("ghost", "n2", ("n1", "dvms"))
        _, result = wait_result(inbox)
        assert (result.ok, result.reason) == (False, "Domain not found")
        assert [e["type"] for e in inbox.events] == [
            "migration.fail", "migration.start", "migration.fail"]
        assert not hv.migrating()
    finally:
        hv.close()


def test_storage_copy_mode_adds_the_incremental_disk_copy_flag() -> None:
    inbox = Inbox()
    shared = make(inbox)
    copy = make(inbox, migration_storage="copy-inc", peer_uris={"n2": URI})
    try:
        inc = libvirt.VIR_MIGRATE_NON_SHARED_INC
        assert shared.migration_flags == MIGRATION_FLAGS and not shared.migration_flags & inc
        assert copy.migration_flags == MIGRATION_FLAGS | inc
        assert not copy.migration_flags & libvirt.VIR_MIGRATE_NON_SHARED_DISK  # not a full copy
        with pytest.raises(ValueError, match="migration_storage 'nfs': shared or copy-inc"):
            make(inbox, migration_storage="nfs")
        # the test driver cannot migrate: a failed storage-copy migration leaves the VM at
        # its source and is traced (a real copy needs two libvirtds: the hypervisor lab)
        copy.migrate("test", "n2", ("n1", "dvms"))
        _, result = wait_result(inbox)
        assert not result.ok and result.reason
        assert [v.vm for v in copy.vms()] == ["test"]
        assert not copy.migrating() and copy.errors["migrate"] == 1
        assert [e["type"] for e in inbox.events] == ["migration.start", "migration.fail"]
        assert inbox.events[-1]["reason"] == result.reason
    finally:
        shared.close()
        copy.close()
