"""The command line, run in-process and as a subprocess."""
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from numpy_rnn import RNN, __version__
from numpy_rnn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from numpy_rnn.cli import main
from numpy_rnn.train import Trainer

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


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_ctrl_c_or_kill_saves_a_checkpoint_and_exits_130(uninterrupted, tmp_path, stop):
    out = tmp_path / "interrupted"
    proc = _cli("train", *RUN, "--steps", str(STEPS), "--out", str(out))
    _wait_for_an_evaluation(out, proc)
    proc.send_signal(stop)
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
    (["train", "--hidden-size", "-1"], "argument --hidden-size: expected hidden_size >= 1, got -1"),
    (["train", "--lr", "nan"], "argument --lr: expected lr finite"),
    (["train", "--steps", "ten"], "argument --steps: expected an integer, got 'ten'"),
    (["train", "--init", "R"], "argument --init: expected NAME=INITIALISER"),
    (["train", "--model", "notebook", "--cell", "gru"], "takes hidden_size only, got cell='gru'"),
    (["train", "--resume", "no/such/run", "--lr", "0.1"],
     "--resume continues a run with its own configuration (only --steps may extend it); got also --lr"),
    (["demo", "--input-size", "3"], "unrecognized arguments: --input-size 3"),
    (["diagnose", "some/run", "--lr", "0.1"], "RUN_DIR brings its own configuration (only --out may be given); got also --lr"),
    (["diagnose", "--model", "notebook", "--cell", "gru"], "takes hidden_size only, got cell='gru'"),
    (["gradcheck", "--threshold", "-1"], "argument --threshold: expected a finite number > 0, got '-1'"),
    (["gradcheck", "--seed", "-1"], "argument --seed: expected an integer >= 0, got -1"),
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


def test_an_existing_run_folder_is_refused_in_one_line_suggesting_resume_or_force(uninterrupted, capsys):
    assert main(["train", "--out", str(uninterrupted)]) == 1
    err = capsys.readouterr().err
    assert err == (f"numpy-rnn train: error: '{uninterrupted}' already holds a run: continue it with --resume "
                   f"{uninterrupted}, or start over with --force\n")


def test_sample_of_a_non_character_run_is_a_failure_in_one_line(uninterrupted, capsys):
    assert main(["sample", str(uninterrupted)]) == 1  # the run is wrong, not the command line
    err = capsys.readouterr().err
    assert err == (f"numpy-rnn sample: error: '{uninterrupted}' is a run of task 'memory'; "
                   f"only a character model (--task chars) writes text\n")


SMALL = ["--hidden-size", "4", "--batch-size", "8", "--eval-every", "5", "--eval-size", "16", "--no-progress"]


def test_resume_with_more_steps_extends_a_finished_run(tmp_path, capsys):
    out = tmp_path / "extended"
    assert main(["train", *SMALL, "--steps", "10", "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--steps", "20", "--no-progress"]) == 0
    assert "after 20 steps" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["steps"] == 20
    assert json.loads((out / "config.json").read_text())["steps"] == 20
    assert [r["step"] for r in _metrics(out)] == [5, 10, 15, 20]
    whole = tmp_path / "whole"
    assert main(["train", *SMALL, "--steps", "20", "--out", str(whole)]) == 0
    (arrays, _), (expected, _) = _params(out), _params(whole)
    assert all(np.array_equal(arrays[name], expected[name]) for name in expected)  # a constant lr: the same run
    assert main(["train", "--resume", str(out), "--steps", "20"]) == 1
    assert "already at step 20; to extend it, give more steps than that (got 20)" in capsys.readouterr().err


