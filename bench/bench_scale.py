"""Scale benchmark (issue 16): the growth curve of the DVMS + LBO + Vivaldi world.

``main(quick)`` (``python -m bench.run scale``, part of ``make bench``) runs the default
scenario with DVMS over LBO and Vivaldi, 10 VMs per host, 3,600 simulated s, at 1,000,
3,000, 10,000 and 30,000 hosts (100,000 too with ``DVMS_BENCH_100K=1`` or
``python -m bench.run --100k scale``; quick: 1,000 hosts, 600 s). Each point runs in a
fresh child process and reports wall and CPU time (of ``simulate`` and of the whole
process), simpy events processed, trace events, messages by type, peak RSS, CPU per
event, the violation duration and the VMs lost; the figures carry the machine, the
commit and the command, and the load average before and after (the machine is shared:
trust CPU time and ratios over wall time).

``python -m bench.bench_scale --hosts 100000`` runs one point;
``python -m bench.bench_scale curve --hosts 1000,3000 --jobs 2 --out F.json`` a curve with
points side by side;
``python -m bench.bench_scale floor`` measures the event engine's own per-event cost at
1,000, 10,000 and 100,000 nodes (the runtime benchmark's gossip, same message count:
what any model pays before its own work; part of ``main``);
``python -m bench.bench_scale profile --hosts 10000`` runs one point under py-spy
(``pip install py-spy``; native stacks, so that the compiled modules' functions show by
name; ``--python-only`` for Python frames alone) and writes a text summary of the top
frames by own and total share to ``bench/results/profile-<hosts>.txt`` (``--out`` to
choose).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dvms.compiled import MODULES, compiled_modules
from dvms.provenance import provenance

__all__ = ["HOSTS", "curve", "floor", "machine", "main", "point", "profile", "summarise_profile"]

HOSTS = (1_000, 3_000, 10_000, 30_000)
"""Growth-curve points (hosts) of ``make bench``; 100,000 is opt-in (``DVMS_BENCH_100K``)."""
BIG = 100_000
DURATION_S = 3600.0
ENV_100K = "DVMS_BENCH_100K"
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TOP_FRAMES = 40
FLOOR_HOSTS = (1_000, 10_000, 100_000)
FLOOR_DELIVERIES = 3_000_000
_COMPILED_SOURCES = {Path(m).stem: m for m in MODULES}
"""mypyc's short module names (``lbo``) → their sources (``dvms/overlay/lbo.py``)."""


def overrides(hosts: int, duration: float, seed: int) -> dict[str, Any]:
    """The scenario of a point: default scenario, DVMS + LBO + Vivaldi, ``hosts`` hosts."""
    return {
        "run.seed": seed,
        "run.duration_s": duration,
        "infrastructure.hosts": hosts,
        "infrastructure.vms_per_host": 10,
        "scheduler.name": "dvms",
        "overlay.name": "lbo",
        "vivaldi.enabled": True,
        "trace.compress": True,
    }


