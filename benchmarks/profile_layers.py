"""Where a layer's time goes: a sampling profile of forward + backward against its GEMM floor.

Run: ``python benchmarks/profile_layers.py [--cells rnn,lstm,gru] [--sizes small,large]
[--dtypes float64,float32] [--threads 2] [--batch-threads default] [--seconds 5] [--lines 8]`` (needs the ``py-spy``
sampler: ``pip install py-spy``; about 25 s per combination, 5 min for the 12 defaults).

For every combination a child process (:func:`child`) builds the layer of ``bench_layers.py``
at that size, warms it up, times ``out, _ = layer.forward(x); layer.backward(np.ones_like(out))``
unprofiled (ms per call), times the floor's GEMMs (``bench_layers.floor_gemms``, each alone)
and then keeps calling the layer inside :func:`profiled_loop` while the parent attaches
``py-spy`` to it twice:

1. **lines**: Python stacks only, without pausing the process (``--nonblocking``), so the
   threads run undisturbed: the share of the main thread's time spent on each source line of
   ``numpy_rnn``;
2. **native**: Python and C frames (``--native``; py-spy pauses the process for each sample,
   which slows it and, with 2 threads, inflates the time OpenBLAS's threads spend waiting for
   each other): only used to tell what each line does, from the C function it runs
   (:func:`category`): BLAS, elementwise math, copies, memory or call overhead.

Each line gets the category most of its native samples have. The report, per combination: the
layer's ms per call, the floor's, and the layer's time split into GEMM lines (against the
floor: what the GEMMs lose inside the layer), elementwise lines and the rest; then the lines
holding most of the time with what runs in them.
"""
from __future__ import annotations

import argparse
import json
import linecache
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: C-level categories of a sample's innermost frame (:func:`category`)
CATEGORIES = ("BLAS", "elementwise math", "copies", "memory", "call overhead")
#: what a source line is, from the categories of its native samples
KINDS = {"BLAS": "GEMM", "elementwise math": "elementwise", "copies": "elementwise", "memory": "other",
         "call overhead": "other"}
_COPIES = ("_contig_to_contig", "_aligned_contig", "_strided_to", "raw_array_assign", "_cast_", "_copy")
RATES = {"lines": 200, "native": 50}  # samples per second


def profiled_loop(layer, x, stop: Path) -> tuple[int, float]:
    """Forward + backward of ``layer`` on ``x`` until the file ``stop`` exists; calls and seconds."""
    calls, start = 0, time.perf_counter()
    while not stop.exists():
        out, _ = layer.forward(x)
        layer.backward(np.ones_like(out))
        calls += 1
    return calls, time.perf_counter() - start


def _ms_per_call(fn, seconds: float) -> float:
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return 1e3 * (time.perf_counter() - start) / calls


def child(cell: str, size: str, dtype: str, threads: int, batch_threads: str, seconds: float, folder: str) -> None:
    """The profiled process; writes ``folder/timing.json`` (layer and floor ms per call) once
    timed, then calls the layer in :func:`profiled_loop` until ``folder/stop`` exists."""
    from bench_layers import CELLS, DTYPES, SIZES, floor_gemms
    from threadpoolctl import threadpool_limits

    from numpy_rnn import parallel

    s, (layer_class, _, gates) = SIZES[size], CELLS[cell]
    np_dtype = DTYPES[dtype][0]
    layer = layer_class(s.D, s.H, rng=np.random.default_rng(0), dtype=np_dtype)
    x = np.random.default_rng(1).standard_normal((s.B, s.T, s.D)).astype(np_dtype)

    def step():
        out, _ = layer.forward(x)
        layer.backward(np.ones_like(out))

    with threadpool_limits(threads):
        if batch_threads != "default":
            parallel.set_batch_threads(None if batch_threads == "auto" else int(batch_threads))
        _ms_per_call(step, 1.0)  # warm-up: caches, pages, BLAS threads
        floor = {name: statistics.median(_ms_per_call(fn, 0.1) for _ in range(5))
                 for name, fn in floor_gemms(s, gates, np_dtype).items()}
        timing = {"layer": _ms_per_call(step, seconds), "floor": sum(floor.values()), "floor_parts": floor}
        Path(folder, "timing.json").write_text(json.dumps(timing))
        profiled_loop(layer, x, Path(folder, "stop"))


def category(leaf: str) -> str:
    """The category of a native sample from its innermost frame, ``"function (library)"``."""
    function, _, library = leaf.partition(" (")
    if "openblas" in library:
        return "BLAS"
    if "_multiarray_umath" in library:
        if function.startswith(("DOUBLE_", "FLOAT_", "npy_", "simd_")) or "_X86_" in function:
            return "elementwise math"
        if function.startswith(_COPIES) or "contig" in function:
            return "copies"
    if library.startswith("libm"):
        return "elementwise math"
    if library.startswith("libc"):
        return "memory"
    return "call overhead"


def source_line(frames: list[str]) -> str:
    """The innermost ``numpy_rnn`` frame of a stack as ``file.py:line``."""
    for frame in reversed(frames):
        if "numpy_rnn/" in frame:
            return frame.rpartition("numpy_rnn/")[2].rstrip(")")
    return "(outside numpy_rnn)"


def samples(raw: str):
    """``(frames, count)`` of the main thread's samples inside :func:`profiled_loop`."""
    for record in raw.splitlines():
        stack, _, count = record.rpartition(" ")
        frames = stack.split(";")
        if any(frame.startswith("profiled_loop ") for frame in frames):
            yield frames, int(count)


