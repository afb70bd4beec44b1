"""The training loop: learning, determinism, resume, truncated BPTT, non-finite policy, run files."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

from numpy_rnn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from numpy_rnn.tasks import CharCorpus
from numpy_rnn.train import (
    CHECKPOINT_FILE,
    LOCK_FILE,
    RUN_FILES,
    STOP_SIGNALS,
    Interrupted,
    NonFiniteError,
    RunInUse,
    TrainConfig,
    Trainer,
    lock_run,
    remove_run,
    run_environment,
    sample_text,
    train,
)


@pytest.fixture(scope="module")
def tiny_chars(tmp_path_factory):
    """TINY for the character model (which evaluates on its whole validation text: no
    eval_size) on the first 20,000 characters of the shipped text."""
    path = tmp_path_factory.mktemp("text") / "head.txt"
    path.write_text(CharCorpus.builtin().text[:20_000], encoding="utf-8")
    return {**{k: v for k, v in TINY.items() if k != "eval_size"}, "task": "chars", "text": str(path)}


def _without_time(history):
    return [{k: v for k, v in record.items() if k != "elapsed"} for record in history]


def _assert_same_run(a: Trainer, b: Trainer):
    """Bit-for-bit: parameters, optimizer state, step, history (but its clock)."""
    assert a.step == b.step
    for name, value in a.model.params.items():
        assert np.array_equal(value, b.model.params[name]), name
    for name, state in a.optimizer.state.items():
        for key, value in state.items():
            assert np.array_equal(value, b.optimizer.state[name][key]), (name, key)
    assert _without_time(a.history) == _without_time(b.history)


def test_notebook_model_learns_the_memory_task_well_below_baseline():
    config = TrainConfig(task="memory", model="notebook", seq_len=10, hidden_size=32, lr=3e-3, schedule="cosine",
                         steps=1500, eval_every=500)
    trainer, summary = train(config)
    assert summary["baseline_loss"] == pytest.approx(1 / 3)
    assert summary["test_loss"] < 0.05 * summary["baseline_loss"]
    assert summary["ratio_to_baseline"] == pytest.approx(summary["test_loss"] / summary["baseline_loss"])
    assert summary["cell"] == "rnn" and summary["steps"] == 1500 and not summary["stopped_early"]
    assert [r["step"] for r in trainer.history] == [500, 1000, 1500]


def test_lstm_learns_the_memory_task():
    _, summary = train(TrainConfig(task="memory", hidden_size=16, lr=1e-2, steps=400, eval_every=200))
    assert summary["cell"] == "lstm" and summary["test_loss"] < 0.2 * summary["baseline_loss"]


@pytest.mark.parametrize("task, options", [
    ("adding", {"seq_len": 6}), ("adding-hs", {"seq_len": 6}), ("copy", {"seq_len": 3, "copy_len": 2}),
    ("sine", {"seq_len": 8, "horizon": 2}), ("chars", {"bptt": 10, "embedding_size": 4}),
])
def test_every_task_trains_and_reports_its_baseline(task, options, tiny_chars):
    base = tiny_chars if task == "chars" else TINY
    trainer, summary = train(TrainConfig(**{**base, "task": task, **options, "steps": 6, "eval_every": 3}))
    assert summary["task"] == task and np.isfinite(summary["test_loss"])
    assert summary["baseline_loss"] == trainer.data.baseline_loss > 0
    assert summary["loss"] == ("mse" if task in ("adding", "adding-hs", "sine") else "cross_entropy")


def test_same_seed_same_run_other_seed_other_run():
    a, b, c = (Trainer(TrainConfig(**TINY, seed=seed)) for seed in (1, 1, 2))
    for trainer in (a, b, c):
        trainer.run()
    _assert_same_run(a, b)
    assert not np.array_equal(a.model.params["rnn.W"], c.model.params["rnn.W"])


@pytest.mark.parametrize("options", [
    dict(cell="lstm", num_layers=2, dropout=0.3, schedule="cosine", warmup=5, optimizer="adamw"),
    dict(task="chars", cell="lstm", bptt=7, batch_size=8, optimizer="sgd", lr=0.5, momentum=0.9),
    dict(model="notebook", cell=None, optimizer="rmsprop", lr=1e-2, patience=3),
    dict(task="copy", seq_len=3, copy_len=2, cell="gru", dtype="float32"),
    dict(task="recall", delay=3, bptt=2, seq_len=12, cell="lstm", hidden_size=3, gradient="rtrl"),
    dict(model="notebook", cell=None, hidden_size=3, gradient="rtrl"),
    dict(cell="lstm", input_dropout=0.2, recurrent_dropout=0.3, zoneout=0.1, zoneout_c=0.4),
], ids=["lstm-dropout-cosine", "chars-tbptt", "notebook", "copy-float32", "recall-rtrl", "notebook-rtrl",
        "lstm-regularisers"])
def test_resume_from_a_checkpoint_is_bit_identical(tmp_path, options, tiny_chars):
    config = TrainConfig(**{**(tiny_chars if options.get("task") == "chars" else TINY), **options,
                            "checkpoint_every": 10})
    whole = Trainer(config)
    whole.run()
    first = Trainer(TrainConfig(**{**config.to_dict(), "out": str(tmp_path)}))
    assert first.run(until=23) is None  # paused mid-interval, between checkpoints: the pause saves
    resumed = Trainer.resume(tmp_path)
    assert resumed.step == 23 and resumed.last_checkpoint == (str(tmp_path / "checkpoint.ckpt"), 23)
    resumed.run()
    _assert_same_run(whole, resumed)


@pytest.mark.parametrize("model", ["sequence", "notebook"])
def test_float32_runs_train_in_float32(model):
    trainer = Trainer(TrainConfig(**{**TINY, "model": model, "cell": None, "dtype": "float32"}))
    trainer.run()
    assert all(value.dtype == np.float32 for value in trainer.model.params.values())
    assert np.isfinite(trainer.history[-1]["val_loss"])


@pytest.mark.parametrize("stop", STOP_SIGNALS, ids=["ctrl-c", "kill"])
def test_ctrl_c_or_kill_saves_a_checkpoint_between_steps_and_resume_matches(tmp_path, stop):
    config = TrainConfig(**TINY, out=str(tmp_path))
    trainer = Trainer(config)
    step = trainer.train_step

    def step_then_ctrl_c():
        result = step()
        if trainer.step == 17:
            os.kill(os.getpid(), stop)  # arrives mid-loop; honoured after this step
        return result

    trainer.train_step = step_then_ctrl_c
    before = signal.getsignal(stop)  # SIGINT: default_int_handler; SIG_IGN in a shell's background job
    with pytest.raises(Interrupted) as exc:
        trainer.run()
    assert exc.value.step == 17 and exc.value.checkpoint == str(tmp_path / "checkpoint.ckpt")
    assert load_checkpoint(exc.value.checkpoint)[1]["step"] == 17
    assert signal.getsignal(stop) is before  # the handler is put back
    resumed = Trainer.resume(tmp_path)
    resumed.run()
    whole = Trainer(TrainConfig(**TINY))
    whole.run()
    _assert_same_run(whole, resumed)


def test_truncated_bptt_carries_the_state_across_chunks_and_resets_each_epoch(tiny_chars):
    trainer = Trainer(TrainConfig(**{**tiny_chars, "bptt": 30, "batch_size": 4}))
    data, seen = trainer.data, []
    forward = trainer.model.forward

    def spy(x, state=None, lengths=None):
        y, state_n = forward(x, state, lengths)
        seen.append((x, state, state_n))
        return y, state_n

    trainer.model.forward = spy
    for _ in range(data.chunks + 1):
        trainer.train_step()
    (x0, s0, n0), (x1, s1, _) = seen[0], seen[1]
    assert s0 is None and s1 is n0  # the final state of chunk 0 starts chunk 1
    assert np.array_equal(x1, data.streams[:, 30:60]) and np.array_equal(x0, data.streams[:, :30])
    assert seen[-1][1] is None and np.array_equal(seen[-1][0], x0)  # a new epoch: position 0, zero state


def test_non_finite_raise_names_step_loss_parameter_and_last_checkpoint(tmp_path):
    trainer = Trainer(TrainConfig(**TINY, out=str(tmp_path), checkpoint_every=5))
    trainer.run(until=5)
    trainer.model.params["rnn.R"][0, 0] = np.nan
    with pytest.raises(NonFiniteError, match=r"at step 6: loss nan, first parameter with a non-finite gradient: rnn\.W; "
                                             r"last good checkpoint: .*checkpoint\.ckpt \(step 5\)") as caught:
        trainer.run()
    assert caught.value.step == 6
    fresh = Trainer(TrainConfig(**TINY))
    fresh.model.params["head.b"][0] = np.inf
    with pytest.raises(NonFiniteError, match="at step 1: .*no checkpoint was saved yet"):
        fresh.run()


def test_finite_gradients_whose_float32_norm_overflows_are_clipped_not_taken_for_non_finite():
    """The IRNN at T = 1000 reaches gradients of 1e20 and more at its second step: finite, but
    their float32 squares overflow; clipping must see a finite norm and update."""
    trainer = Trainer(TrainConfig(**{**TINY, "dtype": "float32", "clip_norm": 1.0}))
    backward = trainer.model.backward

    def huge_gradients(dy):
        backward(dy)
        for g in trainer.model.grads.values():
            g.fill(2e19)  # float32 max is 3.4e38: the squares overflow, the values do not

    trainer.model.backward = huge_gradients
    before = {k: v.copy() for k, v in trainer.model.params.items()}
    loss, norm = trainer.train_step()
    count = sum(g.size for g in trainer.model.grads.values())
    assert norm == pytest.approx(2e19 * count ** 0.5, rel=1e-5) and trainer.skipped == 0
    assert all(not np.array_equal(v, trainer.model.params[k]) for k, v in before.items())  # updated
    assert all(np.all(np.isfinite(v)) for v in trainer.model.params.values())


def test_non_finite_skip_leaves_parameters_and_optimizer_untouched_then_gives_up():
    trainer = Trainer(TrainConfig(**TINY, nonfinite="skip", max_skips=3))
    trainer.run(until=4)
    params = {k: v.copy() for k, v in trainer.model.params.items()}
    optimizer = trainer.optimizer.state_dict()
    batch = trainer.data.next_batch

    def poisoned():
        x, y, state = batch()
        return np.full_like(x, np.nan), y, state

    trainer.data.next_batch = poisoned
    loss, norm = trainer.train_step()
    assert np.isnan(loss) and trainer.skips == trainer.skipped == 1 and trainer.step == 5
    assert all(np.array_equal(v, trainer.model.params[k]) for k, v in params.items())
    assert trainer.optimizer.state_dict()["step"] == optimizer["step"]
    assert all(np.array_equal(v, trainer.optimizer.state[k]["exp_avg"]) for k, v in
               ((k, s["exp_avg"]) for k, s in optimizer["state"].items()))
    trainer.data.next_batch = batch
    trainer.train_step()
    assert trainer.skips == 0 and trainer.skipped == 1
    trainer.data.next_batch = poisoned
    with pytest.raises(NonFiniteError, match="gave up after 3 non-finite steps in a row, at step 9") as caught:
        trainer.run()
    assert trainer.skipped == 4 and caught.value.step == 9


@pytest.mark.parametrize("error", [NonFiniteError("non-finite loss or gradient at step 6: ...", 6),
                                   Interrupted(7, "run/checkpoint.ckpt"), RunInUse("run", 1234)],
                         ids=lambda error: type(error).__name__)
def test_the_errors_pickle_whole(error):
    """A Dask worker sends its exceptions back pickled: message and attributes arrive intact."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and vars(copy) == vars(error)


