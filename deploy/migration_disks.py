"""Destination disks of a storage-copy live migration (``VIR_MIGRATE_NON_SHARED_INC``).

libvirt refuses to pre-create the target of an *incremental* storage migration ("pre-creation
of storage targets for incremental storage migration is not supported"): the destination
must already hold, at the same path, an empty copy-on-write overlay over the same backing
file (vm5k's ``migrate_vm`` relied on the same). ``precreate_overlays`` makes it through the
destination daemon's storage API: a transient ``dir`` pool over the disk's directory (or
the pool already there) and a qcow2 volume with the source disk's capacity and backing
file. A stale overlay left there by an earlier migration is replaced (its clusters would
otherwise show through where the source's top image has none). A backing file missing on
the destination fails here, before any migration starts, with libvirt's message.
"""

from __future__ import annotations

import contextlib
import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape

import libvirt

__all__ = ["Overlay", "overlays_of", "precreate_overlays"]


@dataclass(frozen=True)
class Overlay:
    path: str
    format: str
    backing: str
    backing_format: str
    capacity: int
    """Virtual size in bytes."""


def overlays_of(dom: libvirt.virDomain) -> list[Overlay]:
    """The domain's file disks that sit over a backing file (the ones to pre-create)."""
    root = ET.fromstring(dom.XMLDesc(0))
    out: list[Overlay] = []
    for disk in root.iter("disk"):
        if disk.get("type") != "file" or disk.get("device", "disk") != "disk":
            continue
        src = disk.find("source")
        back = disk.find("backingStore/source")
        if src is None or back is None or not src.get("file") or not back.get("file"):
            continue
        driver = disk.find("driver")
        bformat = disk.find("backingStore/format")
        path = str(src.get("file"))
        out.append(Overlay(
            path=path, format=(driver.get("type") if driver is not None else None) or "qcow2",
            backing=str(back.get("file")),
            backing_format=(bformat.get("type") if bformat is not None else None) or "qcow2",
            capacity=int(dom.blockInfo(path)[0])))
    return out


def _pool(conn: libvirt.virConnect, directory: str) -> libvirt.virStoragePool:
    with contextlib.suppress(libvirt.libvirtError):
        pool = conn.storagePoolLookupByTargetPath(directory)
        if not pool.isActive():
            pool.create(0)
        pool.refresh(0)
        return pool
    name = "dvms-" + hashlib.sha1(directory.encode()).hexdigest()[:12]
    xml = (f"<pool type='dir'><name>{name}</name>"
           f"<target><path>{escape(directory)}</path></target></pool>")
    return conn.storagePoolCreateXML(xml, 0)


def precreate_overlays(dom: libvirt.virDomain, dest_uri: str) -> list[str]:
    """Make each overlay of ``dom`` on the daemon at ``dest_uri`` (a client URI); returns
    the paths made. Raises ``libvirt.libvirtError`` (e.g. backing file missing there)."""
    disks = overlays_of(dom)
    if not disks:
        return []
    conn = libvirt.open(dest_uri)
    made: list[str] = []
    try:
        for d in disks:
            directory, _, name = d.path.rpartition("/")
            pool = _pool(conn, directory or "/")
            with contextlib.suppress(libvirt.libvirtError):
                pool.storageVolLookupByName(name).delete(0)  # stale: replaced
            pool.createXML(
                f"<volume><name>{escape(name)}</name>"
                f"<capacity unit='bytes'>{d.capacity}</capacity>"
                f"<target><format type='{escape(d.format)}'/></target>"
                f"<backingStore><path>{escape(d.backing)}</path>"
                f"<format type='{escape(d.backing_format)}'/></backingStore></volume>", 0)
            made.append(d.path)
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
    return made
