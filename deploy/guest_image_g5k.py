"""Guest image v2: a guest that behaves like a Grid'5000 VM, built from Debian packages.

Like v1 (``deploy.guest_image``, kept as is for ``dvms cluster``), nothing is installed:
the packages are fetched with ``apt-get download`` and unpacked (``dpkg-deb -x``). The
initramfs holds busybox, the kernel's virtio modules (network and block, loaded in
dependency order read from each module's ``depends=``), dropbear (ssh server) with the
shared libraries it needs and a pre-made ed25519 host key, OpenSSH's ``sftp-server`` at
``/usr/lib/sftp-server`` (OpenSSH ≥ 9's ``scp``, hence execo's ``Put``, speaks SFTP),
``cpulimit``, a ``nohup`` (busybox-static has none), our stress program ``dvms-memtouch``
(static, compiled here with gcc) and
``deploy/guest/init-g5k.sh`` as ``/init`` (kernel arguments ``dvms.ip=``, ``dvms.gw=``,
``dvms.sshd=0``). The backing disk is a tiny qcow2 whose first sector holds a marker the
guest prints at boot; each VM writes its own sector through its copy-on-write overlay.

The expensive part is cached (``DEFAULT_CACHE``); ``with_key`` appends a second, tiny
cpio archive holding ``/root/.ssh/authorized_keys`` (the kernel unpacks concatenated
archives in order), so a new lab key never rebuilds the image.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deploy.g5k import stress
from deploy.guest_image import (
    GuestImageError,
    _download,
    _kernel_package,
    _write,
    newc_archive,
)

__all__ = ["DEFAULT_CACHE", "MODULES", "G5kGuestImage", "build_g5k_image", "module_order",
           "with_key"]

DEFAULT_CACHE = Path(os.environ.get("DVMS_G5K_GUEST_CACHE", "/var/cache/dvms/guest-g5k"))
INIT_SCRIPT = Path(__file__).with_name("guest") / "init-g5k.sh"
MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
           "virtio_pci", "failover", "net_failover", "virtio_net", "virtio_blk")
PACKAGES = ("busybox-static", "dropbear-bin", "libtomcrypt1", "libtommath1", "zlib1g",
            "libcrypt1", "libc6", "libgmp10", "openssh-sftp-server", "cpulimit")
LIBDIR = "lib/x86_64-linux-gnu"
LIBDIRS = (LIBDIR, "usr/" + LIBDIR)
"""Where the packages put their libraries (bookworm's packages are not usr-merged)."""
LIBS = ("libtomcrypt.so.1", "libtommath.so.1", "libz.so.1", "libcrypt.so.1", "libc.so.6",
        "libm.so.6", "libgmp.so.10")
DISK_MARKER = b"DVMS-BACKING-V2"
NOHUP = (b"#!/bin/sh\n# nohup (busybox-static has none): ignore SIGHUP, run the command\n"
         b"trap '' HUP\nexec \"$@\"\n")
VERSION = "3"
"""Bumped when the image's content changes in a way the cache stamp does not see."""


@dataclass(frozen=True, slots=True)
class G5kGuestImage:
    """Paths of a built v2 image."""

    kernel: Path
    initrd: Path
    """Without the authorized key (see ``with_key``)."""
    backing: Path
    """The tiny backing qcow2 (marker in its first sector)."""


def module_order(depends: dict[str, list[str]], wanted: tuple[str, ...]) -> list[str]:
    """``wanted`` and what they depend on, dependencies first (``depends``: module → the
    modules its ``depends=`` names); a missing module is an error."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path:
            raise GuestImageError(f"module dependency cycle: {' -> '.join((*path, name))}")
        if name not in depends:
            raise GuestImageError(f"kernel module {name} not in the kernel package")
        for dep in depends[name]:
            visit(dep, (*path, name))
        order.append(name)

    for name in wanted:
        visit(name, ())
    return order


def _modinfo_depends(ko: bytes) -> list[str]:
    m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", ko)
    return [d.replace("-", "_") for d in m.group(1).decode().split(",") if d] if m else []


def _unpack(deb: Path, into: Path) -> None:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True, capture_output=True)


def _file(root: Path, rel: str) -> bytes:
    """A file of the unpacked tree, symlinks resolved inside the tree."""
    path = root / rel
    for _ in range(10):
        if not path.is_symlink():
            break
        target = os.readlink(path)
        path = (root / target.lstrip("/")) if target.startswith("/") else path.parent / target
    if not path.is_file():
        raise GuestImageError(f"{rel} not found in the unpacked packages")
    return path.read_bytes()


def _host_key(root: Path, work: Path) -> bytes:
    """An ed25519 host key made by the packaged dropbearkey (run with the packaged libc)."""
    key = work / "host_key"
    ld = root / "lib64" / "ld-linux-x86-64.so.2"
    cmd = [str(ld), "--library-path", ":".join(str(root / p) for p in LIBDIRS),
           str(root / "usr/bin/dropbearkey"),
           "-t", "ed25519", "-f", str(key)]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise GuestImageError(f"dropbearkey failed: {getattr(exc, 'stderr', '') or exc}"
                              ) from exc
    return key.read_bytes()


def _initramfs(root: Path, modules: dict[str, bytes], order: list[str], memtouch: bytes,
               host_key: bytes) -> bytes:
    d, x, f, ln = 0o040755, 0o100755, 0o100644, 0o120777
    dirs = ["bin", "dev", "etc", "etc/dropbear", "lib", "lib/modules", LIBDIR.split("/")[0],
            "lib64", "mnt", "proc", "root", "sys", "tmp", "usr", "usr/bin", "usr/lib",
            "usr/sbin", "var", "var/run", "var/log"]
    entries: list[tuple[str, int, bytes]] = [(p, d, b"") for p in dict.fromkeys(dirs)]
    entries[entries.index(("tmp", d, b""))] = ("tmp", 0o041777, b"")
    entries.append((LIBDIR, d, b""))
    entries += [
        ("bin/busybox", x, _file(root, "bin/busybox")),
        ("bin/sh", ln, b"busybox"),
        ("init", x, INIT_SCRIPT.read_bytes()),
        ("usr/sbin/dropbear", x, _file(root, "usr/sbin/dropbear")),
        ("usr/lib/sftp-server", x, _file(root, "usr/lib/openssh/sftp-server")),
        ("usr/bin/cpulimit", x, _file(root, "usr/bin/cpulimit")),
        ("usr/bin/" + stress.PROGRAM, x, memtouch),
        ("usr/bin/nohup", x, NOHUP),
        ("lib64/ld-linux-x86-64.so.2", x, _file(root, "lib64/ld-linux-x86-64.so.2")),
        ("etc/dropbear/host_key", 0o100600, host_key),
        ("etc/passwd", f, b"root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/group", f, b"root:x:0:\n"),
        ("etc/shells", f, b"/bin/sh\n"),
        ("lib/modules/order", f, ("\n".join(order) + "\n").encode()),
    ]
    for lib in LIBS:
        where = [p for p in LIBDIRS if (root / p / lib).exists()]
        if where:
            entries.append((f"{LIBDIR}/{lib}", x, _file(root, f"{where[0]}/{lib}")))
    entries += [(f"lib/modules/{name}.ko", f, modules[name]) for name in order]
    return gzip.compress(newc_archive(entries), compresslevel=6, mtime=0)


def _backing(path: Path) -> None:
    """A 16 MiB qcow2 whose first sector is the marker (converted from a raw file)."""
    raw = path.with_suffix(".raw")
    with open(raw, "wb") as out:
        out.write(DISK_MARKER.ljust(512, b"\0"))
        out.truncate(16 * 2**20)
    tmp = path.with_suffix(".tmp")
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw),
                    str(tmp)], check=True, capture_output=True)
    raw.unlink()
    tmp.replace(path)


def _stamp() -> bytes:
    return (VERSION.encode() + b"\0" + INIT_SCRIPT.read_bytes() + b"\0"
            + stress.SOURCE.read_bytes())


def build_g5k_image(cache: Path = DEFAULT_CACHE, *, force: bool = False) -> G5kGuestImage:
    """Build (once) the v2 kernel, initramfs and backing disk into ``cache``."""
    image = G5kGuestImage(kernel=cache / "vmlinuz", initrd=cache / "initrd-base.gz",
                          backing=cache / "backing.qcow2")
    stamp = cache / "stamp"
    fresh = stamp.exists() and stamp.read_bytes() == _stamp()
    if not force and fresh and all(p.exists() for p in (image.kernel, image.initrd,
                                                        image.backing)):
        return image
    if shutil.which("dpkg-deb") is None or shutil.which("apt-get") is None:
        raise GuestImageError("building the guest image needs apt-get and dpkg-deb (Debian)")
    cache.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="dvms-guest-g5k-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # apt's sandbox user must be able to write here
        debs, root, kroot = work / "debs", work / "root", work / "kernel"
        debs.mkdir()
        os.chmod(debs, 0o755)
        _download([_kernel_package(), *PACKAGES], debs)
        for deb in sorted(debs.glob("*.deb")):
            _unpack(deb, kroot if deb.name.startswith("linux-image-") else root)
        [vmlinuz] = sorted((kroot / "boot").glob("vmlinuz-*"))
        kos = {p.stem.replace("-", "_"): p for p in (kroot / "lib" / "modules").rglob("*.ko")}
        depends: dict[str, list[str]] = {}
        pending = list(MODULES)
        while pending:  # the wanted modules and what they depend on
            name = pending.pop()
            if name not in depends and name in kos:
                depends[name] = _modinfo_depends(kos[name].read_bytes())
                pending += depends[name]
        order = module_order(depends, MODULES)
        memtouch = stress.build(work / "stress").read_bytes()
        initrd = _initramfs(root, {n: kos[n].read_bytes() for n in order}, order, memtouch,
                            _host_key(root, work))
        _write(image.kernel, vmlinuz.read_bytes())
        _write(image.initrd, initrd)
        _backing(image.backing)
    stamp.write_bytes(_stamp())
    return image


def with_key(image: G5kGuestImage, public_key: str, out: Path) -> Path:
    """``out`` = the image's initramfs + an archive with ``/root/.ssh/authorized_keys``."""
    extra = newc_archive([("root", 0o040700, b""), ("root/.ssh", 0o040700, b""),
                          ("root/.ssh/authorized_keys", 0o100600,
                           public_key.strip().encode() + b"\n")])
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(out, image.initrd.read_bytes() + gzip.compress(extra, mtime=0))
    return out
