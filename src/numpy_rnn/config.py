"""The schema of a training run: :class:`TrainConfig`, one field per ``numpy-rnn train`` flag.

Every field declares its kind explicitly (``metadata["kind"]``); the kind alone decides how a
value is checked and how the command line parses it:

==========  ===========================================================  ====================
kind        value                                                        limits (metadata)
==========  ===========================================================  ====================
``int``     an int (not a bool)                                          ``min``, ``max``
``float``   a finite real number                                         ``low``, ``high``
``choice``  one of a registry's names                                    ``choices``
``cell``    None, a built-in cell's name or ``"MODULE:CLASS"``, a cell     --
            of your own (:func:`~numpy_rnn.models.cell_class`)
``bool``    True or False                                                --
``path``    None or a file-system path (str or os.PathLike), kept a str  --
``init``    a dict of parameter name -> initialiser name                 --
==========  ===========================================================  ====================

Beyond single fields, a configuration must make sense as a whole: an option that does not
apply to the run (``seq_len`` for the character model, ``horizon`` without the sine task,
``momentum`` with Adam, ...) is refused when it differs from its default (:data:`APPLIES`
says where each applies; the command line refuses such flags even at their default value),
bidirectional layers are refused for next-step prediction and for streams, ``gradient="rtrl"``
needs one layer in one direction without an embedding, and the data sets a configuration
implies are bounded (:data:`MAX_VALUES`) so that no configuration, a stored one included,
can ask for more memory than a run reasonably needs.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from . import _checks
from .cells import NONLINEARITIES
from .init import get_initializer
from .models import ModelConfig, cell_class
from .optim import OPTIMIZERS
from .tasks import TASKS, make_task

__all__ = ["APPLIES", "GRADIENTS", "MAX_VALUES", "NEXT_STEP_TASKS", "STREAM_TASKS", "TASK_DEFAULTS", "TrainConfig"]

#: model kinds: SequenceModel built from ModelConfig, or the notebook's Elman regressor
MODELS = ("sequence", "notebook")
#: learning-rate schedules (``warmup`` steps of linear warm-up may precede either)
SCHEDULES = ("constant", "cosine")
#: what a non-finite loss or gradient does
NONFINITE = ("raise", "skip")
#: with early stopping, the weights a run ends with: those of the best evaluation, or the last
FINAL_WEIGHTS = ("best", "last")
TASK_NAMES = (*TASKS, "chars")
#: tasks whose model predicts the next element of its own input: no look at the future allowed
NEXT_STEP_TASKS = ("chars",)
#: tasks read as parallel streams in chunks of ``bptt`` steps, the state carried between chunks
STREAM_TASKS = ("chars", "recall")
#: how the gradient of a batch is computed: backpropagation through time (truncated to the
#: chunk for a stream), or real-time recurrent learning (:mod:`numpy_rnn.rtrl`; no truncation)
GRADIENTS = ("bptt", "rtrl")
#: the most values (sequences x steps x features) in one batch or one evaluation set
MAX_VALUES = 2 ** 25
_SYNTHETIC = tuple(TASKS)


def _option(kind: str, default, help: str, **limits):
    """A TrainConfig field of ``kind`` with its default, its help text (the CLI's) and limits."""
    metadata = {"kind": kind, "help": help, **limits}
    if kind == "init":
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


def _cell_used(values: Mapping) -> str:
    return values["cell"] or ("rnn" if values["model"] == "notebook" else "lstm")


#: field -> (the setting it depends on, its value in a configuration, where the field applies
#: (a predicate), the same in words). A field that does not apply must keep its default.
APPLIES = {
    "text": ("task", lambda v: v["task"], lambda task: task == "chars", "task chars"),
    "train_chars": ("task", lambda v: v["task"], lambda task: task == "chars", "task chars"),
    "bptt": ("task", lambda v: v["task"], lambda task: task in STREAM_TASKS, "tasks " + ", ".join(STREAM_TASKS)),
    "delay": ("task", lambda v: v["task"], lambda task: task == "recall", "task recall"),
    "embedding_size": ("task", lambda v: v["task"], lambda task: task == "chars", "task chars"),
    "seq_len": ("task", lambda v: v["task"], lambda task: task != "chars", "tasks " + ", ".join(_SYNTHETIC)),
    "eval_size": ("task", lambda v: v["task"], lambda task: task != "chars", "tasks " + ", ".join(_SYNTHETIC)),
    "copy_len": ("task", lambda v: v["task"], lambda task: task == "copy", "task copy"),
    "n_symbols": ("task", lambda v: v["task"], lambda task: task == "copy", "task copy"),
    "horizon": ("task", lambda v: v["task"], lambda task: task == "sine", "task sine"),
    "nonlinearity": ("cell", _cell_used, lambda cell: cell == "rnn", "cell rnn"),
    "bias": ("model", lambda v: v["model"], lambda model: model == "sequence", "model sequence"),
    **{name: ("model", lambda v: v["model"], lambda model: model == "sequence", "model sequence")
       for name in ("input_dropout", "recurrent_dropout", "zoneout")},
    "zoneout_c": ("cell", _cell_used, lambda cell: cell == "lstm", "cell lstm"),
    "layer_norm": ("cell", _cell_used, lambda cell: cell in ("lstm", "gru"), "cells lstm and gru"),
    "proj_size": ("cell", _cell_used, lambda cell: cell == "lstm", "cell lstm"),
    "momentum": ("optimizer", lambda v: v["optimizer"], lambda name: name in ("sgd", "rmsprop"),
                 "optimizer sgd or rmsprop"),
    "max_skips": ("nonfinite", lambda v: v["nonfinite"], lambda policy: policy == "skip", "nonfinite skip"),
    "final_weights": ("patience", lambda v: v["patience"], lambda patience: patience > 0,
                      "early stopping (patience > 0)"),
}
#: a task's own defaults where they differ from TrainConfig's: a value, or a function of the
#: other settings. ``TrainConfig.for_task`` and ``numpy-rnn train --task`` apply them to the
#: fields not given. chars: the character model measured on tiny Shakespeare (docs/RESULTS.md)
TASK_DEFAULTS = {
    "chars": {"cell": "gru", "hidden_size": 256, "embedding_size": 32, "dtype": "float32", "lr": 5e-3,
              "schedule": "cosine", "warmup": lambda values: min(100, values.get("steps", 2500) // 10),
              "steps": 2500, "eval_every": 250},
    "recall": {"seq_len": 1000, "eval_size": 100},
}
#: why a field does not apply, where that is not plain
_WHY_NOT = {"seq_len": "the character model reads bptt steps per chunk",
            "eval_size": "the character model evaluates on the whole validation and test text"}


@dataclass(frozen=True)
class TrainConfig(_checks.PlainConfig):
    """Everything that defines a training run; each field is a ``numpy-rnn train`` flag.

    See the module docstring for the field kinds and the rules across fields;
    ``__post_init__`` checks them all and that the task and model can be built.
    """

    # the task
    task: str = _option("choice", "memory", "task", choices=TASK_NAMES)
    seq_len: int = _option("int", 10, "time steps T (memory, adding, adding-hs, sine); the delay for copy; "
                                      "recall: steps of each validation and test stream", min=1)
    copy_len: int = _option("int", 10, "copy: symbols to copy", min=1)
    n_symbols: int = _option("int", 8, "copy: symbol alphabet size", min=1)
    horizon: int = _option("int", 1, "sine: steps ahead to forecast", min=1)
    text: str | None = _option("path", None, "chars: a UTF-8 text file (default: the shipped text)")
    train_chars: int = _option("int", 0, "chars: train on the first N characters of the training text only "
                                         "(0: all of it); validation and test stay whole", min=0)
    bptt: int = _option("int", 64, "chars, recall: steps per chunk of the stream (the truncation window of "
                                   "BPTT; with RTRL the steps between updates)", min=1)
    delay: int = _option("int", 8, "recall: the target is the input of delay steps ago", min=1)
    # the model
    model: str = _option("choice", "sequence", "model kind: 'notebook' is the notebook's Elman RNN", choices=MODELS)
    cell: str | None = _option("cell", None, "recurrent cell: rnn, lstm, gru, or MODULE:CLASS, a Cell subclass of your "
                                             "own (default: lstm; the notebook model is always rnn)")
    hidden_size: int = _option("int", 64, "hidden units H", min=1)
    num_layers: int = _option("int", 1, "stacked recurrent layers", min=1)
    bidirectional: bool = _option("bool", False, "read the sequence in both directions")
    dropout: float = _option("float", 0.0, "dropout between stacked layers", low=0.0, high=1.0)
    bias: bool = _option("bool", True, "biases in the recurrent layers (--no-bias: none, as torch's bias=False)")
    nonlinearity: str = _option("choice", "tanh", "rnn cell activation", choices=tuple(NONLINEARITIES))
    init: dict = _option("init", None, "initialiser per parameter, e.g. R=identity")
    embedding_size: int = _option("int", 0, "chars: embedding width (0: one-hot input)", min=0)
    input_dropout: float = _option("float", 0.0, "dropout on each recurrent layer's input, one mask per sequence "
                                                 "(Keras' dropout)", low=0.0, high=1.0)
    recurrent_dropout: float = _option("float", 0.0, "variational dropout on h(t-1), one mask per sequence "
                                                     "(Gal & Ghahramani 2016)", low=0.0, high=1.0)
    zoneout: float = _option("float", 0.0, "zoneout rate of h (Krueger et al. 2017; the LSTM's c: --zoneout-c)",
                             low=0.0, high=1.0)
    zoneout_c: float = _option("float", 0.0, "lstm: zoneout rate of the cell state c", low=0.0, high=1.0)
    layer_norm: bool = _option("bool", False, "layer-normalised recurrent layer (Ba et al. 2016; cells lstm, gru)")
    proj_size: int = _option("int", 0, "lstm: width P < H of the projected h (torch's proj_size; 0: none)", min=0)
    # optimisation
    gradient: str = _option("choice", "bptt", "how gradients are computed: bptt, or rtrl (forward in time, "
                                              "one layer, one direction, no embedding)", choices=GRADIENTS)
    optimizer: str = _option("choice", "adam", "optimizer", choices=tuple(OPTIMIZERS))
    lr: float = _option("float", 1e-3, "learning rate", low=0.0, low_open=True)
    weight_decay: float = _option("float", 0.0, "weight decay", low=0.0)
    momentum: float = _option("float", 0.0, "momentum (sgd, rmsprop)", low=0.0)
    schedule: str = _option("choice", "constant", "learning-rate schedule", choices=SCHEDULES)
    warmup: int = _option("int", 0, "steps of linear learning-rate warm-up", min=0)
    clip_norm: float = _option("float", 1.0, "clip the global gradient norm to this (0: no clipping)", low=0.0)
    batch_size: int = _option("int", 32, "sequences (chars: streams) per batch", min=1)
    steps: int = _option("int", 1000, "training steps", min=1)
    # evaluation and robustness
    eval_every: int = _option("int", 100, "steps between evaluations", min=1)
    eval_size: int = _option("int", 1000, "sequences in each of the validation and test sets", min=1)
    patience: int = _option("int", 0, "stop after this many evaluations without improvement (0: never)", min=0)
    final_weights: str = _option("choice", "best", "with early stopping: end with the weights of the best "
                                 "evaluation, or the last", choices=FINAL_WEIGHTS)
    nonfinite: str = _option("choice", "raise", "on a non-finite loss or gradient", choices=NONFINITE)
    max_skips: int = _option("int", 10, "skip: give up after this many non-finite steps in a row", min=1)
    checkpoint_every: int = _option("int", 100, "steps between checkpoints (0: only at the end)", min=0)
    seed: int = _option("int", 0, "seed of weights, data and dropout", min=0)
    dtype: str = _option("choice", "float64", "floating-point type of the weights and the data",
                         choices=("float64", "float32"))
    out: str | None = _option("path", None, "run folder (None: nothing is written; the command line's default: "
                                            "runs/TASK)")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _check_field(f, getattr(self, f.name)))
        changed = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) != default_of(f)]
        self.check_applicable(self.to_dict(), changed)
        if self.schedule == "cosine" and self.warmup >= self.steps:
            raise ValueError(f"TrainConfig: expected warmup < steps for the cosine schedule, "
                             f"got {self.warmup} >= {self.steps}")
        if self.bidirectional and self.task in NEXT_STEP_TASKS:
            raise ValueError(f"TrainConfig: task {self.task!r} predicts the next character; a bidirectional layer "
                             f"would also read the text backwards and see the character it is asked to predict")
        if self.bidirectional and self.task in STREAM_TASKS:
            raise ValueError(f"TrainConfig: task {self.task!r} is read forward as a stream in chunks with the state "
                             f"carried; a bidirectional layer cannot carry its backward state")
        if self.gradient == "rtrl":
            self._check_rtrl()
        if self.model == "notebook":
            self._check_notebook()
        if self.task != "chars":
            self._check_sizes(self.make_task())  # the task checks its own options (adding needs seq_len >= 2)
        else:
            self._check_values(f"a batch (batch_size={self.batch_size})", self.batch_size * self.bptt)
        if self.model == "sequence":
            self.model_config(1, 1)  # and ModelConfig its own

    def _check_rtrl(self):
        """RTRL (numpy_rnn.rtrl) runs forward in time through one layer, from the input itself."""
        fixed = (("num_layers", 1), ("bidirectional", False), ("embedding_size", 0), ("input_dropout", 0.0),
                 ("recurrent_dropout", 0.0), ("zoneout", 0.0), ("zoneout_c", 0.0))
        changed = [f"{name}={getattr(self, name)!r}" for name, allowed in fixed if getattr(self, name) != allowed]
        if changed:
            raise ValueError(f"TrainConfig: gradient 'rtrl' trains one recurrent layer in one direction on its input "
                             f"without regularisers inside the layer ({', '.join(f'{n}={v!r}' for n, v in fixed)}), "
                             f"got {', '.join(changed)}")

    def _check_notebook(self):
        if self.task in ("copy", "chars", "recall"):
            raise ValueError(f"TrainConfig: the notebook model is a sequence-to-one regressor; "
                             f"task {self.task!r} needs model 'sequence'")
        fixed = {"cell": (None, "rnn"), "num_layers": (1,), "bidirectional": (False,), "dropout": (0.0,),
                 "nonlinearity": ("tanh",), "init": ({},), "embedding_size": (0,)}
        changed = [f"{name}={getattr(self, name)!r}" for name, allowed in fixed.items()
                   if getattr(self, name) not in allowed]
        if changed:
            raise ValueError(f"TrainConfig: the notebook model is one tanh Elman layer with its own initialisation; "
                             f"it takes hidden_size only, got {', '.join(changed)}")

    def _check_sizes(self, task) -> None:
        """Bound the values of one training batch and of each evaluation set (see MAX_VALUES)."""
        per_sequence = task.seq_len * task.input_size
        per_batch = (self.bptt if self.task in STREAM_TASKS else task.seq_len) * task.input_size
        self._check_values(f"a batch (batch_size={self.batch_size})", self.batch_size * per_batch)
        self._check_values(f"each evaluation set (eval_size={self.eval_size})", self.eval_size * per_sequence)

    @staticmethod
    def _check_values(what: str, values: int) -> None:
        if values > MAX_VALUES:
            raise ValueError(f"TrainConfig: {what} would hold {values} values (sequences x steps x features), "
                             f"more than the limit of {MAX_VALUES}")

    @staticmethod
    def check_applicable(values: Mapping, names: Collection[str], *, owner: str = "TrainConfig",
                         spell: Callable[[str], str] = str) -> None:
        """ValueError naming the first of the fields ``names`` that does not apply to the
        configuration ``values`` (all fields; see :data:`APPLIES`); ``spell`` writes a field's
        name as the caller knows it (a command-line flag) and ``owner`` is who asks, the error's
        first word."""
        for name in names:
            if name not in APPLIES:
                continue
            setting, value_of, applies, where = APPLIES[name]
            value = value_of(values)
            if not applies(value):
                why = f" ({_WHY_NOT[name]})" if name in _WHY_NOT else ""
                raise ValueError(f"{owner}: {spell(name)} applies with {where} only, got {spell(setting)} {value!r}{why}")

    @property
    def cell_used(self) -> str:
        """The cell trained: ``cell``, else lstm (``model='sequence'``) or rnn (``'notebook'``)."""
        return _cell_used(self.to_dict())

    @property
    def sequence_output(self) -> bool:
        """Whether the task has a target at every step (copy and the streams), not one per sequence."""
        return self.task in ("copy", *STREAM_TASKS)

    @property
    def keeps_best(self) -> bool:
        """Whether the run ends with the weights of its best evaluation (early stopping, ``best``)."""
        return self.patience > 0 and self.final_weights == "best"

    def make_task(self):
        """The synthetic task of this configuration (not chars)."""
        options = {"copy": {"delay": self.seq_len, "n_symbols": self.n_symbols, "copy_len": self.copy_len},
                   "sine": {"seq_len": self.seq_len, "horizon": self.horizon},
                   "recall": {"seq_len": self.seq_len, "delay": self.delay}}
        return make_task(self.task, **options.get(self.task, {"seq_len": self.seq_len}))

    def model_config(self, input_size: int, output_size: int) -> ModelConfig:
        """The :class:`ModelConfig` of the sequence model for data of these sizes: ``input_size``
        features (or the vocabulary's size) in, ``output_size`` out."""
        return ModelConfig(
            input_size=input_size, output_size=output_size, cell=self.cell_used,
            hidden_size=self.hidden_size, num_layers=self.num_layers, bidirectional=self.bidirectional,
            dropout=self.dropout, bias=self.bias, nonlinearity=self.nonlinearity, init=dict(self.init),
            input_dropout=self.input_dropout, recurrent_dropout=self.recurrent_dropout, zoneout=self.zoneout,
            zoneout_c=self.zoneout_c, sequence_output=self.sequence_output, tokens=self.task == "chars",
            embedding_size=self.embedding_size, dtype=self.dtype, layer_norm=self.layer_norm,
            proj_size=self.proj_size)

    @classmethod
    def for_task(cls, task: str, **options) -> TrainConfig:
        """The configuration of ``task`` with the task's defaults (:data:`TASK_DEFAULTS`) for
        every field not in ``options``."""
        return cls(task=task, **with_task_defaults(task, options))

    @classmethod
    def check_value(cls, name: str, value):
        """``value`` checked (and normalised) as field ``name``, alone: what a CLI flag needs."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        return _check_field(_checks.lookup("TrainConfig", "field", name, fields), value)

    @classmethod
    def field_kind(cls, name: str) -> str:
        """The declared kind of field ``name`` (see the module docstring)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        return _checks.lookup("TrainConfig", "field", name, fields).metadata["kind"]


