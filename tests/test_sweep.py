"""Sweeps on a real Dask cluster: equal to the same runs one by one, a worker killed mid-run,
Ctrl-C and rerun, changed specs, bad specs refused before anything runs."""
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from numpy_rnn.checkpoint import load_checkpoint
from numpy_rnn.cli import main
from numpy_rnn.sweep import SweepSpecError, load_spec, run_one, run_sweep
from numpy_rnn.train import LOCK_FILE, TrainConfig, Trainer, lock_run, train

distributed = pytest.importorskip("distributed")

#: a tiny run of the memory task (well under a second), checkpointed every 10 steps
BASE = """
[base]
task = "memory"
hidden_size = 8
batch_size = 16
steps = {steps}
eval_every = {eval_every}
eval_size = 64
checkpoint_every = 10
"""


def _spec(tmp_path, text: str, *, steps: int = 40, eval_every: int = 10, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text + BASE.format(steps=steps, eval_every=eval_every), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def scheduler():
    """The address of a LocalCluster of 2 single-threaded worker processes."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster:
        yield cluster.scheduler_address


def _rows(folder: Path) -> list[dict]:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in rows]


def _summary(folder: Path) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    return {k: v for k, v in summary.items() if k not in ("seconds", "checkpoint", "environment")}  # BLAS threads differ


def _assert_same_run(folder: Path, reference: Path) -> None:
    """Summaries but the clock, metric rows but the clock, final weights and optimizer state exactly."""
    assert _summary(folder) == _summary(reference)
    assert _rows(folder) == _rows(reference)
    arrays, _ = load_checkpoint(folder / "checkpoint.ckpt")
    expected, _ = load_checkpoint(reference / "checkpoint.ckpt")
    assert arrays.keys() == expected.keys()
    assert all(np.array_equal(arrays[k], expected[k]) for k in expected), "final weights differ"


def _assert_equal_to_runs_one_by_one(spec, out: Path, tmp_path: Path) -> None:
    for configuration in spec.configurations():
        for seed in spec.seeds:
            reference = configuration.train_config(tmp_path / "one-by-one", seed)
            train(reference)
            _assert_same_run(out / configuration.name / f"seed{seed}", Path(reference.out))


# ----------------------------------------------------------------------------- on the cluster
def test_four_runs_on_two_workers_equal_the_same_runs_one_by_one_and_a_rerun_skips_them(scheduler, tmp_path, capsys):
    spec = load_spec(_spec(tmp_path, 'seeds = [0, 1]\ntarget = 0.3\n[grid]\ncell = ["gru", "lstm"]\n'))
    out = tmp_path / "sweep"
    ended = []
    result = run_sweep(spec, out, scheduler=scheduler, progress=False,
                       on_result=lambda folder, result: ended.append((folder, result["status"])))
    assert len(result["done"]) == 4 and not result["skipped"] and not result["failed"]
    assert sorted(ended) == sorted((folder, "done") for folder in result["done"])  # as each ended
    assert [Path(p).name for p in result["report"]] == ["results.csv", "results.md", "results.png"]
    record = json.loads((out / "sweep.json").read_text())
    assert record["format"] == "numpy_rnn.sweep/1" and record["seeds"] == [0, 1] and record["target"] == 0.3
    assert [(c["name"], c["varied"]) for c in record["configurations"]] == [("cell=gru", {"cell": "gru"}),
                                                                            ("cell=lstm", {"cell": "lstm"})]
    assert record["configurations"][0]["config"]["hidden_size"] == 8 and "seed" not in record["configurations"][0]["config"]
    _assert_equal_to_runs_one_by_one(spec, out, tmp_path)
    assert {p.name for p in (out / "cell=gru" / "seed0").iterdir()} == {
        "config.json", "metrics.jsonl", "checkpoint.ckpt", "summary.json", "loss.png", LOCK_FILE}

    before = {p: p.read_bytes() for p in out.glob("*/seed*/metrics.jsonl")}
    again = run_sweep(spec, out, scheduler=scheduler, progress=False)
    assert len(again["skipped"]) == 4 and not again["done"]
    assert {p: p.read_bytes() for p in out.glob("*/seed*/metrics.jsonl")} == before
    assert main(["sweep", "--report", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"wrote {out / name}" for name in ("results.csv", "results.md",
                                                                                     "results.png")]


def _started(run: Path) -> float:
    """When a finished run started training: its summary's time less its training seconds."""
    return (run / "summary.json").stat().st_mtime - json.loads((run / "summary.json").read_text())["seconds"]


def test_runs_start_in_the_spec_order_when_a_long_run_holds_a_worker(tmp_path):
    """No run waits in a busy worker's queue while the other worker takes the runs after it."""
    names = ["long", "c", "a", "d", "b"]  # neither alphabetical nor the order of their folders
    entries = "".join(f'[[runs]]\nname = "{n}"\nsteps = {1000 if n == "long" else 10}\n' for n in names)
    out = tmp_path / "sweep"
    run_sweep(load_spec(_spec(tmp_path, "seeds = [0]\n" + entries)), out, workers=2, progress=False)
    assert sorted(names[1:], key=lambda name: _started(out / name / "seed0")) == names[1:]
    assert _started(out / "long" / "seed0") < _started(out / "a" / "seed0")


def test_a_worker_killed_mid_run_the_sweep_finishes_and_the_run_equals_an_uninterrupted_one(scheduler, tmp_path):
    spec = load_spec(_spec(tmp_path, "seeds = [3]\n", steps=800, eval_every=50))
    out = tmp_path / "sweep"
    folder = out / "base" / "seed3"
    outcome = {}
    sweep = threading.Thread(target=lambda: outcome.update(run_sweep(spec, out, scheduler=scheduler, progress=False)),
                             daemon=True)
    sweep.start()
    deadline = time.monotonic() + 60
    while not ((folder / "metrics.jsonl").is_file() and len(_rows(folder)) >= 2 and (folder / LOCK_FILE).read_text()):
        assert time.monotonic() < deadline and sweep.is_alive(), "the run never got going"
        time.sleep(0.01)
    worker = int((folder / LOCK_FILE).read_text())  # the writer holding the folder: a worker process
    with distributed.Client(scheduler) as client:
        assert worker in client.run(os.getpid).values()
    killed_at = len(_rows(folder)) * 50
    os.kill(worker, signal.SIGKILL)
    sweep.join(timeout=90)
    assert not sweep.is_alive() and outcome["done"] == [str(folder)] and not outcome["failed"]
    assert killed_at < 800
    _assert_equal_to_runs_one_by_one(spec, out, tmp_path)


def test_a_changed_spec_is_refused_naming_the_fields_and_force_redoes_only_what_changed(scheduler, tmp_path):
    first = load_spec(_spec(tmp_path, 'seeds = [0]\n[grid]\ncell = ["gru", "lstm"]\n', steps=20))
    out = tmp_path / "sweep"
    run_sweep(first, out, scheduler=scheduler, progress=False)
    more_seeds = load_spec(_spec(tmp_path, 'seeds = [0, 1]\n[grid]\ncell = ["gru", "lstm"]\n', steps=20, name="b.toml"))
    with pytest.raises(SweepSpecError, match=r"holds a sweep of another spec \(differing: seeds\)"):
        run_sweep(more_seeds, out, scheduler=scheduler, progress=False)
    result = run_sweep(more_seeds, out, scheduler=scheduler, force=True, progress=False)
    assert not result["redone"] and len(result["skipped"]) == 2 and len(result["done"]) == 2
    report_only = load_spec(_spec(tmp_path, 'seeds = [0, 1]\ntarget = 0.3\npanels = "cell"\n[grid]\ncell = ["gru", "lstm"]\n',
                                  steps=20, name="c.toml"))
    result = run_sweep(report_only, out, scheduler=scheduler, progress=False)  # no run changes: not refused
    assert not result["redone"] and len(result["skipped"]) == 4 and not result["done"]
    assert json.loads((out / "sweep.json").read_text())["target"] == 0.3
    assert "| test loss < 0.3 |" in (out / "results.md").read_text()
    written_before_a_field_existed = out / "cell=lstm" / "seed0" / "config.json"
    config = json.loads(written_before_a_field_existed.read_text())
    written_before_a_field_existed.write_text(json.dumps({k: v for k, v in config.items() if k != "train_chars"}))
    assert not run_sweep(more_seeds, out, scheduler=scheduler, force=True, progress=False)["redone"]
    longer = load_spec(_spec(tmp_path, 'seeds = [0, 1]\n[grid]\ncell = ["gru", "rnn"]\n', steps=30, name="c.toml"))
    with pytest.raises(SweepSpecError, match=r"differing: grid\.cell, base\.steps\)"):
        run_sweep(longer, out, scheduler=scheduler, progress=False)
    result = run_sweep(longer, out, scheduler=scheduler, force=True, progress=False)
    assert sorted(result["redone"]) == [str(out / "cell=gru" / f"seed{k}") for k in (0, 1)]
    assert sorted(result["done"]) == [str(out / name / f"seed{k}") for name in ("cell=gru", "cell=rnn") for k in (0, 1)]
    assert json.loads((out / "cell=gru" / "seed1" / "summary.json").read_text())["steps"] == 30
    assert json.loads((out / "cell=lstm" / "seed1" / "summary.json").read_text())["steps"] == 20  # dropped: left alone


def test_named_runs_are_matched_by_name_so_a_new_order_is_no_change(scheduler, tmp_path):
    entries = {name: f'[[runs]]\nname = "{name}"\ncell = "{cell}"\n' for name, cell in (("a", "gru"), ("b", "lstm"))}
    out = tmp_path / "sweep"
    run_sweep(load_spec(_spec(tmp_path, "seeds = [0]\n" + entries["a"] + entries["b"], steps=20)), out,
              scheduler=scheduler, progress=False)
    reordered = load_spec(_spec(tmp_path, "seeds = [0]\n" + entries["b"] + entries["a"], steps=20, name="b.toml"))
    result = run_sweep(reordered, out, scheduler=scheduler, progress=False)
    assert sorted(result["skipped"]) == [str(out / name / "seed0") for name in ("a", "b")] and not result["done"]
    changed = load_spec(_spec(tmp_path, "seeds = [0]\n" + entries["b"] + 'lr = 0.01\n[[runs]]\nname = "c"\ncell = "rnn"\n',
                              steps=20, name="c.toml"))
    with pytest.raises(SweepSpecError, match=r"\(differing: runs\[b\]\.lr added, runs\[a\] removed, runs\[c\] added\)"):
        run_sweep(changed, out, scheduler=scheduler, progress=False)


def test_a_cell_of_your_own_runs_on_the_embedded_cluster_from_the_working_directory(custom_cell, tmp_path):
    spec = load_spec(_spec(tmp_path, f'seeds = [0]\n[grid]\ncell = ["gru", "{custom_cell}"]\n', steps=20))
    out = tmp_path / "sweep"
    result = run_sweep(spec, out, workers=1, progress=False)  # its worker process starts in this directory
    assert not result["failed"] and sorted(result["done"]) == [str(out / f"cell={name}" / "seed0")
                                                                for name in ("gru", custom_cell)]
    _assert_equal_to_runs_one_by_one(spec, out, tmp_path)


def test_a_diverged_run_is_a_result_recorded_in_its_folder_and_skipped_by_a_rerun(scheduler, tmp_path, capsys):
    path = _spec(tmp_path, 'seeds = [0]\n[[runs]]\ncell = "gru"\n[[runs]]\ncell = "lstm"\nlr = 1e308\n')
    out = tmp_path / "sweep"
    command = ["sweep", str(path), "--out", str(out), "--scheduler", scheduler, "--no-progress"]
    assert main(command) == 0
    diverged = out / "cell=lstm,lr=1e+308" / "seed0"
    record = json.loads((diverged / "diverged.json").read_text())
    assert record["step"] == 2 and record["error"].startswith("NonFiniteError: non-finite loss or gradient at step 2")
    stdout, stderr = capsys.readouterr()
    gru = out / "cell=gru,lr=0.001" / "seed0"
    trained = json.loads((gru / "summary.json").read_text())
    assert sorted(stdout.splitlines()[:2]) == [
        f"diverged: {diverged}: {record['error']}",  # one line as each run ends
        f"done: {gru} (test loss {trained['test_loss']:.4g}, {trained['seconds'] / 60:.1f} min)"]
    assert f"sweep {out}: 1 runs trained, 1 diverged, 0 finished or diverged before, 0 failed" in stdout
    assert stdout.count("diverged: ") == 1 and stderr == ""
    assert not (diverged / "error.txt").exists() and not (diverged / "summary.json").exists()
    assert "| 1/1 (2) |" in (out / "results.md").read_text()
    before = {p: p.read_bytes() for p in diverged.iterdir()}
    assert main(command) == 0  # the rerun does not train it again
    assert f"sweep {out}: 0 runs trained, 0 diverged, 2 finished or diverged before, 0 failed" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in diverged.iterdir()} == before
    _spec(tmp_path, 'seeds = [0]\n[[runs]]\ncell = "gru"\n[[runs]]\ncell = "lstm"\nlr = 1e308\n', steps=30)
    assert main([*command, "--force"]) == 0  # a changed configuration: its divergence is deleted, and redone
    assert f"redone (its configuration changed): {diverged}\n" in capsys.readouterr().out
    assert json.loads((diverged / "config.json").read_text())["steps"] == 30
    assert json.loads((diverged / "diverged.json").read_text()) == record  # the same step, the same message
    finished = {p: p.read_bytes() for p in gru.iterdir() if p.name != LOCK_FILE}
    (diverged / "diverged.json").write_text(json.dumps({**record, "step": 999}))  # as an earlier version wrote it
    assert main([*command, "--retry-diverged"]) == 0  # trained again; the finished run is left alone
    assert f"redone (its configuration changed, or it had diverged): {diverged}\n" in capsys.readouterr().out
    assert json.loads((diverged / "diverged.json").read_text()) == record
    assert {p: p.read_bytes() for p in gru.iterdir() if p.name != LOCK_FILE} == finished


