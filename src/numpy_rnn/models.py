"""Models: the notebook's sequence-to-one RNN, and sequence models built from any layer.

:class:`RNN` keeps the notebook's names and methods. :class:`SequenceModel` puts a recurrent
layer (any cell, stacked, bidirectional) between an optional token input (one-hot or a
learned embedding) and a linear head, sequence-to-one or sequence-to-sequence, described by a
:class:`ModelConfig` whose fields are plain data (JSON-ready, as checkpoints store them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _checks
from .init import identity, lecun_uniform, zeros
from .layers import GRU, LSTM, Embedding, Linear, SimpleRNN

#: ``ModelConfig.cell`` names -> layer classes
CELLS = {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}

# the notebook's names -> (sub-layer, its parameter name)
_NAMES = {"W": ("rnn", "W"), "R": ("rnn", "R"), "V": ("head", "W"), "bs": ("rnn", "b"), "by": ("head", "b")}


class RNN:
    """Sequence-to-one Elman regressor of the course notebook, with its names and methods.

    ``s(t) = x(t) W + a(t-1) R + bs``, ``a(t) = tanh(s(t))``, ``y = a(T) V + by`` with
    ``W (D, H)``, ``R (H, H)``, ``bs (H,)``, ``V (H, K)``, ``by (K,)``, ``a(0) = 0``.
    Initialisation as in the notebook: ``R = I``; ``W``, ``V`` LeCun uniform
    U(+-sqrt(3/fan_in)); biases zero.

    ``forward(x)``: ``x (T, D)`` returns ``(K, 1)`` as the notebook does; a batch ``(B, T, D)``
    returns ``(B, K)``. ``backward(d_loss)`` returns ``{'dW', 'dR', 'dV', 'dbs', 'dby'}`` in the
    parameters' own shapes (the notebook returned transposes); each call replaces the
    gradients, as in the notebook. ``update(lr)`` takes one gradient-descent step.
    """

    def __init__(self, input_size, hidden_size, output_size, *, rng=None, dtype=np.float64):
        self.input_size = _checks.check_size("RNN", "input_size", input_size)
        self.hidden_size = _checks.check_size("RNN", "hidden_size", hidden_size)
        self.output_size = _checks.check_size("RNN", "output_size", output_size)
        self.rng = _checks.as_generator(rng)
        self.rnn = SimpleRNN(input_size, hidden_size, rng=self.rng, dtype=dtype)
        self.head = Linear(hidden_size, output_size, rng=self.rng, dtype=dtype)
        self.dtype = self.rnn.dtype
        self.params = {key: getattr(self, part).params[name] for key, (part, name) in _NAMES.items()}
        self.grads = {key: getattr(self, part).grads[name] for key, (part, name) in _NAMES.items()}
        self._has_grads = False
        self._unbatched = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``R = I``; ``W``, ``V`` LeCun uniform; ``bs``, ``by`` zero (the notebook's choice)."""
        rules = {"W": lecun_uniform, "R": identity, "V": lecun_uniform, "bs": zeros, "by": zeros}
        for key, rule in rules.items():
            self.params[key][...] = rule(self.params[key].shape, self.rng, self.dtype)

    def forward(self, x) -> np.ndarray:
        out, h_n = self.rnn.forward(x)  # h_n (1, B, H) or (1, H)
        self._unbatched, self._out_shape = out.ndim == 2, out.shape
        y = self.head.forward(h_n[0])  # (B, K) or (K,)
        return y[:, None] if self._unbatched else y

    def apply(self, params, x) -> np.ndarray:
        """Functional forward on a batch ``x (..., B, T, D)`` -> ``(..., B, K)``; parameters
        may carry leading axes (used by the vectorised gradient check)."""
        rnn_params = {"W": params["W"], "R": params["R"], "b": params["bs"]}
        _, h_n = self.rnn.apply(rnn_params, x)
        return Linear.apply({"W": params["V"], "b": params["by"]}, h_n[..., 0, :, :])

    def backward(self, d_loss) -> dict:
        """Gradients of the loss whose gradient w.r.t. the output is ``d_loss``."""
        if self._unbatched is None:
            raise RuntimeError("RNN: backward() called before forward()")
        d_loss = _checks.check_array("RNN", "d_loss", d_loss, self.dtype)
        K = self.output_size
        if self._unbatched:
            if d_loss.shape not in ((K, 1), (K,)):
                raise ValueError(f"RNN: expected d_loss of shape ({K}, 1) or ({K},), got {_checks.shape_str(d_loss.shape)}")
            d_loss = d_loss.reshape(K)
        self.rnn.zero_grad()
        self.head.zero_grad()
        d_h = self.head.backward(d_loss)  # (B, H) or (H,)
        d_out = np.zeros(self._out_shape, dtype=self.dtype)  # only the last state feeds y
        self.rnn.backward(d_out, d_h[None])
        self._has_grads = True
        return {"d" + key: value.copy() for key, value in self.grads.items()}

    def update(self, lr: float) -> None:
        """``w -= lr * dw`` for every parameter; needs a ``backward()`` since the last update."""
        lr = _checks.check_float("RNN", "lr", lr, low=0.0)
        if not self._has_grads:
            raise RuntimeError("RNN: update() called before backward(); call forward() and backward() first")
        for key, value in self.params.items():
            value -= lr * self.grads[key]
        self._has_grads = False

    def get_weights(self) -> dict:
        """Copies of ``W, R, V, bs, by``."""
        return {key: value.copy() for key, value in self.params.items()}

    def set_weights(self, weights: dict) -> None:
        """Copy ``W, R, V, bs, by`` in (all five, each of its exact shape and dtype)."""
        if not isinstance(weights, dict):
            raise TypeError(f"RNN: expected weights to be a dict, got {type(weights).__name__}")
        missing = [key for key in self.params if key not in weights]
        extra = [key for key in weights if key not in self.params]
        if missing or extra:
            raise ValueError(f"RNN: expected weights with keys {list(self.params)}, missing {missing}, unexpected {extra}")
        checked = {}
        for key, value in weights.items():
            checked[key] = _checks.check_array("RNN", f"weights[{key!r}]", value, self.dtype)
            _checks.check_shape("RNN", f"weights[{key!r}]", checked[key], self.params[key].shape)
        for key, value in checked.items():
            self.params[key][...] = value

    def __repr__(self):
        return f"RNN({self.input_size}, {self.hidden_size}, {self.output_size}, dtype={self.dtype})"


