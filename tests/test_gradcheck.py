"""Numerical gradients, reports, the directional mode and the float64 rule; a grid of layers
where every correct gradient passes and a planted error of relative size 1e-4 in one element
of one gradient fails."""
import contextlib
import io

import numpy as np
import pytest

from numpy_rnn import GRU, LSTM, RNN, SimpleRNN, gradient_check
from numpy_rnn.gradcheck import (
    ArrayReport,
    Estimate,
    check_layer,
    compare,
    directional_check,
    estimate_gradients,
    numerical_gradients,
    require_float64,
)


def cubic(a):
    """f(A, v) = sum(sin(A) * A) + sum(v**3) with leading axes kept (vectorised form)."""
    return np.sum(np.sin(a["A"]) * a["A"], axis=(-2, -1)) + np.sum(a["v"] ** 3, axis=-1)


def cubic_gradient(arrays):
    A, v = arrays["A"], arrays["v"]
    return {"A": np.cos(A) * A + np.sin(A), "v": 3 * v ** 2}


def test_estimates_of_a_known_function_and_their_errors(rng):
    arrays = {"A": 3 * rng.standard_normal((3, 4)), "v": rng.standard_normal(5)}
    estimates = estimate_gradients(cubic, arrays)
    exact = cubic_gradient(arrays)
    for key, estimate in estimates.items():
        assert isinstance(estimate, Estimate)
        assert np.all(np.abs(estimate.value - exact[key]) <= estimate.error)  # the estimate bounds the error
        assert np.all(estimate.error <= 1e-8 * np.maximum(np.abs(exact[key]), 1))
    assert compare(exact, estimates).passed


@pytest.mark.parametrize("stencil", [2, 4, 6])
def test_fixed_stencils_of_a_known_function(stencil, rng):
    arrays = {"A": rng.standard_normal((3, 4)), "v": rng.standard_normal(5)}
    numerical = numerical_gradients(cubic, arrays, stencil=stencil)
    report = compare(cubic_gradient(arrays), numerical, rtol={2: 1e-6, 4: 1e-8, 6: 1e-9}[stencil])
    assert report.passed, str(report)


def test_vectorised_equals_element_loop(rng):
    arrays = {"A": rng.standard_normal((2, 3)), "v": rng.standard_normal(4)}
    fast = numerical_gradients(cubic, arrays, max_batch=5)  # several chunks
    slow = numerical_gradients(lambda a: float(cubic(a)), arrays, vectorized=False)
    for key in arrays:
        np.testing.assert_allclose(fast[key], slow[key], rtol=1e-12, atol=1e-14)


def test_inputs_are_not_modified(rng):
    arrays = {"A": rng.standard_normal((2, 3)), "v": rng.standard_normal(4)}
    copies = {k: v.copy() for k, v in arrays.items()}
    numerical_gradients(cubic, arrays)
    numerical_gradients(lambda a: float(cubic(a)), arrays, vectorized=False)
    for key, value in arrays.items():
        np.testing.assert_array_equal(value, copies[key])


def test_report_names_the_worst_element():
    analytic = {"w": np.array([[1.0, 2.0], [3.0, 4.0]])}
    numerical = {"w": np.array([[1.0, 2.0], [3.3, 4.0]])}
    report = compare(analytic, numerical)
    row = report.arrays["w"]
    assert isinstance(row, ArrayReport) and not row.passed and not report.passed
    assert row.worst_index == (1, 0)
    assert row.max_abs_diff == pytest.approx(0.3)
    assert row.max_rel_error == pytest.approx(0.3 / 3.3)
    assert "FAILED" in str(report)


def test_noise_below_atol_passes():
    report = compare({"w": np.array([1e-13, 1.0])}, {"w": np.array([2e-13, 1.0])})
    assert report.passed and report.max_rel_error == pytest.approx(0.5)


