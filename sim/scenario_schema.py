"""The world's sections of a scenario: frozen dataclasses whose fields document and bound
themselves (the node tables, ``[scheduler]`` ``[overlay]`` ``[dvms]`` ``[vivaldi]``
``[monitor]``, are ``dvms.node.config``'s, shared with agent configs).

Fields are declared with ``dvms.config.option`` and parsed by ``dvms.config.parse_section``
(the project's one validation mechanism), which names the first bad field.
"""

from __future__ import annotations

import dataclasses

from dvms.config import Section, option
from dvms.node.config import MIN_PERIOD_S

MAX_TIME_S = 1e9
"""Longest duration or time a scenario may name (~31 years): sums of times stay finite."""
MAX_POWER_W = 1e6
MAX_LOAD = 1e6
"""Percent of a core: bounds loads and their moments, so derived loads stay finite."""
MIN_SLOT = 1e-6

__all__ = [
    "CrashAt",
    "FaultsConfig",
    "InfrastructureConfig",
    "LinkCut",
    "LoadConfig",
    "MigrationConfig",
    "PowerConfig",
    "RunConfig",
    "TraceConfig",
]


@dataclasses.dataclass(frozen=True)
class RunConfig(Section):
    seed: int = option(1, "Seed of every random choice of the run.", lo=0, hi=2**63 - 1)
    duration_s: float = option(
        3600.0, "Simulated duration (s).", lo=0, lo_open=True, hi=MAX_TIME_S
    )
    name: str = option("", "Run name: default output directory runs/<name> (empty: a timestamp).")
    handler_errors: str = option(
        "stop",
        "A behaviour raising on a message: stop the run (as simpy does), or drop the message, "
        "count it as rejected and go on.",
        choices=("stop", "drop"),
    )

    def __post_init__(self) -> None:
        if self.name in (".", "..") or any(c in self.name for c in "/\\\0") or len(self.name) > 200:
            raise ValueError(
                f"run.name = {self.name[:40]!r}: must be a directory name (no '/', '\\', NUL; "
                "not '.' or '..'; at most 200 characters)"
            )


@dataclasses.dataclass(frozen=True)
class InfrastructureConfig(Section):
    sites: str | tuple[str, ...] = option(
        "grid5000",
        "A preset ('grid5000', 'wide-area') or a list of site names from the presets.",
    )
    hosts: int = option(256, "Number of hosts, spread evenly over the sites.", lo=1, hi=1_000_000)
    vms_per_host: int = option(10, "VMs per host (total VMs = hosts × this).", lo=0, hi=10_000)
    placement: str = option(
        "round-robin",
        "Initial placement: round-robin (VM i on host i mod hosts), fill (pack hosts in "
        "order up to their memory), balanced (each VM on the least CPU-loaded host).",
        choices=("round-robin", "fill", "balanced"),
    )
    host_cores: int = option(8, "Cores per host.", lo=1, hi=4096)
    host_cpu_capacity: float = option(
        700.0,
        "CPU available to VMs, percent of a core (VMPlaceS: 8 cores, one kept).",
        lo=0,
        lo_open=True,
        hi=409600,
    )
    host_memory_mib: int = option(32768, "Host memory available to VMs (MiB).", lo=1, hi=2**30)
    host_nic_bps: float = option(125e6, "Host NIC bandwidth (bytes/s; 1 Gb/s).", lo=1, hi=1e12)
    vm_vcpus: int = option(1, "vCPUs per VM.", lo=1, hi=4096)
    vm_memory_mib: int = option(1024, "VM memory (MiB).", lo=1, hi=2**30)
    vm_intensity_min: float = option(
        0.1, "Lowest memory-dirtying intensity (fraction), drawn uniformly per VM.", lo=0, hi=1
    )
    vm_intensity_max: float = option(0.8, "Highest memory-dirtying intensity.", lo=0, hi=1)


