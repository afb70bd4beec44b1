"""The data a training run reads: the :class:`TrainingData` protocol and its two adapters.

The trainer knows its data only through :class:`TrainingData`. :class:`TaskData` serves a
synthetic task (independent sequences, fixed validation and test sets);
:class:`StreamData` serves a text, and :class:`TaskStreamData` a stream task (delayed recall),
as parallel streams read in chunks of ``bptt`` steps, the final state of one chunk carried
into the next. :func:`make_data` picks the adapter of a :class:`~numpy_rnn.config.TrainConfig`.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from .checkpoint import CheckpointError
from .config import STREAM_TASKS, TrainConfig
from .tasks import CharCorpus

__all__ = ["EVAL_BATCH", "StreamData", "TaskData", "TaskStreamData", "TrainingData", "make_data"]

EVAL_BATCH = 256  # sequences per evaluation batch: bounds the memory of the forward caches


@runtime_checkable
class TrainingData(Protocol):
    """What the training loop reads.

    Attributes: ``input_size`` and ``output_size`` (the model's D and K; a vocabulary size
    for text), ``loss`` (a :data:`~numpy_rnn.losses.LOSSES` name), ``baseline_loss`` (the loss
    of the best predictor without memory, on the test set) and ``carries_state`` (whether
    evaluation passes each batch's final state on to the next batch); and the five methods below.
    """

    input_size: int
    output_size: int
    loss: str
    baseline_loss: float
    carries_state: bool

    def next_batch(self) -> tuple[np.ndarray, np.ndarray, object]:
        """``(x, y, state)``: the next training batch and the initial state to feed the model with
        it (None: zero)."""

    def carry(self, state) -> None:
        """Takes ``state``, the final state after a successful update on the last batch (None after
        a skipped update); a stateless adapter ignores it."""

    def eval_batches(self, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(x, y)`` batches of the fixed set that ``split`` names, ``"valid"`` or ``"test"``, the
        same every time."""

    def state_dict(self) -> tuple[dict, dict]:
        """``(arrays, meta)``: every piece of state :meth:`next_batch` reads (arrays of numbers, JSON
        metadata), so that a resumed run draws the same batches."""

    def load_state_dict(self, arrays: dict, meta: dict) -> None:
        """Restores what :meth:`state_dict` returned, ``arrays`` and ``meta``, raising
        CheckpointError for stored state of the wrong form."""


def make_data(config: TrainConfig, seeds: list[np.random.SeedSequence]) -> TrainingData:
    """The adapter of ``config``: seeds of the training batches, validation and test sets."""
    if config.task == "chars":
        return StreamData(config)
    data_seed, valid_seed, test_seed = seeds
    adapter = TaskStreamData if config.task in STREAM_TASKS else TaskData
    return adapter(config, np.random.default_rng(data_seed), valid_seed, test_seed)


class TaskData:
    """A synthetic task: training batches from one generator, fixed validation and test sets
    of ``config.eval_size`` sequences each. ``rng`` draws the training batches; ``valid_seed``
    and ``test_seed`` (``numpy.random.SeedSequence``) the two fixed sets."""

    carries_state = False

    def __init__(self, config: TrainConfig, rng: np.random.Generator, valid_seed, test_seed):
        self.task, self.batch_size, self.rng = config.make_task(), config.batch_size, rng
        self.dtype = np.dtype(config.dtype)
        self.input_size, self.output_size = self.task.input_size, self.task.output_size
        self.loss, self.baseline_loss = self.task.loss, self.task.baseline_loss
        self.sets = {"valid": self._sample(config.eval_size, np.random.default_rng(valid_seed)),
                     "test": self._sample(config.eval_size, np.random.default_rng(test_seed))}

    def _sample(self, n, rng):
        """A batch in the run's dtype (the tasks draw float64; integer targets stay integers)."""
        return tuple(a.astype(self.dtype) if a.dtype.kind == "f" else a for a in self.task.sample(n, rng))

    def next_batch(self):
        """``batch_size`` fresh sequences from the run's generator; state None (zero)."""
        return (*self._sample(self.batch_size, self.rng), None)

    def carry(self, state) -> None:
        """Independent sequences: nothing is carried (``state`` is ignored)."""

    def eval_batches(self, split: str):
        """The fixed sequences of ``split`` (``"valid"`` or ``"test"``) in batches of at most
        ``EVAL_BATCH``."""
        x, y = self.sets[split]
        return ((x[i:i + EVAL_BATCH], y[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH))

    def state_dict(self) -> tuple[dict, dict]:
        """No arrays; the generator's state."""
        return {}, {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, arrays: dict, meta: dict) -> None:
        """The generator's state, from ``meta`` (``arrays`` is empty)."""
        _check_keys(arrays, meta, set(), {"rng"})
        set_generator_state(self.rng, meta["rng"], "data.rng")


class StreamData:
    """Character text as ``B`` parallel streams read in ``bptt``-step chunks, state carried, as
    ``config`` (a character-model :class:`~numpy_rnn.config.TrainConfig`) says.

    The text is split 90/5/5 into training, validation and test parts (:meth:`CharCorpus.split`:
    validation and test together are the last 10%, nanoGPT's validation split); ``train_chars``
    keeps the first characters of the training part only, the other two whole. An epoch is every
    full chunk of the training streams; the carried state restarts at zero with each epoch.
    Validation and test read their whole part as streams, the last chunk possibly shorter.
    """

    carries_state = True

    def __init__(self, config: TrainConfig):
        corpus = CharCorpus.from_file(config.text) if config.text else CharCorpus.builtin()
        train, valid, test = corpus.split()
        train = self._head(train, config.train_chars)
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

    @staticmethod
    def _head(train: CharCorpus, chars: int) -> CharCorpus:
        """The first ``chars`` characters of the training text (0: all of it)."""
        if chars > len(train):
            raise ValueError(f"TrainConfig: expected train_chars <= {len(train)} (the training text's characters), "
                             f"got {chars}")
        return CharCorpus(train.text[:chars], train.vocab) if chars else train

    def next_batch(self):
        """The next ``bptt``-step chunk of every training stream, inputs and next characters, with the
        state carried from the previous chunk (None at the start of an epoch)."""
        if self.position == self.chunks:  # a new epoch starts from a zero state
            self.position, self.state = 0, None
        start = self.position * self.bptt
        self.position += 1
        return (self.streams[:, start:start + self.bptt],
                self.streams[:, start + 1:start + self.bptt + 1], self.state)

    def carry(self, state) -> None:
        """Keeps ``state`` for the next chunk."""
        self.state = state

    def eval_batches(self, split: str):
        """The whole text of ``split`` (``"valid"`` or ``"test"``) as streams, in ``bptt``-step
        chunks (the last possibly shorter)."""
        s = self.sets[split]
        last = s.shape[1] - 1
        return ((s[:, k:min(k + self.bptt, last)], s[:, k + 1:min(k + self.bptt, last) + 1])
                for k in range(0, last, self.bptt))

    def state_dict(self) -> tuple[dict, dict]:
        """The carried state's arrays; the stream position."""
        arrays, parts = _state_arrays(self.state)
        return arrays, {"position": self.position, "state_parts": parts}

    def load_state_dict(self, arrays: dict, meta: dict) -> None:
        """The stream position (from ``meta``) and carried state (from ``arrays``); the state's
        shape is checked by the model when it is fed."""
        _check_keys(arrays, meta, set(arrays), {"position", "state_parts"})
        position = meta["position"]
        if not _is_int(position) or not 0 <= position <= self.chunks:
            raise CheckpointError(f"expected data.position an int in [0, {self.chunks}], got {position!r}")
        self.state = _stored_state(arrays, meta["state_parts"])
        self.position = position


class TaskStreamData:
    """A stream task (:class:`~numpy_rnn.tasks.RecallTask`) as ``B`` endless streams read in
    ``bptt``-step chunks, the state carried from one chunk to the next (never reset).

    Validation and test: ``eval_size`` streams of ``seq_len`` steps each (fixed), read in the
    same chunks with the state carried. ``config`` is the run's
    :class:`~numpy_rnn.config.TrainConfig`, ``rng`` draws the training streams, ``valid_seed``
    and ``test_seed`` (``numpy.random.SeedSequence``) the two fixed sets.
    """

    carries_state = True

    def __init__(self, config: TrainConfig, rng: np.random.Generator, valid_seed, test_seed):
        self.task, self.bptt, self.rng = config.make_task(), config.bptt, rng
        self.dtype = np.dtype(config.dtype)
        self.input_size, self.output_size = self.task.input_size, self.task.output_size
        self.loss, self.baseline_loss = self.task.loss, self.task.baseline_loss
        self.pending = self.task.start(config.batch_size, rng)  # (B, delay, 1) float64: the targets to come
        self.state = None
        self.sets = {name: tuple(a.astype(self.dtype) for a in self.task.sample(config.eval_size,
                                                                                np.random.default_rng(seed)))
                     for name, seed in (("valid", valid_seed), ("test", test_seed))}

    def next_batch(self):
        """The next ``bptt`` steps of every stream, with the state carried from the previous chunk."""
        x, y, self.pending = self.task.chunk(self.pending, self.bptt, self.rng)
        return x.astype(self.dtype), y.astype(self.dtype), self.state

    def carry(self, state) -> None:
        """Keeps ``state`` for the next chunk."""
        self.state = state

    def eval_batches(self, split: str):
        """The fixed streams of ``split`` (``"valid"`` or ``"test"``) in ``bptt``-step chunks."""
        x, y = self.sets[split]
        return ((x[:, k:k + self.bptt], y[:, k:k + self.bptt]) for k in range(0, x.shape[1], self.bptt))

    def state_dict(self) -> tuple[dict, dict]:
        """The carried state's arrays and the pending targets; the generator's state."""
        arrays, parts = _state_arrays(self.state)
        return {**arrays, "pending": self.pending}, {"rng": self.rng.bit_generator.state, "state_parts": parts}

    def load_state_dict(self, arrays: dict, meta: dict) -> None:
        """The generator (from ``meta``), the pending targets and the carried state (from
        ``arrays``; the state's shape is checked by the trainer)."""
        _check_keys(arrays, meta, set(arrays), {"rng", "state_parts"})
        pending = arrays.get("pending")
        if pending is None or pending.shape != self.pending.shape or pending.dtype != self.pending.dtype:
            found = "none" if pending is None else f"{pending.dtype}{list(pending.shape)}"
            raise CheckpointError(f"expected data.pending {self.pending.dtype}{list(self.pending.shape)}, got {found}")
        self.state = _stored_state({k: v for k, v in arrays.items() if k != "pending"}, meta["state_parts"])
        set_generator_state(self.rng, meta["rng"], "data.rng")
        self.pending = pending.copy()


def _state_arrays(state) -> tuple[dict, int]:
    """A carried state (None, an array or a tuple of arrays) as arrays ``state.<i>`` and their count."""
    parts = () if state is None else state if isinstance(state, tuple) else (state,)
    return {f"state.{i}": p for i, p in enumerate(parts)}, len(parts)


def _stored_state(arrays: dict, parts):
    """The carried state stored by :func:`_state_arrays` as ``parts`` arrays ``state.<i>``."""
    if not _is_int(parts) or set(arrays) != {f"state.{i}" for i in range(parts)}:
        raise CheckpointError(f"expected data.state_parts to count the stored state arrays "
                              f"{sorted(arrays)}, got {parts!r}")
    state = tuple(arrays[f"state.{i}"] for i in range(parts))
    return None if not state else state if len(state) > 1 else state[0]


def _is_int(value) -> bool:
    return type(value) is int


def _check_keys(arrays: dict, meta, array_names: set, meta_keys: set) -> None:
    if not isinstance(meta, dict) or set(meta) != meta_keys:
        raise CheckpointError(f"expected data state with keys {sorted(meta_keys)}, got {meta!r:.200}")
    if set(arrays) != array_names:
        raise CheckpointError(f"unexpected data arrays {sorted(set(arrays) - array_names)}")


def set_generator_state(rng: np.random.Generator, state, what: str) -> None:
    """Restore a stored ``bit_generator.state`` (PCG64), or CheckpointError naming ``what``."""
    expected = rng.bit_generator.state
    if not (isinstance(state, dict) and set(state) == set(expected) and state.get("bit_generator") == "PCG64"
            and isinstance(state.get("state"), dict) and set(state["state"]) == {"state", "inc"}
            and all(_is_int(v) and v >= 0 for v in (*state["state"].values(), state["has_uint32"], state["uinteger"]))):
        raise CheckpointError(f"expected {what} to be a PCG64 generator state, got {state!r:.200}")
    try:
        rng.bit_generator.state = state
    except (TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"invalid {what}: {exc}") from None
