"""Numerical gradients with error estimates, gradient-check reports, the notebook's ``gradient_check``.

**Numerical derivative** of a scalar ``f`` w.r.t. one element ``w`` of an array, in float64,
with no step for the user to choose (Richardson extrapolation, as numerical-differentiation
libraries do):

1. central differences at the steps ``h_k = h_0 2**-k``::

       D_k = (f(w + h_k) - f(w - h_k)) / (2 h_k) = f'(w) + c_1 h_k**2 + c_2 h_k**4 + ...

2. a Neville table removes one power of ``h**2`` per level::

       T[0][k] = D_k,   T[m][k] = (4**m T[m-1][k] - T[m-1][k-1]) / (4**m - 1)   (error O(h_k**(2m+2)))

3. two error estimates for every entry:

   * truncation ``E[m][k] = max(|T[m][k] - T[m-1][k]|, |T[m][k] - T[m-1][k-1]|)``: what the
     last level changed (for ``m = 1`` also ``|T[1][k] - T[1][k-1]|``, so that every estimate
     rests on three steps: two can agree by chance). Where the expansion holds, this is larger
     than the entry's own error (the lower level's error, of a lower order); where it does not
     (a step too large for the function's curvature, or across a kink), the levels disagree
     and ``E`` is large;
   * rounding ``R[m][k] = sum_j |c_j| delta / h_j``, with ``c_j`` the weight of ``D_j`` in
     ``T[m][k]`` and ``delta = max(3 sigma, 2 eps |f|)`` a bound on the error of one evaluation
     of ``f``, where ``sigma`` is the noise of ``f`` measured once per check from 13 evaluations
     (ECNoise, More and Wild 2011; see ``_noise``): it differs between models by two orders of
     magnitude (an LSTM's loss ~1 eps |f|, a saturated tanh RNN's ~50 eps |f|);

   the estimate is the entry with the least ``E + R``;
4. elements whose ``E`` is still above ``GOAL * |estimate|`` and above their ``R`` get the next
   smaller step (two evaluations each, for those elements only), up to ``MAX_STEPS`` steps.

Measured on a grid of layers like ``tests/test_gradcheck.py``'s (about 10,000 elements), the
actual error never exceeded 0.6 ``(E + R)``, and under the rule below an error of relative size
1e-4 would have failed every element but one (whose gradient was 1e-7 of its array's largest).

Every element starts with three steps (six evaluations, as many as the 6-point stencil this
replaces) from ``h_0 = 2**-9`` (``2**-14`` for functions with kinks, ``smooth=False``: a
central difference across a kink is wrong, and Richardson's levels then disagree, so such an
element moves on to smaller steps until its steps no longer straddle the kink).

**Pass rule** (:func:`compare`), per element, with ``a`` analytic, ``n`` numerical,
``s = max(|a|, |n|)`` and the estimate's errors ``E`` (truncation) and ``R`` (rounding)::

    |a - n| <= atol + rtol * s + SAFETY * R + min(SAFETY * E, RCAP * s)

with ``atol = 1e-10``, ``rtol = 1e-7``, ``SAFETY = 4`` and ``RCAP = 1e-5``. A correct gradient
passes up to the estimated numerical error, with a safety factor for the estimate itself; the
truncation part may widen the tolerance by at most ``RCAP * s``, so an error of relative size
1e-4 in a single element is still caught. An element whose numerical derivative could not be
pinned down to ``RCAP`` fails, and its report shows the large estimated error (the check could
not decide, rather than decided wrongly). Without error estimates (plain arrays) the rule is
``|a - n| <= atol + rtol * s``.

**Vectorised**: ``f`` receives the perturbed array with one extra leading axis of P copies (the
other arrays unchanged) and returns P values; the layers' ``apply`` methods broadcast over such
axes, so all the perturbations of a chunk of elements cost one forward pass. Small arrays share
a pass. :func:`directional_check` compares the derivative of ``t -> f(w + t v)`` (the same
extrapolation) with ``<grad, v>`` for a few random directions ``v``: a constant number of passes
for any model size. float32 cannot be checked meaningfully and is refused.
"""
from __future__ import annotations

