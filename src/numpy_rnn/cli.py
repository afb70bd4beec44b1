"""Command line (also ``python -m numpy_rnn``).

``numpy-rnn gradcheck``: the notebook's gradient check. ``numpy-rnn train``: a training run
into a run folder (``--resume RUN_DIR`` continues one); ``numpy-rnn eval RUN_DIR`` and
``numpy-rnn sample RUN_DIR`` (character model) use its checkpoint. ``numpy-rnn diagnose``:
gradient-flow diagnostics of a run or of a fresh model. ``numpy-rnn sweep SPEC.toml --out DIR``:
many runs from a spec on Dask (``--report DIR`` rebuilds the results). ``numpy-rnn demo``: the
gradient check, then a short training run of the notebook's RNN on the memory task.

Exit codes: 0 done; 1 the command failed (a gradient check failed, a file or run folder that
cannot be read or written, a refused checkpoint, a non-finite loss); 2 the command line is wrong
(an unknown option, a bad value or combination; with the usage); 130 Ctrl-C (after saving a
checkpoint). SIGTERM (``kill PID``) stops a command as Ctrl-C does: a job started in the
background by a shell ignores Ctrl-C's SIGINT, so ``kill`` is how it is stopped cleanly.

Each ``run_*`` function runs one command: it takes ``args``, the parsed command line (the
``argparse.Namespace`` of :func:`build_parser`), and returns the exit status.

A failure prints one line, ``numpy-rnn COMMAND: error: MESSAGE``, on stderr and no
traceback: the errors a user's input or machine can cause (``USER_ERRORS``) are reported so;
any other exception is a bug and keeps its traceback. ``--debug`` (or ``NUMPY_RNN_DEBUG=1``)
shows the traceback of every error.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import re
import signal
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .checkpoint import CheckpointError
from .config import TASK_DEFAULTS
from .diagnostics import DIAGNOSTICS_FILE, FLOW_PLOT, SATURATION_PLOT, diagnose
from .gradcheck import gradient_check, require_float64
from .models import CELLS, RNN, import_cells
from .train import (
    PLOT_FILE,
    SUMMARY_FILE,
    Interrupted,
    NonFiniteError,
    RunInUse,
    TrainConfig,
    Trainer,
    _handling_signals,
    remove_run,
    run_exists,
    sample_text,
)

#: the demo's run: the notebook's RNN learns to recall the first of 10 values
DEMO = {"task": "memory", "model": "notebook", "seq_len": 10, "hidden_size": 32, "batch_size": 32, "lr": 3e-3,
        "schedule": "cosine", "steps": 4000, "eval_every": 200, "checkpoint_every": 1000}
#: the notebook's gradient check: input size D and the output sizes K, one model each
NOTEBOOK_CHECK = {"input_size": 5, "hidden_size": 10, "seq_len": 5, "output_sizes": [1, 5]}
#: errors that a user's input or machine can cause: one line and exit 1, no traceback.
#: (OSError covers missing, existing, unreadable and unwritable paths and full disks;
#: UnicodeDecodeError is a ValueError; MemoryError and RecursionError come from hostile input;
#: NonFiniteError from a diverging run; RunInUse from a run folder another process writes.)
#: ``Owner: `` or ``Owner.method: `` at the start of a library's error message
_PYTHON_OWNER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?: ")
USER_ERRORS = (ValueError, TypeError, OSError, CheckpointError, MemoryError, RecursionError, NonFiniteError, RunInUse)
HINT = "Start with 'numpy-rnn demo'; 'numpy-rnn COMMAND --help' lists a command's options."
_LOSS_NAMES = {"mse": "MSE", "cross_entropy": "cross-entropy"}


def _int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``."""
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {value}")
        return value
    convert.__name__ = kind
    return convert


