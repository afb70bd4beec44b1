"""How Adam's first steps blow up the IRNN of docs/RESULTS.md section 7 at long T: the spectral
radius of its recurrent matrix R over the first training steps, Adam against SGD and against
Adam with Le et al.'s small input weights (a benchmark, not a test).

    python benchmarks/irnn_radius.py                          # T = 400, seed 1, 100 steps (about a minute)
    python benchmarks/irnn_radius.py --seq-len 200 --seed 2 --steps 80

Each variant trains the sweep's IRNN run (benchmarks/sweeps/adding_long.toml: ReLU, R = I,
b = 0, H = 100, batch 32, float32, clipping at 1, cosine schedule over the spec's steps) with the
library's training loop, so Adam's rows are that run's first steps to the last digit on the same
BLAS kernels. Printed per step: the spectral radius rho(R) = max |eigenvalue|, the largest
|entry| of R - I (how far the update moved any weight), rho(R)**T (how much a state direction can
grow over the sequence) and the training loss. With R = I the state integrates its input with
no margin: an update that lifts rho(R) by 0.5% grows the state by 1.005**T, 7x at T = 400.
A run stopped by a non-finite loss or gradient ends its table with "diverged at" its step.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from numpy_rnn.sweep import load_spec
from numpy_rnn.train import NonFiniteError, TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "benchmarks" / "sweeps" / "adding_long.toml"
#: variant -> the fields that differ from the sweep's IRNN run
VARIANTS = {"Adam lr 1e-3 (the sweep's)": {}, "SGD lr 1e-2": {"optimizer": "sgd", "lr": 0.01},
            "Adam lr 1e-3, W ~ N(0, 0.001^2) (Le et al.'s input weights)":
                {"init": {"R": "identity", "b": "zeros", "W": "normal:0.001"}}}
REPORT_STEPS = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 300, 500, 1000)


def irnn_config(seq_len: int, seed: int, changes: dict) -> TrainConfig:
    """The sweep's IRNN run at ``seq_len`` (its ``irnn-T<seq_len>`` entry), with ``changes``."""
    [configuration] = [c for c in load_spec(SPEC).configurations() if c.name == f"irnn-T{seq_len}"]
    return TrainConfig.from_dict({**configuration.config, **changes, "seed": seed, "out": None})


def radius_rows(config: TrainConfig, steps: int) -> list[tuple]:
    """(step, rho(R), max |R - I|, rho(R)**T, training loss) at the report steps up to ``steps``,
    until the run diverges (the last row then names the step)."""
    trainer = Trainer(config)
    rows, loss = [], math.nan
    for step in range(steps + 1):
        if step in REPORT_STEPS or step == steps:
            R = trainer.model.params["rnn.R"].astype(np.float64)  # (H, H)
            rho = float(np.max(np.abs(np.linalg.eigvals(R))))
            rows.append((step, rho, float(np.max(np.abs(R - np.eye(len(R))))), _power(rho, config.seq_len), loss))
        if step == steps:
            break
        try:
            loss, _ = trainer.train_step()
        except NonFiniteError as exc:
            rows.append((f"diverged at {exc.step}", math.nan, math.nan, math.nan, math.nan))
            break
    return rows


def _power(rho: float, seq_len: int) -> float:
    return math.exp(min(seq_len * math.log(rho), 700.0))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq-len", type=int, default=400, choices=(100, 200, 400, 750, 1000))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args(argv)
    for name, changes in VARIANTS.items():
        print(f"\nIRNN, T = {args.seq_len}, seed {args.seed}, {name}")
        print("| step | rho(R) | max abs(R - I) | rho(R)^T | training loss |\n|---|---|---|---|---|")
        for step, rho, moved, grown, loss in radius_rows(irnn_config(args.seq_len, args.seed, changes), args.steps):
            print(f"| {step} | {rho:.4f} | {moved:.2e} | {grown:.3g} | {loss:.4g} |")


if __name__ == "__main__":
    main()
