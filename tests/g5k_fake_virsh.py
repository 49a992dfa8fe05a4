"""A stand-in ``virsh`` for the tier-L lab (its nodes have no libvirtd).

``python g5k_fake_virsh.py STATE [-q] [-c URI] define FILE | domstate NAME | start NAME |
destroy NAME | undefine NAME | list --name``. Each node (``$DVMS_NODE``) has its own hypervisor:
domains in ``STATE/nodes/NODE/domains/NAME.xml``; "starting" a
domain starts a real process listening on the VM's address (``STATE/ips.json``: MAC → IP)
on ``STATE/port`` (a VM that "boots"), or a silent one for VMs named in ``STATE/silent``
(a VM whose sshd never answers); its pid goes to ``STATE/nodes/NODE/run/NAME.pid``. Nodes named in
``STATE/fail_nodes`` (``$DVMS_NODE``, set by the lab's sshd) cannot reach their
hypervisor: every command there fails as virsh does. The listeners exit after 300 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

LISTENER = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16); s.settimeout(1.0)
end = time.monotonic() + 300
while time.monotonic() < end:
    try:
        c, _ = s.accept(); c.close()
    except OSError:
        pass
"""
SILENT = "import time; time.sleep(300)"


def _lines(path: Path) -> set[str]:
    return set(path.read_text().split()) if path.exists() else set()


def _alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text())
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def main(argv: list[str]) -> int:
    state, args = Path(argv[0]), argv[1:]
    while args and args[0] in ("-q", "-c"):
        args = args[2:] if args[0] == "-c" else args[1:]
    if os.environ.get("DVMS_NODE", "") in _lines(state / "fail_nodes"):
        print("error: failed to connect to the hypervisor", file=sys.stderr)
        return 1
    if len(args) != 2:
        print(f"error: fake virsh: unsupported {args}", file=sys.stderr)
        return 1
    cmd, arg = args
    node = state / "nodes" / (os.environ.get("DVMS_NODE", "") or "local")
    domains, run = node / "domains", node / "run"
    domains.mkdir(parents=True, exist_ok=True)
    run.mkdir(exist_ok=True)
    if cmd == "list" and arg == "--name":  # running domains, one name a line
        for xml in sorted(domains.glob("*.xml")):
            if _alive(run / f"{xml.stem}.pid"):
                print(xml.stem)
        return 0
    if cmd == "define":
        root = ET.parse(arg).getroot()
        name = root.findtext("name") or ""
        (domains / f"{name}.xml").write_text(Path(arg).read_text())
        print(f"Domain '{name}' defined from {arg}")
        return 0
    xml, pidfile = domains / f"{arg}.xml", run / f"{arg}.pid"
    if not xml.exists():
        print(f"error: failed to get domain '{arg}'", file=sys.stderr)
        return 1
    if cmd == "domstate":
        print("running" if _alive(pidfile) else "shut off")
        return 0
    if cmd == "start":
        if _alive(pidfile):
            print("error: Requested operation is not valid: domain is already active",
                  file=sys.stderr)
            return 1
        mac = ET.parse(xml).getroot().find("devices/interface/mac")
        ip = json.loads((state / "ips.json").read_text())[mac.get("address", "")]  # type: ignore[union-attr]
        code = SILENT if arg in _lines(state / "silent") else LISTENER
        proc = subprocess.Popen([sys.executable, "-c", code, ip, (state / "port").read_text()],
                                start_new_session=True, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pidfile.write_text(str(proc.pid))
        with (state / "starts.log").open("a") as log:
            log.write(f"{arg} {os.environ.get('DVMS_NODE', '')}\n")
        print(f"Domain '{arg}' started")
        return 0
    if cmd == "destroy":
        if not _alive(pidfile):
            print("error: Requested operation is not valid: domain is not running",
                  file=sys.stderr)
            return 1
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        pidfile.unlink()
        return 0
    if cmd == "undefine":
        xml.unlink()
        return 0
    print(f"error: fake virsh: unknown command {cmd}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
