"""A custom cell: the independently recurrent neural network (IndRNN).

Li, Li, Cook, Zhu & Gao (2018), "Independently Recurrent Neural Network (IndRNN): Building a
Longer and Deeper RNN". Each hidden unit sees only its own past through one recurrent weight, so
the recurrent matrix ``R (H, H)`` of an Elman layer becomes a vector ``u (H,)``::

    s(t) = x(t) W + u * h(t-1) + b        # (B, H); u * h(t-1) elementwise
    h(t) = relu(s(t))                      # or tanh

Backward, with ``dh(t)`` the total gradient reaching ``h(t)``::

    ds(t)   = dh(t) * phi'(s(t))           # relu: (h(t) > 0); tanh: 1 - h(t)**2
    dh(t-1) = ds(t) * u                    # elementwise: no matmul through time
    du      = sum over t and b of ds(t) * h(t-1)

Only the step and its derivative live here (:class:`IndRNNCell`); the generic
:class:`numpy_rnn.layers.Recurrent` layer does the rest: the hoisted input projection, the time
loop, stacking, both directions, variable lengths, dropout and the exact BPTT bookkeeping.
See ``docs/custom_cells.md`` for a walk through this file.

Run ``python examples/indrnn.py`` for a gradient check of a two-layer bidirectional IndRNN.
"""
from __future__ import annotations

import numpy as np

from numpy_rnn.cells import NONLINEARITIES, Cell
from numpy_rnn.gradcheck import check_layer
from numpy_rnn.layers import Recurrent


class IndRNNCell(Cell):
    """One IndRNN step: ``h(t) = phi(xw(t) + u * h(t-1))`` with ``xw(t) = x(t) W + b``.

    The layer owns ``W (D, H)`` and ``b (H,)``; the cell owns only the recurrent vector
    ``u (H,)``. ``nonlinearity`` is ``"relu"`` (the paper's choice) or ``"tanh"``.
    """

    num_gates = 1         # xw(t) is (B, 1*H)
    state_names = ("h",)  # the state is the tuple (h,), each part (B, H)

    def __init__(self, hidden_size: int, nonlinearity: str = "relu"):
        super().__init__(hidden_size)
        if nonlinearity not in NONLINEARITIES:
            valid = ", ".join(NONLINEARITIES)
            raise ValueError(f"IndRNNCell: unknown nonlinearity {nonlinearity!r}; valid names: {valid}")
        self.nonlinearity = nonlinearity
        # relu has a kink at 0: check_layer then starts its halving steps at 2**-14 instead of
        # 2**-9, and an element whose steps straddle a kink (its Richardson levels disagree)
        # moves on to smaller steps
        self.smooth = nonlinearity != "relu"
        self._phi, self._phi_prime = NONLINEARITIES[nonlinearity]

    def param_shapes(self):
        return {"u": (self.hidden_size,)}

    def step(self, p, xw, state):
        (h_prev,) = state
        # u (*lead, H) -> (*lead, 1, H) broadcasts over the batch axis of h_prev (*lead, B, H)
        h = self._phi(xw + p["u"][..., None, :] * h_prev)  # (B, H)
        return (h,), h  # the cache is h(t): both derivatives are written in terms of it

    def step_backward(self, p, g, d_state, h):
        (dh,) = d_state
        ds = dh * self._phi_prime(h)  # (B, H)
        # d_xw = ds (the layer forms dW, db, dx from it); d_rec = ds (recurrent_grads uses it)
        return ds, ds, (ds * p["u"],)

    def recurrent_grads(self, p, g, h_prev, d_rec, caches):
        """``du = sum_{t,b} d_rec(t) * h(t-1)``: ``h_prev``, ``d_rec (T, B, H)`` for all steps."""
        g["u"] += np.einsum("tbh,tbh->h", d_rec, h_prev)


