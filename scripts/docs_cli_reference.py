"""The documentation site's command-line reference, rendered from the Typer app when the site is built.

As an MkDocs hook (mkdocs.yml `hooks:`) it replaces the marker in docs/reference/cli.md with every
command's usage, arguments, options and examples; run as a script, it prints the same Markdown.
It reads the commands' help only: nothing runs.
"""

from __future__ import annotations

import html
import re

MARKER = "<!-- ddd-audit: cli reference -->"


def _text(value: str | None) -> str:
    """Help text as Markdown text: HTML escaped, and Markdown's emphasis characters taken literally."""
    text = html.escape(" ".join((value or "").split()), quote=False)
    return re.sub(r"([\\*_\[\]])", r"\\\1", text)


def _command_markdown(command, ctx, path: str, level: int) -> list[str]:
    out = [f"{'#' * level} `{path}`", ""]
    if command.help:
        out += [_text(command.help), ""]
    pieces = command.collect_usage_pieces(ctx)
    out += ["```text", f"{path} {' '.join(pieces)}".rstrip(), "```", ""]
    params = [(p, p.get_help_record(ctx)) for p in command.get_params(ctx)]
    for kind, title in (("argument", "Arguments"), ("option", "Options")):
        rows = [(p, r) for p, r in params if r is not None and p.param_type_name == kind]
        if not rows:
            continue
        out += [f"**{title}**", ""]
        out += [f"- `{name}`" + (f": {_text(desc)}" if desc else "") for _, (name, desc) in rows]
        out.append("")
    if command.epilog:
        out += ["**Examples**", "", "```text", command.epilog.replace("Examples:", "", 1).strip("\n"), "```", ""]
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            sub_ctx = type(ctx)(sub, info_name=name, parent=ctx)
            out += _command_markdown(sub, sub_ctx, f"{path} {name}", level + 1)
    return out


def cli_reference() -> str:
    """The Markdown reference of every `ddd-audit` command, from the Typer app."""
    import typer

    from audit.cli import app

    command = typer.main.get_command(app)
    ctx = command.context_class(command, info_name="ddd-audit")
    return "\n".join(_command_markdown(command, ctx, "ddd-audit", 2)).strip() + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    """MkDocs hook: the reference in place of its marker (docs/reference/cli.md)."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())


if __name__ == "__main__":
    print(cli_reference(), end="")
