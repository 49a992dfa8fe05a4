"""The lab's fake frontend commands: ``oarsub oarstat oardel oarprint g5k-subnets kavlan
kadeploy3`` (and the nodes' ``apt-get``), one entry point behind the links of ``LAB/bin``
(the command is the name it is called by).

They run in an ``sshd -i`` session whose environment carries ``FAKEG5K_LAB`` and
``FAKEG5K_SITE``, log each call to ``LAB/commands.log``, and print what OAR 2.5 and
kadeploy 3 print, in the shapes execo_g5k parses (docs/g5k.md). Dates are Europe/Paris.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import os
import re
import shlex
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from deploy.g5k.lab.faults import DEFAULT_REFUSAL, load_faults
from deploy.g5k.lab.jobs import LIVE, Job, JobStore, NoResources, allocate, site_subnet_block
from deploy.g5k.lab.spec import LabSpec, global_vlan_cidr
from deploy.g5k.oarspec import OAR_GRAMMAR_EXIT, OarGrammarError, parse_resources

__all__ = ["COMMANDS", "main"]

PARIS = ZoneInfo("Europe/Paris")
COMMANDS = ("oarsub", "oarstat", "oardel", "oarprint", "g5k-subnets", "kavlan", "kadeploy3",
            "apt-get")
"""``apt-get`` is the nodes' own: a rehearsal's ``[hosts].packages`` must never install
anything on the machine the lab runs on; it records the packages and succeeds."""


def paris(ts: float) -> str:
    return datetime.fromtimestamp(ts, PARIS).strftime("%Y-%m-%d %H:%M:%S")


def from_paris(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=PARIS).timestamp()


def hms(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Frontend:
    """The site this command runs on, the lab's files, the clock."""

    def __init__(self) -> None:
        self.lab = Path(os.environ["FAKEG5K_LAB"])
        self.site = os.environ["FAKEG5K_SITE"]
        self.spec = LabSpec.load(self.lab / "platform.json")
        self.jobs = JobStore(self.lab)
        self.faults = load_faults(self.lab)
        self.user = os.environ.get("USER") or getpass.getuser()

    def job(self, text: str) -> Job | None:
        try:
            job = self.jobs.read().get(int(text))
        except ValueError:
            return None
        return job if job is not None and job.site == self.site else None


def oarsub(fe: Frontend, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="oarsub", add_help=False)
    p.add_argument("-l", "--resource", action="append", default=[])
    p.add_argument("-t", "--type", action="append", default=[])
    p.add_argument("-n", "--name", default="")
    p.add_argument("-r", "--reservation", default=None)
    for opt in ("-p", "-q", "-d", "--project", "-i", "-O", "-E", "--checkpoint"):
        p.add_argument(opt)
    p.add_argument("-k", action="store_true")
    p.add_argument("command", nargs="*")
    args, _ = p.parse_known_args(argv)
    text = ",".join(args.resource) or "walltime=1:00:00"
    try:
        request = parse_resources(text)
    except OarGrammarError as exc:
        print(exc.message)
        return OAR_GRAMMAR_EXIT
    walltime = request.walltime_s or 3600
    resources = re.sub(r",\s*walltime\s*=.*$", "", text)
    print("[ADMISSION RULE] Modify resource description with type constraints")
    if fe.site in fe.faults.refuse_sites:
        print(fe.faults.refuse_sites[fe.site] or DEFAULT_REFUSAL)
        return 1
    site = fe.spec.site(fe.site)
    now = time.time()
    start = now + fe.spec.start_delay_s
    if args.reservation:
        try:
            start = from_paris(args.reservation)
        except ValueError:
            print(f"[ERROR] syntax error for the reservation date: {args.reservation}")
            return 7
    with fe.jobs.locked() as jobs:
        live = [j for j in jobs.values() if j.state(now) in LIVE]
        busy = {n for j in live for n in j.nodes}
        taken = {s for j in live for s in j.subnets}
        try:
            alloc = allocate(site, request, busy, taken)
        except NoResources as exc:
            print(f"# ERROR: {exc}")
            return 6
        job = Job(id=JobStore.next_id(jobs), site=fe.site, owner=fe.user,
                  name=args.name, types=list(args.type), resources=resources,
                  walltime_s=walltime, submitted=now, start=start,
                  nodes=alloc.nodes, vlan=alloc.vlan, subnets=alloc.subnets,
                  command=" ".join(args.command) or "sleep 31536000",
                  never_start=fe.site in fe.faults.never_start_sites,
                  error=fe.site in fe.faults.error_sites)
        jobs[job.id] = job
    print(f"OAR_JOB_ID={job.id}")
    if args.reservation:
        print("Reservation mode : waiting validation...")
        print("Reservation valid --> OK")
    return 0