def test_early_stopping_after_patience_evaluations_without_improvement():
    config = TrainConfig(**{**TINY, "optimizer": "sgd", "lr": 1e-300, "patience": 2, "steps": 100})
    trainer, summary = train(config)  # the weights cannot move: no evaluation improves on the first
    assert trainer.step == 30 and summary["stopped_early"] and summary["steps"] == 30
    assert summary["best_step"] == 10 and trainer.finished


def test_run_folder_files(tmp_path):
    out = tmp_path / "run"
    trainer, summary = train(TrainConfig(**TINY, out=str(out)))
    assert TrainConfig.from_dict(json.loads((out / "config.json").read_text())) == trainer.config
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records == trainer.history and len(records) == 4
    assert set(records[0]) == {"step", "train_loss", "val_loss", "grad_norm", "grad_norm_max", "parameters", "lr",
                               "elapsed", "skipped"}
    assert set(records[0]["parameters"]) == set(trainer.model.params)
    assert json.loads((out / "summary.json").read_text()) == summary
    assert {"task", "steps", "test_loss", "baseline_loss", "seconds", "best_val_loss"} <= set(summary)
    assert summary["final_train_loss"] == records[-1]["train_loss"]
    assert summary["environment"] == run_environment()
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(TrainConfig(**TINY, out=str(out)))


