"""``dvms g5k lab up|down|status``: a local stand-in of Grid'5000 to rehearse experiments.

``up`` writes, in ``LAB`` (the workdir), and records in ``LAB/lab.json`` *before* starting
anything: the platform description (``platform.json``), an ed25519 user key and host key,
one sshd config per frontend and per node, the generated ssh client config (``ssh_config``:
``Host fsite1.grid5000.fr`` → the site's frontend, ``Host *.fsite1.grid5000.fr`` → its
nodes, each reached by a real ``sshd -i`` through ``ProxyCommand``), the fake frontend
commands in ``LAB/bin``, then starts the fake REST API (the only process a lab keeps
running) and writes the ``[platform]`` table an experiment needs (``platform.toml``) and
an example experiment (``experiment.toml``). ``down`` stops the API and any ssh session
still open on the lab; it is safe to repeat.

With ``libvirt=True`` (tier F, ``lab/hypervisors.py``) every node is also a real hypervisor
(its own netns and libvirtd, one L2 over the sites), the guest image v2 is built (cached)
and given the lab's key (``LAB/guest/initrd.gz``), the ssh config reaches the VMs, and the
example experiment gets a ``[vms]`` table for it; ``down`` then also destroys the guests,
stops the daemons and deletes the namespaces and cgroups.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import deploy
from deploy import guest_image_g5k as guest
from deploy.g5k.lab import hypervisors
from deploy.g5k.lab.api import PORT_FILE
from deploy.g5k.lab.faults import FAULTS, load_faults
from deploy.g5k.lab.jobs import JobStore
from deploy.g5k.lab.oar import COMMANDS
from deploy.g5k.lab.proxy import SSHD, sshd_config_path
from deploy.g5k.lab.spec import LabSpec
from dvms.config import toml_value
from dvms.errors import DvmsError, InputError

__all__ = ["DEFAULT_LAB", "LabState", "agents_table", "down", "platform_table", "status", "up"]

DEFAULT_LAB = Path("/var/tmp/dvms-g5k-lab")
STATE = "lab.json"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GUEST_INITRD = "guest/initrd.gz"
"""Tier F: the guest image v2's initramfs with the lab's authorized key."""


@dataclass(slots=True)
class LabState:
    workdir: Path
    user: str
    python: str
    api_pid: int | None = None
    api_uri: str = ""
    libvirt: bool = False
    """Tier F: the nodes are hypervisors (``lab/hypervisors.py``)."""
    prefix: str = ""
    """Tier F: names of the namespaces (``PREFIX-hI``, ``PREFIX-net``) and cgroups."""
    image_cache: str = str(guest.DEFAULT_CACHE)
    """Tier F: where the guest image v2 is built (once)."""

    def save(self) -> None:
        data = {**asdict(self), "workdir": str(self.workdir)}
        tmp = self.workdir / (STATE + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(self.workdir / STATE)

    @classmethod
    def load(cls, workdir: Path) -> LabState | None:
        path = workdir / STATE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(workdir=Path(data["workdir"]), user=data["user"], python=data["python"],
                       api_pid=data.get("api_pid"), api_uri=data.get("api_uri", ""),
                       libvirt=bool(data.get("libvirt", False)),
                       prefix=str(data.get("prefix", "")),
                       image_cache=str(data.get("image_cache", guest.DEFAULT_CACHE)))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not a dvms lab state file ({exc})") from exc

    @property
    def ssh_config(self) -> Path:
        return self.workdir / "ssh_config"

    @property
    def key(self) -> Path:
        return self.workdir / "keys" / "id_ed25519"


def _require_tools() -> None:
    for tool in (SSHD, shutil.which("ssh") or "", shutil.which("ssh-keygen") or ""):
        if not tool or not os.access(tool, os.X_OK):
            raise DvmsError("the lab needs OpenSSH's ssh, ssh-keygen and /usr/sbin/sshd "
                            "(install openssh-server openssh-client: scripts/install-sysdeps.sh)")


def _wrapper(path: Path, module: str, python: str, *, with_name: bool) -> None:
    root = Path(deploy.__file__).resolve().parent.parent
    name = ' "$(basename "$0")"' if with_name else ""
    path.write_text("#!/bin/sh\n"
                    f"PYTHONPATH='{root}'${{PYTHONPATH:+:$PYTHONPATH}} "
                    f"exec '{python}' -m {module}{name} \"$@\"\n")
    path.chmod(0o755)


def _sshd_config(state: LabState, env: dict[str, str]) -> str:
    keys = state.workdir / "keys"
    setenv = " ".join(f"{k}={v}" for k, v in env.items())
    return "\n".join([
        f"HostKey {keys / 'host_ed25519'}",
        f"AuthorizedKeysFile {keys / 'authorized_keys'}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "PrintMotd no",
        "PrintLastLog no",
        "Subsystem sftp internal-sftp",
        "LogLevel ERROR",
        "MaxStartups 100:30:200",
        f"SetEnv {setenv}",
        ""])


def _write_files(state: LabState, spec: LabSpec) -> None:
    lab = state.workdir
    for sub in ("keys", "sshd", "bin", "nodes"):
        (lab / sub).mkdir(parents=True, exist_ok=True)
    spec.save(lab / "platform.json")
    for key, comment in (("id_ed25519", "dvms-lab-user"), ("host_ed25519", "dvms-lab-host")):
        if not (lab / "keys" / key).exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                            "-f", str(lab / "keys" / key)], check=True)
    shutil.copyfile(lab / "keys" / "id_ed25519.pub", lab / "keys" / "authorized_keys")
    _wrapper(lab / "bin" / "fakeg5k", "deploy.g5k.lab.oar", state.python, with_name=True)
    _wrapper(lab / "bin" / "lab-proxy", "deploy.g5k.lab.proxy", state.python, with_name=False)
    for cmd in COMMANDS:
        link = lab / "bin" / cmd
        link.unlink(missing_ok=True)
        link.symlink_to("fakeg5k")
    path = f"{lab / 'bin'}:{SYSTEM_PATH}"
    base = {"FAKEG5K_LAB": str(lab), "PATH": path}
    blocks: list[str] = []
    proxy = lab / "bin" / "lab-proxy"
    for site in spec.sites:
        sshd_config_path(lab, f"frontend-{site.name}").write_text(
            _sshd_config(state, {**base, "FAKEG5K_SITE": site.name}))
        for _, node in site.nodes():
            (lab / "nodes" / node.short).mkdir(exist_ok=True)
            for marker in ("deployed", "vlan"):
                (lab / "nodes" / node.short / marker).unlink(missing_ok=True)
            env = {**base, "FAKEG5K_SITE": site.name, "DVMS_NODE": node.short, **node.env}
            sshd_config_path(lab, node.short).write_text(_sshd_config(state, env))
        blocks += [f"Host {site.frontend}",
                   f"  ProxyCommand {proxy} {lab} frontend {site.name}",
                   f"Host *.{site.name}.grid5000.fr",
                   f"  ProxyCommand {proxy} {lab} node %h"]
    if state.libvirt:
        blocks += hypervisors.ssh_block(spec, state.prefix, state.key)
        hypervisors.virsh_wrapper(lab / "bin" / "virsh", state.python, lab / FAULTS)
    blocks += ["Host *.grid5000.fr",
               f"  User {state.user}",
               f"  IdentityFile {state.key}",
               "  IdentitiesOnly yes",
               "  BatchMode yes",
               "  StrictHostKeyChecking no",
               "  UserKnownHostsFile /dev/null",
               "  LogLevel ERROR",
               ""]
    state.ssh_config.write_text("\n".join(blocks))


def platform_table(state: LabState) -> dict[str, Any]:
    """The ``[platform]`` table of an experiment run against this lab."""
    return {
        "api_uri": state.api_uri,
        "api_user": "",
        "ssh_config": str(state.ssh_config),
        "ssh_user": state.user,
        "check_deployed_command": f"test -e {state.workdir}/nodes/$DVMS_NODE/deployed",
        "frontend_timeout_s": 60.0,
        "api_timeout_s": 5.0,
        "poll_s": 1.0,
    }


def _write_examples(state: LabState, spec: LabSpec) -> None:
    table = platform_table(state)
    text = "[platform]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())
    (state.workdir / "platform.toml").write_text(text)
    blacklisted = spec.sites[-1].clusters[-1].name if len(spec.sites[-1].clusters) > 1 else ""
    total = sum(len(s.nodes()) for s in spec.sites) - (1 if blacklisted else 0)
    example = (f'name = "lab-rehearsal"\nseed = 1\n\n{text}\n[reservation]\nmode = "free"\n'
               f'resources = ["grid5000:{total}"]\n'
               f'blacklist = [{toml_value(blacklisted) if blacklisted else ""}]\n'
               'walltime = "0:30:00"\njob_types = ["deploy"]\n'
               f"kavlan = {toml_value(len(spec.sites) > 1)}\nstart_timeout_s = 60\n\n"
               '[hosts]\nenvironment = "debian12-min"\ndeploy_tries = 2\n'
               "min_hosts_ratio = 0.5\npackages = []\n")
    if state.libvirt:
        image = guest.build_g5k_image(Path(state.image_cache))
        example += "\n" + hypervisors.vms_table(image, state.workdir / GUEST_INITRD, total)
    example += "\n" + agents_table(state)
    (state.workdir / "experiment.toml").write_text(example)


def agents_table(state: LabState) -> str:
    """The ``[agents]`` table of a lab experiment: this machine's interpreter and tree (the
    shared filesystem is the nodes' install); tier L: loopback ports and libvirt's test
    driver; tier F: each host's own address and daemon, peers by address."""
    root = Path(deploy.__file__).resolve().parent.parent
    values: dict[str, Any] = {"python": state.python, "pythonpath": str(root)}
    if state.libvirt:
        values |= {"peer_uri": "qemu+tcp://{address}/system", "migration_storage": "copy-inc"}
    else:
        values |= {"address": "127.0.0.1", "libvirt_uri": "test:///default",
                   "migration_storage": "shared"}
    values["remote_dir"] = str(state.workdir / "agents")
    return "[agents]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())


