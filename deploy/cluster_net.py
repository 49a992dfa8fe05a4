"""Network plumbing of the local cluster: one namespace per host, joined by a bridge.

The bridge lives in its own namespace (``<prefix>-net``) so nothing is added to the
machine's own network stack; each host namespace gets a veth (``eth0``) plugged into it.
An optional ``tc netem`` delay on every host's ``eth0`` adds ``delay_ms`` one way between
any two hosts (round trip ``2 × delay_ms``). Deleting the namespaces removes all of it.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "NETNS_DIR",
    "add_host_link",
    "create_bridge_ns",
    "delete_netns",
    "host_ip",
    "list_netns",
    "run",
    "set_delay",
]

NETNS_DIR = Path("/run/netns")
BRIDGE = "br0"


def run(cmd: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing output; raises ``CalledProcessError`` with it on failure."""
    return subprocess.run(list(cmd), check=check, capture_output=True, text=True)


def host_ip(subnet: str, index: int) -> str:
    """The address of host ``index`` (0-based) in ``subnet``: the subnet's (index+1)-th."""
    net = ipaddress.ip_network(subnet)
    return str(net.network_address + index + 1)


def list_netns() -> list[str]:
    """Names of the network namespaces under /run/netns."""
    return sorted(p.name for p in NETNS_DIR.iterdir()) if NETNS_DIR.is_dir() else []


def create_bridge_ns(ns: str) -> None:
    """The namespace holding the bridge every host is plugged into."""
    run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "-n", ns, "link", "set", BRIDGE, "up"])


def add_host_link(bridge_ns: str, host_ns: str, link: str, ip: str, prefixlen: int) -> None:
    """Create ``host_ns`` and plug its ``eth0`` (address ``ip``) into the bridge.

    ``link`` names the veth pair while it is in the root namespace (≤ 13 characters).
    """
    outer, inner = f"{link}b", f"{link}h"
    run(["ip", "netns", "add", host_ns])
    run(["ip", "-n", host_ns, "link", "set", "lo", "up"])
    run(["ip", "link", "add", outer, "type", "veth", "peer", "name", inner])
    run(["ip", "link", "set", outer, "netns", bridge_ns])
    run(["ip", "link", "set", inner, "netns", host_ns])
    run(["ip", "-n", bridge_ns, "link", "set", outer, "master", BRIDGE])
    run(["ip", "-n", bridge_ns, "link", "set", outer, "up"])
    run(["ip", "-n", host_ns, "link", "set", inner, "name", "eth0"])
    run(["ip", "-n", host_ns, "addr", "add", f"{ip}/{prefixlen}", "dev", "eth0"])
    run(["ip", "-n", host_ns, "link", "set", "eth0", "up"])


def set_delay(host_ns: str, delay_ms: float) -> None:
    """Delay everything ``host_ns`` sends on ``eth0`` by ``delay_ms`` (0 removes it)."""
    run(["tc", "-n", host_ns, "qdisc", "del", "dev", "eth0", "root"], check=False)
    if delay_ms > 0:
        run(["tc", "-n", host_ns, "qdisc", "add", "dev", "eth0", "root", "netem",
             "delay", f"{delay_ms}ms"])


def delete_netns(ns: str) -> None:
    """Delete a namespace (and the links in it); no error if it is gone."""
    if (NETNS_DIR / ns).exists():
        run(["ip", "netns", "del", ns], check=False)
