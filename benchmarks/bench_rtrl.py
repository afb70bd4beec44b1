"""RTRL against BPTT: peak memory over the sequence length, and time per step over the hidden size.

Run: ``python benchmarks/bench_rtrl.py [--repeats N]`` (one BLAS thread; about a minute). Prints
markdown tables:

* peak memory (tracemalloc, NumPy's allocations included) of one pass over T = 10 and T = 10,000
  steps of an LSTM (H = 16, B = 4, D = 4), beyond the input and upstream gradient allocated
  before: RTRL (``reset``, then ``step`` and ``accumulate`` at every step) against BPTT
  (``forward`` then ``backward``, which keeps every step's cache);
* time per step of RTRL (``step`` + ``accumulate``) against BPTT (``forward`` + ``backward``
  over T steps, divided by T), LSTM with B = 4, D = 4 and H = 8, 16, 32, 64, interleaved
  medians, and their ratio. RTRL's sensitivity update ``J_s M`` costs ``2 B (2H)^2 P`` FLOPs per
  step with ``P = 4H (D + H + 1)`` parameters, so the ratio grows about as ``H^2``.
"""
from __future__ import annotations

import argparse
import tracemalloc
from functools import partial

import numpy as np
from _timing import environment_header, interleaved_medians
from threadpoolctl import threadpool_limits

from numpy_rnn.layers import LSTM
from numpy_rnn.rtrl import RTRL

B, D = 4, 4
MEMORY_H, MEMORY_STEPS = 16, (10, 10_000)
TIME_H, BPTT_STEPS, RTRL_STEPS = (8, 16, 32, 64), 100, 10


def rtrl_pass(layer, x, d_out):
    rtrl = RTRL(layer)
    rtrl.reset(x.shape[0])
    for t in range(x.shape[1]):
        rtrl.step(x[:, t])
        rtrl.accumulate(d_out[:, t])


def bptt_pass(layer, x, d_out):
    layer.forward(x)
    layer.backward(d_out)


def peak_mib(fn, *args) -> float:
    """Peak traced memory of ``fn(*args)`` above what was allocated before it, in MiB."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2 ** 20


def memory_table() -> str:
    rng = np.random.default_rng(0)
    layer = LSTM(D, MEMORY_H, rng=0)
    lines = [f"Peak memory, LSTM H = {MEMORY_H}, B = {B}, D = {D} (MiB above the inputs)", "",
             "| T | RTRL | BPTT |", "|---|---|---|"]
    for steps in MEMORY_STEPS:
        x, d_out = rng.standard_normal((B, steps, D)), rng.standard_normal((B, steps, MEMORY_H))
        rtrl, bptt = peak_mib(rtrl_pass, layer, x, d_out), peak_mib(bptt_pass, layer, x, d_out)
        lines.append(f"| {steps:,} | {rtrl:.2f} | {bptt:.2f} |")
    return "\n".join(lines)


def time_table(repeats: int) -> str:
    rng = np.random.default_rng(1)
    lines = [f"Time per step, LSTM B = {B}, D = {D} (RTRL: step + accumulate over {RTRL_STEPS} steps; "
             f"BPTT: forward + backward over T = {BPTT_STEPS}, divided by T)", "",
             "| H | parameters P | RTRL ms/step | BPTT ms/step | RTRL / BPTT |", "|---|---|---|---|---|"]
    for H in TIME_H:
        layer = LSTM(D, H, rng=0)
        x, d_out = rng.standard_normal((B, BPTT_STEPS, D)), rng.standard_normal((B, BPTT_STEPS, H))
        fns = {"rtrl": partial(rtrl_pass, layer, x[:, :RTRL_STEPS], d_out[:, :RTRL_STEPS]),
               "bptt": partial(bptt_pass, layer, x, d_out)}
        medians = interleaved_medians(fns, repeats, warmup=1).medians
        rtrl, bptt = medians["rtrl"] / RTRL_STEPS * 1e3, medians["bptt"] / BPTT_STEPS * 1e3
        P = sum(value.size for value in layer.params.values())
        lines.append(f"| {H} | {P:,} | {rtrl:.3f} | {bptt:.4f} | {rtrl / bptt:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per hidden size (median)")
    args = parser.parse_args()
    with threadpool_limits(1):
        print(environment_header({"BLAS threads": 1}), end="\n\n")
        print(memory_table(), end="\n\n")
        print(time_table(args.repeats))


if __name__ == "__main__":
    main()