def test_directional_check_passes_and_catches_errors(rng):
    arrays = {"A": rng.standard_normal((3, 4)), "v": rng.standard_normal(5)}
    good = cubic_gradient(arrays)
    assert directional_check(cubic, arrays, good, rng=1).passed
    bad = {**good, "v": good["v"] * 1.001}
    assert not directional_check(cubic, arrays, bad, rng=1).passed


def test_float32_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"expected W in float64, got float32; float32 keeps ~7 digits"):
        require_float64({"W": np.zeros(3, dtype=np.float32)})
    layer = LSTM(2, 3, dtype=np.float32)
    with pytest.raises(ValueError, match=r"got float32"):
        check_layer(layer, np.zeros((1, 2, 2), dtype=np.float32))


def test_non_finite_values_and_bad_options_are_refused():
    with pytest.raises(ValueError, match=r"expected finite values in x, got NaN or inf"):
        numerical_gradients(cubic, {"x": np.array([np.nan])})
    with pytest.raises(ValueError, match=r"expected stencil 2, 4 or 6, got 3"):
        numerical_gradients(cubic, {"A": np.zeros((1, 1)), "v": np.zeros(1)}, stencil=3)
    with pytest.raises(ValueError, match=r"gradcheck: expected eps finite and in \(0.0, inf\), got -1"):
        numerical_gradients(cubic, {"A": np.zeros((1, 1)), "v": np.zeros(1)}, eps=-1)
    with pytest.raises(ValueError, match=r"unknown mode 'fast'; valid names: full, directional"):
        check_layer(LSTM(2, 3), np.zeros((1, 2, 2)), mode="fast")


def test_check_layer_covers_parameters_input_and_state(rng):
    layer = LSTM(2, 3, 2, bidirectional=True, rng=0)
    state = (rng.standard_normal((4, 1, 3)), rng.standard_normal((4, 1, 3)))
    report = check_layer(layer, rng.standard_normal((1, 4, 2)), state)
    assert set(report.arrays) == set(layer.params) | {"x", "state[0]", "state[1]"}
    assert report.passed, str(report)


# ------------------------------------------------------------------ the grid: no false alarms, no missed bugs
def scaled(layer, factor):
    """``layer`` with W and R multiplied by ``factor`` (saturated units, large derivatives)."""
    for key in layer.params:
        if key.split(".")[-1] in ("W", "R"):
            layer.params[key] *= factor
    return layer


def data(shape, seed, uniform=False):
    gen = np.random.default_rng(seed)
    return gen.random(shape) if uniform else gen.standard_normal(shape)


# name -> (layer, x, lengths, sample): T, D and H differ; sample checks that many elements of larger arrays
GRID = {
    "rnn identity R, H=100 T=50 (issue 7)": lambda: (
        SimpleRNN(5, 100, init={"R": "identity"}, rng=0), data((1, 50, 5), 0, True), None, 120),
    "rnn identity R, H=32 T=20": lambda: (SimpleRNN(5, 32, init={"R": "identity"}, rng=0), data((1, 20, 5), 0, True), None, None),
    "rnn orthogonal R, H=64 T=100": lambda: (
        SimpleRNN(7, 64, init={"R": "orthogonal"}, rng=2), data((3, 100, 7), 2), None, 100),
    "rnn saturated tanh (weights x5)": lambda: (scaled(SimpleRNN(6, 24, rng=3), 5.0), data((2, 30, 6), 3), None, None),
    "rnn relu identity R (kinks)": lambda: (
        SimpleRNN(4, 20, nonlinearity="relu", init={"R": "identity"}, rng=4), data((2, 25, 4), 4, True) - 0.3, None, None),
    "rnn relu, H=48 T=60 (kinks)": lambda: (SimpleRNN(4, 48, nonlinearity="relu", rng=5), data((3, 60, 4), 5), None, 150),
    "lstm H=40 T=80": lambda: (LSTM(6, 40, rng=6), data((2, 80, 6), 6), None, 50),
    "lstm saturated (weights x3)": lambda: (scaled(LSTM(6, 16, rng=7), 3.0), data((2, 40, 6), 7), None, 150),
    "gru H=40 T=80": lambda: (GRU(6, 40, rng=8), data((2, 80, 6), 8), None, 50),
    "gru reset before, saturated": lambda: (scaled(GRU(6, 24, reset_after=False, rng=9), 3.0), data((2, 50, 6), 9), None, 150),
    "lstm 2 layers bidirectional, lengths": lambda: (
        LSTM(8, 16, 2, bidirectional=True, rng=0), data((4, 10, 8), 1), np.array([10, 7, 3, 9]), 60),
    # small ones for the full checks with a planted error
    "gru reset before, saturated, H=8": lambda: (
        scaled(GRU(4, 8, reset_after=False, rng=9), 3.0), data((2, 30, 4), 9), None, None),
    "lstm 2 layers bidirectional, lengths, H=5": lambda: (
        LSTM(3, 5, 2, bidirectional=True, rng=0), data((3, 6, 3), 1), np.array([6, 2, 4]), None),
}


