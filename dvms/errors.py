"""The package's exceptions; the CLI turns them into one line and a non-zero exit."""

from __future__ import annotations

__all__ = ["DvmsError", "InputError", "Interrupted"]


class DvmsError(Exception):
    """Base of every error dvms reports to users (exit status 1)."""

    exit_status = 1


class InputError(DvmsError):
    """Bad input from the user: a scenario field, a flag, a run directory (exit status 2)."""

    exit_status = 2


class Interrupted(DvmsError):
    """The user stopped the command (SIGINT/SIGTERM) after it saved what it had (exit 130)."""

    exit_status = 130