import math
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _checks

TINY = 1e-300
# the pass rule's constants (see the module docstring)
RTOL = 1e-7
ATOL = 1e-10
SAFETY = 4.0
RCAP = 1e-5
#: refine an element's steps while its truncation estimate exceeds GOAL * |estimate|
GOAL = 1e-9
EPS = np.finfo(np.float64).eps
#: a bound on the error of one evaluation of f, in units of its measured noise (see _noise);
#: at least 2 EPS |f|
NOISE_BOUND = 3.0
NOISE_POINTS, NOISE_SPACING = 13, 1e-7
#: from this many planned evaluations on, a progress bar (where tqdm is installed)
PROGRESS_ROWS = 20000
#: threads check_layer and gradient_check evaluate in (their losses are pure)
WORKERS = 2
#: at most this many bytes of perturbed copies of one array per evaluation
COPY_BYTES = 2 ** 23
FIRST_STEP = {True: 2.0 ** -9, False: 2.0 ** -14}  # smooth -> h_0
FIRST_STEPS = 3
MAX_STEPS = 10
# classic fixed stencils, stencil -> (weights, steps in units of eps, denominator in units of eps)
_STENCILS = {
    2: ((1.0, -1.0), (1, -1), 2.0),
    4: ((8.0, -8.0, -1.0, 1.0), (1, -1, 2, -2), 12.0),
    6: ((45.0, -45.0, -9.0, 9.0, 1.0, -1.0), (1, -1, 2, -2, 3, -3), 60.0),
}
_DEFAULT_EPS = {2: 1e-6, 4: 1e-4, 6: 3e-3}


class Estimate(NamedTuple):
    """A numerical gradient ``value`` with its estimated errors ``truncation`` (of the
    extrapolation) and ``rounding`` (of the function's evaluations), arrays of the gradient's
    shape."""

    value: np.ndarray
    truncation: np.ndarray
    rounding: np.ndarray

    @property
    def error(self) -> np.ndarray:
        return self.truncation + self.rounding


@dataclass(frozen=True)
class ArrayReport:
    """Comparison of one array's analytic and numerical gradients.

    ``name`` the array's, ``max_rel_error`` and ``max_abs_diff`` the largest relative and absolute
    differences, ``passed`` the verdict of the pass rule; ``worst_index`` is the element nearest to
    (or furthest past) its tolerance and ``numerical_error`` the estimated error of the numerical
    gradient there; ``checked`` of the array's ``size`` elements were compared. ``undecided``:
    failed where the numerical gradient's own error exceeds what the pass rule accepts (e.g. a kink
    closer than the smallest step): the check could not decide, rather than found a wrong
    gradient."""

    name: str
    max_rel_error: float
    max_abs_diff: float
    worst_index: tuple
    passed: bool
    numerical_error: float = 0.0
    checked: int | None = None
    size: int | None = None
    undecided: bool = False

    def __str__(self):
        verdict = "passed" if self.passed else "FAILED"
        verdict += " (undecided: the numerical gradient is too uncertain there)" if self.undecided else ""
        sampled = f"  ({self.checked} of {self.size} elements)" if self.checked != self.size else ""
        return (f"{self.name:>12}  rel {self.max_rel_error:.3e}  abs {self.max_abs_diff:.3e}  "
                f"num.err {self.numerical_error:.1e}  worst at {self.worst_index}  {verdict}{sampled}")


@dataclass(frozen=True)
class Report:
    """A gradient check of several arrays: ``arrays`` maps each name to its :class:`ArrayReport`;
    ``passed`` when every array passed."""

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
    """Refuse ``arrays`` (name -> array) unless all are finite float64, saying why float32 cannot
    be checked."""
    for name, arr in arrays.items():
        if np.asarray(arr).dtype != np.float64:
            raise ValueError(
                f"gradcheck: expected {name} in float64, got {np.asarray(arr).dtype}; float32 keeps ~7 "
                "digits, so central differences carry ~1e-3 relative noise and cannot confirm a "
                "gradient: build the model with dtype=np.float64 to check it"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"gradcheck: expected finite values in {name}, got NaN or inf")


