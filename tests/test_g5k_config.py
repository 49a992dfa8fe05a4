"""The experiment TOML: one line per bad field, walltimes as OAR reads them, Paris dates."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.g5k.config import (
    Experiment,
    load_experiment,
    paris_date,
    parse_experiment,
    parse_paris_date,
)
from dvms.errors import InputError

EXAMPLE = """
name = "dvms-challenge"
seed = 1

[platform]
api_uri = "https://api.grid5000.fr/3.0/"
ssh_config = "~/.ssh/config"
frontend_timeout_s = 900

[reservation]
mode = "free"
resources = ["grid5000:200"]
blacklist = ["helios", "sagittaire", "nantes", "reims", "graphite"]
walltime = "12:00:00"
job_types = ["deploy"]
kavlan = true
avoid_charter = true
start = ""
start_timeout_s = 3600

[hosts]
environment = "debian12-min"
deploy_tries = 2
min_hosts_ratio = 0.8
packages = ["libvirt-daemon-system", "qemu-system-x86", "qemu-utils", "cpulimit"]

[vms]
count = 1000
template = { mem_mib = 1024, vcpus = 1, disk_gib = 10 }

[overlay]
name = "lbo"

[scheduler]
name = "centralized"

[agents]
dashboard = true
"""


def test_the_design_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(EXAMPLE)
    exp = load_experiment(path)
    assert isinstance(exp, Experiment)
    assert exp.name == "dvms-challenge"
    assert exp.reservation.wanted() == {"grid5000": 200}
    assert exp.reservation.walltime_s() == 12 * 3600
    assert exp.reservation.blacklist[0] == "helios"
    assert exp.hosts.packages[-1] == "cpulimit"
    assert exp.extra["vms"]["count"] == 1000 and exp.agents.dashboard
    assert exp.node_tables == {"overlay": {"name": "lbo"}, "scheduler": {"name": "centralized"}}
    assert exp.reservation.start_ts() is None


def _exp(**reservation: Any) -> Experiment:
    return parse_experiment({"name": "t", "reservation": reservation})


def _error(table: dict[str, Any]) -> str:
    with pytest.raises(InputError) as err:
        parse_experiment(table)
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("table", "message"), [
    ({"reservation": {"mode": "fre"}},
     "reservation.mode = 'fre': must be one of 'free', 'date', 'max'"),
    ({"reservation": {"resources": ["grid5000:abc"]}},
     "reservation.resources[0] = 'grid5000:abc': the count after ':' must be a non-negative "
     "integer"),
    ({"reservation": {"resources": ["grid5000"]}},
     "reservation.resources[0] = 'grid5000': mode 'free' needs a count >= 1 (element:n)"),
    ({"reservation": {"resources": ["fsite1:2", "Bad Name:3"]}},
     "reservation.resources[1] = 'Bad Name:3': element must be grid5000, a site, a cluster "
     "or a host"),
    ({"reservation": {"resources": "grid5000:4"}},
     "reservation.resources = 'grid5000:4': must be a list of strings"),
    ({"reservation": {"resources": []}},
     "reservation.resources = []: must name at least one element"),
    ({"reservation": {"blacklist": ["fclc", 3]}},
     "reservation.blacklist[1] = 3: must be a non-empty string"),
    ({"reservation": {"walltime": "25:61"}},
     "reservation.walltime = '25:61': minutes and seconds must be below 60 (H:MM:SS)"),
    ({"reservation": {"walltime": "12h"}},
     "reservation.walltime = '12h': must be H, H:MM or H:MM:SS"),
    ({"reservation": {"walltime": "0:00:00"}},
     "reservation.walltime = '0:00:00': must be longer than 0 s"),
    ({"reservation": {"start": "2026-13-01 10:00:00"}},
     "reservation.start = '2026-13-01 10:00:00': must be '' or 'YYYY-MM-DD HH:MM:SS' "
     "(Europe/Paris)"),
    ({"reservation": {"start": "tomorrow"}},
     "reservation.start = 'tomorrow': must be '' or 'YYYY-MM-DD HH:MM:SS' (Europe/Paris)"),
    ({"reservation": {"start_timeout_s": -1}},
     "reservation.start_timeout_s = -1: must be a number > 0"),
    ({"reservation": {"subnets": "slash_8=1"}},
     "reservation.subnets = 'slash_8=1': must look like 'slash_22=1' (slash_16 .. slash_22)"),
    ({"reservation": {"kavlan": "yes"}}, "reservation.kavlan = 'yes': must be true or false"),
    ({"reservation": {"nodes": 3}}, "reservation.nodes: unknown key; allowed: mode, "
     "resources, blacklist, walltime, job_types, kavlan, subnets, avoid_charter, start, "
     "start_timeout_s"),
    ({"platform": {"frontend_timeout_s": -5}},
     "platform.frontend_timeout_s = -5: must be a number > 0"),
    ({"platform": {"api_timeout_s": 0}}, "platform.api_timeout_s = 0: must be a number > 0"),
    ({"platform": {"api_uri": "api.grid5000.fr"}},
     "platform.api_uri = 'api.grid5000.fr': must be an http(s) URI"),
    ({"hosts": {"deploy_tries": 0}}, "hosts.deploy_tries = 0: must be an integer in [1, 10]"),
    ({"hosts": {"min_hosts_ratio": 1.5}},
     "hosts.min_hosts_ratio = 1.5: must be a number in [0, 1]"),
    ({"hosts": {"deploy_timeout_s": -1.0}},
     "hosts.deploy_timeout_s = -1.0: must be a number > 0"),
    ({"name": "my job"}, "name = 'my job': must be letters, digits, '_', '.', '-'"),
    ({"seed": -1}, "seed = -1: must be an integer in [0, 2^63)"),
    ({"frontend": "x"}, "frontend: unknown key; allowed: agents, dvms, hosts, load, "
     "monitor, name, overlay, platform, reservation, scheduler, seed, stress, vivaldi, vms"),
    ({"scheduler": {"name": "centralised"}}, "scheduler.name = 'centralised': must be one of "
     "centralized, dvms, hierarchical, none or package.module:SPEC"),
    ({"agents": {"port": 0}}, "agents.port = 0: must be an integer in [1, 65535]"),
    ({"vms": 3}, "[vms]: must be a table, got 3"),
])
def test_one_line_per_bad_field(table: dict[str, Any], message: str) -> None:
    assert _error(table) == message


def test_date_and_max_modes_accept_elements_without_counts() -> None:
    exp = _exp(mode="max", resources=["grid5000", "fsite1:3"])
    assert exp.reservation.wanted() == {"grid5000": 0, "fsite1": 3}
    assert _exp(mode="date", resources=["fcla"]).reservation.wanted() == {"fcla": 0}


@pytest.mark.parametrize(("walltime", "seconds"), [
    ("12:00", 12 * 3600), ("12:00:00", 12 * 3600), ("25:00:00", 25 * 3600)])
def test_walltime_formats(walltime: str, seconds: int) -> None:
    assert _exp(walltime=walltime).reservation.walltime_s() == seconds


def test_bad_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_experiment(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(InputError, match=r"bad\.toml: not TOML"):
        load_experiment(bad)


@pytest.fixture
def tokyo() -> Iterator[None]:
    """The machine's time zone set far from Paris for the test."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.usefixtures("tokyo")
def test_dates_are_europe_paris_whatever_the_machines_zone() -> None:
    assert time.strftime("%H", time.localtime(0)) == "09"  # really in Tokyo
    winter = parse_paris_date("2026-12-07 08:00:00")
    assert winter == 1796626800  # 07:00 UTC (CET = UTC+1)
    assert parse_paris_date("2026-07-07 08:00:00") == 1783404000  # 06:00 UTC (CEST)
    assert paris_date(winter) == "2026-12-07 08:00:00"
    assert _exp(start="2026-12-07 08:00:00").reservation.start_ts() == winter


def test_an_experiment_runs_dvms_unless_its_scheduler_table_says_otherwise() -> None:
    assert _exp().node_tables == {"scheduler": {"name": "dvms"}}
    exp = parse_experiment({"name": "t", "scheduler": {"period_s": 10.0}})
    assert exp.node_tables == {"scheduler": {"name": "dvms", "period_s": 10.0}}
    exp = parse_experiment({"name": "t", "scheduler": {"name": "centralized"}})
    assert exp.node_tables == {"scheduler": {"name": "centralized"}}