_positive_int, _seed = _int_at_least(1), _int_at_least(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _add_gradcheck_options(parser: argparse.ArgumentParser) -> None:
    c = NOTEBOOK_CHECK
    parser.add_argument("--input-size", type=_positive_int, default=c["input_size"],
                        help="D, input features (default: %(default)s)")
    parser.add_argument("--hidden-size", type=_positive_int, default=c["hidden_size"],
                        help="H, hidden units (default: %(default)s)")
    parser.add_argument("--seq-len", type=_positive_int, default=c["seq_len"],
                        help="T, time steps (default: %(default)s)")
    parser.add_argument("--output-sizes", type=_positive_int, nargs="+", default=c["output_sizes"], metavar="K",
                        help="output sizes to check, one model each (default: 1 5, as the notebook)")
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the weights and the input (default: 0)")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                        help="only float64 can be checked; float32 is refused with the reason (default: float64)")
    parser.add_argument("--threshold", type=_positive_float, default=1e-7,
                        help="pass if the norm of the difference is below this (default: %(default)s)")


def _check_notebook_rnn(parser, *, input_size: int, hidden_size: int, seq_len: int, output_sizes,
                        seed: int, dtype: str = "float64", threshold: float = 1e-7) -> bool:
    """The notebook's gradient check: an RNN per output size, x ~ U[0, 1) of shape (T, D), its lines
    printed; True when every check passed."""
    rng = np.random.default_rng(seed)
    passed = True
    for i, output_size in enumerate(output_sizes):
        model = RNN(input_size, hidden_size, output_size, rng=rng, dtype=np.dtype(dtype))
        x = rng.random((seq_len, input_size)).astype(dtype)
        try:
            require_float64({"x": x, **model.params})
        except ValueError as exc:  # float32 cannot be checked: say why
            parser.error(_message(exc))
        kind = "a single output neuron" if output_size == 1 else "multiple output neurons"
        print(("\n" if i else "") + f"Gradient check with {kind}:")
        passed = gradient_check(model, x, threshold=threshold) and passed
    return passed


def run_gradcheck(args) -> int:
    """The notebook's gradient check with the given sizes; exit 1 when any check failed."""
    if _check_notebook_rnn(args.parser, input_size=args.input_size, hidden_size=args.hidden_size,
                           seq_len=args.seq_len, output_sizes=args.output_sizes, seed=args.seed,
                           dtype=args.dtype, threshold=args.threshold):
        return 0
    _print_error("gradcheck", "a gradient check failed (see the lines above)")
    return 1


# ----------------------------------------------------------------------------- training
def _imported(module_name: str):
    """An argparse type: import the module (:func:`numpy_rnn.models.import_cells`)."""
    try:
        return import_cells(module_name).__name__
    except ValueError as exc:
        raise argparse.ArgumentTypeError(_message(exc)) from None


def _config_type(f: dataclasses.Field):
    """An argparse type: parse the text as the field's kind, then check it as TrainConfig does."""
    parse = {"int": int, "float": float}.get(f.metadata["kind"], str)

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            kind = "an integer" if parse is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        try:
            return TrainConfig.check_value(f.name, value)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(_message(exc)) from None
    convert.__name__ = f.name
    return convert


def _init_pair(text: str) -> tuple[str, str]:
    name, sep, rule = text.partition("=")
    if not (sep and name and rule):
        raise argparse.ArgumentTypeError(f"expected NAME=INITIALISER (e.g. R=identity), got {text!r}")
    try:
        TrainConfig.check_value("init", {name: rule})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(_message(exc)) from None
    return name, rule


def _add_config_options(parser: argparse.ArgumentParser, out_help: str = "run folder (default: runs/TASK)") -> None:
    """One flag per TrainConfig field; a flag not given leaves the field's default."""
    group = parser.add_argument_group("run configuration")
    for f in dataclasses.fields(TrainConfig):
        flag, meta = "--" + f.name.replace("_", "-"), f.metadata
        default = {} if f.default is dataclasses.MISSING else f.default
        notes = "; ".join(_default_notes(default) + _task_default_notes(f.name))
        options = {"default": argparse.SUPPRESS,
                   "help": out_help if f.name == "out" else meta["help"] + (f" ({notes})" if notes else "")}
        if meta["kind"] == "bool":  # a field on by default is switched off by --no-NAME
            group.add_argument(flag, action=argparse.BooleanOptionalAction if default is True else "store_true",
                               **options)
        elif meta["kind"] == "init":
            group.add_argument(flag, type=_init_pair, action="append", metavar="NAME=INIT", **options)
        elif meta["kind"] == "choice":
            group.add_argument(flag, choices=meta["choices"], **options)
        elif meta["kind"] == "cell":
            group.add_argument(flag, type=_config_type(f), metavar="{" + ",".join(CELLS) + "}|MODULE:CLASS", **options)
        else:
            group.add_argument(flag, type=_config_type(f), metavar=f.name.upper(), **options)



def _default_notes(default) -> list[str]:
    """``["default: X"]``; nothing where there is no default value to show (None, off, empty): the
    help says what happens then."""
    return [] if default is None or default is False or default == {} else [f"default: {default}"]


def _task_default_notes(name: str) -> list[str]:
    """``["chars: X"]`` where a task brings its own default for field ``name``."""
    return [f"{task}: {'100, at most a tenth of the steps' if callable(value) else value}"
            for task, defaults in TASK_DEFAULTS.items() for key, value in defaults.items() if key == name]


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
          f"{summary['seconds']:.1f} s{_weights_note(summary['weights_step'], summary['steps'])}")