@pytest.mark.parametrize("name", GRID)
def test_correct_layers_pass(name):
    layer, x, lengths, sample = GRID[name]()
    report = check_layer(layer, x, None, lengths, sample=sample)
    assert report.passed, f"\n{report}"


def test_the_old_fixed_stencil_cried_wolf_where_extrapolation_passes():
    """Issue 7: the 6-point stencil with eps 3e-3 failed this correct layer (T = 20, identity R)."""
    layer, x, _, _ = GRID["rnn identity R, H=32 T=20"]()
    out, _ = layer.forward(x)
    g = data(out.shape, 1)
    layer.zero_grad()
    layer.backward(g)

    def loss(a):
        return np.sum(layer.apply(a, x)[0] * g, axis=(-3, -2, -1))

    assert not compare(layer.grads, numerical_gradients(loss, layer.params, stencil=6, eps=3e-3)).passed
    assert compare(layer.grads, estimate_gradients(loss, layer.params)).passed


def test_directional_check_of_a_large_layer():
    """H = 128, T = 200, identity R: eight directions over all 17,000 parameters and inputs."""
    layer = SimpleRNN(3, 128, init={"R": "identity"}, rng=1)
    report = check_layer(layer, data((2, 200, 3), 1, True), mode="directional")
    assert report.passed, f"\n{report}"


class PlantedBug:
    """``layer`` whose backward multiplies one element of one gradient by ``1 + 1e-4``."""

    def __init__(self, layer, name):
        self.layer, self.name = layer, name

    def __getattr__(self, attribute):
        return getattr(self.layer, attribute)

    def backward(self, d_out, d_state=None):
        dx, d_state0 = self.layer.backward(d_out, d_state)
        if self.name == "x":
            plant(dx)
        elif self.name.startswith("state"):
            plant(d_state0[int(self.name[6])] if isinstance(d_state0, tuple) else d_state0)
        else:
            plant(self.layer.grads[self.name])
        return dx, d_state0


