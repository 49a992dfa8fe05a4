"""``DvmsConfig``: every knob of the DVMS protocol, with documented defaults.

Times are seconds of the runtime's clock (virtual in simulation). Defaults follow VMPlaceS
(Euro-Par 2015) where it fixed a value and the DVMS prototype (2014) otherwise; the rest are
ours and chosen so that message volume stays modest at 10,000 nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from dvms.config import check_fields, option
from dvms.errors import InputError

__all__ = ["DvmsConfig"]


@dataclass(frozen=True, slots=True)
class DvmsConfig:
    """Settings of the Iterative Scheduling Procedure (one per run, shared by all nodes).

    Every field is a ``dvms.config.option`` (documented, bounded); a bad value raises
    ``InputError`` naming the field and what is allowed, as a scenario's ``[dvms]`` does.
    The solver's time charge is the planner's business (``make_planner(cost="exact-model" |
    "measured")``): the leader waits ``planner.cost_s(hosts, vms)`` on the clock.
    """

    min_partition_size: int = option(
        4,
        "Nodes a partition needs before its leader runs the planner (VMPlaceS: 4). ≥ 1.",
        lo=1,
    )
    max_partition_size: int = option(
        0,
        "Stop growing at this size: the ISP fails and is dissolved (0 = unbounded, as DVMS).",
        lo=0,
    )
    partition_timeout_s: float = option(
        4.5,
        "A member leaves its partition after this long without an update or keepalive "
        "(VMPlaceS: 4.5 s; the DVMS prototype: 3.5 s).",
        lo=0,
        lo_open=True,
    )
    timeout_check_period_s: float = option(
        1.0,
        "Minimum interval between two checks of a member's partition deadline. The check is "
        "armed at the deadline itself (no periodic tick while updates keep arriving), so a "
        "timeout is noticed at most this long after it expired.",
        lo=0,
        lo_open=True,
    )
    keepalive_period_s: float = option(
        1.5,
        "Period of the leader's keepalives to members while it solves and applies a plan "
        "(three per ``partition_timeout_s`` of 4.5 s: a member survives two lost in a row).",
        lo=0,
        lo_open=True,
    )
    request_timeout_s: float = option(
        1.0,
        "How long a sender waits for the answer to a request (token acknowledgement, claim of "
        "a partition version at its initiator, migration order acknowledgement) before it "
        "retries or declares the peer unreachable.",
        lo=0,
        lo_open=True,
    )
    request_retries: int = option(
        1,
        "Extra attempts of a request after its first timeout (message loss vs. crash).",
        lo=0,
    )
    max_forward_hops: int = option(
        16,
        "Booked nodes a travelling partition may cross since it last grew before it is sent "
        "back to its own partition (which then blocks or dissolves it).",
        lo=1,
    )
    result_poll_s: float = option(
        10.0,
        "While a migration runs, the leader re-sends its (idempotent) order this often so a "
        "lost result is recovered and a crashed source is detected.",
        lo=0,
        lo_open=True,
    )
    apply_timeout_s: float = option(
        300.0,
        "Longest a leader waits for the results of its plan's migrations before dissolving "
        "the partition (the migrations themselves continue, on the hypervisors).",
        lo=0,
        lo_open=True,
    )
    retry_delay_s: float = option(
        1.0,
        "After an ISP that did not fix its initiator, a still-violated node waits this long "
        "(± 50 % jitter from its rng) before starting another; the wait doubles with each "
        "further failure in a row, up to ``retry_delay_max_s`` (avoids ISP storms).",
        lo=0,
    )
    retry_delay_max_s: float = option(
        8.0,
        "Longest back-off between two failed ISPs of a node (s; >= ``retry_delay_s``).",
        lo=0,
    )

    def __post_init__(self) -> None:
        check_fields(self, "dvms")
        if 0 < self.max_partition_size < self.min_partition_size:
            raise InputError(
                f"dvms.max_partition_size = {self.max_partition_size}: must be 0 (unbounded) "
                f"or >= min_partition_size ({self.min_partition_size})"
            )
        if self.retry_delay_max_s < self.retry_delay_s:
            raise InputError(
                f"dvms.retry_delay_max_s = {self.retry_delay_max_s}: must be >= "
                f"retry_delay_s ({self.retry_delay_s})"
            )
        if self.keepalive_period_s >= self.partition_timeout_s:
            raise InputError(
                f"dvms.keepalive_period_s = {self.keepalive_period_s}: must be < "
                f"partition_timeout_s ({self.partition_timeout_s})"
            )
