"""DvmsConfig: documented defaults, one-line errors naming the field, the scenario table."""

from __future__ import annotations

import dataclasses

import pytest

from dvms.errors import InputError
from dvms.protocol import DvmsConfig
from sim.scenario import load_scenario


def test_defaults_follow_vmplaces() -> None:
    c = DvmsConfig()
    assert (c.min_partition_size, c.partition_timeout_s) == (4, 4.5)
    assert (c.timeout_check_period_s, c.keepalive_period_s) == (1.0, 1.5)
    assert c.max_partition_size == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.min_partition_size = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("min_partition_size", 0, "dvms.min_partition_size = 0: must be an integer >= 1"),
        ("min_partition_size", 2.5, "dvms.min_partition_size = 2.5: must be an integer >= 1"),
        ("min_partition_size", True, "dvms.min_partition_size = True: must be an integer >= 1"),
        (
            "max_partition_size",
            3,
            "dvms.max_partition_size = 3: must be 0 (unbounded) or >= min_partition_size (4)",
        ),
        ("partition_timeout_s", 0.0, "dvms.partition_timeout_s = 0.0: must be a number > 0"),
        ("partition_timeout_s", float("inf"), "must be a number > 0"),
        (
            "keepalive_period_s",
            5.0,
            "dvms.keepalive_period_s = 5.0: must be < partition_timeout_s (4.5)",
        ),
        ("request_timeout_s", "1", "dvms.request_timeout_s = '1': must be a number > 0"),
        ("retry_delay_s", -1.0, "dvms.retry_delay_s = -1.0: must be a number >= 0"),
        ("max_forward_hops", 0, "dvms.max_forward_hops = 0: must be an integer >= 1"),
        (
            "retry_delay_max_s",
            0.5,
            "dvms.retry_delay_max_s = 0.5: must be >= retry_delay_s (1.0)",
        ),
    ],
)
def test_bad_values_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(InputError) as err:
        DvmsConfig(**{field: value})  # type: ignore[arg-type]
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_keys_of_the_table_are_refused() -> None:
    with pytest.raises(
        InputError, match=r"dvms.min_size: unknown key; allowed: min_partition_size, "
    ):
        load_scenario(None, {"dvms.min_size": 2})


def test_scenario_dvms_table_builds_the_config() -> None:
    scenario = load_scenario(
        None,
        {"scheduler.name": "dvms", "dvms.partition_timeout_s": 3.5, "infrastructure.hosts": 16},
    )
    config = scenario.node_plan().dvms
    assert isinstance(config, DvmsConfig) and config.partition_timeout_s == 3.5
    with pytest.raises(InputError, match=r"dvms\.min_partition_size"):
        load_scenario(None, {"scheduler.name": "dvms", "dvms.min_partition_size": 0})
    with pytest.raises(InputError, match=r"dvms\.bogus"):
        load_scenario(None, {"scheduler.name": "dvms", "dvms.bogus": 1})
