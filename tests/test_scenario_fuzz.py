"""Generated scenario documents through the CLI: a valid run, or one line and nothing written.

Hypothesis writes TOML documents mixing valid fields with hostile ones (unknown keys and
sections, wrong types, tables where scalars go, huge/negative/NaN/infinite/subnormal
numbers, unicode and look-alike host names, faults naming hosts and sites that do not
exist) and runs ``dvms simulate DOC --out DIR --quiet`` in-process. The outcome must be
exit 0 with a JSON-valid summary, or exit 2 with exactly one line on stderr, no traceback,
and ``DIR`` absent or empty. Scenarios stay tiny (≤ 4 hosts, ≤ 30 simulated seconds).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dvms.app.cli import main
from dvms.protocol import DvmsConfig
from dvms.services.vivaldi import VivaldiServiceConfig
from sim.scenario import SECTIONS, load_scenario

KEYS: dict[str, list[str]] = {
    name: [f.name for f in dataclasses.fields(cls) if f.init] for name, cls in SECTIONS.items()
}
KEYS["vivaldi"] = ["enabled", *(f.name for f in dataclasses.fields(VivaldiServiceConfig))]
KEYS["dvms"] = [f.name for f in dataclasses.fields(DvmsConfig)]
BASE: dict[str, dict[str, Any]] = {
    "run": {"duration_s": 20.0, "seed": 3},
    "infrastructure": {"hosts": 3, "vms_per_host": 2, "sites": ["lyon", "rennes"]},
}
HOST_NAMES = ["h0000", "h0001", "h0003", "h00001", "h٠٠٠١", "h0001 ", "", "lyon", "rennes",
              "mars", "H0001", "h-001", "h9999999"]

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)
"""Unicode without lone surrogates (which TOML cannot escape: those are invalid TOML)."""
huge = st.integers(min_value=10**20, max_value=10**400) | st.integers(-(10**400), -(10**20))
numbers = st.one_of(
    st.integers(-5, 10), huge, st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([5e-324, -5e-324, 1e308, -1e308, 1.7976931348623157e308, -0.0, 0.0]),
)
scalars = numbers | st.booleans() | text | st.sampled_from(HOST_NAMES)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(text, inner, max_size=2),
    max_leaves=5,
)
crash = st.fixed_dictionaries({"t": numbers | st.just(1.0), "host": st.sampled_from(HOST_NAMES)})
cut = st.fixed_dictionaries({
    "t": st.just(2.0) | numbers, "a": st.sampled_from(HOST_NAMES), "b": st.sampled_from(HOST_NAMES),
    "duration_s": st.just(5.0) | numbers,
})


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A scenario: the tiny base, then a few fields set to anything."""
    doc: dict[str, Any] = {k: dict(v) for k, v in BASE.items()}
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from([*KEYS, "nonsense"]))
        key = draw(st.sampled_from([*KEYS.get(section, []), "bogus", "ünïcode"]))
        if (section, key) == ("faults", "crashes"):
            value: Any = draw(st.lists(crash, max_size=2))
        elif (section, key) == ("faults", "link_cuts"):
            value = draw(st.lists(cut, max_size=2))
        elif key == "name" and section in ("scheduler", "overlay"):
            value = draw(st.sampled_from(["none", "centralized", "dvms", "lbo", "ring", "x"]))
        else:
            hostile = draw(st.sampled_from([False, False, True]))
            value = draw(values if hostile else plausible(section, key))
        table = doc.setdefault(section, {})
        if isinstance(table, dict):
            table[key] = value
    if draw(st.sampled_from([False] * 9 + [True])):  # a section that is not a table
        doc[draw(st.sampled_from(list(KEYS)))] = draw(scalars)
    return tame(doc)


def plausible(section: str, key: str) -> st.SearchStrategy[Any]:
    """Values near a field's default, in its type (most of them valid)."""
    cls = SECTIONS.get(section)
    fields = {f.name: f for f in dataclasses.fields(cls)} if cls is not None else {}
    f = fields.get(key)
    if f is None or not f.metadata:
        return st.integers(0, 3) | st.floats(0.5, 50.0) | st.booleans()
    default = f.default if f.default is not dataclasses.MISSING else None
    if f.metadata.get("choices"):
        return st.sampled_from(f.metadata["choices"])
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int | float):
        kind = type(default)
        return st.sampled_from([default, default * 2, default / 2, 0, 1]).map(kind)
    return st.just(default)


