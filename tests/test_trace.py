"""The trace writer/reader: deterministic bytes, header, errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dvms.errors import InputError
from dvms.trace import SCHEMA, TraceWriter, _encode, read_events, read_header

EVENTS = [
    {"t": 0.0, "type": "load", "node": "h0001", "vm": "vm00001", "host": "h0001", "load": 60.0},
    {"t": 1.5, "type": "fault.crash", "node": "h0002", "host": "h0002", "vms": ["a", "b"]},
    {"t": 2.25, "type": "note", "node": "world", "text": "é"},
]


def _write(path: Path) -> None:
    with TraceWriter(path, header={"seed": 3}, flush_every=2) as writer:
        for event in EVENTS:
            writer(event)
    assert writer.events == 3


def test_plain_trace_lines_are_compact_and_ordered(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    _write(path)
    assert path.read_text(encoding="utf-8").splitlines() == [
        '{"t":0.0,"type":"header","node":"world","schema":"dvms.events/1","seed":3}',
        '{"t":0.0,"type":"load","node":"h0001","vm":"vm00001","host":"h0001","load":60.0}',
        '{"t":1.5,"type":"fault.crash","node":"h0002","host":"h0002","vms":["a","b"]}',
        '{"t":2.25,"type":"note","node":"world","text":"é"}',
    ]
    assert list(read_events(path)) == EVENTS
    assert read_header(path) == {
        "t": 0.0,
        "type": "header",
        "node": "world",
        "schema": SCHEMA,
        "seed": 3,
    }


def test_gzip_trace_bytes_are_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    _write(a)
    _write(b)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime = 0
    assert list(read_events(a)) == EVENTS
    assert gzip.decompress(a.read_bytes()).decode().count("\n") == 4


def test_nan_is_refused(tmp_path: Path) -> None:
    with TraceWriter(tmp_path / "x.jsonl") as writer, pytest.raises(ValueError):
        writer({"t": 0.0, "type": "x", "node": "n", "v": float("nan")})


def test_corrupt_and_truncated_traces(tmp_path: Path) -> None:
    full = tmp_path / "full.jsonl.gz"
    _write(full)
    truncated = tmp_path / "trunc.jsonl.gz"
    truncated.write_bytes(full.read_bytes()[:-12])
    with pytest.raises(InputError, match=r"truncated|corrupt"):
        list(read_events(truncated))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t":0,"type":"a","node":"n"}\nnot json\n')
    with pytest.raises(InputError, match="line 2 is not JSON"):
        list(read_events(bad))
    notime = tmp_path / "notime.jsonl"
    notime.write_text('{"type":"a"}\n')
    with pytest.raises(InputError, match="line 1 lacks a numeric t"):
        list(read_events(notime))
    with pytest.raises(InputError, match="does not exist"):
        list(read_events(tmp_path / "missing.jsonl"))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@given(st.dictionaries(st.text(), _JSON, max_size=6))
def test_lines_are_what_the_json_module_writes(event: dict[str, object]) -> None:
    """The writer's once-made C encoder gives json.dumps' text (compact, UTF-8 kept)."""
    assert _encode(event) == json.dumps(
        event, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


@pytest.mark.parametrize("bad", [float("inf"), [1.0, float("-inf")], {"x": object()}])
def test_values_json_cannot_carry_are_refused(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        _encode({"t": 0.0, "v": bad})
