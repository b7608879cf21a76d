"""The bad-input catalogue: wrong options, files and grids for `run`, `report`, `list` and `study`.

Every case must end with a non-zero exit, a message of at most 3 lines that names the option or
file at fault, no traceback, and no temporary file left behind. The CLI's entry point runs in this
process (as `ddd-audit` would, through `audit.cli.main`), so the whole catalogue takes seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import invoke_cli as invoke

MAX_LINES = 3




@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Bad and good files that the cases refer to by name."""
    root = tmp_path_factory.mktemp("bad_input")
    f = {"root": root}

    def write(name: str, text: str) -> Path:
        p = root / name
        p.write_text(text)
        f[name] = p
        return p

    write("syntax.yaml", "variants:\n  - {name: a, arch: [\n")
    write("syntax.json", '{"conditions": {"base": 1,}}')
    write("unknown_condition.yaml", "conditions:\n  bogus_condition: 2\n")
    write("typo_kwarg.yaml", "variants:\n  - {name: a, arch: resnet_small, arch_kwargs: {widht: 8}}\n")
    write("zero_epochs.yaml", "variants:\n  - {name: a, epochs: 0}\n")
    write("unknown_arch.yaml", "variants:\n  - {name: a, arch: resnet_huge}\n")
    write("no_name.yaml", "variants:\n  - {epochs: 2}\n")
    write("variants_not_list.yaml", "variants: {name: a}\n")
    write("scalar.yaml", "just a string\n")
    write("unknown_base_field.yaml", "base:\n  epoks: 2\nconditions:\n  base: 1\n")
    write("garbage.pth", "not a checkpoint")
    write("a_file", "x")
    write("mapping_bad.csv", "no_such_class,3\n")
    # a small ImageFolder with a val/ folder only and ordinary class names
    for c in ("cat_like", "dog_like"):
        d = root / "valonly" / "val" / c
        d.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(d / f"{i}.png")
    # an audit directory whose manifest is damaged, one of another format, and one without images.parquet
    for name, text in (("damaged", "{not json"), ("other_format", json.dumps({"format": "x/9"})),
                       ("no_images", json.dumps({"format": "ddd-audit/1", "jobs": []}))):
        (root / name).mkdir()
        (root / name / "manifest.json").write_text(text)
    (root / "empty_dir").mkdir()
    return f


def _p(files, name: str) -> str:
    return str(files[name]) if name in files else str(files["root"] / name)


