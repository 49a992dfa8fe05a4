"""A step's record in ``state.json``: running, then done or failed, whatever interrupts it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.g5k.state import STATE, ExperimentState


class _CtrlCAfterSave(ExperimentState):
    """A state whose first save is followed at once by a Ctrl-C (the signal's worst moment)."""

    __slots__ = ("armed",)
    armed: bool

    def save(self) -> None:
        super().save()
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt


def _status(workdir: Path, step: str) -> str:
    steps: dict[str, dict[str, str]] = json.loads((workdir / STATE).read_text())["steps"]
    return steps[step]["status"]


def test_a_ctrl_c_just_after_running_is_saved_ends_the_step_failed(tmp_path: Path) -> None:
    state = _CtrlCAfterSave(workdir=tmp_path, name="exp")
    state.armed = True
    with pytest.raises(KeyboardInterrupt), state.step("load"):
        pytest.fail("the step's body must not run")
    assert _status(tmp_path, "load") == "failed"


def test_a_step_is_done_or_failed_with_its_error(tmp_path: Path) -> None:
    state = ExperimentState(workdir=tmp_path, name="exp")
    with state.step("vms"):
        assert _status(tmp_path, "vms") == "running"
    assert _status(tmp_path, "vms") == "done"
    with pytest.raises(RuntimeError), state.step("start"):
        raise RuntimeError("port taken")
    assert _status(tmp_path, "start") == "failed"
    assert state.steps["start"]["error"] == "port taken"
