"""Reproduce the results of docs/RESULTS.md: training runs on the classic tasks and a training
throughput comparison with PyTorch (benchmarks, not tests).

    python benchmarks/results.py                       # everything (about 20 min on one core)
    python benchmarks/results.py --quick               # a smoke run: few steps, seed 0, no docs
    python benchmarks/results.py --only memory         # a group: memory, adding, throughput
    python benchmarks/results.py --only adding-irnn --seeds 0 1 2
    python benchmarks/results.py --list                # the experiments and their configurations

Groups and experiments:

* ``memory``: the notebook's RNN (R = I, LeCun W and V, tanh) on the course's memory task at
  T = 20 (recall the first of 20 values drawn from U(-1, 1); baseline MSE 1/3), with the recipe
  that solves it and the demo's recipe (T = 10) that does not carry over to T = 20.
* ``adding``: the adding problem of Le, Jaitly & Hinton (2015) at T = 150 (baseline MSE 1/6)
  with an IRNN (ReLU, R = I, b = 0), a tanh RNN with the default (torch) initialisation and an
  LSTM; Adam with gradient-norm clipping instead of the paper's SGD with clipping.
* ``throughput``: sequences per second of one training step (forward, backward, clipping,
  Adam) of the same model in numpy-rnn and in torch on the adding problem, interleaved in one
  process, float64 and float32, for rnn, lstm and gru.

Training runs go to ``runs/results/<experiment>/seed<k>/`` (``runs/results/quick/...`` with
``--quick``): the training loop's config.json, metrics.jsonl, checkpoint.ckpt and summary.json,
plus loss.png. A finished run is not trained again (its summary is read back); an interrupted
one is resumed from its checkpoint; ``--rerun`` deletes the selected runs first. Tables are
printed as Markdown and stored as ``runs/results/<group>.json`` (throughput:
``runs/results/throughput-<threads>thread.json``); figures are written to
``docs/results/`` (``runs/results/quick/figures/`` with ``--quick``).

Threads: numpy's BLAS and torch use ``--threads`` threads (default 1: the machine has two
cores and is shared). Set ``OPENBLAS_NUM_THREADS`` and ``OMP_NUM_THREADS`` to the same number
before the start as well, since some BLAS builds read them only when loaded.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from numpy_rnn.losses import get_loss
from numpy_rnn.models import ModelConfig, SequenceModel
from numpy_rnn.optim import clip_grad_norm, get_optimizer
from numpy_rnn.plot import plot_history
from numpy_rnn.tasks import AddingTask
from numpy_rnn.train import METRICS_FILE, SUMMARY_FILE, TrainConfig, Trainer, run_exists

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "results"
DOCS = ROOT / "docs" / "results"
#: success thresholds on the test MSE: (words, value as a function of the baseline MSE)
TARGETS = {"memory": ("< 1% of the baseline", lambda baseline: 0.01 * baseline),
           "adding": ("< 0.01 (6% of the baseline)", lambda baseline: 0.01)}

# ----------------------------------------------------------------------------- experiments
# name -> (group, label, TrainConfig fields). Every run of an experiment differs only in its seed.
_MEMORY = dict(task="memory", model="notebook", seq_len=20, eval_every=500, checkpoint_every=0)
_ADDING = dict(task="adding", seq_len=150, hidden_size=64, batch_size=32, eval_every=250, checkpoint_every=0)
_IRNN = dict(cell="rnn", nonlinearity="relu", init={"R": "identity", "b": "zeros"})
EXPERIMENTS = {
    # the recipe that works: H 64, batch 64, warm-up 1000 steps to lr 3e-3, cosine decay, 20k steps
    "memory-t20": ("memory", "H 64, B 64, lr 3e-3, warm-up 1000, cosine, 20k steps",
                   dict(_MEMORY, hidden_size=64, batch_size=64, lr=3e-3, warmup=1000, schedule="cosine",
                        steps=20000)),
    # the same without warm-up, to see what the warm-up is worth
    "memory-t20-nowarmup": ("memory", "as memory-t20 without warm-up",
                            dict(_MEMORY, hidden_size=64, batch_size=64, lr=3e-3, schedule="cosine",
                                 steps=20000)),
    # the recipe with the demo's width H 32
    "memory-t20-h32": ("memory", "as memory-t20 with H 32",
                       dict(_MEMORY, hidden_size=32, batch_size=64, lr=3e-3, warmup=1000, schedule="cosine",
                            steps=20000)),
    # ... and with H 32 and batch 32: is it the batch or the warm-up?
    "memory-t20-h32-b32": ("memory", "as memory-t20 with H 32, B 32",
                           dict(_MEMORY, hidden_size=32, batch_size=32, lr=3e-3, warmup=1000, schedule="cosine",
                                steps=20000)),
    # the demo's recipe (which solves T = 10) applied to T = 20
    "memory-t20-demo": ("memory", "the demo's recipe: H 32, B 32, lr 3e-3, cosine, 4k steps",
                        dict(_MEMORY, hidden_size=32, batch_size=32, lr=3e-3, schedule="cosine", steps=4000)),
    # ... and with 20k steps: is it only a matter of steps?
    "memory-t20-demo-20k": ("memory", "the demo's recipe with 20k steps",
                            dict(_MEMORY, hidden_size=32, batch_size=32, lr=3e-3, schedule="cosine", steps=20000)),
    # Le, Jaitly & Hinton (2015): the adding problem at T = 150
    "adding-irnn": ("adding", "IRNN (ReLU, R = I, b = 0), Adam lr 1e-3, cosine, 10k steps",
                    dict(_ADDING, **_IRNN, lr=1e-3, schedule="cosine", steps=10000)),
    "adding-irnn-paper-init": ("adding", "IRNN with the paper's W ~ N(0, 0.001^2), Adam lr 1e-3, cosine, 10k steps",
                               dict(_ADDING, **{**_IRNN, "init": {**_IRNN["init"], "W": "normal:0.001"}},
                                    lr=1e-3, schedule="cosine", steps=10000)),
    "adding-tanh": ("adding", "tanh RNN, default init, Adam lr 1e-3, cosine, 10k steps",
                    dict(_ADDING, cell="rnn", lr=1e-3, schedule="cosine", steps=10000)),
    "adding-lstm": ("adding", "LSTM, default init, Adam lr 3e-3 constant, 8k steps",
                    dict(_ADDING, cell="lstm", lr=3e-3, steps=8000)),
}
GROUPS = {"memory": [n for n, e in EXPERIMENTS.items() if e[0] == "memory"],
          "adding": [n for n, e in EXPERIMENTS.items() if e[0] == "adding"],
          "throughput": []}
DEFAULT_SEEDS = {"memory": [0, 1, 2], "adding": [0, 1, 2]}
QUICK_STEPS = 300  # --quick: steps per run (at most the experiment's)


def experiment_config(name: str, seed: int, quick: bool) -> TrainConfig:
    _, _, fields = EXPERIMENTS[name]
    fields = dict(fields, seed=seed, out=str(run_folder(name, seed, quick)))
    if quick:
        steps = min(fields["steps"], QUICK_STEPS)
        fields.update(steps=steps, eval_every=max(1, steps // 5), eval_size=200,
                      warmup=min(fields.get("warmup", 0), steps // 3))
    return TrainConfig(**fields)


def run_folder(name: str, seed: int, quick: bool) -> Path:
    return (RUNS / "quick" if quick else RUNS) / name / f"seed{seed}"


def command_line(name: str) -> str:
    """The ``numpy-rnn train`` command of an experiment (seed and folder left to the reader)."""
    _, _, fields = EXPERIMENTS[name]
    parts = ["numpy-rnn train"]
    for key, value in fields.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, dict):
            parts += [f"{flag} {k}={v}" for k, v in value.items()]
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts) + f" --seed SEED --out runs/results/{name}/seedSEED"


# ----------------------------------------------------------------------------- training runs
def read_history(out: Path) -> list[dict]:
    path = out / METRICS_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def train_one(name: str, seed: int, quick: bool) -> dict:
    """Train (or read back, or resume) one run; returns its summary with the history."""
    config = experiment_config(name, seed, quick)
    out = Path(config.out)
    if (out / SUMMARY_FILE).is_file():
        stored = TrainConfig.from_dict(json.loads((out / "config.json").read_text(encoding="utf-8")))
        if stored != config:  # fields added since the run take their defaults
            raise SystemExit(f"results: {out} holds a run of another configuration; use --rerun to replace it")
        summary = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8"))
        print(f"  {name} seed {seed}: done before, read back", flush=True)
        return {**summary, "history": read_history(out)}
    if run_exists(out):
        print(f"  {name} seed {seed}: resuming {out}", flush=True)
        trainer = Trainer.resume(out)
        if trainer.config != config:
            raise SystemExit(f"results: {out} holds a run of another configuration; use --rerun to replace it")
    else:
        trainer = Trainer(config)
    summary = trainer.run()
    plot_history(trainer.history, summary["baseline_loss"], out / "loss.png", ylabel="MSE",
                 title=f"{name}, seed {seed}")
    print(f"  {name} seed {seed}: test MSE {summary['test_loss']:.4g} "
          f"({100 * summary['ratio_to_baseline']:.3g}% of the baseline) after {summary['steps']} steps, "
          f"{summary['seconds']:.1f} s", flush=True)
    return {**summary, "history": trainer.history}


def first_below(history: list[dict], level: float) -> int | None:
    """The first evaluation step whose validation loss is below ``level``."""
    return next((r["step"] for r in history if r["val_loss"] is not None and r["val_loss"] < level), None)


def fmt(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}"


def training_table(name: str, runs: dict[int, dict]) -> tuple[str, dict]:
    """A Markdown table (one row per seed, then mean +- std) and its numbers."""
    baseline = next(iter(runs.values()))["baseline_loss"]
    words, rule = TARGETS[EXPERIMENTS[name][0]]
    target = rule(baseline)
    rows = [f"| seed | test MSE | % of baseline | first step with validation MSE {words} | steps | wall time (s) |",
            "|---|---|---|---|---|---|"]
    numbers = {"baseline": baseline, "seeds": {}}
    for seed, s in runs.items():
        hit = first_below(s["history"], target)
        rows.append(f"| {seed} | {fmt(s['test_loss'])} | {fmt(100 * s['ratio_to_baseline'])} | {hit or 'never'} "
                    f"| {s['steps']} | {s['seconds']:.0f} |")
        numbers["seeds"][seed] = {"test_loss": s["test_loss"], "percent_of_baseline": 100 * s["ratio_to_baseline"],
                                  "first_step_below_target": hit, "steps": s["steps"], "seconds": s["seconds"]}
    tests = [s["test_loss"] for s in runs.values()]
    seconds = [s["seconds"] for s in runs.values()]
    mean, std = statistics.fmean(tests), statistics.stdev(tests) if len(tests) > 1 else 0.0
    solved = sum(t < target for t in tests)
    rows.append(f"| mean ± std | {fmt(mean)} ± {fmt(std, 2)} | {fmt(100 * mean / baseline)} ± "
                f"{fmt(100 * std / baseline, 2)} | test MSE {words}: {solved}/{len(tests)} seeds | | "
                f"{statistics.fmean(seconds):.0f} |")
    numbers.update(mean=mean, std=std, target=target, solved=solved, runs=len(tests),
                   mean_seconds=statistics.fmean(seconds))
    return "\n".join(rows), numbers


def curves_figure(title: str, experiments: dict[str, dict[int, dict]], target: float, path: Path) -> None:
    """Validation MSE / baseline against the step and against wall time, every seed of every
    experiment (one colour each); the target (a fraction of the baseline) dotted."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    styles = ["-", "--", ":", "-."]
    for colour, (name, runs) in enumerate(experiments.items()):
        for i, s in enumerate(runs.values()):
            points = [(r["step"], r["elapsed"], 100 * r["val_loss"] / s["baseline_loss"])
                      for r in s["history"] if r["val_loss"] is not None]
            if not points:
                continue
            steps, seconds, ratio = zip(*points)
            label = name if i == 0 else None
            for ax, x in zip(axes, (steps, seconds)):
                ax.plot(x, ratio, color=f"C{colour}", linestyle=styles[i % len(styles)], linewidth=1.2, label=label)
    for ax, xlabel in zip(axes, ("step", "wall time (s), one core")):
        ax.axhline(100 * target, color="grey", linestyle=":", linewidth=1)
        ax.axhline(100, color="grey", linestyle="--", linewidth=1)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("validation MSE, % of baseline")
    axes[0].legend(fontsize=8, title="line style: seed 0, 1, 2", title_fontsize=7)
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)