# (id, args with {file} placeholders, a word the message must contain)
CASES = [
    # ---- run: options
    ("misspelt-option", ["run", "--modles", "x"], "--modles"),
    ("epochs-zero", ["run", "--epochs", "0"], "--epochs"),
    ("epochs-text", ["run", "--epochs", "abc"], "--epochs"),
    ("workers-zero", ["run", "--workers", "0"], "--workers"),
    ("val-size-zero", ["run", "--val-size", "0"], "--val-size"),
    ("train-size-one", ["run", "--train-size", "1"], "--train-size"),
    ("probe-train-size-small", ["run", "--probe-train-size", "3"], "--probe-train-size"),
    ("depth-reference-small", ["run", "--depth-reference", "5"], "--depth-reference"),
    ("image-size-zero", ["run", "--dataset", "digits", "--image-size", "0", "--out", "{root}/o1"], "--image-size"),
    ("image-size-negative", ["run", "--dataset", "digits", "--image-size", "-5", "--out", "{root}/o1"],
     "--image-size"),
    ("resizer", ["run", "--dataset", "digits", "--resizer", "cubic", "--out", "{root}/o1"], "--resizer"),
    ("depth", ["run", "--dataset", "digits", "--depth", "deep", "--out", "{root}/o1"], "--depth"),
    ("depth-train-without-depth", ["run", "--dataset", "digits", "--depth", "none", "--depth-train"],
     "--depth-train"),
    ("executor", ["run", "--dataset", "digits", "--variants", "minimal", "--executor", "slurm", "--out",
                  "{root}/o1"], "slurm"),
    ("ray-address-without-ray", ["run", "--ray-address", "10.0.0.1:6379"], "--ray-address"),
    ("gpus-per-job-without-ray", ["run", "--gpus-per-job", "0.5"], "--gpus-per-job"),
    ("gpus-per-job-zero", ["run", "--gpus-per-job", "0"], "--gpus-per-job"),
    ("dataset-option-without-value", ["run", "--dataset-option", "novalue"], "--dataset-option"),
    ("seed-text", ["run", "--seed", "one"], "--seed"),
    ("unexpected-argument", ["run", "digits"], "digits"),
    # ---- run: datasets, models, files
    ("unknown-dataset", ["run", "--dataset", "imagenette", "--out", "{root}/o1"], "imagenette"),
    ("missing-imagefolder", ["run", "--dataset", "imagefolder:{root}/nowhere", "--out", "{root}/o1"], "nowhere"),
    ("imagefolder-without-val", ["run", "--dataset", "imagefolder:{root}/empty_dir", "--out", "{root}/o1"],
     "empty_dir"),
    ("val-only-folder-with-variants", ["run", "--dataset", "imagefolder:{root}/valonly", "--out", "{root}/o1"],
     "--variants none"),
    ("val-only-folder-unmapped-classes", ["run", "--dataset", "imagefolder:{root}/valonly", "--variants", "none",
                                          "--models", "efficientnet_lite0", "--out", "{root}/o1"], "--label-map"),
    ("missing-label-map", ["run", "--dataset", "digits", "--variants", "none", "--models", "efficientnet_lite0",
                           "--label-map", "{root}/nowhere.csv", "--out", "{root}/o1"], "nowhere.csv"),
    ("label-map-unknown-class", ["run", "--dataset", "digits", "--variants", "none", "--models",
                                 "efficientnet_lite0", "--label-map", "{mapping_bad.csv}", "--out", "{root}/o1"],
     "mapping_bad.csv"),
    ("unknown-model", ["run", "--dataset", "digits", "--variants", "none", "--models", "efficientnet_lite",
                       "--out", "{root}/o1"], "efficientnet_lite"),
    ("missing-checkpoint", ["run", "--dataset", "digits", "--variants", "none", "--models",
                            "resnet18={root}/nowhere.pth", "--out", "{root}/o1"], "nowhere.pth"),
    ("nothing-to-run", ["run", "--dataset", "digits", "--variants", "none", "--out", "{root}/o1"], "--models"),
    ("out-is-a-file", ["run", "--dataset", "digits", "--variants", "minimal", "--out", "{a_file}"], "--out"),
    ("cache-dir-is-a-file", ["run", "--dataset", "digits", "--variants", "none", "--models", "efficientnet_lite0",
                             "--cache-dir", "{a_file}", "--out", "{root}/o1"], "--cache-dir"),
    ("cache-dir-under-a-file", ["run", "--dataset", "digits", "--variants", "none", "--models",
                                "efficientnet_lite0", "--cache-dir", "{a_file}/cache", "--out", "{root}/o1"],
     "--cache-dir"),
    ("out-under-a-file", ["run", "--dataset", "digits", "--variants", "minimal", "--out", "{a_file}/audit"],
     "--out"),
    ("out-holds-other-files", ["run", "--dataset", "digits", "--variants", "minimal", "--out", "{root}/valonly"],
     "valonly"),
    # ---- run: grid files
    ("unknown-preset", ["run", "--variants", "fast"], "fast"),
    ("missing-grid", ["run", "--dataset", "digits", "--variants", "{root}/nowhere.yaml"], "nowhere.yaml"),
    ("grid-yaml-syntax", ["run", "--dataset", "digits", "--variants", "{syntax.yaml}"], "syntax.yaml"),
    ("grid-json-syntax", ["run", "--dataset", "digits", "--variants", "{syntax.json}"], "syntax.json"),
    ("grid-unknown-condition", ["run", "--dataset", "digits", "--variants", "{unknown_condition.yaml}"],
     "bogus_condition"),
    ("grid-misspelt-arch-option", ["run", "--dataset", "digits", "--variants", "{typo_kwarg.yaml}"], "widht"),
    ("grid-zero-epochs", ["run", "--dataset", "digits", "--variants", "{zero_epochs.yaml}"], "epochs"),
    ("grid-unknown-arch", ["run", "--dataset", "digits", "--variants", "{unknown_arch.yaml}"], "resnet_huge"),
    ("grid-variant-without-name", ["run", "--dataset", "digits", "--variants", "{no_name.yaml}"], "name"),
    ("grid-variants-not-a-list", ["run", "--dataset", "digits", "--variants", "{variants_not_list.yaml}"],
     "variants_not_list.yaml"),
    ("grid-not-a-mapping", ["run", "--dataset", "digits", "--variants", "{scalar.yaml}"], "scalar.yaml"),
    ("grid-unknown-base-field", ["run", "--dataset", "digits", "--variants", "{unknown_base_field.yaml}"], "epoks"),
    # ---- report
    ("report-missing-dir", ["report", "{root}/nowhere"], "nowhere"),
    ("report-a-file", ["report", "{a_file}"], "a_file"),
    ("report-not-an-audit", ["report", "{empty_dir}"], "empty_dir"),
    ("report-damaged-manifest", ["report", "{damaged}"], "manifest.json"),
    ("report-other-format", ["report", "{other_format}"], "other_format"),
    ("report-before-images", ["report", "{no_images}"], "no_images"),
    ("report-negative-tolerance", ["report", "{damaged}", "--tolerance", "-1"], "--tolerance"),
    ("report-without-path", ["report"], "PATH"),
    # ---- other commands
    ("unknown-command", ["audit"], "audit"),
    ("list-unknown", ["list", "checkpoints"], "checkpoints"),
    ("study-create-without-audit", ["study", "create", "--name", "s"], "--audit"),
    ("study-create-without-name", ["study", "create", "--audit", "{damaged}"], "--name"),
    ("study-create-missing-audit", ["study", "create", "--audit", "{root}/nowhere", "--name", "s"], "nowhere"),
    ("study-create-damaged-audit", ["study", "create", "--audit", "{damaged}", "--name", "s"], "manifest.json"),
    ("study-create-zero-trials", ["study", "create", "--audit", "{damaged}", "--name", "s", "--trials", "0"],
     "--trials"),
    ("study-analyze-missing", ["study", "analyze", "--study-dir", "{root}/nowhere"], "nowhere"),
    ("study-export-missing", ["study", "export", "--study-dir", "{root}/nowhere"], "nowhere"),
    ("study-unknown-command", ["study", "serve"], "serve"),
]


def _fill(args: list[str], files) -> list[str]:
    out = []
    for a in args:
        a = a.replace("{root}", str(files["root"]))
        for key, path in files.items():
            a = a.replace("{" + key + "}", str(path))
        if "{" in a:  # a directory made by the fixture
            name = a[a.index("{") + 1 : a.index("}")]
            a = a.replace("{" + name + "}", _p(files, name))
        out.append(a)
    return out


@pytest.mark.parametrize(("args", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_ends_in_a_short_message(args, needle, files, capsys):
    code, text = invoke(_fill(args, files), capsys)
    assert code != 0, text
    assert "Traceback" not in text and 'File "' not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert 1 <= len(lines) <= MAX_LINES, text
    assert needle.lower() in text.lower(), f"the message does not name {needle!r}: {text}"
    assert text.lower().startswith("error:") or "\nerror:" in text.lower(), text
    assert not list(files["root"].rglob("*.tmp")), "temporary files were left behind"


def test_the_catalogue_is_large():
    assert len(CASES) >= 40
