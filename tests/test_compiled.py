"""The mypyc-compiled modules (``dvms.compiled``, built by ``setup.py``): in use when built,
never stale, the same trace as pure Python, and a build without a compiler still installs."""

from __future__ import annotations

import gzip
import importlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dvms.compiled import MODULES, PURE_ENV, compiled, compiled_modules, shared_library
from dvms.provenance import provenance

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dvms", "peeractor", "sim", "deploy")
MEASURED = ("wall_s", "events_per_wall_s", "peak_rss_mib")
BUILT_PURE = os.environ.get(PURE_ENV, "") not in ("", "0")
needs_build = pytest.mark.skipif(BUILT_PURE, reason=f"{PURE_ENV} set: built pure on purpose")


def _names() -> list[str]:
    return [m.removesuffix(".py").replace("/", ".") for m in MODULES]


@needs_build
def test_the_installed_tree_runs_the_compiled_modules() -> None:
    pure = [n for n in _names() if not str(importlib.import_module(n).__file__).endswith(".so")]
    assert not pure, f"{pure} import as Python: build them (pip install -e .) or set {PURE_ENV}=1"
    assert compiled() and compiled_modules() == _names()
    assert provenance()["compiled"] is True


@needs_build
def test_the_compiled_code_is_not_older_than_its_sources() -> None:
    # an extension shadows its .py: an edit not rebuilt would silently not run
    library = shared_library()
    assert library is not None, "no mypyc shared library: build (pip install -e .)"
    for path in MODULES:
        source = ROOT / path
        assert library.stat().st_mtime >= source.stat().st_mtime, f"{path} edited: rebuild"


def _pure_copy(dest: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, dest / package,
                        ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    return dest


def _simulate(tree: Path, out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    argv = [sys.executable, "-m", "dvms", "simulate", "--hosts", "80", "--duration", "600",
            "--scheduler", "dvms", "--overlay", "lbo", "--seed", "5", "--out", str(out),
            "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run(argv, cwd=tree, env=env, check=True, capture_output=True, timeout=300)
    with gzip.open(out / "events.jsonl.gz", "rt", encoding="utf-8") as f:
        events = [json.loads(line) for line in f]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return events, summary


@pytest.mark.slow
@needs_build
def test_compiled_and_pure_simulations_write_the_same_trace(tmp_path: Path) -> None:
    compiled_events, compiled_summary = _simulate(ROOT, tmp_path / "compiled")
    pure_events, pure_summary = _simulate(_pure_copy(tmp_path / "src"), tmp_path / "pure")
    assert compiled_events[0]["provenance"]["compiled"] is True
    assert pure_events[0]["provenance"]["compiled"] is False
    for run in (compiled_events, pure_events, [compiled_summary], [pure_summary]):
        run[0].pop("provenance")
    for summary in (compiled_summary, pure_summary):  # the machine's, not the model's
        for key in MEASURED:
            summary.pop(key)
    assert len(compiled_events) > 500
    assert any(e["type"] == "migration.end" for e in compiled_events)
    assert compiled_events == pure_events
    assert compiled_summary == pure_summary


def _build_in_place(tree: Path, **env: str) -> subprocess.CompletedProcess[str]:
    shutil.copy2(ROOT / "setup.py", tree / "setup.py")
    shutil.copy2(ROOT / "pyproject.toml", tree / "pyproject.toml")
    shutil.copy2(ROOT / "README.md", tree / "README.md")
    return subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                          cwd=tree, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=600, check=True)


@pytest.mark.slow
def test_a_build_without_a_working_compiler_installs_pure_python(tmp_path: Path) -> None:
    tree = _pure_copy(tmp_path)
    done = _build_in_place(tree, CC="false")  # the C compiler fails on every file
    assert "compiling failed" in done.stderr and "installing pure Python" in done.stderr
    assert compiled_modules(tree) == [] and not list(tree.glob("*.so"))
    assert not compiled(tree)


@pytest.mark.slow
def test_dvms_pure_removes_extensions_left_in_place(tmp_path: Path) -> None:
    tree = _pure_copy(tmp_path)
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    leftover = [tree / p.replace(".py", suffix) for p in MODULES]
    for path in leftover:
        path.write_bytes(b"")
    assert compiled(tree)
    done = _build_in_place(tree, **{PURE_ENV: "1"})
    assert f"{PURE_ENV} set" in done.stderr
    assert compiled_modules(tree) == []
