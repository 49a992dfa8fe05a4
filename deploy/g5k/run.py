"""The experiment's steps in order, each idempotent, and ``run`` = all of them, resumable.

``STEPS``: plan → reserve → deploy → vms → stress → start → load → collect. Each step is
recorded in ``state.steps`` before it acts (``ExperimentState.step``: running, then done or
failed with its error) by the step itself; ``run_steps`` skips the steps already done, so a
re-run after a failure resumes at the failed step. ``run`` releases everything on a failure
or Ctrl-C unless ``keep``; ``release_all`` stops the agents, destroys the VMs and deletes
the jobs, then marks the done steps ``released`` (kept with their timings; a later ``run``
starts a new reservation); it is safe to repeat. The load events applied are logged to
``WORKDIR/loads.jsonl`` for ``collect``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.g5k.config import Experiment
from deploy.g5k.state import ExperimentState
from dvms.errors import DvmsError, InputError

__all__ = ["STEPS", "Context", "release_all", "run_step", "run_steps", "select_steps",
           "status_json"]

STEPS = ("plan", "reserve", "deploy", "vms", "stress", "start", "load", "collect")
Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Context:
    exp: Experiment
    state: ExperimentState
    base: Path
    """The experiment file's directory (relative paths in it are from there)."""
    events: str = ""
    """``load --events FILE`` (empty: ``[load].events``, else generated)."""
    out: Path | None = None
    """``collect``'s run directory (default ``WORKDIR/run``)."""
    progress: Progress = _stderr
    said: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.said.append(line)
        print(line, flush=True)


def select_steps(steps: str = "", until: str = "") -> list[str]:
    """``--steps a,b`` (a subset, run in the canonical order) and/or ``--until STEP``."""
    chosen = list(STEPS)
    if steps:
        names = [s.strip() for s in steps.split(",") if s.strip()]
        for n in names:
            if n not in STEPS:
                raise InputError(f"--steps {steps!r}: unknown step {n!r}; steps: "
                                 f"{', '.join(STEPS)}")
        chosen = [s for s in STEPS if s in names]
    if until:
        if until not in STEPS:
            raise InputError(f"--until {until!r}: must be one of {', '.join(STEPS)}")
        chosen = [s for s in chosen if STEPS.index(s) <= STEPS.index(until)]
    if not chosen:
        raise InputError("no step selected")
    return chosen


# -- the experiment's tables ---------------------------------------------------------------

def _vms_cfg(exp: Experiment) -> Any:
    from deploy.g5k.vms import parse_vms

    if "vms" not in exp.extra:
        raise InputError("[vms]: missing (the vms step needs its count, template and "
                         "backing_file)")
    return parse_vms(exp.extra["vms"])


def _hypervisor(exp: Experiment) -> Any:
    from deploy.g5k.vmdeploy import Hypervisor, hypervisor_of

    return hypervisor_of(_vms_cfg(exp)) if "vms" in exp.extra else Hypervisor()


def _nodes(ctx: Context) -> list[Any]:
    from deploy.g5k.platform import load_platform

    platform = load_platform()
    ok = ctx.state.ok_hosts()
    if not ok:
        raise DvmsError(f"{ctx.state.workdir}: no host is OK (run deploy first)")
    return [platform.node(h) for h in ok]


# -- the steps -----------------------------------------------------------------------------

def _plan(ctx: Context) -> None:
    from deploy.g5k.plan import make_plan
    from deploy.g5k.platform import load_platform

    with ctx.state.step("plan"):
        plan = make_plan(ctx.exp, load_platform())
        (ctx.state.workdir / "plan.json").write_text(json.dumps(plan.to_json(), indent=1))
    ctx.say("\n".join(plan.lines()))


def _reserve(ctx: Context) -> None:
    from deploy.g5k.plan import make_plan
    from deploy.g5k.platform import load_platform
    from deploy.g5k.reserve import reserve

    state = ctx.state
    if state.done("reserve") and state.live_jobs():
        ctx.say("reserve: already reserved, jobs " + ", ".join(
            f"{j.site}:{j.id}" for j in state.live_jobs()))
        return
    platform = load_platform()
    plan = make_plan(ctx.exp, platform)
    (state.workdir / "plan.json").write_text(json.dumps(plan.to_json(), indent=1))
    res = reserve(ctx.exp, plan, state, platform=platform, progress=ctx.progress)
    ctx.say(f"reserved {len(res.all_nodes())} nodes: " + ", ".join(
        f"{site} job {job} ({len(res.nodes[site])} nodes)" for site, job in res.jobs.items()))
    if res.vlan is not None:
        ctx.say(f"  KaVLAN {res.vlan} on {res.kavlan_site}")
    ctx.say(f"  IP/MAC pool: {len(res.pool)} pairs")


def _deploy(ctx: Context) -> None:
    from deploy.g5k.hosts import deploy_hosts
    from deploy.g5k.reserve import Resources

    ok = deploy_hosts(ctx.exp, Resources.from_state(ctx.state), ctx.state,
                      progress=ctx.progress)
    ctx.say(f"deployed {len(ok)} of {len(ctx.state.hosts)} hosts: {', '.join(ok)}")


