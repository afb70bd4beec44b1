"""Gradient-flow diagnostics against independent computations.

The per-step gradients ``dL/dh(t)`` (and ``dL/dc(t)``) recorded by the layer's backward pass
are checked against central differences of the loss with the state at ``t`` perturbed: the
layer is run to ``t``, the state is nudged, and the rest of the sequence is run from it. The
Jacobian norms are checked against the SVD of a product of finite-difference Jacobians, and
the power iteration against the exact method.
"""
import json

import numpy as np
import pytest

from numpy_rnn.diagnostics import diagnose, rate_per_step, saturated, steps_back
from numpy_rnn.layers import GRU, LSTM, SimpleRNN
from numpy_rnn.losses import mse
from numpy_rnn.models import RNN, ModelConfig, SequenceModel

LAYERS = {
    "tanh": lambda D, H: SimpleRNN(D, H, rng=1),
    "relu": lambda D, H: SimpleRNN(D, H, nonlinearity="relu", rng=1),
    "lstm": lambda D, H: LSTM(D, H, rng=1),
    "lstm-peepholes": lambda D, H: LSTM(D, H, peepholes=True, rng=1),
    "lstm-proj": lambda D, H: LSTM(D, H, proj_size=H - 1, rng=1),  # h of width H - 1, c of width H
    "gru": lambda D, H: GRU(D, H, rng=1),
    "gru-reset-before": lambda D, H: GRU(D, H, reset_after=False, rng=1),
}


def _loss_with_state_at(layer, x, y, t, part, delta):
    """The MSE of the layer's outputs when state part ``part`` after step ``t`` is ``+ delta``."""
    out_head, state = layer.forward(x[:, :t + 1])
    parts = list(state) if isinstance(state, tuple) else [state]
    parts[part] = parts[part] + delta[None]
    out_head = out_head.copy()
    if part == 0:
        out_head[:, t] += delta  # h(t) is also the output at t
    state = tuple(parts) if isinstance(state, tuple) else parts[0]
    out = out_head if t + 1 == x.shape[1] else np.concatenate([out_head, layer.forward(x[:, t + 1:], state)[0]], 1)
    return mse(out, y)[0]


@pytest.mark.parametrize("kind", LAYERS)
def test_state_gradients_equal_central_differences_of_the_loss(kind, rng):
    B, T, D, H = 2, 6, 3, 4
    layer = LAYERS[kind](D, H)
    x, y = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, layer.h_size))
    result = diagnose(layer, x, y, loss="mse")
    run = result.runs[0]
    eps = 1e-6
    for part, (name, width) in enumerate(zip(layer.state_names, layer.cell.state_widths)):
        for t in (0, 2, T - 1):
            numeric = np.zeros((B, width))
            for b in range(B):
                for i in range(width):
                    delta = np.zeros((B, width))
                    delta[b, i] = eps
                    plus = _loss_with_state_at(layer, x, y, t, part, delta)
                    minus = _loss_with_state_at(layer, x, y, t, part, -delta)
                    numeric[b, i] = (plus - minus) / (2 * eps)
            np.testing.assert_allclose(run.state_grad_norms[name][:, t], np.linalg.norm(numeric, axis=-1),
                                       rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("kind", ["tanh", "lstm", "gru"])
def test_state_gradients_at_a_users_size_match_a_directional_difference(kind, rng):
    """H = 100, T = 120: the recorded gradient at t against the loss's derivative along a random direction."""
    B, T, D, H, t = 3, 120, 7, 100, 40
    layer = LAYERS[kind](D, H)
    x, y = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, H))
    layer.record_state_grads = True
    y_hat, _ = layer.forward(x)
    layer.backward(mse(y_hat, y)[1])
    recorded = layer.state_grads["l0"][0][:, t]  # (B, H)
    u, eps = rng.standard_normal((B, H)), 1e-6
    numeric = (_loss_with_state_at(layer, x, y, t, 0, eps * u) - _loss_with_state_at(layer, x, y, t, 0, -eps * u)) / (2 * eps)
    np.testing.assert_allclose(np.sum(recorded * u), numeric, rtol=1e-6)


def _finite_difference_product_norm(layer, x, t):
    """||dh(T)/dh(t)||_2 of sequence 0 from central differences of running steps t+1..T."""
    H, eps = layer.h_size, 1e-6
    _, state = layer.forward(x[:1, :t + 1])
    parts = list(state) if isinstance(state, tuple) else [state]

    def h_end(delta):
        moved = [parts[0] + delta] + parts[1:]
        start = tuple(moved) if isinstance(state, tuple) else moved[0]
        _, end = layer.forward(x[:1, t + 1:], start)
        return (end[0] if isinstance(end, tuple) else end)[0, 0]

    columns = [(h_end(eps * e) - h_end(-eps * e)) / (2 * eps) for e in np.eye(H)]
    return np.linalg.norm(np.stack(columns, axis=1), ord=2)


