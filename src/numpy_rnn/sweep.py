"""Sweeps: many training runs from one spec, run on Dask distributed, resumable to the last step.

The contract, stated once:

- **Spec** (TOML): ``seeds = [...]`` (required; ints >= 0), ``target`` (optional, > 0: the
  results give each run's first evaluation with ``val_loss < target``), ``panels`` (optional:
  a field the configurations vary; results.png then draws one panel per value of it), ``[base]`` (any
  :class:`~numpy_rnn.config.TrainConfig` field but ``out`` and ``seed``, which the sweep sets),
  ``[grid]`` (field = non-empty list; the configurations are the product) and ``[[runs]]``
  (each entry is ``base`` plus its fields: one more configuration, not crossed with the grid;
  an entry's optional ``name`` names its folder).
  Only ``[base]``: one configuration. Everything is checked before anything runs, by
  TrainConfig's own checks; a bad spec is a :class:`SweepSpecError` naming the file, the
  table and field, the expected and the actual value.
- **Names**: a configuration is named by the fields whose values differ across the sweep's
  configurations (grid keys first, then runs keys), ``field=value`` joined by ``,``, e.g.
  ``cell=lstm,lr=0.003``; a sweep of one configuration is ``base``; a ``[[runs]]`` entry's
  ``name`` replaces its generated name.
- **Folders**: ``OUT/sweep.json`` (written before any run starts: the spec, the seeds, the
  target and every configuration; see :mod:`numpy_rnn.sweep_results`), and a normal run
  folder per configuration and seed, ``OUT/<name>/seed<k>/`` (``diverged.json`` when a
  non-finite loss or gradient stopped it, ``error.txt`` when it failed otherwise).
- **One task per run** (:func:`run_one`): skip it if it has a ``summary.json`` or a
  ``diverged.json`` (a divergence is a result: the same run diverges again at the same step;
  ``retry_diverged`` deletes those runs first, for a new version of the library or a machine),
  resume it from its checkpoint if it has one, else train it from scratch. Another writer
  holding the folder (:class:`~numpy_rnn.train.RunInUse`: a task Dask runs twice, another
  sweep) is waited for, then the folder is looked at again: running elsewhere is not a failure.
  A failure is written to ``error.txt`` and reported, not retried in that sweep; a rerun
  resumes the run from its last checkpoint.
- **Nothing is lost**: a rerun skips finished runs and resumes the others bit-exact from their
  last checkpoint (every ``checkpoint_every`` steps); a worker that dies has its task
  rescheduled by Dask, which resumes it the same way; Ctrl-C cancels the runs not started and
  stops the others at their next checkpoint (a stop file of that sweep's own in ``OUT``). A spec that changed since
  ``sweep.json`` was written is refused with the fields that differ, unless ``force``: then the
  runs whose configuration changed are deleted and redone, the others kept (folders of
  configurations the spec dropped are left alone). ``target`` and ``panels`` change no run: a
  new value is taken without ``force`` and the report follows it.
- **Threads**: an embedded ``LocalCluster`` has single-threaded worker processes (one per core,
  or ``workers``) with BLAS pinned to one thread by their environment; inside every task, on
  any cluster, threadpoolctl limits BLAS to the worker's threads.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import _checks
from .config import TrainConfig
from .models import stored_configuration
from .plot import plot_history
from .sweep_results import DIVERGED_FILE, ERROR_FILE, FORMAT, OUTCOME_FILES, SWEEP_FILE, run_folder, run_status, write_report
from .train import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    PLOT_FILE,
    NonFiniteError,
    RunInUse,
    Trainer,
    lock_run,
    remove_run,
    run_exists,
)

__all__ = ["BLAS_ENV", "Configuration", "SweepSpec", "SweepSpecError", "load_spec", "run_one", "run_sweep"]

#: the tables and keys a spec may have
SPEC_KEYS = ("seeds", "target", "panels", "base", "grid", "runs")
#: the spec's keys that change the report, not the runs
REPORT_KEYS = ("target", "panels")
#: TrainConfig fields the sweep sets itself
SET_BY_SWEEP = ("out", "seed")
#: the environment of an embedded cluster's workers: BLAS on one thread
BLAS_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: the stop files in a sweep folder (``.stop-<pid>-<ns>``, one per sweep: Ctrl-C in one sweep
#: stops its own runs only); each run stops at its next checkpoint once its file exists
_STOP_FILES = ".stop-*"
#: seconds between two looks at a folder another writer holds, and between two progress updates
WAIT_SECONDS, POLL_SECONDS = 1.0, 0.25
_MAX_NAME_BYTES = 200  # a folder name stays well under the usual 255-byte limit


class SweepSpecError(ValueError):
    """A sweep spec that cannot run: the message names the file, the table and field, the
    expected and the actual value."""


# ----------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class Configuration:
    """One configuration of a sweep: its folder ``name``, the ``varied`` fields that name it,
    and ``config`` (``TrainConfig.to_dict()`` without ``out`` and ``seed``)."""

    name: str
    varied: dict
    config: dict

    def train_config(self, out, seed: int) -> TrainConfig:
        """The TrainConfig of this configuration's run of ``seed`` in sweep folder ``out``."""
        return TrainConfig.from_dict({**self.config, "seed": seed, "out": str(run_folder(out, self.name, seed))})


