"""Numerical gradients, gradient-check reports and the notebook's ``gradient_check``.

Central differences of a scalar function ``f`` of named arrays, in float64:

* ``stencil=2``: ``f'(w) ~ (f(w+e) - f(w-e)) / (2e)``, error O(e**2) (the notebook's rule);
* ``stencil=4``: ``f'(w) ~ (8 (f(w+e) - f(w-e)) - (f(w+2e) - f(w-2e))) / (12e)``, error O(e**4);
* ``stencil=6``: ``f'(w) ~ (45 d1 - 9 d2 + d3) / (60e)`` with ``dk = f(w+ke) - f(w-ke)``, error
  O(e**6), so a large ``e = 3e-3`` keeps rounding noise near 1e-12: the default for smooth
  functions. A kink (relu) within a few ``e`` spoils any stencil: cells that are not smooth
  (``cell.smooth = False``) are checked with ``stencil=4, e = 1e-4`` by :func:`check_layer`.

Vectorised: ``f`` receives the perturbed array with one extra leading axis of P copies (the
other arrays unchanged) and returns P values; the layers' ``apply`` methods broadcast over such axes, so all the
perturbations of a chunk of elements cost one forward pass instead of 2 (or 4) Python-level
calls per element. :func:`directional_check` compares ``(f(w+ev) - f(w-ev)) / 2e`` with
``<grad, v>`` for a few random directions ``v``: a constant number of passes for any model size.

Report per array: ``max_rel_error = max |a-n| / max(|a|, |n|, TINY)``, ``max_abs_diff``, the index
of the worst element, and ``passed``: every element has ``rel <= rtol`` or ``|a-n| <= atol``
(defaults ``rtol = 1e-7``, ``atol = 1e-10``: below ``atol`` a difference is the rounding noise of
the finite difference itself). float32 cannot be checked meaningfully and is refused.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TINY = 1e-300
RTOL = 1e-7
ATOL = 1e-10
# stencil -> (weights, steps in units of eps, denominator in units of eps)
_STENCILS = {
    2: ((1.0, -1.0), (1, -1), 2.0),
    4: ((8.0, -8.0, -1.0, 1.0), (1, -1, 2, -2), 12.0),
    6: ((45.0, -45.0, -9.0, 9.0, 1.0, -1.0), (1, -1, 2, -2, 3, -3), 60.0),
}
_DEFAULT_EPS = {2: 1e-6, 4: 1e-4, 6: 3e-3}


@dataclass(frozen=True)
class ArrayReport:
    """Comparison of one array's analytic and numerical gradients."""

    name: str
    max_rel_error: float
    max_abs_diff: float
    worst_index: tuple
    passed: bool

    def __str__(self):
        verdict = "passed" if self.passed else "FAILED"
        return (f"{self.name:>12}  rel {self.max_rel_error:.3e}  abs {self.max_abs_diff:.3e}  "
                f"worst at {self.worst_index}  {verdict}")


@dataclass(frozen=True)
class Report:
    """A gradient check of several arrays; ``passed`` when every array passed."""

    arrays: dict

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.arrays.values())

    @property
    def max_rel_error(self) -> float:
        return max(r.max_rel_error for r in self.arrays.values())

    def __str__(self):
        return "\n".join(str(r) for r in self.arrays.values())


def require_float64(arrays: dict) -> None:
    """Refuse anything but finite float64 arrays, saying why float32 cannot be checked."""
    for name, arr in arrays.items():
        if np.asarray(arr).dtype != np.float64:
            raise ValueError(
                f"gradcheck: expected {name} in float64, got {np.asarray(arr).dtype}; float32 keeps ~7 "
                "digits, so central differences carry ~1e-3 relative noise and cannot confirm a "
                "gradient: build the model with dtype=np.float64 to check it"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"gradcheck: expected finite values in {name}, got NaN or inf")


def _jobs(arrays, k, chunk, group_rows):
    """Evaluation jobs: lists of ``(name, first, stop)`` row ranges (k rows per element).

    A large array is split into chunks of its own; consecutive small arrays share a job of at
    most ``group_rows`` rows, so tiny parameters do not each pay a whole forward pass."""
    jobs, group, used = [], [], 0
    for name, value in arrays.items():
        n = value.size * k
        if n > group_rows:
            jobs += [[(name, start, min(start + chunk, n))] for start in range(0, n, chunk)]
            continue
        if group and used + n > group_rows:
            jobs.append(group)
            group, used = [], 0
        group.append((name, 0, n))
        used += n
    return jobs + ([group] if group else [])


