"""Seeded data generators for classic recurrent-network tasks.

Every task is a small frozen dataclass with

- ``sample(n, rng) -> (x, y)``: ``x`` float64, batch-first ``(n, T, D)``; ``y`` as the task
  documents. ``rng`` is an int seed or a ``numpy.random.Generator`` (never the global state).
- ``loss``: ``"mse"`` (mean over all elements of ``(prediction - y) ** 2``) or
  ``"cross_entropy"`` (mean over all targets of ``-ln p[target]``).
- ``input_size`` (D) and ``output_size`` (K: values for ``"mse"``, classes for
  ``"cross_entropy"``).
- ``baseline_predict(x)``: the best trivial predictor, one that uses no memory of the
  sequence it must remember (values for ``"mse"``, class probabilities for
  ``"cross_entropy"``), and ``baseline_loss``: its expected loss, derived in closed form.
  ``empirical_baseline(task, x, y)`` measures the same loss on sampled data.

``TASKS`` maps a name to a task class; ``make_task(name, **kw)`` builds one. ``CharCorpus`` is
character-level language modelling on a text (the shipped one: tiny Shakespeare), with its
train/validation/test split, batching, streams for truncated backpropagation through time and
text generation.
"""
from __future__ import annotations

import hashlib
import importlib
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import ClassVar

import numpy as np

from . import _checks
from ._checks import as_generator, check_real, check_size

__all__ = [
    "AddingTask",
    "AddingTaskHS",
    "CharCorpus",
    "CopyTask",
    "MemoryTask",
    "RecallTask",
    "SineTask",
    "TASKS",
    "empirical_baseline",
    "make_task",
]


# ----------------------------------------------------------------------------- validation
def _check_x(owner: str, x, seq_len: int, input_size: int) -> np.ndarray:
    """``x`` as an array of shape ``(n, seq_len, input_size)``, else ValueError."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1:] != (seq_len, input_size):
        raise ValueError(
            f"{owner}: expected x of shape (n, {seq_len}, {input_size}), got {x.shape}"
        )
    return x


def _uniform_variance(low: float, high: float) -> float:
    """Variance of U(low, high): (high - low)^2 / 12."""
    return (high - low) ** 2 / 12.0


def _uniform_second_moment(low: float, high: float) -> float:
    """E[X^2] for X ~ U(low, high): variance plus squared mean."""
    return _uniform_variance(low, high) + ((low + high) / 2.0) ** 2


# ----------------------------------------------------------------------------- tasks
class _Task:
    """Shared front end of the task dataclasses: ``sample`` validates, ``_draw`` generates."""

    def sample(self, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` independent examples ``(x, y)`` using ``rng`` (an int seed or a Generator)."""
        owner = type(self).__name__
        n = check_size(owner, "n", n, minimum=1)
        return self._draw(n, as_generator(rng, owner))

    def _set_int(self, name: str, minimum: int) -> None:
        """Validate the int field ``name`` and store it as a Python int (frozen-safe)."""
        value = check_size(type(self).__name__, name, getattr(self, name), minimum=minimum)
        object.__setattr__(self, name, value)


@dataclass(frozen=True)
class MemoryTask(_Task):
    """The course's memory task: remember the first value of a noise sequence.

    ``x[i, t, 0] ~ U(-1, 1)`` independently, ``x`` of shape ``(n, T, 1)`` with ``T`` = ``seq_len``;
    the target is the first value, ``y = x[:, 0, :]`` of shape ``(n, 1)``; loss MSE.

    Baseline: without memory the best constant is the mean 0, with MSE
    ``E[x^2] = 1/3``.
    """

    seq_len: int
    loss: ClassVar[str] = "mse"
    input_size: ClassVar[int] = 1
    output_size: ClassVar[int] = 1
    VALUES: ClassVar[tuple[float, float]] = (-1.0, 1.0)

    def __post_init__(self):
        self._set_int("seq_len", 1)

    def _draw(self, n, gen):
        x = gen.uniform(*self.VALUES, size=(n, self.seq_len, 1))
        return x, x[:, 0, :].copy()

    def baseline_predict(self, x) -> np.ndarray:
        """Predict the mean 0 for every sequence of ``x``: shape ``(n, 1)``."""
        x = _check_x(type(self).__name__, x, self.seq_len, self.input_size)
        return np.zeros((x.shape[0], 1))

    @property
    def baseline_loss(self) -> float:
        """MSE of predicting 0: ``E[x^2]`` for ``x ~ U(-1, 1)``, that is 1/3."""
        return _uniform_second_moment(*self.VALUES)


