"""Regularisers of the recurrent layers: input dropout, recurrent (variational) dropout, zoneout.

The contract, stated once. While a layer is ``training`` its ``forward`` draws every mask it
needs from the layer's generator, in a fixed order (the dropout between stacked layers first,
as before; then input, recurrent and zoneout masks, each only where its rate is above zero),
and keeps them in a :class:`Masks`; ``Recurrent.masks`` exposes them and
``Recurrent.apply(..., masks)`` reuses them, so a gradient check is exact for the drawn masks.
``masks=None`` means evaluation: no dropout, zoneout's expectation.

* Dropout masks are inverted (entries ``0`` or ``1/keep``, ``keep = 1 - rate``) and shared
  over time: one mask per sequence and run (Gal & Ghahramani 2016).
* Input dropout multiplies a run's input ``x(t)`` (the layer's input, or the layer below's
  output) before ``x W``: ``xw(t) = (x(t) * m_x) W + b``.
* Recurrent dropout gives the cell ``h(t-1) * m_h`` wherever it reads ``h(t-1)``
  (:class:`RecurrentDropoutCell`), except the GRU's carry ``z * h(t-1)``, which keeps the
  undropped ``h(t-1)`` as Keras does.
* Zoneout (Krueger et al. 2017) draws a fresh 0/1 mask ``d(t)`` per step, unit and state
  part (1 with probability ``p``: the unit keeps its previous value):
  ``s(t) = d(t) * s(t-1) + (1 - d(t)) * s_cell(t)``; at evaluation ``d(t) = p``
  (:class:`ZoneoutCell`).

Both wrappers are cells (:class:`~numpy_rnn.cells.Cell`) built around the layer's cell for one
run of one forward pass; they have no fast path, so a layer using them runs the step path.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .cells import Cell, GRUCell


class Masks(NamedTuple):
    """The masks of one training forward pass (``None`` where an option is off): ``between``
    the layer's dropout, one ``(T, B, F)`` per boundary between stacked layers; ``inputs``
    input dropout, one ``(B, D_k)`` per run (:meth:`Recurrent.runs
    <numpy_rnn.layers.Recurrent.runs>` order); ``recurrent`` recurrent dropout on ``h(t-1)``,
    one ``(B, H)`` per run; ``zoneout`` per run, per state part a ``(T, B, H)`` 0/1 array
    (1 keeps ``s(t-1)``) or ``None``."""

    between: list | None
    inputs: list | None
    recurrent: list | None
    zoneout: list | None


def dropout_mask(rng: np.random.Generator, shape: tuple, rate: float, dtype) -> np.ndarray:
    """An inverted dropout mask of ``shape`` and ``dtype`` drawn from ``rng``: 0 with
    probability ``rate``, else ``1/keep`` (``keep = 1 - rate``)."""
    keep = 1.0 - rate
    return ((rng.random(shape) < keep) / keep).astype(dtype)


def zoneout_masks(rng: np.random.Generator, steps: int, widths: tuple, batch: int, rates: tuple, dtype) -> tuple:
    """One ``(T, B, width)`` 0/1 mask of ``dtype`` per state part (1 with probability ``rate``),
    ``None`` for a part whose rate is 0, drawn from ``rng``: ``steps`` is ``T``, ``batch``
    ``B``, ``widths`` and ``rates`` the parts' widths and zoneout rates."""
    return tuple((rng.random((steps, batch, width)) < rate).astype(dtype) if rate else None
                 for width, rate in zip(widths, rates))


def check_recurrent_dropout(owner: str, cell: Cell) -> None:
    """Refuse recurrent dropout on ``cell``, naming ``owner`` (the layer) in the error, when it
    is a GRU-like cell (gates ``r, z, n``) other than
    :class:`~numpy_rnn.cells.GRUCell`: its carry ``z * h(t-1)`` would be dropped too, and the
    kept units, scaled by ``1/keep``, would grow without bound."""
    if cell.gate_names == ("r", "z", "n") and not isinstance(cell, GRUCell):
        raise ValueError(f"{owner}: recurrent_dropout on {type(cell).__name__} is not supported (its carry "
                         f"z * h(t-1) would be dropped with the recurrent input); use recurrent_dropout=0 or zoneout")


class _Wrapper(Cell):
    """A cell around another: same state, gates and parameters; the layer never sees it."""

    def __init__(self, inner: Cell):
        super().__init__(inner.hidden_size)
        self.inner = inner
        self.state_names, self.num_gates, self.smooth = inner.state_names, inner.num_gates, inner.smooth

    @property
    def state_widths(self) -> tuple[int, ...]:
        return self.inner.state_widths

    def param_shapes(self):
        return self.inner.param_shapes()

    def inner_caches(self, caches) -> list:
        """The inner cell's caches of the steps whose caches (this cell's) are ``caches``."""
        return [cache.inner for cache in caches]


def cell_caches(cell: Cell, caches) -> list:
    """The caches of the cell under any wrappers (the layer's own cell), given ``cell``'s
    ``caches`` (one per step)."""
    while isinstance(cell, _Wrapper):
        caches, cell = cell.inner_caches(caches), cell.inner
    return caches


