"""`ddd-audit app`: the report served on 127.0.0.1 unless a host is given, from any folder, and a clear
error for a folder that is not an audit."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

from tests.browser.streamlit_server import free_port, wait_healthy
from tests.conftest import run_cli


def test_dry_run_binds_this_machine_only_by_default(digits_audit, tmp_path):
    res = run_cli("app", str(digits_audit), "--dry-run")
    assert res.returncode == 0, res.stderr
    command = res.stdout.strip().splitlines()[-1]
    assert "--server.address 127.0.0.1 --server.port 8501" in command
    assert "--browser.gatherUsageStats false" in command
    assert command.endswith(f"-- --audit {digits_audit.resolve()}")
    wide = run_cli("app", str(digits_audit), "--host", "0.0.0.0", "--port", "8600", "--dry-run")
    assert "--server.address 0.0.0.0 --server.port 8600" in wide.stdout
    bad = run_cli("app", str(tmp_path))
    assert bad.returncode == 2 and "not an audit directory" in bad.stderr


def test_the_report_is_served_from_another_folder(digits_audit, tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "audit", "app", str(digits_audit), "--port", str(port)],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    # the server was that process (no child left behind): its port no longer answers
    time.sleep(0.5)
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
        raise AssertionError("a server still answers after its command was stopped")
    except OSError:
        pass
