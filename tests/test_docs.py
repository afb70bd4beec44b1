"""Every fenced code block of README.md and docs/**/*.md runs here, so the docs cannot drift.

The markdown's side of the contract:

* ```python blocks run in order in one namespace per file, like a doctest session, in a
  temporary working directory holding a copy of ``examples/`` (matplotlib: Agg backend).
* ```sh, ```bash and ```console blocks: every command line runs as a subprocess from a fresh
  temporary directory (with ``examples/`` and ``benchmarks/`` copied in) with this
  interpreter's bin directory first on ``PATH`` and must exit with status 0. A command line
  starts with ``numpy-rnn`` or ``python``; in console blocks commands start with ``$ `` and
  the other lines are output. Comments, blank lines and ``\\`` continuations are allowed.
* ```text blocks (output, equations, diagrams, signatures) are not run.
* A block that cannot run inside the test suite is preceded by a visible marker
  ``<!-- docs-test: skip (reason) -->``, and then every command in it must be one the suite
  cannot run: an installation or the repository's own ``.venv`` (``make``, ``pip``, ``python3
  -m venv``), a script of ``benchmarks/``, or a training run of 1000 steps or more. A marker on
  a quick command fails. Nothing else is skipped.
* A block without a language tag, with another tag, or a shell command that is neither
  ``numpy-rnn`` nor ``python`` in a block that is not marked skipped, is an error.

Besides the code, README and docs name only files of this repository, and the long-T table of
docs/RESULTS.md is what the study's run folders in the repository hold.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from numpy_rnn.sweep_results import RESULT_FILES

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PYTHON, SHELL, TEXT = ("python",), ("sh", "bash", "console"), ("text",)
COPIED_DIRS = ("examples", "benchmarks")  # repository folders the documented commands read
COMMAND = re.compile(r"(numpy-rnn|python)(\s|$)")
FENCE = re.compile(r"^(\s*)```(.*)$")
MARKER = re.compile(r"^\s*<!--\s*docs-test:(.*?)-->\s*$")  # on a line of its own
SKIP = re.compile(r"^\s*skip\s*\((.+)\)\s*$")
COMMAND_TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    """One fenced block: ``line`` is the 1-based line of its opening fence."""

    name: str  # the file, relative to the repository
    line: int
    lang: str
    code: str
    skip_reason: str | None

    @property
    def where(self) -> str:
        return f"{self.name}:{self.line}"


def parse_blocks(path: Path, root: Path = ROOT) -> tuple[list[Block], list[str]]:
    """The fenced blocks of a markdown file and the problems of its markers and fences."""
    lines, blocks, problems = path.read_text(encoding="utf-8").splitlines(), [], []
    rel, i, pending = str(path.relative_to(root)), 0, None  # pending: (line, reason) of a skip marker
    while i < len(lines):
        marker = MARKER.match(lines[i])
        if marker:
            skip = SKIP.match(marker.group(1))
            if skip is None:
                problems.append(f"{rel}:{i + 1}: expected '<!-- docs-test: skip (reason) -->', got {lines[i].strip()!r}")
            else:
                pending = (i + 1, skip.group(1).strip())
        fence = FENCE.match(lines[i])
        if fence is None:
            if pending and lines[i].strip() and not marker:
                problems.append(f"{rel}:{pending[0]}: a skip marker must come right before a code block")
                pending = None
            i += 1
            continue
        indent, lang, start = fence.group(1), fence.group(2).strip(), i
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        if i == len(lines):
            problems.append(f"{rel}:{start + 1}: code block never closed")
        body = [line.removeprefix(indent) for line in lines[start + 1:i]]
        blocks.append(Block(rel, start + 1, lang, "\n".join(body) + "\n", pending and pending[1]))
        pending, i = None, i + 1
    return blocks, problems


BLOCKS = {path: parse_blocks(path)[0] for path in DOC_FILES}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _blocks(langs, *, skipped=False):
    return [pytest.param(block, id=block.where) for blocks in BLOCKS.values() for block in blocks
            if block.lang in langs and (block.skip_reason is not None) == skipped]


def shell_commands(block: Block) -> list[str]:
    """The command lines of a shell block, continuations joined, comments and output dropped."""
    commands, current = [], ""
    for raw in block.code.splitlines():
        if block.lang == "console" and not current:
            if not raw.startswith("$ "):
                continue  # output
            raw = raw[2:]
        line = current + raw.strip()
        if line.endswith("\\"):
            current = line[:-1].rstrip() + " "
            continue
        current = ""
        if line and not line.startswith("#"):
            commands.append(line)
    return commands


# ----------------------------------------------------------------------------- structure
@pytest.mark.parametrize("path", DOC_FILES, ids=_rel)
def test_every_block_is_tagged_and_every_marker_is_well_formed(path):
    blocks, problems = parse_blocks(path)
    for block in blocks:
        if block.lang not in PYTHON + SHELL + TEXT:
            got = "no language tag" if not block.lang else f"language {block.lang!r}"
            problems.append(f"{block.where}: expected a code block tagged one of {', '.join(PYTHON + SHELL + TEXT)} "
                            f"(text for output and diagrams, which is not run), got {got}")
        if block.skip_reason is not None and block.lang in TEXT:
            problems.append(f"{block.where}: a text block is never run; remove its skip marker")
        if block.lang in SHELL and block.skip_reason is None:
            problems += [f"{block.where}: expected a command starting with numpy-rnn or python (or a "
                         f"'<!-- docs-test: skip (reason) -->' marker before the block), got {command!r}"
                         for command in shell_commands(block) if not COMMAND.match(command)]
    assert not problems, "\n".join(problems)


def test_the_parser_reads_tags_markers_console_prompts_and_continuations(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- docs-test: skip (installs) -->\n```sh\nmake test\n```\n\n```\nraw\n```\n"
                    "```console\n$ numpy-rnn --help \\\n   --x\nusage: ...\n# a comment\n```\n<!-- docs-test: nope -->\n")
    blocks, problems = parse_blocks(page, tmp_path)
    assert [(b.line, b.lang, b.skip_reason) for b in blocks] == [(3, "sh", "installs"), (7, "", None), (10, "console", None)]
    assert shell_commands(blocks[2]) == ["numpy-rnn --help --x"]
    assert problems == ["page.md:16: expected '<!-- docs-test: skip (reason) -->', got '<!-- docs-test: nope -->'"]


# ----------------------------------------------------------------------------- running
@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A temporary working directory with the repository folders the docs read."""
    for name in COPIED_DIRS:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.ckpt", ".lock"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


