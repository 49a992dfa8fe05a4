"""execo's set-up for one platform, and one helper to run a command on hosts.

execo keeps process-wide state (module dicts, cached singletons, a cache directory bound
at import); ``configure`` sets all of it from an experiment's ``[platform]`` table and
resets what a previous run left. ``run`` is one ssh per host through execo's ``Remote``,
with the exit status decoded (execo's ``exit_code`` is the raw wait status).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.g5k.config import Experiment

__all__ = [
    "SSH_FAILURE",
    "RunResult",
    "configure",
    "decode_status",
    "frontend_host",
    "result_of",
    "run",
]

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


def _ssh_options(ssh_config: str, key: str) -> tuple[str, ...]:
    from execo.config import make_default_connection_params

    options = tuple(make_default_connection_params()[key])
    if ssh_config:
        options += ("-F", str(Path(ssh_config).expanduser()))
    return options


def configure(exp: Experiment, workdir: Path) -> None:
    """Set execo's and execo_g5k's configuration for ``exp.platform``; reset cached state.

    Both connection dicts get the ssh config (execo builds frontend parameters from a
    *fresh* default, so the node dict alone would not reach frontends); planning reads
    the API, never PostgreSQL; the API data, the API connection and the default frontend
    cached by a previous run are dropped; execo's API cache goes to ``cache_dir`` (execo
    binds it at import from ``$HOME``, as a default argument: it is rebound here).
    """
    import execo.config
    import execo_g5k.api_utils as api_utils
    import execo_g5k.config
    import execo_g5k.planning as planning
    import execo_g5k.utils as g5k_utils

    p = exp.platform
    cache = Path(p.cache_dir).expanduser() if p.cache_dir else Path(workdir) / "api-cache"
    cache.mkdir(parents=True, exist_ok=True)
    ssh = _ssh_options(p.ssh_config, "ssh_options")
    scp = _ssh_options(p.ssh_config, "scp_options")
    execo.config.default_connection_params.update(
        ssh_options=ssh, scp_options=scp, user=p.ssh_user or None
    )
    frontend = execo_g5k.config.default_frontend_connection_params
    frontend.update(ssh_options=ssh, scp_options=scp)
    conf: dict[str, Any] = execo_g5k.config.g5k_configuration
    conf.update(
        api_uri=p.api_uri,
        api_username=p.api_user or None,
        api_timeout=p.api_timeout_s,
        api_additional_args={},  # APIConnection updates this very dict in place
        default_frontend=None,
        no_ssh_for_local_frontend=False,
        polling_interval=p.poll_s,
        tiny_polling_interval=p.poll_s,
        default_timeout=p.frontend_timeout_s,
    )
    if p.check_deployed_command:
        conf["check_deployed_command"] = p.check_deployed_command
    else:
        conf["check_deployed_command"] = _EXECO_CHECK
    planning._retrieve_method = "API"
    cache_dir = str(cache) + "/"  # execo concatenates file names to it
    api_utils._cache_dir = cache_dir
    api_utils.get_api_data.__defaults__ = (cache_dir,)
    with api_utils._data_lock:
        api_utils._data = None
    with api_utils._g5k_api_lock:
        api_utils._g5k_api = api_utils.APIConnection(
            base_uri=p.api_uri, username=p.api_user or None, timeout=p.api_timeout_s
        )
    # module-private names of execo_g5k.utils (not mangled at module level)
    setattr(g5k_utils, "__default_frontend", None)
    setattr(g5k_utils, "__default_frontend_cached", False)


def _execo_default_check() -> str:
    import execo_g5k.config

    return str(execo_g5k.config.g5k_configuration["check_deployed_command"])


_EXECO_CHECK = _execo_default_check()


def decode_status(exit_code: int | None) -> int:
    """execo's raw wait status → an exit status (None, i.e. never started → 255)."""
    if exit_code is None:
        return SSH_FAILURE
    return os.waitstatus_to_exitcode(exit_code)


def frontend_host(site: str) -> str:
    """The frontend execo_g5k connects to for ``site`` (``SITE.grid5000.fr``)."""
    import execo_g5k.config

    rewrite = execo_g5k.config.default_frontend_connection_params.get("host_rewrite_func")
    return str(rewrite(site)) if rewrite else site


def result_of(host: str, process: Any) -> RunResult:
    """One finished execo process → ``RunResult`` (status decoded, ``\r`` stripped)."""
    status = decode_status(process.exit_code)
    if process.error and process.exit_code is None:
        status = SSH_FAILURE
    return RunResult(host, status, (process.stdout or "").replace("\r", ""))


def run(
    hosts: Sequence[str],
    command: str,
    *,
    frontend: bool = False,
    timeout_s: float | None = None,
) -> list[RunResult]:
    """Run ``command`` on every host (one ssh each, in parallel), results in the hosts' order.

    ``frontend=True`` uses execo_g5k's frontend connection parameters (hosts are site
    names then, rewritten ``SITE.grid5000.fr``). The command is passed verbatim: execo's
    ``{{...}}`` substitution (which ``eval``s) is never applied. A timed-out host is
    killed and reported with status 255.
    """
    from execo import Host, SshProcess
    from execo.config import make_connection_params

    if frontend:
        import execo_g5k.config

        params = make_connection_params(
            None, execo_g5k.config.default_frontend_connection_params
        )
    else:
        params = make_connection_params()
    processes = [
        SshProcess(command, Host(h), connection_params=params, timeout=timeout_s,
                   ignore_exit_code=True, nolog_exit_code=True, nolog_timeout=True,
                   nolog_error=True)
        for h in hosts
    ]
    for p in processes:
        p.start()
    results = []
    for h, p in zip(hosts, processes, strict=True):
        p.wait()
        r = result_of(h, p)
        results.append(RunResult(h, SSH_FAILURE, r.output) if p.timeouted else r)
    return results
