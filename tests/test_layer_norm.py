"""Layer-normalised LSTM and GRU: the normalisation and its derivative, exact gradients over the
option grid, invariance to the scale of the input, the contract users (RTRL, diagnostics, batch
parts), configuration and training, and the combinations refused."""
import numpy as np
import pytest
from conftest import TINY

from numpy_rnn import GRU, LSTM, parallel
from numpy_rnn.cells import step_vjps
from numpy_rnn.diagnostics import diagnose
from numpy_rnn.gradcheck import check_layer
from numpy_rnn.interop import to_torch_state_dict
from numpy_rnn.layer_norm import LayerNormGRUCell, LayerNormLSTMCell, layer_norm, layer_norm_backward
from numpy_rnn.models import ModelConfig, SequenceModel
from numpy_rnn.rtrl import RTRL
from numpy_rnn.train import TrainConfig, Trainer

B, T, D, H = 3, 7, 4, 5  # all different on purpose
MIXED = np.array([7, 2, 5])  # unsorted lengths
LAYERS = {"lstm": LSTM, "gru": GRU}


def make(kind, num_layers=1, bidirectional=False, rng=None, **options):
    """A layer-normalised layer whose gains and shifts are moved off their initial 1 and 0, so
    that the check sees every parameter at work."""
    layer = LAYERS[kind](D, H, num_layers, bidirectional=bidirectional, layer_norm=True, rng=7, **options)
    moved = np.random.default_rng(11)
    for name, value in layer.params.items():
        if name.rpartition(".")[2] not in ("W", "R"):
            value += 0.3 * moved.standard_normal(value.shape)
    return layer


def random_state(layer, rng, batch=B):
    h = rng.standard_normal((layer.num_layers * layer.num_directions, batch, H))
    return (h, rng.standard_normal(h.shape)) if isinstance(layer, LSTM) else h


def test_layer_norm_and_its_derivative(rng):
    a, d_hat = rng.standard_normal((2, 6, 9)), rng.standard_normal((2, 6, 9))
    a_hat, inv_std = layer_norm(a)
    np.testing.assert_allclose(a_hat.mean(axis=-1), 0.0, atol=1e-15)
    np.testing.assert_allclose((a_hat ** 2).mean(axis=-1), 1.0 - 1e-5 * inv_std[..., 0] ** 2, rtol=1e-12)  # var / (var + eps)
    eps, analytic = 1e-6, layer_norm_backward(d_hat, a_hat, inv_std)
    numeric = np.zeros_like(a)
    for index in np.ndindex(a.shape):
        step = np.zeros_like(a)
        step[index] = eps
        numeric[index] = np.sum(d_hat * (layer_norm(a + step)[0] - layer_norm(a - step)[0])) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", [None, MIXED], ids=["equal", "mixed"])
def test_gradients_match_central_differences(kind, num_layers, bidirectional, lengths, rng):
    layer = make(kind, num_layers, bidirectional)
    report = check_layer(layer, rng.standard_normal((B, T, D)), random_state(layer, rng), lengths)
    assert report.passed, str(report)
    assert report.max_rel_error <= 1e-7, str(report)
    assert set(report.arrays) >= set(layer.params) | {"x", "state[0]"}


@pytest.mark.parametrize("kind", LAYERS)
def test_without_biases_only_gains_are_learned_and_gradients_are_exact(kind, rng):
    layer = make(kind, 2, True, bias=False)
    assert not any("beta" in name or name.endswith(".b") for name in layer.params)
    report = check_layer(layer, rng.standard_normal((B, T, D)), random_state(layer, rng), MIXED)
    assert report.passed, str(report)


@pytest.mark.parametrize("kind", LAYERS)
def test_gradients_with_dropout_between_layers(kind, rng):
    layer = make(kind, 2, True, dropout=0.4)
    report = check_layer(layer, rng.standard_normal((B, T, D)), None, MIXED)
    assert report.passed, str(report)


@pytest.mark.parametrize("kind", LAYERS)
def test_gradients_at_a_users_size_in_random_directions(kind, rng):
    layer = LAYERS[kind](12, 100, layer_norm=True, rng=3)
    report = check_layer(layer, rng.standard_normal((2, 101, 12)), mode="directional")
    assert report.passed, str(report)


