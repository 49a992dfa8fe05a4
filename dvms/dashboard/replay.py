"""Replaying a recorded run: a clock over the trace with play/pause/seek and speed."""

from __future__ import annotations

import bisect
import math
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dvms.dashboard.state import InfraState, PowerModel
from dvms.report.runs import load_run

__all__ = ["MAX_SPEED", "Replay", "load_replay", "power_model_of", "power_model_of_scenario"]

MAX_SPEED = 10_000.0


def power_model_of(run_dir: Path) -> PowerModel:
    """The run's power model from its scenario.toml ([power] idle_w, max_w), else defaults."""
    try:
        scenario = tomllib.loads((run_dir / "scenario.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return PowerModel()
    power = scenario.get("power", {})
    idle, top = power.get("idle_w", 100.0), power.get("max_w", 200.0)
    if isinstance(idle, int | float) and isinstance(top, int | float):
        return PowerModel(float(idle), float(top))
    return PowerModel()


def power_model_of_scenario(scenario: Any) -> PowerModel:
    """The power model of a ``sim.scenario.Scenario`` (its ``power`` section)."""
    power = getattr(scenario, "power", None)
    idle, top = getattr(power, "idle_w", None), getattr(power, "max_w", None)
    if isinstance(idle, int | float) and isinstance(top, int | float):
        return PowerModel(float(idle), float(top))
    return PowerModel()


class Replay:
    """A recorded trace played on a clock: ``t`` advances by wall time × ``speed``."""

    def __init__(
        self,
        events: Sequence[dict[str, Any]],
        *,
        state: InfraState | None = None,
        header: dict[str, Any] | None = None,
        speed: float = 10.0,
        playing: bool = True,
        t_end: float | None = None,
        checkpoint_every: int = 100_000,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every {checkpoint_every}: must be >= 1")
        self.checkpoint_every = checkpoint_every
        self._checkpoints: dict[int, InfraState] = {}
        self.events = list(events)
        self.times = [float(e["t"]) for e in self.events]
        self.state = state or InfraState()
        self.header = header
        self.t_end = max(t_end or 0.0, self.times[-1] if self.times else 0.0)
        self.speed = self._check_speed(speed)
        self.playing = playing
        self.t = 0.0
        self.warning: str | None = None
        """One line when the recorded run is not complete (``Run.warning``)."""
        self.index = 0
        self._wall: float | None = None
        self._restart()

    @staticmethod
    def _check_speed(speed: float) -> float:
        if not (isinstance(speed, int | float) and math.isfinite(speed)
                and 0 < speed <= MAX_SPEED):
            raise ValueError(f"speed {speed!r}: must be in (0, {MAX_SPEED:g}]")
        return float(speed)

    def _restart(self) -> None:
        self.state.reset()
        if self.header:
            self.state.apply({"t": 0.0, "node": "world", **self.header, "type": "header"})
        self.index = 0
        self._apply_until(0.0)

    def _apply_until(self, t: float) -> None:
        stop = bisect.bisect_right(self.times, t, lo=self.index)
        apply = self.state.apply
        every = self.checkpoint_every
        while self.index < stop:
            boundary = (self.index // every + 1) * every
            end = min(stop, boundary)
            for event in self.events[self.index : end]:
                apply(event)
            self.index = end
            if end == boundary and end not in self._checkpoints:
                self._checkpoints[end] = self.state.copy()
        self.t = t
        self.state.t = t

    def _jump(self, t: float) -> None:
        """To the latest checkpoint at or before ``t`` if that is backwards or ahead of
        the current position (else stay): backwards without one, to the start."""
        usable = [k for k in self._checkpoints if self.times[k - 1] <= t]
        k = max(usable, default=0)
        if t >= self.t and k <= self.index:
            return
        if k == 0:
            self._restart()
            return
        epoch = self.state.epoch
        self.state = self._checkpoints[k].copy()
        self.state.epoch = max(epoch, self.state.epoch) + 1  # clients get a full frame
        self.index = k
        self.t = self.state.t = self.times[k - 1]

    def advance(self, wall: float) -> None:
        """Move the clock to wall time ``wall`` (seconds, monotonic) if playing."""
        last, self._wall = self._wall, wall
        if not self.playing or last is None:
            return
        target = min(self.t_end, self.t + max(0.0, wall - last) * self.speed)
        self._apply_until(target)
        if target >= self.t_end:
            self.playing = False

    def seek(self, t: float) -> None:
        """Jump to trace time ``t`` (clipped to [0, t_end]).

        The state is rebuilt from the latest checkpoint before ``t`` (one is kept every
        ``checkpoint_every`` events already played) when that is backwards or ahead;
        backwards without one, from the start.
        """
        if not (isinstance(t, int | float) and math.isfinite(t)):
            raise ValueError(f"seek time {t!r}: must be a number of seconds")
        t = min(max(0.0, float(t)), self.t_end)
        self._jump(t)
        self._apply_until(t)

    def control(self, command: Mapping[str, Any]) -> None:
        """Apply ``{"cmd": "play"|"pause"}``, ``{"cmd": "seek", "t": s}`` or
        ``{"cmd": "speed", "value": x}``; ValueError on anything else."""
        cmd = command.get("cmd")
        if cmd == "play":
            if self.t >= self.t_end:
                self.seek(0.0)
            self.playing = True
        elif cmd == "pause":
            self.playing = False
        elif cmd == "seek":
            self.seek(command.get("t", math.nan))
        elif cmd == "speed":
            self.speed = self._check_speed(command.get("value", math.nan))
        else:
            raise ValueError(f"unknown command {cmd!r}; allowed: play, pause, seek, speed")

    def status(self) -> dict[str, Any]:
        return {
            "mode": "replay",
            "playing": self.playing,
            "finished": self.t >= self.t_end,
            "error": None,
            "warning": self.warning,
            "seekable": True,
            "speed": self.speed,
            "t": round(self.t, 3),
            "t_end": self.t_end,
        }


def load_replay(run_dir: str | Path, *, speed: float = 10.0, aggregate_above: int = 1000) -> Replay:
    """A replay of a run directory (InputError if it is missing or corrupt); its
    ``warning`` names a run that did not complete."""
    run = load_run(run_dir)
    state = InfraState(power=power_model_of(run.path), aggregate_above=aggregate_above)
    duration = run.summary.get("duration_s")
    t_end = float(duration) if isinstance(duration, int | float) else None
    replay = Replay(list(run.events()), state=state, header=run.header, speed=speed,
                    t_end=t_end)
    replay.warning = run.warning
    return replay
