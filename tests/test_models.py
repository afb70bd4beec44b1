"""The notebook's RNN: its equations, its methods, its demonstration cell, and bad input."""
import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from numpy_rnn import RNN, ModelConfig, SequenceModel, SimpleRNN, gradient_check
from numpy_rnn.gradcheck import compare, numerical_gradients

T, D, H = 6, 3, 4  # all different, and different from K


def reference_forward(model, x):
    """The notebook's equations with column vectors, one step at a time."""
    a = np.zeros((model.hidden_size, 1))
    p = model.params
    for x_t in x:
        a = np.tanh(p["W"].T @ x_t[:, None] + p["R"].T @ a + p["bs"][:, None])
    return p["V"].T @ a + p["by"][:, None]


@pytest.mark.parametrize("K", [1, 5])
def test_forward_matches_the_notebook_equations(K, rng):
    model = RNN(D, H, K, rng=0)
    model.params["bs"][...] = rng.standard_normal(H)  # the notebook starts them at zero
    x = rng.random((T, D))
    y = model.forward(x)
    assert y.shape == (K, 1)
    np.testing.assert_allclose(y, reference_forward(model, x), atol=1e-14)
    batch = rng.random((3, T, D))
    np.testing.assert_allclose(model.forward(batch)[1], reference_forward(model, batch[1])[:, 0], atol=1e-14)


def test_initialisation_as_in_the_notebook():
    model = RNN(D, H, 2, rng=1)
    np.testing.assert_array_equal(model.params["R"], np.eye(H))
    assert np.abs(model.params["W"]).max() <= np.sqrt(3 / D)
    assert np.abs(model.params["V"]).max() <= np.sqrt(3 / H)
    assert not model.params["bs"].any() and not model.params["by"].any()
    np.testing.assert_array_equal(RNN(D, H, 2, rng=1).params["W"], model.params["W"])


@pytest.mark.parametrize("K", [1, 5])
@pytest.mark.parametrize("batched", [False, True])
def test_backward_against_central_differences(K, batched, rng):
    model = RNN(D, H, K, rng=2)
    x = rng.random((2, T, D)) if batched else rng.random((T, D))
    y = model.forward(x)
    g = rng.standard_normal(y.shape)
    grads = model.backward(g)
    assert set(grads) == set(model.grads) == {"W", "R", "V", "bs", "by"}
    xb = x if batched else x[None]
    g_b = g if batched else g.T
    numerical = numerical_gradients(lambda a: np.sum(model.apply(a, xb) * g_b, axis=(-2, -1)), model.get_weights())
    report = compare(grads, numerical)
    assert report.passed and report.max_rel_error <= 1e-7, str(report)
    for key, value in grads.items():
        assert value.shape == model.params[key].shape


def test_d_loss_may_be_a_flat_vector(rng):
    model = RNN(D, H, 3, rng=0)
    x = rng.random((T, D))
    model.forward(x)
    column = model.backward(np.ones((3, 1)))
    model.forward(x)
    flat = model.backward(np.ones(3))
    for key in column:
        np.testing.assert_array_equal(column[key], flat[key])


def test_notebook_demonstration_cell_verbatim():
    """The notebook's In [6], run as it is written there."""
    cell = '''
print("Gradient check with a single output neuron:")
output_size = 1
model = RNN(input_size=5, hidden_size=10, output_size=output_size)
x = np.random.rand(5, 5)
gradient_check(model, x)

print("\\nGradient check with multiple output neurons:")
output_size = 5
model = RNN(input_size=5, hidden_size=10, output_size=output_size)
x = np.random.rand(5, 5)
gradient_check(model, x)
'''
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(cell, {"np": np, "RNN": RNN, "gradient_check": gradient_check})
    lines = out.getvalue().splitlines()
    passed = [line for line in lines if line.startswith("Gradient check for")]
    assert len(passed) == 10
    for line, key in zip(passed, ["dW", "dR", "dV", "dbs", "dby"] * 2):
        assert re.fullmatch(rf"Gradient check for {key} passed \(difference \d\.\d{{3}}e[-+]\d\d\)", line)


def test_gradient_check_reports_failure_and_accepts_both_spellings(rng, capsys):
    model = RNN(5, 10, 1, rng=0)
    x = rng.random((5, 5))
    gradient_check(model, x, treshold=0.0)
    assert capsys.readouterr().out.count("failed") == 5
    gradient_check(model, x, threshold=0.0)
    assert capsys.readouterr().out.count("failed") == 5


