"""The documentation site builds in strict mode (`make docs`): a broken link, a missing page or an API
reference that does not resolve fails here. The command-line reference is generated from the Typer app
and the API reference from the docstrings, so both are checked in the built pages too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _nav_files(nav) -> list[str]:
    out = []
    for item in nav:
        for value in (item.values() if isinstance(item, dict) else [item]):
            out += _nav_files(value) if isinstance(value, list) else [value]
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).parent / "mkdocs"
    res = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(out)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "WARNING" not in res.stderr, res.stderr[-3000:]
    return out


def test_every_page_of_docs_is_in_the_navigation():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))
    in_nav = set(_nav_files(config["nav"]))
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert pages == in_nav


def test_the_site_builds_strict_with_generated_references(site):
    cli = (site / "reference" / "cli.html").read_text()
    import typer

    from audit.cli import app

    for name in typer.main.get_command(app).commands:  # every command of the app has its section
        assert f"ddd-audit {name}</code>" in cli, name
    assert "--dataset" in cli and "ddd-audit study serve" in cli
    api = (site / "reference" / "api.html").read_text()
    for function in ("run", "import_decisions", "load_report", "draw_figure", "export_subset", "load"):
        assert re.search(rf'id="audit\.[a-z.]*\b{function}"', api), function
    assert "Draw one paper figure of an audit" in api  # from the docstring
    assert (site / "tutorials" / "notebook.ipynb").exists()
    assert (site / "figures" / "histogram.png").exists()


def test_a_broken_link_fails_the_build(tmp_path):
    """The same build over a copy of the docs with one link broken: strict mode refuses it."""
    import shutil

    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    page = tmp_path / "docs" / "development.md"
    page.write_text(page.read_text() + "\nSee [nowhere](no-such-page.md).\n")
    config = (ROOT / "mkdocs.yml").read_text().replace("scripts/docs_cli_reference.py",
                                                       str(ROOT / "scripts" / "docs_cli_reference.py"))
    (tmp_path / "mkdocs.yml").write_text(config)
    mkdocs = Path(sys.executable).parent / "mkdocs"
    res = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)})
    assert res.returncode != 0
    assert "no-such-page.md" in res.stderr