def test_the_environment_names_numpy_its_blas_kernel_and_the_cpu(monkeypatch):
    env = run_environment()
    assert env["numpy"] == np.__version__ and env["cpu_count"] == os.cpu_count() and env["cpu"]
    assert env["blas"] and all(pool["internal_api"] and pool["num_threads"] >= 1 for pool in env["blas"])
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # not installed
    assert run_environment()["blas"] is None


def test_a_run_folder_starts_with_a_checkpoint_of_the_initial_state(tmp_path):
    trainer = Trainer(TrainConfig(**TINY, out=str(tmp_path)))
    initial = {k: v.copy() for k, v in trainer.model.params.items()}
    step = trainer.train_step

    def step_then_crash():
        if trainer.step == 3:  # before the first periodic checkpoint
            raise MemoryError
        return step()

    trainer.train_step = step_then_crash
    with pytest.raises(MemoryError):
        trainer.run()
    resumed = Trainer.resume(tmp_path)
    assert resumed.step == 0 and resumed.config == trainer.config
    assert all(np.array_equal(v, resumed.model.params[k]) for k, v in initial.items())
    with pytest.raises(FileNotFoundError, match=r"no run in '.*nothing' \(the folder does not exist\)"):
        Trainer.resume(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no checkpoint in '.*empty' \(expected checkpoint.ckpt there\)"):
        Trainer.resume(tmp_path / "empty")


def test_progress_bar_shows_loss_gradient_norm_and_sequences_per_second(capsys):
    Trainer(TrainConfig(**{**TINY, "steps": 5})).run(progress=True)
    err = capsys.readouterr().err
    assert "loss=" in err and "gnorm=" in err and "seq/s=" in err and "5/5" in err


def test_sample_text_from_the_character_model(tiny_chars):
    trainer, _ = train(TrainConfig(**{**tiny_chars, "bptt": 10, "steps": 3}))
    text = sample_text(trainer, 40, prime="Shall I", rng=1)
    assert len(text) == 40 and set(text) <= set(trainer.data.corpus.vocab)
    assert text == sample_text(trainer, 40, prime="Shall I", rng=1)
    with pytest.raises(ValueError, match="needs a run of task 'chars', got task 'memory'"):
        sample_text(Trainer(TrainConfig(**TINY)), 5)


def test_missing_tqdm_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match=r"pip install 'numpy-rnn\[cli\]'"):
        Trainer(TrainConfig(**TINY)).run(progress=True)


