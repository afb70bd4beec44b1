"""The results of a sweep (``numpy-rnn sweep``), read from its folder alone: one row per run, a
table per configuration, the curves.

A sweep folder ``OUT`` holds ``sweep.json``, written before any run starts::

    {"format": "numpy_rnn.sweep/1", "spec": {the parsed TOML}, "seeds": [0, 1, 2], "target": 0.01 or null,
     "configurations": [{"name": "cell=lstm,lr=0.003", "varied": {"cell": "lstm", "lr": 0.003},
                         "config": TrainConfig.to_dict() without out and seed}, ...]}

and one run folder per configuration and seed, ``OUT/<name>/seed<k>/``: a normal run folder of
:mod:`numpy_rnn.train` (config.json, metrics.jsonl, checkpoint.ckpt, summary.json, loss.png), plus
``diverged.json`` when a non-finite loss or gradient stopped the run
(:class:`~numpy_rnn.train.NonFiniteError`: ``{"step": the step, "error": its message}``), or
``error.txt`` when the run failed otherwise (the traceback's last line first, then the whole
traceback). A divergence is a result, not a failure: the same run diverges again at the same
step, bit-exact. A run's status, from its folder:

==============  ==================================================================
``done``        summary.json is there
``diverged``    diverged.json is there and no summary.json
``failed``      error.txt is there and neither
``unfinished``  config.json is there and none of these (not started to the end, or running now)
``missing``     no config.json (the run has not started)
==============  ==================================================================

Every number comes from the folders, so the report of a sweep in progress, stopped or partly
failed is the report of what it has done so far; :func:`write_report` writes it (``results.csv``,
``results.md``, ``results.png``) and ``numpy-rnn sweep --report OUT`` rebuilds it.
"""
from __future__ import annotations

import csv
import itertools
import json
import math
import statistics
from pathlib import Path

from .config import TrainConfig
from .models import stored_configuration
from .train import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE

__all__ = ["DIVERGED_FILE", "ERROR_FILE", "FORMAT", "OUTCOME_FILES", "RESULT_FILES", "STATUSES", "SWEEP_FILE", "collect",
           "first_below", "markdown", "plot_sweep", "read_history", "read_sweep", "run_folder", "run_status", "summarize",
           "varied_fields", "write_csv", "write_report"]

SWEEP_FILE, ERROR_FILE, DIVERGED_FILE = "sweep.json", "error.txt", "diverged.json"
#: what the sweep adds to a run folder: how a run that did not finish ended
OUTCOME_FILES = (ERROR_FILE, DIVERGED_FILE)
FORMAT = "numpy_rnn.sweep/1"
#: what write_report writes into the sweep folder
RESULT_FILES = ("results.csv", "results.md", "results.png")
STATUSES = ("done", "diverged", "unfinished", "failed", "missing")


# ----------------------------------------------------------------------------- reading the folders
def run_folder(out, name: str, seed: int) -> Path:
    """The run folder of configuration ``name`` and ``seed`` in sweep folder ``out``."""
    return Path(out) / name / f"seed{seed}"


def read_sweep(out) -> dict:
    """``OUT/sweep.json`` of the sweep folder ``out``, checked: its format, seeds, target and
    configurations."""
    path = Path(out) / SWEEP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"read_sweep: '{out}' is not a sweep folder: it has no {SWEEP_FILE}")
    try:
        sweep = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"read_sweep: {path} is not JSON: {exc}") from None
    if not isinstance(sweep, dict) or sweep.get("format") != FORMAT:
        found = sweep.get("format") if isinstance(sweep, dict) else type(sweep).__name__
        raise ValueError(f"read_sweep: expected {path} of format {FORMAT!r}, got {found!r}")
    missing = [key for key in ("seeds", "target", "configurations") if key not in sweep]
    if missing:
        raise ValueError(f"read_sweep: {path} lacks {', '.join(missing)}")
    for configuration in sweep["configurations"]:
        if not isinstance(configuration, dict) or not {"name", "varied", "config"} <= set(configuration):
            raise ValueError(f"read_sweep: expected every configuration in {path} to have name, varied and "
                             f"config, got {configuration!r}")
    return sweep


