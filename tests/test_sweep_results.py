"""The results of a sweep: rows, tables and curves read from sweep folders whose runs the real
Trainer wrote (sweep.json written here per the sweep's contract), and the benchmark sweep specs."""
import csv
import json
import math
import statistics
import traceback
from pathlib import Path

import pytest
from conftest import TINY

from numpy_rnn.sweep_results import (
    DIVERGED_FILE,
    ERROR_FILE,
    FORMAT,
    SWEEP_FILE,
    _layout,
    collect,
    markdown,
    read_history,
    read_sweep,
    run_folder,
    summarize,
    write_report,
)
from numpy_rnn.train import CHECKPOINT_FILE, NonFiniteError, TrainConfig, Trainer, train

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- sweep folders
def write_sweep_json(out: Path, base: dict, configurations: dict[str, dict], seeds, target) -> None:
    """sweep.json per the contract: each configuration is base + its varied fields."""
    entries = []
    for name, varied in configurations.items():
        config = TrainConfig(**{**base, **varied}).to_dict()
        del config["out"], config["seed"]
        entries.append({"name": name, "varied": varied, "config": config})
    out.mkdir(parents=True, exist_ok=True)
    sweep = {"format": FORMAT, "spec": {"seeds": seeds, "target": target, "base": base}, "seeds": seeds,
             "target": target, "configurations": entries}
    (out / SWEEP_FILE).write_text(json.dumps(sweep), encoding="utf-8")


def run_config(out: Path, base: dict, varied: dict, name: str, seed: int) -> TrainConfig:
    return TrainConfig(**{**base, **varied, "seed": seed, "out": str(run_folder(out, name, seed))})


def diverge_like_the_sweep(config: TrainConfig) -> tuple[int, str]:
    """Train ``config`` until it diverges; write diverged.json as the sweep does; returns the step
    and the error's line."""
    with pytest.raises(NonFiniteError) as caught:
        train(config)
    line = f"NonFiniteError: {caught.value}"
    (Path(config.out) / DIVERGED_FILE).write_text(json.dumps({"step": caught.value.step, "error": line}), encoding="utf-8")
    return caught.value.step, line


