"""Command line (also ``python -m numpy_rnn``).

``numpy-rnn gradcheck``: the notebook's gradient check. ``numpy-rnn train``: a training run
into a run folder (``--resume RUN_DIR`` continues one); ``numpy-rnn eval RUN_DIR`` and
``numpy-rnn sample RUN_DIR`` (character model) use its checkpoint. ``numpy-rnn demo``: the
gradient check, then a short training run of the notebook's RNN on the memory task.

Exit codes: 0 done, 1 a non-finite loss stopped training, 2 bad arguments, 130 Ctrl-C (after
saving a checkpoint).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointError
from .gradcheck import gradient_check, require_float64
from .models import RNN
from .train import Interrupted, NonFiniteError, TrainConfig, Trainer, run_exists, sample_text

PLOT_FILE = "loss.png"
#: the demo's run: the notebook's RNN learns to recall the first of 10 values
DEMO = dict(task="memory", model="notebook", seq_len=10, hidden_size=32, batch_size=32, lr=3e-3,
            schedule="cosine", steps=4000, eval_every=200, checkpoint_every=1000)
_LOSS_NAMES = {"mse": "MSE", "cross_entropy": "cross-entropy"}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_gradcheck_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-size", type=_positive_int, default=5, help="D, input features (default 5)")
    parser.add_argument("--hidden-size", type=_positive_int, default=10, help="H, hidden units (default 10)")
    parser.add_argument("--seq-len", type=_positive_int, default=5, help="T, time steps (default 5)")
    parser.add_argument("--output-sizes", type=_positive_int, nargs="+", default=[1, 5], metavar="K",
                        help="output sizes to check, one model each (default: 1 5, as the notebook)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the input (default 0)")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                        help="only float64 can be checked; float32 is refused with the reason")
    parser.add_argument("--threshold", type=float, default=1e-7, help="pass if the norm of the difference is below (default 1e-7)")


def run_gradcheck(args) -> int:
    """The notebook's Task 2: an RNN per output size, x ~ U[0, 1) of shape (T, D)."""
    rng = np.random.default_rng(args.seed)
    for i, output_size in enumerate(args.output_sizes):
        model = RNN(args.input_size, args.hidden_size, output_size, rng=rng, dtype=np.dtype(args.dtype))
        x = rng.random((args.seq_len, args.input_size)).astype(args.dtype)
        try:
            require_float64({"x": x, **model.params})
        except ValueError as exc:  # float32 cannot be checked: say why
            args.parser.error(str(exc))
        kind = "a single output neuron" if output_size == 1 else "multiple output neurons"
        print(("\n" if i else "") + f"Gradient check with {kind}:")
        gradient_check(model, x, threshold=args.threshold)
    return 0


# ----------------------------------------------------------------------------- training
def _config_type(f: dataclasses.Field):
    """An argparse type: parse the text as the field's type, then check it as TrainConfig does."""
    parse = int if type(f.default) is int else float if type(f.default) is float else str

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            kind = "an integer" if parse is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        try:
            return TrainConfig.check_value(f.name, value)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = f.name
    return convert


def _init_pair(text: str) -> tuple[str, str]:
    name, sep, rule = text.partition("=")
    if not (sep and name and rule):
        raise argparse.ArgumentTypeError(f"expected NAME=INITIALISER (e.g. R=identity), got {text!r}")
    try:
        TrainConfig.check_value("init", {name: rule})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name, rule


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; a flag not given leaves the field's default."""
    group = parser.add_argument_group("run configuration (TrainConfig; defaults in brackets)")
    for f in dataclasses.fields(TrainConfig):
        flag, meta = "--" + f.name.replace("_", "-"), f.metadata
        default = {} if f.default is dataclasses.MISSING else f.default
        options = {"default": argparse.SUPPRESS, "help": f"{meta['help']} [{default}]"}
        if isinstance(default, bool):
            group.add_argument(flag, action="store_true", **options)
        elif isinstance(default, dict):
            group.add_argument(flag, type=_init_pair, action="append", metavar="NAME=INIT", **options)
        elif "choices" in meta:
            group.add_argument(flag, choices=meta["choices"], **options)
        else:
            group.add_argument(flag, type=_config_type(f), metavar=f.name.upper(), **options)