def test_a_failed_run_is_named_with_exit_1_and_its_error_in_its_folder(scheduler, tmp_path, capsys):
    path = _spec(tmp_path, 'seeds = [0]\n[grid]\ncell = ["gru", "lstm"]\n')
    out = tmp_path / "sweep"
    command = ["sweep", str(path), "--out", str(out), "--scheduler", scheduler, "--no-progress"]
    assert main(command) == 0
    failed = out / "cell=lstm" / "seed0"  # its last checkpoint damaged: the rerun cannot resume it
    (failed / "summary.json").unlink()
    (failed / "checkpoint.ckpt").write_bytes(b"not a checkpoint")
    capsys.readouterr()
    assert main(command) == 1
    line = (failed / "error.txt").read_text().split("\n\nTraceback (most recent call last):\n")[0]
    assert line.startswith("CheckpointError: ")
    stdout, stderr = capsys.readouterr()
    assert f"sweep {out}: 0 runs trained, 0 diverged, 1 finished or diverged before, 1 failed" in stdout
    assert stderr == f"numpy-rnn sweep: error: 1 run(s) failed (error.txt in each): {failed}: {line}\n"
    assert "1 of 2 runs done; 1 failed. Failed: cell=lstm seed 0: CheckpointError: " in (out / "results.md").read_text()