def fail_like_the_sweep(config: TrainConfig) -> str:
    """Train ``config`` 20 steps, damage its checkpoint, resume it; write error.txt as the sweep
    does; returns its first line."""
    Trainer(config).run(until=20)
    (Path(config.out) / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(Exception) as caught:
        Trainer.resume(config.out)
    last = traceback.format_exception_only(caught.value)[-1].strip()
    text = last + "\n\n" + "".join(traceback.format_exception(caught.value))
    (Path(config.out) / ERROR_FILE).write_text(text, encoding="utf-8")
    return last


#: the finished sweep: a grid over the cell, 2 seeds, every run done
DONE_BASE = dict(TINY, lr=0.01)
DONE_CONFIGURATIONS = {"cell=gru": {"cell": "gru"}, "cell=rnn": {"cell": "rnn"}}
DONE_TARGET = 0.335


@pytest.fixture(scope="module")
def done_sweep(tmp_path_factory):
    """A sweep folder of 4 finished runs; returns it and each run's (summary, history) by (name, seed)."""
    out = tmp_path_factory.mktemp("done")
    write_sweep_json(out, DONE_BASE, DONE_CONFIGURATIONS, [0, 1], DONE_TARGET)
    runs = {}
    for name, varied in DONE_CONFIGURATIONS.items():
        for seed in (0, 1):
            trainer, summary = train(run_config(out, DONE_BASE, varied, name, seed))
            runs[name, seed] = summary, trainer.history
    return out, runs


#: the partly finished sweep: SGD on a ReLU RNN without clipping; lr 1e6 diverges at step 3
PARTIAL_BASE = dict(TINY, cell="rnn", nonlinearity="relu", optimizer="sgd", clip_norm=0.0)
PARTIAL_CONFIGURATIONS = {"lr=0.01": {"lr": 0.01}, "lr=1000000.0": {"lr": 1e6}}


@pytest.fixture(scope="module")
def partial_sweep(tmp_path_factory):
    """lr=0.01: seed 0 done, seed 1 stopped at step 20, seed 2 failed (its checkpoint damaged);
    lr=1e6: seeds 0 and 1 diverged, seed 2 not started. Returns the folder, the done run's summary,
    the diverged runs' (step, error line) and the failed run's error line."""
    out = tmp_path_factory.mktemp("partial")
    write_sweep_json(out, PARTIAL_BASE, PARTIAL_CONFIGURATIONS, [0, 1, 2], 0.3)
    _, summary = train(run_config(out, PARTIAL_BASE, {"lr": 0.01}, "lr=0.01", 0))
    assert Trainer(run_config(out, PARTIAL_BASE, {"lr": 0.01}, "lr=0.01", 1)).run(until=25) is None
    error = fail_like_the_sweep(run_config(out, PARTIAL_BASE, {"lr": 0.01}, "lr=0.01", 2))
    assert error.startswith("numpy_rnn.checkpoint.CheckpointError: ")
    divergences = [diverge_like_the_sweep(run_config(out, PARTIAL_BASE, {"lr": 1e6}, "lr=1000000.0", seed))
                   for seed in (0, 1)]
    assert all(step == 3 and line.startswith("NonFiniteError: non-finite loss or gradient at step 3")
               for step, line in divergences)
    return out, summary, divergences, error


# ----------------------------------------------------------------------------- collect
def test_collect_gives_one_row_per_run_with_the_summary_and_the_first_step_below_target(done_sweep):
    out, runs = done_sweep
    rows = collect(out)
    assert [(r["configuration"], r["seed"]) for r in rows] == list(runs)
    for row in rows:
        summary, history = runs[row["configuration"], row["seed"]]
        first = [r["step"] for r in history if r["val_loss"] < DONE_TARGET]
        assert row == {"configuration": row["configuration"], "cell": DONE_CONFIGURATIONS[row["configuration"]]["cell"],
                       "seed": row["seed"], "status": "done", "test_loss": summary["test_loss"],
                       "baseline_loss": summary["baseline_loss"], "ratio_to_baseline": summary["ratio_to_baseline"],
                       "steps_done": 40, "first_step_below_target": first[0] if first else None,
                       "seconds": summary["seconds"], "diverged_at": None, "error": None}
    # the target makes a difference between the runs: some get below it, at different steps, some never
    assert len({r["first_step_below_target"] for r in rows}) > 2 and None in {r["first_step_below_target"] for r in rows}


def test_collect_reads_a_partly_finished_sweep(partial_sweep):
    out, summary, divergences, error = partial_sweep
    rows = {(r["configuration"], r["seed"]): r for r in collect(out)}
    assert {key: r["status"] for key, r in rows.items()} == {
        ("lr=0.01", 0): "done", ("lr=0.01", 1): "unfinished", ("lr=0.01", 2): "failed",
        ("lr=1000000.0", 0): "diverged", ("lr=1000000.0", 1): "diverged", ("lr=1000000.0", 2): "missing"}
    assert rows["lr=0.01", 0]["test_loss"] == summary["test_loss"]
    unfinished = rows["lr=0.01", 1]  # the progress so far: its last evaluation
    history = read_history(run_folder(out, "lr=0.01", 1))
    assert [r["step"] for r in history] == [10, 20]
    assert (unfinished["steps_done"], unfinished["seconds"], unfinished["test_loss"]) == (20, history[-1]["elapsed"], None)
    diverged = rows["lr=1000000.0", 0]  # before its first evaluation
    assert (diverged["diverged_at"], diverged["error"]) == divergences[0]
    assert diverged["test_loss"] is None and diverged["steps_done"] is None
    failed = rows["lr=0.01", 2]
    assert (failed["error"], failed["diverged_at"], failed["test_loss"], failed["steps_done"]) == (error, None, None, 20)
    missing = rows["lr=1000000.0", 2]
    assert all(missing[key] is None for key in ("test_loss", "steps_done", "seconds", "first_step_below_target",
                                                "diverged_at", "error"))
    assert rows["lr=1000000.0", 2]["lr"] == 1e6


def test_without_a_target_there_is_no_target_column(tmp_path):
    write_sweep_json(tmp_path, TINY, {"base": {}}, [0], None)
    train(run_config(tmp_path, TINY, {}, "base", 0))
    [row] = collect(tmp_path)
    assert "first_step_below_target" not in row and row["status"] == "done"
    table = markdown(read_sweep(tmp_path), [row])
    assert table.splitlines()[0] == "| configuration | runs done | test loss | % of baseline | wall time (s) |"
    assert table.splitlines()[2].startswith("| base | 1/1 | ")


def test_a_run_that_failed_before_writing_its_config_is_failed(tmp_path):
    write_sweep_json(tmp_path, TINY, {"base": {}}, [3], None)
    run = run_folder(tmp_path, "base", 3)
    run.mkdir(parents=True)
    (run / ERROR_FILE).write_text("MemoryError: out of memory\n\nTraceback ...\n", encoding="utf-8")
    [row] = collect(tmp_path)
    assert (row["seed"], row["status"], row["error"], row["steps_done"]) == (3, "failed", "MemoryError: out of memory", None)


def test_a_metrics_line_cut_short_at_the_end_is_left_out_and_one_in_the_middle_is_an_error(tmp_path):
    rows = [{"step": 10, "val_loss": 0.5}, {"step": 20, "val_loss": 0.4}]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 30, "val_l', encoding="utf-8")
    assert read_history(tmp_path) == rows
    path.write_text(json.dumps(rows[0]) + '\n{"step": 2\n' + json.dumps(rows[1]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2 is not JSON"):
        read_history(tmp_path)
    assert read_history(tmp_path / "nowhere") == []


def test_a_folder_without_sweep_json_or_of_another_format_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^read_sweep: .* is not a sweep folder: it has no sweep.json"):
        collect(tmp_path)
    (tmp_path / SWEEP_FILE).write_text(json.dumps({"format": "numpy_rnn.sweep/9"}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"expected .*sweep.json of format 'numpy_rnn.sweep/1', got 'numpy_rnn.sweep/9'"):
        collect(tmp_path)
    (tmp_path / SWEEP_FILE).write_text(json.dumps({"format": FORMAT, "seeds": [0], "target": None,
                                                   "configurations": [{"name": "base"}]}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"expected every configuration .* to have name, varied and config"):
        collect(tmp_path)


def test_a_run_folder_of_another_configuration_is_refused_naming_the_fields(tmp_path):
    write_sweep_json(tmp_path, TINY, {"base": {}}, [0], None)
    train(TrainConfig(**{**TINY, "hidden_size": 4, "lr": 0.01, "out": str(run_folder(tmp_path, "base", 0))}))
    with pytest.raises(ValueError, match=r"^collect: .* holds a run of another configuration than sweep.json's 'base' seed 0 "
                                         r"\(fields that differ: hidden_size, lr\); rerun the sweep with --force"):
        collect(tmp_path)


# ----------------------------------------------------------------------------- the tables
def test_the_median_first_step_counts_a_run_that_never_got_there_as_infinitely_late():
    rows = [{"configuration": name, "seed": seed, "status": "done", "test_loss": loss, "ratio_to_baseline": 6 * loss,
             "seconds": 1.0, "first_step_below_target": step}
            for name, seed, loss, step in [("a", 0, 0.005, 500), ("a", 1, 0.02, None), ("a", 2, 0.001, 750),
                                           ("b", 0, 0.005, 500), ("b", 1, 0.02, None), ("b", 2, 0.02, None)]]
    rows.append({**rows[-1], "seed": 3, "status": "unfinished", "test_loss": None, "ratio_to_baseline": None,
                 "seconds": 0.5, "first_step_below_target": 250})  # not done: left out of the numbers
    a, b = summarize(rows, 0.01)
    assert (a["median_first_step"], a["below_target"], a["done"], a["runs"]) == (750, 2, 3, 3)
    assert (b["median_first_step"], b["below_target"], b["done"], b["unfinished"], b["runs"]) == (math.inf, 1, 3, 1, 4)
    assert a["test_loss"] == pytest.approx((statistics.fmean([0.005, 0.02, 0.001]), statistics.stdev([0.005, 0.02, 0.001])))
    assert b["seconds"] == 1.0


def _table(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]


def test_the_markdown_table_gives_mean_and_std_over_seeds_per_configuration(done_sweep):
    out, runs = done_sweep
    text = markdown(read_sweep(out), collect(out))
    header, rule, *body = _table(text)
    assert header == ["cell", "runs done", "test loss", "% of baseline", "test loss < 0.335",
                      "first step, val. loss < 0.335 (median)", "wall time (s)"]
    assert [row[0] for row in body] == ["gru", "rnn"]
    for row, name in zip(body, DONE_CONFIGURATIONS):
        summaries = [runs[name, seed][0] for seed in (0, 1)]
        tests = [s["test_loss"] for s in summaries]
        ratios = [100 * s["ratio_to_baseline"] for s in summaries]
        firsts = [next((r["step"] for r in runs[name, seed][1] if r["val_loss"] < DONE_TARGET), math.inf) for seed in (0, 1)]
        median = statistics.median(firsts)
        assert row[1:] == ["2/2", f"{statistics.fmean(tests):.3g} ± {statistics.stdev(tests):.2g}",
                           f"{statistics.fmean(ratios):.3g} ± {statistics.stdev(ratios):.2g}",
                           f"{sum(t < DONE_TARGET for t in tests)}/2", "never" if median == math.inf else f"{median:.6g}",
                           f"{statistics.fmean(s['seconds'] for s in summaries):.3g}"]
    assert text.rstrip().endswith("4 of 4 runs done.")


def test_configurations_named_by_their_runs_entries_head_the_markdown_rows(done_sweep):
    out, _ = done_sweep
    sweep = read_sweep(out)
    named = {**sweep, "spec": {**sweep["spec"], "runs": [{"name": "cell=gru", "cell": "gru"}, {"cell": "rnn"}]}}
    header, _, *body = _table(markdown(named, collect(out)))
    assert header[:3] == ["configuration", "cell", "runs done"]
    assert [row[:2] for row in body] == [["cell=gru", "gru"], ["cell=rnn", "rnn"]]


def test_the_markdown_of_a_partly_finished_sweep_counts_the_runs_and_names_the_failures(partial_sweep):
    out, summary, _, error = partial_sweep
    text = markdown(read_sweep(out), collect(out))
    header, _, done, diverged = _table(text)
    assert header[-2:] == ["diverged (at step)", "wall time (s)"]
    assert done[:3] == ["0.01", "1/3", f"{summary['test_loss']:.3g}"] and done[-2] == "0/3"  # one run done: no std
    assert diverged == ["1000000.0", "0/3", "-", "-", "0/3", "-", "2/3 (3, 3)", "-"]
    assert "Diverged: runs stopped by a non-finite loss or gradient, and the step" in text
    assert text.rstrip().splitlines()[-1] == (f"1 of 6 runs done; 2 diverged, 1 unfinished, 1 failed, 1 missing. Failed: "
                                              f"lr=0.01 seed 2: {error}.")


# ----------------------------------------------------------------------------- the report
def test_write_report_writes_the_csv_the_markdown_and_the_curves(partial_sweep, monkeypatch):
    from matplotlib.figure import Figure
    saved, savefig = {}, Figure.savefig

    def spy(fig, path, **kw):
        saved["axes"] = fig.axes
        return savefig(fig, path, **kw)

    monkeypatch.setattr(Figure, "savefig", spy)
    out, summary, _, _ = partial_sweep
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    paths = write_report(out)
    assert paths == [out / "results.csv", out / "results.md", out / "results.png"]
    assert {p: p.read_bytes() for p in before} == before  # nothing else touched
    with open(paths[0], encoding="utf-8", newline="") as f:
        table = list(csv.DictReader(f))
    rows = collect(out)
    assert [list(r) for r in table] == [list(rows[0])] * 6
    assert [{k: str(v) if v is not None else "" for k, v in r.items()} for r in rows] == table
    assert paths[1].read_text(encoding="utf-8") == markdown(read_sweep(out), rows)
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    by_step, by_time, key = saved["axes"]
    lines = by_step.get_lines()
    # lr=0.01: seed 0 (4 evaluations), seed 1 and the failed seed 2 (2 evaluations); the diverged runs never evaluated
    assert [(list(line.get_xdata()), line.get_linestyle()) for line in lines if line.get_color() == "C0"] \
        == [([10, 20, 30, 40], "-"), ([10, 20], "--"), ([10, 20], "-.")]
    assert [text.get_text() for text in key.get_legend().get_texts()] == ["lr=0.01", "lr=1000000.0"]
    diverged = [line for line in lines if line.get_color() == "C1"]  # no evaluation: only their step, at the top
    assert [(list(line.get_xdata()), list(line.get_ydata()), line.get_marker()) for line in diverged] \
        == [([3], [0.97], "x")] * 2
    assert [line.get_linestyle() for line in lines if list(line.get_ydata()) == [0.3, 0.3]] == [":"]
    assert [line.get_linestyle() for line in lines if list(line.get_ydata()) == [summary["baseline_loss"]] * 2] == ["--"]
    assert by_step.get_yscale() == "log" and by_time.get_xlabel() == "wall time (s)"
    history = read_history(run_folder(out, "lr=0.01", 0))
    assert list(by_time.get_lines()[0].get_xdata()) == [r["elapsed"] for r in history]


def test_write_report_of_a_finished_sweep_has_one_colour_per_configuration(done_sweep, monkeypatch):
    from matplotlib.figure import Figure
    colours = {}
    savefig = Figure.savefig

    def spy(fig, path, **kw):
        for line in fig.axes[0].get_lines():
            colours.setdefault(line.get_color(), []).append(line.get_linestyle())
        return savefig(fig, path, **kw)

    monkeypatch.setattr(Figure, "savefig", spy)
    out, _ = done_sweep
    write_report(out)
    assert colours["C0"] == ["-", "--"] and colours["C1"] == ["-", "--"]


def test_panels_draw_one_panel_per_value_with_one_colour_per_other_configuration(tmp_path, monkeypatch):
    from matplotlib.figure import Figure
    saved, savefig = {}, Figure.savefig

    def spy(fig, path, **kw):
        saved["axes"], saved["title"] = fig.axes, fig._suptitle.get_text()
        return savefig(fig, path, **kw)

    monkeypatch.setattr(Figure, "savefig", spy)
    configurations = {f"cell={cell},seq_len={T}": {"cell": cell, "seq_len": T} for T in (8, 5) for cell in ("gru", "rnn")}
    write_sweep_json(tmp_path, TINY, configurations, [0], None)
    sweep = json.loads((tmp_path / SWEEP_FILE).read_text())
    (tmp_path / SWEEP_FILE).write_text(json.dumps({**sweep, "spec": {**sweep["spec"], "panels": "seq_len"}}))
    for name, varied in configurations.items():
        train(run_config(tmp_path, TINY, varied, name, 0))
    write_report(tmp_path)
    *panels, key = saved["axes"]
    assert [ax.get_title() for ax in panels] == ["seq_len = 5", "seq_len = 8"]  # numbers ascending, not in spec order
    for ax in panels:  # the same colour for the same cell in every panel
        assert [line.get_color() for line in ax.get_lines() if list(line.get_xdata()) == [10, 20, 30, 40]] == ["C0", "C1"]
        assert ax.get_xlabel() == "step" and ax.get_yscale() == "log"
    assert [text.get_text() for text in key.get_legend().get_texts()] == ["cell=gru", "cell=rnn"]
    assert "x: diverged" not in saved["title"]


def test_panel_keys_leave_out_defaults_that_are_no_grid_axis():
    """[[runs]] of different cells: an LSTM's unused nonlinearity=tanh and init=default stay out
    of its key, a grid axis at its default stays in, and a configuration at every default keeps
    its whole key."""
    def sweep(spec, varied_of):
        return {"spec": {"panels": "seq_len", **spec},
                "configurations": [{"name": f"c{k}", "varied": varied, "config": {}} for k, varied in enumerate(varied_of)]}

    irnn = {"seq_len": 5, "cell": "rnn", "nonlinearity": "relu", "init": {"R": "identity"}}
    lstm = {"seq_len": 5, "cell": "lstm", "nonlinearity": "tanh", "init": {}}
    assert _layout(sweep({}, [irnn, lstm]))[2] == ["cell=rnn; nonlinearity=relu; init=R=identity", "cell=lstm"]
    assert _layout(sweep({"grid": {"nonlinearity": ["relu", "tanh"]}}, [irnn, lstm]))[2] == [
        "cell=rnn; nonlinearity=relu; init=R=identity", "cell=lstm; nonlinearity=tanh"]
    at_defaults = {"seq_len": 8, "lr": 0.001, "steps": 1000}
    assert _layout(sweep({}, [at_defaults, {"seq_len": 8, "lr": 0.1, "steps": 1000}]))[2] == ["lr=0.001; steps=1000", "lr=0.1"]


# ----------------------------------------------------------------------------- the benchmark specs
@pytest.mark.parametrize("group, names, target", [
    ("memory", ["memory-t20", "memory-t20-nowarmup", "memory-t20-h32", "memory-t20-h32-b32", "memory-t20-demo",
                "memory-t20-demo-20k"], 0.01 / 3),
    ("adding", ["adding-irnn", "adding-irnn-paper-init", "adding-tanh", "adding-lstm"], 0.01),
])
def test_the_results_specs_name_docs_results_experiments(group, names, target):
    """The specs of docs/RESULTS.md load (the sweep's own load_spec), with its experiment names,
    seeds 0 1 2 and its targets (1% of the memory task's baseline 1/3; the adding problem's 0.01)."""
    from numpy_rnn.sweep import load_spec

    spec = load_spec(ROOT / "benchmarks" / "sweeps" / f"{group}.toml")
    assert [c.name for c in spec.configurations()] == names
    assert list(spec.seeds) == [0, 1, 2] and spec.target == pytest.approx(target, rel=1e-15)
    assert {c.config["task"] for c in spec.configurations()} == {group}


def test_the_demo_spec_is_a_grid_over_the_cells():
    from numpy_rnn.sweep import load_spec

    spec = load_spec(ROOT / "benchmarks" / "sweeps" / "demo.toml")
    assert [c.name for c in spec.configurations()] == ["cell=rnn", "cell=lstm", "cell=gru"]
    assert {c.config["steps"] for c in spec.configurations()} == {600}  # seconds, not minutes