@dataclass(frozen=True)
class SweepSpec:
    """A checked spec: where it came from (``path``), the parsed TOML (``spec``), the ``seeds``, the
    ``target`` and the configurations (in spec order: the grid's product, then the runs)."""

    path: str
    spec: dict
    seeds: tuple
    target: float | None
    _configurations: tuple

    def configurations(self) -> list[Configuration]:
        """The configurations in spec order: the grid's product, then the ``[[runs]]`` entries."""
        return list(self._configurations)

    def runs(self, out) -> list[TrainConfig]:
        """Every run of the sweep into folder ``out``: each configuration with each seed."""
        return [c.train_config(out, seed) for c in self._configurations for seed in self.seeds]

    def record(self) -> dict:
        """What ``sweep.json`` holds (JSON-ready)."""
        return {"format": FORMAT, "spec": self.spec, "seeds": list(self.seeds), "target": self.target,
                "configurations": [{"name": c.name, "varied": c.varied, "config": c.config}
                                   for c in self._configurations]}


def load_spec(path) -> SweepSpec:
    """The sweep spec in TOML file ``path``, every value checked (:class:`SweepSpecError`)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise SweepSpecError(f"sweep spec '{path}': not valid TOML: {exc}") from None
    return _parse(data, os.fspath(path))


def _parse(data: dict, path: str) -> SweepSpec:
    def fail(where: str, message: str):
        raise SweepSpecError(f"sweep spec '{path}': {where}: {message}")

    for key in data:
        if key not in SPEC_KEYS:
            fail(key, f"unknown key; expected {', '.join(SPEC_KEYS)}")
    seeds = _seeds(data.get("seeds"), fail)
    target = data.get("target")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))
                               or not (math.isfinite(target) and target > 0)):
        fail("target", f"expected a number > 0, got {target!r}")
    base = _fields(data.get("base", {}), "[base]", fail)
    grid = _table(data.get("grid", {}), "[grid]", fail)
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            fail(f"[grid] {name}", f"expected a non-empty list of values, got {values!r}")
        grid[name] = [_field(name, value, f"[grid] {name}[{i}]", fail) for i, value in enumerate(values)]
    runs = data.get("runs", [])
    if not isinstance(runs, list):
        fail("[[runs]]", f"expected an array of tables ([[runs]] entries), got {runs!r}")
    given_names = [_run_name(entry, f"[[runs]] entry {i + 1}", fail) for i, entry in enumerate(runs)]
    runs = [_fields({k: v for k, v in entry.items() if k != "name"}, f"[[runs]] entry {i + 1}", fail)
            for i, entry in enumerate(runs)]
    entries = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] if grid else []
    given_names = [None] * len(entries) + given_names
    entries += runs
    configs = [_config({**base, **entry}, f"configuration {entry or 'base'}", fail) for entry in entries or [{}]]
    keys = list(dict.fromkeys([*grid, *(name for entry in runs for name in entry)]))
    configurations = _named(configs, keys, fail, given_names)
    _check_panels(data.get("panels"), configurations, fail)
    return SweepSpec(path, data, tuple(seeds), target, tuple(configurations))


def _check_panels(panels, configurations: list[Configuration], fail) -> None:
    varied = list(dict.fromkeys(key for c in configurations for key in c.varied))
    if panels is not None and panels not in varied:
        fail("panels", f"expected one of the fields the configurations vary ({', '.join(varied) or 'none'}), "
                       f"got {panels!r}")


def _run_name(entry, where: str, fail) -> str | None:
    """A ``[[runs]]`` entry's own ``name`` (its folder's), or None."""
    name = entry.get("name") if isinstance(entry, dict) else None
    if name is not None and not (isinstance(name, str) and name.strip() and not name.startswith(".")
                                 and "/" not in name and os.sep not in name):
        fail(f"{where} name", f"expected a folder name (text without '/', not starting with '.'), got {name!r}")
    return name


def _checked(fail, where: str, check):
    """``check()``, its TypeError or ValueError turned into the spec's error at ``where``."""
    try:
        return check()
    except (TypeError, ValueError) as exc:
        fail(where, str(exc))


