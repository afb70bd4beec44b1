"""Training: a seeded, resumable loop over the classic tasks, with evaluation and checkpoints.

A run is described by a :class:`TrainConfig` (plain data; its fields are the ``numpy-rnn
train`` flags). :class:`Trainer` builds everything from it and runs the loop::

    for step in 1 .. steps:
        x, y, state = next batch              (chars: the next chunk of B parallel streams)
        y_hat, state = model.forward(x, state) ; loss, dy = loss(y_hat, y) ; model.backward(dy)
        norm = clip_grad_norm(grads, clip_norm)          (norm measured before clipping)
        non-finite loss or norm -> raise, or skip the update (policy ``nonfinite``)
        optimizer.step(grads) ; schedule.step()
        every eval_every steps: validation loss, history record, early stopping
        every checkpoint_every steps: checkpoint

For the character model the text is cut into ``B`` contiguous streams and read in chunks of
``bptt`` steps (truncated backpropagation through time): the final state of one chunk is the
initial state of the next, and no gradient flows back into the previous chunk.

Determinism: one seed feeds a ``SeedSequence`` whose children seed the weights (and dropout),
the training batches, and the fixed validation and test sets. A checkpoint holds every piece
of state the loop reads (parameters, optimizer and schedule state, step, both generators'
states, the stream position and carried state, history, counters), so a run stopped at any
step and resumed ends bit-for-bit equal to one never interrupted.

A run folder (``config.out``) holds ``config.json``, ``metrics.jsonl`` (one JSON object per
evaluation), ``checkpoint.ckpt`` (from step 0 on) and, when the run ends, ``summary.json``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _checks
from .cells import NONLINEARITIES
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .init import get_initializer
from .losses import get_loss
from .models import CELLS, RNN, ModelConfig, SequenceModel
from .optim import OPTIMIZERS, CosineLR, WarmupLR, clip_grad_norm, get_optimizer
from .tasks import TASKS, CharCorpus, make_task

__all__ = ["Interrupted", "NonFiniteError", "TrainConfig", "Trainer", "run_exists", "sample_text", "train"]

#: model kinds: SequenceModel built from ModelConfig, or the notebook's Elman regressor
MODELS = ("sequence", "notebook")
#: learning-rate schedules (``warmup`` steps of linear warm-up may precede either)
SCHEDULES = ("constant", "cosine")
#: what a non-finite loss or gradient does
NONFINITE = ("raise", "skip")
TASK_NAMES = (*TASKS, "chars")
_EVAL_BATCH = 256  # sequences per evaluation batch: bounds the memory of the forward caches

CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, SUMMARY_FILE = (
    "config.json", "metrics.jsonl", "checkpoint.ckpt", "summary.json")
_FORMAT = "numpy_rnn.train/1"
# Trainer attributes a checkpoint stores as they are (besides parameters, optimizer, schedule, data)
_LOOP_STATE = ("step", "history", "skips", "skipped", "best_step", "bad_evals", "stopped", "elapsed", "_interval")


def _option(default, help: str, **limits):
    """A TrainConfig field: its default, its help text (the CLI's) and its limits."""
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"help": help, **limits})
    return field(default=default, metadata={"help": help, **limits})


