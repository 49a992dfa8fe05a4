"""The stress program, built here and run here under Debian's real ``cpulimit``.

The dirty rate is measured from outside the process (``deploy.g5k.stress.
measure_dirty_rate``): with the kernel's soft-dirty bits when it has them, else by comparing
two snapshots of the process's writable memory read through ``/proc/PID/mem``. Every
process a test starts is killed by its pid at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.g5k import session
from deploy.g5k.config import load_experiment
from deploy.g5k.inject import inject_load, start_stress
from deploy.g5k.load import read_events
from deploy.g5k.stress import (
    PROGRAM,
    StressConfig,
    build,
    changed_pages,
    cpulimit_value,
    measure_dirty_rate,
    parse_started,
    set_load,
    set_load_command,
    soft_dirty_supported,
    start,
    start_command,
    stop_command,
    upload,
)
from deploy.g5k.vmdeploy import VmRecord, VmsRun
from dvms.errors import DvmsError, InputError
from tests.g5k_lab import Lab, lab, needs_sshd  # noqa: F401 (the lab fixture)

pytestmark = pytest.mark.skipif(shutil.which("cpulimit") is None or shutil.which("gcc") is None,
                                reason="needs gcc and cpulimit")


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("bin"))


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _cpulimits_of(pid: int) -> list[tuple[int, str]]:
    """(pid, argv) of the cpulimit processes watching ``pid``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or not _alive(int(d.name)):
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode() for a in argv if a]
        if words and words[0].endswith("cpulimit") and f"{pid}" in words[-1:]:
            out.append((int(d.name), " ".join(words)))
    return out


def _has_interpreter(path: Path) -> bool:
    """Whether an ELF64 little-endian file has a PT_INTERP program header."""
    import struct

    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return any(struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 3
               for i in range(phnum))


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_percent(pid: int, window_s: float) -> float:
    c0, t0 = _cpu_s(pid), time.monotonic()
    time.sleep(window_s)
    return 100 * (_cpu_s(pid) - c0) / (time.monotonic() - t0)