def test_update_descends_and_needs_backward(rng):
    model = RNN(D, H, 1, rng=0)
    x, target = rng.random((8, T, D)), rng.random((8, 1))
    with pytest.raises(RuntimeError, match=r"RNN: update\(\) called before backward\(\)"):
        model.update(0.1)
    losses = []
    for _ in range(20):
        y = model.forward(x)
        losses.append(np.mean((y - target) ** 2))
        model.backward(2 * (y - target) / y.size)
        model.update(0.05)
    assert all(later < earlier for earlier, later in zip(losses, losses[1:]))
    with pytest.raises(RuntimeError, match=r"update\(\) called before backward\(\)"):
        model.update(0.1)


def test_get_and_set_weights_round_trip(rng):
    model, other = RNN(D, H, 2, rng=0), RNN(D, H, 2, rng=1)
    weights = model.get_weights()
    weights["W"][0, 0] = 123.0  # a copy: the model is unchanged
    assert model.params["W"][0, 0] != 123.0
    other.set_weights(model.get_weights())
    x = rng.random((T, D))
    np.testing.assert_array_equal(other.forward(x), model.forward(x))


def test_set_weights_rejects_missing_keys_wrong_shapes_and_dtypes():
    model = RNN(D, H, 2, rng=0)
    before = model.get_weights()
    weights = model.get_weights()
    del weights["bs"]
    with pytest.raises(ValueError, match=r"RNN: expected state with keys \['W', 'R', 'V', 'bs', 'by'\]; missing \['bs'\]"):
        model.set_weights(weights)
    weights = model.get_weights()
    weights["V"] = np.zeros((2, H))
    with pytest.raises(ValueError, match=r"expected state\['V'\] of shape \(4, 2\), got \(2, 4\)"):
        model.set_weights(weights)
    weights = model.get_weights()
    weights["R"] = weights["R"].astype(np.float32)
    with pytest.raises(TypeError, match=r"expected state\['R'\] of dtype float64"):
        model.set_weights(weights)
    for key, value in before.items():
        np.testing.assert_array_equal(model.params[key], value)


def test_bad_calls():
    model = RNN(D, H, 2, rng=0)
    with pytest.raises(RuntimeError, match=r"RNN: backward\(\) called before forward\(\)"):
        model.backward(np.ones((2, 1)))
    model.forward(np.zeros((T, D)))
    with pytest.raises(ValueError, match=r"RNN: expected d_loss of shape \(2, 1\) or \(2,\), got \(3, 1\)"):
        model.backward(np.ones((3, 1)))
    shape_error = r"RNN: expected x of shape|SimpleRNN: expected x of shape \(B, T, 3\) or \(T, 3\), got \(6, 4\)"
    with pytest.raises(ValueError, match=shape_error):
        model.forward(np.zeros((T, 4)))
    with pytest.raises(ValueError, match=r"RNN: expected lr finite and in \[0.0, inf\), got nan"):
        model.update(float("nan"))
    with pytest.raises(ValueError, match=r"RNN: expected output_size >= 1, got 0"):
        RNN(D, H, 0)


@pytest.mark.parametrize("K", [1, 5])
@pytest.mark.parametrize("batched", [False, True])
def test_backward_rtrl_gives_the_same_dict_as_backward(K, batched, rng):
    """The course's form of RTRL: the gradients carried forward in time equal BPTT's."""
    model = RNN(D, H, K, rng=2)
    model.R = 0.6 * rng.standard_normal((H, H))  # not the identity of the notebook's start
    model.bs = rng.standard_normal(H)
    x = rng.random((2, T, D)) if batched else rng.random((T, D))
    y = model.forward(x)
    g = rng.standard_normal(y.shape)
    bptt = model.backward(g)
    x[...] = np.nan  # backward_rtrl reads a copy of the forward's input, not the caller's array
    rtrl = model.backward_rtrl(g)
    assert rtrl.keys() == bptt.keys()
    for key, value in bptt.items():
        np.testing.assert_allclose(rtrl[key], value, rtol=1e-10, atol=1e-14 * np.abs(value).max())
        np.testing.assert_array_equal(model.grads[key], rtrl[key])  # replaced, not added to
    model.update(0.1)  # allowed after backward_rtrl, as after backward


