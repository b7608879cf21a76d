"""The study server's command line: `streamlit run app.py` with the settings a server for observers needs.

Observers see the experiment and nothing of Streamlit: no toolbar, no "Deploy" button, no main menu and no
header, on every page the server serves ("Sorry, ..." pages and /results included). These are server
settings (`STUDY_SERVER_OPTIONS`), not per-page CSS, so no page can forget them. The address to listen on
follows the study's own address (study.json's base URL) unless a host and port are given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from audit import app_server as server
from human_study.errors import StudyError

#: Streamlit settings of the study server (beside audit.app_server.SERVER_OPTIONS): no chrome in front of
#: observers, and no error details.
STUDY_SERVER_OPTIONS = (
    "--client.toolbarMode", "minimal",
    "--ui.hideTopBar", "true",
    "--client.showErrorDetails", "none",
)
DEFAULT_PORT = 8501
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def app_script() -> Path:
    """The Streamlit entry point (app.py beside the packages)."""
    try:
        return server.app_script()
    except FileNotFoundError as exc:
        raise StudyError(str(exc)) from None


def listen_address(base_url: str | None, host: str | None = None, port: int | None = None) -> tuple[str, int]:
    """(host, port) to listen on: those given, else from the study's address. A study reached at this
    machine's own name listens on 127.0.0.1; one reached at another address listens on every interface."""
    parts = urlsplit(base_url) if base_url else None
    if port is None:
        port = (parts.port if parts is not None and parts.port else DEFAULT_PORT)
    if host is None:
        local = parts is None or (parts.hostname or "localhost") in LOCAL_HOSTS
        host = "127.0.0.1" if local else "0.0.0.0"
    if not 1 <= int(port) <= 65535:
        raise StudyError(f"--port must be from 1 to 65535, got {port}")
    return host, int(port)


def study_server_command(study_dirs: Sequence[str | os.PathLike], host: str, port: int) -> list[str]:
    """The `streamlit run` command line that serves `study_dirs` to observers on host:port."""
    if not study_dirs:
        raise StudyError("name at least one study folder to serve")
    app_script()  # a clear StudyError when the app is missing
    args = [a for folder in study_dirs for a in ("--study", str(folder))]
    return server.streamlit_command(host, port, STUDY_SERVER_OPTIONS, args)
