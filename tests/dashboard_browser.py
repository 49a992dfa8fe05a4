"""Headless Chromium for the dashboard's end-to-end tests (Playwright's Python API).

Only Debian's ``chromium`` is used (``executable_path``); nothing is downloaded. A
missing browser fails the test with the command that installs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CHROMIUM_ARGS", "chromium_path", "dashboard_process", "open_page"]

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium_path() -> str:
    """Debian's chromium, or a test failure saying how to install it."""
    candidates = (os.environ.get("DVMS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail(
        "chromium is not installed: run `make test` (it installs the system packages in "
        "scripts/sysdeps/, incl. chromium) or `apt-get install -y --no-install-recommends chromium`"
    )


@contextmanager
def dashboard_process(args: Sequence[str], log: Path, timeout: float = 60.0) -> Iterator[str]:
    """Run ``dvms dashboard --port 0 ARGS`` in a subprocess; yield its URL; stop it after."""
    stream = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvms", "dashboard", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=stream, text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        url = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            match = re.search(r"(http://\S+/)", line)
            if match:
                url = match.group(1)
                break
        if url is None:
            proc.kill()
            proc.wait()
            stream.close()
            pytest.fail(f"dashboard did not start: {log.read_text()}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stream.close()


@contextmanager
def open_page(url: str, profile: Path, width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A Playwright page on ``url`` in headless Debian chromium with a fresh profile."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=path, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(90_000)  # generous: CI machines may be busy
            page.goto(url)
            yield page
        finally:
            context.close()