def machine() -> dict[str, Any]:
    """Where the figures were measured: CPU model, cores, memory, load, provenance."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024**2, 1),
        "loadavg": list(os.getloadavg()),
        **provenance(),
    }


def _child(hosts: int, duration: float, seed: int) -> dict[str, Any]:
    import simpy

    from sim.run import simulate
    from sim.scenario import load_scenario

    scenario = load_scenario(None, overrides(hosts, duration, seed))
    env = simpy.Environment()
    cpu0 = time.process_time()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        s = simulate(scenario, tmp, env=env)
    run_cpu = time.process_time() - cpu0
    simpy_events = next(env._eid)  # type: ignore[attr-defined]  # events scheduled so far
    usage = resource.getrusage(resource.RUSAGE_SELF)
    messages: dict[str, int] = s["messages"]
    processed = round(s["events_per_wall_s"] * s["wall_s"])
    return {
        "hosts": s["hosts"],
        "vms": s["vms"],
        "duration_s": s["duration_s"],
        "wall_s": round(s["wall_s"], 1),
        "cpu_s": round(run_cpu, 1),
        "process_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "simpy_events": simpy_events,
        "trace_events": s["events"],
        "processed": processed,
        "cpu_us_per_simpy_event": round(1e6 * run_cpu / max(1, simpy_events), 2),
        "cpu_us_per_processed": round(1e6 * run_cpu / max(1, processed), 2),
        "messages_total": sum(messages.values()),
        "messages_by_type": messages,
        "violations": s["violations"],
        "violation_duration_mean_s": round(s["violation_duration_mean_s"], 2),
        "violation_duration_sd_s": round(s["violation_duration_sd_s"], 2),
        "migrations": s["migrations"],
        "vivaldi_median_error": s["vivaldi_median_error"],
        "vms_lost": s["vms_lost"],
    }


def _child_argv(hosts: int, duration: float, seed: int) -> list[str]:
    return [sys.executable, "-m", "bench.bench_scale", "--child", str(hosts),
            "--duration", str(duration), "--seed", str(seed)]


def _last_json(stdout: str) -> dict[str, Any]:
    line = [x for x in stdout.splitlines() if x.startswith("{")][-1]
    figures: dict[str, Any] = json.loads(line)
    return figures


def point(hosts: int, duration: float = DURATION_S, seed: int = 1) -> dict[str, Any]:
    """One growth-curve point, in a fresh child process (``process_wall_s``: its lifetime)."""
    started = time.perf_counter()
    done = subprocess.run(
        _child_argv(hosts, duration, seed), check=True, capture_output=True, text=True, cwd=ROOT
    )
    figures = _last_json(done.stdout)
    figures["process_wall_s"] = round(time.perf_counter() - started, 1)
    return figures


def _frame(raw: str) -> str:
    """``function (path:line)`` → ``function (module path)`` (lines merged); a mypyc
    function ``CPyDef_lbo___LboOverlay___observe (__native_dvms.c:…)`` → ``LboOverlay.observe
    (dvms/overlay/lbo.py, compiled)``."""
    name, _, where = raw.partition(" (")
    path = where.rsplit(":", 1)[0] if where else ""
    for prefix in ("CPyDef_", "CPyPy_"):
        if name.startswith(prefix) and "__native_" in path:
            module, _, qualname = name.removeprefix(prefix).partition("___")
            source = _COMPILED_SOURCES.get(module, module)
            return f"{qualname.replace('___', '.')} ({source}, compiled)"
    for marker in ("site-packages/", str(ROOT) + "/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})" if path else name


def _named(frame: str) -> bool:
    """Whether a summarised frame is a Python or a compiled function of ours (not C)."""
    return frame.endswith((".py)", ", compiled)"))


def summarise_profile(raw_text: str, title: str, top: int = TOP_FRAMES) -> str:
    """Text summary of py-spy's ``--format raw`` stacks: top frames by own and total share.

    With native stacks (``py-spy --native``), a C leaf's time counts as own time of its
    nearest Python or compiled caller, and the C leaves get a table of their own."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    native: Counter[str] = Counter()
    samples = 0
    for line in raw_text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if "(" in f]
        named = [f for f in frames if _named(f)]
        if not named:
            continue
        samples += n
        own[named[-1]] += n
        if not _named(frames[-1]):
            native[frames[-1]] += n
        for frame in set(named):
            total[frame] += n
    lines = [title, f"samples: {samples}", "", f"top {top} by own share (self time):"]
    lines += [f"  {100 * n / samples:5.1f} %  {f}" for f, n in own.most_common(top)]
    lines += ["", f"top {top} by total share (self + callees):"]
    lines += [f"  {100 * n / samples:5.1f} %  {f}" for f, n in total.most_common(top)]
    if native:
        lines += ["", f"top {top} C leaves (native stacks; counted above as own time of "
                  "their caller; refcount lines are often inlined code of compiled callers):"]
        lines += [f"  {100 * n / samples:5.1f} %  {f}" for f, n in native.most_common(top)]
    return "\n".join(lines) + "\n"


