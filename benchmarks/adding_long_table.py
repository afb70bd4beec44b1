"""The table of docs/RESULTS.md, section 7, from the study's run folders alone.

    python benchmarks/adding_long_table.py [SWEEP_FOLDER]   # default: benchmarks/results/adding_long
    python benchmarks/adding_long_table.py --write docs/RESULTS.md   # replace the table there

One row per sequence length T, one column per model (the configuration's name without its
``-T<n>``), one cell per model and T: the test MSE of each seed (bold below the sweep's target),
the step at which a run diverged, the step a run in progress has reached, or "not run yet"; in
parentheses the mean wall time of the seeds that finished. The test suite checks that
RESULTS.md holds exactly what this prints.
"""
from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from numpy_rnn.sweep_results import collect, read_sweep

STUDY = Path(__file__).resolve().parent / "results" / "adding_long"
#: column title of each model, in the table's order
MODELS = {"irnn": "IRNN", "lstm": "LSTM, forget bias 1", "lstm-chrono": "LSTM, chrono", "gru": "GRU",
          "gru-chrono": "GRU, chrono"}


def seed_cell(row: dict, target: float) -> str:
    """What one run shows: its test MSE, or how far it got."""
    if row["status"] == "done":
        loss = f"{row['test_loss']:.2g}"
        return f"**{loss}**" if row["test_loss"] < target else loss
    if row["status"] == "diverged":
        return f"diverged ({row['diverged_at']})"
    if row["status"] == "unfinished":
        return f"at step {row['steps_done'] or 0}"
    return {"missing": "not run yet", "failed": "failed"}[row["status"]]


def model_cell(rows: list[dict], target: float) -> str:
    """One model at one T: its seeds, then the mean wall time of those that finished."""
    if all(row["status"] == "missing" for row in rows):
        return "not run yet"
    cell = " / ".join(seed_cell(row, target) for row in rows)
    minutes = [row["seconds"] / 60 for row in rows if row["status"] == "done"]
    return f"{cell} ({statistics.fmean(minutes):.0f} min)" if minutes else cell


def table(out: Path) -> str:
    """The Markdown table: rows T, columns :data:`MODELS`; "—" where a model was not run at a T."""
    target = read_sweep(out)["target"]
    runs = defaultdict(list)  # (model, T) -> rows, in seed order
    for row in collect(out):
        runs[row["configuration"].rsplit("-T", 1)[0], row["seq_len"]].append(row)
    lengths = sorted({length for _, length in runs})
    lines = ["| T | " + " | ".join(MODELS.values()) + " |", "|---" * (len(MODELS) + 1) + "|"]
    for length in lengths:
        cells = [model_cell(runs[model, length], target) if (model, length) in runs else "—" for model in MODELS]
        lines.append(f"| {length} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replace_table(text: str, new_table: str) -> str:
    """``text`` with its one table whose header is :func:`table`'s replaced by ``new_table``."""
    lines = text.split("\n")
    header = new_table.split("\n")[0]
    if lines.count(header) != 1:
        raise SystemExit(f"expected one table headed {header!r}, found {lines.count(header)}")
    start = lines.index(header)
    end = next((k for k in range(start, len(lines)) if not lines[k].startswith("|")), len(lines))
    return "\n".join(lines[:start] + new_table.split("\n") + lines[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=STUDY, help="the sweep folder (default: %(default)s)")
    parser.add_argument("--write", type=Path, metavar="FILE", help="replace the table in FILE instead of printing it")
    args = parser.parse_args()
    new_table = table(args.out)
    if args.write is None:
        print(new_table)
    else:
        args.write.write_text(replace_table(args.write.read_text(encoding="utf-8"), new_table), encoding="utf-8")


if __name__ == "__main__":
    main()
