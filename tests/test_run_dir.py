"""Run directories users can trust: written as a whole, never reused silently, interrupted
runs saying so; and the CLI's one-line errors (real processes, real signals)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dvms.app.cli import main
from dvms.app.live import LiveStop, start_live
from dvms.summary import validate_summary
from dvms.trace import read_events
from sim.run import simulate
from sim.scenario import load_scenario

DVMS = [sys.executable, "-m", "dvms"]
SMALL = ["--hosts", "9", "--duration", "60", "--quiet"]


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, list[str]]:
    """Run ``dvms ARGV`` in this process: exit status, stdout, stderr lines."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err.strip().splitlines()


def _summary(run: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((run / "summary.json").read_text())
    return data


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name)


def test_reused_out_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    out = tmp_path / "run"
    assert _cli(["simulate", *SMALL, "--out", str(out)], capsys)[0] == 0
    before = (out / "summary.json").read_bytes()
    rc, _, err = _cli(["simulate", *SMALL, "--seed", "9", "--out", str(out)], capsys)
    assert rc == 2
    assert err == [f"dvms simulate: error: --out {str(out)!r}: already exists; choose another "
                   "directory or pass --force to replace it"]
    assert (out / "summary.json").read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_force_replaces_the_run_and_leaves_no_stale_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _cli(["simulate", *SMALL, "--out", str(out)], capsys)[0] == 0
    assert (out / "events.jsonl.gz").exists()
    plain = tmp_path / "plain.toml"
    plain.write_text("[run]\nseed = 7\n[trace]\ncompress = false\n")
    rc, _, err = _cli(["simulate", str(plain), *SMALL, "--out", str(out), "--force"], capsys)
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["events.jsonl", "scenario.toml",
                                                     "summary.json"]
    assert _summary(out)["seed"] == 7
    rc, _, err = _cli(["report", str(out), "--out", str(tmp_path / "rep")], capsys)
    assert rc == 0 and err == []  # a complete run: no warning
    assert _leftovers(tmp_path) == []


def test_force_replaces_only_a_run_directory(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.tex").write_text("precious")
    rc, _, err = _cli(["simulate", *SMALL, "--out", str(notes), "--force"], capsys)
    assert rc == 2 and len(err) == 1 and "--force only replaces a run directory" in err[0]
    assert (notes / "thesis.tex").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty directory holds no run: it is used as is
    assert _cli(["simulate", *SMALL, "--out", str(empty)], capsys)[0] == 0
    assert (empty / "summary.json").exists()


def _start(out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*DVMS, "simulate", "--hosts", "1000", "--duration", "3600", "--scheduler", "dvms",
         "--quiet", "--out", str(out), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_running(proc: subprocess.Popen[str], parent: Path) -> None:
    deadline = time.monotonic() + 60
    while not _leftovers(parent):  # the temporary directory appears once the run starts
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.1)
    time.sleep(1.5)  # well inside the run (it takes minutes)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_run_leaves_an_interrupted_run_that_report_names(
    tmp_path: Path, sig: signal.Signals
) -> None:
    out = tmp_path / "run"
    proc = _start(out)
    try:
        _wait_running(proc, tmp_path)
        assert not out.exists()  # nothing at --out until the run's files are closed
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert stderr.strip().splitlines() == [
        f"dvms simulate: error: interrupted; partial run in {out}/ (summary.json status "
        '"interrupted")']
    summary = _summary(out)
    assert summary["status"] == "interrupted" and summary["exception"] is None
    assert validate_summary(summary) == []
    reached = summary["simulated_s"]
    assert isinstance(reached, float) and 0 < reached < 3600
    trace = list(read_events(out / "events.jsonl.gz"))  # closed properly: readable to the end
    assert trace[-1]["type"] == "power" and trace[-1]["t"] == pytest.approx(reached)
    assert summary["violations"] == sum(e["type"] == "violation.start" for e in trace)
    assert _leftovers(tmp_path) == []
    done = subprocess.run([*DVMS, "report", str(out), "--out", str(tmp_path / "rep")],
                          capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stderr.strip().splitlines() == [
        f"dvms report: warning: run {str(out)!r} was interrupted at t = {reached:g} s: "
        "showing what it recorded"]


def test_exception_inside_the_run_leaves_a_failed_run_and_is_raised(tmp_path: Path) -> None:
    seen = 0

    def boom(event: dict[str, object]) -> None:
        nonlocal seen
        seen += 1
        if seen == 60:
            raise RuntimeError("dashboard feed broke")

    scenario = load_scenario(None, {"infrastructure.hosts": 16, "run.duration_s": 600.0})
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="dashboard feed broke"):
        simulate(scenario, out, on_event=boom)
    summary = _summary(out)
    assert summary["status"] == "failed"
    assert summary["exception"] == "RuntimeError('dashboard feed broke')"
    assert validate_summary(summary) == []
    assert len(list(read_events(out / "events.jsonl.gz"))) == 60  # the trace up to it
    assert _leftovers(tmp_path) == []


