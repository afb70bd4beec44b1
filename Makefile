# Two commands do all the set-up on a machine with only python3 and pip:
#   make demo   creates .venv, installs numpy-rnn, runs the main job
#   make test   creates .venv, installs the test dependencies (torch==2.13.0, ruff), lints, runs the suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP_BASE := $(VENV)/.installed-base
STAMP_TEST := $(VENV)/.installed-test
STAMP_DOCS := $(VENV)/.installed-docs

.PHONY: demo test lint bench clean docs docs-serve dist wheel-check

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_BASE): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[cli,plot]'
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[cli,plot,test]'
	touch $@ $(STAMP_BASE)

demo: $(STAMP_BASE)
	$(PY) -m numpy_rnn demo

test: $(STAMP_TEST)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(PY) -m pytest

lint: $(STAMP_TEST)
	$(VENV)/bin/ruff check src tests benchmarks examples

# every goal of issue 9 in one table, 2 then 1 thread (~15 min); `make bench BENCH_ARGS=--quick` for a smoke run
bench: $(STAMP_TEST)
	$(PY) benchmarks/bench_layers.py $(BENCH_ARGS)

# the sdist and the wheel in dist/, checked by twine (the wheel is built from the sdist)
dist: $(STAMP_TEST)
	rm -rf dist
	$(PY) -m build --quiet --outdir dist .
	$(PY) -m twine check --strict dist/*

# the wheel installed into a fresh venv outside the repository runs the README's quick start (tests/wheel_check.py)
wheel-check: dist
	$(PY) tests/wheel_check.py dist

$(STAMP_DOCS): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $@

# the site into site/, strictly (a broken link, a missing reference or a docstring warning fails), the tutorials executed
# on one BLAS thread each, as the test suite runs them (two threads on a busy 2-core machine made tutorial 6 10x slower)
docs: $(STAMP_DOCS)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(VENV)/bin/mkdocs build --strict

# the site at http://127.0.0.1:8000, rebuilt on every change (tutorials not executed: make docs does that)
docs-serve: $(STAMP_DOCS)
	NUMPY_RNN_DOCS_EXECUTE=false $(VENV)/bin/mkdocs serve

STAMP_TUTORIALS := $(VENV)/.installed-tutorials

$(STAMP_TUTORIALS): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[cli,plot,tutorials]'
	touch $@ $(STAMP_BASE)

.PHONY: tutorials
# the tutorial notebooks (docs/tutorials/, stored without outputs: run them there) in JupyterLab
# (as root, in a container say, JupyterLab wants --allow-root)
tutorials: $(STAMP_TUTORIALS)
	$(PY) -m jupyter lab docs/tutorials $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf $(VENV) build site dist src/*.egg-info .pytest_cache