# ---------------------------------------------------------------- early stopping keeps the best weights
STOPPING = {**TINY, "patience": 2, "steps": 100}  # evaluations at 10, 20, ...


def _script_validation(trainer, losses):
    """The next validation losses of ``trainer`` are ``losses`` (the test loss stays real)."""
    values, evaluate = iter(losses), trainer.evaluate
    trainer.evaluate = lambda split="valid": next(values) if split == "valid" else evaluate(split)


def _params_after(steps):
    trainer = Trainer(TrainConfig(**{**TINY, "steps": steps}))
    trainer.run()
    return trainer.model.state_dict()


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_early_stopping_ends_with_the_weights_of_the_best_evaluation(tmp_path):
    trainer = Trainer(TrainConfig(**STOPPING, out=str(tmp_path)))
    _script_validation(trainer, [3.0, 1.0, 2.0, 2.0])
    summary = trainer.run()
    assert summary["stopped_early"] and summary["steps"] == trainer.step == 40
    assert summary["best_step"] == summary["weights_step"] == trainer.weights_step == 20
    assert _same(trainer.model.state_dict(), _params_after(20))
    assert summary["test_loss"] == trainer.evaluate("test")  # tested with the best weights
    arrays, _ = load_checkpoint(tmp_path / "checkpoint.ckpt")  # the training weights and the best ones
    assert _same({k[len("params."):]: v for k, v in arrays.items() if k.startswith("params.")}, _params_after(40))
    assert _same({k[len("best."):]: v for k, v in arrays.items() if k.startswith("best.")}, _params_after(20))
    resumed = Trainer.resume(tmp_path)
    assert resumed.weights_step == 40 and _same(resumed.model.state_dict(), _params_after(40))
    assert resumed.use_final_weights() == 20 and _same(resumed.model.state_dict(), _params_after(20))


