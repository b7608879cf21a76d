"""Shared pieces of the browser tests: a real `streamlit run` server on 127.0.0.1 and the Chromium to drive."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

#: flags for headless Chromium on a machine with no network beyond loopback
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    """The Chromium to drive: $DDD_CHROMIUM, else `chromium` (or `chromium-browser`) on the PATH."""
    found = os.environ.get("DDD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no Chromium found; set DDD_CHROMIUM to a Chromium binary")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, *, timeout: float = 90.0, log_path: Path | None = None) -> None:
    """Wait until the Streamlit server of `proc` answers its health check at `url` (bounded by `timeout`)."""
    log = (lambda: log_path.read_text()) if log_path is not None else (lambda: "")
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"streamlit did not answer within {timeout:.0f} s:\n{log()}")
        time.sleep(0.3)


@contextlib.contextmanager
def serve_streamlit(script: Path, *, app_args: list[str] = (), cwd: Path, log_path: Path, env: dict | None = None,
                    timeout: float = 90.0, options: list[str] = ()):
    """Start `streamlit run SCRIPT [OPTIONS] -- APP_ARGS`, wait for its health check, yield its URL, stop it."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", *options,
    ]
    if app_args:
        cmd += ["--", *app_args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout=timeout, log_path=log_path)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def chromium_page(width: int = 1440, height: int = 1000):
    """A page of headless Chromium (playwright), with a 60 s default timeout; closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()
