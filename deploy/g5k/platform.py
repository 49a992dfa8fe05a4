"""The platform seen through the REST API: sites, clusters, nodes and KaVLAN networks.

``load_platform`` reads the reference API through execo_g5k's ``api_utils`` (so execo's
own planning functions see the same data, and its cache serves when the API is down) and
turns it into small frozen records. A site whose API fails raises ``SiteUnavailable``
naming it; an API that cannot be reached at all (and no cache) raises ``ApiUnreachable``.
KaVLAN networks come from either shape the API has had: ``vlans`` tables in the routers of
``/sites/S/network_equipments``, or ``/sites/S/vlans`` items.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dvms.errors import DvmsError, InputError

__all__ = [
    "ApiRequestError",
    "ApiUnreachable",
    "Cluster",
    "Kavlan",
    "Node",
    "Platform",
    "Site",
    "SiteUnavailable",
    "api_get",
    "describe_api_error",
    "kavlans_from_equipments",
    "kavlans_from_vlans",
    "load_platform",
    "parse_node",
]


class SiteUnavailable(DvmsError):
    """One site's API failed: ``site fsite2: API error 503 on /sites/fsite2/clusters``."""

    def __init__(self, site: str, detail: str) -> None:
        super().__init__(f"site {site}: {detail}")
        self.site = site
        self.detail = detail


class ApiUnreachable(DvmsError):
    """The API root cannot be reached and no cache can stand in for it."""

    def __init__(self, uri: str, detail: str) -> None:
        super().__init__(f"API {uri} unreachable: {detail}")
        self.uri = uri
        self.detail = detail


