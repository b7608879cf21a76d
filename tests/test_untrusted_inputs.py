"""Untrusted inputs stay inside their folder (docs/security.md): names that become paths, audit folders
received from others, CSVs that open safely in a spreadsheet, and one symlink policy for run, export
and the app.

Real audits are run here on small ImageFolder trees of scikit-learn digits whose class folders carry
formula-like names; nothing is mocked. A "received" audit is one whose manifest carries no seal of
this user's key: made under another state folder, or edited by hand.
"""

from __future__ import annotations

import ast
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from audit.report import build_report, read_report_tables
from audit.store import AuditDir, AuditError, load
from audit.store.files import FORMULA_START, spreadsheet_safe
from audit.store.safety import KEY_ENV, UnsafeNameError, check_name, inside, root_is_sealed, seal_manifest
from tests.conftest import invoke_cli as invoke

ROOT = Path(__file__).resolve().parents[1]
#: class folder names a spreadsheet would run as formulas (sorted, as ImageFolder orders its classes)
HOSTILE_CLASSES = sorted(['=HYPERLINK("evil.example","x")', "+cmd|' -C calc'!A0", "@SUM(1+1)*cmd", "-2+3+cmd"])
BAD_NAMES = ["../../../escaped_variant", "a/b", "a\\b", "..", "x..y", ".hidden", "", "-x", "a b", "a\nb"]


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def digits_tree(root: Path, classes: list[str], *, n_val: int = 8, n_train: int = 30) -> Path:
    """An ImageFolder tree of scikit-learn digits (PNG files), one class folder per name."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for c, name in enumerate(classes):
        idx = np.flatnonzero(digits.target == c)
        for split, ids in (("val", idx[:n_val]), ("train", idx[n_val:n_val + n_train])):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in ids:
                Image.fromarray((digits.images[i] * 15).astype(np.uint8)).save(folder / f"img_{i}.png")
    return root


def run_tiny(dataset: str, out: Path, *, follow_symlinks: bool = False) -> Path:
    from audit.running.engine import AuditConfig, plan_audit, run_audit

    plan = plan_audit(AuditConfig(dataset=dataset, variants="minimal", epochs=1, device="cpu", image_size=8,
                                  depth="none", learnability=False, rsa_images=0, follow_symlinks=follow_symlinks))
    run_audit(plan, out)
    build_report(load(out))
    return out


@pytest.fixture(scope="module")
def hostile_audit(tmp_path_factory) -> tuple[Path, Path]:
    """A real audit of a tree whose class folders are named like spreadsheet formulas: (audit, data root)."""
    base = tmp_path_factory.mktemp("hostile")
    data = digits_tree(base / "data", HOSTILE_CLASSES)
    return run_tiny(f"imagefolder:{data}", base / "audit"), data


# --------------------------------------------------------------------------- 1. one name rule
@pytest.mark.parametrize("name", ["base", "efficientnet_lite0-48px", "resnet50.a1_in1k", "vit@224", "a+b", "7"])
def test_names_that_follow_the_rule(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_that_break_the_rule(name):
    with pytest.raises(UnsafeNameError):
        check_name(name, "variant name")


def test_inside_refuses_what_leaves_the_folder(tmp_path):
    audit_dir = tmp_path / "audit"
    audit_dir.mkdir()
    assert inside(audit_dir, "decisions", "base.parquet") == (audit_dir / "decisions" / "base.parquet").resolve()
    for parts in (("..", "x"), ("decisions", "..", "..", "x"), ("/etc/passwd",)):
        with pytest.raises(AuditError):
            inside(audit_dir, *parts)
    (tmp_path / "elsewhere").mkdir()
    (audit_dir / "decisions").symlink_to(tmp_path / "elsewhere")  # a received folder with a link out of it
    with pytest.raises(AuditError):
        inside(audit_dir, "decisions", "base.parquet")


@pytest.mark.parametrize("name", ["../../../escaped_variant", "a/b", "a\\b", "..", "up..down"])
def test_a_variant_name_that_leads_out_is_refused_before_any_write(tmp_path, capsys, name):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"variants": [{"name": name, "epochs": 1}]}))
    out = tmp_path / "a" / "b" / "c" / "out"
    code, text = invoke(["run", "--dataset", "digits", "--variants", str(grid), "--out", str(out)], capsys)
    assert code == 2, text
    assert "variant name" in text
    assert files_under(tmp_path) == {"grid.json"}, "something was written"


@pytest.mark.parametrize("maker", ["../../evil", "net/a", "net\\a", "a..b"])
def test_a_maker_name_that_leads_out_is_refused_before_any_write(tmp_path, capsys, maker):
    rows = [{"maker": m, "image": f"im{i}", "label": i % 2, "predicted": (i + k) % 2}
            for k, m in enumerate(["good", maker, "other"]) for i in range(6)]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    code, text = invoke(["import", str(tmp_path / "t.csv"), "--out", str(tmp_path / "x" / "out")], capsys)
    assert code == 2, text
    assert "maker name" in text
    assert files_under(tmp_path) == {"t.csv"}, "something was written"


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", "..", "a..b"])
def test_a_study_name_that_leads_out_is_refused_before_any_write(digits_audit, capsys, name):
    before = files_under(digits_audit.parent)
    code, text = invoke(["study", "create", "--audit", str(digits_audit), "--name", name, "--trials", "4"], capsys)
    assert code != 0, text
    assert "study name" in text
    assert files_under(digits_audit.parent) == before


def test_a_study_name_from_a_database_cannot_lead_an_export_out(tmp_path):
    from human_study.export import write_exports

    with pytest.raises(UnsafeNameError):
        write_exports(pd.DataFrame(), tmp_path / "export", prefix="../../escaped")
    assert not (tmp_path / "export").exists() and files_under(tmp_path) == set()


def test_a_job_name_and_a_link_out_of_a_received_audit_are_not_written(tmp_path):
    from audit.store import decisions_frame

    store = AuditDir(tmp_path / "audit")
    store.write_manifest({"dataset": {"name": "x", "classes": ["a", "b"]}, "jobs": []})
    frame = decisions_frame([0], np.arange(2), np.zeros((1, 2), int), np.ones((1, 2)), np.ones((1, 2)),
                            np.zeros(2, int))
    with pytest.raises(UnsafeNameError):
        store.write_job("../../escaped", {}, frame)
    (tmp_path / "elsewhere").mkdir()
    (store.path / "decisions").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(AuditError):
        store.write_job("base", {}, frame)
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert {p.name for p in tmp_path.iterdir()} == {"audit", "elsewhere"}


#: Writes that do not go through `inside`/`AuditDir.file`, and why each stays where it belongs.
WRITES_ELSEWHERE = {
    ("audit/store/files.py", "*"): "the atomic writers themselves: callers hand them a checked path",
    ("audit/curation/export.py", "export_selection"): "the export's own temporary folder beside --out (the user's flag)",
    ("audit/curation/export.py", "_write"): "files named by image id and class folder inside the export's temporary folder",
    ("audit/data/decode_cache.py", "get"): "the decode cache under --cache-dir (the user's flag), named by hashes",
    ("audit/report/html.py", "write_html_report"): "report/report.html via AuditDir.file, or a path the caller gives",
    ("audit/report/pdf.py", "write_pdf_report"): "report/report.pdf via AuditDir.file, or a path the caller gives",
    ("audit/report/build.py", "_write_csv"): "a path build_report made with AuditDir.file",
    ("audit/store/decisions.py", "write"): "the final-decision cache: its folder is checked with inside() first",
    ("audit/running/train.py", "_save_checkpoint"): "checkpoints/<variant>.pt: the folder from AuditDir.file, names checked",
    ("human_study/export.py", "write_exports"): "--out of study export, with the study name checked",
    ("human_study/export.py", "write_tidy"): "--out of study export, with the study name checked",
    ("human_study/folder.py", "render_study_images"): "the study's own images/ folder, files named by the design",
    ("human_study/folder.py", "create_study"): "the study folder, its name checked by the study name rule",
    ("human_study/folder.py", "record_base_url"): "the study's study.json",
}
WRITERS = {"write_csv", "write_json", "write_parquet", "write_npy", "write_npz", "atomic_path", "to_csv",
           "to_parquet", "savefig", "write_text", "write_bytes", "symlink", "copy2", "copyfile", "to_people_csv",
           "save"}


def _writer_calls():
    """(file, function, writer, path argument's source) for every write call in the tool's code."""
    files = [*ROOT.glob("audit/**/*.py"), *ROOT.glob("human_study/**/*.py"), *ROOT.glob("audit_app/**/*.py"),
             ROOT / "audit_app" / "app.py"]
    for path in sorted(files):
        source = path.read_text()
        for fn in ast.walk(ast.parse(source)):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, ast.Call):
                    continue
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                if name not in WRITERS:
                    continue
                target = node.args[0] if node.args else getattr(node.func, "value", None)
                yield (str(path.relative_to(ROOT)), fn.name, name,
                       ast.get_source_segment(source, target) if target is not None else "", fn, source)


def _checked(arg: str, fn, source: str) -> bool:
    """The path comes from AuditDir.file / inside(), directly or through a name assigned from one."""
    if ".file(" in arg or "inside(" in arg or "_job_file(" in arg:
        return True
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and any(ast.get_source_segment(source, t) == arg for t in node.targets):
            value = ast.get_source_segment(source, node.value) or ""
            if ".file(" in value or "inside(" in value or "_job_file(" in value:
                return True
    return False


def test_every_writer_goes_through_the_store_helper_or_is_listed():
    unchecked, used = [], set()
    for rel, fn_name, writer, arg, fn, source in _writer_calls():
        if writer in ("to_csv", "save", "savefig") and arg in ("spreadsheet_safe(frame)", "buf", "buffer", "fh", "f", "tmp"):
            continue  # into a buffer or an open temporary file of an atomic writer
        if _checked(arg, fn, source):
            continue
        key = (rel, fn_name) if (rel, fn_name) in WRITES_ELSEWHERE else (rel, "*")
        if key in WRITES_ELSEWHERE:
            used.add(key)
            continue
        unchecked.append(f"{rel}:{fn_name}: {writer}({arg})")
    assert not unchecked, "writes that do not go through audit.store's inside():\n" + "\n".join(unchecked)
    assert used == set(WRITES_ELSEWHERE), f"stale exemptions: {set(WRITES_ELSEWHERE) - used}"


def test_the_writer_walk_sees_the_audit_writers():
    seen = {(rel, fn) for rel, fn, *_ in _writer_calls()}
    for must in (("audit/store/directory.py", "write_job"), ("audit/store/directory.py", "write_images"),
                 ("audit/curation/importers/writer.py", "_write_makers"), ("audit/report/build.py", "build_report")):
        assert must in seen


# --------------------------------------------------------------------------- 2. received audits
def _received(src: Path, dest: Path, *, root=None, sources=None, classes=None) -> Path:
    """A copy of an audit as it might arrive from elsewhere: no seal, and whatever the sender wrote."""
    shutil.copytree(src, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["dataset"].pop("root_seal", None)
    if root is not None:
        manifest["dataset"]["root"] = manifest["dataset"]["origin"] = root
    if classes is not None:
        manifest["dataset"]["classes"] = classes
    (dest / "manifest.json").write_text(json.dumps(manifest))
    if sources is not None:
        images = pd.read_parquet(dest / "images.parquet")
        images.loc[: len(sources) - 1, "source"] = sources
        images.to_parquet(dest / "images.parquet", index=False)
    return dest


@pytest.fixture()
def root_slash(hostile_audit, tmp_path) -> Path:
    """The issue's received audit: root `/`, images etc/passwd and /etc/hostname."""
    audit_dir, _ = hostile_audit
    return _received(audit_dir, tmp_path / "received", root="/", sources=["etc/passwd", "/etc/hostname"])


def test_own_audit_is_sealed_and_a_received_one_is_not(hostile_audit, root_slash):
    assert root_is_sealed(json.loads((hostile_audit[0] / "manifest.json").read_text()))
    assert not root_is_sealed(json.loads((root_slash / "manifest.json").read_text()))
    load(hostile_audit[0]).image(0)  # made here: its images are read


def test_root_slash_cannot_make_export_copy_read_outside(root_slash, tmp_path, capsys):
    out = tmp_path / "export"
    code, text = invoke(["export", str(root_slash), "--subset", "n_correct >= 0", "--format", "imagefolder",
                         "--copy", "--out", str(out)], capsys)
    assert code == 2, text
    assert "--images-root" in text and "not created by you on this machine" in text
    assert not out.exists()


def test_root_slash_with_a_seal_of_ours_is_still_refused(root_slash, tmp_path, capsys):
    manifest = json.loads((root_slash / "manifest.json").read_text())
    (root_slash / "manifest.json").write_text(json.dumps(seal_manifest(manifest)))
    assert root_is_sealed(json.loads((root_slash / "manifest.json").read_text()))
    with pytest.raises(AuditError, match="system folder"):
        load(root_slash).image_path(0)
    code, text = invoke(["export", str(root_slash), "--subset", "n_correct >= 0", "--format", "imagefolder",
                         "--copy", "--out", str(tmp_path / "export")], capsys)
    assert code == 2 and "--images-root" in text, text


def test_root_slash_report_reads_no_image_and_the_app_shows_none(root_slash, tmp_path, capsys):
    from audit_app import _image_frames

    code, text = invoke(["report", str(root_slash), "--html"], capsys)
    assert code == 0, text
    note = _image_frames.pixels_note(root_slash)
    assert note is not None and "--images-root" in note
    grey = _image_frames.thumbnails(root_slash, [0, 1], 16)
    assert all((t == 235).all() for t in grey), "an image outside the audit's images was shown"
    with pytest.raises(AuditError):
        load(root_slash).image(1)


def test_images_root_reads_a_received_audit_inside_the_named_folder(hostile_audit, tmp_path, capsys):
    audit_dir, data = hostile_audit
    moved = tmp_path / "their-copy-of-the-data"
    shutil.copytree(data, moved)
    received = _received(audit_dir, tmp_path / "received")  # the sender's root, no seal of ours
    code, text = invoke(["export", str(received), "--subset", "n_correct >= 0", "--format", "imagefolder",
                         "--copy", "--out", str(tmp_path / "none")], capsys)
    assert code == 2 and "--images-root" in text, text
    out = tmp_path / "export"
    code, text = invoke(["export", str(received), "--subset", "n_correct >= 0", "--format", "imagefolder",
                         "--copy", "--images-root", str(data), "--out", str(out)], capsys)
    assert code == 0, text
    copied = sorted(p for p in out.rglob("*.png"))
    assert len(copied) == load(received).n_images
    for p in copied:
        assert p.resolve().is_relative_to(out.resolve())
    result = load(received, images_root=moved)
    assert result.image_path(0).is_relative_to(moved.resolve())
    # the hostile source is read relative to the named folder, never as the absolute path it claims
    hostile = _received(audit_dir, tmp_path / "hostile", root="/", sources=["/etc/passwd"])
    assert load(hostile, images_root=moved).image_path(0) == moved.resolve() / "etc" / "passwd"
    with pytest.raises(AuditError):
        load(hostile, images_root=moved).image(0)


def test_an_audit_made_under_another_key_needs_images_root(tmp_path, monkeypatch, capsys):
    data = digits_tree(tmp_path / "data", ["a", "b"], n_val=4, n_train=10)
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "their-machine"))
    out = run_tiny(f"imagefolder:{data}", tmp_path / "audit")
    load(out).image(0)  # on their machine
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "our-machine"))
    with pytest.raises(AuditError, match="--images-root"):
        load(out).image(0)
    assert load(out, images_root=data).image(0).size == (8, 8)


