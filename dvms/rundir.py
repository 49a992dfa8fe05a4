"""Run directories written as a whole, and runs stopped cleanly by SIGINT/SIGTERM.

A run writes into a temporary sibling of its output directory (``.OUT.tmp-PID``) and
:meth:`RunDirectory.commit` renames it onto ``OUT`` when its files are closed: a reader
never sees half a run, and two runs never mix in one directory. An existing ``OUT`` is
refused (``InputError``) unless it is empty, or ``force`` is given and it looks like a run
directory (then it is replaced by the new one at commit). Every problem with the path
(under a regular file, in a directory that cannot be written) is one ``InputError`` line.

:func:`interruptible` turns the first SIGINT or SIGTERM into ``KeyboardInterrupt`` (on the
main thread only) so a run can record ``"status": "interrupted"``; signals arriving while
the run writes its results are ignored until it is done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from dvms.errors import InputError

__all__ = ["RUN_FILES", "RunDirectory", "SignalGuard", "check_writable_dir", "interruptible"]

RUN_FILES = ("summary.json", "scenario.toml", "events.jsonl", "events.jsonl.gz")
"""Files that mark a directory as a run directory (``force`` only replaces those)."""


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def check_writable_dir(path: Path, what: str, shown: Path | None = None) -> None:
    """``InputError`` unless ``path`` is, or can be created as, a writable directory; the
    message names ``what`` and ``shown`` (default ``path``)."""
    shown = shown or path
    base = _existing_ancestor(path)
    if not base.is_dir():
        where = "" if base == shown else f" ({str(base)!r} is not a directory)"
        raise InputError(f"{what} {str(shown)!r}: not a directory{where}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"{what} {str(shown)!r}: cannot write in {str(base)!r} "
                         "(permission denied)")


def _is_run_dir(path: Path) -> bool:
    return any((path / name).exists() for name in RUN_FILES)


class RunDirectory:
    """The output directory of one run (see module doc); ``what`` names it in errors."""

    def __init__(self, out: str | Path, *, force: bool = False, what: str = "--out") -> None:
        self.final = Path(out)
        self.force = force
        self.what = what
        self.tmp = self.final.parent / f".{self.final.name}.tmp-{os.getpid()}"
        self._check()

    def _check(self) -> None:
        out, what = self.final, self.what
        check_writable_dir(out.parent, what, out)
        if not out.exists():
            return
        if not out.is_dir():
            raise InputError(f"{what} {str(out)!r}: exists and is not a directory")
        if not any(out.iterdir()):
            return
        if not self.force:
            raise InputError(f"{what} {str(out)!r}: already exists; choose another "
                             "directory or pass --force to replace it")
        cwd = Path.cwd().resolve()
        resolved = out.resolve()
        if resolved == cwd or resolved in cwd.parents:
            raise InputError(f"{what} {str(out)!r}: --force will not replace the current "
                             "directory or one of its parents")
        if not _is_run_dir(out):
            raise InputError(f"{what} {str(out)!r}: --force only replaces a run directory "
                             f"(one holding {' or '.join(RUN_FILES[:2])}); remove it yourself")

    def open(self) -> Path:
        """Create the temporary directory (a stale one of this pid is removed) and return it."""
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            if self.tmp.exists():
                shutil.rmtree(self.tmp)
            self.tmp.mkdir()
        except OSError as exc:
            raise InputError(f"{self.what} {str(self.final)!r}: {exc.strerror or exc}") from None
        return self.tmp

    def commit(self) -> Path:
        """Rename the temporary directory onto the output (replacing an old run)."""
        out = self.final
        if out.is_dir():
            try:
                self._check()  # nothing appeared there meanwhile that we may not replace
            except InputError as exc:
                raise InputError(f"{exc} (it appeared during this run, whose files are in "
                                 f"{str(self.tmp)!r})") from None
            shutil.rmtree(out)
        os.replace(self.tmp, out)
        return out

    def discard(self) -> None:
        """Remove the temporary directory (nothing is left behind)."""
        shutil.rmtree(self.tmp, ignore_errors=True)


class SignalGuard:
    """Armed: SIGINT/SIGTERM raise ``KeyboardInterrupt``; disarmed: they are ignored."""

    def __init__(self) -> None:
        self.armed = True
        self.received: int | None = None
        """The first signal received, if any."""

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt(signal.Signals(signum).name)

    def disarm(self) -> None:
        """From now on signals are ignored (the run is writing its results)."""
        self.armed = False


@contextlib.contextmanager
def interruptible() -> Iterator[SignalGuard]:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` once inside the block (main thread;
    elsewhere the guard does nothing); the previous handlers are restored on exit."""
    guard = SignalGuard()
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return
    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, guard.handler)
    try:
        yield guard
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