def _vms(ctx: Context) -> None:
    from deploy.g5k.reserve import Resources
    from deploy.g5k.vmdeploy import deploy_vms

    if ctx.state.done("vms"):
        ctx.say("vms: already deployed (release to start over)")
        return
    cfg = _vms_cfg(ctx.exp)
    rs = deploy_vms(ctx.exp.seed, ctx.state, cfg, _nodes(ctx),
                    Resources.from_state(ctx.state).pool, hv=_hypervisor(ctx.exp),
                    base=ctx.base, progress=ctx.progress)
    ok = sorted(vm for vm, r in rs.vms.items() if r.state == "OK")
    ctx.say(f"vms: {len(ok)} of {len(rs.vms)} OK")


def _vcpus(ctx: Context) -> dict[str, int]:
    from deploy.g5k.vms import specs_of

    return {v.id: v.vcpus for v in specs_of(_vms_cfg(ctx.exp), ctx.base)}


def _stress(ctx: Context) -> None:
    from deploy.g5k.inject import start_stress
    from deploy.g5k.stress import StressConfig
    from dvms.config import parse_section

    if ctx.state.done("stress"):
        ctx.say("stress: already running (release to start over)")
        return
    cfg = parse_section("stress", StressConfig, ctx.exp.extra.get("stress", {}))
    vms = _vms_cfg(ctx.exp)
    with ctx.state.step("stress"):
        rs = start_stress(ctx.state.workdir, cfg, min_vms_ratio=vms.min_vms_ratio,
                          vcpus=_vcpus(ctx), progress=ctx.progress)
    ok = sum(1 for r in rs.vms.values() if r.state == "OK")
    ctx.say(f"stress: running in {ok} of {len(rs.vms)} VMs, capped at "
            f"{cfg.initial_percent:g} %")


def _start(ctx: Context) -> None:
    from deploy.g5k.agents import start_agents

    nodes = _nodes(ctx)
    with ctx.state.step("start"):
        records = start_agents(ctx.exp, ctx.state, nodes)
    ctx.say("agents: " + ", ".join(f"{n} {r.listen} (pid {r.pid})"
                                   for n, r in sorted(records.items())))


def _events(ctx: Context) -> tuple[list[Any], str]:
    from deploy.g5k.load import LoadConfig, generate, read_events
    from deploy.g5k.vmdeploy import VmsRun
    from dvms.config import parse_section

    cfg = parse_section("load", LoadConfig, ctx.exp.extra.get("load", {}))
    source = ctx.events or cfg.events
    if source:
        path = Path(source).expanduser()
        path = path if path.is_absolute() or ctx.events else ctx.base / path
        return read_events(path), str(path)
    rs = VmsRun.load(ctx.state.workdir)
    if rs is None:
        raise DvmsError(f"{ctx.state.workdir}: no VM recorded (run the vms step first)")
    ok = [vm for vm, r in rs.vms.items() if r.state == "OK"]
    vcpus = _vcpus(ctx)
    return generate(ok, cfg, ctx.exp.seed, {vm: vcpus.get(vm, 1) for vm in ok}), "generated"


def _load(ctx: Context) -> None:
    from deploy.g5k.collect import LOADS
    from deploy.g5k.inject import inject_load

    events, source = _events(ctx)
    log = ctx.state.workdir / LOADS

    def applied(e: Any, rec: Any) -> None:
        with log.open("a") as f:
            f.write(json.dumps({"t_unix": round(time.time(), 6), "host": rec.host.split(".")[0],
                                "vm": e.vm, "load": e.load}) + "\n")

    with ctx.state.step("load"):
        dashboard = _dashboard(ctx)
        try:
            replay = inject_load(ctx.state.workdir, events, source=source,
                                 vcpus=_vcpus(ctx), progress=ctx.progress, applied=applied)
        finally:
            if dashboard is not None:
                dashboard()
    ctx.say(f"load: {replay.applied} of {len(events)} events applied ({source}), "
            f"{len(replay.failures)} failed, at most {replay.max_late_s:.1f} s late")


def _dashboard(ctx: Context) -> Callable[[], None] | None:
    if not ctx.exp.agents.dashboard:
        return None
    from deploy.g5k.live import serve_agents

    return serve_agents(ctx.state, ctx.exp.agents.dashboard_port, progress=ctx.say)


def _collect(ctx: Context) -> None:
    from deploy.g5k.agents import stop_agents
    from deploy.g5k.collect import collect_run

    out = ctx.out or ctx.state.workdir / "run"
    with ctx.state.step("collect"):
        unreachable = stop_agents(ctx.exp, ctx.state)
        if unreachable:
            ctx.progress(f"collect: could not stop the agents of {', '.join(unreachable)}")
        spec = {"name": ctx.exp.name, "seed": ctx.exp.seed,
                "sites": sorted({h.site for h in ctx.state.hosts.values()}),
                "hosts": ctx.state.ok_hosts()}
        summary = collect_run(ctx.state, out, hv=_hypervisor(ctx.exp), spec=spec,
                              progress=ctx.progress)
    ctx.say(f"collect: run in {out} ({summary['status']}; {summary['migrations']} "
            f"migrations, {summary['violations']} violations, {summary['vms_lost']} VMs lost)")