def oarstat(fe: Frontend, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="oarstat", add_help=False)
    p.add_argument("-u", "--user", nargs="?", const="")
    p.add_argument("-f", "--full", action="store_true")
    p.add_argument("-s", "--state", action="store_true")
    p.add_argument("-p", "--properties", action="store_true")
    p.add_argument("-j", "--job", default=None)
    args = p.parse_args(argv)
    now = time.time()
    if args.job is None:
        user = args.user or fe.user
        rows = [j for j in sorted(fe.jobs.read().values(), key=lambda j: j.id)
                if j.site == fe.site and j.state(now) in LIVE
                and (args.user is None or j.owner == user)]
        print("Job id     Name           User           Submission Date     S Queue")
        print("---------- -------------- -------------- ------------------- - ----------")
        for j in rows:
            print(f"{j.id:<10} {j.name[:14]:<14} {j.owner[:14]:<14} {paris(j.submitted)} "
                  f"{j.state(now)[0]} default")
        return 0
    job = fe.job(args.job)
    if job is None:
        return 0
    state = job.state(now)
    if args.state:
        print(f"{job.id}: {state}")
    elif args.properties:
        site = fe.spec.site(job.site)
        cluster_of = {n.name: c for c, n in site.nodes()}
        for n in job.nodes:
            print(f" network_address = '{n}' , host = '{n}' , cluster = '{cluster_of[n]}' , "
                  f"type = 'default' , deploy = 'YES' , virtual = 'ivt'")
    else:
        print(_full(job, state, now))
    return 0


def _full(job: Job, state: str, now: float) -> str:
    until = job.deleted_at if job.deleted_at is not None else now
    started = not job.never_start and job.start <= until
    lines = [f"Job_Id: {job.id}",
             f"    job_array_id = {job.id}",
             "    job_array_index = 1",
             f"    name = {job.name}",
             "    project = default",
             f"    owner = {job.owner}",
             f"    state = {state}",
             f"    wanted_resources = -l \"{job.resources},walltime={hms(job.walltime_s)}\"",
             f"    types = {', '.join(job.types)}",
             f"    assigned_hostnames = {'+'.join(job.nodes) if started else ''}",
             "    queue = default",
             f"    command = {job.command}",
             f"    walltime = {hms(job.walltime_s)}",
             f"    submissionTime = {paris(job.submitted)}"]
    if started:
        lines.append(f"    startTime = {paris(job.start)}")
    if job.never_start:
        lines.append("    scheduledStart = no prediction")
    else:
        lines.append(f"    scheduledStart = {paris(job.start)}")
    return "\n".join(lines)


def oardel(fe: Frontend, argv: list[str]) -> int:
    status = 0
    now = time.time()
    for text in argv:
        print(f"Deleting the job = {text} ...", end="")
        with fe.jobs.locked() as jobs:
            job = jobs.get(int(text)) if text.isdigit() else None
            if job is None or job.site != fe.site:
                print(f"\n[ERROR] Unknown job {text}")
                status = 4
                continue
            if job.state(now) not in LIVE:
                print("This job was already killed")
                continue
            job.deleted_at = now
        for n in job.nodes:
            for marker in ("deployed", "vlan"):
                (fe.lab / "nodes" / n.split(".", 1)[0] / marker).unlink(missing_ok=True)
        print("REGISTERED.")
        print(f"The job(s) [ {text} ] will be deleted in the near future.")
    return status


def oarprint(argv: list[str]) -> int:
    key = argv[0] if argv else "host"
    seen: list[str] = []
    for line in sys.stdin:
        for k, v in re.findall(r"(\w+)\s*=\s*'([^']*)'", line):
            if k == key and v not in seen:
                seen.append(v)
    for v in seen:
        print(v)
    return 0


def g5k_subnets(fe: Frontend, argv: list[str]) -> int:
    job_id = argv[argv.index("-j") + 1] if "-j" in argv else os.environ.get("OAR_JOB_ID", "")
    job = fe.job(job_id)
    if fe.faults.no_subnets:
        return 0
    if job is None or not job.subnets:
        print(f"No subnet found for job {job_id}", file=sys.stderr)
        return 1
    site = fe.spec.site(job.site)
    if "-a" in argv:
        block = site_subnet_block(site)
        print("\t".join([str(block), str(block.broadcast_address), str(block.netmask),
                         str(block.broadcast_address - 1), str(block.network_address),
                         f"dns.{site.name}.grid5000.fr", f"172.16.{site.index}.1"]))
        return 0
    for cidr in job.subnets:
        for ip in ipaddress.ip_network(cidr):
            o = ip.packed
            line = str(ip)
            if "-m" in argv:
                line += f"\t00:16:3e:{o[1]:02x}:{o[2]:02x}:{o[3]:02x}"
            print(line)
    return 0