def read_history(run) -> list[dict]:
    """The evaluation records of run folder ``run`` (metrics.jsonl; none if there is none yet).

    A last line cut short (a process killed while writing it) is left out; any other line that
    is not JSON is an error.
    """
    path = Path(run) / METRICS_FILE
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # no newline after it: cut short
                break
            raise ValueError(f"read_history: {path} line {number} is not JSON: {line[:80]!r}") from None
    return records


def run_status(run) -> str:
    """The status of the run folder ``run``: done, diverged, failed, unfinished or missing (see
    the module docstring)."""
    run = Path(run)
    if (run / SUMMARY_FILE).is_file():
        return "done"
    if (run / DIVERGED_FILE).is_file():
        return "diverged"
    if (run / ERROR_FILE).is_file():
        return "failed"
    return "unfinished" if (run / CONFIG_FILE).is_file() else "missing"


def first_below(history: list[dict], level: float) -> int | None:
    """The step of the first evaluation in ``history`` (a run's metrics records) whose validation
    loss is below ``level`` (None: never)."""
    return next((r["step"] for r in history if r.get("val_loss") is not None and r["val_loss"] < level), None)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _check_run_config(run: Path, configuration: dict, seed: int) -> None:
    """The run's config.json is the configuration of sweep.json with this seed (its ``out`` aside)."""
    with stored_configuration():
        stored = TrainConfig.from_dict(_read_json(run / CONFIG_FILE)).to_dict()
        expected = TrainConfig.from_dict({**configuration["config"], "seed": seed, "out": stored["out"]}).to_dict()
    differ = [name for name in stored if stored[name] != expected[name]]
    if differ:
        raise ValueError(f"collect: {run} holds a run of another configuration than {SWEEP_FILE}'s "
                         f"{configuration['name']!r} seed {seed} (fields that differ: {', '.join(differ)}); "
                         f"rerun the sweep with --force to redo it")


def varied_fields(sweep: dict) -> list[str]:
    """The fields varied across the configurations of ``sweep`` (its sweep.json), in the order
    they first appear."""
    return list(dict.fromkeys(name for c in sweep["configurations"] for name in c["varied"]))


def _run_row(run: Path, status: str, target: float | None) -> dict:
    """The measured columns of one run (see :func:`collect`)."""
    history = read_history(run)
    last = history[-1] if history else {}
    summary = _read_json(run / SUMMARY_FILE) if status == "done" else {}
    row = {"test_loss": summary.get("test_loss"), "baseline_loss": summary.get("baseline_loss"),
           "ratio_to_baseline": summary.get("ratio_to_baseline"),
           "steps_done": summary.get("steps", last.get("step")),
           "first_step_below_target": first_below(history, target) if target is not None else None,
           "seconds": summary.get("seconds", last.get("elapsed")), "diverged_at": None, "error": None}
    if status == "diverged":
        divergence = _read_json(run / DIVERGED_FILE)
        row["diverged_at"], row["error"] = divergence["step"], divergence["error"]
    if status == "failed":
        row["error"] = (run / ERROR_FILE).read_text(encoding="utf-8").strip().split("\n")[0]
    if target is None:
        del row["first_step_below_target"]
    return row