def test_force_starts_over_deleting_only_the_run_files(tmp_path, capsys):
    out = tmp_path / "again"
    assert main(["train", *SMALL, "--steps", "5", "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    (out / "checkpoint.ckpt.bak").write_text("mine too")
    assert main(["train", *SMALL, "--steps", "10", "--seed", "4", "--force", "--out", str(out)]) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "checkpoint.ckpt.bak").read_text() == "mine too"
    assert json.loads((out / "config.json").read_text())["seed"] == 4
    assert [r["step"] for r in _metrics(out)] == [5, 10]  # a new history, not the old one continued


@pytest.mark.parametrize("argv, message", [
    (["--task", "chars", "--seq-len", "10"], ("--seq-len applies with tasks memory, adding, adding-hs, copy, sine, recall "
                                              "only, got --task 'chars' (the character model reads bptt steps")),
    (["--task", "adding", "--text", "x.txt"], "--text applies with task chars only, got --task 'adding'"),
    (["--task", "memory", "--bptt", "50"], "--bptt applies with tasks chars, recall only, got --task 'memory'"),
    (["--embedding-size", "0"], "--embedding-size applies with task chars only"),
    (["--copy-len", "10"], "--copy-len applies with task copy only, got --task 'memory'"),
    (["--task", "adding", "--horizon", "1"], "--horizon applies with task sine only, got --task 'adding'"),
    (["--cell", "gru", "--nonlinearity", "tanh"], "--nonlinearity applies with cell rnn only, got --cell 'gru'"),
    (["--momentum", "0"], "--momentum applies with optimizer sgd or rmsprop only, got --optimizer 'adam'"),
    (["--final-weights", "best"], "--final-weights applies with early stopping (patience > 0) only"),
    (["--task", "chars", "--bidirectional"], "a bidirectional layer would also read the text backwards"),
    (["--resume", "x", "--steps", "5", "--force"], "(only --steps may extend it); got also --force"),
])
def test_options_that_do_not_apply_are_refused_even_at_their_default(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err, err


def test_eval_of_an_early_stopped_run_uses_and_names_the_best_step(tmp_path, capsys):
    out = tmp_path / "stopped"
    argv = ["train", *SMALL, "--optimizer", "sgd", "--lr", "5", "--clip-norm", "0", "--patience", "2",
            "--steps", "200", "--nonfinite", "skip", "--max-skips", "200", "--out", str(out)]
    assert main(argv) == 0  # so large a learning rate that the validation loss soon gets worse
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_early"] and summary["weights_step"] == summary["best_step"] < summary["steps"]
    reported = capsys.readouterr().out
    assert f"weights of step {summary['best_step']} (the best validation loss)" in reported
    assert main(["eval", str(out)]) == 0
    out_lines = capsys.readouterr().out.splitlines()
    assert f"weights of step {summary['best_step']} (the best validation loss)" in out_lines[0]
    assert out_lines[1] == f"validation MSE {summary['best_val_loss']:.6g}"


def test_module_entry_point_help_and_demo(tmp_path):
    result = subprocess.run([sys.executable, "-m", "numpy_rnn", "gradcheck", "--help"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0 and "--output-sizes" in result.stdout
    out = tmp_path / "demo"
    for _ in range(2):  # the demo can run again over its own folder
        result = subprocess.run([sys.executable, "-m", "numpy_rnn", "demo", "--steps", "300", "--out", str(out)],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert result.stdout.count("passed") == 10 and "seq/s=" in result.stderr and "gnorm=" in result.stderr
    assert lines[-2] == f"plot: {out / 'loss.png'}" and (out / "loss.png").is_file()
    assert lines[-1].startswith("test MSE ") and " vs baseline 0.3333 " in lines[-1]


# ----------------------------------------------------------------------------- first contact
def run_cli(argv, capsys):
    """``(exit code, stdout, stderr)`` of ``main(argv)``, in-process."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return (code, *capsys.readouterr())


def test_no_command_prints_the_help_and_a_hint(capsys):
    code, out, err = run_cli([], capsys)
    assert code == 2 and out == ""
    assert err.startswith("usage: numpy-rnn") and "gradcheck" in err and "demo" in err
    assert err.splitlines()[-1] == ("numpy-rnn: error: a command is required. Start with 'numpy-rnn demo'; "
                                    "'numpy-rnn COMMAND --help' lists a command's options.")


def test_version(capsys):
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out == f"numpy-rnn {__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", __version__)


def test_help_shows_each_default_once_and_cleanly(capsys):
    for command in ("train", "gradcheck", "demo", "sample"):
        code, out, _ = run_cli([command, "--help"], capsys)
        assert code == 0
        options = " ".join(out.split("options:", 1)[1].split())  # one line, as wrapping varies
        for noise in ("[None]", "(default: None)", "(default: False)", "(default: {})"):
            assert noise not in options, (command, noise)
        odd = re.search(r".{60}\(default [^:].{30}", options)
        assert odd is None, (command, odd.group())
        for flag in re.findall(r"(?<![\\w-])--[a-z-]+", options):
            block = options.split(flag, 1)[1].split(" --", 1)[0]
            assert block.count("(default: ") <= 1, (command, flag, block)
    train = " ".join(run_cli(["train", "--help"], capsys)[1].split())
    for text in ("--hidden-size HIDDEN_SIZE hidden units H (default: 64; chars: 256)", "--task {", "(default: memory)",
                 "--out OUT run folder (default: runs/TASK)", "--bidirectional read the sequence in both directions --"):
        assert text in train
    assert "--bias, --no-bias biases in the recurrent layers" in train
    demo = " ".join(run_cli(["demo", "--help"], capsys)[1].split())
    assert "H, hidden units of the checked and the trained RNN (default: 32)" in demo and "--input-size" not in demo


# ----------------------------------------------------------------------------- exit codes
def test_gradcheck_exits_1_when_a_check_fails(monkeypatch, capsys):
    correct = RNN.backward

    def planted(self, d_loss):  # one element of one gradient off by 1e-4 (relative ~1e-4)
        grads = correct(self, d_loss)
        grads["R"].flat[0] += 1e-4 * max(1.0, abs(grads["R"].flat[0]))
        return grads

    monkeypatch.setattr(RNN, "backward", planted)
    code, out, err = run_cli(["gradcheck"], capsys)
    assert code == 1 and out.count("Gradient check for dR failed") == 2 and out.count("passed") == 8
    assert err == "numpy-rnn gradcheck: error: a gradient check failed (see the lines above)\n"
    code, out, err = run_cli(["demo", "--out", "never-written", "--steps", "1"], capsys)
    assert code == 1 and "dR failed" in out and err.endswith("a gradient check failed (see the lines above): not training\n")
    assert not Path("never-written").exists()


def test_demo_options_apply_to_the_check_and_the_training(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, _ = run_cli(["demo", "--hidden-size", "7", "--seq-len", "4", "--steps", "2", "--no-progress",
                               "--out", str(out)], capsys)
    assert code == 0 and stdout.count("passed") == 10
    assert "Training the notebook RNN (H=7) on the memory task: recall the first of T=4 values" in stdout
    config = json.loads((out / "config.json").read_text())
    assert (config["hidden_size"], config["seq_len"], config["steps"]) == (7, 4, 2)


def _one_error_line(err: str, command: str) -> str:
    """The single line of ``err``, checked to be ``numpy-rnn COMMAND: error: ...``."""
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"numpy-rnn {command}: error: "), err
    return lines[0]


def _read_only_folder(tmp_path, monkeypatch):
    """A folder where nothing can be created (chmod; simulated at os.mkdir for root)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root ignores the mode
        real_mkdir = os.mkdir

        def refuse(path, *args, **kwargs):
            if Path(os.path.abspath(path)).parent == folder:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
            return real_mkdir(path, *args, **kwargs)
        monkeypatch.setattr(os, "mkdir", refuse)
    return folder


@pytest.fixture
def paths(tmp_path, monkeypatch):
    """Bad paths by name: a file, a folder, an empty folder, non-text files, a corrupt run."""
    (tmp_path / "file").write_text("not a folder\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\n".encode("latin-1") * 50)
    (tmp_path / "corrupt").mkdir()
    save_checkpoint(tmp_path / "corrupt" / "checkpoint.ckpt", {"w": np.ones(3)}, {"step": 1})
    damaged = bytearray((tmp_path / "corrupt" / "checkpoint.ckpt").read_bytes())
    damaged[-40] ^= 1  # a bit of the data section
    (tmp_path / "corrupt" / "checkpoint.ckpt").write_bytes(bytes(damaged))
    (tmp_path / "not-a-checkpoint").mkdir()
    (tmp_path / "not-a-checkpoint" / "checkpoint.ckpt").write_text('{"step": 3}\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path, _read_only_folder(tmp_path, monkeypatch)


TINY = ["--steps", "1", "--hidden-size", "4", "--no-progress"]
CHARS = ["train", "--task", "chars", "--bptt", "4", "--batch-size", "2", *TINY, "--out", "chars-run", "--text"]


@pytest.mark.parametrize("argv, message", [
    (["train", *TINY, "--eval-size", "4", "--out", "file"], r"'file'"),
    (["train", *TINY, "--out", "file/run"], r"Not a directory: 'file/run'|'file'"),
    (["train", *TINY, "--out", "read-only/run"], r"(Permission denied|Operation not permitted): 'read-only/run'"),
    (["demo", "--steps", "1", "--no-progress", "--out", "file"], r"'file'"),
    (["demo", "--steps", "1", "--no-progress", "--out", "read-only/demo"], r"Permission denied: 'read-only/demo'"),
    ([*CHARS, "empty"], r"expected a text file, 'empty' is a folder"),
    ([*CHARS, "missing.txt"], r"no such file: 'missing.txt'"),
    ([*CHARS, "binary.bin"], r"'binary.bin' is not valid UTF-8"),
    ([*CHARS, "latin1.txt"], r"'latin1.txt' is not valid UTF-8"),
    ([*CHARS, "empty.txt"], r"'empty.txt' is empty"),
    (["train", "--resume", "missing", "--no-progress"], r"'missing'"),
    (["train", "--resume", "file", "--no-progress"], r"'file'"),
    (["train", "--resume", "corrupt", "--no-progress"], r"SHA-256 mismatch"),
    (["eval", "missing"], r"'missing'"),
    (["eval", "file"], r"'file'"),
    (["eval", "empty"], r"'empty'"),
    (["eval", "corrupt"], r"corrupt/checkpoint.ckpt' is corrupted or truncated: SHA-256 mismatch"),
    (["eval", "not-a-checkpoint"], r"is not a numpy_rnn checkpoint"),
    (["sample", "missing"], r"'missing'"),
    (["sample", "file"], r"'file'"),
    (["sample", "empty"], r"'empty'"),
    (["sample", "corrupt"], r"SHA-256 mismatch"),
])
def test_a_bad_path_is_one_line_and_exit_1(paths, argv, message, capsys):
    code, _, err = run_cli(argv, capsys)
    line = _one_error_line(err, argv[0])
    assert code == 1, (code, err)
    assert re.search(message, line), line
    assert not (paths[0] / "chars-run").exists()


def test_as_a_subprocess_a_bad_path_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "file").write_text("x")
    for argv in (["train", "--steps", "1", "--no-progress", "--out", "file"], ["eval", "missing"]):
        result = subprocess.run([sys.executable, "-m", "numpy_rnn", *argv], capture_output=True, text=True,
                                cwd=tmp_path, check=False)
        assert result.returncode == 1, result.stderr
        _one_error_line(result.stderr, argv[0])


def _resume_raising(error):
    def resume(cls, out):
        raise error
    return classmethod(resume)


@pytest.mark.parametrize("error, line", [
    (MemoryError(), "out of memory"),
    (MemoryError("Unable to allocate 8 TiB"), "out of memory: Unable to allocate 8 TiB"),
    (RecursionError("maximum recursion depth exceeded"), "maximum recursion depth exceeded"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "'utf-8' codec can't decode byte 0xff"),
    (OSError(errno.ENOSPC, "No space left on device", "x"), "No space left on device: 'x'"),
    (ValueError("first line\nsecond line"), "first line second line"),
])
def test_user_errors_are_one_line(monkeypatch, capsys, error, line):
    from numpy_rnn import cli

    monkeypatch.setattr(cli.Trainer, "resume", _resume_raising(error))
    code, _, err = run_cli(["eval", "run"], capsys)
    assert code == 1 and _one_error_line(err, "eval").startswith(f"numpy-rnn eval: error: {line}")


def test_a_bug_keeps_its_traceback(monkeypatch):
    from numpy_rnn import cli

    monkeypatch.setattr(cli.Trainer, "resume", _resume_raising(KeyError("bug")))
    with pytest.raises(KeyError, match="bug"):  # not a user error: main does not hide it
        main(["eval", "run"])


def test_debug_shows_the_traceback_of_a_user_error(monkeypatch, tmp_path):
    missing = str(tmp_path / "missing")
    for argv in (["--debug", "eval", missing], ["eval", missing, "--debug"]):
        with pytest.raises((FileNotFoundError, CheckpointError), match="missing"):
            main(argv)
    monkeypatch.setenv("NUMPY_RNN_DEBUG", "1")
    with pytest.raises((FileNotFoundError, CheckpointError), match="missing"):
        main(["eval", missing])


def test_a_closed_pipe_stops_quietly():
    """``numpy-rnn sample RUN | head``: the reader leaves early; no error line, the shell's 141."""
    process = subprocess.Popen([sys.executable, "-m", "numpy_rnn", "gradcheck"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # before the check prints anything
    err = process.stderr.read()
    assert process.wait(timeout=60) == 141 and err == ""


def test_train_applies_the_task_defaults_to_flags_not_given(tmp_path, capsys):
    out = tmp_path / "chars"
    code, _, _ = run_cli(["train", "--task", "chars", "--steps", "4", "--eval-every", "2", "--hidden-size", "16",
                          "--no-progress", "--out", str(out)], capsys)
    config = json.loads((out / "config.json").read_text())
    assert code == 0 and (config["cell"], config["embedding_size"], config["dtype"]) == ("gru", 32, "float32")
    assert (config["hidden_size"], config["warmup"]) == (16, 0)  # given flags win; warm-up a tenth of 4 steps
    assert "(default: 64; chars: 256)" in " ".join(run_cli(["train", "--help"], capsys)[1].split())


def test_no_bias_trains_a_layer_without_biases_and_resumes_it(tmp_path, capsys):
    out = tmp_path / "no-bias"
    code, _, _ = run_cli(["train", "--no-bias", "--steps", "4", "--eval-every", "2", "--hidden-size", "6",
                          "--no-progress", "--out", str(out)], capsys)
    assert code == 0 and json.loads((out / "config.json").read_text())["bias"] is False
    trainer = Trainer.resume(out)
    assert "rnn.b" not in trainer.model.params and "rnn.W" in trainer.model.params
    code, _, err = run_cli(["train", "--model", "notebook", "--no-bias", "--out", str(tmp_path / "nb")], capsys)
    assert code == 2 and "--bias applies with model sequence only, got --model 'notebook'" in err


def test_proj_size_trains_an_lstm_with_projections_and_resumes_it(tmp_path, capsys):
    out = tmp_path / "proj"
    code, _, _ = run_cli(["train", "--cell", "lstm", "--proj-size", "3", "--steps", "4", "--eval-every", "2",
                          "--hidden-size", "6", "--no-progress", "--out", str(out)], capsys)
    assert code == 0 and json.loads((out / "config.json").read_text())["proj_size"] == 3
    trainer = Trainer.resume(out)
    shapes = {name: value.shape for name, value in trainer.model.params.items()}
    assert shapes["rnn.W_hr"] == (6, 3) and shapes["rnn.R"] == (3, 24) and shapes["head.W"][0] == 3
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 4 and trainer.evaluate("valid") == last["val_loss"]  # the checkpoint's weights
    code, _, err = run_cli(["train", "--cell", "gru", "--proj-size", "3", "--out", str(tmp_path / "gru")], capsys)
    assert code == 2 and "--proj-size applies with cell lstm only, got --cell 'gru'" in err


def test_a_cell_of_your_own_trains_from_the_working_directory_and_resumes(custom_cell, tmp_path, capsys):
    out = tmp_path / "leaky"
    options = ["--task", "adding", "--seq-len", "12", "--hidden-size", "5", "--eval-every", "2", "--no-progress"]
    code, _, _ = run_cli(["train", "--cell", custom_cell, "--steps", "4", *options, "--out", str(out)], capsys)
    assert code == 0 and json.loads((out / "config.json").read_text())["cell"] == "my_cells:LeakyCell"
    del sys.modules["my_cells"]  # a new process: a stored run imports nothing until told
    code, _, err = run_cli(["train", "--resume", str(out), "--steps", "6", "--no-progress"], capsys)
    assert code == 1 and "expected module 'my_cells' to be imported" in err and "--import my_cells" in err
    code, stdout, _ = run_cli(["train", "--resume", str(out), "--steps", "6", "--no-progress", "--import", "my_cells"],
                              capsys)
    assert code == 0 and "after 6 steps" in stdout
    trainer = Trainer.resume(out)
    assert type(trainer.model.rnn.cell).__name__ == "LeakyCell" and trainer.step == 6
    code, _, err = run_cli(["train", "--cell", "my_cells:not_a_cell", "--out", str(tmp_path / "bad")], capsys)
    assert code == 2 and err.strip().splitlines()[-1] == (
        "numpy-rnn train: error: argument --cell: expected cell 'my_cells:not_a_cell' to name a numpy_rnn.cells.Cell "
        "subclass in module 'my_cells', got function there")


def test_eval_of_a_file_says_it_is_a_file(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("not a run")
    code, _, err = run_cli(["eval", str(path)], capsys)
    assert code == 1 and "(a file, not a run folder)" in err and "Traceback" not in err


def test_messages_do_not_name_the_library_class_behind_them(tmp_path, capsys):
    code, _, err = run_cli(["train", "--task", "chars", "--steps", "5", "--warmup", "10", "--schedule", "cosine",
                            "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "error: expected warmup < steps for the cosine schedule, got 10 >= 5" in err
    assert "TrainConfig" not in err


def test_diagnose_a_fresh_model_writes_the_json_and_both_plots(tmp_path, capsys):
    out = tmp_path / "fresh"
    argv = ["diagnose", "--task", "adding", "--seq-len", "30", "--cell", "rnn", "--hidden-size", "8", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "a fresh sequence model (rnn) at initialisation, task adding, on a batch of 32 sequences of T=30" in text
    assert re.search(r"l0 \(ElmanCell\): \|\|dL/dh\|\| x[0-9.]+ per step back", text)
    data = json.loads((out / "diagnostics.json").read_text())
    assert data["seq_len"] == 30 and len(data["layers"][0]["dl_dh_norm"]) == 30
    assert (out / "gradient_flow.png").is_file() and (out / "saturation.png").is_file()


def test_diagnose_a_run_writes_into_it_or_into_out(uninterrupted, tmp_path, capsys):
    out = tmp_path / "elsewhere"
    assert main(["diagnose", str(uninterrupted), "--out", str(out)]) == 0
    assert f"diagnostics of {uninterrupted} at step {STEPS}" in capsys.readouterr().out
    data = json.loads((out / "diagnostics.json").read_text())
    assert [run["name"] for run in data["layers"]] == ["l0", "l1"]
    assert not (uninterrupted / "diagnostics.json").exists()


def test_diagnose_of_a_missing_run_fails_in_one_line(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path / "none")]) == 1
    assert "numpy-rnn diagnose: error: no run in" in capsys.readouterr().err