def up(spec: LabSpec, workdir: Path = DEFAULT_LAB, *, timeout_s: float = 15.0,
       libvirt: bool = False, prefix: str = "g5klab", delay_ms: float = 5.0,
       image_cache: Path | None = None) -> LabState:
    """Build the lab and start its API (``libvirt``: tier F, hypervisors named ``prefix``,
    ``delay_ms`` one way between sites); on failure, undo and re-raise."""
    _require_tools()
    if libvirt and os.geteuid() != 0:
        raise InputError("lab up --libvirt needs root (network namespaces, libvirtd, "
                         "cgroups); run it as root")
    if libvirt and shutil.which("nc") is None:
        raise DvmsError("lab up --libvirt needs nc to reach the VMs (apt-get install "
                        "netcat-openbsd: scripts/sysdeps/g5k.txt)")
    workdir = workdir.resolve()
    old = LabState.load(workdir)
    if old is not None:
        raise InputError(f"a lab is already up in {workdir} "
                         f"(run: dvms g5k lab down --workdir {workdir})")
    workdir.mkdir(parents=True, exist_ok=True)
    state = LabState(workdir=workdir, user=getpass.getuser(), python=sys.executable,
                     libvirt=libvirt, prefix=prefix if libvirt else "")
    if image_cache is not None:
        state.image_cache = str(image_cache)
    if libvirt:
        spec = hypervisors.attach(spec, workdir, prefix)  # InputError before anything
    state.save()
    try:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation
        for stale in ("jobs.json", FAULTS, PORT_FILE, "api.log", "commands.log"):
            (workdir / stale).unlink(missing_ok=True)
        _write_files(state, spec)
        if libvirt:
            image = guest.build_g5k_image(Path(state.image_cache))
            guest.with_key(image, (workdir / "keys" / "id_ed25519.pub").read_text(),
                           workdir / GUEST_INITRD)
            hypervisors.up(spec, workdir, prefix, delay_ms)
        env = {**os.environ, "PYTHONPATH": str(Path(deploy.__file__).resolve().parent.parent)}
        with open(workdir / "api.stderr", "wb") as err:
            proc = subprocess.Popen([state.python, "-m", "deploy.g5k.lab.api", str(workdir)],
                                    stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                    env=env, start_new_session=True)
        state.api_pid = proc.pid
        state.save()
        deadline = time.monotonic() + timeout_s
        port_file = workdir / PORT_FILE
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                detail = (workdir / "api.stderr").read_text()[-300:].strip()
                raise DvmsError(f"lab API did not start: {detail or 'timeout'}")
            time.sleep(0.05)
        state.api_uri = f"http://127.0.0.1:{int(port_file.read_text())}/3.0/"
        state.save()
        _write_examples(state, spec)
    except BaseException:
        down(workdir)
        raise
    return state


