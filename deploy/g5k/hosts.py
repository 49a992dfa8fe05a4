"""Deploy the reserved nodes: kadeploy through execo, KO hosts dropped, libvirt set up.

``deploy_hosts`` runs execo_g5k's ``deploy(Deployment)`` (hosts grouped by site, one
``kadeploy3`` per frontend, ``deploy_tries`` attempts, the check command before and after)
and reads kadeploy's own output (captured per frontend) for each failed node's reason. A
node that fails a step is marked KO with the step and the reason, and dropped; the run
goes on only if at least ``min_hosts_ratio`` of the reserved nodes are left. Output that
names no node at all (kadeploy's sections missing) is an error naming the site. Then the
``[hosts].packages`` are installed and libvirt checked on the OK hosts — skipped when the
list is empty (the lab's hosts need none).
"""

from __future__ import annotations

import math
import re
import sys
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from deploy.g5k import session
from deploy.g5k.config import Experiment
from deploy.g5k.reserve import Resources
from deploy.g5k.state import ExperimentState
from dvms.errors import DvmsError

__all__ = ["KadeployLog", "deploy_hosts", "parse_kadeploy"]

TIMEOUT_STATUS = 124
"""Exit status of coreutils' ``timeout`` when it stops the command."""
_HEADER_OK = re.compile(r"^The \w+ is successful on nodes\s*$")
_HEADER_KO = re.compile(r"^The \w+ failed on nodes\s*$")
_NODE = re.compile(r"^(\w+-\d+\.\w+\.grid5000\.fr)(?:\s+\((.*)\))?\s*$")


def parse_kadeploy(lines: list[str]) -> tuple[set[str], dict[str, str], bool]:
    """(deployed, failed → reason, any section found) from one frontend's kadeploy3 output."""
    ok: set[str] = set()
    ko: dict[str, str] = {}
    section = ""
    found = False
    for line in lines:
        line = line.rstrip("\r\n")
        if _HEADER_OK.match(line):
            section, found = "ok", True
        elif _HEADER_KO.match(line):
            section, found = "ko", True
        elif (mo := _NODE.match(line)) and section:
            if section == "ok":
                ok.add(mo.group(1))
            else:
                ko[mo.group(1)] = mo.group(2) or "failed"
    return ok, ko, found


class KadeployLog:
    """Collects each frontend's kadeploy3 output. execo's ``FrontendPrefixWrapper`` hands
    its handlers one whole line per ``read`` call, prefixed with ``site: `` and without the
    line end (so a line-buffering ``read_line`` would never fire): ``read`` is overridden."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = defaultdict(list)
        self.processes: dict[str, list[Any]] = defaultdict(list)
        """Site → its kadeploy3 processes (one per try)."""

    def timed_out(self, site: str) -> bool:
        """Whether the site's last kadeploy3 run was stopped by the deploy timeout."""
        procs = self.processes.get(site) or []
        if not procs:
            return False
        last = procs[-1]
        status = session.decode_status(getattr(last, "exit_code", None))
        return status == TIMEOUT_STATUS or bool(getattr(last, "timeouted", False))

    def handler(self) -> Any:
        from execo.process import ProcessOutputHandler

        log = self

        class Handler(ProcessOutputHandler):
            def read(self, process: Any, stream: Any, string: str, eof: bool = False,
                     error: bool = False) -> None:
                site = str(getattr(process, "frontend", ""))
                if process not in log.processes[site]:
                    log.processes[site].append(process)
                line = string.removeprefix(f"{site}: ")
                log.lines[site].extend(line.replace("\r", "").splitlines() or [""])

        return Handler()


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _kadeploy(exp: Experiment, res: Resources, state: ExperimentState,
              progress: Callable[[str], None]) -> None:
    from execo_g5k.config import g5k_configuration
    from execo_g5k.kadeploy import Deployment, deploy

    hosts = state.ok_hosts()
    log = KadeployLog()
    check: str | bool = exp.platform.check_deployed_command or True
    progress(f"kadeploy {exp.hosts.environment} on {len(hosts)} hosts "
             f"({exp.hosts.deploy_tries} tries)")
    # execo 2.8.2's deploy_timeout never reaches the kadeploy3 processes (it is set on the
    # Kadeployer after they are built): the frontend's coreutils `timeout` enforces it
    conf = g5k_configuration
    saved = conf.get("kadeploy3", "kadeploy3")
    conf["kadeploy3"] = f"timeout {math.ceil(exp.hosts.deploy_timeout_s)} {saved}"
    try:
        deployed, undeployed = deploy(
            Deployment(hosts=hosts, env_name=exp.hosts.environment, vlan=res.vlan),
            check_deployed_command=check,
            node_connection_params={"user": exp.platform.ssh_user},
            num_tries=exp.hosts.deploy_tries,
            deploy_timeout=exp.hosts.deploy_timeout_s,
            stdout_handlers=[log.handler()])
    finally:
        conf["kadeploy3"] = saved
    by_site: dict[str, list[str]] = defaultdict(list)
    for h in hosts:
        by_site[state.hosts[h].site].append(h)
    garbage: list[str] = []
    for site, site_hosts in by_site.items():
        ok, ko, found = parse_kadeploy(log.lines.get(site, []))
        ran = bool(log.lines.get(site))
        hung = log.timed_out(site)
        for h in site_hosts:
            if h in deployed:
                state.hosts[h].state = "deployed"
            elif hung and h not in ko:
                state.mark_ko(h, "kadeploy", f"kadeploy3 on {site} timed out after "
                              f"deploy_timeout_s = {exp.hosts.deploy_timeout_s:g} s")
            elif ran and not found:
                state.mark_ko(h, "kadeploy", f"kadeploy3 output on {site} unparseable: "
                              f"{_snippet(log.lines[site])}")
            elif h in ko:
                state.mark_ko(h, "kadeploy", ko[h])
            elif h in ok:
                state.mark_ko(h, "check", "kadeploy reported it deployed but the check "
                              "command failed")
            else:
                state.mark_ko(h, "kadeploy", "not deployed (no report from kadeploy3)")
        if ran and not found and not hung:
            garbage.append(site)
    missing = set(hosts) - deployed - undeployed
    for h in missing:
        state.mark_ko(h, "kadeploy", "not reported by execo's deploy")
    state.save()
    if garbage:
        site = garbage[0]
        raise DvmsError(f"site {site}: kadeploy3 output unparseable "
                        f"({_snippet(log.lines[site])}); its hosts are marked KO")


