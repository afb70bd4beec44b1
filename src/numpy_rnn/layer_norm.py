"""Layer-normalised LSTM and GRU cells (Ba, Kiros & Hinton 2016), next to their derivatives.

Layer normalisation over the ``F`` features of each row (one sequence at one step)::

    LN(a; g, beta) = g * a_hat + beta,   a_hat = (a - mean(a)) * s,   s = 1 / sqrt(var(a) + eps)

with ``mean`` and ``var`` (biased) over the row's features and ``eps = 1e-5`` (torch.nn.LayerNorm's;
the cells' ``eps`` attribute).
Its derivative, for ``d_hat = dy * g`` the gradient reaching ``a_hat``::

    da = s * (d_hat - mean(d_hat) - a_hat * mean(d_hat * a_hat))
    dg = sum over rows of dy * a_hat,   dbeta = sum over rows of dy

The input and recurrent pre-activations are normalised separately, each over all its ``G*H``
features (every gate together, as in the paper): ``LN(x W; g_x)`` and ``LN(h(t-1) R; g_h)``.
Their two shifts and the layer bias only ever enter as a sum, so the cells keep one shift
``beta (G*H,)`` in their place: a layer of these cells has no ``b`` (the cell's class sets
``input_bias = False``), and ``xw`` reaching the cell is ``x W`` alone. ``bias=False`` drops
every shift (``beta``, the GRU's ``beta_hn``, the LSTM's ``beta_c``): gains only. Gains start at
1 and shifts at 0 (:meth:`~numpy_rnn.cells.Cell.param_inits`).

Every parameter but ``R`` is reduced from ``d_rec`` after the backward loop (so that real-time
recurrent learning gets them row by row too): ``d_rec`` of one step concatenates ``d_nx``, the
gradient reaching ``LN(x W)``, ``d_nh`` that reaching ``LN(h(t-1) R)``, ``d_ah`` that reaching
``h(t-1) R`` itself, and for the LSTM ``d_cn``, that reaching ``LN(c(t))`` (the LSTM's ``d_nx``
and ``d_nh`` are the same ``dz``, kept once).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .cells import Cell, _outer_rows, sigmoid

EPS = 1e-5  # torch.nn.LayerNorm's default


def layer_norm(a: np.ndarray, eps: float = EPS) -> tuple[np.ndarray, np.ndarray]:
    """``(a_hat, s)`` over the last axis of ``a (..., F)``: ``a_hat = (a - mean) * s`` and
    ``s = 1 / sqrt(var + eps)`` ``(..., 1)`` (``eps`` torch.nn.LayerNorm's default)."""
    centred = a - a.mean(axis=-1, keepdims=True)
    inv_std = 1.0 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + eps)
    return centred * inv_std, inv_std


def layer_norm_backward(d_hat: np.ndarray, a_hat: np.ndarray, inv_std: np.ndarray) -> np.ndarray:
    """The gradient w.r.t. ``a`` from ``d_hat``, the one reaching ``a_hat`` (gain applied), with
    ``inv_std`` the ``s`` of :func:`layer_norm`: ``s * (d_hat - mean(d_hat) - a_hat * mean(d_hat * a_hat))``."""
    return inv_std * (d_hat - d_hat.mean(axis=-1, keepdims=True)
                      - a_hat * (d_hat * a_hat).mean(axis=-1, keepdims=True))


def _vec(p: dict, name: str) -> np.ndarray:
    """A vector parameter ``(*lead, F)`` shaped to broadcast against ``(*lead, B, F)``."""
    return p[name][..., None, :]


def _rows(caches, field: str) -> np.ndarray:
    """``field`` of every step's cache as rows ``(T*B, F)``."""
    stacked = np.stack([getattr(cache, field) for cache in caches])
    return stacked.reshape(-1, stacked.shape[-1])