def test_final_weights_last_keeps_the_last_weights():
    trainer = Trainer(TrainConfig(**STOPPING, final_weights="last"))
    _script_validation(trainer, [3.0, 1.0, 2.0, 2.0])
    summary = trainer.run()
    assert summary["best_step"] == 20 and summary["weights_step"] == 40
    assert _same(trainer.model.state_dict(), _params_after(40))


def test_resume_of_a_run_keeping_the_best_weights_is_bit_identical(tmp_path):
    whole = Trainer(TrainConfig(**STOPPING))
    _script_validation(whole, [3.0, 1.0, 2.0, 0.5, 2.0, 2.0])
    whole.run()
    first = Trainer(TrainConfig(**STOPPING, out=str(tmp_path)))
    _script_validation(first, [3.0, 1.0])
    first.run(until=25)
    first.save()
    resumed = Trainer.resume(tmp_path)
    _script_validation(resumed, [2.0, 0.5, 2.0, 2.0])
    summary = resumed.run()
    assert summary["weights_step"] == 40 and resumed.step == 60
    _assert_same_run(whole, resumed)
    assert _same(whole.best_params, resumed.best_params)


# ---------------------------------------------------------------- run folders: extend, force, refuse
def test_resume_with_more_steps_extends_a_finished_run_and_refuses_what_cannot_go_on(tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(**{**TINY, "steps": 20}, out=str(out)))
    extended = Trainer.resume(out, steps=40)
    assert extended.config.steps == 40 and not extended.finished
    summary = extended.run()
    assert summary["steps"] == 40 and [r["step"] for r in extended.history] == [10, 20, 30, 40]
    assert _same(extended.model.state_dict(), _params_after(40))
    with pytest.raises(ValueError, match=r"already at step 40; to extend it, give more steps than that \(got 30\)"):
        Trainer.resume(out, steps=30)
    cosine = tmp_path / "cosine"
    train(TrainConfig(**{**TINY, "steps": 20, "schedule": "cosine"}, out=str(cosine)))
    with pytest.raises(ValueError, match="has a cosine schedule fixed to 20 steps: it cannot be extended"):
        Trainer.resume(cosine, steps=40)
    stopped = tmp_path / "stopped"
    trainer = Trainer(TrainConfig(**STOPPING, out=str(stopped)))
    _script_validation(trainer, [1.0, 2.0, 2.0])
    trainer.run()
    with pytest.raises(ValueError, match="stopped early at step 30 .*: there is nothing to extend"):
        Trainer.resume(stopped, steps=200)


def test_force_deletes_the_run_files_only_and_a_file_is_no_run_folder(tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(**{**TINY, "steps": 10}, out=str(out)))
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already holds a run"):
        Trainer(TrainConfig(**{**TINY, "steps": 10}, out=str(out)))
    trainer, summary = train(TrainConfig(**{**TINY, "steps": 20}, out=str(out)), force=True)
    assert summary["steps"] == 20 and (out / "notes.txt").read_text() == "mine"
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"run folder '.*file' is a file, not a folder"):
        Trainer(TrainConfig(**TINY, out=str(tmp_path / "file")))


def test_checkpoint_keys_are_the_documented_public_names(tmp_path):
    from numpy_rnn.train_state import META_SCHEMA

    trainer = Trainer(TrainConfig(**{**TINY, "task": "copy", "seq_len": 3, "copy_len": 2, "warmup": 5}))
    trainer.run(until=12)
    arrays, meta = trainer.state_dict()
    assert list(meta) == list(META_SCHEMA)
    assert {name.partition(".")[0] for name in arrays} == {"params", "optimizer"}
    assert meta["since_evaluation"]["steps"] == 2 and meta["step"] == 12 and len(meta["history"]) == 1


