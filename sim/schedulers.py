"""Schedulers the world can run: a registry of name → how to set up their services.

The world never names a scheduler in its code: it looks the scenario's
``scheduler.name`` up here and asks the :class:`SchedulerSpec` for

- the services to add on every host (``host_services(HostSetup)``), on top of the
  world's own (a :class:`~dvms.services.monitor.Monitor` when ``monitor`` is true, the
  Vivaldi service when enabled);
- extra nodes that are not hosts (``extra_nodes(WorldSetup)``), e.g. the centralised
  scheduler's ``"controller"``;
- whether hosts need an overlay object (``uses_overlay``);
- the class of the scheduler's own config (``config_class``): a frozen dataclass built from
  the scenario's table of the same name (``[dvms]`` for "dvms"), validated up front.

Adding a scheduler is one ``register(SchedulerSpec(...))`` call, e.g.::

    def _dvms_services(setup: HostSetup) -> list[Behaviour]:
        from dvms.protocol import DvmsService
        return [DvmsService(setup.hypervisor, setup.overlay, setup.planner(), setup.config)]

    register(SchedulerSpec("dvms", host_services=_dvms_services, monitor=True,
                           uses_overlay=True, config_class=DvmsConfig))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dvms.errors import InputError
from dvms.hypervisor import Hypervisor
from dvms.overlay.base import Overlay
from dvms.scheduler.model import Planner
from peeractor import Behaviour, NodeId

if TYPE_CHECKING:
    from dvms.services.central import GlobalView
    from sim.scenario import Scenario

__all__ = [
    "CONTROLLER",
    "SCHEDULERS",
    "HostSetup",
    "SchedulerSpec",
    "WorldSetup",
    "register",
    "scheduler_spec",
]

CONTROLLER: NodeId = "controller"
"""Node id of the centralised scheduler (placed at the first site; not a host)."""


@dataclass(frozen=True)
class HostSetup:
    """What a scheduler may use to build one host's services."""

    node: NodeId
    site: str
    hypervisor: Hypervisor
    overlay: Overlay | None
    """The host's overlay object (shared with its Vivaldi service); None unless ``uses_overlay``."""
    planner: Callable[[], Planner]
    """Makes a planner as configured in ``[scheduler]`` (planner, cost)."""
    config: Any
    """The scheduler's config (an instance of ``config_class``), or None."""
    scenario: Scenario


@dataclass(frozen=True)
class WorldSetup:
    """What a scheduler may use to build nodes that are not hosts."""

    view: GlobalView
    """Global snapshot and migrations (for centralised schedulers)."""
    site: str
    """Site where such nodes live (the first site)."""
    planner: Callable[[], Planner]
    config: Any
    scenario: Scenario


def _no_services(setup: HostSetup) -> Sequence[Behaviour]:
    return ()


def _no_nodes(setup: WorldSetup) -> Sequence[tuple[NodeId, Sequence[Behaviour]]]:
    return ()


@dataclass(frozen=True)
class SchedulerSpec:
    """How the world sets up one scheduler."""

    name: str
    host_services: Callable[[HostSetup], Sequence[Behaviour]] = _no_services
    extra_nodes: Callable[[WorldSetup], Sequence[tuple[NodeId, Sequence[Behaviour]]]] = _no_nodes
    monitor: bool = False
    """Add a Monitor on every host reporting to ``(node, monitor_target)``."""
    monitor_target: str = "dvms"
    uses_overlay: bool = False
    """Hosts get an overlay object (``[overlay] name``)."""
    config_class: type[Any] | None = None
    """Frozen dataclass built from the scenario's ``[<name>]`` table (keyword arguments)."""


SCHEDULERS: dict[str, SchedulerSpec] = {}
"""The registry, by name."""


def register(spec: SchedulerSpec) -> SchedulerSpec:
    """Add ``spec`` (replacing one of the same name) and return it."""
    SCHEDULERS[spec.name] = spec
    return spec


def scheduler_spec(name: str) -> SchedulerSpec:
    """The spec registered as ``name``; ``InputError`` naming the known ones otherwise."""
    spec = SCHEDULERS.get(name)
    if spec is None:
        known = ", ".join(sorted(SCHEDULERS))
        raise InputError(f"scheduler.name = {name!r}: must be one of {known}")
    return spec


# ----- built-in schedulers -------------------------------------------------------------


def _controller(setup: WorldSetup) -> Sequence[tuple[NodeId, Sequence[Behaviour]]]:
    from dvms.services.central import CentralScheduler

    period = setup.scenario.scheduler.period_s
    return [(CONTROLLER, [CentralScheduler(setup.view, setup.planner(), period_s=period)])]


register(SchedulerSpec("none"))
register(SchedulerSpec("centralized", extra_nodes=_controller))


def _dvms_services(setup: HostSetup) -> Sequence[Behaviour]:
    from dvms.protocol import DvmsService

    assert setup.overlay is not None
    return [
        DvmsService(setup.hypervisor, setup.overlay, setup.planner(), setup.config, setup.site)
    ]


def _dvms_config_class() -> type[Any]:
    from dvms.protocol.config import DvmsConfig

    return DvmsConfig


register(
    SchedulerSpec(
        "dvms",
        host_services=_dvms_services,
        monitor=True,
        uses_overlay=True,
        config_class=_dvms_config_class(),
    )
)