# ----------------------------------------------------------------------------- the command line
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_ctrl_c_or_kill_mid_sweep_exits_130_and_the_rerun_completes_with_identical_results(tmp_path, stop):
    # runs long enough (seconds) that the signal, sent at a run's first evaluation, finds them running
    # a long way (990 steps) before their next checkpoint, at step 1000: the sweep waits for it
    path = _spec(tmp_path, 'seeds = [0]\n[grid]\ncell = ["gru", "lstm"]\ncheckpoint_every = [1000]\n', steps=2000,
                 eval_every=100)
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "numpy_rnn", "sweep", str(path), "--out", str(out), "--workers", "2", "--no-progress"]
    # Ctrl-C as from a terminal; kill as a background job is stopped (a shell starts it, as CI or make & do,
    # with SIGINT ignored)
    started_as = signal.SIG_DFL if stop == signal.SIGINT else signal.SIG_IGN
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, started_as))
    deadline = time.monotonic() + 60
    while not any(_rows(p.parent) for p in out.glob("*/seed0/metrics.jsonl")):
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.01)
    process.send_signal(stop)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "stopping 2 run(s) at their next checkpoint (Ctrl-C again: at once, back to the last)" in stderr
    assert "interrupted: the runs are stopped at their last checkpoint; rerun the same command" in stderr
    reached = [load_checkpoint(p / "checkpoint.ckpt")[1]["step"] for p in out.glob("*/seed0")]  # the runs started
    assert reached and set(reached) == {1000}
    assert len(list(out.glob(".stop-*"))) == 1  # what told the runs to stop at their next checkpoint
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"sweep {out}: " in rerun.stdout and "0 failed" in rerun.stdout and not list(out.glob(".stop-*"))
    _assert_equal_to_runs_one_by_one(load_spec(path), out, tmp_path)


