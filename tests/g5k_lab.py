"""Fixtures for the Grid'5000 lab tests: a lab in a temporary directory (always taken
down), experiment files against it, and the real ``dvms g5k`` CLI run as a process (so
execo's process-wide state starts fresh for every command, as it does for a user)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy.g5k.lab import lab as lab_mod
from deploy.g5k.lab.faults import Faults, load_faults, save_faults
from deploy.g5k.lab.spec import LabSpec, default_spec
from dvms.config import toml_value

ROOT = Path(__file__).resolve().parent.parent

needs_sshd = pytest.mark.skipif(
    not (os.access("/usr/sbin/sshd", os.X_OK) and shutil.which("ssh")),
    reason="needs openssh-server and openssh-client (scripts/sysdeps/g5k.txt)")


@dataclass
class Lab:
    state: lab_mod.LabState
    tmp: Path

    @property
    def dir(self) -> Path:
        return self.state.workdir

    @property
    def workdir(self) -> Path:
        """The experiment's workdir (state.json)."""
        return self.tmp / "exp"

    def fault(self, **switches: Any) -> None:
        faults = load_faults(self.dir)
        for k, v in switches.items():
            setattr(faults, k, v)
        save_faults(self.dir, faults)

    def clear_faults(self) -> None:
        save_faults(self.dir, Faults())

    def status(self) -> dict[str, Any]:
        return lab_mod.status(self.dir)

    def jobs(self) -> dict[int, dict[str, Any]]:
        return {j["id"]: j for j in self.status()["jobs"]}

    def commands(self) -> list[str]:
        path = self.dir / "commands.log"
        return path.read_text().splitlines() if path.exists() else []

    def experiment(self, name: str = "exp.toml", *, reservation: dict[str, Any] | None = None,
                   hosts: dict[str, Any] | None = None, top: dict[str, Any] | None = None,
                   platform: dict[str, Any] | None = None) -> Path:
        """An experiment file for the acceptance flow, with overrides per table."""
        res = {"mode": "free", "resources": ["grid5000:4"], "blacklist": ["fclc"],
               "walltime": "0:30:00", "job_types": ["deploy"], "kavlan": True,
               "start_timeout_s": 30, **(reservation or {})}
        hst = {"environment": "debian12-min", "deploy_tries": 2, "min_hosts_ratio": 0.7,
               "packages": [], **(hosts or {})}
        plat = {**lab_mod.platform_table(self.state), **(platform or {})}
        head = {"name": "labexp", "seed": 1, **(top or {})}
        text = "".join(f"{k} = {toml_value(v)}\n" for k, v in head.items())
        for table, values in (("platform", plat), ("reservation", res), ("hosts", hst)):
            text += f"\n[{table}]\n" + "".join(f"{k} = {toml_value(v)}\n"
                                               for k, v in values.items())
        path = self.tmp / name
        path.write_text(text)
        return path

    def dvms(self, *args: str, timeout: float = 120,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``python -m dvms g5k --workdir EXP_WORKDIR ARGS``."""
        env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        return subprocess.run([sys.executable, "-m", "dvms", "g5k", "--workdir",
                               str(self.workdir), *args], capture_output=True, text=True,
                              env=env, timeout=timeout, cwd=self.tmp)

    def state_json(self) -> dict[str, Any]:
        """``dvms g5k status`` of the experiment."""
        proc = self.dvms("status")
        assert proc.returncode == 0, proc.stderr
        data: dict[str, Any] = json.loads(proc.stdout)
        return data


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a failed command (and check there is exactly one)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("dvms g5k: error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A two-site lab (fsite1: fcla×2; fsite2: fclb×2 + fclc×1), jobs start after 1 s."""
    spec = default_spec(2, (2, 3))
    spec = LabSpec(sites=spec.sites, start_delay_s=1.0, kadeploy_s=0.2)
    state = lab_mod.up(spec, tmp_path / "lab")
    try:
        yield Lab(state=state, tmp=tmp_path)
    finally:
        lab_mod.down(tmp_path / "lab")
