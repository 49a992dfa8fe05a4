"""The stress and load steps over ssh, on the VMs ``vms.json`` says are OK.

``start_stress`` builds the stress program, copies it to every OK VM (one scp each) and
starts it capped at ``[stress].initial_percent``; a VM whose upload or start fails is KO
(step ``stress-upload`` / ``stress-start``) in ``vms.json``, and the step fails below
``[vms].min_vms_ratio``. ``inject_load`` checks every event's VM first (an unknown or KO VM
is an error before anything is applied), then replays the events, each as a
``stress.set_load`` over ssh on its VM. VMs are reached by their IP (``target``): on
Grid'5000 through the KaVLAN, in a lab by whatever its ssh config maps.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from deploy.g5k import stress
from deploy.g5k.load import LoadEvent, Replay, check_targets, replay
from deploy.g5k.vmdeploy import VmRecord, VmsRun
from dvms.errors import DvmsError

__all__ = ["Target", "inject_load", "start_stress"]

Target = Callable[[str, VmRecord], str]
"""(VM id, its record) → the ssh destination of the VM."""


def _ip(vm: str, rec: VmRecord) -> str:
    return rec.ip


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def start_stress(workdir: Path, cfg: stress.StressConfig, *, min_vms_ratio: float,
                 vcpus: dict[str, int] | None = None, target: Target = _ip,
                 remote_path: str = stress.REMOTE_PATH, pidfile: str = stress.PIDFILE,
                 progress: Callable[[str], None] = _stderr) -> VmsRun:
    """Upload and start the stress in every OK VM of ``workdir``'s ``vms.json``."""
    if not remote_path.endswith("/" + stress.PROGRAM):
        raise ValueError(f"remote_path {remote_path!r} must end with /{stress.PROGRAM}")
    rs = VmsRun.load(workdir)
    if rs is None:
        raise DvmsError(f"{workdir}: no VM recorded (run the vms step first)")
    binary = stress.build(workdir / "bin")
    ok = [vm for vm, r in rs.vms.items() if r.state == "OK"]
    dest = {vm: target(vm, rs.vms[vm]) for vm in ok}
    by_dest = {d: vm for vm, d in dest.items()}
    directory = remote_path.rsplit("/", 1)[0] or "/"
    for d, error in stress.upload(list(by_dest), binary, directory).items():
        rs.ko(by_dest[d], "stress-upload", error)
        progress(f"KO {by_dest[d]}: stress-upload: {error}")
    alive = [d for d, vm in by_dest.items() if rs.vms[vm].state == "OK"]
    started = stress.start(alive, cfg.mem_mib, cfg.rate_mib_s, cfg.initial_percent,
                           vcpus={dest[vm]: n for vm, n in (vcpus or {}).items() if vm in dest},
                           path=remote_path, pidfile=pidfile)
    for d, (pid, error) in started.items():
        if pid is None or error:
            rs.ko(by_dest[d], "stress-start", error or "no pid")
            progress(f"KO {by_dest[d]}: stress-start: {error or 'no pid'}")
    rs.save(workdir)
    total = len(rs.vms)
    live = sum(1 for r in rs.vms.values() if r.state == "OK")
    if total and live / total + 1e-9 < min_vms_ratio:
        raise DvmsError(f"only {live} of {total} VMs run the stress, below "
                        f"vms.min_vms_ratio = {min_vms_ratio:g}")
    return rs


def inject_load(workdir: Path, events: Sequence[LoadEvent], *, source: str = "",
                vcpus: dict[str, int] | None = None, target: Target = _ip,
                pidfile: str = stress.PIDFILE,
                progress: Callable[[str], None] = _stderr,
                applied: Callable[[LoadEvent, VmRecord], None] | None = None) -> Replay:
    """Check the events against the OK VMs, then apply them at their times (``applied`` is
    told of each event applied, e.g. to log it for the run's trace)."""
    rs = VmsRun.load(workdir)
    if rs is None:
        raise DvmsError(f"{workdir}: no VM recorded (run the vms step first)")
    check_targets(events, [vm for vm, r in rs.vms.items() if r.state == "OK"], source)

    def apply(e: LoadEvent) -> str:
        error = stress.set_load(target(e.vm, rs.vms[e.vm]), e.load,
                                vcpus=(vcpus or {}).get(e.vm, 1), pidfile=pidfile)
        if not error and applied is not None:
            applied(e, rs.vms[e.vm])
        return error

    return replay(events, apply, progress=progress)