@pytest.mark.parametrize("kind", LAYERS)
def test_parameters_their_initial_values_and_no_layer_bias(kind):
    layer = LAYERS[kind](D, H, layer_norm=True, rng=0)
    G = layer.cell.num_gates
    extra = {"lstm": {"g_c": (H,), "beta_c": (H,)}, "gru": {"beta_hn": (H,)}}[kind]
    expected = {"W": (D, G * H), "R": (H, G * H), "g_x": (G * H,), "g_h": (G * H,), "beta": (G * H,), **extra}
    assert {name: value.shape for name, value in layer.params.items()} == expected
    for name, value in layer.params.items():
        if name.startswith("g_"):
            np.testing.assert_array_equal(value, 1.0)
        elif name.startswith("beta"):
            np.testing.assert_array_equal(value, 0.0)


@pytest.mark.parametrize("kind", LAYERS)
def test_the_normalised_pre_activations_ignore_the_scale_of_the_input(kind, rng):
    """x enters only through LN(x W), the same for x and 10 x: with eps = 0 the whole run is the
    same; with the default eps almost (eps / var(x W) apart)."""
    layer = make(kind)
    x, state = rng.standard_normal((B, T, D)), random_state(layer, rng)  # h(0) = 0 would make var(h R) = 0
    for eps, tolerance in ((0.0, 1e-12), (1e-5, 1e-3)):
        layer.cell.eps = eps
        runs = [layer.forward(scale * x, state) for scale in (1.0, 10.0)]
        for value, value10 in zip(*(parts(out, state) for out, state in runs), strict=True):
            np.testing.assert_allclose(value10, value, rtol=tolerance, atol=tolerance)
    plain = LAYERS[kind](D, H, rng=7)
    assert not np.allclose(plain.forward(10.0 * x, state)[0], plain.forward(x, state)[0], atol=1e-3)  # scale matters


def parts(out, state):
    return (out, *state) if isinstance(state, tuple) else (out, state)


@pytest.mark.parametrize("kind", LAYERS)
def test_forget_bias_and_chrono_set_the_shift_beta(kind):
    if kind == "lstm":
        layer = LSTM(D, H, layer_norm=True, forget_bias=1.0, rng=0)
        np.testing.assert_array_equal(layer.params["beta"][H:2 * H], 1.0)
    layer = LAYERS[kind](D, H, layer_norm=True, init={"beta": "chrono:50"}, rng=0)
    assert layer.params["beta"][H:2 * H].min() >= 0.0 and layer.params["beta"][H:2 * H].any()


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("with_state", [False, True])
def test_rtrl_gradients_equal_bptt(kind, with_state, rng):
    layer = make(kind)
    x, d_out = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, H))
    state = random_state(layer, rng) if with_state else None
    layer.zero_grad()
    layer.forward(x, state)
    layer.backward(d_out)
    expected = {name: value.copy() for name, value in layer.grads.items()}
    layer.zero_grad()
    rtrl = RTRL(layer)
    rtrl.reset(B, state)
    for t in range(T):
        rtrl.step(x[:, t])
        rtrl.accumulate(d_out[:, t])
    for name, value in expected.items():
        np.testing.assert_allclose(layer.grads[name], value, rtol=1e-10, atol=1e-10 * np.abs(value).max(), err_msg=name)


@pytest.mark.parametrize("cell", [LayerNormLSTMCell(H), LayerNormGRUCell(H), LayerNormLSTMCell(H, bias=False)],
                         ids=["lstm", "gru", "lstm-no-bias"])
def test_recurrent_row_grads_sum_to_recurrent_grads(cell, rng):
    S = cell.state_size
    p = {name: rng.standard_normal(shape) for name, shape in cell.param_shapes().items()}
    state = tuple(rng.standard_normal((B, H)) for _ in range(S))
    vjp = step_vjps(cell, p, rng.standard_normal((B, cell.num_gates * H)), state, rng.standard_normal((1, B, S * H)))
    rows = cell.recurrent_row_grads(p, vjp.state[0], vjp.d_rec, vjp.cache)
    g = {name: np.zeros_like(value) for name, value in p.items()}
    cell.recurrent_grads(p, g, vjp.state[0][None], vjp.d_rec[None], [vjp.cache])
    assert rows.keys() == g.keys()
    for name, value in g.items():
        np.testing.assert_allclose(rows[name].sum(axis=0), value, rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("kind", LAYERS)
def test_diagnostics_read_the_gates_and_the_state_gradients(kind, rng):
    layer = make(kind)
    x, y = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, H))
    run = diagnose(layer, x, y, loss="mse").runs[0]
    assert set(run.activations) == set(layer.cell.activations(layer.cell.step(
        layer.params, np.zeros((B, layer.cell.num_gates * H)), tuple(np.zeros((B, H)) for _ in layer.state_names))[1]))
    for name in layer.state_names:
        assert run.state_grad_norms[name].shape == (B, T) and np.all(np.isfinite(run.state_grad_norms[name]))
    assert run.state_grad_norms["h"].all()  # every h(t) reaches the loss (c(T) does not)