def _seeds(seeds, fail) -> list[int]:
    if not isinstance(seeds, list) or not seeds:
        fail("seeds", f"expected a non-empty list of integers >= 0, got {'nothing' if seeds is None else repr(seeds)}")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            fail("seeds", f"expected integers >= 0, got {seed!r} in {seeds!r}")
    if len(set(seeds)) < len(seeds):
        fail("seeds", f"expected each seed once, got {seeds!r}")
    return seeds


def _table(value, where: str, fail) -> dict:
    if not isinstance(value, dict):
        fail(where, f"expected a table of field = value, got {value!r}")
    return dict(value)


def _fields(table, where: str, fail) -> dict:
    """The TrainConfig fields of a spec table, each value checked alone."""
    return {name: _field(name, value, f"{where} {name}", fail) for name, value in _table(table, where, fail).items()}


def _field(name: str, value, where: str, fail):
    if name in SET_BY_SWEEP:
        fail(where, f"the sweep sets {' and '.join(SET_BY_SWEEP)} itself (seeds = [...], --out); remove it")
    return _checked(fail, where, lambda: TrainConfig.check_value(name, value))


def _config(values: dict, where: str, fail) -> dict:
    """The full configuration (``TrainConfig.to_dict()`` without out and seed) of ``values``,
    checked as ``numpy-rnn train`` checks its flags (task defaults, fields that do not apply)."""
    def build():
        TrainConfig.check_applicable({**TrainConfig().to_dict(), **values}, values)
        options = dict(values)
        return TrainConfig.for_task(options.pop("task", "memory"), **options).to_dict()
    config = _checked(fail, where, build)
    return {name: value for name, value in config.items() if name not in SET_BY_SWEEP}


def _named(configs: list[dict], keys: list[str], fail, given_names: list) -> list[Configuration]:
    """Each configuration named by its ``[[runs]]`` entry's ``name``, else by the ``keys`` whose
    values differ across ``configs`` (the cell as trained: no cell is the default's)."""
    shown = [{**config, "cell": TrainConfig.from_dict(config).cell_used} for config in configs]
    varied = [key for key in keys if len({json.dumps(c[key], sort_keys=True) for c in shown}) > 1]
    named, seen = [], {}
    for i, (config, values, given) in enumerate(zip(configs, shown, given_names or [None] * len(configs))):
        values = {key: values[key] for key in varied}
        name = given or (",".join(f"{key}={_name_value(value)}" for key, value in values.items())
                         if len(configs) > 1 else "base")
        if name in seen:
            fail("configurations", f"expected different configurations, got number {seen[name] + 1} and {i + 1} "
                                   f"the same ({name or 'no field differs'})")
        if len(name.encode()) > _MAX_NAME_BYTES:
            fail("configurations", f"expected a folder name of at most {_MAX_NAME_BYTES} bytes, got {name!r}: "
                                   f"vary fewer fields in one sweep")
        seen[name] = i
        named.append(Configuration(name, values, config))
    return named


def _name_value(value) -> str:
    """A field's value as part of a folder name (no path separator)."""
    if isinstance(value, dict):
        text = ";".join(f"{k}:{v}" for k, v in value.items()) or "default"
    elif isinstance(value, bool) or value is None:
        text = json.dumps(value)
    else:
        text = repr(value) if isinstance(value, float) else str(value)
    return text.replace("/", "_").replace(os.sep, "_")


# ----------------------------------------------------------------------------- one run (on a worker)
def run_one(config: dict, stop_file=None) -> dict:
    """The task of one run, ``config`` (``TrainConfig.to_dict()``, its ``out`` the run folder): skip
    it, resume it or train it to the end (see the module docstring), stopping at a checkpoint once
    ``stop_file`` exists. Returns ``{"status": "done" | "skipped" | "stopped" | "diverged" |
    "failed", "error": the error's line or None}``."""
    folder = Path(config["out"])
    with _blas_threads():
        while True:
            try:
                status = _train_to_the_end(TrainConfig.from_dict(config), None if stop_file is None else Path(stop_file))
                return {"status": status, "error": None}
            except (RunInUse, FileExistsError):  # another writer holds or just started the folder
                time.sleep(WAIT_SECONDS)
            except NonFiniteError as exc:  # a result: recorded in its folder
                return {"status": "diverged", "error": _write_divergence(folder, exc)}
            except Exception as exc:  # the run failed: say why in its folder
                return {"status": "failed", "error": _write_error(folder, exc)}