def test_a_run_appearing_at_out_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "run"

    def other_run(event: dict[str, object]) -> None:
        if not out.exists():  # another process writes its run at the same --out
            out.mkdir()
            (out / "summary.json").write_text("{}")

    scenario = load_scenario(None, {"infrastructure.hosts": 9, "run.duration_s": 60.0})
    from dvms.errors import InputError

    with pytest.raises(InputError, match="it appeared during this run, whose files are in"):
        simulate(scenario, out, on_event=other_run)
    assert (out / "summary.json").read_text() == "{}"
    (kept,) = _leftovers(tmp_path)
    assert _summary(tmp_path / kept)["status"] == "complete"


def test_bad_input_found_before_the_run_leaves_nothing(tmp_path: Path) -> None:
    replay = tmp_path / "load.csv"
    replay.write_text("t,vm,load\n1.0,vm99999,50\n")
    scenario = load_scenario(None, {"infrastructure.hosts": 9, "load.mode": "replay",
                                    "load.replay_file": str(replay)})
    from dvms.errors import InputError

    with pytest.raises(InputError, match="unknown VM 'vm99999'"):
        simulate(scenario, tmp_path / "run")
    assert not (tmp_path / "run").exists() and _leftovers(tmp_path) == []


def test_stopping_a_live_run_leaves_it_interrupted(tmp_path: Path) -> None:
    scenario = load_scenario(None, {"infrastructure.hosts": 9, "run.duration_s": 600.0})
    stop = LiveStop()
    out = tmp_path / "live"
    source, _ = start_live(scenario, out, speed=20.0, stop=stop)
    time.sleep(1.0)
    assert stop.request(timeout_s=30)
    summary = _summary(out)
    assert summary["status"] == "interrupted"
    assert 0 < float(summary["simulated_s"]) < 600  # type: ignore[arg-type]
    assert source.feed.error is not None and "interrupted" in source.feed.error