@dataclass(frozen=True)
class ModelConfig(_checks.PlainConfig):
    """Architecture of a :class:`SequenceModel`; every field is plain data.

    ``input_size`` is the number of features, or the vocabulary size when ``tokens``;
    ``embedding_size`` 0 feeds tokens one-hot, > 0 through a learned embedding. ``init`` maps
    parameter names of the layer (``W``, ``R``, ``b``, ...) to initialiser names.
    ``sequence_output`` False reads out the last layer's final state (both directions'
    states concatenated when bidirectional): one output per sequence; True reads out every step.
    """

    input_size: int
    output_size: int
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    nonlinearity: str = "tanh"
    init: dict = field(default_factory=dict)
    sequence_output: bool = False
    tokens: bool = False
    embedding_size: int = 0
    dtype: str = "float64"

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"ModelConfig: unknown cell {self.cell!r}; valid names: {', '.join(CELLS)}")
        if self.nonlinearity != "tanh" and self.cell != "rnn":
            raise ValueError(f"ModelConfig: nonlinearity applies to cell 'rnn' only, got {self.nonlinearity!r} with {self.cell!r}")
        for name in ("bidirectional", "sequence_output", "tokens"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"ModelConfig: expected {name} to be a bool, got {getattr(self, name)!r}")
        _checks.check_size("ModelConfig", "embedding_size", self.embedding_size, minimum=0)
        if self.embedding_size and not self.tokens:
            raise ValueError("ModelConfig: embedding_size needs tokens=True (float inputs are projected by W directly)")