@dataclass(frozen=True)
class TrainConfig(_checks.PlainConfig):
    """Everything that defines a training run; each field is a ``numpy-rnn train`` flag.

    Integers carry a ``min``; floats a ``low`` (and ``high``); strings a ``choices`` registry.
    ``__post_init__`` checks them all and that the task and model can be built.
    """

    # the task
    task: str = _option("memory", "task", choices=TASK_NAMES)
    seq_len: int = _option(10, "time steps T (memory, adding, adding-hs, sine); the delay for copy", min=1)
    copy_len: int = _option(10, "copy: symbols to copy", min=1)
    n_symbols: int = _option(8, "copy: symbol alphabet size", min=1)
    horizon: int = _option(1, "sine: steps ahead to forecast", min=1)
    text: str | None = _option(None, "chars: a UTF-8 text file (default: the shipped Sonnets)")
    bptt: int = _option(50, "chars: steps per truncated-BPTT chunk", min=1)
    # the model
    model: str = _option("sequence", "model kind: 'notebook' is the notebook's Elman RNN", choices=MODELS)
    cell: str | None = _option(None, "recurrent cell (default lstm; the notebook model is always rnn)",
                               choices=tuple(CELLS))
    hidden_size: int = _option(64, "hidden units H", min=1)
    num_layers: int = _option(1, "stacked recurrent layers", min=1)
    bidirectional: bool = _option(False, "read the sequence in both directions")
    dropout: float = _option(0.0, "dropout between stacked layers", low=0.0, high=1.0)
    nonlinearity: str = _option("tanh", "rnn cell activation", choices=tuple(NONLINEARITIES))
    init: dict = _option({}, "initialiser per parameter, e.g. R=identity")
    embedding_size: int = _option(0, "chars: embedding width (0: one-hot input)", min=0)
    # optimisation
    optimizer: str = _option("adam", "optimizer", choices=tuple(OPTIMIZERS))
    lr: float = _option(1e-3, "learning rate", low=0.0)
    weight_decay: float = _option(0.0, "weight decay", low=0.0)
    momentum: float = _option(0.0, "momentum (sgd, rmsprop)", low=0.0)
    schedule: str = _option("constant", "learning-rate schedule", choices=SCHEDULES)
    warmup: int = _option(0, "steps of linear learning-rate warm-up", min=0)
    clip_norm: float = _option(1.0, "clip the global gradient norm to this (0: no clipping)", low=0.0)
    batch_size: int = _option(32, "sequences (chars: streams) per batch", min=1)
    steps: int = _option(1000, "training steps", min=1)
    # evaluation and robustness
    eval_every: int = _option(100, "steps between evaluations", min=1)
    eval_size: int = _option(1000, "sequences in each of the validation and test sets (chars: their whole text)",
                             min=1)
    patience: int = _option(0, "stop after this many evaluations without improvement (0: never)", min=0)
    nonfinite: str = _option("raise", "on a non-finite loss or gradient", choices=NONFINITE)
    max_skips: int = _option(10, "skip: give up after this many non-finite steps in a row", min=1)
    checkpoint_every: int = _option(100, "steps between checkpoints (0: only at the end)", min=0)
    seed: int = _option(0, "seed of weights, data and dropout", min=0)
    dtype: str = _option("float64", "floating-point type of the weights and the data", choices=("float64", "float32"))
    out: str | None = _option(None, "run folder (None: nothing is written; the command line's default: runs/TASK)")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _check_field(f, getattr(self, f.name)))
        if self.lr == 0:
            raise ValueError("TrainConfig: expected lr > 0, got 0.0")
        if self.momentum and self.optimizer not in ("sgd", "rmsprop"):
            raise ValueError(f"TrainConfig: momentum applies to sgd and rmsprop, got optimizer {self.optimizer!r}")
        if self.schedule == "cosine" and self.warmup >= self.steps:
            raise ValueError(f"TrainConfig: expected warmup < steps for the cosine schedule, "
                             f"got {self.warmup} >= {self.steps}")
        if self.model == "notebook":
            self._check_notebook()
        if self.task != "chars":
            _task(self)  # the task checks its own options (e.g. adding needs seq_len >= 2)
        if self.model == "sequence":
            _model_config(self, 1, 1)  # and ModelConfig its own (cell with nonlinearity, ...)

    def _check_notebook(self):
        if self.task in ("copy", "chars"):
            raise ValueError(f"TrainConfig: the notebook model is a sequence-to-one regressor; "
                             f"task {self.task!r} needs model 'sequence'")
        fixed = {"cell": (None, "rnn"), "num_layers": (1,), "bidirectional": (False,), "dropout": (0.0,),
                 "nonlinearity": ("tanh",), "init": ({},), "embedding_size": (0,)}
        changed = [f"{name}={getattr(self, name)!r}" for name, allowed in fixed.items()
                   if getattr(self, name) not in allowed]
        if changed:
            raise ValueError(f"TrainConfig: the notebook model is one tanh Elman layer with its own initialisation; "
                             f"it takes hidden_size only, got {', '.join(changed)}")

    @property
    def cell_used(self) -> str:
        """The cell trained: ``cell``, else lstm (``model='sequence'``) or rnn (``'notebook'``)."""
        return self.cell or ("rnn" if self.model == "notebook" else "lstm")

    @classmethod
    def check_value(cls, name: str, value):
        """``value`` checked (and normalised) as field ``name``, alone: what a CLI flag needs."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if name not in fields:
            raise ValueError(f"TrainConfig: unknown field {name!r}; valid fields: {', '.join(sorted(fields))}")
        return _check_field(fields[name], value)


def _check_field(f: dataclasses.Field, value):
    """``value`` of field ``f`` checked against its metadata; returns it normalised."""
    owner, meta = "TrainConfig", f.metadata
    if value is None and f.default is None:
        return None
    if "choices" in meta:
        if value not in meta["choices"]:
            raise ValueError(f"{owner}: unknown {f.name} {value!r}; valid names: {', '.join(meta['choices'])}")
        return value
    if isinstance(f.default, bool):
        if not isinstance(value, bool):
            raise TypeError(f"{owner}: expected {f.name} to be a bool, got {type(value).__name__} {value!r}")
        return value
    if f.default is None:  # a path
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{owner}: expected {f.name} to be a path (str or os.PathLike), "
                            f"got {type(value).__name__} {value!r}")
        return os.fspath(value)
    if "min" in meta:
        return _checks.check_size(owner, f.name, value, minimum=meta["min"])
    if "low" in meta:
        return _checks.check_float(owner, f.name, value, low=meta["low"], high=meta.get("high", math.inf),
                                   high_open="high" in meta)
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise TypeError(f"{owner}: expected {f.name} to be a dict of parameter name -> initialiser name, "
                        f"got {value!r}")
    for name in value.values():
        get_initializer(name, 1)  # an unknown name lists the valid ones
    return dict(value)


# ----------------------------------------------------------------------------- building
def _task(config: TrainConfig):
    """The synthetic task of ``config`` (not chars)."""
    options = {"copy": {"delay": config.seq_len, "n_symbols": config.n_symbols, "copy_len": config.copy_len},
               "sine": {"seq_len": config.seq_len, "horizon": config.horizon}}
    return make_task(config.task, **options.get(config.task, {"seq_len": config.seq_len}))


def _model_config(config: TrainConfig, input_size: int, output_size: int) -> ModelConfig:
    """The :class:`ModelConfig` of a sequence model for ``config`` and the data's sizes."""
    return ModelConfig(
        input_size=input_size, output_size=output_size, cell=config.cell_used,
        hidden_size=config.hidden_size, num_layers=config.num_layers, bidirectional=config.bidirectional,
        dropout=config.dropout, nonlinearity=config.nonlinearity, init=dict(config.init),
        sequence_output=config.task in ("copy", "chars"), tokens=config.task == "chars",
        embedding_size=config.embedding_size, dtype=config.dtype)


