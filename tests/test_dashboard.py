"""Dashboard server: state folding, frames, replay clock, app, bind policy, bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette's note about httpx versions, not ours
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from dvms.app.cli import main
from dvms.dashboard import ClientCursor, InfraState, LiveFeed, LiveSource, Replay, load_replay
from dvms.dashboard.app import STATIC, bind_socket, create_app, is_loopback
from dvms.errors import InputError
from dvms.report.synthetic import synthetic_events, write_synthetic_run


def ev(t: float, kind: str, node: str = "world", **fields: Any) -> dict[str, Any]:
    return {"t": t, "type": kind, "node": node, **fields}


HAND = [
    ev(0, "host.info", "a", host="a", site="s1", cpu_capacity=200.0, memory_mib=4096, vms=["v1"]),
    ev(0, "host.info", "b", host="b", site="s2", cpu_capacity=200.0, memory_mib=4096, vms=[]),
    ev(0, "load", "a", vm="v1", host="a", load=100.0),
    ev(0, "load", "a", vm="v2", host="a", load=150.0),
    ev(1, "violation.start", "a", host="a", cpu_demand=250.0, cpu_capacity=200.0,
       mem_demand_mib=2048, memory_mib=4096),
    ev(2, "isp.start", "a", partition="p1", initiator="a"),
    ev(2.1, "partition.grow", "b", partition="p1", leader="b", size=2, members=["a", "b"]),
    ev(2.2, "partition.solve", "b", partition="p1", size=2, migrations=1, compute_s=0.1),
    ev(2.3, "migration.start", "a", vm="v2", src="a", dst="b", src_site="s1", dst_site="s2",
       memory_mib=1024),
    ev(3, "load", "a", vm="v2", host="a", load=50.0),
    ev(5, "power", total_w=500.0, hosts_on=2),
    ev(6, "vivaldi.coord", "a", vec=[0.0, 0.0, 0.0], height=0.001, error=0.2),
    ev(6, "vivaldi.coord", "b", vec=[1.0, 2.0, 2.0], height=0.001, error=0.2),
    ev(10.3, "migration.end", "a", vm="v2", src="a", dst="b", src_site="s1", dst_site="s2",
       duration_s=8.0, memory_mib=1024, inter_site=True),
    ev(10.3, "violation.end", "a", host="a", duration_s=9.3),
    ev(10.4, "partition.dissolve", "b", partition="p1", size=2, reason="solved",
       lifetime_s=8.4, solved=True),
    ev(11, "fault.crash", "b", host="b", vms=["v2"]),
]


def test_state_folds_events_exactly() -> None:
    state = InfraState()
    for e in HAND[:9]:
        state.apply(e)
    a = state.hosts["a"]
    assert (a.site, a.capacity, a.violated) == ("s1", 200.0, True)
    assert a.vms == {"v1": 100.0, "v2": 150.0}
    assert state.partitions == {"p1": {"leader": "b", "members": ["a", "b"], "state": "applying"}}
    assert state.migrating == {"v2": ("a", "b", True)}
    state.apply(HAND[9])  # a load change during the migration counts on the source
    assert state.hosts["a"].vms["v2"] == 50.0
    for e in HAND[10:]:
        state.apply(e)
    assert state.hosts["a"].vms == {"v1": 100.0}
    assert state.hosts["b"].vms == {"v2": 50.0}
    assert not state.hosts["a"].violated and not state.hosts["b"].alive
    assert state.vm_host == {"v1": "a", "v2": "b"}
    assert state.partitions == {} and state.migrating == {}
    c = state.counters
    assert (c["violations"], c["violations_active"], c["migrations"], c["migrations_inter_site"],
            c["migrations_intra_site"], c["isp_started"], c["isp_solved"], c["isp_failed"],
            c["crashes"], c["events"]) == (1, 0, 1, 1, 0, 1, 1, 0, 1, len(HAND))
    assert state.power_total == 500.0
    nodes, xy = state.projection()
    assert nodes == ["a", "b"]
    assert xy == [[-1.5, 0.0], [1.5, 0.0]]


def test_host_info_carries_initial_loads() -> None:
    state = InfraState()
    state.apply(ev(0, "host.info", "a", host="a", site="x", vms=["v1", "v2"], loads=[10, 20]))
    state.apply(ev(0, "host.info", "b", host="b", site="x", loads={"v3": 30.0}))
    state.apply(ev(0, "header", schema="dvms.events/1"))
    assert state.hosts["a"].vms == {"v1": 10.0, "v2": 20.0}
    assert state.hosts["b"].vms == {"v3": 30.0}
    assert state.vm_host == {"v1": "a", "v2": "a", "v3": "b"}
    assert state.counters["events"] == 2  # a header is not an event


def test_frames_full_then_delta() -> None:
    state = InfraState()
    for e in HAND[:4]:
        state.apply(e)
    cursor = ClientCursor()
    full = state.frame(cursor, {"mode": "test"})
    assert full["full"] is True and full["site_names"] == ["s1", "s2"]
    assert full["hosts"] == [["a", 0, 250.0, 200.0, 0, 1, 200.0, [100.0, 150.0]],
                             ["b", 1, 0.0, 200.0, 0, 1, 100.0, []]]
    assert [s["hosts"] for s in full["sites"]] == [1, 1]
    assert full["hosts_total"] == 2 and full["vms_total"] == 2
    empty = state.frame(cursor, {})
    assert empty["full"] is False and empty["hosts"] == [] and "coords" not in empty
    state.apply(HAND[4])
    delta = state.frame(cursor, {})
    assert [row[0] for row in delta["hosts"]] == ["a"] and delta["hosts"][0][4] == 1
    for e in HAND[5:13]:
        state.apply(e)
    delta = state.frame(cursor, {})
    assert delta["coords"]["nodes"] == ["a", "b"] and delta["coords"]["sites"] == ["s1", "s2"]
    assert delta["power_history"] == [[5.0, 500.0]]
    assert delta["partitions"] == [["p1", "b", ["a", "b"], "applying"]]
    assert delta["migrating"] == [["v2", "a", "b", 1]]
    assert state.frame(cursor, {})["power_history"] == []
    state.reset()
    assert state.frame(cursor, {})["full"] is True


def test_aggregates_per_site_above_threshold() -> None:
    state = InfraState(aggregate_above=1)
    for e in HAND[:4]:
        state.apply(e)
    frame = state.frame(ClientCursor(), {})
    assert frame["aggregated"] is True and "hosts" not in frame
    s1 = frame["sites"][0]
    assert (s1["name"], s1["hosts"], s1["vms"], s1["demand"], s1["capacity"]) == (
        "s1", 1, 2, 250.0, 200.0)
    assert s1["hist"] == [0] * 9 + [1] and s1["power_w"] == 200.0


def big_events(hosts: int, vms_per_host: int) -> list[dict[str, Any]]:
    out = [ev(0, "host.info", f"h{i:04d}", host=f"h{i:04d}", site=f"site{i % 8}",
              cpu_capacity=700.0, memory_mib=32768) for i in range(hosts)]
    out += [ev(0, "load", f"h{v % hosts:04d}", vm=f"v{v:05d}", host=f"h{v % hosts:04d}",
               load=float(10 * (v % 10))) for v in range(hosts * vms_per_host)]
    out += [ev(1, "vivaldi.coord", f"h{i:04d}", vec=[i % 7, i % 11, i % 13, 1.0], height=0.0,
               error=0.1) for i in range(hosts)]
    return out


def test_frames_stay_small_and_fast_at_1000_hosts_10000_vms() -> None:
    state = InfraState()
    for e in big_events(1000, 10):
        state.apply(e)
    cursor = ClientCursor()
    started = time.perf_counter()
    full = json.dumps(state.frame(cursor, {}), separators=(",", ":"))
    full_s = time.perf_counter() - started
    assert len(json.loads(full)["hosts"]) == 1000
    assert len(full) < 400_000, len(full)
    for k in range(20):
        state.apply(ev(2 + k, "load", "h0001", vm="v00001", host="h0001", load=float(k % 10 * 10)))
    started = time.perf_counter()
    delta = json.dumps(state.frame(cursor, {}), separators=(",", ":"))
    delta_s = time.perf_counter() - started
    assert len(json.loads(delta)["hosts"]) == 1
    assert len(delta) < 10_000, len(delta)
    assert full_s < 0.5 and delta_s < 0.1, (full_s, delta_s)
    state = InfraState()
    for e in big_events(2000, 2):
        state.apply(e)
    agg = json.dumps(state.frame(ClientCursor(), {}))
    assert json.loads(agg)["aggregated"] is True and len(agg) < 150_000


def test_replay_clock_play_pause_seek_speed() -> None:
    replay = Replay(HAND, speed=2.0, playing=True, t_end=12.0)
    replay.advance(100.0)  # first call only sets the wall reference
    assert replay.t == 0.0
    replay.advance(101.5)
    assert replay.t == 3.0 and replay.index == 10
    assert replay.state.hosts["a"].vms["v2"] == 50.0
    replay.control({"cmd": "pause"})
    replay.advance(150.0)
    assert replay.t == 3.0
    replay.control({"cmd": "seek", "t": 10.3})
    assert replay.state.counters["migrations"] == 1 and replay.index == 15
    replay.control({"cmd": "seek", "t": 2.15})
    fresh = Replay(HAND, playing=False)
    fresh.seek(2.15)
    assert replay.state.frame(ClientCursor(), {}) == fresh.state.frame(ClientCursor(), {})
    assert replay.state.partitions["p1"]["members"] == ["a", "b"]
    assert replay.state.counters["migrations"] == 0
    replay.control({"cmd": "speed", "value": 100})
    replay.control({"cmd": "play"})
    replay.advance(151.0)
    assert replay.t == 12.0 and replay.playing is False and replay.status()["finished"]
    replay.control({"cmd": "play"})  # at the end, play restarts from 0
    assert replay.t == 0.0 and replay.playing
    for bad, message in [({"cmd": "speed", "value": 0}, "speed 0"),
                         ({"cmd": "seek", "t": "x"}, "seek time 'x'"),
                         ({"cmd": "jump"}, "unknown command 'jump'")]:
        with pytest.raises(ValueError, match=message):
            replay.control(bad)


def test_backward_seek_from_checkpoints_equals_replay_from_start() -> None:
    events = synthetic_events(hosts=8, duration_s=200, seed=3)
    checkpointed = Replay(events, playing=False, checkpoint_every=50)
    checkpointed.seek(200.0)
    assert sorted(checkpointed._checkpoints) == list(range(50, len(events) + 1, 50))
    cursor = ClientCursor()
    checkpointed.state.frame(cursor, {})
    for t in (150.0, 20.5, 0.0, 199.0, 75.25, 75.0):
        backwards = t < checkpointed.t
        checkpointed.seek(t)
        fresh = Replay(events, playing=False)
        fresh.seek(t)
        full = checkpointed.state.frame(cursor, {})["full"]
        assert full or not backwards  # forwards: a delta, or full after a checkpoint jump
        ours = checkpointed.state.frame(ClientCursor(), {})
        assert ours == fresh.state.frame(ClientCursor(), {})
        assert checkpointed.index == fresh.index


def test_live_source_drains_feed_and_refuses_seek() -> None:
    feed = LiveFeed()
    source = LiveSource(feed)
    for e in HAND[:4]:
        feed.publish(e)
    source.advance(0.0)
    assert source.state.counters["events"] == 4 and feed.drain() == []
    source.control({"cmd": "pause"})
    feed(HAND[4])
    source.advance(1.0)
    assert source.state.counters["events"] == 4
    source.control({"cmd": "play"})
    source.advance(2.0)
    assert source.state.counters["violations"] == 1
    with pytest.raises(ValueError, match="a live run cannot seek"):
        source.control({"cmd": "seek", "t": 1})
    assert source.status()["t"] == 1.0  # no producer clock: the last event's time
    feed.set_clock(7.5)
    assert source.status()["t"] == 7.5
    feed.close()
    assert source.status()["finished"] is True and source.status()["mode"] == "live"
    assert source.status()["t"] == 1.0


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("run") / "r", hosts=12, duration_s=120)


def test_app_serves_assets_and_websocket(run_dir: Path) -> None:
    replay = load_replay(run_dir, speed=50.0)
    replay.playing = False
    with TestClient(create_app(replay)) as client:
        page = client.get("/")
        assert page.status_code == 200 and '<canvas id="vivaldi"' in page.text
        for asset in ("app.js", "style.css"):
            assert client.get(f"/static/{asset}").status_code == 200
        status = client.get("/api/status").json()
        assert (status["mode"], status["hosts"], status["vms"], status["t_end"]) == (
            "replay", 12, 120, 120.0)
        with client.websocket_connect("/ws") as ws:
            first = ws.receive_json()
            assert first["full"] is True and len(first["hosts"]) == 12
            assert first["status"]["playing"] is False
            ws.send_text(json.dumps({"cmd": "seek", "t": 60}))
            frame = ws.receive_json()
            assert frame["t"] == 60.0 and frame["full"] is False  # forward: a delta
            assert frame["counters"]["events"] > first["counters"]["events"]
            ws.send_text(json.dumps({"cmd": "seek", "t": 30}))
            back = ws.receive_json()
            assert back["t"] == 30.0 and back["full"] is True  # backward: state rebuilt
            assert first["counters"]["events"] < back["counters"]["events"] < frame[
                "counters"]["events"]
            ws.send_text("[1]")
            assert ws.receive_json() == {"kind": "error", "message": "a command is a JSON object"}
            ws.send_text(json.dumps({"cmd": "speed", "value": -1}))
            assert ws.receive_json()["message"].startswith("speed -1")
            ws.send_text(json.dumps({"cmd": "play"}))
            ws.receive_json()
            started = time.monotonic()
            times = []
            while time.monotonic() - started < 1.3:
                times.append(ws.receive_json()["t"])
            assert 4 <= len(times) <= 8, times  # ticker at 5 Hz
            assert times == sorted(times) and times[-1] > 30.0
        bad = client.post("/api/control", json={"cmd": "nope"})
        assert bad.status_code == 400 and "unknown command" in bad.json()["error"]


def test_assets_reference_nothing_outside() -> None:
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://|//cdn|@import|fonts\.g", text), path.name


def test_bind_policy(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    with pytest.raises(InputError, match=re.escape(
            "refusing to bind the dashboard to non-loopback address '0.0.0.0': "
            "pass --host 0.0.0.0 explicitly")):
        bind_socket("0.0.0.0", 0, explicit=False)
    sock = bind_socket("127.0.0.1", 0, explicit=False)
    try:
        port = sock.getsockname()[1]
        with pytest.raises(InputError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind_socket("127.0.0.1", port, explicit=False)
    finally:
        sock.close()


def dashboard_cli(*args: str, env: dict[str, str] | None = None,
                  timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dvms", "dashboard", *args],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def test_cli_refuses_non_loopback_unless_host_given(run_dir: Path) -> None:
    proc = dashboard_cli(str(run_dir), "--port", "0", env={"DVMS_DASHBOARD_HOST": "0.0.0.0"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "dvms dashboard: error: refusing to bind the dashboard to non-loopback address "
        "'0.0.0.0': pass --host 0.0.0.0 explicitly to expose it"]
    proc2 = subprocess.Popen(
        [sys.executable, "-m", "dvms", "dashboard", str(run_dir), "--host", "0.0.0.0",
         "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc2.stdout is not None and proc2.stderr is not None
        line = proc2.stdout.readline()
        assert re.match(r"dvms dashboard: replay of .* on http://0\.0\.0\.0:\d+/", line), line
        warning = proc2.stderr.readline()
        assert warning.startswith("dvms dashboard: warning: listening on non-loopback address "
                                  "0.0.0.0 because --host was given")
    finally:
        proc2.terminate()
        proc2.wait(timeout=10)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist"),
        ("truncated", "truncated trace"),
        ("none", "give either RUN_DIR (replay) or --simulate [options] (live run)"),
        ("rate", "--rate 9.0: must be in (0, 5]"),
        ("speed", "--speed: speed -2.0: must be in"),
    ],
)
def test_cli_bad_input_one_line_exit_2(
    setup: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_synthetic_run(tmp_path / "r", hosts=4, duration_s=30)
    args = [str(run), "--port", "0"]
    if setup == "missing":
        args[0] = str(tmp_path / "missing")
    elif setup == "truncated":
        data = (run / "events.jsonl.gz").read_bytes()
        (run / "events.jsonl.gz").write_bytes(data[: len(data) - 30])
    elif setup == "none":
        args = ["--port", "0"]
    elif setup == "rate":
        args += ["--rate", "9"]
    elif setup == "speed":
        args += ["--speed", "-2"]
    if setup == "missing":  # once through a real process, the others in this one
        proc = dashboard_cli(*args)
        status, stderr = proc.returncode, proc.stderr
    else:
        status = main(["dashboard", *args])
        stderr = capsys.readouterr().err
    assert status == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dvms dashboard: error: "), stderr
    assert message in lines[0], lines[0]


def test_synthetic_events_are_time_ordered() -> None:
    events = synthetic_events(hosts=6, duration_s=60)
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)


def test_live_simulation_feeds_the_state(tmp_path: Path) -> None:
    from dvms.app.commands.simulate import start_live_simulation

    source, what = start_live_simulation(
        ["--hosts", "18", "--duration", "60", "--scheduler", "centralized", "--seed", "4",
         "--out", str(tmp_path / "live")], speed=200.0)
    assert what.startswith("live simulation (18 hosts, 60 s at 200x real time")
    deadline = time.monotonic() + 60
    while not source.feed.closed and time.monotonic() < deadline:
        source.advance(time.monotonic())
        time.sleep(0.05)
    source.advance(time.monotonic())
    assert source.feed.closed and source.feed.error is None
    summary = json.loads((tmp_path / "live" / "summary.json").read_text())
    counters = source.state.counters
    assert counters["violations"] == summary["violations"]
    assert counters["migrations"] == summary["migrations"]
    assert len(source.state.hosts) == 18 and len(source.state.vm_host) == summary["vms"]
    assert source.status()["t"] == 60.0 and source.status()["finished"] is True


def test_bad_simulate_flags_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "--port", "0", "--simulate", "--hosts", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dvms dashboard: error: --simulate: argument --hosts: invalid int value: 'x'"]
    assert main(["dashboard", "--port", "0", "--simulate", "--scheduler", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dvms dashboard: error: ") and "nope" in err[0]