def test_sample_text_refuses_characters_the_model_never_saw(tiny_chars):
    trainer = Trainer(TrainConfig(**{**tiny_chars, "steps": 1}))
    with pytest.raises(ValueError, match=r"sample_text: the prime has characters the model never saw: \['€'\]"):
        sample_text(trainer, 5, prime="a€")
    with pytest.raises(ValueError, match=r"sample_text: expected temperature finite and in \(0.0, inf\), got -1.0"):
        sample_text(trainer, 5, temperature=-1.0)
    assert len(sample_text(trainer, 1)) == 1


def test_a_stored_carried_state_of_the_wrong_shape_is_refused_at_load(tmp_path, tiny_chars):
    config = TrainConfig(**{**tiny_chars, "cell": "lstm", "bptt": 7, "steps": 3, "out": str(tmp_path)})
    trainer = Trainer(config)
    trainer.run()
    arrays, meta = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert {"data.state.0", "data.state.1"} <= set(arrays)  # an LSTM carries (h, c)
    arrays["data.state.1"] = np.zeros((1, config.batch_size, 3))
    save_checkpoint(tmp_path / CHECKPOINT_FILE, arrays, meta)
    with pytest.raises(CheckpointError, match=r"carried state as 2 array\(s\) float64\[1, 16, 8\], got"):
        Trainer.resume(tmp_path)


@pytest.mark.parametrize("model", ["sequence", "notebook"])
def test_update_health_per_parameter_equals_a_hand_computation(model):
    """SGD without clipping: dw = -lr g, so each step's gradient norm and update ratio are known."""
    config = TrainConfig(**{**TINY, "model": model, "cell": None, "optimizer": "sgd", "lr": 0.5, "clip_norm": 0.0,
                            "steps": 6, "eval_every": 3})
    trainer, twin = Trainer(config), Trainer(config)
    trainer.run()
    norms, ratios = {name: [] for name in twin.model.params}, {name: [] for name in twin.model.params}
    for _ in range(config.steps):
        x, y, _ = twin.data.next_batch()
        twin.model.zero_grad()
        twin.model.backward(twin.loss_fn(twin.kind.forward(twin.model, x, None)[0], y)[1])
        for name, w in twin.model.params.items():
            g = twin.model.grads[name]
            new = w - config.lr * g
            norms[name].append(np.sqrt(np.sum(g ** 2)))
            ratios[name].append(np.sqrt(np.sum((config.lr * g) ** 2)) / max(np.sqrt(np.sum(w ** 2)),
                                                                            np.sqrt(np.sum(new ** 2))))
            w[...] = new
    for record, steps in zip(trainer.history, (slice(0, 3), slice(3, 6))):
        for name, health in record["parameters"].items():
            assert health["grad_norm"] == pytest.approx(np.mean(norms[name][steps]), rel=1e-12)
            assert health["grad_norm_max"] == pytest.approx(np.max(norms[name][steps]), rel=1e-12)
            assert health["update_ratio"] == pytest.approx(np.mean(ratios[name][steps]), rel=1e-12)
            assert health["update_ratio_max"] == pytest.approx(np.max(ratios[name][steps]), rel=1e-12)
        totals = [np.sqrt(sum(norms[name][t] ** 2 for name in norms)) for t in range(6)[steps]]
        assert record["grad_norm"] == pytest.approx(np.mean(totals), rel=1e-12)
        assert record["grad_norm_max"] == pytest.approx(np.max(totals), rel=1e-12)
    if model == "notebook":  # its biases start at zero: the ratio of their first update is 1
        assert trainer.history[0]["parameters"]["bs"]["update_ratio_max"] == 1.0


def test_one_exploding_gradient_shows_in_the_interval_maximum_of_its_parameter():
    trainer = Trainer(TrainConfig(**{**TINY, "steps": 10, "eval_every": 10}))
    backward = trainer.model.backward

    def backward_exploding_at_step_4(dy):
        backward(dy)
        if trainer.step == 4:
            trainer.model.grads["rnn.R"] *= 1e6

    trainer.model.backward = backward_exploding_at_step_4
    trainer.run()
    record = trainer.history[0]
    exploded, calm = record["parameters"]["rnn.R"], record["parameters"]["rnn.W"]
    assert exploded["grad_norm_max"] > 1e5 * calm["grad_norm_max"]
    assert exploded["grad_norm_max"] > 9 * exploded["grad_norm"]  # one step in ten: the max holds it whole
    assert record["grad_norm_max"] == pytest.approx(exploded["grad_norm_max"], rel=1e-6)
    assert calm["update_ratio_max"] < 1  # clipping at 1.0 kept every update small


