"""Shared fixtures: a seeded generator and a lazy, CI-enforced torch import; the tiny training run
the config, trainer and checkpoint-state tests share (``from conftest import TINY``); a cell of your
own in a module of the working directory (``custom_cell``); the tutorial
notebooks, each executed once per session (``executed_tutorials``); the documentation site built
from them, once per session (``built_site``)."""
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

#: TrainConfig options of a tiny run: a GRU with 8 units, 40 steps of the memory task (well under a second)
TINY = dict(task="memory", cell="gru", hidden_size=8, batch_size=16, steps=40, eval_every=10, eval_size=64)


#: a module of your own with a leaky Elman cell, h(t) = (1 - a) h(t-1) + a tanh(xw(t) + h(t-1) R), a = 0.5
LEAKY_CELL_MODULE = """
import numpy as np

from numpy_rnn.cells import Cell


class LeakyCell(Cell):
    num_gates = 1
    leak = 0.5

    def step(self, p, xw, state):
        (h_prev,) = state
        a = np.tanh(xw + h_prev @ p["R"])
        return ((1 - self.leak) * h_prev + self.leak * a,), a

    def step_backward(self, p, g, d_state, a):
        (dh,) = d_state
        ds = dh * self.leak * (1 - a * a)
        return ds, ds, ((1 - self.leak) * dh + ds @ p["R"].T,)


def not_a_cell(hidden_size):
    return LeakyCell(hidden_size)
"""


@pytest.fixture
def custom_cell(tmp_path, monkeypatch):
    """``"my_cells:LeakyCell"``: the working directory is a fresh folder holding ``my_cells.py``
    (:data:`LEAKY_CELL_MODULE`), not on ``sys.path``; the module is forgotten afterwards."""
    (tmp_path / "my_cells.py").write_text(LEAKY_CELL_MODULE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "my_cells", raising=False)
    yield "my_cells:LeakyCell"
    sys.modules.pop("my_cells", None)


@pytest.fixture
def rng():
    """A fresh seeded generator per test (never the global NumPy state)."""
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def torch():
    """torch in float64 with 2 threads; skipped only where torch is not required.

    With NUMPY_RNN_REQUIRE_TORCH=1 (CI) a missing torch is a failure, never a skip.
    """
    try:
        import torch as _torch
    except ImportError:
        if os.environ.get("NUMPY_RNN_REQUIRE_TORCH") == "1":
            pytest.fail("torch is required (NUMPY_RNN_REQUIRE_TORCH=1) but not installed")
        pytest.skip("torch not installed")
    _torch.set_num_threads(2)
    return _torch


#: the tutorial notebooks, stored without outputs (tests/test_tutorials.py)
TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"
#: a tutorial that runs longer than this, kernel start included, fails (issue 12)
TUTORIAL_LIMIT_S = 60
#: the kernel's environment on top of ours: one BLAS thread (the layers' small products run faster
#: without threads, and the suite shares its cores), so a notebook's time does not swing with the load
TUTORIAL_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class NotebookFailed(Exception):
    """A notebook raised in a cell, its kernel died, or it ran past its time limit."""


def tutorial_names() -> list[str]:
    """The notebooks of docs/tutorials, by name (the file name without ``.ipynb``), in order."""
    return sorted(path.stem for path in TUTORIALS.glob("*.ipynb"))


def execute_notebook(source: Path, executed: Path, workdir: Path, limit_s: float = TUTORIAL_LIMIT_S) -> float:
    """Run the notebook ``source`` from scratch (nbclient, kernel ``python3`` on this interpreter,
    working directory ``workdir``) and write the executed copy to ``executed``; returns the seconds
    it took. Raises :class:`NotebookFailed` when a cell raises, the kernel dies, or the whole run,
    kernel start included, takes more than ``limit_s`` seconds."""
    import nbclient
    import nbformat
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    notebook = nbformat.read(source, as_version=4)
    start = time.monotonic()
    deadline = start + limit_s
    client = nbclient.NotebookClient(
        notebook, kernel_name="python3", resources={"metadata": {"path": str(workdir)}},
        startup_timeout=math.ceil(limit_s), timeout_func=lambda cell: max(1, math.ceil(deadline - time.monotonic())))
    try:
        client.execute(env={**os.environ, **TUTORIAL_ENV})
    except Exception as exc:
        if time.monotonic() >= deadline:
            raise NotebookFailed(f"{source.name}: took more than {limit_s:g} s") from None
        if isinstance(exc, (CellExecutionError, DeadKernelError)):
            raise NotebookFailed(f"{source.name}: {_ANSI.sub('', str(exc))}") from None
        raise
    seconds = time.monotonic() - start
    if seconds > limit_s:
        raise NotebookFailed(f"{source.name}: took more than {limit_s:g} s ({seconds:.1f} s)")
    executed.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, executed)
    return seconds


class ExecutedTutorials:
    """``executed_tutorials(name)`` -> the path of the executed copy of ``docs/tutorials/<name>.ipynb``
    (``name`` with or without ``.ipynb``), each notebook executed once, on its first request, in a
    working directory of its own; a notebook that failed fails every test that asks for it.
    ``seconds`` holds how long each run took."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.seconds: dict[str, float] = {}
        self._failures: dict[str, str] = {}

    def __call__(self, name: str) -> Path:
        name = name.removesuffix(".ipynb")
        if name not in tutorial_names():
            raise ValueError(f"executed_tutorials: expected one of {tutorial_names()}, got {name!r}")
        executed = self.folder / "executed" / f"{name}.ipynb"
        if name not in self.seconds and name not in self._failures:
            workdir = self.folder / name
            workdir.mkdir()
            try:
                self.seconds[name] = execute_notebook(TUTORIALS / f"{name}.ipynb", executed, workdir)
            except NotebookFailed as exc:
                self._failures[name] = str(exc)
        if name in self._failures:
            pytest.fail(self._failures[name], pytrace=False)
        return executed


@pytest.fixture(scope="session")
def executed_tutorials(tmp_path_factory) -> ExecutedTutorials:
    """The tutorial notebooks executed from scratch, lazily, once per session (see :class:`ExecutedTutorials`)."""
    return ExecutedTutorials(tmp_path_factory.mktemp("tutorials"))


#: what a site build reads besides docs/: the configuration and the pages' sources outside docs/
SITE_SOURCES = ("mkdocs.yml", "src", "CHANGELOG.md")


@pytest.fixture(scope="session")
def built_site(tmp_path_factory, executed_tutorials) -> Path:
    """The documentation site built as ``make docs`` builds it (``mkdocs build --strict``), from a
    copy of docs/ with each tutorial replaced by its executed copy (``executed_tutorials``; the
    build's own execution switched off by NUMPY_RNN_DOCS_EXECUTE=false): the site folder. The build's
    output is in ``build.log`` beside it; a failed build fails every test that asks for the site."""
    root, work = Path(__file__).resolve().parents[1], tmp_path_factory.mktemp("site")
    shutil.copytree(root / "docs", work / "docs", ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    for name in SITE_SOURCES:
        if (root / name).exists():
            (work / name).symlink_to(root / name)
    for name in tutorial_names():
        shutil.copyfile(executed_tutorials(name), work / "docs" / "tutorials" / f"{name}.ipynb")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", "site"], cwd=work,
                            env={**os.environ, "NUMPY_RNN_DOCS_EXECUTE": "false", "NO_MKDOCS_2_WARNING": "1"},
                            capture_output=True, text=True, check=False)
    (work / "build.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        pytest.fail(f"mkdocs build --strict exited with {result.returncode}:\n{result.stderr[-3000:]}", pytrace=False)
    return work / "site"
