"""numpy-rnn's SimpleRNN, LSTM and GRU against torch.nn.RNN/LSTM/GRU and against the GEMM floor.

Run: ``python benchmarks/bench_layers.py [--threads 2,1] [--sizes small,large] [--cells rnn,lstm,gru]
[--dtypes float64,float32] [--hidden 64,128] [--repeats N] [--quick] [--extras]``. Prints one
markdown table with every row of issue 9's goals, from one run (about 15 minutes on the project's
2-core machine; ``--quick``: notebook and small sizes, H = 64, 3 repeats, about 3 minutes).

For each thread count (numpy's BLAS and torch alike, ``--threads``, default 2 then 1):

* a layer row per size x cell x dtype, forward + backward of a sum-of-outputs loss:

  - numpy-rnn: ``out, _ = layer.forward(x); layer.backward(np.ones_like(out))``;
  - torch (``batch_first=True``, same sizes and dtype): ``out, _ = m(x); out.sum().backward()``
    with ``x.requires_grad_()``, so that torch also computes the input gradient;
  - the **floor**: the GEMMs one layer cannot avoid (:func:`floor_gemms`), each timed alone on
    preallocated operands and ``out=`` arrays; their sum. ``efficiency = floor / numpy-rnn``;

* a training row per hidden size x cell x dtype: one full training step (forward, MSE,
  backward, ``clip_grad_norm``, Adam) of ``SequenceModel`` against ``nn.RNN/LSTM/GRU`` + a
  ``Linear`` head on the last step + ``mse_loss`` + ``clip_grad_norm_`` + Adam, on one batch of
  the adding problem (T = 150, B = 32; ``throughput.py``'s steppers); sequences per second.

All contenders of a row (the floor's six GEMMs, numpy-rnn, torch) are sampled in turn in the
same rounds and report medians (:func:`_timing.interleaved_medians`: pauses where the library
changes, a contention probe that drops disturbed rounds). The "goal" column marks each row met
or MISSED against issue 9 (:func:`goal`). ``--extras`` adds the 2-layer bidirectional
mixed-lengths rows (no floor, no goal) and SimpleRNN against the course notebook's per-sequence
loop (:class:`NotebookLoopRNN`).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from _timing import GEMM_N, PAUSE, HealthProbe, environment_header, interleaved_medians, matmul_gflops
from threadpoolctl import threadpool_limits
from throughput import numpy_stepper, torch_stepper
from torch.nn.utils.rnn import pack_padded_sequence

import numpy_rnn
from numpy_rnn import GRU, LSTM, SimpleRNN
from numpy_rnn.tasks import AddingTask


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
REPEATS = {"notebook": 7, "small": 7, "large": 3, "long": 7, "train": 5}  # large: seconds per call
LOOP_REPEATS = {"notebook": 15, "small": 5, "large": 3, "long": 7}  # the notebook loop is slow
QUICK_REPEATS = 3
MIN_SAMPLE = 0.03  # seconds: one sample is as many calls as last this long
# training rows: the adding problem of throughput.py
TRAIN_T, TRAIN_B, TRAIN_HIDDEN, TRAIN_LR, TRAIN_CLIP = 150, 32, (64, 128), 1e-3, 1.0
# issue 9's goals: large efficiency, small/long time ratio, training speed-up over torch
MIN_EFFICIENCY, MAX_RATIO, MIN_SPEEDUP = 0.85, {"small": 0.5, "long": 0.3}, 2.0
# numpy/torch at the notebook size before issue 9 (docs/benchmarks.md, README): threads -> (dtype, cell) -> ratio
BEFORE = {2: {("float64", "rnn"): 0.35, ("float64", "lstm"): 0.11, ("float64", "gru"): 0.33,
              ("float32", "rnn"): 0.34, ("float32", "lstm"): 0.66, ("float32", "gru"): 0.33},
          1: {("float64", "rnn"): 0.39, ("float64", "lstm"): 0.40, ("float64", "gru"): 0.33,
              ("float32", "rnn"): 0.39, ("float32", "lstm"): 0.68, ("float32", "gru"): 0.34}}


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


# ---------------------------------------------------------------- the floor
def floor_shapes(size: Size, gates: int) -> dict[str, tuple[int, tuple[int, int], tuple[int, int]]]:
    """The GEMMs one layer's forward + backward cannot avoid: ``name -> (calls, left shape,
    right shape)``, with ``TB = T B`` and ``GH = G H``:

    ======== ===== ============================ ===================
    name     calls product                      shape
    ======== ===== ============================ ===================
    x W      1     all steps' input projection  (TB, D) @ (D, GH)
    h R      T     ``h(t-1) R``                 (B, H) @ (H, GH)
    dz R^T   T     ``dh(t-1) = dz(t) R^T``      (B, GH) @ (GH, H)
    dR       1     ``h^T dz`` over all steps    (H, TB) @ (TB, GH)
    dW       1     ``x^T dz`` over all steps    (D, TB) @ (TB, GH)
    dx       1     ``dz W^T`` over all steps    (TB, GH) @ (GH, D)
    ======== ===== ============================ ===================

    ``2 TB GH D`` FLOPs for each of x W, dW, dx and ``2 TB GH H`` for each of the others.
    """
    T, B, D, H = size.T, size.B, size.D, size.H
    TB, GH = T * B, gates * H
    return {"x W": (1, (TB, D), (D, GH)), "h R": (T, (B, H), (H, GH)), "dz R^T": (T, (B, GH), (GH, H)),
            "dR": (1, (H, TB), (TB, GH)), "dW": (1, (D, TB), (TB, GH)), "dx": (1, (TB, GH), (GH, D))}


def floor_gemms(size: Size, gates: int, dtype) -> dict:
    """``name -> fn``: each of :func:`floor_shapes`' GEMMs on C-contiguous operands (each call
    its own left operand, as ``h(t-1)`` is each step's), into a preallocated ``out=`` array.

    Contiguous operands are the fastest layout: ``dz(t) @ R.T`` on the transposed view took
    12-50% longer than on a contiguous copy of ``R^T`` (OpenBLAS 0.3.31, 1 thread), so a
    layer that multiplies by the view sits above this floor.
    """
    rng, operands = np.random.default_rng(0), {}

    def operand(shape):  # values do not matter: operands of one shape are shared
        if shape not in operands:
            operands[shape] = rng.random(shape, dtype=dtype)
        return operands[shape]

    def gemm(calls, left, right):
        a, b, out = operand((calls, *left)), operand(right), np.empty((left[0], right[1]), dtype)

        def run():
            for t in range(calls):
                np.matmul(a[t], b, out=out)
        return run
    return {name: gemm(*shapes) for name, shapes in floor_shapes(size, gates).items()}


# ---------------------------------------------------------------- the contenders
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


def train_contenders(cell: str, dtype: str, hidden: int):
    """``{"numpy-rnn": fn, "torch": fn}``: one training step each on the same adding-problem batch."""
    x, y = AddingTask(TRAIN_T).sample(TRAIN_B, np.random.default_rng(0))
    return {name: stepper(cell, dtype, hidden, x, y, TRAIN_LR, TRAIN_CLIP)
            for name, stepper in (("numpy-rnn", numpy_stepper), ("torch", torch_stepper))}


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


# ---------------------------------------------------------------- rows
def measure(fns: dict, repeats: int, probe, warmup: int = 2) -> tuple[dict, tuple[int, int]]:
    """Interleaved medians of ``fns`` (numpy's functions share one thread pool, torch has its
    own) and the rounds kept/dropped. At most ``repeats`` + half as many rounds (>= 2 more) and
    5 s of waiting for a quiet machine per row: a contended machine cannot stretch the run far
    beyond its budget (its rows then show dropped rounds)."""
    timing = interleaved_medians(fns, repeats, probe=probe, min_sample=MIN_SAMPLE, warmup=warmup,
                                 groups={name: "torch" if name == "torch" else "numpy" for name in fns},
                                 max_rounds=repeats + max(2, repeats // 2), max_wait=5.0)
    return timing.medians, (timing.kept, timing.rejected)


def layer_row(threads: int, label: str, cell: str, size: Size, dtype: str, repeats: int, probe, *,
              floor: bool = True, **options) -> dict:
    """One layer row: the floor's parts (when ``floor``), numpy-rnn and torch, interleaved."""
    fns = contenders(cell, size, dtype, **options)
    parts = floor_gemms(size, CELLS[cell][2], DTYPES[dtype][0]) if floor else {}
    medians, rounds = measure({**parts, **fns}, repeats, probe, warmup=1 if label == "large" else 2)
    return {"threads": threads, "size": label, "cell": cell, "dtype": dtype, "np": medians["numpy-rnn"],
            "torch": medians["torch"], "parts": {name: medians[name] for name in parts},
            "floor": sum(medians[name] for name in parts) if floor else None, "rounds": rounds}