def _perturbed_batch(arrays, job, flat, offsets):
    """``arrays`` where every array of ``job`` has a leading axis of P copies (P the job's rows)
    and row j of its own range has ``offsets`` added at element ``flat``; arrays outside the job
    stay as they are and broadcast (perturbing an input keeps the weights' plain matmuls)."""
    P = sum(stop - first for _, first, stop in job)
    batch, row = dict(arrays), 0
    for name, first, stop in job:
        moved = np.repeat(arrays[name][None], P, axis=0)
        moved.reshape(P, -1)[np.arange(row, row + stop - first), flat[first:stop]] += offsets[first:stop]
        batch[name], row = moved, row + stop - first
    return batch


def numerical_gradients(func, arrays: dict, *, eps=None, stencil=6, vectorized=True, max_batch=4096,
                        group_rows=256) -> dict:
    """Central-difference gradients of the scalar ``func`` w.r.t. every array in ``arrays``.

    ``vectorized=True``: ``func(batch)`` receives the perturbed array with a leading axis of P
    copies (the others unchanged, to broadcast against it) and returns P values (chunks of at
    most ``max_batch`` copies; arrays of at most ``group_rows`` perturbations share a call).
    ``vectorized=False``: ``func(arrays)`` returns one float and is called per perturbation
    (any function works).
    """
    weights, steps, denominator, eps = _stencil(stencil, eps)
    arrays = {key: np.asarray(value) for key, value in arrays.items()}
    require_float64(arrays)
    k, largest = len(steps), max(value.size for value in arrays.values())
    flat = np.arange(largest).repeat(k)  # element i at each stencil point, for every array
    offsets = np.tile(np.array(steps, dtype=np.float64) * eps, largest)
    coefficients = np.array(weights[0::2]) / (denominator * eps)  # of the differences f(+ke) - f(-ke)
    chunk = max(k, max_batch - max_batch % k)
    values = {name: np.empty(value.size * k) for name, value in arrays.items()}
    for job in _jobs(arrays, k, chunk, group_rows if vectorized else 0):
        if vectorized:
            results, row = func(_perturbed_batch(arrays, job, flat, offsets)), 0
            for name, first, stop in job:
                values[name][first:stop] = results[row:row + stop - first]
                row += stop - first
        else:
            for name, first, stop in job:
                values[name][first:stop] = [_single(func, arrays, name, i, o)
                                            for i, o in zip(flat[first:stop], offsets[first:stop])]
    grads = {}
    for name, value in arrays.items():
        values_of = values[name].reshape(value.size, k)
        differences = values_of[:, 0::2] - values_of[:, 1::2]  # exactly 0 where f does not depend on it
        grads[name] = (differences @ coefficients).reshape(value.shape)
    return grads


def _stencil(stencil, eps):
    if stencil not in _STENCILS:
        raise ValueError(f"gradcheck: expected stencil 2, 4 or 6, got {stencil!r}")
    eps = _DEFAULT_EPS[stencil] if eps is None else eps
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"gradcheck: expected eps > 0 and finite, got {eps}")
    return (*_STENCILS[stencil], eps)


def _single(func, arrays, name, flat_index, offset):
    moved = arrays[name].copy()
    moved.reshape(-1)[flat_index] += offset
    return float(func({**arrays, name: moved}))


def compare(analytic: dict, numerical: dict, *, rtol=RTOL, atol=ATOL) -> Report:
    """Per-array report of analytic against numerical gradients (same keys)."""
    reports = {}
    for name, num in numerical.items():
        ana = np.asarray(analytic[name], dtype=np.float64)
        if ana.shape != num.shape:
            raise ValueError(f"gradcheck: analytic gradient {name} has shape {ana.shape}, expected {num.shape}")
        diff = np.abs(ana - num)
        rel = diff / np.maximum(np.maximum(np.abs(ana), np.abs(num)), TINY)
        worst = np.unravel_index(np.argmax(rel), rel.shape) if rel.size else ()
        passed = bool(np.all((rel <= rtol) | (diff <= atol)))
        reports[name] = ArrayReport(name, float(rel.max(initial=0.0)), float(diff.max(initial=0.0)),
                                    tuple(int(i) for i in worst), passed)
    return Report(reports)