def _snippet(lines: list[str]) -> str:
    """The end of an output (where a failing tool says why), on one line."""
    text = " | ".join(ln.strip() for ln in lines if ln.strip())
    return ("..." if len(text) > 200 else "") + text[-200:]


def _libvirt(exp: Experiment, state: ExperimentState) -> None:
    """Install ``[hosts].packages`` and check libvirtd answers; failing hosts KO."""
    hosts = state.ok_hosts()
    pkgs = " ".join(exp.hosts.packages)
    # a log of its own per run (lab nodes share this machine's /tmp: a fixed name races)
    steps = [("packages", 'log=$(mktemp /tmp/dvms-apt.XXXXXX); '
                          "DEBIAN_FRONTEND=noninteractive apt-get -q -y install "
                          f'--no-install-recommends {pkgs} >"$log" 2>&1 '
                          '|| { tail -n 3 "$log"; rm -f "$log"; exit 1; }; rm -f "$log"'),
             ("libvirt", "virsh -c qemu:///system version >/dev/null")]
    for step, command in steps:
        for r in session.run(hosts, command, timeout_s=exp.hosts.deploy_timeout_s):
            if r.status != 0:
                state.mark_ko(r.host, step, f"exit {r.status}: {r.output.strip()[-200:]}")
        hosts = state.ok_hosts()
    for h in hosts:
        state.hosts[h].state = "ready"
    state.save()


def _check_ratio(exp: Experiment, state: ExperimentState, total: int) -> None:
    ok = state.ok_hosts()
    ko = [h for h in state.hosts.values() if h.state == "KO"]
    if total and len(ok) / total + 1e-9 >= exp.hosts.min_hosts_ratio and ok:
        return
    sites = {h.site for h in state.hosts.values()}
    dead = sorted(s for s in sites if all(h.state == "KO" for h in state.hosts.values()
                                         if h.site == s))
    head = f"site {dead[0]}: every node failed; " if dead else ""
    first = ko[0] if ko else None
    detail = f"; first KO: {first.name} ({first.step}: {first.reason})" if first else ""
    raise DvmsError(f"{head}only {len(ok)} of {total} hosts OK, below min_hosts_ratio = "
                    f"{exp.hosts.min_hosts_ratio:g}{detail}")


def deploy_hosts(exp: Experiment, res: Resources, state: ExperimentState, *,
                 progress: Callable[[str], None] = _stderr) -> list[str]:
    """Deploy the reserved hosts; returns the OK ones (``DvmsError`` below the ratio)."""
    if not state.hosts:
        raise DvmsError(f"{state.workdir}: no reserved host (run reserve first)")
    total = len(state.hosts)
    with state.step("deploy"):
        _kadeploy(exp, res, state, progress)
        for h in state.hosts.values():
            if h.state == "KO":
                progress(f"KO {h.name}: {h.step}: {h.reason}")
        for site in sorted({h.site for h in state.hosts.values()}):
            if all(h.state == "KO" for h in state.hosts.values() if h.site == site):
                progress(f"site {site} dropped: every node failed kadeploy")
        _check_ratio(exp, state, total)
    if exp.hosts.packages:
        with state.step("libvirt"):
            _libvirt(exp, state)
            _check_ratio(exp, state, total)
    else:
        state.skip("libvirt", "[hosts].packages is empty (the lab's hosts need none)")
        for name in state.ok_hosts():
            state.hosts[name].state = "ready"
        state.save()
    return state.ok_hosts()
