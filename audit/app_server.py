"""The report app's command line: `streamlit run audit_app/app.py` with the settings the report needs wherever it is
started from (the repository's .streamlit/config.toml is read only from the repository root).

The report is for the person who runs it: it listens on 127.0.0.1 unless a host is given, sends no usage
statistics, opens no browser on a server and does not watch source files.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

#: Streamlit settings of every server the tool starts.
SERVER_OPTIONS = (
    "--browser.gatherUsageStats", "false",
    "--server.headless", "true",
    "--server.fileWatcherType", "none",
)
#: The report's own: the viewer's menu without the developer's options.
REPORT_OPTIONS = ("--client.toolbarMode", "viewer")
DEFAULT_PORT = 8501


def app_script() -> Path:
    """The Streamlit entry point: the router of the installed `audit_app` package (found without importing
    Streamlit)."""
    spec = importlib.util.find_spec("audit_app")
    script = Path(spec.origin).resolve().parent / "app.py" if spec and spec.origin else None
    if script is None or not script.is_file():
        raise FileNotFoundError("this installation of ddd-audit has no app (the package audit_app is missing); "
                                "reinstall it: pip install 'ddd-audit[app]'")
    return script


def streamlit_command(host: str, port: int, options: Sequence[str], app_args: Sequence[str]) -> list[str]:
    """`python -m streamlit run app.py` on host:port with `options`, then `-- APP_ARGS`."""
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"--port must be from 1 to 65535, got {port}")
    return [sys.executable, "-m", "streamlit", "run", str(app_script()), "--server.address", host,
            "--server.port", str(int(port)), *SERVER_OPTIONS, *options, "--", *app_args]


def report_server_command(audit: str | os.PathLike, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                          extra_args: Sequence[str] = ()) -> list[str]:
    """The command line that serves the report of the audit at `audit`."""
    return streamlit_command(host, port, REPORT_OPTIONS, ["--audit", str(audit), *extra_args])
