"""Load events: VMPlaceS's seeded generator and the JSONL / talk-XML event files."""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import pytest

from deploy.g5k.load import (
    LoadConfig,
    LoadEvent,
    check_targets,
    draw_load,
    events_jsonl,
    events_xml,
    generate,
    read_events,
    replay,
)
from deploy.g5k.stress import build, parse_started, set_load_command, start_command, stop_command
from dvms.config import parse_section
from dvms.errors import InputError

VMS = [f"vm-{i}" for i in range(1, 101)]


def test_generator_is_seeded_poisson_with_slotted_loads() -> None:
    cfg = LoadConfig(duration_s=3600, period_s=300, mean=70, sd=30, slots=10)
    events = generate(VMS, cfg, seed=3)
    assert events == generate(VMS, cfg, seed=3)
    assert events != generate(VMS, cfg, seed=4)
    # rate 100 VMs / 300 s over 3600 s: 1200 events expected, sd ~35
    assert 1060 <= len(events) <= 1340
    times = [e.t for e in events]
    assert times == sorted(times) and times[0] > 0 and times[-1] <= 3600
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert statistics.mean(gaps) == pytest.approx(3.0, rel=0.1)  # exponential, mean 3 s
    assert statistics.stdev(gaps) == pytest.approx(3.0, rel=0.15)
    loads = [e.load for e in events]
    assert set(loads) <= {float(x) for x in range(0, 101, 10)}
    assert 60 <= statistics.mean(loads) <= 72  # N(70, 30) clamped to [0, 100]
    per_vm = {vm: 0 for vm in VMS}
    for e in events:
        per_vm[e.vm] += 1
    assert min(per_vm.values()) >= 1 and max(per_vm.values()) <= 30  # uniform VM choice


def test_loads_are_capped_by_vcpus_and_rounded_halves_up() -> None:
    cfg = LoadConfig(duration_s=600, period_s=10, mean=180, sd=40, slots=4)
    events = generate(["one", "two"], cfg, seed=1, vcpus={"two": 2})
    assert max(e.load for e in events if e.vm == "one") == 100
    assert max(e.load for e in events if e.vm == "two") == 200
    assert {e.load for e in events} <= {0, 25, 50, 75, 100, 125, 150, 175, 200}

    class Fixed(random.Random):
        def gauss(self, mu: float = 0, sigma: float = 1) -> float:
            return 35.0

    assert draw_load(Fixed(), 0, 0, 10, 100) == 40  # 3.5 slots → 4
    assert generate([], cfg, seed=1) == []


def test_load_config_errors_name_the_field() -> None:
    with pytest.raises(InputError, match=r"^load.period_s = 0: must be"):
        parse_section("load", LoadConfig, {"period_s": 0})
    with pytest.raises(InputError, match=r"^load.slots = 0: must be"):
        parse_section("load", LoadConfig, {"slots": 0})


def test_jsonl_file_sorted_and_line_numbers_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "ev.jsonl"
    good.write_text('{"t": 5, "vm": "vm-2", "load": 60}\n\n'
                    '{"t": 1.5, "vm": "vm-1", "load": 30}\n{"t": 5, "vm": "vm-3", "load": 0}\n')
    assert read_events(good) == [LoadEvent(1.5, "vm-1", 30, 3), LoadEvent(5, "vm-2", 60, 1),
                                 LoadEvent(5, "vm-3", 0, 4)]
    cases = [
        ('{"t": 1, "vm": "vm-1", "load": 3}\n{"t": 2, "vm": "vm-1", load: 3}\n',
         r"bad.jsonl: line 2: not JSON"),
        ('{"t": 1, "vm": "vm-1"}\n', r"line 1: expected an object with t, vm and load"),
        ('{"t": 1, "vm": "vm-1", "load": -5}\n', r"line 1: time and load must be finite"),
        ('{"t": "soon", "vm": "vm-1", "load": 5}\n', r"line 1: time and load must be numbers"),
        ('{"t": true, "vm": "vm-1", "load": 5}\n', r"line 1: time and load must be numbers"),
        ('\n\n{"t": 1, "vm": 7, "load": 5}\n', r"line 3: the VM must be a name"),
        ('{"t": 1, "vm": "a", "load": 5, "host": "x"}\n', r"line 1: unknown field 'host'"),
    ]
    bad = tmp_path / "bad.jsonl"
    for text, message in cases:
        bad.write_text(text)
        with pytest.raises(InputError, match=message):
            read_events(bad)
    with pytest.raises(InputError, match=r"^load.events = '.*absent.jsonl': cannot read"):
        read_events(tmp_path / "absent.jsonl")


TALK_XML = """<?xml version="1.0"?>
<data>
    <event type="update_cpu_load" time="0.63" target="vm-103" location="10.27.216.103" value="30"/>
    <event type="update_cpu_load" time="0.2" target="vm-7" value="70"/>
</data>
"""


