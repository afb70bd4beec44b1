"""Loss curves of a training run (needs matplotlib: ``pip install 'numpy-rnn[plot]'``)."""
from __future__ import annotations

from pathlib import Path


def plot_history(history: list[dict], baseline: float, path, *, title: str | None = None,
                 ylabel: str = "loss") -> str:
    """Draw training and validation loss against the step, log y axis, the baseline dashed.

    ``history`` is a run's list of records (``step``, ``train_loss``, ``val_loss``; a None
    loss is left out); ``ylabel`` names the loss. The figure is drawn with the Agg canvas,
    never pyplot, so no global backend is changed. Returns ``path`` as a str.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'numpy-rnn[plot]'") from None
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
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
    fig.savefig(path, dpi=120)
    return str(Path(path))
