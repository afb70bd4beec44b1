"""numpy-rnn's vectorised gradient check against the course notebook's element loop.

Run: ``python benchmarks/bench_gradcheck.py [--repeats N]``. Prints markdown tables.

At the notebook's sizes (D = 5, H = 10, T = 5, K = 1 and 5) it times

* the numerical part of :func:`numpy_rnn.gradient_check`: :func:`numpy_rnn.gradcheck.numerical_gradients`
  (Richardson extrapolation with error estimates: about 6 evaluations per element and 13 for
  the noise estimate) on the vectorised ``model.apply`` batch, exactly as ``gradient_check``
  calls it (the perturbations of small arrays in one forward pass), against the notebook's
  ``get_numerical_gradient`` (two forward calls per element with a fixed ``eps = 1e-7``, in
  Python loops) on the notebook's own ``RNN`` class (``notebook_reference.py``) holding the same
  weights;
* the whole check (numerical + analytic + printing, output discarded) of both;

and the accuracy of both numerical gradients: their largest absolute difference to the analytic
gradient. The extrapolation spends more evaluations per element than the notebook's two (the
issues' old target, 30x the loop's speed, belonged to a fixed 6-point stencil) and is far more
accurate; the summary shows both sides of that trade, with no pass/fail.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time

import notebook_reference as nb
import numpy as np
from _timing import HealthProbe, environment_header, interleaved_medians
from threadpoolctl import threadpool_limits

import numpy_rnn
from numpy_rnn.gradcheck import WORKERS, numerical_gradients

D, H, T = 5, 10, 5
OUTPUT_SIZES = (1, 5)


def numpy_rnn_numerical(model, x) -> dict:
    """The numerical part of :func:`numpy_rnn.gradient_check`, written as it is there."""
    batched_x = x if x.ndim == 3 else x[None]
    weights = model.get_weights()

    def summed_output(a):
        return model.apply(a, batched_x).sum(axis=(-2, -1))

    return numerical_gradients(summed_output, weights, workers=WORKERS)


def setup(K: int) -> tuple:
    """The benchmark's model with K outputs and its input ``x (T, D)``, seeded by K."""
    rng = np.random.default_rng(K)
    model = numpy_rnn.RNN(D, H, K, rng=rng)
    return model, rng.random((T, D))


def notebook_model(model) -> nb.RNN:
    """The notebook's RNN with ``model``'s weights (biases as the notebook's column vectors)."""
    reference = nb.RNN(model.input_size, model.hidden_size, model.output_size)
    reference.set_weights(notebook_weights(model))
    return reference


def notebook_weights(model) -> dict:
    """``model``'s weights in the notebook's layout: ``bs (H, 1)``, ``by (K, 1)``."""
    w = model.get_weights()
    return {"W": w["W"], "R": w["R"], "V": w["V"], "bs": w["bs"].reshape(-1, 1), "by": w["by"].reshape(-1, 1)}


def analytic_gradient(model, x) -> dict:
    """The gradient of the summed outputs by backpropagation, as ``gradient_check`` takes it."""
    y = model.forward(x)
    return model.backward(np.ones_like(y))


def max_error(numerical: dict, analytic: dict) -> float:
    """Largest |numerical - analytic| over all arrays; ``numerical`` in numpy-rnn's layout."""
    return max(float(np.max(np.abs(value - analytic[key]))) for key, value in numerical.items())


def notebook_layout(gradients: dict, like: dict) -> dict:
    """The notebook's gradients (``dW``, transposed, biases as columns) in the names and shapes
    of ``like``'s numpy-rnn arrays."""
    return {key[1:]: value.T.reshape(like[key[1:]].shape) for key, value in gradients.items()}


