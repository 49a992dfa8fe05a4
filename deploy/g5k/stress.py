"""The in-VM stress: our memory-dirtying busy loop, capped by ``cpulimit`` inside the VM.

``build`` compiles ``stress/memtouch.c`` (gcc, static: the guest has no libc to link
against). In each VM, ``start_command`` kills a previous instance (by its pid file), starts
``dvms-memtouch MIB RATE`` detached, records its pid in ``PIDFILE`` and caps it with
``cpulimit -b -z -q -l PCT -p PID`` (``-b`` backgrounds, ``-z`` exits with the target).
Because cpulimit runs inside the VM, the cap travels with a live migration.
``set_load_command`` applies a load event: it stops the cpulimit processes watching that
pid (found in ``/proc/*/cmdline``, never by name alone) and starts one with the new limit;
the stress process itself is never restarted. The commands are POSIX ``sh`` (busybox's in
the lab's guest, Debian's on Grid'5000); ``upload``/``start``/``set_load`` run them over ssh.
"""

from __future__ import annotations

import os
import shlex
import shutil
import struct
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.g5k import session
from dvms.config import Section, option
from dvms.errors import DvmsError

__all__ = [
    "PIDFILE",
    "PROGRAM",
    "SOURCE",
    "StressConfig",
    "build",
    "changed_pages",
    "cpulimit_value",
    "measure_dirty_rate",
    "parse_started",
    "set_load",
    "set_load_command",
    "soft_dirty_pages",
    "soft_dirty_supported",
    "start",
    "start_command",
    "stop_command",
    "upload",
]

SOURCE = Path(__file__).with_name("stress") / "memtouch.c"
PROGRAM = "dvms-memtouch"
PIDFILE = "/tmp/dvms-memtouch.pid"
REMOTE_PATH = "/tmp/" + PROGRAM

@dataclass(frozen=True)
class StressConfig(Section):
    """The ``[stress]`` table."""

    program: str = option(PROGRAM, "The stress program (ours: no licence on the original's).",
                          choices=(PROGRAM,))
    mem_mib: int = option(128, "Buffer the program keeps dirtying (MiB).", lo=1)
    rate_mib_s: float = option(16.0, "Memory dirtied per second (MiB/s).", lo=0)
    initial_percent: float = option(1.0, "cpulimit's cap at start (percent of a core).", lo=0)


_KILL_CPULIMITS = """\
for d in /proc/[0-9]*; do
  c=$( { tr '\\000' ' ' < "$d/cmdline"; } 2>/dev/null) || continue
  case "$c" in
    "cpulimit "*"-p $pid "*|*"/cpulimit "*"-p $pid "*) kill "${d#/proc/}" 2>/dev/null;;
  esac
done
"""


def build(out_dir: Path, *, cc: str = "gcc") -> Path:
    """Compile the stress program statically into ``out_dir`` (cached by source mtime)."""
    out = Path(out_dir) / PROGRAM
    if out.exists() and out.stat().st_mtime >= SOURCE.stat().st_mtime:
        return out
    if shutil.which(cc) is None:
        raise DvmsError(f"building {PROGRAM}: {cc} not found (apt-get install gcc libc6-dev)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    r = subprocess.run([cc, "-O2", "-std=c99", "-Wall", "-Wextra", "-static", "-o", str(tmp),
                        str(SOURCE)], capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise DvmsError(f"building {PROGRAM}: {cc} failed: {last}")
    tmp.replace(out)
    return out


def cpulimit_value(percent: float, vcpus: int = 1) -> int | None:
    """cpulimit's ``-l`` for a load in percent of one core: at least 1 (cpulimit's floor),
    None at or above ``100 × vcpus`` (no cap: the VM takes all its vCPUs)."""
    if percent >= 100 * vcpus:
        return None
    return max(1, round(percent))


def _cap(pct: int | None) -> str:
    if pct is None:
        return 'echo "DVMS load $pid uncapped"\n'
    return (f"cpulimit -b -z -q -l {pct} -p \"$pid\" >/dev/null 2>&1 </dev/null || "
            "{ echo \"DVMS load $pid KO cpulimit failed\"; exit 5; }\n"
            f"echo \"DVMS load $pid {pct}\"\n")