@pytest.mark.parametrize("kind", ["tanh", "lstm", "lstm-proj", "gru-reset-before"])
def test_jacobian_norms_equal_the_svd_of_a_finite_difference_product(kind, rng):
    B, T, D, H = 2, 9, 3, 5
    layer = LAYERS[kind](D, H)
    x, y = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, layer.h_size))
    run = diagnose(layer, x, y).runs[0]
    assert run.jacobian_method == "exact" and run.jacobian_norm[0, T - 1] == pytest.approx(1.0)
    for t in (0, 3, 7):
        assert run.jacobian_norm[0, t] == pytest.approx(_finite_difference_product_norm(layer, x, t), rel=1e-6)


@pytest.mark.parametrize("kind", ["tanh", "lstm", "lstm-proj", "gru"])
def test_power_iteration_agrees_with_the_exact_norms(kind, rng):
    B, T, D, H = 2, 30, 3, 6
    layer = LAYERS[kind](D, H)
    x, y = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, layer.h_size))
    exact = diagnose(layer, x, y).runs[0]
    power = diagnose(layer, x, y, exact_max=1).runs[0]
    assert power.jacobian_method == "power"
    estimated = ~np.isnan(power.jacobian_norm)
    assert estimated[:, -1].all() and estimated.sum() > 2 * 10
    np.testing.assert_allclose(power.jacobian_norm[estimated], exact.jacobian_norm[estimated], rtol=1e-4)
    if layer.cell.state_size > 1:
        np.testing.assert_allclose(power.state_jacobian_norm[estimated], exact.state_jacobian_norm[estimated], rtol=1e-4)


def test_bidirectional_stack_with_lengths_ends_each_run_where_it_stops_reading(rng):
    B, T, D, H = 3, 8, 2, 3
    lengths = np.array([8, 5, 2])
    layer = LSTM(D, H, num_layers=2, bidirectional=True, rng=0)
    x, y = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, 2 * H))
    result = diagnose(layer, x, y, lengths=lengths)
    assert [run.name for run in result.runs] == ["l0", "l0_reverse", "l1", "l1_reverse"]
    for run in result.runs:
        for b, n in enumerate(lengths):
            assert np.isnan(run.state_grad_norms["h"][b, n:]).all() and np.isfinite(run.state_grad_norms["h"][b, :n]).all()
            end = n - 1 if run.direction == 0 else 0
            assert run.jacobian_norm[b, end] == pytest.approx(1.0)
            assert np.isnan(run.jacobian_norm[b, n:]).all()
    first = result.runs[0]
    valid = np.arange(T) < lengths[:, None]
    expected_mean = np.nanmean(np.where(valid, first.state_grad_norms["h"], np.nan), axis=0)
    np.testing.assert_allclose(first.dl_dh_norm, expected_mean)


def test_models_are_left_as_they_were(rng):
    config = ModelConfig(input_size=5, output_size=5, cell="gru", hidden_size=6, num_layers=2, dropout=0.5,
                         tokens=True, sequence_output=True)
    model = SequenceModel(config, rng=0)
    ids = rng.integers(0, 5, size=(4, 7))
    for g in model.grads.values():
        g[...] = 0.25
    params = model.state_dict()
    generator_state = model.rnn.rng.bit_generator.state
    result = diagnose(model, ids, ids)  # integer targets: cross-entropy
    assert model.training and model.rnn.record_state_grads is False
    assert model.rnn.rng.bit_generator.state == generator_state  # dropout was off: nothing drawn
    assert all(np.all(g == 0.25) for g in model.grads.values())
    assert all(np.array_equal(model.params[k], v) for k, v in params.items())
    assert result.seq_len == 7 and result.batch_size == 4 and np.isfinite(result.loss)


def test_notebook_rnn_with_identity_recurrence(rng):
    model = RNN(3, 8, 2, rng=0)
    x, y = rng.standard_normal((5, 12, 3)), rng.standard_normal((5, 2))
    run = diagnose(model, x, y).runs[0]
    block = run.recurrent["R"]
    np.testing.assert_allclose(block["singular_values"], 1.0)
    assert block["spectral_radius"] == pytest.approx(1.0)
    dy = mse(model.forward(x), y)[1]  # sequence-to-one: the loss reaches h(T) through V only
    np.testing.assert_allclose(run.state_grad_norms["h"][:, -1], np.linalg.norm(dy @ model.V.T, axis=1), rtol=1e-12)