def test_backward_rtrl_bad_calls():
    model = RNN(D, H, 2, rng=0)
    with pytest.raises(RuntimeError, match=r"RNN: backward_rtrl\(\) called before forward\(\)"):
        model.backward_rtrl(np.ones((2, 1)))
    model.forward(np.zeros((T, D)))
    with pytest.raises(ValueError, match=r"RNN: expected d_loss of shape \(2, 1\) or \(2,\), got \(3, 1\)"):
        model.backward_rtrl(np.ones((3, 1)))


def test_model_shares_arrays_with_its_layers():
    model = RNN(D, H, 2, rng=0)
    assert isinstance(model.rnn, SimpleRNN)
    assert model.params["bs"] is model.rnn.params["b"] and model.params["V"] is model.head.params["W"]


# ---------------------------------------------------------------- SequenceModel
def model_gradient_report(model, x, lengths, rng):
    """Analytic gradients of sum(y * G) against central differences (element loop)."""
    y, _ = model.forward(x, lengths=lengths)
    G = rng.standard_normal(y.shape)
    model.zero_grad()
    model.backward(G)
    analytic = {k: v.copy() for k, v in model.grads.items()}
    original = {k: v.copy() for k, v in model.params.items()}

    def loss(arrays):
        for key, value in arrays.items():
            model.params[key][...] = value
        return float(np.sum(model.forward(x, lengths=lengths)[0] * G))

    numerical = numerical_gradients(loss, original, vectorized=False)
    for key, value in original.items():
        model.params[key][...] = value
    return compare(analytic, numerical)


@pytest.mark.parametrize("config", [
    ModelConfig(D, 2, cell="gru", hidden_size=H, num_layers=2, bidirectional=True),
    ModelConfig(D, 1, cell="rnn", hidden_size=H, nonlinearity="relu", init={"R": "identity"}),
    ModelConfig(D, 3, cell="lstm", hidden_size=H, sequence_output=True),
    ModelConfig(D, 2, cell="gru", hidden_size=H, bias=False),
    ModelConfig(D, 2, cell="lstm", hidden_size=H, proj_size=2, num_layers=2, bidirectional=True),
    ModelConfig(D, 3, cell="lstm", hidden_size=H, proj_size=2, sequence_output=True),
], ids=["gru-seq2one-deep-bidir", "irnn-seq2one", "lstm-seq2seq", "gru-no-bias", "lstm-proj-seq2one-deep-bidir",
        "lstm-proj-seq2seq"])
def test_sequence_model_gradients_float_inputs(config, rng):
    model = SequenceModel(config, rng=1)
    layer_biases = [name for name in model.params if name.startswith("rnn.") and name.endswith(".b")]
    assert bool(layer_biases) is config.bias and "head.b" in model.params
    report = model_gradient_report(model, rng.standard_normal((2, T, D)), np.array([T, 3]), rng)
    assert report.passed, str(report)


@pytest.mark.parametrize("embedding_size", [0, 3], ids=["one-hot", "embedding"])
def test_sequence_model_gradients_token_inputs(embedding_size, rng):
    config = ModelConfig(6, 6, cell="lstm", hidden_size=H, tokens=True, embedding_size=embedding_size,
                         sequence_output=True, bidirectional=True)
    model = SequenceModel(config, rng=1)
    ids = rng.integers(0, 6, (2, T))
    report = model_gradient_report(model, ids, np.array([T, 2]), rng)
    assert report.passed, str(report)
    assert ("embedding.E" in model.params) == bool(embedding_size)


def test_sequence_model_shapes_names_and_state(rng):
    model = SequenceModel(ModelConfig(D, 2, cell="lstm", hidden_size=H, num_layers=2), rng=0)
    assert {"rnn.l0.W", "rnn.l1.R", "head.W", "head.b"} <= set(model.params)
    y, (h, c) = model.forward(rng.standard_normal((3, T, D)))
    assert y.shape == (3, 2) and h.shape == (2, 3, H)
    y2, _ = model.forward(rng.standard_normal((3, T, D)), state=(h, c))  # carried state (TBPTT)
    assert y2.shape == (3, 2)
    assert ModelConfig.from_dict(model.config.to_dict()) == model.config


def test_a_projected_lstm_feeds_the_head_its_projected_h(rng):
    model = SequenceModel(ModelConfig(D, 2, cell="lstm", hidden_size=H, proj_size=2, bidirectional=True), rng=0)
    assert model.params["rnn.l0.W_hr"].shape == (H, 2) and model.params["head.W"].shape == (2 * 2, 2)
    y, (h, c) = model.forward(rng.standard_normal((3, T, D)))
    assert y.shape == (3, 2) and h.shape == (2, 3, 2) and c.shape == (2, 3, H)
    with pytest.raises(ValueError, match=r"ModelConfig: proj_size applies to cell 'lstm' only, got proj_size=2 with 'gru'"):
        ModelConfig(D, 2, cell="gru", hidden_size=H, proj_size=2)