_ACTIONS: dict[str, Callable[[Context], None]] = {
    "plan": _plan, "reserve": _reserve, "deploy": _deploy, "vms": _vms, "stress": _stress,
    "start": _start, "load": _load, "collect": _collect}


def run_step(ctx: Context, step: str) -> None:
    _ACTIONS[step](ctx)


def _done(state: ExperimentState, step: str) -> bool:
    if step == "plan":  # a reservation forgets the plan's record; it was planned
        return state.done("plan") or state.done("reserve")
    return state.done(step)


def run_steps(ctx: Context, steps: Sequence[str], *, keep: bool = False) -> None:
    """The steps not done yet, in order; on a failure or Ctrl-C, ``release_all`` unless
    ``keep`` (the state is kept either way)."""
    try:
        for step in steps:
            if _done(ctx.state, step):
                ctx.say(f"{step}: done before, skipped")
                continue
            t0 = time.monotonic()
            run_step(ctx, step)
            ctx.say(f"{step}: {time.monotonic() - t0:.1f} s")
    except BaseException as exc:
        if not keep:
            what = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            ctx.progress(f"run {what}: releasing (use --keep to keep the reservation)")
            try:
                release_all(ctx)
            except Exception as again:  # the first failure is the one reported
                ctx.progress(f"release failed too: {again}")
        raise


def release_all(ctx: Context) -> list[str]:
    """Stop the agents, destroy the VMs, delete the jobs, forget the steps; returns what
    was done (empty: nothing left). Hosts that do not answer are an error naming them."""
    from deploy.g5k.agents import load_agents, stop_agents
    from deploy.g5k.reserve import release
    from deploy.g5k.vmdeploy import VmsRun, destroy_vms

    state, done = ctx.state, []
    if any(r.state != "stopped" for r in load_agents(state.workdir).values()):
        unreachable = stop_agents(ctx.exp, state)
        if unreachable:
            raise DvmsError(f"host {', '.join(unreachable)}: agent not stopped (release again)")
        done.append("agents stopped")
    rs = VmsRun.load(state.workdir)
    if rs is not None and "vms" in ctx.exp.extra:
        _destroy_moved(ctx, rs)
        unreachable = destroy_vms(state, _vms_cfg(ctx.exp), _hypervisor(ctx.exp))
        if unreachable:
            raise DvmsError(f"host {', '.join(unreachable)}: VMs not destroyed "
                            "(release again)")
        done.append(f"{len(rs.vms)} VMs destroyed")
    deleted = release(ctx.exp, state)
    if deleted:
        done.append("jobs deleted: " + ", ".join(deleted))
    if done:  # the records stay (timings), but a later run redoes every step
        for step in STEPS:
            if state.steps.get(step, {}).get("status") == "done":
                state.steps[step]["status"] = "released"
        state.save()
    return done


def _destroy_moved(ctx: Context, rs: Any) -> None:
    """Destroy the VMs the agents migrated where they run now (``destroy_vms`` then cleans
    the hosts ``vms.json`` has them on: their domain definitions and disks there)."""
    from deploy.g5k import session
    from deploy.g5k.collect import locate_vms
    from deploy.g5k.domains import destroy_command

    hv, cfg = _hypervisor(ctx.exp), _vms_cfg(ctx.exp)
    where, _ = locate_vms(ctx.state.ok_hosts(), hv)
    moved: dict[str, list[str]] = {}
    for vm, host in where.items():
        if vm in rs.vms and host != rs.vms[vm].host:
            moved.setdefault(host, []).append(vm)
    for host, vms in moved.items():
        r = session.run([host], destroy_command(vms, cfg.disk_dir, hv.uri, hv.virsh),
                        timeout_s=300)[0]
        if r.status != 0:
            raise DvmsError(f"host {host}: VMs not destroyed (exit {r.status}; release again)")


def status_json(state: ExperimentState) -> dict[str, Any]:
    """``dvms g5k status``: the state's JSON with the VMs OK/KO and the agents."""
    from deploy.g5k.agents import load_agents
    from deploy.g5k.vmdeploy import VmsRun

    out = state.to_json()
    rs = VmsRun.load(state.workdir)
    if rs is not None:
        out["vms"] = {
            "ok": {vm: {"host": r.host, "ip": r.ip} for vm, r in rs.vms.items()
                   if r.state == "OK"},
            "ko": {vm: {"host": r.host, "step": r.step, "reason": r.reason}
                   for vm, r in rs.vms.items() if r.state == "KO"},
            "other": {vm: r.state for vm, r in rs.vms.items() if r.state not in ("OK", "KO")},
            "dropped": rs.dropped}
    records = load_agents(state.workdir)
    if records:
        out["agents"] = {n: {"host": r.host, "listen": r.listen, "pid": r.pid,
                             "state": r.state} for n, r in records.items()}
    return out