def _train_to_the_end(config: TrainConfig, stop_file: Path | None) -> str:
    """Train in stretches from checkpoint to checkpoint (every ``checkpoint_every`` steps; one
    stretch without), looking for ``stop_file`` in between; the stretches change nothing in
    the run (it goes on in memory)."""
    folder = Path(config.out)
    if run_status(folder) in ("done", "diverged"):
        return "skipped"
    (folder / ERROR_FILE).unlink(missing_ok=True)
    if (folder / CHECKPOINT_FILE).is_file():
        trainer = Trainer.resume(folder)
    else:
        if run_exists(folder):  # a config.json without a checkpoint: a start that died at once
            with lock_run(folder):
                remove_run(folder)
        trainer = Trainer(config)
    every = trainer.config.checkpoint_every or trainer.config.steps
    summary = None
    while summary is None:
        if stop_file is not None and stop_file.exists():
            return "stopped"
        summary = trainer.run(until=(trainer.step // every + 1) * every)
    _plot_losses(trainer, summary)
    return "done"


def _error_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).splitlines())}"


def _write_divergence(folder: Path, exc: NonFiniteError) -> str:
    """``diverged.json``: the step and the error's line; returns the line."""
    line = _error_line(exc)
    (folder / DIVERGED_FILE).write_text(json.dumps({"step": exc.step, "error": line}) + "\n", encoding="utf-8")
    return line


def _write_error(folder: Path, exc: BaseException) -> str:
    """``error.txt``: the exception's line, then the whole traceback; returns the line."""
    line = _error_line(exc)
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ERROR_FILE).write_text(line + "\n\n" + "".join(traceback.format_exception(exc)), encoding="utf-8")
    return line


def _plot_losses(trainer: Trainer, summary: dict) -> None:
    """The run folder's loss.png, as ``numpy-rnn train`` draws it (where matplotlib is installed)."""
    c = trainer.config
    with contextlib.suppress(ImportError):  # matplotlib is imported when drawing
        plot_history(trainer.history, summary["baseline_loss"], trainer.out / PLOT_FILE,
                     ylabel={"mse": "MSE", "cross_entropy": "cross-entropy"}[summary["loss"]],
                     title=f"{c.task} task, {c.model} model ({c.cell_used})")


def _blas_threads():
    """BLAS limited to the worker's threads for the task (threadpoolctl, where installed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    try:
        from distributed import get_worker
        threads = get_worker().state.nthreads
    except (ImportError, ValueError):  # not on a Dask worker
        threads = 1
    return threadpool_limits(limits=threads)


# ----------------------------------------------------------------------------- the sweep
def run_sweep(spec: SweepSpec, out, *, scheduler: str | None = None, workers: int | None = None,
              force: bool = False, retry_diverged: bool = False, progress: bool = True, on_result=None) -> dict:
    """Run every run of ``spec`` into sweep folder ``out`` on Dask, then write the report.

    ``scheduler`` (``tcp://HOST:PORT``) sends the runs to an existing cluster (whose workers
    see ``out`` at the same path); else an embedded ``LocalCluster`` runs them with ``workers``
    single-threaded processes (default: one per core, at most one per run). Returns
    ``{"done": [...], "skipped": [...], "stopped": [...], "diverged": {folder: error line},
    "failed": {folder: error line}, "redone": [...], "report": [paths]}`` (run folders as str;
    ``skipped``: finished or diverged before; ``diverged``: stopped by a non-finite loss or
    gradient in this call; ``stopped``: at a checkpoint, by a stop request; ``redone``: deleted
    by ``force`` because their configuration changed, or by ``retry_diverged`` because they had
    diverged). Ctrl-C stops the runs at their next checkpoint and raises KeyboardInterrupt;
    rerunning the same call goes on from there. ``progress`` shows a progress bar over the runs.
    ``on_result(folder, result)``, if given, is called as each run ends in this call, ``result``
    as :func:`run_one` returns it (skipped runs included).
    """
    if not isinstance(spec, SweepSpec):
        raise TypeError(f"run_sweep: expected a SweepSpec (load_spec(path)), got {type(spec).__name__}")
    if workers is not None:
        workers = _checks.check_size("run_sweep", "workers", workers)
    out = Path(out).absolute()
    redone = _prepare(spec, out, force)
    if retry_diverged:
        redone += _remove_runs(spec, out, _diverged)
    runs = spec.runs(out)
    with _client(scheduler, workers, len(runs)) as client:
        outcome = _execute(client, runs, out / f".stop-{os.getpid()}-{time.time_ns()}", progress, on_result)
    return {**outcome, "redone": redone, "report": [str(path) for path in write_report(out)]}


def _prepare(spec: SweepSpec, out: Path, force: bool) -> list[str]:
    """Check ``out`` against the spec (refuse a changed one, unless ``force``: delete the runs
    whose configuration changed) and write sweep.json; returns the deleted run folders."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"sweep folder '{out}' is a file, not a folder: choose another --out")
    record = json.loads(json.dumps(spec.record()))  # as sweep.json will hold it
    path = out / SWEEP_FILE
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"'{path}' is not a sweep record ({exc}): choose another --out") from None
        changed = _differences(_runs_part(stored.get("spec") if isinstance(stored, dict) else None),
                               _runs_part(record["spec"]))
        if changed and not force:
            raise SweepSpecError(f"'{out}' holds a sweep of another spec (differing: {', '.join(changed)}): use another "
                                 f"--out, or --force to redo the runs whose configuration changed and keep the others")
    redone = _remove_runs(spec, out, _changed) if force else []
    out.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{SWEEP_FILE}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return redone