def start_command(mem_mib: int, rate_mib_s: float, percent: float, *, vcpus: int = 1,
                  path: str = REMOTE_PATH, pidfile: str = PIDFILE,
                  seconds: float = 0.0) -> str:
    """Start (or restart) the stress in a VM, capped at ``percent``; prints
    ``DVMS stress PID`` and ``DVMS load PID PCT``."""
    args = [path, str(int(mem_mib)), f"{rate_mib_s:g}"]
    if seconds > 0:
        args += ["--seconds", f"{seconds:g}"]
    pf = shlex.quote(pidfile)
    return (
        f"{stop_command(pidfile)}"
        f"test -x {shlex.quote(path)} || {{ echo 'DVMS stress - KO {PROGRAM} missing'; "
        "exit 3; }\n"
        f"nohup {' '.join(shlex.quote(a) for a in args)} >/dev/null 2>&1 </dev/null &\n"
        f"pid=$!\necho \"$pid\" > {pf}\n"
        "sleep 0.2; kill -0 \"$pid\" 2>/dev/null || "
        "{ echo \"DVMS stress $pid KO exited at start\"; exit 4; }\n"
        "echo \"DVMS stress $pid\"\n"
        + _cap(cpulimit_value(percent, vcpus)))


def set_load_command(percent: float, *, vcpus: int = 1, pidfile: str = PIDFILE) -> str:
    """Re-cap the running stress at ``percent`` (exit 3 if it is not running)."""
    return (f"pid=$(cat {shlex.quote(pidfile)} 2>/dev/null)\n"
            "[ -n \"$pid\" ] && kill -0 \"$pid\" 2>/dev/null || "
            "{ echo \"DVMS load - KO stress not running\"; exit 3; }\n"
            + _KILL_CPULIMITS + _cap(cpulimit_value(percent, vcpus)))


def stop_command(pidfile: str = PIDFILE) -> str:
    """Stop the stress recorded in ``pidfile`` and its cpulimit (nothing if none)."""
    return (f"pid=$(cat {shlex.quote(pidfile)} 2>/dev/null)\n"
            "if [ -n \"$pid\" ]; then\n" + _KILL_CPULIMITS
            + "  kill \"$pid\" 2>/dev/null\nfi\n")


def parse_started(output: str) -> tuple[int | None, int | None, str]:
    """(stress pid, cpulimit value or None, error) from a start/set-load output."""
    pid = pct = None
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "DVMS" and parts[3] == "KO":
            return None, None, " ".join(parts[4:]) or "failed"
        if len(parts) == 3 and parts[:2] == ["DVMS", "stress"] and parts[2].isdigit():
            pid = int(parts[2])
        if len(parts) == 4 and parts[:2] == ["DVMS", "load"] and parts[3].isdigit():
            pct = int(parts[3])
    return pid, pct, "" if pid is not None or pct is not None else "no report"


def upload(vms: Sequence[str], binary: Path, remote_path: str = REMOTE_PATH) -> dict[str, str]:
    """Copy the program to each VM (one scp each); VM → error for those that failed."""
    from execo import Host, Put

    put = Put([Host(v) for v in vms], [str(binary)], remote_path)
    for p in put.processes:  # failures are returned, not logged by execo
        p.nolog_exit_code = p.nolog_error = p.nolog_timeout = True
    put.run()
    failed: dict[str, str] = {}
    for p in put.processes:
        if not p.ok:
            name = str(p.host.address)
            failed[name] = (f"upload failed (exit {session.decode_status(p.exit_code)}): "
                            f"{((p.stderr or '') + (p.stdout or '')).strip()[-200:]}")
    return failed


def start(vms: Sequence[str], mem_mib: int, rate_mib_s: float, percent: float, *,
          vcpus: Mapping[str, int] | None = None, path: str = REMOTE_PATH,
          pidfile: str = PIDFILE, timeout_s: float = 60.0) -> dict[str, tuple[int | None, str]]:
    """Start the stress in every VM (one ssh each, in parallel); VM → (stress pid, error)."""
    groups: dict[int, list[str]] = {}
    for vm in vms:
        groups.setdefault((vcpus or {}).get(vm, 1), []).append(vm)
    out: dict[str, tuple[int | None, str]] = {}
    for n, group in groups.items():
        cmd = start_command(mem_mib, rate_mib_s, percent, vcpus=n, path=path, pidfile=pidfile)
        for r in session.run(group, cmd, timeout_s=timeout_s):
            pid, _, err = parse_started(r.output)
            out[r.host] = (pid, err or ("" if r.status == 0 else f"exit {r.status}"))
    return out