def directional_check(func, arrays: dict, analytic: dict, *, n_directions=8, eps=None, stencil=6,
                      rng=None, rtol=RTOL, atol=ATOL) -> Report:
    """Random-direction check: the stencil's difference quotient along ``v`` against
    ``sum <grad, v>`` for ``n_directions`` random unit directions ``v`` over all arrays at once.
    ``func`` is vectorised as in :func:`numerical_gradients`. One report row per direction."""
    arrays = {key: np.asarray(value) for key, value in arrays.items()}
    require_float64(arrays)
    rng = np.random.default_rng(rng)
    weights, steps, denominator, eps = _stencil(stencil, eps)
    coeffs = np.array(steps, dtype=np.float64) * eps
    numeric, predicted = {}, {}
    for k in range(n_directions):
        v = {key: rng.standard_normal(value.shape) for key, value in arrays.items()}
        norm = np.sqrt(sum(np.vdot(d, d) for d in v.values()))
        v = {key: d / norm for key, d in v.items()}  # a unit step of eps in total
        batch = {key: value[None] + coeffs.reshape((-1,) + (1,) * value.ndim) * v[key][None] for key, value in arrays.items()}
        numeric[f"direction {k}"] = np.array(np.dot(func(batch), weights) / (denominator * eps))
        predicted[f"direction {k}"] = np.array(sum(np.vdot(analytic[key], v[key]) for key in arrays))
    return compare(predicted, numeric, rtol=rtol, atol=atol)


def check_layer(layer, x, state=None, lengths=None, *, mode="full", rng=0, **options) -> Report:
    """Gradient check of a recurrent layer: every parameter, the input ``x`` and the initial
    state, for the loss ``sum(out * G) + sum(state_n * S)`` with fixed random ``G``, ``S``.

    Dropout masks drawn by the analytic forward are reused, so the check is exact for them.
    ``mode="full"`` checks every element (:func:`numerical_gradients`), ``"directional"`` a few
    random directions (:func:`directional_check`). ``options`` go to the chosen function.
    """
    require_float64({**layer.params, "x": x})
    rng = np.random.default_rng(rng)
    x = np.asarray(x)
    batched_x = x if x.ndim == 3 else x[None]
    batched_state = _batched_state(state, x.ndim == 2)
    out, state_n = layer.forward(batched_x, batched_state, lengths)
    g_out = rng.standard_normal(out.shape)
    g_state = tuple(rng.standard_normal(s.shape) for s in _as_tuple(state_n))
    layer.zero_grad()
    dx, d_state0 = layer.backward(g_out, g_state if isinstance(state_n, tuple) else g_state[0])
    masks = layer.dropout_masks
    state_names = [f"state[{i}]" for i in range(len(g_state))]
    analytic = {**{k: v.copy() for k, v in layer.grads.items()}, "x": dx}
    arrays = {**layer.params, "x": batched_x}
    if batched_state is not None:
        analytic.update(zip(state_names, _as_tuple(d_state0)))
        arrays.update(zip(state_names, _as_tuple(batched_state)))

    def loss(a):
        params = {k: a[k] for k in layer.params}
        st = tuple(a[n] for n in state_names) if batched_state is not None else None
        st = st if st is None or len(st) > 1 else st[0]
        o, s = layer.apply(params, a["x"], st, lengths, masks)
        total = np.sum(o * g_out, axis=(-3, -2, -1))
        for part, g in zip(_as_tuple(s), g_state):
            total = total + np.sum(part * g, axis=(-3, -2, -1))
        return total

    if not getattr(layer.cell, "smooth", True):
        options = {"stencil": 4, "eps": 1e-4, **options}
    if mode == "full":
        return compare(analytic, numerical_gradients(loss, arrays, **options))
    if mode == "directional":
        return directional_check(loss, arrays, analytic, rng=rng, **options)
    raise ValueError(f"check_layer: unknown mode {mode!r}; valid names: full, directional")


def _as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def _batched_state(state, unbatched):
    if state is None or not unbatched:
        return state
    return tuple(s[:, None] for s in state) if isinstance(state, tuple) else state[:, None]


def gradient_check(model, x, treshold: float = 1e-7, *, threshold: float | None = None) -> None:
    """The notebook's check of :class:`numpy_rnn.RNN`, printing its exact lines, e.g.
    ``Gradient check for dW passed (difference 2.035e-09)``.

    As in the notebook: two-sided differences with ``eps = 1e-7`` of the sum of the outputs,
    compared by the Euclidean norm of the difference against ``treshold`` (the notebook's
    spelling; ``threshold=`` is accepted too). The perturbations are evaluated as one batch.
    """
    limit = treshold if threshold is None else threshold
    x = np.asarray(x)
    batched_x = x if x.ndim == 3 else x[None]
    weights = model.get_weights()

    def summed_output(a):
        return model.apply(a, batched_x).sum(axis=(-2, -1))

    numerical = numerical_gradients(summed_output, weights, eps=1e-7, stencil=2)
    y = model.forward(x)
    analytic = model.backward(np.ones_like(y))
    for key, num in numerical.items():
        difference = np.linalg.norm(num - analytic[key])
        verdict = "passed" if difference < limit else "failed"
        print(f"Gradient check for d{key} {verdict} (difference {difference:.3e})")