class LayerNormCell(Cell):
    """What both layer-normalised cells share: the two normalised pre-activations, their
    backward, and the parameter gradients reduced from ``d_rec`` (see the module docstring).

    ``hidden_size`` is ``H``; ``bias=False`` drops the shifts ``beta`` (a layer without biases)."""

    input_bias = False  # the shift beta takes the layer bias's place
    torch_equivalent = None  # torch has no layer-normalised recurrent layer
    eps = EPS  # added to every variance

    def __init__(self, hidden_size: int, bias: bool = True):
        super().__init__(hidden_size)
        self.bias = bias

    def param_shapes(self):
        GH = self.num_gates * self.hidden_size
        shapes = {**super().param_shapes(), "g_x": (GH,), "g_h": (GH,)}
        if self.bias:
            shapes["beta"] = (GH,)
        return shapes

    def param_inits(self):
        return {name: "zeros" if name.startswith("beta") else "constant:1"
                for name in self.param_shapes() if name != "R"}

    def _normalised(self, p, xw, h_prev):
        """``LN(x W; g_x)`` and ``LN(h(t-1) R; g_h)`` without shifts, and ``(ax_hat, s_x, ah_hat, s_h)``."""
        ax_hat, inv_x = layer_norm(xw, self.eps)
        ah_hat, inv_h = layer_norm(h_prev @ p["R"], self.eps)  # (B, G*H)
        return _vec(p, "g_x") * ax_hat, _vec(p, "g_h") * ah_hat, (ax_hat, inv_x, ah_hat, inv_h)

    @staticmethod
    def _pre_activation_grads(p, d_nx, d_nh, cache):
        """``d_xw`` and ``d_ah`` through the two normalisations (gains applied)."""
        d_xw = layer_norm_backward(d_nx * p["g_x"], cache.ax_hat, cache.inv_x)
        d_ah = layer_norm_backward(d_nh * p["g_h"], cache.ah_hat, cache.inv_h)
        return d_xw, d_ah

    def _split(self, d_rec):
        """``d_rec (N, .)`` -> ``d_nx, d_nh, d_ah`` ``(N, G*H)`` each and the rest."""
        GH = self.num_gates * self.hidden_size
        return d_rec[:, :GH], d_rec[:, GH:2 * GH], d_rec[:, 2 * GH:3 * GH], d_rec[:, 3 * GH:]

    def _vector_terms(self, d_rec):
        """The gradient of every vector parameter as ``{name: (d, field)}``: per row ``d`` times
        the cache's ``field`` (``None``: ``d`` itself). ``dg_x = d_nx * ax_hat``,
        ``dg_h = d_nh * ah_hat``, ``dbeta = d_nx``."""
        d_nx, d_nh, _, _ = self._split(d_rec)
        terms = {"g_x": (d_nx, "ax_hat"), "g_h": (d_nh, "ah_hat")}
        if self.bias:
            terms["beta"] = (d_nx, None)
        return terms

    def recurrent_grads(self, p, g, h_prev, d_rec, caches):
        """As :meth:`~numpy_rnn.cells.Cell.recurrent_grads` (``p``, ``g``, ``h_prev``, ``d_rec``, ``caches``).
        ``dR = sum h(t-1)^T d_ah`` (one matmul) and the vector parameters' terms summed over
        every step and sequence (one ``einsum`` or sum each)."""
        d_rec = d_rec.reshape(-1, d_rec.shape[-1])
        g["R"] += h_prev.reshape(-1, h_prev.shape[-1]).T @ self._split(d_rec)[2]
        for name, (d, field) in self._vector_terms(d_rec).items():
            g[name] += d.sum(axis=0) if field is None else np.einsum("nf,nf->f", d, _rows(caches, field))

    def recurrent_row_grads(self, p, h_prev, d_rec, cache):
        """As :meth:`~numpy_rnn.cells.Cell.recurrent_row_grads` (``p``, ``h_prev``, ``d_rec``, ``cache``).
        Per row: ``dR = h(t-1)^T d_ah`` and the vector parameters' terms."""
        rows = {name: d if field is None else d * getattr(cache, field)
                for name, (d, field) in self._vector_terms(d_rec).items()}
        return {"R": _outer_rows(h_prev, self._split(d_rec)[2]), **rows}


class LayerNormLSTMCache(NamedTuple):
    """What :meth:`LayerNormLSTMCell.step_backward` needs of one step: the gates ``i``, ``f``,
    ``g`` (candidate), ``o`` and ``c_prev`` ``c(t-1)``, ``tanh_c`` ``tanh(LN(c(t)))`` and
    ``c_hat`` ``c(t)`` normalised, all ``(B, H)``; ``ax_hat`` ``x W`` and ``ah_hat``
    ``h(t-1) R`` normalised, ``(B, 4H)``; ``inv_x``, ``inv_h``, ``inv_c`` the ``1 / std`` of
    ``x W``, ``h(t-1) R`` and ``c(t)``, ``(B, 1)``."""

    i: np.ndarray
    f: np.ndarray
    g: np.ndarray
    o: np.ndarray
    c_prev: np.ndarray
    tanh_c: np.ndarray
    ax_hat: np.ndarray
    inv_x: np.ndarray
    ah_hat: np.ndarray
    inv_h: np.ndarray
    c_hat: np.ndarray
    inv_c: np.ndarray