def _runs_part(spec):
    """A parsed spec without its :data:`REPORT_KEYS`."""
    return {k: v for k, v in spec.items() if k not in REPORT_KEYS} if isinstance(spec, dict) else spec


def _differences(old, new, where: str = "") -> list[str]:
    """The dotted names of the fields that differ between two parsed specs. ``[[runs]]`` entries
    that all have names are matched by name (``runs[NAME].field``: a new order is no change),
    others by place (``runs[2].field``); a field or entry on one side only is named with
    ``added`` or ``removed``."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [name for key in dict.fromkeys([*old, *new])
                for name in _differences(old.get(key), new.get(key), f"{where}.{key}" if where else key)]
    if isinstance(old, list) and isinstance(new, list) and all(isinstance(item, dict) for item in old + new):
        named_old, named_new = _by_name(old), _by_name(new)
        if named_old is not None and named_new is not None:
            return [name for key in dict.fromkeys([*named_old, *named_new])
                    for name in _differences(named_old.get(key), named_new.get(key), f"{where}[{key}]")]
        if len(old) == len(new):
            return [name for i, (a, b) in enumerate(zip(old, new)) for name in _differences(a, b, f"{where}[{i + 1}]")]
    if old == new:
        return []
    name = where or "the whole spec"
    return [f"{name} added" if old is None else f"{name} removed" if new is None else name]


def _by_name(entries: list[dict]) -> dict | None:
    """``[[runs]]`` entries by their names, or None where one has none."""
    names = [entry.get("name") for entry in entries]
    return dict(zip(names, entries)) if all(isinstance(name, str) for name in names) else None


def _remove_runs(spec: SweepSpec, out: Path, which) -> list[str]:
    """Delete the run files and outcome of every run of the sweep for which ``which(folder,
    config)`` holds; returns their folders."""
    removed = []
    for config in spec.runs(out):
        folder = Path(config.out)
        if which(folder, config):
            with lock_run(folder):
                remove_run(folder)
                for name in OUTCOME_FILES:
                    (folder / name).unlink(missing_ok=True)
            removed.append(str(folder))
    return removed


def _changed(folder: Path, config: TrainConfig) -> bool:
    """Whether the folder holds a run whose stored config.json is not ``config``."""
    return run_exists(folder) and _stored_config(folder) != config.to_dict()


def _diverged(folder: Path, config: TrainConfig) -> bool:
    """Whether the folder holds a run that diverged (its diverged.json)."""
    return run_status(folder) == "diverged"


def _stored_config(folder: Path) -> dict | None:
    """The run's config.json as a whole configuration (a field added to TrainConfig since it was
    written at its default); None where it is not one."""
    try:
        with stored_configuration():
            return TrainConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))).to_dict()
    except (ValueError, TypeError):
        return None


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int | None, runs: int):
    """A Dask client of the cluster at ``scheduler``, or of an embedded LocalCluster."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("numpy-rnn sweep runs on Dask: pip install 'numpy-rnn[sweep]'") from None
    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    n_workers = max(1, min(workers or os.cpu_count() or 1, runs))
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      env=BLAS_ENV, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def _execute(client, runs: list[TrainConfig], stop_file: Path, progress: bool, on_result) -> dict:
    """Run one task per run and wait for them all (a progress bar over runs; ``on_result`` called
    as each ends, see :func:`run_sweep`). The runs go to the
    cluster in the spec's order, no more at a time than it has threads (counted again at every
    look: workers come and go), so that none waits in a busy worker's queue while another worker
    goes on with the runs after it. On Ctrl-C (KeyboardInterrupt) the runs are told to stop at
    their next checkpoint (``stop_file``) and waited for (a second Ctrl-C ends the wait: an
    embedded cluster then takes them back to their last checkpoint), the rest are not started,
    and the interrupt goes on; on any other exception the runs are told to stop, not waited for."""
    for stale in stop_file.parent.glob(_STOP_FILES):  # of earlier sweeps, stopped
        stale.unlink(missing_ok=True)
    waiting = [config.to_dict() for config in reversed(runs)]  # pop() gives the next run in spec order
    in_flight = {}  # future -> its run folder
    outcome = {"done": [], "skipped": [], "stopped": [], "diverged": {}, "failed": {}}
    bar = _progress_bar(len(runs)) if progress else None
    try:
        while waiting or in_flight:
            while waiting and len(in_flight) < max(1, sum(client.nthreads().values())):
                config = waiting.pop()
                future = client.submit(run_one, config, str(stop_file), pure=False, key=f"run-{config['out']}-{time.time_ns()}")
                in_flight[future] = config["out"]
            finished = [future for future in in_flight if future.done()]
            for future in finished:
                folder = in_flight.pop(future)
                result = _result(future, Path(folder))
                if result["status"] in ("diverged", "failed"):
                    outcome[result["status"]][folder] = result["error"]
                else:
                    outcome[result["status"]].append(folder)
                if on_result is not None:
                    with bar.external_write_mode() if bar is not None else contextlib.nullcontext():
                        on_result(folder, result)
            if bar is not None:
                _show(bar, client, set(in_flight), outcome, len(finished))
            if in_flight:
                time.sleep(POLL_SECONDS)
    except BaseException as exc:
        stop_file.touch()
        if isinstance(exc, KeyboardInterrupt) and in_flight:
            _wait_for_checkpoints(list(in_flight), bar)
        with contextlib.suppress(Exception):  # the scheduler may be the one that failed
            client.cancel(list(in_flight), force=True)  # a running task goes on to its next checkpoint
        raise
    finally:
        if bar is not None:
            bar.close()
    return outcome