def _build_model(config: TrainConfig, data, rng: np.random.Generator):
    if config.model == "notebook":
        return RNN(data.input_size, config.hidden_size, data.output_size, rng=rng, dtype=np.dtype(config.dtype))
    return SequenceModel(_model_config(config, data.input_size, data.output_size), rng)


def _build_schedule(config: TrainConfig, optimizer):
    """None (constant), CosineLR, or either after a linear WarmupLR."""
    after = CosineLR(optimizer, config.steps - config.warmup) if config.schedule == "cosine" else None
    return WarmupLR(optimizer, config.warmup, after) if config.warmup else after


def _optimizer_options(config: TrainConfig) -> dict:
    options = {"lr": config.lr, "weight_decay": config.weight_decay}
    return {**options, "momentum": config.momentum} if config.momentum else options


def _forward(model, x, state=None):
    """``(y, state_n)`` for either model kind (the notebook RNN carries no state)."""
    if isinstance(model, RNN):
        return model.forward(x), None
    return model.forward(x, state=state)


@contextlib.contextmanager
def _evaluating(model):
    """Dropout off inside the block (the notebook RNN has none)."""
    if isinstance(model, RNN):
        yield
        return
    model.eval()
    try:
        yield
    finally:
        model.train()


def _mean_loss(model, loss_fn, batches, carry: bool) -> float:
    """Mean loss over all targets of ``batches``; ``carry`` passes each state to the next batch."""
    total = count = 0.0
    state = None
    with _evaluating(model), np.errstate(over="ignore", invalid="ignore"):
        for x, y in batches:
            y_hat, state_n = _forward(model, x, state)
            total += loss_fn(y_hat, y, reduction="sum")[0]
            count += y.size
            state = state_n if carry else None
    return total / count


