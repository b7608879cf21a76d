"""The package as a user installs it: a wheel and an sdist built from this checkout, the wheel installed into
a fresh virtual environment outside the checkout, and the installed commands run from an empty folder.

The fresh environment reuses the heavy dependencies already installed here (torch, Streamlit, ...) through a
path file, so the test needs no network; ddd-audit itself comes only from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

import audit
from tests.browser.streamlit_server import CHROMIUM_ARGS, chromium, free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _tracked_copy(dest: Path) -> Path:
    """The checkout's tracked files (as a clean clone has them), copied to `dest`."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(src.read_bytes())
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """A wheel and an sdist, built with setuptools' PEP 517 hooks from a copy of the tracked files."""
    base = tmp_path_factory.mktemp("wheel")
    source = _tracked_copy(base / "source")
    dist = base / "dist"
    built = {}
    for kind in ("wheel", "sdist"):  # one process each, as a build frontend calls the hooks
        hook = f"from setuptools import build_meta as b; import sys; print('BUILT', b.build_{kind}(sys.argv[1]))"
        res = subprocess.run([sys.executable, "-c", hook, str(dist)], cwd=source, capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        built[kind] = dist / res.stdout.strip().splitlines()[-1].split()[1]
    wheel, sdist = built["wheel"], built["sdist"]
    return {"wheel": wheel, "sdist": sdist, "base": base}


@pytest.fixture(scope="module")
def installed(built) -> dict:
    """A fresh virtual environment outside the checkout with the wheel installed, and an empty folder."""
    env_dir = built["base"] / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # The heavy dependencies of this environment, reused (a plain path: its .pth files, such as this
    # checkout's editable install, are not run there).
    (Path(purelib) / "reuse_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    res = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                          "--no-index", "--quiet", str(built["wheel"])], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    work = built["base"] / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}", PYTHONUNBUFFERED="1", COLUMNS="120")
    return {"bin": env_dir / "bin", "python": python, "purelib": Path(purelib), "work": work, "env": env}


def _run(installed, *args, timeout=600):
    return subprocess.run([str(installed["bin"] / "ddd-audit"), *args], cwd=installed["work"], env=installed["env"],
                          capture_output=True, text=True, timeout=timeout)


def test_the_wheel_and_sdist_carry_the_app_and_no_tests(built):
    names = zipfile.ZipFile(built["wheel"]).namelist()
    for wanted in ("audit/cli.py", "audit_app/app.py", "audit_app/overview.py", "audit_app/experiment.py",
                   "audit_app/_rt_component/trial.js", "audit_app/_rt_component/trial.css", "human_study/serve.py"):
        assert wanted in names, wanted
    assert not [n for n in names if n.startswith(("tests/", "runs/", "benchmarks/"))]
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "ddd-audit = audit.cli:main" in zipfile.ZipFile(built["wheel"]).read(entry[0]).decode()
    with tarfile.open(built["sdist"]) as sdist:
        members = [m.split("/", 1)[1] for m in sdist.getnames() if "/" in m]
    for wanted in ("audit_app/app.py", "audit_app/_rt_component/trial.js", "LICENSE", "README.md", "pyproject.toml",
                   "CITATION.cff"):
        assert wanted in members, wanted
    assert not [n for n in members if n.startswith(("tests/", "runs/", ".venv/"))]
    assert built["wheel"].name.startswith(f"ddd_audit-{audit.__version__}-")


def test_the_installed_commands_run_from_an_empty_folder(installed):
    where = subprocess.run([installed["python"], "-c", "import audit, audit_app; print(audit.__file__); "
                            "print(audit_app.ROUTER)"], cwd=installed["work"], env=installed["env"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(p).is_relative_to(installed["purelib"]) for p in where), where  # the wheel's, not the checkout's
    version = _run(installed, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"ddd-audit {audit.__version__}"

    run = _run(installed, "run", "--dataset", "digits", "--variants", "minimal", "--epochs", "2", "--out",
               "runs/digits")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    out = installed["work"] / "runs" / "digits"
    assert (out / "manifest.json").is_file() and (out / "report" / "summary.json").is_file()

    port = free_port()
    server = subprocess.Popen([str(installed["bin"] / "ddd-audit"), "app", "runs/digits", "--port", str(port)],
                              cwd=installed["work"], env=installed["env"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server, timeout=90)
        text = _page_text(f"http://127.0.0.1:{port}/", "Trivial")
        assert "Overview" in text and "Trivial" in text, text[:2000]
    finally:
        server.terminate()
        server.wait(timeout=20)

    study = _run(installed, "study", "create", "--audit", "runs/digits", "--name", "pilot", "--trials", "5", "--practice", "1",
                 "--allow-incomplete", "--observers", "1")
    assert study.returncode == 0, study.stdout[-2000:] + study.stderr[-2000:]
    port = free_port()
    server = subprocess.Popen([str(installed["bin"] / "ddd-audit"), "study", "serve", "--study-dir",
                               "runs/digits/studies/pilot", "--port", str(port)], cwd=installed["work"], env=installed["env"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server, timeout=90)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200
        text = _page_text(f"http://127.0.0.1:{port}/", "personal link")
        assert "Welcome" in text and "Overview" not in text  # observers never see the report
    finally:
        server.terminate()
        server.wait(timeout=20)


def _page_text(url: str, wait_for: str) -> str:
    """The text that headless Chromium shows at `url` once `wait_for` appears."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url, timeout=60_000)
            page.get_by_text(wait_for).first.wait_for(timeout=90_000)
            return page.inner_text("body")
        finally:
            browser.close()


def test_one_version_everywhere():
    """pyproject takes the version from audit.__version__; the citation and the changelog name the same."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'version = { attr = "audit.__version__" }' in pyproject
    assert f"version: {audit.__version__}" in (ROOT / "CITATION.cff").read_text()
    assert f"## {audit.__version__}" in (ROOT / "CHANGELOG.md").read_text()
