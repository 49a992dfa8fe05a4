"""One private ``libvirtd`` per cluster host, inside the host's network namespace.

Each daemon runs in its own mount namespace (``unshare -m``) where private directories
are bind-mounted over ``/etc/libvirt``, ``/run/libvirt``, ``/var/lib/libvirt``,
``/var/cache/libvirt`` and ``/var/log/libvirt``, and its own cgroup subtree
(``<controller>/<cgroup_name>``) over every cgroup controller, so two daemons never share
a ``machine/qemu-1-…`` group. The namespace is entered with ``nsenter --net`` (``ip
netns exec`` would remount ``/sys`` and hide the cgroup controllers). TCP without
authentication on the host's address: test hosts only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from dvms.errors import DvmsError

__all__ = [
    "CAPS_CACHE",
    "LibvirtdHost",
    "cgroup_controller_mounts",
    "kill_cgroup",
    "remove_cgroup",
]

CAPS_CACHE = Path("/var/cache/dvms/qemu-capabilities")
"""QEMU capabilities probed once and shared by every daemon (the probe costs ~9 s CPU)."""

PRIVATE_DIRS = {
    "etc": "/etc/libvirt",
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "cache": "/var/cache/libvirt",
    "log": "/var/log/libvirt",
}
QEMU_USER = "libvirt-qemu"


def cgroup_controller_mounts() -> list[Path]:
    """Mount points of the cgroup hierarchies under /sys/fs/cgroup (v1 and v2)."""
    mounts: list[Path] = []
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] in ("cgroup", "cgroup2") and parts[1].startswith(
                "/sys/fs/cgroup/"):
            mounts.append(Path(parts[1]))
    if not mounts and Path("/sys/fs/cgroup/cgroup.controllers").exists():
        mounts.append(Path("/sys/fs/cgroup"))  # pure cgroup v2
    return sorted(set(mounts))


def _procs(group: Path) -> list[int]:
    pids: list[int] = []
    for procs in group.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in procs.read_text().split()]
    return pids


def kill_cgroup(name: str) -> int:
    """SIGKILL every process left in ``<controller>/<name>`` subtrees; how many were found."""
    pids = sorted({pid for mount in cgroup_controller_mounts()
                   if (mount / name).is_dir() for pid in _procs(mount / name)})
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def remove_cgroup(name: str) -> None:
    """Remove the ``name`` subtree of every controller (deepest groups first)."""
    for mount in cgroup_controller_mounts():
        root = mount / name
        if not root.is_dir():
            continue
        groups = sorted((p for p in root.rglob("*") if p.is_dir()),
                        key=lambda p: len(p.parts), reverse=True)
        for group in [*groups, root]:
            for _ in range(50):
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # tasks still exiting


def ensure_qemu_user() -> None:
    """The QEMU driver resolves its compiled-in user before reading qemu.conf."""
    if subprocess.run(["getent", "group", QEMU_USER], capture_output=True).returncode:
        subprocess.run(["groupadd", "-r", QEMU_USER], check=True, capture_output=True)
    if subprocess.run(["getent", "passwd", QEMU_USER], capture_output=True).returncode:
        subprocess.run(["useradd", "-r", "-g", QEMU_USER, "-d", "/var/lib/libvirt", "-s",
                        "/usr/sbin/nologin", QEMU_USER], check=True, capture_output=True)


@dataclass(frozen=True, slots=True)
class LibvirtdHost:
    """A cluster host's daemon: where its files are and how to reach it."""

    name: str
    netns: str
    ip: str
    base: Path
    cgroup: str
    private_dirs: tuple[tuple[str, str], ...] = ()
    """More (subdirectory of ``base``, mount point) pairs private to this daemon's mount
    namespace (e.g. a host-local disk directory), on top of ``PRIVATE_DIRS``."""

    @property
    def socket(self) -> Path:
        return self.base / "run" / "libvirt-sock"

    @property
    def uri(self) -> str:
        """How clients in the root namespace reach this daemon."""
        return f"qemu+unix:///system?socket={self.socket}"

    @property
    def tcp_uri(self) -> str:
        """How the other daemons reach this one (peer-to-peer migration)."""
        return f"qemu+tcp://{self.ip}/system"

    @property
    def pid_file(self) -> Path:
        return self.base / "daemon.pid"

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"/usr/sbin/libvirtd")

    def write_config(self) -> None:
        for sub in PRIVATE_DIRS:
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        host_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"dvms-cluster:{self.base}:{self.name}")
        (self.base / "etc" / "libvirtd.conf").write_text(
            "listen_tls = 0\nlisten_tcp = 1\n"
            f'listen_addr = "{self.ip}"\nauth_tcp = "none"\nauth_unix_rw = "none"\n'
            f'host_uuid = "{host_uuid}"\n'
            'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n')
        (self.base / "etc" / "qemu.conf").write_text(
            'user = "root"\ngroup = "root"\ndynamic_ownership = 0\nremember_owner = 0\n'
            'stdio_handler = "file"\n'
            f'migration_address = "{self.ip}"\nmigration_host = "{self.ip}"\n')
        caps = self.base / "cache" / "qemu" / "capabilities"
        if CAPS_CACHE.is_dir() and not caps.exists():
            shutil.copytree(CAPS_CACHE, caps)

    def make_cgroups(self) -> list[Path]:
        made: list[Path] = []
        for mount in cgroup_controller_mounts():
            group = mount / self.cgroup
            group.mkdir(exist_ok=True)
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if (mount / knob).exists():
                    (group / knob).write_text((mount / knob).read_text())
            made.append(mount)
        return made

    def start(self) -> int:
        """Start the daemon (detached); returns its pid once its socket exists."""
        ensure_qemu_user()
        self.write_config()
        dirs = [*PRIVATE_DIRS.items(), *self.private_dirs]
        for sub, target in dirs:
            (self.base / sub).mkdir(parents=True, exist_ok=True)
            Path(target).mkdir(parents=True, exist_ok=True)  # mount points
        mounts = [f"mount --bind {self.base / sub} {target}" for sub, target in dirs]
        mounts += [f"mount --bind {m / self.cgroup} {m}" for m in self.make_cgroups()]
        script = " && ".join([*mounts, "exec /usr/sbin/libvirtd --listen --config "
                              "/etc/libvirt/libvirtd.conf --pid-file /run/libvirt/libvirtd.pid"])
        with open(self.base / "stdout.log", "ab") as out:
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "-m",
                 "--propagation", "private", "/bin/sh", "-c", script],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if proc.poll() is not None:
                tail = (self.base / "stdout.log").read_text(errors="replace").strip()
                raise DvmsError(f"libvirtd of {self.name} exited ({proc.returncode}): "
                                f"{tail.splitlines()[-1] if tail else 'no output'}")
            if time.monotonic() > deadline:
                raise DvmsError(f"libvirtd of {self.name}: no socket after 30 s")
            time.sleep(0.05)
        return proc.pid

    def save_capabilities(self) -> None:
        """Keep this daemon's probed QEMU capabilities for the next daemons."""
        caps = self.base / "cache" / "qemu" / "capabilities"
        if caps.is_dir() and any(caps.iterdir()) and not CAPS_CACHE.exists():
            tmp = CAPS_CACHE.with_name(CAPS_CACHE.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(caps, tmp)
            tmp.replace(CAPS_CACHE)

    def terminate(self) -> None:
        """SIGTERM the daemon without waiting (``stop`` waits)."""
        pid = self.pid()
        if pid is not None and self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the daemon, SIGKILL after ``timeout_s``; no error if it is gone."""
        pid = self.pid()
        if pid is None or not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
