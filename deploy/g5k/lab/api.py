"""The lab's fake Grid'5000 REST API (3.0): the paths and JSON shapes execo_g5k reads.

``python -m deploy.g5k.lab.api LAB`` serves on 127.0.0.1 (port written to ``LAB/api.port``)
the reference (sites, clusters, nodes, network equipments with KaVLANs, ``/sites/S/vlans``)
generated from ``LAB/platform.json``, and the OAR views (resources, jobs) from the shared job
state. Each request is logged to ``LAB/api.log`` and checked against the fault switches
(everything 503, one site 503, one site's payloads malformed).
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from deploy.g5k.lab.faults import load_faults
from deploy.g5k.lab.jobs import LIVE, Job, JobStore
from deploy.g5k.lab.power import PowerSampler
from deploy.g5k.lab.spec import LabNode, LabSite, LabSpec, global_vlan_cidr

__all__ = ["FakeApi", "main"]

PORT_FILE = "api.port"


def node_payload(site: LabSite, cluster: str, n: LabNode) -> dict[str, Any]:
    return {
        "uid": n.short, "type": "node", "cluster": cluster,
        "architecture": {"nb_cores": n.cores, "nb_threads": 2 * n.cores},
        "main_memory": {"ram_size": n.memory_mib * 1024 * 1024},
        "performance": {"node_flops": n.flops},
        "supported_job_types": {"deploy": True, "virtual": "ivt",
                                "queues": ["default", "admin"]},
        "sensors": {"power": {"available": True, "via": {"api": {"metric": "power"}}}},
        "network_adapters": [{"device": "eth0", "interface": "Ethernet", "management": False,
                              "mountable": True, "switch": f"sw-{site.name}",
                              "network_address": n.name}],
    }


def local_vlan_cidr(site: LabSite, vlan: int) -> str:
    return f"10.{16 + site.index}.{(vlan - 4) * 64 % 256}.0/18"


def router_payload(site: LabSite) -> dict[str, Any]:
    vlans: dict[str, Any] = {"naming_pattern": "Vlan%VLANID%"}
    for v in site.local_vlans:
        vlans[f"vlan{700 + v}"] = {"name": f"kavlan-{v}", "addresses": [local_vlan_cidr(site, v)]}
    if site.global_vlan is not None:
        vlans[f"vlan{700 + site.global_vlan}"] = {
            "name": f"kavlan-{site.global_vlan}",
            "addresses": [global_vlan_cidr(site.global_vlan)]}
    return {"uid": f"gw-{site.name}", "kind": "router", "vlans": vlans}


def vlans_payload(site: LabSite) -> dict[str, Any]:
    items = [{"uid": str(v), "type": "kavlan-local" if v < 4 else "kavlan",
              "addresses": [local_vlan_cidr(site, v)]} for v in site.local_vlans]
    if site.global_vlan is not None:
        items.append({"uid": str(site.global_vlan), "type": "kavlan-global",
                      "addresses": [global_vlan_cidr(site.global_vlan)]})
    return {"items": items, "total": len(items)}


def job_payload(job: Job, now: float) -> dict[str, Any]:
    state = job.state(now)
    until = job.deleted_at if job.deleted_at is not None else now
    started = not job.never_start and job.start <= until
    rbt: dict[str, Any] = {"cores": [f"{n}/{k}" for n in job.nodes for k in range(2)]}
    if job.vlan is not None:
        rbt["vlans"] = [str(job.vlan)]
    if job.subnets:
        rbt["subnets"] = list(job.subnets)
    return {
        "uid": job.id, "user": job.owner, "name": job.name, "state": state.lower(),
        "queue": "default", "types": job.types, "walltime": job.walltime_s,
        "submitted_at": int(job.submitted),
        "started_at": int(job.start) if started else 0,
        "scheduled_at": 0 if job.never_start else int(job.start),
        "assigned_nodes": list(job.nodes), "resources_by_type": rbt,
        "links": [{"rel": "self", "href": f"/3.0/sites/{job.site}/jobs/{job.id}",
                   "type": "application/vnd.grid5000.item+json"}],
    }


class FakeApi:
    """Answers one path (relative to ``/3.0``) from the spec and the job store."""

    def __init__(self, lab: Path, power: PowerSampler | None = None) -> None:
        self.lab = lab
        self.spec = LabSpec.load(lab / "platform.json")
        self.jobs = JobStore(lab)
        self.power = power
        digest = hashlib.sha1(json.dumps(self.spec.to_json(), sort_keys=True).encode())
        self.version = f"fake-{digest.hexdigest()[:12]}"

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] == "3.0":
            parts = parts[1:]
        faults = load_faults(self.lab)
        if faults.api_down:
            return 503, {"code": 503, "message": "Service Unavailable (fake lab: api_down)"}
        if len(parts) >= 2 and parts[0] == "sites":
            if parts[1] in faults.api_503_sites:
                return 503, {"code": 503, "message": f"Service Unavailable ({parts[1]})"}
            if parts[1] in faults.api_malformed_sites:
                return 200, None  # the handler writes a truncated body
        return self._route(parts, query)

    def _route(self, parts: list[str], query: dict[str, list[str]]) -> tuple[int, Any]:
        if not parts:
            return 200, {"uid": "grid5000", "type": "grid", "version": self.version,
                         "links": [{"rel": "sites", "href": "/3.0/sites"}]}
        if parts == ["network_equipments"]:
            return 200, {"items": [], "total": 0}
        if parts[0] != "sites":
            return 404, {"code": 404, "message": f"no such path /{'/'.join(parts)}"}
        if len(parts) == 1:
            return 200, {"items": [{"uid": s.name, "type": "site"} for s in self.spec.sites],
                         "total": len(self.spec.sites)}
        site = next((s for s in self.spec.sites if s.name == parts[1]), None)
        if site is None:
            return 404, {"code": 404, "message": f"no site {parts[1]}"}
        rest = parts[2:]
        if not rest:
            return 200, {"uid": site.name, "type": "site", "name": site.name.capitalize(),
                         "frontend": site.frontend}
        head = rest[0]
        if head == "clusters":
            return self._clusters(site, rest[1:])
        if head == "network_equipments":
            return 200, {"items": [router_payload(site)], "total": 1}
        if head == "vlans":
            return 200, vlans_payload(site)
        if head == "jobs":
            return self._jobs(site, rest[1:], query)
        if head == "metrics":
            return self._metrics(site, rest[1:], query)
        if rest[:3] == ["internal", "oarapi", "resources"]:
            items = [{"network_address": n.name, "type": "default", "state": "Alive",
                      "maintenance": "NO", "cluster": c, "host": n.name}
                     for c, n in site.nodes()]
            return 200, {"items": items, "total": len(items)}
        return 404, {"code": 404, "message": f"no such path /{'/'.join(parts)}"}

    def _clusters(self, site: LabSite, rest: list[str]) -> tuple[int, Any]:
        if not rest:
            return 200, {"items": [{"uid": c.name, "type": "cluster",
                                    "queues": ["default", "admin"]} for c in site.clusters],
                         "total": len(site.clusters)}
        cl = next((c for c in site.clusters if c.name == rest[0]), None)
        if cl is None:
            return 404, {"code": 404, "message": f"no cluster {rest[0]}"}
        if len(rest) == 1:
            return 200, {"uid": cl.name, "type": "cluster", "queues": ["default", "admin"]}
        nodes = [node_payload(site, cl.name, n) for n in cl.nodes]
        if len(rest) == 2 and rest[1] == "nodes":
            return 200, {"items": nodes, "total": len(nodes)}
        if len(rest) == 3 and rest[1] == "nodes":
            for n in nodes:
                if n["uid"] == rest[2]:
                    return 200, n
        return 404, {"code": 404, "message": f"no such node {'/'.join(rest)}"}

    def _metrics(self, site: LabSite, rest: list[str],
                 q: dict[str, list[str]]) -> tuple[int, Any]:
        """Kwapi: ``metrics/power/timeseries?only=a,b&from=T0&to=T1`` (fake watts)."""
        if rest != ["power", "timeseries"] or self.power is None:
            return 404, {"code": 404, "message": f"no metric /{'/'.join(rest)}"}
        wanted = [n for n in ",".join(q.get("only", [])).split(",") if n]
        mine = {n.short for _, n in site.nodes()}
        nodes = [n for n in wanted if n in mine] if wanted else sorted(mine)

        def ts(key: str) -> int | None:
            values = q.get(key)
            return int(float(values[0])) if values else None

        try:
            return 200, self.power.timeseries(nodes, ts("from"), ts("to"))
        except ValueError:
            return 400, {"code": 400, "message": "from/to: expected Unix times"}

    def _jobs(self, site: LabSite, rest: list[str], q: dict[str, list[str]]) -> tuple[int, Any]:
        now = time.time()
        jobs = [j for j in self.jobs.read().values() if j.site == site.name]
        if not rest:
            wanted = {s.strip().lower() for s in ",".join(q.get("state", [])).split(",") if s}
            wanted = wanted or {s.lower() for s in LIVE}
            items = [job_payload(j, now) for j in jobs if j.state(now).lower() in wanted]
            return 200, {"items": items, "total": len(items)}
        for j in jobs:
            if str(j.id) == rest[0]:
                return 200, job_payload(j, now)
        return 404, {"code": 404, "message": f"no job {rest[0]} on {site.name}"}


def _handler(api: FakeApi, log_lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            try:
                status, body = api.answer(url.path, parse_qs(url.query))
            except Exception as exc:  # a bug in the fake: say so, keep serving
                status, body = 500, {"code": 500, "message": f"fake API error: {exc}"}
            data = (json.dumps(body) if body is not None else '{"items": [{"uid": ').encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            with log_lock, open(api.lab / "api.log", "a") as f:
                f.write(f"{time.time():.3f} GET {self.path} {status}\n")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    lab = Path(args[0]).resolve()
    api = FakeApi(lab, PowerSampler(LabSpec.load(lab / "platform.json")).start())
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api, threading.Lock()))
    server.daemon_threads = True
    tmp = lab / (PORT_FILE + ".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.replace(lab / PORT_FILE)
    server.serve_forever(poll_interval=0.2)  # until SIGTERM from ``lab down``
    return 0


if __name__ == "__main__":
    sys.exit(main())
