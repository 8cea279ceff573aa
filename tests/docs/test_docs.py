"""The documentation carries its weight: it builds, its links resolve, its commands parse.

README.md and docs/*.md are read as they are checked in. Four checks:

1. `mkdocs build --strict` succeeds (mkdocs.yml turns broken links and anchors in docs/
   and pages left out of the nav into warnings, which --strict makes errors).
2. Every relative link and `#anchor` in README.md and docs/*.md resolves: the file
   exists, and an anchor names a heading of the target page (README is outside mkdocs'
   docs_dir, so this is the only check its links get).
3. Every `keyturn` command shown in a fenced code block is one the CLI's parser accepts:
   it is resolved against the typer app, down to its subcommand, with its options and
   arguments parsed and type-checked, and nothing is invoked.
4. README's map of the docs names every page, and so does the site's nav.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.main
import yaml
from typer.core import TyperGroup

from keyturn.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
MARKDOWN = [ROOT / "README.md", *PAGES]
FENCE = re.compile(r"^(```+|~~~+)\s*([\w-]*)")
OPERATORS = {"&&", "||", "|", ";", "&"}
SHELL_BLOCKS = {"", "sh", "bash", "shell", "console", "text"}  # not yaml, sql, python ...


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- reading markdown --------------------------------------------------------------------


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines outside fenced code, inline code spans removed."""
    lines, fence = [], None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = FENCE.match(line)
        if match and (fence is None or match.group(1).startswith(fence)):
            fence = None if fence else match.group(1)[:3]
            continue
        if fence is None and not line.startswith("    "):
            lines.append((number, re.sub(r"`[^`]*`", "", line)))
    return lines


def code_blocks(path: Path) -> list[tuple[int, str, list[str]]]:
    """(first line number, info string, lines) of every fenced code block."""
    blocks, current = [], None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = FENCE.match(line)
        if current is None and match:
            current = (number + 1, match.group(2), [], match.group(1)[:3])
        elif current is not None and line.strip().startswith(current[3]):
            blocks.append(current[:3])
            current = None
        elif current is not None:
            current[2].append(line)
    return blocks


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading (and mkdocs' toc, for headings without runs of
    punctuation): markup dropped, lower case, punctuation removed, spaces to dashes."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for _, line in prose_lines_with_code(path):
        match = re.match(r"^(#{1,6}) (.+?)\s*#*$", line)
        if match:
            found.add(github_slug(match.group(2)))
    return found


def prose_lines_with_code(path: Path) -> list[tuple[int, str]]:
    """Like prose_lines, but inline code kept (headings may hold code spans)."""
    keep = {n for n, _ in prose_lines(path)}
    text = path.read_text().splitlines()
    return [(n, text[n - 1]) for n in sorted(keep)]


def links(path: Path) -> list[tuple[int, str]]:
    return [(n, target) for n, line in prose_lines(path)
            for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line)]


# --- 1. the site builds ------------------------------------------------------------------