def _weights_note(weights_step: int, step: int) -> str:
    """Where the weights come from, when not from the last step (early stopping keeps the best)."""
    return "" if weights_step == step else f"; weights of step {weights_step} (the best validation loss)"


def _train(trainer: Trainer, progress: bool) -> int:
    """Run ``trainer`` to the end and report; Ctrl-C saves a checkpoint and exits 130 (a
    non-finite loss reaches ``main``: exit 1)."""
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
    _report(trainer, summary)
    return 0


def _resumed(run_dir: str) -> Trainer:
    """The run in ``run_dir`` holding the weights it ends with (the best ones, when early
    stopping keeps them); why not (no such folder, a refused checkpoint) reaches ``main``,
    which reports it in one line (exit 1)."""
    trainer = Trainer.resume(run_dir)
    trainer.use_final_weights()
    return trainer


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _flags(names) -> str:
    return ", ".join(_flag(name) for name in names)


def _new_config(args, given: dict) -> TrainConfig:
    """The run configuration the command line ``given`` describes; a bad option is a usage error
    (flags that do not apply are refused even at their default value)."""
    try:
        TrainConfig.check_applicable({**TrainConfig().to_dict(), **given}, given, owner=args.command, spell=_flag)
        return TrainConfig.for_task(given.pop("task", "memory"), **given)
    except (TypeError, ValueError) as exc:
        args.parser.error(_message(exc))


def run_train(args) -> int:
    """``numpy-rnn train``: a new run into ``--out`` (``--force`` starts over in a folder holding a run),
    or ``--resume RUN_DIR`` (with ``--steps N``: extended to N steps); exit status 0."""
    given = _given_config(args)
    if args.resume is not None:
        others = [name for name in given if name != "steps"]
        if others or args.force:
            args.parser.error(f"--resume continues a run with its own configuration (only --steps may extend it); "
                              f"got also {_flags(others + ['force'] * args.force)}")
        return _train(Trainer.resume(args.resume, steps=given.get("steps")), not args.no_progress)
    given.setdefault("out", str(Path("runs") / given.get("task", "memory")))
    config = _new_config(args, given)
    if run_exists(config.out):
        if not args.force:
            raise FileExistsError(f"'{config.out}' already holds a run: continue it with --resume {config.out}, "
                                  f"or start over with --force")
        remove_run(config.out)
    return _train(Trainer(config), not args.no_progress)  # the files (--text, --out): main reports


def run_eval(args) -> int:
    """``numpy-rnn eval RUN_DIR``: the run's validation and test loss against its task's baseline."""
    trainer = _resumed(args.run_dir)
    loss = _LOSS_NAMES[trainer.data.loss]
    valid, test, baseline = trainer.evaluate("valid"), trainer.evaluate("test"), trainer.data.baseline_loss
    print(f"{args.run_dir}: task {trainer.config.task}, step {trainer.step} of {trainer.config.steps}"
          f"{_weights_note(trainer.weights_step, trainer.step)}")
    print(f"validation {loss} {valid:.6g}")
    print(f"test {loss} {test:.6g} vs baseline {baseline:.6g} ({100 * test / baseline:.3g}% of it)")
    return 0


def run_sample(args) -> int:
    """``numpy-rnn sample RUN_DIR``: text written by a character model's run, after ``--prime``."""
    trainer = _resumed(args.run_dir)
    if trainer.config.task != "chars":  # the run, not the command line, is wrong: exit 1
        raise ValueError(f"'{args.run_dir}' is a run of task {trainer.config.task!r}; "
                         f"only a character model (--task chars) writes text")
    try:
        text = sample_text(trainer, args.length, temperature=args.temperature, prime=args.prime, rng=args.seed)
    except (TypeError, ValueError) as exc:
        args.parser.error(_message(exc))
    print(args.prime + text)
    return 0


