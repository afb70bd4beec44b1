"""Recurrent layers (SimpleRNN, LSTM, GRU) and Linear, with exact backward passes.

A recurrent layer unrolls a :class:`~numpy_rnn.cells.Cell` over time, for ``num_layers``
stacked layers and one or two directions, with optional variable ``lengths`` and dropout
between layers. For one direction of one layer, with ``h(0)`` the initial state::

    xw = x W + b                        # (T, B, G*H), one matmul for all steps
    for t in range(T):
        state(t), cache(t) = cell.step(p, xw[t], state(t-1))
        out[t] = h(t)                   # zero past a sequence's length

and the backward pass runs the steps in reverse, then forms ``dW = x^T dxw``,
``db = sum dxw``, ``dx = dxw W^T`` and the cell's ``dR`` with one matmul or sum each.

Parameters of a one-layer, one-direction layer are named ``W, R, b`` (plus the cell's own;
``bias=False``: no ``b``, and no GRU ``b_hn``); otherwise ``l{k}.W`` and ``l{k}_reverse.W``
for layer ``k`` and its reverse direction.
Every layer here is a :class:`~numpy_rnn.module.Module` (``params``, ``grads``, ``zero_grad``,
``train``/``eval``, ``state_dict``/``load_state_dict``).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from . import _checks, parallel
from .cells import NONLINEARITIES, Cell, ElmanCell, GRUCell, LSTMCell, StepCaches, bptt_steps, written_with
from .init import get_initializer
from .layer_norm import LayerNormGRUCell, LayerNormLSTMCell
from .module import Module
from .regularizers import (
    Masks,
    RecurrentDropoutCell,
    ZoneoutCell,
    cell_caches,
    check_recurrent_dropout,
    dropout_mask,
    zoneout_masks,
)

#: a recurrent state: one array (num_layers * directions, B, H), or a tuple of them (LSTM: h, c)
State = np.ndarray | tuple[np.ndarray, ...]


def _project(seq, W, b):
    """``seq W + b`` over all steps (``b`` None: a layer without biases): one GEMM when the
    weights carry no leading axes."""
    b_lead = 0 if b is None else b.ndim - 1
    if W.ndim == 2 and b_lead == 0:
        out = seq.reshape(-1, seq.shape[-1]) @ W  # (T*B, G*H)
        if b is not None:
            out += b
        return out.reshape(seq.shape[:-1] + (W.shape[-1],))
    if seq.ndim == 3 and W.ndim > 2:  # one GEMM (T*B, D) @ (D, G*H) per leading index of W
        steps, batch, _ = seq.shape
        out = (seq.reshape(steps * batch, -1) @ W).reshape(W.shape[:-2] + (steps, batch, W.shape[-1]))
        out = np.moveaxis(out, -3, 0)  # (T, *lead, B, G*H)
    else:
        lead = max(W.ndim - 2, b_lead, seq.ndim - 3)
        out = _expand(seq, lead + 3) @ W  # (T, *lead, B, D) against W (*lead, D, G*H)
    return out if b is None else out + b[..., None, :]


def _expand(a, ndim):
    """A time-major (T, B, F) array reshaped to broadcast against (T, *lead, B, F)."""
    return a.reshape(a.shape[:1] + (1,) * (ndim - a.ndim) + a.shape[1:])


def _time_major(x):
    """``(..., B, T, F) -> (T, ..., B, F)`` as a view (a plain transpose: cheaper than moveaxis)."""
    n = x.ndim
    return x.transpose((n - 2, *range(n - 2), n - 1))


def _batch_first(x):
    """``(T, ..., B, F) -> (..., B, T, F)`` as a view; the inverse of :func:`_time_major`."""
    n = x.ndim
    return x.transpose((*range(1, n - 1), 0, n - 1))


def _concat_features(outs):
    """Concatenate time-major outputs along features, aligning their leading axes first."""
    ndim = max(out.ndim for out in outs)
    return np.concatenate(np.broadcast_arrays(*[_expand(out, ndim) for out in outs]), axis=-1)


def _reverse(seq, reverse_index):
    """Time-reverse each sequence over its valid steps (the whole sequence without lengths)."""
    if reverse_index is None:
        return seq[::-1]
    idx = reverse_index.reshape(reverse_index.shape[:1] + (1,) * (seq.ndim - 3) + reverse_index.shape[1:] + (1,))
    return np.take_along_axis(seq, idx, axis=0)


def _fast_path_applies(cell, p, xw, state0) -> bool:
    """Whether the cell's ``forward_sequence`` was written for its step methods, and no array
    carries leading axes (the vectorised gradient check adds them)."""
    return (written_with(cell, "forward_sequence", "step", "step_backward", "recurrent_grads")
            and xw.ndim == 3 and all(part.ndim == 2 for part in state0)
            and all(p[name].ndim == len(shape) for name, shape in cell.param_shapes().items()))


def _unroll(cell, p, xw, state0, step_mask):
    """Run ``cell`` over the projected inputs ``xw (T, *lead, B, G*H)``.

    Returns ``out (T, *lead, B, H)`` (zero past each length), the final state and the
    cache ``(hs, caches)`` with ``hs (T+1, *lead, B, H)`` every carried ``h``, ``hs[0] = h(0)``.
    """
    if step_mask is None and _fast_path_applies(cell, p, xw, state0):  # no lengths: the cell's fast path
        fused = _forward_sequence(cell, p, xw, state0)
        if fused is not None:
            hs, state, caches = fused
            return hs[1:], state, (hs, caches)
    steps, hs = xw.shape[0], None
    state, caches = state0, []
    for t in range(steps):
        new_state, cache = cell.step(p, xw[t], state)
        if step_mask is not None:  # past its length a sequence keeps its state
            new_state = tuple(np.where(step_mask[t], new, old) for new, old in zip(new_state, state))
        if hs is None:  # the first step shows the full shape (leading axes may come from p)
            hs = np.empty((steps + 1,) + new_state[0].shape, dtype=new_state[0].dtype)
            hs[0] = state0[0]
        hs[t + 1] = new_state[0]
        caches.append(cache)
        state = new_state
    out = hs[1:] if step_mask is None else np.where(_expand(step_mask, hs.ndim), hs[1:], 0.0)
    return out, state, (hs, caches)


def _unroll_backward(cell, p, g, d_out, d_state_n, run_cache, step_mask, tape=None):
    """BPTT through :func:`_unroll`: returns ``d_xw (T, B, G*H)`` and the initial state's
    gradient; adds the cell's parameter gradients into ``g``. A list ``tape`` of ``T`` slots
    receives ``d_here``, the total gradient reaching each step's new state (a tuple of parts)."""
    hs, caches = run_cache
    if isinstance(caches, PartCaches):
        return _backward_sequence_in_parts(cell, p, g, d_out, d_state_n, caches, tape)
    if isinstance(caches, StepCaches):
        return _backward_sequence(cell, p, g, d_out, d_state_n, hs, caches, tape)
    return bptt_steps(cell, p, g, d_out, d_state_n, hs, caches, tape, step_mask)


