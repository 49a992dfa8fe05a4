"""Build hook: compile the simulator's hot modules (``dvms/compiled.py``) with mypyc.

Everything else about the package is in ``pyproject.toml``. ``pip install -e .`` builds
the extensions in place, next to their sources; ``pip install .`` puts them in the wheel.
``DVMS_PURE=1`` installs pure Python (and removes extensions an earlier build left in
place); so does a build whose C compiler is missing or fails, with a warning. Either way
the simulation's results are the same, only slower.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
_SPEC = runpy.run_path(str(ROOT / "dvms" / "compiled.py"))
MODULES: tuple[str, ...] = _SPEC["MODULES"]
PURE_ENV: str = _SPEC["PURE_ENV"]
GROUP: str = _SPEC["GROUP"]
BUILDING = {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop"}


def _say(text: str) -> None:
    print(f"dvms build: {text}", file=sys.stderr)


def _remove_in_place_extensions() -> None:
    """Delete compiled modules an earlier build left next to the sources (they would win)."""
    stale = [p for m in MODULES for p in (ROOT / m).parent.glob(Path(m).stem + ".*.so")]
    stale += ROOT.glob(f"{GROUP}__mypyc.*.so")
    for path in stale:
        path.unlink()
        _say(f"removed {path.relative_to(ROOT)}")


class BuildExtOrPure(build_ext):
    """``build_ext`` that falls back to pure Python when compiling fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, a compiler error, a missing header
            _say(f"compiling failed ({type(exc).__name__}: {exc}); installing pure Python")
            for ext in self.extensions:
                for path in (Path(self.get_ext_fullpath(ext.name)),
                             ROOT / self.get_ext_filename(ext.name)):
                    path.unlink(missing_ok=True)
            _remove_in_place_extensions()


def ext_modules() -> list[Any]:
    """mypyc's extensions, or none (pure: asked for, or mypyc cannot generate them)."""
    if not BUILDING.intersection(sys.argv[1:]):
        return []  # metadata only (egg_info, dist_info): nothing to compile
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        _say(f"{PURE_ENV} set: installing pure Python")
        _remove_in_place_extensions()
        return []
    try:
        from mypyc.build import mypycify

        return list(mypycify(list(MODULES), opt_level="3", group_name=GROUP))
    except (Exception, SystemExit) as exc:  # mypyc missing, or its type check failed
        _say(f"mypyc unavailable ({type(exc).__name__}: {exc}); installing pure Python")
        _remove_in_place_extensions()
        return []


setup(ext_modules=ext_modules(), cmdclass={"build_ext": BuildExtOrPure})
