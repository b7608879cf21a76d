"""What `--out` may hold: `--force` replaces only an audit directory (or an empty folder) and never a folder
of someone else's files, and a run or import killed before its manifest resumes with the same command."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from audit.running.engine import AuditConfig, plan_audit, prepare_directory, run_audit
from audit.store import AuditError, folder_state, load
from tests.conftest import cli_exit_code, run_cli
from tests.test_importers import write_mvh_folder

DIGITS = ("--dataset", "digits", "--variants", "minimal", "--epochs", "1", "--device", "cpu", "--train-size", "300",
          "--val-size", "200", "--depth", "none", "--rsa-images", "0")


def _in_process(capsys, *args):
    """`ddd-audit ARGS` through the console entry point in this process: what `run_cli` returns, without the
    interpreter's start."""
    from types import SimpleNamespace

    capsys.readouterr()
    code = cli_exit_code(list(args))
    captured = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=captured.out, stderr=captured.err)


def _user_folder(path: Path) -> dict[str, str]:
    """A folder of a user's own files; returns {relative path: sha256} to check it is untouched."""
    (path / "notes").mkdir(parents=True)
    (path / "thesis.tex").write_text("\\section{Results}")
    (path / "notes" / "todo.txt").write_text("back up everything")
    (path / "images.parquet").write_text("not ours either")  # a name of ours beside the user's own files
    return _digest(path)


def _digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def test_folder_states(tmp_path):
    assert folder_state(tmp_path / "none") == ("missing", [])
    assert folder_state(tmp_path) == ("empty", [])
    (tmp_path / "images.parquet").write_bytes(b"")
    (tmp_path / ".images.parquet.x1.parquet.tmp").write_bytes(b"")
    assert folder_state(tmp_path) == ("begun", [])
    (tmp_path / "thesis.tex").write_text("x")
    assert folder_state(tmp_path) == ("foreign", ["thesis.tex"])
    (tmp_path / "manifest.json").write_text("{}")
    assert folder_state(tmp_path)[0] == "audit"


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_import_never_replaces_a_folder_of_other_files(tmp_path, force):
    source = write_mvh_folder(tmp_path / "raw")
    out = tmp_path / "mine"
    before = _user_folder(out)
    res = run_cli("import", str(source), "--out", str(out), *force, timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "holds files that ddd-audit did not write" in res.stderr and "thesis.tex" in res.stderr
    assert "Traceback" not in res.stderr
    assert _digest(out) == before


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_run_never_mixes_into_a_folder_of_other_files(tmp_path, force):
    out = tmp_path / "mine"
    before = _user_folder(out)
    res = run_cli("run", *DIGITS, "--out", str(out), *force, timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "holds files that ddd-audit did not write" in res.stderr
    assert _digest(out) == before


def test_import_force_replaces_an_audit_and_keeps_its_studies(tmp_path, capsys):
    source = write_mvh_folder(tmp_path / "raw")
    out = tmp_path / "audit"
    assert _in_process(capsys, "import", source, "--out", out).returncode == 0
    study = out / "studies" / "pilot" / "study.json"
    study.parent.mkdir(parents=True)
    study.write_text('{"format": "kept"}')
    again = _in_process(capsys, "import", source, "--out", out)
    assert again.returncode == 2 and "holds an audit" in again.stderr and "--force" in again.stderr
    replaced = _in_process(capsys, "import", write_mvh_folder(tmp_path / "raw2", seed=1), "--out", out, "--force")
    assert replaced.returncode == 0, replaced.stderr
    assert study.read_text() == '{"format": "kept"}'  # human data is never part of a replacement
    assert load(out).n_models == 3


def test_a_run_killed_before_its_manifest_resumes(tmp_path, capsys):
    """The state a kill leaves between making the folder and writing the manifest (prepare_directory's own
    writes, a temporary file of the writer) is resumed by the same command, not refused."""
    out = tmp_path / "run"
    cfg = AuditConfig(dataset="digits", variants="minimal", epochs=1, device="cpu", train_size=300, val_size=200,
                      depth="none", rsa_images=0)  # the same as DIGITS
    prepare_directory(plan_audit(cfg), out)
    (out / ".images.parquet.k1ll.parquet.tmp").write_bytes(b"half")
    assert folder_state(out) == ("begun", [])
    res = _in_process(capsys, "run", *DIGITS, "--out", out)
    assert res.returncode == 0, res.stderr
    assert load(out).is_complete and not list(out.glob(".*.tmp"))


def test_an_import_killed_before_its_manifest_resumes(tmp_path, capsys):
    source = write_mvh_folder(tmp_path / "raw")
    out = tmp_path / "audit"
    assert _in_process(capsys, "import", source, "--out", out).returncode == 0
    (out / "manifest.json").unlink()  # killed after the decisions, before the manifest
    shutil.rmtree(out / "report", ignore_errors=True)
    assert folder_state(out)[0] == "begun"
    res = _in_process(capsys, "import", source, "--out", out)
    assert res.returncode == 0, res.stderr
    assert load(out).is_complete


def test_the_library_refuses_too(tmp_path):
    out = tmp_path / "mine"
    before = _user_folder(out)
    with pytest.raises(AuditError, match="did not write"):
        run_audit(plan_audit(AuditConfig(dataset="digits", variants="minimal", epochs=1, device="cpu")), out,
                  force=True)
    assert _digest(out) == before