@dataclass(frozen=True)
class AddingTask(_Task):
    """The adding problem as in Le, Jaitly & Hinton (2015), "A Simple Way to Initialize
    Recurrent Networks of Rectified Linear Units", arXiv:1504.00941.

    ``x`` has shape ``(n, T, 2)``, ``T`` = ``seq_len`` >= 2. Channel 0 holds values
    ``U[0, 1)``; channel 1 is a marker channel with exactly two 1s, the first at a uniformly
    random step of the first half ``[0, T // 2)``, the second at a uniformly random step of the
    second half ``[T // 2, T)``; all other markers are 0. The target ``y`` (shape ``(n, 1)``) is
    the sum of the two marked values; loss MSE.

    Baseline: the target is a sum of two independent U[0, 1) values, mean 1, so predicting 1
    gives MSE ``2 * Var(U[0, 1)) = 1/6``.
    """

    seq_len: int
    loss: ClassVar[str] = "mse"
    input_size: ClassVar[int] = 2
    output_size: ClassVar[int] = 1
    VALUES: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def __post_init__(self):
        self._set_int("seq_len", 2)

    def _draw(self, n, gen):
        T, half = self.seq_len, self.seq_len // 2
        x = np.zeros((n, T, 2))
        x[:, :, 0] = gen.uniform(*self.VALUES, size=(n, T))
        rows = np.arange(n)
        first = gen.integers(0, half, size=n)
        second = gen.integers(half, T, size=n)
        x[rows, first, 1] = 1.0
        x[rows, second, 1] = 1.0
        y = x[rows, first, 0] + x[rows, second, 0]
        return x, y[:, None]

    def baseline_predict(self, x) -> np.ndarray:
        """Predict the mean 1 for every sequence of ``x``: shape ``(n, 1)``."""
        x = _check_x(type(self).__name__, x, self.seq_len, self.input_size)
        return np.ones((x.shape[0], 1))

    @property
    def baseline_loss(self) -> float:
        """MSE of predicting 1: ``Var(X1 + X2) = 2 / 12 = 1/6``."""
        return 2.0 * _uniform_variance(*self.VALUES)