def contenders(model, reference, x, whole: bool) -> dict:
    """``{"numpy-rnn": fn, "notebook": fn}``: the numerical part, or the whole printing check."""
    weights = notebook_weights(model)

    def ours():
        if whole:
            with contextlib.redirect_stdout(io.StringIO()):
                numpy_rnn.gradient_check(model, x)
        else:
            numpy_rnn_numerical(model, x)

    def theirs():
        reference.set_weights(weights)  # the notebook's loop leaves its last perturbation set
        if whole:
            with contextlib.redirect_stdout(io.StringIO()):
                nb.gradient_check(reference, x)
        else:
            nb.get_numerical_gradient(reference, x)

    return {"numpy-rnn": ours, "notebook": theirs}


def printed(check, model, x) -> str:
    """What a gradient check prints, on one line."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        check(model, x)
    return "; ".join(buffer.getvalue().strip().splitlines())


def run(repeats: int) -> list[tuple]:
    """Print the table; return ``(K, speed-up of the numerical part)`` pairs."""
    probe = HealthProbe()
    results = []
    print("| K | what | numpy-rnn ms | notebook ms | speed-up | rounds kept/dropped |")
    print("|---|---|---|---|---|---|")
    for K in OUTPUT_SIZES:
        model, x = setup(K)
        reference = notebook_model(model)
        for whole in (False, True):
            timing = interleaved_medians(contenders(model, reference, x, whole), repeats, probe=probe)
            ours, theirs = timing.medians["numpy-rnn"], timing.medians["notebook"]
            what = "whole gradient_check" if whole else "numerical gradients"
            print(f"| {K} | {what} | {ours * 1e3:.3f} | {theirs * 1e3:.3f} | {theirs / ours:.1f}x | "
                  f"{timing.kept}/{timing.rejected} |", flush=True)
            if not whole:
                results.append((K, theirs / ours))
    return results


def accuracy() -> dict:
    """Print both numerical gradients' largest error against the analytic gradient and what
    both checks print; return ``{K: (numpy-rnn error, notebook error)}``."""
    errors = {}
    for K in OUTPUT_SIZES:
        model, x = setup(K)
        reference = notebook_model(model)
        analytic = analytic_gradient(model, x)
        ours = max_error(numpy_rnn_numerical(model, x), analytic)
        theirs = max_error(notebook_layout(nb.get_numerical_gradient(reference, x), analytic), analytic)
        errors[K] = (ours, theirs)
        scale = max(float(np.max(np.abs(value))) for value in analytic.values())
        print(f"- K={K}: max |numerical - analytic|: numpy-rnn {ours:.1e}, notebook {theirs:.1e} "
              f"(largest |analytic| element {scale:.2f})")
        print(f"  - numpy-rnn: {printed(numpy_rnn.gradient_check, model, x)}")
        reference.set_weights(notebook_weights(model))
        print(f"  - notebook:  {printed(nb.gradient_check, reference, x)}")
    return errors


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="samples per contender (default 21)")
    parser.add_argument("--threads", type=int, default=2, help="threads of numpy's BLAS (default 2)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error(f"--repeats and --threads: expected ints >= 1, got {args.repeats} and {args.threads}")
    blas_limit = threadpool_limits(limits=args.threads, user_api="blas")  # noqa: F841 (held for the run)
    started = time.perf_counter()
    print("# numpy-rnn gradient-check benchmark\n")
    print(environment_header({"numpy-rnn": numpy_rnn.__version__, "sizes": f"D={D} H={H} T={T} K={OUTPUT_SIZES}"}))
    print()
    errors = accuracy()
    print("\n## median ms per check\n")
    results = run(args.repeats)
    print("\n## Speed and accuracy of the numerical part\n")
    for K, speedup in results:
        ours, theirs = errors[K]
        print(f"- K={K}: numpy-rnn {speedup:.1f}x the notebook loop's speed; max |numerical - analytic| "
              f"{ours:.1e} against the notebook's {theirs:.1e} ({theirs / ours:.0f}x smaller)")
    print(f"\n- total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