def train_row(threads: int, cell: str, dtype: str, hidden: int, repeats: int, probe) -> dict:
    """One training-throughput row: a training step of numpy-rnn and of torch, interleaved."""
    medians, rounds = measure(train_contenders(cell, dtype, hidden), repeats, probe)
    return {"threads": threads, "size": f"train H={hidden}", "cell": cell, "dtype": dtype, "np": medians["numpy-rnn"],
            "torch": medians["torch"], "parts": {}, "floor": None, "rounds": rounds}


def goal(row: dict) -> tuple[str, bool] | None:
    """Issue 9's goal for ``row``: the measured figure against it, and whether it is met."""
    size, ratio = row["size"], row["np"] / row["torch"]
    if size == "large":
        efficiency = row["floor"] / row["np"]
        return f"efficiency {efficiency:.2f} >= {MIN_EFFICIENCY}", efficiency >= MIN_EFFICIENCY
    if size in MAX_RATIO:
        return f"numpy/torch {ratio:.2f} <= {MAX_RATIO[size]}", ratio <= MAX_RATIO[size]
    if size == "notebook":
        before = BEFORE.get(row["threads"], {}).get((row["dtype"], row["cell"]))
        return (f"numpy/torch {ratio:.2f} <= {before} before", ratio <= before) if before else None
    if size.startswith("train"):
        speedup = row["torch"] / row["np"]
        return (f"{speedup:.2f}x torch's seq/s ({TRAIN_B / row['np']:.0f} vs {TRAIN_B / row['torch']:.0f}) "
                f">= {MIN_SPEEDUP:g}x", speedup >= MIN_SPEEDUP)
    return None