def test_saturation_and_gate_means(rng):
    B, T, D, H = 4, 10, 3, 6
    x = rng.standard_normal((B, T, D))
    hot = SimpleRNN(D, H, init={"W": "normal:50"}, rng=0)
    assert diagnose(hot, x, np.zeros((B, T, H))).runs[0].activations["h"]["saturated"].min() > 0.9
    dead = SimpleRNN(D, H, nonlinearity="relu", init={"b": "constant:-100"}, rng=0)
    stats = diagnose(dead, x, np.zeros((B, T, H))).runs[0].activations["h"]
    assert stats["kind"] == "relu" and np.all(stats["saturated"] == 1.0)
    lstm = LSTM(D, H, forget_bias=20.0, rng=0)
    stats = diagnose(lstm, x, np.zeros((B, T, H))).runs[0].activations
    assert set(stats) == {"i", "f", "g", "o", "tanh_c"}
    assert np.all(stats["f"]["mean"] > 0.999) and np.all(stats["f"]["saturated"] == 1.0)


def test_saturated_thresholds():
    np.testing.assert_array_equal(saturated("tanh", np.array([-0.995, 0.5, 0.991])), [True, False, True])
    np.testing.assert_array_equal(saturated("sigmoid", np.array([0.005, 0.5, 0.995])), [True, False, True])
    np.testing.assert_array_equal(saturated("relu", np.array([0.0, 1e-9])), [True, False])
    with pytest.raises(ValueError, match="expected kind 'tanh', 'sigmoid' or 'relu', got 'elu'"):
        saturated("elu", np.zeros(2))


def test_rate_per_step_of_a_geometric_decay():
    forward = 0.5 ** steps_back(10)  # index 0 is the first step, furthest from the end
    assert rate_per_step(forward) == pytest.approx(0.5)
    assert rate_per_step(forward[::-1], direction=1) == pytest.approx(0.5)
    assert rate_per_step(np.array([np.nan, 0.0, 1.0])) is None


def test_json_layout_and_save(tmp_path, rng):
    layer = LSTM(2, 3, rng=0)
    x, y = rng.standard_normal((2, 5, 2)), rng.standard_normal((2, 5, 3))
    result = diagnose(layer, x, y, lengths=np.array([5, 3]))
    data = json.loads(open(result.save(tmp_path / "d.json")).read())
    assert data["seq_len"] == 5 and data["batch_size"] == 2
    run = data["layers"][0]
    assert run["name"] == "l0" and run["cell"] == "LSTMCell" and len(run["dl_dh_norm"]) == 5
    assert len(run["dl_dc_norm"]) == 5 and run["dl_dh_norm_per_sequence"][1][3:] == [None, None]
    assert set(run["recurrent"]) == {"R_i", "R_f", "R_g", "R_o"} and len(run["state_jacobian_norm"]) == 5
    np.testing.assert_allclose(run["dl_dh_norm"], result.runs[0].dl_dh_norm)


def test_bad_input_is_refused_clearly(rng):
    x, y = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 1))
    with pytest.raises(TypeError, match="diagnose: expected a recurrent layer, a SequenceModel or the notebook RNN, got dict"):
        diagnose({}, x, y)
    with pytest.raises(ValueError, match="notebook RNN starts from a zero state and takes no lengths"):
        diagnose(RNN(3, 4, 1), x, y, lengths=np.array([4, 2]))
    with pytest.raises(ValueError, match=r"expected x of shape \(B, T, 3\) for the notebook RNN, got \(4, 3\)"):
        diagnose(RNN(3, 4, 1), x[0], y)
    with pytest.raises(ValueError, match="jacobian_sequences"):
        diagnose(SimpleRNN(3, 4), x, rng.standard_normal((2, 4, 4)), jacobian_sequences=0)


def test_a_forward_pass_in_flight_is_not_disturbed(rng):
    layer = GRU(3, 4, rng=0)
    x, d_out = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 4))
    layer.forward(x)
    diagnose(layer, rng.standard_normal((3, 9, 3)), rng.standard_normal((3, 9, 4)))
    layer.backward(d_out)  # the backward of the forward before the diagnosis
    expected = GRU(3, 4, rng=0)
    expected.forward(x)
    expected.backward(d_out)
    assert all(np.array_equal(layer.grads[k], expected.grads[k]) for k in expected.grads)


def test_a_projected_lstms_spectra_are_those_of_w_hr_r(rng):
    """h(t-1) R = m(t-1) W_hr R: the (H, H) gate blocks of W_hr R (R itself is (P, 4H))."""
    B, T, D, H = 2, 5, 3, 6
    layer = LAYERS["lstm-proj"](D, H)
    run = diagnose(layer, rng.standard_normal((B, T, D)), rng.standard_normal((B, T, layer.h_size))).runs[0]
    effective = layer.params["W_hr"] @ layer.params["R"]  # (H, 4H)
    assert sorted(run.recurrent) == ["R_f", "R_g", "R_i", "R_o"]
    for k, name in enumerate(("R_i", "R_f", "R_g", "R_o")):
        block = effective[:, k * H:(k + 1) * H]
        np.testing.assert_allclose(run.recurrent[name]["singular_values"], np.linalg.svd(block, compute_uv=False))
        assert run.recurrent[name]["spectral_radius"] == pytest.approx(np.abs(np.linalg.eigvals(block)).max())