BAD_SPECS = [
    ("seeds = [0]\n[base]\ncolour = 1\n", r"\[base\] colour: TrainConfig: unknown field 'colour'; valid names: task, "),
    ("seeds = [0]\n[grid]\nlr = []\n", r"\[grid\] lr: expected a non-empty list of values, got \[\]"),
    ("seeds = [0]\n[grid]\nlr = 0.1\n", r"\[grid\] lr: expected a non-empty list of values, got 0.1"),
    ("seeds = [0]\n[base]\nhidden_size = \"big\"\n", r"\[base\] hidden_size: .*expected hidden_size .*'big'"),
    ('seeds = [0]\n[grid]\nlr = [0.1, "fast"]\n', r"\[grid\] lr\[1\]: .*expected lr to be a real number, got str 'fast'"),
    ('seeds = [0]\n[[runs]]\ncell = "lstm"\nnonlinearity = "relu"\n',
     r"configuration \{'cell': 'lstm', 'nonlinearity': 'relu'\}: TrainConfig: nonlinearity applies with cell rnn only"),
    ("seeds = [0, 1.5]\n", r"seeds: expected integers >= 0, got 1.5 in \[0, 1.5\]"),
    ("seeds = [0, 0]\n", r"seeds: expected each seed once, got \[0, 0\]"),
    ("seeds = []\n", r"seeds: expected a non-empty list of integers >= 0, got \[\]"),
    ("[base]\ntask = \"adding\"\n", r"seeds: expected a non-empty list of integers >= 0, got nothing"),
    ("seeds = [0]\nseed = 1\n", r"seed: unknown key; expected seeds, target, panels, base, grid, runs"),
    ('seeds = [0]\npanels = "lr"\n[grid]\ncell = ["gru", "lstm"]\n',
     r"panels: expected one of the fields the configurations vary \(cell\), got 'lr'"),
    ("seeds = [0]\n[base]\nout = \"x\"\n", r"\[base\] out: the sweep sets out and seed itself"),
    ("seeds = [0]\ntarget = -1\n", r"target: expected a number > 0, got -1"),
    ('seeds = [0]\n[[runs]]\ncell = "gru"\n[[runs]]\ncell = "gru"\n',
     r"configurations: expected different configurations, got number 1 and 2 the same"),
    ("seeds = [0\n", r"not valid TOML"),
    ('seeds = [0]\n[[runs]]\nname = "a/b"\n', r"\[\[runs\]\] entry 1 name: expected a folder name \(text without "
                                              r"'/', not starting with '\.'\), got 'a/b'"),
    ('seeds = [0]\n[[runs]]\nname = 3\n', r"\[\[runs\]\] entry 1 name: expected a folder name .*got 3"),
    ('seeds = [0]\n[[runs]]\nname = "x"\ncell = "gru"\n[[runs]]\nname = "x"\ncell = "rnn"\n',
     r"configurations: expected different configurations, got number 1 and 2 the same \(x\)"),
]