@dataclass(frozen=True)
class AddingTaskHS(_Task):
    """The adding problem of Hochreiter & Schmidhuber (1997), "Long Short-Term Memory",
    Neural Computation 9(8), Experiment 4, at a fixed length.

    ``x`` has shape ``(n, T, 2)``, ``T`` = ``seq_len`` >= 4. Channel 0 holds values ``U(-1, 1)``.
    Channel 1 holds markers: exactly two steps are marked with 1. The first mark (value X1)
    is uniform over the first ``min(10, T - 1)`` steps (the paper: "one of the first ten
    pairs"; capped so it never lands on the last step); the second mark (value X2) is uniform
    over the first ``T // 2 - 1`` steps that are still unmarked. The first and the last step
    carry marker -1 unless marked. When the first step is marked its value is set to 0 in
    ``x`` and in the target (the paper sets X1 to 0 "in the rare case where the first pair
    got marked"; here whichever mark lands there, as X2 can too). The target ``y`` (shape
    ``(n, 1)``) is ``0.5 + (X1 + X2) / 4``, the sum scaled into ``[0, 1]``; loss MSE.
    The paper draws each length uniformly from ``[T, T + T/10]``; here every sequence has
    length ``T``, so that a batch is one array.

    Baseline: predict the mean 0.5. Its MSE is ``E[(X1 + X2)^2] / 16`` with
    ``E[Xk^2] = (1/3) P(mark k is not on the first step)``: slightly under the
    ``1/24`` usually quoted, which ignores the zeroing (``0.0392`` for ``T = 100``).
    """

    seq_len: int
    loss: ClassVar[str] = "mse"
    input_size: ClassVar[int] = 2
    output_size: ClassVar[int] = 1
    VALUES: ClassVar[tuple[float, float]] = (-1.0, 1.0)
    FIRST_MARK_WINDOW: ClassVar[int] = 10

    def __post_init__(self):
        self._set_int("seq_len", 4)

    @property
    def _window(self) -> int:
        """Number of candidate steps for the first mark."""
        return min(self.FIRST_MARK_WINDOW, self.seq_len - 1)

    @property
    def _candidates(self) -> int:
        """Number of still-unmarked candidate steps for the second mark: T // 2 - 1."""
        return self.seq_len // 2 - 1

    def _draw(self, n, gen):
        T = self.seq_len
        x = np.zeros((n, T, 2))
        x[:, :, 0] = gen.uniform(*self.VALUES, size=(n, T))
        x[:, [0, T - 1], 1] = -1.0
        rows = np.arange(n)
        first = gen.integers(0, self._window, size=n)
        k = gen.integers(0, self._candidates, size=n)  # k-th unmarked step, skipping `first`
        second = k + (k >= first)
        x[rows, first, 1] = 1.0
        x[rows, second, 1] = 1.0
        x[:, 0, 0] = np.where(x[:, 0, 1] == 1.0, 0.0, x[:, 0, 0])
        y = 0.5 + (x[rows, first, 0] + x[rows, second, 0]) / 4.0
        return x, y[:, None]

    def baseline_predict(self, x) -> np.ndarray:
        """Predict the mean 0.5 for every sequence of ``x``: shape ``(n, 1)``."""
        x = _check_x(type(self).__name__, x, self.seq_len, self.input_size)
        return np.full((x.shape[0], 1), 0.5)

    @property
    def baseline_loss(self) -> float:
        """MSE of predicting 0.5: ``(E[X1^2] + E[X2^2]) / 16`` with the zeroing accounted for."""
        p_first_zero = 1.0 / self._window
        p_second_zero = (1.0 - p_first_zero) / self._candidates
        moment = _uniform_second_moment(*self.VALUES)
        return moment * ((1.0 - p_first_zero) + (1.0 - p_second_zero)) / 16.0


@dataclass(frozen=True)
class CopyTask(_Task):
    """The copying-memory task of Arjovsky, Shah & Bengio (2016), "Unitary Evolution
    Recurrent Neural Networks", ICML (after Hochreiter & Schmidhuber 1997).

    Classes: 0 blank, ``1..S`` symbols (``S`` = ``n_symbols``), ``S + 1`` delimiter. With
    ``L`` = ``copy_len`` the input is ``L`` symbols drawn uniformly with replacement, then
    ``delay - 1`` blanks, the delimiter, then ``L`` blanks: ``T = delay + 2 L`` steps
    (``delay`` is the paper's T, so its ``T + 20`` steps for ``L = 10``). ``x`` is one-hot,
    shape ``(n, T, S + 2)``. The target ``y``, integer class ids of shape ``(n, T)``, is blank
    everywhere except the last ``L`` steps, which repeat the ``L`` symbols in order. Loss:
    cross-entropy per step over ``output_size = S + 1`` classes (blank and the symbols).

    Baseline: without memory, predict blank with certainty until the delimiter and then a
    uniform distribution over the ``S`` symbols: loss 0 on the first ``T - L`` steps and
    ``ln S`` on the last ``L``, so ``L ln S / T`` per step (``10 ln 8 / (delay + 20)``).
    """

    delay: int
    n_symbols: int = 8
    copy_len: int = 10
    loss: ClassVar[str] = "cross_entropy"

    def __post_init__(self):
        self._set_int("delay", 1)
        self._set_int("n_symbols", 1)
        self._set_int("copy_len", 1)

    @property
    def seq_len(self) -> int:
        """Steps per sequence: ``T = delay + 2 * copy_len``."""
        return self.delay + 2 * self.copy_len

    @property
    def input_size(self) -> int:
        """One-hot width: blank, ``n_symbols`` symbols and the delimiter."""
        return self.n_symbols + 2

    @property
    def output_size(self) -> int:
        """Target classes: blank and the ``n_symbols`` symbols."""
        return self.n_symbols + 1

    def _draw(self, n, gen):
        L = self.copy_len
        ids = np.zeros((n, self.seq_len), dtype=np.int64)
        ids[:, :L] = gen.integers(1, self.n_symbols + 1, size=(n, L))
        ids[:, L + self.delay - 1] = self.n_symbols + 1
        y = np.zeros_like(ids)
        y[:, -L:] = ids[:, :L]
        return np.eye(self.input_size)[ids], y

    def baseline_predict(self, x) -> np.ndarray:
        """Probabilities ``(n, T, n_symbols + 1)`` for ``x``: blank until the delimiter, then
        uniform."""
        x = _check_x(type(self).__name__, x, self.seq_len, self.input_size)
        probs = np.zeros((x.shape[0], self.seq_len, self.output_size))
        probs[:, : -self.copy_len, 0] = 1.0
        probs[:, -self.copy_len :, 1:] = 1.0 / self.n_symbols
        return probs

    @property
    def baseline_loss(self) -> float:
        """Cross-entropy per step of the memoryless predictor: ``copy_len ln(n_symbols) / T``."""
        return self.copy_len * math.log(self.n_symbols) / self.seq_len