class _TaskData:
    """A synthetic task: training batches from one generator, fixed validation and test sets."""

    carries_state = False

    def __init__(self, config: TrainConfig, rng, valid_seed, test_seed):
        self.task, self.batch_size, self.rng = _task(config), config.batch_size, rng
        self.dtype = np.dtype(config.dtype)
        self.input_size, self.output_size = self.task.input_size, self.task.output_size
        self.loss, self.baseline_loss = self.task.loss, self.task.baseline_loss
        self.sets = {"valid": self._sample(config.eval_size, np.random.default_rng(valid_seed)),
                     "test": self._sample(config.eval_size, np.random.default_rng(test_seed))}

    def _sample(self, n, rng):
        """A batch in the run's dtype (the tasks draw float64; integer targets stay integers)."""
        return tuple(a.astype(self.dtype) if a.dtype.kind == "f" else a for a in self.task.sample(n, rng))

    def next_batch(self):
        return (*self._sample(self.batch_size, self.rng), None)

    def carry(self, state) -> None:
        """Independent sequences: nothing is carried."""

    def eval_batches(self, split: str):
        x, y = self.sets[split]
        return ((x[i:i + _EVAL_BATCH], y[i:i + _EVAL_BATCH]) for i in range(0, len(x), _EVAL_BATCH))

    def state_dict(self) -> tuple[dict, dict]:
        return {}, {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, arrays: dict, meta: dict) -> None:
        self.rng.bit_generator.state = meta["rng"]


