"""Character models on tiny Shakespeare against wall time, next to nanoGPT's published figures
(a benchmark, not a test; the numbers of docs/RESULTS.md section 4).

    python benchmarks/shakespeare.py --list                    # the configurations
    python benchmarks/shakespeare.py gru-h256-cos              # one run: 180 s of training, seed 0
    python benchmarks/shakespeare.py gru-h256-cos --seeds 0 1 2 --clock cpu --eval-seconds 30
    python benchmarks/shakespeare.py --report                  # table and curve from the stored runs

A run trains one configuration (a ``TrainConfig`` of task ``chars`` on the shipped text, through
``Trainer.train_step``) for a fixed budget of TRAINING seconds (evaluation time is not counted;
it is recorded apart), or until its ``steps`` are done, whichever comes first. Every
``--eval-seconds`` of training, and at the end, it measures the cross-entropy (nats per
character) on the FULL held-out text with the trainer's own evaluation: ``valid`` (characters
90-95% of the text) and ``test`` (95-100%), and their mean, "held-out" (the halves have 55,770
characters each), which is the loss on the last 10%: nanoGPT's validation split (its
``val.bin``, 111,540 characters).

Clocks: ``--clock wall`` (default) counts wall seconds; ``--clock cpu`` counts this process's CPU
seconds, which other jobs on a shared machine do not inflate. With one BLAS thread (the
default) the two agree on an idle machine, so a CPU-second budget is the wall time the run
would take alone on one core. Both clocks are recorded at every evaluation whichever one sets
the budget. A fixed float32 matrix product (512 x 512) is timed at the start and the end of
each run and its rate (GFLOP/s) stored with the curve, a third sign of the load.

Output: ``runs/shakespeare/<name>-seed<k>.json`` holds the configuration, the curve (training
seconds, steps, valid / test / held-out nats, evaluation seconds), seconds per step and the
contention probes. A finished run is read back, not trained again (``--rerun`` replaces it); an
interrupted one starts again (a wall-time curve cannot be resumed honestly). ``--report`` writes
every stored run to ``docs/results/shakespeare.json`` and their curves to
``docs/results/shakespeare-curves.png``, and prints the Markdown table of docs/RESULTS.md.

Threads: ``--threads`` (default 1) BLAS threads, exported as ``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` before numpy is loaded. (Two threads were measured
7x SLOWER than one on this machine while other jobs ran: OpenBLAS threads wait for each other.)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "shakespeare"
DOCS = ROOT / "docs" / "results"
#: nanoGPT README, shakespeare_char (published figures, not measured here): validation nats on the
#: last 10% of the same text
NANOGPT = {"cpu": (1.88, "nanoGPT, 4-layer transformer (n_embd 128), CPU, ~3 min"),
           "gpu": (1.4697, "nanoGPT, 6-layer transformer (n_embd 384), one A100, ~3 min")}

# name -> (label, TrainConfig fields besides task="chars"). ``steps`` is where a cosine schedule
# ends: chosen so that it ends near the 180-second budget at the seconds per step measured here.
_BASE = {"embedding_size": 32, "bptt": 64, "batch_size": 32, "hidden_size": 256, "lr": 3e-3, "clip_norm": 1.0}
EXPERIMENTS = {
    "lstm-h256-f64": ("LSTM H 256, float64, constant lr 3e-3 (the issue's run)",
                      dict(_BASE, cell="lstm", steps=100_000)),
    "lstm-h256-cos": ("LSTM H 256, float32, lr 5e-3, warm-up 100, cosine to 2000 steps",
                      dict(_BASE, cell="lstm", dtype="float32", lr=5e-3, warmup=100, schedule="cosine", steps=2000)),
    "gru-h256-cos": ("GRU H 256, float32, lr 5e-3, warm-up 100, cosine to 2500 steps",
                     dict(_BASE, cell="gru", dtype="float32", lr=5e-3, warmup=100, schedule="cosine", steps=2500)),
    "gru-h256-cos-2750": ("GRU H 256, float32, lr 5e-3, warm-up 100, cosine to 2750 steps (the whole budget)",
                          dict(_BASE, cell="gru", dtype="float32", lr=5e-3, warmup=100, schedule="cosine",
                               steps=2750)),
    "gru-h192-cos": ("GRU H 192, float32, lr 5e-3, warm-up 100, cosine to 4200 steps",
                     dict(_BASE, cell="gru", hidden_size=192, dtype="float32", lr=5e-3, warmup=100,
                          schedule="cosine", steps=4200)),
    "gru-h320-cos": ("GRU H 320, float32, lr 5e-3, warm-up 100, cosine to 1700 steps",
                     dict(_BASE, cell="gru", hidden_size=320, dtype="float32", lr=5e-3, warmup=100,
                          schedule="cosine", steps=1700)),
    "gru-h384-cos": ("GRU H 384, float32, lr 5e-3, warm-up 100, cosine to 1300 steps",
                     dict(_BASE, cell="gru", hidden_size=384, dtype="float32", lr=5e-3, warmup=100,
                          schedule="cosine", steps=1300)),
}


def _set_threads(argv: list[str]) -> int:
    """Read --threads before numpy is imported and export it for the BLAS."""
    threads = 1
    if "--threads" in argv:
        threads = int(argv[argv.index("--threads") + 1])
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    return threads


THREADS = _set_threads(sys.argv)

import numpy as np  # noqa: E402  (after the thread settings)

from numpy_rnn.train import TrainConfig, Trainer  # noqa: E402


def matmul_rate(seconds: float = 0.5) -> float:
    """GFLOP/s of a 512 x 512 float32 matrix product on this machine right now."""
    a = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    a @ a
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ a
        count += 1
    return 2 * 512**3 * count / (time.perf_counter() - start) / 1e9


def experiment_config(name: str, seed: int) -> TrainConfig:
    _, fields = EXPERIMENTS[name]
    return TrainConfig(task="chars", seed=seed, checkpoint_every=0, eval_every=10**9, **fields)


def command_line(name: str) -> str:
    """The ``numpy-rnn train`` command that trains the same model for its ``steps``."""
    _, fields = EXPERIMENTS[name]
    flags = " ".join(f"--{key.replace('_', '-')} {value}" for key, value in fields.items())
    return f"numpy-rnn train --task chars {flags}"


def evaluate(trainer: Trainer) -> dict:
    """Valid, test and held-out nats per character, and the seconds it took.

    Held-out is the mean of valid and test: the two halves of the last 10% have 55,770
    characters each, so it is the loss per character on the whole last 10%.
    """
    start = time.perf_counter()
    losses = {split: trainer.evaluate(split) for split in ("valid", "test")}
    held_out = (losses["valid"] + losses["test"]) / 2
    return {**losses, "held_out": held_out, "eval_seconds": time.perf_counter() - start}


def run(name: str, seed: int, budget: float, every: float, clock: str) -> dict:
    """Train ``name`` for ``budget`` training seconds of ``clock`` ("wall" or "cpu"), evaluating
    every ``every`` seconds of that clock."""
    config = experiment_config(name, seed)
    probe_start = matmul_rate()
    trainer = Trainer(config)
    curve = [{"seconds": 0.0, "cpu_seconds": 0.0, "step": 0, **evaluate(trainer)}]
    seconds, next_eval = 0.0, every
    print(f"{name} seed {seed}: {curve[-1]['held_out']:.3f} nats at step 0, matmul {probe_start:.0f} GFLOP/s",
          flush=True)
    cpu = 0.0  # the process's CPU seconds in training steps: what the load of others does not take
    spent = 0.0  # seconds of the budget's clock
    while spent < budget and not trainer.finished:
        start, start_cpu = time.perf_counter(), time.process_time()
        trainer.train_step()
        seconds += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        spent = cpu if clock == "cpu" else seconds
        if spent >= next_eval or spent >= budget or trainer.finished:
            curve.append({"seconds": seconds, "cpu_seconds": cpu, "step": trainer.step, **evaluate(trainer)})
            next_eval += every
            last = curve[-1]
            print(f"  {seconds:6.1f} s ({cpu:6.1f} s CPU)  step {trainer.step:5d}"
                  f"  valid {last['valid']:.4f}  test {last['test']:.4f}"
                  f"  held-out {last['held_out']:.4f}  (eval {last['eval_seconds']:.1f} s)", flush=True)
    return {"name": name, "label": EXPERIMENTS[name][0], "seed": seed, "budget": budget, "clock": clock,
            "config": config.to_dict(), "command": command_line(name), "curve": curve,
            "seconds_per_step": seconds / max(trainer.step, 1), "cpu_seconds_per_step": cpu / max(trainer.step, 1),
            "steps": trainer.step,
            "threads": THREADS, "gflops_start": probe_start, "gflops_end": matmul_rate(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}",
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}


def result_path(name: str, seed: int) -> Path:
    return RUNS / f"{name}-seed{seed}.json"


def run_or_read(name: str, seed: int, budget: float, every: float, clock: str, rerun: bool) -> dict:
    path = result_path(name, seed)
    if path.is_file() and not rerun:
        result = json.loads(path.read_text(encoding="utf-8"))
        if (result["budget"], result["clock"]) == (budget, clock):
            print(f"{name} seed {seed}: done before, read back from {path}", flush=True)
            return result
    result = run(name, seed, budget, every, clock)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


# ----------------------------------------------------------------------------- report
def stored_results() -> list[dict]:
    """Every stored run, in the order of EXPERIMENTS (others last), then by seed."""
    results = [json.loads(p.read_text(encoding="utf-8")) for p in RUNS.glob("*.json")]
    order = list(EXPERIMENTS)
    return sorted(results, key=lambda r: (order.index(r["name"]) if r["name"] in order else len(order),
                                          r["name"], r["seed"]))


def table(results: list[dict]) -> str:
    header = ("| configuration | seed | steps | CPU s | wall s | CPU s/step | valid | test "
              "| held-out = nanoGPT's val | matmul GFLOP/s start / end |")
    rows = [header, "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        last = r["curve"][-1]
        rows.append(f"| {r['name']}: {r['label']} | {r['seed']} | {r['steps']} | {last['cpu_seconds']:.0f} "
                    f"| {last['seconds']:.0f} | {r['cpu_seconds_per_step']:.3f} | {last['valid']:.3f} "
                    f"| {last['test']:.3f} | **{last['held_out']:.3f}** "
                    f"| {r['gflops_start']:.0f} / {r['gflops_end']:.0f} |")
    for value, label in NANOGPT.values():
        rows.append(f"| {label} (published) | | | | ~180 | | | | {value} | |")
    return "\n".join(rows)


def plot(results: list[dict], path: Path) -> None:
    """Held-out nats against CPU seconds (left) and wall seconds (right), nanoGPT's figures as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for ax, clock, words in ((axes[0], "cpu_seconds", "CPU seconds of training (one core; = wall time when idle)"),
                             (axes[1], "seconds", "wall seconds of training (shared machine, under load)")):
        names = list(dict.fromkeys(r["name"] for r in results))  # one colour per configuration
        for r in results:
            curve = r["curve"]
            ax.plot([p[clock] for p in curve], [p["held_out"] for p in curve], marker=".",
                    color=f"C{names.index(r['name']) % 10}", linestyle=("-", "--", ":")[r["seed"] % 3],
                    label=f"{r['name']} (seed {r['seed']})")
        for key, (value, label) in NANOGPT.items():
            ax.axhline(value, linestyle="-.", color="grey" if key == "cpu" else "black", linewidth=1)
            ax.text(5, value + 0.008, f"{label}: {value} (published)", fontsize=8)
        ax.axvline(180, linestyle=":", color="grey", linewidth=1)
        ax.set(xlabel=words, ylim=(1.4, 2.0))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("cross-entropy on the last 10% (nats/char)")
    axes[0].legend(fontsize=7)
    fig.suptitle("tiny Shakespeare, nanoGPT's validation split: numpy-rnn on a shared 2-core machine")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="configurations to run (see --list)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--budget", type=float, default=180.0, help="training seconds per run")
    parser.add_argument("--eval-seconds", type=float, default=15.0, help="training seconds between evaluations")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="the budget's clock: wall seconds, or this process's CPU seconds (load-independent)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (read before numpy loads)")
    parser.add_argument("--rerun", action="store_true", help="train finished runs again")
    parser.add_argument("--list", action="store_true", help="print the configurations and their commands")
    parser.add_argument("--report", action="store_true", help="table and figure from the stored runs")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in EXPERIMENTS]
    if unknown:
        parser.error(f"unknown configuration(s) {', '.join(unknown)}; valid: {', '.join(EXPERIMENTS)}")
    if args.list:
        for name, (label, _) in EXPERIMENTS.items():
            print(f"{name}: {label}\n    {command_line(name)}")
    for name in args.names:
        for seed in args.seeds:
            run_or_read(name, seed, args.budget, args.eval_seconds, args.clock, args.rerun)
    if args.report:
        results = stored_results()
        plot(results, DOCS / "shakespeare-curves.png")
        (DOCS / "shakespeare.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        print(table(results))


if __name__ == "__main__":
    main()
