"""The test guest: Debian's cloud kernel plus a busybox initramfs, built from Debian packages.

Nothing is installed on the host: the packages are fetched with ``apt-get download`` and
only the needed files are taken from them (``boot/vmlinuz-*``, ``bin/busybox``). The
initramfs holds busybox and ``deploy/guest/init.sh`` as ``/init``; its workload is chosen
by kernel arguments (see ``kernel_cmdline``). Built once into a cache directory.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dvms.errors import DvmsError, InputError

__all__ = [
    "DEFAULT_CACHE",
    "WORKLOADS",
    "GuestImage",
    "build_guest_image",
    "kernel_cmdline",
    "newc_archive",
]

DEFAULT_CACHE = Path(os.environ.get("DVMS_GUEST_CACHE", "/var/cache/dvms/guest"))
KERNEL_META = "linux-image-cloud-amd64"
BUSYBOX = "busybox-static"
INIT_SCRIPT = Path(__file__).with_name("guest") / "init.sh"
WORKLOADS = ("idle", "spin", "dirty")


class GuestImageError(DvmsError):
    """The guest image could not be built (package download or unpacking failed)."""


@dataclass(frozen=True, slots=True)
class GuestImage:
    """Paths of a built guest image."""

    kernel: Path
    initrd: Path


def kernel_cmdline(workload: str = "idle", *, dirty_mib: int = 8, tick_s: int = 1) -> str:
    """Kernel arguments for a guest running ``workload`` (idle | spin | dirty)."""
    if workload not in WORKLOADS:
        raise InputError(f"workload {workload!r}: expected one of {', '.join(WORKLOADS)}")
    return (f"console=ttyS0 quiet panic=-1 dvms.workload={workload} "
            f"dvms.dirty_mib={dirty_mib} dvms.tick={tick_s}")


def newc_archive(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A cpio archive in the "newc" format (what the kernel unpacks as an initramfs).

    ``entries``: (path, mode, data); directories have ``stat.S_IFDIR`` modes and no data,
    symlinks ``S_IFLNK`` and their target as data. Deterministic: fixed inodes and times.
    """
    out = io.BytesIO()

    def put(name: str, mode: int, data: bytes, ino: int) -> None:
        encoded = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
        out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + encoded)
        out.write(b"\0" * (-(110 + len(encoded)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))

    for ino, (name, mode, data) in enumerate(entries, start=1):
        put(name, mode, data, ino)
    put("TRAILER!!!", 0, b"", 0)
    return out.getvalue()


def _download(packages: list[str], into: Path) -> None:
    try:
        subprocess.run(["apt-get", "download", "-q", *packages], cwd=into, check=True,
                       capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise GuestImageError(f"apt-get download {' '.join(packages)} failed: "
                              f"{detail.strip().splitlines()[-1] if detail.strip() else exc}"
                              ) from exc


def _kernel_package() -> str:
    out = subprocess.run(["apt-cache", "depends", KERNEL_META], check=False,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        line = line.strip()
        prefix = "Depends: linux-image-"
        if line.startswith(prefix) and line[len(prefix):][:1].isdigit():
            return line.split()[1]
    raise GuestImageError(f"cannot resolve the kernel package behind {KERNEL_META} "
                          "(apt-get update?)")


def _extract(deb: Path, want: str) -> bytes:
    """The first file of ``deb`` whose path starts with ``want`` (e.g. ``./boot/vmlinuz-``)."""
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        found: bytes | None = None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if found is None and member.isfile() and member.name.startswith(want):
                    f = tar.extractfile(member)
                    assert f is not None
                    found = f.read()  # keep reading: dpkg-deb must not see a broken pipe
        proc.stdout.close()
        proc.wait()
    if found is None:
        raise GuestImageError(f"{deb.name} has no {want}*")
    return found


def _initramfs(busybox: bytes) -> bytes:
    dir_mode, exe_mode = 0o040755, 0o100755
    entries: list[tuple[str, int, bytes]] = [
        (d, dir_mode, b"") for d in ("bin", "dev", "mnt", "proc", "sys", "tmp")
    ]
    entries.append(("bin/busybox", exe_mode, busybox))
    entries.append(("bin/sh", 0o120777, b"busybox"))
    entries.append(("init", exe_mode, INIT_SCRIPT.read_bytes()))
    return gzip.compress(newc_archive(entries), compresslevel=9, mtime=0)


def build_guest_image(cache: Path = DEFAULT_CACHE, *, force: bool = False) -> GuestImage:
    """Build (once) and return the guest kernel and initramfs in ``cache``."""
    image = GuestImage(kernel=cache / "vmlinuz", initrd=cache / "initrd.gz")
    stamp = cache / "init.sh"
    fresh = stamp.exists() and stamp.read_bytes() == INIT_SCRIPT.read_bytes()
    if not force and fresh and image.kernel.exists() and image.initrd.exists():
        return image
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dvms-guest-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # apt's sandbox user must be able to write here
        if not image.kernel.exists() or force:
            _download([_kernel_package()], work)
            [kdeb] = sorted(work.glob("linux-image-*.deb"))
            _write(image.kernel, _extract(kdeb, "./boot/vmlinuz-"))
        _download([BUSYBOX], work)
        [bdeb] = sorted(work.glob("busybox-static_*.deb"))
        _write(image.initrd, _initramfs(_extract(bdeb, "./bin/busybox")))
    shutil.copyfile(INIT_SCRIPT, stamp)
    return image


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