class LayerNormLSTMCell(LayerNormCell):
    """Layer-normalised LSTM (Ba, Kiros & Hinton 2016) of ``hidden_size`` ``H``, gates
    ``i, f, g, o`` as torch orders them::

        z = LN(x W; g_x) + LN(h(t-1) R; g_h) + beta          (B, 4H), split into z_i, z_f, z_g, z_o
        i, f, o = sig(z_i), sig(z_f), sig(z_o);   g = tanh(z_g)
        c(t) = f * c(t-1) + i * g
        h(t) = o * tanh(LN(c(t); g_c, beta_c))

    Parameters ``R (H, 4H)``, ``g_x, g_h (4H,)``, ``g_c (H,)`` and with ``bias`` ``beta (4H,)``,
    ``beta_c (H,)``. Backward, with ``dc`` the gradient reaching ``c(t)`` from step ``t+1``::

        dz_o = dh * tanh_c * o(1-o);     d_cn = dh * o * (1 - tanh_c**2)
        dc  += LN_backward(d_cn * g_c)   (through LN(c(t)))
        dz_i = dc * g * i(1-i);  dz_f = dc * c(t-1) * f(1-f);  dz_g = dc * i * (1-g**2)
        dc(t-1) = dc * f;   d_xw = LN_backward(dz * g_x);   d_ah = LN_backward(dz * g_h)
        dh(t-1) = d_ah R^T

    ``d_rec = [dz, d_ah, d_cn]``: ``dz`` reaches both normalised terms; ``dg_c = d_cn c_hat``,
    ``dbeta_c = d_cn``.
    """

    num_gates = 4
    gate_names = ("i", "f", "g", "o")
    state_names = ("h", "c")

    def param_shapes(self):
        shapes = {**super().param_shapes(), "g_c": (self.hidden_size,)}
        if self.bias:
            shapes["beta_c"] = (self.hidden_size,)
        return shapes

    def step(self, p, xw, state):
        h_prev, c_prev = state
        H = self.hidden_size
        nx, nh, hats = self._normalised(p, xw, h_prev)
        z = nx + nh + _vec(p, "beta") if self.bias else nx + nh  # (B, 4H)
        i, f, o = (sigmoid(z[..., k * H:(k + 1) * H]) for k in (0, 1, 3))
        g = np.tanh(z[..., 2 * H:3 * H])
        c = f * c_prev + i * g  # (B, H)
        c_hat, inv_c = layer_norm(c, self.eps)
        c_norm = _vec(p, "g_c") * c_hat + _vec(p, "beta_c") if self.bias else _vec(p, "g_c") * c_hat
        tanh_c = np.tanh(c_norm)
        return (o * tanh_c, c), LayerNormLSTMCache(i, f, g, o, c_prev, tanh_c, *hats, c_hat, inv_c)

    def step_backward(self, p, grads, d_state, cache):
        """As :meth:`~numpy_rnn.cells.Cell.step_backward` (``p``, ``d_state``, ``cache``; ``grads`` is
        the contract's ``g``, renamed: ``g`` is the candidate gate here)."""
        dh, dc = d_state
        i, f, g, o, tanh_c = cache.i, cache.f, cache.g, cache.o, cache.tanh_c
        dz_o = dh * tanh_c * o * (1.0 - o)
        d_cn = dh * o * (1.0 - tanh_c * tanh_c)
        dc = dc + layer_norm_backward(d_cn * p["g_c"], cache.c_hat, cache.inv_c)
        dz_i = dc * g * i * (1.0 - i)
        dz_f = dc * cache.c_prev * f * (1.0 - f)
        dz_g = dc * i * (1.0 - g * g)
        dz = np.concatenate([dz_i, dz_f, dz_g, dz_o], axis=-1)  # (B, 4H)
        d_xw, d_ah = self._pre_activation_grads(p, dz, dz, cache)
        d_rec = np.concatenate([dz, d_ah, d_cn], axis=-1)  # (B, 9H)
        return d_xw, d_rec, (d_ah @ p["R"].T, dc * f)

    def _split(self, d_rec):
        """``d_rec = [dz, d_ah, d_cn]``: ``dz`` is both ``d_nx`` and ``d_nh``."""
        GH = 4 * self.hidden_size
        dz = d_rec[:, :GH]
        return dz, dz, d_rec[:, GH:2 * GH], d_rec[:, 2 * GH:]

    def _vector_terms(self, d_rec):
        """Those of :class:`LayerNormCell` and ``dg_c = d_cn * c_hat``, ``dbeta_c = d_cn``."""
        d_cn = self._split(d_rec)[3]
        terms = {**super()._vector_terms(d_rec), "g_c": (d_cn, "c_hat")}
        if self.bias:
            terms["beta_c"] = (d_cn, None)
        return terms

    def activations(self, cache):
        return {"i": ("sigmoid", cache.i), "f": ("sigmoid", cache.f), "g": ("tanh", cache.g),
                "o": ("sigmoid", cache.o), "tanh_c": ("tanh", cache.tanh_c)}