def test_a_stored_interval_of_other_parameters_is_refused(tmp_path):
    trainer = Trainer(TrainConfig(**TINY, out=str(tmp_path)))
    trainer.run(until=5)
    arrays, meta = trainer.state_dict()
    meta["since_evaluation"]["parameters"]["rnn.X"] = meta["since_evaluation"]["parameters"].pop("rnn.W")
    save_checkpoint(tmp_path / CHECKPOINT_FILE, arrays, meta)
    with pytest.raises(CheckpointError, match=r"since_evaluation has the parameters .*'rnn.X'.*, the model"):
        Trainer.resume(tmp_path)


RECALL = dict(TINY, task="recall", delay=3, bptt=4, seq_len=60, eval_size=16, hidden_size=6)


@pytest.mark.parametrize("options", [
    dict(model="notebook", cell=None), dict(task="copy", seq_len=3, copy_len=2), dict(RECALL, cell="lstm"),
    dict(task="chars", bptt=5, batch_size=2, hidden_size=3),
], ids=["notebook-memory", "copy", "recall-first-chunk", "chars-one-hot"])
def test_rtrl_and_bptt_give_the_same_gradient_from_a_zero_state(options, tiny_chars):
    """Sequences (or a stream's first chunk) from a zero state: RTRL's gradient is BPTT's."""
    base = {**(tiny_chars if options.get("task") == "chars" else TINY), **options, "clip_norm": 0.0}
    bptt, rtrl = Trainer(TrainConfig(**base)), Trainer(TrainConfig(**base, gradient="rtrl"))
    loss_bptt, _ = bptt.train_step()
    loss_rtrl, _ = rtrl.train_step()
    assert loss_rtrl == pytest.approx(loss_bptt, rel=1e-12)
    for name, g in bptt.model.grads.items():
        np.testing.assert_allclose(rtrl.model.grads[name], g, rtol=1e-10, atol=1e-14 * np.abs(g).max(), err_msg=name)


def test_rtrl_carries_the_gradient_across_chunks_where_truncated_bptt_cannot():
    """From the second chunk of a stream on, TBPTT's gradient stops at the chunk's start and
    RTRL's does not: the recurrent weights get a different gradient, the head the same one."""
    bptt, rtrl = Trainer(TrainConfig(**RECALL, lr=1e-12)), Trainer(TrainConfig(**RECALL, lr=1e-12, gradient="rtrl"))
    for trainer in (bptt, rtrl):
        trainer.train_step()
        trainer.train_step()
    np.testing.assert_allclose(rtrl.model.grads["head.W"], bptt.model.grads["head.W"], rtol=1e-6)
    difference = np.abs(rtrl.model.grads["rnn.R"] - bptt.model.grads["rnn.R"]).max()
    assert difference > 0.01 * np.abs(bptt.model.grads["rnn.R"]).max()


def test_rtrl_learns_the_delayed_recall_stream():
    _, summary = train(TrainConfig(**{**RECALL, "cell": "gru", "lr": 2e-2, "steps": 200, "eval_every": 200,
                                      "gradient": "rtrl"}))
    assert summary["ratio_to_baseline"] < 0.5  # from 1 (measured: 0.23)


def test_stored_rtrl_sensitivities_of_the_wrong_form_are_refused(tmp_path):
    trainer = Trainer(TrainConfig(**RECALL, gradient="rtrl", out=str(tmp_path)))
    trainer.run(until=3)
    arrays, meta = trainer.state_dict()
    assert arrays["rtrl.sensitivities"].shape[:2] == (16, 6)  # (B, S*H, P) of a GRU
    save_checkpoint(tmp_path / CHECKPOINT_FILE, {**arrays, "rtrl.sensitivities": arrays["rtrl.sensitivities"][:8]},
                    meta)
    with pytest.raises(CheckpointError, match=r"expected rtrl.sensitivities float64\[16, 6, \d+\] with the carried "
                                              r"state, got float64\[8, 6, \d+\]"):
        Trainer.resume(tmp_path)
    del arrays["rtrl.sensitivities"]
    save_checkpoint(tmp_path / CHECKPOINT_FILE, arrays, meta)
    with pytest.raises(CheckpointError, match=r"expected rtrl.sensitivities .* got the arrays \[\]"):
        Trainer.resume(tmp_path)