def run_training_group(group: str, names: list[str], seeds: list[int], quick: bool, figures: Path) -> dict:
    results = {}
    for name in names:
        print(f"{name}: {EXPERIMENTS[name][1]}", flush=True)
        results[name] = {seed: train_one(name, seed, quick) for seed in seeds}
    report = {}
    for name, runs in results.items():
        table, numbers = training_table(name, runs)
        print(f"\n### {name}: {EXPERIMENTS[name][1]}\n`{command_line(name)}`\n\n{table}\n", flush=True)
        report[name] = {"label": EXPERIMENTS[name][1], "command": command_line(name),
                        "config": {k: v for k, v in EXPERIMENTS[name][2].items()}, **numbers}
        # the library's own plot of seed 0, as the training command writes it
        first = run_folder(name, seeds[0], quick) / "loss.png"
        if first.is_file():
            figures.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(first, figures / f"{name}-seed{seeds[0]}-loss.png")
    titles = {"memory": "memory task, T = 20, notebook RNN (baseline MSE 1/3)",
              "adding": "adding problem, T = 150 (baseline MSE 1/6)"}
    baseline = next(iter(next(iter(results.values())).values()))["baseline_loss"]
    target = TARGETS[group][1](baseline) / baseline
    curves_figure(titles[group] + "; dotted: target, dashed: baseline", results, target, figures / f"{group}-curves.png")
    return report


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
    info = {"python": platform.python_version(), "numpy": np.__version__, "cpu_count": os.cpu_count(),
            "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [{k: d.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer",
                                               "architecture")} for d in threadpool_info()]
    except ImportError:
        pass
    return info


