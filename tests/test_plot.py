"""The loss plot."""
import sys

import pytest

from numpy_rnn.plot import plot_history

HISTORY = [
    {"step": 10, "train_loss": 0.30, "val_loss": 0.31},
    {"step": 20, "train_loss": 0.05, "val_loss": None},  # a non-finite validation loss is left out
    {"step": 30, "train_loss": 0.01, "val_loss": 0.012},
]


def test_writes_a_png_with_both_curves_and_the_baseline(tmp_path, monkeypatch):
    saved = {}
    from matplotlib.figure import Figure
    savefig = Figure.savefig

    def spy(fig, path, **kw):
        saved["axes"] = fig.axes[0]
        return savefig(fig, path, **kw)

    monkeypatch.setattr(Figure, "savefig", spy)
    path = tmp_path / "loss.png"
    assert plot_history(HISTORY, 1 / 3, path, title="memory", ylabel="MSE") == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = saved["axes"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["training"].get_xdata()) == [10, 20, 30]
    assert list(lines["validation"].get_xdata()) == [10, 30]
    assert list(lines["baseline 0.3333"].get_ydata()) == [1 / 3, 1 / 3]
    assert lines["baseline 0.3333"].get_linestyle() == "--"
    assert ax.get_yscale() == "log" and ax.get_title() == "memory" and ax.get_ylabel() == "MSE"


def test_missing_matplotlib_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'numpy-rnn\[plot\]'"):
        plot_history(HISTORY, 0.5, tmp_path / "a.png")