@pytest.mark.parametrize("options", [{}, {"num_layers": 2, "bidirectional": True, "sequence_output": True}],
                         ids=["seq2one", "seq2seq-deep-bidir"])
def test_a_cell_of_your_own_by_module_and_class_builds_the_generic_layer(custom_cell, options, rng):
    config = ModelConfig(D, 2, cell=custom_cell, hidden_size=H, **options)
    model = SequenceModel(config, rng=1)
    assert type(model.rnn).__name__ == "Recurrent" and type(model.rnn.cell).__name__ == "LeakyCell"
    assert "my_cells" in sys.modules and os.getcwd() not in sys.path  # imported from the working directory
    report = model_gradient_report(model, rng.standard_normal((2, T, D)), np.array([T, 3]), rng)
    assert report.passed, str(report)
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_a_cell_of_your_own_that_cannot_be_found_is_named_in_the_error(custom_cell, monkeypatch):
    missing = r"ModelConfig: cell 'my_celz:LeakyCell': expected module 'my_celz' to be importable \(installed, " \
              r"on PYTHONPATH or in the current directory .+\), found none"
    with pytest.raises(ValueError, match=missing):
        ModelConfig(D, 1, cell="my_celz:LeakyCell")
    monkeypatch.syspath_prepend(os.getcwd())  # as under python -m
    with pytest.raises(ValueError, match=missing):
        ModelConfig(D, 1, cell="my_celz:LeakyCell")
    with pytest.raises(ValueError, match=r"ModelConfig: expected cell 'my_cells:not_a_cell' to name a "
                                         r"numpy_rnn.cells.Cell subclass in module 'my_cells', got function there"):
        ModelConfig(D, 1, cell="my_cells:not_a_cell")
    with pytest.raises(ValueError, match=r"ModelConfig: expected cell to be one of rnn, lstm, gru or 'MODULE:CLASS' "
                                         r"\(a dotted module name, a class name\), got 'my_cells:'"):
        ModelConfig(D, 1, cell="my_cells:")
    with pytest.raises(ValueError, match=r"expected cell 'my_cells:Nothing' to name .+, got nothing there"):
        ModelConfig(D, 1, cell="my_cells:Nothing")
    (Path(os.getcwd()) / "broken_cells.py").write_text("import a_module_nobody_has\n")
    with pytest.raises(ModuleNotFoundError, match="a_module_nobody_has"):  # the module's own import error, as is
        ModelConfig(D, 1, cell="broken_cells:Cell")
    with pytest.raises(ValueError, match=r"ModelConfig: nonlinearity applies to cell 'rnn' only"):
        ModelConfig(D, 1, cell=custom_cell, nonlinearity="relu")


def test_sequence_model_bad_config_and_input():
    with pytest.raises(ValueError, match=r"unknown cell 'tcn'; valid names: rnn, lstm, gru"):
        ModelConfig(D, 1, cell="tcn")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['hidden'\]"):
        ModelConfig.from_dict({"input_size": 1, "output_size": 1, "hidden": 3})
    with pytest.raises(ValueError, match=r"embedding_size needs tokens=True"):
        ModelConfig(D, 1, embedding_size=4)
    model = SequenceModel(ModelConfig(5, 5, tokens=True, hidden_size=H), rng=0)
    with pytest.raises(ValueError, match=r"expected every id in \[0, 4\], got min 0 and max 5"):
        model.forward(np.array([[0, 5]]))
    with pytest.raises(TypeError, match=r"expected x of an integer dtype, got dtype float64"):
        model.forward(np.zeros((1, 2)))
    with pytest.raises(RuntimeError, match=r"SequenceModel: backward\(\) called before forward\(\)"):
        SequenceModel(ModelConfig(D, 1), rng=0).backward(np.zeros((1, 1)))


