"""What an experiment has reserved and deployed, persisted as ``WORKDIR/state.json``.

Each step records what it is about to do *before* doing it (a job is recorded as
``submitting`` before ``oarsub`` runs), so ``release`` can always undo a half-finished
step and a re-run knows what is done. Saved atomically (write + rename).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dvms.errors import InputError

__all__ = ["STATE", "ExperimentState", "HostRecord", "JobRecord"]

STATE = "state.json"


@dataclass(slots=True)
class JobRecord:
    site: str
    id: int | None = None
    state: str = "submitting"
    """submitting → submitted → (running) → deleted; or refused."""
    request: str = ""
    message: str = ""


@dataclass(slots=True)
class HostRecord:
    name: str
    site: str
    cluster: str
    state: str = "reserved"
    """reserved → deployed → ready, or KO."""
    step: str = ""
    """The step that failed (KO hosts)."""
    reason: str = ""


@dataclass(slots=True)
class ExperimentState:
    workdir: Path
    name: str
    jobs: list[JobRecord] = field(default_factory=list)
    hosts: dict[str, HostRecord] = field(default_factory=dict)
    vlan: int | None = None
    kavlan_site: str | None = None
    subnets: list[str] = field(default_factory=list)
    pool_size: int = 0
    """IP/MAC pairs in ``WORKDIR/pool.json``."""
    start: int | None = None
    end: int | None = None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Step → {status: running|done|failed|skipped, started, ended, duration_s, error}."""

    # -- persistence -------------------------------------------------------------------

    def save(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["workdir"] = str(self.workdir)
        tmp = self.workdir / (STATE + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(self.workdir / STATE)

    @classmethod
    def load(cls, workdir: Path) -> ExperimentState | None:
        path = workdir / STATE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(
                workdir=workdir, name=data["name"],
                jobs=[JobRecord(**j) for j in data.get("jobs", [])],
                hosts={k: HostRecord(**h) for k, h in data.get("hosts", {}).items()},
                vlan=data.get("vlan"), kavlan_site=data.get("kavlan_site"),
                subnets=list(data.get("subnets", [])), pool_size=int(data.get("pool_size", 0)),
                start=data.get("start"), end=data.get("end"),
                steps=dict(data.get("steps", {})))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not a dvms g5k state file ({exc})") from exc

    @classmethod
    def open(cls, workdir: Path, name: str) -> ExperimentState:
        """The experiment's state in ``workdir`` (new if none); refuses another experiment's."""
        workdir = workdir.resolve()
        state = cls.load(workdir)
        if state is None:
            return cls(workdir=workdir, name=name)
        if state.name != name:
            raise InputError(f"{workdir} holds experiment {state.name!r}, not {name!r} "
                             f"(release it, or use another --workdir)")
        return state

    # -- steps -------------------------------------------------------------------------

    def done(self, step: str) -> bool:
        return self.steps.get(step, {}).get("status") == "done"

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a step; its record says running, then done or failed (with the error)."""
        t0 = time.time()
        self.steps[name] = {"status": "running", "started": round(t0, 3)}
        try:  # saved inside: a Ctrl-C just after "running" is on disk still ends as failed
            self.save()
            yield
        except BaseException as exc:
            self._end(name, t0, "failed", str(exc) or type(exc).__name__)
            raise
        self._end(name, t0, "done", "")

    def skip(self, name: str, why: str) -> None:
        self.steps[name] = {"status": "skipped", "reason": why}
        self.save()

    def _end(self, name: str, t0: float, status: str, error: str) -> None:
        t1 = time.time()
        rec = {"status": status, "started": round(t0, 3), "ended": round(t1, 3),
               "duration_s": round(t1 - t0, 3)}
        if error:
            rec["error"] = error
        self.steps[name] = rec
        self.save()

    def new_reservation(self) -> None:
        """Forget the previous reservation's hosts, network and later steps (its jobs stay
        listed, deleted, as history)."""
        if self.live_jobs():
            raise InputError(f"{self.workdir}: jobs are still reserved; run release first")
        self.hosts, self.vlan, self.kavlan_site = {}, None, None
        self.subnets, self.pool_size, self.start, self.end = [], 0, None, None
        self.steps = {}
        (self.workdir / "pool.json").unlink(missing_ok=True)
        self.save()

    # -- views -------------------------------------------------------------------------

    def live_jobs(self) -> list[JobRecord]:
        """Jobs that may hold resources (submitted, or maybe submitted)."""
        return [j for j in self.jobs if j.state in ("submitting", "submitted")]

    def ok_hosts(self) -> list[str]:
        return [h.name for h in self.hosts.values() if h.state != "KO"]

    def mark_ko(self, host: str, step: str, reason: str) -> None:
        rec = self.hosts[host]
        rec.state, rec.step, rec.reason = "KO", step, reason

    def to_json(self) -> dict[str, Any]:
        """``dvms g5k status``: jobs, hosts OK/KO with reasons, network, timings."""
        ok = {h.name: {"site": h.site, "cluster": h.cluster, "state": h.state}
              for h in self.hosts.values() if h.state != "KO"}
        ko = {h.name: {"site": h.site, "cluster": h.cluster, "step": h.step,
                       "reason": h.reason} for h in self.hosts.values() if h.state == "KO"}
        return {
            "name": self.name, "workdir": str(self.workdir),
            "jobs": [asdict(j) for j in self.jobs],
            "hosts": {"ok": ok, "ko": ko},
            "network": {"vlan": self.vlan, "kavlan_site": self.kavlan_site,
                        "subnets": self.subnets, "pool_size": self.pool_size},
            "window": {"start": self.start, "end": self.end},
            "steps": self.steps,
        }
