"""Every shell command in README.md and docs/ runs as a user copies it: in order, in a fresh folder, in a shell
that has run the README's `. .venv/bin/activate`, on a tiny audit. Two readers share the folder, one on the pages
about your own data, one on the rest, each in the docs' order. DDD_AUDIT_SMOKE=1 shrinks the sizes (see
audit/running/engine.py); the command text stays as written, except TOKEN, which becomes the study's admin token.

Servers (`ddd-audit app`, `ddd-audit study serve`) are started, answer their health check and are stopped.
The inputs the docs assume (decisions.csv, logits/, an image folder, ...) are made here from real data. The
few commands that need what no test machine has are in CANNOT_RUN, with the reason, and run with --dry-run
instead, so a stale flag still fails; setting up the machine is in NOT_IN_A_TEST. Nothing else is left out.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.test_docs_commands import COMMANDS

pytestmark = pytest.mark.slow

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: the order a reader follows: import.md imports the decisions of own-data.md's wds: audit, so own-data comes first
ORDER = sorted(DOCS, key=lambda p: (p.name != "README.md", p.name != "index.md", p.name != "own-data.md"))
#: the first word of a shell command in a code block; the rest of a block is a command's output
SHELL = re.compile(r"^(ddd-audit|make|pip|python|jupyter|streamlit|\.)\s|^[A-Z][A-Z0-9_]*=\S+$")
SHELL_FENCES = ("", "bash", "sh", "shell", "console")

#: commands that set up a machine or run the test suite itself, and the test that covers each
NOT_IN_A_TEST = {
    "make ": "sets up the machine or runs the suite; test_docs_commands checks that each target exists",
    "pip install ": "installs packages; test_wheel installs the built wheel into a fresh environment",
    "python -m venv ": "creates the environment these tests run in",
    "jupyter notebook ": "opens a browser; test_notebook executes the notebook",
}
#: documented commands that need what a test machine never has: run with --dry-run, which must exit 0 or stop
#: at the named need (pattern in its output)
CANNOT_RUN = {
    "--dataset cifar100 --data-root data --variants grid.yaml": (
        "downloads CIFAR-100 from the internet", r"cifar-100-python/ not found under data"),
    "--executor ray --ray-address HEAD:6379": (  # its folders are on the cluster's shared storage, not here
        "a Ray cluster with CUDA GPUs and shared storage",
        r"--data-root /shared/data does not exist|cifar-100-python/ not found under /shared/data"),
    "--dataset imagenet:data/imagenet/val": (
        "a CUDA GPU, and timm weights from the Hugging Face Hub", r"no CUDA device is available"),
    "resnet50.a1_in1k,vit_small_patch16_224": ("timm weights from the Hugging Face Hub (internet)", None),
}
SERVES = ("ddd-audit app ", "ddd-audit study serve ", "streamlit run ")
#: the pages on your own data, followed by a second reader beside the one who reads the default audit
OWN_DATA = ("own-data.md", "import.md")
NO_NETWORK = "http://127.0.0.1:9"  # a closed port: a dry run that tries to download fails at once


def code_blocks(path: Path) -> list[tuple[int, str, list[str]]]:
    """(first line number, language, lines) of each code block of a Markdown file: fenced (```lang) or
    indented by 4 spaces (language '')."""
    out: list[tuple[int, str, list[str]]] = []
    fence, block = None, None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.lstrip().startswith("```"):
            if fence is None:
                fence, block = line.strip()[3:].strip(), (number + 1, [])
            else:
                out.append((block[0], fence, block[1]))
                fence = None
            continue
        if fence is not None:
            block[1].append(line)
        elif line.startswith("    "):
            if out and out[-1][1] == "" and out[-1][0] + len(out[-1][2]) == number:
                out[-1][2].append(line[4:])
            else:
                out.append((number, "", [line[4:]]))
    return out


def shell_commands(path: Path) -> list[tuple[int, str]]:
    """(line number, command) of each shell command in the code blocks of `path`: continuation lines
    joined, a leading `$ ` dropped, trailing comments kept (the shell drops them)."""
    out = []
    for first, lang, lines in code_blocks(path):
        if lang not in SHELL_FENCES:
            continue
        pending, start = "", 0
        for k, line in enumerate(lines):
            text = re.sub(r"^\$\s+", "", line.strip())
            if pending:
                pending += " " + text.rstrip("\\").strip()
                if not text.endswith("\\"):
                    out.append((start, pending))
                    pending = ""
            elif SHELL.match(text):
                if text.endswith("\\"):
                    pending, start = text.rstrip("\\").strip(), first + k
                else:
                    out.append((first + k, text))
    return out


SHELL_COMMANDS = [(f"{p.relative_to(ROOT)}:{n}", c) for p in ORDER for n, c in shell_commands(p)]


def _kind(command: str) -> str:
    if command.startswith(". ") or re.fullmatch(r"[A-Z][A-Z0-9_]*=\S+", command):
        return "shell"  # the activation and variables: every later command's shell runs them first
    if any(command.startswith(p) for p in NOT_IN_A_TEST):
        return "setup"
    if any(k in command for k in CANNOT_RUN):
        return "dry-run"
    return "serve" if command.startswith(SERVES) else "run"


def _named(command: str, table: dict) -> str:
    return next(k for k in table if command.startswith(k) or k in command)


# ---- the inputs the docs assume ---------------------------------------------------------------------------


def python_block(path: Path, marker: str) -> str:
    """The one Python block of `path` that contains `marker`."""
    found = [lines for _, lang, lines in code_blocks(path) if lang == "python" and marker in "\n".join(lines)]
    assert len(found) == 1, f"{path.name}: {len(found)} python blocks contain {marker!r}"
    return "\n".join(found[0]) + "\n"


def grid_file(path: Path) -> str:
    """The YAML block of own-data.md that starts with `# grid.yaml`."""
    found = [lines for _, lang, lines in code_blocks(path) if lang == "yaml" and lines[0].strip() == "# grid.yaml"]
    assert len(found) == 1
    return "\n".join(found[0]) + "\n"


def write_digits_zoo(box: Path) -> None:
    """logits/, labels.npy, classes.txt, predictions/ and labels.csv: three scikit-learn classifiers fitted on
    the first half of sklearn's digits, deciding its second half."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier

    x, y = load_digits(return_X_y=True)
    half = len(y) // 2
    models = {"logistic": LogisticRegression(max_iter=200), "naive_bayes": GaussianNB(),
              "knn": KNeighborsClassifier(5)}
    (box / "logits").mkdir()
    (box / "predictions").mkdir()
    images = [f"digit_{i:04d}" for i in range(len(y) - half)]
    for name, model in models.items():
        probs = model.fit(x[:half], y[:half]).predict_proba(x[half:])
        np.save(box / "logits" / f"{name}.npy", np.log(np.clip(probs, 1e-9, 1)).astype(np.float32))
        pd.DataFrame({"image": images, "predicted": probs.argmax(1), "top_prob": probs.max(1),
                      "true_prob": probs[np.arange(len(probs)), y[half:]]}).to_parquet(
            box / "predictions" / f"{name}.parquet")
    np.save(box / "labels.npy", y[half:])
    (box / "classes.txt").write_text("".join(f"{c}\n" for c in "0123456789"))
    pd.DataFrame({"image": images, "label": y[half:]}).to_csv(box / "labels.csv", index=False)


def make_inputs(box: Path) -> None:
    """Everything the docs assume the reader has, from data on this machine."""
    from tests.table_fixtures import fashion_mnist_images, write_imagefolder
    from tests.test_imagenet_photos import PHOTOS, write_crops

    venv = Path(sys.prefix)
    (box / ".venv").symlink_to(venv, target_is_directory=True)
    encoded, exts, labels, names = fashion_mnist_images(240)  # an ImageFolder tree with train/ and val/
    keys = [f"img{i:03d}" for i in range(len(labels))]
    write_imagefolder(box / "data" / "birds", "train", encoded[:160], exts[:160], labels[:160], names, keys[:160])
    write_imagefolder(box / "data" / "birds", "val", encoded[160:], exts[160:], labels[160:], names, keys[160:])
    for name, (wnid, _) in PHOTOS.items():  # ImageNet's layout, one synset folder per photo
        write_crops(box / "data" / "imagenet" / "val" / wnid, name, 2)
    shutil.copytree(ROOT / "tests" / "data" / "model-vs-human" / "raw-data" / "colour", box / "raw-data" / "colour")
    (box / "data" / "colour").mkdir()  # model-vs-human's images are not shipped; import only records the folder
    write_digits_zoo(box)
    (box / "grid.yaml").write_text(grid_file(ROOT / "docs" / "tutorials" / "own-data.md"))


def write_wds_decisions(box: Path) -> None:
    """decisions.csv: maker,image,label,predicted rows from the `wds:` audit of own-data.md, keyed by the
    shards' keys, as import.md describes it."""
    import audit

    result = audit.load(box / "runs" / "fmnist-wds")
    names = np.asarray(result.class_names)
    predicted = result.predicted()
    keys = result.images["source"].to_numpy()
    rows = [{"maker": model, "image": key, "label": names[label], "predicted": names[predicted[i, m]]}
            for m, model in enumerate(result.model_names) for i, (key, label) in enumerate(zip(keys, result.labels, strict=True))]
    pd.DataFrame(rows).to_csv(box / "decisions.csv", index=False)


def agree_with_one_suggestion(box: Path) -> None:
    """The reviewer's step of curate.md: in review/relabel.csv, accept the models' suggestion for the first
    flagged image."""
    issues = pd.read_csv(box / "review" / "label_issues.csv")
    relabel = pd.read_csv(box / "review" / "relabel.csv", dtype=str, keep_default_na=False)
    first = relabel["image"] == str(issues["image"].iloc[0])
    assert first.sum() == 1
    relabel.loc[first, "new_label"] = issues["suggested_label"].iloc[0]
    relabel.to_csv(box / "review" / "relabel.csv", index=False, quoting=csv.QUOTE_MINIMAL)


def observers_answer(box: Path, codes: list[str]) -> None:
    """Step 3 of study.md: the pilot's first nine observers take the study, with meding2022's accuracies."""
    from human_study.folder import open_study_dir
    from tests.study_fixtures import answer_like_the_paper

    store, study = open_study_dir(box / "runs" / "default" / "studies" / "pilot")
    with store:
        answer_like_the_paper(store, study, codes[:9])


# ---- running them ---------------------------------------------------------------------------------------


def _env(box: Path, *, offline: bool = False) -> dict:
    """The user's environment: ddd-audit only through the activation, DDD_AUDIT_SMOKE=1."""
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p).resolve() != Path(sys.prefix, "bin").resolve()]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PATH=os.pathsep.join(path), DDD_AUDIT_SMOKE="1", COLUMNS="120", PYTHONUNBUFFERED="1")
    if offline:
        env.update({k: NO_NETWORK for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")})
    return env


def _shell(box: Path, prelude: list[str], command: str, *, offline: bool = False, timeout: float = 240):
    script = "set -e\n" + "\n".join([*prelude, command])
    return subprocess.run(["bash", "-c", script], cwd=box, env=_env(box, offline=offline), capture_output=True,
                          text=True, timeout=timeout)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def serve_and_stop(box: Path, prelude: list[str], command: str, log: Path) -> str:
    """Start a documented server, wait (bounded) for its health check on 127.0.0.1, then stop it. Its port is
    the one it prints; when the documented port is taken here, `--port N` is added (and said in the result)."""
    from tests.browser.streamlit_server import free_port, wait_healthy

    documented = int(m.group(1)) if (m := re.search(r"--port (\d+)", command)) else 8501
    note = ""
    if not _port_free(documented):
        command, note = f"{command} --port {free_port()}", f" (port {documented} is taken here)"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "-c", "\n".join(["set -e", *prelude, f"exec {command}"])], cwd=box,
                                env=_env(box), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, port = time.monotonic() + 60, None
        while port is None:
            found = re.search(r"(?:localhost|127\.0\.0\.1|0\.0\.0\.0):(\d+)", log.read_text())
            port = int(found.group(1)) if found else None
            assert proc.poll() is None or port, f"{command} exited with {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"{command} printed no address:\n{log.read_text()}"
            time.sleep(0.2)
        wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=90, log_path=log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    return f"served on {port}{note}"


def _children_cpu() -> float:
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _out_folder(command: str) -> str | None:
    found = re.search(r"--out (\S+)", command)
    return found.group(1).rstrip("/") if found else None


def test_every_documented_command_is_run_or_named():
    kinds = {c: _kind(c) for _, c in SHELL_COMMANDS}
    assert {c for _, c in COMMANDS} <= set(kinds), "a ddd-audit command that the shell extraction misses"
    assert sum(k in ("run", "serve") for k in kinds.values()) >= 25
    assert len(CANNOT_RUN) <= 4 and len(NOT_IN_A_TEST) <= 4
    for key in [*CANNOT_RUN, *NOT_IN_A_TEST]:  # no stale entry
        assert any(key in c for c in kinds), f"no documented command matches {key!r}"


class Reader:
    """One reader in one shell: follows documented commands in order in the sandbox `box`, keeping the shell's
    variables, the studies' tokens and observer codes, and what came of each command."""

    def __init__(self, box: Path, logs: Path, prelude: list[str]):
        self.box, self.logs, self.prelude = box, logs, list(prelude)
        self.tokens: dict[str, str] = {}
        self.codes: dict[str, list[str]] = {}
        self.done: dict[str, str] = {}  # command -> what came of it (a command documented twice runs once)
        self.took: list[tuple[float, str]] = []

    def follow(self, commands: list[tuple[str, str]]) -> Reader:
        for where, command in commands:
            kind = _kind(command)
            if kind == "shell":
                if not command.startswith(". "):
                    self.prelude.append(command)
            elif kind != "setup" and command not in self.done:
                t0 = time.perf_counter()
                self.done[command] = self.one(where, command, kind)
                self.took.append((time.perf_counter() - t0, command))
        return self

    def before(self, where: str, command: str) -> str:
        """The reader's own steps before `command`, and the command with TOKEN filled in."""
        box = self.box
        if where.startswith("docs/tutorials/own-data.md") and not (box / "fmnist-wds").exists():
            (box / "write_fmnist.py").write_text(python_block(ROOT / "docs" / "tutorials" / "own-data.md", "fmnist-wds"))
            result = _shell(box, self.prelude, "python write_fmnist.py")
            assert result.returncode == 0, f"own-data.md's Python block failed:\n{result.stderr[-3000:]}"
        if command.startswith("ddd-audit import decisions.csv") and not (box / "decisions.csv").exists():
            write_wds_decisions(box)
        if "--relabel review/relabel.csv" in command:
            agree_with_one_suggestion(box)
        if command.startswith("ddd-audit study analyze"):
            observers_answer(box, self.codes["pilot"])
        if "TOKEN" in command:
            study = re.search(r"--study-dir \S+/studies/(\w+)", command).group(1)
            command = command.replace("TOKEN", self.tokens[study])
        return command

    def one(self, where: str, command: str, kind: str) -> str:
        command = self.before(where, command)
        if kind == "serve":
            return serve_and_stop(self.box, self.prelude, command, self.logs / f"serve-{len(self.done)}.log")
        if kind == "dry-run":
            reason, expected = CANNOT_RUN[_named(command, CANNOT_RUN)]
            result = _shell(self.box, self.prelude, f"{command} --dry-run", offline=True)
            text = result.stdout + result.stderr
            assert result.returncode == 0 or (expected and result.returncode == 2 and re.search(expected, text)), (
                f"{where}: {command} --dry-run (not run: {reason})\nexit {result.returncode}\n{text[-3000:]}")
            return f"dry run, exit {result.returncode}"
        result = _shell(self.box, self.prelude, command)
        text = result.stdout + result.stderr
        assert result.returncode == 0, f"{where}: {command}\nexit {result.returncode}\n{text[-4000:]}"
        check_outcome(self.box, command, text)
        if command.startswith("ddd-audit study create"):
            name = re.search(r"--name (\w+)", command).group(1)
            self.tokens[name] = re.search(r"Admin token \(shown once[^)]*\): (\S+)", text).group(1)
            self.codes[name] = re.findall(r"^\s+subject-\d+\s+(\w+)\s", text, flags=re.M)
        return "ran"


def test_the_docs_run_as_written(tmp_path):
    """Two readers at once in one folder, each in the order of the docs: one follows the pages on your own
    data, the other the rest, which reads the default audit (runs/default)."""
    from concurrent.futures import ThreadPoolExecutor

    box = tmp_path / "sandbox"
    box.mkdir()
    make_inputs(box)
    activate = [c for _, c in SHELL_COMMANDS if c.startswith(". ")]
    assert activate and set(activate) == {". .venv/bin/activate"}, "the README says how to get the commands"
    lanes = [[(w, c) for w, c in SHELL_COMMANDS if w.split(":")[0].endswith(OWN_DATA) == own] for own in (False, True)]
    cpu0, wall0 = _children_cpu(), time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        readers = list(pool.map(lambda lane: Reader(box, tmp_path, activate[:1]).follow(lane), lanes))
    done = {c: what for r in readers for c, what in r.done.items()}
    ran = [c for c, what in done.items() if what == "ran" or what.startswith("served")]
    print(f"\n{len(ran)} commands ran, {len(done) - len(ran)} as dry runs, in {time.perf_counter() - wall0:.0f} s "
          f"({_children_cpu() - cpu0:.0f} CPU-seconds); slowest:")
    for seconds, command in sorted((t for r in readers for t in r.took), reverse=True)[:8]:
        print(f"  {seconds:5.1f} s  {command[:100]}")
    assert len(ran) >= 25


def check_outcome(box: Path, command: str, text: str) -> None:
    """What each kind of command must leave behind, beyond exit 0."""
    import json

    out = _out_folder(command)
    if command.startswith("ddd-audit run "):
        assert "note: DDD_AUDIT_SMOKE is set" in text
        manifest = json.loads((box / out / "manifest.json").read_text())
        assert manifest["smoke"]["val_size"] <= 600 and manifest["config"]["epochs"] == 1
    elif command.startswith(("ddd-audit import ", "ddd-audit export ")):
        assert (box / out).is_dir() and any((box / out).iterdir()), f"{command} left {out} empty"
    elif command.startswith("ddd-audit figures "):
        assert len(list((box / out).glob("*.png"))) >= 5
    elif command.startswith("ddd-audit study analyze"):
        assert "9 observers" in text and len(list((box / "figures").glob("pilot*"))) >= 4, text
    elif command.startswith("ddd-audit study export"):
        export = box / "runs" / "default" / "studies" / "pilot" / "export"
        assert len(pd.read_csv(export / "pilot_responses.csv")) >= 9 * 149