def tame(doc: dict[str, Any]) -> dict[str, Any]:
    """Keep valid runs tiny: sizes, durations and periods within small bounds."""
    small = {("infrastructure", "hosts"): 4, ("infrastructure", "vms_per_host"): 4,
             ("run", "duration_s"): 30.0, ("faults", "link_cut_rate_h"): 3600.0,
             ("vivaldi", "fast_rounds"): 20, ("vivaldi", "sample_size"): 8,
             ("vivaldi", "gossip_size"): 8, ("vivaldi", "close_candidates"): 8}
    for section, table in doc.items():
        if not isinstance(table, dict):
            continue
        for key, value in table.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if abs(value) > 1e15 or not math.isfinite(value):
                continue  # invalid for every field: kept
            bound = small.get((section, key))
            if bound is not None and value > bound:
                table[key] = bound
            elif key.endswith(("period_s", "timeout_s", "poll_s")) and 0 < value < 0.5:
                table[key] = 0.5
    return doc


def toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + "}"


def render(doc: dict[str, Any]) -> str:
    tops = [f"{json.dumps(k)} = {toml(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    lines = tops[:]
    for section, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{json.dumps(section)}]")
            lines += [f"{json.dumps(k)} = {toml(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _refuse_constant(name: str) -> None:
    raise ValueError(f"summary.json holds {name}")


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(doc=documents())
def test_generated_scenarios_run_or_fail_in_one_line_writing_nothing(doc: dict[str, Any]) -> None:
    text = render(doc)
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "fuzz.toml", Path(tmp) / "out"
        path.write_text(text, encoding="utf-8")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = main(["simulate", str(path), "--out", str(out), "--quiet"])
        stderr = err.getvalue()
        event(f"exit {status}")
        assert "Traceback" not in stderr, text
        if status == 0:
            summary = json.loads((out / "summary.json").read_text(),
                                 parse_constant=_refuse_constant)
            assert isinstance(summary, dict) and summary.get("duration_s", 0) >= 0, text
            load_scenario(out / "scenario.toml")  # the completed scenario reads back
        else:
            assert status == 2, (status, stderr, text)
            lines = stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("dvms simulate: error: "), (
                stderr, text)
            assert not out.exists() or not any(out.iterdir()), (sorted(out.iterdir()), text)


def test_the_issues_examples_are_one_line_errors(tmp_path: Path) -> None:
    cases = {
        "[load]\nmean = " + "9" * 400 + "\n": "load.mean = <an integer of 400 digits>",
        "[load]\nslot = 5e-324\n": "load.slot = 5e-324: must be 0 or >= 1e-06",
        "[load]\ndistribution = 'uniform'\nsd = 1e308\n": "load.sd = 1e+308: must be a number in",
        "[power]\nmax_w = 1.7e308\nidle_w = 1.6e308\n": "power.max_w = 1.7e+308: must be a",
        "[faults]\nlink_cuts = [{t = 1.0, a = '', b = 'lyon'}]\n":
            "faults.link_cuts[0].a = '': neither a host",
        "[faults]\nlink_cuts = [{t = 1.0, a = 'h0001', b = 'atlantis'}]\n":
            "faults.link_cuts[0].b = 'atlantis': neither a host",
        "[faults]\ncrashes = [{t = 1.0, host = 'h00001'}]\n": "faults.crashes[0].host = 'h00001'",
        "[faults]\ncrashes = [{t = 1.0, host = 'h٠٠٠١'}]\n": "faults.crashes[0].host = 'h٠٠٠١'",
        "[dvms]\npartition_timeout_s = " + "9" * 400 + "\n": "dvms.partition_timeout_s = <an",
        "[trace]\npower_period_s = nan\n": "trace.power_period_s = nan: must be a number",
    }
    base = render(BASE)
    for i, (extra, expected) in enumerate(cases.items()):
        path, out = tmp_path / f"s{i}.toml", tmp_path / f"out{i}"
        path.write_text(base + extra, encoding="utf-8")
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = main(["simulate", str(path), "--out", str(out), "--quiet"])
        assert status == 2, (extra, err.getvalue())
        assert expected in err.getvalue() and err.getvalue().count("\n") == 1, err.getvalue()
        assert not out.exists()


def test_faults_that_would_explode_are_refused_up_front(tmp_path: Path) -> None:
    big = ("[infrastructure]\nhosts = 8000\nvms_per_host = 1\nsites = ['lyon', 'rennes']\n"
           "[faults]\nlink_cuts = [{t = 1.0, a = 'lyon', b = 'rennes'}]\n")
    rate = render(BASE) + "[faults]\nlink_cut_rate_h = 1e6\n"
    cases = {big: "'lyon' × 'rennes' is 16,000,000 host pairs; at most 10,000,000",
             rate.replace('"duration_s" = 20.0', '"duration_s" = 7200.0'):
                 "faults.link_cut_rate_h = 1000000.0: 2e+06 random cuts expected"}
    for i, (text, expected) in enumerate(cases.items()):
        path, out = tmp_path / f"f{i}.toml", tmp_path / f"out{i}"
        path.write_text(text, encoding="utf-8")
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main(["simulate", str(path), "--out", str(out), "--quiet"]) == 2
        assert expected in err.getvalue(), err.getvalue()
        assert not out.exists()