def _ours(pid: int, marker: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return marker in cmdline


def _in_lab_session(pid: int, workdir: Path) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"FAKEG5K_LAB={workdir}\0".encode() in environ


def _lab_processes(workdir: Path) -> list[int]:
    """Processes started for this lab: the API, and ssh sessions still open on it (their
    ``sshd -i`` and whatever runs in them, which carries ``FAKEG5K_LAB``)."""
    marker = str(workdir / "sshd") + "/"
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            if (_ours(pid, marker) or _ours(pid, f"deploy.g5k.lab.api {workdir}")
                    or _in_lab_session(pid, workdir)):
                found.append(pid)
    return found


def down(workdir: Path = DEFAULT_LAB) -> list[str]:
    """Stop what ``up`` started; returns what was stopped. Safe to repeat."""
    workdir = workdir.resolve()
    state = LabState.load(workdir)
    if state is None:
        return []
    removed: list[str] = []
    pids = _lab_processes(workdir)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            removed.append("api" if pid == state.api_pid else f"ssh session {pid}")
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        for pid in list(pids):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not Path(f"/proc/{pid}").exists() or _zombie(pid):
                pids.remove(pid)
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if state.libvirt:
        removed += hypervisors.down(workdir)
    for name in (STATE, PORT_FILE):
        (workdir / name).unlink(missing_ok=True)
    return removed


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def status(workdir: Path = DEFAULT_LAB) -> dict[str, Any]:
    """The lab as JSON: API, sites and nodes, jobs, faults."""
    workdir = workdir.resolve()
    state = LabState.load(workdir)
    if state is None:
        return {"workdir": str(workdir), "up": False}
    spec = LabSpec.load(workdir / "platform.json")
    alive = state.api_pid is not None and _ours(state.api_pid, "deploy.g5k.lab.api")
    now = time.time()
    jobs = JobStore(workdir).read()
    return {
        "workdir": str(workdir),
        "up": alive,
        "api": {"pid": state.api_pid, "alive": alive, "uri": state.api_uri},
        "ssh_config": str(state.ssh_config),
        "sites": {s.name: {c.name: [n.name for n in c.nodes] for c in s.clusters}
                  for s in spec.sites},
        "deployed": sorted(p.parent.name for p in (workdir / "nodes").glob("*/deployed")),
        "jobs": [{"id": j.id, "site": j.site, "name": j.name, "state": j.state(now),
                  "nodes": j.nodes, "vlan": j.vlan} for j in sorted(jobs.values(),
                                                                  key=lambda j: j.id)],
        "faults": load_faults(workdir).to_json(),
        **({"hypervisors": hypervisors.status(workdir, spec)} if state.libvirt else {}),
    }
