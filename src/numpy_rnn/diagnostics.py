"""Gradient-flow diagnostics: how much of the loss reaches each step, how fast the state
forgets, and how saturated the units are, for one model on one batch.

:func:`diagnose` runs the model's own forward and backward pass once (dropout off) and reads:

* **what reaches each step**: ``||dL/dh(t)||``, the total gradient reaching the state at ``t``
  during BPTT (for the LSTM also ``||dL/dc(t)||``), recorded by the layer's backward pass
  (:attr:`~numpy_rnn.layers.Recurrent.record_state_grads`), per sequence and its batch mean;
* **how the state forgets**: the spectral norm of the Jacobian product
  ``dh(T)/dh(t) = J(T) J(T-1) ... J(t+1)`` against the lag ``T - t``, with ``J(t)`` the step's
  state Jacobian from the cell's own backward step (:func:`~numpy_rnn.cells.step_vjps`). Up to
  ``S*H <= EXACT_MAX`` state components the whole product is carried back and its norm taken by
  SVD (exact); above, by power iteration on ``P^T P`` at a log-spaced set of lags, with ``P v``
  from central differences of the step (relative error about 1e-8) and ``P^T u`` exact. For a
  state of several parts (LSTM ``h, c``) the ``h`` block is ``jacobian_norm`` and the whole
  state's product ``state_jacobian_norm`` (``S*H`` the sum of the parts' widths,
  ``cell.state_widths``); and the singular values and spectral radius of every ``(H, H)`` gate
  block of ``R`` (for an LSTM with projections, of ``W_hr R``: ``h(t-1) R = m(t-1) W_hr R``);
* **saturation**: per step, the fraction of units at the flat ends of their squashing function
  (``|tanh| > 0.99``, ``sigmoid`` outside ``[0.01, 0.99]``: derivative below 2% of its peak;
  relu exactly 0) and each activation's mean (is the forget gate open?), from the cell's
  :meth:`~numpy_rnn.cells.Cell.activations`.

Contract: every per-step array is in the input's time order, index 0 the first step; a step
past a sequence's length is NaN in per-sequence arrays and left out of batch means. For a
reverse run, "the end" is input step 0 (where that run stops reading).
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _checks
from .cells import step_vjps
from .layers import Recurrent, RunTrace
from .losses import get_loss
from .models import RNN, SequenceModel

#: state sizes ``S*H`` up to this get the exact Jacobian norm; above it, power iteration
EXACT_MAX = 256
#: how close to its bounds a squashed value counts as saturated
SATURATED = 0.99
#: at most this many power iterations per lag, until the estimate changes by less than the
#: tolerance (relative), at this many log-spaced lags, when the Jacobian norm is estimated
POWER_ITERATIONS, POWER_TOLERANCE, POWER_LAGS = 200, 1e-7, 24
DIAGNOSTICS_FILE, FLOW_PLOT, SATURATION_PLOT = "diagnostics.json", "gradient_flow.png", "saturation.png"


@dataclass
class RunDiagnostics:
    """One direction of one layer. Arrays are per step (T,) or per sequence and step (B, T).

    ``name`` the run's (``"l0"``, ``"l0_reverse"``, ...); ``direction`` 0 forward, 1 reverse
    (whose end is input step 0); ``cell`` the cell's class name; ``state_grad_norms`` state
    part -> ``(B, T)`` ``||dL/d part(t)||``; ``jacobian_norm (B', T)`` ``||dh(end)/dh(t)||_2``
    for the first ``B'`` sequences and ``state_jacobian_norm (B', T)`` the same for the whole
    state (``None`` for a one-part state), computed by ``jacobian_method``, ``"exact"`` or
    ``"power"``; ``recurrent`` block name -> ``{"singular_values": (H,), "spectral_radius":
    float}``; ``activations`` name -> ``{"kind", "saturated" (T,), "mean" (T,)}``."""

    name: str
    direction: int
    cell: str
    state_grad_norms: dict
    jacobian_norm: np.ndarray
    state_jacobian_norm: np.ndarray | None
    jacobian_method: str
    recurrent: dict
    activations: dict = field(default_factory=dict)

    @property
    def dl_dh_norm(self) -> np.ndarray:
        """``||dL/dh(t)||`` averaged over the batch's sequences still running at ``t``: (T,)."""
        return _batch_mean(self.state_grad_norms["h"])


