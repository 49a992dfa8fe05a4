"""execo's set-up for one platform, and one helper to run a command on hosts.

execo keeps process-wide state (module dicts, cached singletons, a cache directory bound
at import); ``configure`` sets all of it from an experiment's ``[platform]`` table and
resets what a previous run left. ``run`` is one ssh per host through execo's ``Remote``,
with the exit status decoded (execo's ``exit_code`` is the raw wait status).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.g5k.config import Experiment

__all__ = ["SSH_FAILURE", "RunResult", "configure", "decode_status", "frontend_host", "run"]

SSH_FAILURE = 255
"""Exit status of ``ssh`` itself failing (host unreachable, authentication refused)."""


@dataclass(frozen=True)
class RunResult:
    host: str
    """The host as given to ``run``."""
    status: int
    """Decoded exit status (``os.waitstatus_to_exitcode``); 255 = ssh failure; -N = signal N."""
    output: str
    """stdout (stderr merged by the pty), ``\\r`` stripped."""


def configure(exp: Experiment, workdir: Path) -> None:
    """Set execo's and execo_g5k's configuration for ``exp.platform``; reset cached state."""
    raise NotImplementedError


def decode_status(exit_code: int | None) -> int:
    """execo's raw wait status → an exit status (None, i.e. never started → 255)."""
    raise NotImplementedError


def frontend_host(site: str) -> str:
    """The frontend execo_g5k connects to for ``site`` (``SITE.grid5000.fr``)."""
    raise NotImplementedError


def run(
    hosts: Sequence[str],
    command: str,
    *,
    frontend: bool = False,
    timeout_s: float | None = None,
) -> list[RunResult]:
    """Run ``command`` on every host (one ssh each), results in the hosts' order.

    ``frontend=True`` uses execo_g5k's frontend connection parameters (hosts are site
    names then). The command is passed verbatim: no execo ``{{...}}`` substitution.
    """
    raise NotImplementedError
