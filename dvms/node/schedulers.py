"""The scheduler registry: name → what a node (and a coordinator) runs for that scheduler.

Nothing else in the project names a scheduler: the node assembly looks ``scheduler.name`` up
here. A :class:`SchedulerSpec` says

- which services every host adds (``host_services(HostContext)``), on top of the assembly's
  own (the Vivaldi service, and a Monitor reporting to ``monitor_target``);
- which services the scheduler's coordinator runs, if it has one (``coordinator``): on its
  own node over the simulated world's global view, or on one agent gathering the hosts'
  snapshots over the transport;
- whether hosts need an overlay (``uses_overlay``).

Adding a scheduler is one ``register(SchedulerSpec(...))`` call, or a spec object named by
import path in ``scheduler.name = "package.module:SPEC"``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dvms.errors import InputError
from dvms.hypervisor import Hypervisor
from dvms.node.config import SchedulerConfig
from dvms.overlay.base import Overlay
from dvms.protocol import DvmsService
from dvms.protocol.config import DvmsConfig
from dvms.scheduler.model import Planner
from dvms.services.central import CentralScheduler, GlobalView
from dvms.services.coordinator import CentralCoordinator, CentralHost
from dvms.services.hierarchical import hierarchy
from peeractor import Behaviour, NodeId

__all__ = [
    "SCHEDULERS",
    "CoordinatorContext",
    "HostContext",
    "SchedulerSpec",
    "register",
    "scheduler_spec",
]


@dataclass(frozen=True)
class HostContext:
    """What a scheduler may use to build one host's services."""

    node: NodeId
    site: str
    hypervisor: Hypervisor
    overlay: Overlay | None
    """The host's overlay (shared with its Vivaldi service); None unless ``uses_overlay``."""
    planner: Callable[[], Planner]
    """Makes a planner as the ``[scheduler]`` table says."""
    scheduler: SchedulerConfig
    dvms: DvmsConfig
    remote_view: bool
    """Real hosts: a centralised scheduler's view is gathered over the transport."""


@dataclass(frozen=True)
class CoordinatorContext:
    """What a scheduler may use to build its coordinator's services."""

    scheduler: SchedulerConfig
    planner: Callable[[], Planner]
    view: GlobalView | None
    """The simulated world's global view; None on real hosts (gather over the transport)."""
    hosts: Sequence[NodeId]
    """Every host of the run (real runs: the agents, the coordinator's included)."""


def _nothing(_ctx: object) -> Sequence[Behaviour]:
    return ()


@dataclass(frozen=True)
class SchedulerSpec:
    """How nodes run one scheduler (see the module doc)."""

    name: str
    host_services: Callable[[HostContext], Sequence[Behaviour]] = _nothing
    coordinator: Callable[[CoordinatorContext], Sequence[Behaviour]] | None = None
    """The coordinator's services, for schedulers that have one."""
    monitor_target: str | None = None
    """Service the host's Monitor reports overloads to (None: no reports, trace only)."""
    uses_overlay: bool = False
    uses_dvms_config: bool = False
    """Whether the ``[dvms]`` table is used (it is validated either way)."""


SCHEDULERS: dict[str, SchedulerSpec] = {}
"""The registry, by name."""


def register(spec: SchedulerSpec) -> SchedulerSpec:
    """Add ``spec`` (replacing one of the same name) and return it."""
    SCHEDULERS[spec.name] = spec
    return spec


def scheduler_spec(name: str) -> SchedulerSpec:
    """The spec registered as ``name`` or named by import path; one-line ``InputError`` else."""
    spec = SCHEDULERS.get(name)
    if spec is not None:
        return spec
    if ":" in name:
        return _load_spec(name)
    known = ", ".join(sorted(SCHEDULERS))
    raise InputError(
        f"scheduler.name = {name!r}: must be one of {known} or package.module:SPEC"
    )


@functools.cache
def _load_spec(path: str) -> SchedulerSpec:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        why = f"cannot import {module_name!r} ({exc})"
        raise InputError(f"scheduler.name = {path!r}: {why}") from None
    spec = module.__dict__.get(attr)
    if not isinstance(spec, SchedulerSpec):
        raise InputError(f"scheduler.name = {path!r}: {attr!r} is not a SchedulerSpec")
    return spec


# ----- built-in schedulers -------------------------------------------------------------


def _central_coordinator(ctx: CoordinatorContext) -> Sequence[Behaviour]:
    period = ctx.scheduler.period_s
    if ctx.view is not None:
        return [CentralScheduler(ctx.view, ctx.planner(), period_s=period)]
    timeout = ctx.scheduler.gather_timeout_s
    return [CentralCoordinator(ctx.hosts, ctx.planner(), period_s=period, gather_timeout_s=timeout)]


def _central_host(ctx: HostContext) -> Sequence[Behaviour]:
    # the simulated world is the global view; real hosts answer the coordinator
    return [CentralHost(ctx.hypervisor, ctx.site)] if ctx.remote_view else ()


def _hierarchical_coordinator(ctx: CoordinatorContext) -> Sequence[Behaviour]:
    if ctx.view is None:
        raise InputError("scheduler.name = 'hierarchical': runs in simulation only for now")
    sc = ctx.scheduler
    return hierarchy(ctx.view, ctx.planner, group_size=sc.group_size, period_s=sc.period_s)


def _dvms_services(ctx: HostContext) -> Sequence[Behaviour]:
    assert ctx.overlay is not None
    return [DvmsService(ctx.hypervisor, ctx.overlay, ctx.planner(), ctx.dvms, ctx.site)]


register(SchedulerSpec("none"))
register(
    SchedulerSpec("centralized", host_services=_central_host, coordinator=_central_coordinator)
)
register(SchedulerSpec("hierarchical", coordinator=_hierarchical_coordinator))
register(
    SchedulerSpec(
        "dvms",
        host_services=_dvms_services,
        monitor_target="dvms",
        uses_overlay=True,
        uses_dvms_config=True,
    )
)