class LayerNormGRUCache(NamedTuple):
    """What :meth:`LayerNormGRUCell.step_backward` needs of one step: ``h_prev`` ``h(t-1)``,
    the gates ``r`` (reset), ``z`` (update) and ``n`` (candidate) and ``rec_n``
    ``LN(h(t-1) R)_n + beta_hn``, which ``r`` scales, all ``(B, H)``; ``ax_hat`` ``x W`` and
    ``ah_hat`` ``h(t-1) R`` normalised, ``(B, 3H)``, with ``inv_x``, ``inv_h`` their
    ``1 / std``, ``(B, 1)``."""

    h_prev: np.ndarray
    r: np.ndarray
    z: np.ndarray
    n: np.ndarray
    rec_n: np.ndarray
    ax_hat: np.ndarray
    inv_x: np.ndarray
    ah_hat: np.ndarray
    inv_h: np.ndarray


class LayerNormGRUCell(LayerNormCell):
    """Layer-normalised GRU of ``hidden_size`` ``H``, torch's gate order ``r, z, n`` with the
    reset gate applied after the recurrent matmul (torch.nn.GRU's form), to the normalised
    recurrent term::

        nx = LN(x W; g_x),   nh = LN(h(t-1) R; g_h)                  (B, 3H) each
        r = sig(nx_r + nh_r + beta_r),   z = sig(nx_z + nh_z + beta_z)
        n = tanh(nx_n + beta_n + r * (nh_n + beta_hn))
        h(t) = (1 - z) * n + z * h(t-1)

    ``beta_hn (H,)`` plays ``b_hn``'s part (inside the reset). Parameters ``R (H, 3H)``,
    ``g_x, g_h (3H,)`` and with ``bias`` ``beta (3H,)``, ``beta_hn (H,)``. The form with the
    reset before the matmul (``reset_after=False``) would need ``(r * h(t-1)) R_n`` normalised on
    its own and is not offered. Backward::

        dn_pre = dh (1-z)(1-n**2);  dz_pre = dh (h(t-1) - n) z(1-z);  dr_pre = dn_pre rec_n r(1-r)
        d_nx = [dr_pre, dz_pre, dn_pre];   d_nh = [dr_pre, dz_pre, dn_pre * r]
        d_xw = LN_backward(d_nx * g_x);    d_ah = LN_backward(d_nh * g_h)
        dh(t-1) = dh z + d_ah R^T;         dbeta_hn = dn_pre * r
    """

    num_gates = 3
    gate_names = ("r", "z", "n")

    def param_shapes(self):
        shapes = super().param_shapes()
        if self.bias:
            shapes["beta_hn"] = (self.hidden_size,)
        return shapes

    def step(self, p, xw, state):
        (h_prev,) = state
        H = self.hidden_size
        nx, nh, hats = self._normalised(p, xw, h_prev)
        if self.bias:
            nx = nx + _vec(p, "beta")
        rz = sigmoid(nx[..., :2 * H] + nh[..., :2 * H])
        r, z = rz[..., :H], rz[..., H:]
        rec_n = nh[..., 2 * H:] + _vec(p, "beta_hn") if self.bias else nh[..., 2 * H:]
        n = np.tanh(nx[..., 2 * H:] + r * rec_n)
        h = n + z * (h_prev - n)  # (1 - z) n + z h(t-1)
        return (h,), LayerNormGRUCache(h_prev, r, z, n, rec_n, *hats)

    def step_backward(self, p, grads, d_state, cache):
        """As :meth:`~numpy_rnn.cells.Cell.step_backward` (``p``, ``d_state``, ``cache``; ``grads`` is
        the contract's ``g``, renamed: ``g`` is the candidate gate here)."""
        (dh,) = d_state
        h_prev, r, z, n = cache.h_prev, cache.r, cache.z, cache.n
        dn_pre = dh * (1.0 - z) * (1.0 - n * n)
        dz_pre = dh * (h_prev - n) * z * (1.0 - z)
        dr_pre = dn_pre * cache.rec_n * r * (1.0 - r)
        d_nx = np.concatenate([dr_pre, dz_pre, dn_pre], axis=-1)  # (B, 3H)
        d_nh = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=-1)
        d_xw, d_ah = self._pre_activation_grads(p, d_nx, d_nh, cache)
        d_rec = np.concatenate([d_nx, d_nh, d_ah], axis=-1)  # (B, 9H)
        return d_xw, d_rec, (dh * z + d_ah @ p["R"].T,)

    def _vector_terms(self, d_rec):
        """Those of :class:`LayerNormCell` and ``dbeta_hn = dn_pre * r``, the ``n`` block of ``d_nh``."""
        terms = super()._vector_terms(d_rec)
        if self.bias:
            terms["beta_hn"] = (self._split(d_rec)[1][:, 2 * self.hidden_size:], None)
        return terms

    def activations(self, cache):
        return {"r": ("sigmoid", cache.r), "z": ("sigmoid", cache.z), "n": ("tanh", cache.n)}
