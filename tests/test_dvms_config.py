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
        ("min_partition_size", 0, "dvms.min_partition_size: 0 must be >= 1"),
        ("min_partition_size", 2.5, "dvms.min_partition_size: 2.5 is not an integer"),
        ("min_partition_size", True, "dvms.min_partition_size: True is not an integer"),
        ("max_partition_size", 3, "dvms.max_partition_size: 3 is below min_partition_size 4"),
        ("partition_timeout_s", 0.0, "dvms.partition_timeout_s: 0.0 must be finite and > 0"),
        ("partition_timeout_s", float("inf"), "must be finite and > 0"),
        (
            "keepalive_period_s",
            5.0,
            "dvms.keepalive_period_s: 5.0 must be below partition_timeout_s",
        ),
        ("request_timeout_s", "1", "dvms.request_timeout_s: '1' is not a number of seconds"),
        ("retry_delay_s", -1.0, "dvms.retry_delay_s: -1.0 must be finite and >= 0"),
        ("max_forward_hops", 0, "dvms.max_forward_hops: 0 must be >= 1"),
        ("retry_delay_max_s", 0.5, "dvms.retry_delay_max_s: 0.5 is below retry_delay_s 1.0"),
    ],
)
def test_bad_values_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(InputError) as err:
        DvmsConfig(**{field: value})  # type: ignore[arg-type]
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_from_mapping_rejects_unknown_keys() -> None:
    assert DvmsConfig.from_mapping({"min_partition_size": 2}).min_partition_size == 2
    with pytest.raises(
        InputError, match=r"dvms.min_size: unknown setting; allowed: .*min_partition_size"
    ):
        DvmsConfig.from_mapping({"min_size": 2})


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