# ---------------------------------------------------------------- evaluating f
def _jobs(rows: dict, sizes: dict, max_batch: int, group_rows: int) -> list:
    """Evaluation jobs: lists of ``(name, first, stop)`` row ranges.

    An array with many rows is split into chunks of its own, of at most ``max_batch`` copies
    and ``COPY_BYTES`` of copied data (large copies cost memory traffic in every step of the
    forward pass); consecutive arrays with few rows share a job of at most ``group_rows`` rows,
    so tiny parameters do not each pay a whole forward pass."""
    jobs, group, used = [], [], 0
    for name, n in rows.items():
        if n == 0:
            continue
        if n > group_rows:
            chunk = max(1, min(max_batch, COPY_BYTES // (8 * sizes[name])))
            jobs += [[(name, start, min(start + chunk, n))] for start in range(0, n, chunk)]
            continue
        if group and used + n > group_rows:
            jobs.append(group)
            group, used = [], 0
        group.append((name, 0, n))
        used += n
    return jobs + ([group] if group else [])


def _perturbed_batch(arrays, job, requests):
    """``arrays`` where every array of ``job`` has a leading axis of P copies (P the job's rows)
    and copy j of its own range has ``offsets[j]`` added at element ``flat[j]``, with
    ``requests[name] = (flat, offsets)``; arrays outside the job stay as they are and broadcast
    (perturbing an input keeps the weights' plain matmuls)."""
    P = sum(stop - first for _, first, stop in job)
    batch, row = dict(arrays), 0
    for name, first, stop in job:
        flat, offsets = requests[name]
        moved = np.repeat(arrays[name][None], P, axis=0)
        moved.reshape(P, -1)[np.arange(row, row + stop - first), flat[first:stop]] += offsets[first:stop]
        batch[name], row = moved, row + stop - first
    return batch


def _evaluate(func, arrays, requests, *, vectorized, max_batch, group_rows, workers=1, bar=None) -> dict:
    """``f`` at every requested perturbation: ``requests[name] = (flat, offsets)`` ->
    ``{name: values}``, one value per requested row. ``workers > 1`` evaluates that many jobs
    at once in threads (NumPy releases the GIL in its array loops; ``func`` must be pure)."""
    rows = {name: len(flat) for name, (flat, _) in requests.items()}
    values = {name: np.empty(n) for name, n in rows.items()}
    sizes = {name: arrays[name].size for name in rows}
    jobs = _jobs(rows, sizes, max(1, max_batch), group_rows if vectorized else 0)
    if vectorized:
        def run(job):
            return np.asarray(func(_perturbed_batch(arrays, job, requests)))
    else:
        def run(job):
            (name, first, stop), = job  # group_rows = 0: one range per job
            flat, offsets = requests[name]
            return np.array([_single(func, arrays, name, i, o) for i, o in zip(flat[first:stop], offsets[first:stop])])
    if workers > 1 and vectorized:
        with ThreadPoolExecutor(workers) as pool:
            _scatter(jobs, pool.map(run, jobs), values, bar)
    else:
        _scatter(jobs, map(run, jobs), values, bar)
    return values


def _scatter(jobs, outputs, values, bar):
    """Each job's results into ``values[name][first:stop]``, in the job's order."""
    for job, results in zip(jobs, outputs):
        row = 0
        for name, first, stop in job:
            values[name][first:stop] = results[row:row + stop - first]
            row += stop - first
        if bar is not None:
            bar.update(row)


def _single(func, arrays, name, flat_index, offset):
    moved = arrays[name].copy()
    moved.reshape(-1)[flat_index] += offset
    return float(func({**arrays, name: moved}))


# ---------------------------------------------------------------- Richardson extrapolation
def _noise(func, arrays, vectorized) -> float:
    """The standard deviation of the rounding noise of ``f`` near ``arrays`` (ECNoise, More and
    Wild 2011): ``f`` at ``NOISE_POINTS`` points ``w + j s v`` (``s = NOISE_SPACING``, ``v`` a
    fixed random unit direction over all arrays). At this spacing the k-th differences of the
    smooth part of ``f`` vanish and those of independent noise have variance
    ``C(2k, k) sigma**2``: sigma is the median over k = 3 .. 8 of ``sqrt(mean((diff^k f)**2) / C(2k, k))``.
    """
    points = _along(arrays, _unit_direction(arrays, np.random.default_rng(0)), NOISE_SPACING * np.arange(NOISE_POINTS))
    f = np.asarray(func(points) if vectorized else
                   [func({key: value[j] for key, value in points.items()}) for j in range(NOISE_POINTS)], dtype=np.float64)
    sigmas = []
    for k in range(1, 9):
        f = np.diff(f)
        if k >= 3:
            sigmas.append(np.sqrt(np.mean(f ** 2) / math.comb(2 * k, k)))
    return float(np.median(sigmas))


def _unit_direction(arrays, rng) -> dict:
    """A random direction of unit length over all ``arrays`` together (one array per name)."""
    v = {key: rng.standard_normal(value.shape) for key, value in arrays.items()}
    norm = np.sqrt(sum(np.vdot(d, d) for d in v.values()))
    return {key: d / norm for key, d in v.items()}


def _evaluation_error(noise: float, fmax):
    """A bound on the error of one evaluation of ``f``: the measured noise, or a few rounding
    errors of the largest value seen, whichever is larger."""
    return np.maximum(NOISE_BOUND * noise, 2 * EPS * fmax)


def _along(arrays, direction, t):
    """``arrays`` moved by ``t[j] * direction``: every array with a leading axis of ``len(t)`` copies."""
    return {key: value[None] + t.reshape((-1,) + (1,) * value.ndim) * direction[key][None] for key, value in arrays.items()}


def _extrapolate(D, h, delta):
    """The best entry of each row's Neville table and its errors.

    ``D (N, n)`` central differences at the steps ``h (n,)``, ``delta (N,)`` a bound on the error
    of one evaluation of ``f`` for each row. Returns ``(value, truncation, rounding)``, each
    ``(N,)``; see the module docstring for the table and its error estimates. Every candidate rests on three steps at
    least: two central differences can agree by chance where the expansion does not yet hold,
    three hardly.
    """
    rows = np.arange(len(D))
    value, truncation, rounding = np.full(len(D), np.nan), np.full(len(D), np.inf), np.full(len(D), np.inf)
    level, level_rounding = D, delta[:, None] / h  # |error of D_k| <= delta / h_k
    for m in range(1, D.shape[1]):
        q = 4.0 ** m
        entry = (q * level[:, 1:] - level[:, :-1]) / (q - 1)  # T[m][k] for k = m .. n-1
        entry_rounding = (q * level_rounding[:, 1:] + level_rounding[:, :-1]) / (q - 1)
        change = np.maximum(np.abs(entry - level[:, 1:]), np.abs(entry - level[:, :-1]))
        level, level_rounding = entry, entry_rounding
        if m == 1:  # T[1][k] rests on two steps: the entry one step back must agree too
            change = np.maximum(change[:, 1:], np.abs(entry[:, 1:] - entry[:, :-1]))
            entry, entry_rounding = entry[:, 1:], entry_rounding[:, 1:]
        if entry.shape[1] == 0:
            continue
        with np.errstate(invalid="ignore"):
            total = np.where(np.isnan(change), np.inf, change + entry_rounding)
        best = np.argmin(total, axis=1)
        better = total[rows, best] < truncation + rounding
        value[better] = entry[rows, best][better]
        truncation[better] = change[rows, best][better]
        rounding[better] = entry_rounding[rows, best][better]
    return value, truncation, rounding


def _central_differences(arrays, elements, step_columns, steps, evaluate):
    """``D (N, len(step_columns))`` and ``max |f|`` for ``elements[name]`` (flat indices) of
    every array at ``steps[step_columns]``; the steps actually applied, ``(w + h) - w``, are
    exact in floating point and divide the differences."""
    requests, applied = {}, {}
    for name, flat in elements.items():
        w = arrays[name].reshape(-1)[flat][:, None]  # (N, 1)
        h = steps[step_columns][None, :]
        up, down = (w + h) - w, w - (w - h)  # (N, S), exact
        offsets = np.stack([up, -down], axis=-1)  # (N, S, 2)
        requests[name] = (np.repeat(flat, 2 * len(step_columns)), offsets.reshape(-1))
        applied[name] = up + down
    values = evaluate(requests)
    out = {}
    for name in elements:
        f = values[name].reshape(len(elements[name]), len(step_columns), 2)
        out[name] = ((f[..., 0] - f[..., 1]) / applied[name], np.abs(f).max(axis=(1, 2)))
    return out


def estimate_gradients(func, arrays: dict, *, elements=None, smooth=True, first_step=None, vectorized=True,
                       max_batch=4096, group_rows=256, workers=1, progress=None) -> dict:
    """Numerical gradients of the scalar ``func`` w.r.t. every array in ``arrays``, with their
    estimated errors: ``{name: Estimate(value, truncation, rounding)}`` (see the module docstring).

    ``vectorized=True``: ``func(batch)`` receives the perturbed array with a leading axis of P
    copies (the others unchanged, to broadcast against it) and returns P values (chunks of at
    most ``max_batch`` copies; arrays of at most ``group_rows`` perturbations share a call).
    ``vectorized=False``: ``func(arrays)`` returns one float and is called per perturbation
    (any function works). ``workers=2`` evaluates two chunks at once in threads (a pure,
    vectorised ``func`` only; NumPy releases the GIL in its array loops). ``elements`` maps names
    to the flat indices to estimate (default: every element; the others get NaN value and errors).
    ``smooth=False`` starts with small steps (functions with kinks); ``first_step`` overrides ``h_0``. ``progress=True`` shows a
    tqdm bar where tqdm is installed; ``None`` (default) shows it on a terminal for
    ``PROGRESS_ROWS`` evaluations or more (a few seconds of work).
    """
    arrays = {key: np.asarray(value) for key, value in arrays.items()}
    require_float64(arrays)
    steps = _steps(smooth, first_step)
    todo = {name: np.arange(value.size) if elements is None or name not in elements
            else np.unique(np.asarray(elements[name], dtype=np.int64)) for name, value in arrays.items()}
    D = {name: np.full((value.size, MAX_STEPS), np.nan) for name, value in arrays.items()}
    fmax = {name: np.zeros(value.size) for name, value in arrays.items()}
    results = {name: tuple(np.full(value.size, np.nan) for _ in range(3)) for name, value in arrays.items()}
    planned = 2 * FIRST_STEPS * sum(len(flat) for flat in todo.values())
    automatic = progress is None and planned >= PROGRESS_ROWS and sys.stderr.isatty()
    bar = _progress_bar(planned) if progress or automatic else None

    def evaluate(requests):
        return _evaluate(func, arrays, requests, vectorized=vectorized, max_batch=max_batch,
                         group_rows=group_rows, workers=workers, bar=bar)

    noise = _noise(func, arrays, vectorized)
    columns = np.arange(FIRST_STEPS)
    try:
        while columns[-1] < MAX_STEPS and any(len(flat) for flat in todo.values()):
            differences = _central_differences(arrays, todo, columns, steps, evaluate)
            for name, flat in todo.items():
                D[name][flat[:, None], columns] = differences[name][0]
                fmax[name][flat] = np.maximum(fmax[name][flat], differences[name][1])
                delta = _evaluation_error(noise, fmax[name][flat])
                value, trunc, rnd = _extrapolate(D[name][flat, :columns[-1] + 1], steps[:columns[-1] + 1], delta)
                for part, new in zip(results[name], (value, trunc, rnd)):
                    part[flat] = new
                todo[name] = flat[(trunc > GOAL * np.abs(value)) & (trunc > rnd)]
            columns = columns[-1:] + 1
            if bar is not None:
                bar.total += 2 * sum(len(flat) for flat in todo.values())
    finally:
        if bar is not None:
            bar.close()
    return {name: Estimate(*(part.reshape(value.shape) for part in results[name])) for name, value in arrays.items()}


def numerical_gradients(func, arrays: dict, *, eps=None, stencil=None, vectorized=True, max_batch=4096,
                        group_rows=256, **options) -> dict:
    """Numerical gradients (plain arrays) of the scalar ``func`` w.r.t. every array in ``arrays``.

    By default the values of :func:`estimate_gradients` (``vectorized``, ``max_batch``,
    ``group_rows`` and ``options`` go there). Given ``eps``
    or ``stencil`` (2, 4 or 6; see ``_STENCILS``), the classic fixed-step central difference
    instead, e.g. the notebook's ``stencil=2, eps=1e-7``: no step choice, no error estimate.
    """
    if eps is None and stencil is None:
        estimates = estimate_gradients(func, arrays, vectorized=vectorized, max_batch=max_batch,
                                       group_rows=group_rows, **options)
        return {name: estimate.value for name, estimate in estimates.items()}
    if options:
        raise TypeError(f"gradcheck: {', '.join(sorted(options))} apply to the extrapolated estimate, not to a fixed stencil")
    stencil = 2 if stencil is None else stencil
    if stencil not in _STENCILS:
        raise ValueError(f"gradcheck: expected stencil 2, 4 or 6, got {stencil!r}")
    eps = _DEFAULT_EPS[stencil] if eps is None else _checks.check_real("gradcheck", "eps", eps, low=0.0, low_open=True)
    weights, offsets, denominator = _STENCILS[stencil]
    arrays = {key: np.asarray(value) for key, value in arrays.items()}
    require_float64(arrays)
    k = len(offsets)
    requests = {name: (np.arange(value.size).repeat(k), np.tile(np.array(offsets, dtype=np.float64) * eps, value.size))
                for name, value in arrays.items()}
    values = _evaluate(func, arrays, requests, vectorized=vectorized, max_batch=max_batch - max_batch % k or k,
                       group_rows=group_rows)
    coefficients = np.array(weights[0::2]) / (denominator * eps)  # of the differences f(+ke) - f(-ke)
    grads = {}
    for name, value in arrays.items():
        of_element = values[name].reshape(value.size, k)
        differences = of_element[:, 0::2] - of_element[:, 1::2]  # exactly 0 where f does not depend on it
        grads[name] = (differences @ coefficients).reshape(value.shape)
    return grads


def _steps(smooth, first_step) -> np.ndarray:
    """The halving steps ``h_k = h_0 2**-k`` (``MAX_STEPS``), from the given ``first_step`` or
    the default ``h_0`` for smooth functions or kinks."""
    h0 = FIRST_STEP[bool(smooth)] if first_step is None else _checks.check_real(
        "gradcheck", "first_step", first_step, low=0.0, low_open=True)
    return h0 * 2.0 ** -np.arange(MAX_STEPS)


def _progress_bar(total):
    """A tqdm bar over ``total`` evaluations, or None where tqdm is not installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="gradient check", unit="eval", unit_scale=True, leave=False)


# ---------------------------------------------------------------- comparing
def compare(analytic: dict, numerical: dict, *, rtol=RTOL, atol=ATOL) -> Report:
    """Per-array report of ``analytic`` against ``numerical`` gradients (dicts with the same keys)
    by the pass rule of the module docstring, with its ``rtol`` and ``atol``. ``numerical``
    values are :class:`Estimate` s (with error estimates; elements left out of the estimate,
    NaN truncation, are not compared) or plain arrays (errors taken as zero)."""
    reports = {}
    for name, num in numerical.items():
        estimate = num if isinstance(num, Estimate) else Estimate(np.asarray(num), *(np.zeros(np.shape(num)),) * 2)
        ana = np.asarray(analytic[name], dtype=np.float64)
        if ana.shape != estimate.value.shape:
            raise ValueError(f"gradcheck: analytic gradient {name} has shape {ana.shape}, expected {estimate.value.shape}")
        checked = np.flatnonzero(~np.isnan(estimate.truncation))
        a, n = ana.reshape(-1)[checked], estimate.value.reshape(-1)[checked]
        truncation, rounding = estimate.truncation.reshape(-1)[checked], estimate.rounding.reshape(-1)[checked]
        diff, scale = np.abs(a - n), np.maximum(np.abs(a), np.abs(n))
        tolerance = atol + rtol * scale + SAFETY * rounding + np.minimum(SAFETY * truncation, RCAP * scale)
        with np.errstate(invalid="ignore"):
            worst = int(np.argmax(np.where(np.isnan(diff), np.inf, diff / np.maximum(tolerance, TINY)))) if diff.size else None
        reports[name] = ArrayReport(
            name, float(np.max(diff / np.maximum(scale, TINY), initial=0.0)), float(diff.max(initial=0.0)),
            () if worst is None else tuple(int(i) for i in np.unravel_index(checked[worst], ana.shape)),
            bool(np.all(diff <= tolerance)), 0.0 if worst is None else float(truncation[worst] + rounding[worst]),
            checked=len(checked), size=ana.size, undecided=worst is not None and bool(
                diff[worst] > tolerance[worst] and SAFETY * truncation[worst] > RCAP * scale[worst]))
    return Report(reports)


def directional_check(func, arrays: dict, analytic: dict, *, n_directions=8, smooth=True, first_step=None,
                      rng=None, rtol=RTOL, atol=ATOL) -> Report:
    """Random-direction check: the derivative of ``t -> f(w + t v)`` at 0, extrapolated as in
    :func:`estimate_gradients` (all ``MAX_STEPS`` steps at once), against ``<grad, v>`` for
    ``n_directions`` random unit directions ``v`` over all arrays at once, by the same pass rule.
    ``func`` is vectorised as in :func:`estimate_gradients`; ``arrays`` are the point ``w`` (name
    -> array), ``analytic`` the gradients to check (same keys); ``smooth`` and ``first_step``
    choose the steps as there; ``rng`` (a seed or Generator) draws the directions; ``rtol``,
    ``atol`` as in :func:`compare`. One report row per direction."""
    arrays = {key: np.asarray(value) for key, value in arrays.items()}
    require_float64(arrays)
    rng = _checks.as_generator(rng, "directional_check")
    steps = _steps(smooth, first_step)
    noise = _noise(func, arrays, True)
    numeric, predicted = {}, {}
    for k in range(n_directions):
        v = _unit_direction(arrays, rng)
        f = np.asarray(func(_along(arrays, v, np.stack([steps, -steps], axis=-1).reshape(-1)))).reshape(MAX_STEPS, 2)
        delta = np.atleast_1d(_evaluation_error(noise, np.abs(f).max()))
        value, truncation, rounding = _extrapolate(((f[:, 0] - f[:, 1]) / (2 * steps))[None], steps, delta)
        numeric[f"direction {k}"] = Estimate(value.reshape(()), truncation.reshape(()), rounding.reshape(()))
        predicted[f"direction {k}"] = np.array(sum(np.vdot(analytic[key], v[key]) for key in arrays))
    return compare(predicted, numeric, rtol=rtol, atol=atol)


def check_layer(layer, x, state=None, lengths=None, *, mode="full", sample=None, rng=0, **options) -> Report:
    """Gradient check of a recurrent layer ``layer``: every parameter, the input ``x`` and the
    initial state ``state`` (``None``: zeros), run with ``lengths`` (``None``: full length), for
    the loss ``sum(out * G) + sum(state_n * S)`` with fixed random ``G``, ``S`` drawn from ``rng``
    (a seed or Generator).

    The masks drawn by the analytic forward (dropout, zoneout: ``layer.masks``) are reused,
    so the check is exact for them.
    ``mode="full"`` checks every element (:func:`estimate_gradients`; ``sample=N`` checks N
    elements of each larger array, drawn at random, for large layers), ``"directional"`` a few
    random directions (:func:`directional_check`). ``options`` go to the chosen function (e.g.
    ``progress=True``); the cell's ``smooth`` flag chooses the first step.
    """
    _checks.lookup("check_layer", "mode", mode, {"full": "every element", "directional": "random directions"})
    require_float64({**layer.params, "x": x})
    rng = _checks.as_generator(rng, "check_layer")
    x = np.asarray(x)
    batched_x = x if x.ndim == 3 else x[None]
    batched_state = _batched_state(state, x.ndim == 2)
    out, state_n = layer.forward(batched_x, batched_state, lengths)
    g_out = rng.standard_normal(out.shape)
    g_state = tuple(rng.standard_normal(s.shape) for s in _as_tuple(state_n))
    layer.zero_grad()
    dx, d_state0 = layer.backward(g_out, g_state if isinstance(state_n, tuple) else g_state[0])
    masks = layer.masks
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

    options = {"smooth": getattr(layer.cell, "smooth", True), **options}
    if mode == "full":
        options = {"workers": WORKERS, **options}
        elements = None if sample is None else _sample(arrays, sample, rng)
        return compare(analytic, estimate_gradients(loss, arrays, elements=elements, **options))
    if sample is not None:
        raise ValueError(f"check_layer: sample= applies to mode='full', got mode='directional' and sample={sample!r}")
    return directional_check(loss, arrays, analytic, rng=rng, **options)


def _sample(arrays, sample, rng) -> dict:
    """``sample`` random flat indices of every array larger than that."""
    if isinstance(sample, (bool, np.bool_)) or not isinstance(sample, (int, np.integer)) or sample < 1:
        raise ValueError(f"check_layer: expected sample to be an int >= 1 or None, got {sample!r}")
    return {name: rng.choice(value.size, sample, replace=False) for name, value in arrays.items() if value.size > sample}


def _as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def _batched_state(state, unbatched):
    if state is None or not unbatched:
        return state
    return tuple(s[:, None] for s in state) if isinstance(state, tuple) else state[:, None]


def gradient_check(model, x, treshold: float = 1e-7, *, threshold: float | None = None) -> bool:
    """The notebook's check of ``model`` (a :class:`numpy_rnn.RNN`) on the input ``x``, printing its exact lines, e.g.
    ``Gradient check for dW passed (difference 2.035e-09)``; returns True when every line passed.

    As in the notebook: the gradient of the sum of the outputs, compared by the Euclidean norm
    of the difference against ``treshold`` (the notebook's spelling; ``threshold=`` is accepted
    too). The numerical gradient is :func:`estimate_gradients`' (the notebook took two-sided
    differences with a fixed ``eps = 1e-7``, whose rounding noise alone reaches ~1e-7 on long
    sequences), evaluated as one batch.
    """
    limit = treshold if threshold is None else threshold
    x = np.asarray(x)
    batched_x = x if x.ndim == 3 else x[None]
    weights = model.get_weights()

    def summed_output(a):
        return model.apply(a, batched_x).sum(axis=(-2, -1))

    numerical = numerical_gradients(summed_output, weights, workers=WORKERS)
    y = model.forward(x)
    analytic = model.backward(np.ones_like(y))
    passed = True
    for key, num in numerical.items():
        difference = np.linalg.norm(num - analytic[key])
        passed &= bool(difference < limit)
        verdict = "passed" if difference < limit else "failed"
        print(f"Gradient check for d{key} {verdict} (difference {difference:.3e})")
    return passed
