"""Figures of runs and diagnostics (needs matplotlib: ``pip install 'numpy-rnn[plot]'``).

Every figure is drawn with the Agg canvas, never pyplot, so no global backend is changed, and
saved to ``path``; each function returns ``path`` as a str.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .diagnostics import steps_back


def _figure(size=(7, 4.5)):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'numpy-rnn[plot]'") from None
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> str:
    fig.savefig(path, dpi=120)
    return str(Path(path))


def plot_history(history: list[dict], baseline: float, path, *, title: str | None = None,
                 ylabel: str = "loss") -> str:
    """Draw training and validation loss against the step, log y axis, the baseline dashed.

    ``history`` is a run's list of records (``step``, ``train_loss``, ``val_loss``; a None
    loss is left out); ``baseline`` the loss without memory; ``ylabel`` names the loss and
    ``title`` (default: none) heads the plot. Written to ``path``, which is returned.
    """
    fig = _figure()
    ax = fig.add_subplot()
    for key, label in (("train_loss", "training"), ("val_loss", "validation")):
        points = [(r["step"], r[key]) for r in history if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points), marker="o", markersize=3, label=label)
    ax.axhline(baseline, color="grey", linestyle="--", label=f"baseline {baseline:.4g}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _against_lag(ax, values, direction, label, **style) -> None:
    """Plot per-step ``values`` (index 0 = first step) against the steps back from the run's end
    (``T - 1 - t``; ``t`` for a reverse run), skipping None, NaN and 0."""
    values = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    lag = steps_back(len(values), direction)
    keep = np.isfinite(values) & (values > 0)
    if keep.any():
        ax.plot(lag[keep], values[keep], label=label, **style)


def plot_gradient_flow(diagnostics: dict, path, *, title: str | None = None) -> str:
    """``||dL/dh(t)||`` (and ``||dL/dc(t)||`` dashed) against ``T - t``, log scale, one line
    per layer and direction; beside it the Jacobian norm ``||dh(T)/dh(t)||``. ``diagnostics`` is
    the layout of ``diagnostics.json`` (:meth:`numpy_rnn.diagnostics.Diagnostics.to_dict`).
    ``title`` (default: none) heads the figure. Written to ``path``, which is returned."""
    fig = _figure((11, 4.5))
    grads, jac = fig.subplots(1, 2)
    for run in diagnostics["layers"]:
        line = grads.plot([], [])[0]  # one colour per run
        color = line.get_color()
        for key in [k for k in run if k.startswith("dl_d") and k.endswith("_norm")]:
            part = key[len("dl_d"):-len("_norm")]
            _against_lag(grads, run[key], run["direction"], f"{run['name']} dL/d{part}", color=color,
                         linestyle="-" if part == "h" else "--")
        _against_lag(jac, run["jacobian_norm"], run["direction"], f"{run['name']} ({run['jacobian_method']})", color=color,
                     marker="." if run["jacobian_method"] == "power" else None)
    for ax, ylabel in ((grads, "||dL/dh(t)||, mean over the batch"), (jac, "||dh(T)/dh(t)||_2")):
        ax.set_yscale("log")
        ax.set_xlabel("T - t: steps back from the end (a reverse run's end is t = 1)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_saturation(diagnostics: dict, path, *, title: str | None = None) -> str:
    """Per layer and direction: the fraction of saturated units of every activation (solid)
    and its mean value (dotted) against the step ``t``, from ``diagnostics`` as in
    :func:`plot_gradient_flow`. ``title`` (default: none) heads the figure. Written to ``path``,
    which is returned."""
    runs = diagnostics["layers"]
    fig = _figure((7, 3.2 * len(runs)))
    for ax, run in zip(np.atleast_1d(fig.subplots(len(runs), 1, squeeze=False)[:, 0]), runs):
        for name, stat in run["activations"].items():
            line = ax.plot(stat["saturated"], label=f"{name} ({stat['kind']}) saturated")[0]
            ax.plot(stat["mean"], linestyle=":", color=line.get_color(), label=f"{name} mean")
        ax.set_title(f"{run['name']} ({run['cell']})")
        ax.set_xlabel("step t")
        ax.set_ylabel("fraction / mean")
        ax.grid(True, alpha=0.3)
        if run["activations"]:
            ax.legend(fontsize="x-small", ncol=2)
        else:  # a cell of your own without Cell.activations
            ax.text(0.5, 0.5, f"{run['cell']} reports no activations (Cell.activations)", ha="center",
                    va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
