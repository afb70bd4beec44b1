"""The notebook's sequence-to-one RNN, built from :class:`SimpleRNN` and :class:`Linear`."""
from __future__ import annotations

import numpy as np

from . import _checks
from .init import identity, lecun_uniform, zeros
from .layers import Linear, SimpleRNN

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
