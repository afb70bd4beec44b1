"""numpy-rnn's SimpleRNN, LSTM and GRU against torch.nn.RNN/LSTM/GRU, side by side.

Run: ``python benchmarks/bench_layers.py [--sizes small,large] [--cells rnn,lstm,gru]
[--dtypes float64,float32] [--repeats N] [--quick]``. Prints markdown tables.

Each measurement is forward + backward of a sum-of-outputs loss:

* numpy-rnn: ``out, _ = layer.forward(x); layer.backward(np.ones_like(out))``;
* torch (``torch.set_num_threads(2)`` as numpy's BLAS, or ``--threads``; ``batch_first=True``, same
  sizes and dtype):
  ``out, _ = m(x); out.sum().backward()`` with ``x.requires_grad_()``, so that torch also
  computes the input gradient, as numpy-rnn always does.

The two are sampled in turn and each reports its median over the repeats (after a warm-up).
GFLOP/s counts only the matmuls of forward and backward, ``6 T B G H (D + H)`` per layer and
direction (projection ``2TBD*GH`` and recurrence ``2TBH*GH`` forward; ``dx``, ``dW`` ``2TBD*GH``
each and ``dh``, ``dR`` ``2TBH*GH`` each backward), against a ``2048 x 2048`` matmul of the same
dtype measured in the same run. SimpleRNN is also compared with the course notebook's
per-sequence loop (:class:`NotebookLoopRNN`).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from _timing import GEMM_N, PAUSE, HealthProbe, environment_header, interleaved_medians, matmul_gflops
from threadpoolctl import threadpool_limits
from torch.nn.utils.rnn import pack_padded_sequence

import numpy_rnn
from numpy_rnn import GRU, LSTM, SimpleRNN


@dataclass(frozen=True)
class Size:
    """A benchmark size: batch B, time steps T, input D, hidden H."""

    B: int
    T: int
    D: int
    H: int


SIZES = {
    "notebook": Size(1, 5, 5, 10),
    "small": Size(32, 100, 32, 128),
    "large": Size(64, 200, 256, 512),
    "long": Size(1, 1000, 8, 64),
}
# cell name -> (numpy-rnn layer, torch module, number of gates G)
CELLS = {"rnn": (SimpleRNN, torch.nn.RNN, 1), "lstm": (LSTM, torch.nn.LSTM, 4), "gru": (GRU, torch.nn.GRU, 3)}
DTYPES = {"float64": (np.float64, torch.float64), "float32": (np.float32, torch.float32)}
REPEATS = {"notebook": 11, "small": 15, "large": 5, "long": 11}
LOOP_REPEATS = {"notebook": 15, "small": 5, "large": 3, "long": 7}  # the notebook loop is slow
QUICK_REPEATS = 3
# (cell, size) -> (largest numpy/torch time ratio, smallest fraction of matmul GFLOP/s)
TARGETS = {("rnn", "small"): (0.5, None), ("rnn", "large"): (None, 0.70),
           ("lstm", "small"): (0.7, None), ("lstm", "large"): (None, 0.60),
           ("gru", "small"): (0.7, None), ("gru", "large"): (None, 0.60)}


# ---------------------------------------------------------------- the notebook's approach
class NotebookLoopRNN:
    """The course notebook's Elman RNN maths, vectorisation-free, over a batch of sequences.

    Faithful to the notebook's approach: one sequence at a time, column vectors
    ``s_t = W^T x_t + R^T a_{t-1} + b_s``, a Python loop over time, and the backward step
    ``delta_t = (d_out_t + delta_{t+1} R^T) diag(diag(1 - a_t a_t^T))`` with transposed
    gradients ``dW (H, D)``, ``dR (H, H)``, ``dbs (1, H)`` as the notebook keeps them. Its
    loss is the sum of all outputs ``a(t)`` instead of a read-out of the last one, and it
    also returns ``dx`` (``delta_t W^T``), so that it does the same work as ``SimpleRNN``.
    """

    def __init__(self, W, R, b):
        self.W, self.R, self.bs = W, R, b.reshape(-1, 1)  # W (D, H), R (H, H), bs (H, 1)
        self.hidden_size = R.shape[0]

    def forward(self, x):
        """``x (B, T, D)`` -> ``a (B, T, H)``, one sequence and one step at a time."""
        B, T, _ = x.shape
        out = np.empty((B, T, self.hidden_size), dtype=x.dtype)
        self.x, self.a = [], []
        for n in range(B):
            xs = np.expand_dims(x[n], axis=2)  # (T, D, 1) column vectors
            a = {0: np.zeros((self.hidden_size, 1), dtype=x.dtype)}
            for i in range(T):
                s_t = self.W.T @ xs[i] + self.R.T @ a[i] + self.bs
                a[i + 1] = np.tanh(s_t)
                out[n, i] = a[i + 1][:, 0]
            self.x.append(xs)
            self.a.append(a)
        return out

    def backward(self, d_out):
        """BPTT per sequence with the notebook's ``np.diag`` derivative; returns ``dx``."""
        dtype, H = d_out.dtype, self.hidden_size
        dW = np.zeros(self.W.T.shape, dtype=dtype)
        dR = np.zeros(self.R.T.shape, dtype=dtype)
        dbs = np.zeros(self.bs.T.shape, dtype=dtype)
        dx = np.empty((len(self.x),) + self.x[0].shape[:2], dtype=dtype)
        for n, (xs, a) in enumerate(zip(self.x, self.a)):
            delta_t = np.zeros((1, H), dtype=dtype)
            for i in reversed(range(1, len(a))):
                delta_t = (d_out[n, i - 1][None, :] + delta_t @ self.R.T) @ np.diag(np.diag(1 - a[i] @ a[i].T))
                dW += delta_t.T @ xs[i - 1].T
                dR += delta_t.T @ a[i - 1].T
                dbs += delta_t
                dx[n, i - 1] = (delta_t @ self.W.T)[0]
        self.grads = {"dW": dW, "dR": dR, "dbs": dbs}
        return dx


