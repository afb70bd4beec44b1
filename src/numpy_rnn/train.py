"""Training: a seeded, resumable loop over the classic tasks, with evaluation and checkpoints.

A run is described by a :class:`~numpy_rnn.config.TrainConfig` (plain data; its fields are the
``numpy-rnn train`` flags). :class:`Trainer` builds the model, the optimizer, the schedule and
the data (a :class:`~numpy_rnn.training_data.TrainingData`) from it and runs the loop::

    for step in 1 .. steps:
        x, y, state = data.next_batch()       (streams: the next chunk of B parallel streams)
        y_hat, state = forward(model, x, state) ; loss, dy = loss(y_hat, y) ; model.backward(dy)
                                              (gradient "rtrl": the same loss and gradient by RTRL)
        norm = clip_grad_norm(grads, clip_norm)          (norm measured before clipping)
        non-finite loss or norm -> raise, or skip the update (policy ``nonfinite``)
        optimizer.step(grads) ; schedule.step() ; data.carry(state)
        every eval_every steps: validation loss, history record, early stopping
        every checkpoint_every steps: checkpoint

For the character model the text is cut into ``B`` contiguous streams (the recall task draws
``B`` endless streams) and read in chunks of ``bptt`` steps: the final state of one chunk is
the initial state of the next. With backpropagation through time no gradient flows back into
the previous chunk (truncated BPTT). With ``gradient="rtrl"`` the layer reads each step
through :class:`~numpy_rnn.rtrl.RTRL`, whose sensitivities carry on across chunks and updates:
the update every ``bptt`` steps uses the untruncated gradient (online RTRL, :meth:`Trainer._rtrl`).

Early stopping (``patience > 0``) ends the run after ``patience`` evaluations without a lower
validation loss; with ``final_weights="best"`` (the default) the run then ends with the
weights of its best evaluation (:meth:`Trainer.use_final_weights`), tested, saved and reported
with their step (``weights_step`` in the summary).

Determinism: one seed feeds a ``SeedSequence`` whose children seed the weights (and dropout),
the training batches, and the fixed validation and test sets. A checkpoint holds every piece
of state the loop reads (see :mod:`numpy_rnn.train_state` for its layout), so a run stopped at
any step and resumed ends bit-for-bit equal to one never interrupted, on the same NumPy and
BLAS kernel: another kernel rounds the same sums differently, and a long run can carry that
far (the summary names where the run ended: :func:`run_environment`).

A run folder (``config.out``) holds :data:`RUN_FILES`: ``config.json``, ``metrics.jsonl`` (one
JSON object per evaluation), ``checkpoint.ckpt`` (from step 0 on), when the run ends
``summary.json``, and the command line's ``loss.png``. One folder, one writer: while
:meth:`Trainer.run` writes there it holds an OS lock on the folder's :data:`LOCK_FILE`
(:func:`lock_run`; released by the kernel when the process dies, so a crash leaves no stale
lock), and a second writer, in this or another process, is refused (:class:`RunInUse`). The
lock file stays in the folder, empty, once its writer is done: removing it would let two
writers lock two different files of the same name.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import platform
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import _checks
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .losses import get_loss
from .models import RNN, SequenceModel
from .module import Module
from .optim import CosineLR, WarmupLR, clip_grad_norm, get_optimizer, l2_norm
from .rtrl import RTRL
from .train_state import FORMAT, check_meta, check_parameter_count
from .training_data import TrainingData, make_data, set_generator_state

try:
    import fcntl
except ImportError:  # Windows: run folders are not locked
    fcntl = None

__all__ = ["CHECKPOINT_FILE", "CONFIG_FILE", "LOCK_FILE", "METRICS_FILE", "PLOT_FILE", "RUN_FILES", "SUMMARY_FILE",
           "Interrupted", "NonFiniteError", "RunInUse", "TrainConfig", "Trainer", "lock_run", "remove_run", "run_exists",
           "run_environment", "sample_text", "train"]

CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, SUMMARY_FILE, PLOT_FILE = (
    "config.json", "metrics.jsonl", "checkpoint.ckpt", "summary.json", "loss.png")
#: the files of a run folder (``--force`` deletes these and nothing else)
RUN_FILES = (CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, SUMMARY_FILE, PLOT_FILE)
#: the file a writer locks (not a run file: it stays, empty or holding the writer's pid)
LOCK_FILE = ".lock"
#: what stops a run cleanly between two steps: Ctrl-C, and ``kill`` (a shell's background job ignores Ctrl-C)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ModelKind(NamedTuple):
    """How the trainer builds a model kind and calls it: ``forward(model, x, state) -> (y, state_n)``."""

    build: Callable[[TrainConfig, TrainingData, np.random.Generator], Module]
    forward: Callable


#: ``TrainConfig.model`` -> its kind; the notebook RNN carries no state between batches
MODEL_KINDS = {
    "sequence": ModelKind(
        build=lambda config, data, rng: SequenceModel(config.model_config(data.input_size, data.output_size), rng),
        forward=lambda model, x, state: model.forward(x, state)),
    "notebook": ModelKind(
        build=lambda config, data, rng: RNN(data.input_size, config.hidden_size, data.output_size, rng=rng,
                                            dtype=np.dtype(config.dtype)),
        forward=lambda model, x, state: (model.forward(x), None)),
}


# ----------------------------------------------------------------------------- errors
class NonFiniteError(FloatingPointError):
    """A non-finite loss or gradient stopped the run at step ``step``; ``message`` names the
    step, the loss, the first parameter with a non-finite gradient and the last good checkpoint."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step

    def __reduce__(self):  # pickled whole (a Dask worker sends its exceptions back)
        return type(self), (str(self), self.step)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the run between two steps, after ``step`` steps; ``checkpoint``
    is where it was saved (or None)."""

    def __init__(self, step: int, checkpoint: str | None):
        super().__init__(f"interrupted at step {step}")
        self.step, self.checkpoint = step, checkpoint

    def __reduce__(self):
        return type(self), (self.step, self.checkpoint)


class RunInUse(RuntimeError):
    """Another writer (``pid``; None where it could not be read) holds the lock of the run
    folder ``folder``."""

    def __init__(self, folder, pid: int | None):
        who = "an unknown process" if pid is None else f"process {pid}" + (" (this one)" if pid == os.getpid() else "")
        super().__init__(f"run folder '{folder}' is in use by {who}: one writer at a time; wait for it to end "
                         f"or stop it, then resume")
        self.folder, self.pid = os.fspath(folder), pid

    def __reduce__(self):
        return type(self), (self.folder, self.pid)


# ----------------------------------------------------------------------------- run folders
@contextlib.contextmanager
def lock_run(out):
    """Hold the writer's lock of run folder ``out`` (created if missing) for the ``with`` block.

    ``fcntl.flock`` on :data:`LOCK_FILE`, which then holds this process's pid; a folder locked
    by anyone else (another process, or another open of it in this one) raises
    :class:`RunInUse` at once. Where ``fcntl`` does not exist (Windows) nothing is locked.
    """
    folder = Path(out)
    _check_out(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunInUse(folder, _pid_in(fd)) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield folder
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _pid_in(fd: int) -> int | None:
    """The pid a lock file holds, or None (empty: its holder has not written it yet)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def run_exists(out) -> bool:
    """Whether the folder ``out`` already holds a run (its config.json)."""
    return (Path(out) / CONFIG_FILE).is_file()


