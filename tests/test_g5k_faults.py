"""Every fault of issue 12's acceptance 3, on the lab: one error line naming the site or
host (or the field, for bad config), the right exit status, and nothing left reserved.

Faults are flipped at run time through the lab's fault switches; every command is the
real ``python -m dvms g5k`` talking to the stand-ins through execo (ssh to ``sshd -i``,
HTTP to the fake API).
"""

from __future__ import annotations

import pytest

from tests.g5k_lab import Lab, error_line, lab, needs_sshd

__all__ = ["lab"]

pytestmark = [needs_sshd]


def _nothing_reserved(lab: Lab) -> None:
    """After a release, the lab holds no live job and the state says every job is gone."""
    again = lab.dvms("release", str(lab.tmp / "exp.toml"))
    assert again.returncode == 0, again.stderr
    assert {j["state"] for j in lab.jobs().values()} <= {"Error", "Terminated"}
    st = lab.state_json()
    assert all(j["state"] in ("deleted", "refused") for j in st["jobs"]), st["jobs"]
    last = lab.dvms("release", str(lab.tmp / "exp.toml"))
    assert last.returncode == 0 and "nothing" in last.stdout, last.stderr


# -- the API ---------------------------------------------------------------------------


def test_api_down_without_cache(lab: Lab) -> None:
    lab.fault(api_down=True)
    proc = lab.dvms("plan", str(lab.experiment()))
    assert proc.returncode == 1
    line = error_line(proc)
    assert f"API {lab.state.api_uri}" in line and "unreachable" in line
    assert "127.0.0.1" in line


def test_one_site_api_503(lab: Lab) -> None:
    lab.fault(api_503_sites=["fsite2"])
    proc = lab.dvms("plan", str(lab.experiment()))
    assert proc.returncode == 1
    line = error_line(proc)
    assert "fsite2" in line and "503" in line and "no slot" not in line.lower()


def test_one_site_api_malformed(lab: Lab) -> None:
    lab.fault(api_malformed_sites=["fsite1"])
    proc = lab.dvms("plan", str(lab.experiment()))
    assert proc.returncode == 1
    assert "fsite1" in error_line(proc)


# -- reservation -----------------------------------------------------------------------


@pytest.mark.slow
def test_oarsub_refused_on_one_site_deletes_the_other(lab: Lab) -> None:
    lab.fault(refuse_sites={"fsite2": "# ADMISSION RULE ERROR: too many jobs (lab rule)"})
    proc = lab.dvms("reserve", str(lab.experiment()))
    assert proc.returncode == 1
    line = error_line(proc)
    assert "site fsite2" in line and "too many jobs (lab rule)" in line
    jobs = lab.jobs()
    assert [j["site"] for j in jobs.values()] == ["fsite1"]  # fsite2 never got one
    assert {j["state"] for j in jobs.values()} == {"Error"}  # fsite1's was deleted
    assert any(" oardel " in c and "fsite1" in c for c in lab.commands())
    _nothing_reserved(lab)


@pytest.mark.slow
def test_job_waiting_past_start_timeout_is_released(lab: Lab) -> None:
    lab.fault(never_start_sites=["fsite2"])
    proc = lab.dvms("reserve", str(lab.experiment(reservation={"start_timeout_s": 3})))
    assert proc.returncode == 1
    line = error_line(proc)
    assert "site fsite2" in line and "Waiting" in line and "start_timeout_s = 3" in line
    assert len(lab.jobs()) == 2
    _nothing_reserved(lab)


@pytest.mark.slow
def test_job_in_error_is_released(lab: Lab) -> None:
    lab.fault(error_sites=["fsite1"])
    proc = lab.dvms("reserve", str(lab.experiment()))
    assert proc.returncode == 1
    line = error_line(proc)
    assert "site fsite1" in line and "Error" in line
    _nothing_reserved(lab)