@dataclasses.dataclass(frozen=True)
class LoadConfig(Section):
    mode: str = option(
        "poisson",
        "poisson (random load events) or replay (from replay_file).",
        choices=("poisson", "replay"),
    )
    period_s: float = option(
        300.0,
        "Mean time between load changes of one VM (s): total rate = VMs / period.",
        lo=MIN_PERIOD_S,
    )
    distribution: str = option(
        "normal",
        "Load distribution: normal(mean, sd), or uniform with the same mean and sd.",
        choices=("normal", "uniform"),
    )
    mean: float = option(60.0, "Mean load (percent of a core).", lo=0, hi=MAX_LOAD)
    sd: float = option(20.0, "Standard deviation of the load.", lo=0, hi=MAX_LOAD)
    slot: float = option(
        10.0,
        f"Loads are rounded to multiples of this (0: no rounding; else >= {MIN_SLOT:g}).",
        lo=0,
        hi=MAX_LOAD,
    )
    max_per_vcpu: float = option(
        100.0, "Load cap per vCPU (percent of a core).", lo=0, lo_open=True, hi=MAX_LOAD
    )
    initial: str = option(
        "draw",
        "Initial loads at t=0: draw (same distribution) or zero.",
        choices=("draw", "zero"),
    )
    replay_file: str = option("", "CSV (t,vm,load) or JSONL ({t, vm, load}) load trace.")

    def __post_init__(self) -> None:
        if 0 < self.slot < MIN_SLOT:  # a subnormal slot overflows load / slot
            raise ValueError(f"load.slot = {self.slot!r}: must be 0 or >= {MIN_SLOT:g}")


@dataclasses.dataclass(frozen=True)
class PowerConfig(Section):
    idle_w: float = option(100.0, "Power of an idle host (W).", lo=0, hi=MAX_POWER_W)
    max_w: float = option(200.0, "Power of a fully used host (W).", lo=0, hi=MAX_POWER_W)


@dataclasses.dataclass(frozen=True)
class MigrationConfig(Section):
    downtime_s: float = option(
        0.03,
        "Stop-and-copy starts when the rest fits this downtime (s).",
        lo=1e-6,
        hi=MAX_TIME_S,
    )
    dirty_cap: float = option(
        0.9, "Cap on pages dirtied during one round, fraction of RAM.", lo=0, hi=1
    )
    max_rounds: int = option(
        29, "Pre-copy rounds at most before stop-and-copy (Xen: 29).", lo=0, hi=1000
    )
    max_sent_ratio: float = option(
        3.0, "Stop-and-copy rather than send more than this × RAM in all (Xen: 3).", lo=1, hi=1e6
    )
    wan_tcp_loss: float = option(
        1e-6,
        "Packet loss rate of inter-site paths in the Mathis TCP throughput model that "
        "limits inter-site migrations (1e-6: a dedicated research backbone such as "
        "Grid'5000's RENATER links; 1e-5: a typical public WAN).",
        lo=1e-12,
        hi=1,
        hi_open=True,
    )
    dirty_reference_bps: float = option(
        125e6,
        "Dirty rate of a fully busy VM with intensity 1 (bytes/s; SimGrid: migration speed).",
        lo=0,
        hi=1e12,
    )


@dataclasses.dataclass(frozen=True)
class CrashAt(Section):
    t: float = option(0.0, "Time of the crash (s).", lo=0, hi=MAX_TIME_S)
    host: str = option("", "Host that crashes (e.g. h0003).")


@dataclasses.dataclass(frozen=True)
class LinkCut(Section):
    t: float = option(0.0, "Time of the cut (s).", lo=0, hi=MAX_TIME_S)
    a: str = option("", "A host or a site.")
    b: str = option("", "A host or a site (every pair between a and b is cut).")
    duration_s: float = option(0.0, "Heal after this long (0: never).", lo=0, hi=MAX_TIME_S)


@dataclasses.dataclass(frozen=True)
class FaultsConfig(Section):
    crash_rate_per_host_h: float = option(
        0.0, "Random host crashes: rate per host per hour (exponential).", lo=0, hi=1e6
    )
    crashes: tuple[CrashAt, ...] = option((), "Scheduled crashes: [{t = 100.0, host = 'h0003'}].")
    loss_rate: float = option(0.0, "Probability that a message is lost.", lo=0, hi=1, hi_open=True)
    link_cuts: tuple[LinkCut, ...] = option(
        (), "Scheduled link cuts: [{t = 10.0, a = 'h0001', b = 'lyon', duration_s = 60.0}]."
    )
    link_cut_rate_h: float = option(
        0.0, "Random link cuts between two random hosts: rate per hour.", lo=0, hi=1e6
    )
    link_cut_duration_s: float = option(
        60.0, "Duration of a random link cut (s).", lo=0, hi=MAX_TIME_S
    )


@dataclasses.dataclass(frozen=True)
class TraceConfig(Section):
    compress: bool = option(True, "Write events.jsonl.gz (else events.jsonl).")
    load_events: bool = option(True, "Write one 'load' event per load change.")
    power_period_s: float = option(
        60.0, "Period of 'power' samples (s).", lo=MIN_PERIOD_S
    )
    coord_period_s: float = option(
        300.0, "Period of 'vivaldi.coord' samples per node (s).", lo=MIN_PERIOD_S
    )