def test_the_site_builds_strictly(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        check=False, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").exists()


# --- 2. links ----------------------------------------------------------------------------


def broken_links(path: Path) -> list[str]:
    broken = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        where = f"{_name(path)}:{number}: {target}"
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{where}: no such file")
        elif not linked.is_relative_to(ROOT):
            broken.append(f"{where}: outside the repository")
        elif anchor and linked.suffix != ".md":
            broken.append(f"{where}: an anchor into a file that is not markdown")
        elif anchor and anchor not in anchors(linked):
            broken.append(f"{where}: {_name(linked)} has no heading #{anchor}")
    return broken


@pytest.mark.parametrize("path", MARKDOWN, ids=_name)
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_the_link_check_finds_a_broken_file_and_a_broken_anchor(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# A page\n\n## Second part\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#second-part) [no](a.md#third) [gone](c.md) [self](#a-page)\n"
                    "`[code](x.md)` [web](https://example.com/x.md)\n\n# B\n")
    assert broken_links(page) == ["b.md:1: a.md#third: a.md has no heading #third",
                                  "b.md:1: c.md: no such file",
                                  "b.md:1: #a-page: b.md has no heading #a-page"]


# --- 3. commands -------------------------------------------------------------------------


def commands(path: Path) -> list[tuple[str, list[str]]]:
    """Every `keyturn ...` command of the fenced blocks, as (where, argv after `keyturn`).

    In shell blocks (no language, sh, bash, shell, console, text), a command is a line that
    starts with `keyturn ` or `$ keyturn ` (after any `VAR=value`), or the part of a line
    after `&&`, `|`, `;` or `&` that does; comments are dropped and `\\` continuations
    joined. In a `text` block (output, synopses) only `$ ` lines count. `<placeholder>`s are
    replaced by a word.
    """
    found = []
    for first, info, lines in code_blocks(path):
        logical, start = "", first
        for offset, line in enumerate(lines):
            if not logical:
                start = first + offset
            if line.rstrip().endswith("\\"):
                logical += line.rstrip()[:-1] + " "
                continue
            logical += line
            text, logical = logical.strip(), ""
            prompt = text.startswith("$ ")
            text = text[2:] if prompt else text
            if info not in SHELL_BLOCKS or (info == "text" and not prompt):
                continue
            if not re.search(r"(^|[;&|]\s*|^([A-Z_]+=\S+\s+)+)keyturn\s", text):
                continue
            text = re.sub(r"<[\w .-]+>", "placeholder", text)
            lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            segment: list[str] = []
            for token in [*lexer, ";"]:
                if token not in OPERATORS:
                    segment.append(token)
                    continue
                while segment and re.match(r"^[A-Z_]+=", segment[0]):
                    segment.pop(0)  # VAR=value before the command
                if segment[:1] == ["keyturn"]:
                    found.append((f"{_name(path)}:{start}", segment[1:]))
                segment = []
    return found


def parse_problem(argv: list[str]) -> str | None:
    """Why the CLI would refuse `keyturn ARGV` at parsing, or None: resolve each group's
    subcommand and parse the command's own parameters; invoke nothing."""
    command = typer.main.get_command(app)
    try:
        ctx = command.make_context("keyturn", list(argv))
        rest = [*ctx._protected_args, *ctx.args]
        while rest:
            if not isinstance(ctx.command, TyperGroup):
                return f"unexpected arguments {rest}"
            name, sub, rest = ctx.command.resolve_command(ctx, rest)
            if sub is None:
                return f"no command {name!r}"
            ctx = sub.make_context(name, rest, parent=ctx)
            rest = [*ctx._protected_args, *ctx.args]
        if isinstance(ctx.command, TyperGroup) and not ctx.command.invoke_without_command:
            return "a command group without its subcommand"
    except (typer.TyperException, typer.Exit) as exc:  # UsageError, BadParameter, ...
        return f"{type(exc).__name__}: {exc}"
    return None


ALL_COMMANDS = [command for path in MARKDOWN for command in commands(path)]


def test_the_docs_show_commands() -> None:
    where = {spot.split(":")[0] for spot, _ in ALL_COMMANDS}
    assert {"README.md", "docs/api.md", "docs/audit-log.md", "docs/scoping.md"} <= where
    assert len(ALL_COMMANDS) > 30


def test_every_command_example_is_accepted_by_the_cli() -> None:
    refused = [f"{spot}: keyturn {shlex.join(argv)}: {problem}"
               for spot, argv in ALL_COMMANDS if (problem := parse_problem(argv))]
    assert refused == []


@pytest.mark.parametrize("argv", [
    ["approve", "RUN"],                                  # TARGET missing
    ["run", "x.yaml", "--on-locked", "sometimes"],      # not a choice
    ["audit", "verfy"],                                  # no such subcommand
    ["status", "RUN", "--colour"],                       # no such option
    ["audit"],                                           # a group without its command
])
def test_the_command_check_refuses_what_the_cli_refuses(argv: list[str]) -> None:
    assert parse_problem(argv) is not None


def test_commands_are_found_after_prompts_operators_and_continuations(tmp_path,
                                                                     monkeypatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    page = tmp_path / "p.md"
    page.write_text("```sh\nkeyturn dev up && source x   # comment\n"
                    "FOO=1 keyturn audit export --run R \\\n    --format csv\n"
                    "echo keyturn status\n```\n\n"
                    "```text\nkeyturn not a command\n$ keyturn wait <run>\n```\n")
    found = [argv for _, argv in commands(page)]
    assert found == [["dev", "up"], ["audit", "export", "--run", "R", "--format", "csv"],
                     ["wait", "placeholder"]]


# --- 4. every page is on the map ---------------------------------------------------------


def test_readme_maps_every_docs_page_and_the_nav_lists_them() -> None:
    readme = {target for _, target in links(ROOT / "README.md")}
    assert [p.name for p in PAGES if f"docs/{p.name}" not in readme] == ["index.md"]

    def nav_pages(entries) -> set[str]:
        found: set[str] = set()
        for entry in entries:
            for value in (entry.values() if isinstance(entry, dict) else [entry]):
                found |= nav_pages(value) if isinstance(value, list) else {value}
        return found

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["strict"] is True and config["docs_dir"] == "docs"
    assert nav_pages(config["nav"]) == {p.name for p in PAGES}


def leaf_commands() -> list[tuple[str, typer.core.TyperCommand]]:
    """Every command a user runs, by its path ("audit verify"); a group that runs on its
    own (`keyturn scope`) counts too."""
    root = typer.main.get_command(app)
    found, todo = [], [("", root, None)]
    while todo:
        path, command, parent = todo.pop()
        ctx = typer.Context(command, parent=parent, info_name=path.split(" ")[-1] or "keyturn")
        if isinstance(command, TyperGroup):
            if path and command.invoke_without_command:
                found.append((path, command))
            todo += [(f"{path} {name}".strip(), command.get_command(ctx, name), ctx)
                     for name in command.list_commands(ctx)]
        else:
            found.append((path, command))
    return sorted(found, key=lambda item: item[0])


def test_every_command_help_has_an_example_the_cli_accepts(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    page = tmp_path / "help.md"
    missing, blocks = [], []
    for path, command in leaf_commands():
        examples = [line.strip()[len("Example: "):] for line in (command.help or "").splitlines()
                    if line.strip().startswith("Example: ")]
        if not examples:
            missing.append(path)
        blocks += [f"```sh\n{example}\n```\n" for example in examples]
    page.write_text("\n".join(blocks))
    assert missing == []
    found = commands(page)
    assert len(found) >= len(leaf_commands())
    refused = [f"keyturn {shlex.join(argv)}: {problem}"
               for _, argv in found if (problem := parse_problem(argv))]
    assert refused == []


def test_every_argument_is_described_and_flags_show_no_type() -> None:
    import click

    undescribed = [f"{path}: {param.name}" for path, command in leaf_commands()
                   for param in command.params
                   if isinstance(param, click.Argument) and not getattr(param, "help", None)]
    assert undescribed == []
    shown = subprocess.run([sys.executable, "-m", "keyturn", "run", "--help"], text=True,
                           capture_output=True, check=True, env={**os.environ, "COLUMNS": "120"})
    assert "--wait" in shown.stdout and "<bool>" not in shown.stdout