def profile(hosts: int, out: Path, duration: float = DURATION_S, seed: int = 1,
            rate: int = 50, native: bool = True) -> dict[str, Any]:
    """Run one point under py-spy and write the text summary to ``out``; its figures.

    ``native``: record C stacks too (``py-spy --native``), which is how the compiled
    modules' functions appear by name (without it their time is their Python caller's)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("bench_scale: py-spy not found (pip install py-spy)")
    with tempfile.TemporaryDirectory(prefix="bench-scale-spy-") as tmp:
        raw = Path(tmp) / "stacks.txt"
        # native stacks need the process paused at each sample (py-spy refuses
        # --native with --nonblocking): at 50 Hz that costs little
        command = [spy, "record", "--native" if native else "--nonblocking",
                   "--format", "raw", "-r", str(rate), "-o", str(raw), "--",
                   *_child_argv(hosts, duration, seed)]
        started = time.perf_counter()
        done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - started
        figures = _last_json(done.stdout)  # py-spy prints its own lines after the child's
        raw_text = raw.read_text()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(profile_summary(raw_text, figures, hosts, duration, rate, native, wall))
    return figures


def profile_summary(raw_text: str, figures: dict[str, Any], hosts: int, duration: float,
                    rate: int, native: bool, wall: float) -> str:
    """The committed text of a profile: what ran, where, and ``summarise_profile``."""
    info = machine()
    flags = "--native" if native else "--nonblocking"
    title = "\n".join([
        f"py-spy profile ({flags}, {rate} Hz): {hosts} hosts x 10 VMs x {duration:g} s, "
        "DVMS + LBO + Vivaldi (default scenario)",
        f"command: python -m bench.bench_scale profile --hosts {hosts} --duration {duration:g}"
        + ("" if native else " --python-only"),
        f"commit: {info['commit']}  compiled modules: {len(compiled_modules())}/{len(MODULES)}"
        f"  machine: {info['cpu']}, {info['cores']} cores (shared)",
        f"run: wall {figures['wall_s']} s (under py-spy, {wall:.0f} s with start-up), "
        f"cpu {figures['cpu_s']} s, {figures['simpy_events']} simpy events, "
        f"{figures['messages_total']} messages, peak RSS {figures['peak_rss_mib']} MiB",
    ])
    return summarise_profile(raw_text, title)


def floor(hosts: tuple[int, ...] = FLOOR_HOSTS, deliveries: int = FLOOR_DELIVERIES,
          seed: int = 1) -> dict[str, Any]:
    """The event engine's own cost as the world grows: the runtime benchmark's gossip
    (3 services per node, a message a second each, trivial handlers; ``bench_runtime``),
    hand-written simpy and ``SimRuntime``, with the same number of messages at every size.

    What a simulation of ``hosts`` hosts pays per event before any model work: the heap of
    pending events and the world's memory grow with it."""
    points: dict[str, dict[str, Any]] = {}
    for n in hosts:
        seconds = deliveries / (3 * n)
        point: dict[str, Any] = {"nodes": n, "virtual_s": round(seconds, 3)}
        for phase in ("baseline", "sim"):
            done = subprocess.run(
                [sys.executable, "-m", "bench.bench_runtime", "--phase", phase,
                 "--nodes", str(n), "--seconds", str(seconds), "--seed", str(seed)],
                check=True, capture_output=True, text=True, cwd=ROOT,
            )  # fmt: skip
            run = _last_json(done.stdout)
            point[phase] = {
                "cpu_s": round(run["cpu_s"], 2),
                "events": run["events"],
                "delivered": run["delivered"],
                "cpu_us_per_event": round(1e6 * run["cpu_s"] / run["events"], 2),
                "peak_rss_mib": round(run["peak_rss_mib"], 1),
            }
        points[str(n)] = point
    first = points[str(min(hosts))]
    return {
        "command": "python -m bench.bench_scale floor",
        "what": f"bench_runtime's gossip, {deliveries:,} messages at every size, trivial "
        "handlers: the per-event cost of the engine alone (baseline: hand-written simpy)",
        "points": points,
        "per_event_vs_first": {
            phase: {
                n: round(p[phase]["cpu_us_per_event"] / first[phase]["cpu_us_per_event"], 2)
                for n, p in points.items()
            }
            for phase in ("baseline", "sim")
        },
    }