class _StreamData:
    """Character text as ``B`` parallel streams read in ``bptt``-step chunks, state carried.

    The text is split 80/10/10 into training, validation and test parts. An epoch is every
    full chunk of the training streams; the carried state restarts at zero with each epoch.
    Validation and test read their whole part as streams, the last chunk possibly shorter.
    """

    carries_state = True

    def __init__(self, config: TrainConfig):
        corpus = CharCorpus.from_file(config.text) if config.text else CharCorpus.builtin()
        train, rest = corpus.split(0.2)
        valid, test = rest.split(0.5)
        self.corpus, self.bptt = corpus, config.bptt
        self.input_size = self.output_size = corpus.input_size
        self.loss, self.baseline_loss = corpus.loss, test.baseline_loss
        self.streams = train.stream(config.batch_size)  # (B, M)
        self.chunks = (self.streams.shape[1] - 1) // self.bptt
        if self.chunks == 0:
            raise ValueError(f"TrainConfig: the training text ({len(train)} characters) is too short for "
                             f"batch_size={config.batch_size} streams of bptt={self.bptt} + 1 characters")
        self.sets = {name: part.stream(max(1, min(config.batch_size, len(part) // self.bptt)))
                     for name, part in (("valid", valid), ("test", test))}
        self.position, self.state = 0, None

    def next_batch(self):
        if self.position == self.chunks:  # a new epoch starts from a zero state
            self.position, self.state = 0, None
        start = self.position * self.bptt
        self.position += 1
        return (self.streams[:, start:start + self.bptt],
                self.streams[:, start + 1:start + self.bptt + 1], self.state)

    def carry(self, state) -> None:
        self.state = state

    def eval_batches(self, split: str):
        s = self.sets[split]
        last = s.shape[1] - 1
        return ((s[:, k:min(k + self.bptt, last)], s[:, k + 1:min(k + self.bptt, last) + 1])
                for k in range(0, last, self.bptt))

    def state_dict(self) -> tuple[dict, dict]:
        parts = () if self.state is None else self.state if isinstance(self.state, tuple) else (self.state,)
        return {f"state.{i}": p for i, p in enumerate(parts)}, {"position": self.position, "state_parts": len(parts)}

    def load_state_dict(self, arrays: dict, meta: dict) -> None:
        parts = tuple(arrays[f"state.{i}"] for i in range(meta["state_parts"]))
        self.position = meta["position"]
        self.state = None if not parts else parts if len(parts) > 1 else parts[0]


# ----------------------------------------------------------------------------- errors
class NonFiniteError(FloatingPointError):
    """A non-finite loss or gradient stopped the run; the message names the step, the loss,
    the first parameter with a non-finite gradient and the last good checkpoint."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run between two steps; ``checkpoint`` is where it was saved (or None)."""

    def __init__(self, step: int, checkpoint: str | None):
        super().__init__(f"interrupted at step {step}")
        self.step, self.checkpoint = step, checkpoint


@contextlib.contextmanager
def _deferred_sigint():
    """Turn Ctrl-C into a request the loop honours between steps (a second one interrupts at once).

    Yields a list that becomes non-empty once Ctrl-C is pressed. Outside the main thread,
    where signal handlers cannot be set, Ctrl-C is left alone.
    """
    requested: list = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handler(signum, frame):
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


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


def run_exists(out) -> bool:
    """Whether the folder ``out`` already holds a run (its config.json)."""
    return (Path(out) / CONFIG_FILE).is_file()


# ----------------------------------------------------------------------------- the trainer
class Trainer:
    """The model, optimizer, schedule, data and loop state of one run of ``config``.

    ``run(until=None)`` trains up to step ``until`` (default: ``config.steps``), evaluating,
    checkpointing and writing the run folder (``config.out``) on the way. ``Trainer.resume(out)``
    rebuilds a run from its folder's checkpoint. ``history`` holds one record per evaluation:
    ``step, train_loss, val_loss, grad_norm, lr, elapsed, skipped`` (means over the steps since
    the previous evaluation; the gradient norm before clipping).
    """

    def __init__(self, config: TrainConfig):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"Trainer: expected a TrainConfig, got {type(config).__name__}")
        self.config = config
        init_seed, data_seed, valid_seed, test_seed = np.random.SeedSequence(config.seed).spawn(4)
        self.model_rng = np.random.default_rng(init_seed)  # the model keeps it for dropout
        if config.task == "chars":
            self.data = _StreamData(config)
        else:
            self.data = _TaskData(config, np.random.default_rng(data_seed), valid_seed, test_seed)
        self.model = _build_model(config, self.data, self.model_rng)
        self.loss_fn = get_loss(self.data.loss)
        self.optimizer = get_optimizer(config.optimizer, self.model.params, **_optimizer_options(config))
        self.schedule = _build_schedule(config, self.optimizer)
        self.step = 0
        self.history: list[dict] = []
        self.skips = self.skipped = 0  # non-finite steps in a row, and in all
        self.best_val, self.best_step, self.bad_evals, self.stopped = math.inf, 0, 0, False
        self.elapsed = 0.0  # training seconds, over every session of the run
        self._interval = [0.0, 0.0, 0]  # loss sum, norm sum, finite steps since the last evaluation
        self.last_checkpoint: tuple[str, int] | None = None
        self.out = Path(config.out) if config.out else None

    @classmethod
    def resume(cls, out) -> "Trainer":
        """The run in folder ``out`` as its checkpoint left it."""
        path = Path(out) / CHECKPOINT_FILE
        if not path.is_file():
            raise FileNotFoundError(f"Trainer.resume: no checkpoint in '{out}' (expected {CHECKPOINT_FILE} there)")
        arrays, meta = load_checkpoint(path)
        trainer = cls(TrainConfig.from_dict({**meta["config"], "out": os.fspath(out)}))
        trainer.load_state_dict(arrays, meta)
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
        for g in self.model.grads.values():
            g.fill(0.0)
        self.step += 1
        with np.errstate(over="ignore", invalid="ignore"):
            y_hat, state_n = _forward(self.model, x, state)
            loss, dy = self.loss_fn(y_hat, y)
            self.model.backward(dy)
            norm = clip_grad_norm(self.model.grads, self.config.clip_norm or np.finfo(np.float64).max)
        if math.isfinite(loss) and math.isfinite(norm):
            self.optimizer.step(self.model.grads)
            self.data.carry(state_n)
            self.skips = 0
            self._interval = [self._interval[0] + loss, self._interval[1] + norm, self._interval[2] + 1]
        else:
            self._non_finite(loss)
        if self.schedule is not None:
            self.schedule.step()
        return loss, norm

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
            raise NonFiniteError(f"non-finite loss or gradient at step {self.step}: {what}")
        if self.skips >= self.config.max_skips:
            raise NonFiniteError(f"gave up after {self.skips} non-finite steps in a row, at step {self.step}: {what}")

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, split: str = "valid") -> float:
        """Mean loss on the fixed ``"valid"`` or ``"test"`` set (dropout off)."""
        if split not in ("valid", "test"):
            raise ValueError(f"Trainer.evaluate: expected split 'valid' or 'test', got {split!r}")
        return _mean_loss(self.model, self.loss_fn, self.data.eval_batches(split), self.data.carries_state)

    def _record(self) -> dict:
        """Evaluate, append the history record, write it to metrics.jsonl, update early stopping."""
        loss_sum, norm_sum, count = self._interval
        val = self.evaluate("valid")
        record = {"step": self.step, "train_loss": loss_sum / count if count else None,
                  "val_loss": _finite_or_none(val), "grad_norm": norm_sum / count if count else None,
                  "lr": self.optimizer.lr, "elapsed": self.elapsed, "skipped": self.skipped}
        self.history.append(record)
        self._interval = [0.0, 0.0, 0]
        if self.out:
            with open(self.out / METRICS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        if val < self.best_val:
            self.best_val, self.best_step, self.bad_evals = val, self.step, 0
        else:
            self.bad_evals += 1
            self.stopped = 0 < self.config.patience <= self.bad_evals
        return record

    # ------------------------------------------------------------------ the loop
    def run(self, until: int | None = None, *, progress: bool = False) -> dict | None:
        """Train to step ``until`` (default and at most ``config.steps``) or early stopping.

        Returns the summary when the run is complete, None when it paused at ``until``.
        Ctrl-C is honoured between steps: a checkpoint is saved (when there is a run folder)
        and :class:`Interrupted` is raised. ``progress`` shows a tqdm bar with the training
        loss, the gradient norm and sequences per second.
        """
        c = self.config
        until = c.steps if until is None else min(_checks.check_size("Trainer.run", "until", until), c.steps)
        bar = _progress_bar(c.steps, self.step, c.task) if progress else None
        try:
            if self.out:
                self._open_folder()
            base, start, first = self.elapsed, time.perf_counter(), self.step
            with _deferred_sigint() as interrupted:
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
        finally:
            if bar is not None:
                bar.close()
        return self.finish() if self.finished else None

    def _periodic(self) -> None:
        c = self.config
        if self.step % c.eval_every == 0 or self.step == c.steps:
            self._record()
        if self.out and c.checkpoint_every and self.step % c.checkpoint_every == 0:
            self.save()

    def finish(self) -> dict:
        """Test loss, final checkpoint and summary.json; returns the summary."""
        test = self.evaluate("test")
        last = self.history[-1] if self.history else {}
        c, baseline = self.config, self.data.baseline_loss
        summary = {
            "task": c.task, "loss": self.data.loss, "model": c.model, "cell": c.cell_used, "steps": self.step,
            "stopped_early": self.stopped, "test_loss": _finite_or_none(test), "baseline_loss": baseline,
            "ratio_to_baseline": _finite_or_none(test / baseline), "best_val_loss": _finite_or_none(self.best_val),
            "best_step": self.best_step, "final_train_loss": last.get("train_loss"), "skipped_steps": self.skipped,
            "seconds": self.elapsed,
        }
        if self.out:
            summary["checkpoint"] = self.save()
            (self.out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        return summary

    # ------------------------------------------------------------------ the run folder
    def _open_folder(self) -> None:
        """Create the folder; write config.json, metrics.jsonl as far as the history goes, and
        a first checkpoint of the initial state (so a good checkpoint always exists)."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n", encoding="utf-8")
        lines = "".join(json.dumps(record) + "\n" for record in self.history)
        (self.out / METRICS_FILE).write_text(lines, encoding="utf-8")
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
        """``(arrays, meta)`` for :func:`save_checkpoint`: everything the loop reads."""
        arrays = {f"params.{name}": p for name, p in self.model.params.items()}
        optimizer = self.optimizer.state_dict()
        for name, state in optimizer.pop("state").items():
            arrays.update({f"optimizer.{name}.{key}": value for key, value in state.items()})
        data_arrays, data_meta = self.data.state_dict()
        arrays.update({f"data.{key}": value for key, value in data_arrays.items()})
        meta = {
            "format": _FORMAT, "config": self.config.to_dict(), "optimizer": optimizer,
            "schedule": self.schedule.state_dict() if self.schedule else None,
            "model_rng": self.model_rng.bit_generator.state, "data": data_meta,
            "best_val": _finite_or_none(self.best_val), **{name: getattr(self, name) for name in _LOOP_STATE},
        }
        return arrays, meta

    def load_state_dict(self, arrays: dict, meta: dict) -> None:
        """Restore what :meth:`state_dict` returned (from a run of the same configuration)."""
        if meta.get("format") != _FORMAT:
            raise CheckpointError(f"Trainer: expected a training checkpoint of format {_FORMAT!r}, "
                                  f"got {meta.get('format')!r}")
        self._load_params(arrays)
        state = {name: {} for name in self.model.params}
        for key, value in arrays.items():
            if key.startswith("optimizer."):
                name, _, part = key[len("optimizer."):].rpartition(".")
                state[name][part] = value
        self.optimizer.load_state_dict({**meta["optimizer"], "state": state})
        if self.schedule is not None:
            self.schedule.load_state_dict(meta["schedule"])
        self.model_rng.bit_generator.state = meta["model_rng"]
        data_arrays = {key[len("data."):]: value for key, value in arrays.items() if key.startswith("data.")}
        self.data.load_state_dict(data_arrays, meta["data"])
        for name in _LOOP_STATE:
            setattr(self, name, meta[name])
        self.best_val = math.inf if meta["best_val"] is None else meta["best_val"]

    def _load_params(self, arrays: dict) -> None:
        stored = {key[len("params."):] for key in arrays if key.startswith("params.")}
        if stored != set(self.model.params):
            raise CheckpointError(f"Trainer: checkpoint parameters {sorted(stored)} differ from the model's "
                                  f"{sorted(self.model.params)}")
        for name, param in self.model.params.items():
            value = arrays[f"params.{name}"]
            if value.shape != param.shape or value.dtype != param.dtype:
                raise CheckpointError(f"Trainer: checkpoint parameter {name!r} has shape {value.shape} dtype {value.dtype}, "
                                      f"the model's {param.shape} {param.dtype}")
            param[...] = value


def sample_text(trainer: Trainer, length: int, *, temperature: float = 1.0, prime: str = "", rng=0) -> str:
    """``length`` characters generated by the character model of ``trainer`` (dropout off);
    see :meth:`CharCorpus.sample` for ``temperature``, ``prime`` and ``rng``."""
    if not isinstance(trainer.data, _StreamData):
        raise ValueError(f"sample_text: needs a run of task 'chars', got task {trainer.config.task!r}")
    state = None

    def step(ids):  # (1,) -> logits (1, V), advancing the state
        nonlocal state
        logits, state = trainer.model.forward(ids[:, None], state=state)
        return logits[:, -1]

    with _evaluating(trainer.model):
        return trainer.data.corpus.sample(step, length, rng, temperature, prime)


def train(config: TrainConfig, *, progress: bool = False) -> tuple[Trainer, dict]:
    """Run ``config`` from scratch to the end; returns the trainer and the summary.

    Refuses (FileExistsError) a run folder that already holds a run: resume it instead.
    """
    if config.out and run_exists(config.out):
        raise FileExistsError(f"train: '{config.out}' already holds a run; resume it or choose another folder")
    trainer = Trainer(config)
    return trainer, trainer.run(progress=progress)