def collect(out) -> list[dict]:
    """One row per run of the sweep in folder ``out``, configurations in sweep.json's order, then
    seeds: ``configuration`` (its name), every varied field (:func:`varied_fields`), ``seed``,
    ``status`` (:data:`STATUSES`), then what was measured (None where it was not): ``test_loss``,
    ``baseline_loss`` and ``ratio_to_baseline`` (done runs), ``steps_done`` and ``seconds`` (done:
    the summary's; otherwise at the last evaluation; ``steps_done``, not ``steps``: a sweep may vary
    the field ``steps``), ``first_step_below_target`` (only with a target: the first evaluation with
    validation loss below it), ``diverged_at`` (diverged runs: the step), ``error`` (diverged and
    failed runs: the error's line).

    A run folder holding another configuration than sweep.json's is an error (ValueError).
    """
    sweep = read_sweep(out)
    fields = varied_fields(sweep)
    rows = []
    for configuration in sweep["configurations"]:
        values = dict(zip(fields, _values(configuration, fields)))
        for seed in sweep["seeds"]:
            run = run_folder(out, configuration["name"], seed)
            status = run_status(run)
            if (run / CONFIG_FILE).is_file():  # a run may fail before it writes one
                _check_run_config(run, configuration, seed)
            rows.append({"configuration": configuration["name"], **values, "seed": seed, "status": status,
                         **_run_row(run, status, sweep["target"])})
    return rows