@pytest.mark.parametrize("kind", LAYERS)
def test_batch_threads_give_the_unsplit_results(kind, monkeypatch, rng):
    """The layer-normalised cells run the step path (no fused forward_sequence), which the layer
    does not split over batch parts: with threads allowed and any step worth splitting, the
    results are those of one thread."""
    monkeypatch.setattr(parallel, "MIN_STEP_WORK", 0)
    layer = make(kind, 2, True)
    x, d_out = rng.standard_normal((24, T, D)), rng.standard_normal((24, T, 2 * H))
    results = []
    for threads in (1, 3):
        parallel.set_batch_threads(threads)
        layer.zero_grad()
        out, _ = layer.forward(x)
        dx, _ = layer.backward(d_out)
        results.append([out, dx, *(value.copy() for value in layer.grads.values())])
    parallel.set_batch_threads(parallel.DEFAULT_THREADS)
    for whole, parts in zip(*results, strict=True):
        np.testing.assert_allclose(parts, whole, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("options, error, message", [
    ({"layer_norm": 1}, TypeError, r"LSTM: expected layer_norm to be a bool, got 1"),
    ({"layer_norm": True, "peepholes": True}, ValueError, r"LSTM: expected peepholes=False with layer_norm=True"),
])
def test_lstm_refuses_what_it_cannot_build(options, error, message):
    with pytest.raises(error, match=message):
        LSTM(D, H, **options)


def test_gru_refuses_layer_norm_with_the_reset_before():
    with pytest.raises(ValueError, match=r"GRU: expected reset_after=True with layer_norm=True .*got reset_after=False"):
        GRU(D, H, layer_norm=True, reset_after=False)
    with pytest.raises(TypeError, match=r"GRU: expected layer_norm to be a bool, got 'yes'"):
        GRU(D, H, layer_norm="yes")


@pytest.mark.parametrize("kind", LAYERS)
def test_interop_refuses_clearly(kind):
    with pytest.raises(ValueError, match=r"torch has no layer equivalent .*no layer normalisation .*layer_norm=False"):
        to_torch_state_dict(LAYERS[kind](D, H, layer_norm=True))


def test_model_config_builds_layer_normalised_layers():
    for cell, cell_class in (("lstm", LayerNormLSTMCell), ("gru", LayerNormGRUCell)):
        model = SequenceModel(ModelConfig(input_size=D, output_size=2, cell=cell, hidden_size=H, layer_norm=True), rng=0)
        assert isinstance(model.rnn.cell, cell_class) and "rnn.beta" in model.params and "rnn.b" not in model.params
    with pytest.raises(ValueError, match=r"ModelConfig: layer_norm applies to cells 'lstm' and 'gru' only, got 'rnn'"):
        ModelConfig(input_size=D, output_size=2, cell="rnn", layer_norm=True)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_training_with_layer_norm_lowers_the_loss(cell):
    trainer = Trainer(TrainConfig(**{**TINY, "cell": cell, "layer_norm": True, "init": {"beta": "chrono:10"}}))
    trainer.run()
    losses = [entry["val_loss"] for entry in trainer.history if "val_loss" in entry]
    assert isinstance(trainer.model.rnn.cell, (LayerNormLSTMCell, LayerNormGRUCell))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("kind, options", [("lstm", {"recurrent_dropout": 0.3, "zoneout": 0.2}), ("gru", {"zoneout": 0.2}),
                                           ("lstm", {"input_dropout": 0.3})], ids=["lstm-rec-zone", "gru-zone", "lstm-in"])
def test_gradients_with_the_layers_regularisers(kind, options, rng):
    layer = make(kind, 2, True, **options)
    report = check_layer(layer, rng.standard_normal((B, T, D)), None, MIXED)
    assert report.passed, str(report)