def check_notebook_loop(size: Size = SIZES["notebook"], batch: int = 3) -> float:
    """Largest difference between :class:`NotebookLoopRNN` and ``SimpleRNN`` (outputs and all
    gradients, float64): the loop is a faithful stand-in only if this is ~1e-15."""
    rng = np.random.default_rng(1)
    layer = SimpleRNN(size.D, size.H, rng=rng)
    loop = NotebookLoopRNN(layer.params["W"], layer.params["R"], layer.params["b"])
    x = rng.standard_normal((batch, size.T, size.D))
    d_out = rng.standard_normal((batch, size.T, size.H))
    out, _ = layer.forward(x)
    dx = layer.backward(d_out)[0]
    diffs = [out - loop.forward(x), dx - loop.backward(d_out), layer.grads["W"] - loop.grads["dW"].T,
             layer.grads["R"] - loop.grads["dR"].T, layer.grads["b"] - loop.grads["dbs"][0]]
    return max(float(np.max(np.abs(d))) for d in diffs)


# ---------------------------------------------------------------- the contenders
def matmul_flops(size: Size, gates: int, layers: int = 1, directions: int = 1) -> float:
    """Forward + backward matmul FLOPs: ``6 T B G H (D_in + H)`` per layer and direction."""
    TB, GH, H = size.T * size.B, gates * size.H, size.H
    total = 0.0
    for layer in range(layers):
        d_in = size.D if layer == 0 else directions * H
        total += directions * 6.0 * TB * GH * (d_in + H)
    return total


def numpy_step(layer, x, lengths=None):
    """One forward + backward of numpy-rnn with the sum-of-outputs loss."""
    def run():
        out, _ = layer.forward(x, lengths=lengths)
        layer.backward(np.ones_like(out))
    return run


def torch_step(module, x, lengths=None):
    """One forward + backward of torch with the sum-of-outputs loss (packed when ``lengths``)."""
    def run():
        if lengths is None:
            out, _ = module(x)
            out.sum().backward()
        else:
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = module(packed)
            out.data.sum().backward()
    return run


def contenders(cell: str, size: Size, dtype: str, *, layers=1, bidirectional=False, lengths=None):
    """``{"numpy-rnn": fn, "torch": fn}`` for one row, on the same random input."""
    np_cls, torch_cls, _ = CELLS[cell]
    np_dtype, torch_dtype = DTYPES[dtype]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((size.B, size.T, size.D)).astype(np_dtype)
    layer = np_cls(size.D, size.H, layers, bidirectional=bidirectional, rng=rng, dtype=np_dtype)
    module = torch_cls(size.D, size.H, layers, bidirectional=bidirectional, batch_first=True, dtype=torch_dtype)
    x_t = torch.from_numpy(x.copy()).requires_grad_()
    lengths_t = None if lengths is None else torch.from_numpy(lengths)
    return {"numpy-rnn": numpy_step(layer, x, lengths), "torch": torch_step(module, x_t, lengths_t)}


