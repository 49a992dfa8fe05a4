"""The lab flow of issue 12's acceptance 2, through the real CLI, execo and the stand-ins.

Two fake sites, ``mode = free``, ``grid5000:4``, cluster ``fclc`` blacklisted, global
KaVLAN: plan → reserve (4 nodes, none of fclc, KaVLAN 16, an address pool) → deploy with
``fclb-2`` failing kadeploy (KO, three kept) → release (both jobs deleted) → release again
(no-op). No mock in the path: every step is ``python -m dvms g5k`` over ssh (real ``sshd
-i``) and HTTP to the lab, which logs what it was asked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.g5k.config import paris_date
from deploy.g5k.lab import lab as lab_mod
from deploy.g5k.lab.jobs import JobStore
from deploy.g5k.lab.spec import LabCluster, LabNode, LabSite, LabSpec
from deploy.g5k.oarspec import check_resources
from deploy.g5k.state import ExperimentState, JobRecord
from tests.g5k_lab import Lab, lab, needs_sshd

__all__ = ["lab"]

pytestmark = [needs_sshd]


@pytest.mark.slow
def test_plan_reserve_deploy_release(lab: Lab) -> None:
    exp = lab.experiment()
    t0 = time.monotonic()
    took: dict[str, float] = {}

    def timed(action: str, *args: str) -> subprocess.CompletedProcess[str]:
        t = time.monotonic()
        proc = lab.dvms(action, *args)
        took[action] = took.get(action, 0.0) + time.monotonic() - t
        return proc

    plan = timed("plan", str(exp), "--json")
    assert plan.returncode == 0, plan.stderr
    doc = json.loads(plan.stdout)
    assert doc["counts"] == {"fsite1": 2, "fsite2": 2}
    assert doc["kavlan_site"] == "fsite1"
    for req in doc["requests"].values():
        text = f"{req['resources']},walltime={req['walltime']}"
        check_resources(text)  # OAR 2.5's grammar accepts it, no constraint is lost
        assert "+," not in text and not req["resources"].endswith("+")
    assert "cluster NOT IN ('fclc')" in doc["requests"]["fsite2"]["resources"]
    assert not lab.commands(), "plan must not touch the frontends"
    assert not (lab.workdir / "state.json").exists()

    reserve = timed("reserve", str(exp))
    assert reserve.returncode == 0, reserve.stderr
    assert "waiting for job" in reserve.stderr  # progress on the wait
    st = lab.state_json()
    hosts = st["hosts"]["ok"]
    assert len(hosts) == 4 and not st["hosts"]["ko"]
    assert not any(h.startswith("fclc-") for h in hosts)
    assert {h["site"] for h in hosts.values()} == {"fsite1", "fsite2"}
    assert st["network"]["vlan"] == 16 and st["network"]["kavlan_site"] == "fsite1"
    pool = json.loads((lab.workdir / "pool.json").read_text())
    assert st["network"]["pool_size"] == len(pool) >= 6
    assert pool[0][0] == "10.27.216.1" and pool[0][1].startswith("00:20:4e:")
    jobs = lab.jobs()
    assert len(jobs) == 2 and {j["state"] for j in jobs.values()} == {"Running"}
    assert {j["site"] for j in jobs.values()} == {"fsite1", "fsite2"}
    assert sorted(n for j in jobs.values() for n in j["nodes"]) == sorted(hosts)

    fault = lab.dvms("lab", "fault", "kadeploy_fail_nodes", "fclb-2", "--workdir", str(lab.dir))
    assert fault.returncode == 0, fault.stderr
    deploy = timed("deploy", str(exp))
    assert deploy.returncode == 0, deploy.stderr
    st = lab.state_json()
    assert sorted(st["hosts"]["ok"]) == ["fcla-1.fsite1.grid5000.fr",
                                         "fcla-2.fsite1.grid5000.fr",
                                         "fclb-1.fsite2.grid5000.fr"]
    ko = st["hosts"]["ko"]["fclb-2.fsite2.grid5000.fr"]
    assert ko["step"] == "kadeploy" and "Not enough nodes rebooted" in ko["reason"]
    assert {h["state"] for h in st["hosts"]["ok"].values()} == {"ready"}
    assert st["steps"]["libvirt"]["status"] == "skipped"
    assert sorted(lab.status()["deployed"]) == ["fcla-1", "fcla-2", "fclb-1"]
    kadeploys = [c for c in lab.commands() if " kadeploy3 " in c]
    assert any("--vlan 16" in c and "fclb-2.fsite2.grid5000.fr" in c for c in kadeploys)
    assert len([c for c in kadeploys if "fclb-2" in c]) == 2  # deploy_tries = 2

    release = timed("release", str(exp))
    assert release.returncode == 0, release.stderr
    elapsed = time.monotonic() - t0
    assert {j["state"] for j in lab.jobs().values()} == {"Error"}  # oardel'ed
    assert sorted(c.split()[2:] for c in lab.commands() if " oardel " in c) == [
        ["oardel", str(i)] for i in sorted(jobs)]
    again = lab.dvms("release", str(exp))
    assert again.returncode == 0 and "nothing" in again.stdout
    assert len([c for c in lab.commands() if " oardel " in c]) == 2

    status = lab.dvms("status")
    assert status.returncode == 0
    doc = json.loads(status.stdout)
    assert {j["state"] for j in doc["jobs"]} == {"deleted"}
    assert set(doc["steps"]) >= {"reserve", "deploy", "release"}
    print(f"lab flow plan -> reserve -> deploy -> release: {elapsed:.1f} s with the checks; "
          + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()))
    assert elapsed <= 60


def test_lab_down_leaves_nothing_running(lab: Lab) -> None:
    pid = lab.state.api_pid
    assert pid is not None and Path(f"/proc/{pid}").exists()
    status = lab.dvms("lab", "status", "--workdir", str(lab.dir))
    assert status.returncode == 0 and json.loads(status.stdout)["up"] is True
    assert lab_mod.down(lab.dir) == ["api"]
    time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert lab_mod._lab_processes(lab.dir) == []
    assert lab_mod.down(lab.dir) == []
    assert lab_mod.status(lab.dir)["up"] is False


@pytest.mark.slow
def test_advance_reservation_in_paris_time_from_another_zone(lab: Lab) -> None:
    """``start`` set: each site gets ``-r`` at the slot's Europe/Paris date, whatever the
    machine's zone, and the jobs start then (not at submission)."""
    start = int(time.time()) + 10  # margin for the CLI's start-up on a busy machine
    exp = lab.experiment(reservation={"start": paris_date(start), "kavlan": False,
                                      "blacklist": []})
    tz = {"TZ": "America/New_York"}
    proc = lab.dvms("reserve", str(exp), env=tz)
    assert proc.returncode == 0, proc.stderr
    lines = [j["request"] for j in lab.state_json()["jobs"]]
    assert all(f'-r "{paris_date(start)}"' in ln for ln in lines), lines
    jobs = JobStore(lab.dir).read()
    # at the date asked, to the second (a job as soon as possible starts at its submission
    # time + the lab's delay, with a fraction of a second)
    assert {j.start for j in jobs.values()} == {float(start)}
    assert lab.dvms("release", str(exp), env=tz).returncode == 0


