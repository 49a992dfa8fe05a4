"""The invariant test kit: check your own scheduler or protocol change against our invariants.

- ``check_plan`` / ``check_plan_parallel`` / ``PlanViolation`` (``dvms.testing.plans``);
- hypothesis strategies in ``dvms.testing.strategies`` (import it directly; needs hypothesis).
"""

from dvms.testing.plans import PlanViolation, check_plan, check_plan_parallel

__all__ = ["PlanViolation", "check_plan", "check_plan_parallel"]

# Vivaldi harness: topologies (``dvms.testing.topology``), simulate/evaluate (``vivaldi_sim``).
from dvms.testing import topology
from dvms.testing.vivaldi_sim import VivaldiStats, evaluate, generate_clients, simulate

__all__ += ["VivaldiStats", "evaluate", "generate_clients", "simulate", "topology"]

# Protocol invariants: ``check_protocol_trace`` on a trace, ``run_invariants`` on a faulty
# simulated run (``dvms.testing.invariants``; docs/protocol.md).
from dvms.testing.invariants import (  # noqa: E402
    InvariantReport,
    ProtocolViolation,
    check_protocol_trace,
    run_invariants,
)

__all__ += ["InvariantReport", "ProtocolViolation", "check_protocol_trace", "run_invariants"]