def notebook_contenders(size: Size, dtype: str):
    """``{"numpy-rnn": fn, "notebook loop": fn}``: SimpleRNN and the notebook's approach."""
    np_dtype = DTYPES[dtype][0]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((size.B, size.T, size.D)).astype(np_dtype)
    layer = SimpleRNN(size.D, size.H, rng=rng, dtype=np_dtype)
    loop = NotebookLoopRNN(layer.params["W"], layer.params["R"], layer.params["b"])

    def run_loop():
        out = loop.forward(x)
        loop.backward(np.ones_like(out))
    return {"numpy-rnn": numpy_step(layer, x), "notebook loop": run_loop}


def mixed_lengths(size: Size) -> np.ndarray:
    """Lengths spread over ``[T/2, T]`` in no order, one sequence of full length."""
    lengths = np.random.default_rng(2).integers(size.T // 2, size.T + 1, size=size.B)
    lengths[size.B // 2] = size.T
    return lengths.astype(np.int64)


# ---------------------------------------------------------------- rows and tables
def layer_row(label, cell, size, dtype, repeats, gemm, probe, **options) -> dict:
    """Measure one row of the numpy-rnn vs torch table."""
    layers = options.get("layers", 1)
    directions = 2 if options.get("bidirectional") else 1
    timing = interleaved_medians(contenders(cell, size, dtype, **options), repeats, probe=probe)
    t_np, t_torch = timing.medians["numpy-rnn"], timing.medians["torch"]
    gflops = matmul_flops(size, CELLS[cell][2], layers, directions) / t_np / 1e9
    return {"label": label, "cell": cell, "dtype": dtype, "np": t_np, "torch": t_torch, "ratio": t_np / t_torch,
            "gflops": gflops, "fraction": gflops / gemm[dtype], "rounds": f"{timing.kept}/{timing.rejected}"}


def print_layer_row(row: dict) -> None:
    print(f"| {row['label']} | {row['cell']} | {row['dtype']} | {row['np'] * 1e3:.3f} | {row['torch'] * 1e3:.3f} | "
          f"{row['ratio']:.2f} | {row['gflops']:.3g} | {row['fraction']:.1%} | {row['rounds']} |", flush=True)


def layer_table(args, gemm, probe) -> list[dict]:
    """Every size x cell x dtype row, then the 2-layer bidirectional mixed-lengths rows."""
    print("\n## numpy-rnn vs torch (forward + backward, median ms per call)\n")
    print("| size | cell | dtype | numpy-rnn ms | torch ms | numpy/torch | numpy GFLOP/s | of matmul | rounds kept/dropped |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in args.sizes:
        for cell in args.cells:
            for dtype in args.dtypes:
                rows.append(layer_row(name, cell, SIZES[name], dtype, args.repeats or REPEATS[name], gemm, probe))
                print_layer_row(rows[-1])
    size = SIZES["small"]
    for cell in args.cells:
        for dtype in args.dtypes:
            rows.append(layer_row("small, 2-layer bidir, mixed lengths", cell, size, dtype,
                                  args.repeats or REPEATS["small"], gemm, probe, layers=2, bidirectional=True,
                                  lengths=mixed_lengths(size)))
            print_layer_row(rows[-1])
    return rows


def notebook_table(args, probe) -> None:
    """SimpleRNN against the notebook's per-sequence loop at every chosen size and dtype."""
    print("\n## SimpleRNN vs the notebook's per-sequence loop (median ms per call)\n")
    print(f"notebook loop == SimpleRNN (float64, outputs and all gradients): max |diff| = {check_notebook_loop():.1e}\n")
    print("| size | dtype | numpy-rnn ms | notebook loop ms | speed-up | rounds kept/dropped |")
    print("|---|---|---|---|---|---|")
    for name in args.sizes:
        for dtype in args.dtypes:
            repeats = min(args.repeats or LOOP_REPEATS[name], LOOP_REPEATS[name])
            timing = interleaved_medians(notebook_contenders(SIZES[name], dtype), repeats, probe=probe,
                                         warmup=1 if name == "large" else 2)
            t_np, t_loop = timing.medians["numpy-rnn"], timing.medians["notebook loop"]
            print(f"| {name} | {dtype} | {t_np * 1e3:.3f} | {t_loop * 1e3:.3f} | {t_loop / t_np:.1f}x | "
                  f"{timing.kept}/{timing.rejected} |", flush=True)


def print_targets(rows: list[dict]) -> None:
    """The issues' targets, per dtype, for the rows that were measured."""
    print("\n## Targets\n")
    for row in rows:
        target = TARGETS.get((row["cell"], row["label"]))
        if target is None:
            continue
        max_ratio, min_fraction = target
        if max_ratio is not None:
            ok = row["ratio"] <= max_ratio
            what = f"numpy/torch {row['ratio']:.2f} <= {max_ratio}"
        else:
            ok = row["fraction"] >= min_fraction
            what = f"{row['fraction']:.0%} of matmul GFLOP/s >= {min_fraction:.0%}"
        print(f"- {row['cell']} {row['label']} {row['dtype']}: {what}: {'met' if ok else 'MISSED'}")


# ---------------------------------------------------------------- command line
def parse_args(argv=None):
    """Command-line options; ``--quick`` means notebook and small sizes, 3 repeats."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help=f"comma-separated, from {', '.join(SIZES)} (default: all)")
    parser.add_argument("--cells", default="rnn,lstm,gru", help=f"comma-separated, from {', '.join(CELLS)}")
    parser.add_argument("--dtypes", default="float64,float32", help=f"comma-separated, from {', '.join(DTYPES)}")
    parser.add_argument("--repeats", type=int, help="samples per contender (default: per size)")
    parser.add_argument("--quick", action="store_true", help="sizes notebook,small and 3 repeats")
    parser.add_argument("--no-notebook-loop", action="store_true", help="skip the notebook-loop table")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads of numpy's BLAS and of torch (default 2: both cores of the project's machine)")
    args = parser.parse_args(argv)
    default_sizes = "notebook,small" if args.quick else ",".join(SIZES)
    args.sizes = _choices(parser, "--sizes", args.sizes or default_sizes, SIZES)
    args.cells = _choices(parser, "--cells", args.cells, CELLS)
    args.dtypes = _choices(parser, "--dtypes", args.dtypes, DTYPES)
    if args.repeats is None and args.quick:
        args.repeats = QUICK_REPEATS
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats: expected an int >= 1, got {args.repeats}")
    if args.threads < 1:
        parser.error(f"--threads: expected an int >= 1, got {args.threads}")
    return args


def _choices(parser, flag, text, registry) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in registry]
    if unknown or not names:
        parser.error(f"{flag}: unknown {unknown or text!r}; valid names: {', '.join(registry)}")
    return names


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    blas_limit = threadpool_limits(limits=args.threads, user_api="blas")  # noqa: F841 (held for the run)
    started = time.perf_counter()
    print("# numpy-rnn layer benchmark\n")
    print(environment_header({"numpy-rnn": numpy_rnn.__version__,
                              "torch": f"{torch.__version__}, {torch.get_num_threads()} threads"}))
    probe = HealthProbe()
    gemm = {dtype: matmul_gflops(DTYPES[dtype][0], probe=probe) for dtype in args.dtypes}
    print(f"- matmul {GEMM_N}x{GEMM_N} @ {GEMM_N}x{GEMM_N}: " + ", ".join(f"{d} {g:.1f} GFLOP/s" for d, g in gemm.items()))
    print(f"- every sample follows a {PAUSE} s pause; a round counts only when a 1024x1024 float64 matmul probe"
          f" before and after it is within {probe.tolerance}x of its best (else it is dropped and re-run);"
          f" probe best at the start {probe.best * 1e3:.1f} ms")
    rows = layer_table(args, gemm, probe)
    if "rnn" in args.cells and not args.no_notebook_loop:
        notebook_table(args, probe)
    print_targets(rows)
    gemm_end = {dtype: matmul_gflops(DTYPES[dtype][0], probe=probe) for dtype in args.dtypes}
    print("\n- matmul again at the end: " + ", ".join(f"{d} {g:.1f} GFLOP/s" for d, g in gemm_end.items()))
    print(f"- probe best at the end {probe.best * 1e3:.1f} ms; total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