# ---------------------------------------------------------------- the notebook's attributes
def test_notebook_attributes_are_the_live_parameters():
    model = RNN(D, H, 2, rng=0)
    for name in ("W", "R", "V", "bs", "by"):
        assert getattr(model, name) is model.params[name]
    new_W = np.full((D, H), 0.5)
    model.W = new_W  # copied in: the optimizers' array stays the same object
    assert model.params["W"] is model.rnn.params["W"] and np.array_equal(model.params["W"], new_W)
    new_W[0, 0] = 9.0
    assert model.W[0, 0] == 0.5  # the caller's array is not kept
    with pytest.raises(ValueError, match=r"RNN: expected R of shape \(4, 4\), got \(4, 5\)"):
        model.R = np.zeros((H, H + 1))
    with pytest.raises(TypeError, match=r"RNN: expected bs of dtype float64"):
        model.bs = np.zeros(H, dtype=np.float32)


def test_notebook_hidden_states_a(rng):
    model = RNN(D, H, 1, rng=0)
    assert list(model.a) == [0] and model.a[0].shape == (H, 1)
    x = rng.random((T, D))
    model.forward(x)
    a = model.a
    assert list(a) == list(range(T + 1)) and all(v.shape == (H, 1) for v in a.values())
    assert not a[0].any()
    expected = np.tanh(x[0] @ model.W + model.bs)  # a(1) from a(0) = 0
    np.testing.assert_allclose(a[1][:, 0], expected, atol=1e-15)
    np.testing.assert_allclose(model.forward(x), model.V.T @ a[T] + model.by[:, None], atol=1e-14)
    model.forward(rng.random((3, T, D)))
    assert model.a[T].shape == (3, H) and model.a[0].shape == (3, H)


# ---------------------------------------------------------------- generation
def _token_model(**options):
    config = ModelConfig(7, 7, cell="gru", hidden_size=H, tokens=True, sequence_output=True, **options)
    return SequenceModel(config, rng=0)


def test_generate_feeds_each_draw_back_and_is_reproducible():
    model = _token_model(embedding_size=3, num_layers=2, dropout=0.5)
    ids = model.generate(np.array([1, 2, 3]), 12, temperature=0.7, rng=5)
    assert ids.shape == (12,) and ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < 7
    assert np.array_equal(ids, model.generate(np.array([1, 2, 3]), 12, temperature=0.7, rng=5))
    assert model.training  # the mode is restored (dropout was off while generating)
    # the same draws, one step at a time by hand
    gen = np.random.default_rng(5)
    logits, state = model.eval().forward(np.array([[1, 2, 3]]))
    for expected in ids:
        z = logits[0, -1] / 0.7
        p = np.exp(z - z.max())
        assert int(gen.choice(7, p=p / p.sum())) == expected
        logits, state = model.forward(np.array([[expected]]), state)


def test_a_very_low_temperature_is_greedy():
    model = _token_model()
    ids = model.generate([4], 5, temperature=1e-6, rng=0)
    logits, _ = model.forward(np.array([[4, *ids[:-1]]]))
    assert np.array_equal(ids, logits[0].argmax(axis=-1))


@pytest.mark.parametrize("options, message", [
    ({"bidirectional": True}, "a bidirectional model reads the text backwards too"),
    ({"sequence_output": False}, r"needs a next-token model \(tokens=True, sequence_output=True\)"),
])
def test_generate_refuses_models_that_cannot_predict_the_next_token(options, message):
    config = ModelConfig(**{"input_size": 7, "output_size": 7, "hidden_size": H, "tokens": True,
                            "sequence_output": True, **options})
    with pytest.raises(ValueError, match=message):
        SequenceModel(config, rng=0).generate([1], 3)


def test_generate_bad_arguments():
    model = _token_model()
    with pytest.raises(ValueError, match=r"expected prime ids of shape \(P,\) with P >= 1, got \(0,\)"):
        model.generate(np.array([], dtype=np.int64), 3)
    with pytest.raises(ValueError, match=r"expected every id in \[0, 6\]"):
        model.generate([7], 3)
    with pytest.raises(ValueError, match=r"expected temperature finite and in \(0.0, inf\), got 0.0"):
        model.generate([1], 3, temperature=0.0)
    with pytest.raises(TypeError, match=r"expected length to be an int"):
        model.generate([1], 2.5)


def test_sequence_model_takes_state_before_lengths(rng):
    model = SequenceModel(ModelConfig(D, 2, cell="rnn", hidden_size=H), rng=0)
    x, h0 = rng.standard_normal((2, T, D)), rng.standard_normal((1, 2, H))
    y, _ = model.forward(x, h0, np.array([T, 2]))
    expected, _ = model.forward(x, state=h0, lengths=np.array([T, 2]))
    assert np.array_equal(y, expected)
    assert not np.array_equal(y, model.forward(x, lengths=np.array([T, 2]))[0])
