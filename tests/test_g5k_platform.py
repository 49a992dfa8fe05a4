"""The platform model: recorded REST payloads parsed, and ``load_platform`` for real
through execo_g5k against a loopback server serving them (503s, outage, cache)."""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

import pytest

from deploy.g5k import session
from deploy.g5k.config import parse_experiment
from deploy.g5k.platform import (
    ApiUnreachable,
    Kavlan,
    Node,
    SiteUnavailable,
    kavlans_from_equipments,
    kavlans_from_vlans,
    load_platform,
    parse_node,
)
from dvms.errors import InputError
from tests.g5k_recorded import RecordedApi, recorded

API = recorded("api.json")


def _configure(uri: str, workdir: Path, cache: Path | None = None) -> None:
    platform: dict[str, Any] = {"api_uri": uri, "api_timeout_s": 5}
    if cache is not None:
        platform["cache_dir"] = str(cache)
    session.configure(parse_experiment({"platform": platform}), workdir)


def test_nodes_from_recorded_payloads() -> None:
    fcla1 = API["/sites/fsite1/clusters/fcla/nodes"]["items"][0]
    assert parse_node("fsite1", "fcla", fcla1) == Node(
        "fcla-1.fsite1.grid5000.fr", "fsite1", "fcla", cores=4, memory_mib=8192,
        flops=1.0e10, power_sensor=True)
    fclc1 = API["/sites/fsite2/clusters/fclc/nodes"]["items"][0]  # no performance, sensors
    node = parse_node("fsite2", "fclc", fclc1)
    assert (node.flops, node.power_sensor, node.short) == (0.0, False, "fclc-1")
    broken = copy.deepcopy(fcla1)
    del broken["architecture"]["nb_cores"]
    with pytest.raises(ValueError, match=r"^node fcla-1: no architecture\.nb_cores$"):
        parse_node("fsite1", "fcla", broken)
    broken = dict(fcla1, main_memory={"ram_size": "8G"})
    with pytest.raises(ValueError, match=r"main_memory\.ram_size = '8G'"):
        parse_node("fsite1", "fcla", broken)


def test_kavlans_from_both_payload_shapes() -> None:
    routers = API["/sites/fsite1/network_equipments"]["items"]
    assert kavlans_from_equipments(routers) == (
        Kavlan(1, None), Kavlan(4, "10.12.0.0/18"), Kavlan(16, "10.27.192.0/18"))
    assert [k.kind for k in kavlans_from_equipments(routers)] == [
        "kavlan-local", "kavlan", "kavlan-global"]
    vlans = API["/sites/fsite2/vlans"]["items"]  # no addresses; kavlan-remote skipped
    assert kavlans_from_vlans(vlans) == (
        Kavlan(1, None), Kavlan(5, None), Kavlan(17, "10.31.192.0/18"))
    assert kavlans_from_equipments(API["/sites/fsite2/network_equipments"]["items"]) == ()


def test_load_platform_through_execo(tmp_path: Path) -> None:
    with RecordedApi(API) as api:
        _configure(api.uri, tmp_path)
        platform = load_platform()
        assert list(load_platform(["fsite2"]).sites) == ["fsite2"]
        with pytest.raises(InputError, match="site fsite9: unknown; the API lists fsite1, "):
            load_platform(["fsite9"])
    assert list(platform.sites) == ["fsite1", "fsite2"]
    assert [c.name for c in platform.site("fsite2").clusters] == ["fclb", "fclc"]
    assert platform.cluster("fclb").site == "fsite2"
    assert platform.node("fclb-2").name == "fclb-2.fsite2.grid5000.fr"
    assert platform.node("fclb-2.fsite2.grid5000.fr").cores == 8
    assert [platform.kind(e) for e in ("grid5000", "fsite1", "fcla", "fcla-3", "nope")] == [
        "grid5000", "site", "cluster", "host", None]
    assert [k.vlan for k in platform.site("fsite1").kavlans] == [1, 4, 16]
    assert [k.vlan for k in platform.site("fsite2").kavlans] == [1, 5, 17]
    assert "/sites/fsite2/vlans" in api.log and "/sites/fsite1/vlans" not in api.log


def test_one_site_503_is_named(tmp_path: Path) -> None:
    with RecordedApi(API) as api:
        api.faults["/sites/fsite2/clusters"] = 503
        _configure(api.uri, tmp_path)
        with pytest.raises(SiteUnavailable) as err:
            load_platform()
    assert str(err.value) == "site fsite2: API error 503 on /sites/fsite2/clusters"
    assert err.value.site == "fsite2"