def set_load(vm: str, percent: float, *, vcpus: int = 1, pidfile: str = PIDFILE,
             timeout_s: float = 30.0) -> str:
    """Apply one load event over ssh; returns the error ("" when applied)."""
    r = session.run([vm], set_load_command(percent, vcpus=vcpus, pidfile=pidfile),
                    timeout_s=timeout_s)[0]
    _, _, err = parse_started(r.output)
    return err if err else ("" if r.status == 0 else f"exit {r.status}")


# -- measurement -------------------------------------------------------------------------

_SOFT_DIRTY = 1 << 55
"""Bit 55 of a ``/proc/PID/pagemap`` entry: the page was written since ``clear_refs``."""
PAGE = 4096


def _writable_regions(pid: int) -> list[tuple[int, int]]:
    out = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) < 2 or "w" not in fields[1] or line.endswith(("[vsyscall]", "[vvar]")):
            continue
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        out.append((lo, hi))
    return out


def soft_dirty_pages(pid: int) -> int:
    """Pages of ``pid``'s writable mappings written since the last ``clear_refs`` (4);
    always 0 on a kernel without ``CONFIG_MEM_SOFT_DIRTY`` (see ``soft_dirty_supported``)."""
    count = 0
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        for lo, hi in _writable_regions(pid):
            raw = os.pread(fd, (hi - lo) // PAGE * 8, lo // PAGE * 8)
            count += sum(1 for (e,) in struct.iter_unpack("<Q", raw) if e & _SOFT_DIRTY)
    finally:
        os.close(fd)
    return count


def soft_dirty_supported() -> bool:
    """Whether this kernel tracks soft-dirty bits (probed on this very process)."""
    import mmap

    with mmap.mmap(-1, 16 * PAGE) as m:
        m[0] = 1
        Path("/proc/self/clear_refs").write_text("4")
        for i in range(16):
            m[i * PAGE] = 2
        return soft_dirty_pages(os.getpid()) >= 16


def _snapshot(pid: int) -> dict[int, bytes]:
    regions: dict[int, bytes] = {}
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for lo, hi in _writable_regions(pid):
            try:
                regions[lo] = os.pread(mem.fileno(), hi - lo, lo)
            except OSError:
                continue  # a region that went away or cannot be read
    return regions


def changed_pages(before: dict[int, bytes], after: dict[int, bytes]) -> int:
    """4 KiB pages whose content differs between two snapshots of the same regions."""
    count = 0
    for lo, a in before.items():
        b = after.get(lo)
        if b is None:
            continue
        for off in range(0, min(len(a), len(b)), PAGE):
            if a[off:off + PAGE] != b[off:off + PAGE]:
                count += 1
    return count


def measure_dirty_rate(pid: int, window_s: float = 2.0, method: str = "auto") -> float:
    """MiB/s of ``pid``'s memory dirtied over ``window_s``, in distinct 4 KiB pages (a page
    written twice in the window counts once, as in a live migration's dirty log: the
    buffer must be larger than ``rate × window``).

    ``soft-dirty``: the kernel's bits (``echo 4 > /proc/PID/clear_refs``, then the pagemap
    entries with bit 55); ``content``: two snapshots of the writable mappings read through
    ``/proc/PID/mem``, pages whose bytes changed (needs ptrace rights on ``pid``; misses a
    page rewritten with its old bytes, which our program never does within a window);
    ``auto``: soft-dirty when the kernel has it, else content."""
    if method == "auto":
        method = "soft-dirty" if soft_dirty_supported() else "content"
    if method == "soft-dirty":
        Path(f"/proc/{pid}/clear_refs").write_text("4")
        t0 = time.monotonic()
        time.sleep(window_s)
        elapsed = time.monotonic() - t0
        return soft_dirty_pages(pid) * PAGE / 2**20 / elapsed
    if method != "content":
        raise ValueError(f"dirty-rate method {method!r}: auto, soft-dirty or content")
    t0 = time.monotonic()
    before = _snapshot(pid)
    t1 = time.monotonic()
    time.sleep(window_s)
    t2 = time.monotonic()
    after = _snapshot(pid)
    t3 = time.monotonic()
    elapsed = (t2 + t3) / 2 - (t0 + t1) / 2  # between the snapshots' midpoints
    return changed_pages(before, after) * PAGE / 2**20 / elapsed