def remove_run(out) -> list[str]:
    """Delete the run files (:data:`RUN_FILES`) in folder ``out``, nothing else; returns them."""
    removed = []
    for name in RUN_FILES:
        path = Path(out) / name
        if path.is_file():
            path.unlink()
            removed.append(str(path))
    return removed


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"run folder '{out}' is a file, not a folder: choose another --out")


def _refuse_existing_run(out) -> None:
    if run_exists(out):
        raise FileExistsError(f"'{out}' already holds a run: resume it, or delete its run files "
                              f"(numpy_rnn.train.remove_run) to start over")


# ----------------------------------------------------------------------------- the trainer
class Trainer:
    """The model, optimizer, schedule, data and loop state of one run of ``config``.

    ``run(until=None)`` trains up to step ``until`` (default: ``config.steps``), evaluating,
    checkpointing and writing the run folder (``config.out``) on the way. ``Trainer.resume(out)``
    rebuilds a run from its folder's checkpoint. ``history`` holds one record per evaluation:
    ``step, train_loss, val_loss, grad_norm, grad_norm_max, parameters, lr, elapsed, skipped``
    (means, and maxima where named, over the finite steps since the previous evaluation; the
    gradient norm before clipping). ``parameters`` is the update health of each parameter:
    ``{name: {grad_norm, grad_norm_max, update_ratio, update_ratio_max}}``, its gradient norm
    before clipping and its update-to-weight ratio ``||dw|| / ||w||`` (:func:`_update_ratios`).

    A new trainer refuses a ``config.out`` that already holds a run (resume it, or
    :func:`remove_run` it first).
    """

    def __init__(self, config: TrainConfig):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"Trainer: expected a TrainConfig, got {type(config).__name__}")
        if config.out:
            _check_out(Path(config.out))
            _refuse_existing_run(config.out)
        self._build(config)

    def _build(self, config: TrainConfig, before_model: Callable[[TrainingData], None] | None = None) -> None:
        """Everything ``config`` defines, in its initial state; ``before_model(data)`` runs
        once the data is there and before the model is built."""
        self.config = config
        init_seed, *data_seeds = np.random.SeedSequence(config.seed).spawn(4)
        self.model_rng = np.random.default_rng(init_seed)  # the model keeps it for dropout
        self.data = make_data(config, data_seeds)
        if before_model is not None:
            before_model(self.data)
        self.kind = MODEL_KINDS[config.model]
        self.model = self.kind.build(config, self.data, self.model_rng)
        self.rtrl = RTRL(self.model.rnn) if config.gradient == "rtrl" else None
        self.loss_fn = get_loss(self.data.loss)
        self.optimizer = get_optimizer(config.optimizer, self.model.params, **_optimizer_options(config))
        self.schedule = _build_schedule(config, self.optimizer)
        self.step = 0
        self.history: list[dict] = []
        self.skips = self.skipped = 0  # non-finite steps in a row, and in all
        self.best_val, self.best_step, self.bad_evals, self.stopped = math.inf, 0, 0, False
        self.best_params: dict | None = None  # weights of the best evaluation, when the run keeps them
        self.elapsed = 0.0  # training seconds, over every session of the run
        self.since_evaluation = _fresh_interval(self.model.params)
        self.last_checkpoint: tuple[str, int] | None = None
        self.out = Path(config.out) if config.out else None
        self._training_weights: dict | None = None  # set aside while the model holds the final weights

    @classmethod
    def resume(cls, out, *, steps: int | None = None) -> Trainer:
        """The run in folder ``out`` as its checkpoint left it; ``steps`` (more than the run has
        taken) extends the run to that many steps."""
        folder = Path(out)
        if not folder.is_dir():
            why = "a file, not a run folder" if folder.exists() else "the folder does not exist"
            raise FileNotFoundError(f"no run in '{out}' ({why})")
        path = folder / CHECKPOINT_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint in '{out}' (expected {CHECKPOINT_FILE} there)")
        arrays, meta = load_checkpoint(path)
        config = TrainConfig.from_dict({**check_meta(str(path), meta).to_dict(), "out": os.fspath(out)})
        if steps is not None:
            config = _extended(config, steps, meta)
        trainer = cls.__new__(cls)  # built step by step: the stored sizes are checked before the model
        trainer._build(config, lambda data: check_parameter_count(str(path), arrays, config, data.input_size,
                                                                  data.output_size))
        try:
            trainer._restore(arrays, meta)
        except CheckpointError as exc:
            raise CheckpointError(f"checkpoint '{path}': {exc}") from None
        trainer.last_checkpoint = (str(path), trainer.step)
        return trainer

    @property
    def finished(self) -> bool:
        return self.step >= self.config.steps or self.stopped

    # ------------------------------------------------------------------ one step
    def train_step(self) -> tuple[float, float]:
        """One update from the next batch; returns its loss and gradient norm (before clipping).

        When either is not finite the update is skipped or raises, as ``config.nonfinite`` says.
        """
        x, y, state = self.data.next_batch()
        self.model.zero_grad()
        self.step += 1
        with np.errstate(over="ignore", invalid="ignore"):
            loss, state_n = self._bptt(x, y, state) if self.rtrl is None else self._rtrl(x, y, state)
            grad_norms = {name: float(l2_norm(g)) for name, g in self.model.grads.items()}
            norm = clip_grad_norm(self.model.grads, self.config.clip_norm or np.finfo(np.float64).max)
        if math.isfinite(loss) and math.isfinite(norm):
            before = self.model.state_dict()
            self.optimizer.step(self.model.grads)
            self.data.carry(state_n)
            self.skips = 0
            _add_step(self.since_evaluation, loss, norm, grad_norms, _update_ratios(before, self.model.params))
        else:
            self._non_finite(loss)
        if self.schedule is not None:
            self.schedule.step()
        return loss, norm

    def _bptt(self, x, y, state) -> tuple[float, object]:
        """The batch's loss, its gradient added into ``model.grads`` by backpropagation through
        time (a stream's chunk: truncated at the chunk's start), and the final state."""
        y_hat, state_n = self.kind.forward(self.model, x, state)
        loss, dy = self.loss_fn(y_hat, y)
        self.model.backward(dy)
        return loss, state_n

    def _rtrl(self, x, y, state) -> tuple[float, object]:
        """The same loss and gradient by real-time recurrent learning, one step at a time.

        The layer reads ``x(t)`` through :class:`~numpy_rnn.rtrl.RTRL`; wherever the task has a
        target (every step, or the last), the head's loss ``L_t`` gives ``dL/dh(t)``, which
        ``accumulate`` turns into the layer's gradient at once; the loss is the batch mean, as
        with BPTT. A batch with a state (a stream's next chunk) goes on from where the RTRL
        stopped, sensitivities included: nothing is truncated. A batch without one starts it
        from zero. With ``N = y.size`` (the mean's count) and ``l_t`` the summed loss of step t::

            L = sum_t l_t / N ;   d_h(t) = head.backward(dl_t/dy_hat(t) / N) ;
            layer.grads += d_h(t) . dh(t)/dtheta   (RTRL.accumulate, at step t)
        """
        r, head = self.rtrl, self.model.head
        if state is None:
            r.reset(x.shape[0])
        tokens = self.config.task == "chars"  # ids (B, T) fed one-hot (B, T, V), as the model does
        inputs = np.eye(self.data.input_size, dtype=self.model.dtype)[x] if tokens else x
        T, per_step, count = x.shape[1], self.config.sequence_output, y.size  # y.size: the mean's count
        loss = 0.0
        for t in range(T):
            h = r.step(inputs[:, t])  # (B, H)
            if per_step or t == T - 1:
                loss_t, dy = self.loss_fn(head.forward(h), y[:, t] if per_step else y, reduction="sum")
                loss += loss_t
                r.accumulate(head.backward(dy / count))
        return loss / count, r.state

    def _non_finite(self, loss: float) -> None:
        """Raise, or count a skipped update (parameters and optimizer state untouched)."""
        self.data.carry(None)
        self.skips += 1
        self.skipped += 1
        bad = next((name for name, g in self.model.grads.items() if not np.all(np.isfinite(g))), "none")
        where = (f"last good checkpoint: {self.last_checkpoint[0]} (step {self.last_checkpoint[1]})"
                 if self.last_checkpoint else "no checkpoint was saved yet")
        what = f"loss {loss}, first parameter with a non-finite gradient: {bad}; {where}"
        if self.config.nonfinite == "raise":
            raise NonFiniteError(f"non-finite loss or gradient at step {self.step}: {what}", self.step)
        if self.skips >= self.config.max_skips:
            raise NonFiniteError(f"gave up after {self.skips} non-finite steps in a row, at step {self.step}: {what}",
                                 self.step)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, split: str = "valid") -> float:
        """Mean loss of the model's current weights on the fixed set that ``split`` names,
        ``"valid"`` or ``"test"`` (dropout off)."""
        if split not in ("valid", "test"):
            raise ValueError(f"Trainer.evaluate: expected split 'valid' or 'test', got {split!r}")
        total = count = 0.0
        state = None
        mode = self.model.training
        self.model.eval()
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                for x, y in self.data.eval_batches(split):
                    y_hat, state_n = self.kind.forward(self.model, x, state)
                    total += self.loss_fn(y_hat, y, reduction="sum")[0]
                    count += y.size
                    state = state_n if self.data.carries_state else None
        finally:
            self.model.train(mode)
        return total / count

    def _record(self) -> dict:
        """Evaluate, append the history record, write it to metrics.jsonl, update early stopping."""
        interval = self.since_evaluation
        val = self.evaluate("valid")
        record = {"step": self.step, "train_loss": _interval_mean(interval, interval["loss_sum"]),
                  "val_loss": _finite_or_none(val), **_interval_norms(interval, interval),
                  "parameters": {name: {**_interval_norms(interval, sums),
                                        "update_ratio": _interval_mean(interval, sums["update_ratio_sum"]),
                                        "update_ratio_max": _interval_max(interval, sums["update_ratio_max"])}
                                 for name, sums in interval["parameters"].items()},
                  "lr": self.optimizer.lr, "elapsed": self.elapsed, "skipped": self.skipped}
        self.history.append(record)
        self.since_evaluation = _fresh_interval(self.model.params)
        if self.out:
            with open(self.out / METRICS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        if val < self.best_val:
            self.best_val, self.best_step, self.bad_evals = val, self.step, 0
            if self.config.keeps_best:
                self.best_params = self.model.state_dict()
        else:
            self.bad_evals += 1
            self.stopped = 0 < self.config.patience <= self.bad_evals
        return record

    # ------------------------------------------------------------------ the weights a run ends with
    @property
    def weights_step(self) -> int:
        """The step the model's current weights come from."""
        return self.best_step if self._training_weights is not None else self.step

    def use_final_weights(self) -> int:
        """Put the weights the run ends with into the model: with early stopping keeping the
        best weights, those of the best evaluation so far (the training weights are set aside
        and come back when training goes on). Returns the step they come from."""
        if self.config.keeps_best and self.best_params is not None and self._training_weights is None:
            self._training_weights = self.model.state_dict()
            self.model.load_state_dict(self.best_params)
        return self.weights_step

    def _use_training_weights(self) -> None:
        if self._training_weights is not None:
            self.model.load_state_dict(self._training_weights)
            self._training_weights = None

    # ------------------------------------------------------------------ the loop
    def run(self, until: int | None = None, *, progress: bool = False) -> dict | None:
        """Train to step ``until`` (default and at most ``config.steps``) or early stopping.

        Returns the summary when the run is complete, None when it paused at ``until`` (with a
        run folder, the checkpoint then holds step ``until``: a resume goes on from there).
        The run folder is locked meanwhile (:func:`lock_run`; :class:`RunInUse` when another
        writer holds it). Ctrl-C and SIGTERM (:data:`STOP_SIGNALS`) are honoured between steps:
        a checkpoint is saved (when there is a run folder) and :class:`Interrupted` is raised.
        ``progress`` shows a tqdm bar with the training loss, the gradient norm and sequences per second.
        """
        c = self.config
        until = c.steps if until is None else min(_checks.check_size("Trainer.run", "until", until), c.steps)
        self._use_training_weights()
        bar = _progress_bar(c.steps, self.step, c.task) if progress else None
        try:
            with lock_run(self.out) if self.out else contextlib.nullcontext():
                return self._run_locked(until, bar)
        finally:
            if bar is not None:
                bar.close()

    def _run_locked(self, until: int, bar) -> dict | None:
        """:meth:`run` once the folder (if any) is locked."""
        c = self.config
        if self.out:
            self._open_folder()
        base, start, first = self.elapsed, time.perf_counter(), self.step
        with _deferred_stop() as interrupted:
            while self.step < until and not self.stopped:
                loss, norm = self.train_step()
                self.elapsed = base + time.perf_counter() - start
                self._periodic()
                if bar is not None:
                    rate = (self.step - first) * c.batch_size / max(self.elapsed - base, 1e-9)
                    bar.set_postfix({"loss": f"{loss:.4g}", "gnorm": f"{norm:.3g}", "seq/s": f"{rate:.0f}"},
                                    refresh=False)
                    bar.update(1)
                if interrupted:
                    raise Interrupted(self.step, self.save() if self.out else None)
        if self.finished:
            return self.finish()
        if self.out and self.last_checkpoint != (os.fspath(self.out / CHECKPOINT_FILE), self.step):
            self.save()  # a pause is a checkpoint, as an interruption is
        return None

    def _periodic(self) -> None:
        c = self.config
        if self.step % c.eval_every == 0 or self.step == c.steps:
            self._record()
        if self.out and c.checkpoint_every and self.step % c.checkpoint_every == 0:
            self.save()

    def finish(self) -> dict:
        """Final weights (:meth:`use_final_weights`), test loss, checkpoint and summary.json;
        returns the summary."""
        weights_step = self.use_final_weights()
        test = self.evaluate("test")
        last = self.history[-1] if self.history else {}
        c, baseline = self.config, self.data.baseline_loss
        summary = {
            "task": c.task, "loss": self.data.loss, "model": c.model, "cell": c.cell_used, "steps": self.step,
            "stopped_early": self.stopped, "weights_step": weights_step, "test_loss": _finite_or_none(test),
            "baseline_loss": baseline, "ratio_to_baseline": _finite_or_none(test / baseline),
            "best_val_loss": _finite_or_none(self.best_val), "best_step": self.best_step,
            "final_train_loss": last.get("train_loss"), "skipped_steps": self.skipped, "seconds": self.elapsed,
            "environment": run_environment(),
        }
        if self.out:
            summary["checkpoint"] = self.save()
            (self.out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        return summary

    # ------------------------------------------------------------------ the run folder
    def _open_folder(self) -> None:
        """Create the folder; write config.json, metrics.jsonl as far as the history goes, and
        a first checkpoint of the initial state (so a good checkpoint always exists). A summary
        of an earlier end of the run (before an extension) is removed. A new run refuses a run
        another writer started there since this trainer was made."""
        if self.last_checkpoint is None:
            _refuse_existing_run(self.out)
        (self.out / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n", encoding="utf-8")
        lines = "".join(json.dumps(record) + "\n" for record in self.history)
        (self.out / METRICS_FILE).write_text(lines, encoding="utf-8")
        if not self.finished:
            (self.out / SUMMARY_FILE).unlink(missing_ok=True)
        if self.last_checkpoint is None:
            self.save()

    def save(self, path=None) -> str:
        """Write the full training state to ``path`` (default: the run folder's checkpoint)."""
        if path is None and self.out is None:
            raise ValueError("Trainer.save: expected a path, as the run has no folder (config.out)")
        path = os.fspath(path or self.out / CHECKPOINT_FILE)
        save_checkpoint(path, *self.state_dict())
        self.last_checkpoint = (path, self.step)
        return path

    def state_dict(self) -> tuple[dict, dict]:
        """``(arrays, meta)`` for :func:`save_checkpoint`: everything the loop reads, under the
        public names of :mod:`numpy_rnn.train_state`."""
        weights = self._training_weights if self._training_weights is not None else self.model.params
        arrays = {f"params.{name}": value for name, value in weights.items()}
        arrays.update({f"best.{name}": value for name, value in (self.best_params or {}).items()})
        optimizer = self.optimizer.state_dict()
        for name, state in optimizer.pop("state").items():
            arrays.update({f"optimizer.{name}.{key}": value for key, value in state.items()})
        data_arrays, data_meta = self.data.state_dict()
        arrays.update({f"data.{key}": value for key, value in data_arrays.items()})
        if self._rtrl_goes_on():
            arrays["rtrl.sensitivities"] = self.rtrl.sensitivities.copy()
        meta = {
            "format": FORMAT, "config": self.config.to_dict(), "step": self.step, "history": self.history,
            "since_evaluation": copy.deepcopy(self.since_evaluation), "skipped": self.skipped, "skips_in_a_row": self.skips,
            "best_step": self.best_step, "best_val_loss": _finite_or_none(self.best_val),
            "evaluations_without_improvement": self.bad_evals, "stopped_early": self.stopped,
            "elapsed": self.elapsed, "optimizer": optimizer,
            "schedule": self.schedule.state_dict() if self.schedule else None,
            "model_rng": self.model_rng.bit_generator.state, "data": data_meta,
        }
        return arrays, meta

    def _restore(self, arrays: dict, meta: dict) -> None:
        """Load what :meth:`state_dict` returned into this freshly built trainer of the same
        configuration; ``meta`` has passed :func:`~numpy_rnn.train_state.check_meta`."""
        groups = _split_arrays(arrays)
        self.model.load_state_dict(_checked_weights(groups["params"], self.model, "params"))
        if groups["best"]:
            if not self.config.keeps_best:
                raise CheckpointError("stored best.* weights, but the configuration does not keep the best weights")
            self.best_params = _checked_weights(groups["best"], self.model, "best")
        state = {name: {} for name in self.model.params}
        for key, value in groups["optimizer"].items():
            name, _, part = key.rpartition(".")
            if name not in state:
                raise CheckpointError(f"optimizer state for an unknown parameter: {key!r:.120}")
            state[name][part] = value
        try:
            self.optimizer.load_state_dict({**meta["optimizer"], "state": state})
            if self.schedule is not None:
                self.schedule.load_state_dict(meta["schedule"])
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"invalid optimizer or schedule state: {exc}") from None
        set_generator_state(self.model_rng, meta["model_rng"], "model_rng")
        self.data.load_state_dict(groups["data"], meta["data"])
        self._check_carried_state()
        self._restore_rtrl(groups["rtrl"])
        self.step, self.history = meta["step"], meta["history"]
        self.since_evaluation = _checked_interval(meta["since_evaluation"], self.model.params)
        self.skipped, self.skips = meta["skipped"], meta["skips_in_a_row"]
        self.best_step, self.bad_evals, self.stopped = (meta["best_step"], meta["evaluations_without_improvement"],
                                                        meta["stopped_early"])
        self.best_val = math.inf if meta["best_val_loss"] is None else meta["best_val_loss"]
        self.elapsed = meta["elapsed"]

    def _rtrl_goes_on(self) -> bool:
        """Whether the next batch continues the RTRL (a carried state): then its sensitivities
        are part of the loop state."""
        return self.rtrl is not None and self.data.carries_state and self.data.state is not None

    def _restore_rtrl(self, stored: dict) -> None:
        """The RTRL at the carried state with the stored sensitivities (``rtrl.sensitivities``)."""
        if not self._rtrl_goes_on():
            if stored:
                raise CheckpointError(f"stored rtrl.* arrays {sorted(stored)}, but no RTRL goes on from a carried "
                                      f"state in this run")
            return
        self.rtrl.reset(self.config.batch_size, self.data.state)
        live = self.rtrl.sensitivities
        expected = f"rtrl.sensitivities {live.dtype}{list(live.shape)} with the carried state"
        if set(stored) != {"sensitivities"}:
            raise CheckpointError(f"expected {expected}, got the arrays {sorted(f'rtrl.{name}' for name in stored)}")
        found = stored["sensitivities"]
        if found.shape != live.shape or found.dtype != live.dtype:
            raise CheckpointError(f"expected {expected}, got {found.dtype}{list(found.shape)}")
        self.rtrl.sensitivities = found

    def _check_carried_state(self) -> None:
        """A stored carried state has the parts, shape and dtype the model's layer takes: refused
        at load, not at the first training step."""
        state = self.data.state if self.data.carries_state else None
        if state is None:
            return
        rnn, parts = self.model.rnn, state if isinstance(state, tuple) else (state,)
        shape = (rnn.num_layers * rnn.num_directions, self.config.batch_size, rnn.hidden_size)
        if len(parts) != len(rnn.state_names) or any(p.shape != shape or p.dtype != self.model.dtype for p in parts):
            found = ", ".join(f"{p.dtype}{list(p.shape)}" for p in parts)
            raise CheckpointError(f"expected the carried state as {len(rnn.state_names)} array(s) "
                                  f"{np.dtype(self.model.dtype)}{list(shape)}, got {found}")


def _fresh_interval(names) -> dict:
    """Sums and maxima over the finite steps since the last evaluation: of the loss, of the
    gradient norm (before clipping), and per parameter (``names``) of its gradient norm and of
    its update-to-weight ratio (:func:`_update_ratios`)."""
    return {"loss_sum": 0.0, "grad_norm_sum": 0.0, "grad_norm_max": 0.0, "steps": 0,
            "parameters": {name: {"grad_norm_sum": 0.0, "grad_norm_max": 0.0, "update_ratio_sum": 0.0,
                                  "update_ratio_max": 0.0} for name in names}}


def _add_step(interval: dict, loss: float, norm: float, grad_norms: dict, update_ratios: dict) -> None:
    """Add one finite step to the interval's sums and maxima."""
    interval["loss_sum"] += loss
    interval["grad_norm_sum"] += norm
    interval["grad_norm_max"] = max(interval["grad_norm_max"], norm)
    interval["steps"] += 1
    for name, sums in interval["parameters"].items():
        for key, value in (("grad_norm", grad_norms[name]), ("update_ratio", update_ratios[name])):
            sums[f"{key}_sum"] += value
            sums[f"{key}_max"] = max(sums[f"{key}_max"], value)


def _update_ratios(before: dict, after: dict) -> dict[str, float]:
    """Per parameter ``||w_after - w_before|| / max(||w_before||, ||w_after||)``.

    This is the usual update-to-weight ratio ``||dw|| / ||w||`` while updates are small (both
    norms agree; healthy training: around 1e-3), and it stays finite and in ``[0, 2]``: 1 for
    the first update of a parameter that starts at zero, 0 while it stays zero, near 1 for an
    update that dwarfs the weights, and 1 when the update overflowed them (its limit).
    """
    ratios = {}
    for name, old in before.items():
        new = after[name]
        with np.errstate(over="ignore", invalid="ignore"):
            scale = max(np.linalg.norm(old), np.linalg.norm(new))
            ratio = float(np.linalg.norm(new - old) / scale) if scale > 0 else 0.0
        ratios[name] = ratio if math.isfinite(ratio) else 1.0
    return ratios


def _interval_mean(interval: dict, total: float) -> float | None:
    return total / interval["steps"] if interval["steps"] else None


def _interval_max(interval: dict, largest: float) -> float | None:
    return largest if interval["steps"] else None


def _interval_norms(interval: dict, sums: dict) -> dict:
    """``grad_norm`` (the interval's mean) and ``grad_norm_max`` of ``sums``."""
    return {"grad_norm": _interval_mean(interval, sums["grad_norm_sum"]),
            "grad_norm_max": _interval_max(interval, sums["grad_norm_max"])}


def _checked_interval(stored: dict, names) -> dict:
    """The stored interval (schema checked by check_meta) when it has the model's parameters."""
    if set(stored["parameters"]) != set(names):
        raise CheckpointError(f"since_evaluation has the parameters {sorted(stored['parameters'])[:8]}, "
                              f"the model {sorted(names)[:8]}")
    return copy.deepcopy(stored)


def _split_arrays(arrays: dict) -> dict[str, dict]:
    """Stored arrays by group (``params``, ``best``, ``optimizer``, ``data``, ``rtrl``), names without it."""
    groups = {"params": {}, "best": {}, "optimizer": {}, "data": {}, "rtrl": {}}
    for key, value in arrays.items():
        group, _, name = key.partition(".")
        if group not in groups or not name:
            raise CheckpointError(f"unexpected array {key!r:.120}; expected names params.*, best.*, optimizer.*, "
                                  f"data.*, rtrl.*")
        groups[group][name] = value
    return groups


def _checked_weights(weights: dict, model: Module, group: str) -> dict:
    """``weights`` when they are exactly the model's parameter names, shapes and dtypes."""
    if set(weights) != set(model.params):
        raise CheckpointError(f"stored {group}.* parameters {sorted(weights)[:8]} differ from the model's "
                              f"{sorted(model.params)[:8]}")
    for name, param in model.params.items():
        value = weights[name]
        if value.shape != param.shape or value.dtype != param.dtype:
            raise CheckpointError(f"stored parameter {group}.{name} has shape {value.shape} dtype {value.dtype}, "
                                  f"the model's {param.shape} {param.dtype}")
    return weights


def _extended(config: TrainConfig, steps: int, meta: dict) -> TrainConfig:
    """``config`` with ``steps`` more than the run has taken, where the run can go on."""
    steps = _checks.check_size("Trainer.resume", "steps", steps)
    if steps <= meta["step"]:
        raise ValueError(f"the run in '{config.out}' is already at step {meta['step']}; "
                         f"to extend it, give more steps than that (got {steps})")
    if meta["stopped_early"]:
        raise ValueError(f"the run in '{config.out}' stopped early at step {meta['step']} "
                         f"(patience {config.patience}): there is nothing to extend")
    if config.schedule == "cosine" and steps != config.steps:
        raise ValueError(f"the run in '{config.out}' has a cosine schedule fixed to {config.steps} steps: "
                         f"it cannot be extended (start a new run)")
    return TrainConfig.from_dict({**config.to_dict(), "steps": steps})


def _build_schedule(config: TrainConfig, optimizer):
    """None (constant), CosineLR, or either after a linear WarmupLR."""
    after = CosineLR(optimizer, config.steps - config.warmup) if config.schedule == "cosine" else None
    return WarmupLR(optimizer, config.warmup, after) if config.warmup else after


def _optimizer_options(config: TrainConfig) -> dict:
    options = {"lr": config.lr, "weight_decay": config.weight_decay}
    return {**options, "momentum": config.momentum} if config.momentum else options


@contextlib.contextmanager
def _handling_signals(signums, handler):
    """``handler`` for the signals ``signums`` while the block runs, the previous handlers put
    back after it. Signal handlers belong to the main thread: elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


@contextlib.contextmanager
def _deferred_stop():
    """Turn Ctrl-C (SIGINT) and ``kill`` (SIGTERM) into a request the loop honours between steps
    (a second one interrupts at once).

    Yields a list that becomes non-empty once one arrives (outside the main thread: never).
    """
    requested: list = []

    def handler(signum, frame):
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)

    with _handling_signals(STOP_SIGNALS, handler):
        yield requested


def _progress_bar(total: int, initial: int, desc: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("the progress bar needs tqdm: pip install 'numpy-rnn[cli]' "
                          "(or pass progress=False)") from None
    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: a non-finite loss is recorded as null."""
    return float(value) if math.isfinite(value) else None


# ----------------------------------------------------------------------------- entry points
def sample_text(trainer: Trainer, length: int, *, temperature: float = 1.0, prime: str = "", rng=0) -> str:
    """``length`` characters written by the character model of ``trainer`` with its current
    weights (see :meth:`SequenceModel.generate`); the text ``prime`` is read first (without
    one, the first character is drawn from the text's character frequencies). ``temperature``
    divides the logits (below 1: safer text, above 1: wilder); ``rng`` (a seed or a Generator)
    draws the characters."""
    if trainer.config.task != "chars":
        raise ValueError(f"sample_text: needs a run of task 'chars', got task {trainer.config.task!r}")
    if not isinstance(prime, str):
        raise TypeError(f"sample_text: expected prime to be a str, got {type(prime).__name__}")
    corpus, gen = trainer.data.corpus, _checks.as_generator(rng, "sample_text")
    length = _checks.check_size("sample_text", "length", length)
    temperature = _checks.check_real("sample_text", "temperature", temperature, low=0.0, low_open=True)
    unknown = sorted(set(prime) - set(corpus.vocab))
    if unknown:
        raise ValueError(f"sample_text: the prime has characters the model never saw: {unknown}")
    if prime:
        ids = trainer.model.generate(corpus.encode(prime), length, temperature=temperature, rng=gen)
    else:
        first = np.array([gen.choice(corpus.input_size, p=corpus.unigram)])
        rest = trainer.model.generate(first, length - 1, temperature=temperature, rng=gen) if length > 1 else []
        ids = np.concatenate([first, rest]).astype(np.int64)
    return corpus.decode(ids)


def run_environment() -> dict:
    """Where this process computes, as the summary records it: ``python`` and ``numpy``
    versions, ``cpu`` (the model name), ``cpu_count``, and ``blas``: numpy's BLAS libraries
    (``internal_api``, ``version``, ``architecture``: the kernel it chose, ``num_threads``), or
    None without threadpoolctl (the ``fast`` extra), which reads them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        blas = None
    else:
        blas = [{key: pool.get(key) for key in ("internal_api", "version", "architecture", "num_threads")}
                for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return {"python": platform.python_version(), "numpy": np.__version__, "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(), "blas": blas}


def _cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine() or "unknown"


def train(config: TrainConfig, *, progress: bool = False, force: bool = False) -> tuple[Trainer, dict]:
    """Run ``config`` from scratch to the end; returns the trainer and the summary. ``progress``
    shows a progress bar (:meth:`Trainer.run`).

    A run folder that already holds a run is refused (FileExistsError: resume it instead),
    unless ``force``, which first deletes that run's files (:func:`remove_run`).
    """
    if force and config.out:
        remove_run(config.out)
    trainer = Trainer(config)
    return trainer, trainer.run(progress=progress)
