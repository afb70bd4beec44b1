"""``make wheel-check``: the built wheel as a user gets it, installed into a fresh virtual
environment outside the repository.

    python tests/wheel_check.py [DIST_DIR]      # default: dist/, as ``make dist`` leaves it

Checks that the one wheel in DIST_DIR holds every module, the corpus, ``py.typed``, the LICENSE
and the command's entry point; installs it with pip (which fetches NumPy) into a new venv in a
temporary folder; and runs there, from that folder, the README's quick start (the python block
under "## Quick start", read from README.md so that it cannot drift), ``numpy-rnn --version``
(the wheel's version, the repository's ``numpy_rnn.__version__``), the shipped corpus's
checksummed load, and a look at where ``numpy_rnn`` was imported from (the venv, not the
repository). Exit status 0 when all passed, 1 with the reason otherwise.

Not a test module (pytest does not collect it): ``tests/test_packaging.py`` tests its reading of
the quick start and its check of a wheel's contents on a wheel it builds itself.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "numpy_rnn"
QUICK_START = "## Quick start"
#: what the wheel holds besides the modules: the corpus with its provenance and the typing marker
PACKAGE_DATA = ("numpy_rnn/data/tinyshakespeare.txt.xz", "numpy_rnn/data/README.md", "numpy_rnn/py.typed")


def quick_start(readme: Path = ROOT / "README.md") -> str:
    """The code of the first ```python block under the README's "## Quick start" heading."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    if QUICK_START not in lines:
        raise ValueError(f"quick_start: expected a line {QUICK_START!r} in {readme.name}, found none")
    for i in range(lines.index(QUICK_START) + 1, len(lines)):
        if lines[i].startswith("## "):
            break
        if lines[i].strip() == "```python":
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
            if end is None:
                raise ValueError(f"quick_start: the python block at {readme.name}:{i + 1} is never closed")
            return "\n".join(lines[i + 1:end]) + "\n"
    raise ValueError(f"quick_start: expected a ```python block under {QUICK_START!r} in {readme.name}, found none")


def missing_from_wheel(wheel: Path) -> list[str]:
    """The files a numpy-rnn wheel should hold and ``wheel`` lacks: every module of
    ``src/numpy_rnn``, ``PACKAGE_DATA``, the LICENSE and the entry points (empty when complete)."""
    name, version = wheel.name.split("-")[:2]
    dist_info = f"{name}-{version}.dist-info"
    expected = [*(f"numpy_rnn/{module.name}" for module in sorted(PACKAGE.glob("*.py"))), *PACKAGE_DATA,
                f"{dist_info}/licenses/LICENSE", f"{dist_info}/entry_points.txt"]
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    return [path for path in expected if path not in names]


def _run(command: list, cwd: Path) -> str:
    """stdout of ``command`` run in ``cwd`` with no PYTHONPATH; a failure raises with its output."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout.strip()


def check_installed(wheel: Path, version: str) -> None:
    """Install ``wheel`` into a fresh venv in a temporary folder and run the user's first steps there."""
    with tempfile.TemporaryDirectory(prefix="numpy-rnn-wheel-check-") as tmp:
        folder = Path(tmp)
        env, start = folder / "venv", time.perf_counter()
        _run([sys.executable, "-m", "venv", env], folder)
        _run([env / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel], folder)
        print(f"wheel-check: fresh venv with the wheel and NumPy in {time.perf_counter() - start:.1f} s")
        (folder / "quick_start.py").write_text(quick_start(), encoding="utf-8")
        python = env / "bin" / "python"
        imported = _run([python, "-c", "import numpy_rnn; print(numpy_rnn.__file__)"], folder)
        if not Path(imported).resolve().is_relative_to(env.resolve()):
            raise RuntimeError(f"numpy_rnn was imported from {imported}, expected the fresh venv {env}")
        print(f"wheel-check: README quick start printed {_run([python, 'quick_start.py'], folder)!r}")
        corpus = "from numpy_rnn.tasks import CharCorpus; print(CharCorpus.builtin())"
        print(f"wheel-check: the shipped corpus loads and matches its checksum: {_run([python, '-c', corpus], folder)}")
        shown = _run([env / "bin" / "numpy-rnn", "--version"], folder)
        if shown != f"numpy-rnn {version}":
            raise RuntimeError(f"numpy-rnn --version printed {shown!r}, expected 'numpy-rnn {version}'")
        print(f"wheel-check: {shown}")


def main(argv: list[str]) -> int:
    from numpy_rnn import __version__

    dist, start = Path(argv[0]) if argv else ROOT / "dist", time.perf_counter()
    wheels = sorted(dist.glob("numpy_rnn-*.whl"))
    if len(wheels) != 1:
        print(f"wheel-check: expected one numpy_rnn wheel in {dist}, found {len(wheels)} (run make dist)", file=sys.stderr)
        return 1
    wheel, problems = wheels[0].resolve(), []
    missing = missing_from_wheel(wheel)
    if missing:
        problems.append(f"{wheel.name} lacks {', '.join(missing)}")
    if wheel.name.split("-")[1] != __version__:
        problems.append(f"{wheel.name} is not of the repository's version {__version__} (run make dist)")
    if not problems:
        print(f"wheel-check: {wheel.name} holds every module, the corpus, py.typed, the LICENSE and the entry point")
        try:
            check_installed(wheel, __version__)
        except (RuntimeError, ValueError) as exc:
            problems.append(str(exc))
    for problem in problems:
        print(f"wheel-check: error: {problem}", file=sys.stderr)
    print(f"wheel-check: {'failed' if problems else 'passed'} in {time.perf_counter() - start:.1f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