@dataclass
class Diagnostics:
    """What :func:`diagnose` measured: the batch's ``loss``, its ``seq_len`` ``T`` and
    ``batch_size`` ``B``, and one :class:`RunDiagnostics` per layer and direction in ``runs``;
    :meth:`to_dict` is the ``diagnostics.json`` layout."""

    loss: float
    seq_len: int
    batch_size: int
    runs: list[RunDiagnostics]

    def to_dict(self) -> dict:
        """``seq_len``, ``batch_size``, ``loss`` and one entry per layer and direction in ``layers``
        (JSON-ready; non-finite numbers as None)."""
        return {"seq_len": self.seq_len, "batch_size": self.batch_size, "loss": _finite_or_none(self.loss),
                "layers": [_run_dict(run) for run in self.runs]}

    def save(self, path) -> str:
        """Write :meth:`to_dict` as JSON (NaN and inf as null) to the file ``path``; returns the path."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return str(path)


# ----------------------------------------------------------------------------- entry point
def diagnose(model, x, y, *, loss: str | None = None, state=None, lengths=None, jacobian_sequences: int = 4,
             exact_max: int = EXACT_MAX) -> Diagnostics:
    """Diagnostics of ``model`` (a recurrent layer, a :class:`~numpy_rnn.models.SequenceModel` or
    the notebook's :class:`~numpy_rnn.models.RNN`) on the batch ``x``, ``y``.

    ``loss`` names a loss of :mod:`numpy_rnn.losses` (default: ``cross_entropy`` for integer
    targets, else ``mse``); for a bare layer ``y`` is the target of its output ``(B, T, dirs*H)``.
    ``state`` and ``lengths`` go to the forward pass as in training. The Jacobian norms are computed
    for the first ``jacobian_sequences`` sequences, exactly up to ``exact_max`` state components
    (:data:`EXACT_MAX`), by power iteration above. The work is done on a copy: the model's
    parameters, gradients, mode, random generator and the cache of its last forward pass are as
    before the call.
    """
    owner = "diagnose"
    _recurrent_layer(model)
    jacobian_sequences = _checks.check_size(owner, "jacobian_sequences", jacobian_sequences)
    exact_max = _checks.check_size(owner, "exact_max", exact_max)
    work = copy.deepcopy(model)  # the caller's model, its caches and its generator stay as they are
    work.eval()
    layer = _recurrent_layer(work)
    layer.record_state_grads = True
    value = _forward_backward(work, x, y, loss, state, lengths)
    runs = [_run_diagnostics(layer, trace, layer.state_grads[trace.name], jacobian_sequences, exact_max)
            for trace in layer.traces()]
    return Diagnostics(value, runs[0].jacobian_norm.shape[1], runs[0].state_grad_norms["h"].shape[0], runs)


def _recurrent_layer(model) -> Recurrent:
    if isinstance(model, Recurrent):
        return model
    if isinstance(model, (SequenceModel, RNN)):
        return model.rnn
    raise TypeError(f"diagnose: expected a recurrent layer, a SequenceModel or the notebook RNN, "
                    f"got {type(model).__name__}")


def _forward_backward(model, x, y, loss, state, lengths) -> float:
    """One forward and backward pass of ``model``; returns the loss."""
    if isinstance(model, RNN):
        if state is not None or lengths is not None:
            raise ValueError("diagnose: the notebook RNN starts from a zero state and takes no lengths; "
                             "got state or lengths")
        x = _checks.check_array("diagnose", "x", x, model.dtype)
        if x.ndim != 3:
            raise ValueError(f"diagnose: expected x of shape (B, T, {model.input_size}) for the notebook RNN, "
                             f"got {_checks.shape_str(x.shape)}")
        y_hat = model.forward(x)
    else:
        y_hat, _ = model.forward(x, state, lengths)
    if loss is None:
        loss = "cross_entropy" if np.issubdtype(np.asarray(y).dtype, np.integer) else "mse"
    options = {"lengths": lengths} if lengths is not None and y_hat.ndim == 3 else {}
    value, dy = get_loss(loss)(y_hat, y, **options)
    model.backward(dy)
    return float(value)


# ----------------------------------------------------------------------------- one run
def _run_diagnostics(layer, trace: RunTrace, state_grads, sequences: int, exact_max: int) -> RunDiagnostics:
    cell = layer.cell
    norms = {name: _masked(trace, np.linalg.norm(grad, axis=-1), batch_first=True)
             for name, grad in zip(cell.state_names, state_grads)}
    jac, state_jac, method = _jacobian_norms(cell, trace, min(sequences, trace.xw.shape[1]), exact_max)
    return RunDiagnostics(trace.name, trace.direction, type(cell).__name__, norms, jac, state_jac, method,
                          _recurrent_spectrum(cell, trace.params), _activation_stats(trace.activations(cell), trace))


def _masked(trace: RunTrace, values: np.ndarray, batch_first: bool) -> np.ndarray:
    """``values`` (B, T) (or time-major (T, B) in run order) as (B, T) in input order, NaN past lengths."""
    if not batch_first:
        values = trace.in_input_order(values[..., None])[..., 0].T
    if trace.step_mask is None:
        return values
    return np.where(trace.step_mask[:, :, 0].T, values, np.nan)


def _batch_mean(per_sequence: np.ndarray) -> np.ndarray:
    """Mean over the sequences that are valid at each step: (B, T) -> (T,)."""
    valid = ~np.isnan(per_sequence)
    total = np.where(valid, per_sequence, 0.0).sum(axis=0)
    return total / np.maximum(valid.sum(axis=0), 1)


def _replayed_states(cell, trace: RunTrace, batch: int) -> list[tuple]:
    """``state(t-1)`` for every step of the first ``batch`` sequences (parts (batch, width))."""
    state, states = tuple(s[:batch] for s in trace.state0), []
    for t in range(trace.xw.shape[0]):
        states.append(state)
        new, _ = cell.step(trace.params, trace.xw[t, :batch], state)
        if trace.step_mask is not None:
            new = tuple(np.where(trace.step_mask[t, :batch], n, s) for n, s in zip(new, state))
        state = new
    return states


def _jacobian_norms(cell, trace: RunTrace, batch: int, exact_max: int):
    """``(||dh(end)/dh(t)||, ||ds(end)/ds(t)|| or None, method)``, each (batch, T) in input order."""
    states = _replayed_states(cell, trace, batch)
    S = cell.state_size
    if sum(cell.state_widths) <= exact_max:
        h_norm, s_norm = _exact_norms(cell, trace, states, batch)
        method = "exact"
    else:
        h_norm, s_norm = _power_norms(cell, trace, states, batch)
        method = "power"
    h_norm = _masked_subset(trace, h_norm, batch)
    s_norm = _masked_subset(trace, s_norm, batch) if S > 1 else None
    return h_norm, s_norm, method


def _masked_subset(trace: RunTrace, values_tm: np.ndarray, batch: int) -> np.ndarray:
    """Run-ordered (T, batch) values as (batch, T) in input order, NaN past lengths."""
    sub = trace._replace(step_mask=None if trace.step_mask is None else trace.step_mask[:, :batch],
                         reverse_index=None if trace.reverse_index is None else trace.reverse_index[:, :batch])
    return _masked(sub, values_tm, batch_first=False)


def _vjp(cell, trace, states, t, cotangents, batch):
    """``u -> u ds(t)/ds(t-1)`` for cotangents (K, batch, S*H); the identity past a length."""
    back = step_vjps(cell, trace.params, trace.xw[t, :batch], states[t], cotangents).d_state
    if trace.step_mask is None:
        return back
    return np.where(trace.step_mask[t, :batch], back, cotangents)


def _exact_norms(cell, trace, states, batch):
    """Carry ``M = ds(end)/ds(t)`` (S*H rows per sequence) back through every step: the end is
    each sequence's last valid step, where M = I (past it the state is only held)."""
    SH, H, steps = sum(cell.state_widths), cell.state_widths[0], trace.xw.shape[0]  # H: the width of h
    M = np.broadcast_to(np.eye(SH, dtype=trace.xw.dtype)[:, None, :], (SH, batch, SH)).copy()
    h_norm, s_norm = np.empty((steps, batch)), np.empty((steps, batch))
    for t in reversed(range(steps)):
        rows = M.transpose(1, 0, 2)  # (batch, S*H out, S*H in)
        h_norm[t] = np.linalg.norm(rows[:, :H, :H], ord=2, axis=(-2, -1))
        s_norm[t] = np.linalg.norm(rows, ord=2, axis=(-2, -1))
        if t > 0:
            M = _vjp(cell, trace, states, t, M, batch)
    return h_norm, s_norm


def _power_norms(cell, trace, states, batch):
    """Power iteration on ``P^T P`` at log-spaced lags per sequence; NaN at the other steps."""
    SH, H, steps = sum(cell.state_widths), cell.state_widths[0], trace.xw.shape[0]  # H: the width of h
    h_norm, s_norm = np.full((steps, batch), np.nan), np.full((steps, batch), np.nan)
    rng = np.random.default_rng(0)
    for b in range(batch):
        end = steps - 1 if trace.step_mask is None else int(trace.step_mask[:, b, 0].sum()) - 1
        lags = np.unique(np.round(np.geomspace(1, max(end, 1), POWER_LAGS)).astype(int))
        h_norm[end, b] = s_norm[end, b] = 1.0
        for lag in lags[lags <= end]:
            start = end - lag
            h_norm[start, b] = _power_norm(cell, trace, states, b, start, end, H, rng)
            s_norm[start, b] = _power_norm(cell, trace, states, b, start, end, SH, rng)
    return h_norm, s_norm


def _power_norm(cell, trace, states, b, start, end, size, rng) -> float:
    """Largest singular value of the leading (size, size) block of ``ds(end)/ds(start)``."""
    v = rng.standard_normal(sum(cell.state_widths))
    v[size:] = 0.0
    sigma = 0.0
    for _ in range(POWER_ITERATIONS):
        v /= np.linalg.norm(v)
        u = _forward_product(cell, trace, states, b, start, end, v)
        u[size:] = 0.0
        previous, sigma = sigma, float(np.linalg.norm(u))
        if sigma == 0.0 or abs(sigma - previous) <= POWER_TOLERANCE * sigma:
            return sigma
        for t in range(end, start, -1):
            u = _vjp_one(cell, trace, states, b, t, u)
        v = u
        v[size:] = 0.0
    return sigma


def _vjp_one(cell, trace, states, b, t, u):
    """``u ds(t)/ds(t-1)`` for sequence ``b``; the identity past its length."""
    if trace.step_mask is not None and not trace.step_mask[t, b, 0]:
        return u
    state = tuple(s[b:b + 1] for s in states[t])
    return step_vjps(cell, trace.params, trace.xw[t, b:b + 1], state, u[None, None, :]).d_state[0, 0]


def _forward_product(cell, trace, states, b, start, end, v):
    """``ds(end)/ds(start) v`` by central differences of each step along the trajectory."""
    splits = np.cumsum(cell.state_widths)[:-1]  # where each state part starts
    for t in range(start + 1, end + 1):
        if trace.step_mask is not None and not trace.step_mask[t, b, 0]:
            continue
        s = np.concatenate([part[b] for part in states[t]])
        eps = 1e-6 * max(1.0, float(np.linalg.norm(s))) / max(float(np.linalg.norm(v)), 1e-300)
        pair = np.stack([s + eps * v, s - eps * v])  # (2, S*H): two sequences through one step
        new, _ = cell.step(trace.params, np.repeat(trace.xw[t, b:b + 1], 2, axis=0), tuple(np.split(pair, splits, axis=-1)))
        new = np.concatenate(new, axis=-1)
        v = (new[0] - new[1]) / (2 * eps)
    return v


# ----------------------------------------------------------------------------- weights and activations
def _gate_blocks(cell) -> list[str]:
    names = cell.gate_names or tuple(str(k) for k in range(cell.num_gates))
    return ["R"] if cell.num_gates == 1 else [f"R_{name}" for name in names]


def _recurrent_spectrum(cell, params) -> dict:
    """Singular values and spectral radius of each ``(H, H)`` gate block of ``R``; with a
    projection ``h = m W_hr`` (LSTM ``proj_size``), of ``W_hr R``, the map from ``m(t-1)``."""
    if "R" not in params:
        return {}
    R = params["W_hr"] @ params["R"] if "W_hr" in params else params["R"]  # (H, G*H)
    if R.shape != (cell.hidden_size, cell.num_gates * cell.hidden_size):
        return {}
    H, spectrum = cell.hidden_size, {}
    for k, name in enumerate(_gate_blocks(cell)):
        block = R[:, k * H:(k + 1) * H]
        spectrum[name] = {"singular_values": np.linalg.svd(block, compute_uv=False),
                          "spectral_radius": float(np.max(np.abs(np.linalg.eigvals(block))))}
    return spectrum


def saturated(kind: str, values: np.ndarray) -> np.ndarray:
    """Where ``values`` of a ``kind`` (``tanh``, ``sigmoid``, ``relu``) activation are at its flat ends."""
    if kind == "tanh":
        return np.abs(values) > SATURATED
    if kind == "sigmoid":
        return (values < 1.0 - SATURATED) | (values > SATURATED)
    if kind == "relu":
        return values == 0.0
    raise ValueError(f"saturated: expected kind 'tanh', 'sigmoid' or 'relu', got {kind!r}")


def _activation_stats(activations: dict, trace: RunTrace) -> dict:
    """Per activation of the run (:meth:`RunTrace.activations`: ``(kind, (B, T, H))``): the
    saturated fraction and the mean over valid sequences and units, per step."""
    stats = {}
    for name, (kind, values) in activations.items():
        frac = _masked(trace, saturated(kind, values).mean(axis=-1), batch_first=True)
        mean = _masked(trace, values.mean(axis=-1), batch_first=True)
        stats[name] = {"kind": kind, "saturated": _batch_mean(frac), "mean": _batch_mean(mean)}
    return stats


# ----------------------------------------------------------------------------- rates and the JSON
def steps_back(length: int, direction: int = 0) -> np.ndarray:
    """How far each input step lies from the run's end: ``T - 1 - t``, or ``t`` for a reverse run
    (``direction`` 1), for ``length`` ``T`` steps."""
    t = np.arange(length)
    return t if direction else length - 1 - t


def rate_per_step(norms: np.ndarray, direction: int = 0) -> float | None:
    """The factor by which ``norms (T,)`` shrink (< 1) or grow per step back in time from the end of
    a run of ``direction`` 0 or 1: ``exp`` of the least-squares slope of ``log norm(t)`` against the
    steps back from the run's end (:func:`steps_back`), over the finite positive values; None with
    fewer than two of them."""
    norms = np.asarray(norms, dtype=np.float64)
    lag = steps_back(norms.shape[-1], direction)
    keep = np.isfinite(norms) & (norms > 0)
    if keep.sum() < 2:
        return None
    slope = np.polyfit(lag[keep], np.log(norms[keep]), 1)[0]
    return float(np.exp(slope))


def _finite_or_none(value):
    return float(value) if value is not None and math.isfinite(value) else None


def _listed(array) -> list:
    return [_listed(a) for a in array] if np.ndim(array) > 1 else [_finite_or_none(v) for v in np.asarray(array)]


def _run_dict(run: RunDiagnostics) -> dict:
    out = {"name": run.name, "direction": run.direction, "cell": run.cell}
    for part, per_sequence in run.state_grad_norms.items():
        mean = _batch_mean(per_sequence)
        out[f"dl_d{part}_norm"] = _listed(mean)
        out[f"dl_d{part}_norm_per_sequence"] = _listed(per_sequence)
        out[f"dl_d{part}_rate_per_step"] = rate_per_step(mean, run.direction)
    jac = _batch_mean(run.jacobian_norm)
    out.update({"jacobian_method": run.jacobian_method, "jacobian_norm": _listed(jac),
                "jacobian_norm_per_sequence": _listed(run.jacobian_norm),
                "jacobian_rate_per_step": rate_per_step(jac, run.direction)})
    if run.state_jacobian_norm is not None:
        out["state_jacobian_norm"] = _listed(_batch_mean(run.state_jacobian_norm))
    out["recurrent"] = {name: {"singular_values": _listed(block["singular_values"]),
                               "spectral_radius": block["spectral_radius"]} for name, block in run.recurrent.items()}
    out["activations"] = {name: {"kind": stat["kind"], "saturated": _listed(stat["saturated"]),
                                 "mean": _listed(stat["mean"])} for name, stat in run.activations.items()}
    return out