@pytest.mark.slow
def test_frontend_unreachable(lab: Lab) -> None:
    """fsite2's frontend does not answer: fsite1's job is deleted; fsite2 may hold one
    (the connection failed, not OAR), so release keeps asking until the frontend answers."""
    lab.fault(frontend_down_sites=["fsite2"])
    exp = str(lab.experiment())
    proc = lab.dvms("reserve", exp)
    assert proc.returncode == 1
    line = error_line(proc)
    assert line.startswith("dvms g5k: error: frontend fsite2.grid5000.fr unreachable")
    assert "deleted jobs: fsite1:" in line and "run release again" in line
    assert {j["site"]: j["state"] for j in lab.state_json()["jobs"]} == {
        "fsite1": "deleted", "fsite2": "submitting"}
    still = lab.dvms("release", exp)
    assert still.returncode == 1
    assert "frontend fsite2.grid5000.fr unreachable" in error_line(still)
    lab.clear_faults()
    _nothing_reserved(lab)


@pytest.mark.slow
def test_kavlan_asked_but_none_returned(lab: Lab) -> None:
    lab.fault(no_kavlan=True)
    proc = lab.dvms("reserve", str(lab.experiment()))
    assert proc.returncode == 1
    line = error_line(proc)
    assert "site fsite1" in line and "KaVLAN" in line
    _nothing_reserved(lab)


# -- deployment ------------------------------------------------------------------------


def _reserved(lab: Lab, **hosts: object) -> str:
    exp = str(lab.experiment(hosts=dict(hosts)))
    proc = lab.dvms("reserve", exp)
    assert proc.returncode == 0, proc.stderr
    return exp


@pytest.mark.slow
def test_kadeploy_fails_every_node_of_a_site(lab: Lab) -> None:
    exp = _reserved(lab, min_hosts_ratio=0.8, deploy_tries=1)
    lab.fault(kadeploy_fail_sites=["fsite2"])
    proc = lab.dvms("deploy", exp)
    assert proc.returncode == 1
    line = error_line(proc)
    assert "site fsite2" in line and "every node failed" in line and "2 of 4" in line
    assert "site fsite2 dropped" in proc.stderr
    ko = lab.state_json()["hosts"]["ko"]
    assert sorted(ko) == ["fclb-1.fsite2.grid5000.fr", "fclb-2.fsite2.grid5000.fr"]
    assert {h["step"] for h in ko.values()} == {"kadeploy"}
    # the state is kept for release, which deletes both jobs
    rel = lab.dvms("release", exp)
    assert rel.returncode == 0 and "fsite1:" in rel.stdout and "fsite2:" in rel.stdout
    _nothing_reserved(lab)


@pytest.mark.slow
def test_site_dropped_above_the_ratio_continues(lab: Lab) -> None:
    exp = _reserved(lab, min_hosts_ratio=0.5, deploy_tries=1)
    lab.fault(kadeploy_fail_sites=["fsite1"])
    proc = lab.dvms("deploy", exp)
    assert proc.returncode == 0, proc.stderr
    assert "site fsite1 dropped" in proc.stderr
    assert sorted(lab.state_json()["hosts"]["ok"]) == ["fclb-1.fsite2.grid5000.fr",
                                                       "fclb-2.fsite2.grid5000.fr"]
    assert lab.dvms("release", exp).returncode == 0


@pytest.mark.slow
def test_kadeploy_output_unparseable(lab: Lab) -> None:
    exp = _reserved(lab, deploy_tries=1)
    lab.fault(kadeploy_garbage_sites=["fsite1"])
    proc = lab.dvms("deploy", exp)
    assert proc.returncode == 1
    line = error_line(proc)
    assert "site fsite1" in line and "unparseable" in line and "502 Bad Gateway" in line
    ko = lab.state_json()["hosts"]["ko"]
    assert sorted(ko) == ["fcla-1.fsite1.grid5000.fr", "fcla-2.fsite1.grid5000.fr"]
    assert lab.dvms("release", exp).returncode == 0
    _nothing_reserved(lab)


# -- bad config values -----------------------------------------------------------------


