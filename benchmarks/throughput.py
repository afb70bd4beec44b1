"""Training throughput of numpy-rnn and PyTorch side by side (docs/RESULTS.md, section 3): one full
training step (forward, MSE, backward, clipping, Adam) of the same model on the adding problem,
interleaved in one process, float64 and float32, for rnn, lstm and gru (a benchmark, not a test).

    python benchmarks/throughput.py                    # T 150, H 64, B 32, 1 thread (about 2 min)
    python benchmarks/throughput.py --quick            # a smoke run: 10 steps per sample, 1 round
    python benchmarks/throughput.py --threads 2 --hidden-size 128

The table is printed as Markdown and stored as ``runs/results/throughput-<threads>thread.json``.
The training runs of docs/RESULTS.md (sections 1 and 2) are sweeps: ``benchmarks/sweeps/*.toml``.

Threads: numpy's BLAS and torch use ``--threads`` threads (default 1: the machine has two
cores and is shared). Set ``OPENBLAS_NUM_THREADS`` and ``OMP_NUM_THREADS`` to the same number
before the start as well, since some BLAS builds read them only when loaded.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from numpy_rnn.losses import get_loss
from numpy_rnn.models import ModelConfig, SequenceModel
from numpy_rnn.optim import clip_grad_norm, get_optimizer
from numpy_rnn.tasks import AddingTask
from numpy_rnn.train import run_environment

RUNS = Path(__file__).resolve().parents[1] / "runs" / "results"


# ----------------------------------------------------------------------------- throughput
def numpy_stepper(cell: str, dtype: str, H: int, x: np.ndarray, y: np.ndarray, lr: float, clip: float):
    """One training step of numpy-rnn's SequenceModel on the fixed batch (x, y)."""
    model = SequenceModel(ModelConfig(input_size=x.shape[-1], output_size=y.shape[-1], cell=cell, hidden_size=H,
                                      dtype=dtype), np.random.default_rng(0))
    optimizer = get_optimizer("adam", model.params, lr=lr)
    loss_fn = get_loss("mse")
    x, y = x.astype(dtype), y.astype(dtype)

    def step():
        model.zero_grad()
        y_hat, _ = model.forward(x)
        loss, dy = loss_fn(y_hat, y)
        model.backward(dy)
        clip_grad_norm(model.grads, clip)
        optimizer.step(model.grads)
        return loss
    return step


def torch_stepper(cell: str, dtype: str, H: int, x: np.ndarray, y: np.ndarray, lr: float, clip: float):
    """The same step in torch: nn.RNN/LSTM/GRU (batch first), a Linear head on the last state,
    MSE, clip_grad_norm_, Adam (single-tensor path, as numpy-rnn's)."""
    import torch

    torch.manual_seed(0)
    tdtype = getattr(torch, dtype)
    layer = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = layer(x.shape[-1], H, batch_first=True).to(tdtype)
    head = torch.nn.Linear(H, y.shape[-1]).to(tdtype)
    params = [*rnn.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr, foreach=False)
    xt, yt = torch.from_numpy(x.astype(dtype)), torch.from_numpy(y.astype(dtype))

    def step():
        optimizer.zero_grad()
        _, state = rnn(xt)
        h_n = state[0] if isinstance(state, tuple) else state
        loss = torch.nn.functional.mse_loss(head(h_n[-1]), yt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        return loss.item()
    return step


def time_steps(step, n: int) -> float:
    """Seconds per step over ``n`` steps."""
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n


def run_throughput(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    T, H, B = args.seq_len, args.hidden_size, args.batch_size
    n = 10 if args.quick else args.steps
    rounds = 1 if args.quick else args.rounds
    x, y = AddingTask(T).sample(B, np.random.default_rng(0))
    rows = ["| cell | dtype | numpy-rnn seq/s | torch seq/s | torch / numpy-rnn | numpy-rnn ms/step | torch ms/step |",
            "|---|---|---|---|---|---|---|"]
    report = {"T": T, "H": H, "B": B, "steps_per_sample": n, "rounds": rounds, "threads": args.threads,
              "torch": torch.__version__, "numpy": np.__version__, "results": {}}
    print(f"throughput: adding problem T={T}, H={H}, B={B}, Adam + clipping; {rounds} interleaved rounds of "
          f"{n} steps after {args.warmup} warm-up steps; {args.threads} thread(s)", flush=True)
    for cell in args.cells:
        for dtype in args.dtypes:
            steppers = {"numpy-rnn": numpy_stepper(cell, dtype, H, x, y, 1e-3, 1.0),
                        "torch": torch_stepper(cell, dtype, H, x, y, 1e-3, 1.0)}
            for step in steppers.values():
                for _ in range(args.warmup):
                    step()
            times = {key: [] for key in steppers}
            for r in range(rounds):
                order = list(steppers) if r % 2 == 0 else list(reversed(steppers))
                for key in order:
                    time.sleep(0.2)  # let the other library's thread pool go idle
                    times[key].append(time_steps(steppers[key], n))
            med = {key: statistics.median(v) for key, v in times.items()}
            rate = {key: B / t for key, t in med.items()}
            ratio = rate["torch"] / rate["numpy-rnn"]
            report["results"][f"{cell}-{dtype}"] = {"seconds_per_step": med, "sequences_per_second": rate,
                                                   "all_seconds_per_step": times, "torch_over_numpy": ratio}
            rows.append(f"| {cell} | {dtype} | {rate['numpy-rnn']:.0f} | {rate['torch']:.0f} | {ratio:.2f} "
                        f"| {1e3 * med['numpy-rnn']:.1f} | {1e3 * med['torch']:.1f} |")
            print(rows[-1], flush=True)
    print("\n" + "\n".join(rows) + "\n", flush=True)
    report["table"] = "\n".join(rows)
    return report


# ----------------------------------------------------------------------------- main
def machine() -> dict:
    """Where the table was measured: :func:`numpy_rnn.train.run_environment` and the thread variables."""
    return {**run_environment(), "machine": platform.machine(),
            "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 10 steps per sample, one round")
    p.add_argument("--threads", type=int, default=1, help="BLAS and torch threads (default 1)")
    p.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"], choices=["rnn", "lstm", "gru"])
    p.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    p.add_argument("--seq-len", type=int, default=150, help="T (default 150)")
    p.add_argument("--hidden-size", type=int, default=64, help="H (default 64, as the adding runs)")
    p.add_argument("--batch-size", type=int, default=32, help="B (default 32, as the adding runs)")
    p.add_argument("--steps", type=int, default=50, help="timed steps per sample (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved samples per library; medians (default 5)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
    except ImportError:
        pass
    RUNS.mkdir(parents=True, exist_ok=True)
    print(f"machine: {json.dumps(machine())}", flush=True)
    report = run_throughput(args)
    suffix = "-quick" if args.quick else ""
    (RUNS / f"throughput-{args.threads}thread{suffix}.json").write_text(
        json.dumps({**report, "machine": machine()}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