def recurrent_uniform(time_steps: int, *, gamma: float = 2.0, low: float = 0.0):
    """An ``init`` callable for ``u``: U(low, gamma**(1/T)).

    Over T steps a relu unit that stays active multiplies a gradient by ``u**T``; the paper keeps
    this below a chosen factor ``gamma`` (2 in its experiments) by bounding
    ``|u| <= gamma**(1/T)``. IndRNN implementations commonly draw ``u`` from U(0, 2**(1/T)) and,
    for the last layer of a deep stack, which must remember longest, from
    U(0.5**(1/T), 2**(1/T)): pass ``low``.
    """
    high = gamma ** (1.0 / time_steps)
    if not low < high:
        raise ValueError(f"recurrent_uniform: expected low < gamma**(1/T) = {high}, got low={low}")

    def init(shape, rng, dtype):
        return rng.uniform(low, high, size=shape).astype(dtype)
    init.__name__ = f"recurrent_uniform(T={time_steps}, gamma={gamma}, low={low})"
    return init


def clip_recurrent(layer: Recurrent, time_steps: int, *, gamma: float = 2.0) -> None:
    """Keep every recurrent vector within ``|u| <= gamma**(1/T)``, in place; call it after each
    optimizer step (the paper's constraint; nothing in the layer enforces it)."""
    bound = gamma ** (1.0 / time_steps)
    for name, value in layer.params.items():
        if name == "u" or name.endswith(".u"):
            np.clip(value, -bound, bound, out=value)


def indrnn(input_size: int, hidden_size: int, num_layers: int = 1, *, nonlinearity: str = "relu",
           time_steps: int | None = None, **options) -> Recurrent:
    """A stack of IndRNN layers through the generic :class:`Recurrent`.

    With ``time_steps`` given, ``u`` starts in U(0, 2**(1/T)) (unless ``init`` names ``u``) and
    the last layer's in U(0.5**(1/T), 2**(1/T)). Other ``options`` (``bidirectional``,
    ``dropout``, ``init``, ``rng``, ``dtype``) go to :class:`Recurrent` unchanged.
    """
    init = dict(options.pop("init", None) or {})
    if time_steps is not None:
        init.setdefault("u", recurrent_uniform(time_steps))
    layer = Recurrent(input_size, hidden_size, num_layers, cell=lambda H: IndRNNCell(H, nonlinearity),
                      init=init, **options)
    if time_steps is not None and num_layers > 1:
        # the init dict applies one rule to every layer: redraw the last layer's u by hand
        last = recurrent_uniform(time_steps, low=0.5 ** (1.0 / time_steps))
        last_layer = (f"l{num_layers - 1}.", f"l{num_layers - 1}_reverse.")
        for name in layer.params:
            if name.startswith(last_layer) and name.endswith(".u"):
                layer.params[name][...] = last(layer.params[name].shape, layer.rng, layer.dtype)
    return layer


def main() -> None:
    B, T, D, H = 3, 7, 4, 5
    rng = np.random.default_rng(0)
    layer = Recurrent(D, H, num_layers=2, bidirectional=True, cell=IndRNNCell,
                      init={"u": recurrent_uniform(T)}, rng=1)
    print(layer, "parameters:", {name: value.shape for name, value in layer.params.items()})

    x = rng.standard_normal((B, T, D))         # (B, T, D)
    h0 = rng.standard_normal((2 * 2, B, H))    # (num_layers * directions, B, H)
    lengths = np.array([7, 3, 5])              # (B,), any order
    out, h_n = layer.forward(x, h0, lengths)
    print("out", out.shape, "h_n", h_n.shape)  # (B, T, 2H), (4, B, H)

    layer.zero_grad()
    dx, dh0 = layer.backward(np.ones_like(out))
    print("dx", dx.shape, "dh0", dh0.shape, "|du of l0| =", np.linalg.norm(layer.grads["l0.u"]))

    report = check_layer(layer, x, h0, lengths)
    print("gradient check (every parameter, x and h0):")
    print(report)
    print("passed" if report.passed else "FAILED", f"(max relative error {report.max_rel_error:.2e})")


if __name__ == "__main__":
    main()
