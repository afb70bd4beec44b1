"""Models: the notebook's sequence-to-one RNN, and sequence models built from any layer.

:class:`RNN` keeps the notebook's names and methods. :class:`SequenceModel` puts a recurrent
layer (any cell, stacked, bidirectional) between an optional token input (one-hot or a
learned embedding) and a linear head, sequence-to-one or sequence-to-sequence, described by a
:class:`ModelConfig` whose fields are plain data (JSON-ready, as checkpoints store them).
Both are :class:`~numpy_rnn.module.Module` s: ``params``, ``grads``, ``zero_grad``,
``train``/``eval``, ``state_dict``/``load_state_dict``.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import re
import sys
from dataclasses import dataclass, field

import numpy as np

from . import _checks
from .cells import Cell
from .init import identity, lecun_uniform, zeros
from .layers import GRU, LSTM, Embedding, Linear, Recurrent, SimpleRNN, State
from .module import Module
from .rtrl import RTRL

#: ``ModelConfig.cell`` names -> layer classes
CELLS = {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}


#: a cell of your own: ``MODULE:CLASS``
_CELL_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
#: False while a stored configuration is read (:func:`stored_configuration`)
_MAY_IMPORT = contextvars.ContextVar("numpy_rnn_may_import", default=True)


def cell_class(name: str, owner: str = "ModelConfig") -> type:
    """The layer class of the built-in cell ``name`` (:data:`CELLS`), or the cell of your own
    that a ``name`` ``"MODULE:CLASS"`` names: a :class:`~numpy_rnn.cells.Cell` subclass that takes
    ``hidden_size`` alone (``examples.indrnn:IndRNNCell``), from the module as
    :func:`import_cells` imports it, or as already imported while a stored configuration is
    read. ``owner`` begins the errors."""
    if not isinstance(name, str) or ":" not in name:
        return _checks.lookup(owner, "cell", name, CELLS)
    if not _CELL_PATH.fullmatch(name):
        raise ValueError(f"{owner}: expected cell to be one of {', '.join(CELLS)} or 'MODULE:CLASS' (a dotted module "
                         f"name, a class name), got {name!r}")
    module_name, _, class_name = name.partition(":")
    if _MAY_IMPORT.get():
        module = import_cells(module_name, f"{owner}: cell {name!r}")
    elif (module := sys.modules.get(module_name)) is None:
        raise ValueError(f"{owner}: cell {name!r}: expected module {module_name!r} to be imported, as a stored "
                         f"configuration imports nothing (loading a run never runs code); import it first "
                         f"(numpy-rnn: --import {module_name})")
    cell = getattr(module, class_name, None)
    if not (isinstance(cell, type) and issubclass(cell, Cell)):
        raise ValueError(f"{owner}: expected cell {name!r} to name a numpy_rnn.cells.Cell subclass in module "
                         f"{module_name!r}, got {type(cell).__name__ if cell is not None else 'nothing'} there")
    return cell


@contextlib.contextmanager
def stored_configuration():
    """Inside the ``with`` block a ``"MODULE:CLASS"`` cell resolves from an imported module only,
    so that reading a stored configuration (a checkpoint's, a run folder's config.json) never
    runs code, whoever wrote it."""
    token = _MAY_IMPORT.set(False)
    try:
        yield
    finally:
        _MAY_IMPORT.reset(token)


def import_cells(module_name: str, owner: str = "import_cells"):
    """Import the module ``module_name`` (cells of your own) from ``sys.path``, else from the
    current directory, as ``python -m`` would find it; returns the module. A module found
    nowhere is a ValueError beginning with ``owner``; errors inside the module propagate."""
    here = os.getcwd()
    added = here not in sys.path
    if added:
        sys.path.append(here)  # last: an installed module of the same name comes first
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not _missing_is(exc, module_name):
            raise
        raise ValueError(f"{owner}: expected module {module_name!r} to be importable (installed, on PYTHONPATH "
                         f"or in the current directory {here}), found none") from None
    finally:
        if added:
            sys.path.remove(here)


def _missing_is(exc: ModuleNotFoundError, module_name: str) -> bool:
    """Whether the module not found is ``module_name`` or a package above it (not one it imports)."""
    return exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + "."))


# the notebook's names -> (sub-layer, its parameter name)
_NAMES = {"W": ("rnn", "W"), "R": ("rnn", "R"), "V": ("head", "W"), "bs": ("rnn", "b"), "by": ("head", "b")}


def _notebook_parameter(name: str, what: str) -> property:
    """``model.<name>``: the live parameter array; assigning copies a new value in (same shape
    and dtype, checked) instead of replacing the array the optimizers and layers hold."""

    def get(self) -> np.ndarray:
        return self.params[name]

    def set(self, value) -> None:
        self.params[name][...] = self._checked_parameter(name, value, name)

    return property(get, set, doc=f"{what} (the live parameter array; assignment copies into it)")


class RNN(Module):
    """Sequence-to-one Elman regressor of the course notebook, with its names and methods.

    ``s(t) = x(t) W + a(t-1) R + bs``, ``a(t) = tanh(s(t))``, ``y = a(T) V + by`` with
    ``W (D, H)``, ``R (H, H)``, ``bs (H,)``, ``V (H, K)``, ``by (K,)``, ``a(0) = 0``:
    ``input_size`` is ``D``, ``hidden_size`` ``H``, ``output_size`` ``K``; ``rng`` (``None``, a
    seed or a Generator) draws the weights, of ``dtype``.
    Initialisation as in the notebook: ``R = I``; ``W``, ``V`` LeCun uniform
    U(+-sqrt(3/fan_in)); biases zero.

    As in the notebook, ``model.W``, ``model.R``, ``model.V``, ``model.bs``, ``model.by`` are the
    parameters (the arrays in ``params``) and ``model.a`` holds the hidden states of the last
    forward pass. ``forward(x)``: ``x (T, D)`` returns ``(K, 1)`` as the notebook does; a batch
    ``(B, T, D)`` returns ``(B, K)``. ``backward(d_loss)`` returns the gradients keyed as
    ``params`` and ``grads`` (``W, R, V, bs, by``; the notebook's ``gradient_check`` prints
    them as ``dW, dR, ...``) in the parameters' own shapes (the notebook returned transposes);
    each call replaces the gradients, as in the notebook. ``update(lr)`` takes one
    gradient-descent step. ``get_weights``/``set_weights`` are the notebook's names for
    ``state_dict``/``load_state_dict``.
    """

    W = _notebook_parameter("W", "input weights (D, H)")
    R = _notebook_parameter("R", "recurrent weights (H, H)")
    V = _notebook_parameter("V", "read-out weights (H, K)")
    bs = _notebook_parameter("bs", "hidden bias (H,)")
    by = _notebook_parameter("by", "output bias (K,)")

    def __init__(self, input_size, hidden_size, output_size, *, rng=None, dtype=np.float64):
        self.input_size = _checks.check_size("RNN", "input_size", input_size)
        self.hidden_size = _checks.check_size("RNN", "hidden_size", hidden_size)
        self.output_size = _checks.check_size("RNN", "output_size", output_size)
        self.rng = _checks.as_generator(rng, "RNN")
        self.rnn = SimpleRNN(input_size, hidden_size, rng=self.rng, dtype=dtype)
        self.head = Linear(hidden_size, output_size, rng=self.rng, dtype=dtype)
        self.dtype = self.rnn.dtype
        self.params = {key: getattr(self, part).params[name] for key, (part, name) in _NAMES.items()}
        self.grads = {key: getattr(self, part).grads[name] for key, (part, name) in _NAMES.items()}
        self._has_grads = False
        self._hidden = None  # a(1..T) of the last forward: (T, H) or (B, T, H)
        self._input = None  # a copy of the last forward's x, for backward_rtrl
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``R = I``; ``W``, ``V`` LeCun uniform; ``bs``, ``by`` zero (the notebook's choice)."""
        rules = {"W": lecun_uniform, "R": identity, "V": lecun_uniform, "bs": zeros, "by": zeros}
        for key, rule in rules.items():
            self.params[key][...] = rule(self.params[key].shape, self.rng, self.dtype)

    @property
    def a(self) -> dict[int, np.ndarray]:
        """The notebook's hidden states of the last forward: ``a[0] = 0`` and ``a[t]`` for
        ``t = 1..T``; columns ``(H, 1)`` for one sequence, as in the notebook, rows ``(B, H)``
        for a batch. Before any forward only ``a[0]`` (a column)."""
        column = np.zeros((self.hidden_size, 1), self.dtype)
        if self._hidden is None:
            return {0: column}
        if self._hidden.ndim == 2:  # one sequence (T, H): columns (H, 1)
            return dict(enumerate([column, *self._hidden[:, :, None]]))
        rows = self._hidden.transpose(1, 0, 2)  # (T, B, H)
        return dict(enumerate([np.zeros_like(rows[0]), *rows]))

    def forward(self, x) -> np.ndarray:
        """The notebook's prediction ``y = a(T) V + by`` of a sequence ``x (T, D)`` as ``(K, 1)``, or of a
        batch ``x (B, T, D)`` as ``(B, K)``; the hidden states are kept in ``self.a``."""
        out, h_n = self.rnn.forward(x)  # out (B, T, H) or (T, H); h_n (1, B, H) or (1, H)
        self._hidden, self._input = out, np.array(x, dtype=self.dtype)
        y = self.head.forward(h_n[0])  # (B, K) or (K,)
        return y[:, None] if out.ndim == 2 else y

    def apply(self, params, x) -> np.ndarray:
        """Functional forward on a batch ``x (..., B, T, D)`` -> ``(..., B, K)`` with the
        parameters ``params`` (the notebook's names), which may carry leading axes (used by the
        vectorised gradient check)."""
        rnn_params = {"W": params["W"], "R": params["R"], "b": params["bs"]}
        _, h_n = self.rnn.apply(rnn_params, x)
        return Linear.apply({"W": params["V"], "b": params["by"]}, h_n[..., 0, :, :])

    def backward(self, d_loss) -> dict[str, np.ndarray]:
        """Gradients (copies, keyed ``W, R, V, bs, by``) of the loss whose gradient w.r.t. the
        output is ``d_loss``."""
        d_h = self._head_backward(d_loss, "backward")  # (B, H) or (H,)
        d_out = np.zeros(self._hidden.shape, dtype=self.dtype)  # only the last state feeds y
        self.rnn.backward(d_out, d_h[None])
        return self._gradients()

    def backward_rtrl(self, d_loss) -> dict[str, np.ndarray]:
        """What :meth:`backward` returns for ``d_loss`` (the same dict, the same numbers), computed
        forward in time by real-time recurrent learning (:class:`~numpy_rnn.rtrl.RTRL`) over the
        input of the last forward: the sensitivities ``da(t)/dtheta`` of ``W, R, bs`` are carried
        from ``t = 1`` to ``T`` (``da(t)/dtheta = J(t) da(t-1)/dtheta + I(t)``), and as only
        ``a(T)`` feeds ``y``, ``dL/dtheta = dL/da(T) . da(T)/dtheta``; ``V``, ``by`` come from the
        head."""
        d_h = self._head_backward(d_loss, "backward_rtrl")  # (B, H) or (H,)
        x = self._input if self._input.ndim == 3 else self._input[None]  # (B, T, D)
        rtrl = RTRL(self.rnn)
        rtrl.reset(x.shape[0])
        for t in range(x.shape[1]):
            rtrl.step(x[:, t])
        rtrl.accumulate(d_h.reshape(x.shape[0], self.hidden_size))
        return self._gradients()

    def _head_backward(self, d_loss, caller: str) -> np.ndarray:
        """Check ``d_loss``, clear the gradients, back through the head: ``dL/da(T)`` ``(B, H)`` or ``(H,)``."""
        if self._hidden is None:
            raise RuntimeError(f"RNN: {caller}() called before forward()")
        d_loss = _checks.check_array("RNN", "d_loss", d_loss, self.dtype)
        K = self.output_size
        if self._hidden.ndim == 2:
            if d_loss.shape not in ((K, 1), (K,)):
                raise ValueError(f"RNN: expected d_loss of shape ({K}, 1) or ({K},), got {_checks.shape_str(d_loss.shape)}")
            d_loss = d_loss.reshape(K)
        self.zero_grad()
        return self.head.backward(d_loss)

    def _gradients(self) -> dict[str, np.ndarray]:
        """Copies of the gradients, keyed as ``params``; allows the next :meth:`update`."""
        self._has_grads = True
        return {key: value.copy() for key, value in self.grads.items()}

    def update(self, lr: float) -> None:
        """``w -= lr * dw`` for every parameter, ``lr`` the learning rate; needs a ``backward()``
        since the last update."""
        lr = _checks.check_real("RNN", "lr", lr, low=0.0)
        if not self._has_grads:
            raise RuntimeError("RNN: update() called before backward(); call forward() and backward() first")
        for key, value in self.params.items():
            value -= lr * self.grads[key]
        self._has_grads = False

    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of ``W, R, V, bs, by`` (the notebook's name for :meth:`state_dict`)."""
        return self.state_dict()

    def set_weights(self, weights) -> None:
        """Copy ``W, R, V, bs, by`` in from the dict ``weights``, all five, each of its exact shape and dtype (the
        notebook's name for :meth:`load_state_dict`)."""
        self.load_state_dict(weights)

    def __repr__(self):
        return f"RNN({self.input_size}, {self.hidden_size}, {self.output_size}, dtype={self.dtype})"


@dataclass(frozen=True)
class ModelConfig(_checks.PlainConfig):
    """Architecture of a :class:`SequenceModel`; every field is plain data.

    ``input_size`` is the number of features, or the vocabulary size when ``tokens``;
    ``output_size`` the head's width ``K``. ``cell`` names the layer (:data:`CELLS`: ``"rnn"``,
    ``"lstm"``, ``"gru"``; or ``"MODULE:CLASS"``, a cell of your own in the generic
    :class:`~numpy_rnn.layers.Recurrent` layer, :func:`cell_class`) of ``hidden_size`` ``H``,
    ``num_layers`` deep, ``bidirectional`` or not, with ``dropout`` between stacked layers;
    ``nonlinearity`` (``"tanh"`` or ``"relu"``) applies to ``"rnn"`` only. ``dtype`` is ``"float64"`` or ``"float32"``.
    ``embedding_size`` 0 feeds tokens one-hot, > 0 through a learned embedding. ``init`` maps
    parameter names of the layer (``W``, ``R``, ``b``, ...) to initialiser names.
    ``bias`` False builds the recurrent layer without biases (the head keeps its own).
    ``input_dropout``, ``recurrent_dropout`` and ``zoneout`` (of ``h``; ``zoneout_c`` of the
    LSTM's ``c``) are the layer's regularisers (:mod:`numpy_rnn.regularizers`).
    ``layer_norm`` True builds a layer-normalised LSTM or GRU (:mod:`numpy_rnn.layer_norm`).
    ``proj_size`` > 0 builds an LSTM with projections (torch's ``proj_size``): ``h`` and the
    head's input have width ``proj_size`` per direction.
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
    bias: bool = True
    nonlinearity: str = "tanh"
    init: dict = field(default_factory=dict)
    input_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0
    zoneout_c: float = 0.0
    sequence_output: bool = False
    tokens: bool = False
    embedding_size: int = 0
    dtype: str = "float64"
    layer_norm: bool = False
    proj_size: int = 0

    def __post_init__(self):
        cell_class(self.cell)
        if self.nonlinearity != "tanh" and self.cell != "rnn":
            raise ValueError(f"ModelConfig: nonlinearity applies to cell 'rnn' only, "
                             f"got {self.nonlinearity!r} with {self.cell!r}")
        for name in ("bidirectional", "bias", "sequence_output", "tokens", "layer_norm"):
            _checks.check_bool("ModelConfig", name, getattr(self, name))
        if self.layer_norm and self.cell not in ("lstm", "gru"):
            raise ValueError(f"ModelConfig: layer_norm applies to cells 'lstm' and 'gru' only, got {self.cell!r}")
        _checks.check_size("ModelConfig", "embedding_size", self.embedding_size, minimum=0)
        if _checks.check_size("ModelConfig", "proj_size", self.proj_size, minimum=0) and self.cell != "lstm":
            raise ValueError(f"ModelConfig: proj_size applies to cell 'lstm' only, "
                             f"got proj_size={self.proj_size} with {self.cell!r}")
        if self.proj_size and self.proj_size >= _checks.check_size("ModelConfig", "hidden_size", self.hidden_size):
            raise ValueError(f"ModelConfig: expected proj_size < hidden_size={self.hidden_size} (the projection "
                             f"narrows h), got proj_size={self.proj_size}")
        if self.proj_size and self.layer_norm:
            raise ValueError(f"ModelConfig: proj_size applies without layer_norm (the layer-normalised LSTM has no "
                             f"projection), got proj_size={self.proj_size} with layer_norm=True")
        if self.zoneout_c and self.cell != "lstm":
            raise ValueError(f"ModelConfig: zoneout_c (the cell state c) applies to cell 'lstm' only, "
                             f"got zoneout_c={self.zoneout_c} with {self.cell!r}")
        if self.embedding_size and not self.tokens:
            raise ValueError("ModelConfig: embedding_size needs tokens=True (float inputs are projected by W directly)")


class SequenceModel(Module):
    """Token input (optional) -> recurrent layer -> linear head, as ``config`` says; ``rng``
    (``None``, a seed or a Generator) draws the weights and the dropout masks.

    ``forward(x, state=None, lengths=None) -> (y, state_n)``, arguments in the layers' order:
    ``x`` is ``(B, T, D)`` floats, or ``(B, T)`` integer ids when ``config.tokens``; ``y`` is
    ``(B, K)`` (sequence-to-one) or ``(B, T, K)`` (sequence-to-sequence, zero rows past each
    length before the head's bias); ``state`` and ``state_n`` are the recurrent layer's.
    ``backward(dy)`` adds every parameter's gradient into ``grads``. Parameters are named
    ``embedding.E``, ``rnn.<layer name>`` and ``head.W``, ``head.b``. A next-token model
    (``tokens`` and ``sequence_output``, one direction) writes text with :meth:`generate`.
    """

    def __init__(self, config: ModelConfig, rng=None):
        if not isinstance(config, ModelConfig):
            raise TypeError(f"SequenceModel: expected a ModelConfig, got {type(config).__name__}")
        self.config = c = config
        rng = _checks.as_generator(rng, "SequenceModel")
        dtype = _checks.check_dtype("SequenceModel", c.dtype)
        self.embedding = Embedding(c.input_size, c.embedding_size, rng=rng, dtype=dtype) if c.embedding_size else None
        features = c.embedding_size or c.input_size
        options = {"nonlinearity": c.nonlinearity} if c.cell == "rnn" else {}
        if c.layer_norm:
            options["layer_norm"] = True
        if c.proj_size:
            options["proj_size"] = c.proj_size
        zoneout = (c.zoneout, c.zoneout_c) if c.cell == "lstm" else c.zoneout
        layer = cell_class(c.cell)
        if issubclass(layer, Cell):  # a cell of your own: the generic layer builds it
            layer, options = Recurrent, {"cell": layer}
        self.rnn = layer(features, c.hidden_size, c.num_layers, bidirectional=c.bidirectional,
                         dropout=c.dropout, bias=c.bias, init=dict(c.init), rng=rng, dtype=dtype,
                         input_dropout=c.input_dropout, recurrent_dropout=c.recurrent_dropout,
                         zoneout=zoneout, **options)
        self.head = Linear(self.rnn.num_directions * self.rnn.h_size, c.output_size, rng=rng, dtype=dtype)
        self.dtype = dtype
        self.params, self.grads = {}, {}
        for prefix, part in self._parts():
            self.params.update({f"{prefix}.{k}": v for k, v in part.params.items()})
            self.grads.update({f"{prefix}.{k}": v for k, v in part.grads.items()})
        self._cache = None

    def _parts(self):
        parts = [("embedding", self.embedding), ("rnn", self.rnn), ("head", self.head)]
        return [(name, part) for name, part in parts if part is not None]

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

    def forward(self, x: np.ndarray, state: State | None = None,
                lengths: np.ndarray | None = None) -> tuple[np.ndarray, State]:
        """``(y, state_n)``: the head's output, ``(B, T, K)`` for sequence output or ``(B, K)`` read from the
        last layer's final state (both directions), and the recurrent layer's final state. ``x`` is
        ``(B, T, D)`` features or, for a token model, ``(B, T)`` integer ids; ``state`` and ``lengths``
        go to the recurrent layer."""
        inputs = self._inputs(x)
        if np.ndim(inputs) != 3:
            raise ValueError(f"SequenceModel: expected x of shape (B, T, {self.config.input_size}), "
                             f"got {_checks.shape_str(np.shape(inputs))}")
        out, state_n = self.rnn.forward(inputs, state, lengths)
        if self.config.sequence_output:
            features, h_shape = out, None  # (B, T, dirs*H)
        else:
            h_n = state_n[0] if len(self.rnn.state_names) > 1 else state_n  # (L*dirs, B, H)
            features, h_shape = np.concatenate(list(h_n[-self.rnn.num_directions:]), axis=-1), h_n.shape  # (B, dirs*H)
        self._cache = (out.shape, h_shape)
        return self.head.forward(features), state_n

    def backward(self, dy) -> None:
        """Adds the gradients of every parameter into ``grads``, given ``dy``, the gradient of the loss
        w.r.t. the last forward's ``y``."""
        if self._cache is None:
            raise RuntimeError("SequenceModel: backward() called before forward()")
        out_shape, h_shape = self._cache
        d_features = self.head.backward(dy)
        if self.config.sequence_output:
            d_inputs, _ = self.rnn.backward(d_features)
        else:
            dirs = self.rnn.num_directions
            d_h = np.zeros(h_shape, dtype=self.dtype)
            d_h[-dirs:] = np.stack(np.split(d_features, dirs, axis=-1))
            others = len(self.rnn.state_names) - 1  # the other parts of the state get no gradient
            d_state = (d_h,) + (None,) * others if others else d_h
            d_inputs, _ = self.rnn.backward(np.zeros(out_shape, dtype=self.dtype), d_state)
        if self.embedding is not None:
            self.embedding.backward(d_inputs)

    def generate(self, prime, length: int, *, temperature: float = 1.0, rng=None) -> np.ndarray:
        """``length`` token ids drawn one after another, each fed back (dropout off).

        The ids ``prime (P,)`` (P >= 1) are read first; then each next id is drawn from
        ``softmax(logits / temperature)`` of the model's last output and fed in. Returns the
        drawn ids ``(length,)`` (not the prime). ``temperature`` below 1 sharpens the
        distribution, above 1 flattens it. ``rng``: a seed or a Generator.
        """
        owner, c = "SequenceModel.generate", self.config
        if not (c.tokens and c.sequence_output):
            raise ValueError(f"{owner}: needs a next-token model (tokens=True, sequence_output=True), "
                             f"got tokens={c.tokens}, sequence_output={c.sequence_output}")
        if c.bidirectional:
            raise ValueError(f"{owner}: a bidirectional model reads the text backwards too, so it cannot "
                             f"predict the next token from the past alone")
        prime = _checks.check_ids(owner, "prime", prime, c.input_size)
        if prime.ndim != 1 or prime.size == 0:
            raise ValueError(f"{owner}: expected prime ids of shape (P,) with P >= 1, got {_checks.shape_str(prime.shape)}")
        length = _checks.check_size(owner, "length", length)
        temperature = _checks.check_real(owner, "temperature", temperature, low=0.0, low_open=True)
        gen = _checks.as_generator(rng, owner)
        mode, drawn = self.training, np.empty(length, dtype=np.int64)
        self.eval()
        try:
            logits, state = self.forward(prime[None])  # (1, P, V)
            for t in range(length):
                drawn[t] = _draw(owner, logits[0, -1], temperature, gen)
                if t + 1 < length:
                    logits, state = self.forward(drawn[None, t:t + 1], state)
        finally:
            self.train(mode)
        return drawn

    def __repr__(self):
        return f"SequenceModel({self.config})"


def _draw(owner: str, logits: np.ndarray, temperature: float, gen: np.random.Generator) -> int:
    """An id drawn from ``softmax(logits / temperature)`` (computed in float64)."""
    z = logits.astype(np.float64) / temperature
    if not np.all(np.isfinite(z)):
        raise ValueError(f"{owner}: the model produced non-finite logits")
    p = np.exp(z - z.max())
    return int(gen.choice(len(p), p=p / p.sum()))
