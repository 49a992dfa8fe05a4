"""Provenance of a run: which dvms, which commit, which Python, which platform, compiled or not.

Recorded in every ``summary.json`` and trace header. The commit is read from the checkout
the package was imported from (``.git`` directory or a worktree's ``.git`` file, loose or
packed refs) without running git; outside a checkout it is ``None``, never an error.
"""

from __future__ import annotations

import functools
import platform
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dvms import __version__
from dvms.compiled import compiled

__all__ = ["git_commit", "provenance", "trace_header"]

_ROOT = Path(__file__).resolve().parent.parent


def _git_dir(root: Path) -> Path | None:
    dot = root / ".git"
    if dot.is_dir():
        return dot
    if dot.is_file():  # a worktree: "gitdir: /path/to/main/.git/worktrees/name"
        text = dot.read_text(encoding="utf-8").strip()
        if text.startswith("gitdir:"):
            path = Path(text.removeprefix("gitdir:").strip())
            return path if path.is_absolute() else (root / path).resolve()
    return None


def _ref(git_dir: Path, ref: str) -> str | None:
    common = git_dir
    commondir = git_dir / "commondir"
    if commondir.is_file():
        common = (git_dir / commondir.read_text(encoding="utf-8").strip()).resolve()
    for base in (git_dir, common):
        loose = base / ref
        if loose.is_file():
            return loose.read_text(encoding="utf-8").strip()
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    return None


def _is_sha(text: str | None) -> bool:
    return text is not None and re.fullmatch(r"[0-9a-f]{40}", text) is not None


@functools.cache
def git_commit(root: Path = _ROOT) -> str | None:
    """The commit checked out at ``root`` (default: this package's checkout), or None."""
    try:
        git_dir = _git_dir(root)
        if git_dir is None:
            return None
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
        sha = _ref(git_dir, head.removeprefix("ref:").strip()) if head.startswith("ref:") else head
    except (OSError, UnicodeDecodeError):
        return None
    return sha if _is_sha(sha) else None


def provenance() -> dict[str, str | bool | None]:
    """``{"dvms": version, "commit": sha or None, "python": "3.11.2", "platform": ...,
    "compiled": whether the mypyc-compiled modules run (``dvms.compiled``)}``."""
    return {
        "dvms": __version__,
        "commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "compiled": compiled(),
    }


def trace_header(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A trace header (``TraceWriter(header=...)``): ``fields``, then ``provenance``."""
    return {**fields, "provenance": provenance()}
