"""Batch threads: a layer's time loop split over the batch, one part of the sequences per core.

The steps of a recurrent layer are sequential in time but independent across the batch. With
``n`` batch threads, :func:`map_parts` runs one function (the cell's ``forward_sequence`` or
``backward_sequence``) on ``n`` contiguous row blocks of the batch at once, one block per
Python thread. NumPy releases the GIL inside ``matmul`` and ufunc loops, so each part's
per-step GEMM ``h(t-1) R`` *and* its elementwise work run on its own core; inside the region
the BLAS is pinned to one thread per part (no oversubscription, no splitting of small GEMMs
between threads). The big GEMMs outside the time loop (``x W``, ``dW``, ``dx``) keep the
BLAS's own threads.

The number of parts, :func:`batch_threads`:

* :data:`DEFAULT_THREADS` = 1 part, the default: measured on the project's 2-core machine, the
  split made whole layers 4-40% *slower* than one part with both BLAS threads (every size of
  ``benchmarks/bench_layers.py``, docs/benchmarks.md), although a lone forward pass of a large
  Elman layer ran 2.3x faster split; an option to measure on other machines, not a default;
* ``set_batch_threads(None)``: automatic, as many as the BLAS's threads when
  `threadpoolctl <https://github.com/joblib/threadpoolctl>`_ is installed (the ``fast``
  extra), else 1;
* ``set_batch_threads(n)``: ``n`` (``n > 1`` needs threadpoolctl, to pin the BLAS);
* a layer uses ``min(n, B // MIN_ROWS)`` parts, and one part when a step's work
  ``B * G * H`` is below :data:`MIN_STEP_WORK` (thread hand-offs would cost more than they save).

Results do not depend on the number of parts beyond rounding: every row is computed by the
same code; only the parameter gradients, summed over the parts, round differently (1e-15
relative).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

__all__ = ["DEFAULT_THREADS", "MIN_ROWS", "MIN_STEP_WORK", "batch_threads", "map_parts", "part_rows",
           "set_batch_threads"]

#: batch parts unless set_batch_threads says otherwise: one (see the module docstring)
DEFAULT_THREADS = 1
#: fewest sequences per part
MIN_ROWS = 8
#: fewest multiply-adds per step ``B * G * H`` for which a layer splits its batch
MIN_STEP_WORK = 8192

_setting: int | None = DEFAULT_THREADS
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_controller = None  # threadpoolctl.ThreadpoolController, made on first use


def set_batch_threads(threads: int | None) -> None:
    """Split layers' time loops over ``threads`` parts of the batch (``None``: automatic, as many
    as the BLAS's threads; :data:`DEFAULT_THREADS` restores the default)."""
    global _setting
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"set_batch_threads: expected threads to be None or an int >= 1, got {threads!r}")
        if threads > 1 and _blas_controller() is None:
            raise ImportError("set_batch_threads: more than one batch thread needs threadpoolctl to pin the BLAS "
                              "to one thread per part (pip install threadpoolctl, or the numpy-rnn[fast] extra)")
    _setting = threads


def batch_threads() -> int:
    """The number of batch parts a large enough layer uses (see the module docstring)."""
    if _setting is not None:
        return _setting
    controller = _blas_controller()
    if controller is None:
        return 1
    return max([1] + [lib.num_threads for lib in controller.lib_controllers])


def part_rows(batch: int, step_work: int) -> list[slice]:
    """The row blocks of a batch of ``batch`` sequences whose step costs ``step_work``
    multiply-adds: one block, or :func:`batch_threads` nearly equal ones."""
    parts = min(batch_threads(), batch // MIN_ROWS) if step_work >= MIN_STEP_WORK else 1
    parts = max(parts, 1)
    bounds = [batch * k // parts for k in range(parts + 1)]
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]


def map_parts(fn: Callable, parts: Sequence) -> list:
    """``[fn(part) for part in parts]``, the ``parts`` on as many threads, the BLAS pinned to one
    thread meanwhile; a single part runs in the caller's thread, untouched."""
    if len(parts) == 1:
        return [fn(parts[0])]
    pool = _thread_pool(len(parts) - 1)
    with _single_threaded_blas():
        futures = [pool.submit(fn, part) for part in parts[1:]]
        first = fn(parts[0])  # the caller's thread works too
        return [first] + [future.result() for future in futures]


def _single_threaded_blas():
    controller = _blas_controller()
    return nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool_size = max(workers, (os.cpu_count() or 2) - 1)
            _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="numpy_rnn-batch")
        return _pool


def _blas_controller():
    """threadpoolctl's controller of the BLAS libraries, or None without threadpoolctl or BLAS."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller = False
        else:
            blas = ThreadpoolController().select(user_api="blas")
            _controller = blas if blas.lib_controllers else False
    return _controller or None