@pytest.mark.parametrize("text, message", BAD_SPECS)
def test_a_bad_spec_is_refused_before_anything_runs(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SweepSpecError, match=rf"^sweep spec '{path}': {message}"):
        load_spec(path)


def test_a_bad_spec_on_the_command_line_is_one_line_and_nothing_is_written(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("seeds = [0]\n[grid]\nlr = []\n", encoding="utf-8")
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == (f"numpy-rnn sweep: error: sweep spec '{path}': [grid] lr: expected a non-empty "
                                       f"list of values, got []\n")
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        main(["sweep", str(path)])
    assert "expected SPEC.toml and --out DIR (or --report DIR)" in capsys.readouterr().err


def test_names_are_the_fields_that_differ_and_safe_folder_names(tmp_path):
    spec = load_spec(_spec(tmp_path, 'seeds = [0]\n[grid]\nlr = [0.001, 0.003]\n[[runs]]\ncell = "rnn"\n'
                                     'nonlinearity = "relu"\ninit = {R = "identity", b = "zeros"}\n'))
    assert [c.name for c in spec.configurations()] == [
        "lr=0.001,cell=lstm,nonlinearity=tanh,init=default", "lr=0.003,cell=lstm,nonlinearity=tanh,init=default",
        "lr=0.001,cell=rnn,nonlinearity=relu,init=R:identity;b:zeros"]
    assert spec.configurations()[2].varied == {"lr": 0.001, "cell": "rnn", "nonlinearity": "relu",
                                               "init": {"R": "identity", "b": "zeros"}}
    assert [c.name for c in load_spec(_spec(tmp_path, "seeds = [0]\n")).configurations()] == ["base"]
    named = load_spec(_spec(tmp_path, 'seeds = [0]\n[[runs]]\nname = "irnn"\ncell = "rnn"\n[[runs]]\ncell = "gru"\n'))
    assert [c.name for c in named.configurations()] == ["irnn", "cell=gru"]
    assert named.configurations()[0].varied == {"cell": "rnn"}


# ----------------------------------------------------------------------------- one run's task
def test_a_task_waits_for_another_writer_then_skips_or_resumes(tmp_path):
    config = load_spec(_spec(tmp_path, "seeds = [0]\n", steps=40)).runs(tmp_path / "sweep")[0]
    folder = Path(config.out)
    Trainer(config).run(until=20)  # an unfinished run: 20 of 40 steps
    holder_done = threading.Event()

    def hold():
        with lock_run(folder):
            time.sleep(1.5)
        holder_done.set()
    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.1)
    assert run_one(config.to_dict()) == {"status": "done", "error": None}  # waited, then resumed
    assert holder_done.is_set()
    holder.join()
    reference = TrainConfig.from_dict({**config.to_dict(), "out": str(tmp_path / "reference")})
    train(reference)
    _assert_same_run(folder, Path(reference.out))
    assert run_one(config.to_dict()) == {"status": "skipped", "error": None}
    diverges = {**config.to_dict(), "out": str(tmp_path / "diverges"), "lr": 1e308}
    line = ("NonFiniteError: non-finite loss or gradient at step 2: loss nan, first parameter with a non-finite "
            f"gradient: rnn.W; last good checkpoint: {tmp_path / 'diverges' / 'checkpoint.ckpt'} (step 0)")
    assert run_one(diverges) == {"status": "diverged", "error": line}
    assert json.loads((tmp_path / "diverges" / "diverged.json").read_text()) == {"step": 2, "error": line}
    assert run_one(diverges) == {"status": "skipped", "error": None}  # a result: not trained again


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "sweeps").glob("*.toml")),
                         ids=lambda path: path.name)
def test_every_benchmark_spec_loads(path):
    spec = load_spec(path)
    assert spec.configurations() and spec.seeds