# ----------------------------------------------------------------------------- the tables
def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None where there are too few values)."""
    mean = statistics.fmean(values) if values else None
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def _median_first_step(steps: list[int | None]) -> float | None:
    """The median first step below the target, a run that never got there counting as infinitely
    late: inf when half the runs or more never did, None without runs."""
    return statistics.median([math.inf if s is None else s for s in steps]) if steps else None


def summarize(rows: list[dict], target: float | None) -> list[dict]:
    """Per configuration of ``rows`` (in :func:`collect`'s order; ``target`` the sweep's, or None):
    ``runs`` and the count of each status, ``diverged_at`` (the diverged runs' steps); over its
    done runs: mean and std of ``test_loss`` and ``ratio_to_baseline``, ``below_target`` (runs
    whose test loss is below the target), the median first step below the target
    (:func:`_median_first_step`), mean ``seconds``."""
    configurations: dict[str, list[dict]] = {}
    for row in rows:
        configurations.setdefault(row["configuration"], []).append(row)
    table = []
    for name, runs in configurations.items():
        done = [r for r in runs if r["status"] == "done"]
        tests = [r["test_loss"] for r in done if r["test_loss"] is not None]
        ratios = [r["ratio_to_baseline"] for r in done if r["ratio_to_baseline"] is not None]
        entry = {"configuration": name, "runs": len(runs), **{s: sum(r["status"] == s for r in runs) for s in STATUSES},
                 "diverged_at": [r["diverged_at"] for r in runs if r["status"] == "diverged"],
                 "test_loss": _mean_std(tests), "ratio_to_baseline": _mean_std(ratios),
                 "seconds": _mean_std([r["seconds"] for r in done])[0]}
        if target is not None:
            entry["below_target"] = sum(t < target for t in tests)
            entry["median_first_step"] = _median_first_step([r["first_step_below_target"] for r in done])
        table.append(entry)
    return table


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def _fmt_seconds(value) -> str:
    return _fmt(value) if value is None or value < 100 else f"{value:.0f}"


def _fmt_mean_std(pair: tuple[float | None, float | None], scale: float = 1.0) -> str:
    mean, std = pair
    if mean is None:
        return "-"
    return _fmt(scale * mean) + ("" if std is None else f" ± {_fmt(scale * std, 2)}")


def _fmt_value(value) -> str:
    """A varied field's value in a table cell: an initialiser dict as ``R=identity, b=zeros``."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "default"
    return "default" if value is None else str(value)


def markdown(sweep: dict, rows: list[dict]) -> str:
    """The Markdown report of a sweep (``sweep``, its sweep.json, :func:`read_sweep`, and ``rows``,
    :func:`collect`): a table with one row per configuration (its name where ``[[runs]]`` entries
    name themselves, its varied fields, runs done, mean ± std over the done runs of the test loss
    and of the test loss in % of the baseline; with a target, runs whose test loss is below it and
    the median first step whose validation loss is; where any run diverged, how many did and at
    which steps; mean wall time), what the columns mean, and a line saying how many runs diverged,
    are unfinished, failed or missing (and which failed, with their error)."""
    target = sweep["target"]
    named = any("name" in entry for entry in sweep["spec"].get("runs", []))  # [[runs]] with names of their own
    fields = varied_fields(sweep)
    fields = ["configuration", *fields] if named or not fields else fields
    header = [*fields, "runs done", "test loss", "% of baseline"]
    if target is not None:
        header += [f"test loss < {_fmt(target)}", f"first step, val. loss < {_fmt(target)} (median)"]
    diverged = any(row["status"] == "diverged" for row in rows)
    if diverged:
        header.append("diverged (at step)")
    header.append("wall time (s)")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    first_rows = {}
    for row in rows:
        first_rows.setdefault(row["configuration"], row)
    for entry in summarize(rows, target):
        row = first_rows[entry["configuration"]]
        cells = [_fmt_value(row[f]) for f in fields] + [
            f"{entry['done']}/{entry['runs']}", _fmt_mean_std(entry["test_loss"]),
            _fmt_mean_std(entry["ratio_to_baseline"], 100)]
        if target is not None:
            median = entry["median_first_step"]
            cells += [f"{entry['below_target']}/{entry['runs']}",
                      "never" if median == math.inf else _fmt(median, 6)]
        if diverged:
            cells.append(_fmt_diverged(entry))
        cells.append(_fmt_seconds(entry["seconds"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", _explanation(sweep, diverged), "", _status_line(rows)]) + "\n"


def _fmt_diverged(entry: dict) -> str:
    """``2/3 (62, 75)``: how many runs diverged, and at which steps."""
    steps = ", ".join(str(step) for step in sorted(entry["diverged_at"]))
    return f"{entry['diverged']}/{entry['runs']}" + (f" ({steps})" if steps else "")


def _explanation(sweep: dict, diverged: bool) -> str:
    seeds = ", ".join(str(s) for s in sweep["seeds"])
    text = (f"Seeds {seeds}. Test loss: the final model on the test set, mean ± sample std over the runs done; "
            f"% of baseline: the same divided by the loss of the best memoryless predictor.")
    if sweep["target"] is not None:
        text += (f" Below target: runs whose test loss is below {_fmt(sweep['target'])}; first step: the first "
                 f"evaluation with validation loss below it, median over the runs done (never: half or more "
                 f"never got there).")
    if diverged:
        text += (" Diverged: runs stopped by a non-finite loss or gradient, and the step; such a run is a result "
                 "(rerun, it diverges at the same step).")
    return text + " Wall time: mean over the runs done, evaluations included."


def _status_line(rows: list[dict]) -> str:
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    line = f"{counts['done']} of {len(rows)} runs done"
    others = [f"{counts[s]} {s}" for s in STATUSES[1:] if counts[s]]
    line += "; " + ", ".join(others) + "." if others else "."
    failed = [f"{r['configuration']} seed {r['seed']}: {r['error']}" for r in rows if r["status"] == "failed"]
    return line + ("" if not failed else " Failed: " + "; ".join(failed) + ".")


# ----------------------------------------------------------------------------- the files
def _csv_cell(value):
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def write_csv(rows: list[dict], path) -> Path:
    """``rows`` (:func:`collect`) as CSV into the file ``path``, one column per key; None empty,
    dicts as JSON."""
    path = Path(path)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["configuration", "seed", "status"])
        writer.writeheader()
        writer.writerows({key: _csv_cell(value) for key, value in row.items()} for row in rows)
    return path


def _colours(n: int) -> list:
    """``n`` distinguishable colours: matplotlib's cycle up to 10, else spread over viridis."""
    if n <= 10:
        return [f"C{i}" for i in range(n)]
    from matplotlib import colormaps
    return [colormaps["viridis"](i / (n - 1)) for i in range(n)]


#: line style per seed (in the order of the sweep's seeds); the target is grey dotted, baselines grey dashed
SEED_STYLES = ("-", "--", "-.", ":")


def plot_sweep(out, path=None) -> str:
    """Validation loss (log scale) of every run with an evaluation, read from the sweep folder
    ``out`` and written to ``path`` (default ``OUT/results.png``): one line style per seed
    (:data:`SEED_STYLES`), a diverged run's step marked ``x`` at the top, the target dotted, each
    task baseline (of the runs done) dashed, the key below the panels.

    Without ``panels`` in the spec: against the step and against wall time, one colour per
    configuration. With ``panels = "FIELD"``: against the step, one panel per value of that
    field (numbers ascending, other values in the spec's order), one colour per combination of
    the other varied fields (the same in every panel)."""
    from .plot import _figure, _save

    sweep = read_sweep(out)
    titles, panel_of, keys = _layout(sweep)
    colours = dict(zip(dict.fromkeys(keys), _colours(len(set(keys)))))
    fig, axes = _panels(_figure, len(titles), len(colours))
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
    axes_of = [[(axes[p], "step")] if titles else [(axes[0], "step"), (axes[1], "elapsed")] for p in panel_of]
    baselines, diverged = _draw_runs(sweep, out, axes_of, [colours[key] for key in keys], keys)
    _finish(axes, sweep, baselines, wall_time=not titles)
    lines = "dotted: target, dashed: baseline" if sweep["target"] is not None else "dashed: baseline"
    fig.suptitle(f"{Path(out).resolve().name}: validation loss; {lines}" + ("; x: diverged at that step" if diverged else ""),
                 fontsize=10)
    return _save(fig, path)


def _layout(sweep: dict) -> tuple[list[str], list[int], list[str]]:
    """The panels' titles (none without ``panels``), each configuration's panel and its key in
    the legend (its name; with panels, its values of the other varied fields, :func:`_key`)."""
    configurations = sweep["configurations"]
    panel_field = sweep["spec"].get("panels")
    if panel_field is None:
        return [], [0] * len(configurations), [c["name"] for c in configurations]
    values = [json.dumps(_values(c, [panel_field])[0]) for c in configurations]
    panel_values = list(dict.fromkeys(values))  # in the spec's order; numbers ascending
    numbers = [json.loads(value) for value in panel_values]
    if all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
        panel_values = [value for _, value in sorted(zip(numbers, panel_values))]
    others = [f for f in varied_fields(sweep) if f != panel_field]
    axes = sweep["spec"].get("grid", {})
    unnamed = {f: v for f, v in TrainConfig().to_dict().items() if f not in axes}  # defaults a key leaves out
    keys = [_key(others, _values(c, others), unnamed) or panel_field for c in configurations]
    titles = [f"{panel_field} = {_fmt_value(json.loads(value))}" for value in panel_values]
    return titles, [panel_values.index(value) for value in values], keys


def _key(fields: list[str], values: list, unnamed: dict) -> str:
    """A configuration's key in the legend, ``field=value; ...``: without the fields at their
    value in ``unnamed`` (TrainConfig's defaults but the grid axes: an LSTM's ``nonlinearity=tanh``
    beside an IRNN), unless no field is left. Still one key per configuration: of two that differ
    in a field, at least one shows it."""
    pairs = list(zip(fields, values))
    shown = [(f, v) for f, v in pairs if f not in unnamed or v != unnamed[f]] or pairs
    return "; ".join(f"{f}={_fmt_value(v)}" for f, v in shown)


def _values(configuration: dict, fields: list[str]) -> list:
    """The configuration's values of ``fields`` (varied, else as configured)."""
    return [configuration["varied"].get(name, configuration["config"].get(name)) for name in fields]


def _panels(figure, n_panels: int, n_keys: int):
    """The figure and its axes: the panels, then the key's. With ``n_panels`` 0, two panels
    (against the step, against wall time); else ``n_panels``, at most 3 a row; all share y."""
    columns = 2 if n_panels == 0 else min(n_panels, 3)
    rows = 1 if n_panels == 0 else -(-n_panels // 3)
    fig = figure((11, 4.5 * rows + 0.2 * n_keys))
    grid = fig.add_gridspec(rows + 1, columns, height_ratios=[4.5] * rows + [0.2 * n_keys + 0.4])
    panels = []
    for i in range(max(n_panels, 2)):
        panels.append(fig.add_subplot(grid[i // columns, i % columns], sharey=panels[0] if panels else None))
    key = fig.add_subplot(grid[rows, :])
    key.axis("off")
    return fig, panels + [key]


def _finish(axes: list, sweep: dict, baselines: set[float], wall_time: bool) -> None:
    """Target and baselines, log y, labels, the key (the last axes) with every labelled line."""
    *panels, key = axes
    for i, ax in enumerate(panels):
        if sweep["target"] is not None:
            ax.axhline(sweep["target"], color="grey", linestyle=":", linewidth=1)
        for baseline in sorted(baselines):
            ax.axhline(baseline, color="grey", linestyle="--", linewidth=1)
        ax.set_yscale("log")
        ax.set_xlabel("wall time (s)" if wall_time and i == 1 else "step")
        ax.grid(True, which="major", alpha=0.3)
    panels[0].set_ylabel("validation loss")
    labelled = {}
    for ax in panels:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labelled.setdefault(label, handle)
    if labelled:
        seeds = ", ".join(str(s) for s in sweep["seeds"])
        key.legend(list(labelled.values()), list(labelled), loc="center", fontsize=8, frameon=False,
                   title=f"configuration; line style: seed {seeds}", title_fontsize=8)


def _draw_runs(sweep: dict, out, axes_of: list, colours: list, labels: list[str]) -> tuple[set[float], bool]:
    """Each run's validation curve on the axes of its configuration (``axes_of``: per
    configuration, pairs of axes and x, ``step`` or ``elapsed``), in its colour, labelled once; a
    diverged run's step marked ``x`` at the top of its step axes. Returns the baselines of the
    runs done and whether any run diverged."""
    baselines, labelled, diverged = set(), set(), False
    for configuration, place, colour, label in zip(sweep["configurations"], axes_of, colours, labels):
        for seed, style in zip(sweep["seeds"], itertools.cycle(SEED_STYLES)):
            run = run_folder(out, configuration["name"], seed)
            status = run_status(run)
            if status == "done":
                baselines.add(_read_json(run / SUMMARY_FILE)["baseline_loss"])
            records = [r for r in read_history(run) if r.get("val_loss") is not None]
            for ax, x in place if records else ():
                ax.plot([r[x] for r in records], [r["val_loss"] for r in records], color=colour, linestyle=style,
                        linewidth=1.2, label=None if label in labelled else label)
                labelled.add(label)
            if status == "diverged":
                diverged, step = True, _read_json(run / DIVERGED_FILE)["step"]
                for ax in (ax for ax, x in place if x == "step"):
                    _mark_divergence(ax, step, colour, None if label in labelled else label)
                    labelled.add(label)
    return baselines, diverged


def _mark_divergence(ax, step: int, colour, label: str | None) -> None:
    """An ``x`` at ``step``, at the top of ``ax`` (whatever its y range)."""
    ax.plot([step], [0.97], transform=ax.get_xaxis_transform(), marker="x", color=colour, linestyle="none",
            clip_on=False, label=label)


def write_report(out) -> list[Path]:
    """Write, into the sweep folder ``out``, ``OUT/results.csv`` (:func:`collect`),
    ``OUT/results.md`` (:func:`markdown`) and ``OUT/results.png`` (:func:`plot_sweep`; needs
    matplotlib); returns their paths."""
    out = Path(out)
    csv_path, md_path, png_path = (out / name for name in RESULT_FILES)
    rows = collect(out)
    write_csv(rows, csv_path)
    md_path.write_text(markdown(read_sweep(out), rows), encoding="utf-8")
    plot_sweep(out, png_path)
    return [csv_path, md_path, png_path]