def _backward_sequence(cell, p, g, d_out, d_state_n, hs, caches, tape):
    """BPTT through the cell's fast forward: its own ``backward_sequence`` where it was written
    with its ``forward_sequence``, else the steps (:func:`bptt_steps`) over its caches."""
    if written_with(cell, "backward_sequence", "forward_sequence", "step_backward", "recurrent_grads"):
        return cell.backward_sequence(p, g, d_out, d_state_n, hs, caches, tape)
    return bptt_steps(cell, p, g, d_out, d_state_n, hs, caches, tape)


class PartCaches(Sequence):
    """The caches of a forward pass run in batch parts (:mod:`numpy_rnn.parallel`): each part's
    ``rows`` (a slice of the batch), ``hs`` (its ``(T+1, b, H)`` carried ``h``) and ``caches`` (its
    :class:`~numpy_rnn.cells.StepCaches`), three lists in part order. Item ``t`` joins the parts'
    step caches along the batch, so that whoever reads the steps (diagnostics) sees one batch."""

    def __init__(self, rows: list[slice], hs: list[np.ndarray], caches: list[StepCaches]):
        self.rows, self.hs, self.parts = rows, hs, caches

    def __len__(self) -> int:
        return len(self.parts[0])

    def __getitem__(self, t):
        if isinstance(t, slice):
            return [self[i] for i in range(*t.indices(len(self)))]
        steps = [part[t] for part in self.parts]
        return type(steps[0])(*(np.concatenate(fields, axis=-2) for fields in zip(*steps)))


def _rows_of(state: tuple, rows: slice) -> tuple:
    return tuple(part[rows] for part in state)


def _joined(parts: list[tuple]) -> tuple:
    """Tuples of ``(b_k, H)`` arrays, one tuple per batch part -> one tuple of ``(B, H)`` arrays."""
    return tuple(np.concatenate(arrays, axis=0) for arrays in zip(*parts))


def _forward_sequence(cell, p, xw, state0):
    """``cell.forward_sequence``, on batch parts in threads when the batch is large enough
    (:func:`numpy_rnn.parallel.part_rows`); ``hs`` and the final state joined."""
    steps, batch, width = xw.shape
    rows = parallel.part_rows(batch, batch * width)
    if len(rows) == 1:
        return cell.forward_sequence(p, xw, state0)
    parts = parallel.map_parts(lambda r: cell.forward_sequence(p, xw[:, r], _rows_of(state0, r)), rows)
    if parts[0] is None:
        return None
    hs = np.concatenate([part[0] for part in parts], axis=1)  # (T+1, B, H)
    caches = PartCaches(rows, [part[0] for part in parts], [part[2] for part in parts])
    return hs, _joined([part[1] for part in parts]), caches


def _backward_sequence_in_parts(cell, p, g, d_out, d_state_n, caches: PartCaches, tape):
    """:func:`_backward_sequence` on each batch part of the forward pass, in threads; each part
    adds its parameter gradients into its own zeros, summed into ``g`` in part order."""
    own = tuple(cell.param_shapes())

    def backward(k):
        r, part_tape = caches.rows[k], None if tape is None else [None] * len(tape)
        part_g = {name: np.zeros_like(g[name]) for name in own}
        d_xw, d_state0 = _backward_sequence(cell, p, part_g, d_out[:, r], _rows_of(d_state_n, r), caches.hs[k],
                                            caches.parts[k], part_tape)
        return d_xw, d_state0, part_g, part_tape

    parts = parallel.map_parts(backward, range(len(caches.rows)))
    for _, _, part_g, _ in parts:
        for name in own:
            g[name] += part_g[name]
    if tape is not None:
        tape[:] = [_joined(steps) for steps in zip(*(part[3] for part in parts))]
    return np.concatenate([part[0] for part in parts], axis=1), _joined([part[1] for part in parts])


class RunTrace(NamedTuple):
    """One direction of one layer in the last forward pass (see :meth:`Recurrent.traces`).
    Time-major arrays in the order the run read its input (reversed for a reverse run).

    ``name`` the run's (``"l0"``, ``"l0_reverse"``, ...), ``direction`` 0 forward, 1 reverse;
    ``params`` the run's parameters under their short names (the live arrays);
    ``xw (T, B, G*H)`` ``x W + b`` of every step; ``state0`` the initial state, one ``(B, H)``
    array per part; ``caches`` the cell's cache of every step; ``step_mask (T, B, 1)`` True at
    the valid steps and ``reverse_index (T, B)`` how a reverse run reorders time, both ``None``
    without lengths."""

    name: str
    direction: int
    params: dict
    xw: np.ndarray
    state0: tuple
    caches: list
    step_mask: np.ndarray | None
    reverse_index: np.ndarray | None

    def in_input_order(self, values: np.ndarray) -> np.ndarray:
        """Run-ordered ``values (T, B, ...)`` in the input's time order (a reverse run's undone)."""
        return values if self.direction == 0 else _reverse(values, self.reverse_index)

    def activations(self, cell) -> dict[str, tuple[str, np.ndarray]]:
        """What ``cell``'s squashing functions gave at every step of this run
        (:meth:`~numpy_rnn.cells.Cell.activations`): ``{name: (kind, values (B, T, H))}``,
        batch-first in the input's time order."""
        per_step = [cell.activations(cache) for cache in self.caches]
        return {name: (kind, np.moveaxis(self.in_input_order(np.stack([acts[name][1] for acts in per_step])), 0, 1))
                for name, (kind, _) in (per_step[0].items() if per_step else ())}


#: Keras' ways of merging the two directions' outputs ``a`` (forward) and ``b`` (reverse)
MERGE_MODES = {"concat": "[a, b] along features", "sum": "a + b", "mul": "a * b", "ave": "(a + b) / 2"}


