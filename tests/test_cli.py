"""The command line, run in-process and as a subprocess."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from numpy_rnn.checkpoint import load_checkpoint
from numpy_rnn.cli import main

# an LSTM with dropout and a cosine schedule: every piece of state a resume must restore
RUN = ["--task", "memory", "--cell", "lstm", "--num-layers", "2", "--dropout", "0.2", "--hidden-size", "8",
       "--batch-size", "16", "--eval-every", "100", "--eval-size", "64", "--schedule", "cosine", "--lr", "0.01",
       "--checkpoint-every", "20", "--seed", "3", "--no-progress"]
STEPS = 1500


def _cli(*args, **options):
    return subprocess.Popen([sys.executable, "-m", "numpy_rnn", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **options)


def _wait_for_an_evaluation(run_dir, proc, timeout=60.0):
    """Poll until metrics.jsonl has a line (the run is past step 100) while ``proc`` runs."""
    deadline = time.monotonic() + timeout
    metrics = run_dir / "metrics.jsonl"
    while not (metrics.exists() and metrics.stat().st_size):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)


def _params(run_dir):
    arrays, meta = load_checkpoint(run_dir / "checkpoint.ckpt")
    return {k: v for k, v in arrays.items() if k.startswith(("params.", "optimizer."))}, meta


def _metrics(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "elapsed"} for r in records]


def _assert_same_final_state(a, b):
    (arrays_a, meta_a), (arrays_b, meta_b) = _params(a), _params(b)
    assert meta_a["step"] == meta_b["step"] == STEPS and arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        assert np.array_equal(arrays_a[name], arrays_b[name]), name
    assert _metrics(a) == _metrics(b)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "whole"
    assert main(["train", *RUN, "--steps", str(STEPS), "--out", str(out)]) == 0
    return out


def test_gradcheck_prints_the_notebook_lines(capsys):
    assert main(["gradcheck", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Gradient check with a single output neuron:\nGradient check for dW passed")
    assert "\nGradient check with multiple output neurons:\n" in out
    assert out.count("passed (difference") == 10 and "failed" not in out


def test_sizes_and_output_sizes(capsys):
    assert main(["gradcheck", "--input-size", "3", "--hidden-size", "7", "--seq-len", "4", "--output-sizes", "2"]) == 0
    assert capsys.readouterr().out.count("passed") == 5


def test_train_writes_the_run_folder_then_eval_reads_it(uninterrupted, capsys):
    for name in ("config.json", "metrics.jsonl", "summary.json", "checkpoint.ckpt", "loss.png"):
        assert (uninterrupted / name).is_file(), name
    summary = json.loads((uninterrupted / "summary.json").read_text())
    assert {"task", "steps", "test_loss", "baseline_loss", "seconds"} <= set(summary)
    assert summary["task"] == "memory" and summary["steps"] == STEPS and summary["test_loss"] < summary["baseline_loss"]
    assert len(_metrics(uninterrupted)) == STEPS // 100
    assert main(["eval", str(uninterrupted)]) == 0
    out = capsys.readouterr().out
    assert f"task memory, step {STEPS} of {STEPS}" in out
    assert f"test MSE {summary['test_loss']:.6g} vs baseline 0.333333" in out


def test_resume_after_sigkill_is_bit_identical(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    proc = _cli("train", *RUN, "--steps", str(STEPS), "--out", str(out))
    _wait_for_an_evaluation(out, proc)
    proc.kill()  # SIGKILL: no handler runs, nothing is saved on the way out
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert 0 < _params(out)[1]["step"] < STEPS and not (out / "summary.json").exists()
    resumed = _cli("train", "--resume", str(out), "--no-progress")
    stdout, stderr = resumed.communicate()
    assert resumed.returncode == 0, stderr
    assert "test MSE" in stdout
    _assert_same_final_state(uninterrupted, out)


def test_ctrl_c_saves_a_checkpoint_and_exits_130(uninterrupted, tmp_path):
    out = tmp_path / "interrupted"
    proc = _cli("train", *RUN, "--steps", str(STEPS), "--out", str(out))
    _wait_for_an_evaluation(out, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate()
    assert proc.returncode == 130, stderr
    step = _params(out)[1]["step"]
    assert f"interrupted at step {step}: checkpoint saved to {out / 'checkpoint.ckpt'}" in stderr
    assert f"numpy-rnn train --resume {out}" in stderr and "Traceback" not in stderr
    assert 0 < step < STEPS
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    _assert_same_final_state(uninterrupted, out)


def test_resume_of_a_finished_run_reports_it_again(uninterrupted, capsys):
    assert main(["train", "--resume", str(uninterrupted), "--no-progress"]) == 0
    summary = json.loads((uninterrupted / "summary.json").read_text())
    assert f"test MSE {summary['test_loss']:.4g} vs baseline 0.3333" in capsys.readouterr().out


def test_character_model_trains_and_samples(tmp_path, capsys):
    out = tmp_path / "chars"
    assert main(["train", "--task", "chars", "--cell", "gru", "--hidden-size", "16", "--bptt", "20",
                 "--batch-size", "8", "--steps", "10", "--eval-every", "5", "--no-progress", "--out", str(out)]) == 0
    assert "test cross-entropy" in capsys.readouterr().out
    assert main(["sample", str(out), "--length", "30", "--prime", "Thy", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Thy") and len(text) == 3 + 30 + 1


@pytest.mark.parametrize("argv, message", [
    (["gradcheck", "--hidden-size", "-1"], "argument --hidden-size: expected a positive integer, got -1"),
    (["gradcheck", "--seq-len", "x"], "expected a positive integer, got 'x'"),
    (["gradcheck", "--dtype", "float32"], "expected x in float64, got float32"),
    (["nosuch"], "invalid choice: 'nosuch'"),
    (["train", "--task", "nosuch"], "argument --task: invalid choice: 'nosuch'"),
    (["train", "--hidden-size", "-1"], "argument --hidden-size: TrainConfig: expected hidden_size >= 1, got -1"),
    (["train", "--lr", "nan"], "argument --lr: TrainConfig: expected lr finite"),
    (["train", "--steps", "ten"], "argument --steps: expected an integer, got 'ten'"),
    (["train", "--init", "R"], "argument --init: expected NAME=INITIALISER"),
    (["train", "--model", "notebook", "--cell", "gru"], "takes hidden_size only, got cell='gru'"),
    (["train", "--resume", "no/such/run"], "no checkpoint in 'no/such/run'"),
    (["train", "--resume", "no/such/run", "--lr", "0.1"], "--resume continues a run with its own configuration; got also --lr"),
    (["eval", "no/such/run"], "no checkpoint in 'no/such/run'"),
    (["sample", "no/such/run"], "no checkpoint in 'no/such/run'"),
])
def test_bad_arguments_exit_2_without_traceback(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.startswith("usage:")


def test_without_tqdm_and_matplotlib_training_runs_and_says_what_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(["train", "--steps", "3", "--hidden-size", "4", "--out", str(tmp_path / "bare")]) == 0
    captured = capsys.readouterr()
    assert "no progress bar: tqdm is not installed (pip install 'numpy-rnn[cli]')" in captured.err
    assert "no plot: plotting needs matplotlib: pip install 'numpy-rnn[plot]'" in captured.err
    assert "test MSE" in captured.out and not (tmp_path / "bare" / "loss.png").exists()


def test_a_non_finite_loss_stops_training_with_exit_1(tmp_path, capsys):
    argv = ["train", "--model", "notebook", "--optimizer", "sgd", "--lr", "1e300", "--clip-norm", "0",
            "--steps", "5", "--no-progress", "--out", str(tmp_path / "diverged")]
    assert main(argv) == 1  # the first update is so large that the second loss overflows
    err = capsys.readouterr().err
    assert "error: non-finite loss or gradient at step 2: loss inf, first parameter with a non-finite gradient: W; " \
           f"last good checkpoint: {tmp_path / 'diverged' / 'checkpoint.ckpt'} (step 0)" in err


def test_existing_run_folder_and_sample_of_a_non_character_run_exit_2(uninterrupted, capsys):
    for argv, message in ((["train", "--out", str(uninterrupted)], "already holds a run: continue it with --resume"),
                          (["sample", str(uninterrupted)], "needs a run of task 'chars', got task 'memory'")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_module_entry_point_help_and_demo(tmp_path):
    result = subprocess.run([sys.executable, "-m", "numpy_rnn", "gradcheck", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--output-sizes" in result.stdout
    out = tmp_path / "demo"
    for _ in range(2):  # the demo can run again over its own folder
        result = subprocess.run([sys.executable, "-m", "numpy_rnn", "demo", "--steps", "300", "--out", str(out)],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert result.stdout.count("passed") == 10 and "seq/s=" in result.stderr and "gnorm=" in result.stderr
    assert lines[-2] == f"plot: {out / 'loss.png'}" and (out / "loss.png").is_file()
    assert lines[-1].startswith("test MSE ") and " vs baseline 0.3333 " in lines[-1]
