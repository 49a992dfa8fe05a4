"""The scale benchmark: a growth-curve point in a child process, and the profile summary."""

from __future__ import annotations

from bench.bench_scale import floor, point, summarise_profile

RAW = """\
<module> (run.py:10);simulate (sim/run.py:150);step (simpy/core.py:200) 6
<module> (run.py:10);simulate (sim/run.py:150);step (simpy/core.py:201);send (peeractor/sim.py:90) 3
<module> (run.py:10);simulate (sim/run.py:151) 1
garbage line without a count
"""


def test_profile_summary_gives_own_and_total_shares() -> None:
    text = summarise_profile(RAW, "title")
    own, total = text.split("by total share")
    assert "samples: 10" in text
    assert "60.0 %  step (simpy/core.py)" in own  # two lines of one function merged
    assert "30.0 %  send (peeractor/sim.py)" in own
    assert "10.0 %  simulate (sim/run.py)" in own
    assert "100.0 %  simulate (sim/run.py)" in total
    assert "90.0 %  step (simpy/core.py)" in total


NATIVE = """\
<module> (run.py:10);run_until (peeractor/_loop.py:43);\
CPyPy_lbo___LboOverlay___observe (__native_dvms.c:6375);\
CPyDef_lbo___LboOverlay___observe (__native_dvms.c:5033);Py_DECREF (object.h:537) 5
<module> (run.py:10);run_until (peeractor/_loop.py:43);\
CPyDef_peer_sample___PeerSample_____contains__ (__native_dvms.c:10894) 2
<module> (run.py:10);run_until (peeractor/_loop.py:40);siftup (_heapqmodule.c:96) 3
0x7fdbe0e4524a (libc.so.6);_start (python3) 4
"""


def test_native_stacks_name_compiled_functions_and_give_c_leaves_to_their_caller() -> None:
    text = summarise_profile(NATIVE, "title")
    own, rest = text.split("by total share")
    total, leaves = rest.split("C leaves")
    assert "samples: 10" in text  # the stack with no Python or compiled frame is left out
    assert "50.0 %  LboOverlay.observe (dvms/overlay/lbo.py, compiled)" in own
    assert "20.0 %  PeerSample.__contains__ (dvms/services/peer_sample.py, compiled)" in own
    assert "30.0 %  run_until (peeractor/_loop.py)" in own  # its heap's C time
    assert "100.0 %  run_until (peeractor/_loop.py)" in total
    assert "50.0 %  LboOverlay.observe (dvms/overlay/lbo.py, compiled)" in total  # not 100
    assert "30.0 %  siftup (_heapqmodule.c)" in leaves
    assert "50.0 %  Py_DECREF (object.h)" in leaves
    assert "observe" not in leaves


def test_a_point_reports_cost_per_event_and_messages() -> None:
    p = point(40, duration=120.0)
    assert (p["hosts"], p["vms"], p["vms_lost"]) == (40, 400, 0)
    assert p["simpy_events"] > p["messages_total"] > 0
    assert sum(p["messages_by_type"].values()) == p["messages_total"]
    assert 1 < p["cpu_us_per_simpy_event"] < 1000
    assert 0 < p["cpu_s"] <= p["process_cpu_s"]
    assert p["peak_rss_mib"] > 10


def test_the_engine_floor_measures_both_engines_at_each_size() -> None:
    f = floor((30, 60), deliveries=9_000)
    assert set(f["points"]) == {"30", "60"}
    for p in f["points"].values():
        for phase in ("baseline", "sim"):
            run = p[phase]
            # a message a second per service: about one beat and one letter per delivery
            assert 8_000 <= run["delivered"] <= 9_000
            assert 2 * run["delivered"] <= run["events"] <= 2 * run["delivered"] + 1_000
            assert 0 < run["cpu_us_per_event"] < 1000
    assert f["per_event_vs_first"]["sim"]["30"] == 1.0