def _checked_merge_mode(owner: str, merge_mode, bidirectional: bool) -> str:
    _checks.lookup(owner, "merge_mode", merge_mode, MERGE_MODES)
    if merge_mode != "concat" and not bidirectional:
        raise ValueError(f"{owner}: merge_mode={merge_mode!r} merges the two directions of a bidirectional layer, "
                         f"got bidirectional=False; build with bidirectional=True or leave merge_mode='concat'")
    return merge_mode


def _checked_zoneout(owner: str, zoneout, state_names: tuple) -> tuple:
    """Zoneout rates, one per state part: a rate for every part, or a tuple of one per part."""
    rates = tuple(zoneout) if isinstance(zoneout, (tuple, list)) else (zoneout,) * len(state_names)
    if len(rates) != len(state_names):
        raise ValueError(f"{owner}: expected zoneout to be a rate or a tuple of {len(state_names)} rates, one per "
                         f"state part ({', '.join(state_names)}), got {zoneout!r}")
    return tuple(_checks.check_real(owner, f"zoneout ({part})", rate, low=0.0, high=1.0, high_open=True)
                 for part, rate in zip(state_names, rates))


def _merge(outs: list, mode: str):
    """The two directions' time-major outputs merged by ``mode`` (one direction: its output)."""
    if len(outs) == 1:
        return outs[0]
    if mode == "concat":
        return _concat_features(outs)
    ndim = max(out.ndim for out in outs)
    forward, reverse = (_expand(out, ndim) for out in outs)  # leading axes aligned
    if mode == "mul":
        return forward * reverse
    return forward + reverse if mode == "sum" else 0.5 * (forward + reverse)


def _merge_backward(d_merged, outs: list, mode: str, direction: int):
    """The gradient reaching one direction's output (of two) from ``d_merged``, the merged
    output's; ``outs`` the two outputs (needed by ``mul`` alone)."""
    if mode == "concat":
        width = d_merged.shape[-1] // 2
        return d_merged[..., direction * width:(direction + 1) * width]
    if mode == "mul":
        return d_merged * outs[1 - direction]
    return d_merged if mode == "sum" else 0.5 * d_merged


