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
* the whole check (numerical + analytic + printing, output discarded) of both.

Target from the issues: the numerical part at least 30x faster.
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
from numpy_rnn.gradcheck import numerical_gradients

D, H, T = 5, 10, 5
OUTPUT_SIZES = (1, 5)
TARGET_SPEEDUP = 30.0


def numpy_rnn_numerical(model, x) -> dict:
    """The numerical part of :func:`numpy_rnn.gradient_check`, written as it is there."""
    batched_x = x if x.ndim == 3 else x[None]
    weights = model.get_weights()

    def summed_output(a):
        return model.apply(a, batched_x).sum(axis=(-2, -1))

    return numerical_gradients(summed_output, weights)


def notebook_model(model) -> nb.RNN:
    """The notebook's RNN with ``model``'s weights (biases as the notebook's column vectors)."""
    reference = nb.RNN(model.input_size, model.hidden_size, model.output_size)
    reference.set_weights(notebook_weights(model))
    return reference


def notebook_weights(model) -> dict:
    """``model``'s weights in the notebook's layout: ``bs (H, 1)``, ``by (K, 1)``."""
    w = model.get_weights()
    return {"W": w["W"], "R": w["R"], "V": w["V"], "bs": w["bs"].reshape(-1, 1), "by": w["by"].reshape(-1, 1)}


def max_difference(ours: dict, theirs: dict) -> float:
    """Largest |difference| of the two numerical gradients (the notebook's are transposed)."""
    return max(float(np.max(np.abs(value - theirs["d" + key].T.reshape(value.shape)))) for key, value in ours.items())


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
        rng = np.random.default_rng(K)
        model = numpy_rnn.RNN(D, H, K, rng=rng)
        reference = notebook_model(model)
        x = rng.random((T, D))
        for whole in (False, True):
            timing = interleaved_medians(contenders(model, reference, x, whole), repeats, probe=probe)
            ours, theirs = timing.medians["numpy-rnn"], timing.medians["notebook"]
            what = "whole gradient_check" if whole else "numerical gradients"
            print(f"| {K} | {what} | {ours * 1e3:.3f} | {theirs * 1e3:.3f} | {theirs / ours:.1f}x | "
                  f"{timing.kept}/{timing.rejected} |", flush=True)
            if not whole:
                results.append((K, theirs / ours))
    return results


def agreement() -> None:
    """Print that both numerical gradients agree and what both checks print."""
    for K in OUTPUT_SIZES:
        rng = np.random.default_rng(K)
        model = numpy_rnn.RNN(D, H, K, rng=rng)
        x = rng.random((T, D))
        reference = notebook_model(model)
        diff = max_difference(numpy_rnn_numerical(model, x), nb.get_numerical_gradient(reference, x))
        print(f"- K={K}: max |numpy-rnn numerical - notebook numerical| = {diff:.1e}")
        print(f"  - numpy-rnn: {printed(numpy_rnn.gradient_check, model, x)}")
        reference.set_weights(notebook_weights(model))
        print(f"  - notebook:  {printed(nb.gradient_check, reference, x)}")


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
    agreement()
    print("\n## median ms per check\n")
    results = run(args.repeats)
    print("\n## Target\n")
    for K, speedup in results:
        verdict = "met" if speedup >= TARGET_SPEEDUP else "MISSED"
        print(f"- K={K}: numerical part {speedup:.1f}x faster >= {TARGET_SPEEDUP:.0f}x: {verdict}")
    print(f"\n- total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
