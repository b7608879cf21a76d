"""Every `ddd-audit` command in README.md and docs/ parses as written: the subcommand exists, each flag
exists and takes the values given, and required arguments are there. A stale flag, a renamed command or a
wrong value type in the docs fails here, without running anything."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from audit.cli import app
from tests.conftest import ROOT

try:  # Typer carries its own copy of Click; its commands raise that copy's exceptions
    from typer._click import exceptions as cli_errors
except ImportError:  # pragma: no cover - a Typer that uses Click itself
    from click import exceptions as cli_errors

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def doc_commands(path: Path) -> list[tuple[int, str]]:
    """(line number, command) of each `ddd-audit` command in the code blocks of a Markdown file: indented
    (4 spaces) or fenced blocks, continuation lines (a trailing backslash) joined, comments dropped."""
    out: list[tuple[int, str]] = []
    lines = path.read_text().splitlines()
    fenced, pending, start = False, "", 0
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        code = fenced or line.startswith("    ")
        text = line.strip() if code else ""
        if pending:
            pending += " " + text.rstrip("\\").strip()
            if not text.endswith("\\"):
                out.append((start, pending))
                pending = ""
            continue
        text = re.sub(r"^\$\s+", "", text)
        if code and text.startswith("ddd-audit "):
            if text.endswith("\\"):
                pending, start = text.rstrip("\\").strip(), number
            else:
                out.append((number, text))
    return out


def _without_comment(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def parse(command: str) -> None:
    """Parse a documented command with the real CLI's parser (nothing runs); UsageError if it is wrong."""
    args = _without_comment(command)[1:]
    if "|" in args:  # a pipe: only the ddd-audit part is ours
        args = args[: args.index("|")]
    cmd = typer.main.get_command(app)
    name = "ddd-audit"
    while True:
        ctx = cmd.make_context(name, list(args), resilient_parsing=False)
        if not hasattr(cmd, "get_command"):  # a command, not a group of them
            return
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return
        sub = cmd.get_command(ctx, rest[0])
        if sub is None:
            raise cli_errors.UsageError(f"no such command {rest[0]!r}")
        cmd, name, args = sub, f"{name} {rest[0]}", rest[1:]


COMMANDS = [(f"{path.relative_to(ROOT)}:{n}", c) for path in DOCS for n, c in doc_commands(path)]


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 30
    assert any(c.startswith("ddd-audit study serve") for _, c in COMMANDS)


@pytest.mark.parametrize("where,command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(where, command):
    try:
        parse(command)
    except cli_errors.Exit:  # --help and the like
        pass
    except cli_errors.UsageError as exc:
        pytest.fail(f"{where}: {command}\n  {exc.format_message()}")


def test_a_stale_flag_is_caught():
    with pytest.raises(cli_errors.UsageError):
        parse("ddd-audit run --dataset digits --no-such-flag")
    with pytest.raises(cli_errors.UsageError):
        parse("ddd-audit run --epochs many")  # not a number
    with pytest.raises(cli_errors.UsageError):
        parse("ddd-audit stdy create")
    with pytest.raises(cli_errors.UsageError):
        parse("ddd-audit study serve")  # --study-dir is required
    parse("ddd-audit study serve --study-dir runs/default/studies/pilot --port 8502")


def test_documented_make_targets_exist():
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    used = {m for path in DOCS for m in re.findall(r"`make ([a-z][a-z-]*)`|^\s+make ([a-z][a-z-]*)", path.read_text(),
                                                    flags=re.M) for m in m if m}
    assert {"audit", "test"} <= used
    assert not used - targets, f"documented but not in the Makefile: {sorted(used - targets)}"


#: what benchmarks/RESULTS.md measured of the default audit (`make audit`), at its one place there, and where
#: the docs quote it (one pattern or several): each quote must give the same number
DEFAULT_AUDIT_NUMBERS = {
    "wall-clock seconds": (r"the same `make audit` took (\d+) s wall-clock", {
        "docs/tutorials/reading-the-summary.md": r"\((\d+) s for the whole audit",
        "docs/tutorials/own-data.md": r"the whole audit takes (\d+) s",
        "docs/tutorials/scaling-up.md": r"the whole default audit takes (\d+) s"}),
    "label issues": (r"cleanlab flags (\d+)\s+images", {
        "docs/tutorials/reading-the-summary.md": r"\n\s+(\d+) images \([\d.]+%\); [\d.]+% of the impossible",
        "docs/tutorials/curate.md": r"\((\d+) on the default\s+audit"}),
    "inconclusive images": (r"on\s+the ([\d,]+) inconclusive ones", {
        "docs/tutorials/reading-the-summary.md": r"inconclusive images\s+[\d.]+\s+95% CI \[[^]]*\]\s+\(n = ([\d,]+)\)",
        "docs/tutorials/curate.md": (r"([\d,]+) images \(", r"\(([\d,]+) inconclusive\)", r"# ([\d,]+) images, 10 classes",
                                     r"inconclusive [\d.]+% \[[^]]*\] \(n = ([\d,]+)\)")}),
    "trivial share (%)": (r"split and deeper measures: trivial ([\d.]+)%", {
        "docs/tutorials/reading-the-summary.md": r"\n\s+trivial\s+([\d.]+)%"}),
    "impossible share (%)": (r"inconclusive [\d.]+%, impossible ([\d.]+)% \(binomial", {
        "docs/tutorials/reading-the-summary.md": r"\n\s+impossible\s+([\d.]+)%"}),
    "kappa, all images": (r"mean κ ([\d.]+) on all images", {
        "docs/tutorials/reading-the-summary.md": r"all images\s+([\d.]+)\s+95% CI"}),
    "kappa, inconclusive images": (r"mean κ [\d.]+ on all images and ([\d.]+) on", {
        "docs/tutorials/reading-the-summary.md": r"inconclusive images\s+([\d.]+)\s+95% CI"}),
}


@pytest.mark.parametrize("what", DEFAULT_AUDIT_NUMBERS)
def test_the_default_audits_numbers_come_from_results(what):
    """A time or count of the default audit in the docs is the one that benchmarks/RESULTS.md measured."""
    pattern, quotes = DEFAULT_AUDIT_NUMBERS[what]
    measured = re.findall(pattern, (ROOT / "benchmarks" / "RESULTS.md").read_text())
    assert len(measured) == 1, f"RESULTS.md gives the default audit's {what} {len(measured)} times: {measured}"
    for doc, patterns in quotes.items():
        for quote in [patterns] if isinstance(patterns, str) else patterns:
            found = re.findall(quote, (ROOT / doc).read_text())
            assert found, f"{doc} no longer quotes the default audit's {what} ({quote}); update DEFAULT_AUDIT_NUMBERS"
            assert set(found) == {measured[0]}, f"{doc} gives the default audit's {what} as {found}; RESULTS.md: {measured[0]}"


def test_every_time_of_the_whole_audit_is_checked():
    """No sentence of the docs gives the whole audit's time outside DEFAULT_AUDIT_NUMBERS."""
    said = re.compile(r"whole (?:default )?audit[^.]{0,40}?\b(\d+) ?(?:s|min)\b|(\d+) ?(?:s|min) for the whole audit")
    checked = DEFAULT_AUDIT_NUMBERS["wall-clock seconds"][1]
    for path in DOCS:
        if said.search(path.read_text()):
            assert str(path.relative_to(ROOT)) in checked, f"{path.name} gives the whole audit's time unchecked"