class Recurrent(Module):
    """A stack of ``num_layers`` recurrent layers of one cell type, uni- or bidirectional.

    ``input_size`` is ``D``, ``hidden_size`` ``H``; ``bidirectional=True`` adds a reverse run to
    every layer. ``init`` maps parameter names (``"W"``, ``"R"``, ``"b"``, a cell's own) to an
    initialiser (a name or a callable, :mod:`numpy_rnn.init`; unnamed ones get torch's uniform);
    ``rng`` (``None``, a seed or a ``numpy.random.Generator``) draws the weights and masks;
    ``dtype`` is ``np.float64`` or ``np.float32``. ``cell``, for a cell of your own, is the
    :class:`~numpy_rnn.cells.Cell` subclass (or any callable ``cell(hidden_size)``) that each
    layer builds in place of the class's own.

    ``forward(x, state=None, lengths=None) -> (out, state_n)``:
    ``x`` is ``(B, T, D)`` or an unbatched ``(T, D)``; ``out`` is ``(B, T, directions*H)``,
    the last layer's outputs; the state is ``(num_layers*directions, B, H)`` as in torch (a
    pair ``(h, c)`` for LSTM; an LSTM with projections has ``h`` and ``out`` of width
    ``proj_size``, see :attr:`h_size`); ``lengths (B,)`` in any order makes outputs past a length zero
    and the final state that of each sequence's last valid step; the input past a length is
    never read (NaN there changes nothing, and ``dx`` is zero there).

    ``backward(d_out, d_state=None) -> (dx, d_state0)`` adds every parameter's gradient into
    ``grads`` and returns the gradients of the input and the initial state.

    ``dropout`` applies inverted dropout to the outputs of every layer but the last while
    ``training`` (masks drawn from ``rng``); ``eval()`` switches it off.

    ``bias=False`` (torch's and Keras' option) builds every layer without biases: ``xw = x W``,
    no ``b`` and no GRU ``b_hn``.

    Keras' options: ``merge_mode`` (``"concat"``, ``"sum"``, ``"mul"``, ``"ave"``) merges the two
    directions of every bidirectional layer (``out`` and the next layer's input are
    :attr:`output_size` wide); ``go_backwards`` reads the sequence from its last (valid) step and
    returns the outputs in reading order. Regularisers (:mod:`numpy_rnn.regularizers`, drawn
    while ``training``, exposed in :attr:`masks`): ``input_dropout`` and ``recurrent_dropout``
    (one mask per sequence, shared over time) and ``zoneout`` (a rate, or one per state part).

    With ``record_state_grads = True``, ``backward`` also keeps in :attr:`state_grads` the total
    gradient that reached every step's state during BPTT (what gradient-flow diagnostics plot).
    """

    #: keep the gradient reaching every step's state in ``state_grads`` during ``backward``
    record_state_grads: bool = False
    #: ``{run name: one (B, T, H) array per state part}``, input time order; set by a recording ``backward``
    state_grads: dict | None = None

    def __init__(self, input_size, hidden_size, num_layers=1, *, bidirectional=False, dropout=0.0, bias=True,
                 merge_mode="concat", go_backwards=False, input_dropout=0.0, recurrent_dropout=0.0, zoneout=0.0,
                 init=None, rng=None, dtype=np.float64, cell=None):
        name = type(self).__name__
        self.input_size = _checks.check_size(name, "input_size", input_size)
        self.hidden_size = _checks.check_size(name, "hidden_size", hidden_size)
        self.num_layers = _checks.check_size(name, "num_layers", num_layers)
        for flag, value in (("bidirectional", bidirectional), ("bias", bias), ("go_backwards", go_backwards)):
            if not isinstance(value, bool):
                raise TypeError(f"{name}: expected {flag} to be a bool, got {value!r}")
        self.bias = bias
        self.dropout = _checks.check_real(name, "dropout", dropout, low=0.0, high=1.0, high_open=True)
        if self.dropout and self.num_layers == 1:
            warnings.warn(f"{name}: dropout={self.dropout} acts between stacked layers only and does nothing "
                          f"with num_layers=1", UserWarning, stacklevel=2)
        self.dtype = _checks.check_dtype(name, dtype)
        self.rng = _checks.as_generator(rng)
        self.cell = self._make_cell() if cell is None else cell(self.hidden_size)
        if not isinstance(self.cell, Cell):
            raise TypeError(f"{name}: expected cell to make a numpy_rnn.cells.Cell, got {type(self.cell).__name__}")
        self.num_directions = 2 if bidirectional else 1
        self.bidirectional = bidirectional
        self.merge_mode = _checked_merge_mode(name, merge_mode, bidirectional)
        self.go_backwards = go_backwards
        self.input_dropout = _checks.check_real(name, "input_dropout", input_dropout, low=0.0, high=1.0, high_open=True)
        self.recurrent_dropout = _checks.check_real(name, "recurrent_dropout", recurrent_dropout, low=0.0, high=1.0,
                                                    high_open=True)
        if self.recurrent_dropout:
            check_recurrent_dropout(name, self.cell)
        self.zoneout = _checked_zoneout(name, zoneout, self.cell.state_names)
        self.training = True
        self._run_table = self.runs()
        self._short_names = tuple(self._shapes(0))
        self.params: dict[str, np.ndarray] = {}
        self._init_params(init or {})
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        self._cache = None

    def _make_cell(self) -> Cell:
        raise TypeError(f"{type(self).__name__}: expected cell= (a Cell class or a callable hidden_size -> Cell)")

    # ---------------------------------------------------------------- parameters
    def _prefix(self, layer: int, direction: int) -> str:
        if self.num_layers == 1 and self.num_directions == 1:
            return ""
        return f"l{layer}{'_reverse' if direction else ''}."

    def runs(self) -> tuple:
        """``(k, layer, direction, prefix)`` for every direction of every layer, in torch's order:
        ``k`` indexes the state's first axis, ``prefix`` the parameter names (see :meth:`view`)."""
        return tuple((layer * self.num_directions + direction, layer, direction, self._prefix(layer, direction))
                     for layer in range(self.num_layers) for direction in range(self.num_directions))

    def _shapes(self, layer: int) -> dict[str, tuple]:
        D = self.input_size if layer == 0 else self.output_size
        GH = self.cell.num_gates * self.hidden_size
        cell_shapes = self.cell.param_shapes()
        clash = [key for key in cell_shapes if key in ("W", "b") or "." in key]
        if clash:
            raise ValueError(f"{type(self).__name__}: cell parameter names {clash} clash with the layer's W, b or contain '.'")
        return {"W": (D, GH), **cell_shapes, **({"b": (GH,)} if self.bias and self.cell.input_bias else {})}

    def _init_params(self, init: dict) -> None:
        names = set(self._shapes(0))
        if not isinstance(init, dict):
            raise TypeError(f"{type(self).__name__}: expected init to be a dict of parameter name -> initialiser, "
                            f"got {type(init).__name__}")
        _checks.check_names(type(self).__name__, "parameter(s) in init", init, sorted(names))
        defaults = self.cell.param_inits()
        makers = {key: get_initializer(init.get(key, defaults.get(key, "torch")), self.hidden_size) for key in names}
        for _, layer, _, prefix in self.runs():
            for key, shape in self._shapes(layer).items():
                value = np.asarray(makers[key](shape, self.rng, self.dtype), dtype=self.dtype)
                _checks.check_shape(type(self).__name__, f"init[{key!r}] result", value, shape)
                self.params[prefix + key] = value

    def view(self, arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
        """The entries of ``arrays`` (``params`` or ``grads``) of the run with ``prefix`` under
        their short names (``W``, ``R``, ...): the same array objects, not copies."""
        return {short: arrays[prefix + short] for short in self._short_names}

    @property
    def h_size(self) -> int:
        """The width of ``h``, each direction's output: ``hidden_size``, or ``proj_size`` for an
        LSTM with projections (the cell's ``state_widths[0]``)."""
        return self.cell.state_widths[0]

    @property
    def output_size(self) -> int:
        """The width of ``out`` (and of the next stacked layer's input): ``directions * h_size``
        with ``merge_mode="concat"``, else ``h_size``."""
        return self.num_directions * self.h_size if self.merge_mode == "concat" else self.h_size

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the state's parts, from the cell: ``("h",)``, LSTM ``("h", "c")``. A state of
        one part is an array, of several a tuple in this order, ``h`` first."""
        return self.cell.state_names

    @property
    def dropout_masks(self) -> list | None:
        """The dropout masks between stacked layers that the last ``forward`` drew (a list of
        (T, B, F) arrays), or None."""
        masks = self.masks
        return None if masks is None else masks.between

    @property
    def masks(self) -> Masks | None:
        """Every mask the last ``forward`` drew (:class:`~numpy_rnn.regularizers.Masks`: dropout
        between layers, input and recurrent dropout, zoneout), or None (evaluation, or none
        needed); ``apply(..., masks)`` reuses them."""
        return None if self._cache is None else self._cache[1]

    # ---------------------------------------------------------------- forward
    def forward(self, x: np.ndarray, state: State | None = None, lengths: np.ndarray | None = None, *,
                check_finite: bool = False) -> tuple[np.ndarray, State]:
        """Run the layer on ``x`` from ``state`` (``None``: zeros) with ``lengths`` (``None``: every
        sequence full); see the class docstring. NaN or inf in ``x`` propagate like any other value
        unless ``check_finite=True``, which makes them a ValueError. Steps past a sequence's length
        are never read: whatever they hold, outputs and gradients ignore them (``dx`` is exactly
        zero there)."""
        x_tm, state0, lengths, unbatched = self._check_input(x, state, lengths, check_finite)
        self._cache = None  # free the last pass's arrays before allocating this one's
        masks = self._draw_masks(x_tm.shape[0], x_tm.shape[1])
        out, state_n, cache = self._run(self.params, x_tm, state0, lengths, masks)
        self._cache = cache + (unbatched,)
        return self._format_output(np.ascontiguousarray(_batch_first(out)), state_n, unbatched)

    def apply(self, params: dict[str, np.ndarray], x: np.ndarray, state: State | None = None,
              lengths: np.ndarray | None = None, masks: Masks | None = None) -> tuple[np.ndarray, State]:
        """Functional forward without validation or caching, used by gradient checks.

        ``x (..., B, T, D)``, ``state (..., L*dirs, B, H)`` and every parameter of ``params`` (the
        layer's names) may carry extra leading axes that broadcast: a whole batch of perturbed
        copies is evaluated at once. ``lengths (B,)`` as in :meth:`forward`; ``masks`` are those
        a training forward drew (:attr:`masks`; ``None``: evaluation).
        """
        x_tm = _time_major(x)
        state0 = self._split_state(state, x_tm.shape[-2])
        lengths = None if lengths is None else np.asarray(lengths)
        out, state_n, _ = self._run(params, x_tm, state0, lengths, masks)
        return _batch_first(out), self._join_state(state_n)

    def _draw_masks(self, steps, batch) -> Masks | None:
        """Every mask a training forward needs (see :mod:`numpy_rnn.regularizers`), or None."""
        if not self.training:
            return None
        rng, dtype = self.rng, self.dtype
        masks = Masks(self._draw_dropout_masks(steps, batch), None, None, None)
        if self.input_dropout:
            masks = masks._replace(inputs=[dropout_mask(rng, (batch, self._shapes(layer)["W"][0]), self.input_dropout,
                                                        dtype) for _, layer, _, _ in self._run_table])
        if self.recurrent_dropout:
            masks = masks._replace(recurrent=[dropout_mask(rng, (batch, self.h_size), self.recurrent_dropout, dtype)
                                              for _ in self._run_table])
        if any(self.zoneout):
            masks = masks._replace(zoneout=[zoneout_masks(rng, steps, self.cell.state_widths, batch, self.zoneout,
                                                          dtype) for _ in self._run_table])
        return None if all(mask is None for mask in masks) else masks

    def _run_cell(self, masks: Masks | None, k: int) -> Cell:
        """The layer's cell for run ``k``, wrapped for recurrent dropout and zoneout."""
        cell = self.cell
        if masks is not None and masks.recurrent is not None:
            cell = RecurrentDropoutCell(cell, masks.recurrent[k])
        if any(self.zoneout):  # training: the drawn masks; evaluation: the expectation
            zone = None if masks is None or masks.zoneout is None else masks.zoneout[k]
            cell = ZoneoutCell(cell, masks=zone, rates=self.zoneout)
        return cell

    def _draw_dropout_masks(self, steps, batch):
        if not (self.training and self.dropout > 0 and self.num_layers > 1):
            return None
        F, keep = self.output_size, 1.0 - self.dropout
        return [((self.rng.random((steps, batch, F)) < keep) / keep).astype(self.dtype)
                for _ in range(self.num_layers - 1)]

    def _run(self, params, x_tm, state0, lengths, masks):
        """Every layer and direction over time-major ``x_tm (T, *lead, B, D)``."""
        steps, batch = x_tm.shape[0], x_tm.shape[-2]
        step_mask = reverse_index = None
        if lengths is not None:
            t = np.arange(steps)[:, None]
            step_mask = (t < lengths)[:, :, None]  # (T, B, 1)
            reverse_index = np.where(t < lengths, lengths - 1 - t, t)  # (T, B)
            x_tm = np.where(_expand(step_mask, x_tm.ndim), x_tm, 0.0)  # padding is never read, whatever it holds
        if self.go_backwards:  # read from the last (valid) step; outputs stay in reading order
            x_tm = _reverse(x_tm, reverse_index)
        inp, finals, runs, layer_outs = x_tm, [None] * len(state0), [], []
        for layer in range(self.num_layers):
            outs = []
            for k, _, direction, prefix in self._runs_of(layer):
                seq = inp if direction == 0 else _reverse(inp, reverse_index)
                if masks is not None and masks.inputs is not None:
                    seq = seq * masks.inputs[k]  # (B, D) shared over time
                p, cell = self.view(params, prefix), self._run_cell(masks, k)
                out, finals[k], run_cache = _unroll(cell, p, _project(seq, p["W"], p.get("b")), state0[k], step_mask)
                runs.append((seq, run_cache, state0[k], cell))
                outs.append(out if direction == 0 else _reverse(out, reverse_index))
            layer_outs.append(outs if self.merge_mode == "mul" else None)  # the product rule needs them
            inputs_of_next = _merge(outs, self.merge_mode)
            if masks is not None and masks.between is not None and layer < self.num_layers - 1:
                inputs_of_next = inputs_of_next * _expand(masks.between[layer], inputs_of_next.ndim)
            inp = inputs_of_next
        return inp, finals, (runs, masks, step_mask, reverse_index, batch, layer_outs)

    def _runs_of(self, layer):
        return self._run_table[layer * self.num_directions:(layer + 1) * self.num_directions]

    # ---------------------------------------------------------------- backward
    def backward(self, d_out: np.ndarray, d_state: State | None = None) -> tuple[np.ndarray, State]:
        """Gradients w.r.t. the input and the initial state; parameter gradients are added
        into ``grads``. ``d_out`` has the shape of ``out``; ``d_state`` that of the final
        state (``None``, or for LSTM ``None`` in either place, means zero)."""
        self._require_forward("backward()")
        runs, masks, step_mask, reverse_index, batch, layer_outs, unbatched = self._cache
        d_out_tm, d_state_n = self._check_upstream(d_out, d_state, runs[0][0].shape[0], batch, unbatched)
        d_state0 = [None] * len(runs)
        tapes = [[None] * d_out_tm.shape[0] if self.record_state_grads else None for _ in runs]
        d_inp = d_out_tm
        for layer in reversed(range(self.num_layers)):
            if masks is not None and masks.between is not None and layer < self.num_layers - 1:
                d_inp = d_inp * masks.between[layer]
            d_below = None
            for k, _, direction, prefix in self._runs_of(layer):
                seq, run_cache, _, cell = runs[k]
                d_part = d_inp if self.num_directions == 1 else _merge_backward(d_inp, layer_outs[layer],
                                                                                self.merge_mode, direction)
                if direction:
                    d_part = _reverse(d_part, reverse_index)
                p, g = self.view(self.params, prefix), self.view(self.grads, prefix)
                d_xw, d_state0[k] = _unroll_backward(cell, p, g, d_part, d_state_n[k], run_cache, step_mask, tapes[k])
                d_seq = self._input_grads(p, g, seq, d_xw)
                if masks is not None and masks.inputs is not None:
                    d_seq = d_seq * masks.inputs[k]
                d_seq = d_seq if direction == 0 else _reverse(d_seq, reverse_index)
                d_below = d_seq if d_below is None else d_below + d_seq
            d_inp = d_below
        if self.go_backwards:
            d_inp = _reverse(d_inp, reverse_index)
        if self.record_state_grads:
            self.state_grads = self._taped_state_grads(tapes, reverse_index)
        return self._format_output(np.ascontiguousarray(_batch_first(d_inp)), d_state0, unbatched)

    def _taped_state_grads(self, tapes, reverse_index):
        """Each run's tape (T slots of state-part tuples) as (B, T, H) arrays in input time order."""
        grads = {}
        for (_, _, direction, prefix), tape in zip(self._run_table, tapes):
            parts = [np.stack([step[i] for step in tape]) for i in range(self.cell.state_size)]  # (T, B, H) each
            parts = [part if direction == 0 else _reverse(part, reverse_index) for part in parts]
            grads[self.run_name(prefix)] = tuple(np.ascontiguousarray(_batch_first(part)) for part in parts)
        return grads

    @staticmethod
    def run_name(prefix: str) -> str:
        """The name of the run with parameter prefix ``prefix``: ``l0`` for a single run, else
        the prefix without its dot (``l1_reverse``)."""
        return prefix.rstrip(".") or "l0"

    def _require_forward(self, what: str) -> None:
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}: {what} called before forward()")

    def traces(self) -> list[RunTrace]:
        """What the last forward computed, one :class:`RunTrace` per run in :meth:`runs` order."""
        self._require_forward("traces()")
        runs, _, step_mask, reverse_index, *_ = self._cache
        traces = []
        for (_, _, direction, prefix), (seq, (_, caches), state0, cell) in zip(self._run_table, runs):
            p, caches = self.view(self.params, prefix), cell_caches(cell, caches)
            traces.append(RunTrace(self.run_name(prefix), direction, p, _project(seq, p["W"], p.get("b")), state0,
                                   caches, step_mask, reverse_index))
        return traces

    def activations(self) -> dict[str, dict[str, tuple[str, np.ndarray]]]:
        """What the cell's squashing functions gave at every step of the last forward, for
        plots of gates over time: ``{run name: {activation: (kind, values (B, T, H))}}``,
        batch-first and in the input's time order (a reverse run's steps put back in place).

        The activations and their kinds (``"sigmoid"``, ``"tanh"``, ``"relu"``) are those of
        :meth:`~numpy_rnn.cells.Cell.activations`: an LSTM's gates ``i, f, g, o`` and
        ``tanh_c``, a GRU's ``r, z, n``, an Elman layer's ``h``; a custom cell without that
        method has none. Past a sequence's length the values are padding. Read them after a
        forward in evaluation mode: while training, regularisers wrap the cell's caches."""
        self._require_forward("activations()")
        return {trace.name: trace.activations(self.cell) for trace in self.traces()}

    @staticmethod
    def _input_grads(p, g, seq, d_xw):
        """``dW += seq^T d_xw``, ``db += sum d_xw``; returns ``d_seq = d_xw W^T`` (one GEMM each)."""
        seq2, d2 = seq.reshape(-1, seq.shape[-1]), d_xw.reshape(-1, d_xw.shape[-1])
        g["W"] += seq2.T @ d2
        if "b" in g:
            g["b"] += d2.sum(axis=0)
        return (d2 @ p["W"].T).reshape(seq.shape)

    # ---------------------------------------------------------------- shapes and checks
    def _state_shape(self, batch, unbatched, width):
        """The shape of one state part of width ``width`` (``cell.state_widths``)."""
        L = self.num_layers * self.num_directions
        return (L, width) if unbatched else (L, batch, width)

    def _split_state(self, state, batch):
        """Public state (arrays (..., L*dirs, B, width)) -> per-run tuples of (..., B, width) arrays."""
        if state is None:
            zeros = tuple(np.zeros((batch, width), dtype=self.dtype) for width in self.cell.state_widths)
            return [zeros for _ in self._run_table]
        parts = state if self.cell.state_size > 1 else (state,)
        return [tuple(part[..., k, :, :] for part in parts) for k, *_ in self._run_table]

    def _join_state(self, per_run):
        if len(per_run) == 1:  # a copy: the arrays may live on in the backward cache
            parts = tuple(part[..., None, :, :].copy() for part in per_run[0])
        else:
            parts = tuple(np.stack(np.broadcast_arrays(*[run[i] for run in per_run]), axis=-3)
                          for i in range(self.cell.state_size))
        return parts if self.cell.state_size > 1 else parts[0]

    def _format_output(self, out, per_run_state, unbatched):
        state = self._join_state(per_run_state)
        if unbatched:
            out = out[0]
            state = tuple(s[:, 0] for s in state) if isinstance(state, tuple) else state[:, 0]
        return out, state

    def _check_input(self, x, state, lengths, check_finite):
        name = type(self).__name__
        x = _checks.check_array(name, "x", x, self.dtype)
        D = self.input_size
        if x.ndim not in (2, 3) or x.shape[-1] != D:
            raise ValueError(f"{name}: expected x of shape (B, T, {D}) or (T, {D}), got {_checks.shape_str(x.shape)}")
        unbatched = x.ndim == 2
        x = x[None] if unbatched else x
        batch, steps = x.shape[0], x.shape[1]
        if steps == 0 or batch == 0:
            raise ValueError(f"{name}: expected at least one time step and one sequence, "
                             f"got x of shape {_checks.shape_str(x.shape)}")
        lengths = _checks.check_lengths(name, lengths, batch, steps)
        valid = x if lengths is None else x[np.arange(steps) < lengths[:, None]]  # padding may hold anything
        if check_finite and not np.all(np.isfinite(valid)):
            raise ValueError(f"{name}: expected finite values in x, got NaN or inf")
        state0 = self._split_state(self._check_state(state, batch, unbatched, check_finite), batch)
        return np.array(_time_major(x), order="C"), state0, lengths, unbatched  # a copy: backward reads it later

    def _check_state(self, state, batch, unbatched, check_finite, arg="state"):
        """A state of exactly the expected shape (never broadcast); returned batched."""
        if state is None:
            return None
        name = type(self).__name__
        shapes = [self._state_shape(batch, unbatched, width) for width in self.cell.state_widths]
        if self.cell.state_size > 1:
            names = self.cell.state_names
            if not isinstance(state, (tuple, list)) or len(state) != len(names):
                raise TypeError(f"{name}: expected {arg} to be a tuple ({', '.join(names)}) of arrays of shapes "
                                f"{', '.join(map(_checks.shape_str, shapes))}, got {type(state).__name__}")
            parts = [_checks.check_array(name, f"{arg}[{i}]", s, self.dtype, check_finite=check_finite)
                     for i, s in enumerate(state)]
            for i, part in enumerate(parts):
                _checks.check_shape(name, f"{arg}[{i}] ({names[i]})", part, shapes[i])
        else:
            parts = [_checks.check_array(name, arg, state, self.dtype, check_finite=check_finite)]
            _checks.check_shape(name, arg, parts[0], shapes[0])
        parts = [p[:, None] if unbatched else p for p in parts]
        return tuple(parts) if self.cell.state_size > 1 else parts[0]

    def _check_upstream(self, d_out, d_state, steps, batch, unbatched):
        name = type(self).__name__
        d_out = _checks.check_array(name, "d_out", d_out, self.dtype)
        F = self.output_size
        expected = (steps, F) if unbatched else (batch, steps, F)
        _checks.check_shape(name, "d_out (the gradient of the latest forward's output)", d_out, expected)
        d_out = d_out[None] if unbatched else d_out
        widths = self.cell.state_widths
        if self.cell.state_size > 1 and isinstance(d_state, (tuple, list)) and len(d_state) == len(widths):
            d_state = tuple(np.zeros(self._state_shape(batch, unbatched, width), dtype=self.dtype) if d is None else d
                            for d, width in zip(d_state, widths))  # None means zero
        d_state = self._check_state(d_state, batch, unbatched, False, arg="d_state")
        return _time_major(d_out), self._split_state(d_state, batch)

    def _cell_options(self) -> str:
        """The cell's options in :meth:`__repr__`: here the custom cell by its class name."""
        return f", cell={type(self.cell).__name__}"

    def __repr__(self):
        opts = f", num_layers={self.num_layers}" if self.num_layers > 1 else ""
        opts += self._cell_options()
        opts += ", bias=False" if not self.bias else ""
        opts += ", bidirectional=True" if self.bidirectional else ""
        opts += f", dropout={self.dropout}" if self.dropout else ""
        opts += f", merge_mode={self.merge_mode!r}" if self.merge_mode != "concat" else ""
        opts += ", go_backwards=True" if self.go_backwards else ""
        opts += f", input_dropout={self.input_dropout}" if self.input_dropout else ""
        opts += f", recurrent_dropout={self.recurrent_dropout}" if self.recurrent_dropout else ""
        opts += f", zoneout={self.zoneout}" if any(self.zoneout) else ""
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}{opts}, dtype={self.dtype})"


