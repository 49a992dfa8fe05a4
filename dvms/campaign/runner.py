"""Run a campaign's points on Dask distributed and write its results.

``run_campaign(spec)`` skips the points already complete (``completed_summary``), submits
the others — ``run_point`` on a Dask worker each — to a ``LocalCluster`` sized to the machine
(one single-threaded worker process per core) or to an existing cluster
(``scheduler_address="tcp://HOST:PORT"``; its workers need dvms installed and the output
directory on a filesystem they share). A worker that dies mid-point (killed, out of memory)
is replaced by its nanny and Dask runs the point again elsewhere; a point that raises is
recorded (``failure.json``, its row in ``results.csv``) and the others go on. One progress
bar counts points done, running (those in flight, up to the workers' threads), failed,
with an ETA.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvms.campaign.aggregate import flatten, write_results
from dvms.campaign.point import completed_summary, record_failure, run_point
from dvms.campaign.spec import CampaignSpec, PointSpec
from dvms.errors import DvmsError

__all__ = ["CampaignResult", "run_campaign"]

_WORKER_LOG = "DASK_LOGGING__DISTRIBUTED"


@dataclass
class CampaignResult:
    """What a campaign did: points skipped (complete before), run, failed (id → error)."""

    out_dir: Path
    skipped: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    wall_s: float = 0.0

    def failure_line(self) -> str | None:
        """One line naming the failed points (None: none failed)."""
        if not self.failed:
            return None
        first, error = next(iter(self.failed.items()))
        more = f" and {len(self.failed) - 1} more" if len(self.failed) > 1 else ""
        total = len(self.skipped) + len(self.ran) + len(self.failed)
        return (
            f"{len(self.failed)} of {total} points failed: {first} ({error}){more}; "
            f"see {self.out_dir / 'results.csv'}"
        )


def _value(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, list | tuple | dict) else v


def _row(
    point: PointSpec, status: str, summary: dict[str, Any] | None, error: str
) -> dict[str, Any]:
    row: dict[str, Any] = {"point": point.id, "status": status, "error": error}
    row.update((k, _value(v)) for k, v in point.params)
    row["seed"] = point.seed
    if summary is not None:
        row.update((k, v) for k, v in flatten(summary).items() if k not in row)
    return row


@contextmanager
def _client(address: str | None, workers: int | None) -> Iterator[Any]:
    import dask.config
    from distributed import Client, LocalCluster

    if address:
        try:
            client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise DvmsError(f"--scheduler-address {address}: cannot connect ({exc})") from None
        with client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    # the workers' own logs (a failed point's traceback) would repeat what failure.json
    # holds: the nannies set this before starting every worker (restarts included)
    key = "distributed.nanny.pre-spawn-environ"
    environ = {**dask.config.get(key, {}), _WORKER_LOG: "critical"}
    with dask.config.set({key: environ}):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
            memory_limit=0,
        )
    with cluster, Client(cluster) as client:
        yield client


def _progress(enabled: bool, total: int) -> Any:
    if not enabled:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[running]} running, {task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


def run_campaign(
    spec: CampaignSpec,
    *,
    scheduler_address: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> CampaignResult:
    """Run every incomplete point of ``spec``; write the results; see the module doc."""
    started = time.perf_counter()
    out_dir = spec.out_dir
    result = CampaignResult(out_dir)
    rows: dict[str, dict[str, Any]] = {}
    todo: list[PointSpec] = []
    for point in spec.points:
        summary = completed_summary(point)
        if summary is None:
            todo.append(point)
        else:
            result.skipped.append(point.id)
            rows[point.id] = _row(point, "done", summary, "")
    if todo:
        _run_points(todo, result, rows, scheduler_address, workers, progress, len(spec.points))
    ordered = [rows[p.id] for p in spec.points]
    result.files = write_results(
        out_dir, ordered, spec.parameters, spec.section.metrics, f"Campaign {spec.name}"
    )
    result.wall_s = time.perf_counter() - started
    return result


def _run_points(
    todo: list[PointSpec],
    result: CampaignResult,
    rows: dict[str, dict[str, Any]],
    address: str | None,
    workers: int | None,
    show: bool,
    total: int,
) -> None:
    from distributed import as_completed

    quiet = logging.getLogger("distributed")
    level = quiet.level
    # worker restarts and retried points are the campaign's to report, in one line
    quiet.setLevel(logging.ERROR)
    try:
        with _client(address, workers) as client, _progress(show, total) as bar:
            slots = max(1, sum(client.nthreads().values()))
            run = uuid.uuid4().hex[:8]  # keys unique to this submission (a shared scheduler)
            futures = {
                client.submit(run_point, p, pure=False, key=f"dvms-point-{p.id}-{run}"): p
                for p in todo
            }
            pending = len(futures)
            task = None
            if bar is not None:
                skipped = f" ({total - len(todo)} complete before)" if total > len(todo) else ""
                task = bar.add_task(
                    f"points{skipped}", total=len(todo), running=min(pending, slots), failed=0
                )
            for future in as_completed(futures):
                point = futures[future]
                pending -= 1
                if future.status == "finished":
                    rows[point.id] = _row(point, "done", future.result(), "")
                    result.ran.append(point.id)
                else:
                    error = future.exception()
                    tb = "".join(_format_tb(future))
                    line = record_failure(point, error, tb)
                    rows[point.id] = _row(point, "failed", None, line)
                    result.failed[point.id] = line
                if bar is not None and task is not None:
                    bar.update(
                        task,
                        advance=1,
                        running=min(pending, slots),
                        failed=len(result.failed),
                    )
    finally:
        quiet.setLevel(level)


def _format_tb(future: Any) -> list[str]:
    import traceback

    tb = future.traceback()
    return traceback.format_tb(tb) if tb is not None else []
