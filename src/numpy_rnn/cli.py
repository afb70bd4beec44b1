"""Command line: ``numpy-rnn gradcheck`` and ``numpy-rnn demo`` (also ``python -m numpy_rnn``)."""
from __future__ import annotations

import argparse
import sys

import numpy as np

from .gradcheck import gradient_check, require_float64
from .models import RNN


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
        require_float64({"x": x, **model.params})
        kind = "a single output neuron" if output_size == 1 else "multiple output neurons"
        print(("\n" if i else "") + f"Gradient check with {kind}:")
        gradient_check(model, x, threshold=args.threshold)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="numpy-rnn", description="Recurrent networks in NumPy with exact, checked gradients.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("gradcheck", help="the notebook's gradient check (Task 2)",
                                description="Check the notebook RNN's backward pass against central differences.")
    _add_gradcheck_options(check)
    check.set_defaults(run=run_gradcheck, parser=check)
    demo = commands.add_parser("demo", help="the main job of `make demo`: the notebook's gradient check",
                               description="Run the notebook's gradient check with its sizes.")
    _add_gradcheck_options(demo)
    demo.set_defaults(run=run_gradcheck, parser=demo)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as exc:  # e.g. float32 refused by the gradient check
        args.parser.error(str(exc))


if __name__ == "__main__":
    sys.exit(main())
