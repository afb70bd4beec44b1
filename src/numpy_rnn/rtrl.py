"""Real-time recurrent learning (RTRL): exact gradients computed forward in time.

BPTT stores every step and runs backwards once the sequence is over. RTRL (Williams & Zipser
1989) instead carries, for every sequence ``b``, the sensitivity of the whole state to every
parameter, ``M(t) = d s(t) / d theta`` of shape ``(S*H, P)``, and updates it at each step::

    M(t) = J_s(t) M(t-1) + I(t),        M(0) = 0
    J_s(t) = d s(t) / d s(t-1)          (S*H, S*H) the step's state Jacobian
    I(t)   = d s(t) / d theta           (S*H, P) with s(t-1) held fixed

where ``s = concat(state parts)`` (``h``; LSTM ``h`` and ``c``: the sensitivity of ``c`` is
needed to carry that of ``h``), ``S*H`` standing for the sum of the parts' widths
(``cell.state_widths``; an LSTM with projections ``P + H``). Through ``xw = x W + b``,
``I_W[:, d, j] = x_d dS/dxw_j`` and ``I_b = dS/dxw``; the cell's own parameters (``R``,
peepholes, ``b_hn``, ``W_hr``, ...) enter through ``d_rec`` and the cell's ``recurrent_grads``.
A loss ``L_t`` on ``h(t)`` then gives its parameter gradient at once:
``dL_t/dtheta = sum_b dL_t/dh(t)[b] M_h(t)[b]`` (the ``h`` rows of ``M``). Summed over ``t``
this is exactly BPTT's gradient; memory is ``O(B S H P)`` whatever the length, time
``O(B (S H)^2 P)`` per step against BPTT's ``O(B P)``.

Every Jacobian comes from the cell's own ``step_backward`` applied to basis cotangents
(:func:`~numpy_rnn.cells.step_vjps`), so any :class:`~numpy_rnn.cells.Cell` works without a
second implementation; the per-row parameter terms come from the cell's optional
``recurrent_row_grads`` (the built-in cells) or else from ``recurrent_grads`` called once
per row (exact, slower).

Contract of :class:`RTRL`: ``reset`` before ``step`` or ``accumulate``; ``step(x_t)`` reads
the layer's live parameters, so an optimizer may update them between steps (online RTRL: the
sensitivities then mix parameters of different steps, as in Williams & Zipser); ``accumulate``
adds into ``layer.grads`` (``layer.zero_grad()`` clears them). Inputs are never modified.
"""
from __future__ import annotations

import numpy as np

from . import _checks
from .cells import Cell, step_vjps, written_with
from .layers import Recurrent

OWNER = "RTRL"


def _row_grads_one_by_one(cell: Cell, p: dict, xw: np.ndarray, state: tuple, eye: np.ndarray) -> dict:
    """The cell's parameter terms of one step for every basis cotangent ``k`` and sequence ``b``,
    ``{name: (K, B, *shape)}``, from ``step_backward`` and ``recurrent_grads`` on one row at a
    time: the generic path for any cell (``K*B`` backward calls)."""
    K, (B, _) = eye.shape[0], xw.shape
    splits = np.cumsum(cell.state_widths)[:-1]  # where each state part starts in a cotangent
    names = tuple(cell.param_shapes())
    rows = {name: np.zeros((K, B) + p[name].shape, dtype=xw.dtype) for name in names}
    for b in range(B):
        state_b = tuple(part[b:b + 1] for part in state)  # (1, width) each
        _, cache = cell.step(p, xw[b:b + 1], state_b)
        for k in range(K):
            g = {name: np.zeros_like(value) for name, value in p.items()}
            d_new = tuple(part.copy() for part in np.split(eye[k:k + 1], splits, axis=-1))
            _, d_rec, _ = cell.step_backward(p, g, d_new, cache)
            cell.recurrent_grads(p, g, state_b[0][None], None if d_rec is None else d_rec[None], [cache])
            for name in names:
                rows[name][k, b] = g[name]
    return rows


