"""One time step of each recurrent cell, next to its derivative.

A cell knows the maths of a single step and nothing else: the layers in
:mod:`numpy_rnn.layers` unroll it over time, stack it, run it in both directions, mask
variable lengths and check its gradients. Writing a new cell means subclassing :class:`Cell`,
whose docstring states the contract (walk-through: ``docs/custom_cells.md``). The built-in
cells keep what their backward step needs in a named tuple per step (:class:`ElmanCache`,
:class:`LSTMCache`, :class:`GRUCache`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function of ``x`` (any shape) as ``(1 + tanh(x/2)) / 2``: no overflow, keeps the dtype."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _tanh_derivative(a):
    return 1.0 - a * a


def _relu(s):
    return np.maximum(s, 0.0)


def _relu_derivative(a):
    return a > 0


# name -> (activation, its derivative written in terms of the activation's output)
NONLINEARITIES = {"tanh": (np.tanh, _tanh_derivative), "relu": (_relu, _relu_derivative)}


class Cell(ABC):
    """Base class of a recurrent cell: one time step forward and backward.

    The contract, with ``G = num_gates`` gates, hidden size ``H`` and batch ``B``:

    * ``__init__(hidden_size, ...)`` (``hidden_size`` is ``H``) calls ``super().__init__(hidden_size)``; a layer builds its
      cell as ``cell(hidden_size)`` (the class, or any callable returning a cell).
    * The layer owns the input projection ``xw(t) = x(t) W + b`` (``W (D, G*H)``, ``b (G*H,)``),
      computed for all steps in one matmul before the time loop, and turns ``d_xw`` into
      ``dW``, ``db`` and ``dx``. The cell owns every other parameter. A cell that places its
      own shifts (layer normalisation, :mod:`numpy_rnn.layer_norm`) sets ``input_bias = False``:
      the layer then has no ``b`` and ``xw = x W``.
    * ``param_shapes() -> {short name: shape}``: the cell's own parameters (default
      ``{"R": (H_h, G*H)}``, ``H_h`` the width of ``h``). Names must not be ``W`` or ``b`` (the
      layer's) nor contain a dot.
      ``p`` and ``g`` below are dicts of one run's parameters and gradients under these names.
      ``param_inits() -> {short name: initialiser name}``: how the layer initialises the cell's
      parameters that its ``init`` does not name (default ``{}``: torch's uniform for all).
    * ``state_names``: the names of the state's parts, a tuple of ``(B, width)`` arrays whose
      first is the output ``h`` (default ``("h",)``; LSTM ``("h", "c")``). ``state_size`` is
      derived from it and is not set by subclasses. ``state_widths``: each part's width
      (default ``H`` for every part; an LSTM with projections ``(P, H)``); the layer's output
      and the input of its next layer have the width of ``h``. Below, ``(B, H)`` for a state
      part means ``(B, its width)``.
    * ``step(p, xw, state) -> (new_state, cache)``: ``xw (B, G*H)``; ``state`` and
      ``new_state`` are tuples ordered as ``state_names``; ``cache`` is whatever the backward
      step needs.
    * ``step_backward(p, g, d_state, cache) -> (d_xw, d_rec, d_state_prev)``: ``d_state`` the
      gradient reaching each part of the new state; returns the gradient w.r.t. ``xw``
      ``(B, G*H)``, ``d_rec`` (what :meth:`recurrent_grads` reduces: the gradient w.r.t. the
      recurrent pre-activation ``h(t-1) R`` for the built-in cells; the same object as ``d_xw``
      where they coincide; ``None`` when the cell adds its parameter gradients into ``g`` step
      by step) and the gradient w.r.t. the previous state, a tuple like ``state``.
    * ``recurrent_grads(p, g, h_prev, d_rec, caches)``: called once after the backward loop with
      ``h_prev (T, B, H)`` every ``h(t-1)``, ``d_rec (T, B, .)`` stacked and the ``T`` caches in
      time order; adds (``+=``) the gradients of the cell's parameters into ``g`` (default:
      ``dR = sum_t h(t-1)^T d_rec(t)``, one matmul).
    * optional ``recurrent_row_grads(p, h_prev, d_rec, cache)``: the terms of one step's
      :meth:`recurrent_grads` row by row, for real-time recurrent learning
      (:mod:`numpy_rnn.rtrl`). :class:`~numpy_rnn.rtrl.RTRL` uses it only when it is defined
      in the class that defines :meth:`recurrent_grads` or in a subclass of it; otherwise it
      calls ``recurrent_grads`` once per row (exact, slower).
    * optional ``forward_sequence(p, xw, state0)`` and ``backward_sequence(p, g, d_out,
      d_state_n, hs, caches, tape)``: the whole unrolled pass at once, for speed (see
      :meth:`forward_sequence`); the layer uses them on plain arrays without lengths, and the
      step methods everywhere else. They must compute what the steps compute.
    * ``smooth = False`` for a step with kinks (relu): the gradient check then starts from much
      smaller steps, so that its differences do not straddle a kink; checked as smooth, a
      kinked cell can fail even when its backward is right.
    * ``torch_equivalent``: the name of the torch.nn class computing the same maths, or ``None``
      (:mod:`numpy_rnn.interop` then refuses the layer).

    ``step`` may receive parameters, ``xw`` and state with extra leading axes ``(*lead, B, .)``
    (the vectorised gradient check evaluates a batch of perturbed copies in one pass): it uses
    ``@`` for products, ``[..., None, :]`` for vector parameters and never writes into its
    inputs. ``step_backward`` and ``recurrent_grads`` only ever see plain arrays.
    """

    num_gates = 1
    gate_names: tuple[str, ...] | None = None  # names of the G blocks of xw and R, for diagnostics
    state_names: tuple[str, ...] = ("h",)
    smooth = True
    torch_equivalent: str | None = None
    input_bias = True  # False: the cell places its own shifts and the layer has no b

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "state_size" in vars(cls):
            raise TypeError(f"{cls.__name__}: state_size is derived from state_names; set "
                            f"state_names = ('h', ...) (one name per (B, H) state array, h first) instead")
        names = cls.state_names
        if (not isinstance(names, tuple) or not names or len(set(names)) != len(names)
                or not all(isinstance(name, str) for name in names)):
            raise TypeError(f"{cls.__name__}: expected state_names to be a non-empty tuple of distinct "
                            f"strings, got {names!r}")

    def __init__(self, hidden_size: int):
        self.hidden_size = hidden_size

    @property
    def state_size(self) -> int:
        """Number of arrays in the state: ``len(state_names)``."""
        return len(self.state_names)

    @property
    def state_widths(self) -> tuple[int, ...]:
        """The width of each state part, in ``state_names`` order: ``H`` each by default."""
        return (self.hidden_size,) * self.state_size

    def param_shapes(self) -> dict[str, tuple]:
        """Shapes of the cell's own parameters by short name: ``{"R": (H_h, G*H)}``, ``H_h``
        the width of ``h``."""
        return {"R": (self.state_widths[0], self.num_gates * self.hidden_size)}

    def param_inits(self) -> dict[str, str]:
        """Initialiser names of the cell's parameters that a layer's ``init`` does not name;
        the others get torch's uniform. Default: none."""
        return {}

    @abstractmethod
    def step(self, p, xw, state):
        """One step forward: ``(new_state, cache)`` from the parameters ``p`` (short name ->
        array), ``xw (B, G*H)`` the step's input projection and ``state`` the previous state,
        a tuple of ``(B, H)`` parts ordered as ``state_names``."""

    @abstractmethod
    def step_backward(self, p, g, d_state, cache):
        """One step backward: ``(d_xw, d_rec or None, d_state_prev)`` from the parameters ``p``,
        ``d_state`` the gradient reaching each part of the new state (a tuple like the state)
        and the step's ``cache``; a cell without :meth:`recurrent_grads` of its own adds its
        parameter gradients into ``g`` (short name -> array, like ``p``) here."""

    def forward_sequence(self, p, xw, state0):
        """Optional fast path: the forward pass with parameters ``p`` over all ``T`` steps of
        ``xw (T, B, G*H)`` from ``state0`` (plain arrays, no lengths). Returns ``(hs, state_T, caches)``: ``hs (T+1, B, H)``
        every ``h`` with ``hs[0] = h(0)``, the final state (a tuple) and the ``T`` per-step caches
        (a :class:`StepCaches`); or ``None`` (the default): the layer then calls :meth:`step`
        ``T`` times."""
        return None

    def backward_sequence(self, p, g, d_out, d_state_n, hs, caches, tape):
        """BPTT through :meth:`forward_sequence` with parameters ``p``, from what it returned
        (``hs (T+1, B, H)``, ``caches``): ``d_out (T, B, H)`` the gradient of every
        output, ``d_state_n`` that of the final state (a tuple). Returns ``d_xw (T, B, G*H)`` and
        the initial state's gradient (a tuple), adds the cell's parameter gradients into ``g``,
        and when ``tape`` (a list of ``T`` slots) is given stores in ``tape[t]`` the total
        gradient reaching the state after step ``t`` (a tuple of arrays that stay unchanged).
        The default runs :meth:`step_backward` step by step over the caches (:func:`bptt_steps`),
        so a cell may write :meth:`forward_sequence` alone; the layer calls a cell's own
        ``backward_sequence`` only where it was written with its ``forward_sequence``."""
        return bptt_steps(self, p, g, d_out, d_state_n, hs, caches, tape)

    def activations(self, cache) -> dict[str, tuple[str, np.ndarray]]:
        """The squashing functions' outputs of one step (its ``cache``), for saturation diagnostics:
        ``{name: (kind, (B, H) values)}`` with kind ``"tanh"``, ``"sigmoid"`` or ``"relu"``.
        The default knows none; a custom cell may override it."""
        return {}

    def recurrent_grads(self, p, g, h_prev, d_rec, caches) -> None:
        """``dR += sum_t h(t-1)^T d_rec(t)`` over all steps and sequences: one matmul, into ``g``.

        ``p`` the parameters, ``h_prev (T, B, H)`` every ``h(t-1)``, ``d_rec (T, B, .)`` the
        steps' ``d_rec`` stacked (``None`` when the cell added its gradients step by step) and
        ``caches`` the ``T`` step caches in time order."""
        if d_rec is not None:
            g["R"] += h_prev.reshape(-1, h_prev.shape[-1]).T @ d_rec.reshape(-1, d_rec.shape[-1])

    def recurrent_row_grads(self, p, h_prev, d_rec, cache) -> dict[str, np.ndarray]:
        """What :meth:`recurrent_grads` would add, with parameters ``p``, for each row of one step on its own:
        ``{name: (N, *shape)}`` for ``h_prev (N, H)``, ``d_rec (N, .)`` and the step's
        ``cache`` on the same ``N`` rows; summed over the rows it is ``recurrent_grads`` of
        that step. Default, matching the default ``recurrent_grads``:
        ``dR[n] = h(t-1)[n]^T d_rec[n]``, an outer product per row."""
        return {"R": _outer_rows(h_prev, d_rec)}


def _outer_rows(a, b):
    """``(N, I), (N, J) -> (N, I, J)``: the outer product of every row pair."""
    return a[:, :, None] * b[:, None, :]


def _stacked(caches, field: str) -> np.ndarray:
    """One field of every step's cache, ``(T, B, .)``: the fast path's stacked array as it is,
    else the steps' arrays stacked."""
    if isinstance(caches, StepCaches):
        return getattr(caches.stacked, field)
    return np.stack([getattr(cache, field) for cache in caches])


def bptt_steps(cell: Cell, p, g, d_out, d_state_n, hs, caches, tape=None, step_mask=None):
    """BPTT one step at a time through ``cell.step_backward`` with parameters ``p``: returns
    ``d_xw (T, B, G*H)`` and the initial state's gradient; adds the cell's parameter gradients
    into ``g``.

    ``d_out (T, B, H)``, ``d_state_n`` the final state's gradient (a tuple), ``hs (T+1, B, H)``
    every carried ``h``, ``caches`` the ``T`` step caches; ``step_mask (T, B, 1)`` (lengths)
    stops the gradient past each sequence's end and passes the held state's gradient on. A
    list ``tape`` of ``T`` slots receives ``d_here``, the total gradient reaching each step's
    new state (a tuple of parts).
    """
    d_state, d_xw, d_rec = d_state_n, None, None
    for t in reversed(range(len(caches))):
        d_here = (d_state[0] + d_out[t],) + d_state[1:]
        if step_mask is not None:
            d_here = tuple(d * step_mask[t] for d in d_here)  # no gradient past a length
        if tape is not None:
            tape[t] = d_here
        dxw_t, drec_t, d_prev = cell.step_backward(p, g, d_here, caches[t])
        if d_xw is None:
            d_xw = np.empty((len(caches),) + dxw_t.shape, dtype=dxw_t.dtype)
            if drec_t is not None and drec_t is not dxw_t:
                d_rec = np.empty((len(caches),) + drec_t.shape, dtype=drec_t.dtype)
        d_xw[t] = dxw_t
        if d_rec is not None:
            d_rec[t] = drec_t
        if step_mask is not None:  # a state carried past a length passes its gradient on
            d_prev = tuple(np.where(step_mask[t], dp, ds) for dp, ds in zip(d_prev, d_state))
        d_state = d_prev
    if d_rec is None and drec_t is not None:  # d_rec is d_xw for this cell
        d_rec = d_xw
    cell.recurrent_grads(p, g, hs[:-1], d_rec, caches)
    return d_xw, d_state


def written_with(cell: Cell, optional: str, *basis: str) -> bool:
    """Whether ``cell``'s optional method ``optional`` was written for its ``basis`` methods: it
    is defined in the class that defines each of them, or in a subclass of it. A subclass that
    overrides ``step_backward`` alone must not inherit a fast path written for its parent."""

    def defining_class(name):
        return next(klass for klass in type(cell).__mro__ if name in vars(klass))

    return all(issubclass(defining_class(optional), defining_class(name)) for name in basis)


class StepVJP(NamedTuple):
    """What :func:`step_vjps` returns for ``K`` cotangents on ``B`` sequences (rows ordered ``k * B + b``).

    ``d_state (K, B, sum of state_widths)`` the gradient w.r.t. the previous state, its parts
    concatenated; ``d_xw (K, B, G*H)`` the gradient w.r.t. ``xw``; ``d_rec (K*B, .)`` the cell's
    ``d_rec`` rows, or ``None`` (see :meth:`Cell.step_backward`); ``cache`` the cache of the step
    evaluated on the ``K*B`` rows; ``state`` the previous state repeated to ``K*B`` rows:
    ``S`` arrays ``(K*B, width)``.
    """

    d_state: np.ndarray
    d_xw: np.ndarray
    d_rec: Any
    cache: Any
    state: tuple


def step_vjps(cell: Cell, p: dict, xw: np.ndarray, state: tuple, cotangents: np.ndarray) -> StepVJP:
    """Vector-Jacobian products of one step, ``u -> u d state(t) / d (state(t-1), xw(t))``, for
    ``K`` cotangents per sequence at once, from the cell's own ``step`` and ``step_backward``.

    ``p`` the cell's parameters, ``xw (B, G*H)``, ``state`` a tuple of ``S`` arrays ``(B, width)`` (``S = cell.state_size``,
    widths ``cell.state_widths``), ``cotangents (K, B, S*H)`` (``S*H`` the sum of the widths):
    cotangent ``k`` of sequence ``b`` on the new state, its parts concatenated in
    ``state_names`` order. The step is evaluated on ``K*B`` rows (sequence ``b``
    repeated ``K`` times), so any cell that meets the :class:`Cell` contract works; with
    ``cotangents`` the identity per sequence, ``d_state[:, b]`` is the step's state Jacobian
    ``J[i, j] = d state_i(t) / d state_j(t-1)`` of sequence ``b``.
    """
    K, B, SH = cotangents.shape

    def repeat(a):  # (B, F) -> (K*B, F), row k*B + b = a[b]
        return np.broadcast_to(a, (K,) + a.shape).reshape(K * B, a.shape[-1])

    rows = tuple(repeat(s) for s in state)
    _, cache = cell.step(p, repeat(xw), rows)
    flat = cotangents.reshape(K * B, SH)
    d_new = tuple(np.split(flat, np.cumsum(cell.state_widths)[:-1], axis=-1))
    scratch = {name: np.zeros_like(value) for name, value in p.items()}  # cells that add grads step by step
    d_xw, d_rec, d_prev = cell.step_backward(p, scratch, d_new, cache)
    d_state = np.concatenate(d_prev, axis=-1).reshape(K, B, SH)
    return StepVJP(d_state, d_xw.reshape(K, B, -1), d_rec, cache, rows)


class StepCaches(Sequence):
    """The ``T`` per-step caches of a fast forward pass, built on demand from one stacked cache
    ``stacked``: a cache named tuple whose fields hold all steps, ``(T, ...)`` each; item ``t`` is the same
    named tuple with every field at step ``t`` (views, no copies)."""

    def __init__(self, stacked):
        self.stacked = stacked

    def __len__(self) -> int:
        return len(self.stacked[0])

    def __getitem__(self, t):
        if isinstance(t, slice):
            return [self[i] for i in range(*t.indices(len(self)))]
        return type(self.stacked)(*(field[t] for field in self.stacked))


class ElmanCache(NamedTuple):
    """What :meth:`ElmanCell.step_backward` needs of one step: ``h (B, H)``, ``a(t)``, in terms
    of which ``phi'`` is written."""

    h: np.ndarray


class LSTMCache(NamedTuple):
    """What :meth:`LSTMCell.step_backward` needs of one step; every field ``(B, H)``: the gates
    ``i`` (input), ``f`` (forget), ``g`` (candidate ``tanh(z_g)``) and ``o`` (output),
    ``c_prev`` ``c(t-1)``, ``c`` ``c(t)``, ``tanh_c`` ``tanh(c(t))`` and ``m``
    ``o * tanh(c(t))``: ``h(t)`` itself, or what ``W_hr`` projects (``proj_size > 0``)."""

    i: np.ndarray
    f: np.ndarray
    g: np.ndarray
    o: np.ndarray
    c_prev: np.ndarray
    c: np.ndarray
    tanh_c: np.ndarray
    m: np.ndarray


class GRUCache(NamedTuple):
    """What :meth:`GRUCell.step_backward` needs of one step; every field ``(B, H)``: ``h_prev``
    ``h(t-1)``, the gates ``r`` (reset), ``z`` (update) and ``n`` (candidate), and ``rec_n``:
    reset after, ``u_n + b_hn``, which ``r`` scales; reset before, ``r * h(t-1)``, which ``R_n``
    multiplies."""

    h_prev: np.ndarray
    r: np.ndarray
    z: np.ndarray
    n: np.ndarray
    rec_n: np.ndarray


class ElmanCell(Cell):
    """Elman step: ``s(t) = xw(t) + a(t-1) R``, ``a(t) = phi(s(t))``, phi tanh or relu.

    Backward: ``ds(t) = da(t) * phi'(s(t))`` (``1 - a**2`` for tanh, ``a > 0`` for relu),
    ``da(t-1) = ds(t) R^T``.

    ``hidden_size`` is ``H``; ``nonlinearity`` phi, ``"tanh"`` or ``"relu"`` (kinked: the cell is
    then not :attr:`~Cell.smooth`).
    """

    torch_equivalent = "RNN"

    def __init__(self, hidden_size: int, nonlinearity: str = "tanh"):
        super().__init__(hidden_size)
        self.nonlinearity = nonlinearity
        self.smooth = nonlinearity != "relu"
        self._phi, self._phi_prime = NONLINEARITIES[nonlinearity]

    def step(self, p, xw, state):
        (h_prev,) = state
        h = self._phi(xw + h_prev @ p["R"])  # (B, H)
        return (h,), ElmanCache(h)

    def step_backward(self, p, g, d_state, cache):
        (dh,) = d_state
        ds = dh * self._phi_prime(cache.h)  # (B, H)
        return ds, ds, (ds @ p["R"].T,)

    def forward_sequence(self, p, xw, state0):
        """As :meth:`Cell.forward_sequence` (``p``, ``xw (T, B, G*H)``, ``state0``).
        The steps above in one loop that allocates nothing: ``a(t)`` is computed in place
        in ``hs[t+1]`` (one GEMM with ``out=``, one add, the activation in place)."""
        steps, R = xw.shape[0], p["R"]
        hs = np.empty((steps + 1,) + xw.shape[1:], dtype=xw.dtype)  # (T+1, B, H)
        hs[0] = state0[0]
        for t in range(steps):
            h = hs[t + 1]
            np.matmul(hs[t], R, out=h)
            h += xw[t]
            self._phi_inplace(h)
        return hs, (hs[steps],), StepCaches(ElmanCache(hs[1:]))

    def backward_sequence(self, p, g, d_out, d_state_n, hs, caches, tape):
        """As :meth:`Cell.backward_sequence` (``p``, ``g``, ``d_out``, ``d_state_n``, ``hs``,
        ``caches``, ``tape``). ``ds(t) = (da(t) + d_out(t)) * phi'(s(t))`` written into ``d_xw[t]``,
        ``da(t-1) = ds(t) R^T`` with ``out=``; then ``dR = sum_t a(t-1)^T ds(t)``, one GEMM."""
        steps, RT = d_out.shape[0], np.ascontiguousarray(p["R"].T)  # a GEMM on a transposed view is slower
        d_xw = np.empty(d_out.shape, dtype=d_out.dtype)  # (T, B, H): ds of every step
        da, slope = d_state_n[0].copy(), np.empty_like(d_xw[0])
        for t in reversed(range(steps)):
            ds = d_xw[t]
            np.add(da, d_out[t], out=ds)  # the total gradient reaching a(t)
            if tape is not None:
                tape[t] = (ds.copy(),)
            self._phi_prime_into(hs[t + 1], slope)
            ds *= slope
            np.matmul(ds, RT, out=da)
        self.recurrent_grads(p, g, hs[:-1], d_xw, caches)
        return d_xw, (da,)

    def _phi_inplace(self, s):
        if self.nonlinearity == "tanh":
            np.tanh(s, out=s)
        else:
            np.maximum(s, 0.0, out=s)

    def _phi_prime_into(self, a, out):
        """``phi'`` in terms of ``a = phi(s)``, written into ``out``: ``1 - a**2``, or ``a > 0``."""
        if self.nonlinearity == "tanh":
            np.multiply(a, a, out=out)
            np.subtract(1.0, out, out=out)
        else:
            np.greater(a, 0.0, out=out)

    def activations(self, cache):
        return {"h": (self.nonlinearity, cache.h)}


def _by_gate(a: np.ndarray) -> np.ndarray:
    """``(..., B, 4H) -> (..., 4, B, H)``: the four gate blocks of ``a`` as a leading axis (a view)."""
    *lead, batch, width = a.shape
    return np.moveaxis(a.reshape(*lead, batch, 4, width // 4), -2, -3)


def _tanh_to_sigmoid(a: np.ndarray) -> None:
    """``a = tanh(x/2)`` becomes ``sig(x) = (1 + tanh(x/2)) / 2``, in place."""
    a *= 0.5
    a += 0.5


class _LSTMSteps(StepCaches):
    """The :class:`StepCaches` of :meth:`LSTMCell.forward_sequence`, holding also ``gates
    (T, 4, B, H)``, the array whose four blocks are its ``i, f, g, o``: the backward pass works
    on whole steps of it."""

    def __init__(self, stacked: LSTMCache, gates: np.ndarray):
        super().__init__(stacked)
        self.gates = gates


class LSTMCell(Cell):
    """LSTM step with torch's gate order ``i, f, g, o``, ``hidden_size`` ``H``; optional peepholes.

    ``z = xw + h(t-1) R`` split into four ``(B, H)`` blocks, then
    ``i = sig(z_i + p_i * c(t-1))``, ``f = sig(z_f + p_f * c(t-1))``, ``g = tanh(z_g)``,
    ``c(t) = f * c(t-1) + i * g``, ``o = sig(z_o + p_o * c(t))``, ``h(t) = o * tanh(c(t))``.
    The peephole vectors ``p_i, p_f, p_o (H,)`` (Gers & Schmidhuber 2000, in the notation of
    Greff et al. 2017) exist only with ``peepholes=True``; without them this is torch.nn.LSTM.

    ``proj_size = P`` (``0 < P < H``; Sak et al. 2014, torch's ``proj_size``): ``m = o * tanh(c(t))``
    and ``h(t) = m W_hr`` with ``W_hr (H, P)``, so ``h (B, P)``, ``c (B, H)`` and ``R (P, 4H)``
    (``state_widths = (P, H)``). Without projections ``h(t) = m``.

    Backward, with ``dc`` the total gradient reaching ``c(t)`` and ``dm = dh W_hr^T`` (``dh``
    without projections): ``dz_o = dm * tanh(c) * o(1-o)``,
    ``dc = dc(t) + dm * o * (1 - tanh(c)**2) + dz_o * p_o``,
    ``dz_i = dc * g * i(1-i)``, ``dz_f = dc * c(t-1) * f(1-f)``, ``dz_g = dc * i * (1-g**2)``,
    ``dc(t-1) = dc * f + dz_i * p_i + dz_f * p_f``, ``dh(t-1) = dz R^T``; ``dW_hr = sum m^T dh``.
    With projections ``d_rec`` is ``[dz, dh]`` ``(B, 4H + P)``, from which
    :meth:`recurrent_grads` forms ``dR`` and ``dW_hr``.
    """

    num_gates = 4
    gate_names = ("i", "f", "g", "o")
    state_names = ("h", "c")

    def __init__(self, hidden_size: int, peepholes: bool = False, proj_size: int = 0):
        super().__init__(hidden_size)
        self.peepholes, self.proj_size = peepholes, proj_size
        self.torch_equivalent = None if peepholes else "LSTM"

    @property
    def state_widths(self):
        """``(P, H)`` with projections, else ``(H, H)``."""
        return (self.proj_size or self.hidden_size, self.hidden_size)

    def param_shapes(self):
        shapes = super().param_shapes()
        if self.peepholes:
            shapes.update({name: (self.hidden_size,) for name in ("p_i", "p_f", "p_o")})
        if self.proj_size:
            shapes["W_hr"] = (self.hidden_size, self.proj_size)
        return shapes

    def step(self, p, xw, state):
        h_prev, c_prev = state
        H = self.hidden_size
        z = xw + h_prev @ p["R"]  # (B, 4H)
        z_i, z_f, z_g, z_o = (z[..., k * H:(k + 1) * H] for k in range(4))
        if self.peepholes:
            z_i = z_i + p["p_i"][..., None, :] * c_prev
            z_f = z_f + p["p_f"][..., None, :] * c_prev
        i, f, g = sigmoid(z_i), sigmoid(z_f), np.tanh(z_g)
        c = f * c_prev + i * g  # (B, H)
        if self.peepholes:
            z_o = z_o + p["p_o"][..., None, :] * c
        o = sigmoid(z_o)
        tanh_c = np.tanh(c)
        m = o * tanh_c
        h = m @ p["W_hr"] if self.proj_size else m  # (B, P) or (B, H)
        return (h, c), LSTMCache(i, f, g, o, c_prev, c, tanh_c, m)

    def step_backward(self, p, grads, d_state, cache):
        """As :meth:`Cell.step_backward` (``p``, ``d_state``, ``cache``; ``grads`` is the contract's
        ``g``, renamed: ``g`` is the candidate gate here): ``(d_xw, d_rec, d_state_prev)``."""
        dh, dc = d_state
        i, f, g, o, c_prev, tanh_c = cache.i, cache.f, cache.g, cache.o, cache.c_prev, cache.tanh_c
        dm = dh @ p["W_hr"].T if self.proj_size else dh  # (B, H)
        dz_o = dm * tanh_c * o * (1.0 - o)
        dc = dc + dm * o * (1.0 - tanh_c * tanh_c)
        if self.peepholes:
            dc += dz_o * p["p_o"]
        dz_i = dc * g * i * (1.0 - i)
        dz_f = dc * c_prev * f * (1.0 - f)
        dz_g = dc * i * (1.0 - g * g)
        dc_prev = dc * f
        if self.peepholes:
            dc_prev += dz_i * p["p_i"] + dz_f * p["p_f"]
        dz = np.concatenate([dz_i, dz_f, dz_g, dz_o], axis=-1)  # (B, 4H)
        d_rec = np.concatenate([dz, dh], axis=-1) if self.proj_size else dz  # (B, 4H + P) or dz itself
        return dz, d_rec, (dz @ p["R"].T, dc_prev)

    def forward_sequence(self, p, xw, state0):
        """As :meth:`Cell.forward_sequence` (``p``, ``xw (T, B, G*H)``, ``state0``).
        The steps above in one loop that allocates nothing, the gates stored gate-major:
        ``gates[t] (4, B, H)`` holds ``i, f, g, o`` of step ``t``, each a contiguous ``(B, H)``
        block, so that every elementwise operation runs on contiguous arrays. Step ``t``:
        ``u = h(t-1) R`` (one GEMM into a ``(B, 4H)`` scratch), ``z = u + xw(t)`` written
        gate-major (the one strided pass), the sigmoid blocks halved, one tanh, then
        ``(1 + tanh)/2`` on them (:func:`sigmoid`, to the bit); ``c(t)``, ``tanh(c(t))`` and
        ``h(t)`` straight into their stacked arrays. With peepholes ``o`` is squashed after
        ``c(t)``, which it looks at. With projections ``m(t)`` goes into its own stacked array
        and one more GEMM writes ``h(t) = m(t) W_hr``."""
        steps, batch, width = xw.shape
        H, R, dtype = self.hidden_size, p["R"], xw.dtype
        gates = np.empty((steps, 4, batch, H), dtype)  # i, f, g, o of every step
        hs = np.empty((steps + 1, batch, self.state_widths[0]), dtype)  # hs[0] = h(0); (B, P) each with projections
        cs = np.empty((steps + 1, batch, H), dtype)    # cs[0] = c(0)
        tanh_cs = np.empty((steps, batch, H), dtype)
        ms = np.empty((steps, batch, H), dtype) if self.proj_size else hs[1:]  # o tanh(c) of every step
        hs[0], cs[0] = state0
        u = np.empty((batch, width), dtype)
        u_by_gate, xw_by_gate = _by_gate(u), _by_gate(xw)  # (4, B, H), (T, 4, B, H) views
        scratch = np.empty((batch, H), dtype)
        if self.peepholes:
            peep_i, peep_f, peep_o = (np.full((batch, H), 0.5 * p[name], dtype)
                                      for name in ("p_i", "p_f", "p_o"))  # halved, (B, H) each
        for t in range(steps):
            z, c_prev, c = gates[t], cs[t], cs[t + 1]
            i, f, g, o = z
            np.matmul(hs[t], R, out=u)
            np.add(u_by_gate, xw_by_gate[t], out=z)
            z[:2] *= 0.5  # z_i, z_f, z_o halved: sig(x) = (1 + tanh(x/2)) / 2
            o *= 0.5
            if self.peepholes:  # z_i, z_f += p c(t-1), halved
                for gate, peep in ((i, peep_i), (f, peep_f)):
                    np.multiply(c_prev, peep, out=scratch)
                    gate += scratch
            squashed = z[:3] if self.peepholes else z
            np.tanh(squashed, out=squashed)
            _tanh_to_sigmoid(z[:2])
            np.multiply(f, c_prev, out=c)  # c(t) = f c(t-1) + i g
            np.multiply(i, g, out=scratch)
            c += scratch
            if self.peepholes:  # o = sig(z_o + p_o c(t))
                np.multiply(c, peep_o, out=scratch)
                o += scratch
                np.tanh(o, out=o)
            _tanh_to_sigmoid(o)
            np.tanh(c, out=tanh_cs[t])
            np.multiply(o, tanh_cs[t], out=ms[t])
            if self.proj_size:
                np.matmul(ms[t], p["W_hr"], out=hs[t + 1])
        stacked = LSTMCache(*gates.transpose(1, 0, 2, 3), cs[:-1], cs[1:], tanh_cs, ms)
        return hs, (hs[steps], cs[steps]), _LSTMSteps(stacked, gates)

    def backward_sequence(self, p, g, d_out, d_state_n, hs, caches, tape):
        """As :meth:`Cell.backward_sequence` (``p``, ``g``, ``d_out``, ``d_state_n``, ``hs``,
        ``caches``, ``tape``). The backward step above over all steps on the gate-major blocks: the slopes
        ``i(1-i), f(1-f), 1-g**2, o(1-o)`` in one ``(4, B, H)`` scratch;
        ``dc += dm (o - m tanh(c))`` (``= dm o (1 - tanh(c)**2)``, ``dm = dh`` without projections); ``dz (4, B, H)`` copied
        once into ``d_xw[t] (B, 4H)``; ``dh(t-1) = dz R^T`` with ``out=``. With projections
        ``dm = dh W_hr^T`` first (one more GEMM), ``dh`` kept in ``d_rec[t] = [dz, dh]``. Then
        :meth:`recurrent_grads` once."""
        gates, cache = caches.gates, caches.stacked
        steps, _, batch, H = gates.shape
        P = self.proj_size
        RT = np.ascontiguousarray(p["R"].T)  # a GEMM on a transposed view is slower
        d_rec = np.empty((steps, batch, 4 * H + P), gates.dtype)  # dz of every step [, dh]
        d_xw = d_rec[..., :4 * H]                                 # (T, B, 4H) view: dz
        d_xw_by_gate = _by_gate(d_xw)                             # (T, 4, B, H) view
        dh_next, dc = d_state_n[0].copy(), d_state_n[1].copy()  # (B, P or H), (B, H)
        dh, scratch = np.empty_like(dh_next), np.empty_like(dc)
        dm = np.empty_like(dc) if P else dh  # the gradient reaching m = o tanh(c)
        if P:
            W_hrT = np.ascontiguousarray(p["W_hr"].T)  # (P, H)
        slopes, dz = np.empty_like(gates[0]), np.empty_like(gates[0])  # (4, B, H) each
        if self.peepholes:
            peep_i, peep_f, peep_o = (np.full((batch, H), p[name], gates.dtype)
                                      for name in ("p_i", "p_f", "p_o"))
        for t in reversed(range(steps)):
            z, tanh_c = gates[t], cache.tanh_c[t]
            i, f, g_t, o = z
            np.add(dh_next, d_out[t], out=dh)  # the total gradient reaching h(t)
            if tape is not None:
                tape[t] = (dh.copy(), dc.copy())
            if P:
                np.matmul(dh, W_hrT, out=dm)
                np.copyto(d_rec[t, :, 4 * H:], dh)
            np.subtract(1.0, z, out=slopes)  # s(1-s) of the sigmoids; the g block is redone
            slopes *= z
            np.multiply(g_t, g_t, out=slopes[2])
            np.subtract(1.0, slopes[2], out=slopes[2])
            np.multiply(slopes[3], tanh_c, out=dz[3])  # dz_o = dm tanh(c) o(1-o)
            dz[3] *= dm
            np.multiply(cache.m[t], tanh_c, out=scratch)  # dc += dm o (1 - tanh(c)**2)
            np.subtract(o, scratch, out=scratch)
            scratch *= dm
            dc += scratch
            if self.peepholes:
                np.multiply(dz[3], peep_o, out=scratch)
                dc += scratch
            slopes[0] *= g_t  # dz_i = dc g i(1-i), dz_f = dc c(t-1) f(1-f), dz_g = dc i (1-g**2)
            slopes[1] *= cache.c_prev[t]
            slopes[2] *= i
            np.multiply(slopes[:3], dc, out=dz[:3])
            dc *= f  # dc(t-1) = dc f (+ dz_i p_i + dz_f p_f)
            if self.peepholes:
                for dz_gate, peep in ((dz[0], peep_i), (dz[1], peep_f)):
                    np.multiply(dz_gate, peep, out=scratch)
                    dc += scratch
            np.copyto(d_xw_by_gate[t], dz)
            np.matmul(d_xw[t], RT, out=dh_next)
        self.recurrent_grads(p, g, hs[:-1], d_rec, caches)
        return d_xw, (dh_next, dc)

    def activations(self, cache):
        return {"i": ("sigmoid", cache.i), "f": ("sigmoid", cache.f), "g": ("tanh", cache.g),
                "o": ("sigmoid", cache.o), "tanh_c": ("tanh", cache.tanh_c)}

    def recurrent_grads(self, p, g, h_prev, d_rec, caches):
        """As :meth:`Cell.recurrent_grads` (``p``, ``g``, ``h_prev``, ``d_rec``, ``caches``).
        ``dR`` as in :class:`Cell` from ``dz = d_rec[..., :4H]``; peepholes
        ``dp_i = sum dz_i * c(t-1)`` and so on; projections ``dW_hr = sum m^T dh`` with
        ``dh = d_rec[..., 4H:]``."""
        H = self.hidden_size
        dz = d_rec[..., :4 * H]  # (T, B, 4H), a view
        super().recurrent_grads(p, g, h_prev, dz, caches)
        if self.peepholes:
            c_prev, c = _stacked(caches, "c_prev"), _stacked(caches, "c")  # (T, B, H)
            g["p_i"] += np.einsum("tbh,tbh->h", dz[..., :H], c_prev)
            g["p_f"] += np.einsum("tbh,tbh->h", dz[..., H:2 * H], c_prev)
            g["p_o"] += np.einsum("tbh,tbh->h", dz[..., 3 * H:], c)
        if self.proj_size:
            m, dh = _stacked(caches, "m"), d_rec[..., 4 * H:]  # (T, B, H), (T, B, P)
            g["W_hr"] += m.reshape(-1, H).T @ dh.reshape(-1, self.proj_size)

    def recurrent_row_grads(self, p, h_prev, d_rec, cache):
        """As :meth:`Cell.recurrent_row_grads` (``p``, ``h_prev``, ``d_rec``, ``cache``).
        Per row: ``dR = h(t-1)^T dz``; peepholes ``dp_i = dz_i * c(t-1)``, ``dp_f = dz_f * c(t-1)``,
        ``dp_o = dz_o * c(t)``; projections ``dW_hr = m^T dh``."""
        H = self.hidden_size
        rows = super().recurrent_row_grads(p, h_prev, d_rec[:, :4 * H], cache)
        if self.peepholes:
            rows.update(p_i=d_rec[:, :H] * cache.c_prev, p_f=d_rec[:, H:2 * H] * cache.c_prev,
                        p_o=d_rec[:, 3 * H:4 * H] * cache.c)
        if self.proj_size:
            rows["W_hr"] = _outer_rows(cache.m, d_rec[:, 4 * H:])
        return rows



class GRUCell(Cell):
    """GRU step with torch's gate order ``r, z, n``, ``hidden_size`` ``H``.

    ``reset_after=True`` (torch.nn.GRU): ``u = h(t-1) R`` split into ``u_r, u_z, u_n``;
    ``r = sig(xw_r + u_r)``, ``z = sig(xw_z + u_z)``, ``n = tanh(xw_n + r * (u_n + b_hn))``,
    ``h(t) = (1 - z) * n + z * h(t-1)``; ``b_hn (H,)`` is torch's ``bias_hh`` n block.

    ``reset_after=False`` (Cho et al. 2014): ``n = tanh(xw_n + (r * h(t-1)) R_n)``; no ``b_hn``.
    ``bias=False`` (a layer without biases): no ``b_hn`` either, ``u_n`` alone inside the reset.

    Backward: ``dn_pre = dh (1-z)(1-n**2)``, ``dz_pre = dh (h(t-1) - n) z(1-z)``,
    ``dr_pre = dn_pre (u_n + b_hn) r(1-r)`` (reset after) or
    ``dr_pre = (dn_pre R_n^T) h(t-1) r(1-r)`` (reset before), and
    ``dh(t-1) = dh z + d_rec R^T`` (reset after, ``d_rec = [dr_pre, dz_pre, dn_pre r]``) or
    ``dh z + [dr_pre, dz_pre] R_rz^T + (dn_pre R_n^T) r`` (reset before).
    """

    num_gates = 3
    gate_names = ("r", "z", "n")

    def __init__(self, hidden_size: int, reset_after: bool = True, bias: bool = True):
        super().__init__(hidden_size)
        self.reset_after, self.bias = reset_after, bias
        self.torch_equivalent = "GRU" if reset_after else None

    def param_shapes(self):
        shapes = super().param_shapes()
        if self._has_b_hn:
            shapes["b_hn"] = (self.hidden_size,)
        return shapes

    @property
    def _has_b_hn(self) -> bool:
        return self.reset_after and self.bias

    def step(self, p, xw, state):
        (h_prev,) = state
        H, R = self.hidden_size, p["R"]
        if self.reset_after:
            u = h_prev @ R  # (B, 3H)
            rz = sigmoid(xw[..., :2 * H] + u[..., :2 * H])
            r = rz[..., :H]
            rec_n = u[..., 2 * H:] + p["b_hn"][..., None, :] if self._has_b_hn else u[..., 2 * H:]  # u_n + b_hn
            n = np.tanh(xw[..., 2 * H:] + r * rec_n)
        else:
            rz = sigmoid(xw[..., :2 * H] + h_prev @ R[..., :, :2 * H])
            r = rz[..., :H]
            rec_n = r * h_prev  # the input of R_n
            n = np.tanh(xw[..., 2 * H:] + rec_n @ R[..., :, 2 * H:])
        z = rz[..., H:]
        h = n + z * (h_prev - n)  # (1 - z) n + z h(t-1)
        return (h,), GRUCache(h_prev, r, z, n, rec_n)

    def step_backward(self, p, g, d_state, cache):
        (dh,) = d_state
        h_prev, r, z, n, rec_n = cache.h_prev, cache.r, cache.z, cache.n, cache.rec_n
        H, R = self.hidden_size, p["R"]
        dn_pre = dh * (1.0 - z) * (1.0 - n * n)
        dz_pre = dh * (h_prev - n) * z * (1.0 - z)
        dh_prev = dh * z
        if self.reset_after:
            dr_pre = dn_pre * rec_n * r * (1.0 - r)
            d_xw = np.concatenate([dr_pre, dz_pre, dn_pre], axis=-1)  # (B, 3H)
            d_rec = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=-1)
            dh_prev += d_rec @ R.T
        else:
            d_rh = dn_pre @ R[:, 2 * H:].T
            dr_pre = d_rh * h_prev * r * (1.0 - r)
            d_xw = d_rec = np.concatenate([dr_pre, dz_pre, dn_pre], axis=-1)
            dh_prev += d_rh * r + d_xw[:, :2 * H] @ R[:, :2 * H].T
        return d_xw, d_rec, (dh_prev,)

    def forward_sequence(self, p, xw, state0):
        """As :meth:`Cell.forward_sequence` (``p``, ``xw (T, B, G*H)``, ``state0``).
        The steps above in one loop that allocates nothing, every elementwise pass on whole
        contiguous arrays (a pass over a column block of a ``(B, 3H)`` row is 2-3x slower): the
        gates are stored gate-major, ``gates[t] (3, B, H)`` holds ``r, z, n``. The GEMM writes
        ``h(t-1) R_k`` into each block (``R_r, R_z`` alone when reset before), ``xw`` is added
        and ``r, z`` squashed as ``(1 + tanh(x/2))/2`` (:func:`sigmoid`, to the bit); the ``n``
        block then receives ``xw_n + r * rec_n`` (reset after) or ``xw_n + rec_n R_n`` (reset
        before) and its tanh; ``h(t) = n + z (h(t-1) - n)`` goes straight into ``hs[t+1]``."""
        (steps, batch, _), H, dtype = xw.shape, self.hidden_size, xw.dtype
        R_k = np.ascontiguousarray(p["R"].reshape(H, 3, H).transpose(1, 0, 2))  # (3, H, H) R_r, R_z, R_n
        xw_k = xw.reshape(steps, batch, 3, H).transpose(0, 2, 1, 3)  # (T, 3, B, H) a view
        gates = np.empty((steps, 3, batch, H), dtype)    # (T, 3, B, H) r, z, n of every step
        rec_n = np.empty((steps, batch, H), dtype)       # (T, B, H) u_n + b_hn, or r h(t-1)
        hs = np.empty((steps + 1, batch, H), dtype)      # (T+1, B, H) hs[0] = h(0)
        hs[0] = state0[0]
        for t in range(steps):
            a, h_prev, h = gates[t], hs[t], hs[t + 1]
            rz, r, z, n = a[:2], a[0], a[1], a[2]
            np.matmul(h_prev, R_k if self.reset_after else R_k[:2], out=a if self.reset_after else rz)
            rz += xw_k[t, :2]
            rz *= 0.5  # sigmoid, in place
            np.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            if self.reset_after:  # n = tanh(xw_n + r (u_n + b_hn))
                np.add(n, p["b_hn"], out=rec_n[t]) if self._has_b_hn else np.copyto(rec_n[t], n)
                np.multiply(r, rec_n[t], out=n)
            else:  # n = tanh(xw_n + (r h(t-1)) R_n)
                np.multiply(r, h_prev, out=rec_n[t])
                np.matmul(rec_n[t], R_k[2], out=n)
            n += xw_k[t, 2]
            np.tanh(n, out=n)
            np.subtract(h_prev, n, out=h)
            h *= z
            h += n
        r, z, n = (gates[:, k] for k in range(3))  # (T, B, H) views
        return hs, (hs[steps],), StepCaches(GRUCache(hs[:-1], r, z, n, rec_n))

    def backward_sequence(self, p, g, d_out, d_state_n, hs, caches, tape):
        """As :meth:`Cell.backward_sequence` (``p``, ``g``, ``d_out``, ``d_state_n``, ``hs``,
        ``caches``, ``tape``). The backward step above over all steps, allocating nothing in the loop, with
        ``h(t) - n = z (h(t-1) - n)``: ``dh (1-z)`` once, ``dz_pre = dh (1-z) (h(t) - n)``,
        ``dn_pre = dh (1-z) (1-n**2)``; reset after ``dr_pre = dn_pre (rec_n (1-r) r)``, reset
        before ``dr_pre = d_rh (rec_n (1-r))`` with ``rec_n = r h(t-1)``. Products are formed in
        a contiguous scratch and only the last one of each block is written into its column
        block of ``d_rec[t] (B, 3H)``, which one GEMM multiplies by ``R^T`` (``out=``); then
        :meth:`recurrent_grads` once. Reset after, ``d_xw`` is ``d_rec`` with ``dn_pre`` put
        back into its ``n`` block."""
        cache = caches.stacked
        steps, batch, H = cache.n.shape
        RT = np.ascontiguousarray(p["R"].T)  # (3H, H); a GEMM on a transposed view is slower
        d_rec = np.empty((steps, batch, 3 * H), cache.n.dtype)  # (T, B, 3H)
        # reset after: dn_pre of every step, (T, B, H); reset before: d_xw = d_rec holds it
        dn_pre = np.empty_like(cache.n) if self.reset_after else d_rec[..., 2 * H:]
        dh_next = d_state_n[0].copy()  # (B, H) the gradient reaching h(t) from step t+1
        dh, dh_z, scratch = np.empty_like(dh_next), np.empty_like(dh_next), np.empty_like(dh_next)
        for t in reversed(range(steps)):
            r, z, n, rec_n = cache.r[t], cache.z[t], cache.n[t], cache.rec_n[t]
            d_t = d_rec[t]
            dr, dz, dn = d_t[:, :H], d_t[:, H:2 * H], dn_pre[t]
            np.add(dh_next, d_out[t], out=dh)  # the total gradient reaching h(t)
            if tape is not None:
                tape[t] = (dh.copy(),)
            np.multiply(dh, z, out=dh_z)  # the direct path to h(t-1)
            dh -= dh_z  # dh (1-z)
            np.subtract(hs[t + 1], n, out=scratch)
            np.multiply(dh, scratch, out=dz)
            np.multiply(n, n, out=scratch)
            np.subtract(1.0, scratch, out=scratch)
            np.multiply(dh, scratch, out=dn)
            np.subtract(1.0, r, out=scratch)
            scratch *= rec_n  # rec_n (1-r)
            if self.reset_after:  # d_rec = [dr_pre, dz_pre, dn_pre r]
                scratch *= r
                np.multiply(dn, scratch, out=dr)
                np.multiply(dn, r, out=d_t[:, 2 * H:])
                np.matmul(d_t, RT, out=dh_next)
            else:  # d_rh = dn_pre R_n^T; dh(t-1) gets d_rh r
                np.matmul(dn, RT[2 * H:], out=dh)
                np.multiply(dh, scratch, out=dr)
                dh *= r
                dh_z += dh
                np.matmul(d_t[:, :2 * H], RT[:2 * H], out=dh_next)
            dh_next += dh_z
        self.recurrent_grads(p, g, hs[:-1], d_rec, caches)
        if self.reset_after:
            d_rec[..., 2 * H:] = dn_pre  # d_rec becomes d_xw
        return d_rec, (dh_next,)

    def activations(self, cache):
        return {"r": ("sigmoid", cache.r), "z": ("sigmoid", cache.z), "n": ("tanh", cache.n)}

    def recurrent_grads(self, p, g, h_prev, d_rec, caches):
        """As :meth:`Cell.recurrent_grads` (``p``, ``g``, ``h_prev``, ``d_rec``, ``caches``).
        Reset after: ``dR`` as in :class:`Cell`, ``db_hn = sum d_rec_n``. Reset before:
        ``dR_rz = sum h(t-1)^T d_rz``, ``dR_n = sum (r h(t-1))^T dn_pre``."""
        H = self.hidden_size
        if self.reset_after:
            super().recurrent_grads(p, g, h_prev, d_rec, caches)
            if self._has_b_hn:
                g["b_hn"] += d_rec[..., 2 * H:].sum(axis=(0, 1))
            return
        rh = _stacked(caches, "rec_n").reshape(-1, H)  # (T*B, H) every r * h(t-1)
        d_rec = d_rec.reshape(-1, 3 * H)
        g["R"][:, :2 * H] += h_prev.reshape(-1, H).T @ d_rec[:, :2 * H]
        g["R"][:, 2 * H:] += rh.T @ d_rec[:, 2 * H:]

    def recurrent_row_grads(self, p, h_prev, d_rec, cache):
        """As :meth:`Cell.recurrent_row_grads` (``p``, ``h_prev``, ``d_rec``, ``cache``).
        Per row: reset after ``dR = h(t-1)^T d_rec``, ``db_hn = d_rec_n``; reset before
        ``dR_rz = h(t-1)^T d_rz``, ``dR_n = (r h(t-1))^T dn_pre``."""
        H = self.hidden_size
        if self.reset_after:
            rows = {"R": _outer_rows(h_prev, d_rec)}
            return {**rows, "b_hn": d_rec[:, 2 * H:]} if self._has_b_hn else rows
        return {"R": np.concatenate([_outer_rows(h_prev, d_rec[:, :2 * H]),
                                     _outer_rows(cache.rec_n, d_rec[:, 2 * H:])], axis=-1)}