def test_release_finds_a_job_whose_submission_was_interrupted(lab: Lab) -> None:
    """A job recorded as ``submitting`` (the process died before oarsub's answer) is found
    by the experiment's name on its site and deleted."""
    exp = lab.experiment()
    out = subprocess.run(
        ["ssh", "-F", str(lab.state.ssh_config), "fsite2.grid5000.fr",
         "oarsub -l nodes=1,walltime=0:10:00 -t deploy -n labexp 'sleep 31536000'"],
        capture_output=True, text=True, timeout=30)
    assert "OAR_JOB_ID=" in out.stdout, out.stderr
    job_id = int(out.stdout.split("OAR_JOB_ID=")[1].split()[0])
    state = ExperimentState(workdir=lab.workdir.resolve(), name="labexp",
                            jobs=[JobRecord(site="fsite2")])
    state.save()
    proc = lab.dvms("release", str(exp))
    assert proc.returncode == 0, proc.stderr
    assert f"fsite2:{job_id}" in proc.stdout
    assert lab.jobs()[job_id]["state"] == "Error"
    assert "nothing" in lab.dvms("release", str(exp)).stdout


def test_fake_oarsub_runs_oar_grammar(lab: Lab) -> None:
    """The frontends' oarsub rejects what OAR 2.5 rejects (execo's trailing ``+``), with
    OAR's message and exit status 18, and takes what dvms builds."""
    def oarsub(resources: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-F", str(lab.state.ssh_config), "fsite1.grid5000.fr",
             f"oarsub -l \"{resources}\" -t deploy -n g 'sleep 1'"],
            capture_output=True, text=True, timeout=30)

    bad = oarsub("nodes=2+{type='kavlan-global'}/vlan=1+,walltime=1:0:0")
    assert bad.returncode == 18
    assert "# Error: cannot recognize -- +,walltime=1:0:0 -- resource" in bad.stdout
    good = oarsub("{type='kavlan-global'}/vlan=1+nodes=2,walltime=1:0:0")
    assert good.returncode == 0 and "OAR_JOB_ID=" in good.stdout
    (job,) = lab.jobs().values()
    assert job["vlan"] == 16 and len(job["nodes"]) == 2
    full = oarsub("nodes=1,walltime=1:0:0")  # both fsite1 nodes are held
    assert full.returncode != 0 and "not enough resources" in full.stdout