def test_execos_per_site_thread_tracebacks_are_not_printed(tmp_path: Path) -> None:
    seen: list[Any] = []
    previous = threading.excepthook
    threading.excepthook = seen.append  # what would print "Exception in thread ..."
    try:
        with RecordedApi(API) as api:
            api.faults["/sites/fsite2/clusters/fclb/nodes"] = 503
            _configure(api.uri, tmp_path)
            with pytest.raises(SiteUnavailable):
                load_platform()
        assert threading.excepthook == seen.append  # restored
    finally:
        threading.excepthook = previous
    assert seen == []


def test_a_nodes_list_execo_drops_silently_is_caught_and_not_cached(tmp_path: Path) -> None:
    with RecordedApi(API) as api:
        api.faults["/sites/fsite2/clusters/fclb/nodes"] = 503  # execo: fclb, no node
        _configure(api.uri, tmp_path)
        with pytest.raises(SiteUnavailable) as err:
            load_platform()
        assert str(err.value) == (
            "site fsite2: API error 503 on /sites/fsite2/clusters/fclb/nodes")
        assert not (tmp_path / "api-cache" / "api_commit").exists()  # refetched next time
        api.faults.clear()
        _configure(api.uri, tmp_path)
        assert len(load_platform().cluster("fclb").nodes) == 2
        api.faults["/sites/fsite1/network_equipments"] = 503  # execo: no equipment
        _configure(api.uri, tmp_path / "other")
        with pytest.raises(SiteUnavailable, match=r"^site fsite1: API error 503 on /sites/"):
            load_platform()


def test_payloads_that_are_not_json_or_not_the_shape_name_the_site(tmp_path: Path) -> None:
    with RecordedApi(API) as api:
        api.garbled.add("/sites/fsite1/clusters")
        _configure(api.uri, tmp_path)
        with pytest.raises(SiteUnavailable) as err:
            load_platform()
        assert str(err.value) == "site fsite1: malformed API payload on /sites/fsite1/clusters"
    payloads = copy.deepcopy(API)
    payloads["/sites/fsite2/clusters"] = {"items": 3}
    with RecordedApi(payloads) as api:
        _configure(api.uri, tmp_path / "shape")
        with pytest.raises(SiteUnavailable) as err:
            load_platform()
    assert str(err.value) == ("site fsite2: malformed API payload on /sites/fsite2/clusters "
                              "(no items[].uid)")
    with RecordedApi(API) as api:
        api.garbled.add("/")
        _configure(api.uri, tmp_path / "root")
        with pytest.raises(ApiUnreachable, match=r"malformed API payload on /$"):
            load_platform()


def test_malformed_node_payload_names_the_site(tmp_path: Path) -> None:
    payloads = copy.deepcopy(API)
    del payloads["/sites/fsite1/clusters/fcla/nodes"]["items"][0]["architecture"]
    with RecordedApi(payloads) as api:
        _configure(api.uri, tmp_path)
        with pytest.raises(SiteUnavailable) as err:
            load_platform()
    assert str(err.value) == ("site fsite1: malformed node payload: node fcla-1: "
                              "no architecture.nb_cores")


def test_unreachable_api_without_cache(tmp_path: Path) -> None:
    with RecordedApi(API) as api:
        uri = api.uri  # the port is closed once the server is gone
    _configure(uri, tmp_path)
    with pytest.raises(ApiUnreachable) as err:
        load_platform()
    assert str(err.value).startswith(f"API {uri} unreachable: ConnectionError on /: ")
    assert "\n" not in str(err.value)


def test_execos_cache_stands_in_for_a_down_api_and_is_refreshed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with RecordedApi(API) as api:
        _configure(api.uri, tmp_path, cache)
        live = load_platform()
        uri = api.uri
    assert (cache / "api_commit").read_text() == "recorded-1"
    assert {p.name for p in cache.iterdir()} >= {"hierarchy", "hosts", "network", "sites"}

    _configure(uri, tmp_path, cache)  # API gone: execo reads its cache
    cached = load_platform()
    assert cached.site("fsite1") == live.site("fsite1")
    assert cached.site("fsite2").clusters == live.site("fsite2").clusters
    assert cached.site("fsite2").kavlans == ()  # /sites/S/vlans is not in execo's cache

    with RecordedApi(API) as api:  # up but every request 503: the cache again
        api.faults["/"] = 503
        _configure(api.uri, tmp_path, cache)
        assert load_platform().site("fsite1") == live.site("fsite1")

    newer = copy.deepcopy(API)
    newer["/"]["version"] = "recorded-2"
    newer["/sites/fsite1/clusters/fcla/nodes"]["items"][0]["architecture"]["nb_cores"] = 16
    with RecordedApi(newer) as api:  # a new version: execo refreshes its cache
        _configure(api.uri, tmp_path, cache)
        assert load_platform().node("fcla-1").cores == 16
    assert (cache / "api_commit").read_text() == "recorded-2"