class RecurrentDropoutCell(_Wrapper):
    """``inner`` reading ``h(t-1) * m`` (``m``, the argument ``mask (B, H)``: one inverted mask
    per sequence).

    Forward ``new = inner.step(h(t-1) m, ...)``; backward ``dh(t-1) = m * dh_read``, and
    ``dR`` is formed from the dropped ``h(t-1) m`` the matmul read. For a
    :class:`~numpy_rnn.cells.GRUCell` the carry keeps the undropped state,
    ``h(t) = (1-z) n + z h(t-1)``: the step adds ``z (h(t-1) - h(t-1) m)`` to the inner
    cell's ``h``, and the backward adds its derivative, ``dz_pre += dh (h(t-1) - h(t-1) m)
    z (1-z)`` (reaching ``R_z``, hence ``dh_read += dz_extra R_z^T``) and
    ``dh(t-1) += dh z`` beside ``dh_read -= dh z``.
    """

    def __init__(self, inner: Cell, mask: np.ndarray):
        super().__init__(inner)
        self.mask = mask
        self.keeps_carry = isinstance(inner, GRUCell)

    def step(self, p, xw, state):
        h_read = state[0] * self.mask
        new, cache = self.inner.step(p, xw, (h_read,) + tuple(state[1:]))
        if not self.keeps_carry:
            return new, cache
        gap = state[0] - h_read  # h(t-1) (1 - m): what the carry has that the read lost
        return (new[0] + cache.z * gap,) + tuple(new[1:]), _CarryCache(cache, gap)

    def step_backward(self, p, g, d_state, cache):
        inner_cache = cache.inner if self.keeps_carry else cache
        d_xw, d_rec, d_prev = self.inner.step_backward(p, g, d_state, inner_cache)
        dh_read = d_prev[0]
        if self.keeps_carry:
            dh, z, H = d_state[0], inner_cache.z, self.hidden_size
            dz_extra = dh * cache.gap * z * (1.0 - z)
            d_xw[:, H:2 * H] += dz_extra
            if d_rec is not d_xw:
                d_rec[:, H:2 * H] += dz_extra
            dh_read = dh_read + dz_extra @ p["R"][:, H:2 * H].T - dh * z
            return d_xw, d_rec, (self.mask * dh_read + dh * z,) + tuple(d_prev[1:])
        return d_xw, d_rec, (self.mask * dh_read,) + tuple(d_prev[1:])

    def inner_caches(self, caches) -> list:
        return super().inner_caches(caches) if self.keeps_carry else caches

    def recurrent_grads(self, p, g, h_prev, d_rec, caches):
        self.inner.recurrent_grads(p, g, h_prev * self.mask, d_rec, self.inner_caches(caches))


class _CarryCache(NamedTuple):
    inner: object      # the inner GRU step's cache
    gap: np.ndarray    # (B, H) h(t-1) (1 - m)


class ZoneoutCell(_Wrapper):
    """``inner`` with zoneout on every state part that has a mask or a rate.

    ``masks``: one ``(T, B, H)`` 0/1 array per state part (training; ``None`` for a part
    without zoneout), or ``rates``: one rate per part (evaluation: the expectation ``d = p``).
    Forward ``s(t) = d(t) s(t-1) + (1 - d(t)) s_cell(t)``; backward
    ``ds_cell = ds (1 - d(t))`` into the inner step, ``ds(t-1) = inner's + ds d(t)``.
    The layer calls :meth:`step` once per step in time order (``T`` calls for one run): the
    ``k``-th call uses the masks at step ``k``.
    """

    def __init__(self, inner: Cell, masks: tuple | None = None, rates: tuple | None = None):
        super().__init__(inner)
        self.masks, self.rates, self._steps = masks, rates, 0

    def _keep(self, part: int):
        """``d(t)`` of one part at the current step: a (B, H) mask, a rate, or None (no zoneout)."""
        if self.masks is None:
            return self.rates[part] or None
        mask = self.masks[part]
        return None if mask is None else mask[self._steps]

    def step(self, p, xw, state):
        new, cache = self.inner.step(p, xw, state)
        keeps = tuple(self._keep(part) for part in range(len(state)))
        self._steps += 1
        zoned = tuple(s if d is None else d * old + (1.0 - d) * s for s, old, d in zip(new, state, keeps))
        return zoned, _ZoneoutCache(cache, keeps)

    def step_backward(self, p, g, d_state, cache):
        d_cell = tuple(d if k is None else d * (1.0 - k) for d, k in zip(d_state, cache.keeps))
        d_xw, d_rec, d_prev = self.inner.step_backward(p, g, d_cell, cache.inner)
        d_prev = tuple(dp if k is None else dp + d * k for dp, d, k in zip(d_prev, d_state, cache.keeps))
        return d_xw, d_rec, d_prev

    def recurrent_grads(self, p, g, h_prev, d_rec, caches):
        self.inner.recurrent_grads(p, g, h_prev, d_rec, self.inner_caches(caches))


class _ZoneoutCache(NamedTuple):
    inner: object   # the inner step's cache
    keeps: tuple    # d(t) per state part: (B, H) mask, a rate, or None
