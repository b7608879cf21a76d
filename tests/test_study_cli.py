"""`ddd-audit study ...` through Typer's CliRunner: links, tokens, one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from human_study.cli import study_app
from human_study.folder import open_study_dir
from tests.study_fixtures import make_study_audit

runner = CliRunner()


@pytest.fixture(scope="module")
def created(tmp_path_factory):
    path = make_study_audit(tmp_path_factory.mktemp("audit") / "run")
    result = runner.invoke(
        study_app,
        [
            "create",
            "--audit",
            str(path),
            "--name",
            "cli",
            "--trials",
            "12",
            "--practice",
            "2",
            "--catch",
            "1",
            "--size",
            "16",
            "--seed",
            "5",
            "--observers",
            "2",
            "--base-url",
            "http://192.168.1.20:8501",
        ],
    )
    assert result.exit_code == 0, result.output
    token = re.search(r"Admin token[^:]*: (\S+)", result.output).group(1)
    return path, path / "studies" / "cli", token, result.output


def _error_line(result) -> str:
    """The whole error output, which must be one line without a traceback."""
    text = result.output.strip()
    assert result.exit_code != 0
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    assert text.startswith("error: ")
    return text


def test_create_prints_links_and_token(created):
    path, folder, token, output = created
    study_id = re.search(r"\(id ([0-9a-f]{12})\)", output).group(1)
    assert f"http://192.168.1.20:8501/experiment?study={study_id}&observer=CODE" in output
    codes = re.findall(
        r"subject-0\d  ([A-Z0-9]{8})  http://192\.168\.1\.20:8501/experiment\?study=\w+&observer=(\w+)",
        output,
    )
    assert len(codes) == 2 and all(a == b for a, b in codes)
    assert (folder / "study.json").is_file() and (folder / "study.db").is_file()
    store, study = open_study_dir(folder)
    with store:
        assert study.id == study_id and study.n_trials == 12 and study.n_catch == 1
        assert store.check_token(study.id, token)


def test_create_says_how_to_serve_the_study_without_the_report(created):
    path, folder, token, output = created
    serve = next(line for line in output.splitlines() if "study serve" in line)
    assert serve.rstrip().endswith(f"ddd-audit study serve --study-dir {folder.resolve()}")
    result = runner.invoke(study_app, ["serve", "--study-dir", str(folder), "--dry-run"])
    assert result.exit_code == 0, result.output
    command = result.output.strip().splitlines()[-1]
    # the study's own address (192.168.1.20:8501) is not this machine's name: every interface, its port
    assert "--server.address 0.0.0.0 --server.port 8501" in command
    assert "--client.toolbarMode minimal --ui.hideTopBar true" in command
    assert command.endswith(f"-- --study {folder.resolve()}") and "--audit" not in command


def test_links_keep_the_study_address_and_base_url_replaces_it(tmp_path):
    path = make_study_audit(tmp_path / "audit")
    made = runner.invoke(study_app, ["create", "--audit", str(path), "--name", "lab", "--trials", "4", "--practice",
                                     "0", "--base-url", "http://192.168.1.20:8501"])
    assert made.exit_code == 0, made.output
    token = re.search(r"Admin token[^:]*: (\S+)", made.output).group(1)
    folder = path / "studies" / "lab"
    assert json.loads((folder / "study.json").read_text())["base_url"] == "http://192.168.1.20:8501"
    result = runner.invoke(study_app, ["add-observers", "--study-dir", str(folder), "--token", token, "--count", "3"])
    assert result.exit_code == 0, result.output
    links = [line.split()[-1] for line in result.output.strip().splitlines()]
    assert len(links) == 3 and all(link.startswith("http://192.168.1.20:8501/experiment?study=") for link in links)
    result = runner.invoke(study_app, ["add-observers", "--study-dir", str(folder), "--token", token,
                                       "--base-url", "https://lab.example.org/study"])
    assert result.exit_code == 0, result.output
    assert result.output.split()[-1].startswith("https://lab.example.org/study/experiment?study=")
    assert json.loads((folder / "study.json").read_text())["base_url"] == "https://lab.example.org/study"
    result = runner.invoke(study_app, ["add-observers", "--study-dir", str(folder), "--token", token])
    assert result.output.split()[-1].startswith("https://lab.example.org/study/experiment?study=")


def test_a_study_without_an_address_says_so_when_links_are_printed(tmp_path):
    path = make_study_audit(tmp_path / "audit")
    result = runner.invoke(study_app, ["create", "--audit", str(path), "--name", "local", "--trials", "4",
                                       "--practice", "0", "--observers", "1"])
    assert result.exit_code == 0, result.output
    assert "links use http://localhost:8501, which opens only on this machine" in result.output
    assert json.loads((path / "studies" / "local" / "study.json").read_text())["base_url"] is None
    dry = runner.invoke(study_app, ["serve", "--study-dir", str(path / "studies" / "local"), "--dry-run"])
    assert "--server.address 127.0.0.1 --server.port 8501" in dry.output


def test_add_observers_analyze_and_export(created, tmp_path):
    _, folder, token, _ = created
    result = runner.invoke(
        study_app,
        ["add-observers", "--study-dir", str(folder), "--token", token, "--count", "2", "--code", "p07"],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    # the study's own address, without --base-url again
    assert len(lines) == 3 and lines[0].startswith("subject-03  P07  http://192.168.1.20:8501/experiment?study=")

    store, study = open_study_dir(folder)
    with store:
        obs = store.get_observer(study.id, "P07")
        session = store.start_session(obs.id)
        while (trial := store.next_trial(obs.id)) is not None:
            store.record_response(session.id, trial.trial_id, trial.correct_side, rt_ms=700.0)

    result = runner.invoke(study_app, ["analyze", "--study-dir", str(folder)], env={"DDD_STUDY_TOKEN": token})
    assert result.exit_code == 0, result.output
    assert "5 observers, 1 finished, 15 responses" in result.output
    assert "subject-03" in result.output and "12/12" in result.output and "100.0%" in result.output

    result = runner.invoke(
        study_app, ["export", "--study-dir", str(folder), "--token", token, "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    mvh = pd.read_csv(tmp_path / "cli_model-vs-human.csv")
    assert len(mvh) == 13 and list(mvh.columns)[:3] == ["subj", "session", "trial"]
    assert (tmp_path / "cli_responses.csv").is_file()


def test_help_has_examples():
    for command in ("create", "add-observers", "analyze", "export"):
        result = runner.invoke(study_app, [command, "--help"])
        assert result.exit_code == 0 and "Examples" in result.output and "ddd-audit study" in result.output


def test_unknown_audit_path(tmp_path):
    result = runner.invoke(study_app, ["create", "--audit", str(tmp_path / "missing"), "--name", "x"])
    assert "does not exist" in _error_line(result)
    (tmp_path / "empty").mkdir()
    result = runner.invoke(study_app, ["create", "--audit", str(tmp_path / "empty"), "--name", "x"])
    assert "not an audit directory" in _error_line(result)


def test_wrong_or_missing_token_gives_no_data(created):
    _, folder, token, _ = created
    for command in ("analyze", "export", "add-observers"):
        result = runner.invoke(study_app, [command, "--study-dir", str(folder), "--token", token[:-1]])
        assert "wrong admin token" in _error_line(result)
        assert "subject" not in result.output
        result = runner.invoke(study_app, [command, "--study-dir", str(folder)], env={"DDD_STUDY_TOKEN": ""})
        assert "admin token is required" in _error_line(result)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--trials", "500"], "need 505 of each"),
        (["--tolerance", "3"], "too large for 5 models"),
        (["--question", "which"], "question must be one of"),
        (["--base-url", "ftp://x"], "base URL"),
        (["--name", "a/b"], "study name"),
        (["--db", "nosuchdb://x"], "nosuchdb"),
        (["--sequence", "fast"], "--sequence must be one of meding2022, lab, masked"),
        (["--mask"], "a mask needs a presentation limit"),
        (["--background", "grey"], "background must be a colour like #808080"),
        (["--redirect-url", "javascript:alert(1)"], "redirect_url must be an http(s) URL"),
        (["--attention", "warn"], "attention_policy must be one of"),
        (["--completion-code", "a b"], "completion_code must be"),
    ],
)
def test_bad_create_input(created, args, message):
    path = created[0]
    base = ["create", "--audit", str(path), "--name", "bad", "--size", "16"]
    if "--name" in args:
        base = ["create", "--audit", str(path), "--size", "16"]
    result = runner.invoke(study_app, base + args)
    assert message in _error_line(result)
    assert not (path / "studies" / "bad").exists()


def test_existing_study_name_and_bad_study_dir(created, tmp_path):
    path, folder, token, _ = created
    result = runner.invoke(study_app, ["create", "--audit", str(path), "--name", "cli", "--trials", "5"])
    assert "already exists" in _error_line(result)
    result = runner.invoke(study_app, ["analyze", "--study-dir", str(tmp_path), "--token", token])
    assert "not a study folder" in _error_line(result)


def test_create_takes_a_sequence_preset_and_overrides(created):
    path = created[0]
    result = runner.invoke(
        study_app,
        ["create", "--audit", str(path), "--name", "seq", "--trials", "5", "--size", "16", "--sequence", "masked",
         "--stimulus-ms", "150", "--size-deg", "3.5", "--open-enrolment", "--base-url", "http://10.0.0.5:8501"],
    )
    assert result.exit_code == 0, result.output
    assert "fixation 300 ms, pair 150 ms, then a mask, blank interval 500 ms; background #808080, 3.5 degrees" in result.output
    assert "PROLIFIC_PID={{%PROLIFIC_PID%}}" in result.output
    store, study = open_study_dir(path / "studies" / "seq")
    with store:
        config = study.config
    assert {k: config[k] for k in ("fixation_ms", "stimulus_ms", "mask", "iti_ms", "size_deg", "open_enrolment")} == {
        "fixation_ms": 300, "stimulus_ms": 150, "mask": True, "iti_ms": 500, "size_deg": 3.5, "open_enrolment": True
    }


def test_spaces_around_the_admin_token_are_dropped_everywhere(created):
    """The documented token rule (human_study.admin.normalize_token): the CLI and the results page both
    drop surrounding whitespace; a token with a space inside is wrong."""
    from human_study.admin import normalize_token

    _, folder, token, _ = created
    assert normalize_token(f"  {token}\n") == token and normalize_token(" \t") is None
    result = runner.invoke(study_app, ["analyze", "--study-dir", str(folder)], env={"DDD_STUDY_TOKEN": f" {token}\n"})
    assert result.exit_code == 0, result.output
    inside = token[:5] + " " + token[5:]
    result = runner.invoke(study_app, ["analyze", "--study-dir", str(folder), "--token", inside])
    assert result.exit_code != 0 and "wrong admin token" in result.output


def _interrupted(audit: Path) -> Path:
    """The audit with its last job not done, as a run killed before the end leaves it."""
    manifest = json.loads((audit / "manifest.json").read_text())
    manifest["jobs"][-1]["status"] = "pending"
    manifest["finished_at"] = "2026-01-01T00:00:00+00:00"
    (audit / "manifest.json").write_text(json.dumps(manifest))
    return audit


@pytest.mark.parametrize("kind", ["interrupted", "one model"])
def test_create_refuses_an_audit_whose_split_says_nothing(tmp_path, kind):
    if kind == "interrupted":
        audit = _interrupted(make_study_audit(tmp_path / "audit"))
        needle = "the audit is interrupted"
    else:
        audit = make_study_audit(tmp_path / "audit", n_models=1, n_near=0, n_mixed=0)
        needle = "it has 1 model, and a split at tolerance 0 needs at least 3"
    base = ["create", "--audit", str(audit), "--name", "weak", "--trials", "4", "--practice", "0", "--size", "16"]
    line = _error_line(runner.invoke(study_app, base))
    assert needle in line and "--allow-incomplete" in line
    assert not (audit / "studies" / "weak").exists()
    made = runner.invoke(study_app, [*base, "--allow-incomplete"])
    assert made.exit_code == 0, made.output
    assert f"warning: {needle}" in made.output
    state = json.loads((audit / "studies" / "weak" / "study.json").read_text())["audit_state"]
    assert state["problems"] and state["n_models"] == (5 if kind == "interrupted" else 1)
