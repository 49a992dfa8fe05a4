"""Scheduler specs for campaign tests, named by import path in a campaign's grid:

- ``KILL``: the first run of it (in any process) SIGKILLs its own Dask worker 60 simulated
  seconds in, after creating the file named by ``$DVMS_CAMPAIGN_KILL_MARKER``; later runs
  (the marker exists) run normally;
- ``FAIL``: raises when the world assembles its coordinator.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path

from dvms.node import SchedulerSpec
from dvms.node.schedulers import CoordinatorContext
from peeractor import Behaviour, message

__all__ = ["FAIL", "KILL"]


@message("test.KillNow")
class KillNow:
    pass


class Killer(Behaviour):
    name = "killer"

    def on_start(self) -> None:
        self.schedule(60.0, KillNow())

    def on_receive(self, message: object) -> None:
        marker = Path(os.environ["DVMS_CAMPAIGN_KILL_MARKER"])
        if isinstance(message, KillNow) and not marker.exists():
            marker.write_text(f"{os.getpid()}\n")
            os.kill(os.getpid(), signal.SIGKILL)


def _killer(_ctx: CoordinatorContext) -> Sequence[Behaviour]:
    return [Killer()]


def _fail(_ctx: CoordinatorContext) -> Sequence[Behaviour]:
    raise RuntimeError("deliberate failure of this point")


KILL = SchedulerSpec("test-kill", coordinator=_killer)
FAIL = SchedulerSpec("test-fail", coordinator=_fail)
