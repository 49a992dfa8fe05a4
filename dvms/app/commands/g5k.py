"""``dvms g5k``: plan, reserve and deploy Grid'5000 nodes through execo; a local lab.

    dvms g5k plan EXP.toml [--json]      # slot, per-site counts, OAR lines; no side effect
    dvms g5k reserve EXP.toml            # all-or-nothing oarsub per site, wait, collect
    dvms g5k deploy EXP.toml             # kadeploy (KO hosts dropped), libvirt
    dvms g5k vms EXP.toml                # disks, domains, liveness, redistribution
    dvms g5k stress EXP.toml             # the stress program in every VM, cpulimit'ed
    dvms g5k start EXP.toml              # one dvms agent per host (over ssh)
    dvms g5k load EXP.toml [--events F]  # apply load events (blocking; Ctrl-C keeps state)
    dvms g5k collect EXP.toml [--out D]  # stop the agents, one run directory, power
    dvms g5k run EXP.toml [--keep]       # every step in order, resumes; releases on failure
    dvms g5k status [EXP.toml]           # JSON: jobs, hosts and VMs OK/KO, agents, timings
    dvms g5k release EXP.toml            # agents, VMs, then oardel (idempotent)
    dvms g5k lab up [--sites N] [--nodes 2,3] [--platform FILE] [--libvirt] | down | status
    dvms g5k lab fault NAME VALUE        # flip a fault switch of a running lab

``--workdir`` holds the experiment's state (default /var/tmp/dvms-g5k) or the lab
(default /var/tmp/dvms-g5k-lab). See docs/g5k.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from dvms.errors import InputError

__all__ = ["register", "run"]

DEFAULT_WORKDIR = "/var/tmp/dvms-g5k"
DEFAULT_LAB = "/var/tmp/dvms-g5k-lab"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "g5k", help="Grid'5000: plan, reserve, deploy, release (execo); a local lab",
        description="Reserve and deploy Grid'5000 nodes through execo, or rehearse on a "
                    "local lab of stand-ins. See docs/g5k.md.")
    parser.add_argument("--workdir", type=Path, default=None,
                        help=f"experiment state (default {DEFAULT_WORKDIR}; "
                             f"lab: {DEFAULT_LAB})")
    parser.add_argument("--execo-log", default="CRITICAL",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                        help="level of execo's own log on the terminal (default CRITICAL: "
                             "dvms reports failures itself, in one line; WORKDIR/execo.log "
                             "keeps its warnings)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p_plan = sub.add_parser("plan", help="slot, per-site counts and OAR lines (no side effect)")
    p_plan.add_argument("--json", action="store_true", help="Funk-compatible JSON")
    p_res = sub.add_parser("reserve", help="submit all-or-nothing, wait for the start")
    p_dep = sub.add_parser("deploy", help="kadeploy the reserved nodes, drop KO ones")
    p_vms = sub.add_parser("vms", help="create and start the VMs, check them on port 22")
    p_str = sub.add_parser("stress", help="start the stress program in every OK VM")
    p_start = sub.add_parser("start", help="start one dvms agent per OK host")
    p_load = sub.add_parser("load", help="apply load events to the VMs (blocking)")
    p_load.add_argument("--events", default="", metavar="FILE",
                        help="JSONL or the talk's XML (default [load].events, else generated)")
    p_col = sub.add_parser("collect", help="stop the agents; trace, summary, power, VMs")
    p_col.add_argument("--out", type=Path, default=None, help="run directory "
                                                             "(default WORKDIR/run)")
    p_run = sub.add_parser("run", help="every step in order (resumes after a failure)")
    p_run.add_argument("--keep", action="store_true",
                       help="keep the reservation (jobs, VMs, agents) on failure or Ctrl-C")
    p_run.add_argument("--steps", default="", help="only these steps, e.g. "
                                                   "plan,reserve,deploy (canonical order)")
    p_run.add_argument("--until", default="", metavar="STEP", help="stop after STEP")
    p_run.add_argument("--events", default="", metavar="FILE", help="as for load")
    p_run.add_argument("--out", type=Path, default=None, help="as for collect")
    p_rel = sub.add_parser("release", help="stop agents, destroy VMs, delete the jobs "
                                           "(safe to repeat)")
    p_st = sub.add_parser("status", help="jobs, hosts and VMs OK/KO, agents, timings (JSON)")
    steps = (p_vms, p_str, p_start, p_load, p_col, p_run)
    for p in (p_plan, p_res, p_dep, p_rel, *steps):
        p.add_argument("experiment", type=Path, metavar="EXP.toml")
    p_st.add_argument("experiment", type=Path, metavar="EXP.toml", nargs="?")
    p_lab = sub.add_parser("lab", help="local stand-ins of Grid'5000 (up, down, status)")
    lab_sub = p_lab.add_subparsers(dest="lab_action", metavar="LAB_ACTION", required=True)
    p_up = lab_sub.add_parser("up", help="start a lab")
    p_up.add_argument("--sites", type=int, default=2)
    p_up.add_argument("--nodes", default="2,3", help="nodes per site, e.g. 2,3 (default)")
    p_up.add_argument("--platform", type=Path, default=None,
                      help="platform description (JSON, the shape of LAB/platform.json) "
                           "instead of --sites/--nodes")
    p_up.add_argument("--start-delay-s", type=float, default=None,
                      help="seconds between a job's submission and its start (default 2, "
                           "or the platform file's)")
    p_up.add_argument("--libvirt", action="store_true",
                      help="tier F: every node a real hypervisor (netns + own libvirtd, one "
                           "L2 over the sites, guest image v2); needs root")
    p_up.add_argument("--prefix", default="g5klab",
                      help="--libvirt: namespace/cgroup prefix (default g5klab)")
    p_up.add_argument("--delay-ms", type=float, default=5.0,
                      help="--libvirt: one-way delay between sites (default 5 ms)")
    p_down = lab_sub.add_parser("down", help="stop the lab (safe to repeat)")
    p_lst = lab_sub.add_parser("status", help="the lab as JSON")
    p_fault = lab_sub.add_parser("fault", help="set a fault switch (see docs/g5k.md)")
    p_fault.add_argument("name")
    p_fault.add_argument("value")
    subs = (p_plan, p_res, p_dep, p_rel, p_st, p_lab, p_up, p_down, p_lst, p_fault, *steps)
    for p in subs:
        p.add_argument("--workdir", type=Path, default=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def _nodes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"--nodes {text!r}: expected counts separated by commas, "
                         "e.g. 2,3") from None


def _lab(args: argparse.Namespace) -> int:
    from deploy.g5k.lab import lab
    from deploy.g5k.lab.faults import set_fault
    from deploy.g5k.lab.spec import LabSpec, default_spec

    workdir = Path(args.workdir or DEFAULT_LAB)
    if args.lab_action == "up":
        if args.platform is not None:
            spec = LabSpec.load(args.platform)
        else:
            spec = default_spec(args.sites, _nodes(args.nodes))
        if args.start_delay_s is not None:
            if not 0 <= args.start_delay_s <= 3600:
                raise InputError(f"--start-delay-s {args.start_delay_s}: expected 0..3600")
            spec = LabSpec(sites=spec.sites, start_delay_s=args.start_delay_s,
                           kadeploy_s=spec.kadeploy_s)
        state = lab.up(spec, workdir, libvirt=args.libvirt, prefix=args.prefix,
                       delay_ms=args.delay_ms)
        print(f"lab up in {state.workdir}: API {state.api_uri}, ssh config {state.ssh_config}")
        for site in spec.sites:
            print(f"  {site.frontend}: " + ", ".join(
                f"{c.name} x{len(c.nodes)}" for c in site.clusters))
        print(f"experiment's [platform] table: {state.workdir / 'platform.toml'}; "
              f"example: {state.workdir / 'experiment.toml'}")
    elif args.lab_action == "down":
        removed = lab.down(workdir)
        print("stopped: " + (", ".join(removed) if removed else "nothing (no lab)"))
    elif args.lab_action == "status":
        print(json.dumps(lab.status(workdir), indent=1, sort_keys=True))
    else:
        if lab.LabState.load(workdir.resolve()) is None:
            raise InputError(f"no lab in {workdir} (run: dvms g5k lab up)")
        faults = set_fault(workdir.resolve(), args.name, args.value)
        print(json.dumps({args.name: getattr(faults, args.name)}))
    return 0


def _session(args: argparse.Namespace) -> tuple[Any, Any]:
    from deploy.g5k import session
    from deploy.g5k.config import load_experiment
    from deploy.g5k.state import ExperimentState

    exp = load_experiment(args.experiment)
    workdir = Path(args.workdir or DEFAULT_WORKDIR)
    session.configure(exp, workdir)
    _execo_log(args.execo_log, workdir)
    return exp, ExperimentState.open(workdir, exp.name)


def _execo_log(level: str, workdir: Path) -> None:
    """execo's log (and exceptions of its threads) to ``WORKDIR/execo.log``; on the terminal
    (execo writes to stdout) only from ``level`` up, so ``--json`` stays JSON and failures
    stay one line of ours."""
    import logging
    import threading
    import traceback

    from execo.log import logger, logger_handler

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "execo.log"
    file_handler = logging.FileHandler(path)
    file_handler.setLevel(logging.WARNING)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(file_handler)
    logger_handler.setLevel(getattr(logging, level))
    logger.setLevel(min(logging.WARNING, getattr(logging, level)))

    def hook(args: threading.ExceptHookArgs) -> None:
        with open(path, "a") as f:
            f.write(f"exception in thread {args.thread.name if args.thread else '?'}:\n")
            f.write("".join(traceback.format_exception(args.exc_type, args.exc_value,
                                                       args.exc_traceback)))

    threading.excepthook = hook


def run(args: argparse.Namespace) -> int:
    if args.action == "lab":
        return _lab(args)
    if args.action == "status":
        from deploy.g5k.state import ExperimentState

        workdir = Path(args.workdir or DEFAULT_WORKDIR).resolve()
        from deploy.g5k.run import status_json

        state = ExperimentState.load(workdir)
        if state is None:
            raise InputError(f"no experiment in {workdir} (run: dvms g5k reserve EXP.toml)")
        print(json.dumps(status_json(state), indent=1, sort_keys=True))
        return 0
    if args.action == "plan":
        from deploy.g5k import session
        from deploy.g5k.config import load_experiment
        from deploy.g5k.plan import make_plan
        from deploy.g5k.platform import load_platform

        exp = load_experiment(args.experiment)
        workdir = Path(args.workdir or DEFAULT_WORKDIR)
        session.configure(exp, workdir)
        _execo_log(args.execo_log, workdir)
        plan = make_plan(exp, load_platform())
        if args.json:
            print(json.dumps(plan.to_json(), indent=1, sort_keys=True))
        else:
            print("\n".join(plan.lines()))
        return 0
    t0 = time.monotonic()
    exp, state = _session(args)
    if args.action in STEP_ACTIONS:
        _steps(args, exp, state)
    elif args.action == "reserve":
        _reserve(exp, state)
    elif args.action == "deploy":
        from deploy.g5k.hosts import deploy_hosts
        from deploy.g5k.reserve import Resources

        ok = deploy_hosts(exp, Resources.from_state(state), state)
        ko = [h for h in state.hosts.values() if h.state == "KO"]
        print(f"deployed {len(ok)} of {len(state.hosts)} hosts: {', '.join(ok)}")
        for h in ko:
            print(f"  KO {h.name} ({h.step}: {h.reason})")
    elif args.action == "release":
        from deploy.g5k.run import Context, release_all

        done = release_all(Context(exp, state, args.experiment.resolve().parent))
        print("released: " + ("; ".join(done) if done else "nothing (no agent, VM or job)"))
    print(f"{args.action}: {time.monotonic() - t0:.1f} s")
    return 0


STEP_ACTIONS = ("vms", "stress", "start", "load", "collect", "run")


def _steps(args: argparse.Namespace, exp: Any, state: Any) -> None:
    from deploy.g5k.run import Context, run_step, run_steps, select_steps

    ctx = Context(exp, state, args.experiment.resolve().parent,
                  events=getattr(args, "events", ""), out=getattr(args, "out", None))
    if args.action == "run":
        run_steps(ctx, select_steps(args.steps, args.until), keep=args.keep)
    else:
        run_step(ctx, args.action)


def _reserve(exp: Any, state: Any) -> None:
    from deploy.g5k.plan import make_plan
    from deploy.g5k.platform import load_platform
    from deploy.g5k.reserve import reserve

    if state.done("reserve") and state.live_jobs():
        jobs = ", ".join(f"{j.site}:{j.id}" for j in state.live_jobs())
        print(f"already reserved in {state.workdir}: jobs {jobs}")
        return
    platform = load_platform()
    plan = make_plan(exp, platform)
    (state.workdir / "plan.json").write_text(json.dumps(plan.to_json(), indent=1))
    res = reserve(exp, plan, state, platform=platform)
    print(f"reserved {len(res.all_nodes())} nodes: " + ", ".join(
        f"{site} job {job} ({len(res.nodes[site])} nodes)" for site, job in res.jobs.items()))
    if res.vlan is not None:
        print(f"  KaVLAN {res.vlan} on {res.kavlan_site}")
    if res.subnets:
        print(f"  subnets: {', '.join(res.subnets)}")
    print(f"  IP/MAC pool: {len(res.pool)} pairs ({state.workdir / 'pool.json'})")