@dataclass(frozen=True)
class SineTask(_Task):
    """One-step (or ``horizon``-step) forecasting of random sine waves.

    For each sequence draw amplitude ``A ~ U(0.5, 1.5)``, frequency ``f ~ U(0.02, 0.1)``
    cycles per step (periods of 10 to 50 steps) and phase ``phi ~ U(0, 2 pi)``, and let
    ``s(t) = A sin(2 pi f t + phi)``. ``x[:, t, 0] = s(t)`` for ``t = 0..T-1`` (shape
    ``(n, T, 1)``, ``T`` = ``seq_len``); the target is ``y = s(T - 1 + horizon)``, shape
    ``(n, 1)``; loss MSE.

    Baseline: persistence, predicting the last observed value ``s(T - 1)``. As the phase is
    uniform, ``E[(s(t + h) - s(t))^2] = E[A^2] (1 - E[cos(2 pi f h)])`` with
    ``E[cos(2 pi f h)] = (sin(2 pi f1 h) - sin(2 pi f0 h)) / (2 pi h (f1 - f0))`` for
    ``f ~ U(f0, f1)``. (Predicting 0 would score ``E[A^2] / 2``, far worse.)
    """

    seq_len: int
    horizon: int = 1
    loss: ClassVar[str] = "mse"
    input_size: ClassVar[int] = 1
    output_size: ClassVar[int] = 1
    AMPLITUDE: ClassVar[tuple[float, float]] = (0.5, 1.5)
    FREQUENCY: ClassVar[tuple[float, float]] = (0.02, 0.1)

    def __post_init__(self):
        self._set_int("seq_len", 1)
        self._set_int("horizon", 1)

    def _draw(self, n, gen):
        amplitude = gen.uniform(*self.AMPLITUDE, size=(n, 1))
        frequency = gen.uniform(*self.FREQUENCY, size=(n, 1))
        phase = gen.uniform(0.0, 2.0 * np.pi, size=(n, 1))
        t = np.arange(self.seq_len + self.horizon)
        s = amplitude * np.sin(2.0 * np.pi * frequency * t + phase)  # (n, T + horizon)
        return s[:, : self.seq_len, None], s[:, -1:]

    def baseline_predict(self, x) -> np.ndarray:
        """Persistence: the last observed value ``x[:, -1, :]``, shape ``(n, 1)``."""
        x = _check_x(type(self).__name__, x, self.seq_len, self.input_size)
        return x[:, -1, :].astype(np.float64)

    @property
    def baseline_loss(self) -> float:
        """MSE of persistence: ``E[A^2] (1 - E[cos(2 pi f horizon)])``."""
        f0, f1 = self.FREQUENCY
        w = 2.0 * np.pi * self.horizon
        mean_cos = (math.sin(w * f1) - math.sin(w * f0)) / (w * (f1 - f0))
        return _uniform_second_moment(*self.AMPLITUDE) * (1.0 - mean_cos)


