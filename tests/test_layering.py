"""The layering of DESIGN.md holds and cannot drift: the import contracts of pyproject.toml
pass, a forbidden import makes them fail, and no module imports itself through others."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("peeractor", "dvms", "sim", "deploy")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).parent / "lint-imports"
    return subprocess.run([str(lint), "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})


def copy_tree(dst: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, dst / name,
                        ignore=shutil.ignore_patterns("__pycache__", "static", "guest"))
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


def test_the_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_a_forbidden_import_breaks_them(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    target = root / "dvms" / "protocol" / "base.py"
    target.write_text(target.read_text() + "\n\ndef _leak() -> None:\n    import sim.world\n")
    result = lint_imports(root)
    assert result.returncode != 0
    assert "node code imports neither sim, deploy, nor the application BROKEN" in result.stdout
    assert "dvms.protocol.base -> sim.world" in result.stdout


def test_no_import_cycle() -> None:
    import grimp

    graph = grimp.build_graph(*PACKAGES)
    cycles = sorted(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(importer=imported, imported=module)
    )
    assert cycles == []
