"""A campaign's results: the tidy table, the aggregate over seeds (mean ± 95 % CI), Markdown.

- ``results.csv``: one row per point: ``point``, ``status`` (done / failed), ``error``, the
  grid's parameters, ``seed``, then every summary key flattened (``messages.dvms.Lock``,
  ``scenario.run.duration_s``; lists as JSON).
- ``aggregate.csv``: one row per grid cell and numeric summary metric (the ``scenario.*``
  settings left out): the parameters, ``metric``,
  ``n`` (completed seeds), ``mean``, ``sd``, ``ci95`` (half-width of the 95 % Student-t
  interval, ``t(0.975, n-1) · sd / √n``; empty when n < 2), ``low``, ``high``.
- ``campaign.md``: the campaign's metrics as ``mean ± ci95`` per grid cell.

The t quantile comes from scipy when it is installed, else from a table (exact to 6
decimals for 1–30, 40, 60 and 120 degrees of freedom, interpolated in 1/df beyond).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["aggregate", "flatten", "mean_ci", "t_quantile_975", "write_results"]

# fmt: off
_T975 = {
    1: 12.706205, 2: 4.302653, 3: 3.182446, 4: 2.776445, 5: 2.570582, 6: 2.446912,
    7: 2.364624, 8: 2.306004, 9: 2.262157, 10: 2.228139, 11: 2.200985, 12: 2.178813,
    13: 2.160369, 14: 2.144787, 15: 2.131450, 16: 2.119905, 17: 2.109816, 18: 2.100922,
    19: 2.093024, 20: 2.085963, 21: 2.079614, 22: 2.073873, 23: 2.068658, 24: 2.063899,
    25: 2.059539, 26: 2.055529, 27: 2.051831, 28: 2.048407, 29: 2.045230, 30: 2.042272,
    40: 2.021075, 60: 2.000298, 120: 1.979930,
}
# fmt: on
_Z975 = 1.959964


def t_quantile_975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"t quantile: df={df} must be >= 1")
    try:
        from scipy.stats import t  # type: ignore[import-untyped, import-not-found, unused-ignore]

        return float(t.ppf(0.975, df))
    except ImportError:
        pass
    if df in _T975:
        return _T975[df]
    known = sorted(_T975)
    lo = max(k for k in known if k < df)
    hi = min((k for k in known if k > df), default=None)
    hi_x, hi_t = (1.0 / hi, _T975[hi]) if hi is not None else (0.0, _Z975)
    lo_x, lo_t = 1.0 / lo, _T975[lo]
    x = 1.0 / df
    return hi_t + (lo_t - hi_t) * (x - hi_x) / (lo_x - hi_x)


def mean_ci(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """(mean, sd, 95 % half-width) of ``values``; sd and half-width None when n < 2."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci: no values")
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None, None
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, sd, t_quantile_975(n - 1) * sd / math.sqrt(n)


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings → dotted keys; lists → JSON text; scalars unchanged."""
    out: dict[str, Any] = {}
    for key, v in value.items():
        name = f"{prefix}{key}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{name}."))
        elif isinstance(v, list | tuple):
            out[name] = json.dumps(v)
        else:
            out[name] = v
    return out


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def _is_metric(key: str, skip: set[str]) -> bool:
    # the scenario's fields are settings (the grid's are columns), not results
    return key not in skip and key != "schema" and not key.startswith("scenario.")


def aggregate(rows: Iterable[Mapping[str, Any]], parameters: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (grid cell, numeric metric) over the cell's completed points."""
    cells: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("status") == "done":
            cells.setdefault(tuple(row.get(p) for p in parameters), []).append(row)
    skip = {"point", "status", "error", "seed", *parameters}
    out: list[dict[str, Any]] = []
    for cell, members in cells.items():
        metrics: list[str] = []
        for row in members:
            metrics.extend(k for k in row if _is_metric(k, skip) and k not in metrics)
        for metric in metrics:
            values = [_number(row.get(metric)) for row in members]
            if any(v is None for v in values):
                continue  # not numeric in every seed (text, None)
            mean, sd, half = mean_ci([v for v in values if v is not None])
            out.append(
                {
                    **dict(zip(parameters, cell, strict=True)),
                    "metric": metric,
                    "n": len(values),
                    "mean": mean,
                    "sd": sd,
                    "ci95": half,
                    "low": None if half is None else mean - half,
                    "high": None if half is None else mean + half,
                }
            )
    return out


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]], first: Sequence[str]) -> None:
    columns = list(first)
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    tmp.replace(path)


def _cell(mean: float, half: float | None) -> str:
    digits = 3 if abs(mean) < 100 else 1
    return f"{mean:.{digits}f}" + ("" if half is None else f" ± {half:.{digits}f}")


def markdown(
    aggregated: Sequence[Mapping[str, Any]], parameters: Sequence[str], metrics: Sequence[str]
) -> str:
    """The metrics of every grid cell as ``mean ± ci95`` (n seeds in the last column)."""
    by_cell: dict[tuple[Any, ...], dict[str, Mapping[str, Any]]] = {}
    for row in aggregated:
        by_cell.setdefault(tuple(row[p] for p in parameters), {})[row["metric"]] = row
    head = [*parameters, *metrics, "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell, rows in by_cell.items():
        cells = [str(v) for v in cell]
        for metric in metrics:
            found = rows.get(metric)
            cells.append("-" if found is None else _cell(found["mean"], found["ci95"]))
        n = max((int(r["n"]) for r in rows.values()), default=0)
        lines.append("| " + " | ".join([*cells, str(n)]) + " |")
    return "\n".join(lines) + "\n"


def write_results(
    out_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    parameters: Sequence[str],
    metrics: Sequence[str],
    title: str,
) -> list[Path]:
    """Write results.csv, aggregate.csv and campaign.md in ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results, agg_path, md = (
        out_dir / "results.csv",
        out_dir / "aggregate.csv",
        out_dir / "campaign.md",
    )
    _write_csv(results, rows, ["point", "status", "error", *parameters, "seed"])
    aggregated = aggregate(rows, parameters)
    first = [*parameters, "metric", "n", "mean", "sd", "ci95", "low", "high"]
    _write_csv(agg_path, aggregated, first)
    done = sum(r.get("status") == "done" for r in rows)
    text = [f"# {title}", "", f"{done} of {len(rows)} points completed; mean ± 95 % CI over "]
    text[-1] += "seeds (Student t).\n"
    text.append(markdown(aggregated, parameters, metrics))
    failed = [r for r in rows if r.get("status") == "failed"]
    if failed:
        text.append("Failed points:\n")
        text.extend(f"- `{r['point']}`: {r['error']}" for r in failed)
        text.append("")
    md.write_text("\n".join(text))
    return [results, agg_path, md]
