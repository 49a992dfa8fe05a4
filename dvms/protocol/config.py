"""``DvmsConfig``: every knob of the DVMS protocol, with documented defaults.

Times are seconds of the runtime's clock (virtual in simulation). Defaults follow VMPlaceS
(Euro-Par 2015) where it fixed a value and the DVMS prototype (2014) otherwise; the rest are
ours and chosen so that message volume stays modest at 10,000 nodes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from dvms.errors import InputError

__all__ = ["DvmsConfig"]


@dataclass(frozen=True, slots=True)
class DvmsConfig:
    """Settings of the Iterative Scheduling Procedure (one per run, shared by all nodes).

    Raises ``InputError`` naming the field and the allowed values when a value is bad.
    The solver's time charge is the planner's business (``make_planner(cost="model" |
    "measured")``): the leader waits ``planner.cost_s(hosts, vms)`` on the clock.
    """

    min_partition_size: int = 4
    """Nodes a partition needs before its leader runs the planner (VMPlaceS: 4). ≥ 1."""
    max_partition_size: int = 0
    """Stop growing at this size: the ISP fails and is dissolved (0 = unbounded, as DVMS)."""
    partition_timeout_s: float = 4.5
    """A member leaves its partition after this long without an update or keepalive
    (VMPlaceS: 4.5 s; the DVMS prototype: 3.5 s)."""
    timeout_check_period_s: float = 1.0
    """Minimum interval between two checks of a member's partition deadline. The check is
    armed at the deadline itself (no periodic tick while updates keep arriving), so a
    timeout is noticed at most this long after it expired."""
    keepalive_period_s: float = 1.5
    """Period of the leader's keepalives to members while it solves and applies a plan
    (three per ``partition_timeout_s`` of 4.5 s: a member survives two lost in a row)."""
    request_timeout_s: float = 1.0
    """How long a sender waits for the answer to a request (token acknowledgement, claim of
    a partition version at its initiator, migration order acknowledgement) before it
    retries or declares the peer unreachable."""
    request_retries: int = 1
    """Extra attempts of a request after its first timeout (message loss vs. crash)."""
    max_forward_hops: int = 16
    """Booked nodes a travelling partition may cross since it last grew before it is sent
    back to its own partition (which then blocks or dissolves it)."""
    result_poll_s: float = 10.0
    """While a migration runs, the leader re-sends its (idempotent) order this often so a
    lost result is recovered and a crashed source is detected."""
    apply_timeout_s: float = 300.0
    """Longest a leader waits for the results of its plan's migrations before dissolving
    the partition (the migrations themselves continue, on the hypervisors)."""
    retry_delay_s: float = 1.0
    """After an ISP that did not fix its initiator, a still-violated node waits this long
    (± 50 % jitter from its rng) before starting another; the wait doubles with each
    further failure in a row, up to ``retry_delay_max_s`` (avoids ISP storms)."""
    retry_delay_max_s: float = 8.0
    """Longest back-off between two failed ISPs of a node (s; >= ``retry_delay_s``)."""

    def __post_init__(self) -> None:
        _int_at_least("min_partition_size", self.min_partition_size, 1)
        _int_at_least("max_partition_size", self.max_partition_size, 0)
        _int_at_least("request_retries", self.request_retries, 0)
        _int_at_least("max_forward_hops", self.max_forward_hops, 1)
        if 0 < self.max_partition_size < self.min_partition_size:
            raise InputError(
                f"dvms.max_partition_size: {self.max_partition_size} is below "
                f"min_partition_size {self.min_partition_size} (use 0 for unbounded)"
            )
        for name in (
            "partition_timeout_s",
            "timeout_check_period_s",
            "keepalive_period_s",
            "request_timeout_s",
            "result_poll_s",
            "apply_timeout_s",
        ):
            _positive(name, getattr(self, name))
        _positive("retry_delay_s", self.retry_delay_s, allow_zero=True)
        _positive("retry_delay_max_s", self.retry_delay_max_s, allow_zero=True)
        if self.retry_delay_max_s < self.retry_delay_s:
            raise InputError(
                f"dvms.retry_delay_max_s: {self.retry_delay_max_s} is below "
                f"retry_delay_s {self.retry_delay_s}"
            )
        if self.keepalive_period_s >= self.partition_timeout_s:
            raise InputError(
                f"dvms.keepalive_period_s: {self.keepalive_period_s} must be below "
                f"partition_timeout_s {self.partition_timeout_s}"
            )

    @classmethod
    def from_mapping(cls, table: dict[str, Any]) -> DvmsConfig:
        """Build from a scenario's ``[dvms]`` table; unknown keys raise ``InputError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in sorted(table):
            if key not in known:
                raise InputError(
                    f"dvms.{key}: unknown setting; allowed: {', '.join(sorted(known))}"
                )
        return cls(**table)


def _int_at_least(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"dvms.{name}: {value!r} is not an integer")
    if value < low:
        raise InputError(f"dvms.{name}: {value} must be >= {low}")


def _positive(name: str, value: object, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"dvms.{name}: {value!r} is not a number of seconds")
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not math.isfinite(value):
        bound = ">= 0" if allow_zero else "> 0"
        raise InputError(f"dvms.{name}: {value} must be finite and {bound}")
