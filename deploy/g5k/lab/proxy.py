"""The ssh ``ProxyCommand`` of the lab: one real ``sshd -i`` per connection.

``python -m deploy.g5k.lab.proxy LAB frontend SITE`` or ``... LAB node HOST`` replaces
itself with ``/usr/sbin/sshd -i -f LAB/sshd/NAME.conf`` (inside the node's network
namespace when it has one; for a tier-F hypervisor, with ``nsenter`` into its network
namespace and its libvirtd's mount namespace, so a session sees that host's private
directories, e.g. its disks), talking ssh on the client's pipe: no daemon, no port. A
frontend switched off (fault ``frontend_down_sites``) or an unknown name closes the pipe,
and ``ssh`` exits 255 as for an unreachable host.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from deploy.g5k.lab.faults import load_faults
from deploy.g5k.lab.spec import LabSpec

__all__ = ["SSHD", "main", "sshd_config_path"]

SSHD = "/usr/sbin/sshd"


def sshd_config_path(lab: Path, name: str) -> Path:
    return lab / "sshd" / f"{name}.conf"


def _daemon_pid(lab: Path, short: str) -> int | None:
    """The pid of the node's own libvirtd (tier F: ``LAB/hv/hosts/SHORT/daemon.pid``)."""
    try:
        pid = int((lab / "hv" / "hosts" / short / "daemon.pid").read_text())
        if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"/usr/sbin/libvirtd"):
            return pid
    except (OSError, ValueError):
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[1] not in ("frontend", "node"):
        print("usage: proxy LAB frontend SITE | proxy LAB node HOST", file=sys.stderr)
        return 2
    lab, kind, name = Path(args[0]), args[1], args[2]
    spec = LabSpec.load(lab / "platform.json")
    netns = short = ""
    if kind == "frontend":
        if name not in spec.site_names():
            print(f"lab: no frontend {name}.grid5000.fr", file=sys.stderr)
            return 1
        if name in load_faults(lab).frontend_down_sites:
            print(f"lab: frontend {name}.grid5000.fr is down (fault)", file=sys.stderr)
            return 1
        conf = sshd_config_path(lab, f"frontend-{name}")
    else:
        try:
            _, _, node = spec.node(name)
        except Exception:
            print(f"lab: no node {name}", file=sys.stderr)
            return 1
        conf = sshd_config_path(lab, node.short)
        netns, short = node.netns, node.short
    cmd = [SSHD, "-i", "-f", str(conf)]
    daemon = _daemon_pid(lab, short) if netns else None
    if daemon is not None:
        cmd = [shutil.which("nsenter") or "/usr/bin/nsenter", f"--net=/run/netns/{netns}",
               f"--mount=/proc/{daemon}/ns/mnt", *cmd]
    elif netns:
        ip = shutil.which("ip") or "/usr/sbin/ip"
        cmd = [ip, "netns", "exec", netns, *cmd]
    os.execv(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
