"""`dvms simulate --live`: a real-time simulation served to the dashboard over HTTP."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

DVMS = [sys.executable, "-m", "dvms"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_speed_is_one_line_and_exit_2() -> None:
    done = subprocess.run(
        [*DVMS, "simulate", "--live", "--speed", "0"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["dvms simulate: error: --speed 0.0: must be > 0"]


@pytest.mark.slow
def test_live_simulation_is_served_and_writes_its_run(tmp_path: Path) -> None:
    port = _free_port()
    out = tmp_path / "live"
    proc = subprocess.Popen(
        [
            *DVMS,
            "simulate",
            "--live",
            "--speed",
            "40",
            "--hosts",
            "18",
            "--duration",
            "60",
            "--port",
            str(port),
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        page, status = "", {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                base = f"http://127.0.0.1:{port}"
                page = urllib.request.urlopen(f"{base}/", timeout=2).read().decode()
                status = json.loads(urllib.request.urlopen(f"{base}/api/status", timeout=2).read())
                if (out / "summary.json").exists():
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert "<html" in page
        assert status.get("hosts") == 18, status
        assert (out / "summary.json").exists(), "the live run did not finish within 60 s"
        summary = json.loads((out / "summary.json").read_text())
        assert summary["hosts"] == 18 and summary["duration_s"] == 60.0
        assert summary["vms_lost"] == 0
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