def run_diagnose(args) -> int:
    """Gradient-flow diagnostics of a trained run's final weights (``RUN_DIR``), or of a fresh
    model at initialisation (the ``train`` options), on one training batch of its task."""
    given = _given_config(args)
    if args.run_dir is not None:
        others = [name for name in given if name != "out"]
        if others:
            args.parser.error(f"RUN_DIR brings its own configuration (only --out may be given); got also {_flags(others)}")
        trainer, out = _resumed(args.run_dir), Path(given.get("out", args.run_dir))
        what = f"{args.run_dir} at step {trainer.weights_step}"
    else:
        config = _new_config(args, {**given, "out": None})
        out = Path(given.get("out", str(Path("runs") / f"diagnose-{config.task}")))
        trainer, what = Trainer(config), f"a fresh {config.model} model ({config.cell_used}) at initialisation"
    x, y, state = trainer.data.next_batch()
    result = diagnose(trainer.model, x, y, loss=trainer.data.loss, state=state,
                      jacobian_sequences=args.jacobian_sequences)
    out.mkdir(parents=True, exist_ok=True)
    print(f"diagnostics of {what}, task {trainer.config.task}, on a batch of {result.batch_size} "
          f"sequences of T={result.seq_len}:")
    for run in result.to_dict()["layers"]:
        print(f"  {run['name']} ({run['cell']}): ||dL/dh|| x{_rate(run['dl_dh_rate_per_step'])} per step back, "
              f"||dh(T)/dh(t)|| x{_rate(run['jacobian_rate_per_step'])} per step back ({run['jacobian_method']})")
    print(f"wrote {result.save(out / DIAGNOSTICS_FILE)}")
    title = f"{trainer.config.task} task, {what}"
    try:
        from .plot import plot_gradient_flow, plot_saturation
        print(f"plots: {plot_gradient_flow(result.to_dict(), out / FLOW_PLOT, title=title)}, "
              f"{plot_saturation(result.to_dict(), out / SATURATION_PLOT, title=title)}")
    except ImportError as exc:
        print(f"no plots: {exc}", file=sys.stderr)
    return 0


def _rate(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.4g}"


def run_sweep_command(args) -> int:
    """Every run of the spec into ``--out`` on Dask, then the results; or ``--report DIR``
    alone. Exit 1 naming the runs that failed (a run that diverged is a result, not a failure);
    130 on Ctrl-C (a rerun goes on)."""
    if args.report is not None:
        options = ("out", "scheduler", "workers", "force", "retry_diverged")
        given = ["SPEC.toml"] * (args.spec is not None) + [_flag(name) for name in options
                                                            if getattr(args, name) not in (None, False)]
        if given:
            args.parser.error(f"--report rebuilds the results of a sweep folder alone; got also {', '.join(given)}")
        from .sweep_results import write_report
        for path in write_report(args.report):
            print(f"wrote {path}")
        return 0
    if args.spec is None or args.out is None:
        args.parser.error("expected SPEC.toml and --out DIR (or --report DIR)")
    if args.scheduler is not None and args.workers is not None:
        args.parser.error("--workers sizes the embedded cluster; with --scheduler the cluster's own workers run the sweep")
    from .sweep import load_spec, run_sweep
    spec = load_spec(args.spec)
    progress = not args.no_progress and importlib.util.find_spec("tqdm") is not None
    try:
        result = run_sweep(spec, args.out, scheduler=args.scheduler, workers=args.workers, force=args.force,
                           retry_diverged=args.retry_diverged, progress=progress, on_result=_print_run_result)
    except ImportError as exc:  # Dask is an extra
        _print_error("sweep", str(exc))
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: the runs are stopped at their last checkpoint; rerun the same command to go on",
              file=sys.stderr)
        return 130
    for folder in result["redone"]:
        print(f"redone (its configuration changed{', or it had diverged' if args.retry_diverged else ''}): {folder}")
    done, skipped, diverged, failed = (len(result[k]) for k in ("done", "skipped", "diverged", "failed"))
    print(f"sweep {args.out}: {done} runs trained, {diverged} diverged, {skipped} finished or diverged before, "
          f"{failed} failed")
    for path in result["report"]:
        print(f"wrote {path}")
    if failed:
        _print_error("sweep", f"{failed} run(s) failed (error.txt in each): "
                              + "; ".join(f"{folder}: {line}" for folder, line in result["failed"].items()))
        return 1
    return 0


def _print_run_result(folder: str, result: dict) -> None:
    """One line as a run of the sweep ends: trained (its test loss and time), diverged (a result,
    not a failure: diverged.json in its folder) or failed (error.txt); nothing for one skipped or
    stopped."""
    status = result["status"]
    if status == "done":
        summary = json.loads((Path(folder) / SUMMARY_FILE).read_text(encoding="utf-8"))
        test = "not finite" if summary["test_loss"] is None else f"{summary['test_loss']:.4g}"
        print(f"done: {folder} (test loss {test}, {summary['seconds'] / 60:.1f} min)", flush=True)
    elif status in ("diverged", "failed"):
        print(f"{status}: {folder}: {result['error']}", flush=True)


