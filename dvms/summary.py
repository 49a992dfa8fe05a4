"""``summary.json``: the metrics of a run, a contract read by scripts and other tools.

Schema ``dvms.summary/1``: the keys of DESIGN.md's table keep their names and meanings
(more may be added). ``build_summary`` is the one writer of every run's summary
(simulator, agents, ``dvms cluster collect``): it orders the keys as the table does, fills
the keys a run cannot know with ``null`` (``energy_kwh`` on a real cluster, everything a
run that failed early never measured), adds ``status`` (``complete``, ``interrupted`` or
``failed``), ``exception`` (one line, on failure) and ``provenance``, and rounds floats to
9 significant digits so the file is stable and readable. ``validate_summary`` lists what
is wrong with a summary read back. ``WALL_KEYS`` are the cost of the run
(machine-dependent): every other key is the same for the same scenario and seed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.table import Table

from dvms.provenance import provenance

__all__ = [
    "CONTRACT_KEYS",
    "SCHEMA",
    "STATUSES",
    "WALL_KEYS",
    "build_summary",
    "summary_table",
    "validate_summary",
    "write_summary",
]

SCHEMA = "dvms.summary/1"
WALL_KEYS = ("wall_s", "events_per_wall_s", "peak_rss_mib")
"""Keys excluded from determinism checks."""
STATUSES = ("complete", "interrupted", "failed")
"""How a run ended: it ran to its end, was stopped (SIGINT/SIGTERM), or raised."""

_ORDER = (
    "schema",
    "seed",
    "scenario",
    "hosts",
    "vms",
    "sites",
    "duration_s",
    "scheduler",
    "overlay",
    "violations",
    "violation_time_s",
    "violation_duration_mean_s",
    "violation_duration_sd_s",
    "migrations",
    "migrations_intra_site",
    "migrations_inter_site",
    "migrations_failed",
    "migration_duration_mean_s",
    "migrated_gib",
    "isp_started",
    "isp_solved",
    "isp_failed",
    "partition_size_mean",
    "scheduler_compute_s",
    "energy_kwh",
    "messages",
    "vivaldi_median_error",
    "vms_lost",
    "wall_s",
    "events_per_wall_s",
    "peak_rss_mib",
)


CONTRACT_KEYS = _ORDER
"""The contract's keys, in the order a summary writes them."""

_INT = (int,)
_NUM = (int, float)
_TYPES: dict[str, tuple[type, ...]] = {
    "schema": (str,), "seed": _INT, "scenario": (dict,), "hosts": _INT, "vms": _INT,
    "sites": _INT, "duration_s": _NUM, "scheduler": (str,), "overlay": (str,),
    "messages": (dict,),
}
"""Types of the keys that are not counts (``_INT``) or measures (``_NUM``)."""
_COUNTS = ("violations", "migrations", "migrations_intra_site", "migrations_inter_site",
           "migrations_failed", "isp_started", "isp_solved", "isp_failed", "vms_lost")
_REQUIRED = ("seed", "hosts", "vms", "duration_s", "scheduler", "violations", "migrations",
             "vms_lost")
"""Keys a complete run always knows (never null)."""


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_round(v) for v in value]
    return value


def _one_line(exc: BaseException | str) -> str:
    text = exc if isinstance(exc, str) else repr(exc)
    return " ".join(text.split())