def parse_args(argv=None):
    names = [*GROUPS, *EXPERIMENTS]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="experiments: " + ", ".join(EXPERIMENTS))
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_STEPS} steps, seed 0, "
                   "runs under runs/results/quick, no docs figures")
    p.add_argument("--only", nargs="+", choices=names, metavar="NAME", help=f"groups or experiments: {', '.join(names)}")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds of every training experiment (default 0 1 2; --quick: 0)")
    p.add_argument("--rerun", action="store_true", help="delete the selected run folders and train again")
    p.add_argument("--threads", type=int, default=1, help="BLAS and torch threads (default 1)")
    p.add_argument("--list", action="store_true", help="print the experiments and their commands, and exit")
    t = p.add_argument_group("throughput")
    t.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"], choices=["rnn", "lstm", "gru"])
    t.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    t.add_argument("--seq-len", type=int, default=150, help="T (default 150)")
    t.add_argument("--hidden-size", type=int, default=64, help="H (default 64, as the adding runs)")
    t.add_argument("--batch-size", type=int, default=32, help="B (default 32, as the adding runs)")
    t.add_argument("--steps", type=int, default=50, help="timed steps per sample (default 50)")
    t.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    t.add_argument("--rounds", type=int, default=5, help="interleaved samples per library; medians (default 5)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for name, (group, label, _) in EXPERIMENTS.items():
            print(f"{name} [{group}]: {label}\n  {command_line(name)}")
        return 0
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
    except ImportError:
        pass
    selected = args.only or list(GROUPS)
    groups = {g: [] for g in GROUPS}
    for name in selected:
        if name in GROUPS:
            groups[name] += [n for n in GROUPS[name] if n not in groups[name]]
        elif name not in groups[EXPERIMENTS[name][0]]:
            groups[EXPERIMENTS[name][0]].append(name)
    run_throughput_too = "throughput" in selected
    figures = RUNS / "quick" / "figures" if args.quick else DOCS
    RUNS.mkdir(parents=True, exist_ok=True)
    print(f"machine: {json.dumps(machine())}", flush=True)
    suffix = "-quick" if args.quick else ""
    for group, names in groups.items():
        if group == "throughput" or not names:
            continue
        seeds = args.seeds or ([0] if args.quick else DEFAULT_SEEDS[group])
        if args.rerun:
            for name in names:
                for seed in seeds:
                    shutil.rmtree(run_folder(name, seed, args.quick), ignore_errors=True)
        report = run_training_group(group, names, seeds, args.quick, figures)
        path = RUNS / f"{group}{suffix}.json"
        merged = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        merged.update(report)
        path.write_text(json.dumps({**merged, "machine": machine()}, indent=2) + "\n", encoding="utf-8")
    if run_throughput_too:
        report = run_throughput(args)
        throughput = json.dumps({**report, "machine": machine()}, indent=2) + "\n"
        (RUNS / f"throughput-{args.threads}thread{suffix}.json").write_text(throughput,
                                                       encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
