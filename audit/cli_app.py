"""`ddd-audit app`: open an audit's report in the Streamlit app (see audit.app_server); and `ddd-audit --version`."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from audit.cli_output import console


def _print_version(value: bool) -> None:
    if value:
        from audit import __version__

        typer.echo(f"ddd-audit {__version__}")
        raise typer.Exit()


def main_options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Audit an image dataset for dichotomous data difficulty."""


def app_command(
    audit: Path = typer.Argument(..., help="An audit directory."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 lets every machine "
                             "that reaches this one read the report (it has no login)."),
    port: int = typer.Option(8501, "--port", help="Port to listen on."),
    images_root: Path | None = typer.Option(None, "--images-root", help="Read the images from this folder "
                                            "(an audit received from elsewhere; see docs/security.md)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the server's command line; start nothing."),
) -> None:
    """Serve the report of an audit in the app, on this machine only unless --host says otherwise.

    Examples:

        ddd-audit app runs/default

        ddd-audit app runs/default --port 8502
    """
    from audit.app_server import report_server_command
    from audit.store import AuditDir

    if not AuditDir(audit).exists():
        console.print(f"[red]error:[/] {audit} is not an audit directory (no manifest.json)", highlight=False)
        raise typer.Exit(2)
    extra = ["--images-root", str(images_root)] if images_root is not None else []
    try:
        cmd = report_server_command(audit.resolve(), host, port, extra)
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    where = "localhost" if host in ("127.0.0.1", "localhost") else host
    console.print(f"the report of {audit} at http://{where}:{port} (stop with Ctrl+C)", highlight=False)
    if dry_run:
        typer.echo(" ".join(cmd))
        return
    os.execv(cmd[0], cmd)  # the server takes this process's place: a signal to it stops the server