def run_demo(args) -> int:
    """The notebook's gradient check, then the notebook's RNN trained on the memory task, both
    with the demo's H, T and seed (into ``--out``, replacing the previous demo's run there)."""
    sizes = {"hidden_size": args.hidden_size, "seq_len": args.seq_len}
    checked = _check_notebook_rnn(args.parser, **{**NOTEBOOK_CHECK, **sizes}, seed=args.seed)
    if not checked:
        _print_error("demo", "a gradient check failed (see the lines above): not training")
        return 1
    config = TrainConfig(**{**DEMO, **sizes, "steps": args.steps, "seed": args.seed, "out": args.out})
    remove_run(config.out)  # the previous demo's run files
    print(f"\nTraining the notebook RNN (H={config.hidden_size}) on the memory task: recall the first of "
          f"T={config.seq_len} values drawn from U(-1, 1); {config.steps} steps of {config.batch_size} sequences")
    return _train(Trainer(config), not args.no_progress)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``numpy-rnn`` and its commands (their ``--help`` is the command reference)."""
    parser = argparse.ArgumentParser(prog="numpy-rnn", description="Recurrent networks in NumPy with exact, checked gradients.",
                                     epilog=HINT)
    parser.add_argument("--version", action="version", version=f"numpy-rnn {__version__}")
    debug_help = "show the traceback of an error (also: environment NUMPY_RNN_DEBUG=1)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, run, help, description, **options):
        sub = commands.add_parser(name, help=help, description=description, **options)
        sub.set_defaults(run=run, parser=sub)
        # after the command too; SUPPRESS keeps a --debug given before it
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
        if name in ("train", "eval", "sample", "diagnose", "sweep"):  # the commands that read stored runs
            sub.add_argument("--import", type=_imported, action="append", metavar="MODULE", dest="imports",
                             help="import MODULE first (installed, on PYTHONPATH or in the current directory): the "
                                  "cells of your own that a stored run names (MODULE:CLASS); repeatable")
        return sub

    check = command("gradcheck", run_gradcheck, "the notebook's gradient check",
                    "Check the notebook RNN's backward pass against central differences.")
    _add_gradcheck_options(check)

    train = command("train", run_train, "train a model on a task, or --resume a run",
                    "Train into a run folder: config.json, metrics.jsonl, checkpoint.ckpt, summary.json, loss.png.",
                    usage="%(prog)s [--task TASK] [--cell CELL] [options] [--out RUN_DIR]\n       %(prog)s --resume RUN_DIR")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue the run in RUN_DIR from its checkpoint (with --steps N: extend it to N steps)")
    train.add_argument("--force", action="store_true",
                       help="start over in an --out folder that holds a run (deletes that run's files only)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_options(train)

    evaluate = command("eval", run_eval, "validation and test loss of a run's checkpoint",
                       "Evaluate the checkpoint of RUN_DIR on its validation and test sets.")
    evaluate.add_argument("run_dir", metavar="RUN_DIR")

    sample = command("sample", run_sample, "generate text with a character model",
                     "Generate text with the character model of RUN_DIR (a run of --task chars).")
    sample.add_argument("run_dir", metavar="RUN_DIR")
    sample.add_argument("--length", type=_positive_int, default=300, help="characters to generate (default: %(default)s)")
    sample.add_argument("--temperature", type=_positive_float, default=0.8, help="softmax temperature (default: %(default)s)")
    sample.add_argument("--prime", default="", help="text fed to the model first")
    sample.add_argument("--seed", type=_seed, default=0, help="seed of the draws (default: %(default)s)")

    diag = command("diagnose", run_diagnose, "gradient-flow diagnostics of a run, or of a fresh model",
                   "How much of the loss reaches each step, how fast the state forgets, and saturation, on one "
                   "training batch: of the final weights of RUN_DIR (written there unless --out), or of a fresh "
                   "model built from the train options (--task, --cell, ...). Writes diagnostics.json, "
                   "gradient_flow.png and saturation.png.",
                   usage="%(prog)s RUN_DIR [--out DIR]\n       %(prog)s [--task TASK] [--cell CELL] [options] [--out DIR]")
    diag.add_argument("run_dir", metavar="RUN_DIR", nargs="?", help="a run folder (omit to diagnose a fresh model)")
    diag.add_argument("--jacobian-sequences", type=_positive_int, default=4,
                      help="sequences of the batch whose Jacobian norms are computed (default: %(default)s)")
    _add_config_options(diag, "where diagnostics.json and the plots go (default: RUN_DIR, or runs/diagnose-TASK)")

    sweep = command("sweep", run_sweep_command, "many training runs from a TOML spec, on Dask; or --report a sweep",
                    "Run every configuration and seed of SPEC.toml into DIR/<name>/seed<k>/ on Dask distributed "
                    "(an embedded cluster, or --scheduler), skipping finished runs and resuming unfinished ones; "
                    "then write DIR/results.csv, results.md and results.png. Needs numpy-rnn[sweep].",
                    usage="%(prog)s SPEC.toml --out DIR [--scheduler tcp://HOST:PORT] [--workers N] [--force]\n"
                          "       %(prog)s --report DIR")
    sweep.add_argument("spec", metavar="SPEC.toml", nargs="?", help="the sweep spec: seeds, [base], [grid], [[runs]]")
    sweep.add_argument("--out", metavar="DIR", help="the sweep folder")
    sweep.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="an existing Dask scheduler (its workers must see DIR at the same path); "
                            "default: an embedded cluster on this machine")
    sweep.add_argument("--workers", type=_positive_int, metavar="N",
                       help="worker processes of the embedded cluster (default: one per core)")
    sweep.add_argument("--force", action="store_true",
                       help="run a changed spec into DIR: redo the runs whose configuration changed, keep the others")
    sweep.add_argument("--retry-diverged", action="store_true",
                       help="train again the runs recorded as diverged (after a new version of numpy-rnn, or on "
                            "another machine); a rerun otherwise skips them")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.add_argument("--report", metavar="DIR", help="only rebuild the results of the sweep folder DIR")

    demo = command("demo", run_demo, "the main job of `make demo`: gradient check, then a short training run",
                   "The notebook's gradient check (D = 5, K = 1 and 5), then its RNN trained on the memory task "
                   "(recall the first of T values) with a progress bar. H, T and the seed apply to both.")
    demo.add_argument("--hidden-size", type=_positive_int, default=DEMO["hidden_size"],
                      help="H, hidden units of the checked and the trained RNN (default: %(default)s)")
    demo.add_argument("--seq-len", type=_positive_int, default=DEMO["seq_len"],
                      help="T, time steps of the check and of the memory task (default: %(default)s)")
    demo.add_argument("--seed", type=_seed, default=0, help="seed of the check, the weights and the data (default: 0)")
    demo.add_argument("--steps", type=_positive_int, default=DEMO["steps"], help="training steps (default: %(default)s)")
    demo.add_argument("--out", default=str(Path("runs") / "demo"), help="run folder (default: %(default)s)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _print_error(command: str, message: str) -> None:
    """The one line that reports a failure: ``numpy-rnn COMMAND: error: MESSAGE``."""
    print(f"numpy-rnn {command}: error: {' '.join(message.splitlines())}", file=sys.stderr)


def _message(exc: BaseException) -> str:
    """What went wrong, in the command line's words: an OSError without its errno number, and
    without the Python owner a library message starts with (``TrainConfig: ``,
    ``CharCorpus.from_file: ``), which names nothing the command line shows."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: '{os.fsdecode(exc.filename)}'"
    if isinstance(exc, MemoryError):
        return f"out of memory{': ' + str(exc) if str(exc) else ''}"
    return _PYTHON_OWNER.sub("", str(exc), count=1) or type(exc).__name__


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    argparse's usage errors raise SystemExit(2) as usual; see the module docstring for the rest.
    """
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help(sys.stderr)
        parser.exit(2, f"\nnumpy-rnn: error: a command is required. {HINT}\n")
    args = parser.parse_args(argv)
    try:
        with _handling_signals((signal.SIGTERM,), _raise_keyboard_interrupt):  # kill stops as Ctrl-C does
            code = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except KeyboardInterrupt:  # outside the training loop, which saves a checkpoint first
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``numpy-rnn sample RUN | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141  # 128 + SIGPIPE, as a shell reports a command stopped by a closed pipe
    except USER_ERRORS as exc:
        if args.debug or os.environ.get("NUMPY_RNN_DEBUG", "0") not in ("", "0"):
            raise
        _print_error(args.command, _message(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