def _untrusted(row: dict) -> str:
    """A warning for a row whose every round the contention probe rejected, else ''."""
    return " (contended: no round kept)" if row["rounds"][0] == 0 else ""


TABLE_HEADER = ("| threads | size | cell | dtype | floor ms | numpy-rnn ms | torch ms | efficiency | numpy/torch "
                "| goal | rounds kept/dropped |\n|---|---|---|---|---|---|---|---|---|---|---|")


def print_row(row: dict) -> None:
    floor = "—" if row["floor"] is None else f"{row['floor'] * 1e3:.3f}"
    efficiency = "—" if row["floor"] is None else f"{row['floor'] / row['np']:.2f}"
    verdict = goal(row)
    text = "—" if verdict is None else f"{verdict[0]}: {'met' if verdict[1] else 'MISSED'}{_untrusted(row)}"
    kept, dropped = row["rounds"]
    print(f"| {row['threads']} | {row['size']} | {row['cell']} | {row['dtype']} | {floor} | {row['np'] * 1e3:.3f} "
          f"| {row['torch'] * 1e3:.3f} | {efficiency} | {row['np'] / row['torch']:.2f} | {text} | {kept}/{dropped} |")


def rows_for(threads: int, args, probe):
    """Every row of one thread count, as measured: sizes x cells x dtypes, the training rows,
    then (``--extras``) the 2-layer bidirectional mixed-lengths rows."""
    for name in args.sizes:
        for cell in args.cells:
            for dtype in args.dtypes:
                yield layer_row(threads, name, cell, SIZES[name], dtype, args.repeats or REPEATS[name], probe)
    for hidden in args.hidden:
        for cell in args.cells:
            for dtype in args.dtypes:
                yield train_row(threads, cell, dtype, hidden, args.repeats or REPEATS["train"], probe)
    if args.extras:
        size = SIZES["small"]
        for cell in args.cells:
            for dtype in args.dtypes:
                yield layer_row(threads, "small, 2-layer bidir, mixed lengths", cell, size, dtype,
                                args.repeats or REPEATS["small"], probe, floor=False, layers=2, bidirectional=True,
                                lengths=mixed_lengths(size))