@pytest.mark.parametrize(("table", "values", "expected"), [
    ("reservation", {"mode": "fre"}, "reservation.mode = 'fre'"),
    ("reservation", {"resources": ["grid5000:abc"]}, "reservation.resources[0] = "
                                                     "'grid5000:abc'"),
    ("reservation", {"resources": ["unknown:3"]}, "unknown"),
    ("reservation", {"blacklist": ["nosuchcluster"]}, "reservation.blacklist[0] = "
                                                      "'nosuchcluster'"),
    ("reservation", {"walltime": "25:61"}, "reservation.walltime = '25:61'"),
    ("reservation", {"walltime": "12h"}, "reservation.walltime = '12h'"),
    ("reservation", {"walltime": "0:00:00"}, "reservation.walltime = '0:00:00'"),
    ("hosts", {"min_hosts_ratio": 1.5}, "hosts.min_hosts_ratio"),
    ("top", {"colour": "blue"}, "colour"),
])
def test_bad_config_is_one_line_exit_2(lab: Lab, table: str, values: dict[str, object],
                                       expected: str) -> None:
    exp = lab.experiment(**{table: values})
    for action in ("plan", "reserve"):
        proc = lab.dvms(action, str(exp))
        assert proc.returncode == 2, proc.stderr
        assert expected in error_line(proc)
    assert not lab.commands()  # nothing reached a frontend


@pytest.mark.slow
def test_a_later_host_step_fails_on_one_host(lab: Lab) -> None:
    exp = _reserved(lab, min_hosts_ratio=0.2, packages=["cpulimit"], deploy_tries=1)
    lab.fault(apt_fail_nodes=["fcla-1"])
    proc = lab.dvms("deploy", exp)
    st = lab.state_json()
    ko = st["hosts"]["ko"]["fcla-1.fsite1.grid5000.fr"]
    assert ko["step"] == "packages" and "Unable to locate package cpulimit" in ko["reason"]
    for node in ("fcla-2", "fclb-1", "fclb-2"):  # the others got the package (lab's apt-get)
        assert (lab.dir / "nodes" / node / "packages").read_text().split() == ["cpulimit"]
    assert not (lab.dir / "nodes" / "fcla-1" / "packages").exists()
    assert st["steps"]["libvirt"]["status"] in ("done", "failed")
    if proc.returncode != 0:  # no libvirtd on this machine: every host KO at that step
        assert "fcla-1" in error_line(proc) or "libvirt" in error_line(proc)
    assert lab.dvms("release", exp).returncode == 0


@pytest.mark.slow
def test_kadeploy_hangs_past_the_deploy_timeout(lab: Lab) -> None:
    exp = _reserved(lab, min_hosts_ratio=0.5, deploy_tries=1, deploy_timeout_s=3)
    lab.fault(kadeploy_hang_sites=["fsite2"])
    proc = lab.dvms("deploy", exp)
    assert proc.returncode == 0, proc.stderr
    st = lab.state_json()
    assert sorted(st["hosts"]["ok"]) == ["fcla-1.fsite1.grid5000.fr",
                                         "fcla-2.fsite1.grid5000.fr"]
    ko = st["hosts"]["ko"]
    assert sorted(ko) == ["fclb-1.fsite2.grid5000.fr", "fclb-2.fsite2.grid5000.fr"]
    assert all("fsite2 timed out after deploy_timeout_s = 3 s" in h["reason"]
               for h in ko.values())
    lab.clear_faults()
    assert lab.dvms("release", exp).returncode == 0


@pytest.mark.slow
def test_subnets_asked_but_none_returned(lab: Lab) -> None:
    lab.fault(no_subnets=True)
    exp = lab.experiment(reservation={"kavlan": False, "subnets": "slash_22=1"})
    proc = lab.dvms("reserve", str(exp))
    assert proc.returncode == 1
    line = error_line(proc)
    assert "subnets asked but g5k-subnets returned none" in line
    assert "site fsite1" in line or "site fsite2" in line
    _nothing_reserved(lab)