def _ratios(points: dict[str, dict[str, Any]]) -> dict[str, float]:
    first = points[min(points, key=int)]
    return {
        n: round(p["cpu_us_per_simpy_event"] / first["cpu_us_per_simpy_event"], 3)
        for n, p in points.items()
    }


def curve(hosts: tuple[int, ...], duration: float = DURATION_S, seed: int = 1,
          jobs: int = 1, command: str = "") -> dict[str, Any]:
    """The growth curve over ``hosts``: each point a fresh child, ``jobs`` at a time
    (points side by side share the machine: their CPU time holds, their wall time grows)."""
    before = machine()
    if jobs > 1:
        with ThreadPoolExecutor(max_workers=jobs) as pool:  # biggest first: it sets the end
            futures = {n: pool.submit(point, n, duration, seed) for n in sorted(hosts)[::-1]}
            done = {n: futures[n].result() for n in hosts}
    else:
        done = {n: point(n, duration, seed) for n in hosts}
    points = {str(n): done[n] for n in sorted(hosts)}
    return {
        "command": command,
        "scenario": f"default, DVMS + LBO + Vivaldi, 10 VMs per host, seed {seed}",
        "duration_s": duration,
        "parallel_points": jobs,
        "machine": {**before, "loadavg_after": list(os.getloadavg())},
        "note": "shared 2-core machine: cpu_s (the child's own CPU time of simulate) is the "
        "figure to compare; wall_s includes waiting for the CPU",
        "points": points,
        "cpu_per_simpy_event_vs_first": _ratios(points),
    }


def main(quick: bool = False) -> dict[str, Any]:
    big = os.environ.get(ENV_100K, "") not in ("", "0")
    hosts = (1_000,) if quick else HOSTS + ((BIG,) if big else ())
    command = "python -m bench.run scale" + (" --quick" if quick else "")
    if big:
        command = f"{ENV_100K}=1 {command}"
    figures = curve(hosts, 600.0 if quick else DURATION_S, command=command)
    figures["engine_floor"] = floor((100, 1_000) if quick else FLOOR_HOSTS,
                                    30_000 if quick else FLOOR_DELIVERIES)  # fmt: skip
    return figures


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale")
    parser.add_argument("what", nargs="?", choices=("point", "profile", "curve", "floor"),
                        default="point")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hosts", help="hosts (default 10000; curve and floor: a comma list, "
                        "floor's default 1000,10000,100000)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1, help="curve: points side by side")
    parser.add_argument("--duration", type=float, default=DURATION_S)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--python-only", action="store_true",
                        help="profile: Python stacks only (no --native: compiled functions "
                        "then count as their Python caller)")
    parser.add_argument("--out", type=Path, help="profile: the summary (default bench/results/"
                        "profile-<hosts/1000>k.txt); curve: a JSON file")
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(_child(args.child, args.duration, args.seed)))
        return 0
    hosts = tuple(int(h) for h in (args.hosts or "10000").split(","))
    if args.what == "floor":
        figures = floor(hosts if args.hosts else FLOOR_HOSTS)
    elif args.what == "curve":
        command = "python -m bench.bench_scale " + " ".join(argv)
        figures = curve(hosts, args.duration, args.seed, args.jobs, command)
        if args.out:
            args.out.write_text(json.dumps(figures, indent=2) + "\n")
    elif args.what == "profile":
        out = args.out or RESULTS / f"profile-{hosts[-1] // 1000}k.txt"
        figures = profile(hosts[-1], out, args.duration, args.seed,
                          native=not args.python_only)
        print(out.read_text())
    else:
        figures = {"machine": machine(), **point(hosts[-1], args.duration, args.seed)}
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
