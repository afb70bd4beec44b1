"""Timing and environment helpers shared by the benchmark scripts (not part of the package).

The machine is shared and noisy, so every comparison is *interleaved*: the contenders are
sampled in turn (a, b, b, a, a, b, ...) and each reports the median time per call. A sample
runs a calibrated number of calls so that tiny problems are not lost in timer resolution.

Two effects of this 2-core machine are handled explicitly:

* thread pools: after a call OpenBLAS's worker keeps spinning for ~0.1 s, and torch's OpenMP
  worker then competes with it for the 2 cores (torch measured 2x slower right after numpy).
  Every round, and every change of library within a round (``groups``), therefore starts with a
  pause of ``PAUSE`` seconds (by default every function counts as its own library).
* contention from outside: other virtual machines on the host at times leave this one about
  one core for seconds; two-thread BLAS and OpenMP then slow down 2x to 100x. A
  :class:`HealthProbe` detects such rounds, which are dropped and re-run.
"""
from __future__ import annotations

import gc
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np

from numpy_rnn.train import run_environment

PAUSE = 0.2  # seconds of idleness before each sample: longer than OpenBLAS's spin-wait
GEMM_N = 2048


def time_calls(fn, number: int) -> float:
    """Seconds for ``number`` calls of ``fn`` with the garbage collector paused."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return time.perf_counter() - start
    finally:
        if was_enabled:
            gc.enable()


def calibrate(fn, min_sample: float, warmup: int) -> int:
    """Run ``warmup`` (>= 1) timed calls, then return the number of calls that makes one sample
    last >= ``min_sample`` s, judged by the fastest warm-up call (1 when ``min_sample`` is 0)."""
    fastest = min(time_calls(fn, 1) for _ in range(max(1, warmup)))
    return max(1, int(min_sample / max(fastest, 1e-9)))


def gemm_step(dtype, n: int = GEMM_N):
    """A function computing one ``(n, n) @ (n, n)`` product in ``dtype`` (``2 n**3`` FLOPs)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((n, n), dtype=dtype)
    return lambda: np.matmul(a, b, out=out)


def gemm_gflops(seconds: float, n: int = GEMM_N) -> float:
    """GFLOP/s of one ``(n, n) @ (n, n)`` product that took ``seconds``."""
    return 2.0 * n ** 3 / seconds / 1e9


class HealthProbe:
    """Times a small two-thread matmul to tell whether the machine is contended right now.

    A round of samples counts only when the probe before and after it is within
    ``tolerance`` of the fastest probe seen.
    """

    def __init__(self, n: int = 1024, tolerance: float = 1.5, pause: float = PAUSE):
        self.fn, self.tolerance, self.pause = gemm_step(np.float64, n), tolerance, pause
        self.best = float("inf")
        for _ in range(5):
            self.time()

    def time(self) -> float:
        """Seconds of one probe (after the usual pause); updates the fastest seen."""
        time.sleep(self.pause)
        seconds = time_calls(self.fn, 1)
        self.best = min(self.best, seconds)
        return seconds

    def healthy(self, seconds: float) -> bool:
        """Whether a probe of ``seconds`` shows an uncontended machine."""
        return seconds <= self.tolerance * self.best

    def wait_healthy(self, max_wait: float) -> float:
        """Probe until the machine looks uncontended or ``max_wait`` seconds have passed, so
        that no expensive round is spent in a contended period; returns the last probe."""
        deadline = time.perf_counter() + max_wait
        seconds = self.time()
        while not self.healthy(seconds) and time.perf_counter() < deadline:
            seconds = self.time()
        return seconds


@dataclass
class Timing:
    """Median seconds per call of each contender over ``kept`` rounds; ``rejected`` rounds
    were dropped because the :class:`HealthProbe` saw the machine contended."""

    medians: dict
    kept: int
    rejected: int


def _one_round(fns, numbers, order, pause, groups) -> dict:
    """One sample of every function, in ``order``. ``pause`` seconds of sleep precede the first
    sample and every sample whose group (``groups[name]``, else the name itself) differs from the
    one before: a library's own thread pool needs no rest between its own calls."""
    samples, previous = {}, None
    for k, name in enumerate(order):
        group = groups.get(name, name)
        if k == 0 or group != previous:
            time.sleep(pause)
        previous = group
        samples[name] = time_calls(fns[name], numbers[name]) / numbers[name]
    return samples


def interleaved_medians(fns: dict, repeats: int, *, probe: HealthProbe | None = None, min_sample: float = 0.05,
                        warmup: int = 2, pause: float = PAUSE, single: tuple = (), groups: dict | None = None,
                        max_rounds: int | None = None, max_wait: float = 20.0) -> Timing:
    """Median seconds per call of each function in ``fns``, sampled in alternating order.

    The functions named in ``single`` run once per sample (no calibration). ``groups`` maps
    names to the library whose threads they use: the pause before a sample is skipped when the
    sample before it was of the same group (default: every function its own group). With a
    ``probe``, rounds run until ``repeats`` healthy ones are kept or ``max_rounds`` (default
    ``2 * repeats + 2``) have run; if no round was healthy, all of them count. Before a round
    it waits for the probe to look healthy, up to ``max_wait`` seconds for all rounds (a
    healthy probe after one round serves as the probe before the next).
    """
    numbers = {name: calibrate(fn, 0.0 if name in single else min_sample, warmup) for name, fn in fns.items()}
    kept, dropped = [], []
    order, wait_until, after = list(fns), time.perf_counter() + max_wait, None
    for k in range(max_rounds or 2 * repeats + 2):
        if len(kept) >= repeats:
            break
        if probe is None:
            before = 0.0
        elif after is not None and probe.healthy(after):
            before = after
        else:
            before = probe.wait_healthy(wait_until - time.perf_counter())
        samples = _one_round(fns, numbers, order if k % 2 == 0 else order[::-1], pause, groups or {})  # cancel order effects
        after = probe.time() if probe else 0.0
        healthy = probe is None or (probe.healthy(before) and probe.healthy(after))
        (kept if healthy else dropped).append(samples)
    rounds = kept or dropped
    medians = {name: statistics.median(r[name] for r in rounds) for name in fns}
    return Timing(medians, len(kept), len(dropped))


def matmul_gflops(dtype, n: int = GEMM_N, repeats: int = 7, probe: HealthProbe | None = None) -> float:
    """Attainable GFLOP/s of numpy's BLAS: median of ``repeats`` ``(n, n) @ (n, n)`` products."""
    timing = interleaved_medians({"matmul": gemm_step(dtype, n)}, repeats, probe=probe, single=("matmul",))
    return gemm_gflops(timing.medians["matmul"], n)


def _blas_lines(blas: list[dict] | None) -> list[str]:
    if blas is None:
        return ["- threadpoolctl not installed: BLAS unknown"]
    return [f"- blas: {pool['internal_api']} {pool['version']} kernel={pool['architecture'] or '-'} "
            f"threads={pool['num_threads']}" for pool in blas]


def environment_header(extra: dict | None = None) -> str:
    """Markdown lines: versions, CPU, numpy's BLAS (threadpoolctl) and OpenBLAS variables."""
    env = run_environment()
    lines = [f"- python {env['python']}, numpy {env['numpy']}, CPU {env['cpu']} x {env['cpu_count']}"]
    for key, value in (extra or {}).items():
        lines.append(f"- {key}: {value}")
    lines += _blas_lines(env["blas"])
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        lines.append(f"- {var}={os.environ[var]}" if var in os.environ else f"- {var} unset")
    return "\n".join(lines)