class RTRL:
    """Real-time recurrent learning for a one-layer, one-direction :class:`~numpy_rnn.layers.Recurrent`.

    ``RTRL(layer)``, then per stream ``reset(batch_size, state=None)`` and per step
    ``h = step(x_t)`` (``x_t (B, D) -> h_t (B, H)``, ``H`` the width of ``h``: ``layer.h_size``)
    and ``accumulate(d_h_t)`` (``d_h_t (B, H)``, the loss gradient w.r.t. ``h_t``; adds ``d_h_t . dh_t/dtheta`` into
    ``layer.grads``). After ``T`` steps with ``accumulate(d_out[:, t])`` at each, ``layer.grads``
    holds what ``layer.forward(x, state)`` then ``layer.backward(d_out)`` gives.

    ``state``: the current state shaped as ``layer.forward`` returns it (``(1, B, H)``, LSTM a
    pair), a copy, to carry or inspect; ``sensitivities``: ``M(t)``, to store and restore;
    ``batch_size`` and ``steps`` (steps since ``reset``).
    """

    def __init__(self, layer: Recurrent):
        if not isinstance(layer, Recurrent):
            raise TypeError(f"{OWNER}: expected a numpy_rnn.layers.Recurrent layer (SimpleRNN, LSTM, GRU or "
                            f"Recurrent(cell=...)), got {type(layer).__name__}")
        if layer.num_layers != 1 or layer.bidirectional:
            raise ValueError(f"{OWNER}: expected a layer with num_layers=1 and bidirectional=False, got "
                             f"num_layers={layer.num_layers}, bidirectional={layer.bidirectional}; RTRL runs "
                             f"forward in time through one layer")
        extras = [f"{name}={getattr(layer, name)}" for name in ("go_backwards", "input_dropout", "recurrent_dropout")
                  if getattr(layer, name)] + ([f"zoneout={layer.zoneout}"] if any(layer.zoneout) else [])
        if extras:
            raise ValueError(f"{OWNER}: expected a layer without go_backwards, input or recurrent dropout and zoneout "
                             f"(RTRL runs the cell's own steps forward in time), got {', '.join(extras)}")
        self.layer, self.cell = layer, layer.cell
        self._shapes = {name: value.shape for name, value in layer.params.items()}  # W, cell's, b
        self._cell_names = tuple(self.cell.param_shapes())
        self._closed_form = written_with(self.cell, "recurrent_row_grads", "recurrent_grads")
        self._state = None

    # ---------------------------------------------------------------- public API
    def reset(self, batch_size: int, state=None) -> None:
        """Start ``batch_size`` streams: sensitivities zero, state ``state`` (shaped as
        ``layer.forward`` takes it: ``(1, B, H)``, LSTM a pair; copied) or zeros."""
        B = _checks.check_size(OWNER, "batch_size", batch_size)
        SH, dtype = sum(self.cell.state_widths), self.layer.dtype
        self._state = self._checked_state(state, B)
        P = sum(int(np.prod(shape)) for shape in self._shapes.values())
        self._buffers = [np.zeros((B, SH, P), dtype=dtype) for _ in range(2)]  # M(t-1), M(t)
        self._views = [self._named_views(buffer) for buffer in self._buffers]
        self._eye = np.broadcast_to(np.eye(SH, dtype=dtype)[:, None, :], (SH, B, SH))
        self.batch_size, self.steps = B, 0

    def step(self, x_t: np.ndarray) -> np.ndarray:
        """One step on ``x_t (B, D)``: returns ``h_t (B, H)`` and updates the state and
        ``M(t) = J_s(t) M(t-1) + I(t)``."""
        self._require_reset("step")
        x = self._checked(x_t, "x_t", (self.batch_size, self.layer.input_size))
        p = self.layer.params
        xw = x @ p["W"] + p["b"] if "b" in p else x @ p["W"]  # (B, G*H)
        vjp = step_vjps(self.cell, p, xw, self._state, self._eye)  # Jacobians of the step, K = S*H rows each
        M_prev, M = self._buffers
        np.matmul(vjp.d_state.transpose(1, 0, 2), M_prev, out=M)  # J_s(t) M(t-1): (B, K, K) @ (B, K, P)
        self._add_immediate(self._views[1], x, xw, vjp)
        self._buffers.reverse()
        self._views.reverse()
        self._state, _ = self.cell.step(p, xw, self._state)
        self.steps += 1
        return self._state[0].copy()

    def accumulate(self, d_h_t: np.ndarray) -> None:
        """``layer.grads += sum_b d_h_t[b] . dh_t[b]/dtheta`` for ``d_h_t (B, H)``, the loss
        gradient w.r.t. the ``h`` of the last step (the initial state's, before any step)."""
        self._require_reset("accumulate")
        H = self.layer.h_size
        d_h = self._checked(d_h_t, "d_h_t", (self.batch_size, H))
        grad = np.tensordot(d_h, self._buffers[0][:, :H], axes=([0, 1], [0, 1]))  # (P,)
        offset = 0
        for name, shape in self._shapes.items():
            size = int(np.prod(shape))
            self.layer.grads[name] += grad[offset:offset + size].reshape(shape)
            offset += size

    @property
    def state(self):
        """The current state as ``layer.forward`` returns it: ``(1, B, H)``, or a tuple of them (a copy)."""
        self._require_reset("state")
        parts = tuple(part[None].copy() for part in self._state)
        return parts if len(parts) > 1 else parts[0]

    @property
    def sensitivities(self) -> np.ndarray:
        """``M(t) = d s(t) / d theta`` ``(B, S*H, P)``: row ``k`` the state component ``k`` (the
        parts of the state concatenated, ``h`` first), columns the parameters of ``layer.params``
        in its order, each flattened. The live array, valid until the next ``step``; assigning
        (after ``reset``, e.g. from a checkpoint) copies values of exactly that shape and dtype in."""
        self._require_reset("sensitivities")
        return self._buffers[0]

    @sensitivities.setter
    def sensitivities(self, values) -> None:
        self._require_reset("sensitivities")
        self._buffers[0][...] = self._checked(values, "sensitivities", self._buffers[0].shape)

    # ---------------------------------------------------------------- the maths of one step
    def _add_immediate(self, views, x, xw, vjp) -> None:
        """``M(t) += I(t)``: ``I_W[b, k, d, j] = x[b, d] dS_k/dxw_j``, ``I_b = dS/dxw`` and the
        cell's parameter terms, for every state component ``k`` (``views``: ``(B, K, *shape)``)."""
        d_xw = vjp.d_xw.transpose(1, 0, 2)  # (B, K, G*H)
        views["W"] += x[:, None, :, None] * d_xw[:, :, None, :]
        if "b" in views:
            views["b"] += d_xw
        for name, rows in self._cell_row_grads(xw, vjp).items():
            views[name] += rows.swapaxes(0, 1)

    def _cell_row_grads(self, xw, vjp) -> dict:
        """``{name: (K, B, *shape)}``: d s_k(t) / d (cell parameter) of sequence b, s(t-1) fixed."""
        K, B = vjp.d_xw.shape[:2]
        if self._closed_form and vjp.d_rec is not None:
            rows = self.cell.recurrent_row_grads(self.layer.params, vjp.state[0], vjp.d_rec, vjp.cache)
            return {name: rows[name].reshape((K, B) + self._shapes[name]) for name in self._cell_names}
        return _row_grads_one_by_one(self.cell, self.layer.params, xw, self._state, self._eye[:, 0])

    # ---------------------------------------------------------------- bookkeeping
    def _named_views(self, buffer) -> dict:
        """Views ``(B, K, *shape)`` of ``buffer (B, K, P)``, one per parameter, in ``params`` order."""
        views, offset = {}, 0
        for name, shape in self._shapes.items():
            size = int(np.prod(shape))
            views[name] = buffer[:, :, offset:offset + size].reshape(buffer.shape[:2] + shape)
            assert np.shares_memory(views[name], buffer)
            offset += size
        return views

    def _require_reset(self, what: str) -> None:
        if self._state is None:
            raise RuntimeError(f"{OWNER}: {what} before reset(); call reset(batch_size) first")

    def _checked(self, value, name: str, shape: tuple) -> np.ndarray:
        array = _checks.check_array(OWNER, name, value, self.layer.dtype)
        _checks.check_shape(OWNER, name, array, shape)
        return array

    def _checked_state(self, state, batch: int) -> tuple:
        """The state as a tuple of ``S`` fresh ``(B, width)`` arrays (zeros for ``None``)."""
        names, shapes = self.cell.state_names, [(1, batch, width) for width in self.cell.state_widths]
        if state is None:
            return tuple(np.zeros(shape[1:], dtype=self.layer.dtype) for shape in shapes)
        if len(names) == 1:
            return (self._checked(state, "state", shapes[0])[0].copy(),)
        if not isinstance(state, (tuple, list)) or len(state) != len(names):
            raise TypeError(f"{OWNER}: expected state to be a tuple ({', '.join(names)}) of arrays of shapes "
                            f"{', '.join(map(_checks.shape_str, shapes))}, got {type(state).__name__}")
        return tuple(self._checked(part, f"state[{i}] ({names[i]})", shapes[i])[0].copy()
                     for i, part in enumerate(state))
