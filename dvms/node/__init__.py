"""One node, two worlds: the node tables, the scheduler registry and the one node assembly.

See ``dvms.node.assembly`` (how a node is put together), ``dvms.node.config`` (the
``[scheduler]``, ``[overlay]``, ``[dvms]``, ``[vivaldi]``, ``[monitor]`` tables shared by
scenarios and agent configs) and ``dvms.node.schedulers`` (the registry).
"""

from dvms.node.assembly import (
    BOOTSTRAP,
    NodePlan,
    bootstrap_peers,
    coordinator_node,
    coordinator_services,
    make_node_overlay,
    node_plan,
    node_seed,
    node_services,
    ring_of,
)
from dvms.node.config import (
    NODE_SECTIONS,
    VIVALDI_DEFAULTS,
    MonitorConfig,
    NodeTables,
    OverlayConfig,
    SchedulerConfig,
    VivaldiSection,
    dvms_table,
    parse_node_tables,
)
from dvms.node.schedulers import (
    SCHEDULERS,
    CoordinatorContext,
    HostContext,
    SchedulerSpec,
    register,
    scheduler_spec,
)

__all__ = [
    "BOOTSTRAP",
    "NODE_SECTIONS",
    "SCHEDULERS",
    "VIVALDI_DEFAULTS",
    "CoordinatorContext",
    "HostContext",
    "MonitorConfig",
    "NodePlan",
    "NodeTables",
    "OverlayConfig",
    "SchedulerConfig",
    "SchedulerSpec",
    "VivaldiSection",
    "bootstrap_peers",
    "coordinator_node",
    "coordinator_services",
    "dvms_table",
    "make_node_overlay",
    "node_plan",
    "node_seed",
    "node_services",
    "parse_node_tables",
    "register",
    "ring_of",
    "scheduler_spec",
]