def _wait_for_checkpoints(futures: list, bar) -> None:
    """Wait for the runs told to stop to reach their next checkpoint; a second Ctrl-C ends the wait."""
    from distributed import wait

    message = f"stopping {len(futures)} run(s) at their next checkpoint (Ctrl-C again: at once, back to the last)"
    if bar is not None:
        bar.set_description(message)
    else:
        print(message, file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt, Exception):  # a second Ctrl-C, or a scheduler gone
        wait(futures)


def _result(future, folder: Path) -> dict:
    """A finished task's result; a task Dask gave up on (its workers kept dying, or the worker
    could not run it) is a failure, written to the run's error.txt here."""
    if future.status == "finished":
        return future.result()
    return {"status": "failed", "error": _write_error(folder, future.exception())}


def _progress_bar(total: int):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("the progress bar needs tqdm: pip install 'numpy-rnn[sweep]' (or pass progress=False)") from None
    return tqdm(total=total, desc="sweep", unit="run", dynamic_ncols=True)


def _show(bar, client, pending: set, outcome: dict, newly_finished: int) -> None:
    """The bar's counts: done (skipped included), running on a worker now, diverged, failed."""
    keys = {future.key for future in pending}
    threads = client.nthreads() if pending else {}
    running = sum(min(sum(key in keys for key in tasks), threads.get(worker, 1))  # at most its threads run at once
                  for worker, tasks in client.processing().items()) if pending else 0
    bar.set_postfix({"done": len(outcome["done"]) + len(outcome["skipped"]), "running": running,
                     "diverged": len(outcome["diverged"]), "failed": len(outcome["failed"])}, refresh=False)
    bar.update(newly_finished)
    if not newly_finished:
        bar.refresh()

