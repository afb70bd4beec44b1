"""The loss plot and the diagnostics plots."""
import sys
import warnings

import numpy as np
import pytest

from numpy_rnn.diagnostics import diagnose
from numpy_rnn.layers import LSTM
from numpy_rnn.plot import plot_gradient_flow, plot_history, plot_saturation

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


def _spy_axes(monkeypatch):
    from matplotlib.figure import Figure
    saved, savefig = {}, Figure.savefig

    def spy(fig, path, **kw):
        saved["axes"] = fig.axes
        return savefig(fig, path, **kw)

    monkeypatch.setattr(Figure, "savefig", spy)
    return saved


def test_gradient_flow_plots_each_run_against_the_steps_back_from_its_end(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    layer = LSTM(2, 3, bidirectional=True, rng=0)
    data = diagnose(layer, rng.standard_normal((2, 6, 2)), rng.standard_normal((2, 6, 6))).to_dict()
    saved = _spy_axes(monkeypatch)
    path = tmp_path / "flow.png"
    assert plot_gradient_flow(data, path, title="t") == str(path) and path.read_bytes()[:4] == b"\x89PNG"
    grads, jac = saved["axes"]
    lines = {line.get_label(): line for line in grads.get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == {"l0 dL/dh", "l0 dL/dc", "l0_reverse dL/dh", "l0_reverse dL/dc"}
    forward = data["layers"][0]["dl_dh_norm"]
    assert list(lines["l0 dL/dh"].get_xdata()) == [5, 4, 3, 2, 1, 0]
    np.testing.assert_allclose(lines["l0 dL/dh"].get_ydata(), forward)
    assert list(lines["l0_reverse dL/dh"].get_xdata()) == [0, 1, 2, 3, 4, 5]
    jac_lines = {line.get_label(): line for line in jac.get_lines()}
    assert jac_lines["l0 (exact)"].get_ydata()[-1] == 1.0 and grads.get_yscale() == jac.get_yscale() == "log"


def test_saturation_plot_has_one_panel_per_run(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = diagnose(LSTM(2, 3, rng=0), rng.standard_normal((2, 6, 2)), rng.standard_normal((2, 6, 3))).to_dict()
    saved = _spy_axes(monkeypatch)
    plot_saturation(data, tmp_path / "sat.png")
    (ax,) = saved["axes"]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "f (sigmoid) saturated" in labels and "f mean" in labels and ax.get_title() == "l0 (LSTMCell)"


def test_a_cell_that_reports_no_activations_gets_a_panel_that_says_so(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = diagnose(LSTM(2, 3, rng=0), rng.standard_normal((2, 6, 2)), rng.standard_normal((2, 6, 3))).to_dict()
    data["layers"][0].update(activations={}, cell="MyCell")
    saved = _spy_axes(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no artists with labels" warning from the legend
        plot_saturation(data, tmp_path / "sat.png")
    (ax,) = saved["axes"]
    assert [text.get_text() for text in ax.texts] == ["MyCell reports no activations (Cell.activations)"]
