"""Packaging: the version in one place, the sdist and the wheel that ``python -m build`` makes
(built once here, without build isolation so that it needs no network), twine's strict check,
what each archive holds, the changelog's form, and ``tests/wheel_check.py``'s own checks.

Installing the wheel into a fresh venv and running the quick start from there needs pip to
fetch NumPy: that is ``make wheel-check``, which CI runs after ``make test``.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from datetime import date
from pathlib import Path

import pytest
from wheel_check import PACKAGE_DATA, ROOT, missing_from_wheel, quick_start

from numpy_rnn import __version__

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

#: top-level entries of the repository that are not part of the source release
NOT_RELEASED = (".ci/", ".gitignore")
#: a study's runs in progress keep their checkpoints in git, to go on in the next session; a
#: release holds the study's results, not its state (MANIFEST.in leaves them out)
STUDY_STATE = re.compile(r"benchmarks/results/.+/checkpoint\.ckpt")
CHANGE_KINDS = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")
RELEASE = re.compile(r"## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})")


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The folder holding the sdist and the wheel built (from that sdist) by ``python -m build``."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--quiet", "--outdir", str(out), str(ROOT)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def _only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {folder}, found {[p.name for p in found]}"
    return found[0]


def test_the_version_is_written_once_in_numpy_rnn_and_built_into_both_archives(dist):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "numpy_rnn.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", __version__)
    wheel = _only(dist, "*.whl")
    assert wheel.name == f"numpy_rnn-{__version__}-py3-none-any.whl"
    assert _only(dist, "*.tar.gz").name == f"numpy_rnn-{__version__}.tar.gz"
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"numpy_rnn-{__version__}.dist-info/METADATA").decode()
    assert f"\nVersion: {__version__}\n" in metadata


def test_both_archives_pass_twine_check_strict(dist):
    done = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_the_wheel_holds_every_module_the_corpus_py_typed_and_the_licence(dist):
    assert missing_from_wheel(_only(dist, "*.whl")) == []


def test_the_wheel_check_names_what_a_wheel_lacks(dist, tmp_path):
    wheel = _only(dist, "*.whl")
    stripped = tmp_path / wheel.name
    dropped = {"numpy_rnn/py.typed", "numpy_rnn/tasks.py"}
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(stripped, "w") as target:
        for item in source.infolist():
            if item.filename not in dropped and not item.filename.endswith("licenses/LICENSE"):
                target.writestr(item, source.read(item))
    assert missing_from_wheel(stripped) == ["numpy_rnn/tasks.py", "numpy_rnn/py.typed",
                                            f"numpy_rnn-{__version__}.dist-info/licenses/LICENSE"]
    assert "numpy_rnn/py.typed" in PACKAGE_DATA


def test_the_sdist_holds_every_file_of_the_source_tree(dist):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files to compare with are unknown")
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    tracked = {path for path in listed.splitlines()
               if not path.startswith(NOT_RELEASED) and not STUDY_STATE.fullmatch(path) and (ROOT / path).exists()}
    prefix = f"numpy_rnn-{__version__}/"
    with tarfile.open(_only(dist, "*.tar.gz")) as archive:
        held = {name.removeprefix(prefix) for name in archive.getnames()}
    missing = sorted(tracked - held)
    assert not missing, f"the sdist lacks {missing}: add them to MANIFEST.in"


def test_the_changelog_keeps_a_changelog_form_and_names_this_version():
    lines = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# Changelog"
    sections = [line for line in lines if line.startswith("## ")]
    assert sections[0] == "## [Unreleased]"
    releases = [RELEASE.fullmatch(line) for line in sections[1:]]
    assert all(releases), f"expected '## [X.Y.Z] - YYYY-MM-DD' headings, got {sections[1:]}"
    versions = [tuple(map(int, match.group(1).split("."))) for match in releases]
    dates = [date.fromisoformat(match.group(2)) for match in releases]
    assert versions == sorted(versions, reverse=True) and dates == sorted(dates, reverse=True), "newest first"
    # a release renames [Unreleased] to the version that __version__ then holds
    assert releases[0].group(1) == __version__
    kinds = {line[4:] for line in lines if line.startswith("### ")}
    assert kinds <= set(CHANGE_KINDS), f"change kinds other than {CHANGE_KINDS}: {sorted(kinds - set(CHANGE_KINDS))}"


def test_the_quick_start_is_read_from_the_readme():
    code = quick_start()
    assert code in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "import numpy_rnn" in code or "from numpy_rnn" in code
    compile(code, "quick_start.py", "exec")


@pytest.mark.parametrize("text, problem", [
    ("# numpy-rnn\n\n## Install\n", "expected a line '## Quick start'"),
    ("## Quick start\n\nsoon\n\n## Next\n\n```python\nprint(1)\n```\n", "expected a ```python block"),
    ("## Quick start\n\n```python\nprint(1)\n", "is never closed"),
])
def test_the_quick_start_reader_says_what_it_did_not_find(tmp_path, text, problem):
    readme = tmp_path / "README.md"
    readme.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(problem)):
        quick_start(readme)
