"""The scale benchmark: a growth-curve point in a child process, and the profile summary."""

from __future__ import annotations

from bench.bench_scale import point, summarise_profile

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


def test_a_point_reports_cost_per_event_and_messages() -> None:
    p = point(40, duration=120.0)
    assert (p["hosts"], p["vms"], p["vms_lost"]) == (40, 400, 0)
    assert p["simpy_events"] > p["messages_total"] > 0
    assert sum(p["messages_by_type"].values()) == p["messages_total"]
    assert 1 < p["cpu_us_per_simpy_event"] < 1000
    assert 0 < p["cpu_s"] <= p["process_cpu_s"]
    assert p["peak_rss_mib"] > 10
