"""Planning on recorded data (``get_planning``'s shape) and through the recorded API.

The recorded planning (tests/data/g5k/planning-2sites.json) starts on Monday 2026-12-07
08:00 Europe/Paris (T0), one week long:

    fsite1  fcla-1 free        fcla-2 busy T0..T0+2h   fcla-3 busy T0..T0+4h
            kavlan-4 free      kavlan-16 busy T0..T0+3h
    fsite2  fclb-1 free        fclb-2 busy T0+1h..T0+10h   fclc-1 free
            kavlan-5 free      kavlan-17 free
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.g5k.config import Experiment, paris_date, parse_experiment, parse_paris_date
from deploy.g5k.plan import NoSlot, Plan, charter_periods, make_plan, plan_on
from deploy.g5k.platform import Platform, SiteUnavailable
from dvms.errors import InputError
from tests.g5k_recorded import RecordedApi, machine_tz, recorded, recorded_platform

REC = recorded("planning-2sites.json")
T0 = REC["start"]
H = 3600


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RecordedApi, Platform]]:
    with recorded_platform(tmp_path_factory.mktemp("api")) as (api, _, platform):
        yield api, platform


def _exp(api: RecordedApi, **reservation: Any) -> Experiment:
    reservation.setdefault("walltime", "1:00:00")
    return parse_experiment({"name": "exp", "platform": {"api_uri": api.uri},
                             "reservation": reservation})


def _plan(world: tuple[RecordedApi, Platform], **reservation: Any) -> Plan:
    api, platform = world
    return plan_on(_exp(api, **reservation), platform, REC["planning"], T0, REC["end"])


def _at(plan: Plan) -> str:
    return paris_date(plan.start)


def _resources(plan: Plan) -> dict[str, str]:
    return {site: r.resources for site, r in plan.requests.items()}


def test_free_first_slot_where_every_count_fits(world: Any) -> None:
    plan = _plan(world, mode="free", resources=["grid5000:4"], blacklist=["fclc"])
    assert _at(plan) == "2026-12-07 12:00:00"  # fcla-3 free; fclb-2 busy; fclc excluded
    assert plan.end - plan.start == H
    assert dict(plan.counts) == {"fsite1": 3, "fsite2": 1}
    assert _resources(plan) == {"fsite1": "nodes=3",
                                "fsite2": "{cluster NOT IN ('fclc')}/nodes=1"}
    assert plan.requests["fsite2"].reservation == "2026-12-07 12:00:00"
    unfiltered = _plan(world, mode="free", resources=["grid5000:4"])
    assert _at(unfiltered) == "2026-12-07 08:00:00"  # fclc counts: 1 + 3 at T0
    assert dict(unfiltered.counts) == {"fsite1": 1, "fsite2": 3}  # round-robin, fsite1 empty


def test_free_avoiding_the_charter(world: Any) -> None:
    plan = _plan(world, mode="free", resources=["grid5000:4"], blacklist=["fclc"],
                 avoid_charter=True)
    assert _at(plan) == "2026-12-07 19:00:00"  # Monday 9:00-19:00 Paris is the charter's
    assert dict(plan.counts) == {"fsite1": 2, "fsite2": 2}  # all free: round-robin 2 + 2
    with machine_tz("Asia/Tokyo"):
        elsewhere = _plan(world, mode="free", resources=["grid5000:4"], blacklist=["fclc"],
                          avoid_charter=True)
    assert elsewhere.start == plan.start
    before_nine = _plan(world, mode="free", resources=["grid5000:4"], avoid_charter=True)
    assert _at(before_nine) == "2026-12-07 08:00:00"  # 08:00-09:00 ends as the charter begins
    two_hours = _plan(world, mode="free", resources=["grid5000:4"], avoid_charter=True,
                      walltime="2:00:00")
    assert _at(two_hours) == "2026-12-07 19:00:00"


def test_date_mode_takes_the_first_slot_with_any_node(world: Any) -> None:
    plan = _plan(world, mode="date", resources=["grid5000:4"], blacklist=["fclc"])
    assert _at(plan) == "2026-12-07 08:00:00"
    assert dict(plan.counts) == {"fsite1": 1, "fsite2": 2}  # what the slot has, up to 4


def test_max_mode_takes_the_slot_with_most_nodes(world: Any) -> None:
    plan = _plan(world, mode="max", resources=["grid5000"], blacklist=["fclc"])
    assert _at(plan) == "2026-12-07 18:00:00"  # fclb-2 free again: 3 + 2
    assert dict(plan.counts) == {"fsite1": 3, "fsite2": 2}


def test_site_cluster_and_host_elements(world: Any) -> None:
    site = _plan(world, resources=["fsite2:2"])
    assert (_at(site), dict(site.counts)) == ("2026-12-07 08:00:00", {"fsite2": 2})
    assert _resources(site) == {"fsite2": "nodes=2"}
    cluster = _plan(world, resources=["fclb:2"])
    assert _resources(cluster) == {"fsite2": "{cluster='fclb'}/nodes=2"}
    assert _at(cluster) == "2026-12-07 08:00:00"
    longer = _plan(world, resources=["fclb:2"], walltime="2:00")
    assert _at(longer) == "2026-12-07 18:00:00"  # fclb-2 busy from 09:00 to 18:00
    host = _plan(world, resources=["fcla-3"], mode="date")
    assert _at(host) == "2026-12-07 12:00:00"
    assert _resources(host) == {"fsite1": "{host='fcla-3.fsite1.grid5000.fr'}/nodes=1"}
    mixed = _plan(world, resources=["fclb:1", "fsite1:1"], blacklist=["fcla-1"])
    assert _at(mixed) == "2026-12-07 10:00:00"  # fcla-2 is the first fsite1 node left
    assert _resources(mixed) == {
        "fsite1": "{host NOT IN ('fcla-1.fsite1.grid5000.fr')}/nodes=1",
        "fsite2": "{cluster='fclb'}/nodes=1"}


def test_global_kavlan_goes_to_a_site_with_a_free_one(world: Any) -> None:
    plan = _plan(world, resources=["grid5000:4"], blacklist=["fclc"], kavlan=True)
    assert _at(plan) == "2026-12-07 12:00:00"
    assert plan.kavlan_site == "fsite1"
    assert _resources(plan)["fsite1"] == "{type='kavlan-global'}/vlan=1+nodes=3"
    early = _plan(world, resources=["fsite1:1", "fsite2:1"], kavlan=True)
    assert _at(early) == "2026-12-07 08:00:00"
    assert early.kavlan_site == "fsite2"  # kavlan-16 of fsite1 is busy until 11:00
    assert _resources(early)["fsite2"] == "{type='kavlan-global'}/vlan=1+nodes=1"


def test_no_slot_and_unknown_names(world: Any) -> None:
    with pytest.raises(NoSlot, match="no slot for grid5000:6"):
        _plan(world, resources=["grid5000:6"], blacklist=["fclc"])
    with pytest.raises(InputError) as err:
        _plan(world, resources=["unknown:3"])
    assert str(err.value) == ("reservation.resources[0] = 'unknown:3': no site, cluster or "
                              "host 'unknown' on the platform")
    with pytest.raises(InputError) as err:
        _plan(world, resources=["grid5000:2"], blacklist=["fclc", "helios"])
    assert str(err.value) == ("reservation.blacklist[1] = 'helios': no site, cluster or host "
                              "of that name on the platform")


def test_execos_functions_mutate_their_inputs_so_the_plan_copies(world: Any) -> None:
    from execo_g5k.planning import compute_slots, distribute_hosts, find_free_slot

    planning = copy.deepcopy(REC["planning"])
    _plan(world, resources=["grid5000:4"], blacklist=["fclc"], kavlan=True)
    assert REC["planning"] == planning  # untouched by plan_on
    slots = compute_slots(planning, H, excluded_elements=["fclc"])
    assert "fclc" not in planning["fsite2"]  # execo removed it in place
    wanted = {"grid5000": 1, "kavlan": 1}
    slot = find_free_slot(slots, wanted)
    assert wanted["kavlan"] == ["fsite2"]  # and rewrote the caller's dict
    available = slot[2]
    distribute_hosts(available, {"grid5000": 2})
    assert (available["fsite1"], available["fsite2"]) == (0, 1)  # 1 + 2 free, 2 taken


def test_funk_compatible_json_and_lines(world: Any) -> None:
    plan = _plan(world, resources=["grid5000:4"], blacklist=["fclc"], kavlan=True)
    doc = json.loads(json.dumps(plan.to_json()))
    assert set(doc) >= {"cmd", "options", "slots"}
    assert doc["cmd"][1] == ('fsite2: oarsub -l "{cluster NOT IN (\'fclc\')}/nodes=1,'
                             'walltime=1:00:00" -t deploy -r "2026-12-07 12:00:00" -n exp '
                             '"sleep 31536000"')
    assert doc["options"]["mode"] == "free" and doc["options"]["kavlan"] is True
    assert doc["options"]["resources_wanted"] == {"grid5000": 4}
    assert doc["slots"][0][0] == T0 and len(doc["slots"]) <= 10
    assert doc["counts"] == {"fsite1": 3, "fsite2": 1}
    assert plan.lines()[:4] == [
        "slot (free): 2026-12-07 12:00:00 -> 2026-12-07 13:00:00 Europe/Paris",
        "  fsite1: 3 nodes", "  fsite2: 1 node", "  KaVLAN on fsite1"]


@pytest.mark.parametrize("tz", ["UTC", "Asia/Tokyo", "America/Sao_Paulo"])
def test_charter_hours_are_paris_hours_whatever_the_machines_zone(tz: str) -> None:
    with machine_tz(tz):
        week = charter_periods(T0, T0 + 7 * 86400)
        christmas = charter_periods(parse_paris_date("2026-12-21 00:00:00"),
                                    parse_paris_date("2026-12-28 00:00:00"))
    assert week[0] == (parse_paris_date("2026-12-07 09:00:00"),
                       parse_paris_date("2026-12-07 19:00:00"))
    assert len(week) == 5 and week[-1][1] == parse_paris_date("2026-12-11 19:00:00")
    assert len(christmas) == 4  # Friday 25th is a public holiday
    midday = charter_periods(parse_paris_date("2026-12-07 12:00:00"), T0 + 86400)
    assert midday == [(parse_paris_date("2026-12-07 12:00:00"),
                       parse_paris_date("2026-12-07 19:00:00"))]


def test_execos_charter_ends_in_the_machines_zone() -> None:
    from execo_g5k.planning import get_charter_el_planning

    def first(tz: str) -> tuple[str, str]:
        with machine_tz(tz):
            start, end = get_charter_el_planning(T0, T0 + 86400)[0]
        return paris_date(start), paris_date(end)

    # the 9:00 and 19:00 tests and the end are read in the machine's zone, not Paris's
    assert first("UTC") == ("2026-12-07 08:00:00", "2026-12-07 20:00:00")
    assert first("Asia/Tokyo") == ("2026-12-07 09:00:00", "2026-12-07 11:00:00")


# -- through the recorded API: get_planning, and a site whose planning fails ---------------


def test_make_plan_reads_the_planning_from_the_api(world: Any) -> None:
    api, platform = world
    exp = _exp(api, resources=["grid5000:4"], blacklist=["fclc"], kavlan=True)
    plan = make_plan(exp, platform, now=T0 - 60)
    # job 1000 holds fcla-2 and kavlan-16 until 10:00 (+121 s, execo's margin); fsite2's
    # VLANs are only in /sites/fsite2/vlans, which execo's planning does not read
    assert _at(plan) == "2026-12-07 10:02:01"
    assert dict(plan.counts) == {"fsite1": 2, "fsite2": 2}
    assert plan.kavlan_site == "fsite1"
    assert "/sites/fsite1/jobs/1000" in api.log


def test_a_site_whose_planning_fails_is_named_not_no_slot(world: Any) -> None:
    api, platform = world
    exp = _exp(api, resources=["grid5000:2"])
    api.faults["/sites/fsite2/internal"] = 503
    try:
        with pytest.raises(SiteUnavailable) as err:
            make_plan(exp, platform, now=T0 - 60)
    finally:
        api.faults.clear()
    assert str(err.value).startswith(
        "site fsite2: no planning (API error 503 on /sites/fsite2/internal/oarapi/")
    assert make_plan(_exp(api, resources=["fsite1:1"]), platform, now=T0 - 60).counts


def test_start_date_in_paris_and_not_in_the_past(world: Any) -> None:
    api, platform = world
    exp = _exp(api, resources=["grid5000:1"], start="2026-12-07 20:00:00")
    plan = make_plan(exp, platform, now=T0 - 60)
    assert plan.start == parse_paris_date("2026-12-07 20:00:00")
    with pytest.raises(InputError, match="in the past"):
        make_plan(exp, platform, now=parse_paris_date("2026-12-08 00:00:00"))


def test_recorded_planning_is_in_get_plannings_shape() -> None:
    data = json.loads((Path(__file__).parent / "data/g5k/planning-2sites.json").read_text())
    for site in data["planning"].values():
        for element in site.values():
            for intervals in element.values():
                assert set(intervals) == {"busy", "free"}


def test_execo_drops_a_site_whose_vlans_it_cannot_see(world: Any, tmp_path: Path) -> None:
    """fsite2 lists its KaVLANs only in /sites/fsite2/vlans (today's shape): a job there
    holding VLAN 17 makes execo's planning of fsite2 fail (KeyError 'kavlan-17'); dvms
    reports the site instead of "no slot"."""
    from deploy.g5k import session

    api, platform = world
    payloads = copy.deepcopy(recorded("api.json"))
    payloads["/sites/fsite2/jobs"]["items"] = [
        {"uid": 2000, "queue": "default",
         "links": [{"rel": "self", "href": "/3.0/sites/fsite2/jobs/2000"}]}]
    payloads["/sites/fsite2/jobs/2000"] = {
        "uid": 2000, "state": "running", "started_at": T0, "scheduled_at": T0,
        "walltime": H, "assigned_nodes": ["fclb-1.fsite2.grid5000.fr"],
        "resources_by_type": {"vlans": ["17"]}}
    try:
        with RecordedApi(payloads) as other:
            session.configure(_exp(other), tmp_path / "other")
            with pytest.raises(SiteUnavailable) as err:
                make_plan(_exp(other, resources=["grid5000:2"], kavlan=True), platform,
                          now=T0 - 60)
            assert str(err.value) == ("site fsite2: no planning (execo's planning failed although "
                                      "the API answered)")
            plan = make_plan(_exp(other, resources=["grid5000:2"]), platform, now=T0 - 60)
            assert sum(plan.counts.values()) == 2  # without KaVLAN the site plans fine
    finally:
        session.configure(_exp(api), tmp_path / "back")