@dataclass(frozen=True)
class RecallTask(_Task):
    """Delayed recall on a stream: repeat the input of ``delay`` steps ago.

    ``x[i, t, 0] ~ U(-1, 1)`` independently and the target is ``y[i, t, 0] = x[i, t - delay, 0]``,
    both of shape ``(n, T, 1)`` with ``T`` = ``seq_len``; loss MSE at every step. The sequences are
    windows of endless streams: the ``delay`` values before the first step exist (drawn, never
    shown), so every target is U(-1, 1), and the first ``delay`` targets of a window cannot be
    known from it. A trainer reads one stream in chunks: ``pending = start(n, rng)``, then
    ``x, y, pending = chunk(pending, length, rng)`` again and again (``pending`` ``(n, delay, 1)``:
    the last ``delay`` values, the targets still to come).

    Baseline: without memory the best prediction is 0, MSE ``E[x^2] = 1/3``. A model that
    remembers ``delay`` steps reaches 0 on every target but the first ``delay`` of a stream.
    """

    seq_len: int
    delay: int = 8
    loss: ClassVar[str] = "mse"
    input_size: ClassVar[int] = 1
    output_size: ClassVar[int] = 1
    VALUES: ClassVar[tuple[float, float]] = (-1.0, 1.0)

    def __post_init__(self):
        self._set_int("seq_len", 1)
        self._set_int("delay", 1)

    def start(self, n: int, rng) -> np.ndarray:
        """The ``delay`` values of ``n`` streams before their first step, drawn from ``rng``:
        ``(n, delay, 1)``."""
        n = check_size(type(self).__name__, "n", n)
        return as_generator(rng, type(self).__name__).uniform(*self.VALUES, size=(n, self.delay, 1))

    def chunk(self, pending, length: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The next ``length`` steps of the streams whose last ``delay`` values are ``pending``:
        ``(x, y, pending_next)``, ``x`` and ``y`` of shape ``(n, length, 1)``, the new values drawn
        from ``rng``. ``pending`` is not modified."""
        owner = type(self).__name__
        pending = np.asarray(pending)
        if pending.ndim != 3 or pending.shape[1:] != (self.delay, 1) or pending.shape[0] == 0:
            raise ValueError(f"{owner}: expected pending of shape (n, {self.delay}, 1), got {pending.shape}")
        length = check_size(owner, "length", length)
        x = as_generator(rng, owner).uniform(*self.VALUES, size=(pending.shape[0], length, 1))
        stream = np.concatenate([pending, x], axis=1)  # (n, delay + length, 1)
        return x, stream[:, :length].copy(), stream[:, length:].copy()

    def _draw(self, n, gen):
        x, y, _ = self.chunk(self.start(n, gen), self.seq_len, gen)
        return x, y

    def baseline_predict(self, x) -> np.ndarray:
        """Predict the mean 0 at every step of ``x``: shape ``(n, T, 1)``."""
        x = _check_x(type(self).__name__, x, self.seq_len, self.input_size)
        return np.zeros(x.shape)

    @property
    def baseline_loss(self) -> float:
        """MSE of predicting 0: ``E[x^2]`` for ``x ~ U(-1, 1)``, that is 1/3."""
        return _uniform_second_moment(*self.VALUES)


TASKS = {
    "memory": MemoryTask,
    "adding": AddingTask,
    "adding-hs": AddingTaskHS,
    "copy": CopyTask,
    "sine": SineTask,
    "recall": RecallTask,
}


def make_task(name: str, **kwargs):
    """Build the task registered as ``name`` in ``TASKS`` with the keyword arguments ``kwargs``."""
    return _checks.lookup("make_task", "task", name, TASKS)(**kwargs)


def empirical_baseline(task, x, y) -> float:
    """Mean loss of ``task.baseline_predict(x)`` on the inputs ``x`` against the targets ``y``
    under ``task.loss``.

    For ``"mse"`` the mean of ``(prediction - y) ** 2`` over all elements; for
    ``"cross_entropy"`` the mean over all targets of ``-ln p[target]``, where the prediction
    holds probabilities over the last axis. On a large sample it approaches
    ``task.baseline_loss``.
    """
    prediction = task.baseline_predict(x)
    y = np.asarray(y)
    if task.loss == "mse":
        return float(np.mean((prediction - y) ** 2))
    p = np.take_along_axis(prediction, y[..., None], axis=-1)
    return float(-np.mean(np.log(p)))


# ----------------------------------------------------------------------------- text
class CharCorpus:
    """Character-level language modelling on one text (Karpathy's char-rnn setting).

    ``vocab`` is the string of distinct characters (sorted, unless given); a character's id is
    its index there. ``ids`` is the whole text encoded, shape ``(N,)``. The model reads ids
    ``x[t]`` and predicts ``y[t] = x[t + 1]`` with a softmax over ``V = len(vocab)`` classes;
    loss cross-entropy.

    Baselines: ``baseline_loss`` is the cross-entropy of the unigram predictor (the
    character frequencies of this text, ``-sum_c p_c ln p_c``); ``uniform_loss`` is ``ln V``.
    """

    loss: ClassVar[str] = "cross_entropy"
    #: the shipped text, xz-compressed in the package's data folder (provenance in data/README.md):
    #: its file name, and the size in bytes and SHA-256 of the uncompressed UTF-8 text
    BUILTIN: ClassVar[str] = "tinyshakespeare.txt.xz"
    BUILTIN_SIZE: ClassVar[int] = 1_115_394
    BUILTIN_SHA256: ClassVar[str] = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    #: compressed text files ``from_file`` reads transparently: suffix -> standard-library module
    COMPRESSED: ClassVar[dict[str, str]] = {".gz": "gzip", ".xz": "lzma", ".bz2": "bz2"}
    #: the most bytes of text a corpus file may hold (100x tiny Shakespeare): a file, or a
    #: checkpoint's stored configuration, cannot make a run read more
    MAX_TEXT_BYTES: ClassVar[int] = 2 ** 27

    def __init__(self, text: str, vocab: str | None = None):
        """A corpus of ``text``; ``vocab`` (default: its sorted distinct characters) covers it."""
        if not isinstance(text, str):
            raise TypeError(f"CharCorpus: expected text to be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("CharCorpus: expected a non-empty text, got ''")
        if vocab is None:
            vocab = "".join(sorted(set(text)))
        if not isinstance(vocab, str):
            raise TypeError(f"CharCorpus: expected vocab to be a str, got {type(vocab).__name__}")
        if len(set(vocab)) != len(vocab):
            raise ValueError(f"CharCorpus: expected vocab of distinct characters, got {vocab!r}")
        self.text = text
        self.vocab = vocab
        self._index = {c: i for i, c in enumerate(vocab)}
        self.ids = self._encode("CharCorpus", text)
        self.ids.flags.writeable = False

    @classmethod
    def from_text(cls, text: str, vocab: str | None = None) -> CharCorpus:
        """A corpus of the string ``text`` over the characters ``vocab`` (default: those of the
        text), the same as ``CharCorpus(text, vocab)``."""
        return cls(text, vocab)

    @classmethod
    def from_file(cls, path) -> CharCorpus:
        """A corpus of the UTF-8 text file at ``path``; a ``.gz``, ``.xz`` or ``.bz2`` file is
        decompressed first."""
        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(f"CharCorpus.from_file: expected a text file, '{path}' is a folder")
        if not path.is_file():
            raise FileNotFoundError(f"CharCorpus.from_file: no such file: '{path}'")
        try:
            text = cls._read_bytes(path).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"CharCorpus.from_file: '{path}' is not valid UTF-8: {exc}") from None
        if not text:
            raise ValueError(f"CharCorpus.from_file: expected a non-empty text, '{path}' is empty")
        return cls(text)

    @classmethod
    def _read_bytes(cls, path: Path) -> bytes:
        """The bytes of ``path``, decompressed when its suffix is one of ``COMPRESSED``; at most
        ``MAX_TEXT_BYTES`` of text (a decompression bomb stops there, having used that much)."""
        limit, module = cls.MAX_TEXT_BYTES, cls.COMPRESSED.get(path.suffix.lower())
        if module is None:
            if path.stat().st_size > limit:
                raise ValueError(f"CharCorpus.from_file: '{path}' holds {path.stat().st_size} bytes, "
                                 f"more than the limit of {limit}")
            return path.read_bytes()
        codec = importlib.import_module(module)
        corrupt = (OSError, EOFError, ValueError, zlib.error, getattr(codec, "LZMAError", OSError))
        try:
            with codec.open(path, "rb") as stream:
                data = stream.read(limit + 1)
        except corrupt as exc:
            raise ValueError(f"CharCorpus.from_file: '{path}' is not a valid {path.suffix} file: {exc}") from None
        if len(data) > limit:
            raise ValueError(f"CharCorpus.from_file: '{path}' decompresses to more than the limit of {limit} bytes")
        return data

    @classmethod
    def builtin(cls) -> CharCorpus:
        """The shipped text: "tiny Shakespeare", 1,115,394 characters from Shakespeare's plays
        (public domain; Karpathy's char-rnn corpus, the text of nanoGPT's ``shakespeare_char``).

        Decompressed from the package data and checked against its size and SHA-256.
        """
        raw = importlib.import_module("lzma").decompress(
            resources.files("numpy_rnn").joinpath("data", cls.BUILTIN).read_bytes())
        digest = hashlib.sha256(raw).hexdigest()
        if len(raw) != cls.BUILTIN_SIZE or digest != cls.BUILTIN_SHA256:
            raise ValueError(
                f"CharCorpus.builtin: the shipped text {cls.BUILTIN} is damaged: expected "
                f"{cls.BUILTIN_SIZE} bytes with SHA-256 {cls.BUILTIN_SHA256}, got {len(raw)} bytes "
                f"with SHA-256 {digest}; reinstall numpy-rnn"
            )
        return cls(raw.decode("utf-8"))

    def __len__(self) -> int:
        return len(self.text)

    def __repr__(self) -> str:
        return f"CharCorpus({len(self)} characters, V={len(self.vocab)})"

    @property
    def input_size(self) -> int:
        """``V``: ids are inputs of a ``V``-way embedding or one-hot."""
        return len(self.vocab)

    @property
    def output_size(self) -> int:
        """``V``: logits over the vocabulary."""
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        """The int64 ids ``(len(text),)`` of the characters of ``text``."""
        return self._encode("CharCorpus.encode", text)

    def _encode(self, owner: str, text) -> np.ndarray:
        """:meth:`encode`, its errors naming ``owner`` (the constructor reports as itself)."""
        if not isinstance(text, str):
            raise TypeError(f"{owner}: expected a str, got {type(text).__name__}")
        unknown = sorted(set(text) - self._index.keys())
        if unknown:
            shown = unknown if len(unknown) <= 20 else [*unknown[:20], "..."]
            raise ValueError(f"{owner}: text has characters not in the vocabulary: {shown}")
        return np.fromiter((self._index[c] for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids) -> str:
        """The string of the 1-D integer ``ids``."""
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"CharCorpus.decode: expected integer ids, got dtype {ids.dtype}")
        if ids.ndim != 1:
            raise ValueError(f"CharCorpus.decode: expected ids of shape (N,), got {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.vocab)):
            raise ValueError(
                f"CharCorpus.decode: expected ids in [0, {len(self.vocab)}), "
                f"got values in [{ids.min()}, {ids.max()}]"
            )
        return "".join(self.vocab[i] for i in ids)

    def split(
        self, valid_fraction: float = 0.05, test_fraction: float = 0.05
    ) -> tuple[CharCorpus, CharCorpus, CharCorpus]:
        """``(train, valid, test)``: the text cut twice, the parts in the order of the text.

        With ``N`` characters, ``valid_fraction`` ``v`` and ``test_fraction`` ``t``, training is
        ``text[:a]``, validation ``text[a:b]`` and test ``text[b:]`` where
        ``a = floor(N (1 - (v + t)))`` and ``b = floor(N (1 - t))``. The default 90/5/5 keeps
        nanoGPT's training split of a text (its first ``int(0.9 N)`` characters) and cuts its
        validation split, the last 10%, into validation and test halves (for tiny Shakespeare:
        1,003,854 / 55,770 / 55,770 characters). All three keep this corpus's vocabulary, so
        their ids agree.
        """
        owner = "CharCorpus.split"
        valid = check_real(owner, "valid_fraction", valid_fraction, low=0.0, low_open=True)
        test = check_real(owner, "test_fraction", test_fraction, low=0.0, low_open=True)
        if valid + test >= 1.0:
            raise ValueError(f"{owner}: expected valid_fraction + test_fraction < 1, "
                             f"got {valid_fraction} + {test_fraction}")
        a, b = int(len(self) * (1.0 - (valid + test))), int(len(self) * (1.0 - test))
        if not 0 < a < b < len(self):
            raise ValueError(
                f"{owner}: valid_fraction {valid_fraction} and test_fraction {test_fraction} leave "
                f"an empty part of a text of {len(self)} characters"
            )
        return tuple(CharCorpus(part, self.vocab) for part in (self.text[:a], self.text[a:b], self.text[b:]))

    def batches(
        self, batch_size: int, seq_len: int, rng
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of shuffled windows: an iterator of ``(x, y)`` int64 id arrays ``(B, T)``,
        ``B`` = ``batch_size`` and ``T`` = ``seq_len``, drawn from ``rng`` (a seed or a Generator).

        The text is cut, from a random offset in ``[0, T)``, into non-overlapping windows
        ``x = ids[s : s + T]``, ``y = ids[s + 1 : s + T + 1]``; the windows are shuffled and
        grouped into full batches of ``B`` (the remainder is dropped).
        """
        owner = "CharCorpus.batches"
        B = check_size(owner, "batch_size", batch_size, minimum=1)
        T = check_size(owner, "seq_len", seq_len, minimum=1)
        gen = as_generator(rng, owner)
        if (len(self) - T) // T < B:
            raise ValueError(
                f"{owner}: a text of {len(self)} characters is too short for "
                f"batch_size={B} windows of seq_len={T}"
            )
        offset = int(gen.integers(0, T))
        starts = gen.permutation(np.arange(offset, len(self) - T, T))
        starts = starts[: len(starts) // B * B].reshape(-1, B)
        steps = np.arange(T)
        return ((self.ids[s[:, None] + steps], self.ids[s[:, None] + steps + 1]) for s in starts)

    def stream(self, batch_size: int) -> np.ndarray:
        """The text as ``B`` = ``batch_size`` parallel contiguous streams: ids of shape ``(B, N //
        B)``.

        Row ``b`` is ``ids[b * M : (b + 1) * M]`` with ``M = N // B``. For truncated
        backpropagation through time with chunks of ``T`` steps, chunk ``k`` is
        ``x = s[:, k T : (k + 1) T]``, ``y = s[:, k T + 1 : (k + 1) T + 1]``, and the hidden
        state is carried from one chunk to the next.
        """
        B = check_size("CharCorpus.stream", "batch_size", batch_size, minimum=1)
        M = len(self) // B
        if M < 2:
            raise ValueError(
                f"CharCorpus.stream: a text of {len(self)} characters is too short "
                f"for batch_size={B} streams of at least 2 characters"
            )
        return self.ids[: B * M].reshape(B, M).copy()

    @property
    def unigram(self) -> np.ndarray:
        """Character frequencies of the text, shape ``(V,)``, summing to 1."""
        return np.bincount(self.ids, minlength=len(self.vocab)) / len(self)

    @property
    def baseline_loss(self) -> float:
        """Cross-entropy of the unigram predictor: ``-sum_c p_c ln p_c`` over this text."""
        p = self.unigram[self.unigram > 0]
        return float(-np.sum(p * np.log(p)))

    @property
    def uniform_loss(self) -> float:
        """Cross-entropy of the uniform predictor: ``ln V``."""
        return math.log(len(self.vocab))

    def baseline_predict(self, x) -> np.ndarray:
        """The unigram probabilities for every input id of ``x``: shape ``(B, T, V)``."""
        x = np.asarray(x)
        return np.broadcast_to(self.unigram, x.shape + (len(self.vocab),))