def build_summary(
    fields: Mapping[str, Any],
    *,
    status: str = "complete",
    exception: BaseException | str | None = None,
) -> dict[str, Any]:
    """The summary: ``fields`` in the contract's order (``null`` for those absent), then
    ``status``, ``exception`` and ``provenance``, then the extra keys; floats rounded."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r}: must be one of {', '.join(STATUSES)}")
    out: dict[str, Any] = {"schema": SCHEMA}
    for key in _ORDER[1:]:
        out[key] = fields.get(key)
    out["status"] = status
    out["exception"] = None if exception is None else _one_line(exception)
    out["provenance"] = dict(fields.get("provenance") or provenance())
    for key, value in fields.items():
        if key not in out:
            out[key] = value
    return {k: (v if k == "scenario" else _round(v)) for k, v in out.items()}


def _type_problem(key: str, value: Any) -> str | None:
    if value is None:
        return None
    allowed = _TYPES.get(key, _INT if key in _COUNTS else _NUM)
    if isinstance(value, bool) or not isinstance(value, allowed):
        names = " or ".join(t.__name__ for t in allowed)
        return f"{key} = {value!r}: must be {names} or null"
    return None


def validate_summary(obj: Any) -> list[str]:
    """What is wrong with a summary read back (empty when it meets the contract)."""
    if not isinstance(obj, dict):
        return ["summary must be a JSON object"]
    problems: list[str] = []
    if obj.get("schema") != SCHEMA:
        problems.append(f"schema = {obj.get('schema')!r}: must be {SCHEMA!r}")
    missing = [k for k in (*_ORDER, "status", "provenance") if k not in obj]
    if missing:
        problems.append(f"lacks {', '.join(missing)}")
    for key in _ORDER[1:]:
        problem = _type_problem(key, obj.get(key))
        if problem:
            problems.append(problem)
    status = obj.get("status")
    if "status" in obj and status not in STATUSES:
        problems.append(f"status = {status!r}: must be one of {', '.join(STATUSES)}")
    exception = obj.get("exception")
    if status == "failed" and not isinstance(exception, str):
        problems.append("a failed run's exception must be a string")
    elif exception is not None and not isinstance(exception, str):
        problems.append(f"exception = {exception!r}: must be a string or null")
    if status == "complete":
        nulls = [k for k in _REQUIRED if k in obj and obj[k] is None]
        if nulls:
            problems.append(f"a complete run lacks values for {', '.join(nulls)}")
    prov = obj.get("provenance")
    if "provenance" in obj and not (
        isinstance(prov, dict) and all(k in prov for k in ("dvms", "commit", "python", "platform"))
    ):
        problems.append("provenance must hold dvms, commit, python and platform")
    return problems


def write_summary(path: str | Path, summary: Mapping[str, Any]) -> None:
    """Write JSON, two-space indented, keys in the summary's order, a final newline."""
    Path(path).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def summary_table(summary: Mapping[str, Any]) -> Table:
    """A two-column table of the headline figures, for the terminal."""
    table = Table(title="dvms simulate: summary", show_header=True, header_style="bold")
    summary = {k: summary.get(k) for k in (*_ORDER, "status")} | dict(summary)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("hosts / VMs / sites", f"{summary['hosts']} / {summary['vms']} / {summary['sites']}"),
        ("simulated time (s)", _fmt(summary["duration_s"])),
        ("scheduler / overlay", f"{summary['scheduler']} / {summary['overlay'] or '-'}"),
        ("violations", _fmt(summary["violations"])),
        ("violation time (s)", _fmt(summary["violation_time_s"])),
        (
            "violation duration (s, mean ± sd)",
            f"{_fmt(summary['violation_duration_mean_s'])} ± "
            f"{_fmt(summary['violation_duration_sd_s'])}",
        ),
        (
            "migrations (intra / inter / failed)",
            f"{summary['migrations']} ({summary['migrations_intra_site']} / "
            f"{summary['migrations_inter_site']} / {summary['migrations_failed']})",
        ),
        ("migration duration mean (s)", _fmt(summary["migration_duration_mean_s"])),
        ("migrated (GiB)", _fmt(summary["migrated_gib"])),
        (
            "ISPs started / solved / failed",
            f"{summary['isp_started']} / {summary['isp_solved']} / {summary['isp_failed']}",
        ),
        ("scheduler compute (s)", _fmt(summary["scheduler_compute_s"])),
        ("energy (kWh)", _fmt(summary["energy_kwh"])),
        ("messages", _fmt(sum((summary["messages"] or {}).values()))),
        ("Vivaldi median error", _fmt(summary["vivaldi_median_error"])),
        ("VMs lost", _fmt(summary["vms_lost"])),
        ("wall time (s)", _fmt(summary["wall_s"])),
        ("events per wall s", _fmt(summary["events_per_wall_s"])),
        ("peak RSS (MiB)", _fmt(summary["peak_rss_mib"])),
    ]
    if summary.get("status", "complete") != "complete":
        rows.insert(0, ("status", str(summary["status"])))
    for name, value in rows:
        table.add_row(name, value)
    return table