def line_kinds(native_raw: str) -> dict[str, Counter]:
    """Per source line, its native samples per category."""
    per_line = defaultdict(Counter)
    for frames, count in samples(native_raw):
        per_line[source_line(frames)][category(frames[-1])] += count
    return per_line


def line_shares(lines_raw: str) -> Counter:
    """Per source line, its undisturbed samples."""
    shares = Counter()
    for frames, count in samples(lines_raw):
        shares[source_line(frames)] += count
    return shares


def _record(py_spy: str, pid: int, mode: str, seconds: float, output: Path) -> str:
    extra = ["--native"] if mode == "native" else ["--nonblocking"]
    subprocess.run([py_spy, "record", "--pid", str(pid), *extra, "--rate", str(RATES[mode]), "--duration",
                    str(max(1, round(seconds))), "--format", "raw", "--output", str(output)],
                   capture_output=True, check=True)
    return output.read_text()


def profile(py_spy: str, cell: str, size: str, dtype: str, threads: int, batch_threads: str,
            seconds: float) -> dict:
    """One combination: the child's timings, and per source line its share and kind."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        process = subprocess.Popen([sys.executable, __file__, "--child", cell, size, dtype, str(threads),
                                    batch_threads, str(seconds), tmp], cwd=HERE)
        try:
            while not (folder / "timing.json").exists():
                if process.poll() is not None:
                    raise RuntimeError(f"profile_layers: the child for {cell} {size} {dtype} failed")
                time.sleep(0.05)
            raws = {mode: _record(py_spy, process.pid, mode, seconds, folder / f"{mode}.txt") for mode in RATES}
        finally:
            (folder / "stop").touch()
            process.wait()
        timing = json.loads((folder / "timing.json").read_text())
    kinds = line_kinds(raws["native"])
    return {"cell": cell, "size": size, "dtype": dtype, "threads": threads, "batch_threads": batch_threads, **timing,
            "shares": line_shares(raws["lines"]), "kinds": kinds,
            "kind_of": {line: KINDS[c.most_common(1)[0][0]] for line, c in kinds.items()}}


def split_ms(result: dict) -> dict[str, float]:
    """The layer's ms per call split by the kind of line (GEMM, elementwise, other)."""
    total = sum(result["shares"].values()) or 1
    split = Counter()
    for line, count in result["shares"].items():
        split[result["kind_of"].get(line, "other")] += result["layer"] * count / total
    return {kind: split[kind] for kind in ("GEMM", "elementwise", "other")}


def _line_text(line: str) -> str:
    path, _, number = line.rpartition(":")
    text = linecache.getline(str(HERE.parent / "src" / "numpy_rnn" / path), int(number)) if number.isdigit() else ""
    return text.strip().replace("|", "\\|")


def print_profile(result: dict, top: int) -> None:
    split, total = split_ms(result), sum(result["shares"].values()) or 1
    print(f"\n### {result['cell']} {result['size']} {result['dtype']}, {result['threads']} thread(s), "
          f"batch threads {result['batch_threads']}: "
          f"{result['layer']:.2f} ms per call, floor {result['floor']:.2f} ms\n")
    print("GEMM lines {GEMM:.2f} ms ({gemm_vs:.2f}x the floor), elementwise lines {elementwise:.2f} ms, "
          "other {other:.2f} ms\n".format(**split, gemm_vs=split["GEMM"] / result["floor"]))
    print("| line | code | share | kind | native samples: " + ", ".join(CATEGORIES) + " |")
    print("|---|---|---|---|---|")
    for line, count in result["shares"].most_common(top):
        native = result["kinds"].get(line, Counter())
        native_total = sum(native.values()) or 1
        parts = ", ".join(f"{100 * native[c] / native_total:.0f}" for c in CATEGORIES)
        print(f"| {line} | `{_line_text(line)}` | {100 * count / total:.0f}% | "
              f"{result['kind_of'].get(line, '?')} | {parts} |")


def print_summary(results: list[dict]) -> None:
    print("\n### Summary (ms per call of forward + backward)\n")
    print("| cell | size | dtype | threads | batch threads | layer | floor | efficiency | GEMM lines | "
          "GEMM lines / floor | elementwise lines | other |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        split = split_ms(r)
        print(f"| {r['cell']} | {r['size']} | {r['dtype']} | {r['threads']} | {r['batch_threads']} | {r['layer']:.2f} | "
              f"{r['floor']:.2f} | "
              f"{r['floor'] / r['layer']:.2f} | {split['GEMM']:.2f} | {split['GEMM'] / r['floor']:.2f} | "
              f"{split['elementwise']:.2f} | {split['other']:.2f} |")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--sizes", default="small,large")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--threads", default="2", help="comma-separated thread counts")
    parser.add_argument("--batch-threads", default="default",
                        help="numpy_rnn.parallel's setting: default (the library's: one part), auto, or a number")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of each timing and each profile")
    parser.add_argument("--lines", type=int, default=8, help="source lines shown per profile")
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        cell, size, dtype, threads, batch_threads, seconds, folder = args.child
        child(cell, size, dtype, int(threads), batch_threads, float(seconds), folder)
        return 0
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))
    if py_spy is None:
        print("profile_layers: the py-spy sampler is not installed (pip install py-spy)", file=sys.stderr)
        return 2
    results = []
    for threads in args.threads.split(","):
        for size in args.sizes.split(","):
            for cell in args.cells.split(","):
                for dtype in args.dtypes.split(","):
                    results.append(profile(py_spy, cell, size, dtype, int(threads), args.batch_threads,
                                           args.seconds))
                    print_profile(results[-1], args.lines)
                    sys.stdout.flush()
    print_summary(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