# --------------------------------------------------------------------------- 3. CSV for spreadsheets
def _raw_cells(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return [cell for row in csv.reader(f) for cell in row]


def _assert_no_formula(path: Path) -> None:
    for cell in _raw_cells(path):
        if cell.startswith(FORMULA_START):
            try:
                float(cell)
            except ValueError:
                raise AssertionError(f"{path.name}: formula cell {cell!r}") from None


def test_report_tables_neutralise_formulas_and_read_back_verbatim(hostile_audit):
    audit_dir, _ = hostile_audit
    tables = sorted((audit_dir / "report").glob("*.csv"))
    assert {"per_class_accuracy.csv", "confusion_all.csv"} <= {p.name for p in tables}
    hostile_seen = 0
    for path in tables:
        _assert_no_formula(path)
        hostile_seen += sum(cell.startswith("'") and cell[1:] in HOSTILE_CLASSES for cell in _raw_cells(path))
    assert hostile_seen >= len(HOSTILE_CLASSES)
    result = load(audit_dir)
    assert result.class_names == HOSTILE_CLASSES  # audit.load(): verbatim
    assert set(pd.read_parquet(audit_dir / "images.parquet")["class_name"]) == set(HOSTILE_CLASSES)  # Parquet
    tables_back, _ = read_report_tables(result)
    assert set(tables_back["per_class"].astype(str).stack()) >= set(HOSTILE_CLASSES)


@pytest.mark.parametrize("fmt", ["csv", "imagefolder", "parquet"])
def test_export_csv_files_neutralise_formulas_parquet_stays_verbatim(hostile_audit, tmp_path, capsys, fmt):
    audit_dir, _ = hostile_audit
    out = tmp_path / fmt
    code, text = invoke(["export", str(audit_dir), "--subset", "n_correct >= 0", "--format", fmt,
                         "--out", str(out)], capsys)
    assert code == 0, text
    for path in out.glob("*.csv"):
        _assert_no_formula(path)
    if fmt == "parquet":
        assert set(pd.read_parquet(out / "images.parquet")["class_name"]) == set(HOSTILE_CLASSES)
    else:
        table = out / ("images.csv" if fmt == "csv" else "index.csv")
        assert {"'" + c for c in HOSTILE_CLASSES} <= {c for c in _raw_cells(table) if c.startswith("'")}
    assert "formula" in (out / "README.md").read_text() and "csv_cells" in json.loads((out / "card.json").read_text())


def test_neutralising_is_undone_exactly():
    from audit.store.files import restore_frame

    frame = pd.DataFrame({"x": ["=1", "-1.5", "-x", "'=y", "''@z", "ok", "\tt", "\rr", None], "n": range(9)})
    safe = spreadsheet_safe(frame)
    assert safe["x"].tolist()[:8] == ["'=1", "-1.5", "'-x", "''=y", "'''@z", "ok", "'\tt", "'\rr"]
    pd.testing.assert_frame_equal(restore_frame(safe), frame, check_dtype=False)


def test_study_exports_neutralise_formulas_and_keep_model_vs_human_rules(tmp_path, capsys):
    from human_study.design import DesignConfig
    from human_study.folder import create_study, open_study_dir
    from tests.study_fixtures import make_study_audit

    path = make_study_audit(tmp_path / "audit", n_classes=3)
    store = AuditDir(path)
    manifest = store.read_manifest()
    manifest["dataset"]["classes"] = HOSTILE_CLASSES
    store.write_manifest(manifest)
    images = pd.read_parquet(path / "images.parquet")
    images["class_name"] = [HOSTILE_CLASSES[i] for i in images["label"]]
    images.to_parquet(path / "images.parquet", index=False)
    made = create_study(path, "formulas", config=DesignConfig(n_trials=6, n_practice=1, n_catch=1, size=16, seed=2),
                        n_observers=2)
    db, _ = open_study_dir(made.folder)
    for obs in db.admin(made.study_id, made.admin_token).observers():
        session = db.start_session(obs.id)
        while (trial := db.next_trial(obs.id)) is not None:
            db.record_response(session.id, trial.trial_id, "left", rt_ms=500.0)
    db.close()
    code, text = invoke(["study", "export", "--study-dir", str(made.folder), "--token", made.admin_token,
                         "--out", str(tmp_path / "exp")], capsys)
    assert code == 0, text
    responses = next((tmp_path / "exp").glob("*_responses.csv"))
    _assert_no_formula(responses)
    assert {c for c in _raw_cells(responses) if c.startswith("'")} <= {"'" + c for c in HOSTILE_CLASSES}
    assert {c for c in _raw_cells(responses) if c.startswith("'")}, "the class names should be in the table"
    mvh_path = next((tmp_path / "exp").glob("*_model-vs-human.csv"))
    _assert_no_formula(mvh_path)  # every value is the tool's own: nothing to neutralise, nothing changed
    mvh = pd.read_csv(mvh_path)
    assert set(mvh["object_response"]) <= {"trivial", "impossible"} and set(mvh["category"]) <= {"trivial",
                                                                                                  "impossible"}

    def short(name: str) -> str:  # model-vs-human's get_short_imagename
        parts = name.split("_")
        return "_".join(parts[-2:]) if parts[-2].startswith("n0") else parts[-1]

    keys = mvh["imagename"].map(short)
    assert keys.str.fullmatch(r"(main|catch)-pair-\d+").all()
    assert (mvh.groupby("subj")["imagename"].apply(lambda s: sorted(s.map(short))).map(tuple).nunique()) == 1


# --------------------------------------------------------------------------- 4. symlinks
@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    """A tree whose val/b holds a link to a folder outside the root, audited with and without
    --follow-symlinks: (data root, outside folder, default audit, following audit)."""
    base = tmp_path_factory.mktemp("links")
    data = digits_tree(base / "data", ["a", "b"], n_val=4, n_train=12)
    outside = base / "outside"
    digits_tree(outside, ["x"], n_val=3, n_train=0)
    (data / "val" / "b" / "more").symlink_to(outside / "val" / "x", target_is_directory=True)
    default = run_tiny(f"imagefolder:{data}", base / "default")
    follow = run_tiny(f"imagefolder:{data}", base / "follow", follow_symlinks=True)
    return data, outside, default, follow


def test_run_skips_links_out_of_the_root_and_says_so(linked, capsys):
    data, outside, default, follow = linked
    plain, followed = load(default), load(follow)
    assert plain.n_images == 8 and followed.n_images == 11
    assert not any(str(outside) in s or "/more/" in s for s in plain.images["source"])
    notes = " ".join(plain.summary()["notes"])
    assert "skipped 1 symbolic link" in notes
    code, text = invoke(["report", str(default)], capsys)
    assert "symbolic link" in text


def test_export_and_app_follow_the_same_policy(linked, tmp_path, capsys):
    from audit_app import _image_frames

    data, outside, default, follow = linked
    followed = load(follow)
    linked_ids = [int(i) for i, s in zip(followed.images["image_id"], followed.images["source"], strict=True)
                  if "/more/" in s]
    assert len(linked_ids) == 3
    # an audit run with --follow-symlinks: export copies them and the app shows them
    out = tmp_path / "copies"
    code, text = invoke(["export", str(follow), "--subset", "n_correct >= 0", "--format", "imagefolder", "--copy",
                         "--out", str(out)], capsys)
    assert code == 0, text
    assert len(list(out.rglob("*.png"))) == 11
    shown = _image_frames.thumbnails(follow, linked_ids, 16)
    assert not any((t == 235).all() for t in shown)
    # without following, the same images are refused by export and not shown by the app
    code, text = invoke(["export", str(follow), "--subset", "n_correct >= 0", "--format", "imagefolder", "--copy",
                         "--no-follow-symlinks", "--out", str(tmp_path / "refused")], capsys)
    assert code == 2 and "symbolic link" in text, text
    assert not (tmp_path / "refused").exists()
    hidden = _image_frames.thumbnails(follow, linked_ids, 16, follow_symlinks=False)
    assert all((t == 235).all() for t in hidden)
    # the default audit holds none of them, and exports what it audited
    code, text = invoke(["export", str(default), "--subset", "n_correct >= 0", "--format", "imagefolder", "--copy",
                         "--out", str(tmp_path / "plain")], capsys)
    assert code == 0, text
    assert len(list((tmp_path / "plain").rglob("*.png"))) == 8
