"""Numerical gradients, reports, the directional mode and the float64 rule."""
import numpy as np
import pytest

from numpy_rnn import LSTM
from numpy_rnn.gradcheck import (ArrayReport, check_layer, compare, directional_check, numerical_gradients,
                                 require_float64)


def cubic(a):
    """f(A, v) = sum(sin(A) * A) + sum(v**3) with leading axes kept (vectorised form)."""
    return np.sum(np.sin(a["A"]) * a["A"], axis=(-2, -1)) + np.sum(a["v"] ** 3, axis=-1)


def cubic_gradient(arrays):
    A, v = arrays["A"], arrays["v"]
    return {"A": np.cos(A) * A + np.sin(A), "v": 3 * v ** 2}


@pytest.mark.parametrize("stencil", [2, 4, 6])
def test_numerical_gradients_of_a_known_function(stencil, rng):
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
    for key in arrays:
        np.testing.assert_array_equal(arrays[key], copies[key])


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
    with pytest.raises(ValueError, match=r"expected eps > 0 and finite, got -1"):
        numerical_gradients(cubic, {"A": np.zeros((1, 1)), "v": np.zeros(1)}, eps=-1)
    with pytest.raises(ValueError, match=r"unknown mode 'fast'; valid names: full, directional"):
        check_layer(LSTM(2, 3), np.zeros((1, 2, 2)), mode="fast")


def test_check_layer_covers_parameters_input_and_state(rng):
    layer = LSTM(2, 3, 2, bidirectional=True, rng=0)
    state = (rng.standard_normal((4, 1, 3)), rng.standard_normal((4, 1, 3)))
    report = check_layer(layer, rng.standard_normal((1, 4, 2)), state)
    assert set(report.arrays) == set(layer.params) | {"x", "state[0]", "state[1]"}
    assert report.passed, str(report)