class Started:
    def __init__(self) -> None:
        self.pids: list[int] = []

    def sh(self, script: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
        pid, _, _ = parse_started(r.stdout)
        if pid is not None:
            self.pids.append(pid)
        return r


@pytest.fixture
def started() -> Iterator[Started]:
    s = Started()
    yield s
    for pid in s.pids:
        for cl, _ in _cpulimits_of(pid):
            os.kill(cl, signal.SIGKILL)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_build_is_static_and_checks_its_arguments(program: Path) -> None:
    assert not _has_interpreter(program)  # static: no ELF interpreter to find in a guest
    r = subprocess.run([str(program), "64"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage: dvms-memtouch MIB RATE_MIB_S" in r.stderr
    r = subprocess.run([str(program), "8", "-1"], capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([str(program), "8", "4", "--idle", "--seconds", "0.3"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("dvms-memtouch ")
    assert r.stdout.split()[-1] == "2048"  # 8 MiB in 4 KiB pages
    assert build(program.parent) == program  # cached


def test_cpulimit_values() -> None:
    assert cpulimit_value(0) == 1 and cpulimit_value(0.4) == 1 and cpulimit_value(70) == 70
    assert cpulimit_value(100) is None and cpulimit_value(150, vcpus=2) == 150
    assert cpulimit_value(200, vcpus=2) is None


@pytest.mark.parametrize(("mib", "rate", "cap"), [(64, 8, 20), (128, 24, 5)])
def test_dirty_rate_is_within_20_percent_of_the_target_under_cpulimit(
        program: Path, started: Started, tmp_path: Path, mib: int, rate: float,
        cap: int) -> None:
    pidfile = str(tmp_path / "pid")
    r = started.sh(start_command(mib, rate, cap, path=str(program), pidfile=pidfile,
                                 seconds=30))
    pid, pct, err = parse_started(r.stdout)
    assert r.returncode == 0 and not err and pid is not None and pct == cap, r.stdout
    time.sleep(0.5)  # the buffer is prefaulted before the loop starts
    # 4 s: cpulimit stops the process most of each of its periods, and the pages due while
    # it is stopped at the window's end are only written when it runs again (the error is
    # that lag over the window)
    measured = measure_dirty_rate(pid, 4.0)
    print(f"target {rate} MiB/s, cap {cap} %: measured {measured:.2f} MiB/s "
          f"({'soft-dirty' if soft_dirty_supported() else 'content'})")
    assert abs(measured - rate) <= 0.2 * rate
    [(_, argv)] = _cpulimits_of(pid)
    assert f"-l {cap} -p {pid}" in argv and " -b " in argv


def test_set_load_replaces_the_cap_and_keeps_the_stress(program: Path, started: Started,
                                                          tmp_path: Path) -> None:
    pidfile = str(tmp_path / "pid")
    r = started.sh(start_command(32, 4, 1, path=str(program), pidfile=pidfile, seconds=30))
    pid, pct, _ = parse_started(r.stdout)
    assert pid is not None and pct == 1
    low = _cpu_percent(pid, 1.5)
    r = started.sh(set_load_command(70, pidfile=pidfile))
    assert r.returncode == 0 and parse_started(r.stdout)[1] == 70
    [(_, argv)] = _cpulimits_of(pid)  # the 1 % cpulimit is gone, one at 70 %
    assert f"-l 70 -p {pid}" in argv
    high = _cpu_percent(pid, 1.5)
    print(f"stress CPU: {low:.1f} % at -l 1, {high:.1f} % at -l 70")
    # the caps hold (an uncapped spinner takes ~100 %); how much of its 70 % the stress gets
    # depends on what else runs on this 2-core machine, so only its order is checked
    assert low < 25 and low < high < 95
    assert measure_dirty_rate(pid, 2.0) == pytest.approx(4, rel=0.25)  # still dirtying
    r = started.sh(set_load_command(100, pidfile=pidfile))  # 100 % of 1 vCPU: uncapped
    assert "uncapped" in r.stdout and _cpulimits_of(pid) == []
    r = started.sh(stop_command(pidfile))
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_set_load_without_stress_and_start_without_program(started: Started,
                                                           tmp_path: Path) -> None:
    r = started.sh(set_load_command(50, pidfile=str(tmp_path / "none")))
    assert r.returncode == 3 and parse_started(r.stdout) == (None, None, "stress not running")
    r = started.sh(start_command(8, 1, 1, path=str(tmp_path / "absent"),
                                 pidfile=str(tmp_path / "pid")))
    assert r.returncode == 3 and parse_started(r.stdout)[2] == "dvms-memtouch missing"


def test_content_method_counts_changed_pages() -> None:
    a = {0: bytes(4 * 4096)}
    b = {0: bytes(4096) + b"\1" + bytes(4095) + bytes(4096) + bytes(4095) + b"\7"}
    assert changed_pages(a, b) == 2 and changed_pages(a, a) == 0
    with pytest.raises(ValueError, match="auto, soft-dirty or content"):
        measure_dirty_rate(os.getpid(), 0.0, "guess")


def test_soft_dirty_agrees_when_the_kernel_has_it(program: Path, started: Started,
                                                  tmp_path: Path) -> None:
    if not soft_dirty_supported():
        pytest.skip("kernel without CONFIG_MEM_SOFT_DIRTY (the content method is used)")
    r = started.sh(start_command(64, 8, 20, path=str(program), pidfile=str(tmp_path / "p"),
                                 seconds=20))
    pid = parse_started(r.stdout)[0]
    assert pid is not None
    time.sleep(0.5)
    assert measure_dirty_rate(pid, 2.0, "soft-dirty") == pytest.approx(8, rel=0.2)


@needs_sshd
def test_upload_start_and_set_load_over_ssh_on_lab_nodes(program: Path, lab: Lab,  # noqa: F811
                                                         started: Started) -> None:
    """The lab's nodes stand in for VMs (an ssh server each): the program is copied with
    execo's Put, started and re-capped through real ssh sessions; a VM that cannot be
    reached is reported by the upload, not raised."""
    session.configure(load_experiment(lab.experiment()), lab.workdir)
    vm1, vm2 = "fcla-1.fsite1.grid5000.fr", "fcla-2.fsite1.grid5000.fr"
    ghost = "fcla-9.fsite1.grid5000.fr"  # not in the lab: its ssh fails
    dest = lab.tmp / "vmroot"
    dest.mkdir()
    failed = upload([vm1, vm2, ghost], program, str(dest))
    assert list(failed) == [ghost] and "upload failed (exit 255): " in failed[ghost]
    assert "no node fcla-9" in failed[ghost]  # the lab's proxy says why
    remote = str(dest / program.name)
    assert os.access(remote, os.X_OK)
    p1 = str(lab.tmp / "vm1.pid")
    out = start([vm1], 32, 4, 1, path=remote, pidfile=p1)
    pid, err = out[vm1]
    assert pid is not None and not err, out
    started.pids.append(pid)
    time.sleep(0.5)
    assert _alive(pid)  # survives the end of its ssh session
    [(_, argv)] = _cpulimits_of(pid)
    assert f"-l 1 -p {pid}" in argv
    assert set_load(vm1, 60, pidfile=p1) == ""
    [(_, argv)] = _cpulimits_of(pid)
    assert f"-l 60 -p {pid}" in argv
    assert measure_dirty_rate(pid, 2.0) == pytest.approx(4, rel=0.25)
    assert set_load(vm2, 50, pidfile=str(lab.tmp / "vm2.pid")) == "stress not running"
    assert start([ghost], 32, 4, 1, path=remote, pidfile=p1)[ghost] == (None, "no report")
    session.run([vm1], stop_command(p1))
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid) and _cpulimits_of(pid) == []


@needs_sshd
def test_stress_step_marks_the_vm_whose_upload_fails_and_load_checks_vms_first(
        lab: Lab, started: Started) -> None:  # noqa: F811
    """``vms.json`` with three VMs: vm-1 reached at a lab node, vm-2 at a node that does not
    exist (its upload fails: KO), vm-3 already KO (skipped). Then a load file naming vm-2
    is refused before anything is applied, and one naming vm-1 re-caps its stress."""
    session.configure(load_experiment(lab.experiment()), lab.workdir)
    workdir = lab.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    nodes = {"vm-1": "fcla-1.fsite1.grid5000.fr", "vm-2": "fcla-9.fsite1.grid5000.fr",
             "vm-3": "fclb-1.fsite2.grid5000.fr"}
    VmsRun({"vm-1": VmRecord("h", "10.0.0.1", "m1", "OK"),
            "vm-2": VmRecord("h", "10.0.0.2", "m2", "OK"),
            "vm-3": VmRecord("h", "10.0.0.3", "m3", "KO", "live", "silent")}).save(workdir)
    remote = str(lab.tmp / "vm" / PROGRAM)
    (lab.tmp / "vm").mkdir()
    pidfile = str(lab.tmp / "vm.pid")
    lines: list[str] = []
    cfg = StressConfig(mem_mib=16, rate_mib_s=2, initial_percent=1)
    with pytest.raises(DvmsError, match=r"^only 1 of 3 VMs run the stress, below "):
        start_stress(workdir, cfg, min_vms_ratio=0.5, target=lambda vm, _: nodes[vm],
                     remote_path=remote, pidfile=pidfile, progress=lines.append)
    rs = VmsRun.load(workdir)
    assert rs is not None
    assert {vm: (r.state, r.step) for vm, r in rs.vms.items()} == {
        "vm-1": ("OK", ""), "vm-2": ("KO", "stress-upload"), "vm-3": ("KO", "live")}
    assert lines and lines[0].startswith("KO vm-2: stress-upload: upload failed (exit 255)")
    pid = int(Path(pidfile).read_text())
    started.pids.append(pid)
    [(_, argv)] = _cpulimits_of(pid)
    assert f"-l 1 -p {pid}" in argv
    events = lab.tmp / "events.jsonl"
    events.write_text('{"t": 0, "vm": "vm-1", "load": 30}\n{"t": 0.1, "vm": "vm-2", "load": 5}\n')
    with pytest.raises(InputError, match=r"events.jsonl: line 2: load event for unknown VM "
                                         r"'vm-2'"):
        inject_load(workdir, read_events(events), source=str(events),
                    target=lambda vm, _: nodes[vm], pidfile=pidfile)
    [(_, argv)] = _cpulimits_of(pid)
    assert f"-l 1 -p {pid}" in argv  # nothing was applied
    events.write_text('{"t": 0, "vm": "vm-1", "load": 30}\n{"t": 0.3, "vm": "vm-1", "load": 45}\n')
    out = inject_load(workdir, read_events(events), target=lambda vm, _: nodes[vm],
                      pidfile=pidfile)
    assert out.applied == 2 and not out.failures
    [(_, argv)] = _cpulimits_of(pid)
    assert f"-l 45 -p {pid}" in argv
