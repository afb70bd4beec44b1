"""Reproduce every figure and number of docs/gradient_flow.md ("Why plain RNNs forget"): the
gradient-flow diagnostics of models on the adding problem at T = 150 and on the memory task at
T = 20, at initialisation and at steps along their training (a benchmark, not a test).

    python benchmarks/gradient_flow.py                 # everything (roughly 10-15 CPU minutes)
    OPENBLAS_CORETYPE=Haswell python benchmarks/gradient_flow.py --only memory-t20-nowarmup-seed1-haswell
    python benchmarks/gradient_flow.py --only adding-lstm memory-t20-nowarmup-seed1
    python benchmarks/gradient_flow.py --list          # the runs and the steps they are diagnosed at
    python benchmarks/gradient_flow.py --report        # tables and figures from the finished runs

Every run is an experiment of ``benchmarks/results.py`` (docs/RESULTS.md), with its
configuration, trained by the library's training loop (:class:`numpy_rnn.train.Trainer`) and
stopped at its last diagnosed step, so up to there it is the same run as the one of that
experiment and seed on the same BLAS kernels (other kernels round differently, and these runs
are chaotic: see the page). At each listed step the model is diagnosed
(:func:`numpy_rnn.diagnostics.diagnose`) on a fixed batch, the first 256 sequences of the run's
validation set, which the training does not see; diagnosing changes nothing in the run.

Runs go to ``runs/gradient_flow/<run>/`` (the training loop's files, ``diag/step<k>.json``: the
``diagnostics.json`` layout at step k, and ``rows.json``: one summary row per diagnosed step). A
run whose steps are all diagnosed is read back; an interrupted one resumes from its checkpoint
(taken at each diagnosed step); ``--rerun`` starts the selected runs over. Figures go to
``docs/gradient_flow/``. Set ``OPENBLAS_NUM_THREADS=1`` on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from numpy_rnn.diagnostics import diagnose
from numpy_rnn.models import RNN
from numpy_rnn.plot import plot_gradient_flow, plot_saturation
from numpy_rnn.train import TrainConfig, Trainer, remove_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from numpy_rnn.sweep import load_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: the configurations of docs/RESULTS.md by name: the [[runs]] of its sweep specs
EXPERIMENTS = {c.name: c.config for group in ("memory", "adding")
               for c in load_spec(ROOT / "benchmarks" / "sweeps" / f"{group}.toml").configurations()}
RUNS = ROOT / "runs" / "gradient_flow"
DOCS = ROOT / "docs" / "gradient_flow"
EARLY = (0, 50, 100, 250, 500, 750, 1000, 1500, 2000, 2500, 3000)  # IRNN: the violent first steps
WHOLE = EARLY + tuple(range(4000, 10001, 1000))  # the paper's W: the whole 10k-step run

def every(interval: int, *finer) -> tuple:
    """Steps 0 to 20000 every ``interval``, and every ``step`` in each ``(start, stop, step)``."""
    return tuple(sorted(set(range(0, 20001, interval)).union(*(range(*span) for span in finer))))


# run -> (label, experiment of RESULTS.md (EXPERIMENTS), changed fields, seed, steps to diagnose at; the last is where it stops)
RUN_SPECS = {
    "adding-tanh": ("tanh RNN", "adding-tanh", {}, 1, (0, 1000, 2000, 3000)),
    "adding-irnn": ("IRNN", "adding-irnn", {}, 1, EARLY),
    "adding-lstm": ("LSTM", "adding-lstm", {}, 1, (0, 1000, 2000, 3000, 4000)),
    "adding-gru": ("GRU", "adding-lstm", {"cell": "gru"}, 1, (0, 1000, 2000, 3000, 4000)),
    "adding-irnn-paper-init": ("IRNN, W ~ N(0, 0.001^2)", "adding-irnn-paper-init", {}, 1, WHOLE),
    "adding-irnn-seed0": ("IRNN (seed 0)", "adding-irnn", {}, 0, EARLY),
    "adding-irnn-paper-init-seed0": ("IRNN, W ~ N(0, 0.001^2) (seed 0)", "adding-irnn-paper-init", {}, 0, WHOLE),
    "adding-irnn-paper-init-seed2": ("IRNN, W ~ N(0, 0.001^2) (seed 2)", "adding-irnn-paper-init", {}, 2, WHOLE),
    "memory-t20-nowarmup-seed1": ("no warm-up, seed 1", "memory-t20-nowarmup", {}, 1, every(500)),
    "memory-t20-nowarmup-seed0": ("no warm-up, seed 0", "memory-t20-nowarmup", {}, 0, every(500)),
    "memory-t20-nowarmup-seed2": ("no warm-up, seed 2", "memory-t20-nowarmup", {}, 2,
                                  every(500, (8500, 9000, 100))),
    "memory-t20-demo-20k-seed0": ("the demo's recipe (H 32, B 32), seed 0", "memory-t20-demo-20k", {}, 0,
                                  every(500, (1500, 2000, 50), (11000, 11500, 50))),
    # RESULTS.md's machine ran OpenBLAS's Haswell kernels; this one picks SkylakeX, which rounds
    # differently: run with OPENBLAS_CORETYPE=Haswell (checked in trained_run)
    "memory-t20-nowarmup-seed1-haswell": ("no warm-up, seed 1, Haswell kernels", "memory-t20-nowarmup", {}, 1,
                                          tuple(sorted(set(range(0, 10001, 500)) | set(range(6500, 7000, 50))))),
    "memory-t20-seed1": ("warm-up 1000 (the recipe), seed 1", "memory-t20", {}, 1, every(500)),
}
ADDING_MODELS = ("adding-tanh", "adding-irnn", "adding-lstm", "adding-gru")
IRNN_RUNS = ("adding-irnn", "adding-irnn-paper-init", "adding-irnn-seed0", "adding-irnn-paper-init-seed0",
             "adding-irnn-paper-init-seed2")
MEMORY_RUNS = ("memory-t20-seed1", "memory-t20-nowarmup-seed0", "memory-t20-nowarmup-seed1",
               "memory-t20-nowarmup-seed2", "memory-t20-demo-20k-seed0", "memory-t20-nowarmup-seed1-haswell")


def run_config(name: str) -> TrainConfig:
    _, experiment, changes, seed, _ = RUN_SPECS[name]
    fields = {**EXPERIMENTS[experiment], **changes, "seed": seed, "checkpoint_every": 500,
              "out": str(RUNS / name)}
    return TrainConfig(**fields)


# ----------------------------------------------------------------------------- one run
def trained_run(name: str, rerun: bool) -> list[dict]:
    """Train ``name`` to its last diagnosed step, diagnosing on the way; returns its rows."""
    folder, steps = RUNS / name, RUN_SPECS[name][4]
    if name.endswith("-haswell") and os.environ.get("OPENBLAS_CORETYPE") != "Haswell":
        print(f"{name}: skipped (needs OPENBLAS_CORETYPE=Haswell in the environment)")
        return json.loads((folder / "rows.json").read_text()) if (folder / "rows.json").is_file() else []
    rows_file = folder / "rows.json"
    if rerun and folder.exists():
        shutil.rmtree(folder)
    rows = json.loads(rows_file.read_text()) if rows_file.is_file() else []
    if [row["step"] for row in rows] == list(steps):
        return rows
    if (folder / "checkpoint.ckpt").is_file():
        trainer = Trainer.resume(folder)
        rows = [row for row in rows if row["step"] <= trainer.step]
    else:
        remove_run(folder)
        trainer, rows = Trainer(run_config(name)), []
    x, y = next(trainer.data.eval_batches("valid"))  # fixed: the first 256 validation sequences
    for step in steps:
        if step < trainer.step or any(row["step"] == step for row in rows):
            continue
        if step > trainer.step:
            trainer.run(until=step)  # writes the run folder on the way
            trainer.save()  # so that a resumed run starts at a diagnosed step
        rows.append(diagnosed_row(trainer, x, y, folder / "diag" / f"step{step}.json"))
        rows_file.write_text(json.dumps(rows, indent=1) + "\n")
        print(f"{name} step {step}: {short(rows[-1])}", flush=True)
    return rows


def diagnosed_row(trainer: Trainer, x, y, path: Path) -> dict:
    """Diagnose the model on ``x, y``; write the diagnostics to ``path``; return a summary row."""
    model = trainer.model
    result = diagnose(model, x, y, loss=trainer.data.loss)
    path.parent.mkdir(parents=True, exist_ok=True)
    result.save(path)
    layer = result.to_dict()["layers"][0]
    prediction = model.forward(x) if isinstance(model, RNN) else model.forward(x)[0]
    dl_dh = np.asarray(layer["dl_dh_norm"], dtype=float)
    record = trainer.history[-1] if trainer.history and trainer.history[-1]["step"] == trainer.step else {}
    return {
        "step": trainer.step, "loss": result.loss, "baseline": trainer.data.baseline_loss,
        "val_loss": record.get("val_loss"), "grad_norm": record.get("grad_norm"),
        "grad_norm_max": record.get("grad_norm_max"),
        "update_ratio_max": {k: v.get("update_ratio_max") for k, v in record.get("parameters", {}).items()},
        "parameters": record.get("parameters"), "prediction_std": float(np.std(prediction)),
        "live_units": live_units(model, x), "constant_units": constant_units(model, x),
        "dl_dh_rate": layer["dl_dh_rate_per_step"], "jacobian_rate": layer["jacobian_rate_per_step"],
        "dl_dh_first": float(dl_dh[0]), "dl_dh_last": float(dl_dh[-1]),
        "jacobian_first": layer["jacobian_norm"][0],  # ||dh(T)/dh(1)||: the first input's reach
        "spectral_radius": {k: v["spectral_radius"] for k, v in layer["recurrent"].items()},
        "activations": {k: {"kind": v["kind"], "saturated": float(np.nanmean(np.array(v["saturated"], dtype=float))),
                            "saturated_last": v["saturated"][-1],
                            "mean": float(np.nanmean(np.array(v["mean"], dtype=float)))}
                        for k, v in layer["activations"].items()},
    }


def live_mask(model, x) -> np.ndarray:
    """(H,) True for the hidden units that are non-zero at some step of some sequence of ``x``
    (a relu unit that is 0 everywhere passes no gradient to its weights: it is dead on this batch)."""
    out, _ = model.rnn.forward(x)  # (B, T, H)
    return (out != 0).any(axis=(0, 1))


def live_units(model, x) -> int:
    return int(np.count_nonzero(live_mask(model, x)))


def unit_gate_means(name: str, gate: str) -> np.ndarray:
    """Each hidden unit's mean of ``gate`` over the steps and sequences of the fixed batch, for
    the run's weights at its last checkpoint, from the cell's own activations: (H,), largest first."""
    trainer = Trainer.resume(RUNS / name)
    x, _ = next(trainer.data.eval_batches("valid"))
    layer = trainer.model.rnn
    layer.forward(x)
    caches = layer.traces()[0].caches
    values = np.stack([layer.cell.activations(cache)[gate][1] for cache in caches])  # (T, B, H)
    return np.sort(values.mean(axis=(0, 1)))[::-1]


def constant_units(model, x) -> int:
    """Units of the final state ``h(T)`` whose value hardly depends on the sequence (standard
    deviation over ``x``'s sequences below 0.01): they tell the read-out nothing about the input."""
    out, _ = model.rnn.forward(x)  # (B, T, H)
    return int(np.count_nonzero(out[:, -1].std(axis=0) < 0.01))


def short(row: dict) -> str:
    sat = ", ".join(f"{k} sat {v['saturated']:.2f} mean {v['mean']:.2f}" for k, v in row["activations"].items())
    return (f"loss {row['loss']:.4g} ({100 * row['loss'] / row['baseline']:.3g}% of baseline), "
            f"pred std {row['prediction_std']:.3g}, dL/dh x{fmt(row['dl_dh_rate'])}/step "
            f"(first/last {row['dl_dh_first'] / row['dl_dh_last']:.3g}), jacobian x{fmt(row['jacobian_rate'])}/step, "
            f"||dh(T)/dh(1)|| {fmt(row['jacobian_first'])}, radius {fmt_dict(row['spectral_radius'])}, "
            f"grad norm max {fmt(row['grad_norm_max'])}; live units {row.get('live_units')}, "
            f"constant units of h(T) {row.get('constant_units')}; {sat}")


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def fmt_dict(values: dict) -> str:
    return " ".join(f"{k} {fmt(v)}" for k, v in values.items())


def diagnostics_at(name: str, step: int) -> dict:
    return json.loads((RUNS / name / "diag" / f"step{step}.json").read_text())


# ----------------------------------------------------------------------------- the page's figures and tables
def relabelled(entries) -> dict:
    """One diagnostics dict whose layers are those of ``(label, diagnostics)`` pairs, renamed
    ``label``: the library's plot then draws one line per model."""
    layers = [{**diag["layers"][0], "name": label} for label, diag in entries]
    return {"seq_len": entries[0][1]["seq_len"], "layers": layers}


def adding_report() -> None:
    print("\n| model | step | loss on the batch (% of baseline) | dL/dh rate per step | Jacobian rate per step "
          "| rate^149 | dL/dh(1) / dL/dh(T) | spectral radius of R | saturated (mean over t) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ADDING_MODELS:
        rows = read_rows(name)
        for row in (rows[0], rows[-1]):
            sat = ", ".join(f"{k} {v['saturated']:.2f}" for k, v in row["activations"].items())
            print(f"| {RUN_SPECS[name][0]} | {row['step']} | {row['loss']:.3g} ({100 * row['loss'] / row['baseline']:.3g}%) "
                  f"| {row['dl_dh_rate']:.4f} | {row['jacobian_rate']:.4f} | {row['jacobian_rate'] ** 149:.3g} "
                  f"| {row['dl_dh_first'] / row['dl_dh_last']:.3g} | {fmt_dict(row['spectral_radius'])} | {sat} |")
    for when, index in (("init", 0), ("trained", -1)):
        entries = [(f"{RUN_SPECS[n][0]}, step {RUN_SPECS[n][4][index]}", diagnostics_at(n, RUN_SPECS[n][4][index]))
                   for n in ADDING_MODELS]
        print(plot_gradient_flow(relabelled(entries), DOCS / f"adding-{when}.png",
                                 title=f"adding problem, T = 150, seed 1: {'at initialisation' if index == 0 else 'trained'}"))
    for name, gate in (("adding-lstm", "f"), ("adding-gru", "z")):
        means = unit_gate_means(name, gate)
        print(f"{RUN_SPECS[name][0]} trained: per-unit mean of gate {gate}, largest: {np.round(means[:6], 4)}; "
              f"units with mean > 0.9: {np.count_nonzero(means > 0.9)} of {len(means)}; mean {means.mean():.3f}")
        last = RUN_SPECS[name][4][-1]
        print(plot_saturation(relabelled([(f"{RUN_SPECS[name][0]}, step {last}", diagnostics_at(name, last))]),
                              DOCS / f"{name}-saturation.png", title=f"adding, T = 150: {RUN_SPECS[name][0]} trained"))


def timeline_report(names, path: Path, title: str) -> None:
    """Rows of runs along training: a Markdown table and a figure of the rows against the step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    axes = axes.ravel()
    for name in names:
        rows, label = read_rows(name), RUN_SPECS[name][0]
        step = [r["step"] for r in rows]
        axes[0].plot(step, [100 * r["loss"] / r["baseline"] for r in rows], marker=".", label=label)
        axes[1].plot(step, [r["jacobian_first"] for r in rows], marker=".")
        axes[1].plot(step, [r["dl_dh_first"] / r["dl_dh_last"] for r in rows], linestyle=":",
                     color=axes[1].lines[-1].get_color())
        act = next(iter(rows[0]["activations"]))
        axes[2].plot(step, [r["activations"][act]["saturated"] for r in rows], marker=".")
        axes[3].plot(*zip(*[(r["step"], r["grad_norm_max"]) for r in rows if r["grad_norm_max"] is not None]), marker=".")
        print(f"\n{label} ({name}):")
        print("| step | loss % of baseline | prediction std | ||dh(T)/dh(1)|| | dL/dh(1)/dL/dh(T) | Jacobian rate "
              "| saturated | spectral radius | grad norm max (interval) | largest update ratio (interval) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            top = max(((v or 0.0), k) for k, v in r["update_ratio_max"].items()) if r["update_ratio_max"] else (None, "")
            print(f"| {r['step']} | {100 * r['loss'] / r['baseline']:.3g} | {r['prediction_std']:.3g} "
                  f"| {fmt(r['jacobian_first'])} "
                  f"| {r['dl_dh_first'] / r['dl_dh_last']:.3g} | {fmt(r['jacobian_rate'])} "
                  f"| {r['activations'][act]['saturated']:.3f} | {fmt_dict(r['spectral_radius'])} "
                  f"| {fmt(r['grad_norm_max'])} | {fmt(top[0])} {top[1]} |")
    labels = ("MSE on the fixed batch, % of the baseline", "||dh(T)/dh(1)|| (solid), ||dL/dh(1)|| / ||dL/dh(T)|| (dotted)",
              "saturated fraction, mean over t", "gradient norm before clipping, interval maximum")
    for ax, ylabel in zip(axes, labels):
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel, fontsize="small")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize="small")
    for ax in (axes[0], axes[1], axes[3]):
        ax.set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(path)


def one_bit_report(name: str) -> None:
    """What a run stuck on the memory task predicts at its last checkpoint: the prediction by
    bins of the first value x1 (the target), against a one-bit memory, 0.5 sign(x1)."""
    trainer = Trainer.resume(RUNS / name)
    x, y = next(trainer.data.eval_batches("valid"))
    prediction, x1, y = trainer.model.forward(x).ravel(), x[:, 0, 0], y.ravel()
    final = trainer.model.rnn.forward(x)[0][:, -1]  # (B, H)
    pinned = (np.abs(final) > 0.99).all(axis=0)
    flips = pinned & (np.sign(final).std(axis=0) > 0)
    print(f"\n{RUN_SPECS[name][0]} at step {trainer.step}: MSE {300 * np.mean((prediction - y) ** 2):.3g}% of the "
          f"baseline; 0.5 sign(x1) would give {300 * np.mean((0.5 * np.sign(x1) - y) ** 2):.3g}%; "
          f"corr(prediction, sign x1) {np.corrcoef(prediction, np.sign(x1))[0, 1]:.3f}; units of h(T) saturated in "
          f"every sequence: {np.count_nonzero(pinned)} of {final.shape[1]}, {np.count_nonzero(flips)} of them "
          f"changing sign with the sequence")
    print("| x1 in | sequences | mean prediction | std of the prediction |\n|---|---|---|---|")
    for lo, hi in ((-1, -0.5), (-0.5, -0.1), (-0.1, 0), (0, 0.1), (0.1, 0.5), (0.5, 1)):
        m = (x1 >= lo) & (x1 < hi)
        print(f"| [{lo}, {hi}) | {np.count_nonzero(m)} | {prediction[m].mean():.3f} | {prediction[m].std():.3f} |")


def collapse_probe(name: str, start: int, stop: int) -> None:
    """Step by step through a collapse: the run again from scratch to ``start`` (no folder),
    then every step to ``stop``, printing the steps whose gradient norm (before clipping) is
    above 20 and, every 10 steps, the loss on the fixed batch and the constant units of h(T)."""
    trainer = Trainer(TrainConfig.from_dict({**run_config(name).to_dict(), "out": None}))
    x, y = next(trainer.data.eval_batches("valid"))
    trainer.run(until=start)
    print(f"\n{RUN_SPECS[name][0]}, steps {start} to {stop}:")
    print("| step | gradient norm before clipping | MSE on the batch, % of baseline | prediction std | constant units of h(T) |")
    print("|---|---|---|---|---|")
    while trainer.step < stop:
        _, norm = trainer.train_step()
        if norm > 20 or trainer.step % 10 == 0:
            prediction = trainer.model.forward(x).ravel()
            mse = np.mean((prediction - y.ravel()) ** 2) / trainer.data.baseline_loss
            print(f"| {trainer.step} | {norm:.3g} | {100 * mse:.3g} | {prediction.std():.3g} "
                  f"| {constant_units(trainer.model, x)} of {trainer.config.hidden_size} |")


def irnn_table() -> None:
    """The IRNN runs side by side: live units, loss, the first step's reach, the rate, the test loss."""
    print("\n| run | live units at step 0 / 50 / 3000 / last | MSE % of baseline at 1000 / 3000 / last (step) "
          "| `‖dh(T)/dh(1)‖` min-max after step 0 | Jacobian rate at the last step | largest gradient norm, steps 1-250 "
          "| test MSE at the end |")
    print("|---|---|---|---|---|---|---|")
    for name in IRNN_RUNS:
        rows = {r["step"]: r for r in read_rows(name)}
        last = max(rows)
        summary = RUNS / name / "summary.json"
        test = json.loads(summary.read_text())["test_loss"] if summary.is_file() else None
        reach = [r["jacobian_first"] for s, r in rows.items() if s > 0]
        losses = " / ".join(f"{100 * rows[s]['loss'] / rows[s]['baseline']:.3g}" for s in (1000, 3000, last))
        print(f"| {RUN_SPECS[name][0]} | {' / '.join(str(rows[s]['live_units']) for s in (0, 50, 3000, last))} "
              f"| {losses} ({last}) "
              f"| {min(reach):.2g}-{max(reach):.2g} | {rows[last]['jacobian_rate']:.4f} | {fmt(rows[250]['grad_norm_max'])} "
              f"| {fmt(test)} |")


def bias_probe(seed: int = 1, steps: int = 10) -> None:
    """The first ``steps`` Adam steps of both IRNN initialisations, from scratch (no folder): live
    units, the most negative bias, and the largest input drive ``max over x of x W`` (x in [0, 1]^2)
    of the units that died."""
    print(f"\nIRNN, seed {seed}, after {steps} steps:")
    for experiment in ("adding-irnn", "adding-irnn-paper-init"):
        trainer = Trainer(TrainConfig(**{**EXPERIMENTS[experiment], "seed": seed}))
        x, _ = next(trainer.data.eval_batches("valid"))
        live_before = live_mask(trainer.model, x)
        trainer.run(until=steps)
        live = live_mask(trainer.model, x)
        died = live_before & ~live
        W, b = trainer.model.params["rnn.W"], trainer.model.params["rnn.b"]
        drive = np.maximum(W, 0).sum(axis=0)  # (H,) the largest x W over inputs in [0, 1]^2
        print(f"  {experiment}: live units {live_before.sum()} -> {live.sum()}; bias min {b.min():.4f}; "
              f"units that died: {died.sum()}, their bias mean {b[died].mean() if died.any() else float('nan'):.4f}, "
              f"their largest input drive {drive[died].max() if died.any() else float('nan'):.4f}; "
              f"mean |W| {np.abs(W).mean():.4f}")


def read_rows(name: str) -> list[dict]:
    return json.loads((RUNS / name / "rows.json").read_text())


def report(done) -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    if all(n in done for n in ADDING_MODELS):
        adding_report()
    if all(n in done for n in IRNN_RUNS):
        irnn_table()
        bias_probe()
        timeline_report(IRNN_RUNS, DOCS / "irnn-init-timeline.png",
                        "IRNN on the adding problem (T = 150): torch-default W against W ~ N(0, 0.001^2)")
    if all(n in done for n in MEMORY_RUNS):
        one_bit_report("memory-t20-nowarmup-seed0")
        if os.environ.get("OPENBLAS_CORETYPE"):  # the probes train again: only with the kernels of their runs
            print("collapse probes skipped: they retrain runs made with the default OpenBLAS kernels")
        else:
            collapse_probe("memory-t20-nowarmup-seed2", 8600, 8650)
            collapse_probe("memory-t20-demo-20k-seed0", 1850, 1900)
        timeline_report(MEMORY_RUNS, DOCS / "memory-timeline.png",
                        "notebook RNN on the memory task (T = 20), lr 3e-3, cosine over 20k steps")
        entries = [(f"{RUN_SPECS[n][0]}, step {s}", diagnostics_at(n, s))
                   for n in ("memory-t20-seed1", "memory-t20-nowarmup-seed1") for s in (0, 2500)]
        print(plot_gradient_flow(relabelled(entries), DOCS / "memory-flow.png",
                                 title="memory task, T = 20: without and with warm-up"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=tuple(RUN_SPECS), help="these runs only")
    parser.add_argument("--rerun", action="store_true", help="start the selected runs over")
    parser.add_argument("--list", action="store_true", help="the runs and their diagnosed steps")
    parser.add_argument("--report", action="store_true", help="tables and figures of the finished runs only")
    args = parser.parse_args(argv)
    if args.list:
        for name, (label, experiment, changes, seed, steps) in RUN_SPECS.items():
            print(f"{name}: {label}: experiment {experiment} (benchmarks/sweeps/)"
                  f"{' with ' + str(changes) if changes else ''}, seed {seed}, diagnosed at steps {list(steps)}")
        return 0
    names = args.only or list(RUN_SPECS)
    if not args.report:
        for name in names:
            trained_run(name, args.rerun)
    done = {n for n in RUN_SPECS if (RUNS / n / "rows.json").is_file()
            and [r["step"] for r in read_rows(n)] == list(RUN_SPECS[n][4])}
    report(done)
    return 0


if __name__ == "__main__":
    sys.exit(main())
