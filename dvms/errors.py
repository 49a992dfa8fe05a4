"""The package's exceptions; the CLI turns them into one line and a non-zero exit."""

from __future__ import annotations

__all__ = ["DvmsError", "InputError"]


class DvmsError(Exception):
    """Base of every error dvms reports to users (exit status 1)."""

    exit_status = 1


class InputError(DvmsError):
    """Bad input from the user: a scenario field, a flag, a run directory (exit status 2)."""

    exit_status = 2