class SimpleRNN(Recurrent):
    """Elman layer: ``s(t) = x(t) W + a(t-1) R + b``, ``a(t) = tanh(s(t))`` (or relu).

    torch.nn.RNN's maths with one bias ``b = bias_ih + bias_hh``. Parameters ``W (D, H)``,
    ``R (H, H)``, ``b (H,)``; see :class:`Recurrent` for the call contract.

    ``input_size`` is ``D``, ``hidden_size`` ``H``, ``num_layers`` the depth; the keyword
    ``options`` are :class:`Recurrent`'s. ``nonlinearity`` is ``"tanh"`` or ``"relu"``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, *, nonlinearity="tanh", **options):
        _checks.lookup("SimpleRNN", "nonlinearity", nonlinearity, NONLINEARITIES)
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, **options)

    def _make_cell(self):
        return ElmanCell(self.hidden_size, self.nonlinearity)

    def _cell_options(self) -> str:
        return f", nonlinearity={self.nonlinearity!r}" if self.nonlinearity != "tanh" else ""


class LSTM(Recurrent):
    """LSTM layer with torch.nn.LSTM's maths (gates ``i, f, g, o``), optional peepholes.

    ``input_size`` is ``D``, ``hidden_size`` ``H``, ``num_layers`` the depth; the keyword
    ``options`` are :class:`Recurrent`'s.

    Parameters ``W (D, 4H)``, ``R (H, 4H)``, ``b (4H,)`` and with ``peepholes=True``
    ``p_i, p_f, p_o (H,)``; the state is the pair ``(h, c)``. ``forget_bias`` sets the forget
    gate's block of ``b`` after initialisation (Jozefowicz et al. 2015 recommend 1).
    See :class:`~numpy_rnn.cells.LSTMCell` for the equations.

    ``layer_norm=True``: the layer-normalised LSTM of Ba, Kiros & Hinton 2016
    (:class:`~numpy_rnn.layer_norm.LayerNormLSTMCell`): no ``b``, its place taken by the shift
    ``beta (4H,)`` (which ``forget_bias`` then sets), gains ``g_x, g_h (4H,)``, ``g_c (H,)`` and
    the shift ``beta_c (H,)``; not with peepholes.

    ``proj_size=P`` (``0 < P < H``, torch's option; Sak et al. 2014): ``h(t) = (o * tanh(c(t))) W_hr``
    with ``W_hr (H, P)``; ``h``, the output and ``R (P, 4H)`` have width ``P``, ``c`` keeps ``H``,
    and a higher layer reads ``directions*P`` features. Not with ``layer_norm``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, *, peepholes=False, forget_bias=None,
                 layer_norm=False, proj_size=0, **options):
        for flag, value in (("peepholes", peepholes), ("layer_norm", layer_norm)):
            if not isinstance(value, bool):
                raise TypeError(f"LSTM: expected {flag} to be a bool, got {value!r}")
        if peepholes and layer_norm:
            raise ValueError("LSTM: expected peepholes=False with layer_norm=True (the layer-normalised LSTM has no "
                             "peephole connections), got peepholes=True")
        self.peepholes, self.layer_norm = peepholes, layer_norm
        self.proj_size = _checks.check_size("LSTM", "proj_size", proj_size, minimum=0)
        if self.proj_size and self.proj_size >= _checks.check_size("LSTM", "hidden_size", hidden_size):
            raise ValueError(f"LSTM: expected proj_size < hidden_size={hidden_size} (the projection narrows h), "
                             f"got proj_size={proj_size}")
        if self.proj_size and layer_norm:
            raise ValueError(f"LSTM: expected proj_size=0 with layer_norm=True (the layer-normalised LSTM has no "
                             f"projection), got proj_size={proj_size}")
        super().__init__(input_size, hidden_size, num_layers, **options)
        if forget_bias is not None:
            value = _checks.check_real("LSTM", "forget_bias", forget_bias)
            if not self.bias:
                raise ValueError(f"LSTM: forget_bias={value} sets a block of b, and bias=False leaves the layer "
                                 f"without b: drop forget_bias or use bias=True")
            H, name = self.hidden_size, "beta" if layer_norm else "b"
            for *_, prefix in self.runs():
                self.params[prefix + name][H:2 * H] = value

    def _make_cell(self):
        if self.layer_norm:
            return LayerNormLSTMCell(self.hidden_size, self.bias)
        return LSTMCell(self.hidden_size, self.peepholes, self.proj_size)

    def _cell_options(self) -> str:
        return ((", peepholes=True" if self.peepholes else "") + (", layer_norm=True" if self.layer_norm else "")
                + (f", proj_size={self.proj_size}" if self.proj_size else ""))


