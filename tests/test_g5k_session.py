"""execo's set-up and ``run``: statuses decoded from real processes, and ``run`` over real
ssh to loopback (``sshd -i`` per connection through ``ProxyCommand``) when sshd exists."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.g5k import session
from deploy.g5k.config import parse_experiment
from deploy.g5k.session import SSH_FAILURE, RunResult, decode_status, result_of

SSHD = Path("/usr/sbin/sshd")


def _local(command: str) -> object:
    from execo import Process

    p = Process(command, shell=True, ignore_exit_code=True, nolog_exit_code=True)
    p.run()
    return p


def test_decoding_real_wait_statuses() -> None:
    p = _local("exit 3")
    assert p.exit_code == 768  # type: ignore[attr-defined]  # the raw wait status
    assert result_of("h", p) == RunResult("h", 3, "")
    assert result_of("h", _local("kill -9 $$")).status == -9
    assert result_of("h", _local("exit 255")).status == SSH_FAILURE
    assert decode_status(None) == SSH_FAILURE


def test_output_loses_carriage_returns() -> None:
    assert result_of("h", _local(r"printf 'a\r\nb\r\n'")).output == "a\nb\n"


def test_configure_sets_both_connection_dicts_and_resets_state(tmp_path: Path) -> None:
    import execo.config
    import execo_g5k.api_utils as api_utils
    import execo_g5k.config
    import execo_g5k.planning as planning

    exp = parse_experiment({"platform": {"api_uri": "http://127.0.0.1:9/3.0/",
                                         "ssh_config": str(tmp_path / "cfg"), "poll_s": 1,
                                         "check_deployed_command": "test -e /x"}})
    api_utils._data = {"stale": True}
    execo_g5k.config.g5k_configuration["api_additional_args"]["leak"] = "1"
    session.configure(exp, tmp_path)
    node = execo.config.default_connection_params
    front = execo_g5k.config.default_frontend_connection_params
    assert node["ssh_options"][-2:] == ("-F", str(tmp_path / "cfg"))
    assert front["ssh_options"] == node["ssh_options"] and node["user"] == "root"
    assert front["scp_options"][-2:] == ("-F", str(tmp_path / "cfg"))
    conf = execo_g5k.config.g5k_configuration
    assert conf["api_uri"] == "http://127.0.0.1:9/3.0/" and conf["api_additional_args"] == {}
    assert conf["polling_interval"] == 1 and conf["check_deployed_command"] == "test -e /x"
    assert planning._retrieve_method == "API" and api_utils._data is None
    assert api_utils._g5k_api.base_uri == "http://127.0.0.1:9/3.0"
    assert api_utils.get_api_data.__defaults__ == (str(tmp_path / "api-cache") + "/",)
    assert session.frontend_host("fsite1") == "fsite1.grid5000.fr"
    session.configure(parse_experiment({}), tmp_path)  # back to execo's default check
    assert conf["check_deployed_command"].startswith("! (mount")


@pytest.fixture
def loopback_ssh(tmp_path: Path) -> Path:
    """An ssh_config whose ``*.grid5000.fr`` hosts are this machine via ``sshd -i``."""
    if not SSHD.exists() or not Path("/run/sshd").is_dir() or not shutil.which("ssh-keygen"):
        pytest.skip("no sshd here (g5k-lab's tests cover run() over ssh)")
    for name in ("key", "hostkey"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(tmp_path / name)], check=True)
    (tmp_path / "authorized_keys").write_text((tmp_path / "key.pub").read_text())
    (tmp_path / "sshd_config").write_text(
        f"HostKey {tmp_path}/hostkey\nAuthorizedKeysFile {tmp_path}/authorized_keys\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n")
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host down.fsite1.grid5000.fr\n  ProxyCommand false\n"
        f"Host *.grid5000.fr\n  ProxyCommand {SSHD} -i -f {tmp_path}/sshd_config\n"
        f"  User root\n  IdentityFile {tmp_path}/key\n  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n")
    session.configure(parse_experiment({"platform": {"ssh_config": str(config)}}), tmp_path)
    return config


@pytest.mark.usefixtures("loopback_ssh")
def test_run_over_real_ssh() -> None:
    hosts = ["fcla-1.fsite1.grid5000.fr", "down.fsite1.grid5000.fr", "fcla-2.fsite1.grid5000.fr"]
    results = session.run(hosts, "echo out; echo err >&2; echo '{{host}}'; exit 3")
    assert [r.host for r in results] == hosts  # the hosts' order
    assert results[0] == RunResult(hosts[0], 3, "out\nerr\n{{host}}\n")  # -tt merges stderr
    assert results[1].status == SSH_FAILURE
    assert results[2].status == 3
    [front] = session.run(["fsite1"], "echo $SSH_CONNECTION | wc -w", frontend=True)
    assert (front.status, front.output) == (0, "4\n")  # rewritten fsite1.grid5000.fr, -F
    [slow] = session.run(["fcla-1.fsite1.grid5000.fr"], "sleep 10", timeout_s=0.5)
    assert slow.status == SSH_FAILURE
