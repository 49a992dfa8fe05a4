"""The simulator's hot modules that the build compiles with mypyc, and whether they are in use.

``setup.py`` compiles ``MODULES`` into C extensions placed next to their sources (an
editable install builds them in place), unless ``DVMS_PURE=1`` is set or no C compiler
works: then the same modules run as plain Python, with the same results. The import
system prefers an extension to the ``.py`` beside it, so a module is in use compiled
exactly when such an extension file sits next to its source. This module imports only
the standard library (``setup.py`` reads ``MODULES`` from it before anything is built).
"""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

__all__ = ["GROUP", "MODULES", "PURE_ENV", "compiled", "compiled_modules", "shared_library"]

MODULES = (
    "dvms/overlay/lbo.py",
    "dvms/services/peer_sample.py",
    "dvms/services/vivaldi.py",
    "dvms/vivaldi/batch.py",
    "dvms/vivaldi/client.py",
    "sim/load.py",
    "sim/network.py",
)
"""Source paths (from the project root) of the modules the build compiles."""

GROUP = "dvms"
"""mypyc's shared library, ``dvms__mypyc.<abi>.so`` at the top level: the compiled code
itself (each module's own extension is a small shim that loads it)."""

PURE_ENV = "DVMS_PURE"
"""Set to 1 when building to install pure Python (no mypyc, no C compiler needed)."""

_ROOT = Path(__file__).resolve().parent.parent


def _extension(source: Path) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = source.with_name(source.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def shared_library(root: Path = _ROOT) -> Path | None:
    """The built shared library under ``root``, if any."""
    return _extension(root / f"{GROUP}__mypyc.py")


def compiled_modules(root: Path = _ROOT) -> list[str]:
    """The dotted names of the ``MODULES`` that import as compiled extensions from ``root``."""
    return [
        path.removesuffix(".py").replace("/", ".")
        for path in MODULES
        if _extension(root / path) is not None
    ]


def compiled(root: Path = _ROOT) -> bool:
    """Whether every module of ``MODULES`` runs compiled (False: some or all are pure)."""
    return len(compiled_modules(root)) == len(MODULES)