def plant(gradient):
    """An error of relative size 1e-4 in one typical element (the 75th percentile of |g|)."""
    flat = gradient.reshape(-1)
    flat[np.argsort(np.abs(flat))[(3 * flat.size) // 4]] *= 1 + 1e-4


@pytest.mark.parametrize("name, array", [
    ("rnn identity R, H=32 T=20", "W"),
    ("rnn identity R, H=32 T=20", "R"),
    ("rnn identity R, H=32 T=20", "b"),
    ("rnn identity R, H=32 T=20", "x"),
    ("rnn identity R, H=32 T=20", "state[0]"),
    ("rnn saturated tanh (weights x5)", "R"),
    ("rnn relu identity R (kinks)", "W"),
    ("lstm saturated (weights x3)", "state[1]"),
    ("gru reset before, saturated, H=8", "R"),
    ("lstm 2 layers bidirectional, lengths, H=5", "l1_reverse.R"),
    ("lstm 2 layers bidirectional, lengths, H=5", "x"),
])
def test_an_error_of_1e_4_in_one_element_is_caught(name, array):
    layer, x, lengths, _ = GRID[name]()
    state = None
    if array.startswith("state"):
        h = data((layer.num_layers * layer.num_directions, x.shape[0], layer.hidden_size), 2)
        state = (h, 0.5 * h) if isinstance(layer, LSTM) else h
    report = check_layer(PlantedBug(layer, array), x, state, lengths)
    failed = {key for key, row in report.arrays.items() if not row.passed}
    assert failed == {array} and not report.arrays[array].undecided, f"\n{report}"


def test_report_shows_the_numerical_error_and_the_sample(rng):
    layer = SimpleRNN(3, 6, rng=0)
    report = check_layer(layer, rng.standard_normal((2, 5, 3)), sample=10)
    row = report.arrays["R"]
    assert row.checked == 10 and row.size == 36 and report.arrays["b"].checked == 6
    assert 0 < row.numerical_error < 1e-8
    assert "num.err" in str(row) and "(10 of 36 elements)" in str(row) and "elements)" not in str(report.arrays["b"])
    with pytest.raises(ValueError, match=r"check_layer: expected sample to be an int >= 1 or None, got 0"):
        check_layer(layer, rng.standard_normal((2, 5, 3)), sample=0)
    with pytest.raises(ValueError, match=r"sample= applies to mode='full'"):
        check_layer(layer, rng.standard_normal((2, 5, 3)), mode="directional", sample=10)


def test_an_undecided_element_fails_with_its_large_error():
    """The estimated error widens the tolerance by at most RCAP = 1e-5 of the gradient."""
    estimate = Estimate(np.array([1.0]), np.array([1e-3]), np.array([0.0]))
    report = compare({"w": np.array([1.0 + 5e-4])}, {"w": estimate})
    assert not report.passed and report.arrays["w"].numerical_error == pytest.approx(1e-3)
    assert report.arrays["w"].undecided and "undecided" in str(report)
    assert compare({"w": np.array([1.0 + 5e-6])}, {"w": estimate}).passed


@pytest.mark.parametrize("distance, decided", [(1e-6, True), (1e-7, False)])
def test_a_kink_closer_than_the_smallest_step_is_undecided_not_wrong(distance, decided):
    """relu: a pre-activation ``distance`` from its kink. Steps shrink to ~1.2e-7 for cells
    with kinks: beyond that the report says the check could not decide."""
    layer = SimpleRNN(3, 4, nonlinearity="relu", rng=0)
    x = data((1, 3, 3), 0)
    layer.params["b"][0] += distance - (x[0, 0] @ layer.params["W"] + layer.params["b"])[0]
    report = check_layer(layer, x)
    assert report.passed == decided, f"\n{report}"
    assert all(row.passed or row.undecided for row in report.arrays.values()), f"\n{report}"


def test_progress_bar_on_request(capsys):
    pytest.importorskip("tqdm")
    estimate_gradients(cubic, {"A": np.ones((2, 2)), "v": np.ones(3)}, progress=True)
    assert "gradient check" in capsys.readouterr().err


# ------------------------------------------------------------------ the notebook's gradient_check
def test_notebook_check_returns_its_verdict_and_passes_a_long_sequence():
    model = RNN(5, 32, 5, rng=0)
    x = data((50, 5), 0, True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert gradient_check(model, x) is True
        assert gradient_check(model, x, treshold=0.0) is False
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines[:5]] == [f"Gradient check for d{k} passed" for k in ("W", "R", "V", "bs", "by")]
    assert all(float(line.split("difference ")[1][:-1]) < 1e-9 for line in lines[:5])
    assert sum("failed" in line for line in lines[5:]) >= 4  # dby may be exactly 0