def kavlan(fe: Frontend, argv: list[str]) -> int:
    job_id = argv[argv.index("-j") + 1] if "-j" in argv else os.environ.get("OAR_JOB_ID", "")
    job = fe.job(job_id)
    if fe.faults.no_kavlan:
        return 0
    if job is None or job.vlan is None:
        print(f"[ERROR] no vlan found for job {job_id}", file=sys.stderr)
        return 1
    if "-V" in argv:
        print(job.vlan)
    elif "-n" in argv:
        print(global_vlan_cidr(job.vlan))
    return 0


def kadeploy3(fe: Frontend, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="kadeploy3", add_help=False)
    p.add_argument("-m", "--machine", action="append", default=[])
    p.add_argument("-e", "--env-name", default=None)
    p.add_argument("-a", "--env-file", default=None)
    p.add_argument("-u", "--env-user", default=None)
    p.add_argument("--vlan", default=None)
    p.add_argument("-k", action="store_true")
    p.add_argument("-d", action="store_true")
    args, _ = p.parse_known_args(argv)
    nodes = list(dict.fromkeys(args.machine))
    if not nodes or not (args.env_name or args.env_file):
        print("kadeploy3: you must specify nodes (-m) and an environment (-e or -a)",
              file=sys.stderr)
        return 1
    did = f"D-{uuid.uuid4()}"
    print(f"Deployment #{did} started")
    print(f"Grab the key file {Path.home()}/.ssh/authorized_keys")
    print(f"Launching a deployment on {','.join(nodes)}")
    sys.stdout.flush()
    time.sleep(fe.spec.kadeploy_s)
    while fe.site in fe.faults.kadeploy_hang_sites:
        time.sleep(1)  # a hung deployment: only the client's timeout ends it
    if fe.site in fe.faults.kadeploy_garbage_sites:
        print("<html><body><h1>502 Bad Gateway</h1></body></html>")
        print("kadeploy3: the server answered something unexpected")
        return 1
    now = time.time()
    held = {n for j in fe.jobs.read().values()
            if j.site == fe.site and j.state(now) == "Running" and "deploy" in j.types
            for n in j.nodes}
    ok: list[str] = []
    ko: list[tuple[str, str]] = []
    for n in nodes:
        short = n.split(".", 1)[0]
        if n not in held:
            ko.append((n, "Deploy[SetDeploymentEnvUntrusted] error: the node is not "
                          "reserved by a running deploy job of yours"))
        elif short in fe.faults.kadeploy_fail_nodes or fe.site in fe.faults.kadeploy_fail_sites:
            ko.append((n, "Deploy[SetDeploymentEnvUntrusted] error: Not enough nodes "
                          "rebooted: timeout of 400s reached"))
        else:
            ok.append(n)
            d = fe.lab / "nodes" / short
            d.mkdir(parents=True, exist_ok=True)
            (d / "deployed").write_text(f"{args.env_name or args.env_file}\n")
            if args.vlan:
                (d / "vlan").write_text(f"{args.vlan}\n")
    print(f"Deployment #{did} done")
    print("")
    if ok:
        print("The deployment is successful on nodes")
        print("\n".join(ok))
    if ko:
        print("The deployment failed on nodes")
        print("\n".join(f"{n} ({why})" for n, why in ko))
    return 0


def apt_get(fe: Frontend, argv: list[str]) -> int:
    node = os.environ.get("DVMS_NODE", "")
    if not node:
        print("E: apt-get runs on the lab's nodes only", file=sys.stderr)
        return 100
    pkgs = [a for a in argv if not a.startswith("-") and a != "install"]
    if node in fe.faults.apt_fail_nodes:
        print("Reading package lists... Done")
        print(f"E: Unable to locate package {pkgs[0] if pkgs else '?'}")
        return 100
    with open(fe.lab / "nodes" / node / "packages", "a") as f:
        f.write("".join(f"{p}\n" for p in pkgs))
    print("Reading package lists... Done")
    print(f"lab: {node} would install {' '.join(pkgs) or 'nothing'} (fake apt-get)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    name = Path(argv[0]).name
    rest = argv[1:]
    if name not in COMMANDS and rest and rest[0] in COMMANDS:
        name, rest = rest[0], rest[1:]
    if name == "oarprint":
        return oarprint(rest)
    if name not in COMMANDS:
        print(f"fakeg5k: unknown command {name!r} (one of {', '.join(COMMANDS)})",
              file=sys.stderr)
        return 127
    fe = Frontend()
    with open(fe.lab / "commands.log", "a") as log:  # what the frontends were asked, in order
        log.write(f"{time.time():.3f} {fe.site} {shlex.join([name, *rest])}\n")
    run = {"oarsub": oarsub, "oarstat": oarstat, "oardel": oardel,
           "g5k-subnets": g5k_subnets, "kavlan": kavlan, "kadeploy3": kadeploy3,
           "apt-get": apt_get}[name]
    return run(fe, rest)


if __name__ == "__main__":
    sys.exit(main())