@dataclass(frozen=True)
class Node:
    name: str
    """Fully qualified: ``cluster-N.site.grid5000.fr``."""
    site: str
    cluster: str
    cores: int
    memory_mib: int
    flops: float
    """``performance.node_flops`` (0 when the API has none)."""
    power_sensor: bool
    """``sensors.power.available`` (Kwapi/Kwollect watts)."""

    @property
    def short(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class Cluster:
    name: str
    site: str
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Kavlan:
    """A KaVLAN network: id 1-3 local, 4-9 routed (one site), 11-21 global."""

    vlan: int
    network: str | None
    """CIDR, e.g. ``10.27.192.0/18``; None when the payload does not say (``/vlans``)."""

    @property
    def kind(self) -> str:
        if self.vlan <= 3:
            return "kavlan-local"
        return "kavlan" if self.vlan < 10 else "kavlan-global"


@dataclass(frozen=True)
class Site:
    name: str
    clusters: tuple[Cluster, ...]
    kavlans: tuple[Kavlan, ...] = ()


@dataclass(frozen=True)
class Platform:
    sites: Mapping[str, Site]

    def site(self, name: str) -> Site:
        """The site (KeyError if unknown)."""
        return self.sites[name]

    def clusters(self) -> list[Cluster]:
        return [c for s in self.sites.values() for c in s.clusters]

    def cluster(self, name: str) -> Cluster:
        """The cluster (KeyError if unknown)."""
        for c in self.clusters():
            if c.name == name:
                return c
        raise KeyError(name)

    def node(self, name: str) -> Node:
        """The node by FQDN or short name (KeyError if unknown)."""
        for c in self.clusters():
            for n in c.nodes:
                if name in (n.name, n.short):
                    return n
        raise KeyError(name)

    def kind(self, element: str) -> str | None:
        """'grid5000', 'site', 'cluster', 'host' or None for an unknown name."""
        if element == "grid5000":
            return "grid5000"
        if element in self.sites:
            return "site"
        for kind, lookup in (("cluster", self.cluster), ("host", self.node)):
            try:
                lookup(element)
            except KeyError:
                continue
            return kind
        return None


def _get(payload: Mapping[str, Any], path: str) -> Any:
    value: Any = payload
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise ValueError(f"no {path}")
        value = value[key]
    return value


def parse_node(site: str, cluster: str, payload: Mapping[str, Any]) -> Node:
    """A ``/sites/S/clusters/C/nodes`` item → ``Node`` (ValueError naming a missing field)."""
    uid = payload.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ValueError("node without uid")
    try:
        cores = _get(payload, "architecture.nb_cores")
        ram = _get(payload, "main_memory.ram_size")
        if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
            raise ValueError(f"architecture.nb_cores = {cores!r}")
        if isinstance(ram, bool) or not isinstance(ram, int) or ram < 1:
            raise ValueError(f"main_memory.ram_size = {ram!r}")
    except ValueError as exc:
        raise ValueError(f"node {uid}: {exc}") from None
    flops = payload.get("performance", {}).get("node_flops") or 0.0
    power = payload.get("sensors", {}).get("power", {}).get("available", False)
    return Node(
        name=uid if "." in uid else f"{uid}.{site}.grid5000.fr",
        site=site,
        cluster=cluster,
        cores=cores,
        memory_mib=ram // 2**20,
        flops=float(flops),
        power_sensor=bool(power),
    )


def _global_network(vlan: int) -> str | None:
    """Grid'5000's convention: global KaVLAN N (11..21) is ``10.(4(N-11)+7).192.0/18``."""
    return f"10.{4 * (vlan - 11) + 7}.192.0/18" if 11 <= vlan <= 21 else None


def kavlans_from_equipments(items: Sequence[Mapping[str, Any]]) -> tuple[Kavlan, ...]:
    """KaVLANs from routers' ``vlans`` tables (``{"vlan716": {"name": "kavlan-16", ...}}``).

    Non-table values (``naming_pattern``) and names not ``kavlan-N`` are skipped; VLANs
    1-3 are kept (local, not routed).
    """
    found: dict[int, Kavlan] = {}
    for equip in items:
        vlans = equip.get("vlans") if isinstance(equip, Mapping) else None
        if not isinstance(vlans, Mapping):
            continue
        for params in vlans.values():
            if not isinstance(params, Mapping):
                continue
            name = params.get("name", "")
            if not isinstance(name, str) or not name.startswith("kavlan-"):
                continue
            try:
                vlan = int(name.split("-", 1)[1])
            except ValueError:
                continue
            addresses = params.get("addresses") or []
            network = addresses[0] if addresses and isinstance(addresses[0], str) else None
            found.setdefault(vlan, Kavlan(vlan, network or _global_network(vlan)))
    return tuple(found[v] for v in sorted(found))


def kavlans_from_vlans(items: Sequence[Mapping[str, Any]]) -> tuple[Kavlan, ...]:
    """KaVLANs from ``/sites/S/vlans`` items (``{"uid": "16", "type": "kavlan-global"}``).

    ``kavlan-remote`` items (another site's global VLAN) and ``DEFAULT`` are skipped; the
    payload has no addresses, so only global VLANs get a network (by convention).
    """
    found: dict[int, Kavlan] = {}
    for item in items:
        if item.get("type") not in ("kavlan-local", "kavlan", "kavlan-global"):
            continue
        try:
            vlan = int(str(item.get("uid")))
        except ValueError:
            continue
        found[vlan] = Kavlan(vlan, _global_network(vlan))
    return tuple(found[v] for v in sorted(found))


def _api_root() -> str:
    import execo_g5k.config

    return str(execo_g5k.config.g5k_configuration["api_uri"])


def _path_of(uri: str) -> str:
    base = _api_root().rstrip("/")
    return "/" + uri[len(base):].lstrip("/") if uri.startswith(base) else uri


def describe_api_error(exc: Any) -> str:
    """An execo ``APIException`` as ``API error 503 on /sites/x`` (or the transport error)."""
    response = getattr(exc, "response", None)
    uri = _path_of(str(getattr(exc, "uri", "?")))
    if response is not None:
        return f"API error {response.status_code} on {uri}"
    return f"{type(exc.exception).__name__} on {uri}: {exc.exception}"


class ApiRequestError(DvmsError):
    """One API request failed: ``detail`` says how, ``status`` is the HTTP status or None."""

    def __init__(self, detail: str, status: int | None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


def api_get(path: str) -> Any:
    """GET ``path`` through execo's API connection; any failure → ``ApiRequestError``
    (HTTP error, transport error, or a payload that is not JSON)."""
    from execo_g5k.api_utils import APIException, get_resource_attributes

    try:
        return get_resource_attributes(path)
    except APIException as exc:
        response = getattr(exc, "response", None)
        status = None if response is None else int(response.status_code)
        raise ApiRequestError(describe_api_error(exc), status) from None
    except ValueError:  # requests' JSONDecodeError
        raise ApiRequestError(f"malformed API payload on {'/' + path.lstrip('/')}",
                              None) from None


def _uids(path: str) -> list[str]:
    payload = api_get(path)
    try:
        return [str(item["uid"]) for item in payload["items"]]
    except (KeyError, TypeError):
        raise ApiRequestError(f"malformed API payload on {path} (no items[].uid)",
                              None) from None


def _diagnose(original: Exception) -> DvmsError:
    """Which request fails: the root (unreachable) or one site's (``SiteUnavailable``)."""
    try:
        api_get("")
        sites = _uids("/sites")
    except ApiRequestError as exc:
        return ApiUnreachable(_api_root(), exc.detail)
    for site in sorted(sites):
        try:
            api_get(f"/sites/{site}")
            api_get(f"/sites/{site}/network_equipments")
            for cluster in _uids(f"/sites/{site}/clusters"):
                api_get(f"/sites/{site}/clusters/{cluster}")
                _uids(f"/sites/{site}/clusters/{cluster}/nodes")
        except ApiRequestError as exc:
            return SiteUnavailable(site, exc.detail)
    return DvmsError(f"API {_api_root()}: cannot read the reference data: {original!r}")


def _site_kavlans(site: str, equipments: Mapping[str, Any], live: bool) -> tuple[Kavlan, ...]:
    kavlans = kavlans_from_equipments(list(equipments.values()))
    if kavlans or not live:
        return kavlans
    try:
        payload = api_get(f"/sites/{site}/vlans")
    except ApiRequestError as exc:
        if exc.status == 404:
            return ()
        raise SiteUnavailable(site, exc.detail) from None
    items = payload.get("items") if isinstance(payload, Mapping) else None
    if not isinstance(items, list):
        raise SiteUnavailable(site, f"malformed API payload on /sites/{site}/vlans (no items)")
    return kavlans_from_vlans([i for i in items if isinstance(i, Mapping)])


def _check_complete(data: Mapping[str, Any]) -> None:
    """Probe what execo may have dropped silently: its per-cluster node reader and per-site
    network reader start from an empty dict, so a failed request leaves a cluster with no
    node (or a site with no equipment) — and execo caches that. On a failure the cached
    copy is invalidated and the site named."""
    import execo_g5k.api_utils as api

    suspects = [(site, f"/sites/{site}/clusters/{cluster}/nodes")
                for site, clusters in data["hierarchy"].items()
                for cluster, hosts in clusters.items() if not hosts]
    suspects += [(site, f"/sites/{site}/network_equipments")
                 for site in data["hierarchy"] if not data["network"].get(site)]
    for site, path in suspects:
        try:
            api_get(path)
        except ApiRequestError as exc:
            with api._data_lock:
                api._data = None
            cache = api.get_api_data.__defaults__[0]
            if cache:
                Path(cache, "api_commit").unlink(missing_ok=True)
            raise SiteUnavailable(site, exc.detail) from None


@contextmanager
def _quiet_api_threads() -> Iterator[None]:
    """execo reads each site in a thread whose failed request (``APIException``, or a
    ``ValueError`` for a payload that is not JSON) would print a traceback; the failure is
    diagnosed in one line instead (other exceptions still print)."""
    from execo_g5k.api_utils import APIException

    previous = threading.excepthook
    quiet = (APIException, ValueError)

    def hook(args: Any) -> None:
        if not (isinstance(args.exc_type, type) and issubclass(args.exc_type, quiet)):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


def load_platform(sites: Sequence[str] | None = None) -> Platform:
    """The platform (all sites, or ``sites``) from the API configured by ``session``.

    Reads execo_g5k's API data (``get_api_data``: the live API, or execo's cache when
    the API root cannot be reached); when that fails, probes the API to name the cause.
    """
    import execo_g5k.api_utils as api

    try:
        with _quiet_api_threads():
            data = api.get_api_data()
    except Exception as exc:
        raise _diagnose(exc) from None
    live = "version" in data  # execo's cache reader does not restore it
    if live:
        _check_complete(data)
    hierarchy: Mapping[str, Mapping[str, Sequence[str]]] = data["hierarchy"]
    names = sorted(hierarchy) if sites is None else list(sites)
    out: dict[str, Site] = {}
    for name in names:
        if name not in hierarchy:
            raise InputError(f"site {name}: unknown; the API lists {', '.join(sorted(hierarchy))}")
        clusters = []
        for cluster in sorted(hierarchy[name]):
            try:
                nodes = [parse_node(name, cluster, data["hosts"][uid])
                         for uid in hierarchy[name][cluster]]
            except (ValueError, KeyError) as exc:
                raise SiteUnavailable(name, f"malformed node payload: {exc}") from None
            nodes.sort(key=lambda n: (len(n.name), n.name))
            clusters.append(Cluster(cluster, name, tuple(nodes)))
        network = data.get("network", {}).get(name, {})
        out[name] = Site(name, tuple(clusters), _site_kavlans(name, network, live))
    return Platform(out)