def print_floor_parts(rows: list[dict]) -> None:
    """Where each floor's time goes: the median of each of its GEMMs."""
    rows = [row for row in rows if row["parts"]]
    if not rows:
        return
    names = list(rows[0]["parts"])
    print("\n## The floor's GEMMs (median ms, each timed alone; h R and dz R^T: all T calls)\n")
    print("| threads | size | cell | dtype | " + " | ".join(names) + " | floor |")
    print("|---" * (5 + len(names)) + "|")
    for row in rows:
        parts = " | ".join(f"{row['parts'][name] * 1e3:.3f}" for name in names)
        print(f"| {row['threads']} | {row['size']} | {row['cell']} | {row['dtype']} | {parts} | {row['floor'] * 1e3:.3f} |")


def print_goals(rows: list[dict]) -> None:
    """How many rows meet their goal, and the ones that do not."""
    verdicts = [(row, goal(row)) for row in rows]
    verdicts = [(row, v) for row, v in verdicts if v is not None]
    missed = [(row, v) for row, v in verdicts if not v[1]]
    print(f"\n## Goals: {len(verdicts) - len(missed)} met, {len(missed)} missed" + ("\n" if missed else ""))
    for row, (text, _) in missed:
        print(f"- MISSED: {row['threads']} thread(s), {row['size']} {row['cell']} {row['dtype']}: {text}{_untrusted(row)}")


def notebook_table(args, probes: dict) -> None:
    """SimpleRNN against the notebook's per-sequence loop at every thread count, chosen size and dtype."""
    print("\n## SimpleRNN vs the notebook's per-sequence loop (median ms per call)\n")
    print(f"notebook loop == SimpleRNN (float64, outputs and all gradients): max |diff| = {check_notebook_loop():.1e}\n")
    print("| threads | size | dtype | numpy-rnn ms | notebook loop ms | speed-up | rounds kept/dropped |")
    print("|---|---|---|---|---|---|---|")
    for threads, probe in probes.items():
        with using_threads(threads):
            for name in args.sizes:
                for dtype in args.dtypes:
                    repeats = min(args.repeats or LOOP_REPEATS[name], LOOP_REPEATS[name])
                    timing = interleaved_medians(notebook_contenders(SIZES[name], dtype), repeats, probe=probe,
                                                 warmup=1 if name == "large" else 2)
                    t_np, t_loop = timing.medians["numpy-rnn"], timing.medians["notebook loop"]
                    print(f"| {threads} | {name} | {dtype} | {t_np * 1e3:.3f} | {t_loop * 1e3:.3f} "
                          f"| {t_loop / t_np:.1f}x | {timing.kept}/{timing.rejected} |")