def test_lab_cli_up_from_a_platform_file_down_twice(tmp_path: Path) -> None:
    spec = LabSpec(sites=(LabSite(name="fsx", index=0, global_vlan=None, clusters=(
        LabCluster(name="zcl", nodes=(LabNode(name="zcl-1.fsx.grid5000.fr", cores=8),)),)),))
    spec.save(tmp_path / "platform.json")
    lab_dir = tmp_path / "lab"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}

    def g5k(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dvms", "g5k", *args, "--workdir",
                               str(lab_dir)], capture_output=True, text=True, env=env,
                              timeout=60)

    try:
        up = g5k("lab", "up", "--platform", str(tmp_path / "platform.json"))
        assert up.returncode == 0, up.stderr
        assert "fsx.grid5000.fr: zcl x1" in up.stdout
        again = g5k("lab", "up")
        assert again.returncode == 2 and "already up" in again.stderr
        st = json.loads(g5k("lab", "status").stdout)
        assert st["up"] and st["sites"] == {"fsx": {"zcl": ["zcl-1.fsx.grid5000.fr"]}}
        ssh = subprocess.run(["ssh", "-F", str(lab_dir / "ssh_config"),
                              "zcl-1-kavlan-4.fsx.grid5000.fr", "echo $DVMS_NODE"],
                             capture_output=True, text=True, timeout=30)
        assert ssh.stdout.strip() == "zcl-1", ssh.stderr
        bad = g5k("lab", "fault", "no_such_fault", "1")
        assert bad.returncode == 2 and "fault 'no_such_fault'" in bad.stderr
    finally:
        down = g5k("lab", "down")
    assert down.returncode == 0 and "api" in down.stdout
    assert "nothing" in g5k("lab", "down").stdout


@pytest.mark.slow
def test_one_site_kavlan_is_routed_with_its_pool(lab: Lab) -> None:
    """KaVLAN on a single site is a routed one (``{type='kavlan'}``, VLAN 4 here), its
    VM addresses from the third octet (V−4)·64+2 of the site's block; subnets asked too."""
    exp = lab.experiment(reservation={"resources": ["fsite1:2"], "blacklist": [],
                                      "subnets": "slash_22=1"})
    proc = lab.dvms("reserve", str(exp))
    assert proc.returncode == 0, proc.stderr
    st = lab.state_json()
    assert st["network"]["vlan"] == 4 and st["network"]["kavlan_site"] == "fsite1"
    assert "{type='kavlan'}/vlan=1" in st["jobs"][0]["request"]
    assert st["network"]["subnets"]  # g5k-subnets answered for the job
    pool = json.loads((lab.workdir / "pool.json").read_text())
    assert pool[0] == ["10.16.2.1", "00:20:4e:10:02:01"]
    assert all(ip.startswith("10.16.") and ip.split(".")[3] not in ("0", "254", "255")
               for ip, _ in pool)
    assert len({mac for _, mac in pool}) == len(pool)
    assert lab.dvms("release", str(exp)).returncode == 0


@pytest.mark.slow
def test_reserve_again_after_release_starts_afresh(lab: Lab) -> None:
    exp = str(lab.experiment(reservation={"kavlan": False}, hosts={"deploy_tries": 1}))
    assert lab.dvms("reserve", exp).returncode == 0
    again = lab.dvms("reserve", exp)  # already reserved: says so, submits nothing
    assert again.returncode == 0 and "already reserved" in again.stdout
    assert len(lab.jobs()) == 2
    lab.fault(kadeploy_fail_sites=["fsite1"])
    assert lab.dvms("deploy", exp).returncode == 1  # 2 of 4 < 0.7
    assert lab.dvms("release", exp).returncode == 0
    lab.clear_faults()
    proc = lab.dvms("reserve", exp)
    assert proc.returncode == 0, proc.stderr
    st = lab.state_json()
    assert len(st["hosts"]["ok"]) == 4 and not st["hosts"]["ko"]
    assert {h["state"] for h in st["hosts"]["ok"].values()} == {"reserved"}
    assert set(st["steps"]) == {"reserve"}
    assert [j["state"] for j in st["jobs"]] == ["deleted"] * 2 + ["submitted"] * 2
    assert lab.dvms("release", exp).returncode == 0