def with_task_defaults(task: str, options: Mapping) -> dict:
    """``options`` completed by the defaults of ``task`` for the fields they do not set."""
    defaults = TASK_DEFAULTS.get(task, {})
    return {**{name: value(options) if callable(value) else value for name, value in defaults.items()
               if name not in options}, **options}


def default_of(f: dataclasses.Field):
    """The default value of a TrainConfig field."""
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _check_int(f, value):
    value = _checks.check_size("TrainConfig", f.name, value, minimum=f.metadata["min"])
    if "max" in f.metadata and value > f.metadata["max"]:
        raise ValueError(f"TrainConfig: expected {f.name} <= {f.metadata['max']}, got {value}")
    return value


def _check_float(f, value):
    limits = {key: f.metadata[key] for key in ("low", "high", "low_open") if key in f.metadata}
    return _checks.check_real("TrainConfig", f.name, value, high_open="high" in limits, **limits)


def _check_choice(f, value):
    if value is None and f.default is None:
        return None
    return _checks.lookup("TrainConfig", f.name, value, {name: name for name in f.metadata["choices"]})


def _check_cell(f, value):
    if value is None:
        return None
    cell_class(value, "TrainConfig")
    return value


def _check_path(f, value):
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"TrainConfig: expected {f.name} to be a path (str or os.PathLike), "
                        f"got {type(value).__name__} {value!r}")
    return os.fspath(value)


def _check_init(f, value):
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise TypeError(f"TrainConfig: expected {f.name} to be a dict of parameter name -> initialiser name, "
                        f"got {value!r}")
    for name in value.values():
        get_initializer(name, 1)  # an unknown name lists the valid ones
    return dict(value)


_CHECKERS = {
    "int": _check_int, "float": _check_float, "choice": _check_choice, "cell": _check_cell,
    "bool": lambda f, value: _checks.check_bool("TrainConfig", f.name, value),
    "path": _check_path, "init": _check_init,
}


def _check_field(f: dataclasses.Field, value):
    """``value`` of field ``f`` checked as its declared kind; returns it normalised."""
    return _CHECKERS[f.metadata["kind"]](f, value)