def test_ctrl_c_on_a_live_run_leaves_it_interrupted(tmp_path: Path) -> None:
    out = tmp_path / "live"
    proc = subprocess.Popen(
        [*DVMS, "simulate", "--live", "--hosts", "18", "--duration", "600", "--speed", "10",
         "--port", "0", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the server listens and the run started
        assert "live simulation (18 hosts" in line, line
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert stderr.strip().splitlines() == [
        f'dvms simulate: error: stopped; partial run in {out}/ (summary.json status '
        '"interrupted")']
    summary = _summary(out)
    assert summary["status"] == "interrupted" and validate_summary(summary) == []
    assert _leftovers(tmp_path) == []


# ----- the CLI's one-line errors ---------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["simulate", "--hsts", "3"], "dvms simulate: error: unrecognized arguments: --hsts"),
        (["simulate", "--hosts", "x"], "argument --hosts: invalid int value: 'x'"),
        (["simulate", "--host", "16"], "--host only with --live (did you mean --hosts?)"),
        (["simulate", "--port", "9001", "--speed", "2"], "--speed, --port only with --live"),
        (["simulate", "nowhere.toml"], "nowhere.toml"),
        (["report"], "dvms report: error: the following arguments are required: RUN_DIR"),
        (["report", "nowhere"], "run directory 'nowhere' does not exist"),
        (["cluster"], "dvms cluster: error: the following arguments are required: ACTION"),
        (["dashboard", "--port", "x"], "dvms dashboard: error: argument --port"),
        (["demo", "--hosts"], "dvms demo: error: argument --hosts: expected one argument"),
        (["agent"], "dvms agent: error:"),
        (["frobnicate"], "dvms: error: argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)
def test_bad_flag_or_path_is_one_line_and_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = _cli(argv, capsys)
    assert rc == 2
    assert len(err) == 1 and needle in err[0], err


def test_out_under_a_file_or_a_file_is_one_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    note = tmp_path / "note.txt"
    note.write_text("x")
    for argv, message in [
        (["simulate", *SMALL, "--out", str(note)], f"--out {str(note)!r}: exists and is not a "
                                                   "directory"),
        (["simulate", *SMALL, "--out", str(note / "run")],
         f"--out {str(note / 'run')!r}: not a directory ({str(note)!r} is not a directory)"),
    ]:
        rc, _, err = _cli(argv, capsys)
        assert (rc, err) == (2, [f"dvms simulate: error: {message}"])
    run = tmp_path / "run"
    assert _cli(["simulate", *SMALL, "--out", str(run)], capsys)[0] == 0
    for out, message in [
        (note, f"--out {str(note)!r}: not a directory"),
        (note / "rep", f"--out {str(note / 'rep')!r}: not a directory ({str(note)!r} is not "
                       "a directory)"),
    ]:
        rc, _, err = _cli(["report", str(run), "--out", str(out)], capsys)
        assert (rc, err) == (2, [f"dvms report: error: {message}"])


def _as_nobody() -> list[str]:
    """A command prefix running as an unprivileged user (root ignores permissions)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop privileges")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_unwritable_out_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    base = Path(tempfile.mkdtemp(prefix="dvms-unwritable-"))  # reachable by an unprivileged user
    try:
        _check_unwritable(base, capsys)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _check_unwritable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert _cli(["simulate", *SMALL, "--out", str(run)], capsys)[0] == 0
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    tmp_path.chmod(0o755)
    for p in (run, *run.iterdir()):
        p.chmod(0o755 if p.is_dir() else 0o644)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
           "MPLCONFIGDIR": str(tmp_path / "mpl")}
    (tmp_path / "mpl").mkdir(mode=0o777)
    (tmp_path / "mpl").chmod(0o777)
    for argv, prefix in [
        (["report", str(run), "--out", str(locked / "rep")], "dvms report"),
        (["simulate", *SMALL, "--out", str(locked / "run")], "dvms simulate"),
    ]:
        done = subprocess.run([*_as_nobody(), *DVMS, *argv], capture_output=True, text=True,
                              env=env, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"{prefix}: error: --out {str(locked / argv[-1].rsplit('/', 1)[-1])!r}: cannot "
            f"write in {str(locked)!r} (permission denied)"]
    if _as_nobody():  # a run directory the user may not read: one line too
        private = tmp_path / "private"
        shutil.copytree(run, private)
        private.chmod(0o700)
        done = subprocess.run([*_as_nobody(), *DVMS, "report", str(private / "x")],
                              capture_output=True, text=True, env=env, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            f"dvms report: error: run directory {str(private / 'x')!r}: Permission denied"]


def test_demo_help_says_what_it_does(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _cli(["demo", "--help"], capsys)
    assert rc == 0
    text = " ".join(out.split())
    for phrase in ("Run the default simulation twice and compare",
                   "DVMS over the Locality-Based Overlay", "centralised Entropy-like baseline",
                   "256 hosts", "runs/demo", "--force", "dvms dashboard runs/demo/dvms-lbo"):
        assert phrase in text, phrase
    assert "``" not in out  # no reStructuredText markup in the terminal