class SequenceModel:
    """Token input (optional) -> recurrent layer -> linear head.

    ``forward(x, lengths=None, state=None) -> (y, state_n)``: ``x`` is ``(B, T, D)`` floats,
    or ``(B, T)`` integer ids when ``config.tokens``; ``y`` is ``(B, K)`` (sequence-to-one) or
    ``(B, T, K)`` (sequence-to-sequence, zero rows past each length before the head's bias).
    ``backward(dy)`` adds every parameter's gradient into ``grads``. Parameters are named
    ``embedding.E``, ``rnn.<layer name>`` and ``head.W``, ``head.b``.
    """

    def __init__(self, config: ModelConfig, rng=None):
        if not isinstance(config, ModelConfig):
            raise TypeError(f"SequenceModel: expected a ModelConfig, got {type(config).__name__}")
        self.config = c = config
        rng = _checks.as_generator(rng)
        dtype = _checks.check_dtype("SequenceModel", c.dtype)
        self.embedding = Embedding(c.input_size, c.embedding_size, rng=rng, dtype=dtype) if c.embedding_size else None
        features = c.embedding_size or c.input_size
        options = {"nonlinearity": c.nonlinearity} if c.cell == "rnn" else {}
        self.rnn = CELLS[c.cell](features, c.hidden_size, c.num_layers, bidirectional=c.bidirectional,
                                 dropout=c.dropout, init=dict(c.init), rng=rng, dtype=dtype, **options)
        self.head = Linear(self.rnn.num_directions * c.hidden_size, c.output_size, rng=rng, dtype=dtype)
        self.dtype = dtype
        self.params, self.grads = {}, {}
        for prefix, part in self._parts():
            self.params.update({f"{prefix}.{k}": v for k, v in part.params.items()})
            self.grads.update({f"{prefix}.{k}": v for k, v in part.grads.items()})
        self._cache = None

    def _parts(self):
        parts = [("embedding", self.embedding), ("rnn", self.rnn), ("head", self.head)]
        return [(name, part) for name, part in parts if part is not None]

    def zero_grad(self) -> None:
        for value in self.grads.values():
            value.fill(0.0)

    def train(self, mode: bool = True):
        self.rnn.train(mode)
        return self

    def eval(self):
        return self.train(False)

    @property
    def training(self) -> bool:
        return self.rnn.training

    def _inputs(self, x):
        c = self.config
        if not c.tokens:
            return x
        ids = _checks.check_ids("SequenceModel", "x", x, c.input_size)
        if ids.ndim != 2:
            raise ValueError(f"SequenceModel: expected token ids of shape (B, T), got {_checks.shape_str(ids.shape)}")
        if self.embedding is not None:
            return self.embedding.forward(ids)
        return np.eye(c.input_size, dtype=self.dtype)[ids]  # one-hot (B, T, V)

    def forward(self, x, lengths=None, state=None):
        inputs = self._inputs(x)
        if np.ndim(inputs) != 3:
            raise ValueError(f"SequenceModel: expected x of shape (B, T, {self.config.input_size}), got {_checks.shape_str(np.shape(inputs))}")
        out, state_n = self.rnn.forward(inputs, state, lengths)
        if self.config.sequence_output:
            features = out  # (B, T, dirs*H)
        else:
            h_n = state_n[0] if isinstance(state_n, tuple) else state_n
            features = np.concatenate(list(h_n[-self.rnn.num_directions:]), axis=-1)  # (B, dirs*H)
        self._cache = (out.shape, h_n.shape if not self.config.sequence_output else None)
        return self.head.forward(features), state_n

    def backward(self, dy) -> None:
        if self._cache is None:
            raise RuntimeError("SequenceModel: backward() called before forward()")
        out_shape, state_shape = self._cache
        d_features = self.head.backward(dy)
        if self.config.sequence_output:
            d_inputs, _ = self.rnn.backward(d_features)
        else:
            d_h = np.zeros(state_shape, dtype=self.dtype)
            d_h[-self.rnn.num_directions:] = np.stack(np.split(d_features, self.rnn.num_directions, axis=-1))
            d_state = (d_h, None) if isinstance(self.rnn, LSTM) else d_h
            d_inputs, _ = self.rnn.backward(np.zeros(out_shape, dtype=self.dtype), d_state)
        if self.embedding is not None:
            self.embedding.backward(d_inputs)

    def __repr__(self):
        return f"SequenceModel({self.config})"