# ---------------------------------------------------------------- command line
def parse_args(argv=None):
    """Command-line options; ``--quick`` means notebook and small sizes, H = 64, 3 repeats."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="2,1",
                        help="comma-separated thread counts of numpy's BLAS and torch, measured in turn (default 2,1)")
    parser.add_argument("--sizes", help=f"comma-separated, from {', '.join(SIZES)} (default: all)")
    parser.add_argument("--cells", default="rnn,lstm,gru", help=f"comma-separated, from {', '.join(CELLS)}")
    parser.add_argument("--dtypes", default="float64,float32", help=f"comma-separated, from {', '.join(DTYPES)}")
    parser.add_argument("--hidden", help="comma-separated hidden sizes of the training rows, '' for none "
                        f"(default {','.join(map(str, TRAIN_HIDDEN))})")
    parser.add_argument("--repeats", type=int, help="samples per contender (default: per size)")
    parser.add_argument("--quick", action="store_true", help="sizes notebook,small, training H=64, 3 repeats")
    parser.add_argument("--extras", action="store_true",
                        help="also the 2-layer bidirectional mixed-lengths rows and the notebook-loop table")
    args = parser.parse_args(argv)
    args.threads = _ints(parser, "--threads", args.threads)
    args.sizes = _choices(parser, "--sizes", args.sizes or ("notebook,small" if args.quick else ",".join(SIZES)), SIZES)
    args.cells = _choices(parser, "--cells", args.cells, CELLS)
    args.dtypes = _choices(parser, "--dtypes", args.dtypes, DTYPES)
    hidden = args.hidden if args.hidden is not None else str(TRAIN_HIDDEN[0]) if args.quick else None
    args.hidden = list(TRAIN_HIDDEN) if hidden is None else _ints(parser, "--hidden", hidden, empty=True)
    if args.repeats is None and args.quick:
        args.repeats = QUICK_REPEATS
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats: expected an int >= 1, got {args.repeats}")
    return args


def _choices(parser, flag, text, registry) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in registry]
    if unknown or not names:
        parser.error(f"{flag}: unknown {unknown or text!r}; valid names: {', '.join(registry)}")
    return names


def _ints(parser, flag, text, empty=False) -> list[int]:
    words = [word.strip() for word in text.split(",") if word.strip()]
    if not all(word.isdigit() and int(word) >= 1 for word in words) or not (words or empty):
        parser.error(f"{flag}: expected comma-separated ints >= 1, got {text!r}")
    return [int(word) for word in words]


@contextlib.contextmanager
def using_threads(threads: int):
    """numpy's BLAS and torch both on ``threads`` threads inside the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


def machine_rates(args, probes: dict) -> str:
    """``threads N: matmul ... GFLOP/s`` for every thread count, a 2048^2 matmul per dtype."""
    lines = []
    for threads, probe in probes.items():
        with using_threads(threads):
            rates = ", ".join(f"{d} {matmul_gflops(DTYPES[d][0], repeats=3, probe=probe):.1f}" for d in args.dtypes)
        lines.append(f"- {threads} thread(s): matmul {GEMM_N}x{GEMM_N} @ {GEMM_N}x{GEMM_N} GFLOP/s {rates}; "
                     f"probe best {probe.best * 1e3:.1f} ms")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # a long run shows every line as it comes, also into a file
    started = time.perf_counter()
    print("# numpy-rnn layer benchmark: issue 9's goals\n")
    print(environment_header({"numpy-rnn": numpy_rnn.__version__, "torch": torch.__version__,
                              "threads measured": ", ".join(map(str, args.threads))}))
    probes = {}
    for threads in args.threads:
        with using_threads(threads):
            probes[threads] = HealthProbe()
    print(machine_rates(args, probes))
    print(f"- every round, and every switch between numpy and torch within it, starts with a {PAUSE} s pause; a round "
          f"counts only when a 1024x1024 float64 matmul probe (same threads) before and after it is within "
          f"{probes[args.threads[0]].tolerance}x of its best (else it is dropped and re-run)")
    print("\n## Every goal (median ms per call: forward + backward; training rows: one training step)\n")
    print(TABLE_HEADER)
    rows = []
    for threads in args.threads:
        with using_threads(threads):
            for row in rows_for(threads, args, probes[threads]):
                print_row(row)
                rows.append(row)
    print_floor_parts(rows)
    print_goals(rows)
    if args.extras and "rnn" in args.cells:
        notebook_table(args, probes)
    print("\n- at the end:\n" + machine_rates(args, probes))
    print(f"- total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