@contextlib.contextmanager
def _restored_import_state(workdir: Path):
    """Undo what a page's code does to ``sys.path`` and forget the modules it imported from
    the working directory (``import indrnn``); library modules stay imported."""
    path, modules = list(sys.path), set(sys.modules)
    try:
        yield
    finally:
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            if Path(getattr(sys.modules[name], "__file__", None) or "/").resolve().is_relative_to(workdir.resolve()):
                del sys.modules[name]


PYTHON_FILES = [path for path, blocks in BLOCKS.items()
                if any(b.lang in PYTHON for b in blocks)]


@pytest.mark.parametrize("path", PYTHON_FILES, ids=_rel)
def test_python_blocks_run(path, workdir, request):
    """The file's python blocks in order, one namespace; tracebacks carry the markdown's lines."""
    if any("import torch" in block.code for block in BLOCKS[path]):
        request.getfixturevalue("torch")  # conftest's one rule: skipped only where torch is not required
    namespace = {"__name__": "__docs__"}
    with _restored_import_state(workdir):
        for block in BLOCKS[path]:
            if block.lang not in PYTHON:
                continue
            code = compile("\n" * block.line + block.code, str(path), "exec")  # line numbers of the file
            exec(code, namespace)


@pytest.mark.parametrize("block", _blocks(SHELL))
def test_shell_block_runs(block, workdir):
    """Every command of the block, in order, in one fresh directory; exit status 0."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    for command in shell_commands(block):
        result = subprocess.run(command, shell=True, cwd=workdir, env=env, capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT_S, check=False)
        assert result.returncode == 0, (f"{block.where}: {command!r} exited with {result.returncode}\n"
                                        f"stdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-2000:]}")


#: commands the suite cannot run: installing, the repository's own .venv, benchmarks
CANNOT_RUN_HERE = re.compile(r"^(make |pip |python3 -m venv |\. \.venv/)|\.venv/bin/|(^|\s)benchmarks/\S+\.py")
LONG_TRAINING = re.compile(r"^numpy-rnn train .*--steps (\d+)")
BENCHMARK_SWEEP = re.compile(r"^numpy-rnn sweep benchmarks/sweeps/(?!demo\.toml)\S+\.toml")


def why_it_cannot_run_here(command: str) -> str | None:
    """Why ``command`` may stand in a skipped block, or None where the suite could run it."""
    if CANNOT_RUN_HERE.search(command):
        return "installs, uses the repository's .venv or runs a benchmark"
    if BENCHMARK_SWEEP.match(command):
        return "runs a benchmark's sweep (minutes or hours)"
    steps = LONG_TRAINING.match(command)
    if steps and int(steps.group(1)) >= 1000:
        return f"trains {steps.group(1)} steps"
    return None


@pytest.mark.parametrize("block", _blocks(SHELL, skipped=True))
def test_a_skipped_block_holds_only_commands_the_suite_cannot_run(block):
    quick = [command for command in shell_commands(block) if why_it_cannot_run_here(command) is None]
    assert block.skip_reason and not quick, f"{block.where}: skipped ({block.skip_reason}) but runnable: {quick}"


def test_no_python_block_is_skipped():
    assert not _blocks(PYTHON, skipped=True), "python blocks always run: make them fast instead"


def test_the_skip_rule_tells_runnable_commands_from_the_others():
    for command in ("make test", "pip install -e .", "python3 -m venv .venv && . .venv/bin/activate",
                    ".venv/bin/numpy-rnn --help", "env -u X .venv/bin/python benchmarks/bench_layers.py",
                    "OPENBLAS_NUM_THREADS=1 python benchmarks/throughput.py --quick",
                    "numpy-rnn sweep benchmarks/sweeps/adding.toml --out runs/results/adding",
                    "numpy-rnn train --task adding --steps 8000 --seed SEED"):
        assert why_it_cannot_run_here(command), command
    for command in ("numpy-rnn --version", "numpy-rnn train --task adding --steps 400", "python -c 'print(1)'",
                    "numpy-rnn sweep benchmarks/sweeps/demo.toml --out runs/sweeps/demo"):
        assert why_it_cannot_run_here(command) is None, command


# ----------------------------------------------------------------------------- references
LINK = re.compile(r"\]\(([^)\s]+)\)")
MD_NAME = re.compile(r"[\w./-]*\w\.md\b")
REPO_PATH = re.compile(r"`((?:\.\./|/)?(?:docs|examples|benchmarks|tests|src)/[^`\s]*)`")
#: files the library writes (a sweep's results.md), named by the docs but never in the repository
WRITTEN_FILES = set(RESULT_FILES)


@pytest.mark.parametrize("path", DOC_FILES, ids=_rel)
def test_names_only_files_of_the_repository(path):
    """Links, ``*.md`` names and repository paths in backticks (globs allowed) exist in this repository."""
    text, missing = path.read_text(encoding="utf-8"), []
    for target in LINK.findall(text):
        if not re.match(r"[a-z]+:|#", target) and not (path.parent / target.split("#")[0]).exists():
            missing.append(f"link {target}")
    for name in (set(MD_NAME.findall(text)) | set(REPO_PATH.findall(text))) - WRITTEN_FILES:
        if name.startswith(("../", "/")) or not any(any(base.glob(name)) for base in (ROOT, path.parent)):
            missing.append(name)
    assert not missing, f"{_rel(path)} names what is not in the repository: {sorted(missing)}"


def test_the_long_adding_table_is_what_the_kept_runs_hold():
    """RESULTS.md section 7's table is benchmarks/adding_long_table.py's, from the run folders in git."""
    script = ROOT / "benchmarks" / "adding_long_table.py"
    printed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout
    assert printed.strip() in (ROOT / "docs" / "RESULTS.md").read_text(encoding="utf-8"), printed
