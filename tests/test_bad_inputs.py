"""Bad input, case by case: grid files, the audit's flags, image folders, import tables and a study's settings.

Every case must end with exit code 2 and exactly one line, `error: ...`, that names the field, flag or file
at fault, and must leave nothing in --out (or in the audit a study would be written into). The CLI's entry
point runs in this process and every error comes before any job runs (`run` takes --dry-run), so the whole
suite takes seconds. tests/test_cli_bad_input.py holds the older catalogue (missing files, unknown names).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import invoke_cli

TABLE = "maker,image,label,predicted\nm1,a,0,0\nm1,b,1,1\nm2,a,0,1\nm2,b,1,1\n"


# --------------------------------------------------------------------------- grid files
GRIDS = {
    # name: (text, a word the error must name)
    "base_scalar.yaml": ("base: 5\nconditions: {base: 1}\n", "base"),
    "base_list.yaml": ("base: [epochs, 2]\nconditions: {base: 1}\n", "base"),
    "base_null.yaml": ("base:\nconditions: {base: 1}\n", "base"),
    "conditions_string.yaml": ("conditions: base\n", "conditions"),
    "conditions_list.yaml": ("conditions: [base, init_seed]\n", "conditions"),
    "condition_negative.yaml": ("conditions: {base: -1}\n", "conditions.base"),
    "condition_huge.yaml": ("conditions: {init_seed: 1000}\n", "conditions.init_seed"),
    "condition_text.yaml": ("conditions: {init_seed: two}\n", "conditions.init_seed"),
    "base_milestones.yaml": ("base: {milestones: 5}\nconditions: {base: 1}\n", "milestones"),
    "base_epochs_1e9.yaml": ("base: {epochs: 1000000000}\nconditions: {base: 1}\n", "base.epochs"),
    "base_lr_inf.yaml": ("base: {lr: .inf}\nconditions: {base: 1}\n", "base.lr"),
    "base_width.yaml": ("base: {arch_kwargs: {width: 100000, depth: 8}}\nconditions: {base: 1}\n",
                        "base.arch_kwargs.width"),
    "base_other_width.yaml": ("base: {other_arch_kwargs: {width: 0}}\nconditions: {architecture: 1}\n",
                              "other_arch_kwargs.width"),
    "base_schedule.yaml": ("base: {schedule: cosine}\nconditions: {base: 1}\n", "base.schedule"),
    "base_epoch_size.yaml": ("base: {epoch_size: 0}\nconditions: {base: 1}\n", "base.epoch_size"),
    "milestones_5.yaml": ("variants:\n  - {name: a, lr_milestones: 5}\n", "lr_milestones"),
    "milestones_above_1.yaml": ("variants:\n  - {name: a, lr_milestones: [0.5, 1.5]}\n", "lr_milestones"),
    "lr_inf.yaml": ("variants:\n  - {name: a, lr: .inf}\n", "lr"),
    "lr_nan.yaml": ("variants:\n  - {name: a, lr: .nan}\n", "lr"),
    "lr_negative.yaml": ("variants:\n  - {name: a, lr: -0.1}\n", "lr"),
    "lr_zero.yaml": ("variants:\n  - {name: a, lr: 0}\n", "lr"),
    "lr_50.yaml": ("variants:\n  - {name: a, lr: 50}\n", "lr"),
    "lr_text.yaml": ("variants:\n  - {name: a, lr: fast}\n", "lr"),
    "width_100000.yaml": ("variants:\n  - {name: a, arch_kwargs: {width: 100000}}\n", "width"),
    "width_zero.yaml": ("variants:\n  - {name: a, arch_kwargs: {width: 0}}\n", "width"),
    "depth_1000.yaml": ("variants:\n  - {name: a, arch: vgg_small, arch_kwargs: {depth: 1000}}\n", "depth"),
    "arch_kwargs_scalar.yaml": ("variants:\n  - {name: a, arch_kwargs: 5}\n", "arch_kwargs"),
    "epochs_1e9.yaml": ("variants:\n  - {name: a, epochs: 1e9}\n", "epochs"),
    "epochs_1000000000.yaml": ("variants:\n  - {name: a, epochs: 1000000000}\n", "epochs"),
    "epochs_fraction.yaml": ("variants:\n  - {name: a, epochs: 2.5}\n", "epochs"),
    "epochs_bool.yaml": ("variants:\n  - {name: a, epochs: true}\n", "epochs"),
    "epochs_negative.yaml": ("variants:\n  - {name: a, epochs: -3}\n", "epochs"),
    "batch_zero.yaml": ("variants:\n  - {name: a, batch_size: 0}\n", "batch_size"),
    "batch_huge.yaml": ("variants:\n  - {name: a, batch_size: 10000000}\n", "batch_size"),
    "name_slash.yaml": ("variants:\n  - {name: a/b}\n", "name"),
    "name_dots.yaml": ("variants:\n  - {name: a..b}\n", "name"),
    "name_empty.yaml": ("variants:\n  - {name: ''}\n", "name"),
    "name_number.yaml": ("variants:\n  - {name: 123}\n", "name"),
    "name_space.yaml": ("variants:\n  - {name: 'wide net'}\n", "name"),
    "momentum.yaml": ("variants:\n  - {name: a, momentum: 1.5}\n", "momentum"),
    "weight_decay.yaml": ("variants:\n  - {name: a, weight_decay: -1}\n", "weight_decay"),
    "label_smoothing.yaml": ("variants:\n  - {name: a, label_smoothing: 1}\n", "label_smoothing"),
    "schedule.yaml": ("variants:\n  - {name: a, schedule: cosine}\n", "schedule"),
    "train_part.yaml": ("variants:\n  - {name: a, train_part: third}\n", "train_part"),
    "epoch_size.yaml": ("variants:\n  - {name: a, epoch_size: 0}\n", "epoch_size"),
    "train_size.yaml": ("variants:\n  - {name: a, train_size: 1}\n", "train_size"),
    "init_seed.yaml": ("variants:\n  - {name: a, init_seed: -1}\n", "init_seed"),
    "nesterov_text.yaml": ("variants:\n  - {name: a, nesterov: maybe}\n", "nesterov"),
    "variants_strings.yaml": ("variants: [a, b]\n", "variants"),
    "variant_twice.yaml": ("variants:\n  - {name: a}\n  - {name: a}\n", "twice"),
    "unknown_top_key.yaml": ("varaints:\n  - {name: a}\n", "varaints"),
    "only_base.yaml": ("base: {epochs: 2}\n", "only_base.yaml"),
    "empty.yaml": ("", "empty.yaml"),
    "top_list.yaml": ("- {name: a}\n", "top_list.yaml"),
    "lr_infinity.json": ('{"variants": [{"name": "a", "lr": Infinity}]}', "lr"),
    "epochs_1e9.json": ('{"variants": [{"name": "a", "epochs": 1e9}]}', "epochs"),
    "name_slash.json": ('{"variants": [{"name": "../escape"}]}', "name"),
}
GRID_CASES = [(f"grid-{name.replace('.', '-')}", ["run", "--dataset", "digits", "--variants", f"{{{name}}}",
                                                  "--dry-run", "--out", "{out}"], needle)
              for name, (_, needle) in GRIDS.items()]
GRID_CASES.append(("grid-a-folder", ["run", "--dataset", "digits", "--variants", "{folder.yaml}", "--dry-run",
                                     "--out", "{out}"], "folder.yaml"))

# --------------------------------------------------------------------------- the audit's flags
RUN = ["run", "--dataset", "digits", "--variants", "minimal", "--dry-run", "--out", "{out}"]
FLAG_CASES = [
    ("flag-epochs-1e9", [*RUN, "--epochs", "1000000000"], "--epochs"),
    ("flag-epochs-negative", [*RUN, "--epochs", "-1"], "--epochs"),
    ("flag-epochs-float", [*RUN, "--epochs", "2.5"], "--epochs"),
    ("flag-train-size-huge", [*RUN, "--train-size", "1000000000"], "--train-size"),
    ("flag-val-size-huge", [*RUN, "--val-size", "1000000000"], "--val-size"),
    ("flag-val-size-text", [*RUN, "--val-size", "all"], "--val-size"),
    ("flag-seed-negative", [*RUN, "--seed", "-1"], "--seed"),
    ("flag-seed-huge", [*RUN, "--seed", "99999999999"], "--seed"),
    ("flag-image-size-huge", [*RUN, "--image-size", "5000"], "--image-size"),
    ("flag-image-size-small", [*RUN, "--image-size", "4"], "--image-size"),
    ("flag-workers-huge", [*RUN, "--workers", "1000"], "--workers"),
    ("flag-rsa-images-two", [*RUN, "--rsa-images", "2"], "--rsa-images"),
    ("flag-rsa-images-huge", [*RUN, "--rsa-images", "50000"], "--rsa-images"),
    ("flag-depth-reference-huge", [*RUN, "--depth-reference", "10000000"], "--depth-reference"),
    ("flag-probe-train-size-huge", [*RUN, "--probe-train-size", "1000000000"], "--probe-train-size"),
    ("flag-device", [*RUN, "--device", "tpu"], "--device"),
    ("flag-depth-word", [*RUN, "--depth", "every"], "--depth"),
    ("flag-gpus-per-job-huge", [*RUN, "--gpus-per-job", "100"], "--gpus-per-job"),
    ("flag-dataset-option-no-key", [*RUN, "--dataset-option", "=3"], "--dataset-option"),
    ("flag-split-on-digits", [*RUN, "--split", "test"], "--split"),
    ("flag-variants-unknown", ["run", "--dataset", "digits", "--variants", "tiny", "--dry-run", "--out", "{out}"],
     "tiny"),
]

# --------------------------------------------------------------------------- image folders
FOLDER_CASES = [
    (f"folder-{name}", ["run", "--dataset", f"imagefolder:{{{name}}}", "--variants", "none", "--models",
                        "efficientnet_lite0", "--dry-run", "--out", "{out}"], name)
    for name in ("empty_classes", "no_images", "not_images", "undecodable", "one_class_of_text")
] + [
    ("folder-is-a-file", ["run", "--dataset", "imagefolder:{table.csv}", "--variants", "none", "--models",
                          "efficientnet_lite0", "--dry-run", "--out", "{out}"], "table.csv"),
    ("folder-undecodable-with-variants", ["run", "--dataset", "imagefolder:{undecodable}", "--variants",
                                          "minimal", "--dry-run", "--out", "{out}"], "undecodable"),
]

# --------------------------------------------------------------------------- import tables
H = "maker,image,label,predicted"
TABLES = {
    # name: (text, a word the error must name)
    "empty_label.csv": (f"{H}\nm1,a,0,0\nm1,b,,1\nm2,a,0,1\nm2,b,1,1\n", "label"),
    "empty_predicted.csv": (f"{H}\nm1,a,0,0\nm1,b,1,\nm2,a,0,1\nm2,b,1,1\n", "predicted"),
    "empty_label_name.csv": (f"{H}\nm1,a,cat,cat\nm1,b,,dog\nm2,a,cat,dog\nm2,b,dog,dog\n", "label"),
    "empty_predicted_name.csv": (f"{H}\nm1,a,cat,cat\nm1,b,dog,\nm2,a,cat,dog\nm2,b,dog,dog\n", "predicted"),
    "blank_predicted.csv": (f"{H}\nm1,a,cat,cat\nm1,b,dog,  \nm2,a,cat,dog\nm2,b,dog,dog\n", "predicted"),
    "empty_maker.csv": (f"{H}\nm1,a,0,0\n,b,1,1\nm2,a,0,1\nm2,b,1,1\n", "maker"),
    "empty_image.csv": (f"{H}\nm1,a,0,0\nm1,,1,1\nm2,a,0,1\nm2,b,1,1\n", "image"),
    "predicted_1e6.csv": (f"{H}\nm1,a,0,0\nm1,b,1,1000000\nm2,a,0,1\nm2,b,1,1\n", "predicted"),
    "predicted_negative.csv": (f"{H}\nm1,a,0,0\nm1,b,1,-1\nm2,a,0,1\nm2,b,1,1\n", "predicted"),
    "label_1e6.csv": (f"{H}\nm1,a,0,0\nm1,b,1000000,1\nm2,a,0,1\nm2,b,1000000,1\n", "label"),
    "label_negative.csv": (f"{H}\nm1,a,0,0\nm1,b,-1,1\nm2,a,0,1\nm2,b,-1,1\n", "label"),
    "true_prob_abc.csv": (f"{H},true_prob\nm1,a,0,0,0.9\nm1,b,1,1,abc\nm2,a,0,1,0.2\nm2,b,1,1,0.8\n",
                          "true_prob"),
    "true_prob_7_5.csv": (f"{H},true_prob\nm1,a,0,0,0.9\nm1,b,1,1,7.5\nm2,a,0,1,0.2\nm2,b,1,1,0.8\n",
                          "true_prob"),
    "true_prob_negative.csv": (f"{H},true_prob\nm1,a,0,0,0.9\nm1,b,1,1,-0.1\nm2,a,0,1,0.2\nm2,b,1,1,0.8\n",
                               "true_prob"),
    "true_prob_inf.csv": (f"{H},true_prob\nm1,a,0,0,0.9\nm1,b,1,1,inf\nm2,a,0,1,0.2\nm2,b,1,1,0.8\n",
                          "true_prob"),
    "top_prob_2.csv": (f"{H},top_prob\nm1,a,0,0,0.9\nm1,b,1,1,2\nm2,a,0,1,0.2\nm2,b,1,1,0.8\n", "top_prob"),
    "top_prob_text.csv": (f"{H},top_prob\nm1,a,0,0,0.9\nm1,b,1,1,high\nm2,a,0,1,0.2\nm2,b,1,1,0.8\n",
                          "top_prob"),
    "epoch_negative.csv": (f"{H},epoch\nm1,a,0,0,0\nm1,b,1,1,-1\nm2,a,0,1,0\nm2,b,1,1,0\n", "epoch"),
    "epoch_fraction.csv": (f"{H},epoch\nm1,a,0,0,0\nm1,b,1,1,1.5\nm2,a,0,1,0\nm2,b,1,1,0\n", "epoch"),
    "epoch_text.csv": (f"{H},epoch\nm1,a,0,0,0\nm1,b,1,1,last\nm2,a,0,1,0\nm2,b,1,1,0\n", "epoch"),
    "epoch_huge.csv": (f"{H},epoch\nm1,a,0,0,0\nm1,b,1,1,1000000000\nm2,a,0,1,0\nm2,b,1,1,0\n", "epoch"),
    "epoch_empty.csv": (f"{H},epoch\nm1,a,0,0,0\nm1,b,1,1,\nm2,a,0,1,0\nm2,b,1,1,0\n", "epoch"),
    "rt_negative.csv": (f"{H},kind,rt\nm1,a,0,0,model,\nm2,a,0,1,model,\nh1,a,0,0,human,-0.5\n", "rt"),
    "rt_text.csv": (f"{H},kind,rt\nm1,a,0,0,model,\nm2,a,0,1,model,\nh1,a,0,0,human,slow\n", "rt"),
    "rt_huge.csv": (f"{H},kind,rt\nm1,a,0,0,model,\nm2,a,0,1,model,\nh1,a,0,0,human,1e9\n", "rt"),
    "kind_robot.csv": (f"{H},kind\nm1,a,0,0,model\nm1,b,1,1,robot\nm2,a,0,1,model\nm2,b,1,1,model\n", "kind"),
    "no_predicted.csv": ("maker,image,label\nm1,a,0\nm2,a,0\n", "predicted"),
    "header_only.csv": (f"{H}\n", "header_only.csv"),
    "maker_slash.csv": (f"{H}\nm1,a,0,0\nm1,b,1,1\n../m2,a,0,1\n../m2,b,1,1\n", "../m2"),
    "bad.tsv": ("maker\timage\tlabel\tpredicted\ttrue_prob\nm1\ta\t0\t0\t0.5\nm2\ta\t0\t1\tnone\n", "true_prob"),
}
TABLE_CASES = [(f"table-{name.replace('.', '-').replace('_', '-')}", ["import", f"{{{name}}}", "--out", "{out}"],
                needle) for name, (_, needle) in TABLES.items()]
PARQUETS = {
    "empty_predicted.parquet": ({"predicted": [0, None, 1, 1]}, "predicted"),
    "true_prob_7_5.parquet": ({"true_prob": [0.9, 7.5, 0.2, 0.8]}, "true_prob"),
    "true_prob_text.parquet": ({"true_prob": ["0.9", "abc", "0.2", "0.8"]}, "true_prob"),
    "predicted_1e6.parquet": ({"predicted": [0, 1_000_000, 1, 1]}, "predicted"),
    "empty_label.parquet": ({"label": ["cat", None, "cat", "dog"], "predicted": ["cat", "dog", "dog", "dog"]},
                            "label"),
}
TABLE_CASES += [(f"table-{name.replace('.', '-').replace('_', '-')}", ["import", f"{{{name}}}", "--out", "{out}"],
                 needle) for name, (_, needle) in PARQUETS.items()]
ZOOS = {
    # a folder of per-model prediction files: {file: csv text}
    "zoo_true_prob_abc": ({"m2.csv": "image,predicted,label,true_prob\na,0,0,0.9\nb,1,1,abc\n"}, "true_prob"),
    "zoo_true_prob_7_5": ({"m2.csv": "image,predicted,label,true_prob\na,0,0,0.9\nb,1,1,7.5\n"}, "true_prob"),
    "zoo_predicted_1e6": ({"m2.csv": "image,predicted,label\na,0,0\nb,1000000,1\n"}, "predicted"),
    "zoo_empty_image": ({"m2.csv": "image,predicted,label\na,0,0\n,1,1\n"}, "image"),
    "zoo_empty_predicted": ({"m2.csv": "image,predicted,label\na,0,0\nb,,1\n"}, "predicted"),
    "zoo_empty_label": ({"m2.csv": "image,predicted,label\na,0,0\nb,1,\n"}, "label"),
    "zoo_top_prob_negative": ({"m2.csv": "image,predicted,label,top_prob\na,0,0,0.9\nb,1,1,-2\n"}, "top_prob"),
}
ZOO_GOOD = "image,predicted,label,true_prob,top_prob\na,0,0,0.9,0.9\nb,1,1,0.8,0.8\n"
TABLE_CASES += [(f"table-{name.replace('_', '-')}", ["import", f"{{{name}}}", "--format", "predictions", "--out",
                                                     "{out}"], needle) for name, (_, needle) in ZOOS.items()]
TABLE_CASES += [
    ("table-labels-npy-predicted-1e6", ["import", "{zoo_no_label}", "--labels", "{labels.npy}", "--out", "{out}"],
     "predicted"),
    ("table-label-outside-classes", ["import", "{names.csv}", "--classes", "{classes.txt}", "--out", "{out}"],
     "bird"),
    ("table-index-outside-classes", ["import", "{table.csv}", "--classes", "{one_class.txt}", "--out", "{out}"],
     "one_class.txt"),
    ("table-split-by", ["import", "{table.csv}", "--split-by", "everyone", "--out", "{out}"], "--split-by"),
    ("table-format", ["import", "{table.csv}", "--format", "excel", "--out", "{out}"], "--format"),
]

# --------------------------------------------------------------------------- a study's settings
STUDY = ["study", "create", "--audit", "{audit}", "--name", "s"]
STUDY_CASES = [
    ("study-trials-huge", [*STUDY, "--trials", "6000"], "--trials"),
    ("study-trials-text", [*STUDY, "--trials", "many"], "--trials"),
    ("study-practice-huge", [*STUDY, "--practice", "1000"], "--practice"),
    ("study-practice-negative", [*STUDY, "--practice", "-1"], "--practice"),
    ("study-catch-huge", [*STUDY, "--catch", "5000"], "--catch"),
    ("study-tolerance-huge", [*STUDY, "--tolerance", "5000"], "--tolerance"),
    ("study-size-small", [*STUDY, "--size", "8"], "--size"),
    ("study-size-huge", [*STUDY, "--size", "5000"], "--size"),
    ("study-question", [*STUDY, "--question", "prettier"], "question"),
    ("study-seed-negative", [*STUDY, "--seed", "-1"], "--seed"),
    ("study-seed-huge", [*STUDY, "--seed", str(2**40)], "--seed"),
    ("study-observers-huge", [*STUDY, "--observers", "20000"], "--observers"),
    ("study-break-every-negative", [*STUDY, "--break-every", "-1"], "--break-every"),
    ("study-fixation-huge", [*STUDY, "--fixation-ms", "100000"], "--fixation-ms"),
    ("study-fixation-negative", [*STUDY, "--fixation-ms", "-1"], "--fixation-ms"),
    ("study-stimulus-zero", [*STUDY, "--stimulus-ms", "0"], "--stimulus-ms"),
    ("study-iti-huge", [*STUDY, "--iti-ms", "70000"], "--iti-ms"),
    ("study-mask-without-limit", [*STUDY, "--sequence", "lab", "--mask"], "--mask"),
    ("study-background-word", [*STUDY, "--background", "red"], "background"),
    ("study-background-short", [*STUDY, "--background", "#80808"], "background"),
    ("study-size-deg-small", [*STUDY, "--size-deg", "0.1"], "--size-deg"),
    ("study-size-deg-huge", [*STUDY, "--size-deg", "100"], "--size-deg"),
    ("study-distance-small", [*STUDY, "--distance-cm", "5"], "--distance-cm"),
    ("study-distance-huge", [*STUDY, "--distance-cm", "1000"], "--distance-cm"),
    ("study-completion-code", [*STUDY, "--completion-code", "C1/A2"], "completion_code"),
    ("study-redirect-url", [*STUDY, "--redirect-url", "ftp://example.org/x"], "redirect_url"),
    ("study-attention", [*STUDY, "--attention", "kick"], "attention"),
    ("study-attention-max-failures", [*STUDY, "--attention-max-failures", "0"], "--attention-max-failures"),
    ("study-sequence", [*STUDY, "--sequence", "fast"], "--sequence"),
]

CASES = GRID_CASES + FLAG_CASES + FOLDER_CASES + TABLE_CASES + STUDY_CASES


def _image(path: Path, value: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The bad (and good) files that the cases name in braces."""
    root = tmp_path_factory.mktemp("bad_inputs")
    f: dict[str, Path] = {}
    for name, (text, _) in {**GRIDS, **TABLES}.items():
        f[name] = root / name
        f[name].write_text(text)
    f["table.csv"] = root / "table.csv"
    f["table.csv"].write_text(TABLE)
    f["folder.yaml"] = root / "folder.yaml"
    f["folder.yaml"].mkdir()
    good = pd.DataFrame({"maker": ["m1", "m1", "m2", "m2"], "image": ["a", "b", "a", "b"],
                         "label": [0, 1, 0, 1], "predicted": [0, 1, 1, 1]})
    for name, (change, _) in PARQUETS.items():
        f[name] = root / name
        good.assign(**change).to_parquet(f[name])
    for name, (written, _) in ZOOS.items():
        f[name] = root / name
        f[name].mkdir()
        (f[name] / "m1.csv").write_text(ZOO_GOOD)
        for file, text in written.items():
            (f[name] / file).write_text(text)
    f["zoo_no_label"] = root / "zoo_no_label"
    f["zoo_no_label"].mkdir()
    (f["zoo_no_label"] / "m1.csv").write_text("image,predicted\n0,0\n1,1\n")
    (f["zoo_no_label"] / "m2.csv").write_text("image,predicted\n0,1000000\n1,1\n")
    f["labels.npy"] = root / "labels.npy"
    np.save(f["labels.npy"], np.array([0, 1]))
    f["names.csv"] = root / "names.csv"
    f["names.csv"].write_text(f"{H}\nm1,a,cat,cat\nm1,b,bird,cat\nm2,a,cat,dog\nm2,b,bird,dog\n")
    f["classes.txt"] = root / "classes.txt"
    f["classes.txt"].write_text("cat\ndog\n")
    f["one_class.txt"] = root / "one_class.txt"
    f["one_class.txt"].write_text("zero\n")  # a class list needs two classes
    # image folders
    for name in ("empty_classes", "no_images", "not_images", "undecodable", "one_class_of_text"):
        f[name] = root / name
    (f["empty_classes"] / "train").mkdir(parents=True)
    (f["empty_classes"] / "val").mkdir()
    (f["no_images"] / "val" / "cat").mkdir(parents=True)
    (f["no_images"] / "val" / "dog").mkdir()
    for c in ("cat", "dog"):
        (f["not_images"] / "val" / c).mkdir(parents=True)
        (f["not_images"] / "val" / c / "notes.txt").write_text("not an image")
        (f["undecodable"] / "val" / c).mkdir(parents=True)
        (f["undecodable"] / "val" / c / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))
        (f["undecodable"] / "val" / c / "1.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 40)
    (f["one_class_of_text"] / "val" / "cat").mkdir(parents=True)
    (f["one_class_of_text"] / "val" / "cat" / "a.csv").write_text(TABLE)
    return f


def _fill(args: list[str], files: dict[str, Path], extra: dict[str, Path]) -> list[str]:
    names = {**files, **extra}
    out = []
    for arg in args:
        for key, path in names.items():
            arg = arg.replace("{" + key + "}", str(path))
        assert "{" not in arg, f"no file for {arg}"
        out.append(arg)
    return out


def _listing(folder: Path) -> list[tuple[str, int]] | None:
    if not folder.exists():
        return None
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*"))


@pytest.mark.parametrize(("args", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(args, needle, files, tmp_path, capsys):
    out, audit = tmp_path / "out", tmp_path / "audit"
    audit.mkdir()  # a study's settings are checked before this (not an audit) is read
    before = _listing(audit)
    code, text = invoke_cli(_fill(args, files, {"out": out, "audit": audit}), capsys)
    lines = text.splitlines()
    assert code == 2, text
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert "Traceback" not in text
    assert needle.lower() in text.lower(), f"the message does not name {needle!r}: {text}"
    assert not out.exists(), f"{out} was left behind"
    assert _listing(audit) == before, "the audit folder changed"


def test_the_suite_holds_the_cases_of_the_issue():
    ids = {c[0] for c in CASES}
    named = {"grid-base_scalar-yaml", "grid-conditions_string-yaml", "grid-milestones_5-yaml", "grid-lr_inf-yaml",
             "grid-width_100000-yaml", "grid-epochs_1e9-yaml", "grid-name_slash-yaml", "table-empty-label-csv",
             "table-empty-predicted-csv", "table-predicted-1e6-csv", "table-true-prob-abc-csv",
             "table-true-prob-7-5-csv"}
    assert named <= ids, sorted(named - ids)
    assert len(CASES) >= 100 and len(ids) == len(CASES)
    kinds = {c[0].split("-")[0] for c in CASES}
    assert kinds == {"grid", "flag", "folder", "table", "study"}


def test_a_sound_grid_and_table_still_pass(files, tmp_path, capsys):
    """The schemas refuse the cases above, not good input: a grid within every bound plans, a table imports."""
    grid = tmp_path / "grid.yaml"
    grid.write_text("base: {epochs: 1, lr: 0.05, arch_kwargs: {width: 8, depth: 8}}\nconditions: {base: 1}\n"
                    "variants:\n  - {name: wide.v2, lr: 9.5, lr_milestones: [0.5], epochs: 10000, "
                    "arch_kwargs: {width: 4096, depth: 8}}\n")
    code, text = invoke_cli(["run", "--dataset", "digits", "--variants", grid, "--dry-run", "--out",
                             tmp_path / "o"], capsys)
    assert code == 0 and "wide.v2" in text, text
    code, text = invoke_cli(["import", files["table.csv"], "--out", tmp_path / "imported"], capsys)
    assert code == 0 and (tmp_path / "imported" / "manifest.json").exists(), text