def test_stored_rtrl_sensitivities_without_a_carried_state_are_refused(tmp_path):
    """Independent sequences start every batch from zero: there is nothing for sensitivities to go on from."""
    trainer = Trainer(TrainConfig(**TINY, gradient="rtrl", out=str(tmp_path)))
    trainer.run(until=2)
    arrays, meta = trainer.state_dict()
    assert not any(name.startswith("rtrl.") for name in arrays)
    save_checkpoint(tmp_path / CHECKPOINT_FILE, {**arrays, "rtrl.sensitivities": np.zeros((16, 8, 3))}, meta)
    with pytest.raises(CheckpointError, match=r"stored rtrl.\* arrays \['sensitivities'\], but no RTRL goes on"):
        Trainer.resume(tmp_path)


# ----------------------------------------------------------------------------- one writer per run folder
_HOLD_LOCK = ("import sys; from numpy_rnn.train import lock_run\n"
              "with lock_run(sys.argv[1]):\n    print('locked', flush=True); sys.stdin.read()")


def _metrics_rows(out):
    return (out / "metrics.jsonl").read_text().splitlines()


def test_a_second_writer_in_this_process_is_refused_with_the_pid(tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(TrainConfig(**TINY, out=str(out)))
    trainer.run(until=20)
    rows = _metrics_rows(out)
    with lock_run(out):
        with pytest.raises(RunInUse, match=rf"run folder '.*run' is in use by process {os.getpid()} \(this one\)") as info:
            Trainer.resume(out).run()
        assert info.value.pid == os.getpid() and info.value.folder == str(out)
        with pytest.raises(RunInUse):
            trainer.run()
    assert _metrics_rows(out) == rows and trainer.step == 20  # nothing was written
    assert trainer.run()["steps"] == 40 and len(_metrics_rows(out)) == 4


def test_a_new_trainer_refuses_a_run_started_there_after_it_was_made(tmp_path):
    first, second = (Trainer(TrainConfig(**TINY, out=str(tmp_path))) for _ in range(2))
    first.run(until=10)
    with pytest.raises(FileExistsError, match="already holds a run"):
        second.run()
    assert first.run()["steps"] == 40


def test_a_lock_held_by_another_process_is_refused_and_freed_when_it_dies(tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(**{**TINY, "steps": 40}, out=str(out)))
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(RunInUse, match=rf"in use by process {holder.pid}:") as info:
            Trainer.resume(out, steps=60).run()
        assert info.value.pid == holder.pid
    finally:
        holder.kill()  # SIGKILL: no clean-up in the holder; the kernel frees the lock
        holder.wait()
    assert Trainer.resume(out, steps=60).run()["steps"] == 60 and len(_metrics_rows(out)) == 6


def test_the_lock_file_is_no_run_file_and_force_still_starts_over(tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(**TINY, out=str(out)))
    assert LOCK_FILE not in RUN_FILES and (out / LOCK_FILE).read_text() == ""  # no pid once the writer is done
    assert LOCK_FILE not in {Path(p).name for p in remove_run(out)} and (out / LOCK_FILE).exists()
    assert train(TrainConfig(**TINY, out=str(out)))[1]["steps"] == 40
    assert train(TrainConfig(**{**TINY, "steps": 20}, out=str(out)), force=True)[1]["steps"] == 20


def test_two_resumes_of_one_folder_on_the_command_line_the_second_refused_naming_the_pid(tmp_path):
    out = tmp_path / "run"
    Trainer(TrainConfig(**{**TINY, "steps": 10 ** 6, "checkpoint_every": 1000}, out=str(out))).run(until=10)
    command = [sys.executable, "-m", "numpy_rnn", "train", "--resume", str(out), "--no-progress"]
    first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        while not (out / LOCK_FILE).read_text().strip():  # the first writer holds the folder
            assert first.poll() is None, first.stderr.read()
            time.sleep(0.02)
        second = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            f"numpy-rnn train: error: run folder '{out}' is in use by process {first.pid}: one writer at a time; "
            f"wait for it to end or stop it, then resume"]
    finally:
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=60) == 130
    steps = [json.loads(row)["step"] for row in _metrics_rows(out)]
    assert steps == sorted(set(steps))  # every evaluation once