def _given_config(args) -> dict:
    """The TrainConfig fields given on the command line."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    if "init" in given:
        given["init"] = dict(given["init"])
    return given


def _report(trainer: Trainer, summary: dict) -> None:
    """Write the loss plot (when matplotlib is there) and print where things are and the result."""
    loss = _LOSS_NAMES[summary["loss"]]
    if trainer.out:
        print(f"run folder: {trainer.out}")
        try:
            from .plot import plot_history
            c = trainer.config
            path = plot_history(trainer.history, summary["baseline_loss"], trainer.out / PLOT_FILE, ylabel=loss,
                                title=f"{c.task} task, {c.model} model ({c.cell_used})")
            print(f"plot: {path}")
        except ImportError as exc:
            print(f"no plot: {exc}", file=sys.stderr)
    print(f"test {loss} {summary['test_loss']:.4g} vs baseline {summary['baseline_loss']:.4g} "
          f"({100 * summary['ratio_to_baseline']:.3g}% of it) after {summary['steps']} steps, "
          f"{summary['seconds']:.1f} s")


def _train(trainer: Trainer, progress: bool) -> int:
    """Run ``trainer`` to the end and report; Ctrl-C saves a checkpoint and exits 130."""
    if progress and importlib.util.find_spec("tqdm") is None:
        print("no progress bar: tqdm is not installed (pip install 'numpy-rnn[cli]')", file=sys.stderr)
        progress = False
    try:
        summary = trainer.run(progress=progress)
    except Interrupted as exc:
        where = f"checkpoint saved to {exc.checkpoint}; resume with: numpy-rnn train --resume {trainer.out}" \
            if exc.checkpoint else "no run folder, nothing saved"
        print(f"\ninterrupted at step {exc.step}: {where}", file=sys.stderr)
        return 130
    except NonFiniteError as exc:
        print(f"numpy-rnn train: error: {exc}", file=sys.stderr)
        return 1
    _report(trainer, summary)
    return 0


def _resumed(parser, run_dir: str) -> Trainer:
    """The run in ``run_dir``, or a parser error (exit 2) saying why not."""
    try:
        return Trainer.resume(run_dir)
    except (FileNotFoundError, CheckpointError, ValueError) as exc:
        parser.error(str(exc))


def run_train(args) -> int:
    given = _given_config(args)
    if args.resume is not None:
        if given:
            args.parser.error(f"--resume continues a run with its own configuration; got also "
                              f"{', '.join('--' + name.replace('_', '-') for name in given)}")
        return _train(_resumed(args.parser, args.resume), not args.no_progress)
    given.setdefault("out", str(Path("runs") / given.get("task", "memory")))
    if run_exists(given["out"]):
        args.parser.error(f"'{given['out']}' already holds a run: continue it with --resume {given['out']} "
                          f"or choose another --out")
    try:
        trainer = Trainer(TrainConfig(**given))
    except (TypeError, ValueError, FileNotFoundError) as exc:
        args.parser.error(str(exc))
    return _train(trainer, not args.no_progress)


def run_eval(args) -> int:
    trainer = _resumed(args.parser, args.run_dir)
    loss = _LOSS_NAMES[trainer.data.loss]
    valid, test, baseline = trainer.evaluate("valid"), trainer.evaluate("test"), trainer.data.baseline_loss
    print(f"{args.run_dir}: task {trainer.config.task}, step {trainer.step} of {trainer.config.steps}")
    print(f"validation {loss} {valid:.6g}")
    print(f"test {loss} {test:.6g} vs baseline {baseline:.6g} ({100 * test / baseline:.3g}% of it)")
    return 0


def run_sample(args) -> int:
    trainer = _resumed(args.parser, args.run_dir)
    try:
        text = sample_text(trainer, args.length, temperature=args.temperature, prime=args.prime, rng=args.seed)
    except (TypeError, ValueError) as exc:
        args.parser.error(str(exc))
    print(args.prime + text)
    return 0


def run_demo(args) -> int:
    """The notebook's gradient check, then the notebook's RNN trained on the memory task
    (into ``--out``, replacing the previous demo's run there)."""
    run_gradcheck(args)
    config = TrainConfig(**{**DEMO, "steps": args.steps or DEMO["steps"], "seed": args.seed, "out": args.out})
    print(f"\nTraining the notebook RNN (H={config.hidden_size}) on the memory task: recall the first of "
          f"T={config.seq_len} values drawn from U(-1, 1); {config.steps} steps of {config.batch_size} sequences")
    return _train(Trainer(config), not args.no_progress)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="numpy-rnn", description="Recurrent networks in NumPy with exact, checked gradients.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, run, help, description, **options):
        sub = commands.add_parser(name, help=help, description=description, **options)
        sub.set_defaults(run=run, parser=sub)
        return sub

    check = command("gradcheck", run_gradcheck, "the notebook's gradient check (Task 2)",
                    "Check the notebook RNN's backward pass against central differences.")
    _add_gradcheck_options(check)

    train = command("train", run_train, "train a model on a task, or --resume a run",
                    "Train into a run folder: config.json, metrics.jsonl, checkpoint.ckpt, summary.json, loss.png.",
                    usage="%(prog)s [--task TASK] [--cell CELL] [options] [--out RUN_DIR]\n       %(prog)s --resume RUN_DIR")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_options(train)

    evaluate = command("eval", run_eval, "validation and test loss of a run's checkpoint",
                       "Evaluate the checkpoint of RUN_DIR on its validation and test sets.")
    evaluate.add_argument("run_dir", metavar="RUN_DIR")

    sample = command("sample", run_sample, "generate text with a character model",
                     "Generate text with the character model of RUN_DIR (a run of --task chars).")
    sample.add_argument("run_dir", metavar="RUN_DIR")
    sample.add_argument("--length", type=_positive_int, default=300, help="characters to generate (default 300)")
    sample.add_argument("--temperature", type=float, default=0.8, help="softmax temperature (default 0.8)")
    sample.add_argument("--prime", default="", help="text fed to the model first")
    sample.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")

    demo = command("demo", run_demo, "the main job of `make demo`: gradient check, then a short training run",
                   "The notebook's gradient check, then its RNN trained on the memory task with a progress bar.")
    _add_gradcheck_options(demo)
    demo.add_argument("--out", default=str(Path("runs") / "demo"), help="run folder (default runs/demo)")
    demo.add_argument("--steps", type=_positive_int, help=f"training steps (default {DEMO['steps']})")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:  # outside the training loop, which saves a checkpoint first
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