class GRU(Recurrent):
    """GRU layer with torch.nn.GRU's maths (gates ``r, z, n``; ``reset_after=True``) or the
    original form of Cho et al. 2014 (``reset_after=False``).

    ``input_size`` is ``D``, ``hidden_size`` ``H``, ``num_layers`` the depth; the keyword
    ``options`` are :class:`Recurrent`'s.

    Parameters ``W (D, 3H)``, ``R (H, 3H)``, ``b (3H,)`` and, resetting after, ``b_hn (H,)``.
    See :class:`~numpy_rnn.cells.GRUCell` for the equations.

    ``layer_norm=True``: the layer-normalised GRU (:class:`~numpy_rnn.layer_norm.LayerNormGRUCell`,
    reset after only): no ``b``, shifts ``beta (3H,)`` and ``beta_hn (H,)`` in place of ``b`` and
    ``b_hn``, gains ``g_x, g_h (3H,)``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, *, reset_after=True, layer_norm=False, **options):
        for flag, value in (("reset_after", reset_after), ("layer_norm", layer_norm)):
            if not isinstance(value, bool):
                raise TypeError(f"GRU: expected {flag} to be a bool, got {value!r}")
        if layer_norm and not reset_after:
            raise ValueError("GRU: expected reset_after=True with layer_norm=True (the layer-normalised GRU applies the "
                             "reset gate to the normalised h(t-1) R), got reset_after=False")
        self.reset_after, self.layer_norm = reset_after, layer_norm
        super().__init__(input_size, hidden_size, num_layers, **options)

    def _make_cell(self):
        if self.layer_norm:
            return LayerNormGRUCell(self.hidden_size, self.bias)
        return GRUCell(self.hidden_size, self.reset_after, self.bias)

    def _cell_options(self) -> str:
        return (", reset_after=False" if not self.reset_after else "") + (", layer_norm=True" if self.layer_norm else "")


class Linear(Module):
    """Affine read-out ``y = x W + b`` over the last axis: ``W (D, K)``, ``b (K,)``.

    ``input_size`` is ``D``, ``output_size`` ``K``; ``init`` maps ``"W"`` and ``"b"`` to an
    initialiser (default torch's uniform with fan-in ``D``), ``rng`` and ``dtype`` as in
    :class:`Recurrent`.

    ``forward(x (..., D)) -> (..., K)``; ``backward(dy) -> dx`` with ``dW = x^T dy`` and
    ``db = sum dy`` over all leading axes, added into ``grads``.
    """

    def __init__(self, input_size, output_size, *, init=None, rng=None, dtype=np.float64):
        self.input_size = _checks.check_size("Linear", "input_size", input_size)
        self.output_size = _checks.check_size("Linear", "output_size", output_size)
        self.dtype = _checks.check_dtype("Linear", dtype)
        rng = _checks.as_generator(rng)
        init = init or {}
        shapes = {"W": (self.input_size, self.output_size), "b": (self.output_size,)}
        _checks.check_names("Linear", "parameter(s) in init", init, list(shapes))
        self.params = {key: np.asarray(get_initializer(init.get(key, "torch"), self.input_size)(shape, rng, self.dtype),
                                       dtype=self.dtype)
                       for key, shape in shapes.items()}
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        self._x = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x (..., D) -> x W + b (..., K)``; ``x`` is kept for :meth:`backward`."""
        x = _checks.check_array("Linear", "x", x, self.dtype)
        if x.ndim < 1 or x.shape[-1] != self.input_size:
            raise ValueError(f"Linear: expected x of shape (..., {self.input_size}), got {_checks.shape_str(x.shape)}")
        self._x = x
        return self.apply(self.params, x)

    @staticmethod
    def apply(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        """``x W + b`` with ``W``, ``b`` taken from ``params``, which may carry leading axes (see
        :meth:`Recurrent.apply`)."""
        b = params["b"] if params["b"].ndim == 1 else params["b"][..., None, :]
        return x @ params["W"] + b

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """From ``dy (..., K)``, the gradient of the last forward's output, adds ``dW = x^T dy`` and
        ``db = sum dy`` (over every leading axis) into ``grads``; returns ``dx = dy W^T``, shaped
        like the last forward's ``x``."""
        if self._x is None:
            raise RuntimeError("Linear: backward() called before forward()")
        dy = _checks.check_array("Linear", "dy", dy, self.dtype)
        expected = self._x.shape[:-1] + (self.output_size,)
        _checks.check_shape("Linear", "dy", dy, expected)
        x2, dy2 = self._x.reshape(-1, self.input_size), dy.reshape(-1, self.output_size)
        self.grads["W"] += x2.T @ dy2
        self.grads["b"] += dy2.sum(axis=0)
        return dy @ self.params["W"].T

    def __repr__(self):
        return f"Linear({self.input_size}, {self.output_size}, dtype={self.dtype})"


class Embedding(Module):
    """Token lookup ``e(t) = E[id(t)]`` with ``E (V, E)``, initialised N(0, 1) as in torch.

    ``num_embeddings`` is ``V``, the vocabulary's size, ``embedding_dim`` ``E``; ``rng`` and
    ``dtype`` as in :class:`Recurrent`.

    ``forward(ids (..., T)) -> (..., T, E)``; ``backward(d)`` adds ``d`` into the rows of
    ``dE`` that the ids selected (``np.add.at``, so repeated ids accumulate).
    """

    def __init__(self, num_embeddings, embedding_dim, *, rng=None, dtype=np.float64):
        self.num_embeddings = _checks.check_size("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = _checks.check_size("Embedding", "embedding_dim", embedding_dim)
        self.dtype = _checks.check_dtype("Embedding", dtype)
        rng = _checks.as_generator(rng)
        self.params = {"E": rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)}
        self.grads = {"E": np.zeros_like(self.params["E"])}
        self._ids = None

    def forward(self, ids: np.ndarray) -> np.ndarray:
        """Integer ``ids (..., T)`` in ``[0, V)`` -> their rows of ``E``, ``(..., T, E)``."""
        self._ids = _checks.check_ids("Embedding", "ids", ids, self.num_embeddings)
        return self.params["E"][self._ids]

    def backward(self, d) -> None:
        """Adds ``d (..., T, E)`` into the rows of ``dE`` that the last forward's ids selected
        (repeated ids accumulate); ids have no gradient, so nothing is returned."""
        if self._ids is None:
            raise RuntimeError("Embedding: backward() called before forward()")
        _checks.check_shape("Embedding", "d", np.asarray(d), self._ids.shape + (self.embedding_dim,))
        np.add.at(self.grads["E"], self._ids, d)

    def __repr__(self):
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}, dtype={self.dtype})"