def test_the_talks_xml_format(tmp_path: Path) -> None:
    path = tmp_path / "events_load.xml"
    path.write_text(TALK_XML)
    assert read_events(path) == [LoadEvent(0.2, "vm-7", 70, 4), LoadEvent(0.63, "vm-103", 30, 3)]
    cases = [
        (TALK_XML.replace('value="70"/>', 'value="70">'), r"line 5: not XML \(mismatched tag\)"),
        (TALK_XML.replace('type="update_cpu_load" time="0.2"', 'type="reboot" time="0.2"'),
         r"line 4: event type 'reboot': only 'update_cpu_load'"),
        (TALK_XML.replace(' value="70"', ""), r"line 4: event without 'value'"),
        (TALK_XML.replace('value="30"', 'value="lots"'), r"line 3: time and load must be"),
        (TALK_XML.replace("<event type", "<evnt type", 1), r"line 3: unexpected <evnt>"),
    ]
    for text, message in cases:
        path.write_text(text)
        with pytest.raises(InputError, match=message):
            read_events(path)


def test_unknown_vm_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "ev.xml"
    path.write_text(TALK_XML)
    events = read_events(path)
    check_targets(events, ["vm-7", "vm-103"])
    with pytest.raises(InputError, match=r"ev.xml: line 3: load event for unknown VM 'vm-103' "
                                         r"\(the experiment has 2 VMs\)"):
        check_targets(events, ["vm-7", "vm-8"], str(path))
    with pytest.raises(InputError, match=r"^load event for unknown VM 'x'"):
        check_targets(generate(["x"], LoadConfig(duration_s=100, period_s=10), 1), ["y"])


def test_writers_round_trip(tmp_path: Path) -> None:
    events = generate(VMS[:5], LoadConfig(duration_s=200, period_s=30), seed=9)
    assert events
    j = tmp_path / "e.jsonl"
    j.write_text(events_jsonl(events))
    assert [(e.t, e.vm, e.load) for e in read_events(j)] == [(e.t, e.vm, e.load)
                                                             for e in events]
    x = tmp_path / "e.xml"
    x.write_text(events_xml(events, {"vm-1": ("10.27.216.1", "00:20:4e:1b:d8:01")}))
    assert [(e.t, e.vm, e.load) for e in read_events(x)] == [(e.t, e.vm, e.load)
                                                             for e in events]
    has_vm1 = "vm-1" in {e.vm for e in events}
    assert has_vm1 and x.read_text().count('location="10.27.216.1"') == sum(
        e.vm == "vm-1" for e in events)


def test_replay_waits_for_each_event_and_reports_failures() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(round(s, 6))
        now[0] += s

    applied: list[tuple[float, str]] = []

    def apply(e: LoadEvent) -> str:
        applied.append((now[0] - 100.0, e.vm))
        now[0] += 0.25  # an ssh round trip
        return "stress not running" if e.vm == "vm-2" else ""

    events = [LoadEvent(1.0, "vm-1", 50), LoadEvent(1.1, "vm-2", 30), LoadEvent(3.0, "vm-1", 0)]
    lines: list[str] = []
    out = replay(events, apply, clock=lambda: now[0], sleep=sleep, progress=lines.append)
    assert applied == [(1.0, "vm-1"), (1.25, "vm-2"), (3.0, "vm-1")]
    assert slept == [1.0, 1.5]  # no sleep for an event already due
    assert out.applied == 2 and out.failures == [(events[1], "stress not running")]
    assert out.max_late_s == pytest.approx(0.15)
    assert lines == ["t=1.1s vm-2 -> 30 %: stress not running"]


@pytest.mark.skipif(shutil.which("cpulimit") is None or shutil.which("gcc") is None,
                    reason="needs gcc and cpulimit")
def test_replay_recaps_a_real_stress_process(tmp_path: Path) -> None:
    program = build(tmp_path / "bin")
    pidfile = str(tmp_path / "pid")
    r = subprocess.run(["sh", "-c", start_command(16, 1, 1, path=str(program),
                                                  pidfile=pidfile, seconds=20)],
                       capture_output=True, text=True, timeout=30)
    pid = parse_started(r.stdout)[0]
    assert pid is not None
    try:
        def apply(e: LoadEvent) -> str:
            p = subprocess.run(["sh", "-c", set_load_command(e.load, pidfile=pidfile)],
                               capture_output=True, text=True, timeout=30)
            return parse_started(p.stdout)[2]

        path = tmp_path / "ev.jsonl"
        path.write_text('{"t": 0.3, "vm": "vm-1", "load": 40}\n'
                        '{"t": 0.1, "vm": "vm-1", "load": 70}\n')
        events = read_events(path)
        check_targets(events, ["vm-1"], str(path))
        out = replay(events, apply)
        assert out.applied == 2 and not out.failures
        # ``cpulimit -b`` forks twice: its middle process may still be exiting for a moment
        deadline = time.monotonic() + 5.0
        while len(watching := _cpulimits(pid)) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watching == [f"cpulimit -b -z -q -l 40 -p {pid} "]  # the last event's value
    finally:
        subprocess.run(["sh", "-c", stop_command(pidfile)], timeout=30)


def _cpulimits(pid: int) -> list[str]:
    """Command lines of the live cpulimit processes watching ``pid``."""
    argv = []
    for d in os.listdir("/proc"):
        try:  # a process may exit between the listing and the read
            argv.append(Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return [a for a in argv if a.startswith("cpulimit ") and f"-p {pid} " in a]
