"""Loading a run directory: its summary, its trace and its scenario.

A run directory (written by ``dvms simulate`` or a real deployment) holds
``summary.json``, ``events.jsonl.gz`` (or ``events.jsonl``) and ``scenario.toml``.
Every problem with one — missing, not a directory, corrupt JSON, truncated gzip —
is an :class:`~dvms.errors.InputError` with a one-line message. A run that did not
complete (``"status": "interrupted"`` or ``"failed"``), or whose summary does not meet the
contract, is still loaded: :attr:`Run.warning` says so in one line.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dvms.errors import InputError
from dvms.summary import validate_summary

__all__ = [
    "Run",
    "find_trace",
    "iter_events",
    "load_run",
    "load_summary",
    "read_header",
    "run_warning",
]

TRACE_NAMES = ("events.jsonl.gz", "events.jsonl")


@dataclass(frozen=True)
class Run:
    """A run directory located and checked: its label, summary and trace path."""

    path: Path
    label: str
    summary: dict[str, Any]
    trace: Path
    header: dict[str, Any] | None

    def events(self) -> Iterator[dict[str, Any]]:
        """The trace's events in order (the header, if any, left out)."""
        return iter_events(self.trace)

    @property
    def warning(self) -> str | None:
        """One line when the run is not complete or its summary breaks the contract."""
        return run_warning(self.path, self.summary)


def run_warning(path: Path, summary: dict[str, Any]) -> str | None:
    """One line naming an interrupted or failed run, or a summary's contract problems."""
    status = summary.get("status")
    reached = summary.get("simulated_s")
    until = f" at t = {reached:g} s" if isinstance(reached, int | float) else ""
    if status == "interrupted":
        return f"run {str(path)!r} was interrupted{until}: showing what it recorded"
    if status == "failed":
        return (f"run {str(path)!r} failed{until} ({summary.get('exception')}): "
                "showing what it recorded")
    problems = validate_summary(summary)
    if problems:
        return f"{path / 'summary.json'}: {'; '.join(problems)}"
    return None


def _check_dir(path: Path) -> None:
    try:
        path.stat()
    except FileNotFoundError:
        raise InputError(f"run directory {str(path)!r} does not exist") from None
    except OSError as exc:
        raise InputError(f"run directory {str(path)!r}: {exc.strerror or exc}") from None
    if not path.is_dir():
        raise InputError(f"run directory {str(path)!r} is not a directory")


def find_trace(run_dir: Path) -> Path:
    """The run's trace file (``events.jsonl.gz`` preferred over ``events.jsonl``)."""
    _check_dir(run_dir)
    for name in TRACE_NAMES:
        candidate = run_dir / name
        if candidate.is_file():
            return candidate
    raise InputError(f"run directory {str(run_dir)!r} has no events.jsonl.gz or events.jsonl")


def load_summary(run_dir: Path) -> dict[str, Any]:
    """``summary.json`` of a run, checked to be a JSON object."""
    _check_dir(run_dir)
    path = run_dir / "summary.json"
    if not path.is_file():
        raise InputError(f"run directory {str(run_dir)!r} has no summary.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: corrupt summary.json ({_short(exc)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: summary.json must hold a JSON object")
    return data


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _is_header(obj: dict[str, Any]) -> bool:
    return obj.get("type") == "header" or ("type" not in obj and "schema" in obj)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as stream:
            yield from enumerate(stream, start=1)
    except EOFError:
        raise InputError(f"{path}: truncated trace (gzip stream ends early)") from None
    except (OSError, zlib.error, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: corrupt trace ({_short(exc)})") from None


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            what = "truncated" if not line.endswith("\n") else "corrupt"
            raise InputError(f"{path}: {what} trace (line {number} is not JSON)") from None
        if not isinstance(obj, dict):
            raise InputError(f"{path}: corrupt trace (line {number} is not a JSON object)")
        yield number, obj


def read_header(path: Path) -> dict[str, Any] | None:
    """The trace's header line (``{"schema": ...}``), or None when it has none."""
    for _, obj in _records(path):
        return obj if _is_header(obj) else None
    return None


def iter_events(path: Path) -> Iterator[dict[str, Any]]:
    """Events of a trace file in order; a header line is skipped.

    Raises InputError on a truncated or corrupt file, or an event without a numeric
    ``t`` and a string ``type``.
    """
    for number, obj in _records(path):
        if number == 1 and _is_header(obj):
            continue
        t, kind = obj.get("t"), obj.get("type")
        if isinstance(t, bool) or not isinstance(t, int | float) or not isinstance(kind, str):
            raise InputError(f"{path}: corrupt trace (line {number} lacks a numeric t or a type)")
        yield obj


def load_run(run_dir: str | Path, label: str | None = None) -> Run:
    """Check a run directory and read its summary (the trace is read lazily)."""
    path = Path(run_dir)
    summary = load_summary(path)
    trace = find_trace(path)
    header = read_header(trace)
    return Run(path, label or path.resolve().name, summary, trace, header)
