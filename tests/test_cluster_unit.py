"""Fast checks of the local cluster's pieces (no root actions, no daemons)."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("libvirt")

from deploy import cluster
from deploy.cluster import ClusterSpec, ClusterState
from deploy.cluster_guests import domain_xml, last_tick
from deploy.cluster_net import host_ip
from deploy.guest_image import GuestImage, kernel_cmdline, newc_archive
from dvms.app.cli import main
from dvms.errors import InputError


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hosts": 0}, "--hosts 0: expected 1..64"),
        ({"vms_per_host": -1}, "--vms-per-host -1: expected 0..64"),
        ({"delay_ms": -5}, "--delay-ms -5: expected 0..10000"),
        ({"memory_mib": 64}, "--memory-mib 64: expected >= 72"),
        ({"workload": "busy"}, "--workload 'busy': expected one of idle, spin, dirty"),
        ({"load": 150}, "--load 150: expected 0..100 (percent of a core)"),
        ({"prefix": "Bad-Prefix"}, "prefix 'Bad-Prefix': expected 1-8 lowercase letters/digits"),
        ({"subnet": "10.0.0.0/30", "hosts": 3}, "--subnet 10.0.0.0/30: too small for 3 hosts"),
    ],
)
def test_spec_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"hosts": 2, "vms_per_host": 1, **kwargs}
    with pytest.raises(InputError) as err:
        ClusterSpec(**args)  # type: ignore[arg-type]
    assert str(err.value) == message


def test_host_addresses() -> None:
    assert [host_ip("10.213.0.0/24", i) for i in range(3)] == [
        "10.213.0.1", "10.213.0.2", "10.213.0.3"]


def test_without_root_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cluster.os, "geteuid", lambda: 1000)
    assert main(["cluster", "status"]) == 2
    err = capsys.readouterr().err
    assert err == ("dvms cluster: error: the local cluster needs root (network namespaces, "
                   "libvirtd, cgroups); run it as root\n")


def test_status_without_cluster_is_an_input_error(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    if cluster.os.geteuid() != 0:
        pytest.skip("needs root")
    assert main(["cluster", "--workdir", str(tmp_path), "status"]) == 2
    assert capsys.readouterr().err == (
        f"dvms cluster: error: no cluster in {tmp_path} (run: dvms cluster up)\n")
    assert main(["cluster", "--workdir", str(tmp_path), "down"]) == 0  # nothing to do


def test_state_round_trip(tmp_path: Path) -> None:
    state = ClusterState(workdir=tmp_path, spec={"hosts": 1}, bridge_ns="x-net")
    state.vms["h0-vm0"] = "h0"
    state.agents["h0"] = 123
    state.save()
    loaded = ClusterState.load(tmp_path)
    assert loaded is not None
    assert (loaded.spec, loaded.bridge_ns, loaded.vms, loaded.agents) == (
        {"hosts": 1}, "x-net", {"h0-vm0": "h0"}, {"h0": 123})
    (tmp_path / "state.json").write_text("{}")
    with pytest.raises(InputError, match="not a dvms cluster state file"):
        ClusterState.load(tmp_path)


def test_domain_xml_and_cmdline(tmp_path: Path) -> None:
    image = GuestImage(kernel=Path("/k/vmlinuz"), initrd=Path("/k/initrd.gz"))
    xml = domain_xml("g1", image, tmp_path / "g1.log", memory_mib=80, workload="dirty")
    assert "<domain type='qemu'>" in xml
    assert "<memory unit='MiB'>80</memory>" in xml
    assert f"<source path='{tmp_path}/g1.log' append='on'/>" in xml
    assert "<memballoon model='none'/>" in xml
    assert "dvms.workload=dirty dvms.dirty_mib=16" in xml
    assert kernel_cmdline("idle") == ("console=ttyS0 quiet panic=-1 dvms.workload=idle "
                                      "dvms.dirty_mib=8 dvms.tick=1")
    with pytest.raises(ValueError, match="memory_mib 64 < 72"):
        domain_xml("g", image, tmp_path / "g.log", memory_mib=64)


def test_last_tick(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    assert last_tick(log) is None
    log.write_text("GUEST_BOOTED uptime=1.0 workload=spin\n")
    assert last_tick(log) is None
    log.write_text("GUEST_BOOTED\ntick 1 1.5\ntick 2 2.5\ngarbage\n")
    assert last_tick(log) == 2


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed")
def test_newc_archive_is_readable_by_cpio(tmp_path: Path) -> None:
    data = newc_archive([("bin", 0o040755, b""), ("bin/x", 0o100755, b"hello\n"),
                         ("bin/sh", 0o120777, b"x")])
    archive = tmp_path / "a.cpio.gz"
    archive.write_bytes(gzip.compress(data))
    listing = subprocess.run(f"zcat {archive} | busybox cpio -t", shell=True, check=True,
                             capture_output=True, text=True).stdout.split()
    assert listing == ["bin", "bin/x", "bin/sh"]
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(f"zcat {archive} | busybox cpio -id", shell=True, check=True, cwd=out,
                   capture_output=True)
    assert (out / "bin" / "x").read_bytes() == b"hello\n"
    assert (out / "bin" / "sh").readlink() == Path("x")
